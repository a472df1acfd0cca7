# -*- test-case-name: tests.sdp.test_session -*-
"""
The typed values of single SDP lines and attributes (RFC 8866, RFC 8839 ICE, RFC 8122
fingerprints, RFC 5576 SSRCs, RFC 5888 groups): each parses the text after C{x=} or
C{a=name:} and writes it back.

They are the vocabulary L{wcs_twisted.sdp.media} and L{wcs_twisted.sdp.session} are made of;
kept apart so a description's structure reads without a page of field grammar in between.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from wcs_twisted.sdp.errors import SDPError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Connection",
    "Direction",
    "Fingerprint",
    "Group",
    "Origin",
    "SSRCAttribute",
    "SSRCGroup",
    "Timing",
    "invalid",
    "parse_number",
]


def invalid(message: str) -> SDPError:
    """
    The error for a malformed description: the remote's fault, answered 488.
    """
    return SDPError(message, 488)


def parse_number(text: str, what: str) -> int:
    """
    A non-negative decimal field, or L{invalid} naming C{what}.
    """
    if not text.isdigit():
        raise invalid(f"invalid {what}: {text!r}")
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
            raise invalid(f"invalid attribute line: {('a=' + text)[:80]!r}")
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
            raise invalid(f"invalid origin line: o={text!r}")
        return cls(
            parts[0],
            parts[1],
            parse_number(parts[2], "origin session version"),
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
            raise invalid(f"invalid connection line: c={text!r}")
        net_type, address_type, address = parts
        ttl = count = None
        if "/" in address:
            address, *suffix = address.split("/")
            if not address or len(suffix) > 2:
                raise invalid(f"invalid connection address: c={text!r}")
            numbers = [parse_number(s, "connection address suffix") for s in suffix]
            if address_type.upper() == "IP6":
                if len(numbers) != 1:
                    raise invalid(f"invalid connection address: c={text!r}")
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
            raise invalid(f"invalid bandwidth line: b={text!r}")
        return cls(bwtype, parse_number(value.strip(), "bandwidth"))

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
            raise invalid(f"invalid timing line: t={text!r}")
        return cls(parse_number(parts[0], "start time"), parse_number(parts[1], "stop time"))


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
            raise invalid("empty group attribute")
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
            raise invalid(f"invalid fingerprint: {text!r}")
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
            raise invalid(f"invalid candidate: {text!r}")
        related_address = related_port = None
        extensions = []
        for i in range(8, len(parts), 2):
            name, value = parts[i], parts[i + 1]
            if name == "raddr":
                related_address = value
            elif name == "rport":
                related_port = parse_number(value, "candidate rport")
            else:
                extensions.append((name, value))
        return cls(
            parts[0],
            parse_number(parts[1], "candidate component"),
            parts[2],
            parse_number(parts[3], "candidate priority"),
            parts[4],
            parse_number(parts[5], "candidate port"),
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
            raise invalid(f"invalid ssrc attribute: {text!r}")
        return cls(parse_number(ssrc, "ssrc"), name, value if sep else None)

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
            raise invalid("empty ssrc-group attribute")
        return cls(parts[0], tuple(parse_number(p, "ssrc") for p in parts[1:]))

    def __str__(self) -> str:
        return " ".join([self.semantics] + [str(s) for s in self.ssrcs])
