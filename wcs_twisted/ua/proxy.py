# -*- test-case-name: tests.ua.test_proxy -*-
# Over 600 lines as one piece: RFC 3261 16 routing, forking and response selection act on one context.
"""
The built-in stateful proxy of local mode (RFC 3261 section 16).

With no external SIP server, two parties registered at our L{Registrar
<wcs_twisted.ua.registrar.Registrar>} call each other through this proxy: a request for a local
domain is forked to every live binding of its address of record, the best response goes back
(16.7), and the dialog is record-routed so in-dialog requests and ACKs for 2xx come back through
us and are loose-routed on (16.4).  Requests for other domains are refused (403): this is not an
open relay.

The proxy is an L{IRequestRouter} of the L{UserAgentCore <wcs_twisted.ua.core.UserAgentCore>}:
requests reach it as C{RequestReceived} events, each forwarded copy goes out through its own
client transaction whose owner is a L{ProxyBranch}, and CANCELs of a forwarded INVITE come back
through C{core.own_server}.  One L{ResponseContext} per proxied request holds its branches.
"""

from __future__ import annotations

import enum
import hashlib
import os
import zlib
from typing import Any, Callable, Container, Iterable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IClientTransactionOwner, IRequestRouter
from wcs_twisted.sip.address import DEFAULT_PORTS, SIPAddress, is_ip_literal
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress, Via
from wcs_twisted.sip.message import Request, Response
from wcs_twisted.sip.timers import DEFAULT_TIMERS, TimerValues
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.authentication import UserAuthentication
from wcs_twisted.ua.outbound import host_text, via_value
from wcs_twisted.ua.proxy_media import INCOMPATIBLE_ADDRESSES, ProxyMedia
from wcs_twisted.ua.proxy_bounds import MAX_PENDING, MAX_UNANSWERED, RETRY_AFTER, ForwardingBounds
from wcs_twisted.ua.location import Binding, LocationService, address_of_record

#: Methods whose out-of-dialog requests we record-route (they create dialogs).
RECORD_ROUTE_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
#: 4xx responses preferred when the 4xx class is chosen (RFC 3261 16.7 step 6).
_PREFERRED_4XX = frozenset({401, 407, 415, 420, 484})
#: How many refused foreign domains are remembered so each is logged once.
_MAX_LOGGED_DOMAINS = 1024


class BranchState(enum.Enum):
    """
    Where a forwarded copy of a request stands, named like the client transaction states.
    """

    CALLING = "Calling"  # sent, no response yet
    PROCEEDING = "Proceeding"  # a provisional response arrived
    COMPLETED = "Completed"  # a final response arrived (or was assumed: 408, 487, 503)


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _flow(binding: Binding) -> SIPAddress | None:
    """
    The address a binding's REGISTER came from, when requests for it must go back there.
    """
    return binding.source if binding.flow and isinstance(binding.source, SIPAddress) else None


@implementer(IClientTransactionOwner)
class ProxyBranch:
    """
    One forwarded copy of a request (RFC 3261 16.6): the owner of its client transaction.

    @ivar request: the request as forwarded (our Via on top).
    @ivar destination: the L{SIPAddress} it was sent to.
    @ivar key: its client transaction key.
    """

    __slots__ = ("context", "request", "destination", "key", "state", "unanswered", "_timer_c",
                 "_guard", "binding", "sent_branch")

    #: Takes requests whose Require we do not support: a proxy only checks Proxy-Require.
    proxies_requests = True

    def __init__(self, context: "ResponseContext", request: Request, destination: SIPAddress,
                 binding: Binding | None = None):
        self.context = context
        #: The location binding this branch goes to (a request for a local user), or None.
        self.binding = binding
        #: The branch parameter of the Via this proxy added (L{Proxy.forwarded_here}).
        self.sent_branch = ""
        self.request = request
        self.destination = destination
        self.key: Any = None
        self.state = BranchState.CALLING
        #: Whether its client transaction is still retransmitting to a silent destination:
        #: from sending until the first response or the transaction's failure (not until the
        #: branch is given up: a cancelled INVITE keeps retransmitting until Timer B).
        self.unanswered = True
        self._timer_c = None
        self._guard = None

    def response_received(self, response: Response) -> None:
        self._answered(heard=True)
        self.context.branch_response(self, response)

    def transaction_failed(self, reason: str) -> None:
        never_answered = self.unanswered
        self._answered(heard=False)
        if never_answered and self.binding is not None:
            self.context.proxy.binding_failed(self.binding, self.request.method, reason)
        # RFC 3261 16.7 (timeout: as if 408) and 16.9 (transport error: as if 503).
        self.context.branch_failed(self, 408 if reason == "timeout" else 503)

    def _answered(self, heard: bool) -> None:
        if self.unanswered:
            self.unanswered = False
            self.context.proxy.bounds.answered(self.destination, heard)

    def stop_timers(self) -> None:
        for call in (self._timer_c, self._guard):
            if call is not None and call.active():
                call.cancel()
        self._timer_c = self._guard = None


#: The headers that assert who is calling (RFC 3325, and its older Remote-Party-ID form).
IDENTITY_HEADERS = ("P-Asserted-Identity", "Remote-Party-ID")


class ResponseContext:
    """
    The RFC 3261 16 "response context" of one proxied request: its server transaction, its
    branches, the final responses collected so far, and whether a final went upstream.
    """

    __slots__ = ("proxy", "event", "request", "key", "is_invite", "branches", "finals",
                 "final_sent", "cancelled")

    def __init__(self, proxy: "Proxy", event) -> None:
        self.proxy = proxy
        self.event = event
        self.request: Request = event.request
        self.key = event.transaction_key
        self.is_invite = self.request.method == "INVITE"
        self.branches: list[ProxyBranch] = []
        self.finals: list[Response] = []
        self.final_sent = False
        self.cancelled = False

    # --- branches --------------------------------------------------------------------------

    def forward(self, request: Request, destination: SIPAddress,
                binding: Binding | None = None, sent_branch: str = "") -> None:
        """
        Send one branch through a client transaction (16.6 step 10) and start its Timer C (11).
        """
        branch = ProxyBranch(self, request, destination, binding)
        branch.sent_branch = sent_branch
        self.branches.append(branch)
        proxy = self.proxy
        proxy.bounds.started(destination)
        branch.key = proxy.core.send_request(request, destination, branch)
        proxy.forwarded += 1
        if self.is_invite and branch.state is not BranchState.COMPLETED:
            branch._timer_c = proxy.clock.callLater(proxy.timers.timer_c, self._timer_c_fired,
                                                      branch)

    def branch_response(self, branch: ProxyBranch, response: Response) -> None:
        """
        RFC 3261 16.7: a response on one branch.
        """
        # The client transaction matched it by our Via (top); what goes upstream is the rest.
        headers = response.headers
        headers.pop_first("Via")
        if "Via" not in headers:
            # A UAS that built its 487 from the CANCEL (which has only our Via), as simple
            # scenarios do: the INVITE's own Vias are what the response needs upstream.
            for value in self.request.headers.get_all("Via"):
                headers.add("Via", value)
        self.proxy.media.response(branch.sent_branch, self.request, response)
        code = response.status_code
        if code < 200:
            if branch.state is BranchState.CALLING:
                branch.state = BranchState.PROCEEDING
            if code == 100 or branch.state is BranchState.COMPLETED:
                return
            if self.is_invite and branch._timer_c is not None:
                branch._timer_c.reset(self.proxy.timers.timer_c)  # 16.7 step 2
            if not self.final_sent:
                self.proxy.relay(self, response)
            return
        if code < 300:
            first = branch.state is not BranchState.COMPLETED
            self._complete(branch)
            # Every 2xx to an INVITE goes upstream, retransmissions and other branches included.
            if self.is_invite or not self.final_sent:
                self.proxy.relay(self, response)
            if not self.final_sent:
                self.final_sent = True
                if first and self.is_invite:
                    self.cancel_pending(487)  # 16.7 step 10
            self._check_done()
            return
        if branch.state is BranchState.COMPLETED:
            return  # a final after we gave up on the branch (Timer C, CANCEL) or a repeat
        self._complete(branch)
        self.finals.append(response)
        if code >= 600 and self.is_invite:
            self.cancel_pending(487)  # 16.7 step 5: a 6xx ends the search
        self._check_done()

    def branch_failed(self, branch: ProxyBranch, status: int) -> None:
        if branch.state is BranchState.COMPLETED:
            return
        self._assume(branch, status)

    def _assume(self, branch: ProxyBranch, status: int) -> None:
        """
        Complete C{branch} as if it had answered C{status} (408, 487, 503).
        """
        self._complete(branch)
        self.finals.append(self.request.create_response(status, to_tag=self.proxy.core.new_tag()))
        self._check_done()

    def _complete(self, branch: ProxyBranch) -> None:
        branch.state = BranchState.COMPLETED
        branch.stop_timers()

    def cancel_pending(self, status: int) -> None:
        """
        CANCEL every INVITE branch without a final response (RFC 3261 16.10, 16.7 step 10).

        A branch that has not answered at all is given up at once as C{status} (the
        transaction layer still sends its CANCEL if a provisional response shows up later);
        one that is ringing gets a CANCEL and 64*T1 to answer it with 487.
        """
        if not self.is_invite:
            return
        proxy = self.proxy
        for branch in list(self.branches):
            if branch.state is BranchState.COMPLETED or branch.key is None:
                continue
            try:
                proxy.transport.cancel(branch.key)
            except LocalProtocolError:
                pass
            if branch.state is BranchState.CALLING:
                self._assume(branch, status)
            elif branch._guard is None:
                branch._guard = proxy.clock.callLater(proxy.timers.timer_b, self._guard_fired,
                                                      branch, status)

    def _timer_c_fired(self, branch: ProxyBranch) -> None:
        """
        RFC 3261 16.8: no final response in Timer C: CANCEL the branch, answer it 408.
        """
        branch._timer_c = None
        if branch.state is BranchState.COMPLETED:
            return
        self.proxy.log.info("Timer C fired for {method} branch to {destination}",
                            method=self.request.method, destination=str(branch.destination))
        if branch.state is BranchState.PROCEEDING and branch.key is not None:
            try:
                self.proxy.transport.cancel(branch.key)
            except LocalProtocolError:
                pass
        self._assume(branch, 408)

    def _guard_fired(self, branch: ProxyBranch, status: int) -> None:
        branch._guard = None
        if branch.state is not BranchState.COMPLETED:
            self._assume(branch, status)

    # --- upstream ----------------------------------------------------------------------------

    def cancel_received(self, event) -> None:
        """
        A CANCEL for the INVITE we forwarded (already answered 200 by the transaction layer):
        cancel every pending branch; the INVITE gets the best final response, 487 normally.
        """
        if self.final_sent or self.cancelled:
            return
        self.cancelled = True
        self.cancel_pending(487)

    def _check_done(self) -> None:
        pending = False
        for branch in self.branches:
            if branch.state is not BranchState.COMPLETED:
                pending = True
                break
        if not pending and not self.final_sent:
            self.final_sent = True
            self.proxy.relay(self, self._best_response())
        if self.final_sent and not pending:
            self.proxy._retire(self)

    def _best_response(self) -> Response:
        """
        RFC 3261 16.7 step 6 and 7: the response to send upstream when no 2xx came.
        """
        finals = self.finals
        if not finals:
            return self.request.create_response(408, to_tag=self.proxy.core.new_tag())
        best = None
        for response in finals:
            if response.status_code >= 600:
                best = response
                break
        if best is None:
            best = min(finals, key=_rank)
        code = best.status_code
        if code == 503:
            # 16.7 step 6: a 503 would tell the client that *we* are overloaded.
            best = self.request.create_response(500, "Next hop unavailable",
                                                to_tag=best.to.tag or self.proxy.core.new_tag())
        elif code in (401, 407):
            _merge_challenges(best, finals)
        return best

    def stop(self) -> None:
        for branch in self.branches:
            branch.stop_timers()


def _rank(response: Response) -> tuple[int, int, int]:
    code = response.status_code
    return (code // 100, 0 if code in _PREFERRED_4XX else (2 if code in (408, 503) else 1), code)


def _merge_challenges(best: Response, finals: list[Response]) -> None:
    """
    16.7 step 7: a 401/407 carries every challenge of every branch that asked for one.
    """
    for name in ("WWW-Authenticate", "Proxy-Authenticate"):
        present = set(best.headers.get_all(name))
        for response in finals:
            if response is best or response.status_code not in (401, 407):
                continue
            for value in response.headers.get_all(name):
                if value not in present:
                    present.add(value)
                    best.headers.add(name, value)


@implementer(IRequestRouter)
class Proxy:
    """
    The stateful, forking, record-routing proxy for the local domains (RFC 3261 16).

    @ivar forwarded: requests sent on (each branch and each stateless ACK counts).
    @ivar relayed_responses: responses sent upstream (relayed or chosen as best).
    @ivar refused: requests the proxy answered itself (403, 404, 420, 480, 482, 483, 503).
    @ivar relay_denied: of those, requests for foreign domains (403).
    @ivar unregistered: bindings removed because a request to them got no response at all.
    """

    log = Logger()

    def __init__(
        self,
        core,
        location: LocationService,
        clock,
        serves: Callable[[str], bool],
        *,
        users: Container[str] = (),
        timers: TimerValues = DEFAULT_TIMERS,
        aliases: Iterable[str] = (),
        record_route: bool = True,
        authenticator: DigestAuthenticator | None = None,
        max_pending: int = MAX_PENDING,
        max_unanswered: int = MAX_UNANSWERED,
        trusted: Container[str] | None = None,
    ) -> None:
        """
        @param core: the L{UserAgentCore}; its C{transport} is the stack.
        @param location: the registrar's location service.
        @param clock: C{IReactorTime} for Timer C and C{now}.
        @param serves: C{host -> bool}, the local domains (C{Registrar.serves}).
        @param users: configured user names; one of them with no binding gets 480, not 404.
            A mapping name -> password also says who must authenticate: an initial request
            whose From is such a local user is challenged (407) before it is proxied, as
            Kamailio's C{proxy_authorize} does, so nobody can send as them without the password.
        @param authenticator: the digest nonce issuer for those challenges (share the
            registrar's for one realm and one nonce table); by default one of our own, with the
            stack's host as realm and a random secret.
        @param max_pending: proxied requests in progress at once; beyond, 503.
        @param max_unanswered: client transactions without any response yet to one
            destination; a request whose every target is at this bound is answered 503.
        @param timers: the stack's timer values (Timer C, and 64*T1 to wait for a 487).
        @param aliases: other host names or addresses that mean this server in Route headers
            (the bind address, a public address...); the stack's advertised host always does.
        @param record_route: add Record-Route to dialog-creating requests (16.6 step 4).
        @param trusted: the RFC 3325 trust domain (source hosts); an asserted identity
            (P-Asserted-Identity, Remote-Party-ID) from anyone else is removed before the
            request is forwarded, so a phone never shows a caller a stranger wrote.  None:
            forwarded as received.
        """
        self.core = core
        self.transport = core.transport
        self.location = location
        self.clock = clock
        self.serves = serves
        self.users = users
        self.timers = timers
        self.record_route = record_route
        self.trusted = trusted
        host = self.transport.local_address("udp")[0]
        self._hosts = {_strip_brackets(host).lower()} | {
            _strip_brackets(alias).lower() for alias in aliases}
        self.forwarded = 0
        self.relayed_responses = 0
        self.refused = 0
        self.relay_denied = 0
        self.unregistered = 0
        self._contexts: set[ResponseContext] = set()
        #: Via branches of requests forwarded to this very stack (a WCS session's contact),
        #: so that their arrival can be told from a request someone sent us directly.
        self._sent_here: dict[str, ResponseContext] = {}
        self._denied_domains: set[str] = set()
        self._last_mark: tuple[Request, str] | None = None
        self._record_routes: dict[tuple[str, str, int, bool], str] = {}
        self.bounds = ForwardingBounds(max_pending, max_unanswered, clock)
        #: Media anchors of calls between IPv4 and IPv6 phones (its C{anchor} set by tap.py).
        self.media = ProxyMedia()
        self.authentication = None
        if isinstance(users, Mapping) and any(password is not None for password in users.values()):
            self.authentication = UserAuthentication(
                core, clock, authenticator or DigestAuthenticator(host, os.urandom(32)), users,
                proxy=True)

    def __len__(self) -> int:
        """
        Proxied requests still waiting for a final response from some branch.
        """
        return len(self._contexts)

    def statistics(self) -> dict[str, int]:
        return {"forwarded": self.forwarded, "relayed_responses": self.relayed_responses,
                "refused": self.refused, "relay_denied": self.relay_denied,
                "unregistered": self.unregistered, "pending": len(self._contexts)}

    def binding_failed(self, binding: Binding, method: str, reason: str) -> None:
        """
        A request sent to C{binding} got no response at all (Timer B/F, or a transport error,
        RFC 3261 8.1.3.1 / 18.4): the phone behind it is gone, so its binding goes now rather
        than at its expiry, as Kamailio's "unregister on failure" does.  A binding refreshed
        since (a new REGISTER) speaks for itself and stays; one that answered anything stays.
        """
        if self.location.find(binding.aor, binding.contact_key) is not binding:
            return
        if binding.source is not None and self._is_own_destination(binding.source):
            return  # a contact of this very stack (a WCS session): its owner removes it
        self.location.remove(binding.aor, binding.contact_key)
        self.unregistered += 1
        self.log.info("binding {contact} of {aor} removed: {method} to it got no response "
                      "({reason})", contact=binding.contact_key, aor=binding.aor,
                      method=method, reason=reason)

    def stop(self) -> None:
        """
        Cancel every timer (on shutdown; pending requests are abandoned).
        """
        for context in list(self._contexts):
            context.stop()
        self._contexts.clear()
        self._sent_here.clear()
        self.bounds.clear()
        self.media.stop()

    def _retire(self, context: ResponseContext) -> None:
        """
        Forget a proxied request that is over (every branch done and the final relayed).
        """
        self._contexts.discard(context)
        self.media.retired(context.branches)
        for branch in context.branches:
            if self._sent_here.get(branch.sent_branch) is context:
                del self._sent_here[branch.sent_branch]

    def forwarded_here(self, event):
        """
        If C{event}'s request is one this proxy forwarded to this very stack (after it checked
        the sender's credentials, L{_authorized}), the source it originally came from; else
        None.  Such a request's top Via is one we added, with the branch of a request still in
        progress: 64 random bits that never leave this host, so a request someone sends us
        cannot carry one.
        """
        try:
            via = event.request.top_via
        except RemoteProtocolError:
            return None
        context = self._sent_here.get(via.branch or "")
        if (context is None or context not in self._contexts
                or _strip_brackets(via.host).lower() not in self._hosts):
            return None
        return context.event.source

    # --- IRequestRouter ------------------------------------------------------------------------

    def accept_request(self, event) -> bool:
        request: Request = event.request
        if request.method == "REGISTER":
            return False
        uri = request.uri
        if not isinstance(uri, SIPURI) or uri.scheme == "tel":
            return False
        routes = request.headers.get_all("Route")
        strict = False
        if routes and self.is_own_uri(uri) and uri.has_param("lr"):
            # 16.4: a strict router put our Record-Route URI in the Request-URI.
            try:
                uri = NameAddress.parse(routes[-1]).uri
            except RemoteProtocolError:
                return False
            routes = routes[:-1]
            strict = True
        ours = self._own_route_count(routes)
        to_tag = request.to.tag
        if not ours and not strict:
            if to_tag:
                return False  # someone else's dialog: the core answers 481
            if self.serves(uri.host):
                if not uri.user:
                    return False  # the domain itself (OPTIONS pings): the core answers
                return self._to_location(event, uri, request.headers.copy())
            if self.is_own_uri(uri):
                return False
            self._deny(event, uri.host)
            return True
        routes = routes[ours:]
        headers = self._without_routes(request.headers, routes)
        if not routes and not to_tag and uri.user and self.serves(uri.host):
            # A pre-loaded Route to us (outbound proxy) in front of a request for a local user.
            return self._to_location(event, uri, headers)
        return self._to_next_hop(event, uri, headers, routes)

    def accept_ack(self, event) -> bool:
        """
        An ACK for a 2xx nobody here owns: forward it statelessly along its Route (16.11).
        """
        request: Request = event.request
        routes = request.headers.get_all("Route")
        ours = self._own_route_count(routes)
        if not ours:
            return False
        routes = routes[ours:]
        uri = request.uri
        if not isinstance(uri, SIPURI):
            return True
        next_uri = self._next_uri(routes, uri)
        destination = self._destination(next_uri) if next_uri is not None else None
        if destination is None or self._is_own_destination(destination):
            self.log.info("ACK for {uri}: no usable next hop, dropped", uri=str(uri))
            return True
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            return True
        headers = self._without_routes(request.headers, routes)
        headers.set("Max-Forwards", str(max_forwards - 1) if max_forwards is not None else "70")
        # Retransmitted ACKs get the same branch (16.11): derive it from the incoming one.
        seed = f"{request.top_via.branch}|{request.cseq.number}".encode()
        branch = "z9hG4bK" + hashlib.blake2s(seed, digest_size=8).hexdigest()
        headers.prepend("Via", str(via_value(self.transport, destination.transport, branch,
                                             destination.host)))
        body = self.media.forwarded(request, destination, branch)
        self.transport.send_message(Request("ACK", uri, headers, body), destination)
        self.forwarded += 1
        return True

    # --- what is ours ------------------------------------------------------------------------------

    def is_own_uri(self, uri) -> bool:
        """
        Whether C{uri} names this server: one of our hosts, on the port of its transport.
        """
        host = getattr(uri, "host", None)
        if not host or _strip_brackets(host).lower() not in self._hosts:
            return False
        transport = uri.transport
        default = DEFAULT_PORTS.get(transport)
        if default is None:
            return False
        port = uri.port if uri.port is not None else default
        return port == self.transport.local_address(transport)[1]

    def _is_own_destination(self, destination: SIPAddress) -> bool:
        return (destination.host.lower() in self._hosts
                and destination.port == self.transport.local_address(destination.transport)[1])

    def _own_route_count(self, routes: list[str]) -> int:
        """
        How many leading Route values are ours: 0, 1, or 2 after double record-routing.
        """
        count = 0
        for value in routes[:2]:
            try:
                route = NameAddress.parse(value)
            except RemoteProtocolError:
                break
            if not self.is_own_uri(route.uri):
                break
            count += 1
        return count

    # --- forwarding ------------------------------------------------------------------------------

    def _to_location(self, event, uri: SIPURI, headers) -> bool:
        """
        16.5: the targets of a request for a local user are its live bindings.
        """
        aor = address_of_record(uri)
        now = self.clock.seconds()
        bindings = self.location.lookup(aor, now)
        targets = [binding for binding in bindings if not self.is_own_uri(binding.contact.uri)]
        if bindings and not targets:
            return False  # registered at this very stack: another router serves it
        if not self._checked(event, headers):
            return True
        if not targets:
            known = self.location.known(aor) or (uri.user in self.users)
            if known:
                self._refuse(event, 480, "Temporarily Unavailable")
            else:
                self._refuse(event, 404, "Not Found")
            return True
        forwarded, bindings = [], {}
        for binding in targets:
            uri = binding.contact.uri
            uri = uri.without_headers() if uri.headers else uri
            destination = self._binding_destination(binding)
            if destination is None:
                continue
            forwarded.append((uri, destination))
            bindings[(str(uri), destination)] = binding
        if not forwarded:
            self._refuse(event, 480, "Temporarily Unavailable")
            return True
        self._forward(event, headers, forwarded, bindings)
        return True

    def _to_next_hop(self, event, uri: SIPURI, headers, routes: list[str]) -> bool:
        """
        16.4-16.6 for a loose-routed request: to the next Route, else to the Request-URI.
        """
        next_uri = self._next_uri(routes, uri)
        if next_uri is None:
            self._refuse(event, 400, "Bad Route")
            return True
        destination = self._destination(next_uri)
        if destination is not None and self._is_own_destination(destination):
            return False  # for this stack after all (no dialog here matched: core answers)
        if not self._checked(event, headers):
            return True
        if destination is None:
            self.log.info("{method} routed to {uri}: next hop {hop} is not an IP address we can "
                          "reach without DNS; answered 503", method=event.request.method,
                          uri=str(uri), hop=str(next_uri))
            self._refuse(event, 503, "Next hop not resolvable")
            return True
        if routes:
            try:
                first = NameAddress.parse(routes[0])
            except RemoteProtocolError:
                first = None
            if first is not None and not first.uri.has_param("lr"):
                # 16.6 step 6: the next hop is a strict router: it gets the URI as R-URI.
                headers.pop_first("Route")
                headers.add("Route", str(NameAddress(None, uri)))
                uri = first.uri
        self._forward(event, headers, [(uri, destination)])
        return True

    def _forward(self, event, headers, targets: list[tuple[SIPURI, SIPAddress]],
                 bindings: Mapping[tuple[str, SIPAddress], Binding] | None = None) -> None:
        """
        16.6 for each target: copy, Request-URI, Max-Forwards, Record-Route, Via, send.

        @param bindings: the location binding of each target by C{(str(uri), destination)},
            for a request to a local user (a binding that never answers is removed).
        """
        request: Request = event.request
        upstream = getattr(event.source, "host", None)
        targets, refusal = self.bounds.admit(len(self._contexts), targets,
                                             in_dialog=request.to.tag is not None)
        if refusal is not None:
            self._refuse(event, 503, refusal, [("Retry-After", str(RETRY_AFTER))])
            return
        # After the bounds: every anchor opened here goes with a copy sent below.
        targets, why = self.media.prepare(request, upstream, targets, self._is_own_destination)
        if why is not None:
            agent = host_text(self.transport.local_address("udp")[0])
            self._refuse(event, 488, "Not Acceptable Here",
                         [("Warning", f'301 {agent} "{INCOMPATIBLE_ADDRESSES}"')])
            return
        max_forwards = request.max_forwards
        headers.set("Max-Forwards", str(max_forwards - 1) if max_forwards is not None else "70")
        self._strip_untrusted_identity(headers, upstream)
        context = ResponseContext(self, event)
        self._contexts.add(context)
        if context.is_invite:
            self.core.own_server(event.transaction_key, context)
        record_route = (self.record_route and request.method in RECORD_ROUTE_METHODS
                        and request.to.tag is None)
        inbound = event.source.transport if isinstance(event.source, SIPAddress) else "udp"
        loop_mark = self._loop_mark(request)
        last = len(targets) - 1
        for index, (target, destination) in enumerate(targets):
            copy = headers if index == last else headers.copy()
            outbound = destination.transport
            if record_route:
                # RFC 5658: one entry for each side when the transport or our address differs.
                # 16.6 step 4: sips when the new Request-URI is.
                secure = getattr(target, "scheme", "") == "sips"
                toward_caller = self._record_route(inbound, upstream, secure)
                toward_callee = self._record_route(outbound, destination.host, secure)
                if toward_caller != toward_callee:
                    copy.prepend("Record-Route", toward_caller)
                copy.prepend("Record-Route", toward_callee)
            branch = f"{self.transport.generate_branch()}-{loop_mark}"
            copy.prepend("Via", str(via_value(self.transport, outbound, branch,
                                              destination.host)))
            binding = bindings.get((str(target), destination)) if bindings else None
            if self._is_own_destination(destination):
                self._sent_here[branch] = context
            body = self.media.forwarded(request, destination, branch)
            context.forward(Request(request.method, target, copy, body), destination,
                            binding, branch)

    def _strip_untrusted_identity(self, headers, upstream: str | None) -> None:
        """
        RFC 3325 5: an asserted identity from outside the trust domain is removed.
        """
        if self.trusted is None or upstream in self.trusted:
            return
        for name in IDENTITY_HEADERS:
            if name in headers:
                headers.remove(name)
                self.log.info("{header} from untrusted {source} removed (sip_trusted_peers)",
                              header=name, source=upstream)

    def relay(self, context: ResponseContext, response: Response) -> None:
        """
        Send C{response} upstream through the server transaction (16.7 step 9).
        """
        try:
            self.core.respond(context.key, response)
        except LocalProtocolError as error:
            self.log.debug("{code} not relayed: {error}", code=response.status_code,
                           error=str(error))
            return
        self.relayed_responses += 1

    # --- checks and refusals ----------------------------------------------------------------

    def _checked(self, event, headers) -> bool:
        """
        16.3 steps 3-5 (Max-Forwards, loop, Proxy-Require); answers and returns False if bad.
        """
        request: Request = event.request
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            self._refuse(event, 483, "Too Many Hops")
            return False
        if self._looped(request):
            self._refuse(event, 482, "Loop Detected")
            return False
        required = request.headers.get_all("Proxy-Require")
        if required:
            self._refuse(event, 420, "Bad Extension", [("Unsupported", ", ".join(required))])
            return False
        return self._authorized(event, headers)

    def _authorized(self, event, headers) -> bool:
        """
        RFC 3261 22.3: an initial request From a local user who has a password must carry
        that user's credentials; they are consumed here (not forwarded).  In-dialog requests,
        ACK and CANCEL (which cannot be challenged, 22.1) pass.
        """
        request: Request = event.request
        user = self._claimed_user(request)
        if user is None:
            return True
        if not self.authentication.check(event, user):
            self.refused += 1
            return False
        used = self.authentication.credentials(request)
        others = [value for value in headers.get_all("Proxy-Authorization") if value != used]
        headers.remove("Proxy-Authorization")
        for value in others:
            headers.add("Proxy-Authorization", value)
        return True

    def _claimed_user(self, request: Request) -> str | None:
        """
        The local user with a password an initial request says it comes from (its From),
        or None when nothing is to be proven.
        """
        authentication = self.authentication
        if (authentication is None or request.method in ("ACK", "CANCEL")
                or request.to.tag is not None):
            return None
        sender = request.from_.uri
        user = getattr(sender, "user", None)
        if (isinstance(sender, SIPURI) and self.serves(sender.host)
                and authentication.has_password(user)):
            return user
        return None

    def sender_authenticated(self, event) -> bool:
        """
        The check of L{_authorized} for a request this stack takes without proxying it (an
        INVITE for a WCS session, taken by the call table, which comes first): a request
        From a local user with a password needs her credentials, unless this proxy forwarded
        it here (L{forwarded_here}: it was checked then, and is not challenged twice).  When
        False, the request has been answered (407, 400 or 403).
        """
        user = self._claimed_user(event.request)
        if user is None or self.forwarded_here(event) is not None:
            return True
        if self.authentication.check(event, user):
            return True
        self.refused += 1
        return False

    def _loop_mark(self, request: Request) -> str:
        """
        16.6 step 8: a digest of what makes a request itself, appended to our branch so we
        recognise it if it comes back unchanged (a loop, not a spiral).
        """
        last = self._last_mark
        if last is not None and last[0] is request:
            return last[1]  # _looped and _forward both ask, for the same request
        headers = request.headers
        text = "\x00".join((
            str(request.uri), headers.get("To") or "", headers.get("From") or "",
            headers.get("Call-ID") or "", headers.get("CSeq") or "",
            ",".join(headers.get_all("Route")), ",".join(headers.get_all("Proxy-Require")),
        ))
        mark = "%08x" % zlib.crc32(text.encode("utf-8", "surrogateescape"))
        self._last_mark = (request, mark)
        return mark

    def _looped(self, request: Request) -> bool:
        """
        16.3 step 4: one of the Vias is ours and carries this very request's loop mark.
        """
        mark = None
        hosts = self._hosts
        for value in request.headers.get_all("Via"):
            try:
                via = Via.parse(value)  # memoised: the parser has read every Via already
            except RemoteProtocolError:
                continue
            if _strip_brackets(via.host).lower() not in hosts:
                continue
            branch = via.branch or ""
            if mark is None:
                mark = "-" + self._loop_mark(request)
            if branch.endswith(mark):
                return True
        return False

    def _refuse(self, event, status: int, reason: str, extra=()) -> None:
        response = event.request.create_response(status, reason, to_tag=self.core.new_tag())
        for name, value in extra:
            response.headers.add(name, value)
        # Counted, not logged: twistd writes debug events too, at ~65 us each, and a refusal
        # comes in floods (overload, scans); the message trace shows each one when asked.
        self.refused += 1
        self.core.respond(event.transaction_key, response)

    def _deny(self, event, domain: str) -> None:
        """
        Not an open relay: a request for a foreign domain without our Route gets 403.
        """
        self.relay_denied += 1
        domain = domain.lower()
        if domain not in self._denied_domains and len(self._denied_domains) < _MAX_LOGGED_DOMAINS:
            self._denied_domains.add(domain)
            self.log.info("relaying to foreign domain {domain} denied ({method} from {source}); "
                          "further requests for it are refused silently", domain=domain,
                          method=event.request.method, source=str(event.source))
        self._refuse(event, 403, "Relaying denied")

    # --- building blocks ----------------------------------------------------------------------

    def _without_routes(self, original, remaining: list[str]):
        """
        A copy of C{original} whose Route values are exactly C{remaining}.
        """
        headers = original.copy()
        headers.remove("Route")
        for value in remaining:
            headers.add("Route", value)
        return headers

    def _next_uri(self, routes: list[str], uri: SIPURI):
        if not routes:
            return uri
        try:
            return NameAddress.parse(routes[0]).uri
        except RemoteProtocolError:
            return None

    def destinations(self, uri) -> list[SIPAddress]:
        """
        Where a request for C{uri} would be forwarded now: the live bindings of a local user,
        this stack's own left out.  The call table offers a call's media in their family (an
        IPv6-only phone cannot answer an offer that says c=IN IP4).
        """
        if not isinstance(uri, SIPURI) or not uri.user or not self.serves(uri.host):
            return []
        found = []
        for binding in self.location.lookup(address_of_record(uri), self.clock.seconds()):
            destination = self._binding_destination(binding)
            if destination is not None and not self._is_own_destination(destination):
                found.append(destination)
        return found

    def _binding_destination(self, binding: Binding) -> SIPAddress | None:
        """
        Where a request for C{binding} goes: back over its REGISTER's flow when the registrar
        said so (NAT, a connection, RFC 5626), else to its Contact; a Contact that names no
        transport we resolve (a WCS session's C{transport=ws} binding) goes to the source.
        """
        destination = _flow(binding) or self._resolve(binding.contact.uri)
        if destination is None and isinstance(binding.source, SIPAddress):
            return binding.source
        return destination

    def _destination(self, uri) -> SIPAddress | None:
        """
        Where to send for C{uri}: a registered contact as its binding says, else L{_resolve}.
        """
        if isinstance(uri, SIPURI) and uri.scheme != "tel":
            binding = self.location.binding_at(uri.host, uri.port, self.clock.seconds())
            if binding is not None and _flow(binding) is not None:
                return binding.source
        return self._resolve(uri)

    def _resolve(self, uri) -> SIPAddress | None:
        """
        RFC 3263 without DNS: IP literals and localhost only.
        """
        if not isinstance(uri, SIPURI) or uri.scheme == "tel":
            return None
        transport = uri.transport
        default = DEFAULT_PORTS.get(transport)
        if default is None:
            return None
        host = _strip_brackets(uri.host)
        maddr = uri.param("maddr")
        if maddr:
            host = _strip_brackets(maddr)
        if host.lower() == "localhost":
            host = "127.0.0.1"
        if not is_ip_literal(host):
            return None
        return SIPAddress(transport, host, uri.port if uri.port is not None else default)

    def _record_route(self, transport: str, toward: str | None = None,
                      secure: bool = False) -> str:
        host, port = self.transport.local_address(transport, toward)
        secure = secure and transport == "tls"
        key = (transport, host, port, secure)
        value = self._record_routes.get(key)
        if value is None:  # built once per address of ours (two per forwarded INVITE)
            uri = (SIPURI("sips", None, None, host_text(host), port, (("lr", None),))
                   if secure else
                   SIPURI("sip", None, None, host_text(host), port,
                          (("transport", transport), ("lr", None))))
            value = self._record_routes[key] = str(NameAddress(None, uri))
        return value
