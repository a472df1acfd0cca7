# -*- test-case-name: tests.rest.test_gate -*-
"""
What every /rest-api/ request passes before a method sees it: which pages may call (CORS and
cross-site refusal), a readable path, login throttling and HTTP Basic auth.

Browser policy follows the Fetch standard.  A page from another origin only gets an answer it can
read when C{Access-Control-Allow-Origin} names it; C{*} is never combined with
C{Access-Control-Allow-Credentials} (browsers refuse the pair).  Because a browser also I{sends}
requests it will not let the page read (a form POST carries the user's cached Basic login), a
request whose C{Origin} is not allowed is refused with 403 before anything runs: that, not CORS,
is what stops cross-site request forgery.  Clients that are not browsers send no C{Origin}.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
from urllib.parse import urlsplit

from twisted.logger import Logger
from twisted.web.resource import IResource, Resource

from wcs_twisted.rest.throttle import FailureThrottle

__all__ = ["OriginPolicy", "RestGate"]

_JSON = b"application/json; charset=utf-8"


def _answer(request, status: int, document) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", _JSON)
    return json.dumps(document).encode("utf-8")


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _is_text(segment: bytes) -> bool:
    try:
        return "\x00" not in segment.decode("utf-8")
    except UnicodeDecodeError:
        return False


class OriginPolicy:
    """
    Which browser origins may call: the same origin, loopback pages and the C{listed} ones; or,
    with C{*}, any page, without credentials.
    """

    def __init__(self, listed: tuple[str, ...]) -> None:
        self.any = listed == ("*",)
        self._listed = frozenset(origin.lower() for origin in listed)

    def allows(self, origin: str, host: str | None) -> bool:
        """
        Whether a page from C{origin} may call a server the browser reached as C{host} (the
        request's Host header).
        """
        if self.any:
            return True
        origin = origin.lower()
        if origin in self._listed:
            return True
        try:
            parts = urlsplit(origin)
            hostname = parts.hostname
            parts.port  # a malformed port raises ValueError
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not hostname or parts.path:
            return False
        return parts.netloc == (host or "").lower() or _is_loopback(hostname)

    def headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """
        The CORS headers of an answer to an allowed C{origin}.
        """
        exposed = (b"access-control-expose-headers", b"retry-after, www-authenticate")
        if self.any:
            return [(b"access-control-allow-origin", b"*"), exposed]
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"),
                (b"access-control-allow-credentials", b"true"), exposed]


class RestGate(Resource):
    """
    Origin policy, path check, throttling and Basic auth in front of the REST resource; every
    refusal is a JSON body with the CORS headers the caller's page needs to read it.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, wrapped: IResource, credentials: tuple[str, str] | None,
                 origins: OriginPolicy, throttle: FailureThrottle | None,
                 loopback_hosts_only: bool = False) -> None:
        """
        @param loopback_hosts_only: refuse requests whose Host is not a loopback name: a
            server on loopback with a published login (or none) would otherwise obey any web
            site whose name the attacker re-points at 127.0.0.1 (DNS rebinding).
        """
        super().__init__()
        self._loopback_hosts_only = loopback_hosts_only
        self._wrapped = wrapped
        self._credentials = credentials
        self._origins = origins
        self._throttle = throttle

    def _authorized(self, request) -> bool:
        if self._credentials is None:
            return True
        header = request.getHeader(b"authorization") or b""
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except ValueError:
            return False
        want_user, want_password = (part.encode("utf-8") for part in self._credentials)
        # Compare both parts, always, so timing does not reveal which was wrong.
        user_ok = hmac.compare_digest(user, want_user)
        password_ok = hmac.compare_digest(password, want_password)
        return user_ok and password_ok

    def _host_refused(self, request) -> bool:
        host = request.getHeader(b"host")
        if not self._loopback_hosts_only or host is None:
            return False
        try:
            hostname = urlsplit("//" + host.decode("latin-1")).hostname or ""
        except ValueError:  # "[::1" and the like
            return True
        return not _is_loopback(hostname)

    def render(self, request):
        if self._host_refused(request):
            return _answer(request, 403, {"error": "This server answers only to loopback names "
                                                   "while it has no rest_password of its own"})
        origin = request.getHeader(b"origin")
        if origin is not None:
            host = request.getHeader(b"host")
            if not self._origins.allows(origin.decode("latin-1"),
                                        host.decode("latin-1") if host else None):
                return _answer(request, 403, {"error": "Requests from this page's origin are "
                                                       "not allowed (rest_cors_origins)"})
            for name, value in self._origins.headers(origin):
                request.setHeader(name, value)
        if request.method == b"OPTIONS":
            request.setHeader(b"access-control-allow-methods",
                              b"GET, POST, PUT, DELETE, PATCH, OPTIONS")
            requested = request.getHeader(b"access-control-request-headers")
            request.setHeader(b"access-control-allow-headers",
                              requested or b"content-type, authorization")
            request.setHeader(b"access-control-max-age", b"600")
            request.setResponseCode(204)
            return b""
        if not all(map(_is_text, request.postpath)):
            return _answer(request, 400, {"error": "path: expected UTF-8 text without NUL"})
        if self._credentials is None:
            return self._wrapped.render(request)
        if request.getHeader(b"authorization") is None:
            # No login tried (a browser asks before it prompts): not a guess, not counted.
            return self._challenge(request)
        client = request.getClientAddress()
        host = getattr(client, "host", "")
        throttle = self._throttle
        wait = throttle.retry_after(host) if throttle is not None else 0
        if wait:
            request.setHeader(b"retry-after", str(wait).encode("ascii"))
            return _answer(request, 429, {"error": "Too many failed logins; retry later",
                                          "retryAfter": wait})
        if not self._authorized(request):
            self.log.info("REST {path}: wrong login from {client}",
                          path=request.path.decode("utf-8", "replace"), client=host)
            blocked = throttle.failed(host) if throttle is not None else 0
            if blocked:
                self.log.warn("REST: {client} made too many failed logins; refused for "
                              "{seconds} s", client=host, seconds=blocked)
            return self._challenge(request)
        if throttle is not None:
            throttle.succeeded(host)
        return self._wrapped.render(request)

    @staticmethod
    def _challenge(request) -> bytes:
        request.setHeader(b"www-authenticate", b'Basic realm="wcs", charset="UTF-8"')
        return _answer(request, 401, {"error": "Authentication required"})
