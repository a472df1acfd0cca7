# -*- test-case-name: tests.transport.test_retarget -*-
"""
A request for a destination given by name moves to the next resolved target as a NEW client
transaction (RFC 3263 4.3), while its transaction user keeps the one key it was given.

RFC 3263 4.3 asks for a new branch when a request goes to the next target after a 503 or a
transport error: the next server must see a transaction of its own, not a stray retransmission
(a proxy between us and both targets would take the same branch for a loop, RFC 3261 16.3).
The stack starts that transaction here and rewrites the events of the new one to the key the
user holds, and drops the events of the abandoned one; so an L{InviteSession} or a proxy
branch that cancels with its key cancels the transaction in flight.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wcs_twisted.sip.events import TransactionTerminated
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.address import SIPAddress


@dataclasses.dataclass
class Attempt:
    """
    One client transaction sent to a name: what to send again, where, and for which user key.
    """

    request: Request
    destination: SIPAddress
    user_key: Any
    answered: bool = False


def with_new_branch(request: Request, branch: str) -> Request:
    """
    A copy of C{request} whose top Via names C{branch}; a proxy's loop mark (after the last
    "-" of the old branch, RFC 3261 16.6 step 8) is kept.
    """
    via = request.top_via
    old = via.branch or ""
    if "-" in old:
        branch += old[old.rindex("-"):]
    headers = request.headers.copy()
    headers.pop_first("Via")
    headers.prepend("Via", str(via.with_params(branch=branch)))
    return Request(request.method, request.uri, headers, request.body)


class Retargeting:
    """
    The client transactions sent to names, and which key each one stands for.
    """

    def __init__(self) -> None:
        self._attempts: dict[Any, Attempt] = {}
        self._current: dict[Any, Any] = {}
        self._abandoned: set[Any] = set()
        self.retargeted = 0

    def __len__(self) -> int:
        return len(self._attempts)

    def track(self, key, request: Request, destination: SIPAddress) -> None:
        self._attempts[key] = Attempt(request, destination, key)
        self._current[key] = key

    def attempt(self, key) -> Attempt | None:
        return self._attempts.get(key)

    def current(self, user_key):
        """
        The transaction now in flight for C{user_key} (itself unless it moved).
        """
        return self._current.get(user_key, user_key)

    def moved(self, old_key, new_key, request: Request) -> None:
        """
        C{old_key}'s request went again as C{new_key}: events of C{old_key} are dropped from now.
        """
        attempt = self._attempts.pop(old_key)
        self._abandoned.add(old_key)
        self._attempts[new_key] = Attempt(request, attempt.destination, attempt.user_key)
        self._current[attempt.user_key] = new_key
        self.retargeted += 1

    def translate(self, event):
        """
        C{event} as its user must see it: under the user's key, or None for an abandoned one.
        """
        key = getattr(event, "transaction_key", None)
        if key in self._abandoned:
            if isinstance(event, TransactionTerminated):
                self._abandoned.discard(key)
            return None
        attempt = self._attempts.get(key)
        if attempt is None:
            return event
        if isinstance(event, TransactionTerminated):
            del self._attempts[key]
            self._current.pop(attempt.user_key, None)
        if attempt.user_key == key:
            return event
        return dataclasses.replace(event, transaction_key=attempt.user_key)
