# -*- test-case-name: tests.sip.test_headers -*-
"""
The header block of a SIP message: an ordered multimap that keeps what the peer wrote.

L{Headers} stores every header line in order with its original name spelling
(C{"MaX-fOrWaRdS"}, compact C{"v"}), so a proxy forwards what it received and
C{parse(bytes(msg)) == msg}.  Lookups are case-insensitive and treat compact
forms as their long names (RFC 3261 7.3.3).  Values are stored unfolded
(RFC 3261 7.3.1) and unsplit; L{Headers.get_all} splits the comma-separated
list headers on demand, respecting quoted strings and C{<...>}.  The typed values
parsed from one header value live in L{wcs_twisted.sip.headers}.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

from wcs_twisted.sip import grammar
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "Headers",
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "canonical_name",
    "split_list",
]

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
    key = _key_cache.get(name)
    if key is not None:
        return key
    if not grammar.TOKEN.match(name):
        raise RemoteProtocolError(f"malformed header name {name[:80]!r}", 400)
    key = name.lower()
    key = _COMPACT_KEYS.get(key, key)
    if len(_key_cache) < 4096:
        _key_cache[name] = key
    return key


def _local_key(name: str) -> str:
    key = _key_cache.get(name)
    if key is not None:
        return key  # the common case, without the two calls below (~70 lookups per call)
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
        key = _key_cache.get(name) or _local_key(name)
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
        key = _key_cache.get(name) or _local_key(name)
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
        key = _key_cache.get(name) or _local_key(name)
        return sum(1 for entry in self._entries if entry[0] == key)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key_cache.get(name) or _local_key(name)
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
        key = _key_cache.get(name) or _local_key(name)
        self._entries.append((key, name, _check_local_value(value)))

    def prepend(self, name: str, value: str) -> None:
        """
        Make C{value} the first value of C{name}: it is inserted as its own
        line just before the first existing line of that name (or at the top),
        which is how a proxy pushes a Via or a Record-Route (RFC 3261 16.6).
        """
        key = _key_cache.get(name) or _local_key(name)
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
        key = _key_cache.get(name) or _local_key(name)
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
        key = _key_cache.get(name) or _local_key(name)
        self._entries = [entry for entry in self._entries if entry[0] != key]

    def pop_first(self, name: str) -> Optional[str]:
        """
        Remove and return the first value of C{name} (the first element of a
        list header line, keeping the rest of that line), or L{None}.  This is
        how a proxy pops its own Via from a response (RFC 3261 16.7).
        """
        key = _key_cache.get(name) or _local_key(name)
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
