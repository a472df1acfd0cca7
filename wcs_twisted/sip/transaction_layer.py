# -*- test-case-name: tests.sip.test_transaction_layer -*-
"""
The SIP transaction layer (RFC 3261 section 17): one object that owns every
client and server transaction of a SIP stack.

It matches incoming messages to transactions (RFC 3261 17.1.3 and 17.2.3,
with the RFC 2543 fallback), creates server transactions for new requests,
answers CANCEL itself (200 when it matches an INVITE server transaction, 481
when not, RFC 3261 9.2), passes ACKs for 2xx up to the transaction user, and
drops stray responses.  It keeps one heap of transaction deadlines, so the
transport adapter schedules a single timer for the whole layer.

Sans-I/O, aioquic-style: inputs are C{datagram_received}/C{message_received}
(network), C{send_request}/C{respond}/C{cancel}/C{send_message} (the
transaction user) and C{handle_timer} (time); outputs are drained with
C{messages_to_send()} (pairs of encoded bytes and the opaque destination
address), C{next_event()} and C{get_timer()}.

Responses of a server transaction go back to the address the request came
from (symmetric response routing, as with C{rport}, RFC 3581); the transport
adapter maps that address to a socket or connection.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Optional, Union

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.events import (
    AckReceived,
    CancelReceived,
    MessageDiscarded,
    RequestReceived,
)
from wcs_twisted.sip.message import Request, Response, error_response, new_branch, parse_message
from wcs_twisted.sip.timers import DEFAULT_TIMERS, TimerValues
from wcs_twisted.sip.transaction import (
    CALLING,
    PROCEEDING,
    TERMINATED,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Transaction,
    TransactionKey,
    client_key,
    create_cancel,
    response_key,
    server_key,
)

__all__ = ["TransactionLayer", "generate_branch"]


def generate_branch(random: Any) -> str:
    """
    Return a new RFC 3261 branch: the magic cookie followed by random bits
    (RFC 3261 8.1.1.7); the same as L{wcs_twisted.sip.message.new_branch}.

    @param random: a C{random.Random}-like object (C{getrandbits}) or a
        callable returning that many random bytes (like C{os.urandom}).
    """
    return new_branch(random)


class TransactionLayer:
    """
    All transactions of one SIP stack, with matching and timer scheduling.

    @ivar timers: the L{TimerValues} given to every transaction.
    @ivar send_trying: whether INVITE server transactions send 100 Trying
        as soon as they are created.
    @ivar stray_responses: responses dropped because they matched no client
        transaction (RFC 3261 18.1.2).
    @ivar malformed_messages: messages dropped because they could not be
        parsed or lacked the headers transaction matching needs.
    """

    def __init__(self, timers: TimerValues = DEFAULT_TIMERS, *, send_trying: bool = True) -> None:
        self.timers = timers
        self.send_trying = send_trying
        self.stray_responses = 0
        self.malformed_messages = 0
        self._client: dict[TransactionKey, Transaction] = {}
        self._server: dict[TransactionKey, Transaction] = {}
        self._outgoing: list[tuple[bytes, Any]] = []
        self._events: deque = deque()
        self._heap: list[tuple[float, int, Transaction]] = []
        self._sequence = 0

    # -- outputs ------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[bytes, Any]]:
        """Return and forget the C{(data, destination)} pairs to send, in order."""
        outgoing = self._outgoing
        self._outgoing = []
        return outgoing

    def next_event(self):
        """Return the next event for the transaction user, or None."""
        if self._events:
            return self._events.popleft()
        return None

    def get_timer(self) -> Optional[float]:
        """Return the earliest transaction deadline, or None if there is none."""
        heap = self._heap
        while heap:
            deadline, _, transaction = heap[0]
            if transaction._scheduled == deadline and transaction.state is not TERMINATED:
                return deadline
            heapq.heappop(heap)
        return None

    # -- inspection ---------------------------------------------------------

    def get_transaction(self, key: TransactionKey) -> Optional[Transaction]:
        """Return the live transaction with this key, or None."""
        if key.server:
            return self._server.get(key)
        return self._client.get(key)

    def __len__(self) -> int:
        """Return the number of live transactions (client and server)."""
        return len(self._client) + len(self._server)

    # -- inputs from the network --------------------------------------------

    def datagram_received(self, data: bytes, source: Any, reliable: bool, now: float) -> None:
        """
        Parse one complete message (a UDP datagram, or a message the stream
        framer delimited) and handle it as L{message_received} does.  A
        request the parser rejects is answered with its C{status_hint} when
        its Via, From, To, Call-ID and CSeq could be read.
        """
        try:
            message = parse_message(data)
        except RemoteProtocolError as e:
            self._discard(f"unparseable message: {e}", source, None)
            # Answer a broken request statelessly when enough of it was read
            # (RFC 3261 8.2.6.2); never a response or an ACK.
            answer = error_response(e)
            if answer is not None:
                self._outgoing.append((answer.serialize(), source))
            return
        self.message_received(message, source, reliable, now)

    def message_received(
        self, message: Union[Request, Response], source: Any, reliable: bool, now: float
    ) -> None:
        """Handle a parsed message that arrived from C{source}."""
        if isinstance(message, Response):
            self._receive_response(message, source, now)
        else:
            self._receive_request(message, source, reliable, now)

    def transport_error(self, destination: Any, now: float) -> None:
        """
        The transport could not send to C{destination} (connection lost, ICMP
        unreachable...): every transaction sending there fails with
        L{TransportErrorOccurred} (RFC 3261 17.1.4, 17.2.4).
        """
        for table in (self._client, self._server):
            failed = [tx for tx in table.values() if tx.destination == destination]
            for transaction in failed:
                transaction.transport_error(now)
                self._collect(transaction)

    # -- inputs from the transaction user -----------------------------------

    def send_request(self, request: Request, destination: Any, reliable: bool, now: float) -> TransactionKey:
        """
        Start a client transaction sending C{request} to C{destination} and
        return its key.  The request must already carry its top Via with a
        unique RFC 3261 branch (see L{generate_branch}).  ACK is not sent
        through a transaction: use L{send_message}.

        @raise LocalProtocolError: missing or reused branch, or an ACK.
        """
        key = client_key(request)
        if key in self._client:
            raise LocalProtocolError(f"branch {key.branch!r} is already used by a {key.method} transaction")
        if request.method == "INVITE":
            transaction: Transaction = ClientInviteTransaction(
                request, reliable, self.timers, now, key=key, destination=destination
            )
        else:
            transaction = ClientNonInviteTransaction(
                request, reliable, self.timers, now, key=key, destination=destination
            )
        self._client[key] = transaction
        self._collect(transaction)
        return key

    def cancel(self, invite_key: TransactionKey, now: float) -> Optional[TransactionKey]:
        """
        Cancel the INVITE client transaction C{invite_key} (RFC 3261 9.1).

        The CANCEL goes out at once if a provisional response was received,
        otherwise as soon as one arrives.  Return the CANCEL transaction's
        key, or None when it is too late (a final response arrived or the
        transaction is gone).  Calling it again is harmless.

        @raise LocalProtocolError: C{invite_key} is not an INVITE client key.
        """
        if invite_key.server or invite_key.method != "INVITE":
            raise LocalProtocolError("only INVITE client transactions can be cancelled")
        transaction = self._client.get(invite_key)
        if transaction is None:
            return None
        state = transaction.state
        if state is not CALLING and state is not PROCEEDING:
            return None
        cancel_key = TransactionKey(False, invite_key.branch, "", "CANCEL")
        if transaction.cancel_requested or cancel_key in self._client:
            return cancel_key
        if state is CALLING:
            transaction.cancel_requested = True
        else:
            self._send_cancel(transaction, now)
        return cancel_key

    def respond(self, request_or_key: Union[Request, TransactionKey], response: Response, now: float) -> None:
        """
        Send C{response} through the server transaction of a request (given
        as the request or as the key from L{RequestReceived}).

        @raise LocalProtocolError: there is no such live server transaction,
            or it cannot send this response in its state.
        """
        if isinstance(request_or_key, TransactionKey):
            key = request_or_key
        else:
            key = server_key(request_or_key)
        transaction = self._server.get(key)
        if transaction is None:
            raise LocalProtocolError("no live server transaction for this response")
        transaction.respond(response, now)
        self._collect(transaction)

    def send_message(self, message: Union[Request, Response], destination: Any) -> None:
        """
        Send a message outside any transaction: the ACK for a 2xx
        (RFC 3261 13.2.2.4) or a stateless response or forward.
        """
        self._outgoing.append((message.serialize(), destination))

    # -- time ---------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer whose deadline is at or before C{now}."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, transaction = heapq.heappop(heap)
            if transaction._scheduled != deadline or transaction.state is TERMINATED:
                continue
            transaction._scheduled = None
            transaction.handle_timer(now)
            self._collect(transaction)

    # -- internals ----------------------------------------------------------

    def _discard(self, reason: str, source: Any, message: Union[Request, Response, None]) -> None:
        self.malformed_messages += 1
        self._events.append(MessageDiscarded(reason=reason, source=source, message=message))

    def _collect(self, transaction: Transaction) -> None:
        """Move a transaction's outputs to the layer and reschedule it."""
        outgoing = transaction._outgoing
        if outgoing:
            destination = transaction.destination
            append = self._outgoing.append
            for data in outgoing:
                append((data, destination))
            outgoing.clear()
        events = transaction._events
        if events:
            self._events.extend(events)
            events.clear()
        if transaction.state is TERMINATED:
            transaction._scheduled = None
            key = transaction.key
            table = self._server if key.server else self._client
            if table.get(key) is transaction:
                del table[key]
            return
        deadline = transaction.get_timer()
        if deadline is None:
            transaction._scheduled = None
        elif deadline != transaction._scheduled:
            transaction._scheduled = deadline
            self._sequence += 1
            heapq.heappush(self._heap, (deadline, self._sequence, transaction))
            if len(self._heap) > 1024 and len(self._heap) > 4 * len(self):
                self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries (deadlines that were replaced)."""
        self._heap = [
            entry
            for entry in self._heap
            if entry[2]._scheduled == entry[0] and entry[2].state is not TERMINATED
        ]
        heapq.heapify(self._heap)

    def _send_cancel(self, invite: ClientInviteTransaction, now: float) -> None:
        self.send_request(create_cancel(invite.request), invite.destination, invite.reliable, now)

    def _receive_response(self, response: Response, source: Any, now: float) -> None:
        try:
            key = response_key(response)
        except RemoteProtocolError as e:
            self._discard(f"response without usable Via or CSeq: {e}", source, response)
            return
        transaction = self._client.get(key) if key is not None else None
        if transaction is None:
            self.stray_responses += 1
            self._events.append(
                MessageDiscarded(reason="response matches no transaction", source=source, message=response)
            )
            return
        transaction.receive_response(response, now)
        if key.method == "INVITE" and transaction.cancel_requested and transaction.state is PROCEEDING:
            transaction.cancel_requested = False
            self._collect(transaction)
            self._send_cancel(transaction, now)
            return
        self._collect(transaction)

    def _receive_request(self, request: Request, source: Any, reliable: bool, now: float) -> None:
        try:
            key = server_key(request)
        except RemoteProtocolError as e:
            self._discard(f"request without usable Via: {e}", source, request)
            return
        transaction = self._server.get(key)
        if transaction is not None:
            transaction.receive_request(request, now, source)
            self._collect(transaction)
            return
        method = request.method
        if method == "ACK":
            # ACK for a 2xx: its own transaction, handed to the TU core.
            self._events.append(AckReceived(request=request, source=source))
            return
        if method == "CANCEL":
            self._receive_cancel(request, key, source, reliable, now)
            return
        if method == "INVITE":
            transaction = ServerInviteTransaction(
                request, reliable, self.timers, now, key=key, destination=source,
                send_trying=self.send_trying,
            )
        else:
            transaction = ServerNonInviteTransaction(
                request, reliable, self.timers, now, key=key, destination=source
            )
        self._server[key] = transaction
        self._events.append(
            RequestReceived(request=request, transaction_key=key, source=source, reliable=reliable)
        )
        self._collect(transaction)

    def _receive_cancel(
        self, request: Request, key: TransactionKey, source: Any, reliable: bool, now: float
    ) -> None:
        """Answer a new CANCEL (RFC 3261 9.2) and tell the TU if it matters."""
        invite_key = server_key(request, "INVITE")
        invite = self._server.get(invite_key)
        transaction = ServerNonInviteTransaction(
            request, reliable, self.timers, now, key=key, destination=source
        )
        self._server[key] = transaction
        if invite is None:
            transaction.respond(request.create_response(481), now)
        else:
            # Reuse the INVITE's To tag when it already chose one (9.2);
            # create_response keeps a tag the CANCEL's To already has.
            to_tag = _to_tag(invite.last_response)
            transaction.respond(request.create_response(200, to_tag=to_tag), now)
            if invite.state is PROCEEDING:
                self._events.append(
                    CancelReceived(
                        request=request, transaction_key=key, invite_key=invite_key, source=source
                    )
                )
        self._collect(transaction)


def _to_tag(response: Optional[Response]) -> Optional[str]:
    """
    The To tag of the INVITE's last response, or None; a To that does not parse (the INVITE's
    own malformed To copied into its 400) has no tag to reuse, and must not stop the CANCEL.
    """
    if response is None:
        return None
    try:
        return response.to.tag
    except RemoteProtocolError:
        return None
