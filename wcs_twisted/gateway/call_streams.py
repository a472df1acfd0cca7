# -*- test-case-name: tests.gateway.test_stream_table -*-
"""
SIP calls as named streams.

A SIP call becomes a stream when it has a stream name (REST /call/startup C{toStream}, a module
asking for one, or C{call_<callId>} for every SIP call with C{sip_record_stream}) as soon as its
SIP leg has negotiated media; the stream ends with the call.  Players of it are browsers like any
other (L{wcs_twisted.gateway.stream_table}).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.gateway.streams import STOPPED_BY_PUBLISHER_STOP, StreamStatus, safely
from wcs_twisted.interfaces import ICallObserver, IStreamObserver


@implementer(ICallObserver, IStreamObserver)
class CallStreams:
    """
    The registry streams that SIP calls' media feed, by callId.

    @param registry: the server's L{wcs_twisted.interfaces.IStreamRegistry}.
    @param media: the media factory (its L{wcs_twisted.interfaces.IMediaStreams} part).
    @param record_sip_calls: WCS C{sip_record_stream}: every SIP call becomes a stream (named
        C{call_<callId>} unless it has a name).
    """

    log = Logger()

    def __init__(self, registry, media, node_id: str, record_sip_calls: bool = False) -> None:
        self.registry = registry
        self.media = media
        self.node_id = node_id
        self.record_sip_calls = record_sip_calls
        #: callId -> the registry stream of a SIP call.
        self._streams: dict[str, Any] = {}
        #: registry stream -> the callId that feeds it.
        self._owners: dict[Any, str] = {}
        #: Calls whose stream could not be published or was terminated: never republished.
        self._done: set[str] = set()
        registry.add_observer(self)

    def stream_name(self, call) -> str | None:
        """
        The stream a call's SIP media is published as: the call's own C{stream_name}, else
        C{call_<callId>} with C{sip_record_stream}, else None.
        """
        # rest/api.py still names an RTMP-pushed call's stream in call.extra; it moves to
        # call.stream_name with the RTMP module (then this second read goes).
        name = call.stream_name or call.extra.get("streamName")
        if not name and self.record_sip_calls:
            name = f"call_{call.call_id}"
        return name or None

    def get(self, call_id: str):
        """
        The registry stream a call's SIP media feeds, or None.
        """
        return self._streams.get(call_id)

    @safely
    def call_status_changed(self, call, info) -> None:
        call_id = call.call_id
        if call.status.released:
            self._done.discard(call_id)
            stream = self._streams.pop(call_id, None)
            if stream is not None:
                stream.end(STOPPED_BY_PUBLISHER_STOP)
            return
        if call_id in self._streams or call_id in self._done:
            return
        name = self.stream_name(call)
        media = call.rtp
        if name is None or media is None or (media.audio_codec is None
                                             and media.video_codec is None):
            return  # no stream wanted, or no media negotiated yet
        self._publish(call, name, media)

    def _publish(self, call, name: str, media) -> None:
        call_id = call.call_id
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
            self._done.add(call_id)
            self.log.warn("call {call_id}: its media cannot be published as {name}: {info}",
                          call_id=call_id, name=name, info=error.info)
            return
        self._streams[call_id] = stream
        self._owners[stream] = call_id
        if not call.stream_name:
            call.stream_name = name
        source.start(stream)

    def call_transfer_changed(self, call, status) -> None:
        pass

    def call_dtmf_received(self, call, digit, method) -> None:
        pass

    def stream_published(self, stream) -> None:
        pass

    @safely
    def stream_unpublished(self, stream, reason) -> None:
        call_id = self._owners.pop(stream, None)
        if call_id is not None and self._streams.get(call_id) is stream:
            # Ended from outside (REST /stream/terminate): the call goes on, unpublished.
            del self._streams[call_id]
            self._done.add(call_id)
