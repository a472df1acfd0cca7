# -*- test-case-name: tests.gateway.test_stream_table -*-
"""
The WCS stream objects of browsers: a player or a publisher opened over the WebSocket, its
status and info texts (spec 6.1, 9.8-9.10), and its media session towards the browser.

The table that owns them is L{wcs_twisted.gateway.stream_table}; what the client hears is
told through its L{wcs_twisted.interfaces.IClientConnection}.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaSessionObserver


class StreamStatus(enum.Enum):
    """
    WCS STREAM_STATUS values the server reports (spec 6.1; NEW is client-local).
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


def safely(method: Callable) -> Callable:
    """
    An observer method whose exceptions are logged and go no further (the call layer and the
    stream registry call their observers inline).
    """

    def guarded(self, *args):
        try:
            method(self, *args)
        except Exception:
            self.log.failure("{kind}: {method} failed", kind=type(self).__name__,
                             method=method.__name__)

    guarded.__name__ = method.__name__
    guarded.__doc__ = method.__doc__
    return guarded


class MediaStream:
    """
    One stream a client opened over the WebSocket (publishStream or playStream), identified by
    its client-made mediaSessionId.

    @ivar media: the WebRTC media session towards the browser (None until made).
    """

    log = Logger()
    published = False
    #: The status a stream reaches once its media is negotiated.
    running = StreamStatus.PENDING

    def __init__(self, table, session, media_session_id: str, name: str,
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
        The WCS stream object (spec 5.3): stream status events, REST /stream/find.
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

    def refusal(self) -> str | None:
        """
        Why the stream cannot start (a FAILED info text), or None.
        """
        return None

    def negotiate(self, media, offer: str) -> str:
        """
        Answer the browser's C{offer} on C{media} and join the named stream; return the answer.

        @raise MediaError: it cannot be done.
        """
        raise NotImplementedError()

    def report(self, status: StreamStatus, info: str | None = None) -> None:
        """
        Set the status and tell the client; a final status releases the stream's media and
        forgets it.
        """
        if self.status.final:
            return
        self.status = status
        self.info = info
        self.session.connection.stream_status(self)
        self.table.stream_status_changed(self)
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
    running = StreamStatus.PLAYING

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sink = None

    def refusal(self) -> str | None:
        if not self.name or self.table.registry.resolve(self.name) is None:
            return STREAM_NOT_FOUND
        return None

    def negotiate(self, media, offer: str) -> str:
        """
        Answer sendonly with the stream's own codecs (video only when offered), so the sink
        relays; attach as the stream's sink.
        """
        stream = self.table.registry.get(self.name)
        _, offered_video = media.offered_codecs(offer)
        source = stream.source
        audio = [source.audio_codec] if source.audio_codec else []
        video = ([source.video_codec]
                 if source.video_codec and source.video_codec in offered_video else None)
        answer = media.create_answer(offer, audio, video, "sendonly")
        sink = self.table.media.stream_sink(media, self.source_ended)
        sink.play(stream)
        self.sink = sink
        return answer

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
    running = StreamStatus.PUBLISHING

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stream = None
        self._record_name: str | None = None

    @property
    def record_name(self) -> str | None:
        """
        The file a recording module writes this stream to (the C{recordName} property it sets
        on the published stream), kept once the stream has ended.
        """
        if self.stream is not None:
            self._record_name = self.stream.properties.get("recordName") or self._record_name
        return self._record_name

    def to_wcs(self) -> dict[str, Any]:
        """
        The stream object, with C{recordName} once a recording of it started (spec 5.3: the
        SDK's C{getRecordInfo()} reads it from UNPUBLISHED).
        """
        wcs = super().to_wcs()
        if self.record_name is not None:
            wcs["recordName"] = self.record_name
        return wcs

    def refusal(self) -> str | None:
        if not self.name:
            return STREAM_NAME_NULL
        if self.table.registry.taken(self.name):
            return STREAM_NAME_IN_USE
        return None

    def negotiate(self, media, offer: str) -> str:
        """
        Answer recvonly, publish the browser's media under the name.
        """
        answer = media.create_answer(offer, [], [], "recvonly")
        source = self.table.media.stream_source(media)
        self.stream = stream = self.table.registry.publish(self.name, source, self.properties())
        source.start(stream)
        return answer

    def properties(self) -> dict[str, Any]:
        """
        The stream-object fields the registry keeps for this stream (its describe() adds the
        name, the codecs and createDate).
        """
        wcs = self.to_wcs()
        for name in ("name", "audioCodec", "videoCodec", "createDate", "info", "recordName"):
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
        self._record_name = self.record_name  # kept: the stream is let go
        self.stream = None
        status = StreamStatus.FAILED if reason.startswith("Failed") else StreamStatus.UNPUBLISHED
        self.report(status, reason)

    def media_inactive(self, session) -> None:
        self.end(FAILED_BY_RTP_ACTIVITY)

    def media_failed(self, session, reason) -> None:
        self.end(reason or FAILED_BY_ERROR)


class MissingStream:
    """
    A stream the client names that is already gone (it ended while the client was stopping it):
    reported FAILED "Stream not found", final.
    """

    def __init__(self, media_session_id: str, name: str, published: bool) -> None:
        self.media_session_id = media_session_id
        self.name = name
        self.published = published

    def to_wcs(self) -> dict[str, Any]:
        return {"mediaSessionId": self.media_session_id, "name": self.name,
                "published": self.published, "status": StreamStatus.FAILED.value,
                "info": STREAM_NOT_FOUND}


def start(stream: MediaStream, offer: str | None) -> None:
    """
    The one path of playStream and publishStream: refuse, or negotiate the browser's offer and
    answer it (setRemoteSDP), then report the running status; any failure is FAILED.
    """
    refusal = stream.refusal()
    if refusal is not None:
        stream.report(StreamStatus.FAILED, refusal)
        return
    try:
        if not offer:
            raise MediaError(FAILED_BY_ERROR)
        peer = getattr(stream.session, "address", None) or None
        stream.media = media = stream.table.media.create_session("webrtc", peer)
        media.observer = stream
        answer = stream.negotiate(media, offer)
    except MediaError as error:
        stream.report(StreamStatus.FAILED, error.info)
        return
    stream.session.connection.remote_sdp(stream.media_session_id, answer, True)
    stream.report(stream.running)
