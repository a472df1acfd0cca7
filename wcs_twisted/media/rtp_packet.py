# -*- test-case-name: tests.media.test_rtp_packet -*-
"""
Zero-copy RTP helpers for the relay hot path, and RFC 4733 telephone events.

A relayed audio call moves ~200 datagrams a second through the process, so
the relay never builds packet objects: it reads the few header fields it needs
with C{struct.unpack_from} and rewrites payload type, SSRC, sequence number and
timestamp in place in a C{bytearray} (RFC 3550 section 5.1 layout).  RTP and
RTCP sharing one port are told apart by the second byte (RFC 5761 section 4),
and DTLS/STUN/RTP on a WebRTC port by the first byte (RFC 7983).

RFC 4733 telephone events (DTMF) live here too because they are small,
allocation-light codecs for one payload: L{TelephoneEventSender} produces the
packets of one event (start, continuations, three end packets sharing one
timestamp) and L{TelephoneEventReceiver} reports each event once however many
end retransmissions arrive.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Optional

__all__ = [
    "DTMF_DIGITS",
    "DTMF_EVENTS",
    "RTP_HEADER_SIZE",
    "RTPHeader",
    "RTPRewriter",
    "TelephoneEvent",
    "TelephoneEventPacket",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "build_rtp",
    "decode_telephone_event",
    "encode_telephone_event",
    "header_size",
    "is_rtcp",
    "is_rtp",
    "is_rtp_or_rtcp",
    "looks_like_dtls",
    "looks_like_stun",
    "marker",
    "payload_bounds",
    "payload_type",
    "peek_header",
    "rewrite",
    "sequence_number",
    "ssrc",
    "timestamp",
]

RTP_HEADER_SIZE = 12
RTP_VERSION = 2

# "!BBHII": V/P/X/CC, M/PT, sequence number, timestamp, SSRC (RFC 3550 5.1).
_HEADER = struct.Struct("!BBHII")
_SEQ_TS = struct.Struct("!HI")
_SEQ_TS_SSRC = struct.Struct("!HII")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_EVENT = struct.Struct("!BBH")


class RTPHeader(NamedTuple):
    """
    The fixed RTP header fields of one datagram, read without parsing the rest.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool


# -- demultiplexing ---------------------------------------------------------


def is_rtp_or_rtcp(data: bytes) -> bool:
    """
    Whether the first byte puts C{data} in the RTP/RTCP range of RFC 7983
    (128-191, i.e. version 2), as opposed to STUN (0-3) or DTLS (20-63).
    """
    return len(data) > 1 and 127 < data[0] < 192


def looks_like_stun(data: bytes) -> bool:
    """
    Whether C{data} is a STUN message by its first byte (RFC 7983 section 7).
    """
    return len(data) >= 20 and data[0] < 4


def looks_like_dtls(data: bytes) -> bool:
    """
    Whether C{data} is a DTLS record by its first byte (RFC 7983 section 7).
    """
    return len(data) > 12 and 19 < data[0] < 64


def is_rtcp(data: bytes) -> bool:
    """
    Whether a version-2 datagram is RTCP rather than RTP when both share one
    port: RTCP packet types 192-223 fill the second byte where RTP has the
    marker bit and payload type, and RFC 5761 section 4 keeps RTP payload
    types 64-95 out of use so the two never collide.
    """
    return len(data) >= 8 and 191 < data[1] < 224


def is_rtp(data: bytes) -> bool:
    """
    Whether C{data} can be an RTP packet: version 2, at least a fixed header,
    and not RTCP by the RFC 5761 rule.
    """
    return (
        len(data) >= RTP_HEADER_SIZE
        and (data[0] & 0xC0) == 0x80
        and not (191 < data[1] < 224)
    )


# -- reading ------------------------------------------------------------------


def peek_header(data: bytes) -> RTPHeader:
    """
    Read payload type, sequence number, timestamp, SSRC and marker of an RTP
    datagram in one C{unpack_from} call.

    @raise struct.error: if C{data} is shorter than the fixed header.
    """
    b0, b1, seq, ts, source = _HEADER.unpack_from(data)
    return RTPHeader(b1 & 0x7F, seq, ts, source, bool(b1 & 0x80))


def payload_type(data: bytes) -> int:
    """
    The payload type of an RTP datagram.
    """
    return data[1] & 0x7F


def marker(data: bytes) -> bool:
    """
    The marker bit of an RTP datagram.
    """
    return bool(data[1] & 0x80)


def sequence_number(data: bytes) -> int:
    """
    The sequence number of an RTP datagram.
    """
    return _U16.unpack_from(data, 2)[0]


def timestamp(data: bytes) -> int:
    """
    The timestamp of an RTP datagram.
    """
    return _U32.unpack_from(data, 4)[0]


def ssrc(data: bytes) -> int:
    """
    The SSRC of an RTP datagram.
    """
    return _U32.unpack_from(data, 8)[0]


def header_size(data: bytes) -> int:
    """
    The length of the RTP header including CSRCs and the header extension
    (RFC 3550 section 5.3.1), i.e. the offset of the payload.

    @raise ValueError: if the header runs past the end of C{data}.
    """
    size = RTP_HEADER_SIZE + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < size + 4:
            raise ValueError("RTP header extension is truncated")
        size += 4 + 4 * _U16.unpack_from(data, size + 2)[0]
    if size > len(data):
        raise ValueError("RTP header is longer than the packet")
    return size


def payload_bounds(data: bytes) -> tuple[int, int]:
    """
    The (start, end) offsets of the payload, excluding RFC 3550 padding.

    @raise ValueError: if the header or padding is inconsistent.
    """
    start = header_size(data)
    end = len(data)
    if data[0] & 0x20:
        padding = data[end - 1]
        if padding == 0 or end - padding < start:
            raise ValueError("RTP padding is inconsistent")
        end -= padding
    return start, end


# -- writing -------------------------------------------------------------------


def build_rtp(
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
) -> bytes:
    """
    Serialize a plain RTP packet (no CSRC, no extension, no padding).
    """
    return (
        _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | (payload_type & 0x7F),
            sequence_number & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc & 0xFFFFFFFF,
        )
        + payload
    )


def rewrite(
    buf: bytearray,
    payload_type: Optional[int] = None,
    ssrc: Optional[int] = None,
    sequence_offset: int = 0,
    timestamp_offset: int = 0,
) -> None:
    """
    Rewrite header fields of the RTP packet in C{buf} in place: set the payload
    type (keeping the marker bit) and SSRC when given, and add the offsets to
    the sequence number and timestamp (modulo 2**16 and 2**32).
    """
    if payload_type is not None:
        buf[1] = (buf[1] & 0x80) | (payload_type & 0x7F)
    seq, ts, source = _SEQ_TS_SSRC.unpack_from(buf, 2)
    _SEQ_TS_SSRC.pack_into(
        buf,
        2,
        (seq + sequence_offset) & 0xFFFF,
        (ts + timestamp_offset) & 0xFFFFFFFF,
        source if ssrc is None else ssrc,
    )


class RTPRewriter:
    """
    Maps relayed RTP packets onto one outgoing stream: one SSRC, one
    continuous sequence-number and timestamp space, payload types translated
    through a table (the two legs may number the same codec differently).

    When the incoming SSRC changes (another source is switched in, or the far
    end restarted) the offsets are recomputed so the output continues at the
    next sequence number and C{timestamp_step} after the last timestamp, as a
    receiver's jitter buffer expects of one source (RFC 3550 section 5.1).

    Packets the owner originates itself (RFC 4733 events) or drops on purpose
    are accounted for with L{allocate} and L{skip} so the sequence stays
    gap-free.  After a pause in the relay (hold) or media of our own in
    between (silence, a file), L{resync} makes even the same source continue
    at the next sequence number, with a timestamp that never goes back: the
    peer sees neither phantom losses nor old frames.

    @ivar ssrc: the outgoing SSRC.
    @ivar last_sequence_number: the sequence number of the latest packet out.
    @ivar last_timestamp: the timestamp of the latest packet out.
    """

    __slots__ = (
        "ssrc",
        "timestamp_step",
        "last_sequence_number",
        "last_timestamp",
        "_source",
        "_paused_source",
        "_seq_offset",
        "_ts_offset",
        "_pt_table",
        "_started",
    )

    def __init__(
        self,
        ssrc: int,
        initial_sequence_number: int = 0,
        initial_timestamp: int = 0,
        timestamp_step: int = 160,
        payload_type_map: Optional[dict[int, int]] = None,
    ) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self.timestamp_step = timestamp_step
        self.last_sequence_number = (initial_sequence_number - 1) & 0xFFFF
        self.last_timestamp = (initial_timestamp - timestamp_step) & 0xFFFFFFFF
        self._source: Optional[int] = None
        self._paused_source: Optional[int] = None
        self._seq_offset = 0
        self._ts_offset = 0
        self._started = False
        self._pt_table: Optional[bytes] = None
        self.set_payload_type_map(payload_type_map)

    def set_payload_type_map(self, mapping: Optional[dict[int, int]]) -> None:
        """
        Translate incoming payload types through C{mapping} (missing ones are
        kept); C{None} or an identity mapping disables translation.
        """
        if not mapping or all(k == v for k, v in mapping.items()):
            self._pt_table = None
            return
        table = bytearray(range(128))
        for incoming, outgoing in mapping.items():
            table[incoming & 0x7F] = outgoing & 0x7F
        # The marker bit rides along: index by the whole second byte.
        self._pt_table = bytes(table) + bytes(0x80 | t for t in table)

    def rewrite(self, buf: bytearray) -> None:
        """
        Rewrite the RTP packet in C{buf} in place for the outgoing stream.
        """
        seq, ts, source = _SEQ_TS_SSRC.unpack_from(buf, 2)
        if source != self._source:
            self._switch_source(source, seq, ts)
        seq = (seq + self._seq_offset) & 0xFFFF
        ts = (ts + self._ts_offset) & 0xFFFFFFFF
        _SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, self.ssrc)
        table = self._pt_table
        if table is not None:
            buf[1] = table[buf[1]]
        if not (seq - self.last_sequence_number) & 0x8000:
            # Only a newer packet moves the stream on: a late or resent one (NACK) must not
            # make the next source switch, skip or resync reuse numbers already sent.
            self.last_sequence_number = seq
            self.last_timestamp = ts

    def _switch_source(self, source: int, seq: int, ts: int) -> None:
        self._seq_offset = (self.last_sequence_number + 1 - seq) & 0xFFFF
        after = (self.last_timestamp + self.timestamp_step - ts) & 0xFFFFFFFF
        # The same source after a pause keeps its own clock (so the timestamp tells how long
        # the pause was) unless our packets in between went further.
        if source != self._paused_source or (self._ts_offset - after) & 0x80000000:
            self._ts_offset = after
        self._source = source
        self._paused_source = None

    def resync(self) -> None:
        """
        Re-anchor the next relayed packet, even from the current source, after
        the last one sent (see the class docstring).
        """
        if self._source is not None:
            self._paused_source = self._source
            self._source = None

    def source_sequences(self, sequence_numbers) -> Optional[tuple[int, list[int]]]:
        """
        The current source's SSRC and the incoming sequence numbers that went out
        as C{sequence_numbers}, for passing a NACK (RFC 4585) upstream; C{None}
        while no source is relayed.
        """
        if self._source is None:
            return None
        offset = self._seq_offset
        return self._source, [(number - offset) & 0xFFFF for number in sequence_numbers]

    def skip(self) -> None:
        """
        Account for one packet of the current source that will not be sent,
        so the next relayed packet follows the last one sent without a gap.
        """
        self._seq_offset = (self._seq_offset - 1) & 0xFFFF

    def allocate(self) -> int:
        """
        Take the next sequence number for a packet originated locally (for
        example an RFC 4733 event) and shift the relayed stream after it.
        """
        self.last_sequence_number = seq = (self.last_sequence_number + 1) & 0xFFFF
        self._seq_offset = (self._seq_offset + 1) & 0xFFFF
        return seq


# -- RFC 4733 telephone events ----------------------------------------------

#: RFC 4733 section 3.2 event codes for the DTMF digits.
DTMF_EVENTS = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
DTMF_DIGITS = {code: digit for digit, code in DTMF_EVENTS.items()}


@dataclass(frozen=True)
class TelephoneEvent:
    """
    One decoded RFC 4733 section 2.3 payload.

    @ivar event: the event code (0-9, 10 for *, 11 for #, 12-15 for A-D).
    @ivar end: the E bit.
    @ivar volume: power level in -dBm0 (0-63).
    @ivar duration: duration so far, in timestamp units.
    """

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> Optional[str]:
        """
        The DTMF digit of the event, or C{None} for a non-DTMF event.
        """
        return DTMF_DIGITS.get(self.event)


def encode_telephone_event(
    event: int, end: bool = False, volume: int = 10, duration: int = 0
) -> bytes:
    """
    Encode the 4-byte RFC 4733 section 2.3 payload.
    """
    if not 0 <= event <= 255:
        raise ValueError(f"telephone event {event} is out of range")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume {volume} is out of range 0-63")
    if not 0 <= duration <= 0xFFFF:
        raise ValueError(f"duration {duration} does not fit 16 bits")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


def decode_telephone_event(payload: bytes, offset: int = 0) -> TelephoneEvent:
    """
    Decode the RFC 4733 payload at C{offset} (further events of a multi-event
    payload are ignored).

    @raise ValueError: if fewer than 4 bytes are available.
    """
    if len(payload) - offset < 4:
        raise ValueError("telephone-event payload is shorter than 4 bytes")
    event, flags, duration = _EVENT.unpack_from(payload, offset)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True)
class TelephoneEventPacket:
    """
    One packet to send for an event: all packets of an event share the
    event's timestamp; only the first has the marker bit.
    """

    marker: bool
    timestamp: int
    payload: bytes


class TelephoneEventSender:
    """
    Produces the packets of RFC 4733 events, one event at a time
    (section 2.5.1): a first packet with the marker bit, one update per
    packet interval with the growing duration, and the final packet with the
    E bit sent three times; every packet carries the timestamp of the event's
    start.

    The owner calls L{start} and then L{next_packet} once per packet interval
    until it returns C{None}.
    """

    END_PACKETS = 3

    def __init__(self, packet_interval: int = 160, volume: int = 10) -> None:
        """
        @param packet_interval: timestamp units between updates (160 is 20 ms
            at the 8000 Hz telephone-event clock).
        @param volume: reported power level in -dBm0.
        """
        if packet_interval <= 0:
            raise ValueError("packet interval must be positive")
        self.packet_interval = packet_interval
        self.volume = volume
        self._event = 0
        self._timestamp = 0
        self._duration = 0
        self._elapsed = 0
        self._ends_left = 0
        self._first = False

    @property
    def timestamp(self) -> int:
        """
        The RTP timestamp of the current (or last) event.
        """
        return self._timestamp

    @property
    def duration(self) -> int:
        """
        The full duration of the current (or last) event, in timestamp units.
        """
        return self._duration

    @property
    def active(self) -> bool:
        """
        Whether an event still has packets to send.
        """
        return self._first or self._elapsed < self._duration or self._ends_left > 0

    def start(self, digit: str, duration: int, timestamp: int) -> None:
        """
        Begin the event for C{digit} lasting C{duration} timestamp units,
        starting at RTP C{timestamp}.

        @raise ValueError: for an unknown digit, a non-positive duration or one
            beyond 16 bits, or while another event is still being sent.
        """
        if self.active:
            raise ValueError("a telephone event is already being sent")
        event = DTMF_EVENTS.get(digit.upper())
        if event is None:
            raise ValueError(f"{digit!r} is not a DTMF digit")
        if not 0 < duration <= 0xFFFF:
            raise ValueError(f"event duration {duration} is out of range")
        self._event = event
        self._timestamp = timestamp & 0xFFFFFFFF
        self._duration = duration
        self._elapsed = 0
        self._ends_left = self.END_PACKETS
        self._first = True

    def next_packet(self) -> Optional[TelephoneEventPacket]:
        """
        The next packet of the current event, or C{None} when it is over.
        """
        if self._first or self._elapsed < self._duration:
            first = self._first
            self._first = False
            self._elapsed = min(self._elapsed + self.packet_interval, self._duration)
            if self._elapsed < self._duration:
                return TelephoneEventPacket(
                    first,
                    self._timestamp,
                    encode_telephone_event(
                        self._event, False, self.volume, self._elapsed
                    ),
                )
            # A short event's first packet may already be its end.
            self._ends_left -= 1
            return TelephoneEventPacket(
                first,
                self._timestamp,
                encode_telephone_event(self._event, True, self.volume, self._duration),
            )
        if self._ends_left > 0:
            self._ends_left -= 1
            return TelephoneEventPacket(
                False,
                self._timestamp,
                encode_telephone_event(self._event, True, self.volume, self._duration),
            )
        return None


class TelephoneEventReceiver:
    """
    Reports each received RFC 4733 event once.

    An event is identified by its RTP timestamp (section 2.5.1.3: all packets
    of an event share it, and a new event takes a new one), so the first
    packet seen of an event - start, update or, if those were lost, an end
    retransmission - reports it and the rest are ignored.  A short memory of
    recent timestamps absorbs end retransmissions arriving late.
    """

    def __init__(self, memory: int = 8) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=memory)

    def receive(self, timestamp: int, payload: bytes) -> Optional[TelephoneEvent]:
        """
        Feed the payload of a telephone-event packet with its RTP timestamp;
        return the event the first time it is seen, C{None} afterwards or for
        a malformed payload.
        """
        try:
            event = decode_telephone_event(payload)
        except ValueError:
            return None
        key = (timestamp, event.event)
        if key in self._seen:
            return None
        self._seen.append(key)
        return event

    def receive_packet(self, data: bytes) -> Optional[TelephoneEvent]:
        """
        Like L{receive}, for a whole RTP datagram.
        """
        try:
            start, end = payload_bounds(data)
        except (ValueError, IndexError):
            return None
        if end - start < 4:
            return None
        return self.receive(_U32.unpack_from(data, 4)[0], data[start:end])
