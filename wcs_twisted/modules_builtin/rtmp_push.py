# -*- test-case-name: tests.modules_builtin.test_rtmp -*-
"""
One stream republished to one RTMP server (a WCS "transponder"): L{RtmpPush}, a stream sink that
keeps one RTMP publishing session (L{rtmp_protocol.RtmpPublisher}).

Video goes out as it came, H.264 access units rebuilt from RTP (no transcoding); audio is decoded
(G.711, Opus), resampled to 44.1 kHz mono and encoded to AAC with PyAV, because RTMP players need
AAC.  Muting sends silence; C{sound_on} replaces the audio with a sound file until it ends (or
loops).

Every push reports WCS statuses: RTMP_STREAM_WAIT while it connects, RTMP_STREAM_ACTIVE once
the server accepted the publish, RTMP_CONNECTION_LOST when an active session broke (it then
reconnects with exponential backoff for as long as the stream lives), RTMP_CONNECTION_FAILED
when it could not be established; a push that never got through gives up after a few attempts.

Everything runs on the reactor thread and never blocks: the network is Twisted's, and the audio
work per 20 ms packet is a decode, a resample and at most one AAC frame.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from wcs_twisted.interfaces import IStreamSink
from wcs_twisted.modules_builtin.rtmp_protocol import (
    RtmpPublisher,
    RtmpTarget,
    aac_frame,
    aac_sequence_header,
    avc_frame,
    avc_sequence_header,
)
from wcs_twisted.toolkit.aac import (
    AAC_CHANNELS,
    AAC_RATE,
    SAMPLE_BYTES,
    AacEncoder,
    audio_specific_config,
)
from wcs_twisted.toolkit.depacketize import (
    NAL_PPS,
    NAL_SPS,
    H264Depacketizer,
    MediaTimeline,
    RtpClock,
    avc_decoder_configuration,
    avcc,
    codec_of,
    parse_sps,
)

if TYPE_CHECKING:
    from wcs_twisted.modules_builtin.rtmp import RtmpService

__all__ = ["ACTIONS", "RtmpPush", "RtmpStreamStatus", "Sound"]


class RtmpStreamStatus(str, enum.Enum):
    """
    The WCS C{rtmpStreamStatus} values (call object, /push/find).
    """

    RTMP_STREAM_WAIT = "RTMP_STREAM_WAIT"
    RTMP_STREAM_ACTIVE = "RTMP_STREAM_ACTIVE"
    RTMP_CONNECTION_LOST = "RTMP_CONNECTION_LOST"
    RTMP_CONNECTION_FAILED = "RTMP_CONNECTION_FAILED"


#: Seconds between keyframe requests while waiting for one.
KEYFRAME_RETRY = 1.0
#: Seconds a closing session may take to flush before its connection is dropped.
CLOSE_TIMEOUT = 2.0

ACTIONS = ("mute", "sound_on")


class Sound:
    """
    A sound being played instead of the stream's audio.
    """

    def __init__(self, name: str, samples: bytes, loop: bool) -> None:
        self.name = name
        self.samples = samples
        self.loop = loop
        self.position = 0

    def take(self, size: int) -> tuple[bytes, bool]:
        """
        The next C{size} bytes (zero-padded past the end); and whether the sound is over.
        """
        out = bytearray()
        while len(out) < size:
            piece = self.samples[self.position:self.position + size - len(out)]
            out += piece
            self.position += len(piece)
            if self.position >= len(self.samples):
                if not self.loop:
                    out += bytes(size - len(out))
                    return bytes(out), True
                self.position = 0
        return bytes(out), False


# --- one push -----------------------------------------------------------------------------------


@implementer(IStreamSink)
class RtmpPush:
    """
    One stream republished to one RTMP target (a WCS transponder); made by
    L{RtmpService.startup}.
    """

    def __init__(self, service: "RtmpService", media_session_id: str, stream_name: str,
                 rtmp_url: str, target: RtmpTarget, options: dict,
                 on_status: Optional[Callable[[RtmpStreamStatus], None]]) -> None:
        self.service = service
        self.media_session_id = media_session_id
        self.stream_name = stream_name
        self.rtmp_url = rtmp_url
        self.target = target
        self.options = options
        self.on_status = on_status
        self.status = RtmpStreamStatus.RTMP_STREAM_WAIT
        self.stream = None
        self.kinds: tuple[str, ...] = ("audio", "video")
        self.muted = False
        self.sound: Optional[Sound] = None
        self.width = 0
        self.height = 0
        self.ended = False
        self.was_active = False
        self.failed_attempts = 0
        self.attempts = 0
        self._delay = service.reconnect_delay
        self._publisher: Optional[RtmpPublisher] = None
        self._connecting: Optional[Deferred] = None
        self._retry = None
        self._deadline = None
        self._closed_waiters: list[Deferred] = []
        self._reset_session()

    def describe(self) -> dict[str, Any]:
        """
        The push as REST /push/startup and /push/find return it.
        """
        return {
            "mediaSessionId": self.media_session_id,
            "streamName": self.target.stream,
            "localStreamName": self.stream_name,
            "rtmpUrl": self.rtmp_url,
            "width": self.width,
            "height": self.height,
            "muted": self.muted,
            "soundEnabled": self.sound is not None,
            "options": dict(self.options),
            "status": self.status.value,
        }

    # --- life -------------------------------------------------------------------------------------

    def attach(self, stream) -> None:
        description = stream.describe()
        video_name, _ = codec_of(description.get("videoCodec"))
        self.kinds = ("audio", "video") if video_name == "h264" else ("audio",)
        self.stream = stream
        stream.attach(self)
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self.ended:
            return
        self.attempts += 1
        publisher = RtmpPublisher(self.target, self)
        self._publisher = publisher
        self._connecting = self.service.connect(self.target, publisher)
        self._connecting.addErrback(self._connect_failed, publisher)
        self._deadline = self.service.clock.callLater(
            self.service.connect_timeout + self.service.publish_timeout, self._too_slow, publisher)

    def _connect_failed(self, failure, publisher: RtmpPublisher) -> None:
        if publisher is self._publisher:
            self._publisher = None
            self._attempt_failed(failure.getErrorMessage())

    def _too_slow(self, publisher: RtmpPublisher) -> None:
        self._deadline = None
        if publisher is self._publisher and publisher.state != "publishing":
            if self._connecting is not None and not self._connecting.called:
                self._connecting.cancel()
            else:
                publisher.abort("no publish confirmation in time")

    # --- RtmpPublisher owner ----------------------------------------------------------------------

    def published(self, publisher: RtmpPublisher) -> None:
        if publisher is not self._publisher:
            return
        self._cancel_deadline()
        self.was_active = True
        self.failed_attempts = 0
        self._delay = self.service.reconnect_delay
        self._reset_session()
        metadata: dict[str, Any] = {"encoder": "wcs-twisted", "audiocodecid": 10.0,
                                    "audiosamplerate": float(AAC_RATE), "audiosamplesize": 16.0,
                                    "stereo": AAC_CHANNELS == 2}
        if "video" in self.kinds:
            metadata["videocodecid"] = 7.0
            if self.width:
                metadata.update(width=float(self.width), height=float(self.height))
        publisher.send_metadata(metadata)
        self.service.log.info("rtmp {id}: publishing {stream} to {url} as {name}",
                              id=self.media_session_id, stream=self.stream_name,
                              url=self.target.tc_url, name=self.target.stream)
        self._set_status(RtmpStreamStatus.RTMP_STREAM_ACTIVE)
        if self.stream is not None and "video" in self.kinds:
            self.stream.request_keyframe()

    def refused(self, publisher: RtmpPublisher, reason: str) -> None:
        self.service.log.warn("rtmp {id}: {url} refused to publish {name}: {reason}",
                              id=self.media_session_id, url=self.target.tc_url,
                              name=self.target.stream, reason=reason)

    def lost(self, publisher: RtmpPublisher, reason: str, was_publishing: bool) -> None:
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if publisher is not self._publisher:
            return
        self._publisher = None
        self._cancel_deadline()
        if self.ended:
            return
        if was_publishing:
            self.service.log.warn("rtmp {id}: connection to {url} lost: {reason}",
                                  id=self.media_session_id, url=self.target.tc_url,
                                  reason=reason)
            self._set_status(RtmpStreamStatus.RTMP_CONNECTION_LOST)
            self._schedule_retry()
        else:
            self._attempt_failed(reason)

    def _attempt_failed(self, reason: str) -> None:
        self._cancel_deadline()
        if self.ended:
            return
        self.service.log.warn("rtmp {id}: could not publish to {url}: {reason}",
                              id=self.media_session_id, url=self.target.tc_url, reason=reason)
        if not self.was_active:
            self.failed_attempts += 1
            self._set_status(RtmpStreamStatus.RTMP_CONNECTION_FAILED)
            if self.failed_attempts >= self.service.max_failed_attempts:
                self.service.log.error("rtmp {id}: giving up on {url} after {count} attempts",
                                       id=self.media_session_id, url=self.target.tc_url,
                                       count=self.failed_attempts)
                self.service._remove(self)
                self.end()
                return
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self.ended or self._retry is not None:
            return
        delay, self._delay = self._delay, min(self._delay * 2, self.service.max_reconnect_delay)
        self._retry = self.service.clock.callLater(delay, self._connect)

    def _set_status(self, status: RtmpStreamStatus) -> None:
        if status is self.status:
            return
        self.status = status
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                self.service.log.failure("rtmp {id}: status callback failed",
                                         id=self.media_session_id)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    # --- media (reactor thread) -------------------------------------------------------------------

    def _reset_session(self) -> None:
        """
        Fresh media state for a new RTMP session: timestamps from 0, headers sent again,
        video from a keyframe.
        """
        self._timeline = MediaTimeline()
        self._audio_clock: Optional[RtpClock] = None
        self._audio_codec_name: Optional[str] = None
        self._audio_rejected = False
        self._audio_codec = ("", 0)
        self._aac: Optional[AacEncoder] = None
        self._video_clock: Optional[RtpClock] = None
        self._depacketizer = H264Depacketizer()
        self._lost_seen = 0
        self._need_keyframe = True
        self._parameter_sets: Optional[tuple[bytes, bytes]] = None
        self._last_video_ms = -1
        self._last_keyframe_request = float("-inf")

    def packet_received(self, kind: str, payload: bytes, codec_name: str, timestamp: int,
                        marker: bool) -> None:
        publisher = self._publisher
        if publisher is None or publisher.state != "publishing":
            return
        now = self.service.clock.seconds()
        if publisher.congested:
            self._need_keyframe = True
            return
        if kind == "audio":
            self._audio(publisher, payload, codec_name, timestamp, now)
        else:
            self._video(publisher, payload, codec_name, timestamp, marker, now)

    def _audio(self, publisher: RtmpPublisher, payload: bytes, codec_name: str, timestamp: int,
               now: float) -> None:
        if codec_name != self._audio_codec_name:
            codec = codec_of(codec_name)
            self._audio_codec_name = codec_name
            self._audio_rejected = codec[0] not in ("pcmu", "pcma", "opus")
            if self._audio_rejected:
                return
            if codec != self._audio_codec:
                self._audio_clock = RtpClock(codec[1] or 8000, self._timeline)
            self._audio_codec = codec
        elif self._audio_rejected:
            return  # decided once for this codec, not per packet
        if self._aac is None:
            publisher.send_audio(0, aac_sequence_header(audio_specific_config()))
            self._aac = AacEncoder(lambda milliseconds, frame: publisher.send_audio(
                milliseconds, aac_frame(frame)))
        seconds = self._audio_clock.seconds(timestamp, now)
        self._aac.audio(self._audio_codec[0], self._audio_codec[1], payload, seconds,
                        self._replacement)

    def _replacement(self, count: int) -> Optional[bytes]:
        if self.sound is not None:
            samples, over = self.sound.take(count * SAMPLE_BYTES)
            if over:
                self.service.log.info("rtmp {id}: sound {name} finished",
                                      id=self.media_session_id, name=self.sound.name)
                self.sound = None
            return samples
        if self.muted:
            return bytes(count * SAMPLE_BYTES)
        return None

    def _video(self, publisher: RtmpPublisher, payload: bytes, codec_name: str, timestamp: int,
               marker: bool, now: float) -> None:
        if not codec_name.upper().startswith("H264/"):
            return
        for unit in self._depacketizer.feed(payload, timestamp, marker):
            self._access_unit(publisher, unit, now)
        if self._depacketizer.lost != self._lost_seen:
            self._lost_seen = self._depacketizer.lost
            self._need_keyframe = True

    def _access_unit(self, publisher: RtmpPublisher, unit, now: float) -> None:
        if self._need_keyframe:
            if not unit.decodable_start:
                if now - self._last_keyframe_request >= KEYFRAME_RETRY and self.stream:
                    self._last_keyframe_request = now
                    self.stream.request_keyframe()
                return
            self._need_keyframe = False
        if self._video_clock is None:
            self._video_clock = RtpClock(90000, self._timeline)
        milliseconds = round(self._video_clock.seconds(unit.timestamp, now) * 1000)
        milliseconds = max(milliseconds, self._last_video_ms)
        self._last_video_ms = milliseconds
        if unit.keyframe and (unit.sps, unit.pps) != self._parameter_sets:
            try:
                record = avc_decoder_configuration(unit.sps, unit.pps)
                info = parse_sps(unit.sps)
            except ValueError:
                self._need_keyframe = True
                return
            self.width, self.height = info.width, info.height
            self._parameter_sets = (unit.sps, unit.pps)
            publisher.send_video(milliseconds, avc_sequence_header(record))
        nals = [nal for nal in unit.nal_units if nal[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
        publisher.send_video(milliseconds, avc_frame(avcc(nals), unit.keyframe))

    # --- the end ----------------------------------------------------------------------------------

    def stream_ended(self, reason: str) -> None:
        self.service._remove(self)
        self.end()

    def end(self) -> Deferred:
        """
        Stop for good: detach, cancel timers, close the RTMP session.  Fires once the connection
        is closed.
        """
        self.ended = True
        if self.stream is not None:
            self.stream.detach(self)
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._cancel_deadline()
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()
        publisher, self._publisher = self._publisher, None
        if publisher is None or publisher.state == "closed" or publisher.transport is None:
            return succeed(None)
        closed: Deferred = Deferred()
        self._closed_waiters.append(closed)
        publisher.close("push terminated")
        # A server that stops reading would keep a polite close waiting for ever.
        abort = self.service.clock.callLater(CLOSE_TIMEOUT, publisher.abort,
                                             "closing timed out")
        closed.addBoth(lambda result: (abort.cancel() if abort.active() else None, result)[1])
        return closed
