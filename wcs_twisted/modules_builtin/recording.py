# -*- test-case-name: tests.modules_builtin.test_recording -*-
"""
One recording: a named stream written to a Matroska file that survives a crash.

A L{Recording} is a stream sink.  On the reactor thread it only turns RTP payloads into timed
samples (H.264 access units rebuilt from RFC 6184 packets, VP8 frames from RFC 7741 ones,
timestamps from the RTP clocks on one timeline, see L{wcs_twisted.toolkit.depacketize}); the file work (PyAV muxing, disk writes,
L{wcs_twisted.toolkit.matroska}) runs in the reactor's thread pool through a
L{wcs_twisted.toolkit.sinks.SerialWorker}, in order and with a bounded backlog, so a slow disk never
stalls calls.

The container is Matroska written as it goes, a cluster flushed every second, so a server killed
mid-call leaves a playable file.  Opus, H.264 and VP8 are stored as they arrive; G.711 as the
16-bit PCM it decodes to.  A stream of VP8 and Opus (what browsers publish) is written as WebM
(C{.webm}, the Matroska subset browsers play, as WCS writes VP8 to WebM); anything else as
Matroska (C{.mkv}).  The module that makes recordings is L{wcs_twisted.modules_builtin.recorder}.
"""

from __future__ import annotations

import os
import re
import string
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IStreamSink
from wcs_twisted.toolkit.depacketize import (
    H264Depacketizer,
    MediaTimeline,
    VP8Depacketizer,
    RtpClock,
    annex_b,
    codec_of,
    opus_packet_samples,
    parse_sps,
)
from wcs_twisted.toolkit.matroska import AUDIO_TRACKS, AudioTrack, MatroskaWriter, VideoTrack
from wcs_twisted.toolkit.sinks import MAX_BACKLOG, SerialWorker

__all__ = [
    "DEFAULT_FILE_TEMPLATE",
    "EXTENSION",
    "TEMPLATE_FIELDS",
    "WEBM_EXTENSION",
    "container_extension",
    "Recording",
    "is_sip_call_stream",
    "render_file_name",
]

DEFAULT_FILE_TEMPLATE = "{streamName}-{startTime}"
EXTENSION = ".mkv"
WEBM_EXTENSION = ".webm"

#: Video codecs recorded, by RTP encoding name (lower case).
VIDEO_CODECS = ("h264", "vp8")

#: Fields a file name template may use.
TEMPLATE_FIELDS = frozenset({"streamName", "startTime", "mediaSessionId", "sessionId", "appKey",
                             "callId"})

#: Longest a recording waits for the tracks it expects (the first video keyframe, the first audio
#: packet) before it starts the file with the tracks it has.
TRACK_WAIT = 4.0

#: How often a recording waiting for a keyframe asks the stream for one again.
KEYFRAME_RETRY = 1.0



def is_sip_call_stream(stream) -> bool:
    """
    Whether C{stream} carries a SIP call's media: the call layer publishes those with the call's
    C{callId} among the stream properties.
    """
    return bool(stream.properties.get("callId"))


def container_extension(audio_codec: Optional[str], video_codec: Optional[str]) -> str:
    """
    C{.webm} for a stream whose declared codecs all fit WebM (Opus, VP8), else C{.mkv}; a
    stream that declares no codec at all may bring any, so it is C{.mkv}.
    """
    audio, _ = codec_of(audio_codec)
    video, _ = codec_of(video_codec)
    if (audio or video) and audio in ("", "opus") and video in ("", "vp8"):
        return WEBM_EXTENSION
    return EXTENSION


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def render_file_name(template: str, fields: dict[str, Any], extension: str = EXTENSION) -> str:
    """
    The file name a template gives: C{{field}} replaced by the field's value, with every
    character but letters, digits, C{.}, C{_} and C{-} made C{_} (a stream name cannot reach
    outside the records folder), and C{extension} added unless the template ends with C{.mkv}
    or C{.webm}.  A
    name that comes out empty (fields without values) is C{record} plus the extension.

    @raise ValueError: the template names an unknown field, uses a format spec, or contains a
        path separator.
    """
    if not template or "/" in template or "\\" in template or "\x00" in template:
        raise ValueError("a file template is a non-empty file name without '/'")
    parts = []
    for literal, field_name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if field_name is None:
            continue
        if field_name not in TEMPLATE_FIELDS or spec or conversion:
            raise ValueError(f"unknown template field {{{field_name}}}; known: "
                             + ", ".join(sorted(TEMPLATE_FIELDS)))
        value = fields.get(field_name)
        parts.append(_UNSAFE.sub("_", "" if value is None else str(value)))
    name = "".join(parts) or "record"
    if not name.endswith((EXTENSION, WEBM_EXTENSION)):
        name += extension
    return name


# --- the sink -----------------------------------------------------------------------------------


@implementer(IStreamSink)
class Recording:
    """
    Records one stream (an L{IStreamSink}); made by L{RecordingService.startup}.

    @ivar closed: a Deferred firing with the file's path once the file is complete (or None if
        nothing was recorded), after the stream ended or the recording was terminated.
    """

    def __init__(self, stream, record_id: str, path: str, start_time: int, clock,
                 worker_factory: Callable[[MatroskaWriter], SerialWorker], log: Logger,
                 on_finished: Callable[["Recording"], None]) -> None:
        self.stream = stream
        self.record_id = record_id
        self.path = path
        self.start_time = start_time
        self._clock = clock
        self._log = log
        self._on_finished = on_finished
        self.writer = MatroskaWriter(path)
        self.worker = worker_factory(self.writer)
        description = stream.describe()
        audio_name, _ = codec_of(description.get("audioCodec"))
        video_name, _ = codec_of(description.get("videoCodec"))
        # None (not declared by the source) means "take what comes".
        self._expect_audio = audio_name in AUDIO_TRACKS or not audio_name
        self._expect_video = video_name in VIDEO_CODECS
        self.kinds = ("audio", "video") if self._expect_video else ("audio",)
        self._timeline = MediaTimeline()
        self._audio_track: Optional[AudioTrack] = None
        self._audio_clock: Optional[RtpClock] = None
        self._audio_end = 0
        self._audio_codec_name: Optional[str] = None
        self._video_track: Optional[VideoTrack] = None
        self._video_clock: Optional[RtpClock] = None
        self._depacketizer = None
        self._video_codec_seen: Optional[str] = None
        self._lost_seen = 0
        self._need_keyframe = True
        self._held_video: Optional[tuple] = None
        self._last_video_pts = -1
        self._last_video_duration = 3000
        self._opened = False
        self._early: list = []
        self._waited = False
        self._timer = None
        self._keyframe_timer = None
        self._warned: set[str] = set()
        self.finished = False
        self.closed: Deferred = Deferred()

    def describe(self) -> dict[str, Any]:
        """
        The recording as REST /recorder/find_all lists it.
        """
        return {
            "fileName": os.path.basename(self.path),
            "mediaSessionId": self.record_id,
            "streamName": self.stream.name,
            "startTime": self.start_time,
        }

    def start(self) -> None:
        self._timer = self._clock.callLater(TRACK_WAIT, self._wait_over)
        if self._expect_video:
            self._keyframe_timer = self._clock.callLater(KEYFRAME_RETRY, self._ask_keyframe)
        self.stream.attach(self)

    # --- packets (reactor thread) -----------------------------------------------------------------

    def packet_received(self, kind: str, payload: bytes, codec_name: str, timestamp: int,
                        marker: bool) -> None:
        if self.finished:
            return
        now = self._clock.seconds()
        if kind == "audio":
            self._audio_packet(payload, codec_name, timestamp, now)
        else:
            self._video_packet(payload, codec_name, timestamp, marker, now)

    def _audio_packet(self, payload: bytes, codec_name: str, timestamp: int, now: float) -> None:
        if codec_name != self._audio_codec_name:
            name, rate = codec_of(codec_name)
            if self._audio_track is None:
                track = AUDIO_TRACKS.get(name)
                if track is None or self._opened:
                    self._warn("audio codec " + codec_name, "audio codec {codec} is not "
                               "recorded", codec=codec_name)
                    return
                self._audio_track = track
                self._audio_clock = RtpClock(rate or track.rate, self._timeline)
            elif AUDIO_TRACKS.get(name) is not self._audio_track:
                self._warn("audio change " + codec_name, "audio codec changed to {codec} "
                           "mid-recording; those packets are left out", codec=codec_name)
                return
            self._audio_codec_name = codec_name
        track = self._audio_track
        duration = opus_packet_samples(payload) if track.source == "opus" else len(payload)
        if duration <= 0:
            return
        pts = round(self._audio_clock.seconds(timestamp, now) * track.rate)
        if pts + duration // 2 < self._audio_end:
            return  # late or duplicate
        pts = max(pts, self._audio_end)
        self._audio_end = pts + duration
        self._emit(("audio", payload, pts, duration))

    def _video_packet(self, payload: bytes, codec_name: str, timestamp: int, marker: bool,
                      now: float) -> None:
        if codec_name != self._video_codec_seen:
            self._video_codec_seen = codec_name
            name, _ = codec_of(codec_name)
            self._depacketizer = None
            if name not in VIDEO_CODECS:
                self._warn("video " + codec_name, "video codec {codec} is not recorded",
                           codec=codec_name)
            elif self._video_track is not None and self._video_track.codec != name:
                self._warn("video change " + codec_name, "video codec changed to {codec} "
                           "mid-recording; those packets are left out", codec=codec_name)
            else:
                self._depacketizer = (H264Depacketizer() if name == "h264"
                                      else VP8Depacketizer())
                self._need_keyframe = True
        depacketizer = self._depacketizer
        if depacketizer is None:
            return
        for unit in depacketizer.feed(payload, timestamp, marker):
            self._picture(unit, now)
        if depacketizer.lost != self._lost_seen:
            self._lost_seen = depacketizer.lost
            self._need_keyframe = True
            self.stream.request_keyframe()

    def _picture(self, unit, now: float) -> None:
        """
        One H.264 access unit or VP8 frame: the first must be a keyframe a decoder can start at
        (it sizes the track); each is held until the next gives its duration.
        """
        if self._need_keyframe:
            if not unit.decodable_start:
                return
            self._need_keyframe = False
        if self._video_track is None:
            if self._opened:
                return  # the file started without video
            track = self._track_of(unit)
            if track is None:
                self._need_keyframe = True
                return
            self._video_track = track
            self._video_clock = RtpClock(90000, self._timeline)
            self._cancel_keyframe_timer()
        pts = round(self._video_clock.seconds(unit.timestamp, now) * 90000)
        pts = max(pts, self._last_video_pts + 1)
        self._last_video_pts = pts
        self._release_video(pts)
        data = (unit.data if isinstance(self._depacketizer, VP8Depacketizer)
                else annex_b(unit.with_parameter_sets()))
        self._held_video = (data, pts, unit.keyframe)

    def _track_of(self, unit) -> Optional[VideoTrack]:
        """
        The video track a keyframe sizes, or None (an unreadable H.264 SPS).
        """
        if isinstance(self._depacketizer, VP8Depacketizer):
            return VideoTrack(unit.width, unit.height, "vp8")
        try:
            sps = parse_sps(unit.sps)
        except ValueError:
            self._warn("sps", "unreadable H.264 SPS; waiting for another keyframe")
            return None
        return VideoTrack(sps.width, sps.height)

    def _release_video(self, next_pts: Optional[int]) -> None:
        """
        Write the video frame held back, now that the next one gives its duration.
        """
        held, self._held_video = self._held_video, None
        if held is None:
            return
        data, pts, keyframe = held
        if next_pts is not None:
            self._last_video_duration = max(1, min(next_pts - pts, 90000))
        self._emit(("video", data, pts, self._last_video_duration, keyframe))

    def _emit(self, item: tuple) -> None:
        if not self._opened:
            self._early.append(item)
            if len(self._early) > MAX_BACKLOG:
                del self._early[0]
            self._maybe_open()
            return
        if not self.worker.submit(item):
            if self.worker.failure is not None:
                self.finish("Failed by error")  # the file cannot be written any more
                return
            self._warn("backlog", "the disk is too slow: media is being dropped")
            if item[0] == "video":
                self._need_keyframe = True
                self.stream.request_keyframe()

    # --- the header -------------------------------------------------------------------------------

    def _maybe_open(self) -> None:
        audio_ready = self._audio_track is not None or not self._expect_audio
        video_ready = self._video_track is not None or not self._expect_video
        have_any = self._audio_track is not None or self._video_track is not None
        if have_any and ((audio_ready and video_ready) or self._waited):
            self._open()

    def _wait_over(self) -> None:
        self._timer = None
        self._waited = True
        if self._expect_video and self._video_track is None:
            self._warn("no keyframe", "no video keyframe within {wait} s: recording without "
                       "video", wait=TRACK_WAIT)
        self._maybe_open()

    def _ask_keyframe(self) -> None:
        self._keyframe_timer = None
        if self._video_track is None and not self.finished:
            self.stream.request_keyframe()
            self._keyframe_timer = self._clock.callLater(KEYFRAME_RETRY, self._ask_keyframe)

    def _cancel_keyframe_timer(self) -> None:
        if self._keyframe_timer is not None and self._keyframe_timer.active():
            self._keyframe_timer.cancel()
        self._keyframe_timer = None

    def _open(self) -> None:
        self._opened = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._video_track is None:
            self._cancel_keyframe_timer()
        self.worker.submit(("open", self._audio_track, self._video_track), force=True)
        early, self._early = self._early, []
        for item in early:
            if item[0] == "audio" and self._audio_track is None:
                continue
            if item[0] == "video" and self._video_track is None:
                continue
            self.worker.submit(item, force=True)
        self._log.info("recording {stream} to {path}", stream=self.stream.name, path=self.path)

    # --- the end ----------------------------------------------------------------------------------

    def stream_ended(self, reason: str) -> None:
        self.finish(reason)

    def finish(self, reason: str = "terminated") -> Deferred:
        """
        Stop recording: detach, write what is held back and complete the file.

        @return: L{closed}.
        """
        if self.finished:
            return self.closed
        self.finished = True
        self.stream.detach(self)
        for timer in (self._timer, self._keyframe_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._keyframe_timer = None
        if self._opened:
            self._release_video(None)
            self.worker.submit(("close",), force=True)
        elif self._audio_track is not None or self._video_track is not None:
            self._open()
            self._release_video(None)
            self.worker.submit(("close",), force=True)
        self._on_finished(self)

        def done(_: object) -> None:
            if self.worker.failure is not None:
                self._log.failure("recording {stream} to {path} failed", self.worker.failure,
                                  stream=self.stream.name, path=self.path)
            if self.worker.dropped:
                self._log.warn("recording {stream}: {count} packets dropped (disk too slow)",
                               stream=self.stream.name, count=self.worker.dropped)
            recorded = self._opened and os.path.exists(self.path)
            self._log.info("recording {stream} finished ({reason}): {path}",
                           stream=self.stream.name, reason=reason,
                           path=self.path if recorded else "nothing recorded")
            self.closed.callback(self.path if recorded else None)

        self.worker.idle().addCallback(done)
        return self.closed

    def _warn(self, key: str, text: str, **fields: Any) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self._log.warn("recording {stream}: " + text, stream=self.stream.name, **fields)
