# -*- test-case-name: tests.sip.test_headers -*-
"""
Typed SIP header values: immutable values parsed from one header value and written back.

L{Via}, L{NameAddress} and L{CSeq} are frozen dataclasses parsed from one
header value.  Parsing is memoised per value string: values are immutable and
a retransmission or a 200 OK copies the same text, so the second parse is a
dictionary lookup.  Malformed values raise L{RemoteProtocolError} with
status 400 (RFC 4475 3.1.2).  Building headers from these values (never from
f-strings) is what keeps a display name a valid quoted-string (RFC 3261 25.1).
The header block that holds the raw values is L{wcs_twisted.sip.header_fields}.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Tuple, Union

from wcs_twisted.sip import grammar
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.header_fields import split_list
from wcs_twisted.sip.uri import URI, check_host, find_param, parse_port, parse_uri

__all__ = [
    "Via",
    "NameAddress",
    "CSeq",
    "parse_params",
    "format_params",
    "quote_string",
    "unquote_string",
    "parse_auth_params",
    "format_auth_params",
]

Params = Tuple[Tuple[str, Optional[str]], ...]


# -- shared value grammar -------------------------------------------------------


def _memoised(parse: Callable[[str], object]) -> Callable[[str], object]:
    """
    Wrap a pure parse function of one str with a bounded cache.  Only short
    values are cached so a flood of large hostile values cannot pin memory.
    Values with a branch or tag are cached too: within a transaction and a
    dialog they come back in every message (bench/sip_inprocess.py: a
    proxied call cost ~25 % more without them).
    """
    cache: dict = {}

    def cached(value: str):
        # get, not try/except KeyError: a miss (every unique tag or branch) would raise and
        # allocate a KeyError each time (and so trigger garbage collections sooner).
        result = cache.get(value)
        if result is not None:
            return result
        result = parse(value)
        if len(value) <= 512:
            if len(cache) >= 4096:
                cache.clear()
            cache[value] = result
        return result

    cached.__doc__ = parse.__doc__
    cached.__name__ = parse.__name__
    return cached


def unquote_string(quoted: str) -> str:
    """
    Turn a quoted-string (with its quotes) into its text, resolving
    quoted-pairs (C{\\"} -> C{"}).
    """
    inner = quoted[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    index = 0
    length = len(inner)
    while index < length:
        char = inner[index]
        if char == "\\" and index + 1 < length:
            index += 1
            char = inner[index]
        out.append(char)
        index += 1
    return "".join(out)


def quote_string(text: str) -> str:
    """
    Return C{text} as a quoted-string: backslash, double quote and control
    characters become quoted-pairs (RFC 3261 25.1).

    @raise LocalProtocolError: C{text} holds CR or LF, which no quoted-pair
        can carry.
    """
    if "\r" in text or "\n" in text:
        raise LocalProtocolError("a quoted string cannot contain CR or LF")
    out = ['"']
    for char in text:
        if char == '"' or char == "\\" or (char < " " and char != "\t") or char == "\x7f":
            out.append("\\")
        out.append(char)
    out.append('"')
    return "".join(out)


def parse_params(text: str, what: str = "header") -> Params:
    """
    Parse C{*( SEMI generic-param )} from the start of C{text} to its end.

    Values are returned as written (a quoted-string keeps its quotes), names
    keep their case.

    @raise RemoteProtocolError: 400 if C{text} is not a parameter list.
    """
    params = []
    position = 0
    length = len(text)
    match = grammar.GENERIC_PARAM.match
    while position < length:
        found = match(text, position)
        if found is None or found.end() == position:
            raise RemoteProtocolError(
                f"malformed parameters in {what}: {text[position:position + 60]!r}", 400
            )
        params.append((found.group(1), found.group(2)))
        position = found.end()
    return tuple(params)


def format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _updated_params(params: Params, updates: Dict[str, object]) -> Params:
    result = list(params)
    for name, value in updates.items():
        if value is False:
            raise LocalProtocolError("a parameter value cannot be False")
        text = None if value is None or value is True else str(value)
        if text is not None and (
            not (grammar.TOKEN.match(text) or grammar.QUOTED_STRING.match(text))
            and not grammar.IPV6_REFERENCE.match(text)
        ):
            raise LocalProtocolError(f"parameter {name}={text!r} is neither token nor quoted")
        lowered = name.lower()
        for index, (key, _) in enumerate(result):
            if key.lower() == lowered:
                result[index] = (key, text)
                break
        else:
            if not grammar.TOKEN.match(name):
                raise LocalProtocolError(f"malformed parameter name {name!r}")
            result.append((name, text))
    return tuple(result)


class _HeaderParams:
    """
    Header parameters (C{;name=value}) shared by L{Via} and L{NameAddress}: lookups ignore
    case, updates return a copy.
    """

    params: Params

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        found, value = find_param(self.params, name)
        return value if found else default

    def has_param(self, name: str) -> bool:
        return find_param(self.params, name)[0]

    def with_params(self, **params):
        """
        Return a copy with parameters set; L{None} or L{True} make a flag
        (C{via.with_params(received="192.0.2.1", rport=5060)}).
        """
        return replace(self, params=_updated_params(self.params, params))

    def without_params(self, *names: str):
        lowered = {name.lower() for name in names}
        return replace(self, params=tuple(p for p in self.params if p[0].lower() not in lowered))


# -- Via ------------------------------------------------------------------------


@dataclass(frozen=True)
class Via(_HeaderParams):
    """
    One Via header field value (RFC 3261 20.42): C{SIP/2.0/<transport>
    <host>[:<port>];params}.

    @ivar transport: upper case (C{"UDP"}, C{"TCP"}, C{"TLS"}, C{"WSS"}...).
    @ivar params: C{(name, value)} pairs as written, L{None} for flags.
    """

    transport: str
    host: str
    port: Optional[int]
    params: Params = ()

    @classmethod
    def parse(cls, value: str) -> "Via":
        """
        Parse one via-parm (a single element of a Via header).

        @raise RemoteProtocolError: 400 if it is malformed.
        """
        return _parse_via(value)

    def __str__(self) -> str:
        host = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {host}{format_params(self.params)}"

    @property
    def branch(self) -> Optional[str]:
        return self.param("branch")

    @property
    def received(self) -> Optional[str]:
        return self.param("received")

    @property
    def rport(self) -> Union[int, None, bool]:
        """
        L{None} when absent, L{True} when present without a value (a request
        asking for symmetric response routing, RFC 3581), else the port.
        """
        found, value = find_param(self.params, "rport")
        if not found:
            return None
        if value is None:
            return True
        if not grammar.DIGITS.match(value) or len(value) > 5:
            raise RemoteProtocolError(f"malformed rport value {value!r}", 400)
        return int(value)

    @property
    def sent_by(self) -> Tuple[str, Optional[int]]:
        return (self.host, self.port)



@_memoised
def _parse_via(value: str) -> Via:
    match = grammar.VIA_PARM.match(value.strip(" \t"))
    if match is None:
        raise RemoteProtocolError(f"malformed Via {value[:80]!r}", 400)
    name, version, transport, host, port_text, rest = match.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise RemoteProtocolError(f"Via with unsupported protocol {name}/{version}", 400)
    check_host(host, "Via")
    port = parse_port(port_text, "Via") if port_text is not None else None
    rest = rest.rstrip(" \t")
    params = parse_params(rest, "Via") if rest else ()
    return Via(transport.upper(), host, port, params)


# -- name-addr / addr-spec (From, To, Contact, Route, Record-Route...) ------------


@dataclass(frozen=True)
class NameAddress(_HeaderParams):
    """
    A name-addr or addr-spec with header parameters (RFC 3261 20.10, 20.20,
    20.39): C{"Display" <uri>;tag=x}.

    @ivar display_name: the display name, unquoted; L{None} when absent.
    @ivar uri: a L{SIPURI}, or an L{AbsoluteURI} for schemes the stack does
        not implement (RFC 4475 3.3.4 says such values must still parse).
    @ivar params: header parameters (not URI parameters), values as written.
    """

    display_name: Optional[str]
    uri: URI
    params: Params = ()

    @classmethod
    def parse(cls, value: str) -> "NameAddress":
        """
        Parse one name-addr or addr-spec followed by parameters.

        @raise RemoteProtocolError: 400 when malformed (RFC 4475 3.1.2.6,
            3.1.2.13 to 3.1.2.15).
        """
        return _parse_name_address(value)

    def __str__(self) -> str:
        if self.display_name:
            head = f"{quote_string(self.display_name)} <{self.uri}>"
        elif self.display_name is not None:
            head = f'"" <{self.uri}>'
        else:
            head = f"<{self.uri}>"
        return head + format_params(self.params)

    @property
    def tag(self) -> Optional[str]:
        return self.param("tag")

    def with_tag(self, tag: str) -> "NameAddress":
        return self.with_params(tag=tag)


def _find_closing_quote(text: str, start: int) -> int:
    """
    Return the index of the DQUOTE closing the quoted-string that opens at
    C{start}, or -1.
    """
    index = start + 1
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index
        index += 1
    return -1


@_memoised
def _parse_name_address(value: str) -> NameAddress:
    text = value.strip(" \t")
    what = f"name-addr {text[:80]!r}"
    if not text:
        raise RemoteProtocolError("empty name-addr", 400)
    display_name: Optional[str] = None
    if text[0] == '"':
        close = _find_closing_quote(text, 0)
        if close < 0:
            raise RemoteProtocolError(f"unterminated quoted display name in {what}", 400)
        display_name = unquote_string(text[: close + 1])
        rest = text[close + 1 :].lstrip(" \t")
        if not rest.startswith("<"):
            raise RemoteProtocolError(f"display name not followed by <URI> in {what}", 400)
        return _parse_bracketed(display_name, rest, what)
    open_angle = text.find("<")
    if open_angle >= 0:
        before = text[:open_angle].rstrip(" \t")
        if before:
            if not grammar.DISPLAY_NAME_TOKENS.match(before):
                raise RemoteProtocolError(
                    f"display name with non-token characters must be quoted in {what}", 400
                )
            display_name = before
        return _parse_bracketed(display_name, text[open_angle:], what)
    # addr-spec form: the URI ends at the first ';' and parameters follow.
    # RFC 3261 20: "if the URI contains a comma, question mark or semicolon,
    # the URI MUST be enclosed in angle brackets".
    semicolon = text.find(";")
    uri_text = text if semicolon < 0 else text[:semicolon]
    uri_text = uri_text.rstrip(" \t")
    if "?" in uri_text or "," in uri_text or " " in uri_text or "\t" in uri_text:
        raise RemoteProtocolError(f"URI with '?', ',' or spaces must be in <> in {what}", 400)
    uri = parse_uri(uri_text)
    params = parse_params(text[semicolon:], what) if semicolon >= 0 else ()
    return NameAddress(None, uri, params)


def _parse_bracketed(display_name: Optional[str], rest: str, what: str) -> NameAddress:
    close = rest.find(">")
    if close < 0:
        raise RemoteProtocolError(f"missing '>' in {what}", 400)
    uri_text = rest[1:close]
    if not uri_text or uri_text != uri_text.strip(" \t"):
        raise RemoteProtocolError(f"whitespace inside <> in {what}", 400)
    uri = parse_uri(uri_text)
    tail = rest[close + 1 :].rstrip(" \t")
    params = parse_params(tail, what) if tail else ()
    return NameAddress(display_name, uri, params)


# -- CSeq -------------------------------------------------------------------------

#: RFC 4475 3.1.2.4: sequence numbers above 2**32 - 1 are invalid.
MAX_CSEQ = 2**32 - 1


@dataclass(frozen=True)
class CSeq:
    """
    The CSeq header field (RFC 3261 20.16): sequence number and method.
    """

    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> "CSeq":
        """
        @raise RemoteProtocolError: 400 when malformed or when the number is
            larger than 2**32 - 1 (RFC 4475 3.1.2.4).
        """
        return _parse_cseq(value)

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@_memoised
def _parse_cseq(value: str) -> CSeq:
    match = grammar.CSEQ.match(value.strip(" \t"))
    if match is None:
        raise RemoteProtocolError(f"malformed CSeq {value[:80]!r}", 400)
    digits = match.group(1)
    number = int(digits) if len(digits) <= 12 else MAX_CSEQ + 1
    if number > MAX_CSEQ:
        raise RemoteProtocolError(f"CSeq number {digits[:30]} is larger than 2**32-1", 400)
    return CSeq(number, match.group(2))


# -- authentication parameters (RFC 3261 25.1, RFC 2617) ----------------------------


def parse_auth_params(value: str) -> Tuple[str, Dict[str, str]]:
    """
    Parse a challenge or credentials value: C{scheme param=value, ...}.

    Quoted values are unquoted; names are lower-cased (they are
    case-insensitive).  A scheme that is not followed by C{name=value} pairs
    (RFC 4475 3.3.7's C{NoOneKnowsThisScheme opaque-data=here} is fine, a
    bare token68 is kept under the key C{""}).

    @raise RemoteProtocolError: 400 when malformed.
    """
    text = value.strip(" \t")
    scheme, _, rest = text.partition(" ")
    if not grammar.TOKEN.match(scheme):
        raise RemoteProtocolError(f"malformed authentication scheme in {text[:80]!r}", 400)
    params: Dict[str, str] = {}
    rest = rest.strip(" \t")
    if not rest:
        return scheme, params
    if "=" not in rest:
        params[""] = rest
        return scheme, params
    for element in split_list(rest):
        name, sep, raw = element.partition("=")
        name = name.strip(" \t")
        raw = raw.strip(" \t")
        if not sep or not grammar.TOKEN.match(name):
            raise RemoteProtocolError(f"malformed authentication parameter {element[:80]!r}", 400)
        if raw.startswith('"'):
            if not grammar.QUOTED_STRING.match(raw):
                raise RemoteProtocolError(f"unterminated quoted value in {element[:80]!r}", 400)
            raw = unquote_string(raw)
        params[name.lower()] = raw
    return scheme, params


#: Digest parameters that RFC 3261/2617 send as quoted strings.
_QUOTED_AUTH_PARAMS = frozenset(
    {"realm", "nonce", "opaque", "username", "uri", "response", "cnonce", "domain", "qop_options"}
)


def format_auth_params(scheme: str, params: Dict[str, str], quoted: Optional[set] = None) -> str:
    """
    Format C{scheme name=value, ...}; names in C{quoted} (by default the
    Digest parameters that RFC 2617 quotes: realm, nonce, opaque, username,
    uri, response, cnonce, domain) are written as quoted strings.  Note that
    C{qop} is quoted in a challenge but not in credentials: pass C{quoted}
    explicitly for challenges.
    """
    if quoted is None:
        quoted = _QUOTED_AUTH_PARAMS
    parts = []
    for name, value in params.items():
        value = str(value)
        if name in quoted:
            parts.append(f"{name}={quote_string(value)}")
        else:
            parts.append(f"{name}={value}")
    return f"{scheme} " + ", ".join(parts)
