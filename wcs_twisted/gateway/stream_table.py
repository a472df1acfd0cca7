# -*- test-case-name: tests.gateway.test_stream_table -*-
"""
Named streams as WCS clients and the REST API see them: browsers publishing and playing over the
WebSocket, and /stream/find, /find_all and /terminate; SIP calls as streams
(L{wcs_twisted.gateway.call_streams}) and streams injected into calls
(L{wcs_twisted.gateway.injection}) are its two companions, built here.

The packets themselves live in the media layer: the stream registry (one source, many sinks)
and the media factory's stream sources and sinks, both injected.  This table owns what the WCS
protocol adds on top: which session a mediaSessionId belongs to and the stream statuses
(L{wcs_twisted.gateway.streams}).  A player is answered with the stream's own codec whenever its
browser offers it, so the media layer relays payloads and transcodes only for a browser that
cannot take them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import DomainError, InvalidField, NotFound
from wcs_twisted.gateway.call_streams import CallStreams
from wcs_twisted.gateway.fields import read_boolean, read_text
from wcs_twisted.gateway.injection import Injections
from wcs_twisted.gateway.streams import (
    MEDIA_SESSION_ID_IN_USE,
    MEDIA_SESSION_ID_NULL,
    STOPPED_BY_PUBLISHER_STOP,
    STOPPED_BY_REST_TERMINATE,
    STOPPED_BY_SESSION_DISCONNECT,
    STREAM_NOT_FOUND,
    MediaStream,
    MissingStream,
    Player,
    Publisher,
    StreamStatus,
    safely,
    start,
)
from wcs_twisted.interfaces import IStreamEventRecipient, IStreamObserver

__all__ = ["BadParameters", "StreamTable"]


class BadParameters(DomainError):
    """
    A /stream/* filter the API does not know or cannot read (spec 11: HTTP 500 "bad params").
    """


@implementer(IStreamObserver)
class StreamTable:
    """
    Browser streams by mediaSessionId; the stream API of both front-ends.

    @param registry: the server's L{wcs_twisted.interfaces.IStreamRegistry}.
    @param media: the media factory (L{wcs_twisted.interfaces.IMediaFactory} and
        L{wcs_twisted.interfaces.IMediaStreams}).
    @param sessions: the L{wcs_twisted.gateway.sessions.SessionTable}; a closed session's streams
        stop.
    @param calls: the L{wcs_twisted.gateway.call_table.CallTable} whose SIP calls may become
        streams and take injected ones, or None.
    @param clock: an IReactorTime (createDate).
    @param record_sip_calls: WCS C{sip_record_stream} (L{CallStreams}).
    @ivar call_streams: the L{CallStreams} of C{calls}.
    @ivar injections: the L{Injections} into C{calls}.
    """

    log = Logger()

    def __init__(self, registry, media, sessions, calls=None, *, clock,
                 record_sip_calls: bool = False) -> None:
        self.registry = registry
        self.media = media
        self.sessions = sessions
        self.clock = clock
        self.node_id = sessions.node_id
        self._streams: dict[str, MediaStream] = {}
        #: Told C{stream_status_changed(stream)} on every status a client's stream reaches
        #: (the StreamStatusEvent hook).
        self.observers: list = []
        self.injections = Injections(registry, media, calls)
        self.call_streams = CallStreams(registry, media, self.node_id, record_sip_calls)
        sessions.observers.append(self)
        if calls is not None:
            calls.observers.append(self.injections)
            calls.observers.append(self.call_streams)
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

    def _open(self, kind: type[MediaStream], session, fields: Mapping[str, Any]) -> MediaStream:
        media_session_id = read_text(fields, "mediaSessionId")
        if not media_session_id:
            raise DomainError(MEDIA_SESSION_ID_NULL)
        if media_session_id in self._streams:
            raise DomainError(MEDIA_SESSION_ID_IN_USE)
        stream = kind(self, session, media_session_id, read_text(fields, "name") or "", fields)
        self._streams[media_session_id] = stream
        start(stream, read_text(fields, "sdp"))
        return stream

    def stream_status_changed(self, stream: MediaStream) -> None:
        for observer in list(self.observers):
            try:
                observer.stream_status_changed(stream)
            except Exception:
                self.log.failure("stream observer {observer!r} failed", observer=observer)

    def _forget(self, stream: MediaStream) -> None:
        if self._streams.get(stream.media_session_id) is stream:
            del self._streams[stream.media_session_id]

    def play(self, session, fields: Mapping[str, Any]) -> Player:
        """
        C{playStream}: answer the browser's recvonly offer with the stream's codecs, attach it
        as a sink, PLAYING; FAILED "Stream not found" for a name nobody publishes.

        @raise DomainError: no mediaSessionId, or one in use (a C{fail} message: the SDK has no
            stream to fail).
        """
        return self._open(Player, session, fields)

    def publish(self, session, fields: Mapping[str, Any]) -> Publisher:
        """
        C{publishStream}: answer the browser's sendonly offer, publish its media under the
        name, PUBLISHING; FAILED "Stream name is already in use" for a name taken.

        @raise DomainError: no mediaSessionId, or one in use.
        """
        return self._open(Publisher, session, fields)

    def _owned(self, session, fields: Mapping[str, Any]) -> MediaStream | None:
        media_session_id = read_text(fields, "mediaSessionId")
        if not media_session_id:
            raise DomainError(MEDIA_SESSION_ID_NULL)
        stream = self._streams.get(media_session_id)
        if stream is None or stream.session is not session:
            # Already gone (it ended while the client was stopping it): say so, final.
            session.connection.stream_status(MissingStream(
                media_session_id, read_text(fields, "name") or "",
                fields.get("published") in (True, "true")))
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

    def available(self, session, fields: Mapping[str, Any]) -> tuple[str, bool, str | None]:
        """
        C{availableStream}: whether a stream of that name is published now.

        @return: (the asking stream's mediaSessionId, available, the reason when not).
        @raise DomainError: no mediaSessionId.
        """
        media_session_id = read_text(fields, "mediaSessionId")
        if not media_session_id:
            raise DomainError(MEDIA_SESSION_ID_NULL)
        name = read_text(fields, "name") or ""
        if name and self.registry.get(name) is not None:
            return media_session_id, True, None
        return media_session_id, False, STREAM_NOT_FOUND

    def send_event(self, session, fields: Mapping[str, Any]) -> int:
        """
        C{sendStreamEvent}: a publisher's event (mute states, C{stream.sendData()} payloads)
        relayed to every WebSocket player of its stream, each under its own mediaSessionId.

        @return: how many players were told.
        @raise DomainError: no mediaSessionId, no type, or not a stream this session publishes.
        """
        publisher = self._streams.get(read_text(fields, "mediaSessionId") or "")
        if not isinstance(publisher, Publisher) or publisher.session is not session \
                or publisher.stream is None:
            raise DomainError(STREAM_NOT_FOUND)
        event_type = read_text(fields, "type")
        if not event_type:
            raise DomainError("Stream event type is null")
        payload = fields.get("payload")
        told = 0
        for player in self._players():
            connection = player.session.connection
            if player.name == publisher.name and IStreamEventRecipient.providedBy(connection):
                connection.stream_event(player.media_session_id, event_type, payload)
                told += 1
        return told

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

    # --- streams injected into calls (REST /call/inject_stream) ---------------------------------

    def inject(self, call_id, stream_name) -> None:
        """
        REST /call/inject_stream/startup: see L{Injections.inject}.
        """
        self.injections.inject(call_id, stream_name)

    def stop_injection(self, call_id) -> None:
        """
        REST /call/inject_stream/terminate: see L{Injections.stop}.
        """
        self.injections.stop(call_id)

    def injected_stream(self, call_id: str) -> str | None:
        """
        The name of the stream injected into call C{call_id}, or None.
        """
        return self.injections.stream_name(call_id)

    # --- registry events (IStreamObserver) ------------------------------------------------------

    def stream_published(self, stream) -> None:
        pass

    @safely
    def stream_unpublished(self, stream, reason) -> None:
        for owner in list(self._streams.values()):
            if isinstance(owner, Publisher) and owner.stream is stream:
                owner.stream_ended(reason)

    # --- sessions -------------------------------------------------------------------------------

    def session_opened(self, session) -> None:
        pass

    @safely
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
