# -*- test-case-name: tests.modules_builtin.test_rtmp -*-
"""
The C{rtmp} module: named streams republished to RTMP servers (WCS "transponders"), on REST
request (/push/*) or for a call started with C{rtmpUrl} (/call/startup).

L{RtmpService} keeps the pushes (L{wcs_twisted.modules_builtin.rtmp_push.RtmpPush}), including
those waiting for their stream to be published; L{RtmpModule} runs it with its configuration keys,
serves its REST methods and follows the calls REST starts with an C{rtmpUrl}, whose push status
shows in the call object as C{rtmpStreamStatus}.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import Conflict, DomainError, InvalidField, NotFound
from wcs_twisted.interfaces import IStreamObserver, IWcsModule
from wcs_twisted.modules_builtin.rtmp_protocol import RtmpPublisher, RtmpTarget, parse_rtmp_url
from wcs_twisted.modules_builtin.rtmp_push import ACTIONS, RtmpPush, RtmpStreamStatus, Sound
from wcs_twisted.toolkit.aac import load_sound
from wcs_twisted.toolkit.fields import read_boolean

__all__ = ["RtmpModule", "RtmpService"]

#: Reconnect backoff: first delay, and the longest (seconds).
RECONNECT_DELAY = 1.0
MAX_RECONNECT_DELAY = 30.0
#: Attempts after which a push that was never accepted gives up.
MAX_FAILED_ATTEMPTS = 4
#: Seconds to connect over TCP, and then to get the publish accepted.
CONNECT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 10.0
#: What WCS puts before a stream's name on the RTMP server (its
#: C{rtmp_transponder_stream_name_prefix}): /push/startup answers C{streamName: "rtmp_<name>"}
#: and every official SIP-as-RTMP page prints C{<rtmpUrl>/rtmp_<rtmpStream>} as the URL to play.
STREAM_NAME_PREFIX = "rtmp_"


# --- the service --------------------------------------------------------------------------------


@implementer(IStreamObserver)
class RtmpService:
    """
    The C{"rtmp"} service: REST /push/* and the RTMP side of /call/startup.

    @param streams: the L{IStreamRegistry}.
    @param reactor: for TCP connections.
    @param clock: timers (the reactor unless given).
    @param media_dir: the folder C{sound_on} files are read from.
    @param stream_name_prefix: put before a local name to make the RTMP stream's name.
    @param connect: C{connect(target, protocol)} opens a TCP connection to C{target.host} and
        C{target.port} for C{protocol} and returns a Deferred; by default a
        C{HostnameEndpoint} on C{reactor} with C{connect_timeout}.
    """

    log = Logger()

    def __init__(self, streams, reactor, clock=None, *, media_dir: str = "media",
                 stream_name_prefix: str = STREAM_NAME_PREFIX,
                 reconnect_delay: float = RECONNECT_DELAY,
                 max_reconnect_delay: float = MAX_RECONNECT_DELAY,
                 max_failed_attempts: int = MAX_FAILED_ATTEMPTS,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 publish_timeout: float = PUBLISH_TIMEOUT,
                 connect: Optional[Callable[[RtmpTarget, RtmpPublisher], Deferred]] = None,
                 log: Optional[Logger] = None) -> None:
        self.streams = streams
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.connect = connect if connect is not None else self._tcp_connect
        self.media_dir = os.path.abspath(media_dir)
        self.stream_name_prefix = stream_name_prefix
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.max_failed_attempts = max_failed_attempts
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        if log is not None:
            self.log = log
        self._pushes: dict[str, RtmpPush] = {}
        self._waiting: dict[str, list[RtmpPush]] = {}
        self._observing = False

    # --- the API ----------------------------------------------------------------------------------

    def startup(self, stream_name: str, rtmp_url: str, rtmp_stream_name: Optional[str] = None,
                options: Optional[dict] = None, *, full_url: bool = False,
                wait_for_stream: bool = False,
                on_status: Optional[Callable[[RtmpStreamStatus], None]] = None
                ) -> dict[str, Any]:
        """
        Republish the stream C{stream_name} to C{rtmp_url}.

        @param rtmp_stream_name: the stream name on the RTMP server, as is; None means
            L{rtmp_name}C{(stream_name)}, or with C{full_url} the last segment of C{rtmp_url}.
        @param options: WCS push options: C{{"action": "mute"}} starts muted,
            C{{"action": "sound_on", "soundFile": "x.wav", "loop": false}} starts with a sound.
        @param wait_for_stream: the stream may not be published yet (a SIP call not answered
            yet): the push waits in RTMP_STREAM_WAIT and starts when it appears.
        @param on_status: called with each new L{RtmpStreamStatus} (the call layer puts it in
            the call's C{rtmpStreamStatus}).
        @return: the push (L{RtmpPush.describe}).
        @raise InvalidField: a bad URL or options (400).
        @raise NotFound: no such stream and not C{wait_for_stream}, or no such sound file (404).
        @raise Conflict: that RTMP stream at that URL is already being published (409).
        """
        if not stream_name:
            raise InvalidField("streamName", "a stream name is required")
        if not isinstance(rtmp_url, str) or not rtmp_url:
            raise InvalidField("rtmpUrl", "an rtmp:// URL is required")
        if full_url:
            name = None
        else:
            name = rtmp_stream_name or self.rtmp_name(stream_name)
        try:
            target = parse_rtmp_url(rtmp_url, name)
        except ValueError as error:
            raise InvalidField("rtmpUrl", str(error)) from None
        if any((push.target.tc_url, push.target.stream) == (target.tc_url, target.stream)
               for push in self._pushes.values()):
            raise Conflict(f"{target.tc_url}/{target.stream} is already being published")
        options = dict(options or {})
        action = options.get("action")
        if action is not None and action not in ACTIONS:
            raise InvalidField("options", f"action must be one of {', '.join(ACTIONS)}")
        sound = None
        if action == "sound_on":
            sound = self._sound(options.get("soundFile"), bool(options.get("loop", False)))
        stream = self.streams.get(stream_name)
        if stream is None and not wait_for_stream:
            raise NotFound(f"stream {stream_name} not found")
        push = RtmpPush(self, str(uuid.uuid4()), stream_name, rtmp_url, target, options,
                        on_status)
        push.muted = action == "mute"
        push.sound = sound
        self._pushes[push.media_session_id] = push
        if stream is None:
            self._waiting.setdefault(stream_name, []).append(push)
            self._observe()
        else:
            push.attach(stream)
        return push.describe()

    def rtmp_name(self, name: str) -> str:
        """
        The RTMP server's name for the local (or the caller's) stream name C{name}: with the
        prefix (C{rtmp_transponder_stream_name_prefix}).
        """
        return self.stream_name_prefix + name

    def find(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """
        The pushes matching every filter (REST /push/find: C{streamName} matches the RTMP or the
        local stream name, C{rtmpUrl}, C{mediaSessionId}, C{status}); empty means 404 there.
        """
        found = []
        for push in self._pushes.values():
            description = push.describe()
            matches = True
            for key, value in filters.items():
                if key == "streamName":
                    matches = value in (push.target.stream, push.stream_name)
                elif key == "rtmpUrl":
                    matches = value in (push.rtmp_url, f"{push.target.tc_url}/{push.target.stream}")
                else:
                    matches = description.get(key) == value
                if not matches:
                    break
            if matches:
                found.append(description)
        return found

    def find_all(self) -> list[dict[str, Any]]:
        """
        Every push (REST /push/find_all; empty means 404 there).
        """
        return [push.describe() for push in self._pushes.values()]

    def terminate(self, media_session_id: str) -> dict[str, Any]:
        """
        Stop a push (REST /push/terminate).

        @raise NotFound: no such push (404).
        """
        push = self._get(media_session_id)
        self._remove(push)
        push.end()
        return push.describe()

    def mute(self, media_session_id: str) -> dict[str, Any]:
        """
        Send silence instead of the stream's audio (REST /push/mute).

        @raise NotFound: no such push (404).
        """
        push = self._get(media_session_id)
        push.muted = True
        return push.describe()

    def unmute(self, media_session_id: str) -> dict[str, Any]:
        """
        Send the stream's audio again (REST /push/unmute).

        @raise NotFound: no such push (404).
        """
        push = self._get(media_session_id)
        push.muted = False
        return push.describe()

    def sound_on(self, media_session_id: str, sound_file: str, loop: bool = False
                 ) -> dict[str, Any]:
        """
        Send a sound file (from the media folder) instead of the stream's audio, once or in a
        loop; the stream's audio comes back when it ends (REST /push/sound_on).

        @raise NotFound: no such push, or no such file (404).
        @raise InvalidField: a path outside the media folder, or a file that is not sound (400).
        """
        push = self._get(media_session_id)
        push.sound = self._sound(sound_file, loop)
        return push.describe()

    def sound_off(self, media_session_id: str) -> dict[str, Any]:
        """
        Stop the sound; the stream's audio goes out again (REST /push/sound_off).

        @raise NotFound: no such push (404).
        """
        push = self._get(media_session_id)
        push.sound = None
        return push.describe()

    def get(self, media_session_id: str) -> Optional[RtmpPush]:
        return self._pushes.get(media_session_id)

    def stop(self) -> Deferred:
        """
        End every push; fires once their connections are closed.
        """
        if self._observing:
            self.streams.remove_observer(self)
            self._observing = False
        pushes = list(self._pushes.values())
        self._pushes.clear()
        self._waiting.clear()
        return DeferredList([push.end() for push in pushes], consumeErrors=True)

    # --- IStreamObserver (pushes waiting for their stream) ----------------------------------------

    def stream_published(self, stream) -> None:
        for push in self._waiting.pop(stream.name, []):
            if not push.ended:
                push.attach(stream)
        if not self._waiting:
            self._unobserve()

    def stream_unpublished(self, stream, reason) -> None:
        """
        Nothing: the pushes, sinks of the stream, were told first.
        """

    # --- inside -----------------------------------------------------------------------------------

    def _tcp_connect(self, target: RtmpTarget, protocol: RtmpPublisher) -> Deferred:
        from twisted.internet.endpoints import HostnameEndpoint, connectProtocol

        endpoint = HostnameEndpoint(self.reactor, target.host, target.port,
                                    timeout=self.connect_timeout)
        return connectProtocol(endpoint, protocol)

    def _observe(self) -> None:
        if not self._observing:
            self.streams.add_observer(self)
            self._observing = True

    def _unobserve(self) -> None:
        if self._observing:
            self.streams.remove_observer(self)
            self._observing = False

    def _get(self, media_session_id: str) -> RtmpPush:
        push = self._pushes.get(media_session_id)
        if push is None:
            raise NotFound(f"no push {media_session_id}")
        return push

    def _remove(self, push: RtmpPush) -> None:
        if self._pushes.get(push.media_session_id) is push:
            del self._pushes[push.media_session_id]
        waiting = self._waiting.get(push.stream_name)
        if waiting and push in waiting:
            waiting.remove(push)
            if not waiting:
                del self._waiting[push.stream_name]
            if not self._waiting:
                self._unobserve()

    def _sound(self, sound_file: Any, loop: bool) -> Sound:
        if not isinstance(sound_file, str) or not sound_file:
            raise InvalidField("soundFile", "a sound file name is required")
        base = os.path.realpath(self.media_dir)
        path = os.path.realpath(os.path.join(base, sound_file))
        if os.path.commonpath([base, path]) != base:
            raise InvalidField("soundFile", "the sound file must be in the media folder")
        if not os.path.isfile(path):
            raise NotFound(f"sound file {sound_file} not found")
        try:
            samples = load_sound(path)
        except ValueError as error:
            raise InvalidField("soundFile", str(error)) from None
        return Sound(sound_file, samples, loop)


# --- the module ---------------------------------------------------------------------------------


@implementer(IWcsModule)
class RtmpModule:
    """
    The C{rtmp} module: runs an L{RtmpService}, provides it as C{"rtmp"}, serves REST /push/*
    and pushes the calls /call/startup starts with an C{rtmpUrl}.  Its config keys are declared by
    its drop-in (plugins/wcs_rtmp.py).
    """

    name = "rtmp"

    def __init__(self) -> None:
        self.service: Optional[RtmpService] = None

    def start(self, context) -> None:
        self.service = RtmpService(context.streams, context.reactor, context.clock,
                                   media_dir=context.setting("media_dir"),
                                   stream_name_prefix=context.setting(
                                       "rtmp_transponder_stream_name_prefix"),
                                   log=context.log)
        context.provide("rtmp", self.service)
        _serve(context, self.service)
        context.extend_call_startup(lambda call, body: push_call(self.service, call, body),
                                    fields=("rtmpUrl", "rtmpStream"))

    def stop(self) -> Deferred:
        service, self.service = self.service, None
        if service is None:
            return succeed(None)
        return service.stop()


def push_call(pushes: RtmpService, call, body: dict[str, Any]) -> None:
    """
    /call/startup with C{rtmpUrl}: the call's media becomes a stream that is pushed to RTMP as
    soon as it exists; the push's status shows in the call object (C{rtmpStreamStatus}) and the
    push ends with the call.  The RTMP name is the prefixed C{rtmpStream} (the URL the official
    pages print), else the prefixed name of the call's stream, as /push/startup names it.

    @raise DomainError: the push cannot start (the REST API hangs the call up and answers it).
    """
    rtmp_url = body.get("rtmpUrl")
    if not rtmp_url:
        return
    name = call.extra.get("streamName") or f"call_{call.call_id}"
    call.extra["streamName"] = name

    def status(value) -> None:
        call.extra["rtmpStreamStatus"] = getattr(value, "value", value)

    rtmp_stream = body.get("rtmpStream")
    if rtmp_stream is not None and not isinstance(rtmp_stream, str):
        raise InvalidField("rtmpStream", "expected text")
    push = pushes.startup(name, rtmp_url, pushes.rtmp_name(rtmp_stream) if rtmp_stream else None,
                          wait_for_stream=True, on_status=status)

    def end_push(call) -> None:
        try:
            pushes.terminate(push["mediaSessionId"])
        except DomainError:
            pass  # it already ended with its stream

    call.on_release.append(end_push)


def _serve(context, service: RtmpService) -> None:
    """
    REST /push/* over C{service}.
    """

    def startup(body: dict[str, Any]) -> dict[str, Any]:
        stream = body.get("streamName")
        url = body.get("rtmpUrl")
        if not isinstance(stream, str) or not stream:
            raise InvalidField("streamName", "required, as text")
        if not isinstance(url, str) or not url:
            raise InvalidField("rtmpUrl", "required, as text")
        options = body.get("options")
        if options is not None and not isinstance(options, dict):
            raise InvalidField("options", "expected an object")
        return service.startup(stream, url, body.get("rtmpTransponderStreamName"), options,
                               full_url=read_boolean(body, "rtmpTransponderFullUrl", False))

    def find(body: dict[str, Any]) -> list[dict[str, Any]]:
        found = service.find(body)
        if not found:
            raise NotFound("No push matches")
        return found

    def find_all(body: dict[str, Any]) -> list[dict[str, Any]]:
        found = service.find_all()
        if not found:
            raise NotFound("No pushes")
        return found

    def media_session_id(body: dict[str, Any]) -> str:
        value = body.get("mediaSessionId")
        if not isinstance(value, str) or not value:
            raise InvalidField("mediaSessionId", "required, as text")
        return value

    def sound_on(body: dict[str, Any]) -> dict[str, Any]:
        push = media_session_id(body)
        sound = body.get("soundFile")
        if not isinstance(sound, str) or not sound:
            raise InvalidField("soundFile", "required, as text")
        return service.sound_on(push, sound, read_boolean(body, "loop", False))

    one_push = {"mediaSessionId": ("string", "required")}
    context.route("POST", "/push/startup", startup,
                  summary="Republish a stream to RTMP (AAC + H.264).",
                  fields={"streamName": ("string", "required"),
                          "rtmpUrl": ("string", "required, rtmp://"),
                          "rtmpTransponderFullUrl": ("boolean",
                                                     "the URL already names the RTMP stream"),
                          "rtmpTransponderStreamName": (
                              "string", "as is; default <rtmp_transponder_stream_name_prefix>"
                                        "<streamName>"),
                          "options": ("object", "{action: mute|sound_on, soundFile, loop}")},
                  answers={"200": "The push: mediaSessionId, streamName, rtmpUrl, status, ...",
                           "404": "No such stream or sound file",
                           "409": "Stream + URL already pushed"})
    context.route("POST", "/push/find", find, summary="Find pushes.",
                  fields={"streamName": ("string", ""), "rtmpUrl": ("string", ""),
                          "mediaSessionId": ("string", ""), "status": ("string", "")},
                  answers={"200": "Array of pushes", "404": "No match"})
    context.route(("GET", "POST"), "/push/find_all", find_all, summary="List pushes.",
                  fields={}, answers={"200": "Array of pushes", "404": "None"})
    context.route("POST", "/push/terminate",
                  lambda body: service.terminate(media_session_id(body)),
                  summary="Stop a push.", fields=one_push,
                  answers={"200": "Stopped", "404": "Unknown push"})
    context.route("POST", "/push/mute", lambda body: service.mute(media_session_id(body)),
                  summary="Send silence instead of the stream's audio.", fields=one_push,
                  answers={"200": "Muted", "404": "Unknown"})
    context.route("POST", "/push/unmute", lambda body: service.unmute(media_session_id(body)),
                  summary="Send the stream's audio again.", fields=one_push,
                  answers={"200": "Unmuted", "404": "Unknown"})
    context.route("POST", "/push/sound_on", sound_on,
                  summary="Replace the audio with a WAV file from media_dir.",
                  fields={"mediaSessionId": ("string", "required"),
                          "soundFile": ("string", "required"), "loop": ("boolean", "")},
                  answers={"200": "Playing", "400": "Bad file", "404": "Unknown"})
    context.route("POST", "/push/sound_off",
                  lambda body: service.sound_off(media_session_id(body)),
                  summary="Back to the stream's audio.", fields=one_push,
                  answers={"200": "Stopped", "404": "Unknown"})
