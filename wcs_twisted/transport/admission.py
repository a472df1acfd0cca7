# -*- test-case-name: tests.transport.test_admission -*-
"""
Admission of SIP requests before they cost a parse or a transaction: a per-source rate limit
(Kamailio's pike) and load shedding when the process is overloaded.

A flood from one address must not starve the others, and a server over its capacity must refuse
new work cheaply instead of letting every transaction retransmit (the collapse of a loaded UDP
proxy).  Both decisions are made per message with no I/O; the stack applies them.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from wcs_twisted.sip.stateless import StatelessAnswers, read_request
from wcs_twisted.sip.transaction import TransactionKey

#: Addresses a rate limit leaves alone unless told otherwise: local processes (a proxy or test
#: tool on the same host) are as trusted as the server itself.
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")

#: Marks an exempt source in the bucket table.
_EXEMPT = None


class SourceRateLimit:
    """
    One token bucket per source IP address: C{rate} requests per second, bursts of C{burst}.

    The table is bounded by C{max_sources}: when it is full, buckets that have refilled (their
    source has been quiet long enough to be forgotten without changing any answer) are dropped,
    then the oldest half if that was not enough.

    @ivar limited: requests refused so far.
    """

    def __init__(self, rate: float = 100.0, burst: float = 200.0,
                 exempt: Iterable[str] = LOOPBACK_NETWORKS, max_sources: int = 65536) -> None:
        """
        @param rate: requests per second per source; 0 turns the limit off.
        @param exempt: networks (CIDR or single addresses) never limited.
        """
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.exempt = tuple(ipaddress.ip_network(network, strict=False) for network in exempt)
        self.max_sources = max_sources
        self.limited = 0
        self._buckets: dict[str, list[float] | None] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, host: str, now: float) -> bool:
        """
        Take one token from C{host}'s bucket; False when it has none left.
        """
        if self.rate <= 0:
            return True
        buckets = self._buckets
        bucket = buckets.get(host, False)
        if bucket is _EXEMPT:
            return True
        if bucket is False:
            if len(buckets) >= self.max_sources:
                self._expire(now)
                buckets = self._buckets  # _expire makes a new table
            if self._is_exempt(host):
                buckets[host] = _EXEMPT
                return True
            buckets[host] = [self.burst - 1.0, now]
            return True
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            self.limited += 1
            return False
        bucket[0] = tokens - 1.0
        return True

    def _is_exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)

    def _expire(self, now: float) -> None:
        full = self.burst
        rate = self.rate
        self._buckets = {
            host: bucket for host, bucket in self._buckets.items()
            if bucket is not _EXEMPT and bucket[0] + (now - bucket[1]) * rate < full
        }
        if len(self._buckets) >= self.max_sources:
            keep = list(self._buckets.items())[len(self._buckets) // 2:]
            self._buckets = dict(keep)


class ReactorLag:
    """
    A periodic tick on C{clock}; how late it runs is how late the reactor runs everything else.

    The reactor is C{lagging} after two ticks in a row were late by more than C{max_lag}: one
    late tick is a pause (a GC, a slow callback), two are a backlog.
    """

    def __init__(self, clock: IReactorTime, interval: float = 0.1, max_lag: float = 0.3) -> None:
        self.clock = clock
        self.interval = interval
        self.max_lag = max_lag
        self.lag = 0.0
        self.lagging = False
        self._call: IDelayedCall | None = None
        self._due = 0.0

    @property
    def running(self) -> bool:
        return self._call is not None

    def start(self) -> None:
        if self._call is None and self.max_lag > 0:
            self._schedule()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.lag = 0.0
        self.lagging = False

    def _schedule(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        lag = self.clock.seconds() - self._due
        self.lagging = lag > self.max_lag and self.lag > self.max_lag
        self.lag = lag
        self._schedule()


class LoadShedding:
    """
    Whether new work is refused now: the message waited too long before we read it, the
    reactor lags, or the transactions alive are over C{max_transactions} (each holds memory
    until its Timer J/K/L ends, up to 32 s).

    The wait is the one measure that sees the whole backlog: past saturation most of it sits in
    the UDP socket's receive buffer (megabytes: thousands of requests), where the reactor's
    ticks run on time between reads and so never look late.  A request that waited longer than
    its client's first retransmission interval (T1, 500 ms) has already been sent again: serving
    it is work the client has partly given up on.

    @ivar shed: requests refused so far.
    """

    def __init__(self, lag: ReactorLag, max_transactions: int = 50000,
                 retry_after: int = 5, max_queue_delay: float = 0.0) -> None:
        """
        @param max_transactions: 0 turns the bound off.
        @param retry_after: seconds in the Retry-After of the 503 (RFC 3261 21.5.4).
        @param max_queue_delay: seconds a message may have waited between its arrival and our
            reading it (kernel receive timestamps, UDP only); 0 turns the check off.
        """
        self.lag = lag
        self.max_transactions = max_transactions
        self.retry_after = retry_after
        self.max_queue_delay = max_queue_delay
        self.shed = 0

    def overloaded(self, transactions: int, waited: float = 0.0) -> str | None:
        """
        Why new requests are refused now, or None.

        @param waited: seconds the message waited before it was read (0: unknown).
        """
        if self.max_queue_delay and waited > self.max_queue_delay:
            return f"waited {waited * 1000:.0f} ms to be read"
        if self.lag.lagging:
            return f"reactor {self.lag.lag * 1000:.0f} ms late"
        if self.max_transactions and transactions >= self.max_transactions:
            return f"{transactions} transactions"
        return None


#: What L{RawShedding.screen} returns for a datagram to drop unanswered.
ABSORBED = b""

#: How long after a stateless refusal its ACK may come (64 * T1, RFC 3261 17.2.1's Timer H).
ACK_WINDOW = 32.0


class RawShedding:
    """
    L{LoadShedding} applied to a datagram's raw bytes, before its parse: a new INVITE or
    REGISTER refused with a 503 written from the lines it needs (L{wcs_twisted.sip.stateless}),
    and the ACK of such a 503 absorbed, each for a small part of what a parse costs.

    What cannot be decided from the bytes (an unusual request, one within a dialog, a
    retransmission of a request that has a transaction) is left to the full path.

    @ivar absorbed: ACKs of our stateless refusals dropped so far.
    """

    log = Logger()

    def __init__(self, load: LoadShedding, answers: StatelessAnswers) -> None:
        self.load = load
        self.answers = answers
        self.absorbed = 0
        self._last_refusal: float | None = None
        self._reported_at = float("-inf")
        self._reported_count = 0

    def _report(self, reason: str, now: float) -> None:
        """
        One log line per second at most while shedding (a line per refusal would cost more
        than the refusal): how many were refused since the last line, and why the latest.
        """
        if now - self._reported_at < 1.0:
            return
        self.log.info("SIP overload: {count} new INVITE/REGISTER answered 503 since the last "
                      "report ({reason})", count=self.load.shed - self._reported_count,
                      reason=reason)
        self._reported_at, self._reported_count = now, self.load.shed

    def screen(self, data: bytes, waited: float, transactions: int,
               known: Callable[[TransactionKey], object], now: float) -> bytes | None:
        """
        A 503 to send for C{data}, L{ABSORBED} to drop it, or None to parse and serve it.

        @param known: the live transaction with a key, if any (a retransmission is not refused).
        """
        if data.startswith(b"INVITE ") or data.startswith(b"REGISTER "):
            reason = self.load.overloaded(transactions, waited)
            if reason is None:
                return None
            request = read_request(data)
            if request is None or request.to_tag is not None or known(request.server_key):
                return None
            self.load.shed += 1
            self._last_refusal = now
            self._report(reason, now)
            return self.answers.unavailable(request, self.load.retry_after)
        if (data.startswith(b"ACK ") and self._last_refusal is not None
                and now - self._last_refusal <= ACK_WINDOW):
            request = read_request(data)
            if request is not None and self.answers.answers(request):
                self.absorbed += 1
                return ABSORBED
        return None
