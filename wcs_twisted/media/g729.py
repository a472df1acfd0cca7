# -*- test-case-name: tests.media.test_transcode -*-
"""
G.729 Annex A (RFC 3551 section 4.5.6) through Belledonne's bcg729 (Debian C{libbcg729-0}),
by ctypes.

FFmpeg decodes G.729 but cannot encode it; bcg729 does both, and its decoder conceals a lost
frame itself (frame erasure), which the jitter buffer asks for (L{G729Decoder.conceal}).
Frames are 10 ms (80 samples, 10 bytes); a 20 ms packet carries two.  We offer
C{annexb=no}, so no SID frames should come; a 2-byte SID is still decoded (comfort noise).
"""

from __future__ import annotations

import ctypes
from typing import Optional

from wcs_twisted.media._clib import load_library

__all__ = ["FRAME_BYTES", "FRAME_SAMPLES", "G729Decoder", "G729Encoder", "g729_available"]

FRAME_SAMPLES = 80
FRAME_BYTES = 10
_SID_BYTES = 2


_P = ctypes.c_void_p
_U8 = ctypes.c_uint8
_lib = load_library("bcg729", "libbcg729.so.0", {
    "initBcg729EncoderChannel": (_P, [_U8]),
    "initBcg729DecoderChannel": (_P, []),
    "closeBcg729EncoderChannel": (None, [_P]),
    "closeBcg729DecoderChannel": (None, [_P]),
    "bcg729Encoder": (None, [_P, _P, _P, ctypes.POINTER(_U8)]),
    "bcg729Decoder": (None, [_P, ctypes.c_char_p, _U8, _U8, _U8, _U8, _P]),
})


def g729_available() -> bool:
    """
    Whether libbcg729 could be loaded.
    """
    return _lib is not None


def _require() -> ctypes.CDLL:
    if _lib is None:
        raise RuntimeError("libbcg729 is not installed (Debian package libbcg729-0)")
    return _lib


class G729Encoder:
    """
    16-bit mono PCM at 8 kHz in, 10 bytes per 10 ms out (no VAD: every frame is speech).
    """

    rate = 8000

    def __init__(self) -> None:
        lib = _require()
        self._state = lib.initBcg729EncoderChannel(0)
        self._pcm = (ctypes.c_int16 * FRAME_SAMPLES)()
        self._out = (ctypes.c_uint8 * FRAME_BYTES)()
        self._length = ctypes.c_uint8()

    def encode(self, pcm: bytes) -> bytes:
        """
        Encode a whole number of 10 ms frames.
        """
        assert _lib is not None
        out = []
        for start in range(0, len(pcm) - FRAME_SAMPLES * 2 + 1, FRAME_SAMPLES * 2):
            ctypes.memmove(self._pcm, pcm[start:start + FRAME_SAMPLES * 2], FRAME_SAMPLES * 2)
            _lib.bcg729Encoder(self._state, self._pcm, self._out, ctypes.byref(self._length))
            out.append(bytes(self._out)[:self._length.value])
        return b"".join(out)

    def __del__(self) -> None:
        if _lib is not None and getattr(self, "_state", None):
            _lib.closeBcg729EncoderChannel(self._state)


class G729Decoder:
    """
    G.729 payloads in, 16-bit mono PCM at 8 kHz out; L{conceal} erases one 20 ms packet.
    """

    rate = 8000

    def __init__(self) -> None:
        lib = _require()
        self._state = lib.initBcg729DecoderChannel()
        self._pcm = (ctypes.c_int16 * FRAME_SAMPLES)()

    def _frame(self, data: Optional[bytes], erased: bool, sid: bool) -> bytes:
        assert _lib is not None
        _lib.bcg729Decoder(self._state, data, 0 if data is None else len(data), erased, sid,
                           0, self._pcm)
        return bytes(self._pcm)

    def decode(self, payload: bytes) -> bytes:
        """
        Every 10-byte frame of one packet (and a trailing SID frame), as PCM.
        """
        out = []
        offset = 0
        while len(payload) - offset >= FRAME_BYTES:
            out.append(self._frame(payload[offset:offset + FRAME_BYTES], False, False))
            offset += FRAME_BYTES
        if len(payload) - offset == _SID_BYTES:
            out.append(self._frame(payload[offset:], False, True))
        return b"".join(out)

    def conceal(self) -> bytes:
        """
        Two erased frames (one 20 ms packet) of the decoder's concealment.
        """
        return self._frame(None, True, False) + self._frame(None, True, False)

    def __del__(self) -> None:
        if _lib is not None and getattr(self, "_state", None):
            _lib.closeBcg729DecoderChannel(self._state)
