# -*- test-case-name: tests.sdp.test_session -*-
"""
One media section of a session description (RFC 8866 section 5.14: the C{m=} line and the
lines under it), with typed views of its codecs, direction, ICE, DTLS and SSRC attributes.

Typed views are computed from the attribute list on demand, so parsing stays cheap and the
attribute list remains the single source of truth.  L{AttributeList} is shared with the
session level, which has the same attribute and key lines.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterable

from wcs_twisted.sdp.codecs import STATIC_PAYLOAD_TYPES, Codec, parse_fmtp
from wcs_twisted.sdp.fields import (
    Attribute,
    Bandwidth,
    Candidate,
    Connection,
    Direction,
    Fingerprint,
    SSRCAttribute,
    SSRCGroup,
    invalid,
    parse_number,
)

__all__ = ["AttributeList", "MediaDescription"]

_DIRECTION_NAMES = frozenset(direction.value for direction in Direction)


class AttributeList:
    """
    Attribute access shared by the session and media levels.  Subclasses
    have an C{attributes} list of L{Attribute}.
    """

    attributes: list[Attribute]
    key: str | None
    other_lines: list[tuple[str, str]]

    def _closing_lines(self, out: list[str]) -> None:
        """
        Write the lines both levels end with: C{k=}, the C{a=} lines, then unknown line types.
        """
        if self.key is not None:
            out.append("k=" + self.key)
        out.extend(f"a={attribute}" for attribute in self.attributes)
        out.extend(f"{letter}={value}" for letter, value in self.other_lines)

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
    port = parse_number(port_text, "media port")
    if port > 65535:
        raise invalid(f"media port out of range: {port}")
    count = parse_number(count_text, "media port count") if sep else None
    return port, count


@dataclass
class MediaDescription(AttributeList):
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
            raise invalid(f"invalid media line: m={text!r}")
        port, count = _check_port(parts[1])
        if len(parts) == 3 and port != 0:
            raise invalid(f"media line has no formats: m={text!r}")
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
        self._closing_lines(out)

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
        return parse_number(whole, name)

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
            payload_type = parse_number(pt_text, "payload type")
            if payload_type > 127:
                raise invalid(f"payload type out of range: {payload_type}")
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
        raise invalid(f"invalid {attribute.name} attribute: {attribute.value!r}")
    return pt, rest.strip()


def _parse_rtpmap(text: str, attribute: Attribute) -> tuple[str, int, int | None]:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit():
        raise invalid(f"invalid rtpmap attribute: {attribute.value!r}")
    channels = None
    if len(parts) == 3:
        if not parts[2].isdigit():
            raise invalid(f"invalid rtpmap attribute: {attribute.value!r}")
        channels = int(parts[2])
    return parts[0], int(parts[1]), channels
