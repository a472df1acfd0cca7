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
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from wcs_twisted.sip.address import SIPAddress

__all__ = ["MAX_PENDING", "MAX_UNANSWERED", "RETRY_AFTER", "ForwardingBounds"]

#: Proxied requests in progress at once.
MAX_PENDING = 10000
#: Client transactions without any response yet to one destination.
MAX_UNANSWERED = 32
#: Seconds a client refused with 503 is asked to wait.
RETRY_AFTER = 5


class ForwardingBounds:
    """
    The proxy's counts of unanswered transactions per destination, and the admission check.
    """

    log = Logger()

    def __init__(self, max_pending: int = MAX_PENDING,
                 max_unanswered: int = MAX_UNANSWERED) -> None:
        self.max_pending = max_pending
        self.max_unanswered = max_unanswered
        self._unanswered: dict[SIPAddress, int] = {}
        self._logged: set[Any] = set()  # causes refused and logged, until they clear

    def started(self, destination: SIPAddress) -> None:
        """
        A client transaction to C{destination} was started.
        """
        self._unanswered[destination] = self._unanswered.get(destination, 0) + 1

    def answered(self, destination: SIPAddress) -> None:
        """
        One of them had its first response, or failed (timeout, transport error).
        """
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
                    if self._unanswered.get(destination, 0) < self.max_unanswered]
        if admitted:
            return admitted, None
        destination = targets[0][1]
        self._once(destination, "{count} requests to {destination} without any response",
                   count=self._unanswered.get(destination, 0), destination=str(destination))
        return [], "Destination not answering"

    def clear(self) -> None:
        self._unanswered.clear()
        self._logged.clear()

    def _once(self, cause, text: str, **fields) -> None:
        if cause not in self._logged:
            self._logged.add(cause)
            self.log.info(text + "; answering 503 until it clears", **fields)
