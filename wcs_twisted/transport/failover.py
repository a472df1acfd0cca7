# -*- test-case-name: tests.transport.test_dns -*-
"""
Which resolved target a destination given by name sends to, and moving on when it fails
(RFC 3263 4.3).

The transaction layer addresses a request to the name (C{sip:user@provider.test}); the resolver
turns it into ordered IP targets.  Requests go to the first target not marked down.  A target is
marked down, and the requests it left unanswered are sent again to the next target, when a
transport error comes back from it (ICMP unreachable, connection refused or lost, or a connection
and TLS handshake not done within the same silence: L{wcs_twisted.transport.stream}) or when it
has left a request unanswered for C{silence_timeout} seconds and the request is sent again (a UDP
retransmission) or, over TCP and TLS where nothing is retransmitted, when that silence has passed
(L{abandoned}, watched by the stack), or when it answers 503 (L{reject}).  Only when no target is left do the
transactions fail (RFC 3261 17.1.4).

After a transport error or a 503 the stack sends the request to the next target as a new
client transaction (L{wcs_twisted.transport.retarget}); a retransmission after silence stays in
its transaction (same branch), since the first server may yet answer it.
"""

from __future__ import annotations

from collections import OrderedDict

from wcs_twisted.sip.address import SIPAddress

#: Destinations remembered (they come from URIs peers write): the oldest are forgotten first.
MAX_DESTINATIONS = 4096

#: Unanswered requests kept per target and destination.
MAX_UNANSWERED = 32


class TargetFailover:
    """
    Current target per destination, targets marked down, and the requests each target has not
    answered yet.
    """

    def __init__(self, *, down_for: float = 30.0, silence_timeout: float = 4.0,
                 window: float = 32.0) -> None:
        """
        @param down_for: seconds a failed target is skipped.
        @param silence_timeout: seconds without a word from a target after a request, after
            which a retransmission goes to the next target (0: only transport errors count).
        @param window: seconds an unanswered request is kept for sending again (Timer B).
        """
        self.down_for = down_for
        self.silence_timeout = silence_timeout
        self.window = window
        self.failovers = 0
        self._routes: OrderedDict[SIPAddress, tuple[tuple[SIPAddress, ...], SIPAddress]] = \
            OrderedDict()
        self._down: dict[SIPAddress, float] = {}
        # host -> (target, destination) -> [(time sent, request bytes)]
        self._unanswered: dict[str, dict[tuple[SIPAddress, SIPAddress],
                                         list[tuple[float, bytes]]]] = {}

    def choose(self, destination: SIPAddress, targets: tuple[SIPAddress, ...],
               now: float) -> SIPAddress | None:
        """
        The target for a message to C{destination} now.  When every target is down, the first
        one: it may be back, and the transaction fails anyway if it is not.
        """
        if not targets:
            return None
        route = self._routes.get(destination)
        current = route[1] if route is not None else None
        if current in targets and not self.is_down(current, now):
            if self._silent(current, destination, now):
                following = self._first_up(targets, now, skip=current)
                if following is not None:
                    self._mark_down(current, now)
                    self._forget(current, destination)
                    self.failovers += 1
                    current = following
        else:
            current = self._first_up(targets, now) or targets[0]
        self._routes[destination] = (targets, current)
        self._routes.move_to_end(destination)
        while len(self._routes) > MAX_DESTINATIONS:
            self._routes.popitem(last=False)
        return current

    def sent(self, target: SIPAddress, destination: SIPAddress, data: bytes, now: float) -> None:
        """
        C{data} went to C{target} for C{destination}: a request (not ACK) awaits an answer.
        """
        if data.startswith((b"SIP/", b"ACK ")):
            return
        kept = self._unanswered.setdefault(target.host, {}).setdefault((target, destination), [])
        if any(data == sent_data for _, sent_data in kept):
            return  # a retransmission: kept once, with its first send time
        while kept and (len(kept) >= MAX_UNANSWERED or now - kept[0][0] >= self.window):
            del kept[0]  # its transaction has timed out by now
        kept.append((now, data))

    def heard_from(self, host: str) -> None:
        """
        A message came from C{host}: the targets there are alive (a server may answer from
        another port than the one its SRV record names).
        """
        if self._unanswered:
            self._unanswered.pop(host, None)

    def failed(self, target: SIPAddress, now: float):
        """
        A transport error from C{target}.  Yields C{(destination, requests)}: C{requests} to send
        again (to the next target), or None when the transactions to C{destination} must fail
        (no target left, or C{target} had answered them and the connection is gone).
        """
        kept = self._unanswered.get(target.host, {})
        pending = {destination: [data for sent, data in kept.pop((target, destination))
                                 if now - sent < self.window]
                   for (sent_to, destination) in list(kept) if sent_to == target}
        if pending:
            self._mark_down(target, now)
        destinations = set(pending) | {destination for destination, (_, current)
                                       in self._routes.items() if current == target}
        for destination in destinations:
            targets, _ = self._routes.get(destination, ((), None))
            following = self._first_up(targets, now, skip=target)
            requests = pending.get(destination)
            if following is not None and requests:
                self.failovers += 1
                self._routes[destination] = (targets, following)
                yield destination, requests
            else:
                yield destination, None

    def reject(self, destination: SIPAddress, now: float, down_for: float | None = None) -> bool:
        """
        C{destination}'s current target answered 503 (RFC 3263 4.3): skip it for C{down_for}
        seconds (its Retry-After), else L{down_for}.  True when another target is up, which
        then gets C{destination}'s requests.
        """
        targets, current = self._routes.get(destination, ((), None))
        following = self._first_up(targets, now, skip=current)
        if current is None or following is None:
            return False
        self._down[current] = now + (self.down_for if down_for is None else down_for)
        self._forget(current, destination)
        self._routes[destination] = (targets, following)
        self.failovers += 1
        return True

    def abandoned(self, target: SIPAddress, destination: SIPAddress, now: float) -> bool:
        """
        Whether C{target} has left C{destination}'s requests unanswered for the silence
        timeout while another target is up: then it is to be treated as failed.  A lone
        target is waited for (its transactions' own timers judge it).
        """
        targets, current = self._routes.get(destination, ((), None))
        return (current == target and self._silent(target, destination, now)
                and self._first_up(targets, now, skip=target) is not None)

    def oldest_unanswered(self, target: SIPAddress, destination: SIPAddress) -> float | None:
        """
        When the oldest request C{target} has left unanswered for C{destination} was sent.
        """
        kept = self._unanswered.get(target.host, {}).get((target, destination))
        return kept[0][0] if kept else None

    def is_down(self, target: SIPAddress, now: float) -> bool:
        until = self._down.get(target)
        if until is None:
            return False
        if until <= now:
            del self._down[target]
            return False
        return True

    def _mark_down(self, target: SIPAddress, now: float) -> None:
        self._down[target] = now + self.down_for

    def _first_up(self, targets, now: float, skip: SIPAddress | None = None):
        for target in targets:
            if target != skip and not self.is_down(target, now):
                return target
        return None

    def _silent(self, target: SIPAddress, destination: SIPAddress, now: float) -> bool:
        if not self.silence_timeout:
            return False
        kept = self._unanswered.get(target.host, {}).get((target, destination))
        return bool(kept) and now - kept[0][0] >= self.silence_timeout

    def _forget(self, target: SIPAddress, destination: SIPAddress) -> None:
        self._unanswered.get(target.host, {}).pop((target, destination), None)
