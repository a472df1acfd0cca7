# -*- test-case-name: tests.sip.test_transaction -*-
# Over 600 lines as one piece: the four RFC 3261 17 machines share one base and one timer model.
"""
The four transaction state machines of RFC 3261 section 17, as corrected by
RFC 6026 (the Accepted state for INVITE 2xx on both sides).

Each machine is sans-I/O in the aioquic style.  It is driven by three kinds
of input:

  - the transaction user: the constructor (a client transaction sends its
    request at once) and C{respond(response, now)} on server transactions;
  - the network: C{receive_response(response, now)} on client transactions,
    C{receive_request(request, now)} (retransmissions, ACK) on server ones,
    and C{transport_error(now)};
  - time: C{handle_timer(now)} once C{now >= get_timer()}.

Outputs are drained by the caller: C{messages_to_send()} returns the encoded
messages to write (each message is serialized once; retransmissions reuse the
bytes), C{next_event()} the L{events <wcs_twisted.sip.events>} for the
transaction user, and C{get_timer()} the next deadline (or None).

A transaction never reads a clock; every deadline is computed from the
C{now} passed in.  Timers whose value is zero on reliable transports (D, I,
J, K) make the machine go straight to Terminated.

Deliberate behaviours worth knowing:

  - an INVITE client transaction stops Timers A and B on the first
    provisional response, so in Proceeding it has no timer; ending a call
    that is never answered is the transaction user's job (Timer C for a
    proxy, a no-answer timeout for a UA);
  - the ACK for a 2xx is not part of any transaction (RFC 6026): the client
    transaction passes every 2xx up and the server transaction hands an ACK
    it receives in Accepted up as L{AckReceived};
  - an INVITE server transaction sends C{100 Trying} at once unless told not
    to (RFC 3261 17.2.1 allows skipping it only when the TU answers within
    200 ms, which the transaction cannot know).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple, Optional

from wcs_twisted.sip.errors import LocalProtocolError
from wcs_twisted.sip.events import (
    AckReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.message import MAGIC_COOKIE, Request, Response
from wcs_twisted.sip.timers import TimerValues

__all__ = [
    "MAGIC_COOKIE",
    "TransactionState",
    "END_STATES",
    "TransactionKey",
    "client_key",
    "response_key",
    "server_key",
    "Transaction",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "build_ack",
    "create_cancel",
]



class TransactionState(enum.Enum):
    """Transaction states, named as in RFC 3261 figures 5-8 and RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


END_STATES = frozenset({TransactionState.TERMINATED})

CALLING = TransactionState.CALLING
TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
CONFIRMED = TransactionState.CONFIRMED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED

#: Timers whose expiry is a transaction failure reported to the TU.
_FAILURE_TIMERS = frozenset({"B", "F", "H"})


class TransactionKey(NamedTuple):
    """
    Identity of a transaction in the matching tables (RFC 3261 17.1.3 and
    17.2.3).  Treat it as opaque: compare and hash it, do not build it.

    Client keys are C{(False, branch, "", method)}.  Server keys are
    C{(True, branch, sent_by, method)} where an ACK uses the method INVITE;
    for RFC 2543 requests (no magic cookie) C{branch} is replaced by a
    string made of the Call-ID, From tag, CSeq number, Request-URI and the
    old branch, which also matches the ACK and the CANCEL of an INVITE.
    """

    server: bool
    branch: str
    sent_by: str
    method: str


def client_key(request: Request) -> TransactionKey:
    """
    Return the key of the client transaction that sends C{request}.

    @raise LocalProtocolError: the request has no top Via with an RFC 3261
        branch; a client transaction needs one (RFC 3261 8.1.1.7).
    """
    branch = request.top_via.branch
    if not branch or not branch.startswith(MAGIC_COOKIE):
        raise LocalProtocolError(
            f"client transactions need a Via branch starting with {MAGIC_COOKIE}, got {branch!r}"
        )
    return TransactionKey(False, branch, "", request.method)


def response_key(response: Response) -> Optional[TransactionKey]:
    """
    Return the key of the client transaction C{response} belongs to
    (RFC 3261 17.1.3: top Via branch and CSeq method), or None when the top
    Via has no branch.
    """
    branch = response.top_via.branch
    if not branch:
        return None
    return TransactionKey(False, branch, "", response.cseq.method)


def server_key(request: Request, method: Optional[str] = None) -> TransactionKey:
    """
    Return the key of the server transaction C{request} belongs to
    (RFC 3261 17.2.3), with the RFC 2543 fallback when the branch lacks the
    magic cookie.  An ACK maps to its INVITE; pass C{method="INVITE"} to find
    the INVITE a CANCEL refers to (RFC 3261 9.2).
    """
    via = request.top_via
    branch = via.branch
    if method is None:
        method = request.method
        if method == "ACK":
            method = "INVITE"
    host = via.host.lower()
    sent_by = host if via.port is None else f"{host}:{via.port}"
    if branch and branch.startswith(MAGIC_COOKIE):
        return TransactionKey(True, branch, sent_by, method)
    legacy = "\x00".join(
        (
            "",
            request.call_id,
            request.from_.tag or "",
            str(request.cseq.number),
            str(request.uri),
            branch or "",
        )
    )
    return TransactionKey(True, legacy, sent_by, method)


def _first_via(request: Request) -> str:
    value = request.headers.get("Via")
    if value is None:
        raise LocalProtocolError("the request has no Via")
    return value


def build_ack(request: Request, response: Response) -> Request:
    """
    Build the ACK for a 300-699 final response to the INVITE C{request}
    (RFC 3261 17.1.1.3): same Request-URI, Call-ID, From, CSeq number and
    top Via (so it has the INVITE's branch), the response's To (with its
    tag), the INVITE's Route set, no body.
    """
    original = request.headers
    headers = Headers()
    headers.add("Via", _first_via(request))
    for route in original.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", original.get("Max-Forwards") or "70")
    headers.add("From", original.get("From"))
    headers.add("To", response.headers.get("To"))
    headers.add("Call-ID", original.get("Call-ID"))
    headers.add("CSeq", f"{request.cseq.number} ACK")
    return Request("ACK", request.uri, headers)


def create_cancel(request: Request) -> Request:
    """
    Build the CANCEL for C{request} (RFC 3261 9.1): same Request-URI,
    Call-ID, From, To (tags included), CSeq number, a single Via equal to the
    request's top Via, and its Route set.
    """
    if request.method == "ACK":
        raise LocalProtocolError("an ACK cannot be cancelled")
    original = request.headers
    headers = Headers()
    headers.add("Via", _first_via(request))
    for route in original.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", original.get("Max-Forwards") or "70")
    headers.add("From", original.get("From"))
    headers.add("To", original.get("To"))
    headers.add("Call-ID", original.get("Call-ID"))
    headers.add("CSeq", f"{request.cseq.number} CANCEL")
    return Request("CANCEL", request.uri, headers)


class Transaction:
    """
    What the four machines share: identity, output queues and the two timer
    slots (one retransmission timer: A, E or G; one timeout timer: B, D, F,
    H, I, J, K, L or M).

    @ivar key: the L{TransactionKey}.
    @ivar request: the request that created the transaction.
    @ivar reliable: whether the transport is reliable (no retransmissions).
    @ivar timers: the L{TimerValues} in use.
    @ivar state: the current L{TransactionState}.
    @ivar destination: opaque transport address messages are sent to (used
        by the transaction layer; None when unused).
    """

    __slots__ = (
        "key",
        "request",
        "reliable",
        "timers",
        "state",
        "destination",
        "_outgoing",
        "_events",
        "_retransmit_at",
        "_interval",
        "_timeout_at",
        "_timeout_timer",
        "_scheduled",
    )

    #: Whether the machine is an INVITE one (only INVITE) or a non-INVITE
    #: one (anything but INVITE and ACK); set by the four concrete classes.
    _invite = False
    #: What the machine does with its request, for the error message.
    _verb = "handle"

    def __init__(
        self,
        request: Request,
        reliable: bool,
        timers: TimerValues,
        now: float,
        *,
        key: Optional[TransactionKey] = None,
        destination: Any = None,
    ) -> None:
        method = request.method
        if (method != "INVITE") if self._invite else (method in ("INVITE", "ACK")):
            raise LocalProtocolError(f"{type(self).__name__} cannot {self._verb} {method}")
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.destination = destination
        self.key = key if key is not None else self._make_key(request)
        self._outgoing: list[bytes] = []
        self._events: list = []
        self._retransmit_at: Optional[float] = None
        self._interval = 0.0
        self._timeout_at: Optional[float] = None
        self._timeout_timer = ""
        # Deadline last handed to a scheduler (TransactionLayer bookkeeping).
        self._scheduled: Optional[float] = None
        self._begin(timers, now)

    def _begin(self, timers: TimerValues, now: float) -> None:  # pragma: no cover
        """Enter the initial state and start the initial timers."""
        raise NotImplementedError

    def _make_key(self, request: Request) -> TransactionKey:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key.method} {self.key.branch!r} {self.state.value}>"

    # -- outputs ------------------------------------------------------------

    def messages_to_send(self) -> list[bytes]:
        """Return and forget the encoded messages waiting to be sent."""
        outgoing = self._outgoing
        self._outgoing = []
        return outgoing

    def next_event(self):
        """Return the next event for the transaction user, or None."""
        if self._events:
            return self._events.pop(0)
        return None

    def get_timer(self) -> Optional[float]:
        """Return the earliest deadline at which L{handle_timer} must be called."""
        retransmit_at = self._retransmit_at
        timeout_at = self._timeout_at
        if retransmit_at is None:
            return timeout_at
        if timeout_at is None or retransmit_at < timeout_at:
            return retransmit_at
        return timeout_at

    @property
    def terminated(self) -> bool:
        """Whether the transaction reached the Terminated state."""
        return self.state is TERMINATED

    # -- inputs -------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire the timers whose deadline is at or before C{now}."""
        timeout_at = self._timeout_at
        if timeout_at is not None and now >= timeout_at:
            self._fire_timeout(self._timeout_timer)
            return
        retransmit_at = self._retransmit_at
        if retransmit_at is not None and now >= retransmit_at:
            self._retransmit(now)

    def transport_error(self, now: float) -> None:
        """
        The transport failed to send one of our messages (RFC 3261 17.1.4,
        17.2.4): inform the TU and terminate.
        """
        if self.state is TERMINATED:
            return
        self._events.append(
            TransportErrorOccurred(
                transaction_key=self.key, request=self.request, destination=self.destination
            )
        )
        self._terminate()

    # -- helpers for subclasses ---------------------------------------------

    def _retransmit(self, now: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _start_retransmissions(self, interval: float, now: float) -> None:
        if not self.reliable:
            self._interval = interval
            self._retransmit_at = now + interval

    def _start_timeout(self, timer: str, duration: float, now: float) -> None:
        if duration <= 0:
            self._fire_timeout(timer)
        else:
            self._timeout_timer = timer
            self._timeout_at = now + duration

    def _fire_timeout(self, timer: str) -> None:
        if timer in _FAILURE_TIMERS:
            self._events.append(
                TransactionTimedOut(transaction_key=self.key, request=self.request, timer=timer)
            )
        self._terminate()

    def _terminate(self) -> None:
        self.state = TERMINATED
        self._retransmit_at = None
        self._timeout_at = None
        self._events.append(TransactionTerminated(transaction_key=self.key))


class _ClientTransaction(Transaction):
    __slots__ = ("_request_bytes",)

    _verb = "send"

    def _begin(self, timers: TimerValues, now: float) -> None:
        self._request_bytes = self.request.serialize()
        self._outgoing.append(self._request_bytes)

    def _make_key(self, request: Request) -> TransactionKey:
        return client_key(request)

    def receive_response(self, response: Response, now: float) -> None:  # pragma: no cover
        raise NotImplementedError


class ClientInviteTransaction(_ClientTransaction):
    """
    INVITE client transaction (RFC 3261 17.1.1, figure 5 as amended by
    RFC 6026 figure 3): Calling -> Proceeding -> Accepted | Completed ->
    Terminated.

    @ivar ack: the ACK this transaction generated for a 300-699 response,
        or None.
    @ivar cancel_requested: set by the transaction layer when the TU asked
        to cancel before any provisional response arrived (RFC 3261 9.1).
    """

    __slots__ = ("ack", "_ack_bytes", "cancel_requested")

    _invite = True

    def _begin(self, timers: TimerValues, now: float) -> None:
        super()._begin(timers, now)
        self.state = CALLING
        self.ack: Optional[Request] = None
        self._ack_bytes = b""
        self.cancel_requested = False
        self._start_retransmissions(timers.timer_a, now)
        self._start_timeout("B", timers.timer_b, now)

    def _retransmit(self, now: float) -> None:
        # Timer A: retransmit and double, without the T2 cap (17.1.1.2).
        self._outgoing.append(self._request_bytes)
        self._interval = self.timers.backoff(self._interval, capped=False)
        self._retransmit_at = now + self._interval

    def receive_response(self, response: Response, now: float) -> None:
        """Handle a response matching this transaction (RFC 3261 17.1.1.2)."""
        state = self.state
        code = response.status_code
        if state is CALLING or state is PROCEEDING:
            self._retransmit_at = None
            self._timeout_at = None
            self._events.append(ResponseReceived(response=response, transaction_key=self.key))
            if code < 200:
                self.state = PROCEEDING
            elif code < 300:
                self.state = ACCEPTED
                self._start_timeout("M", self.timers.timer_m, now)
            else:
                self.state = COMPLETED
                self.ack = build_ack(self.request, response)
                self._ack_bytes = self.ack.serialize()
                self._outgoing.append(self._ack_bytes)
                self._start_timeout("D", self.timers.timer_d(self.reliable), now)
        elif state is COMPLETED:
            if code >= 300:
                # A retransmitted final response: answer with the same ACK.
                self._outgoing.append(self._ack_bytes)
        elif state is ACCEPTED:
            if 200 <= code < 300:
                self._events.append(ResponseReceived(response=response, transaction_key=self.key))


class ClientNonInviteTransaction(_ClientTransaction):
    """
    Non-INVITE client transaction (RFC 3261 17.1.2, figure 6): Trying ->
    Proceeding -> Completed -> Terminated.
    """

    __slots__ = ()

    def _begin(self, timers: TimerValues, now: float) -> None:
        super()._begin(timers, now)
        self.state = TRYING
        self._start_retransmissions(timers.timer_e, now)
        self._start_timeout("F", timers.timer_f, now)

    def _retransmit(self, now: float) -> None:
        # Timer E: doubles up to T2 in Trying, is T2 in Proceeding (17.1.2.2).
        self._outgoing.append(self._request_bytes)
        if self.state is PROCEEDING:
            self._interval = self.timers.t2
        else:
            self._interval = self.timers.backoff(self._interval)
        self._retransmit_at = now + self._interval

    def receive_response(self, response: Response, now: float) -> None:
        """Handle a response matching this transaction (RFC 3261 17.1.2.2)."""
        state = self.state
        if state is not TRYING and state is not PROCEEDING:
            return
        if response.status_code < 200:
            self.state = PROCEEDING
            self._events.append(ResponseReceived(response=response, transaction_key=self.key))
        else:
            self.state = COMPLETED
            self._retransmit_at = None
            self._timeout_at = None
            self._events.append(ResponseReceived(response=response, transaction_key=self.key))
            self._start_timeout("K", self.timers.timer_k(self.reliable), now)


class _ServerTransaction(Transaction):
    __slots__ = ("last_response", "_response_bytes")

    _verb = "serve"

    def _begin(self, timers: TimerValues, now: float) -> None:
        self.last_response: Optional[Response] = None
        self._response_bytes = b""

    def _make_key(self, request: Request) -> TransactionKey:
        return server_key(request)

    def _send_response(self, response: Response) -> None:
        self.last_response = response
        self._response_bytes = response.serialize()
        self._outgoing.append(self._response_bytes)

    def _resend_response(self) -> None:
        if self._response_bytes:
            self._outgoing.append(self._response_bytes)

    def _retransmit(self, now: float) -> None:
        # Timer G: the final response, doubling up to T2 (17.2.1).
        self._outgoing.append(self._response_bytes)
        self._interval = self.timers.backoff(self._interval)
        self._retransmit_at = now + self._interval


class ServerInviteTransaction(_ServerTransaction):
    """
    INVITE server transaction (RFC 3261 17.2.1, figure 7 as amended by
    RFC 6026 figure 5): Proceeding -> Accepted | Completed -> Confirmed ->
    Terminated.

    @ivar last_response: the last response sent, or None.
    """

    __slots__ = ()

    _invite = True

    def __init__(
        self,
        request: Request,
        reliable: bool,
        timers: TimerValues,
        now: float,
        *,
        key: Optional[TransactionKey] = None,
        destination: Any = None,
        send_trying: bool = True,
    ) -> None:
        super().__init__(request, reliable, timers, now, key=key, destination=destination)
        if send_trying:
            self._send_response(request.create_response(100))

    def respond(self, response: Response, now: float) -> None:
        """
        Send a response from the TU (RFC 3261 17.2.1, RFC 6026 8.5-8.7).

        @raise LocalProtocolError: a final response was already sent (apart
            from further 2xx in Accepted, which are passed on).
        """
        code = response.status_code
        state = self.state
        if state is PROCEEDING:
            self._send_response(response)
            if code < 200:
                return
            if code < 300:
                self.state = ACCEPTED
                self._start_timeout("L", self.timers.timer_l, now)
            else:
                self.state = COMPLETED
                self._start_retransmissions(self.timers.timer_g, now)
                self._start_timeout("H", self.timers.timer_h, now)
        elif state is ACCEPTED and 200 <= code < 300:
            self._send_response(response)
        else:
            raise LocalProtocolError(
                f"cannot send {code} on an INVITE server transaction in state {state.value}"
            )

    def _begin(self, timers: TimerValues, now: float) -> None:
        super()._begin(timers, now)
        self.state = PROCEEDING

    def transport_error(self, now: float) -> None:
        """
        The transport failed to send one of our responses: inform the TU and
        terminate (RFC 3261 17.2.4), except in Accepted where the transaction
        stays until Timer L so that later 2xx from the TU can still be sent
        (RFC 6026 figure 5).
        """
        if self.state is ACCEPTED:
            self._events.append(
                TransportErrorOccurred(
                    transaction_key=self.key, request=self.request, destination=self.destination
                )
            )
            return
        super().transport_error(now)

    def receive_request(self, request: Request, now: float, source: Any = None) -> None:
        """
        Handle an INVITE retransmission or an ACK matching this transaction
        (RFC 3261 17.2.1, RFC 6026 8.7).
        """
        state = self.state
        if request.method == "ACK":
            if state is COMPLETED:
                self.state = CONFIRMED
                self._retransmit_at = None
                self._timeout_at = None
                self._start_timeout("I", self.timers.timer_i(self.reliable), now)
            elif state is ACCEPTED:
                self._events.append(
                    AckReceived(request=request, source=source, transaction_key=self.key)
                )
        elif state is PROCEEDING or state is COMPLETED:
            # Retransmitted INVITE: repeat the last response (none in
            # Proceeding if no provisional was sent).  Absorbed in Accepted
            # and Confirmed.
            self._resend_response()


class ServerNonInviteTransaction(_ServerTransaction):
    """
    Non-INVITE server transaction (RFC 3261 17.2.2, figure 8): Trying ->
    Proceeding -> Completed -> Terminated.

    @ivar last_response: the last response sent, or None.
    """

    __slots__ = ()

    def _begin(self, timers: TimerValues, now: float) -> None:
        super()._begin(timers, now)
        self.state = TRYING

    def respond(self, response: Response, now: float) -> None:
        """
        Send a response from the TU (RFC 3261 17.2.2).

        @raise LocalProtocolError: a final response was already sent.
        """
        state = self.state
        if state is not TRYING and state is not PROCEEDING:
            raise LocalProtocolError(
                f"cannot send {response.status_code} on a non-INVITE server transaction"
                f" in state {state.value}"
            )
        self._send_response(response)
        if response.status_code < 200:
            self.state = PROCEEDING
        else:
            self.state = COMPLETED
            self._start_timeout("J", self.timers.timer_j(self.reliable), now)

    def receive_request(self, request: Request, now: float, source: Any = None) -> None:
        """
        Handle a retransmission of the request (RFC 3261 17.2.2): absorbed
        in Trying, answered with the last response afterwards.
        """
        if self.state is PROCEEDING or self.state is COMPLETED:
            self._resend_response()
