# -*- test-case-name: tests.sip.test_headers -*-
"""
SIP header fields: an ordered multimap that keeps what the peer wrote, and
immutable typed values for the fields the stack reasons about.

L{Headers} stores every header line in order with its original name spelling
(C{"MaX-fOrWaRdS"}, compact C{"v"}), so a proxy forwards what it received and
C{parse(bytes(msg)) == msg}.  Lookups are case-insensitive and treat compact
forms as their long names (RFC 3261 7.3.3).  Values are stored unfolded
(RFC 3261 7.3.1) and unsplit; L{Headers.get_all} splits the comma-separated
list headers on demand, respecting quoted strings and C{<...>}.

L{Via}, L{NameAddress} and L{CSeq} are frozen dataclasses parsed from one
header value.  Parsing is memoised per value string: values are immutable and
a retransmission or a 200 OK copies the same text, so the second parse is a
dictionary lookup.  Malformed values raise L{RemoteProtocolError} with
status 400 (RFC 4475 3.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

from wcs_twisted.sip import grammar
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.uri import URI, check_host, parse_port, parse_uri

__all__ = [
    "Headers",
    "Via",
    "NameAddress",
    "CSeq",
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "canonical_name",
    "split_list",
    "parse_params",
    "format_params",
    "quote_string",
    "unquote_string",
    "parse_auth_params",
    "format_auth_params",
]

Params = Tuple[Tuple[str, Optional[str]], ...]

#: RFC 3261 7.3.3 and the registry of compact forms (RFC 3265, 3515, 3892,
#: 3903, 4028, 3841...), compact letter -> long name.
COMPACT_FORMS: Dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_COMPACT_KEYS = {letter: name.lower() for letter, name in COMPACT_FORMS.items()}

#: Header fields whose value is a comma-separated list (the ABNF has
#: C{*(COMMA ...)}); L{Headers.get_all} splits these and only these, so an
#: unknown header such as RFC 4475's C{UnknownHeaderWithUnusualValue} or a
#: C{Date} with its comma stays whole.
LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "accept-resource-priority",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-associated-uri",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "privacy",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "resource-priority",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

_key_cache: Dict[str, str] = {}


def canonical_name(name: str) -> str:
    """
    Return the lookup key of a header name: lower case, compact forms
    expanded (C{"v"} and C{"VIA"} both give C{"via"}).

    @raise RemoteProtocolError: 400 when C{name} is not a token.
    """
    try:
        return _key_cache[name]
    except KeyError:
        pass
    if not grammar.TOKEN.match(name):
        raise RemoteProtocolError(f"malformed header name {name[:80]!r}", 400)
    key = name.lower()
    key = _COMPACT_KEYS.get(key, key)
    if len(_key_cache) < 4096:
        _key_cache[name] = key
    return key


def _local_key(name: str) -> str:
    try:
        return canonical_name(name)
    except RemoteProtocolError:
        raise LocalProtocolError(f"malformed header name {name!r}") from None


def _check_local_value(value: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(f"header values must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError("header values must not contain CR or LF")
    return value.strip(" \t")


def split_list(value: str) -> List[str]:
    """
    Split a list header value on the commas that separate its elements,
    ignoring commas inside quoted strings and C{<...>}; empty elements are
    dropped and each element is stripped of surrounding whitespace.
    """
    if "," not in value:
        value = value.strip(" \t")
        return [value] if value else []
    elements = []
    start = 0
    in_quotes = False
    in_angle = False
    escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif in_angle:
            if char == ">":
                in_angle = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ",":
            element = value[start:index].strip(" \t")
            if element:
                elements.append(element)
            start = index + 1
    element = value[start:].strip(" \t")
    if element:
        elements.append(element)
    return elements


class Headers:
    """
    An ordered, case-insensitive, compact-form-aware multimap of SIP header
    fields that remembers how each name was spelled.
    """

    __slots__ = ("_entries",)

    def __init__(self, items: Iterable[Tuple[str, str]] = ()) -> None:
        self._entries: List[Tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_entries(cls, entries: List[Tuple[str, str, str]]) -> "Headers":
        headers = cls.__new__(cls)
        headers._entries = entries
        return headers

    # -- reading -------------------------------------------------------------

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """
        Return the first value of C{name}: the first element for list
        headers, the first header line's value otherwise.
        """
        key = _local_key(name)
        for entry_key, _, value in self._entries:
            if entry_key == key:
                if key in LIST_HEADERS and "," in value:
                    elements = split_list(value)
                    if elements:
                        return elements[0]
                    continue
                return value
        return default

    def get_all(self, name: str) -> List[str]:
        """
        Return every value of C{name} in order; the comma-separated elements
        of list headers (L{LIST_HEADERS}) are split out.
        """
        key = _local_key(name)
        if key in LIST_HEADERS:
            result: List[str] = []
            for entry_key, _, value in self._entries:
                if entry_key == key:
                    if "," in value:
                        result.extend(split_list(value))
                    elif value:
                        result.append(value)
            return result
        return [value for entry_key, _, value in self._entries if entry_key == key]

    def count(self, name: str) -> int:
        """
        Return the number of header lines (not list elements) named C{name}.
        """
        key = _local_key(name)
        return sum(1 for entry in self._entries if entry[0] == key)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _local_key(name)
        return any(entry[0] == key for entry in self._entries)

    def items(self) -> List[Tuple[str, str]]:
        """
        Return every header line as C{(name as written, value)}, in order.
        """
        return [(name, value) for _, name, value in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._entries == other._entries

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    def copy(self) -> "Headers":
        return Headers._from_entries(list(self._entries))

    # -- writing -------------------------------------------------------------

    def add(self, name: str, value: str) -> None:
        """
        Append a header line.
        """
        key = _local_key(name)
        self._entries.append((key, name, _check_local_value(value)))

    def prepend(self, name: str, value: str) -> None:
        """
        Make C{value} the first value of C{name}: it is inserted as its own
        line just before the first existing line of that name (or at the top),
        which is how a proxy pushes a Via or a Record-Route (RFC 3261 16.6).
        """
        key = _local_key(name)
        entry = (key, name, _check_local_value(value))
        for index, existing in enumerate(self._entries):
            if existing[0] == key:
                self._entries.insert(index, entry)
                return
        self._entries.insert(0, entry)

    def set(self, name: str, value: str) -> None:
        """
        Replace every line of C{name} by one line holding C{value}, at the
        position of the first existing line (or at the end).
        """
        key = _local_key(name)
        entry = (key, name, _check_local_value(value))
        entries = []
        placed = False
        for existing in self._entries:
            if existing[0] == key:
                if not placed:
                    entries.append(entry)
                    placed = True
            else:
                entries.append(existing)
        if not placed:
            entries.append(entry)
        self._entries = entries

    def remove(self, name: str) -> None:
        """
        Remove every line of C{name}; absent names are ignored.
        """
        key = _local_key(name)
        self._entries = [entry for entry in self._entries if entry[0] != key]

    def pop_first(self, name: str) -> Optional[str]:
        """
        Remove and return the first value of C{name} (the first element of a
        list header line, keeping the rest of that line), or L{None}.  This is
        how a proxy pops its own Via from a response (RFC 3261 16.7).
        """
        key = _local_key(name)
        for index, (entry_key, entry_name, value) in enumerate(self._entries):
            if entry_key != key:
                continue
            elements = split_list(value) if key in LIST_HEADERS else [value]
            if len(elements) <= 1:
                del self._entries[index]
                return elements[0] if elements else value
            self._entries[index] = (entry_key, entry_name, ", ".join(elements[1:]))
            return elements[0]
        return None


# -- shared value grammar -------------------------------------------------------


def _memoised(parse: Callable[[str], object]) -> Callable[[str], object]:
    """
    Wrap a pure parse function of one str with a bounded cache.  Only short
    values are cached so a flood of large hostile values cannot pin memory.
    """
    cache: dict = {}

    def cached(value: str):
        try:
            return cache[value]
        except KeyError:
            pass
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


def _param_lookup(params: Params, name: str):
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return True, value
    return False, None


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


# -- Via ------------------------------------------------------------------------


@dataclass(frozen=True)
class Via:
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

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        found, value = _param_lookup(self.params, name)
        return value if found else default

    def has_param(self, name: str) -> bool:
        return _param_lookup(self.params, name)[0]

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
        found, value = _param_lookup(self.params, "rport")
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

    def with_params(self, **params) -> "Via":
        """
        Return a copy with parameters set; L{None} or L{True} make a flag
        (C{via.with_params(received="192.0.2.1", rport=5060)}).
        """
        return Via(self.transport, self.host, self.port, _updated_params(self.params, params))

    def without_params(self, *names: str) -> "Via":
        lowered = {name.lower() for name in names}
        return Via(
            self.transport,
            self.host,
            self.port,
            tuple(p for p in self.params if p[0].lower() not in lowered),
        )


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
class NameAddress:
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

    def param(self, name: str, default: Optional[str] = None) -> Optional[str]:
        found, value = _param_lookup(self.params, name)
        return value if found else default

    def has_param(self, name: str) -> bool:
        return _param_lookup(self.params, name)[0]

    @property
    def tag(self) -> Optional[str]:
        return self.param("tag")

    def with_tag(self, tag: str) -> "NameAddress":
        return self.with_params(tag=tag)

    def with_params(self, **params) -> "NameAddress":
        return NameAddress(self.display_name, self.uri, _updated_params(self.params, params))

    def without_params(self, *names: str) -> "NameAddress":
        lowered = {name.lower() for name in names}
        return NameAddress(
            self.display_name,
            self.uri,
            tuple(p for p in self.params if p[0].lower() not in lowered),
        )


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
