# -*- test-case-name: tests.ua.test_registrar -*-
"""
The built-in registrar (RFC 3261 10.3), writing to L{wcs_twisted.ua.location}.

This is WCS's local mode: with no external SIP server, browsers and SIP phones register here and
the proxy finds them.  Only the configured domains are served (no open relay); when digest users
are configured every REGISTER must authenticate as the user it registers.

Each binding records whether requests for it go back where the REGISTER came from (a NATed
phone, a connection, RFC 5626 outbound: L{flow_reason}) or to the Contact it names (a phone
registered by another host or port, RFC 3261 10.2 third-party registration).
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import re
from typing import Iterable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IRequestRouter
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.address import DEFAULT_PORTS, SIPAddress
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.authentication import UserAuthentication
from wcs_twisted.ua.location import Binding, LocationService, address_of_record

#: Live contacts per address of record (the default of L{Registrar}'s C{max_contacts}).
MAX_CONTACTS = 16
#: Live bindings in all (the default of L{Registrar}'s C{max_bindings}).
MAX_BINDINGS = 10000
#: Seconds a refused client is asked to wait (Retry-After of a 503).
RETRY_AFTER = 30
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
#: Transports where the connection is the only way back to the client.
CONNECTION_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})
#: Address blocks a host outside them cannot reach, narrowest first: a Contact in a narrower
#: block than the REGISTER's source is behind NAT.
_SCOPES = (
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                 "fc00::/7")),
)
_SCOPE_NETWORKS = tuple((rank, tuple(ipaddress.ip_network(block) for block in blocks))
                        for rank, (_, blocks) in enumerate(_SCOPES))


@implementer(IRequestRouter)
class Registrar:
    """
    Answers REGISTER for the local domains.
    """

    log = Logger()

    def __init__(
        self,
        core,
        location: LocationService,
        clock,
        domains: Iterable[str],
        users: Mapping[str, str] | None = None,
        authenticator: DigestAuthenticator | None = None,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = MAX_CONTACTS,
        max_bindings: int = MAX_BINDINGS,
    ) -> None:
        """
        @param max_contacts: live contacts one address of record may have; a REGISTER that
            would add more is answered 503 (Kamailio's registrar C{max_contacts}).
        @param max_bindings: live bindings in the whole location service above which a
            REGISTER that adds one is answered 503: an open registrar cannot be made to grow
            without end.
        """
        self.core = core
        self.location = location
        self.clock = clock
        self.domains = {domain.lower() for domain in domains}
        self.users = dict(users or {})
        self.authenticator = authenticator if self.users else None
        self.authentication = (
            UserAuthentication(core, clock, self.authenticator, self.users, proxy=False)
            if self.authenticator is not None else None)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self.max_bindings = max_bindings

    def serves(self, host: str) -> bool:
        return host.lower() in self.domains

    def accept_request(self, event) -> bool:
        request: Request = event.request
        if request.method != "REGISTER":
            return False
        try:
            self._register(event, request)
        except RemoteProtocolError as error:
            self._answer(event, error.status_hint, str(error)[:100])
        return True

    def _answer(self, event, status: int, reason: str | None = None, extra=()) -> None:
        response = event.request.create_response(status, reason, to_tag=self.core.new_tag())
        for name, value in extra:
            response.headers.add(name, value)
        self.core.respond(event.transaction_key, response)

    def _register(self, event, request: Request) -> None:
        now = self.clock.seconds()
        uri = request.uri
        if not isinstance(uri, SIPURI) or not self.serves(uri.host):
            self.log.info("REGISTER for foreign domain {domain} from {source} refused",
                          domain=getattr(uri, "host", str(uri)), source=str(event.source))
            self._answer(event, 403, "Not a local domain")
            return
        to_uri = request.to.uri
        if not isinstance(to_uri, SIPURI) or not to_uri.user:
            self._answer(event, 404, "No user in To")
            return
        if not self.serves(to_uri.host):
            # RFC 3261 10.3 step 5: the AOR must be valid for the Request-URI's domain.
            self._answer(event, 404, "Not a local address of record")
            return
        if not self._authenticated(event, to_uri.user):
            return
        aor = address_of_record(to_uri)
        status = self._apply_contacts(event, request, aor, now)
        if status is not None:
            return
        bindings = self.location.lookup(aor, now)
        extra = [("Contact", str(binding.contact.with_params(expires=str(binding.expires_in(now)))))
                 for binding in bindings]
        extra.append(("Date", _http_date(int(now))))
        self._answer(event, 200, None, extra)

    def _authenticated(self, event, user: str) -> bool:
        if self.authentication is None:
            return True
        return self.authentication.check(event, user)

    def _apply_contacts(self, event, request: Request, aor: str, now: float) -> int | None:
        """
        RFC 3261 10.3 steps 6-8; returns the status sent when the request was refused.
        """
        header_expires = request.headers.get("Expires")
        default = _delta_seconds(header_expires) if header_expires is not None else (
            self.default_expires)
        if default is None:
            self._answer(event, 400, "Bad Expires")
            return 400
        raw_contacts = request.headers.get_all("Contact")
        call_id, cseq = request.call_id, request.cseq.number
        if any(value.strip() == "*" for value in raw_contacts):
            if len(raw_contacts) != 1 or default != 0:
                self._answer(event, 400, "Wildcard Contact needs Expires: 0 alone")
                return 400
            # RFC 3261 10.3 step 6: a wildcard older than a binding of the same call leg fails.
            for binding in self.location.lookup(aor, now):
                if binding.call_id == call_id and binding.cseq >= cseq:
                    self._answer(event, 500, "Out of order REGISTER")
                    return 500
            self.location.remove(aor)
            return None
        contacts = request.contacts
        changes = []
        for contact in contacts:
            expires_param = contact.param("expires")
            expires = _delta_seconds(expires_param) if expires_param not in (None, "") else default
            if expires is None:
                self._answer(event, 400, "Bad expires parameter")
                return 400
            if 0 < expires < self.min_expires:
                self._answer(event, 423, None, [("Min-Expires", str(self.min_expires))])
                return 423
            expires = min(expires, self.max_expires)
            q = _qvalue(contact.param("q"))
            if q is None:
                self._answer(event, 400, "Bad q parameter")
                return 400
            key = str(contact.uri)
            existing = self.location.find(aor, key)
            if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                self._answer(event, 500, "Out of order REGISTER")
                return 500
            changes.append((key, contact, expires, q, existing is not None))
        added = sum(1 for *_, expires, _, known in changes if expires and not known)
        if added:
            live = len(self.location.lookup(aor, now))
            if live + added > self.max_contacts or len(self.location) + added > self.max_bindings:
                self.log.info("REGISTER {aor} from {source}: {live} live contact(s) for it, "
                              "{total} in all; {added} more refused with 503", aor=aor,
                              source=str(event.source), live=live, total=len(self.location),
                              added=added)
                self._answer(event, 503, "Too many registered contacts",
                             [("Retry-After", str(RETRY_AFTER))])
                return 503
        for key, contact, expires, q, _ in changes:
            if expires == 0:
                self.location.remove(aor, key)
                continue
            # No log line per binding: twistd writes debug events too, and two lines cost a
            # quarter of a REGISTER (the SIP message trace shows each REGISTER when asked).
            reason = flow_reason(request, contact, event.source)
            self.location.update(Binding(aor=aor, contact=contact, expires_at=now + expires,
                                         call_id=call_id, cseq=cseq, source=event.source, q=q,
                                         flow=reason is not None))
        return None


def flow_reason(request: Request, contact: NameAddress, source) -> str | None:
    """
    Why requests for C{contact} must go back to C{source}, the address its REGISTER came from
    (Kamailio's C{nat_uac_test} and C{fix_nated_register}), or None: then they go to the
    Contact, which is where a phone registered by someone else listens.
    """
    if not isinstance(source, SIPAddress):
        return None
    if source.transport in CONNECTION_TRANSPORTS:
        return "connection-oriented"
    uri = contact.uri
    if not isinstance(uri, SIPURI):
        return "Contact is not a SIP URI"
    if uri.has_param("ob") or (contact.has_param("reg-id") and contact.has_param("+sip.instance")):
        return "RFC 5626 outbound"
    contact_ip = _ip(uri.host)
    if contact_ip is None:
        return "Contact host needs DNS"
    source_ip = _ip(source.host)
    via = request.top_via
    via_ip = _ip(via.host)
    default_port = DEFAULT_PORTS.get(source.transport, 5060)
    if (via_ip is not None and via_ip != source_ip) or (
            (via.port or default_port) != source.port):
        return "NAT: Via sent-by differs from the source (RFC 3581 received/rport)"
    contact_port = uri.port or DEFAULT_PORTS.get(uri.transport, default_port)
    if (contact_ip, contact_port) != (source_ip, source.port) and (
            _scope(contact_ip) < _scope(source_ip)):
        return "NAT: Contact address unreachable from the source's network"
    return None


@functools.lru_cache(maxsize=1024)
def _ip(host: str):
    """
    C{host} as an IP address, or None (a name).  Cached: the same few sources and contacts
    come back with every REGISTER refresh.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4)
def _http_date(second: int) -> str:
    """
    The Date value (RFC 3261 20.17) of a second: formatted once per second, not per REGISTER.
    """
    return email.utils.formatdate(second, usegmt=True)


def _scope(address) -> int:
    """
    The rank of the narrowest block in L{_SCOPES} holding C{address}; public is widest.
    """
    if address is None:
        return len(_SCOPES)
    for rank, networks in _SCOPE_NETWORKS:
        if any(address in network for network in networks):
            return rank
    return len(_SCOPES)


def _delta_seconds(text: str) -> int | None:
    """
    An Expires value (RFC 3261 20.19, delta-seconds: digits only), or None when malformed.
    """
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    return int(text)


def _qvalue(text: str | None) -> float | None:
    """
    A Contact q (RFC 3261 20.10: "0" to "1" with up to three decimals; absent means 1), or
    None when it is anything else (7.5, nan, inf, -1, 1e0).
    """
    if not text:
        return 1.0
    if not _QVALUE.fullmatch(text):
        return None
    return float(text)
