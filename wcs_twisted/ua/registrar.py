# -*- test-case-name: tests.ua.test_registrar -*-
"""
The built-in registrar (RFC 3261 10.3) and its in-memory location service.

This is WCS's local mode: with no external SIP server, browsers and SIP phones register here and
the proxy finds them.  Only the configured domains are served (no open relay); when digest users
are configured every REGISTER must authenticate as the user it registers.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IRequestRouter
from wcs_twisted.sip.auth import DigestAuthenticator, DigestCredentials, DigestResult
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI


def address_of_record(uri) -> str:
    """
    The canonical AOR of a URI: scheme, user and host, lower-cased host, no port or parameters
    (RFC 3261 10.3 step 5).
    """
    user = f"{uri.user}@" if getattr(uri, "user", None) else ""
    return f"sip:{user}{uri.host.lower()}"


@dataclass(frozen=True)
class Binding:
    """
    One contact registered for an address of record.
    """

    aor: str
    contact: NameAddress
    expires_at: float
    call_id: str
    cseq: int
    source: Any  # the transport address the REGISTER came from (reach NATed clients there)
    q: float = 1.0

    @property
    def contact_key(self) -> str:
        return str(self.contact.uri)

    def expires_in(self, now: float) -> int:
        return max(0, int(round(self.expires_at - now)))


class LocationService:
    """
    AOR -> bindings, with expiry evaluated against the C{now} each call is given.

    Besides the table the proxy needs (L{lookup}), it remembers which AORs ever registered (a
    user who is away gets 480, an unknown one 404) and indexes live bindings by the host and
    port of their contact, so an in-dialog request whose Request-URI is a registered contact is
    sent where that contact's REGISTER came from (NAT).
    """

    def __init__(self, on_change: Callable[[int], None] = lambda count: None) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._count = 0
        self._known: set[str] = set()
        self._by_address: dict[tuple[str, int | None], Binding] = {}
        self._on_change = on_change

    def __len__(self) -> int:
        return self._count

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """
        Live bindings of C{aor}, highest q first (RFC 3261 16.6 target ordering).
        """
        contacts = self._bindings.get(aor)
        if not contacts:
            return []
        expired = [key for key, binding in contacts.items() if binding.expires_at <= now]
        if expired:
            for key in expired:
                self._forget(contacts.pop(key))
            if not contacts:
                del self._bindings[aor]
            self._on_change(self._count)
        if len(contacts) == 1:
            return list(contacts.values())
        return sorted(contacts.values(), key=lambda binding: -binding.q)

    def find(self, aor: str, contact_key: str) -> Binding | None:
        return self._bindings.get(aor, {}).get(contact_key)

    def known(self, aor: str) -> bool:
        """
        Whether C{aor} ever had a binding (its user exists but may be away).
        """
        return aor in self._known

    def binding_at(self, host: str, port: int | None, now: float) -> Binding | None:
        """
        A live binding whose contact URI is C{host:port}, or None.
        """
        binding = self._by_address.get((host.lower(), port))
        if binding is None or binding.expires_at > now:
            return binding
        self.lookup(binding.aor, now)  # drops it (and its AOR's other expired bindings)
        return None

    def update(self, binding: Binding) -> None:
        contacts = self._bindings.setdefault(binding.aor, {})
        previous = contacts.get(binding.contact_key)
        if previous is not None:
            self._forget(previous)
        contacts[binding.contact_key] = binding
        self._count += 1
        self._known.add(binding.aor)
        uri = binding.contact.uri
        host = getattr(uri, "host", None)
        if host:
            self._by_address[(host.lower(), getattr(uri, "port", None))] = binding
        self._on_change(self._count)

    def remove(self, aor: str, contact_key: str | None = None) -> None:
        contacts = self._bindings.get(aor)
        if contacts is None:
            return
        if contact_key is None:
            for binding in contacts.values():
                self._forget(binding)
            del self._bindings[aor]
        else:
            binding = contacts.pop(contact_key, None)
            if binding is not None:
                self._forget(binding)
            if not contacts:
                del self._bindings[aor]
        self._on_change(self._count)

    def purge(self, now: float) -> None:
        for aor in list(self._bindings):
            self.lookup(aor, now)

    def _forget(self, binding: Binding) -> None:
        self._count -= 1
        uri = binding.contact.uri
        key = (getattr(uri, "host", "").lower(), getattr(uri, "port", None))
        if self._by_address.get(key) is binding:
            del self._by_address[key]


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
    ) -> None:
        self.core = core
        self.location = location
        self.clock = clock
        self.domains = {domain.lower() for domain in domains}
        self.users = dict(users or {})
        self.authenticator = authenticator if self.users else None
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires

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
        if not self._authenticated(event, request, to_uri.user, now):
            return
        aor = address_of_record(to_uri)
        status = self._apply_contacts(event, request, aor, now)
        if status is not None:
            return
        bindings = self.location.lookup(aor, now)
        extra = [("Contact", str(binding.contact.with_params(expires=str(binding.expires_in(now)))))
                 for binding in bindings]
        extra.append(("Date", email.utils.formatdate(now, usegmt=True)))
        self.log.debug("REGISTER {aor}: {count} binding(s)", aor=aor, count=len(bindings))
        self._answer(event, 200, None, extra)

    def _authenticated(self, event, request: Request, user: str, now: float) -> bool:
        if self.authenticator is None:
            return True
        authorization = request.headers.get("Authorization")
        if authorization is None:
            self._challenge(event, now, stale=False)
            return False
        result = self.authenticator.verify(authorization, "REGISTER", self.users.get, now)
        if result is DigestResult.OK:
            username = DigestCredentials.parse(authorization).username
            if username != user:
                self.log.info("REGISTER as {user} authenticated as {username}: 403",
                              user=user, username=username)
                self._answer(event, 403, "Authenticated user does not match To")
                return False
            return True
        if result in (DigestResult.STALE, DigestResult.REPLAY):
            self._challenge(event, now, stale=True)
        elif result is DigestResult.MALFORMED:
            self._answer(event, 400, "Malformed Authorization")
        else:
            self.log.info("REGISTER {user} from {source}: wrong credentials", user=user,
                          source=str(event.source))
            self._answer(event, 403, "Wrong credentials")
        return False

    def _challenge(self, event, now: float, stale: bool) -> None:
        self._answer(event, 401, None, [
            ("WWW-Authenticate", value) for value in self.authenticator.challenge(now, stale)])

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
            key = str(contact.uri)
            existing = self.location.find(aor, key)
            if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                self._answer(event, 500, "Out of order REGISTER")
                return 500
            changes.append((key, contact, expires))
        for key, contact, expires in changes:
            if expires == 0:
                self.location.remove(aor, key)
                continue
            q_text = contact.param("q")
            try:
                q = float(q_text) if q_text else 1.0
            except ValueError:
                q = 1.0
            self.location.update(Binding(aor=aor, contact=contact, expires_at=now + expires,
                                         call_id=call_id, cseq=cseq, source=event.source, q=q))
        return None


def _delta_seconds(text: str) -> int | None:
    """
    An Expires value (RFC 3261 20.19, delta-seconds: digits only), or None when malformed.
    """
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    return int(text)
