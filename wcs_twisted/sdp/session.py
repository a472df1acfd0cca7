# -*- test-case-name: tests.sdp.test_session -*-
"""
Session descriptions (RFC 8866, formerly RFC 4566) as typed, editable values.

Both legs of a call speak SDP: the browser sends WebRTC offers, SIP phones
send plain RTP/AVP ones, and the gateway has to read, compare and write
both.  This module parses the text once into L{SessionDescription} and
L{MediaDescription} objects and writes them back.  It is sans-I/O and uses
the standard library only.

Round-tripping: every line is kept.  Attribute lines keep their order and
their exact text, so C{str(SessionDescription.parse(text)) == text} for any
description whose lines come in the RFC order (which is what real stacks
emit) with CRLF endings.  The parser accepts LF endings, trailing blanks,
blank lines and unknown line types (kept and written at the end of their
section); it rejects a missing or late C{v=}, a missing C{o=}, malformed
C{o=}/C{c=}/C{b=}/C{t=}/C{m=} lines and session-only lines inside a media
section, raising L{SDPError} (status hint 488).

Typed views (codecs, direction, ICE, DTLS, candidates, SSRCs, groups) are
computed from the attribute list on demand, so parsing stays cheap and the
attribute list remains the single source of truth.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from wcs_twisted.sdp.errors import SDPError

__all__ = [
    "MAX_SDP_SIZE",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Codec",
    "Connection",
    "Direction",
    "Fingerprint",
    "Group",
    "MediaDescription",
    "Origin",
    "SSRCAttribute",
    "SSRCGroup",
    "SessionDescription",
    "Timing",
    "format_fmtp",
    "parse_fmtp",
]

#: Largest description we accept, in characters.  A Chrome offer with
#: simulcast is about 10 kB; SIP over UDP cannot carry more than 64 kB.
MAX_SDP_SIZE = 65536

#: RFC 3551 static payload types: payload type -> (encoding, clock, channels).
STATIC_PAYLOAD_TYPES: Mapping[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, None),
    3: ("GSM", 8000, None),
    4: ("G723", 8000, None),
    5: ("DVI4", 8000, None),
    6: ("DVI4", 16000, None),
    7: ("LPC", 8000, None),
    8: ("PCMA", 8000, None),
    9: ("G722", 8000, None),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, None),
    12: ("QCELP", 8000, None),
    13: ("CN", 8000, None),
    14: ("MPA", 90000, None),
    15: ("G728", 8000, None),
    16: ("DVI4", 11025, None),
    17: ("DVI4", 22050, None),
    18: ("G729", 8000, None),
    25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None),
    28: ("nv", 90000, None),
    31: ("H261", 90000, None),
    32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None),
    34: ("H263", 90000, None),
}

_DIRECTION_NAMES = frozenset(("sendrecv", "sendonly", "recvonly", "inactive"))
# Lines that may only appear before the first m= line (RFC 8866 section 5).
_SESSION_ONLY = frozenset("vosuepztr")


def _bad(message: str) -> SDPError:
    return SDPError(message, 488)


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise _bad(f"invalid {what}: {text!r}")
    return int(text)


class Direction(enum.StrEnum):
    """
    Media direction attribute (RFC 8866 section 6.7, RFC 3264 section 5.1),
    always from the point of view of the party that wrote the SDP.
    """

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, send: bool, receive: bool) -> "Direction":
        """
        The direction that sends iff C{send} and receives iff C{receive}.
        """
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE

    @property
    def sends(self) -> bool:
        """
        Whether the writer of the SDP will send media.
        """
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """
        Whether the writer of the SDP wants to receive media.
        """
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reverse(self) -> "Direction":
        """
        The same stream seen from the other party (sendonly <-> recvonly).
        """
        return Direction.from_flags(self.receives, self.sends)

    def intersect(self, other: "Direction") -> "Direction":
        """
        The direction allowed by both C{self} and C{other}.
        """
        return Direction.from_flags(self.sends and other.sends, self.receives and other.receives)


@dataclass(frozen=True, slots=True)
class Attribute:
    """
    One C{a=} line: C{a=name} (a property, C{value} is None) or
    C{a=name:value} (C{value} kept verbatim, even if it starts with a blank).
    """

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Attribute":
        """
        Parse the text after C{a=}.
        """
        name, sep, value = text.partition(":")
        if not name:
            raise _bad(f"invalid attribute line: a={text!r}")
        return cls(name, value if sep else None)

    def __str__(self) -> str:
        if self.value is None:
            return self.name
        return f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Origin:
    """
    The C{o=} line: who created the description and which version it is.
    C{session_id} is kept as text so that any digits round-trip; the version
    is an integer because RFC 3264 section 8 increments it.
    """

    username: str = "-"
    session_id: str = "0"
    session_version: int = 0
    net_type: str = "IN"
    address_type: str = "IP4"
    address: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str) -> "Origin":
        """
        Parse the text after C{o=}.
        """
        parts = text.split()
        if len(parts) != 6:
            raise _bad(f"invalid origin line: o={text!r}")
        return cls(
            parts[0],
            parts[1],
            _int(parts[2], "origin session version"),
            parts[3],
            parts[4],
            parts[5],
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """
    A C{c=} line.  C{ttl} and C{count} are the multicast suffixes
    (C{/ttl/count} for IP4, C{/count} for IP6).
    """

    net_type: str = "IN"
    address_type: str = "IP4"
    address: str = "0.0.0.0"
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def for_address(cls, address: str) -> "Connection":
        """
        A unicast C{IN IP4} or C{IN IP6} connection for C{address}.
        """
        return cls("IN", "IP6" if ":" in address else "IP4", address)

    @classmethod
    def parse(cls, text: str) -> "Connection":
        """
        Parse the text after C{c=}.
        """
        parts = text.split()
        if len(parts) != 3:
            raise _bad(f"invalid connection line: c={text!r}")
        net_type, address_type, address = parts
        ttl = count = None
        if "/" in address:
            address, *suffix = address.split("/")
            if not address or len(suffix) > 2:
                raise _bad(f"invalid connection address: c={text!r}")
            numbers = [_int(s, "connection address suffix") for s in suffix]
            if address_type.upper() == "IP6":
                if len(numbers) != 1:
                    raise _bad(f"invalid connection address: c={text!r}")
                count = numbers[0]
            else:
                ttl = numbers[0]
                if len(numbers) == 2:
                    count = numbers[1]
        return cls(net_type, address_type, address, ttl, count)

    @property
    def is_unspecified(self) -> bool:
        """
        Whether the address is C{0.0.0.0} or C{::} (no address).
        """
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.count is not None:
            address += f"/{self.count}"
        return f"{self.net_type} {self.address_type} {address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """
    A C{b=} line such as C{AS:64} or C{TIAS:128000}.
    """

    bwtype: str
    bandwidth: int

    @classmethod
    def parse(cls, text: str) -> "Bandwidth":
        """
        Parse the text after C{b=}.
        """
        bwtype, sep, value = text.partition(":")
        if not sep or not bwtype:
            raise _bad(f"invalid bandwidth line: b={text!r}")
        return cls(bwtype, _int(value.strip(), "bandwidth"))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class Timing:
    """
    A C{t=} line with the C{r=} lines that follow it (kept as text: they
    may use typed times such as C{7d}).
    """

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> "Timing":
        """
        Parse the text after C{t=}.
        """
        parts = text.split()
        if len(parts) != 2:
            raise _bad(f"invalid timing line: t={text!r}")
        return cls(_int(parts[0], "start time"), _int(parts[1], "stop time"))


@dataclass(frozen=True, slots=True)
class Group:
    """
    An RFC 5888 C{a=group} attribute, e.g. C{BUNDLE 0 1}.
    """

    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "Group":
        """
        Parse the value of an C{a=group} attribute.
        """
        parts = text.split()
        if not parts:
            raise _bad("empty group attribute")
        return cls(parts[0], tuple(parts[1:]))

    def __str__(self) -> str:
        return " ".join((self.semantics,) + self.mids)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """
    An RFC 8122 C{a=fingerprint} attribute (hash name and hex value).
    """

    algorithm: str
    value: str

    @classmethod
    def parse(cls, text: str) -> "Fingerprint":
        """
        Parse the value of an C{a=fingerprint} attribute.
        """
        parts = text.split()
        if len(parts) != 2:
            raise _bad(f"invalid fingerprint: {text!r}")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """
    An ICE candidate attribute (RFC 8839 section 5.1).
    C{extensions} holds the trailing name/value pairs in order
    (C{generation}, C{network-id}, C{tcptype}, ...).
    """

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        """
        Parse the value of an C{a=candidate} attribute.
        """
        parts = text.split()
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2:
            raise _bad(f"invalid candidate: {text!r}")
        related_address = related_port = None
        extensions = []
        for i in range(8, len(parts), 2):
            name, value = parts[i], parts[i + 1]
            if name == "raddr":
                related_address = value
            elif name == "rport":
                related_port = _int(value, "candidate rport")
            else:
                extensions.append((name, value))
        return cls(
            parts[0],
            _int(parts[1], "candidate component"),
            parts[2],
            _int(parts[3], "candidate priority"),
            parts[4],
            _int(parts[5], "candidate port"),
            parts[7],
            related_address,
            related_port,
            tuple(extensions),
        )

    def __str__(self) -> str:
        text = (
            f"{self.foundation} {self.component} {self.transport} "
            f"{self.priority} {self.address} {self.port} typ {self.type}"
        )
        if self.related_address is not None:
            text += f" raddr {self.related_address}"
        if self.related_port is not None:
            text += f" rport {self.related_port}"
        for name, value in self.extensions:
            text += f" {name} {value}"
        return text


@dataclass(frozen=True, slots=True)
class SSRCAttribute:
    """
    An RFC 5576 C{a=ssrc:<ssrc> <attribute>[:<value>]} line.
    """

    ssrc: int
    attribute: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> "SSRCAttribute":
        """
        Parse the value of an C{a=ssrc} attribute.
        """
        ssrc, _, rest = text.partition(" ")
        name, sep, value = rest.partition(":")
        if not name:
            raise _bad(f"invalid ssrc attribute: {text!r}")
        return cls(_int(ssrc, "ssrc"), name, value if sep else None)

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.ssrc} {self.attribute}"
        return f"{self.ssrc} {self.attribute}:{self.value}"


@dataclass(frozen=True, slots=True)
class SSRCGroup:
    """
    An RFC 5576 C{a=ssrc-group} line, e.g. C{FID 1 2}.
    """

    semantics: str
    ssrcs: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> "SSRCGroup":
        """
        Parse the value of an C{a=ssrc-group} attribute.
        """
        parts = text.split()
        if not parts:
            raise _bad("empty ssrc-group attribute")
        return cls(parts[0], tuple(_int(p, "ssrc") for p in parts[1:]))

    def __str__(self) -> str:
        return " ".join([self.semantics] + [str(s) for s in self.ssrcs])


def parse_fmtp(text: str) -> dict[str, str | None]:
    """
    Split format parameters (C{"minptime=10;useinbandfec=1"}) into an
    ordered dict.  Items without C{=} (C{"0-15"}, C{"111/111"}) map to None.
    """
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        params[key.strip()] = value.strip() if sep else None
    return params


def format_fmtp(params: Mapping[str, str | None]) -> str:
    """
    The inverse of L{parse_fmtp}.
    """
    return ";".join(k if v is None else f"{k}={v}" for k, v in params.items())


@dataclass(frozen=True)
class Codec:
    """
    One RTP payload format of a media description, assembled from the
    C{m=} format list and the C{rtpmap}, C{fmtp} and C{rtcp-fb} attributes.

    @ivar payload_type: the RTP payload type number (0-127).
    @ivar name: encoding name as written (C{"opus"}, C{"PCMU"}); compare
        it case-insensitively.
    @ivar clock_rate: RTP clock rate in Hz.
    @ivar channels: audio channel count, or None when the rtpmap has none
        (which means one channel for audio).
    @ivar parameters: the C{fmtp} parameters in order; treat as read-only.
    @ivar rtcp_fb: the C{rtcp-fb} values for this payload type, including
        those given with the C{*} wildcard, e.g. C{("nack", "nack pli")}.
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    parameters: dict[str, str | None] = field(default_factory=dict, hash=False)
    rtcp_fb: tuple[str, ...] = ()

    @property
    def encoding(self) -> str:
        """
        The lower-case encoding name, for comparisons.
        """
        return self.name.lower()

    @property
    def channel_count(self) -> int:
        """
        The number of channels, with the RFC 8866 default of one.
        """
        return 1 if self.channels is None else self.channels

    @property
    def rtpmap(self) -> str:
        """
        The encoding part of the rtpmap, e.g. C{"opus/48000/2"}.
        """
        if self.channels is None:
            return f"{self.name}/{self.clock_rate}"
        return f"{self.name}/{self.clock_rate}/{self.channels}"

    @property
    def fmtp(self) -> str:
        """
        The parameters formatted for an C{a=fmtp} line (may be empty).
        """
        return format_fmtp(self.parameters)

    def same_format(self, other: "Codec") -> bool:
        """
        Whether both describe the same encoding, clock rate and channel
        count (payload type and parameters are not compared).
        """
        return (
            self.encoding == other.encoding
            and self.clock_rate == other.clock_rate
            and self.channel_count == other.channel_count
        )

    def __str__(self) -> str:
        return f"{self.payload_type} {self.rtpmap}"


class _AttributeList:
    """
    Attribute access shared by the session and media levels.  Subclasses
    have an C{attributes} list of L{Attribute}.
    """

    attributes: list[Attribute]

    def get_attribute(self, name: str) -> str | None:
        """
        The value of the first attribute called C{name}; None if absent or
        a property attribute (use L{has_attribute} to tell them apart).
        """
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value
        return None

    def get_attributes(self, name: str) -> list[str | None]:
        """
        The values of every attribute called C{name}, in order.
        """
        return [a.value for a in self.attributes if a.name == name]

    def has_attribute(self, name: str) -> bool:
        """
        Whether at least one attribute is called C{name}.
        """
        return any(a.name == name for a in self.attributes)

    def add_attribute(self, name: str, value: str | None = None) -> None:
        """
        Append C{a=name[:value]}.
        """
        self.attributes.append(Attribute(name, value))

    def remove_attribute(self, name: str) -> int:
        """
        Remove every attribute called C{name}; return how many there were.
        """
        before = len(self.attributes)
        self.attributes = [a for a in self.attributes if a.name != name]
        return before - len(self.attributes)

    def set_attribute(self, name: str, value: str | None = None) -> None:
        """
        Make C{a=name[:value]} the only attribute called C{name}, at the
        position of the first existing one (or at the end).
        """
        self._replace({name}, [Attribute(name, value)])

    def _replace(self, names: set[str] | frozenset[str], new: list[Attribute]) -> None:
        """
        Remove the attributes whose names are in C{names} and put C{new} where
        the first of them was, or at the end.
        """
        kept: list[Attribute] = []
        position = None
        for attribute in self.attributes:
            if attribute.name in names:
                if position is None:
                    position = len(kept)
            else:
                kept.append(attribute)
        if position is None:
            position = len(kept)
        kept[position:position] = new
        self.attributes = kept

    @property
    def direction(self) -> Direction | None:
        """
        The direction attribute written at this level (the last one wins),
        or None when there is none.
        """
        found = None
        for attribute in self.attributes:
            if attribute.name in _DIRECTION_NAMES and attribute.value is None:
                found = attribute.name
        return None if found is None else Direction(found)

    @direction.setter
    def direction(self, value: Direction | None) -> None:
        self._replace(_DIRECTION_NAMES, [] if value is None else [Attribute(str(value))])

    @property
    def ice_ufrag(self) -> str | None:
        """
        The C{a=ice-ufrag} value at this level.
        """
        return self.get_attribute("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        """
        The C{a=ice-pwd} value at this level.
        """
        return self.get_attribute("ice-pwd")

    @property
    def ice_options(self) -> tuple[str, ...]:
        """
        The C{a=ice-options} tokens at this level (e.g. C{("trickle",)}).
        """
        tokens: list[str] = []
        for value in self.get_attributes("ice-options"):
            tokens.extend((value or "").split())
        return tuple(tokens)

    @property
    def ice_lite(self) -> bool:
        """
        Whether C{a=ice-lite} is present at this level.
        """
        return self.has_attribute("ice-lite")

    @property
    def fingerprints(self) -> list[Fingerprint]:
        """
        The RFC 8122 certificate fingerprints at this level.
        """
        return [
            Fingerprint.parse(a.value or "") for a in self.attributes if a.name == "fingerprint"
        ]

    @property
    def setup(self) -> str | None:
        """
        The RFC 4145 C{a=setup} role (actpass, active, passive, holdconn).
        """
        return self.get_attribute("setup")


def _check_port(text: str) -> tuple[int, int | None]:
    port_text, sep, count_text = text.partition("/")
    port = _int(port_text, "media port")
    if port > 65535:
        raise _bad(f"media port out of range: {port}")
    count = _int(count_text, "media port count") if sep else None
    return port, count


@dataclass
class MediaDescription(_AttributeList):
    """
    One media section: the C{m=} line and the C{i=}, C{c=}, C{b=}, C{k=}
    and C{a=} lines that follow it.

    @ivar kind: the media type (C{audio}, C{video}, C{application}, ...).
    @ivar port: transport port; 0 means the stream is rejected/disabled.
    @ivar proto: transport protocol (C{RTP/AVP}, C{UDP/TLS/RTP/SAVPF}, ...).
    @ivar fmt: the format list as text (payload types for RTP).
    @ivar port_count: the C{/<n>} suffix of the port, if any.
    @ivar other_lines: lines of unknown type, as C{(letter, value)}.
    """

    kind: str
    port: int
    proto: str
    fmt: list[str] = field(default_factory=list)
    port_count: int | None = None
    information: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def _parse_media_line(cls, text: str) -> "MediaDescription":
        parts = text.split()
        if len(parts) < 3:
            raise _bad(f"invalid media line: m={text!r}")
        port, count = _check_port(parts[1])
        if len(parts) == 3 and port != 0:
            raise _bad(f"media line has no formats: m={text!r}")
        return cls(parts[0], port, parts[2], parts[3:], count)

    def _lines(self, out: list[str]) -> None:
        port = str(self.port)
        if self.port_count is not None:
            port += f"/{self.port_count}"
        out.append(" ".join(["m=" + self.kind, port, self.proto] + self.fmt))
        if self.information is not None:
            out.append("i=" + self.information)
        for connection in self.connections:
            out.append(f"c={connection}")
        for bandwidth in self.bandwidths:
            out.append(f"b={bandwidth}")
        if self.key is not None:
            out.append("k=" + self.key)
        for attribute in self.attributes:
            if attribute.value is None:
                out.append("a=" + attribute.name)
            else:
                out.append(f"a={attribute.name}:{attribute.value}")
        for letter, value in self.other_lines:
            out.append(f"{letter}={value}")

    def __str__(self) -> str:
        out: list[str] = []
        self._lines(out)
        return "\r\n".join(out) + "\r\n"

    def copy(self) -> "MediaDescription":
        """
        An independent copy (attribute values are immutable and shared).
        """
        return copy.deepcopy(self)

    # -- transport ---------------------------------------------------------

    @property
    def is_rtp(self) -> bool:
        """
        Whether the transport is an RTP profile (so C{fmt} are payload types).
        """
        return "RTP/" in self.proto.upper()

    @property
    def connection(self) -> Connection | None:
        """
        The first media-level C{c=} line, if any.
        """
        return self.connections[0] if self.connections else None

    @connection.setter
    def connection(self, value: Connection | None) -> None:
        self.connections = [] if value is None else [value]

    @property
    def mid(self) -> str | None:
        """
        The RFC 5888 media identifier.
        """
        return self.get_attribute("mid")

    @property
    def rtcp_mux(self) -> bool:
        """
        Whether RFC 5761 C{a=rtcp-mux} is present.
        """
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp_port(self) -> int | None:
        """
        The port of an RFC 3605 C{a=rtcp} attribute, if present.
        """
        value = self.get_attribute("rtcp")
        if value is None:
            return None
        port, _ = _check_port(value.split(" ", 1)[0])
        return port

    @property
    def rtcp_address(self) -> str | None:
        """
        The address of an RFC 3605 C{a=rtcp} attribute, if it has one.
        """
        value = self.get_attribute("rtcp")
        parts = (value or "").split()
        return parts[3] if len(parts) == 4 else None

    @property
    def ptime(self) -> int | None:
        """
        The C{a=ptime} packet time in milliseconds (fractions truncated).
        """
        return self._number("ptime")

    @property
    def maxptime(self) -> int | None:
        """
        The C{a=maxptime} value in milliseconds.
        """
        return self._number("maxptime")

    def _number(self, name: str) -> int | None:
        value = self.get_attribute(name)
        if value is None:
            return None
        whole = value.strip().split(".", 1)[0]
        return _int(whole, name)

    @property
    def candidates(self) -> list[Candidate]:
        """
        The ICE candidates, in order.
        """
        return [Candidate.parse(a.value or "") for a in self.attributes if a.name == "candidate"]

    @property
    def end_of_candidates(self) -> bool:
        """
        Whether C{a=end-of-candidates} is present.
        """
        return self.has_attribute("end-of-candidates")

    @property
    def ssrcs(self) -> list[SSRCAttribute]:
        """
        The RFC 5576 C{a=ssrc} lines, in order.
        """
        return [SSRCAttribute.parse(a.value or "") for a in self.attributes if a.name == "ssrc"]

    @property
    def ssrc_groups(self) -> list[SSRCGroup]:
        """
        The RFC 5576 C{a=ssrc-group} lines, in order.
        """
        return [SSRCGroup.parse(a.value or "") for a in self.attributes if a.name == "ssrc-group"]

    @property
    def msid(self) -> str | None:
        """
        The RFC 8830 C{a=msid} value.
        """
        return self.get_attribute("msid")

    # -- codecs ------------------------------------------------------------

    @property
    def codecs(self) -> list[Codec]:
        """
        The RTP payload formats in C{m=} order.  Static payload types without
        an rtpmap get their RFC 3551 meaning; dynamic ones without an rtpmap
        are unusable and left out.  Empty for non-RTP media.
        """
        if not self.is_rtp:
            return []
        rtpmaps: dict[str, tuple[str, int, int | None]] = {}
        fmtps: dict[str, str] = {}
        feedback: dict[str, list[str]] = {}
        for attribute in self.attributes:
            name = attribute.name
            if name == "rtpmap":
                pt, encoding = _split_format_attribute(attribute)
                rtpmaps[pt] = _parse_rtpmap(encoding, attribute)
            elif name == "fmtp":
                pt, params = _split_format_attribute(attribute)
                fmtps[pt] = params
            elif name == "rtcp-fb":
                pt, value = _split_format_attribute(attribute)
                feedback.setdefault(pt, []).append(value)
        wildcard = feedback.get("*", [])
        codecs = []
        for pt_text in self.fmt:
            payload_type = _int(pt_text, "payload type")
            if payload_type > 127:
                raise _bad(f"payload type out of range: {payload_type}")
            mapping = rtpmaps.get(pt_text)
            if mapping is None:
                mapping = STATIC_PAYLOAD_TYPES.get(payload_type)
                if mapping is None:
                    continue
            name, clock_rate, channels = mapping
            codecs.append(
                Codec(
                    payload_type,
                    name,
                    clock_rate,
                    channels,
                    parse_fmtp(fmtps.get(pt_text, "")),
                    tuple(feedback.get(pt_text, [])) + tuple(wildcard),
                )
            )
        return codecs

    def codec(self, payload_type: int) -> Codec | None:
        """
        The codec for C{payload_type}, or None.
        """
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None

    def set_codecs(self, codecs: Iterable[Codec]) -> None:
        """
        Replace the format list and the rtpmap/fmtp/rtcp-fb attributes with
        C{codecs} (written in order; rtpmap lines are written for static
        payload types too).
        """
        codecs = list(codecs)
        self.fmt = [str(c.payload_type) for c in codecs]
        new = []
        for codec in codecs:
            new.append(Attribute("rtpmap", f"{codec.payload_type} {codec.rtpmap}"))
            for feedback in codec.rtcp_fb:
                new.append(Attribute("rtcp-fb", f"{codec.payload_type} {feedback}"))
            if codec.parameters:
                new.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
        self._replace({"rtpmap", "fmtp", "rtcp-fb"}, new)

    @property
    def telephone_events(self) -> list[Codec]:
        """
        The RFC 4733 C{telephone-event} payload formats (one per clock rate).
        """
        return [c for c in self.codecs if c.encoding == "telephone-event"]


def _split_format_attribute(attribute: Attribute) -> tuple[str, str]:
    pt, _, rest = (attribute.value or "").partition(" ")
    if not pt:
        raise _bad(f"invalid {attribute.name} attribute: {attribute.value!r}")
    return pt, rest.strip()


def _parse_rtpmap(text: str, attribute: Attribute) -> tuple[str, int, int | None]:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit():
        raise _bad(f"invalid rtpmap attribute: {attribute.value!r}")
    channels = None
    if len(parts) == 3:
        if not parts[2].isdigit():
            raise _bad(f"invalid rtpmap attribute: {attribute.value!r}")
        channels = int(parts[2])
    return parts[0], int(parts[1]), channels


@dataclass
class SessionDescription(_AttributeList):
    """
    A whole session description: the session-level lines and the media
    sections in order.  Parse with L{parse}; write with C{str()} (CRLF line
    endings) or C{bytes()}.
    """

    version: int = 0
    origin: Origin = field(default_factory=Origin)
    name: str | None = "-"
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=list)
    time_zones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: str | bytes) -> "SessionDescription":
        """
        Parse a session description.

        @param data: the text, or the bytes of a SIP body (UTF-8; other
            bytes survive a round trip through C{bytes()}).
        @raise SDPError: for the structural errors listed in the module
            docstring.
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8", "surrogateescape")
        if len(data) > MAX_SDP_SIZE:
            raise _bad(f"session description longer than {MAX_SDP_SIZE} characters")
        session = None
        section: _AttributeList | None = None
        media: MediaDescription | None = None
        seen: set[str] = set()
        for raw in data.split("\n"):
            line = raw.rstrip(" \t\r")
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise _bad(f"invalid SDP line: {line[:80]!r}")
            letter = line[0]
            value = line[2:]
            if letter == "a":
                if section is None:
                    raise _bad("session description does not start with v=")
                name, sep, attr_value = value.partition(":")
                if not name:
                    raise _bad(f"invalid attribute line: {line[:80]!r}")
                section.attributes.append(Attribute(name, attr_value if sep else None))
                continue
            if session is None:
                if letter != "v":
                    raise _bad("session description does not start with v=")
                if value.strip() != "0":
                    raise _bad(f"unsupported SDP version: v={value!r}")
                session = cls(version=0, name=None)
                section = session
                seen.add("v")
                continue
            if letter == "m":
                media = MediaDescription._parse_media_line(value)
                session.media.append(media)
                section = media
                continue
            if media is None:
                if letter in seen and letter in "vosuikz":
                    raise _bad(f"duplicate {letter}= line")
                seen.add(letter)
                if letter == "o":
                    session.origin = Origin.parse(value)
                elif letter == "s":
                    # RFC 8866 recommends "s= " for an unnamed session; keep
                    # that single blank although other trailing blanks go.
                    session.name = value if value or raw[2:3] != " " else " "
                elif letter == "i":
                    session.information = value
                elif letter == "u":
                    session.uri = value
                elif letter == "e":
                    session.emails.append(value)
                elif letter == "p":
                    session.phones.append(value)
                elif letter == "c":
                    if session.connection is not None:
                        raise _bad("duplicate session-level c= line")
                    session.connection = Connection.parse(value)
                elif letter == "b":
                    session.bandwidths.append(Bandwidth.parse(value))
                elif letter == "t":
                    session.timing.append(Timing.parse(value))
                elif letter == "r":
                    if not session.timing:
                        raise _bad("r= line without a preceding t= line")
                    session.timing[-1].repeats.append(value)
                elif letter == "z":
                    session.time_zones = value
                elif letter == "k":
                    session.key = value
                elif letter == "v":
                    raise _bad("duplicate v= line")
                else:
                    session.other_lines.append((letter, value))
            else:
                if letter == "c":
                    media.connections.append(Connection.parse(value))
                elif letter == "b":
                    media.bandwidths.append(Bandwidth.parse(value))
                elif letter == "i":
                    media.information = value
                elif letter == "k":
                    media.key = value
                elif letter in _SESSION_ONLY:
                    raise _bad(f"{letter}= line inside a media description")
                else:
                    media.other_lines.append((letter, value))
        if session is None:
            raise _bad("empty session description")
        if "o" not in seen:
            raise _bad("session description has no o= line")
        return session

    def _lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}"]
        if self.name is not None:
            out.append("s=" + self.name)
        if self.information is not None:
            out.append("i=" + self.information)
        if self.uri is not None:
            out.append("u=" + self.uri)
        out.extend("e=" + e for e in self.emails)
        out.extend("p=" + p for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for timing in self.timing:
            out.append(f"t={timing.start} {timing.stop}")
            out.extend("r=" + r for r in timing.repeats)
        if self.time_zones is not None:
            out.append("z=" + self.time_zones)
        if self.key is not None:
            out.append("k=" + self.key)
        for attribute in self.attributes:
            if attribute.value is None:
                out.append("a=" + attribute.name)
            else:
                out.append(f"a={attribute.name}:{attribute.value}")
        for letter, value in self.other_lines:
            out.append(f"{letter}={value}")
        for media in self.media:
            media._lines(out)
        return out

    def __str__(self) -> str:
        return "\r\n".join(self._lines()) + "\r\n"

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", "surrogateescape")

    def copy(self) -> "SessionDescription":
        """
        An independent copy that can be edited without touching this one.
        """
        return copy.deepcopy(self)

    # -- session-level views -----------------------------------------------

    @property
    def groups(self) -> list[Group]:
        """
        The RFC 5888 C{a=group} attributes.
        """
        return [Group.parse(a.value or "") for a in self.attributes if a.name == "group"]

    @property
    def bundle_groups(self) -> list[tuple[str, ...]]:
        """
        The mids of each RFC 8843 BUNDLE group.
        """
        return [g.mids for g in self.groups if g.semantics.upper() == "BUNDLE"]

    def media_by_mid(self, mid: str) -> MediaDescription | None:
        """
        The media section whose C{a=mid} is C{mid}.
        """
        for media in self.media:
            if media.mid == mid:
                return media
        return None

    def __iter__(self) -> Iterator[MediaDescription]:
        return iter(self.media)

    # -- values that fall back from media to session level -----------------

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """
        The connection that applies to C{media}: its own first C{c=} line or
        the session-level one.
        """
        if media.connections:
            return media.connections[0]
        return self.connection

    def attribute_for(self, media: MediaDescription, name: str) -> str | None:
        """
        The value of attribute C{name} for C{media}, falling back to the
        session level (used for ICE credentials, fingerprint and setup,
        which Firefox and some SIP stacks write at session level).
        """
        if media.has_attribute(name):
            return media.get_attribute(name)
        return self.get_attribute(name)

    def fingerprints_for(self, media: MediaDescription) -> list[Fingerprint]:
        """
        The fingerprints that apply to C{media} (media level, else session).
        """
        return media.fingerprints or self.fingerprints

    def uses_ice(self, media: MediaDescription) -> bool:
        """
        Whether ICE credentials apply to C{media} at either level.
        """
        return media.ice_ufrag is not None or self.ice_ufrag is not None

    def direction_for(self, media: MediaDescription) -> Direction:
        """
        The effective direction of C{media} as written by the author of this
        description: the media-level attribute, else the session-level one,
        else sendrecv (RFC 3264 section 5.1).  A legacy RFC 2543 hold, a
        connection address of 0.0.0.0 on a stream that does not use ICE,
        means "do not send to me" and removes the receive half (RFC 3264
        section 8.4).  WebRTC offers carry C{c=IN IP4 0.0.0.0} before ICE
        gathering, which is why ICE streams are exempt.
        """
        direction = media.direction or self.direction or Direction.SENDRECV
        connection = self.connection_for(media)
        if connection is not None and connection.address == "0.0.0.0" and not self.uses_ice(media):
            direction = direction.intersect(Direction.SENDONLY)
        return direction
