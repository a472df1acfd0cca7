# -*- test-case-name: tests.ua.test_invite_session -*-
"""
Reliable provisional responses (RFC 3262, option tag 100rel, PRACK) for an INVITE session.

Carriers and PBXs send their 180/183 with C{Require: 100rel} and wait for a PRACK before they go
on (or give up on the call), and some call in with C{Require: 100rel}, so both roles are needed:
L{ProvisionalReceiver} tells a UAC which 1xx to PRACK, L{ReliableProvisionalSender} numbers a
UAS's 1xx and retransmits it until its PRACK arrives.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

from wcs_twisted.sip.message import Response, option_tags

#: The option tag of RFC 3262.
OPTION = "100rel"


def _number(text: str | None) -> int | None:
    try:
        value = int((text or "").strip())
    except ValueError:
        return None
    return value if 0 < value < 2 ** 32 else None


class ProvisionalReceiver:
    """
    The UAC half: each reliable 1xx is taken once, in RSeq order, and PRACKed (RFC 3262 4).
    """

    def __init__(self) -> None:
        #: The last RSeq taken, per early dialog (To tag).
        self._last: dict[str, int] = {}

    def accept(self, response: Response) -> tuple[bool, str | None]:
        """
        Whether C{response} is new to the session, and the RAck its PRACK carries (None when it
        needs none).  A retransmission, or one that overtook an earlier RSeq, is not new.
        """
        rseq = _number(response.headers.get("RSeq"))
        if OPTION not in option_tags(response, "Require") or rseq is None:
            return True, None
        tag = response.to.tag or ""
        last = self._last.get(tag)
        if last is not None and rseq != last + 1:
            return False, None
        self._last[tag] = rseq
        return True, f"{rseq} {response.cseq.number} {response.cseq.method}"


class ReliableProvisionalSender:
    """
    The UAS half: RSeq numbering, and each reliable 1xx sent again at T1, 2*T1, ... until its
    PRACK comes; after 64*T1 without one C{give_up} is called (RFC 3262 3).  One 1xx is
    outstanding at a time; later ones wait for the PRACK of the first.
    """

    log = Logger()

    def __init__(self, clock, t1: float, random, send: Callable[[Response], None],
                 give_up: Callable[[], None]) -> None:
        self.clock = clock
        self.t1 = t1
        self._send = send
        self._give_up = give_up
        self._rseq = random.randint(1, 2 ** 31 - 1)
        self._outstanding: Response | None = None
        self._queue: list[Response] = []
        self._timer = None
        self._interval = t1
        self._deadline = 0.0

    @property
    def outstanding(self) -> bool:
        return self._outstanding is not None

    def send(self, response: Response) -> None:
        """
        Send C{response} reliably: C{Require: 100rel} and the next RSeq.
        """
        response.headers.add("Require", OPTION)
        response.headers.add("RSeq", str(self._rseq))
        self._rseq += 1
        if self._outstanding is not None:
            self._queue.append(response)
            return
        self._start(response)

    def _start(self, response: Response) -> None:
        self._outstanding = response
        self._interval = self.t1
        self._deadline = self.clock.seconds() + 64 * self.t1
        self._send(response)
        self._timer = self.clock.callLater(self._interval, self._retransmit)

    def _retransmit(self) -> None:
        self._timer = None
        if self._outstanding is None:
            return
        if self.clock.seconds() >= self._deadline:
            self.log.info("no PRACK for {status} after 64*T1",
                          status=self._outstanding.status_code)
            self.stop()
            self._give_up()
            return
        self._send(self._outstanding)
        self._interval *= 2
        self._timer = self.clock.callLater(self._interval, self._retransmit)

    def prack_received(self, rack: str | None) -> bool:
        """
        A PRACK's RAck: True when it acknowledges the outstanding 1xx (which then stops).
        """
        response = self._outstanding
        parts = (rack or "").split()
        if response is None or len(parts) != 3:
            return False
        if (_number(parts[0]) != _number(response.headers.get("RSeq"))
                or _number(parts[1]) != response.cseq.number
                or parts[2].upper() != response.cseq.method):
            return False
        self._cancel_timer()
        self._outstanding = None
        if self._queue:
            self._start(self._queue.pop(0))
        return True

    def stop(self) -> None:
        """
        The final response went: nothing more is retransmitted.
        """
        self._cancel_timer()
        self._outstanding = None
        self._queue = []

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
