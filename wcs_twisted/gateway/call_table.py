# -*- test-case-name: tests.gateway.test_call -*-
# Over 600 lines: the one call-control API (WS and REST) plus incoming-INVITE routing, which share the call table.
"""
All calls, and the call-control API the front-ends use (WebSocket messages, REST methods).

It also takes incoming SIP INVITEs for WCS sessions (an IRequestRouter placed before the proxy):
a session that registered upstream, or that is known in local mode, is reached by its contact
(the C{wcs} URI parameter carries the session's contact id) or by its SIP login.  In local mode
(WCS C{enable_local_videochat}) every session with a SIP login is bound in the built-in location
service, so two browsers call each other through the built-in proxy with SIP inside.
"""

from __future__ import annotations

import re
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import ICallAdmission, IRequestRouter
from wcs_twisted.sdp.errors import SDPError
from wcs_twisted.sip.address import is_ip_literal
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.gateway.fields import account_from_fields, read_boolean, read_text
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.gateway.call import DTMF_DIGITS, Call
from wcs_twisted.gateway.call_policy import CallPolicy, CallRefused, Destination
from wcs_twisted.gateway.call_events import FAILED_BY_ERROR, CallStatus, TransferStatus
from wcs_twisted.gateway.call_transfer import CONNECTED, parse_replaces
from wcs_twisted.gateway.caller_identity import TrustedPeers, caller_identity, invite_parameters
from wcs_twisted.errors import Conflict, DomainError, InvalidField, NotFound
from wcs_twisted.ua.invite_session import InviteSession
from wcs_twisted.ua.session_timer import interval_too_small
from wcs_twisted.ua.trunk_options import trunk_options
from wcs_twisted.ua.outbound import next_hop, split_host_port
from wcs_twisted.ua.location import Binding, address_of_record
from wcs_twisted.ua.registration import RegistrationState

#: The contact URI parameter naming the WCS session an INVITE is for.
CONTACT_PARAMETER = "wcs"

DTMF_TYPES = ("RFC2833", "INFO", "INFO_RELAY")

#: How long local-mode bindings live (they are removed when the session closes).
LOCAL_BINDING_SECONDS = 10 * 365 * 24 * 3600

#: The transport parameter of a session's local-mode contact (RFC 7118: reached over WebSocket).
#: It also keeps the contact from naming this stack's own SIP address, so the proxy forks to it
#: alongside the login's other bindings.
SESSION_CONTACT_TRANSPORT = "ws"

# RFC 3261 25.1 token: an extension header's name.
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


@dataclass(frozen=True)
class CallSettings:
    """
    What the call layer needs from the configuration.
    """

    local_domains: tuple[str, ...]
    local_mode: bool = True
    outbound_proxy: str = ""
    transport: str = "udp"
    #: Who may call where, and how many calls at once (docs/security.md).
    policy: CallPolicy = field(default_factory=CallPolicy)
    #: Seconds a call may ring unanswered before it is given up (sip_ring_timeout); 0: no bound.
    ring_timeout: float = 60.0
    #: Whose P-Asserted-Identity / Remote-Party-ID names the caller (sip_trusted_peers).
    trusted_peers: TrustedPeers = field(
        default_factory=lambda: TrustedPeers(("127.0.0.0/8", "::1/128")))
    #: We have an IPv6 address (ip6): a callee known by name is resolved before the offer is
    #: written, in the family of its first target.
    ipv6: bool = False


def _check_text(name: str, value: str | None) -> None:
    """
    Refuse a value that would split a SIP header (CR, LF, or another control character).
    """
    if value and any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidField(name, "control characters (CR, LF, ...) are not allowed")


@implementer(IRequestRouter)
class CallTable:
    """
    Calls by callId; the API of call control.
    """

    log = Logger()

    def __init__(self, core, clock, media, sessions, location, settings: CallSettings,
                 on_count: Callable[[int], None] = lambda count: None,
                 registration_factory: Callable[..., Any] | None = None) -> None:
        self.core = core
        self.clock = clock
        self.media = media
        self.sessions = sessions
        self.location = location
        self.settings = settings
        self.node_id = sessions.node_id
        self._calls: dict[str, Call] = {}
        self._on_count = on_count
        self.observers: list[Any] = []
        #: Makes a RegistrationClient for REST calls with sipRegisterRequired; None: such
        #: calls do not register first.
        self.registration_factory = registration_factory
        #: The built-in proxy (local mode), which checks who INVITEs for sessions come from
        #: (C{sender_authenticated}); None: nobody's credentials are checked.
        self.proxy = None
        sessions.observers.append(self)

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self):
        return iter(list(self._calls.values()))

    # --- lookups ----------------------------------------------------------------------------

    def get(self, call_id: str) -> Call:
        try:
            return self._calls[call_id]
        except KeyError:
            raise NotFound(f"Call {call_id} not found") from None

    def _owned(self, session, fields: dict[str, Any]) -> Call:
        call_id = read_text(fields, "callId")
        if not call_id:
            raise InvalidField("callId", "required")
        call = self.get(call_id)
        if session is not None and call.session is not session:
            raise NotFound(f"Call {call_id} not found")
        return call

    #: Call-object fields /call/find filters on.
    FIND_FIELDS = frozenset({"callId", "callee", "caller", "status", "rtmpUrl", "rtmpStream",
                             "streamName", "sessionId", "appKey", "incoming", "sipStatus",
                             "visibleName", "parentCallId"})

    def find(self, filters: dict[str, Any]) -> list[Call]:
        """
        Calls whose WCS object matches every given field (an empty filter matches all).
        """
        for name in filters:
            if name not in self.FIND_FIELDS:
                raise InvalidField(name, f"cannot filter on it; expected one of "
                                         f"{', '.join(sorted(self.FIND_FIELDS))}")
        found = []
        for call in self._calls.values():
            wcs = call.to_wcs()
            if all(wcs.get(name) == value for name, value in filters.items()):
                found.append(call)
        return found

    def terminate(self, fields: dict[str, Any]) -> None:
        """
        REST /call/terminate: hang up any call by id.
        """
        self._owned(None, fields).hang_up()

    def rest_send_dtmf(self, fields: dict[str, Any]) -> None:
        self.send_dtmf(None, fields)

    # --- starting calls ---------------------------------------------------------------------

    def _primary_domain(self) -> str:
        return self.settings.local_domains[0]

    def is_local(self, host: str) -> bool:
        return host.lower() in self.settings.local_domains

    def account_server(self, account: SIPAccount) -> str | None:
        """
        "host:port" of the SIP server an account belongs to, or None when that is this server
        (WCS local mode: domain/outbound proxy = our address, port 0 or ours).
        """
        our_port = self.core.transport.local_address(self.settings.transport)[1]
        text = account.outbound_proxy or account.domain
        if not text:
            return None
        host, port = split_host_port(text)
        port = port or account.port or None
        if self.is_local(host) and port in (None, our_port):
            return None
        return f"{host}:{port}" if port else host

    def target_uri(self, callee: str, account: SIPAccount) -> SIPURI:
        """
        The Request-URI for a callee as users type it: "1002", "1002@host", or a sip: URI.

        A bare user is placed in the account's domain, with the server's port when it is not
        5060 (a proxy on another port takes a port-less URI as someone else's, RFC 3263).
        """
        text = callee.strip()
        scheme = account.scheme  # a sips: account's calls are sips: end to end (RFC 5630)
        if not text.lower().startswith(("sip:", "sips:")):
            if "@" in text:
                text = f"{scheme}:{text}"
            else:
                domain = account.domain or self._primary_domain()
                server = self.account_server(account)
                if server is not None and ":" not in domain:
                    port = split_host_port(server)[1]
                    if port and port != 5060 and split_host_port(server)[0] == domain:
                        domain = f"{domain}:{port}"
                text = f"{scheme}:{text}@{domain}"
        try:
            uri = SIPURI.parse(text)
        except RemoteProtocolError as error:
            raise InvalidField("callee", f"{callee!r} is not a SIP user or URI ({error})") from None
        if account.transport != "udp" and uri.scheme == "sip" and not uri.param("transport"):
            uri = uri.with_params(transport=account.transport)  # the account's server's transport
        return uri

    def _outbound_proxy(self, account: SIPAccount, target: SIPURI) -> str:
        """
        Where the INVITE goes first: the account's own SIP server when it has one; for accounts
        of this server (local mode), ourselves for local users, else straight to the target (or
        the configured default outbound proxy).
        """
        server = self.account_server(account)
        if server is not None:
            return server
        host, port = self.core.transport.local_address(self.settings.transport)
        if self.is_local(target.host):
            if target.port in (None, port):
                return f"{host}:{port}" if self.settings.local_mode else ""
            return ""  # another process on one of our addresses: straight to it
        return self.settings.outbound_proxy

    def media_peer(self, target: SIPURI, outbound_proxy: str) -> str:
        """
        The host a call's SIP-leg SDP is written for: its first hop, except that a local user
        reached through our own proxy is where its bindings are (RFC 5118: an IPv6-only phone
        needs c=IN IP6; a phone registered from the Internet, our public address).  Bindings
        of both families get the first hop's: one c= line cannot serve both.
        """
        destination = next_hop(target, outbound_proxy)
        hop = destination.host
        if not is_ip_literal(hop):
            return self._resolved_ipv6(destination) or hop
        if self.proxy is None or not self.is_local(target.host):
            return hop
        hosts = sorted({destination.host for destination in self.proxy.destinations(target)})
        if len(hosts) == 1 or (hosts and all(":" in host for host in hosts)):
            return hosts[0]
        return hop

    def _resolved_ipv6(self, destination) -> str | None:
        """
        The first target of a name the stack has resolved (RFC 3263), when it is IPv6.
        """
        resolver = getattr(self.core.transport, "resolver", None)
        resolution = resolver.cached(destination) if resolver is not None else None
        first = resolution.targets[0].host if resolution and resolution.targets else None
        return first if first and ":" in first else None

    def _call_account(self, call: Call) -> SIPAccount:
        return call.account or SIPAccount("", "", "", self._primary_domain(), "", 0, False)

    def outbound_proxy_for(self, call: Call, target: SIPURI) -> str:
        """
        The first hop for a new leg of C{call} (a REFER target).
        """
        return self._outbound_proxy(self._call_account(call), target)

    def check_refer_target(self, call: Call, target: SIPURI) -> None:
        """
        A SIP peer REFERs C{call} to C{target}: we would dial it on the session's behalf, so
        the session's policy applies (a REST call's is the operator's: not checked).

        @raise CallRefused: the session may not call C{target}.
        """
        if call.session is not None:
            self.check_session_call(call.session, target, self._call_account(call),
                                    new_call=False)

    def _new_outgoing(self, session, account: SIPAccount, fields: dict[str, Any]) -> tuple[Call, SIPURI]:
        """
        The one path of both outgoing starts: validate the call fields, make the call for
        C{account} (not yet in the table) and its Request-URI.
        """
        callee = read_text(fields, "callee")
        if not callee:
            raise InvalidField("callee", "required")
        call_id = read_text(fields, "callId") or str(uuid.uuid1())
        if call_id in self._calls:
            raise Conflict(f"Call {call_id} already exists")
        target = self.target_uri(callee, account)
        values = dict(fields)
        values["hasAudio"] = read_boolean(fields, "hasAudio", True)
        values["hasVideo"] = read_boolean(fields, "hasVideo", False)
        values["caller"] = account.login
        visible_name = read_text(fields, "visibleName")
        values["visibleName"] = (visible_name if visible_name is not None
                                 else account.visible_name or account.login)
        _check_text("visibleName", values["visibleName"])
        self._sip_headers(fields)
        call = Call(self, call_id, session, incoming=False, fields=values)
        call.account = account
        return call, target

    def _dial(self, call: Call, target: SIPURI, browser_sdp: str | None,
              fields: dict[str, Any], looked_up: bool = False) -> None:
        account = call.account
        hop = next_hop(target, self._outbound_proxy(account, target))
        resolver = getattr(self.core.transport, "resolver", None)
        if (self.settings.ipv6 and not looked_up and resolver is not None
                and not is_ip_literal(hop.host) and resolver.cached(hop) is None):
            # The offer names our address in the family of where the call goes: resolve first.
            def resolved(_) -> None:
                if not call.status.released:
                    self._dial(call, target, browser_sdp, fields, looked_up=True)
            resolver.resolve(hop).addBoth(resolved)
            return
        from_uri = SIPURI(account.scheme, account.login, None,
                          account.domain or self._primary_domain(), None)
        credentials = ((account.authentication_name, account.password)
                       if account.password else None)
        try:
            call.start_outgoing(browser_sdp, target, from_uri,
                                self._outbound_proxy(account, target), credentials,
                                self._sip_headers(fields))
        except DomainError as error:
            call.fail(error.info)
            raise
        except SDPError as error:
            self.log.info("call {call_id}: unusable SDP offer: {error}", call_id=call.call_id,
                          error=str(error))
            call.fail(f"Bad SDP: {error}")
        except Exception as error:
            # Whatever else broke, the call ends and gives back its ports now, not when the
            # session closes.  One line per failure: a client may be able to cause these at
            # will, so the traceback is kept for debug only.
            self.log.warn("call {call_id} failed while being set up: {error}",
                          call_id=call.call_id, error=repr(error))
            self.log.debug("{traceback}", traceback=traceback.format_exc())
            call.fail(FAILED_BY_ERROR)

    def _foreign_hops(self, account: SIPAccount, target: SIPURI) -> list[Destination]:
        """
        The SIP destinations a call would reach that are not this server: its first hop and
        the Request-URI's host (a first hop the operator configured, sip_outbound_proxy, is
        the operator's own choice and not listed).
        """
        hops = []
        first = self._outbound_proxy(account, target)
        if first and first != self.settings.outbound_proxy:
            hops.append(Destination.parse(first))
        hops.append(Destination(target.host.strip("[]").lower(), target.port))
        return self._foreign(hops)

    def _registrar_hops(self, account: SIPAccount) -> list[Destination]:
        """
        The SIP destinations an upstream registration of C{account} reaches that are not this
        server: its first hop (sipOutboundProxy, else the domain) and the registrar's domain.
        """
        hops = []
        server = self.account_server(account)
        if server is not None:
            hops.append(Destination.parse(server))
        if account.domain:
            domain = Destination.parse(account.domain)
            hops.append(Destination(domain.host, domain.port or account.port or None))
        return self._foreign(hops)

    def _foreign(self, hops: list[Destination]) -> list[Destination]:
        """
        C{hops} without this server (a local domain on our SIP port) and without repeats.
        """
        port = self.core.transport.local_address(self.settings.transport)[1]
        foreign: list[Destination] = []
        for hop in hops:
            if self.is_local(hop.host) and hop.port in (None, port):
                continue
            if hop not in foreign:
                foreign.append(hop)
        return foreign

    def check_session_call(self, session, target: SIPURI, account: SIPAccount | None = None,
                           new_call: bool = True) -> None:
        """
        Refuse (L{CallRefused}, logged) a call the policy does not let C{session} make: a new
        call (counted against its caps), or the leg a REFER asks for (C{new_call} false).
        """
        account = account or session.account
        try:
            if new_call:
                self.settings.policy.check_count(session, self._calls.values())
            via_account_server = (session.registered
                                  and self.account_server(account) is not None
                                  and self._outbound_proxy(account, target)
                                  == self.account_server(account))
            self.settings.policy.check_call(
                session, self._foreign_hops(account, target), via_account_server,
                self._registrar_hops(session.account) if session.registered else None)
        except CallRefused as refusal:
            self.log.warn("call from session {session_id} ({address}) to {target} refused: "
                          "{info}", session_id=session.session_id, address=session.address,
                          target=str(target), info=refusal.info)
            raise

    def start_call(self, session, fields: dict[str, Any]) -> Call:
        """
        A browser's C{call}: validate, check the policy, answer TRYING, INVITE the callee.
        """
        if session is None or session.account is None:
            raise DomainError("SIP account required: connect with sipLogin to make calls")
        call, target = self._new_outgoing(session, session.account, fields)
        sdp = read_text(fields, "sdp")
        if not sdp:
            raise InvalidField("sdp", "required: the browser's SDP offer")
        self.check_session_call(session, target)
        self._add(call)
        self._dial(call, target, sdp, fields)
        return call

    #: Fields /call/startup accepts (WCS REST API).
    REST_STARTUP_FIELDS = frozenset({
        "callId", "callee", "visibleName", "hasAudio", "hasVideo", "toStream", "rtmpUrl",
        "rtmpStream", "sipLogin", "sipAuthenticationName", "sipPassword", "sipDomain",
        "sipOutboundProxy", "sipProxy", "sipPort", "sipRegisterRequired", "appKey", "custom",
        "sipHeaders",
    })

    def start_rest_call(self, fields: dict[str, Any]) -> Call:
        """
        A server-originated call (REST /call/startup): a SIP leg with no browser.

        With C{hasAudio}/C{hasVideo} false the SIP side is offered recvonly.  The account is
        registered first when C{sipRegisterRequired} is set.
        """
        for name in fields:
            if name not in self.REST_STARTUP_FIELDS:
                raise InvalidField(name, "unknown field")
        our_port = self.core.transport.local_address(self.settings.transport)[1]
        account = account_from_fields(fields, our_port)
        if account is None:
            raise InvalidField("sipLogin", "required")
        call, target = self._new_outgoing(None, account, fields)
        rtmp = (read_text(fields, "rtmpUrl"), read_text(fields, "rtmpStream"))
        if rtmp[0] and any((c.extra.get("rtmpUrl"), c.extra.get("rtmpStream")) == rtmp
                           for c in self._calls.values()):
            raise Conflict(f"RTMP stream {rtmp[1]} at {rtmp[0]} is already in use")
        call.stream_name = read_text(fields, "toStream") or None
        # The RTMP push's fields, shown on the call object (they move to the RTMP module).
        for name in ("rtmpUrl", "rtmpStream"):
            if fields.get(name):
                call.extra[name] = read_text(fields, name)
        if call.extra.get("rtmpUrl"):
            call.extra["rtmpStreamStatus"] = "RTMP_STREAM_WAIT"
        self._add(call)

        def dial() -> None:
            self._dial(call, target, None, fields)

        if account.register_required and self.registration_factory is not None:
            self._register_then(call, account, dial)
        else:
            dial()
        return call

    def _register_then(self, call: Call, account: SIPAccount, dial) -> None:
        def changed(change) -> None:
            state = change.state
            if state is RegistrationState.REGISTERED and call.status is CallStatus.PENDING:
                dial()
            elif state in (RegistrationState.FAILED, RegistrationState.AUTHENTICATION_FAIL):
                registration.stop()
                call.fail(f"Registration failed: {change.reason}")

        registration = self.registration_factory(account, changed)
        call.registration = registration
        registration.start()

    @staticmethod
    def _sip_headers(fields: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """
        The C{X-} headers a call adds to its INVITE (others are ignored, as by WCS).

        @raise InvalidField: a name that is not a SIP token, or a value that would split the
            header.
        """
        headers = fields.get("sipHeaders")
        if not isinstance(headers, dict):
            return ()
        chosen = []
        for name, value in headers.items():
            name, value = str(name), str(value)
            if not name.lower().startswith("x-"):
                continue
            if not _TOKEN.fullmatch(name):
                raise InvalidField("sipHeaders", f"{name!r} is not a SIP header name")
            _check_text("sipHeaders", value)
            chosen.append((name, value))
        return tuple(chosen)

    def _add(self, call: Call) -> None:
        self._calls[call.call_id] = call
        self._on_count(len(self._calls))

    # --- call control from a session -----------------------------------------------------------

    def answer(self, session, fields: dict[str, Any]) -> None:
        call = self._owned(session, fields)
        sdp = read_text(fields, "sdp")
        if not sdp:
            raise InvalidField("sdp", "required: the browser's SDP answer")
        call.answer(sdp)

    def hang_up(self, session, fields: dict[str, Any]) -> None:
        self._owned(session, fields).hang_up()

    def hold(self, session, fields: dict[str, Any]) -> None:
        self._owned(session, fields).hold(read_boolean(fields, "holdForTransfer", False))

    def unhold(self, session, fields: dict[str, Any]) -> None:
        self._owned(session, fields).unhold()

    def send_dtmf(self, session, fields: dict[str, Any]) -> None:
        call = self._owned(session, fields)
        digits = read_text(fields, "dtmf")
        method = (read_text(fields, "type") or "RFC2833").upper()
        if not digits or any(digit not in DTMF_DIGITS for digit in digits):
            raise InvalidField("dtmf", "expected digits 0-9, *, #, A-D")
        if method not in DTMF_TYPES:
            raise InvalidField("type", f"expected one of {', '.join(DTMF_TYPES)}")
        if call.status not in (CallStatus.ESTABLISHED, CallStatus.HOLD):
            raise DomainError("Call is not established")
        for digit in digits:
            call.send_dtmf(digit, method)

    def transfer(self, session, fields: dict[str, Any]) -> None:
        call = self._owned(session, fields)
        target = read_text(fields, "target")
        if not target:
            raise InvalidField("target", "required")
        if call.status not in (CallStatus.ESTABLISHED, CallStatus.HOLD):
            raise DomainError("Call is not established")
        other = self._calls.get(target)
        if other is not None and other is not call and other.session is call.session:
            # Attended transfer (RFC 5589 7): the target is the session's other call, whose
            # dialog the transferee replaces.
            call.transfer(other.replaces_uri())
            return
        account = session.account if session is not None else None
        uri = self.target_uri(target, account or SIPAccount(
            "", "", "", self._primary_domain(), "", 0, False))
        if self.is_local(uri.host) and uri.port is None:
            # The transferee dials Refer-To itself: name our port, it may not be 5060.
            host, port = self.core.transport.local_address(self.settings.transport)
            uri = SIPURI(uri.scheme, uri.user, None, host, port, uri.params)
        if session is not None:
            # The transferee dials the target in this session's name: the same policy applies.
            self.check_session_call(session, uri, new_call=False)
        call.transfer(uri)

    # --- events from calls ---------------------------------------------------------------------

    def _ask(self, method: str, call: Call, *args) -> Deferred:
        """
        Ask the observers that take part in C{method} (an incoming invocation: the REST hooks'
        C{call_offered}, C{transfer_requested}); fires with the fields they changed, or fails
        with the first refusal (a DomainError).
        """
        asked = [getattr(observer, method)(call, *args) for observer in list(self.observers)
                 if ICallAdmission.providedBy(observer)]
        if not asked:
            return succeed({})

        def merged(results) -> dict[str, Any]:
            changes: dict[str, Any] = {}
            for result in results:
                if isinstance(result, dict):
                    changes.update(result)
            return changes

        def first_error(failure):
            failure.trap(FirstError)
            return failure.value.subFailure

        return gatherResults(asked, consumeErrors=True).addCallbacks(merged, first_error)

    def transfer_requested(self, call: Call, target: SIPURI) -> Deferred:
        """
        A SIP peer REFERs C{call} to C{target}: the backend hears OnTransferEvent first.
        """
        return self._ask("transfer_requested", call, target)

    def status_changed(self, call: Call, info: str | None) -> None:
        for observer in list(self.observers):
            observer.call_status_changed(call, info)

    def transfer_changed(self, call: Call, status: TransferStatus) -> None:
        for observer in list(self.observers):
            observer.call_transfer_changed(call, status)

    def dtmf_received(self, call: Call, digit: str, method: str) -> None:
        for observer in list(self.observers):
            observer.call_dtmf_received(call, digit, method)

    def released(self, call: Call) -> None:
        if self._calls.pop(call.call_id, None) is not None:
            self._on_count(len(self._calls))
        if call.registration is not None:
            call.registration.stop()

    # --- sessions -------------------------------------------------------------------------------

    def _binds_locally(self, account: SIPAccount | None) -> bool:
        """
        Whether a session with C{account} is bound in the built-in location service.
        """
        if account is None or not self.settings.local_mode or account.register_required:
            return False
        domain = account.domain or self._primary_domain()
        return self.is_local(split_host_port(domain)[0])

    def login_proven(self, account: SIPAccount) -> bool:
        """
        Before a session opens: a local login that has credentials at the built-in registrar
        must be proven with its password, as a REGISTER would be, or it is not bound at all
        (it would take that user's incoming calls).

        @return: whether the session proved credentials.
        @raise DomainError: the password is missing or wrong.
        """
        if not self._binds_locally(account):
            return False
        try:
            return self.settings.policy.login_proven(
                account.login, account.authentication_name, account.password)
        except DomainError as refusal:
            self.log.warn("local login {login} refused: {info}", login=account.login,
                          info=refusal.info)
            raise

    def check_registration(self, session) -> None:
        """
        Before a session registers upstream: its registrar must be one the policy allows,
        or the session could make itself vouched for at a registrar of its own.

        @raise CallRefused: naming the setting (logged).
        """
        try:
            self.settings.policy.check_registration(
                session, self._registrar_hops(session.account))
        except CallRefused as refusal:
            self.log.warn("registration of session {session_id} ({address}) as {login} "
                          "refused: {info}", session_id=session.session_id,
                          address=session.address, login=session.account.login,
                          info=refusal.info)
            raise

    def session_opened(self, session) -> None:
        """
        Local mode: bind the session's SIP login in the built-in location service, as one more
        contact of its address of record (RFC 3261 10: a phone registered as the same user
        keeps its binding, and incoming calls fork to both).
        """
        account = session.account
        if not self._binds_locally(account):
            return
        domain = account.domain or self._primary_domain()
        host, port = self.core.transport.local_address(self.settings.transport)
        contact = SIPURI("sip", account.login, None, host, port,
                         (("transport", SESSION_CONTACT_TRANSPORT),
                          (CONTACT_PARAMETER, session.contact_id)))
        aor = address_of_record(SIPURI("sip", account.login, None, domain.split(":")[0], None))
        self.location.update(Binding(
            aor=aor, contact=NameAddress(None, contact),
            expires_at=self.clock.seconds() + LOCAL_BINDING_SECONDS,
            call_id=f"local-{session.contact_id}", cseq=1,
            source=self._own_address(), q=1.0))
        session.local_binding = (aor, str(contact))

    def _own_address(self):
        from wcs_twisted.sip.address import SIPAddress

        host, port = self.core.transport.local_address(self.settings.transport)
        return SIPAddress(self.settings.transport, host, port)

    def session_closed(self, session) -> None:
        """
        A closed session hangs up its calls (BYE or CANCEL) and leaves the location service.
        """
        for call in list(self._calls.values()):
            if call.session is session:
                call.hang_up("Stopped by session disconnect")
        binding = getattr(session, "local_binding", None)
        if binding is not None:
            self.location.remove(*binding)

    def session_reattached(self, session) -> None:
        """
        A keepAlive session's client is back: its calls check their browser media.
        """
        for call in list(self._calls.values()):
            if call.session is session:
                call.session_reattached()

    # --- incoming INVITEs ------------------------------------------------------------------------

    def _session_for(self, uri) -> Any:
        """
        The session an INVITE's Request-URI reaches: by our contact parameter, by a local-mode
        binding of its AOR in the location service, or by an upstream-registered login.
        """
        if not isinstance(uri, SIPURI):
            return None
        contact_id = uri.param(CONTACT_PARAMETER)
        if not contact_id and self.is_local(uri.host) and uri.user:
            for binding in self.location.lookup(address_of_record(uri), self.clock.seconds()):
                contact_uri = binding.contact.uri
                session_contact = (isinstance(contact_uri, SIPURI)
                                   and contact_uri.param(CONTACT_PARAMETER))
                if not session_contact:
                    # The user has another binding (a phone): the proxy forks to every
                    # binding, this session's contact included; never take the call alone.
                    return None
                contact_id = contact_id or session_contact
        for session in self.sessions:
            if contact_id:
                if session.contact_id == contact_id:
                    return session
            elif (session.account is not None and session.registered
                  and session.account.login == uri.user
                  and (self.is_local(uri.host)
                       or uri.host.lower() == session.account.domain.lower())):
                # Our own address (the registered Contact) or the account's domain: a login
                # alone would hand any sip:<login>@anywhere, or another provider's call, to it.
                return session
        return None

    def accept_request(self, event) -> bool:
        request = event.request
        if request.to.tag:
            return False
        if request.method != "INVITE":
            return self._refuse_non_invite(event)
        replaced = self._replaced_call(request)
        if replaced:
            if self._sender_refused(event):
                return True
            replaced.replace_leg(InviteSession.incoming(self.core, self.clock, replaced, event))
            return True
        session = self._session_for(request.uri)
        if session is None:
            return False
        if self._sender_refused(event):
            return True
        if replaced is False:
            # RFC 3891 3: Replaces naming no dialog here.
            self.core.respond(event.transaction_key, request.create_response(
                481, "Call Does Not Exist", to_tag=self.core.new_tag()))
            return True
        too_small = interval_too_small(request, trunk_options(self.core).min_se,
                                       to_tag=self.core.new_tag())
        if too_small is not None:
            self.core.respond(event.transaction_key, too_small)
            return True
        identity = caller_identity(request, trusted=self._identity_trusted(event))
        fields = {
            "caller": identity.caller,
            "callee": session.account.login if session.account else "",
            "visibleName": identity.visible_name,
            "hasAudio": True,
            "hasVideo": False,
            "inviteParameters": invite_parameters(request),
        }
        call = Call(self, str(uuid.uuid1()), session, incoming=True, fields=fields)
        call.account = session.account
        self._add(call)
        sip = InviteSession.incoming(self.core, self.clock, call, event)
        self._ask("call_offered", call).addCallbacks(
            lambda changes: self._offer(call, sip, changes),
            lambda failure: self._refuse_offer(call, sip, failure))
        return True

    def _identity_trusted(self, event) -> bool:
        """
        Whether the INVITE's asserted identity may name the caller: it came from a trusted
        peer (RFC 3325), directly or through our own proxy (which forwards it unchanged, so
        its original source counts).  An ignored one is logged, once per INVITE.
        """
        source = event.source
        original = self.proxy.forwarded_here(event) if self.proxy is not None else None
        if original is not None:
            source = original
        if getattr(source, "host", None) in self.settings.trusted_peers:
            return True
        headers = event.request.headers
        if headers.get("P-Asserted-Identity") or headers.get("Remote-Party-ID"):
            self.log.info("caller identity from untrusted {source} ignored (sip_trusted_peers)",
                          source=str(source))
        return False

    def _sender_refused(self, event) -> bool:
        """
        An INVITE for a session From a local user who has a password is challenged exactly
        as the built-in proxy would challenge it (407), unless the proxy itself forwarded it
        here; True when it was refused (answered).  A spoofed From reaches no browser.
        """
        return self.proxy is not None and not self.proxy.sender_authenticated(event)

    #: Call-object fields an OnCallEvent answer may change (restPolicy OVERWRITE).
    OFFER_FIELDS = {"caller": "caller", "visibleName": "visible_name", "custom": "custom"}

    def _offer(self, call: Call, sip: InviteSession, changes: dict[str, Any]) -> None:
        """
        OnCallEvent let the call in (or was not asked): ring the session's browser.
        """
        if call.status.released:
            return  # the caller cancelled while the backend was asked
        for name, attribute in self.OFFER_FIELDS.items():
            if name in changes and changes[name] != getattr(call, attribute):
                setattr(call, attribute, changes[name])
        call.start_incoming(sip)

    def _refuse_offer(self, call: Call, sip: InviteSession, failure) -> None:
        """
        The backend refused the incoming call (OnCallEvent with restOnError FAIL): the caller
        gets 403, or 480 when the backend could not be asked; the browser never hears of it.
        """
        failure.trap(DomainError)
        if call.status.released:
            return
        unavailable = getattr(failure.value, "status", None) is None
        self.log.info("incoming call {call_id} refused by the backend: {info}",
                      call_id=call.call_id, info=failure.value.info)
        sip.reject(480 if unavailable else 403)
        call.fail(failure.value.info)

    def _replaced_call(self, request) -> Call | None | bool:
        """
        The call an INVITE's Replaces header (RFC 3891) names, None without the header, or
        False when it names no dialog of ours.
        """
        value = request.headers.get("Replaces")
        if value is None:
            return None
        names = parse_replaces(value)
        if names is None:
            return False
        for call in self._calls.values():
            if call.matches_replaces(*names) and call.status in CONNECTED:
                return call
        return False

    def _refuse_non_invite(self, event) -> bool:
        """
        A session's contact takes calls only: another request forked to it (a MESSAGE, an
        OPTIONS) is answered 405 here, instead of being routed back to its address of record.
        """
        uri = event.request.uri
        contact_id = uri.param(CONTACT_PARAMETER) if isinstance(uri, SIPURI) else None
        if not contact_id or not any(session.contact_id == contact_id
                                     for session in self.sessions):
            return False
        response = event.request.create_response(405, to_tag=self.core.new_tag())
        response.headers.add("Allow", "INVITE, ACK, CANCEL, BYE, INFO, REFER, NOTIFY")
        self.core.respond(event.transaction_key, response)
        return True

    def hang_up_all(self, reason: str) -> None:
        for call in list(self._calls.values()):
            call.hang_up(reason)
