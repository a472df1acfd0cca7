# -*- test-case-name: tests.gateway.test_stream_table -*-
"""
Named streams as WCS clients and the REST API see them: browsers publishing and playing over the
WebSocket, SIP calls captured as streams, and /stream/find, /find_all and /terminate.

The packets themselves live in the media layer: the stream registry (one source, many sinks)
and the media factory's stream sources and sinks, both injected.  This table owns what the WCS
protocol adds on top: which session a mediaSessionId belongs to, the stream statuses and their
info texts (spec 6.1, 9.8-9.10), and when a SIP call's media starts and stops being a stream.

A SIP call becomes a stream when it has a stream name (REST /call/startup C{toStream}, or
C{call_<callId>} for every SIP call with C{sip_record_stream}) as soon as its SIP leg has
negotiated media; the stream ends with the call.  A player is answered with the stream's own
codec whenever its browser offers it, so the media layer relays payloads and transcodes only
for a browser that cannot take them.

A stream can also be injected into a call (REST /call/inject_stream): its audio is played into
the call's SIP leg by a stream sink, and the call's bridge (when it has one) stops forwarding the
browser's audio to that leg meanwhile.  Terminating the injection, the stream ending or the call
ending gives the SIP party the browser's audio back.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Iterable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import (
    ICallObserver,
    IMediaSessionObserver,
    IPausableBridge,
    IStreamObserver,
)
from wcs_twisted.ua.account import read_boolean, read_text
from wcs_twisted.errors import DomainError, InvalidField, NotFound

__all__ = ["BadParameters", "Player", "Publisher", "StreamStatus", "StreamTable"]


class StreamStatus(enum.Enum):
    """
    WCS STREAM_STATUS strings the server sends (spec 6.1; NEW is client-local).
    """

    PENDING = "PENDING"
    PUBLISHING = "PUBLISHING"
    PLAYING = "PLAYING"
    PAUSED = "PAUSED"
    UNPUBLISHED = "UNPUBLISHED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        """
        Whether the SDK releases the stream on this status.
        """
        return self in (StreamStatus.UNPUBLISHED, StreamStatus.STOPPED, StreamStatus.FAILED)


# STREAM_STATUS_INFO texts (spec 6.1).
STREAM_NOT_FOUND = "Stream not found"
STREAM_NAME_IN_USE = "Stream name is already in use"
MEDIA_SESSION_ID_NULL = "MediaSessionId is null"
MEDIA_SESSION_ID_IN_USE = "MediaSessionId is already in use"
STOPPED_BY_PUBLISHER_STOP = "Stopped by publisher stop"
STOPPED_BY_REST_TERMINATE = "Stopped by rest /terminate"
STOPPED_BY_SESSION_DISCONNECT = "Stopped by session disconnect"
FAILED_BY_ERROR = "Failed by error"
FAILED_BY_RTP_ACTIVITY = "Failed by RTP activity"
#: Not a WCS text (WCS has no name check); says what was missing.
STREAM_NAME_NULL = "Stream name is null"
CALL_NOT_FOUND = "Call not found"


class BadParameters(DomainError):
    """
    A /stream/* filter the API does not know or cannot read (spec 11: HTTP 500 "bad params").
    """


class MediaStream:
    """
    One stream a client opened over the WebSocket (publishStream or playStream), identified by
    its client-made mediaSessionId.

    @ivar media: the WebRTC media session towards the browser (None until made).
    """

    log = Logger()
    published = False

    def __init__(self, table: "StreamTable", session, media_session_id: str, name: str,
                 fields: Mapping[str, Any]) -> None:
        self.table = table
        self.session = session
        self.media_session_id = media_session_id
        self.name = name
        self.custom = fields.get("custom") or {}
        self.record = bool(fields.get("record")) if self.published else False
        self.status = StreamStatus.PENDING
        self.info: str | None = None
        self.media = None
        self.created = table.clock.seconds()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.media_session_id} {self.status.value}>"

    def to_wcs(self) -> dict[str, Any]:
        """
        The WCS stream object (spec 5.3): notifyStreamStatusEvent, REST /stream/find.
        """
        media = self.media
        audio = getattr(media, "audio_codec", None)
        video = getattr(media, "video_codec", None)
        wcs = {
            "mediaSessionId": self.media_session_id,
            "name": self.name,
            "published": self.published,
            "hasAudio": audio is not None,
            "hasVideo": video is not None,
            "status": self.status.value,
            "record": self.record,
            "sessionId": self.session.session_id,
            "appKey": self.session.app_key,
            "nodeId": self.table.node_id,
            "mediaProvider": "WebRTC",
            "mediaType": "publish" if self.published else "play",
            "audioCodec": audio,
            "videoCodec": video,
            "createDate": int(self.created * 1000),
            "custom": self.custom,
        }
        if self.info is not None:
            wcs["info"] = self.info
        return wcs

    def report(self, status: StreamStatus, info: str | None = None) -> None:
        """
        Set the status and tell the client (notifyStreamStatusEvent); a final status releases
        the stream's media and forgets it.
        """
        if self.status.final:
            return
        self.status = status
        self.info = info
        self.session.connection.send_message("notifyStreamStatusEvent", [self.to_wcs()])
        self.log.info("stream {name} ({media_session_id}): {status} {info}", name=self.name,
                      media_session_id=self.media_session_id, status=status.value,
                      info=info or "")
        if status.final:
            self._release()

    def _release(self) -> None:
        self.table._forget(self)
        if self.media is not None:
            # Kept (closed), so the stream object still names its codecs.
            self.media.close()

    # IMediaSessionObserver: the browser leg's events.

    def media_connected(self, session) -> None:
        self.log.debug("stream {name} ({media_session_id}): media connected", name=self.name,
                       media_session_id=self.media_session_id)

    def media_dtmf(self, session, digit) -> None:
        pass

    def media_inactive(self, session) -> None:
        pass

    def media_failed(self, session, reason) -> None:
        raise NotImplementedError()


@implementer(IMediaSessionObserver)
class Player(MediaStream):
    """
    A browser playing a named stream (spec 9.8).
    """

    published = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sink = None

    def stop(self, status: StreamStatus, info: str | None = None) -> None:
        """
        Stop playing: detach from the stream, report C{status}, release the media.
        """
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.stop()
        self.report(status, info)

    def source_ended(self, reason: str) -> None:
        """
        The stream ended under the player (the sink is detached already).
        """
        self.sink = None
        status = StreamStatus.FAILED if reason == FAILED_BY_ERROR else StreamStatus.STOPPED
        self.report(status, reason)

    def media_failed(self, session, reason) -> None:
        self.stop(StreamStatus.FAILED, reason or FAILED_BY_ERROR)


@implementer(IMediaSessionObserver)
class Publisher(MediaStream):
    """
    A browser publishing a named stream (spec 9.9).

    @ivar stream: the registry's L{wcs_twisted.interfaces.IStream}, once published.
    """

    published = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stream = None

    def properties(self) -> dict[str, Any]:
        """
        The stream-object fields the registry keeps for this stream (its describe() adds the
        name, the codecs and createDate).
        """
        wcs = self.to_wcs()
        for name in ("name", "audioCodec", "videoCodec", "createDate", "info"):
            wcs.pop(name, None)
        wcs["status"] = StreamStatus.PUBLISHING.value
        return wcs

    def end(self, reason: str) -> None:
        """
        End the published stream (its players stop with C{reason}); the table hears about it
        from the registry and reports the publisher's own final status.
        """
        if self.stream is not None:
            self.stream.end(reason)
        else:
            self.report(StreamStatus.FAILED if reason.startswith("Failed")
                        else StreamStatus.UNPUBLISHED, reason)

    def stream_ended(self, reason: str) -> None:
        """
        The published stream ended, whoever ended it.
        """
        self.stream = None
        status = StreamStatus.FAILED if reason.startswith("Failed") else StreamStatus.UNPUBLISHED
        self.report(status, reason)

    def media_inactive(self, session) -> None:
        self.end(FAILED_BY_RTP_ACTIVITY)

    def media_failed(self, session, reason) -> None:
        self.end(reason or FAILED_BY_ERROR)


def _required_text(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "required text")
    return value


class _Injection:
    """
    A stream played into a call's SIP leg, and the bridge paused for it (its audio into that
    leg), if the call has one.
    """

    def __init__(self, media, stream_name: str) -> None:
        self.media = media
        self.stream_name = stream_name
        self.sink = None
        self.bridge = None

    def bridge_changed(self, bridge) -> None:
        """
        Pause C{bridge} (the call's current one, or None) into the SIP leg, once.
        """
        if bridge is self.bridge:
            return
        self.restore()
        pausable = IPausableBridge(bridge, None)
        if pausable is not None:
            pausable.pause_audio_to(self.media, True)
            self.bridge = bridge

    def restore(self) -> None:
        """
        Let the paused bridge's audio into the SIP leg again.
        """
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            try:
                IPausableBridge(bridge).pause_audio_to(self.media, False)
            except ValueError:
                pass  # the bridge no longer joins this leg


def _safely(method: Callable) -> Callable:
    """
    An observer method whose exceptions are logged and go no further (the call layer and the
    registry call observers inline).
    """

    def guarded(self, *args):
        try:
            method(self, *args)
        except Exception:
            self.log.failure("stream table: {method} failed", method=method.__name__)

    guarded.__name__ = method.__name__
    guarded.__doc__ = method.__doc__
    return guarded


@implementer(ICallObserver, IStreamObserver)
class StreamTable:
    """
    Streams by mediaSessionId, SIP call streams by callId; the stream API of both front-ends.

    @param registry: the server's L{wcs_twisted.interfaces.IStreamRegistry}.
    @param media: the media factory (L{wcs_twisted.interfaces.IMediaFactory} and
        L{wcs_twisted.interfaces.IMediaStreams}).
    @param sessions: the L{wcs_twisted.gateway.sessions.SessionTable}; a closed session's streams
        stop.
    @param calls: the L{wcs_twisted.gateway.call_table.CallTable} whose SIP calls may become streams,
        or None.
    @param clock: an IReactorTime (createDate).
    @param record_sip_calls: WCS C{sip_record_stream}: every SIP call becomes a stream (named
        C{call_<callId>} unless C{toStream} named it).
    """

    log = Logger()

    def __init__(self, registry, media, sessions, calls=None, *, clock,
                 record_sip_calls: bool = False) -> None:
        self.registry = registry
        self.media = media
        self.sessions = sessions
        self.calls = calls
        self.clock = clock
        self.record_sip_calls = record_sip_calls
        self.node_id = sessions.node_id
        self._streams: dict[str, MediaStream] = {}
        #: registry stream -> the Publisher or the callId that feeds it.
        self._owners: dict[Any, Any] = {}
        #: callId -> the registry stream of a SIP call.
        self._call_streams: dict[str, Any] = {}
        #: Calls whose stream could not be published or was terminated: never republished.
        self._call_streams_done: set[str] = set()
        #: callId -> the stream injected into the call's SIP leg.
        self._injections: dict[str, _Injection] = {}
        sessions.observers.append(self)
        if calls is not None:
            calls.observers.append(self)
        registry.add_observer(self)

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self):
        return iter(list(self._streams.values()))

    def get(self, media_session_id: str) -> MediaStream:
        """
        @raise NotFound: no WebSocket stream has this mediaSessionId.
        """
        try:
            return self._streams[media_session_id]
        except KeyError:
            raise NotFound(STREAM_NOT_FOUND) from None

    # --- the WebSocket API ---------------------------------------------------------------------

    def _identify(self, fields: Mapping[str, Any]) -> tuple[str, str]:
        media_session_id = read_text(fields, "mediaSessionId")
        if not media_session_id:
            raise DomainError(MEDIA_SESSION_ID_NULL)
        if media_session_id in self._streams:
            raise DomainError(MEDIA_SESSION_ID_IN_USE)
        return media_session_id, read_text(fields, "name") or ""

    def _add(self, stream: MediaStream) -> None:
        self._streams[stream.media_session_id] = stream

    def _forget(self, stream: MediaStream) -> None:
        if self._streams.get(stream.media_session_id) is stream:
            del self._streams[stream.media_session_id]

    def _answer(self, stream: MediaStream, answer: str) -> None:
        stream.session.connection.send_message(
            "setRemoteSDP", [stream.media_session_id, answer, True])

    def play(self, session, fields: Mapping[str, Any]) -> Player | None:
        """
        C{playStream}: answer the browser's recvonly offer with the stream's codecs, attach it
        as a sink, PLAYING; FAILED "Stream not found" for a name nobody publishes.

        @raise DomainError: no mediaSessionId, or one in use (a C{fail} message: the SDK has no
            stream to fail).
        """
        media_session_id, name = self._identify(fields)
        player = Player(self, session, media_session_id, name, fields)
        self._add(player)
        stream = self.registry.get(name) if name else None
        if stream is None:
            player.report(StreamStatus.FAILED, STREAM_NOT_FOUND)
            return player
        sdp = read_text(fields, "sdp")
        try:
            if not sdp:
                raise MediaError(FAILED_BY_ERROR)
            player.media = media = self.media.create_session("webrtc")
            media.observer = player
            _, offered_video = media.offered_codecs(sdp)
            source = stream.source
            audio = [source.audio_codec] if source.audio_codec else []
            video = ([source.video_codec]
                     if source.video_codec and source.video_codec in offered_video else None)
            answer = media.create_answer(sdp, audio, video, "sendonly")
            sink = self.media.stream_sink(media, player.source_ended)
            sink.play(stream)
        except MediaError as error:
            player.report(StreamStatus.FAILED, error.info)
            return player
        player.sink = sink
        self._answer(player, answer)
        player.report(StreamStatus.PLAYING)
        return player

    def publish(self, session, fields: Mapping[str, Any]) -> Publisher | None:
        """
        C{publishStream}: answer the browser's sendonly offer, publish its media under the
        name, PUBLISHING; FAILED "Stream name is already in use" for a name taken.

        @raise DomainError: no mediaSessionId, or one in use.
        """
        media_session_id, name = self._identify(fields)
        publisher = Publisher(self, session, media_session_id, name, fields)
        self._add(publisher)
        if not name:
            publisher.report(StreamStatus.FAILED, STREAM_NAME_NULL)
            return publisher
        if self.registry.get(name) is not None:
            publisher.report(StreamStatus.FAILED, STREAM_NAME_IN_USE)
            return publisher
        sdp = read_text(fields, "sdp")
        try:
            if not sdp:
                raise MediaError(FAILED_BY_ERROR)
            publisher.media = media = self.media.create_session("webrtc")
            media.observer = publisher
            answer = media.create_answer(sdp, [], [], "recvonly")
            source = self.media.stream_source(media)
            stream = self.registry.publish(name, source, publisher.properties())
        except MediaError as error:
            publisher.report(StreamStatus.FAILED, error.info)
            return publisher
        publisher.stream = stream
        self._owners[stream] = publisher
        source.start(stream)
        self._answer(publisher, answer)
        publisher.report(StreamStatus.PUBLISHING)
        return publisher

    def _owned(self, session, fields: Mapping[str, Any]) -> MediaStream | None:
        media_session_id = read_text(fields, "mediaSessionId")
        if not media_session_id:
            raise DomainError(MEDIA_SESSION_ID_NULL)
        stream = self._streams.get(media_session_id)
        if stream is None or stream.session is not session:
            # Already gone (it ended while the client was stopping it): say so, final.
            session.connection.send_message("notifyStreamStatusEvent", [{
                "mediaSessionId": media_session_id, "name": read_text(fields, "name") or "",
                "published": fields.get("published") in (True, "true"),
                "status": StreamStatus.FAILED.value, "info": STREAM_NOT_FOUND}])
            return None
        return stream

    def stop(self, session, fields: Mapping[str, Any]) -> None:
        """
        C{stopStream} (or C{unPublishStream}): a player STOPPED, a publisher UNPUBLISHED and
        its players STOPPED "Stopped by publisher stop".
        """
        stream = self._owned(session, fields)
        if isinstance(stream, Player):
            stream.stop(StreamStatus.STOPPED)
        elif isinstance(stream, Publisher):
            stream.end(STOPPED_BY_PUBLISHER_STOP)

    unpublish = stop

    # --- the REST API --------------------------------------------------------------------------

    #: Stream-object fields /stream/find and /stream/terminate filter on.
    FILTER_FIELDS = frozenset({"mediaSessionId", "name", "published", "status", "sessionId",
                               "appKey", "mediaType", "mediaProvider", "audioCodec",
                               "videoCodec"})

    def _matcher(self, filters: Mapping[str, Any], extra: Iterable[str]):
        allowed = self.FILTER_FIELDS | set(extra)
        wanted: dict[str, Any] = {}
        ids = None
        for name, value in filters.items():
            if name not in allowed:
                raise BadParameters(f"Bad parameter {name!r}: expected one of "
                                    f"{', '.join(sorted(allowed))}")
            if name == "display":
                if not isinstance(value, list):
                    raise BadParameters("Bad parameter 'display': expected a list")
            elif name == "mediaSessionIds":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise BadParameters("Bad parameter 'mediaSessionIds': expected a list of "
                                        "text")
                ids = set(value)
            elif name == "published":
                try:
                    wanted[name] = read_boolean(filters, name, False)
                except InvalidField as error:
                    raise BadParameters(f"Bad parameter {error.info}") from None
            else:
                try:
                    wanted[name] = read_text(filters, name)
                except InvalidField as error:
                    raise BadParameters(f"Bad parameter {error.info}") from None

        def match(description: Mapping[str, Any]) -> bool:
            if ids is not None and description.get("mediaSessionId") not in ids:
                return False
            return all(description.get(name) == value for name, value in wanted.items())

        return match

    def _published(self) -> list[tuple[Any, dict[str, Any]]]:
        found = []
        for stream in self.registry.find({}):
            description = stream.describe()
            # Streams published by modules may say less about themselves.
            description.setdefault("published", True)
            description.setdefault("status", StreamStatus.PUBLISHING.value)
            description.setdefault("mediaType", "publish")
            found.append((stream, description))
        return found

    def _players(self) -> list[Player]:
        return [s for s in self._streams.values() if isinstance(s, Player) and s.sink]

    def find(self, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """
        REST /stream/find (and find_all with no filters): the stream objects of published
        streams and of players matching every filter field.

        @raise BadParameters: an unknown or unreadable filter (HTTP 500).
        @raise NotFound: nothing matches (HTTP 404).
        """
        match = self._matcher(filters, ("display",))
        found = [d for _, d in self._published() if match(d)]
        found += [d for d in (p.to_wcs() for p in self._players()) if match(d)]
        if not found:
            raise NotFound("No stream matches")
        return found

    def terminate(self, filters: Mapping[str, Any]) -> int:
        """
        REST /stream/terminate: stop the matching players (STOPPED) and end the matching
        published streams (their publishers UNPUBLISHED, their players STOPPED), all with
        "Stopped by rest /terminate"; C{{}} matches every stream.

        @return: how many streams were stopped.
        @raise BadParameters: an unknown or unreadable filter (HTTP 500).
        @raise NotFound: nothing matches (HTTP 404).
        """
        match = self._matcher(filters, ("mediaSessionIds",))
        published = [stream for stream, d in self._published() if match(d)]
        players = [p for p in self._players() if match(p.to_wcs())]
        if not published and not players:
            raise NotFound("No stream matches")
        for player in players:
            player.stop(StreamStatus.STOPPED, STOPPED_BY_REST_TERMINATE)
        for stream in published:
            stream.end(STOPPED_BY_REST_TERMINATE)
        return len(published) + len(players)

    # --- SIP calls as streams (ICallObserver) ---------------------------------------------------

    def call_stream_name(self, call) -> str | None:
        """
        The stream a call's SIP media is published as: REST C{toStream}, else C{call_<callId>}
        with C{sip_record_stream}, else None.
        """
        name = call.extra.get("streamName")
        if not name and self.record_sip_calls:
            name = f"call_{call.call_id}"
        return name or None

    def call_stream(self, call_id: str):
        """
        The registry stream a call's SIP media feeds, or None.
        """
        return self._call_streams.get(call_id)

    @_safely
    def call_status_changed(self, call, info) -> None:
        call_id = call.call_id
        injection = self._injections.get(call_id)
        if injection is not None:
            if call.status.released:
                self._end_injection(call_id)
            else:
                injection.bridge_changed(call.bridge)
        if call.status.released:
            self._call_streams_done.discard(call_id)
            stream = self._call_streams.pop(call_id, None)
            if stream is not None:
                stream.end(STOPPED_BY_PUBLISHER_STOP)
            return
        if call_id in self._call_streams or call_id in self._call_streams_done:
            return
        name = self.call_stream_name(call)
        media = call.rtp
        if name is None or media is None or (media.audio_codec is None
                                             and media.video_codec is None):
            return  # no stream wanted, or no media negotiated yet
        source = self.media.stream_source(media)
        session = call.session
        properties = {
            "mediaSessionId": call_id,
            "callId": call_id,
            "published": True,
            "hasAudio": media.audio_codec is not None,
            "hasVideo": media.video_codec is not None,
            "status": StreamStatus.PUBLISHING.value,
            "record": self.record_sip_calls,
            "sessionId": session.session_id if session is not None else None,
            "appKey": call.app_key,
            "nodeId": self.node_id,
            "mediaProvider": "SIP",
            "mediaType": "publish",
        }
        try:
            stream = self.registry.publish(name, source, properties)
        except MediaError as error:
            self._call_streams_done.add(call_id)
            self.log.warn("call {call_id}: its media cannot be published as {name}: {info}",
                          call_id=call_id, name=name, info=error.info)
            return
        self._call_streams[call_id] = stream
        self._owners[stream] = call_id
        call.extra.setdefault("streamName", name)
        source.start(stream)

    def call_transfer_changed(self, call, status) -> None:
        pass

    # --- streams injected into calls (REST /call/inject_stream) ---------------------------------

    def inject(self, call_id, stream_name) -> None:
        """
        REST /call/inject_stream/startup: the SIP party of call C{call_id} hears the audio of
        stream C{stream_name} instead of the browser's (relayed when the stream's codec is the
        leg's, transcoded otherwise).  A call that already has a stream injected switches to
        the new one.

        @raise InvalidField: a name is missing or not text (HTTP 400).
        @raise NotFound: no such call (or it ended), or no such stream (HTTP 404).
        @raise DomainError: the call's SIP leg has no audio yet (HTTP 500).
        """
        call_id = _required_text(call_id, "callId")
        stream_name = _required_text(stream_name, "streamName")
        call = self._live_call(call_id)
        stream = self.registry.get(stream_name)
        if stream is None:
            raise NotFound(STREAM_NOT_FOUND)
        media = call.rtp
        if media is None or media.audio_codec is None:
            raise DomainError(f"Call {call_id} has no SIP audio to inject into")
        self._end_injection(call_id)
        injection = _Injection(media, stream_name)

        def ended(reason: str) -> None:
            if self._injections.get(call_id) is injection:
                self._end_injection(call_id)

        injection.sink = sink = self.media.stream_sink(media, ended)
        injection.bridge_changed(call.bridge)
        try:
            sink.play(stream)
        except Exception:
            injection.restore()
            raise
        self._injections[call_id] = injection
        self.log.info("call {call_id}: stream {name} injected into the SIP leg",
                      call_id=call_id, name=stream_name)

    def stop_injection(self, call_id) -> None:
        """
        REST /call/inject_stream/terminate: the SIP party hears the browser again.

        @raise NotFound: no such call, or no stream injected into it (HTTP 404).
        """
        call_id = _required_text(call_id, "callId")
        self._live_call(call_id)
        if not self._end_injection(call_id):
            raise NotFound(f"No stream is injected into call {call_id}")

    def injected_stream(self, call_id: str) -> str | None:
        """
        The name of the stream injected into call C{call_id}, or None.
        """
        injection = self._injections.get(call_id)
        return None if injection is None else injection.stream_name

    def _live_call(self, call_id: str):
        call = None
        if self.calls is not None:
            try:
                call = self.calls.get(call_id)
            except NotFound:
                call = None
        if call is None or call.status.released:
            raise NotFound(CALL_NOT_FOUND)
        return call

    def _end_injection(self, call_id: str) -> bool:
        injection = self._injections.pop(call_id, None)
        if injection is None:
            return False
        injection.sink.stop()
        injection.restore()
        self.log.info("call {call_id}: stream {name} no longer injected",
                      call_id=call_id, name=injection.stream_name)
        return True

    def call_dtmf_received(self, call, digit, method) -> None:
        pass

    # --- registry events (IStreamObserver) ------------------------------------------------------

    def stream_published(self, stream) -> None:
        pass

    @_safely
    def stream_unpublished(self, stream, reason) -> None:
        owner = self._owners.pop(stream, None)
        if isinstance(owner, Publisher):
            owner.stream_ended(reason)
        elif isinstance(owner, str) and self._call_streams.get(owner) is stream:
            # Ended from outside (REST /stream/terminate): the call goes on, unpublished.
            del self._call_streams[owner]
            self._call_streams_done.add(owner)

    # --- sessions -------------------------------------------------------------------------------

    def session_opened(self, session) -> None:
        pass

    @_safely
    def session_closed(self, session) -> None:
        """
        A closed session's players stop and its published streams end.
        """
        for stream in list(self._streams.values()):
            if stream.session is not session:
                continue
            if isinstance(stream, Player):
                stream.stop(StreamStatus.STOPPED, STOPPED_BY_SESSION_DISCONNECT)
            else:
                stream.end(STOPPED_BY_PUBLISHER_STOP)
