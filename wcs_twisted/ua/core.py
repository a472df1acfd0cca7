# -*- test-case-name: tests.ua.test_core -*-
"""
The transaction user of the SIP stack: routes transaction-layer events to their owners.

Owners are registered explicitly, never found by string-built dispatch:
  - a client transaction's events go to the L{IClientTransactionOwner} given to L{send_request};
  - CANCEL and ACK events of a server transaction go to the owner given to L{own_server};
  - an in-dialog request goes to the dialog usage registered under its dialog id;
  - any other request goes to the first L{IRequestRouter} (registrar, proxy, call layer) that
    accepts it, in the order they were added; none -> 404 or 405.
Every request first passes the message-level checks of RFC 3261 8.2 (L{validate_request}).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import ISIPTransport, ITransactionUser
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.events import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from wcs_twisted.sip.message import (
    Request,
    Response,
    new_tag,
    unsupported_options,
    validate_request,
)
from wcs_twisted.sip.timers import DEFAULT_TIMERS, TimerValues

#: Methods this user agent core understands (Allow header, RFC 3261 20.5).
ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "REFER",
                   "NOTIFY", "MESSAGE", "SUBSCRIBE", "UPDATE", "PRACK")
#: Option tags we support (Supported header; Require outside it gets 420).
SUPPORTED_OPTIONS = ("replaces", "norefersub", "path", "100rel", "timer")


@implementer(ITransactionUser)
class UserAgentCore:
    """
    Event routing between the transaction layer and the UA, registrar and proxy above it.
    """

    log = Logger()

    def __init__(self, transport: ISIPTransport, random: Any,
                 timers: TimerValues = DEFAULT_TIMERS) -> None:
        self.transport = transport
        self.random = random
        self.timers = timers
        self.routers: list = []
        self._clients: dict[Any, Any] = {}
        self._servers: dict[Any, Any] = {}
        self._dialogs: dict[tuple[str, str, str], Any] = {}
        self._ack_owners: dict[tuple[str, str], Any] = {}

    # --- registration of owners -----------------------------------------------------------

    def add_router(self, router) -> None:
        self.routers.append(router)

    def own_server(self, transaction_key, owner) -> None:
        """
        Send CANCELs matching this INVITE server transaction to C{owner.cancel_received}.
        """
        self._servers[transaction_key] = owner

    def register_dialog(self, call_id: str, local_tag: str, remote_tag: str, usage) -> None:
        self._dialogs[(call_id, local_tag, remote_tag)] = usage
        self._ack_owners[(call_id, local_tag)] = usage

    def unregister_dialog(self, call_id: str, local_tag: str, remote_tag: str) -> None:
        self._dialogs.pop((call_id, local_tag, remote_tag), None)
        self._ack_owners.pop((call_id, local_tag), None)

    def expect_ack(self, call_id: str, local_tag: str, usage) -> None:
        """
        Route the ACK for a 2xx we sent (before the dialog is fully registered) to C{usage}.
        """
        self._ack_owners[(call_id, local_tag)] = usage

    def dialog_count(self) -> int:
        return len(self._dialogs)

    # --- commands ---------------------------------------------------------------------------

    def send_request(self, request: Request, destination, owner) -> Any:
        """
        Send through a new client transaction; C{owner} gets its responses and failures.
        """
        key = self.transport.send_request(request, destination)
        self._clients[key] = owner
        return key

    def respond(self, transaction_key, response: Response) -> None:
        self.transport.respond(transaction_key, response)

    def new_tag(self) -> str:
        return new_tag(self.random)

    # --- events -----------------------------------------------------------------------------

    def event_received(self, event) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            return
        try:
            handler(self, event)
        except RemoteProtocolError as error:
            # A header some owner read only now is malformed: one line and a 400 (when it is a
            # request that may still be answered), never a traceback per message.
            self._malformed(event, error)

    def _malformed(self, event, error: RemoteProtocolError) -> None:
        request = getattr(event, "request", None)
        self.log.info("SIP {method} from {source} dropped: {reason}",
                      method=getattr(request, "method", type(event).__name__),
                      source=str(getattr(event, "source", "")), reason=str(error))
        if isinstance(event, RequestReceived):
            try:
                self.respond(event.transaction_key, request.create_response(
                    400, str(error)[:100].replace("\r", " ").replace("\n", " "),
                    to_tag=self.new_tag()))
            except LocalProtocolError:
                pass  # already answered before the error

    def _response(self, event: ResponseReceived) -> None:
        owner = self._clients.get(event.transaction_key)
        if owner is not None:
            owner.response_received(event.response)

    def _timed_out(self, event: TransactionTimedOut) -> None:
        owner = self._clients.pop(event.transaction_key, None)
        if owner is not None:
            owner.transaction_failed("timeout")

    def _transport_error(self, event: TransportErrorOccurred) -> None:
        owner = self._clients.pop(event.transaction_key, None)
        if owner is not None:
            owner.transaction_failed("transport")

    def _terminated(self, event: TransactionTerminated) -> None:
        self._clients.pop(event.transaction_key, None)
        self._servers.pop(event.transaction_key, None)

    def _cancel(self, event: CancelReceived) -> None:
        owner = self._servers.get(event.invite_key)
        if owner is not None:
            owner.cancel_received(event)

    def _ack(self, event: AckReceived) -> None:
        request = event.request
        if validate_request(request) is not None:
            # No answer is possible (RFC 3261 17.1.1.3): drop it, with one line.
            self.log.info("SIP ACK from {source} dropped: malformed", source=str(event.source))
            return
        to_tag = request.to.tag or ""
        owner = self._ack_owners.get((request.call_id, to_tag))
        if owner is not None:
            owner.ack_received(event)
            return
        for router in self.routers:
            forward = getattr(router, "accept_ack", None)
            if forward is not None and forward(event):
                return

    def _request(self, event: RequestReceived) -> None:
        request = event.request
        status = validate_request(request)
        if status is not None:
            self._reject(event, status)
            return
        if getattr(request.uri, "scheme", "") == "sips" and getattr(
                event.source, "transport", "tls") != "tls":
            # RFC 5630 3.1.3: a sips: target is reached over TLS on every hop, ours included.
            self._reject(event, 480, "SIPS Request-URI over an insecure transport")
            return
        # Require is for the UAS (RFC 3261 8.2.2.3); a proxy checks only Proxy-Require (16.3),
        # so a request we cannot serve ourselves may still be proxied.
        unsupported = unsupported_options(request, SUPPORTED_OPTIONS)
        to_tag = request.to.tag
        if to_tag and not unsupported:
            usage = self._dialogs.get((request.call_id, to_tag, request.from_.tag or ""))
            if usage is not None:
                usage.request_received(event)
                return
        for router in self.routers:
            if unsupported and not getattr(router, "proxies_requests", False):
                continue
            if router.accept_request(event):
                return
        if unsupported:
            self._reject(event, 420)
        elif request.method == "OPTIONS" and not to_tag:
            self._answer_options(event)
        elif to_tag:
            self._reject(event, 481)  # RFC 3261 12.2.2: no matching dialog
        elif request.method not in ALLOWED_METHODS:
            self._reject(event, 405)
        else:
            self._reject(event, 404)

    def _answer_options(self, event: RequestReceived) -> None:
        response = event.request.create_response(200, to_tag=self.new_tag())
        response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", ", ".join(SUPPORTED_OPTIONS))
        self.respond(event.transaction_key, response)

    def _reject(self, event: RequestReceived, status: int, reason: str | None = None) -> None:
        response = event.request.create_response(status, reason, to_tag=self.new_tag())
        if status == 405:
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        elif status == 420:
            unsupported = [
                option for option in event.request.headers.get_all("Require")
                if option.lower() not in SUPPORTED_OPTIONS
            ]
            response.headers.add("Unsupported", ", ".join(unsupported))
        self.log.info("SIP {method} from {source} answered {status}",
                      method=event.request.method, source=str(event.source), status=status)
        self.respond(event.transaction_key, response)

    _HANDLERS: dict[type, Callable[["UserAgentCore", Any], None]] = {
        RequestReceived: _request,
        ResponseReceived: _response,
        TransactionTimedOut: _timed_out,
        TransportErrorOccurred: _transport_error,
        TransactionTerminated: _terminated,
        CancelReceived: _cancel,
        AckReceived: _ack,
    }

