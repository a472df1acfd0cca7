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
from dataclasses import dataclass, field
from typing import Iterator

from wcs_twisted.sdp.fields import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    Fingerprint,
    Group,
    Origin,
    Timing,
    invalid,
)
from wcs_twisted.sdp.media import AttributeList, MediaDescription

__all__ = ["MAX_SDP_SIZE", "SessionDescription"]

#: Largest description we accept, in characters.  A Chrome offer with
#: simulcast is about 10 kB; SIP over UDP cannot carry more than 64 kB.
MAX_SDP_SIZE = 65536
# Lines that may only appear before the first m= line (RFC 8866 section 5).
_SESSION_ONLY = frozenset("vosuepztr")

@dataclass
class SessionDescription(AttributeList):
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
            raise invalid(f"session description longer than {MAX_SDP_SIZE} characters")
        session = None
        section: AttributeList | None = None
        media: MediaDescription | None = None
        seen: set[str] = set()
        for raw in data.split("\n"):
            line = raw.rstrip(" \t\r")
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise invalid(f"invalid SDP line: {line[:80]!r}")
            letter = line[0]
            value = line[2:]
            if letter == "a":
                if section is None:
                    raise invalid("session description does not start with v=")
                section.attributes.append(Attribute.parse(value))
                continue
            if session is None:
                if letter != "v":
                    raise invalid("session description does not start with v=")
                if value.strip() != "0":
                    raise invalid(f"unsupported SDP version: v={value!r}")
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
                    raise invalid(f"duplicate {letter}= line")
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
                        raise invalid("duplicate session-level c= line")
                    session.connection = Connection.parse(value)
                elif letter == "b":
                    session.bandwidths.append(Bandwidth.parse(value))
                elif letter == "t":
                    session.timing.append(Timing.parse(value))
                elif letter == "r":
                    if not session.timing:
                        raise invalid("r= line without a preceding t= line")
                    session.timing[-1].repeats.append(value)
                elif letter == "z":
                    session.time_zones = value
                elif letter == "k":
                    session.key = value
                elif letter == "v":
                    raise invalid("duplicate v= line")
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
                    raise invalid(f"{letter}= line inside a media description")
                else:
                    media.other_lines.append((letter, value))
        if session is None:
            raise invalid("empty session description")
        if "o" not in seen:
            raise invalid("session description has no o= line")
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
        self._closing_lines(out)
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
