# -*- test-case-name: tests.ua.test_proxy_abuse -*-
"""
How much a flood of requests can make the proxy hold and send: a bound on the requests in
progress, and on the client transactions that have had no response yet per destination.

A request for a contact that never answers costs us 7 (INVITE) or 11 (non-INVITE) datagrams to
it over Timer B/F; without a bound, 3,000 INVITEs for a silent contact sent it 13,641.  Beyond
either bound a new request is answered 503 with Retry-After (RFC 3261 21.5.4), and the refusal
is logged once per cause until it clears, not once per request.

A request within a dialog (a To tag: BYE, re-INVITE, PRACK, UPDATE, INFO...) is new work for
nobody: it finishes or changes a call already accepted, and refusing a BYE leaves the call up at
both ends until their session timers, if any.  So it is never refused by the per-destination
bound (it still counts towards it, since the destination still owes an answer), and only at
twice C{max_pending} by the bound on requests in progress, which keeps memory bounded against
forged in-dialog requests (shed new work first, as RFC 7339 puts it).

A destination that answered within the last C{LIVE_WINDOW} seconds is alive, only slow for a
moment (a trunk or PBX taking every call, whose answers wait behind a scheduling hiccup): it may
have C{LIVE_FACTOR} times as many unanswered requests before new ones are refused.  At 500
calls/s through one trunk, 32 unanswered is 64 ms of delay, and refusing there failed calls to a
healthy peer; a contact that never answered still gets only C{max_unanswered}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from wcs_twisted.sip.address import SIPAddress

__all__ = ["MAX_PENDING", "MAX_UNANSWERED", "RETRY_AFTER", "ForwardingBounds"]

#: Proxied requests in progress at once.
MAX_PENDING = 10000
#: Client transactions without any response yet to one destination.
MAX_UNANSWERED = 32
#: Seconds since its last response during which a destination counts as alive.
LIVE_WINDOW = 0.5
#: How many times C{max_unanswered} an alive destination may owe answers for.
LIVE_FACTOR = 8
#: Seconds a client refused with 503 is asked to wait.
RETRY_AFTER = 5


class ForwardingBounds:
    """
    The proxy's counts of unanswered transactions per destination, and the admission check.
    """

    log = Logger()

    def __init__(self, max_pending: int = MAX_PENDING,
                 max_unanswered: int = MAX_UNANSWERED,
                 clock: IReactorTime | None = None) -> None:
        self.max_pending = max_pending
        self.max_unanswered = max_unanswered
        self._clock = clock
        self._unanswered: dict[SIPAddress, int] = {}
        self._heard: dict[SIPAddress, float] = {}  # destination -> time of its last response
        self._logged: set[Any] = set()  # causes refused and logged, until they clear

    def started(self, destination: SIPAddress) -> None:
        """
        A client transaction to C{destination} was started.
        """
        self._unanswered[destination] = self._unanswered.get(destination, 0) + 1

    def answered(self, destination: SIPAddress, heard: bool = True) -> None:
        """
        One of them had its first response (C{heard}), or failed (timeout, transport error).
        """
        if heard and self._clock is not None:
            now = self._clock.seconds()
            if destination not in self._heard and len(self._heard) >= self.max_pending:
                self._heard = {where: when for where, when in self._heard.items()
                               if now - when < LIVE_WINDOW}
            self._heard[destination] = now
        count = self._unanswered.get(destination, 0) - 1
        if count > 0:
            self._unanswered[destination] = count
        else:
            self._unanswered.pop(destination, None)
        if count < self.max_unanswered:
            self._logged.discard(destination)

    def admit(self, pending: int, targets: list,
              in_dialog: bool = False) -> tuple[list, str | None]:
        """
        The C{(uri, destination)} targets a request may go to with C{pending} requests in
        progress, or C{([], reason)} when it must be refused with 503.

        @param in_dialog: the request belongs to a dialog (its To has a tag).
        """
        if in_dialog:
            if pending < 2 * self.max_pending:
                return targets, None
            self._once("pending", "{count} proxied requests in progress", count=pending)
            return [], "Too many requests in progress"
        if pending >= self.max_pending:
            self._once("pending", "{count} proxied requests in progress", count=pending)
            return [], "Too many requests in progress"
        if pending < self.max_pending // 2:
            self._logged.discard("pending")
        admitted = [(uri, destination) for uri, destination in targets
                    if self._unanswered.get(destination, 0) < self._limit(destination)]
        if admitted:
            return admitted, None
        destination = targets[0][1]
        self._once(destination, "{count} requests to {destination} without any response",
                   count=self._unanswered.get(destination, 0), destination=str(destination))
        return [], "Destination not answering"

    def _limit(self, destination: SIPAddress) -> int:
        """
        How many unanswered requests C{destination} may owe: more when it answered lately.
        """
        heard = self._heard.get(destination)
        if heard is not None and self._clock.seconds() - heard < LIVE_WINDOW:
            return self.max_unanswered * LIVE_FACTOR
        return self.max_unanswered

    def clear(self) -> None:
        self._heard.clear()
        self._unanswered.clear()
        self._logged.clear()

    def _once(self, cause, text: str, **fields) -> None:
        if cause not in self._logged:
            self._logged.add(cause)
            self.log.info(text + "; answering 503 until it clears", **fields)
