# -*- test-case-name: tests.ua.test_proxy_abuse,tests.ua.test_registrar -*-
"""
Digest authentication of requests by the local users' passwords (RFC 3261 22.2 and 22.3).

One piece for both servers that ask: the registrar challenges with 401 and reads
C{Authorization} (user-to-user), the proxy with 407 and C{Proxy-Authorization} (proxy-to-user).
The outcome of a check maps to one answer in one place, so both refuse alike: a challenge when
there are no credentials for our realm or the nonce is stale, 400 for malformed credentials or
a digest made for another Request-URI, 403 for wrong ones or another user's.
"""

from __future__ import annotations

from typing import Mapping

from twisted.logger import Logger

from wcs_twisted.sip.auth import DigestAuthenticator, DigestCredentials, DigestResult
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import parse_auth_params

__all__ = ["UserAuthentication"]


class UserAuthentication:
    """
    Checks that a request carries valid Digest credentials of a given local user.

    @ivar authenticator: the nonce issuer and digest verifier (its realm is ours).
    @ivar passwords: user name -> password.
    @ivar status: 401 (registrar, UAS) or 407 (proxy).
    """

    log = Logger()

    def __init__(self, core, clock, authenticator: DigestAuthenticator,
                 passwords: Mapping[str, str], *, proxy: bool) -> None:
        self.core = core
        self.clock = clock
        self.authenticator = authenticator
        self.passwords = passwords
        self.status = 407 if proxy else 401
        self.challenge_header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        self.credentials_header = "Proxy-Authorization" if proxy else "Authorization"

    def has_password(self, user: str | None) -> bool:
        return bool(user) and self.passwords.get(user) is not None

    def credentials(self, request) -> str | None:
        """
        The credentials value meant for our realm (a request may carry some for other proxies
        too, RFC 3261 22.3); else the first one, so that a wrong realm is refused, not ignored.
        """
        values = request.headers.get_all(self.credentials_header)
        realm = self.authenticator.realm
        for value in values:
            try:
                params = parse_auth_params(value)[1]
            except RemoteProtocolError:
                continue
            if any(key.lower() == "realm" and item == realm for key, item in params.items()):
                return value
        return values[0] if values else None

    def check(self, event, user: str) -> bool:
        """
        Whether C{event.request} proves it comes from C{user}; when it does not, it has been
        answered (challenge, 400 or 403) and the caller stops there.
        """
        request = event.request
        now = self.clock.seconds()
        value = self.credentials(request)
        if value is None:
            self._challenge(event, now, stale=False)
            return False
        result = self.authenticator.verify(value, request.method, self.passwords.get, now,
                                           request.body, request_uri=request.uri)
        if result is DigestResult.OK:
            username = DigestCredentials.parse(value).username
            if username == user:
                return True
            self._refuse(event, 403, "Authenticated user does not match",
                         "authenticated as {username}", username=username, user=user)
        elif result in (DigestResult.STALE, DigestResult.REPLAY):
            self._challenge(event, now, stale=True)
        elif result is DigestResult.MALFORMED:
            self._refuse(event, 400, "Malformed credentials", "malformed credentials",
                         user=user)
        elif result is DigestResult.URI_MISMATCH:
            self._refuse(event, 400, "Digest uri is not the Request-URI",
                         "digest uri is not the Request-URI", user=user)
        else:
            self._refuse(event, 403, "Wrong credentials", "wrong credentials", user=user)
        return False

    def _challenge(self, event, now: float, stale: bool) -> None:
        self._answer(event, self.status, [
            (self.challenge_header, value)
            for value in self.authenticator.challenge(now, stale)])

    def _refuse(self, event, status: int, reason: str, why: str, **fields) -> None:
        self.log.info("{method} as {user} from {source}: " + why + ", answered {status}",
                      method=event.request.method, source=str(event.source), status=status,
                      **fields)
        self._answer(event, status, (), reason)

    def _answer(self, event, status: int, extra, reason: str | None = None) -> None:
        response = event.request.create_response(status, reason, to_tag=self.core.new_tag())
        for name, header_value in extra:
            response.headers.add(name, header_value)
        self.core.respond(event.transaction_key, response)
