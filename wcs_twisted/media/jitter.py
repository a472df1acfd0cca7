# -*- test-case-name: tests.media.test_jitter -*-
"""
The jitter buffer in front of a transcoder's decoder: puts packets back in sequence order
and turns each lost packet into one call of the decoder's concealment, so the encoder on
the other leg gets a continuous signal (a gap would shift every later timestamp).

It is driven by arrivals only, without a timer: in-order packets go straight through (no
added delay in the common case); a packet after a gap waits until C{depth} later packets
have arrived (C{depth} x 20 ms, 60 ms by default) for the missing one, which is then
declared lost and concealed - or, for a codec with in-band FEC (Opus, RFC 6716 2.1.7),
rebuilt from the redundancy the packet after it carries, which is at hand by then.
Playout timing is left to the receiver on the other leg (the browser's own jitter buffer),
which smooths the arrival jitter that passes through here.
"""

from __future__ import annotations

from typing import Callable, Optional

__all__ = ["DEPTH", "JitterBuffer"]

#: Packets held at most while waiting for a missing one (20 ms each).
DEPTH = 3
#: At most this many packets of one gap are concealed (100 ms); a longer gap is a pause.
MAX_CONCEALED = 5
#: A sequence jump larger than this (either way) is a new source, not loss or reordering.
RESYNC = 100


class JitterBuffer:
    """
    Reorders packets by RTP sequence number and reports losses.

    @ivar lost: packets declared lost (each concealed, up to L{MAX_CONCEALED} per gap).
    @ivar late: packets dropped because they came after their turn (or twice).
    @ivar recovered: packets that came out of order but in time (not concealed).
    @ivar repaired: lost packets handed to C{repair} (the last of each gap).
    """

    def __init__(self, deliver: Callable[[bytes], None], conceal: Callable[[], None],
                 depth: int = DEPTH,
                 repair: Optional[Callable[[bytes], None]] = None) -> None:
        """
        @param deliver: called with each payload, in sequence order.
        @param conceal: called once per lost packet, in its place.
        @param depth: packets to hold after a gap before declaring it lost.
        @param repair: called instead of C{conceal} for the last packet of a
            gap, with the payload that follows it (whose FEC may rebuild it).
        """
        self._deliver = deliver
        self._conceal = conceal
        self._repair = repair
        self.repaired = 0
        self._depth = depth
        self._next: int | None = None
        self._held: dict[int, bytes] = {}
        self.lost = 0
        self.late = 0
        self.recovered = 0

    def push(self, sequence: int, payload: bytes) -> None:
        """
        One received packet's sequence number and payload.
        """
        expected = self._next
        if expected is None or (sequence == expected and not self._held):
            self._next = (sequence + 1) & 0xFFFF
            self._deliver(payload)
            return
        delta = ((sequence - expected + 0x8000) & 0xFFFF) - 0x8000
        if delta < -RESYNC or delta > RESYNC:
            self._flush()
            self._next = (sequence + 1) & 0xFFFF
            self._deliver(payload)
            return
        if delta < 0 or sequence in self._held:
            self.late += 1
            return
        if delta == 0:
            self.recovered += 1
        self._held[sequence] = payload
        self._drain(max(delta, max((s - expected) & 0xFFFF for s in self._held)))

    def _drain(self, newest: int) -> None:
        held = self._held
        while held:
            expected = self._next
            assert expected is not None
            payload = held.pop(expected, None)
            if payload is not None:
                self._deliver(payload)
                self._next = (expected + 1) & 0xFFFF
                newest -= 1
                continue
            if newest < self._depth:
                return
            # The missing packet waited long enough: conceal it (a long gap only in part).
            gap = min(held, key=lambda s: (s - expected) & 0xFFFF)
            missing = (gap - expected) & 0xFFFF
            concealed = min(missing, MAX_CONCEALED)
            if self._repair is not None:
                concealed -= 1
            for _ in range(concealed):
                self._conceal()
            if self._repair is not None:
                self.repaired += 1
                self._repair(held[gap])
            self.lost += missing
            self._next = gap
            newest -= missing

    def _flush(self) -> None:
        """
        Deliver what is held, in order, without concealing (the source changed).
        """
        expected = self._next or 0
        for sequence in sorted(self._held, key=lambda s: (s - expected) & 0xFFFF):
            self._deliver(self._held.pop(sequence))
