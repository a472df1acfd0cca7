# -*- test-case-name: tests.transport.test_stack -*-
"""
The SIP stack on a reactor: the sans-I/O transaction layer driven by sockets and one timer.

Transports hand received bytes here; this module admits them (a per-source rate limit before the
parse, load shedding before a new INVITE or REGISTER gets a transaction: see
L{wcs_twisted.transport.admission}), parses them once, applies the server transport rules of
RFC 3261 18.2.1 / RFC 3581 (received, rport), feeds the transaction layer, then drains what the
layer wants sent (to the transport named in each destination) and the events for the transaction
user.  It keeps one DelayedCall for the layer's earliest deadline, and while it listens, the
reactor-lag tick.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.addresses import AddressPlan
from wcs_twisted.interfaces import ISIPTransport, ITransactionUser
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.events import MessageDiscarded, ResponseReceived, TransportErrorOccurred
from wcs_twisted.sip.message import Request, Response, error_response, new_tag, parse_message
from wcs_twisted.sip.stateless import StatelessAnswers
from wcs_twisted.sip.transaction import server_key
from wcs_twisted.sip.transaction_layer import TransactionLayer, generate_branch
from wcs_twisted.sip.address import DEFAULT_PORTS, SIPAddress, is_ip_literal, same_host
from wcs_twisted.transport.admission import (
    LOOPBACK_NETWORKS,
    LoadShedding,
    RawShedding,
    ReactorLag,
    SourceRateLimit,
)
from wcs_twisted.transport.dns import SIPResolver
from wcs_twisted.transport.failover import TargetFailover
from wcs_twisted.transport.retarget import Retargeting, with_new_branch
from wcs_twisted.transport.trace import BAD, IN, OUT, MessageTrace


def retry_after(response: Response) -> float | None:
    """
    The seconds of a Retry-After header (RFC 3261 20.33), at most an hour; None without one.
    """
    value = (response.headers.get("Retry-After") or "").strip()
    digits = value[:len(value) - len(value.lstrip("0123456789"))]
    return min(float(digits), 3600.0) if digits else None


class MessageSender(Protocol):
    """
    What a transport adapter offers the stack: send bytes to an address it serves.

    An adapter with a true C{resolves_names} attribute gets host names unresolved (TLS checks
    the server certificate against the name).
    """

    def send(self, data: bytes, address: SIPAddress) -> None: ...


#: New requests refused with 503 when the server is overloaded; in-dialog requests, ACK, CANCEL
#: and responses always go through, so the calls already accepted can finish.
SHED_METHODS = frozenset({"INVITE", "REGISTER"})


@implementer(ISIPTransport)
class SIPStack:
    """
    One SIP stack: transaction layer + transports + timer + trace.
    """

    log = Logger()

    def __init__(
        self,
        layer: TransactionLayer,
        clock: IReactorTime,
        random: Any,
        advertised_host: str,
        trace: MessageTrace | None = None,
        resolver: SIPResolver | None = None,
        on_bad_message: Callable[[str], None] = lambda transport: None,
        *,
        source_rate: float = 100.0,
        source_burst: float = 200.0,
        source_exempt: Iterable[str] = LOOPBACK_NETWORKS,
        max_transactions: int = 50000,
        max_lag: float = 0.3,
        retry_after: int = 5,
        max_queue_delay: float = 0.0,
        failover: TargetFailover | None = None,
        addresses: AddressPlan | None = None,
    ) -> None:
        """
        @param resolver: RFC 3263 resolution of destinations given by host name (None: only IP
            literals can be reached).
        @param failover: which resolved target gets a destination's messages (RFC 3263 4.3).
        @param source_rate: requests per second one source IP may send (a token bucket of
            C{source_burst}); beyond it UDP requests are dropped unanswered and stream requests
            answered 503.  0 turns the limit off.
        @param source_exempt: networks the rate limit leaves alone.
        @param max_transactions: live transactions over which new INVITEs and REGISTERs are
            answered 503 (0: no bound).
        @param max_lag: seconds late the reactor may run (two ticks in a row) before new INVITEs
            and REGISTERs are answered 503 (0: not measured).
        @param retry_after: seconds in the Retry-After of those 503s.
        @param addresses: which of our addresses each peer is told (behind NAT); by default
            C{advertised_host} for every peer.
        @param max_queue_delay: seconds a datagram may wait to be read before a new INVITE or
            REGISTER in it is answered 503 (0: not checked).
        """
        self.layer = layer
        self.clock = clock
        self.random = random
        self.advertised_host = advertised_host
        self.addresses = addresses or AddressPlan(advertised_host, advertised_host)
        self.trace = trace or MessageTrace()
        self.user: ITransactionUser | None = None
        self.transports: dict[str, MessageSender] = {}
        self.ports: dict[str, int] = {}
        self.resolver = resolver
        self.failover = failover or TargetFailover()
        self.retarget = Retargeting()
        # Names whose target failed with requests unanswered: their transport errors fail over.
        self._failing_over: set[SIPAddress] = set()
        # (target, name) -> the look at a TCP/TLS target's silence (nothing is retransmitted).
        self._silence_checks: dict[tuple[SIPAddress, SIPAddress], IDelayedCall] = {}
        self._on_bad_message = on_bad_message
        self._timer: IDelayedCall | None = None
        self._timer_deadline: float | None = None
        self._pumping = False
        self._stopped = False
        self.rate_limit = SourceRateLimit(source_rate, source_burst, source_exempt)
        self.load = LoadShedding(ReactorLag(clock, max_lag=max_lag), max_transactions,
                                 retry_after, max_queue_delay)
        self.raw_shedding = RawShedding(self.load, StatelessAnswers(
            (new_tag(random) + new_tag(random)).encode()))
        self._listeners = 0

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, user: ITransactionUser) -> None:
        """
        Deliver transaction events to C{user}: the one step after construction, because the
        user (the UA core) sends through this stack and so is built after it.
        """
        self.user = user

    def add_transport(self, name: str, sender: MessageSender, port: int) -> None:
        """
        Register the adapter that sends for C{name} ("udp", "tcp", "tls") and its bound port.
        """
        self.transports[name] = sender
        self.ports[name] = port

    def listening_started(self) -> None:
        """
        A listener of this stack is up: measure reactor lag while any is.
        """
        self._listeners += 1
        if not self._stopped:
            self.load.lag.start()

    def listening_stopped(self) -> None:
        self._listeners = max(0, self._listeners - 1)
        if not self._listeners:
            self.load.lag.stop()

    def local_address(self, transport: str, toward: str | None = None) -> tuple[str, int]:
        return self.addresses.toward(toward), self.ports.get(transport, 5060)

    def generate_branch(self) -> str:
        return generate_branch(self.random)

    # --- from the transports ----------------------------------------------------------------

    def data_received(self, data: bytes, source: SIPAddress, waited: float = 0.0) -> None:
        """
        One complete message (a datagram, or what a stream framer delimited) from C{source}.

        A request over its source's rate is dropped before it is parsed: answering a datagram
        flood would amplify it, and its source may be spoofed.
        """
        self.trace.record(IN, data, source)
        self.failover.heard_from(source.host)
        if not data.startswith(b"SIP/") and not self.rate_limit.allow(source.host,
                                                                       self.clock.seconds()):
            return
        screened = self.raw_shedding.screen(data, waited, len(self.layer),
                                            self.layer.get_transaction, self.clock.seconds())
        if screened is not None:
            if screened:  # a 503 written from the raw request; else an ACK of one, absorbed
                self._send(screened, source)
            return
        try:
            message = parse_message(data)
        except RemoteProtocolError as error:
            self.reject(data, source, error)
            return
        self._receive(message, source, waited)

    def message_received(self, message: Request | Response, source: SIPAddress) -> None:
        """
        One parsed message from a stream C{source}; a request over its source's rate is
        answered 503 (the connection proves the address, and the client will not retransmit).
        """
        self.failover.heard_from(source.host)
        if isinstance(message, Request) and not self.rate_limit.allow(source.host,
                                                                      self.clock.seconds()):
            if message.method != "ACK":
                self._refuse(message, source, "rate limited")
            return
        self._receive(message, source)

    def _receive(self, message: Request | Response, source: SIPAddress,
                 waited: float = 0.0) -> None:
        if isinstance(message, Request):
            if message.method in SHED_METHODS and self._shed(message, source, waited):
                return
            try:
                self._stamp_received(message, source)
            except RemoteProtocolError as error:
                self.reject(message.serialize(), source, error)
                return
        self.layer.message_received(message, source, source.reliable, self.clock.seconds())
        self._pump()

    def _shed(self, request: Request, source: SIPAddress, waited: float = 0.0) -> bool:
        """
        Refuse a new INVITE or REGISTER statelessly while overloaded (RFC 3261 21.5.4): not a
        request within a dialog, nor a retransmission of one that already has a transaction.
        """
        reason = self.load.overloaded(len(self.layer), waited)
        if reason is None:
            return False
        try:
            if request.to.tag is not None or self.layer.get_transaction(server_key(request)):
                return False
        except RemoteProtocolError:
            return False  # the transaction layer reports it
        self.load.shed += 1
        self._refuse(request, source, reason)
        return True

    def _refuse(self, request: Request, source: SIPAddress, reason: str) -> None:
        """
        Answer 503 with Retry-After outside any transaction (a retransmission gets another).
        """
        self.log.debug("SIP {method} from {source} refused: {reason}", method=request.method,
                       source=str(source), reason=reason)
        response = request.create_response(503, to_tag=new_tag(self.random))
        response.headers.set("Retry-After", str(self.load.retry_after))
        self._send(response.serialize(), source)

    def transport_error(self, destination: SIPAddress) -> None:
        """
        A connection to C{destination} failed or was lost, or an ICMP error came back from it
        (RFC 3261 18.4).  For destinations given by name that were sent there, the requests it
        left unanswered go to the next resolved target; the transactions fail when none is left.
        """
        now = self.clock.seconds()
        self.layer.transport_error(destination, now)
        for name, requests in list(self.failover.failed(destination, now)):
            if requests is not None:
                self.log.info("SIP {target} failed: {name} fails over", target=str(destination),
                              name=str(name))
                self._failing_over.add(name)
            self.layer.transport_error(name, now)
        self._pump()

    def _stamp_received(self, request: Request, source: SIPAddress) -> None:
        """
        RFC 3261 18.2.1 and RFC 3581 3: note where the request really came from in its top Via.
        """
        via = request.top_via
        changes: dict[str, Any] = {}
        # An IPv6 received goes in brackets (RFC 5118 4.5), which any parser accepts.
        received = source.host if ":" not in source.host else f"[{source.host}]"
        if via.host != source.host and not same_host(via.host, source.host):
            changes["received"] = received
        if via.rport is True:
            changes["rport"] = str(source.port)
            changes.setdefault("received", received)
        if changes:
            request.headers.pop_first("Via")
            request.headers.prepend("Via", str(via.with_params(**changes)))

    def reject(self, data: bytes, source: SIPAddress, error: RemoteProtocolError) -> None:
        """
        A message we cannot use: trace and log it once, and answer it statelessly when it is a
        request whose Via/From/To/Call-ID/CSeq could be read (RFC 3261 8.2.6.2).
        """
        self.trace.record(BAD, data, source)
        self._on_bad_message(source.transport)
        self.log.info("SIP from {source} rejected ({status}): {reason}", source=str(source),
                      status=error.status_hint, reason=str(error))
        answer = error_response(error)
        if answer is not None:
            self._send(answer.serialize(), source)

    # --- from the transaction user ------------------------------------------------------------

    def send_request(self, request: Request, destination: SIPAddress):
        key = self.layer.send_request(request, destination, destination.reliable,
                                      self.clock.seconds())
        if self.resolver is not None and not is_ip_literal(destination.host):
            self.retarget.track(key, request, destination)
        self._pump()
        return key

    def respond(self, transaction_key, response: Response) -> None:
        self.layer.respond(transaction_key, response, self.clock.seconds())
        self._pump()

    def cancel(self, invite_key):
        key = self.layer.cancel(self.retarget.current(invite_key), self.clock.seconds())
        self._pump()
        return key

    def send_message(self, message: Request | Response, destination: SIPAddress) -> None:
        self.layer.send_message(message, destination)
        self._pump()

    # --- the loop -----------------------------------------------------------------------------

    def _pump(self) -> None:
        """
        Drain outgoing messages and events until the layer is quiet, then re-arm the timer.

        Re-entrant calls (a user answering inside event_received) only mark more work.
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                outgoing = self.layer.messages_to_send()
                for data, destination in outgoing:
                    self._send(data, destination)
                event = self.layer.next_event()
                if event is None and not outgoing:
                    break
                while event is not None:
                    self._deliver(event)
                    event = self.layer.next_event()
        finally:
            self._pumping = False
            self._failing_over.clear()
        self._arm_timer()

    def _deliver(self, event) -> None:
        if isinstance(event, MessageDiscarded):
            self.log.debug("SIP discarded from {source}: {reason}", source=str(event.source),
                           reason=event.reason)
            return
        if self.retarget and self._moved_on(event):
            return
        event = self.retarget.translate(event)
        if self.user is None or event is None:
            return
        try:
            self.user.event_received(event)
        except Exception:
            self.log.failure("transaction user failed on {event}", event=type(event).__name__)

    def _moved_on(self, event) -> bool:
        """
        RFC 3263 4.3: a 503 from a named destination's target, or a transport error before it
        answered, sends the request to the next target as a new client transaction (the event
        then stays with the stack).
        """
        key = getattr(event, "transaction_key", None)
        attempt = self.retarget.attempt(key)
        if attempt is None:
            return False
        now = self.clock.seconds()
        if isinstance(event, ResponseReceived):
            attempt.answered = True
            if event.response.status_code != 503 or not self.failover.reject(
                    attempt.destination, now, retry_after(event.response)):
                return False
            self.log.info("SIP {name}: 503 from its target, trying the next",
                          name=str(attempt.destination))
        elif not (isinstance(event, TransportErrorOccurred) and not attempt.answered
                  and attempt.destination in self._failing_over):
            return False
        request = with_new_branch(attempt.request, self.generate_branch())
        new_key = self.layer.send_request(request, attempt.destination,
                                          attempt.destination.reliable, now)
        self.retarget.moved(key, new_key, request)
        return True

    def _send(self, data: bytes, destination: SIPAddress) -> None:
        sender = self.transports.get(destination.transport)
        if sender is None:
            self.log.warn("no {transport} transport to send to {destination}",
                          transport=destination.transport, destination=str(destination))
            self.clock.callLater(0, self.transport_error, destination)
            return
        if getattr(sender, "resolves_names", False) and (destination.port or self.resolver is None
                                                         or is_ip_literal(destination.host)):
            if not destination.port:
                destination = destination._replace(port=DEFAULT_PORTS[destination.transport])
            self.trace.record(OUT, data, destination)
            sender.send(data, destination)
            return
        host = destination.host
        if is_ip_literal(host):  # remembered there, per host
            if self.addresses.own(host):
                # Our public address seen from inside: a cloud router need not hairpin it.
                destination = destination._replace(host=self.addresses.way_home(host))
            if not destination.port:
                destination = destination._replace(port=DEFAULT_PORTS[destination.transport])
            self.trace.record(OUT, data, destination)
            sender.send(data, destination)
            return
        resolution = self.resolver.cached(destination) if self.resolver is not None else None
        if resolution is None:
            self._resolve_then_send(data, destination)
            return
        self._send_to_target(data, destination, resolution.targets, sender)

    def _send_to_target(self, data: bytes, destination: SIPAddress, targets, sender) -> None:
        """
        Send to the resolved target the failover picks for C{destination} (a host name).
        """
        now = self.clock.seconds()
        target = self.failover.choose(destination, targets, now)
        if target is None:
            self.log.warn("no address for {destination}", destination=str(destination))
            self.clock.callLater(0, self.layer_transport_error, destination)
            return
        self.failover.sent(target, destination, data, now)
        if (destination.reliable and len(targets) > 1 and self.failover.silence_timeout
                and (target, destination) not in self._silence_checks
                and not data.startswith((b"SIP/", b"ACK "))):
            # Nothing is retransmitted over a connection: look again once the silence passed.
            self._watch_silence(target, destination, self.failover.silence_timeout)
        names = getattr(sender, "server_names", None)
        if names is not None:
            names.remember(target, destination.host)
        self.trace.record(OUT, data, target)
        sender.send(data, target)

    def _watch_silence(self, target: SIPAddress, destination: SIPAddress, delay: float) -> None:
        self._silence_checks[(target, destination)] = self.clock.callLater(
            delay, self._check_silence, target, destination)

    def _check_silence(self, target: SIPAddress, destination: SIPAddress) -> None:
        """
        A connected TCP/TLS target that has not said a word about C{destination}'s requests
        within the silence fails as a transport error would (RFC 3263 4.3): they go to the
        next target as new transactions.  Requests sent since are looked at when theirs ends.
        """
        del self._silence_checks[(target, destination)]
        now = self.clock.seconds()
        if self.failover.abandoned(target, destination, now):
            self.log.info("SIP {target} silent for {seconds} s: {name} fails over",
                          target=str(target), seconds=self.failover.silence_timeout,
                          name=str(destination))
            self.transport_error(target)
            return
        oldest = self.failover.oldest_unanswered(target, destination)
        if oldest is not None:
            self._watch_silence(target, destination,
                                max(oldest + self.failover.silence_timeout - now, 0.001))

    def layer_transport_error(self, destination: SIPAddress) -> None:
        """
        Fail the transactions addressed to C{destination} as the layer knows it (a name that
        could not be resolved to any target).
        """
        self.layer.transport_error(destination, self.clock.seconds())
        self._pump()

    def _resolve_then_send(self, data: bytes, destination: SIPAddress) -> None:
        if self.resolver is None:
            self.log.warn("cannot resolve {host}: no resolver", host=destination.host)
            self.clock.callLater(0, self.layer_transport_error, destination)
            return

        def resolved(resolution) -> None:
            sender = self.transports.get(destination.transport)
            if sender is not None and not self._stopped:
                self._send_to_target(data, destination, resolution.targets, sender)

        def failed(failure) -> None:
            self.log.warn("cannot resolve {host}: {error}", host=destination.host,
                          error=failure.getErrorMessage())
            self.layer_transport_error(destination)

        self.resolver.resolve(destination).addCallbacks(resolved, failed)

    def _arm_timer(self) -> None:
        if self._stopped:
            return
        deadline = self.layer.get_timer()
        if deadline == self._timer_deadline and (self._timer is None or self._timer.active()):
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._timer_deadline = None
        self.layer.handle_timer(self.clock.seconds())
        self._pump()

    def stop(self) -> None:
        """
        Cancel the timer for good (on shutdown; transactions are abandoned).

        Also when called from inside an event the stack is delivering: the pump that is
        running must not arm a new timer after it.
        """
        self._stopped = True
        self.load.lag.stop()
        for check in self._silence_checks.values():
            check.cancel()
        self._silence_checks.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None
