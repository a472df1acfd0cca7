# -*- test-case-name: tests.sip.test_uri -*-
"""
SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966) as immutable values.

L{SIPURI.parse} turns text into a frozen L{SIPURI}; C{str()} turns it back
into canonical text.  Escapes (C{%HH}) in the user, password, parameters and
headers are decoded once when parsing, so lookups and comparisons work on
real characters (C{sip:%75ser@host} has user C{"user"}, RFC 4475 3.1.1.3),
and are re-applied only where the grammar requires them when formatting.
Bytes that are not UTF-8 survive the trip as surrogate escapes.

L{SIPURI.parse} refuses schemes other than sip, sips and tel with a 416
(Unsupported URI Scheme).  The message parser must nevertheless accept such
URIs (RFC 4475 3.3.2: "A parser must accept this as a well-formed SIP
request"), so L{parse_uri} returns an opaque L{AbsoluteURI} for them and
leaves the 416 decision to L{wcs_twisted.sip.message.validate_request}.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union
from urllib.parse import unquote

from wcs_twisted.sip import grammar
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "SIPURI",
    "AbsoluteURI",
    "parse_uri",
    "check_host",
    "parse_port",
    "SUPPORTED_SCHEMES",
    "MAX_URI_LENGTH",
]

SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})

#: Longer URIs are refused outright (RFC 4475 3.1.1.7 messages stay far below).
MAX_URI_LENGTH = 8192

Params = Tuple[Tuple[str, Optional[str]], ...]

# Characters that may appear unescaped in each component when formatting.
_USER_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/"
)
_PASSWORD_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,"
)
_PARAM_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()[]/:&+$"
)
_HEADER_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()[]/?:+$"
)

# RFC 3261 19.1.4: these parameters must match if present in either URI.
_STRICT_COMPARE_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, 400)


def _quote(text: str, safe: frozenset) -> str:
    """
    Escape every character outside C{safe} as C{%HH} of its UTF-8 bytes.
    """
    for char in text:
        if char not in safe:
            break
    else:
        return text
    out = []
    for char in text:
        if char in safe:
            out.append(char)
        else:
            for byte in char.encode("utf-8", "surrogateescape"):
                out.append("%%%02X" % byte)
    return "".join(out)


def _unquote(text: str) -> str:
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


#: Hosts found valid (bounded): a proxy sees the same few hosts in every message's Via and URI.
_valid_hosts: dict = {}


def check_host(host: str, what: str) -> str:
    """
    Validate a host (hostname, IPv4 address or IPv6 reference) and return it.
    """
    if host in _valid_hosts:
        return host
    _check_host(host, what)
    if len(_valid_hosts) >= 4096:
        _valid_hosts.clear()
    _valid_hosts[host] = True
    return host


def _check_host(host: str, what: str) -> str:
    if not host:
        raise _bad(f"{what} has an empty host")
    if host[0] == "[":
        if not grammar.IPV6_REFERENCE.match(host):
            raise _bad(f"{what} has a malformed IPv6 reference {host!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _bad(f"{what} has a malformed IPv6 reference {host!r}") from None
        return host
    if not grammar.HOSTNAME.match(host):
        raise _bad(f"{what} has a malformed host {host!r}")
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            raise _bad(f"{what} has a malformed host {host!r}")
    if labels[-1].isdigit():
        # Only a dotted quad may end in a numeric label.
        if len(labels) != 4 or not all(
            label.isdigit() and len(label) <= 3 and int(label) <= 255 for label in labels
        ):
            raise _bad(f"{what} has a malformed host {host!r}")
    return host


def parse_port(text: str, what: str) -> int:
    if not grammar.DIGITS.match(text) or len(text) > 5:
        raise _bad(f"{what} has a malformed port {text!r}")
    port = int(text)
    if port > 65535:
        raise _bad(f"{what} has an out-of-range port {port}")
    return port


def _parse_uri_params(text: str, what: str) -> Params:
    """
    Parse C{;name[=value]...} (the leading C{;} already removed).
    """
    params = []
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if not grammar.PARAM_NAME.match(name):
            raise _bad(f"{what} has a malformed parameter {item!r}")
        if sep:
            if not grammar.PARAM_VALUE.match(value):
                raise _bad(f"{what} has a malformed parameter value {item!r}")
            params.append((_unquote(name), _unquote(value)))
        else:
            params.append((_unquote(name), None))
    return tuple(params)


def _parse_uri_headers(text: str, what: str) -> Tuple[Tuple[str, str], ...]:
    headers = []
    for item in text.split("&"):
        name, sep, value = item.partition("=")
        if (
            not sep
            or not grammar.HEADER_NAME_CHARS.match(name)
            or not grammar.HEADER_VALUE_CHARS.match(value)
        ):
            raise _bad(f"{what} has a malformed header {item!r}")
        headers.append((_unquote(name), _unquote(value)))
    return tuple(headers)


def find_param(params: Params, name: str) -> Tuple[bool, Optional[str]]:
    """
    C{(found, value)} for parameter C{name}, case-insensitive; C{value} is None for a flag.
    """
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return True, value
    return False, None


def _replace_params(params: Params, updates) -> Params:
    result = list(params)
    for name, value in updates:
        lowered = name.lower()
        for index, (key, _) in enumerate(result):
            if key.lower() == lowered:
                result[index] = (key, value)
                break
        else:
            result.append((name, value))
    return tuple(result)


def _normalise_param_value(value) -> Optional[str]:
    if value is None or value is True:
        return None
    if isinstance(value, bool):
        raise LocalProtocolError("a URI parameter value cannot be False; use without_params")
    return str(value)


@dataclass(frozen=True)
class SIPURI:
    """
    A sip:, sips: or tel: URI.

    For tel URIs the subscriber number is in C{user} and C{host} is empty.
    Parameter and header names keep their case; lookups ignore it.  Values
    are unescaped.

    @ivar scheme: C{"sip"}, C{"sips"} or C{"tel"} (always lower case).
    @ivar params: C{(name, value)} pairs; C{value} is L{None} for a flag
        parameter such as C{lr}.
    @ivar headers: C{(hname, hvalue)} pairs from the C{?} part.
    """

    scheme: str
    user: Optional[str]
    password: Optional[str]
    host: str
    port: Optional[int]
    params: Params = ()
    headers: Tuple[Tuple[str, str], ...] = ()
    _text: Optional[str] = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> "SIPURI":
        """
        Parse a sip, sips or tel URI.

        @raise RemoteProtocolError: 400 for malformed text, 416 when the
            scheme is well formed but not sip, sips or tel.
        """
        uri = parse_uri(text)
        if isinstance(uri, AbsoluteURI):
            raise RemoteProtocolError(f"unsupported URI scheme {uri.scheme!r}", 416)
        return uri

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._format()
            object.__setattr__(self, "_text", text)
        return text

    def _format(self) -> str:
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(_quote(self.user, _USER_SAFE))
                if self.password is not None:
                    parts.append(":")
                    parts.append(_quote(self.password, _PASSWORD_SAFE))
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts.append(":%d" % self.port)
        for name, value in self.params:
            parts.append(";")
            parts.append(_quote(name, _PARAM_SAFE))
            if value is not None:
                parts.append("=")
                parts.append(_quote(value, _PARAM_SAFE))
        if self.headers:
            parts.append("?")
            parts.append(
                "&".join(
                    _quote(name, _HEADER_SAFE) + "=" + _quote(value, _HEADER_SAFE)
                    for name, value in self.headers
                )
            )
        return "".join(parts)

    # -- parameters --------------------------------------------------------

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """
        Return the value of parameter C{name} (case-insensitive), L{None} for a
        flag parameter, C{default} when absent.  Use L{has_param} to tell a
        flag from an absent parameter.
        """
        found, value = find_param(self.params, name)
        return value if found else default

    def has_param(self, name: str) -> bool:
        return find_param(self.params, name)[0]

    def with_params(self, **params) -> "SIPURI":
        """
        Return a copy with parameters set; a value of L{None} or L{True} sets a
        flag parameter (C{with_params(lr=None)}).
        """
        return self.with_param_items(params.items())

    def with_param_items(self, items) -> "SIPURI":
        """
        Like L{with_params} for names that are not Python identifiers
        (C{with_param_items([("x-foo", "1")])}).
        """
        updates = [(name, _normalise_param_value(value)) for name, value in items]
        return _replace(self, params=_replace_params(self.params, updates))

    def without_params(self, *names: str) -> "SIPURI":
        lowered = {name.lower() for name in names}
        return _replace(self, params=tuple(p for p in self.params if p[0].lower() not in lowered))

    def without_headers(self) -> "SIPURI":
        return _replace(self, headers=())

    # -- derived values ----------------------------------------------------

    @property
    def transport(self) -> str:
        """
        The C{transport} parameter in lower case; C{"tls"} for a sips URI
        without one, else C{"udp"} (RFC 3263 4.1 defaults).
        """
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def host_port(self) -> Tuple[str, Optional[int]]:
        return (self.host, self.port)

    def is_equivalent(self, other: "SIPURI") -> bool:
        """
        Compare two URIs by the rules of RFC 3261 section 19.1.4.

        Scheme and host are case-insensitive, user and password are
        case-sensitive after unescaping, an explicit default port is not the
        same as no port, the user/ttl/method/maddr/transport parameters must
        agree when either side has them, other parameters only when both do,
        and URI headers must all be present on both sides.
        """
        if not isinstance(other, SIPURI):
            return False
        if self.scheme != other.scheme:
            return False
        if self.user != other.user or self.password != other.password:
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {name.lower(): value for name, value in self.params}
        theirs = {name.lower(): value for name, value in other.params}
        for name in _STRICT_COMPARE_PARAMS:
            if name in mine or name in theirs:
                if name not in mine or name not in theirs:
                    return False
                if not _param_values_equal(mine[name], theirs[name]):
                    return False
        for name in mine.keys() & theirs.keys():
            if not _param_values_equal(mine[name], theirs[name]):
                return False
        mine_headers = {name.lower(): value for name, value in self.headers}
        theirs_headers = {name.lower(): value for name, value in other.headers}
        return mine_headers == theirs_headers


def _param_values_equal(a: Optional[str], b: Optional[str]) -> bool:
    if a is None or b is None:
        return a is b
    return a.lower() == b.lower()


def _replace(uri: SIPURI, **changes) -> SIPURI:
    values = dict(
        scheme=uri.scheme,
        user=uri.user,
        password=uri.password,
        host=uri.host,
        port=uri.port,
        params=uri.params,
        headers=uri.headers,
    )
    values.update(changes)
    return SIPURI(**values)


@dataclass(frozen=True)
class AbsoluteURI:
    """
    A syntactically valid URI whose scheme this stack does not implement
    (RFC 3261 absoluteURI), kept as opaque text.

    It has no parameters; L{param} and L{has_param} exist so code that
    inspects URIs need not special-case it.
    """

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return default

    def has_param(self, name: str) -> bool:
        return False

    def is_equivalent(self, other) -> bool:
        return (
            isinstance(other, AbsoluteURI)
            and self.scheme == other.scheme
            and self.opaque == other.opaque
        )


URI = Union[SIPURI, AbsoluteURI]

_cache: dict = {}
_CACHE_MAX = 2048
_CACHEABLE_LENGTH = 256


def parse_uri(text: str) -> URI:
    """
    Parse any URI that may appear in a SIP message.

    @return: a L{SIPURI} for sip, sips and tel URIs, an L{AbsoluteURI} for
        any other well-formed scheme.
    @raise RemoteProtocolError: 400 when the text is not a URI.
    """
    uri = _cache.get(text)  # not try/except: a miss would raise and allocate a KeyError
    if uri is not None:
        return uri
    uri = _parse_uri(text)
    if len(text) <= _CACHEABLE_LENGTH:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[text] = uri
    return uri


def _parse_uri(text: str) -> URI:
    if len(text) > MAX_URI_LENGTH:
        raise _bad(f"URI longer than {MAX_URI_LENGTH} characters")
    colon = text.find(":")
    if colon <= 0 or not grammar.SCHEME.match(text, 0, colon):
        raise _bad(f"malformed URI {text[:80]!r}: no scheme")
    scheme = text[:colon].lower()
    rest = text[colon + 1 :]
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        return _parse_tel(rest, text)
    if not grammar.ABSOLUTE_URI_REST.match(rest):
        raise _bad(f"malformed URI {text[:80]!r}")
    return AbsoluteURI(scheme, rest)


def _parse_sip(scheme: str, rest: str, text: str) -> SIPURI:
    what = f"URI {text[:80]!r}"
    user = password = None
    at = rest.find("@")
    if at >= 0:
        if rest.find("@", at + 1) >= 0:
            raise _bad(f"{what} has more than one '@'")
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user_text, sep, password_text = userinfo.partition(":")
        if not grammar.USER.match(user_text):
            raise _bad(f"{what} has a malformed user part")
        user = _unquote(user_text)
        if sep:
            if not grammar.PASSWORD.match(password_text):
                raise _bad(f"{what} has a malformed password")
            password = _unquote(password_text)
    headers: Tuple[Tuple[str, str], ...] = ()
    question = rest.find("?")
    if question >= 0:
        headers = _parse_uri_headers(rest[question + 1 :], what)
        rest = rest[:question]
    params: Params = ()
    semicolon = rest.find(";")
    if semicolon >= 0:
        params = _parse_uri_params(rest[semicolon + 1 :], what)
        rest = rest[:semicolon]
    port = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise _bad(f"{what} has an unterminated IPv6 reference")
        host = rest[: close + 1]
        after = rest[close + 1 :]
        if after:
            if after[0] != ":":
                raise _bad(f"{what} has garbage after the host")
            port = parse_port(after[1:], what)
    else:
        host, sep, port_text = rest.partition(":")
        if sep:
            port = parse_port(port_text, what)
    check_host(host, what)
    return SIPURI(scheme, user, password, host, port, params, headers)


def _parse_tel(rest: str, text: str) -> SIPURI:
    what = f"URI {text[:80]!r}"
    number, sep, param_text = rest.partition(";")
    if not grammar.TELEPHONE_SUBSCRIBER.match(number):
        raise _bad(f"{what} has a malformed telephone number")
    params = _parse_uri_params(param_text, what) if sep else ()
    return SIPURI("tel", number, None, "", None, params, ())
