# -*- test-case-name: tests.media.test_transcode -*-
"""
Audio transcoding between the two legs of a call, and the silence a leg sends when nothing
feeds it.

Decoders and encoders come from real codec libraries: PyAV (FFmpeg's G.711 and G.722,
libopus) and, where FFmpeg cannot encode, the reference libraries by ctypes
(L{wcs_twisted.media.speex}, L{wcs_twisted.media.g729}).  Between them libswresample
converts to the other leg's rate in exact 20 ms frames.  Received RTP goes through a
L{JitterBuffer} first, so the decoder sees packets in order and each lost one is concealed
(by the codec's own PLC for Speex and G.729, otherwise by repeating the last frame, fading).

It all runs inline on the reactor thread (~0.1-0.3 ms per packet, less than a thread hop
costs in latency and CPU).
"""

from __future__ import annotations

import fractions
from array import array
from typing import Callable, Optional

import av
from twisted.logger import Logger

from wcs_twisted.media.g729 import G729Decoder, G729Encoder, g729_available
from wcs_twisted.media.jitter import JitterBuffer
from wcs_twisted.media.rtp_packet import payload_bounds
from wcs_twisted.media.session import PTIME
from wcs_twisted.media.speex import SpeexDecoder, SpeexEncoder, speex_available
from wcs_twisted.sdp.codecs import Codec

__all__ = ["OPUS_BIT_RATE", "AudioTranscoder", "can_transcode", "silence_payload"]



#: Encoding -> (FFmpeg codec, PCM sample rate of the codec), for what PyAV does both ways.
_AV_CODECS = {
    "pcmu": ("pcm_mulaw", 8000),
    "pcma": ("pcm_alaw", 8000),
    "g722": ("g722", 16000),
    "opus": ("libopus", 48000),
}

#: Opus bit rate for transcoded narrow-band speech (voice, 20 ms frames).
OPUS_BIT_RATE = 32000

#: Concealment by repetition: each repeated frame at half the level of the one before.
_FADE_STEPS = 3


def _pcm_rate(codec: Codec) -> Optional[int]:
    """
    The PCM sample rate C{codec} is decoded to and encoded from, or None if we cannot.
    """
    encoding = codec.encoding
    if encoding in _AV_CODECS:
        return _AV_CODECS[encoding][1]
    if encoding == "speex" and codec.clock_rate in (8000, 16000) and speex_available():
        return codec.clock_rate
    if encoding == "g729" and codec.clock_rate == 8000 and g729_available():
        return 8000
    return None


def can_transcode(codec: Codec) -> bool:
    """
    Whether C{codec} can be decoded and encoded here.
    """
    return _pcm_rate(codec) is not None


def _pcm_frame(pcm: bytes, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    return frame


def _av_context(encoding: str, mode: str) -> av.CodecContext:
    name, rate = _AV_CODECS[encoding]
    context = av.CodecContext.create(name, mode)
    context.sample_rate = rate
    context.layout = "mono"
    context.format = "s16"
    if mode == "w":
        context.time_base = fractions.Fraction(1, rate)
        if encoding == "opus":
            context.bit_rate = OPUS_BIT_RATE
            context.options = {"application": "voip"}
    return context


class _AVDecoder:
    """
    A PyAV decoder; conceals a loss by repeating the last decoded frame, fading out.
    """

    def __init__(self, encoding: str) -> None:
        self._context = _av_context(encoding, "r")
        self.rate = _AV_CODECS[encoding][1]
        self._last: Optional[av.AudioFrame] = None
        self._to_s16: Optional[av.AudioResampler] = None
        self._fades = 0

    def decode(self, payload: bytes) -> list[av.AudioFrame]:
        frames = self._context.decode(av.Packet(payload))
        if frames:
            self._last = frames[-1]
            self._fades = 0
        return frames

    def conceal(self) -> list[av.AudioFrame]:
        last = self._last
        if last is None or self._fades >= _FADE_STEPS:
            return [_pcm_frame(bytes(2 * self.rate * PTIME // 1000), self.rate)]
        self._fades += 1
        if self._to_s16 is None:
            self._to_s16 = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
        last.pts = None
        out = []
        for frame in self._to_s16.resample(last):
            samples = array("h", bytes(frame.planes[0])[:frame.samples * 2])
            shift = self._fades
            out.append(_pcm_frame(array("h", (s >> shift for s in samples)).tobytes(), self.rate))
        return out


class _PCMDecoder:
    """
    A ctypes decoder (PCM bytes out) with its own concealment.
    """

    def __init__(self, decoder) -> None:
        self._decoder = decoder
        self.rate = decoder.rate

    def decode(self, payload: bytes) -> list[av.AudioFrame]:
        pcm = self._decoder.decode(payload)
        return [_pcm_frame(pcm, self.rate)] if pcm else []

    def conceal(self) -> list[av.AudioFrame]:
        return [_pcm_frame(self._decoder.conceal(), self.rate)]


class _AVEncoder:
    """
    A PyAV encoder of 20 ms frames.
    """

    def __init__(self, encoding: str) -> None:
        self._context = _av_context(encoding, "w")
        self._pts = 0

    def encode(self, frame: av.AudioFrame) -> list[bytes]:
        frame.pts = self._pts
        self._pts += frame.samples
        return [bytes(packet) for packet in self._context.encode(frame)]


class _PCMEncoder:
    """
    A ctypes encoder, fed the 20 ms frames the resampler cuts.
    """

    def __init__(self, encoder) -> None:
        self._encoder = encoder

    def encode(self, frame: av.AudioFrame) -> list[bytes]:
        return [self._encoder.encode(bytes(frame.planes[0])[:frame.samples * 2])]


def _decoder(codec: Codec):
    if codec.encoding == "speex":
        return _PCMDecoder(SpeexDecoder(codec.clock_rate))
    if codec.encoding == "g729":
        return _PCMDecoder(G729Decoder())
    return _AVDecoder(codec.encoding)


def _encoder(codec: Codec):
    if codec.encoding == "speex":
        return _PCMEncoder(SpeexEncoder(codec.clock_rate))
    if codec.encoding == "g729":
        return _PCMEncoder(G729Encoder())
    return _AVEncoder(codec.encoding)


_silence: dict[tuple[str, int], bytes] = {}


def silence_payload(codec: Codec) -> Optional[bytes]:
    """
    One 20 ms packet of digital silence in C{codec} (what a live, muted leg sends), or None
    when we cannot encode C{codec}.  Encoded once per format and kept.
    """
    key = (codec.encoding, codec.clock_rate)
    if key not in _silence:
        rate = _pcm_rate(codec)
        if rate is None:
            return None
        encoder = _encoder(codec)
        payloads: list[bytes] = []
        for _ in range(5):  # an encoder with look-ahead may hold its first frame back
            payloads = encoder.encode(_pcm_frame(bytes(2 * rate * PTIME // 1000), rate))
            if payloads:
                break
        _silence[key] = payloads[-1] if payloads else b""
    return _silence[key] or None


class AudioTranscoder:
    """
    One direction of audio transcoding: RTP payloads of C{source} in,
    20 ms payloads of C{target} out through C{send(payload, payload_type)}.

    Mono throughout: telephony is mono, and the Opus decoder downmixes a
    stereo stream.  Nothing is buffered beyond the jitter buffer's wait
    for a missing packet and what the resampler needs to cut 20 ms frames.

    @ivar jitter: the jitter buffer RTP packets go through (its counters
        say how many were lost, late or recovered).
    """

    log = Logger()

    def __init__(
        self,
        source: Codec,
        target: Codec,
        send: Callable[[bytes, int], None],
        payload_type: Optional[int] = None,
    ) -> None:
        """
        @param send: called with each encoded payload and the payload type.
        @param payload_type: the payload type to send with (default: the
            target codec's).
        """
        if not (can_transcode(source) and can_transcode(target)):
            raise ValueError(f"cannot transcode {source.rtpmap} to {target.rtpmap}")
        self.source = source
        self.target = target
        self._send = send
        self._payload_type = target.payload_type if payload_type is None else payload_type
        self._decoder = _decoder(source)
        self._encoder = _encoder(target)
        rate = _pcm_rate(target)
        assert rate is not None
        self._resampler = av.AudioResampler(
            format="s16", layout="mono", rate=rate, frame_size=rate * PTIME // 1000
        )
        self.jitter = JitterBuffer(self.payload, self._conceal)
        self.packets_in = 0
        self.packets_out = 0
        self.errors = 0

    def packet(self, data: bytes) -> None:
        """
        Take one RTP datagram: through the jitter buffer to the decoder.
        """
        try:
            start, end = payload_bounds(data)
        except ValueError:
            self.packets_in += 1
            self.errors += 1
            return
        self.jitter.push((data[2] << 8) | data[3], data[start:end])

    def payload(self, payload: bytes) -> None:
        """
        Transcode one encoded payload (no RTP header; a named stream's
        packets come this way, in order) and send what comes out.
        """
        self.packets_in += 1
        try:
            frames = self._decoder.decode(payload)
        except (ValueError, av.FFmpegError):
            self.errors += 1
            return
        for frame in frames:
            self.frame(frame)

    def _conceal(self) -> None:
        for frame in self._decoder.conceal():
            self.frame(frame)

    def frame(self, frame: av.AudioFrame) -> None:
        """
        Resample and encode decoded audio (also the way to feed generated
        audio, a file or comfort noise, into a leg).
        """
        frame.pts = None
        send, payload_type, encode = self._send, self._payload_type, self._encoder.encode
        for chunk in self._resampler.resample(frame):
            for encoded in encode(chunk):
                self.packets_out += 1
                send(encoded, payload_type)
