# -*- test-case-name: tests.media.test_transcode -*-
"""
Audio transcoding between the two legs of a call, and the silence a leg sends when nothing
feeds it.

Audio moves between codecs as 16-bit mono PCM bytes.  The codecs: G.711 by table
(L{wcs_twisted.media.g711}), Opus, Speex and G.729 through their reference libraries by
ctypes (L{wcs_twisted.media.opus}, L{wcs_twisted.media.speex}, L{wcs_twisted.media.g729}),
G.722 through PyAV (FFmpeg).  Opus decodes to and encodes from the other side's rate, so
the common Opus <-> G.711 call has no resampler; libswresample (PyAV) converts only
between fixed rates that differ (G.722 or wide-band Speex <-> 8 kHz codecs).  Received
RTP goes through a L{JitterBuffer} first, so the decoder sees packets in order and each
lost one is concealed (by the codec's own PLC for Opus, Speex and G.729, otherwise by
repeating the last frame, 6 dB quieter each time).

It all runs inline on the reactor thread (tens of microseconds per packet, less than a
thread hop costs in latency and CPU).
"""

from __future__ import annotations

import fractions
from typing import Callable, Optional

import av
from twisted.logger import Logger

from wcs_twisted.media.g711 import ALAW, ULAW, attenuate
from wcs_twisted.media.g729 import G729Decoder, G729Encoder, g729_available
from wcs_twisted.media.jitter import JitterBuffer
from wcs_twisted.media.opus import OPUS_RATES, OpusDecoder, OpusEncoder, opus_available
from wcs_twisted.media.rtp_packet import payload_bounds
from wcs_twisted.media.session import PTIME
from wcs_twisted.media.speex import SpeexDecoder, SpeexEncoder, speex_available
from wcs_twisted.sdp.codecs import Codec

__all__ = ["OPUS_BIT_RATE", "AudioTranscoder", "can_transcode", "silence_payload"]

#: Opus bit rate for transcoded narrow-band speech (voice, 20 ms frames).
OPUS_BIT_RATE = 32000

#: Concealment by repetition: each repeated frame 6 dB below the one before, then silence.
_FADE_STEPS = 3

_G711 = {"pcmu": ULAW, "pcma": ALAW}


def _pcm_rate(codec: Codec) -> Optional[int]:
    """
    The PCM sample rate C{codec} is decoded to and encoded from by default, or None if we
    cannot (Opus can work at others: see L{_rates}).
    """
    encoding = codec.encoding
    if encoding in _G711:
        return 8000
    if encoding == "g722":
        return 16000
    if encoding == "opus" and opus_available():
        return 48000
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


def _rates(source: Codec, target: Codec) -> tuple[int, int]:
    """
    (decoding rate, encoding rate): Opus on one side takes the other side's rate.
    """
    source_rate, target_rate = _pcm_rate(source), _pcm_rate(target)
    assert source_rate is not None and target_rate is not None
    if source.encoding == "opus" and target_rate in OPUS_RATES:
        source_rate = target_rate
    if target.encoding == "opus" and source_rate in OPUS_RATES:
        target_rate = source_rate
    return source_rate, target_rate


class _Repeating:
    """
    Conceals a loss by repeating the last decoded frame, 6 dB quieter each time, then
    silence (for codecs without a concealment of their own).
    """

    rate: int

    def __init__(self, decode: Callable[[bytes], bytes], rate: int) -> None:
        self._decode = decode
        self.rate = rate
        self._last = b""
        self._fades = 0

    def decode(self, payload: bytes) -> bytes:
        pcm = self._decode(payload)
        if pcm:
            self._last = pcm
            self._fades = 0
        return pcm

    def conceal(self) -> bytes:
        if not self._last or self._fades >= _FADE_STEPS:
            return bytes(2 * self.rate * PTIME // 1000)
        self._fades += 1
        return attenuate(self._last, self._fades)


def _av_context(name: str, rate: int, mode: str) -> av.CodecContext:
    context = av.CodecContext.create(name, mode)
    context.sample_rate = rate
    context.layout = "mono"
    context.format = "s16"
    if mode == "w":
        context.time_base = fractions.Fraction(1, rate)
    return context


def _pcm_bytes(frames) -> bytes:
    return b"".join(bytes(frame.planes[0])[:frame.samples * 2] for frame in frames)


def _pcm_frame(pcm: bytes, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    return frame


class _G722Decoder:
    """
    FFmpeg's G.722 decoder (16 kHz PCM out).
    """

    rate = 16000

    def __init__(self) -> None:
        self._context = _av_context("g722", self.rate, "r")

    def __call__(self, payload: bytes) -> bytes:
        return _pcm_bytes(self._context.decode(av.Packet(payload)))


class _G722Encoder:
    """
    FFmpeg's G.722 encoder, fed 20 ms frames.
    """

    rate = 16000

    def __init__(self) -> None:
        self._context = _av_context("g722", self.rate, "w")
        self._pts = 0

    def encode(self, pcm: bytes) -> bytes:
        frame = _pcm_frame(pcm, self.rate)
        frame.pts = self._pts
        self._pts += frame.samples
        return b"".join(bytes(packet) for packet in self._context.encode(frame))


def _decoder(codec: Codec, rate: int):
    """
    An object with C{rate}, C{decode(payload) -> pcm} and C{conceal() -> pcm}.
    """
    encoding = codec.encoding
    if encoding == "opus":
        return OpusDecoder(rate)
    if encoding == "speex":
        return SpeexDecoder(codec.clock_rate)
    if encoding == "g729":
        return G729Decoder()
    if encoding == "g722":
        return _Repeating(_G722Decoder(), 16000)
    law = _G711[encoding]
    return _Repeating(law.decode, law.rate)


def _encoder(codec: Codec, rate: int):
    """
    An object with C{encode(20 ms of pcm) -> payload} (C{b""}: nothing yet).
    """
    encoding = codec.encoding
    if encoding == "opus":
        return OpusEncoder(rate, OPUS_BIT_RATE)
    if encoding == "speex":
        return SpeexEncoder(codec.clock_rate)
    if encoding == "g729":
        return G729Encoder()
    if encoding == "g722":
        return _G722Encoder()
    return _G711[encoding]  # a G711Codec: rate and encode


_silence: dict[tuple[str, int], bytes] = {}


def silence_payload(codec: Codec) -> Optional[bytes]:
    """
    One 20 ms packet of digital silence in C{codec} (what a live, muted leg sends), or None
    when we cannot encode C{codec}.  Encoded once per format and kept.
    """
    key = (codec.encoding, codec.clock_rate)
    if key not in _silence and codec.encoding in _G711:
        # The law's own silence: encoding it would load NumPy (g711.py) into a server that
        # only relays, whose SIP legs all keep a silence packet ready.
        _silence[key] = _G711[codec.encoding].silence
    if key not in _silence:
        rate = _pcm_rate(codec)
        if rate is None:
            return None
        encoder = _encoder(codec, rate)
        payload = b""
        for _ in range(5):  # an encoder with look-ahead may hold its first frame back
            payload = encoder.encode(bytes(2 * rate * PTIME // 1000))
            if payload:
                break
        _silence[key] = payload
    return _silence[key] or None


class AudioTranscoder:
    """
    One direction of audio transcoding: RTP payloads of C{source} in,
    20 ms payloads of C{target} out through C{send(payload, payload_type)}.

    Mono throughout: telephony is mono, and the Opus decoder downmixes a
    stereo stream.  Nothing is buffered beyond the jitter buffer's wait
    for a missing packet and what is needed to cut 20 ms frames.

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
        source_rate, target_rate = _rates(source, target)
        self._decoder = _decoder(source, source_rate)
        self._encoder = _encoder(target, target_rate)
        #: PCM bytes of one 20 ms frame at the encoder's rate.
        self._frame_bytes = 2 * target_rate * PTIME // 1000
        self._pending = bytearray()
        self._resampler: Optional[av.AudioResampler] = None
        self._source_rate = source_rate
        if source_rate != target_rate:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=target_rate)
        repair = self._repair if hasattr(self._decoder, "recover") else None
        self.jitter = JitterBuffer(self.payload, self._conceal, repair=repair)
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
            pcm = self._decoder.decode(payload)
        except (ValueError, av.FFmpegError):
            self.errors += 1
            return
        if pcm:
            self.pcm(pcm)

    def _conceal(self) -> None:
        pcm = self._decoder.conceal()
        if pcm:
            self.pcm(pcm)

    def _repair(self, following: bytes) -> None:
        pcm = self._decoder.recover(following)
        if pcm:
            self.pcm(pcm)

    def pcm(self, pcm: bytes) -> None:
        """
        Encode decoded audio, 16-bit mono at the decoder's rate (also the
        way to feed generated audio into a leg), in 20 ms frames.
        """
        if self._resampler is not None:
            frame = _pcm_frame(pcm, self._source_rate)
            pcm = _pcm_bytes(self._resampler.resample(frame))
        size = self._frame_bytes
        pending = self._pending
        if not pending and len(pcm) == size:
            self._encode(pcm)
            return
        pending += pcm
        while len(pending) >= size:
            self._encode(bytes(pending[:size]))
            del pending[:size]

    def _encode(self, frame: bytes) -> None:
        encoded = self._encoder.encode(frame)
        if encoded:
            self.packets_out += 1
            self._send(encoded, self._payload_type)
