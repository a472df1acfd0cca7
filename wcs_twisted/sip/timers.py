# -*- test-case-name: tests.sip.test_timers -*-
"""
SIP transaction timer values (RFC 3261 section 17 and table 4, RFC 6026).

Every timer of the transaction layer is derived from three base values, T1, T2
and T4, plus two fixed durations (Timer C and Timer D).  Keeping them in one
frozen value means that a test or a deployment can scale all timers at once
(for example ``TimerValues(t1=0.1)``) without any magic number in the state
machines.

Timers whose value depends on whether the transport is reliable (D, I, J, K)
are methods taking ``reliable``; a value of C{0.0} means "fires at once", in
which case the state machines skip the state entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TimerValues", "DEFAULT_TIMERS"]


@dataclass(frozen=True, slots=True)
class TimerValues:
    """
    The base timer values of RFC 3261 section 17.1.1.1 and table 4, in seconds.

    @ivar t1: RTT estimate (default 500 ms).
    @ivar t2: maximum retransmit interval for non-INVITE requests and INVITE
        responses (default 4 s).
    @ivar t4: maximum duration a message remains in the network (default 5 s).
    @ivar td: Timer D for unreliable transports; RFC 3261 requires at least
        32 s (default 32 s).
    @ivar tc: Timer C, the proxy INVITE transaction timeout; RFC 3261 16.6
        requires more than 3 minutes (default 180 s).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    td: float = 32.0
    tc: float = 180.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4", "td", "tc"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"timer value {name} must be positive, not {value!r}")
        if self.t2 < self.t1:
            raise ValueError("t2 must not be smaller than t1")

    # -- client INVITE (17.1.1) -------------------------------------------

    @property
    def timer_a(self) -> float:
        """INVITE request retransmit interval, initially T1 (unreliable only)."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE transaction timeout, 64*T1."""
        return 64 * self.t1

    @property
    def timer_c(self) -> float:
        """Proxy INVITE transaction timeout (RFC 3261 16.6 step 11)."""
        return self.tc

    def timer_d(self, reliable: bool) -> float:
        """Wait time for response retransmissions: >= 32 s unreliable, 0 reliable."""
        return 0.0 if reliable else self.td

    @property
    def timer_m(self) -> float:
        """Client INVITE Accepted-state duration, 64*T1 (RFC 6026 section 8.4)."""
        return 64 * self.t1

    # -- client non-INVITE (17.1.2) ---------------------------------------

    @property
    def timer_e(self) -> float:
        """Non-INVITE request retransmit interval, initially T1 (unreliable only)."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE transaction timeout, 64*T1."""
        return 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Wait time for response retransmits: T4 unreliable, 0 reliable."""
        return 0.0 if reliable else self.t4

    # -- server INVITE (17.2.1) -------------------------------------------

    @property
    def timer_g(self) -> float:
        """INVITE final response retransmit interval, initially T1 (unreliable only)."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for ACK receipt, 64*T1 (all transports)."""
        return 64 * self.t1

    def timer_i(self, reliable: bool) -> float:
        """Wait time for ACK retransmits: T4 unreliable, 0 reliable."""
        return 0.0 if reliable else self.t4

    @property
    def timer_l(self) -> float:
        """Server INVITE Accepted-state duration, 64*T1 (RFC 6026 section 8.7)."""
        return 64 * self.t1

    # -- server non-INVITE (17.2.2) ---------------------------------------

    def timer_j(self, reliable: bool) -> float:
        """Wait time for non-INVITE request retransmits: 64*T1 unreliable, 0 reliable."""
        return 0.0 if reliable else 64 * self.t1

    # -- retransmission back-off --------------------------------------------

    def backoff(self, interval: float, capped: bool = True) -> float:
        """
        Return the retransmit interval following C{interval}: doubled, and
        limited to T2 when C{capped} (Timers E and G; Timer A is not capped).
        """
        interval = interval * 2
        if capped and interval > self.t2:
            return self.t2
        return interval


DEFAULT_TIMERS = TimerValues()
