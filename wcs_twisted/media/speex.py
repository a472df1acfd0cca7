# -*- test-case-name: tests.media.test_transcode -*-
"""
Speex (RFC 5574) through the system's libspeex (Debian C{libspeex1}), by ctypes.

FFmpeg only decodes Speex (and wants an Ogg header for it), so encoding needs the reference
library anyway; decoding through it too gives the codec's own packet loss concealment, which
the jitter buffer asks for when a packet is lost (L{SpeexDecoder.conceal}).

Narrow band (8 kHz, 160 samples) and wide band (16 kHz, 320 samples), one 20 ms frame per
packet when encoding; packets holding several frames are decoded whole.
"""

from __future__ import annotations

import ctypes

from wcs_twisted.media._clib import load_library

__all__ = ["SpeexDecoder", "SpeexEncoder", "speex_available"]

_SPEEX_SET_QUALITY = 4
_SPEEX_GET_FRAME_SIZE = 3
_SPEEX_SET_ENH = 0
_MODES = {8000: 0, 16000: 1}  # SPEEX_MODEID_NB, SPEEX_MODEID_WB
#: At most this many frames are read from one packet (RFC 5574 allows several).
_MAX_FRAMES = 8
#: Bits left in a packet after its last frame are padding (a terminator, at most a byte).
_PADDING_BITS = 8
#: Encoder quality 8: 15 kb/s narrow band, 27.8 kb/s wide band (speexenc's default).
QUALITY = 8


class _Bits(ctypes.Structure):
    # SpeexBits (speex_bits.h), with room to spare.
    _fields_ = [("chars", ctypes.c_char_p), ("nbBits", ctypes.c_int), ("charPtr", ctypes.c_int),
                ("bitPtr", ctypes.c_int), ("owner", ctypes.c_int), ("overflow", ctypes.c_int),
                ("buf_size", ctypes.c_int), ("reserved1", ctypes.c_int),
                ("reserved2", ctypes.c_void_p), ("_spare", ctypes.c_char * 32)]


_BITS = ctypes.POINTER(_Bits)
_P = ctypes.c_void_p
_lib = load_library("speex", "libspeex.so.1", {
    "speex_lib_get_mode": (_P, [ctypes.c_int]),
    "speex_encoder_init": (_P, [_P]),
    "speex_decoder_init": (_P, [_P]),
    "speex_encoder_ctl": (ctypes.c_int, [_P, ctypes.c_int, _P]),
    "speex_decoder_ctl": (ctypes.c_int, [_P, ctypes.c_int, _P]),
    "speex_encode_int": (ctypes.c_int, [_P, _P, _BITS]),
    "speex_decode_int": (ctypes.c_int, [_P, _BITS, _P]),
    "speex_bits_write": (ctypes.c_int, [_BITS, ctypes.c_char_p, ctypes.c_int]),
    "speex_bits_read_from": (None, [_BITS, ctypes.c_char_p, ctypes.c_int]),
    "speex_bits_init": (None, [_BITS]),
    "speex_bits_destroy": (None, [_BITS]),
    "speex_bits_reset": (None, [_BITS]),
    "speex_bits_remaining": (ctypes.c_int, [_BITS]),
    "speex_bits_insert_terminator": (None, [_BITS]),
    "speex_encoder_destroy": (None, [_P]),
    "speex_decoder_destroy": (None, [_P]),
})


def speex_available() -> bool:
    """
    Whether libspeex could be loaded.
    """
    return _lib is not None


class _SpeexState:
    """
    What encoder and decoder share: the library state, its frame size and a bit buffer.
    """

    def __init__(self, rate: int, init, ctl) -> None:
        if _lib is None:
            raise RuntimeError("libspeex is not installed (Debian package libspeex1)")
        if rate not in _MODES:
            raise ValueError(f"Speex runs at 8000 or 16000 Hz, not {rate}")
        self.rate = rate
        self._state = init(_lib.speex_lib_get_mode(_MODES[rate]))
        size = ctypes.c_int()
        ctl(self._state, _SPEEX_GET_FRAME_SIZE, ctypes.byref(size))
        self.frame_size = size.value
        self._bits = _Bits()
        _lib.speex_bits_init(ctypes.byref(self._bits))
        self._pcm = (ctypes.c_int16 * self.frame_size)()


class SpeexEncoder(_SpeexState):
    """
    16-bit mono PCM in, one Speex frame per 20 ms out.
    """

    def __init__(self, rate: int, quality: int = QUALITY) -> None:
        assert _lib is not None
        super().__init__(rate, _lib.speex_encoder_init, _lib.speex_encoder_ctl)
        value = ctypes.c_int(quality)
        _lib.speex_encoder_ctl(self._state, _SPEEX_SET_QUALITY, ctypes.byref(value))
        self._out = ctypes.create_string_buffer(256)

    def encode(self, pcm: bytes) -> bytes:
        """
        Encode exactly one frame (C{frame_size} samples, native byte order).
        """
        assert _lib is not None
        ctypes.memmove(self._pcm, pcm, self.frame_size * 2)
        bits = ctypes.byref(self._bits)
        _lib.speex_bits_reset(bits)
        _lib.speex_encode_int(self._state, self._pcm, bits)
        _lib.speex_bits_insert_terminator(bits)
        size = _lib.speex_bits_write(bits, self._out, len(self._out))
        return self._out.raw[:size]

    def __del__(self) -> None:
        if _lib is not None and getattr(self, "_state", None):
            _lib.speex_encoder_destroy(self._state)
            _lib.speex_bits_destroy(ctypes.byref(self._bits))


class SpeexDecoder(_SpeexState):
    """
    Speex payloads in, 16-bit mono PCM out; L{conceal} extrapolates a lost frame.
    """

    def __init__(self, rate: int) -> None:
        assert _lib is not None
        super().__init__(rate, _lib.speex_decoder_init, _lib.speex_decoder_ctl)
        on = ctypes.c_int(1)
        _lib.speex_decoder_ctl(self._state, _SPEEX_SET_ENH, ctypes.byref(on))

    def decode(self, payload: bytes) -> bytes:
        """
        Every frame of one packet, as PCM; C{b""} when the packet is corrupt.
        """
        assert _lib is not None
        bits = ctypes.byref(self._bits)
        _lib.speex_bits_read_from(bits, payload, len(payload))
        out = []
        for _ in range(_MAX_FRAMES):
            if _lib.speex_bits_remaining(bits) < _PADDING_BITS:
                break
            if _lib.speex_decode_int(self._state, bits, self._pcm) != 0:
                break
            out.append(bytes(self._pcm))
        return b"".join(out)

    def conceal(self) -> bytes:
        """
        One frame of the decoder's own loss concealment.
        """
        assert _lib is not None
        _lib.speex_decode_int(self._state, None, self._pcm)
        return bytes(self._pcm)

    def __del__(self) -> None:
        if _lib is not None and getattr(self, "_state", None):
            _lib.speex_decoder_destroy(self._state)
            _lib.speex_bits_destroy(ctypes.byref(self._bits))
