# -*- test-case-name: tests.ua.test_registrar -*-
"""
The built-in registrar (RFC 3261 10.3), writing to L{wcs_twisted.ua.location}.

This is WCS's local mode: with no external SIP server, browsers and SIP phones register here and
the proxy finds them.  Only the configured domains are served (no open relay); when digest users
are configured every REGISTER must authenticate as the user it registers.
"""

from __future__ import annotations

import email.utils
from typing import Iterable, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IRequestRouter
from wcs_twisted.sip.auth import DigestAuthenticator, DigestCredentials, DigestResult
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.location import Binding, LocationService, address_of_record


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
