# -*- test-case-name: tests.sip.test_transaction,tests.sip.test_transaction_layer -*-
"""
Events emitted by the sans-I/O SIP transaction core.

The transactions and the L{TransactionLayer
<wcs_twisted.sip.transaction_layer.TransactionLayer>} never call up into the
transaction user; they queue these small frozen records and the caller drains
them with C{next_event()} (the aioquic/h11 shape).  Every name is past tense:
an event reports something that already happened.

C{transaction_key} values are the opaque, hashable
L{TransactionKey <wcs_twisted.sip.transaction.TransactionKey>} of the
transaction concerned; C{source} and C{destination} are whatever address
value the transport adapter passed in (for example a C{(host, port)} tuple or
a connection object).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from wcs_twisted.sip.message import Request, Response
    from wcs_twisted.sip.transaction import TransactionKey

__all__ = [
    "RequestReceived",
    "ResponseReceived",
    "AckReceived",
    "CancelReceived",
    "TransactionTimedOut",
    "TransportErrorOccurred",
    "TransactionTerminated",
    "MessageDiscarded",
    "TransactionEvent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """
    A new request (not a retransmission, not an ACK, not a CANCEL) arrived and
    a server transaction was created for it (RFC 3261 17.2.3).  The
    transaction user answers it with C{respond(transaction_key, ...)}.
    """

    #: The request as received.
    request: Request
    #: Key of the new server transaction.
    transaction_key: TransactionKey
    #: Transport address the request came from; responses go back there.
    source: Any
    #: Whether it arrived over a reliable transport (TCP, TLS, WebSocket).
    reliable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """
    A client transaction passed a response up to the transaction user
    (RFC 3261 17.1.1.2, 17.1.2.2): provisional responses, the first final
    response, and every 2xx received in the Accepted state (RFC 6026 8.4).
    """

    #: The response as received.
    response: Response
    #: Key of the client transaction it matched.
    transaction_key: TransactionKey


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """
    An ACK that belongs to the transaction user arrived: an ACK for a 2xx
    response, which is a transaction of its own (RFC 3261 17.1.1.3), or any
    ACK matching an INVITE server transaction in the Accepted state
    (RFC 6026 8.7).
    """

    #: The ACK request.
    request: Request
    #: Transport address the ACK came from.
    source: Any
    #: Key of the Accepted INVITE server transaction it matched, or None.
    transaction_key: Optional[TransactionKey] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """
    A CANCEL matched an INVITE server transaction that has not sent a final
    response yet (RFC 3261 9.2).  The transaction layer already answered the
    CANCEL with 200; the transaction user should now answer the INVITE
    (normally with 487 Request Terminated).
    """

    #: The CANCEL request.
    request: Request
    #: Key of the CANCEL's own server transaction.
    transaction_key: TransactionKey
    #: Key of the INVITE server transaction being cancelled.
    invite_key: TransactionKey
    #: Transport address the CANCEL came from.
    source: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimedOut:
    """
    A transaction failed because a timeout timer fired: Timer B (client
    INVITE), Timer F (client non-INVITE) or Timer H (server INVITE waiting for
    an ACK) (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1).  A L{TransactionTerminated}
    follows.
    """

    #: Key of the transaction that timed out.
    transaction_key: TransactionKey
    #: The request that created the transaction.
    request: Request
    #: RFC letter of the timer that fired: "B", "F" or "H".
    timer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportErrorOccurred:
    """
    The transport reported that a message of this transaction could not be
    sent (RFC 3261 17.1.4, 17.2.4).  A L{TransactionTerminated} follows,
    except for an INVITE server transaction in the Accepted state, which
    stays until Timer L (RFC 6026 figure 5).
    """

    #: Key of the transaction concerned.
    transaction_key: TransactionKey
    #: The request that created the transaction.
    request: Request
    #: Where the failed message was going.
    destination: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated:
    """
    A transaction reached the Terminated state and was (or may be) forgotten.
    Emitted exactly once per transaction, whatever the reason.
    """

    #: Key of the terminated transaction.
    transaction_key: TransactionKey


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageDiscarded:
    """
    The transaction layer dropped an incoming message: it could not be
    parsed, lacked the headers needed for transaction matching, or was a
    response matching no client transaction (RFC 3261 18.1.2).
    """

    #: Why the message was dropped (short, human readable).
    reason: str
    #: Transport address the message came from.
    source: Any
    #: The parsed message, or None when it could not be parsed.
    message: Union[Request, Response, None] = None


TransactionEvent = Union[
    RequestReceived,
    ResponseReceived,
    AckReceived,
    CancelReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
    TransactionTerminated,
    MessageDiscarded,
]
