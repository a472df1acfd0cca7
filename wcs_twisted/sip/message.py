# -*- test-case-name: tests.sip.test_message -*-
# Over 600 lines as one piece: parsing, serialising and RFC 3261 8.2 checks of the same two types.
"""
SIP requests and responses: parsing a datagram into a message, serialising a
message into bytes, and the message-level rules of RFC 3261 section 8.

L{parse_message} turns one datagram (or one WebSocket message) into a
L{Request} or L{Response}.  It checks what every layer depends on: the start
line, the header section's framing (folding, compact names, Content-Length,
RFC 3261 7.3 and 18.3), and the two fields the transaction layer matches on,
Via and CSeq.  Everything else (From, To, Contact, ...) is parsed when first
used, so a request with a broken From still reaches the transaction layer and
can be answered; L{validate_request} then names the status a server should
answer with, following RFC 3261 8.2 and the verdicts of RFC 4475.

Serialising writes the headers as they were received, in order and with their
original names, and recomputes Content-Length from the body.  Header text is
decoded as UTF-8 with surrogate escapes, so any octet a peer sends survives a
parse/serialise round trip unchanged.

Randomness is never drawn here: L{new_branch}, L{new_tag} and L{new_call_id}
take a random source (a C{random.Random}-like object with C{getrandbits}, or a
callable returning C{n} random bytes such as C{os.urandom}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from wcs_twisted.sip import grammar
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.header_fields import Headers, _key_cache, canonical_name, split_list
from wcs_twisted.sip.headers import CSeq, NameAddress, Via
from wcs_twisted.sip.uri import SUPPORTED_SCHEMES, URI, AbsoluteURI, SIPURI, parse_uri

__all__ = [
    "Request",
    "Response",
    "Message",
    "parse_message",
    "validate_request",
    "unsupported_options",
    "error_response",
    "new_branch",
    "new_tag",
    "new_call_id",
    "initial_cseq",
    "RandomSource",
    "REASON_PHRASES",
    "KNOWN_METHODS",
    "MAGIC_COOKIE",
    "MAX_DATAGRAM_SIZE",
]

#: RFC 3261 8.1.1.7: branches of RFC 3261 requests start with this.
MAGIC_COOKIE = "z9hG4bK"

#: Largest message parse_message accepts by default (a UDP datagram's limit).
MAX_DATAGRAM_SIZE = 65535

#: Methods defined by RFC 3261 and its extensions that this stack knows of.
KNOWN_METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)

#: Default reason phrases (RFC 3261 21 and later RFCs in the IANA registry).
REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

_CLASS_REASONS = {
    1: "Trying",
    2: "OK",
    3: "Redirect",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}

#: Headers a response copies from its request (RFC 3261 8.2.6.2), with the
#: names used when writing them.
_RESPONSE_COPIED = {
    "via": "Via",
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "cseq": "CSeq",
}


def _reason_for(status_code: int) -> str:
    return REASON_PHRASES.get(status_code) or _CLASS_REASONS.get(status_code // 100, "Unknown")


def _missing(name: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"missing mandatory header {name}", 400)


class _MessageFields:
    """
    Typed accessors shared by L{Request} and L{Response}.  Each parses the
    current header text (memoised per value), so they stay right after the
    headers are edited.
    """

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if not value:
            raise _missing("Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise _missing("CSeq")
        return CSeq.parse(value)

    @property
    def vias(self) -> List[Via]:
        return [Via.parse(value) for value in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        value = self.headers.get("Via")
        if value is None:
            raise _missing("Via")
        return Via.parse(value)

    @property
    def from_(self) -> NameAddress:
        value = self.headers.get("From")
        if value is None:
            raise _missing("From")
        return NameAddress.parse(value)

    @property
    def to(self) -> NameAddress:
        value = self.headers.get("To")
        if value is None:
            raise _missing("To")
        return NameAddress.parse(value)

    @property
    def contacts(self) -> List[NameAddress]:
        """
        The Contact values; a wildcard C{*} raises, check for it with
        C{headers.get("Contact") == "*"} first (REGISTER only).
        """
        return [NameAddress.parse(value) for value in self.headers.get_all("Contact")]

    @property
    def record_routes(self) -> List[NameAddress]:
        return [NameAddress.parse(value) for value in self.headers.get_all("Record-Route")]

    @property
    def routes(self) -> List[NameAddress]:
        return [NameAddress.parse(value) for value in self.headers.get_all("Route")]

    @property
    def content_type(self) -> Optional[str]:
        """
        The Content-Type value as written (with its parameters), or L{None}.
        """
        return self.headers.get("Content-Type")

    @property
    def media_type(self) -> Optional[str]:
        """
        The Content-Type without parameters, lower case (C{"application/sdp"}).
        """
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip(" \t").lower()

    @property
    def max_forwards(self) -> Optional[int]:
        value = self.headers.get("Max-Forwards")
        return None if value is None else _max_forwards([value])

    def __bytes__(self) -> bytes:
        return self.serialize()

    def serialize(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    length = len(body)
    lines = [start_line]
    wrote_length = False
    for key, name, value in headers._entries:
        if key == "content-length":
            if wrote_length:
                continue
            wrote_length = True
            lines.append(f"{name}: {length}")
        else:
            lines.append(f"{name}: {value}")
    if not wrote_length:
        lines.append(f"Content-Length: {length}")
    lines.append("\r\n")
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    return head + body if body else head


@dataclass(eq=True)
class Request(_MessageFields):
    """
    A SIP request.  C{uri} is an L{AbsoluteURI} only for schemes the stack
    does not implement (which L{validate_request} answers with 416).
    """

    method: str
    uri: URI
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def serialize(self) -> bytes:
        """
        Return the wire form, with Content-Length set from the body.
        """
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)

    def create_response(
        self,
        status_code: int,
        reason: Optional[str] = None,
        to_tag: Optional[str] = None,
        *,
        record_route: bool = False,
    ) -> "Response":
        """
        Build a response to this request per RFC 3261 8.2.6: Via (all values,
        in order), From, To, Call-ID and CSeq are copied, C{to_tag} is added
        to To unless it already has a tag, and a 100 Trying copies Timestamp
        (8.2.6.1).  C{record_route} also copies Record-Route, which a UAS does
        in responses that create a dialog (12.1.1).
        """
        if not 100 <= status_code <= 699:
            raise LocalProtocolError(f"status code {status_code} is not in 100-699")
        if self.method == "ACK":
            raise LocalProtocolError("ACK is never answered (RFC 3261 17.1.1.3)")
        entries = []
        for key, _, value in self.headers._entries:
            name = _RESPONSE_COPIED.get(key)
            if name is None:
                if record_route and key == "record-route":
                    name = "Record-Route"
                elif status_code == 100 and key == "timestamp":
                    name = "Timestamp"
                else:
                    continue
            if key == "to" and to_tag is not None:
                value = _add_tag(value, to_tag)
            entries.append((key, name, value))
        # Written from the body by serialize(); present so that a response
        # built here equals its own parse.
        entries.append(("content-length", "Content-Length", "0"))
        headers = Headers._from_entries(entries)
        return Response(
            status_code, reason if reason is not None else _reason_for(status_code), headers
        )


def _add_tag(to_value: str, tag: str) -> str:
    try:
        address = NameAddress.parse(to_value)
    except RemoteProtocolError:
        return f"{to_value};tag={tag}"
    if address.tag is not None:
        return to_value
    return str(address.with_tag(tag))


@dataclass(eq=True)
class Response(_MessageFields):
    """
    A SIP response.
    """

    status_code: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def serialize(self) -> bytes:
        """
        Return the wire form, with Content-Length set from the body.
        """
        return _serialize(
            f"{self.version} {self.status_code} {self.reason}", self.headers, self.body
        )

    @property
    def is_provisional(self) -> bool:
        return self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


Message = Union[Request, Response]


# -- parsing -------------------------------------------------------------------------


def _guess_method(start_line: str) -> Optional[str]:
    if start_line[:4].upper() == "SIP/":
        return None
    method = start_line.split(" ", 1)[0]
    return method if method and grammar.TOKEN.match(method) else None


def _unfold(entries: List[Tuple[str, str, str]],
            folded: Optional[dict]) -> List[Tuple[str, str, str]]:
    """
    Join the continuation lines collected for each entry (index -> segments) to its value
    with a single SP (RFC 3261 7.3.1); once per message, so a flood of folds is linear.
    """
    if folded:
        for index, segments in folded.items():
            key, name, value = entries[index]
            entries[index] = (key, name, " ".join([value] + segments if value else segments))
    return entries


def _parse_head(head: bytes) -> Tuple[object, ...]:
    """
    Parse a start line and header section (without the final CRLF CRLF).

    @return: C{(start, headers, content_length)} where C{start} is
        C{("request", method, uri, version)} or C{("response", code, reason,
        version)} and C{content_length} is an int or L{None} when absent.
    @raise RemoteProtocolError: with C{headers} and C{request_method} set as
        far as they could be read.
    """
    text = head.decode("utf-8", "surrogateescape")
    crlf = text.count("\r\n")
    lines = text.split("\r\n")
    start_line = lines[0]
    entries: List[Tuple[str, str, str]] = []
    folded: Optional[dict] = None
    try:
        if text.count("\n") != crlf or text.count("\r") != crlf:
            raise RemoteProtocolError("bare CR or LF in the header section", 400)
        # The key cache's own lookup first: a call per line less for every known name.
        known_key, key_of, append = _key_cache.get, canonical_name, entries.append
        for index in range(1, len(lines)):
            line = lines[index]
            if not line:
                raise RemoteProtocolError("empty line inside the header section", 400)
            first = line[0]
            if first == " " or first == "\t":
                # RFC 3261 7.3.1: a line starting with whitespace continues
                # the previous header; the fold is equivalent to one SP.
                if not entries:
                    raise RemoteProtocolError("header section starts with a continuation line", 400)
                segment = line.strip(" \t")
                if segment:
                    if folded is None:
                        folded = {}
                    folded.setdefault(len(entries) - 1, []).append(segment)
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise RemoteProtocolError(f"header line without a colon: {line[:60]!r}", 400)
            name = name.rstrip(" \t")
            append((known_key(name) or key_of(name), name, value.strip(" \t")))
        headers = Headers._from_entries(_unfold(entries, folded))
        folded = None  # joined: an error below must not join them again
        content_length = None
        for key, _, value in entries:
            if key == "content-length":
                if not grammar.DIGITS.match(value):
                    raise RemoteProtocolError(f"Content-Length {value[:20]!r} is not a number", 400)
                number = int(value) if len(value) <= 12 else 10**12
                if content_length is not None and number != content_length:
                    raise RemoteProtocolError("conflicting Content-Length values", 400)
                content_length = number
        start = _parse_start_line(start_line)
    except RemoteProtocolError as exc:
        if exc.headers is None:
            exc.headers = Headers._from_entries(_unfold(entries, folded))
        if exc.request_method is None:
            exc.request_method = _guess_method(start_line)
        raise
    return start, headers, content_length


def _parse_start_line(line: str) -> Tuple[object, ...]:
    if line[:4].upper() == "SIP/":
        match = grammar.STATUS_LINE.match(line)
        if match is None:
            raise RemoteProtocolError(f"malformed status line {line[:80]!r}", 400)
        version, code, reason = match.groups()
        if version.upper() != "SIP/2.0":
            raise RemoteProtocolError(f"unsupported SIP version {version!r}", 505)
        status_code = int(code)
        if not 100 <= status_code <= 699:
            # RFC 4475 3.1.2.19: codes above 699 are dropped like any error.
            raise RemoteProtocolError(f"status code {status_code} out of range", 400)
        reason = reason or ""
        if not grammar.REASON_PHRASE.match(reason):
            raise RemoteProtocolError("control characters in the reason phrase", 400)
        return ("response", status_code, reason, "SIP/2.0")
    match = grammar.REQUEST_LINE.match(line)
    if match is None:
        raise RemoteProtocolError(f"malformed request line {line[:80]!r}", 400)
    method, uri_text, version = match.groups()
    if version.upper() != "SIP/2.0":
        raise RemoteProtocolError(f"unsupported SIP version {version!r}", 505)
    return ("request", method, parse_uri(uri_text), "SIP/2.0")


def _build(start: Tuple[object, ...], headers: Headers, body: bytes) -> Message:
    """
    Make the message and check the fields the transaction layer relies on.
    """
    if start[0] == "request":
        message: Message = Request(start[1], start[2], headers, body, start[3])
    else:
        message = Response(start[1], start[2], headers, body, start[3])
    try:
        for key, _, value in headers._entries:
            if key == "via":
                if "," in value:
                    for element in headers.get_all("Via"):
                        Via.parse(element)
                    break
                Via.parse(value)
            elif key == "cseq":
                CSeq.parse(value)
    except RemoteProtocolError as exc:
        exc.headers = headers
        exc.request_method = start[1] if start[0] == "request" else None
        raise
    return message


def parse_message(data: bytes, max_size: int = MAX_DATAGRAM_SIZE) -> Message:
    """
    Parse one complete message received as a datagram (UDP, or one SIP over
    WebSocket message).

    CRLFs before the start line are skipped (RFC 3261 7.5).  Without
    Content-Length the body is the rest of the datagram (RFC 3261 18.3);
    octets beyond Content-Length are discarded (RFC 4475 3.1.1.8); a
    Content-Length larger than what is left is an error (3.1.2.2).  A datagram
    that ends after a header line without the empty line is accepted as
    having no body.

    @raise RemoteProtocolError: 400 for malformed messages, 505 for another
        SIP version, 413 when C{data} exceeds C{max_size}.
    """
    if len(data) > max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes exceeds {max_size}", 413)
    data = bytes(data)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if len(data) > start + 2 and data.endswith(b"\r\n"):
            end = len(data) - 2
            body_start = len(data)
        else:
            raise RemoteProtocolError("no empty line after the header section", 400)
    else:
        body_start = end + 4
    start_fields, headers, content_length = _parse_head(data[start:end])
    if content_length is None:
        body = data[body_start:]
    else:
        available = len(data) - body_start
        if content_length > available:
            exc = RemoteProtocolError(
                f"Content-Length {content_length} exceeds the {available} bytes that follow", 400
            )
            exc.headers = headers
            exc.request_method = start_fields[1] if start_fields[0] == "request" else None
            raise exc
        body = data[body_start : body_start + content_length]
    return _build(start_fields, headers, body)


# -- rules above the parser ---------------------------------------------------------

_SINGLE_VALUED = ("To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type")
_SINGLE_VALUED_KEYS = frozenset(canonical_name(name) for name in _SINGLE_VALUED)
_REQUIRED_KEYS = frozenset(canonical_name(name) for name in ("To", "From", "Call-ID", "CSeq"))
#: What validate_request reads, gathered in one pass.
_VALIDATED_KEYS = _SINGLE_VALUED_KEYS | {"via", "route", "record-route", "contact", "date"}


def _elements(found: Dict[str, List[str]], key: str) -> List[str]:
    """
    The values of the list header C{key} among C{found}, split as L{Headers.get_all} does.
    """
    elements: List[str] = []
    for value in found.get(key, ()):
        if "," in value:
            elements.extend(split_list(value))
        elif value:
            elements.append(value)
    return elements


def _max_forwards(values: Optional[List[str]]) -> Optional[int]:
    """
    The Max-Forwards number of the first of C{values}, None when absent.

    @raise RemoteProtocolError: not a number (400).
    """
    if values is None:
        return None
    value = values[0].strip(" \t")
    if not grammar.DIGITS.match(value) or len(value) > 10:
        raise RemoteProtocolError(f"malformed Max-Forwards {value[:20]!r}", 400)
    return int(value)


def validate_request(
    request: Request,
    *,
    supported: Optional[Iterable[str]] = None,
    accept: Optional[Iterable[str]] = None,
    for_proxy: bool = False,
    schemes: Iterable[str] = SUPPORTED_SCHEMES,
) -> Optional[int]:
    """
    Return the status code a server should answer C{request} with because it
    breaks a message-level rule, or L{None} if it may be processed.

    Checks, in order (RFC 3261 8.2 for a UAS, 16.3 for a proxy):
      - 400: To, From, Call-ID, CSeq missing or repeated, no Via, other
        single-valued fields repeated (RFC 4475 3.3.1, 3.3.8); malformed
        From, To, Contact, Route, Record-Route, Call-ID, Max-Forwards above
        255 (3.1.2.4, 3.1.2.6, 3.1.2.13-15); CSeq method differing from a
        known request method (3.1.2.17); headers in the Request-URI
        (3.1.2.11); a Date not in GMT (3.1.2.12); a branch that is only the
        magic cookie (3.2.1); a body without Content-Type; a REGISTER whose
        To is not a SIP or SIPS URI when we are the registrar (3.3.4).
      - 501: an unknown method with a CSeq method mismatch (3.1.2.18).
      - 416: a Request-URI scheme not in C{schemes} (3.3.2, 3.3.3).
      - 483: C{for_proxy} and Max-Forwards is 0 (3.3.11, RFC 3261 16.3).
      - 420: an option in Require (or Proxy-Require when C{for_proxy}) that
        is not in C{supported}, when C{supported} is given (3.3.5); see
        L{unsupported_options} for the Unsupported header.
      - 415: C{accept} is given and the body's media type is not in it
        (3.3.6).
    """
    headers = request.headers
    # One pass over the header lines collects every value checked below (a lookup per name
    # scanned the whole header section each time: ~15 scans per request).
    found: Dict[str, List[str]] = {}
    for key, _, value in headers._entries:
        if key in _VALIDATED_KEYS:
            values = found.get(key)
            if values is None:
                found[key] = [value]
            elif key in _SINGLE_VALUED_KEYS:
                return 400
            else:
                values.append(value)
    if not _REQUIRED_KEYS <= found.keys():
        return 400
    contacts = _elements(found, "contact")
    try:
        vias = [Via.parse(value) for value in _elements(found, "via")]
        cseq = CSeq.parse(found["cseq"][0])
        to = NameAddress.parse(found["to"][0])
        max_forwards = _max_forwards(found.get("max-forwards"))
        # Parsed only to find syntax errors (RFC 4475 3.1.2.6, 3.1.2.13-15).
        NameAddress.parse(found["from"][0])
        for key in ("route", "record-route"):
            for value in _elements(found, key):
                NameAddress.parse(value)
        if not contacts or contacts[0] != "*":
            for value in contacts:
                NameAddress.parse(value)
    except RemoteProtocolError as exc:
        return exc.status_hint
    if not vias:
        return 400
    if not grammar.CALL_ID.match(found["call-id"][0]):
        return 400
    if cseq.method != request.method:
        return 400 if request.method in KNOWN_METHODS else 501
    if max_forwards is not None and max_forwards > 255:
        return 400
    if vias[0].branch == MAGIC_COOKIE:
        return 400
    date = found.get("date")
    if date is not None and not grammar.SIP_DATE.match(date[0]):
        return 400
    if request.body and "content-type" not in found:
        return 400
    if contacts and contacts[0] == "*" and (request.method != "REGISTER" or len(contacts) != 1):
        return 400
    uri = request.uri
    scheme_ok = isinstance(uri, SIPURI) and uri.scheme in frozenset(schemes)
    if scheme_ok and uri.headers:
        return 400
    if (
        request.method == "REGISTER"
        and not for_proxy
        and not (isinstance(to.uri, SIPURI) and to.uri.scheme in ("sip", "sips"))
    ):
        return 400
    if not scheme_ok:
        return 416
    if for_proxy and max_forwards == 0:
        return 483
    if supported is not None and unsupported_options(request, supported, for_proxy=for_proxy):
        return 420
    if accept is not None and request.body:
        accepted = {value.strip().lower() for value in accept}
        if request.media_type not in accepted:
            return 415
    return None


def option_tags(message: Message, header: str) -> Set[str]:
    """
    The option tags a Require, Supported or Proxy-Require header lists, lower case.
    """
    return {tag.strip().lower() for tag in message.headers.get_all(header) if tag.strip()}


def unsupported_options(
    request: Request, supported: Iterable[str], *, for_proxy: bool = False
) -> List[str]:
    """
    Return the option tags of Require (Proxy-Require when C{for_proxy}) that
    are not in C{supported}, for the Unsupported header of a 420 response
    (RFC 3261 8.2.2.3, 16.3).  ACK and CANCEL never fail this check.
    """
    if request.method in ("ACK", "CANCEL") and not for_proxy:
        return []
    known = {option.lower() for option in supported}
    name = "Proxy-Require" if for_proxy else "Require"
    return [option for option in request.headers.get_all(name) if option.lower() not in known]


def error_response(
    error: RemoteProtocolError, to_tag: Optional[str] = None, reason: Optional[str] = None
) -> Optional[Response]:
    """
    Build the response that answers a request the parser rejected, from the
    headers it managed to read (RFC 3261 8.2.6.2).

    @return: a response with C{error.status_hint}, or L{None} when no answer
        can or may be sent: the message was a response or an ACK, or Via,
        From, To, Call-ID or CSeq are missing.
    """
    headers = error.headers
    if headers is None or error.request_method is None or error.request_method == "ACK":
        return None
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in headers:
            return None
    request = Request(error.request_method, AbsoluteURI("invalid", "request"), headers)
    status = error.status_hint if 300 <= error.status_hint <= 699 else 400
    return request.create_response(
        status, reason or str(error)[:120].replace("\r", " ").replace("\n", " "), to_tag
    )


# -- identifiers --------------------------------------------------------------------

#: Either an object with C{getrandbits(k)} (C{random.Random},
#: C{random.SystemRandom}) or a callable returning C{n} random bytes.
RandomSource = Union[Callable[[int], bytes], object]


def _random_bits(rng: RandomSource, bits: int) -> int:
    getrandbits = getattr(rng, "getrandbits", None)
    if getrandbits is not None:
        return getrandbits(bits)
    if callable(rng):
        data = rng((bits + 7) // 8)
        return int.from_bytes(data, "big") & ((1 << bits) - 1)
    raise LocalProtocolError("a random source needs getrandbits() or must be callable")


def _token(rng: RandomSource, bits: int) -> str:
    return "%0*x" % ((bits + 3) // 4, _random_bits(rng, bits))


def new_branch(rng: RandomSource) -> str:
    """
    Return a new RFC 3261 branch: the magic cookie and 64 random bits.
    """
    return MAGIC_COOKIE + _token(rng, 64)


def new_tag(rng: RandomSource) -> str:
    """
    Return a new From/To tag with 64 random bits (RFC 3261 19.3 asks for 32).
    """
    return _token(rng, 64)


def initial_cseq(rng: RandomSource) -> int:
    """
    Return a first CSeq number for a new call leg: random, non-zero and well
    below 2**31 so it can grow (RFC 3261 8.1.1.5).
    """
    return _random_bits(rng, 30) + 1


def new_call_id(rng: RandomSource, host: Optional[str] = None) -> str:
    """
    Return a new Call-ID with 96 random bits, C{@host} appended if given.
    """
    value = _token(rng, 96)
    return f"{value}@{host}" if host else value
