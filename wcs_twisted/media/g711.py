# -*- test-case-name: tests.media.test_g711 -*-
"""
G.711 mu-law and A-law by table, and the attenuation of 16-bit PCM that loss concealment
needs, without a codec context or a per-sample Python loop.

A transcoded call runs one G.711 conversion per packet each way; through PyAV that was an
C{AVFrame} and an C{AVPacket} per 20 ms, and the repeat-and-fade concealment shifted samples
one by one in Python.  Here decoding is two C{bytes.translate} calls and an interleave,
encoding one pass of a 64 KiB table, attenuation byte tables plus one big-integer C{or};
all run at C speed in the standard library, with no NumPy and no C{audioop} (removed in
Python 3.13).

The code words follow ITU-T G.711 as FFmpeg's C{pcm_mulaw}/C{pcm_alaw} do (tests compare
every input with FFmpeg's).  PCM is signed 16-bit mono in native byte order.

Encoding is the one step the standard library cannot do in C: a 64 KiB table looked up per
sample was a Python-level call per sample (~8 us a 20 ms packet, thread CPU); NumPy looks the
same table up in one vectorised gather (~1.7 us).  With an Opus browser and a G.711 phone that
is one packet in four.  NumPy is imported by the first encoding, not before: it adds 12-16 MiB to
the process, which a server that only relays never pays.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional

__all__ = ["ALAW", "ULAW", "G711Codec", "attenuate"]

_LITTLE = sys.byteorder == "little"


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


def _encoding_table(to_linear, mask: int) -> bytes:
    """
    Code word per 16-bit sample (indexed unsigned): the nearest of the law's levels, the
    decision thresholds halfway between neighbouring levels on the 14-bit scale.
    """
    levels = [to_linear(i ^ mask) for i in range(128)]  # magnitudes, rising
    thresholds = [(levels[i] + levels[i + 1] + 4) >> 3 for i in range(127)]
    by_magnitude = bytearray(8192)
    level = 0
    for magnitude in range(8192):
        while level < 127 and thresholds[level] <= magnitude:
            level += 1
        by_magnitude[magnitude] = level
    table = bytearray(0x10000)
    for index in range(0x10000):
        scaled = (index - 0x10000 if index & 0x8000 else index) >> 2
        if scaled >= 0:
            table[index] = by_magnitude[scaled] ^ mask
        else:
            table[index] = by_magnitude[min(-scaled, 8191)] ^ mask ^ 0x80
    return bytes(table)


def _split(value: int) -> tuple[int, int]:
    """
    (first byte, second byte) of a 16-bit sample in native order.
    """
    value &= 0xFFFF
    low, high = value & 0xFF, value >> 8
    return (low, high) if _LITTLE else (high, low)


class G711Codec:
    """
    One G.711 law: payload bytes <-> 16-bit PCM at 8 kHz.
    """

    rate = 8000

    def __init__(self, to_linear, mask: int) -> None:
        linear = [to_linear(code) for code in range(256)]
        self._first = bytes(_split(v)[0] for v in linear)
        self._second = bytes(_split(v)[1] for v in linear)
        self._encode = _encoding_table(to_linear, mask)
        #: PCM -> code words, made on first use (L{_table_lookup}).
        self._lookup: Optional[Callable[[bytes], bytes]] = None
        #: 20 ms of zero level.
        self.silence = bytes([mask]) * 160

    def decode(self, payload: bytes) -> bytes:
        """
        PCM of a payload: each code word's two bytes from a table, interleaved.
        """
        pcm = bytearray(2 * len(payload))
        pcm[0::2] = payload.translate(self._first)
        pcm[1::2] = payload.translate(self._second)
        return bytes(pcm)

    def encode(self, pcm: bytes) -> bytes:
        """
        The code words of PCM samples.
        """
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = _table_lookup(self._encode)
        return lookup(pcm)


def _table_lookup(table: bytes) -> Callable[[bytes], bytes]:
    """
    A function looking up each 16-bit sample of its PCM argument in C{table}, by NumPy's
    gather (imported here: see the module docstring).
    """
    import numpy

    codes = numpy.frombuffer(table, dtype=numpy.uint8)
    frombuffer, uint16 = numpy.frombuffer, numpy.uint16
    return lambda pcm: codes[frombuffer(pcm, dtype=uint16)].tobytes()


ULAW = G711Codec(_ulaw_to_linear, 0xFF)
ALAW = G711Codec(_alaw_to_linear, 0xD5)


def _shift_tables(shift: int) -> tuple[bytes, bytes, bytes]:
    """
    For an arithmetic right shift of 16-bit samples by C{shift}: the new high byte from the
    old one, the new low byte's bits from the old low byte, and from the old high byte.
    """
    high = bytes(((h - 256 if h & 0x80 else h) >> shift) & 0xFF for h in range(256))
    low = bytes(v >> shift for v in range(256))
    carry = bytes(((h << (8 - shift)) & 0xFF) for h in range(256))
    return high, low, carry


_SHIFTS = {shift: _shift_tables(shift) for shift in range(1, 8)}


def attenuate(pcm: bytes, shift: int) -> bytes:
    """
    C{pcm} with every sample arithmetically shifted right by C{shift} (1-7: 6 dB each).

    Per byte lane by C{translate}; the two sources of the new low byte never share a bit,
    so they are joined by one C{or} of big integers.
    """
    high_table, low_table, carry_table = _SHIFTS[shift]
    lo, hi = (0, 1) if _LITTLE else (1, 0)
    low, high = pcm[lo::2], pcm[hi::2]
    joined = (int.from_bytes(low.translate(low_table), "little")
              | int.from_bytes(high.translate(carry_table), "little"))
    out = bytearray(len(pcm))
    out[lo::2] = joined.to_bytes(len(low), "little")
    out[hi::2] = high.translate(high_table)
    return bytes(out)
