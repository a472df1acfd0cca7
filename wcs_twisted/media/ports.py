# -*- test-case-name: tests.media.test_ports -*-
"""
The pool of RTP/RTCP port pairs from the configured media port range.

Every call leg takes an even RTP port with RTCP on the next odd one
(RFC 3550 section 11) and must give it back on every exit path - answered,
rejected, cancelled, failed half-way through setup.  A L{PortReservation} is
the only way to hold a pair: releasing it is idempotent, so a second release
(an errback after a normal close) can never free a pair that was meanwhile
handed to another call.

Pairs are drawn at random from the free ones: handed out in order, the next
call's ports are predictable, and a flood aimed at them from anywhere races
the real peer for the first packet (the CVE-2017-14099 "RTP bleed" set-up).
A random free pair is also rarely the one just freed, so stray packets of
the previous call seldom reach the next.
"""

from __future__ import annotations

import random
from types import TracebackType
from typing import Callable, Optional, TypeVar

__all__ = ["PortPool", "PortPoolExhausted", "PortReservation"]

T = TypeVar("T")

#: How many pairs L{PortPool.bind} tries before giving up.
BIND_ATTEMPTS = 32


class PortPoolExhausted(RuntimeError):
    """
    Every RTP port pair of the configured range is in use: a local resource
    limit, to be answered like an overload (SIP 503), not blamed on the peer.
    """


class PortReservation:
    """
    One RTP/RTCP port pair taken from a L{PortPool}; a context manager that
    releases the pair on exit.

    @ivar rtp_port: the even RTP port.
    @ivar rtcp_port: C{rtp_port + 1}.
    """

    __slots__ = ("rtp_port", "rtcp_port", "_pool", "_released")

    def __init__(self, pool: "PortPool", rtp_port: int) -> None:
        self._pool = pool
        self.rtp_port = rtp_port
        self.rtcp_port = rtp_port + 1
        self._released = False

    @property
    def released(self) -> bool:
        """
        Whether the pair went back to the pool.
        """
        return self._released

    def release(self) -> None:
        """
        Give the pair back to the pool; later calls do nothing.
        """
        if not self._released:
            self._released = True
            self._pool._give_back(self.rtp_port)

    def __enter__(self) -> "PortReservation":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<PortReservation {self.rtp_port}/{self.rtcp_port} {state}>"


class PortPool:
    """
    Even RTP ports (with RTCP on port + 1) from the inclusive range
    C{low}..C{high}, handed out at random.
    """

    def __init__(self, low: int, high: int, rng: Optional[random.Random] = None) -> None:
        """
        @param rng: chooses among the free pairs; a C{SystemRandom} unless
            given (tests pass a seeded one).
        """
        if not (0 < low <= high <= 65535):
            raise ValueError(f"invalid RTP port range {low}-{high}")
        first = low + (low & 1)
        ports = range(first, high, 2)  # port + 1 must also be <= high
        if not ports:
            raise ValueError(
                f"RTP port range {low}-{high} holds no even/odd port pair"
            )
        self.low = low
        self.high = high
        self._all = frozenset(ports)
        self._rng = rng if rng is not None else random.SystemRandom()
        # The free pairs in no particular order: a random index is swapped
        # with the last one and popped, so allocation is O(1).
        self._free: list[int] = list(ports)
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        """
        How many pairs the range holds.
        """
        return len(self._all)

    @property
    def available(self) -> int:
        """
        How many pairs are free now.
        """
        return len(self._free)

    @property
    def in_use(self) -> int:
        """
        How many pairs are held.
        """
        return len(self._in_use)

    def allocate(self) -> PortReservation:
        """
        Take a free pair chosen at random.

        @raise PortPoolExhausted: if every pair is held.
        """
        free = self._free
        if not free:
            raise PortPoolExhausted(
                f"all {self.capacity} RTP port pairs of {self.low}-{self.high}"
                " are in use"
            )
        index = self._rng.randrange(len(free))
        free[index], free[-1] = free[-1], free[index]
        port = free.pop()
        self._in_use.add(port)
        return PortReservation(self, port)

    def bind(
        self,
        bind: Callable[[PortReservation], T],
        busy: tuple[type[BaseException], ...] = (OSError,),
        attempts: int = BIND_ATTEMPTS,
    ) -> tuple[PortReservation, T]:
        """
        Allocate pairs and call C{bind} with each until one binds, at most
        C{attempts} times: a pair that raises one of C{busy} (a port another
        process holds) is kept aside until this call ends, so each attempt
        tries a different pair, then released.  C{bind} must undo its own
        partial work before raising.  Any other error releases the pair and
        propagates.

        @raise PortPoolExhausted: if no pair is free, or every pair tried was
            busy (chained to the last busy error).
        @return: the reservation and what C{bind} returned.
        """
        busy_pairs: list[PortReservation] = []
        last: Optional[BaseException] = None
        try:
            for _ in range(attempts):
                if not self._free and busy_pairs:
                    break
                reservation = self.allocate()
                try:
                    return reservation, bind(reservation)
                except busy as e:
                    last = e
                    busy_pairs.append(reservation)
                except BaseException:
                    reservation.release()
                    raise
            raise PortPoolExhausted(
                f"no RTP port pair of {self.low}-{self.high} could be bound:"
                f" {len(busy_pairs)} tried, all held by other processes"
            ) from last
        finally:
            for reservation in busy_pairs:
                reservation.release()

    def release(self, reservation: PortReservation) -> None:
        """
        Give C{reservation} back; the same as C{reservation.release()}.

        @raise ValueError: if the reservation came from another pool.
        """
        if reservation._pool is not self:
            raise ValueError(f"{reservation!r} does not belong to this pool")
        reservation.release()

    def _give_back(self, port: int) -> None:
        if port in self._in_use:
            self._in_use.remove(port)
            self._free.append(port)

    def __repr__(self) -> str:
        return (
            f"<PortPool {self.low}-{self.high} "
            f"{self.in_use}/{self.capacity} in use>"
        )
