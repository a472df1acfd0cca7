# -*- test-case-name: tests.sip.test_auth -*-
"""
HTTP Digest authentication for SIP (RFC 7616, RFC 2617, RFC 8760).

Both roles live here because they share the digest computation:

  - the client side parses a C{WWW-Authenticate}/C{Proxy-Authenticate}
    challenge (L{DigestChallenge}) and answers it (L{build_authorization});
  - the server side (L{DigestAuthenticator}) issues challenges and verifies
    C{Authorization}/C{Proxy-Authorization} values.

The server keeps no per-challenge state: a nonce carries its issue time and a
counter, authenticated with an HMAC over a secret, so it validates itself and
expires.  The only state is the last nonce-count seen per nonce, kept in a
bounded table so that a flood of requests cannot grow memory.

Sans-I/O: the current time (C{now}) and the client nonce (C{cnonce}) are
arguments; nothing here reads a clock or a random source.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.headers import parse_auth_params
from wcs_twisted.sip.uri import parse_uri

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "DigestChallenge",
    "DigestCredentials",
    "DigestResult",
    "DigestAuthenticator",
    "compute_digest_response",
    "build_authorization",
    "select_challenge",
]

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

#: Algorithm names understood by this module, strongest first.
SUPPORTED_ALGORITHMS = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")

_CANONICAL = {name.upper(): name for name in SUPPORTED_ALGORITHMS}


def _algorithm(name: str):
    """
    Return C{(canonical_name, hash_constructor, is_session)} for an algorithm
    name (case-insensitive), or None when it is not supported.
    """
    canonical = _CANONICAL.get(name.upper())
    if canonical is None:
        return None
    if canonical.endswith("-sess"):
        return canonical, _HASHES[canonical[:-5]], True
    return canonical, _HASHES[canonical], False


def _quote(value: str) -> str:
    """Return C{value} as an RFC 7230 quoted-string."""
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value + '"'


def _parse_digest(value: str) -> dict:
    """
    Parse a Digest challenge or credentials header value into a dict with
    lower-case keys; raise L{RemoteProtocolError} if it is not Digest.
    """
    scheme, params = parse_auth_params(value)
    if scheme.lower() != "digest":
        raise RemoteProtocolError(f"unsupported authentication scheme {scheme!r}", 400)
    return {key.lower(): item for key, item in params.items()}


def compute_digest_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: Optional[str] = None,
    nc: Optional[str] = None,
    cnonce: Optional[str] = None,
    body: bytes = b"",
) -> str:
    """
    Compute the C{response} value of RFC 7616 section 3.4.1 (RFC 2617 3.2.2).

    @param nc: the nonce-count exactly as sent (8 hex digits), when C{qop}.
    @param body: the message body, used only for C{qop=auth-int}.
    @raise LocalProtocolError: unsupported algorithm or qop, or a missing
        C{cnonce}/C{nc} where one is required.
    """
    spec = _algorithm(algorithm)
    if spec is None:
        raise LocalProtocolError(f"unsupported digest algorithm {algorithm!r}")
    _, new_hash, session = spec

    def h(text: str) -> str:
        return new_hash(text.encode("utf-8")).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    if session:
        if cnonce is None:
            raise LocalProtocolError("a -sess algorithm needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    if qop is None or qop == "auth":
        ha2 = h(f"{method}:{uri}")
    elif qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{new_hash(body).hexdigest()}")
    else:
        raise LocalProtocolError(f"unsupported qop {qop!r}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise LocalProtocolError("qop requires nc and cnonce")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """
    A Digest challenge from C{WWW-Authenticate} or C{Proxy-Authenticate}
    (RFC 7616 section 3.3).
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: Optional[str] = None
    stale: bool = False
    domain: Optional[str] = None

    @classmethod
    def parse(cls, value: str) -> "DigestChallenge":
        """
        Parse a challenge header value.

        @raise RemoteProtocolError: not a Digest challenge, or C{realm} or
            C{nonce} missing.
        """
        params = _parse_digest(value)
        realm = params.get("realm")
        nonce = params.get("nonce")
        if realm is None or nonce is None:
            raise RemoteProtocolError("digest challenge without realm or nonce", 400)
        qop = params.get("qop")
        qops = tuple(q.strip().lower() for q in qop.split(",") if q.strip()) if qop else ()
        stale = (params.get("stale") or "").lower() == "true"
        return cls(
            realm=realm,
            nonce=nonce,
            algorithm=params.get("algorithm") or "MD5",
            qop=qops,
            opaque=params.get("opaque"),
            stale=stale,
            domain=params.get("domain"),
        )

    @property
    def supported(self) -> bool:
        """Whether this module can answer the challenge."""
        if _algorithm(self.algorithm) is None:
            return False
        return not self.qop or "auth" in self.qop or "auth-int" in self.qop

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """
    Digest credentials from C{Authorization} or C{Proxy-Authorization}
    (RFC 7616 section 3.4).  C{nc} is kept as the text that was sent because
    the digest covers it verbatim.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: Optional[str] = None
    nc: Optional[str] = None
    cnonce: Optional[str] = None
    opaque: Optional[str] = None

    @classmethod
    def parse(cls, value: str) -> "DigestCredentials":
        """
        Parse a credentials header value.

        @raise RemoteProtocolError: not Digest, a required parameter missing,
            or C{qop} present without C{nc} and C{cnonce}.
        """
        params = _parse_digest(value)
        for name, item in params.items():
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    # Bytes that were not UTF-8 on the wire (kept as surrogates): the digest
                    # could not even be computed over them.
                    raise RemoteProtocolError(f"digest {name} is not UTF-8", 400) from None
        try:
            username = params["username"]
            realm = params["realm"]
            nonce = params["nonce"]
            uri = params["uri"]
            response = params["response"]
        except KeyError as e:
            raise RemoteProtocolError(f"digest credentials without {e.args[0]}", 400) from None
        qop = params.get("qop")
        nc = params.get("nc")
        cnonce = params.get("cnonce")
        if qop is not None:
            qop = qop.lower()
            if nc is None or cnonce is None:
                raise RemoteProtocolError("digest qop without nc or cnonce", 400)
        return cls(
            username=username,
            realm=realm,
            nonce=nonce,
            uri=uri,
            response=response,
            algorithm=params.get("algorithm") or "MD5",
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=params.get("opaque"),
        )

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        return "Digest " + ", ".join(parts)


def build_authorization(
    challenge: DigestChallenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """
    Answer C{challenge}: return the value for an C{Authorization} (after 401)
    or C{Proxy-Authorization} (after 407) header (RFC 7616 section 3.4).

    C{qop=auth} is used when offered, C{auth-int} (covering C{body}) when it
    is the only one offered, and the RFC 2069 form when no qop is offered.

    @param cnonce: client nonce; the caller draws it from its random source.
    @param nc: how many times this nonce has been used, including this one.
    @raise LocalProtocolError: the challenge cannot be answered.
    """
    if not challenge.supported:
        raise LocalProtocolError(
            f"cannot answer digest challenge (algorithm {challenge.algorithm!r}, qop {challenge.qop!r})"
        )
    if not challenge.qop:
        qop = None
    elif "auth" in challenge.qop:
        qop = "auth"
    else:
        qop = "auth-int"
    session = challenge.algorithm.lower().endswith("-sess")
    nc_text = f"{nc:08x}" if qop is not None else None
    use_cnonce = cnonce if (qop is not None or session) else None
    response = compute_digest_response(
        challenge.algorithm, username, challenge.realm, password, method, uri,
        challenge.nonce, qop, nc_text, use_cnonce, body,
    )
    return str(
        DigestCredentials(
            username=username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm=challenge.algorithm,
            qop=qop,
            nc=nc_text,
            cnonce=use_cnonce,
            opaque=challenge.opaque,
        )
    )


def select_challenge(values: Iterable[str]) -> Optional[DigestChallenge]:
    """
    Pick the challenge to answer among several header values (RFC 7616
    section 3.7, RFC 8760): the first one with the strongest supported
    algorithm.  Unparseable and unsupported values are skipped.
    """
    best = None
    best_rank = len(SUPPORTED_ALGORITHMS)
    for value in values:
        try:
            challenge = DigestChallenge.parse(value)
        except RemoteProtocolError:
            continue
        if not challenge.supported:
            continue
        rank = SUPPORTED_ALGORITHMS.index(_algorithm(challenge.algorithm)[0])
        if rank < best_rank:
            best, best_rank = challenge, rank
    return best


def _same_uri(text: str, request_uri) -> bool:
    """
    Whether a digest C{uri} names C{request_uri}: the same text, or an equivalent URI
    (RFC 3261 19.1.4), since a proxy's serialisation may differ from the client's.
    """
    if text == str(request_uri):
        return True
    try:
        parsed = parse_uri(text)
    except RemoteProtocolError:
        return False
    return parsed.is_equivalent(request_uri)


class DigestResult(enum.Enum):
    """Outcome of L{DigestAuthenticator.verify}."""

    #: The credentials are valid.
    OK = "ok"
    #: The digest is right but the nonce expired or is not ours: re-challenge
    #: with C{stale=true} so the client retries without asking its user.
    STALE = "stale"
    #: Unknown user, wrong password, other realm or unsupported algorithm.
    BAD_CREDENTIALS = "bad-credentials"
    #: The nonce-count did not increase: a replayed (or reordered) request.
    REPLAY = "replay"
    #: The header is not valid Digest credentials (answer 400).
    MALFORMED = "malformed"
    #: The credentials' C{uri} is not the Request-URI: they were made for another request
    #: (RFC 2617 3.2.2.5, RFC 7616 3.4.6: answer 400).
    URI_MISMATCH = "uri-mismatch"


_NONCE_PAYLOAD = struct.Struct(">qI")
_NONCE_MAC_SIZE = 18
_NONCE_SIZE = _NONCE_PAYLOAD.size + _NONCE_MAC_SIZE  # 30 bytes -> 40 base64 chars
_NONCE_TEXT_SIZE = 40


class DigestAuthenticator:
    """
    The server side of Digest authentication for one realm (a registrar or a
    proxy).

    Nonces are C{base64(issue_ms, counter, HMAC-SHA256(secret, ...))}: they
    need no storage, are only valid under the same secret, and expire after
    C{nonce_lifetime} seconds.  The last nonce-count seen for each used nonce
    is kept to detect replays, in a table of at most C{max_tracked_nonces}
    entries; a nonce that fell out of the table is answered as stale.

    @ivar realm: the protection realm.
    @ivar algorithms: the algorithms offered, one challenge each, in order.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_lifetime: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_tracked_nonces: int = 10000,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        if not algorithms:
            raise ValueError("at least one algorithm is required")
        canonical = []
        for name in algorithms:
            spec = _algorithm(name)
            if spec is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            canonical.append(spec[0])
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be positive")
        self.realm = realm
        self.algorithms = tuple(canonical)
        self._secret = secret
        self._realm_bytes = realm.encode("utf-8") + b"\x00"
        self._lifetime_ms = int(nonce_lifetime * 1000)
        self._max_tracked = max_tracked_nonces
        self._counter = 0
        # nonce text -> last nonce-count accepted (0 for a use without qop)
        self._nonce_counts: "OrderedDict[str, int]" = OrderedDict()
        # nonces issued at or before this time that are not tracked may have
        # been evicted from the table: they are treated as stale.
        self._evicted_until_ms = -(2**63)

    # -- nonces -------------------------------------------------------------

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, self._realm_bytes + payload, hashlib.sha256).digest()[
            :_NONCE_MAC_SIZE
        ]

    def _new_nonce(self, now: float) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFFFF
        payload = _NONCE_PAYLOAD.pack(int(now * 1000), self._counter)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def _nonce_issued_ms(self, nonce: str) -> Optional[int]:
        """Return the issue time of a nonce we made, or None if it is not ours."""
        if len(nonce) != _NONCE_TEXT_SIZE:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        if len(raw) != _NONCE_SIZE:
            return None
        payload = raw[: _NONCE_PAYLOAD.size]
        if not hmac.compare_digest(raw[_NONCE_PAYLOAD.size :], self._mac(payload)):
            return None
        return _NONCE_PAYLOAD.unpack(payload)[0]

    # -- public API ---------------------------------------------------------

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """
        Return the C{WWW-Authenticate} (or C{Proxy-Authenticate}) values for a
        401 (or 407): one per configured algorithm, sharing one fresh nonce,
        all offering C{qop="auth"} (RFC 7616 section 3.3, RFC 8760 2.4).

        @param stale: set after L{DigestResult.STALE} or
            L{DigestResult.REPLAY}, so that the client retries silently.
        """
        nonce = self._new_nonce(now)
        stale_part = ", stale=true" if stale else ""
        realm = _quote(self.realm)
        return [
            f'Digest realm={realm}, nonce="{nonce}", algorithm={algorithm}, qop="auth"{stale_part}'
            for algorithm in self.algorithms
        ]

    def verify(
        self,
        authorization: str,
        method: str,
        password_lookup: Callable[[str], Optional[str]],
        now: float,
        body: bytes = b"",
        request_uri: Optional[object] = None,
    ) -> DigestResult:
        """
        Check an C{Authorization} (or C{Proxy-Authorization}) header value.

        @param method: the request method (covered by the digest).
        @param password_lookup: C{username -> password or None}.
        @param body: the request body, needed only for C{qop=auth-int}.
        @param request_uri: the request's Request-URI (a parsed URI); when given, credentials
            whose C{uri} does not name it are L{DigestResult.URI_MISMATCH}, so a digest
            captured from one request cannot authorise another.
        """
        try:
            creds = DigestCredentials.parse(authorization)
        except RemoteProtocolError:
            return DigestResult.MALFORMED
        if request_uri is not None and not _same_uri(creds.uri, request_uri):
            return DigestResult.URI_MISMATCH
        nc_value = 0
        if creds.qop is not None:
            if creds.qop not in ("auth", "auth-int"):
                return DigestResult.MALFORMED
            if len(creds.nc) != 8:
                return DigestResult.MALFORMED
            try:
                nc_value = int(creds.nc, 16)
            except ValueError:
                return DigestResult.MALFORMED
            if nc_value < 1:
                return DigestResult.MALFORMED
        if creds.realm != self.realm:
            return DigestResult.BAD_CREDENTIALS
        spec = _algorithm(creds.algorithm)
        if spec is None or spec[0] not in self.algorithms:
            return DigestResult.BAD_CREDENTIALS
        if spec[2] and creds.cnonce is None:
            return DigestResult.MALFORMED
        password = password_lookup(creds.username)
        if password is None:
            return DigestResult.BAD_CREDENTIALS
        expected = compute_digest_response(
            creds.algorithm, creds.username, creds.realm, password, method, creds.uri,
            creds.nonce, creds.qop, creds.nc, creds.cnonce, body,
        )
        if not hmac.compare_digest(expected.encode("ascii"), creds.response.lower().encode("utf-8")):
            return DigestResult.BAD_CREDENTIALS

        # The digest is right: from here on a problem means "retry with a
        # fresh nonce", never "wrong password".
        issued_ms = self._nonce_issued_ms(creds.nonce)
        if issued_ms is None:
            return DigestResult.STALE
        now_ms = int(now * 1000)
        if now_ms - issued_ms > self._lifetime_ms or issued_ms - now_ms > self._lifetime_ms:
            self._nonce_counts.pop(creds.nonce, None)
            return DigestResult.STALE
        counts = self._nonce_counts
        last = counts.get(creds.nonce)
        if last is None:
            if issued_ms <= self._evicted_until_ms:
                return DigestResult.STALE
            if len(counts) >= self._max_tracked:
                self._evict_oldest()
            counts[creds.nonce] = nc_value
            return DigestResult.OK
        if nc_value <= last:
            return DigestResult.REPLAY
        counts[creds.nonce] = nc_value
        return DigestResult.OK

    def _evict_oldest(self) -> None:
        nonce, _ = self._nonce_counts.popitem(last=False)
        issued = self._nonce_issued_ms(nonce)
        if issued is not None and issued > self._evicted_until_ms:
            self._evicted_until_ms = issued

    @property
    def tracked_nonces(self) -> int:
        """How many nonces currently have a recorded nonce-count."""
        return len(self._nonce_counts)
