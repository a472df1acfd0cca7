# -*- test-case-name: tests.media.test_streams -*-
"""
Named streams: one source, many sinks (players, the recorder, RTMP pushers, injection).

A call's or a browser's media becomes a server stream that any number of consumers can join and
leave while it runs.  The source's owner pushes each encoded packet into its L{Stream}, which hands
it to every sink taking that kind of media.  That per-packet path is a dict lookup and a loop over
a tuple of bound methods: attaching and detaching build new tuples, so the fan-out needs no lock,
no copy and no allocation of its own, and a sink joining or leaving never disturbs the others.

Sinks get encoded payloads (relay first); a sink that needs another codec transcodes for itself.
A new video sink makes the stream ask its source for a keyframe, and requests are merged so a
burst of players joining costs the publisher one keyframe.

Pure Python; time comes from an injected clock (only for keyframe request pacing and createDate).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IStream, IStreamRegistry

__all__ = [
    "FAILED_BY_ERROR",
    "KEYFRAME_REQUEST_INTERVAL",
    "REQUESTED_STREAM_SHUTDOWN",
    "STOPPED_BY_PUBLISHER_STOP",
    "STOPPED_BY_REST_TERMINATE",
    "STOPPED_BY_SESSION_DISCONNECT",
    "Stream",
    "StreamNameInUse",
    "StreamNotFound",
    "StreamRegistry",
]

# WCS stream info texts (spec STREAM_STATUS_INFO).
STOPPED_BY_PUBLISHER_STOP = "Stopped by publisher stop"
STOPPED_BY_REST_TERMINATE = "Stopped by rest /terminate"
STOPPED_BY_SESSION_DISCONNECT = "Stopped by session disconnect"
REQUESTED_STREAM_SHUTDOWN = "Requested stream shutdown"
FAILED_BY_ERROR = "Failed by error"
STREAM_NOT_FOUND = "Stream not found"
STREAM_NAME_IN_USE = "Stream name is already in use"

#: Keyframe requests closer together than this (seconds) are merged into one.
KEYFRAME_REQUEST_INTERVAL = 0.25

KINDS = frozenset({"audio", "video"})

_NOTHING: tuple = ()


class StreamNotFound(MediaError):
    """
    No stream is published under that name (REST 404, player FAILED "Stream not found").
    """

    def __init__(self, name: str) -> None:
        super().__init__(STREAM_NOT_FOUND)
        self.name = name


class StreamNameInUse(MediaError):
    """
    A second publish under a name in use (publisher FAILED "Stream name is already in use").
    """

    def __init__(self, name: str) -> None:
        super().__init__(STREAM_NAME_IN_USE)
        self.name = name


@implementer(IStream)
class Stream:
    """
    One published stream; see L{IStream}.  Made by L{StreamRegistry.publish}.
    """

    log = Logger()

    def __init__(self, name: str, source, properties: Mapping[str, Any], clock,
                 on_removed: Callable[["Stream"], None],
                 on_ended: Callable[["Stream", str], None]) -> None:
        self.name = name
        self.source = source
        self.properties = dict(properties)
        self.created = clock.seconds()
        self.ended: Optional[str] = None
        self._clock = clock
        self._on_removed = on_removed
        self._on_ended = on_ended
        # sink -> (kinds, bound packet_received), in attach order.
        self._sinks: dict[Any, tuple[frozenset, Callable]] = {}
        # kind -> tuple of bound packet_received methods: the only thing the packet path reads.
        self._by_kind: dict[str, tuple] = {"audio": _NOTHING, "video": _NOTHING}
        # Bumped by every membership change, so a fan-out in progress notices one.
        self._version = 0
        self._last_keyframe_request = float("-inf")
        self._keyframe_call = None

    def __repr__(self) -> str:
        return f"<Stream {self.name!r} sinks={len(self._sinks)}{' ended' if self.ended else ''}>"

    @property
    def sinks(self) -> tuple:
        return tuple(self._sinks)

    # --- the packet path ------------------------------------------------------------------------

    def packet_received(self, kind: str, payload: bytes, codec_name: str, timestamp: int,
                        marker: bool) -> None:
        targets = self._by_kind.get(kind, _NOTHING)
        version = self._version
        for deliver in targets:
            if self._version != version:
                # A sink attached, detached or failed, or the stream ended, during this fan-out.
                self._deliver_remaining(targets[targets.index(deliver):], kind, payload,
                                        codec_name, timestamp, marker)
                return
            try:
                deliver(kind, payload, codec_name, timestamp, marker)
            except Exception:
                self._sink_failed(deliver)

    def _deliver_remaining(self, remaining: tuple, kind: str, payload: bytes, codec_name: str,
                           timestamp: int, marker: bool) -> None:
        """
        The rest of a fan-out after a membership change: only to sinks that are still attached
        (a sink attached meanwhile waits for the next packet).
        """
        for deliver in remaining:
            if self.ended is not None:
                return
            if deliver not in self._by_kind.get(kind, _NOTHING):
                continue
            try:
                deliver(kind, payload, codec_name, timestamp, marker)
            except Exception:
                self._sink_failed(deliver)

    def _sink_failed(self, deliver: Callable) -> None:
        sink = next((sink for sink, (_, bound) in self._sinks.items() if bound == deliver), None)
        self.log.failure("stream {stream}: sink {sink!r} failed on a packet; detached",
                         stream=self.name, sink=sink)
        if sink is None:
            return
        self.detach(sink)
        self._tell(sink, "stream_ended", FAILED_BY_ERROR)

    # --- membership -----------------------------------------------------------------------------

    def attach(self, sink) -> None:
        if self.ended is not None:
            raise StreamNotFound(self.name)
        if sink in self._sinks:
            return
        kinds = frozenset(sink.kinds)
        if not kinds or not kinds <= KINDS:
            raise ValueError(f"sink kinds must be 'audio' and/or 'video', not {sorted(kinds)}")
        self._sinks[sink] = (kinds, sink.packet_received)
        self._rebuild()
        if "video" in kinds:
            self.request_keyframe()

    def detach(self, sink) -> None:
        if self._sinks.pop(sink, None) is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        self._by_kind = {
            kind: tuple(bound for kinds, bound in self._sinks.values() if kind in kinds)
            for kind in KINDS
        }
        self._version += 1

    # --- keyframes ------------------------------------------------------------------------------

    def request_keyframe(self) -> None:
        if self.ended is not None or self._keyframe_call is not None:
            return  # ended, or a merged request is already due
        now = self._clock.seconds()
        wait = self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL - now
        if wait <= 0:
            self._ask_for_keyframe(now)
        else:
            self._keyframe_call = self._clock.callLater(wait, self._merged_keyframe_request)

    def _merged_keyframe_request(self) -> None:
        self._keyframe_call = None
        self._ask_for_keyframe(self._clock.seconds())

    def _ask_for_keyframe(self, now: float) -> None:
        self._last_keyframe_request = now
        self._tell(self.source, "request_keyframe")

    # --- the end --------------------------------------------------------------------------------

    def end(self, reason: str = STOPPED_BY_PUBLISHER_STOP) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if self._keyframe_call is not None:
            if self._keyframe_call.active():
                self._keyframe_call.cancel()
            self._keyframe_call = None
        sinks = list(self._sinks)
        self._sinks.clear()
        self._rebuild()
        # Leave the registry first, so the name is free again inside the callbacks below.
        self._on_removed(self)
        for sink in sinks:
            self._tell(sink, "stream_ended", reason)
        self._tell(self.source, "stream_ended", reason)
        self._on_ended(self, reason)

    def _tell(self, target, method: str, *args) -> None:
        """
        Call back a sink or the source; its exception is logged and goes no further.
        """
        try:
            getattr(target, method)(*args)
        except Exception:
            self.log.failure("stream {stream}: {target!r}.{method} failed",
                             stream=self.name, target=target, method=method)

    # --- description ----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        description = dict(self.properties)
        description.update(
            name=self.name,
            audioCodec=getattr(self.source, "audio_codec", None),
            videoCodec=getattr(self.source, "video_codec", None),
            createDate=int(self.created * 1000),
        )
        return description


@implementer(IStreamRegistry)
class StreamRegistry:
    """
    The server's published streams by name; see L{IStreamRegistry}.

    @param clock: an IReactorTime (the reactor; a task.Clock in tests).
    """

    log = Logger()

    def __init__(self, clock) -> None:
        self._clock = clock
        self._streams: dict[str, Stream] = {}
        self._observers: list = []
        self._resolvers: list = []
        self._name_checks: list = []

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, name: str) -> bool:
        return name in self._streams

    def publish(self, name: str, source, properties: Optional[Mapping[str, Any]] = None) -> Stream:
        if not isinstance(name, str) or not name:
            raise ValueError("a stream needs a non-empty name")
        if name in self._streams:
            raise StreamNameInUse(name)
        stream = Stream(name, source, properties or {}, self._clock, self._forget, self._ended)
        self._streams[name] = stream
        self.log.info("stream {stream} published", stream=name)
        self._notify("stream_published", stream)
        return stream

    def unpublish(self, name: str, reason: str = STOPPED_BY_PUBLISHER_STOP) -> None:
        stream = self._streams.get(name)
        if stream is None:
            raise StreamNotFound(name)
        stream.end(reason)

    def _forget(self, stream: Stream) -> None:
        if self._streams.get(stream.name) is stream:
            del self._streams[stream.name]

    def _ended(self, stream: Stream, reason: str) -> None:
        self.log.info("stream {stream} ended: {reason}", stream=stream.name, reason=reason)
        self._notify("stream_unpublished", stream, reason)

    def get(self, name: str) -> Optional[Stream]:
        return self._streams.get(name)

    def resolve(self, name: str) -> Optional[Stream]:
        """
        The stream of that name here, else the first a resolver (another node) provides.
        """
        stream = self._streams.get(name)
        for resolver in list(self._resolvers):
            if stream is not None:
                return stream
            try:
                stream = resolver.resolve_stream(name)
            except Exception:
                self.log.failure("stream resolver {resolver!r} failed", resolver=resolver)
        return stream

    def taken(self, name: str) -> bool:
        # Name checks are the cluster's: a name another node publishes is taken here too.
        return name in self._streams or any(check(name) for check in list(self._name_checks))

    def add_name_check(self, check) -> None:
        if check not in self._name_checks:
            self._name_checks.append(check)

    def remove_name_check(self, check) -> None:
        if check in self._name_checks:
            self._name_checks.remove(check)

    def add_resolver(self, resolver) -> None:
        if resolver not in self._resolvers:
            self._resolvers.append(resolver)

    def remove_resolver(self, resolver) -> None:
        if resolver in self._resolvers:
            self._resolvers.remove(resolver)

    def find(self, filters: Mapping[str, Any]) -> list[Stream]:
        found = []
        for stream in list(self._streams.values()):
            description = stream.describe()
            if all(name in description and description[name] == value
                   for name, value in filters.items()):
                found.append(stream)
        return found

    def attach(self, name: str, sink) -> Stream:
        stream = self._streams.get(name)
        if stream is None:
            raise StreamNotFound(name)
        stream.attach(sink)
        return stream

    def detach(self, name: str, sink) -> None:
        stream = self._streams.get(name)
        if stream is not None:
            stream.detach(sink)

    def end_all(self, reason: str = REQUESTED_STREAM_SHUTDOWN) -> None:
        """
        End every stream (server shutdown).
        """
        for stream in list(self._streams.values()):
            stream.end(reason)

    def add_observer(self, observer) -> None:
        if observer not in self._observers:
            self._observers.append(observer)

    def remove_observer(self, observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def _notify(self, method: str, *args) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, method)(*args)
            except Exception:
                self.log.failure("stream observer {observer!r}.{method} failed",
                                 observer=observer, method=method)
