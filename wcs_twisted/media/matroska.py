# -*- test-case-name: tests.media.test_matroska -*-
"""
Matroska files written as the media arrives, so a crash leaves a playable file.

The recording module (L{wcs_twisted.modules_builtin.recording}) decides what to write and when;
this is the PyAV part, kept in media/ with the rest of the PyAV code.  The muxer closes a cluster
every L{CLUSTER_MS} and flushes it to disk at once, so a process killed mid-recording leaves the
header and every closed cluster on disk: ffmpeg and players read such a file (only the index and
the total duration, written at the end, are missing).

Opus, H.264 and VP8 are stored as they arrive; a file named C{.webm} is written as WebM (the
Matroska subset browsers play: VP8 and Opus only).  G.711 has no standard Matroska codec id (FFmpeg only
writes it as an "unofficial" ACM track), so it is stored as the 16-bit PCM it decodes to, which
is lossless.  Every method of L{MatroskaWriter} blocks on the disk: the recording module calls it
from a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av

from wcs_twisted.media.depacketize import alaw_to_s16le, ulaw_to_s16le

__all__ = ["AUDIO_TRACKS", "CLUSTER_MS", "AudioTrack", "MatroskaWriter", "VideoTrack"]

#: Matroska cluster length in milliseconds: about what a crash can lose.
CLUSTER_MS = 1000

VIDEO_TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class AudioTrack:
    """
    How a recording stores the audio of one RTP codec.

    @ivar source: the RTP encoding name, lower case ("pcmu", "pcma", "opus").
    @ivar codec: the stored codec, "pcm_s16le" (G.711 decoded) or "opus" (as it came).
    @ivar rate: samples per second, also the unit of the pts and durations given.
    """

    source: str
    codec: str
    rate: int
    channels: int


@dataclass(frozen=True)
class VideoTrack:
    """
    A video track: C{codec} "h264" (sized from the stream's SPS) or "vp8" (from a keyframe).
    """

    width: int
    height: int
    codec: str = "h264"


#: The audio a recording can store, by RTP encoding name.
AUDIO_TRACKS = {
    "pcmu": AudioTrack("pcmu", "pcm_s16le", 8000, 1),
    "pcma": AudioTrack("pcma", "pcm_s16le", 8000, 1),
    "opus": AudioTrack("opus", "opus", 48000, 2),
}


class MatroskaWriter:
    """
    Writes one file; every method blocks on the disk (call it off the reactor thread).

    L{handle} takes batches of items:
      - C{("open", audio_track or None, video_track or None)} first;
      - C{("audio", rtp_payload, pts, duration)}: pts and duration in samples of the track;
      - C{("video", frame, pts, duration, keyframe)}: in 1/90000 s; an H.264 frame is an Annex B
        access unit and the first one must be a keyframe carrying the SPS and PPS (they become
        the track's CodecPrivate); a VP8 frame is stored as it is;
      - C{("close",)} last: writes the index and duration.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._container: Optional[av.container.OutputContainer] = None
        self._audio_stream = None
        self._audio_track: Optional[AudioTrack] = None
        self._audio_time_base: Optional[Fraction] = None
        self._video_stream = None
        #: The last pts muxed per stream (in its time base) and the frames dropped for not
        #: moving forward: a repeated or late RTP timestamp (a retransmission, a reordered
        #: packet) would otherwise give the file non-increasing timestamps that players reject.
        self._last_pts: dict = {}
        self.dropped = 0

    def handle(self, batch: list) -> None:
        for item in batch:
            getattr(self, "_on_" + item[0])(*item[1:])

    def _on_open(self, audio: Optional[AudioTrack], video: Optional[VideoTrack]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        container_format = "webm" if self.path.endswith(".webm") else "matroska"
        container = av.open(self.path, "w", format=container_format, container_options={
            "cluster_time_limit": str(CLUSTER_MS),
            "flush_packets": "1",
            "max_interleave_delta": str(CLUSTER_MS * 1000),
        })
        try:
            if audio is not None:
                layout = "mono" if audio.channels == 1 else "stereo"
                # An encoder context (never fed) gives the track its parameters; for Opus it
                # also makes the OpusHead that Matroska requires as CodecPrivate.
                encoder = "libopus" if audio.codec == "opus" else audio.codec
                self._audio_stream = container.add_stream(encoder, rate=audio.rate,
                                                          layout=layout)
                self._audio_track = audio
                self._audio_time_base = Fraction(1, audio.rate)
            if video is not None:
                # PyAV takes the parameter sets of the first packet as the CodecPrivate before
                # it writes the header.
                self._video_stream = container.add_mux_stream(video.codec, width=video.width,
                                                              height=video.height)
        except BaseException:
            container.close()
            raise
        self._container = container

    def _on_audio(self, payload: bytes, pts: int, duration: int) -> None:
        if self._audio_stream is None:
            return
        source = self._audio_track.source
        if source == "pcmu":
            payload = ulaw_to_s16le(payload)
        elif source == "pcma":
            payload = alaw_to_s16le(payload)
        self._mux(self._audio_stream, payload, pts, duration, self._audio_time_base, True)

    def _on_video(self, data: bytes, pts: int, duration: int, keyframe: bool) -> None:
        if self._video_stream is not None:
            self._mux(self._video_stream, data, pts, duration, VIDEO_TIME_BASE, keyframe)

    def _mux(self, stream, data: bytes, pts: int, duration: int, time_base: Fraction,
             keyframe: bool) -> None:
        # Matroska stores milliseconds: two frames less than 1 ms apart would collide as well.
        ms = int(pts * time_base * 1000)
        last = self._last_pts.get(stream.index)
        if last is not None and ms <= last:
            self.dropped += 1
            return
        self._last_pts[stream.index] = ms
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = time_base
        packet.pts = packet.dts = pts
        packet.duration = duration
        packet.is_keyframe = keyframe
        self._container.mux(packet)

    def _on_close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()
