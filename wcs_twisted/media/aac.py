# -*- test-case-name: tests.media.test_aac -*-
"""
Stream audio to AAC, for RTMP (players of RTMP streams expect AAC).

L{AacEncoder} takes RTP audio payloads (G.711, Opus) with their time on the stream's timeline,
decodes them with PyAV, resamples to 44.1 kHz mono with libswresample and encodes AAC-LC in
1024-sample frames.  Gaps (Opus DTX, loss) are filled with silence so the sample count keeps in
step with the clock, and the samples can be swapped for others on the way (silence when muted, a
sound file).  A 20 ms packet costs a decode, a resample and at most one AAC frame: it runs on the
reactor thread like the bridge's transcoder.

L{load_sound} reads a sound file into the same 44.1 kHz mono samples.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Callable, Optional

import av

from wcs_twisted.media.depacketize import alaw_to_s16le, ulaw_to_s16le

__all__ = ["AAC_CHANNELS", "AAC_RATE", "SAMPLE_BYTES", "AacEncoder", "audio_specific_config",
           "load_sound"]

#: What the encoder produces: sample rate, channels, bit rate.
AAC_RATE = 44100
AAC_CHANNELS = 1
AAC_BIT_RATE = 64000
AAC_FRAME = 1024
#: Bytes per sample of the float32 mono samples that replacements and sounds are made of.
SAMPLE_BYTES = 4

#: Audio gaps longer than this (seconds) are filled with silence, up to MAX_GAP.
GAP_THRESHOLD = 0.06
MAX_GAP = 5.0
#: Audio this far ahead of its clock (seconds) is dropped to fall back in step.
MAX_AHEAD = 0.2
#: The largest sound file L{load_sound} reads.
MAX_SOUND_BYTES = 32 * 1024 * 1024

_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
          7350)


def audio_specific_config(sample_rate: int = AAC_RATE, channels: int = AAC_CHANNELS) -> bytes:
    """
    The 2-byte AudioSpecificConfig of AAC-LC (ISO/IEC 14496-3 1.6.2.1): object type 2, the
    sampling frequency index, the channel configuration.
    """
    return ((2 << 11) | (_RATES.index(sample_rate) << 7) | (channels << 3)).to_bytes(2, "big")


def _plane_bytes(frames) -> bytes:
    return b"".join(bytes(frame.planes[0])[:frame.samples * SAMPLE_BYTES] for frame in frames)


def load_sound(path: str) -> bytes:
    """
    Decode a sound file (WAV, or anything FFmpeg reads) into 44.1 kHz mono float32 samples.

    @raise ValueError: it is too large, has no audio or cannot be decoded.
    """
    name = os.path.basename(path)
    if os.path.getsize(path) > MAX_SOUND_BYTES:
        raise ValueError(f"{name} is larger than {MAX_SOUND_BYTES} bytes")
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=AAC_RATE)
    chunks = []
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError(f"{name} has no audio")
            for frame in container.decode(audio=0):
                frame.pts = None
                chunks.append(_plane_bytes(resampler.resample(frame)))
        chunks.append(_plane_bytes(resampler.resample(None)))
    except av.FFmpegError as error:
        raise ValueError(f"{name} cannot be decoded: {error}") from None
    samples = b"".join(chunks)
    if not samples:
        raise ValueError(f"{name} holds no samples")
    return samples


class AacEncoder:
    """
    RTP audio payloads in, AAC-LC frames out (raw, as FLV and MP4 carry them).

    @param send: called with (milliseconds on the timeline, raw AAC frame) for each frame.
    """

    def __init__(self, send: Callable[[int, bytes], None]) -> None:
        self._send = send
        encoder = av.CodecContext.create("aac", "w")
        encoder.sample_rate = AAC_RATE
        encoder.layout = "mono"
        encoder.format = "fltp"
        encoder.bit_rate = AAC_BIT_RATE
        encoder.time_base = Fraction(1, AAC_RATE)
        encoder.open()
        self._encoder = encoder
        self._source: Optional[str] = None
        self._decoder = None
        self._resampler = None
        self._pending = bytearray()
        self._origin_ms: Optional[float] = None
        self._queued = 0  # samples put in since the origin
        self._encoded = 0  # samples handed to the encoder
        #: Payloads that could not be decoded (dropped).
        self.errors = 0

    def audio(self, codec: str, clock_rate: int, payload: bytes, seconds: float,
              replace: Callable[[int], Optional[bytes]]) -> None:
        """
        One RTP payload of C{codec} ("pcmu", "pcma", "opus") at C{seconds} on the timeline.

        @param replace: given a sample count, returns that many float32 samples to send
            instead (silence, a sound), or None to send the stream's audio.
        """
        if self._origin_ms is None:
            self._origin_ms = seconds * 1000.0
        try:
            samples = self._decode(codec, clock_rate, payload)
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return
        if not samples:
            return
        count = len(samples) // SAMPLE_BYTES
        position = round((seconds * 1000.0 - self._origin_ms) * AAC_RATE / 1000.0)
        gap = position - self._queued
        if gap > GAP_THRESHOLD * AAC_RATE:
            fill = min(gap, int(MAX_GAP * AAC_RATE))
            self._put(replace(fill) or bytes(fill * SAMPLE_BYTES))
        elif -gap > MAX_AHEAD * AAC_RATE:
            return
        self._put(replace(count) or samples)

    def _decode(self, codec: str, clock_rate: int, payload: bytes) -> bytes:
        if codec != self._source:
            if codec not in ("pcmu", "pcma", "opus"):
                raise ValueError(f"cannot decode {codec}")
            self._source = codec
            self._decoder = None
            if codec == "opus":
                self._decoder = av.CodecContext.create("libopus", "r")
                self._decoder.sample_rate = 48000
                self._decoder.layout = "stereo"
            self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=AAC_RATE)
        if self._decoder is None:
            pcm = ulaw_to_s16le(payload) if codec == "pcmu" else alaw_to_s16le(payload)
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(payload))
            frame.planes[0].update(pcm)
            frame.sample_rate = clock_rate or 8000
            frames = [frame]
        else:
            frames = self._decoder.decode(av.Packet(payload))
        out = []
        for frame in frames:
            frame.pts = None
            out.append(_plane_bytes(self._resampler.resample(frame)))
        return b"".join(out)

    def _put(self, samples: bytes) -> None:
        self._pending += samples
        self._queued += len(samples) // SAMPLE_BYTES
        size = AAC_FRAME * SAMPLE_BYTES
        while len(self._pending) >= size:
            chunk = bytes(self._pending[:size])
            del self._pending[:size]
            frame = av.AudioFrame(format="fltp", layout="mono", samples=AAC_FRAME)
            frame.planes[0].update(chunk)
            frame.sample_rate = AAC_RATE
            frame.time_base = Fraction(1, AAC_RATE)
            frame.pts = self._encoded
            self._encoded += AAC_FRAME
            for packet in self._encoder.encode(frame):
                pts = packet.pts if packet.pts is not None else 0
                milliseconds = max(0, round(self._origin_ms + pts * 1000.0 / AAC_RATE))
                self._send(milliseconds, bytes(packet))
