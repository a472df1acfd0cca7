# -*- test-case-name: tests.media.test_transcode -*-
"""
Opus (RFC 6716, RTP per RFC 7587) through the system's libopus (Debian C{libopus0}), by
ctypes.

libopus decodes to, and encodes from, 8, 12, 16, 24 or 48 kHz directly, so a call between
Opus and a narrow-band codec needs no resampler (through FFmpeg's wrapper the decoder always
gives 48 kHz, and the resampler then cost as much as the codec).  Decoding through the
library also gives its own packet loss concealment (L{OpusDecoder.conceal}).  Mono both
ways: a stereo stream is downmixed by the decoder.
"""

from __future__ import annotations

import ctypes

from wcs_twisted.media._clib import load_library

__all__ = ["OPUS_RATES", "OpusDecoder", "OpusEncoder", "opus_available"]

#: The PCM rates libopus works at.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: OPUS_APPLICATION_RESTRICTED_LOWDELAY: CELT only.  What we encode is a phone's audio,
#: already narrow- or wide-band; CELT carries it at 32 kb/s for ~30 us a frame, where SILK
#: (the VoIP application's choice at these rates) took ~110 us at its default complexity.
_APPLICATION = 2051
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
#: Encoder complexity (0-10, libopus's default 10).  Below 5 CELT leaves out its pitch
#: pre-filter, which halves the cost of a narrow-band frame (~35 -> ~19 us, thread CPU,
#: bench/transcode_path.py); the band analyses (TF, spreading, allocation trim) stay.  What
#: is encoded is a phone's audio at 32 kb/s, where the pre-filter adds little.
COMPLEXITY = 4
#: The longest Opus packet is 120 ms.
_MAX_MS = 120
_MAX_PACKET = 1500

_P = ctypes.c_void_p
_INT = ctypes.c_int
_lib = load_library("opus", "libopus.so.0", {
    "opus_decoder_create": (_P, [ctypes.c_int32, _INT, ctypes.POINTER(_INT)]),
    "opus_decode": (_INT, [_P, ctypes.c_char_p, ctypes.c_int32, _P, _INT, _INT]),
    "opus_decoder_destroy": (None, [_P]),
    "opus_encoder_create": (_P, [ctypes.c_int32, _INT, _INT, ctypes.POINTER(_INT)]),
    "opus_encode": (ctypes.c_int32, [_P, ctypes.c_char_p, _INT, _P, ctypes.c_int32]),
    # variadic in C; every request used here takes one opus_int32
    "opus_encoder_ctl": (_INT, [_P, _INT, ctypes.c_int32]),
    "opus_encoder_destroy": (None, [_P]),
})


def opus_available() -> bool:
    """
    Whether libopus could be loaded.
    """
    return _lib is not None


def _check_rate(rate: int) -> None:
    if _lib is None:
        raise RuntimeError("libopus is not installed (Debian package libopus0)")
    if rate not in OPUS_RATES:
        raise ValueError(f"Opus runs at {OPUS_RATES} Hz, not {rate}")


class OpusDecoder:
    """
    Opus payloads in, 16-bit mono PCM at C{rate} out.
    """

    def __init__(self, rate: int, ptime_ms: int = 20) -> None:
        _check_rate(rate)
        assert _lib is not None
        self.rate = rate
        error = _INT()
        self._state = _lib.opus_decoder_create(rate, 1, ctypes.byref(error))
        if not self._state:
            raise RuntimeError(f"opus_decoder_create failed ({error.value})")
        self._capacity = rate * _MAX_MS // 1000
        self._pcm = (ctypes.c_int16 * self._capacity)()
        self._address = ctypes.addressof(self._pcm)
        self._conceal_samples = rate * ptime_ms // 1000

    def decode(self, payload: bytes) -> bytes:
        """
        The PCM of one packet.

        @raise ValueError: libopus refused the packet (corrupt).
        """
        assert _lib is not None
        samples = _lib.opus_decode(self._state, payload, len(payload), self._pcm,
                                   self._capacity, 0)
        if samples < 0:
            raise ValueError(f"corrupt Opus packet ({samples})")
        return ctypes.string_at(self._address, 2 * samples)

    def conceal(self) -> bytes:
        """
        One packet interval of the decoder's own loss concealment.
        """
        assert _lib is not None
        samples = _lib.opus_decode(self._state, None, 0, self._pcm, self._conceal_samples, 0)
        return ctypes.string_at(self._address, 2 * samples) if samples > 0 else b""

    def recover(self, following: bytes) -> bytes:
        """
        One packet interval rebuilt from the in-band FEC of C{following}, the
        packet after the lost one (RFC 6716 section 2.1.7); libopus conceals
        when C{following} carries none.
        """
        assert _lib is not None
        samples = _lib.opus_decode(self._state, following, len(following), self._pcm,
                                   self._conceal_samples, 1)
        if samples < 0:
            return self.conceal()
        return ctypes.string_at(self._address, 2 * samples)

    def __del__(self) -> None:
        if _lib is not None and getattr(self, "_state", None):
            _lib.opus_decoder_destroy(self._state)


class OpusEncoder:
    """
    16-bit mono PCM at C{rate} in (whole 2.5-60 ms frames), one Opus packet per frame out.
    """

    def __init__(self, rate: int, bit_rate: int) -> None:
        _check_rate(rate)
        assert _lib is not None
        self.rate = rate
        error = _INT()
        self._state = _lib.opus_encoder_create(rate, 1, _APPLICATION, ctypes.byref(error))
        if not self._state:
            raise RuntimeError(f"opus_encoder_create failed ({error.value})")
        _lib.opus_encoder_ctl(self._state, _SET_BITRATE, bit_rate)
        _lib.opus_encoder_ctl(self._state, _SET_COMPLEXITY, COMPLEXITY)
        self._out = ctypes.create_string_buffer(_MAX_PACKET)
        self._out_address = ctypes.addressof(self._out)

    def encode(self, pcm: bytes) -> bytes:
        """
        One packet of the frame in C{pcm}; C{b""} if libopus refuses the frame size.
        """
        assert _lib is not None
        size = _lib.opus_encode(self._state, pcm, len(pcm) // 2, self._out, _MAX_PACKET)
        return ctypes.string_at(self._out_address, size) if size > 0 else b""

    def __del__(self) -> None:
        if _lib is not None and getattr(self, "_state", None):
            _lib.opus_encoder_destroy(self._state)
