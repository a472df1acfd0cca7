# -*- test-case-name: tests.rest.test_throttle -*-
"""
Failed-login throttling per client address, so a REST password cannot be guessed at wire speed.

After C{max_failures} wrong logins within C{window} seconds an address is refused (429) for
C{window} seconds without its password being checked at all: a guess made while blocked teaches
nothing.  A right login resets the count.  IPv6 clients count per /64, the block an ISP hands one
subscriber, so rotating addresses inside it buys nothing.  The table is bounded: past
C{max_sources} the least recently seen address is forgotten.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

#: Addresses remembered at most; each entry is a few hundred bytes.
MAX_SOURCES = 10000


def source_key(host: str) -> str:
    """
    The unit a limit applies to: the IPv4 address, or the IPv6 /64 (an IPv4-mapped address is
    its IPv4 address).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass
class _Record:
    first_failure: float
    failures: int
    blocked_until: float = 0.0


class FailureThrottle:
    """
    Counts failed logins per source; says whether a source is blocked and for how long.
    """

    def __init__(self, clock: IReactorTime, max_failures: int, window: float,
                 max_sources: int = MAX_SOURCES) -> None:
        """
        @param max_failures: failures within C{window} that block a source; 0 never blocks.
        """
        self._clock = clock
        self._max_failures = max_failures
        self._window = window
        self._max_sources = max_sources
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def retry_after(self, host: str) -> int:
        """
        Whole seconds until C{host} may try again; 0 when it is not blocked.
        """
        record = self._records.get(source_key(host))
        if record is None:
            return 0
        remaining = record.blocked_until - self._clock.seconds()
        return math.ceil(remaining) if remaining > 0 else 0

    def failed(self, host: str) -> int:
        """
        Count one failed login from C{host}.

        @return: seconds C{host} is now blocked for (0: not blocked).
        """
        if self._max_failures == 0:
            return 0
        key, now = source_key(host), self._clock.seconds()
        self._forget_stale(now)
        record = self._records.pop(key, None)
        if record is None or now - record.first_failure >= self._window \
                or 0 < record.blocked_until <= now:
            record = _Record(first_failure=now, failures=0)
        record.failures += 1
        self._records[key] = record
        if len(self._records) > self._max_sources:
            self._records.popitem(last=False)
        if record.failures >= self._max_failures:
            record.blocked_until = now + self._window
            return math.ceil(self._window)
        return 0

    def _forget_stale(self, now: float) -> None:
        """
        Drop the least recently seen sources whose window and block are over.
        """
        while self._records:
            record = next(iter(self._records.values()))
            if now - record.first_failure < self._window or record.blocked_until > now:
                return
            self._records.popitem(last=False)

    def succeeded(self, host: str) -> None:
        """
        A right login from C{host}: forget its failures.
        """
        self._records.pop(source_key(host), None)
