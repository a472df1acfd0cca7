# -*- test-case-name: tests.media.test_rtcp -*-
"""
The small part of RTCP (RFC 3550 section 6) a gateway leg needs.

Legs send a compound report every few seconds - SR when they sent media since
the last report, RR otherwise, always followed by an SDES CNAME - and a BYE
when they stop; they read incoming reports for the sender's NTP time (to fill
LSR/DLSR) and the peer's report about us.  RTCP is a few packets per leg per
five seconds, so plain bytes building and a list result are fine here; the
per-packet RTP path never touches this module.

L{ReceptionStatistics} derives the report block for the remote source from
counters the RTP path keeps anyway (packets received, the last datagram), so
reception reporting costs nothing per packet; it does not estimate jitter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

__all__ = [
    "NTP_EPOCH_OFFSET",
    "PSFB_FIR",
    "PSFB_PLI",
    "RTCP_BYE",
    "RTCP_PSFB",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "RTPFB_NACK",
    "RTCPPacket",
    "ReceptionStatistics",
    "ReportBlock",
    "build_bye",
    "build_nack",
    "build_pli",
    "build_rr",
    "build_sdes",
    "build_sr",
    "is_keyframe_request",
    "ntp_timestamp",
    "parse_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206

SDES_CNAME = 1

#: Payload-specific feedback message types (RFC 4585 6.3, RFC 5104 4.3.1).
PSFB_PLI = 1
PSFB_FIR = 4
#: The transport-layer feedback message type of a Generic NACK (RFC 4585 6.2.1).
RTPFB_NACK = 1
#: Sequence numbers one NACK we build may name (a few FCI entries).
NACK_LIMIT = 64

#: Seconds between the NTP epoch (1900) and the Unix epoch (1970).
NTP_EPOCH_OFFSET = 2208988800

_HEADER = struct.Struct("!BBH")
_SR_BODY = struct.Struct("!IIIIII")
_BLOCK = struct.Struct("!IIIIII")
_U32 = struct.Struct("!I")
_SEQ = struct.Struct("!H")


def ntp_timestamp(unix_seconds: float) -> int:
    """
    The 64-bit NTP timestamp (RFC 3550 section 4) of a Unix time.
    """
    return int((unix_seconds + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class ReportBlock:
    """
    One reception report block (RFC 3550 section 6.4.1).
    """

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    def pack(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc & 0xFFFFFFFF,
            ((self.fraction_lost & 0xFF) << 24) | lost,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def unpack_from(cls, data: bytes, offset: int) -> "ReportBlock":
        source, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(
            data, offset
        )
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(source, lost_word >> 24, lost, highest, jitter, lsr, dlsr)


def _header(count: int, packet_type: int, body_length: int) -> bytes:
    # The length field counts 32-bit words minus one, header included.
    return _HEADER.pack(0x80 | (count & 0x1F), packet_type, body_length // 4)


def build_sr(
    ssrc: int,
    ntp: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    reports: tuple[ReportBlock, ...] = (),
) -> bytes:
    """
    A sender report (RFC 3550 section 6.4.1).
    """
    body = _SR_BODY.pack(
        ssrc & 0xFFFFFFFF,
        (ntp >> 32) & 0xFFFFFFFF,
        ntp & 0xFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    ) + b"".join(r.pack() for r in reports)
    return _header(len(reports), RTCP_SR, len(body)) + body


def build_rr(ssrc: int, reports: tuple[ReportBlock, ...] = ()) -> bytes:
    """
    A receiver report (RFC 3550 section 6.4.2).
    """
    body = _U32.pack(ssrc & 0xFFFFFFFF) + b"".join(r.pack() for r in reports)
    return _header(len(reports), RTCP_RR, len(body)) + body


def build_sdes(ssrc: int, cname: bytes) -> bytes:
    """
    An SDES packet with one chunk carrying the CNAME (RFC 3550 section 6.5).
    """
    if len(cname) > 255:
        raise ValueError("CNAME longer than 255 bytes")
    chunk = _U32.pack(ssrc & 0xFFFFFFFF) + bytes((SDES_CNAME, len(cname))) + cname
    # A null item ends the list, then pad the chunk to a 32-bit boundary.
    chunk += b"\x00" * (4 - len(chunk) % 4)
    return _header(1, RTCP_SDES, len(chunk)) + chunk


def build_pli(ssrc: int, media_ssrc: int) -> bytes:
    """
    A Picture Loss Indication for C{media_ssrc} (RFC 4585 section 6.3.1),
    preceded by an empty RR so that the datagram is a valid compound packet
    (RFC 3550 section 6.1) for peers that did not negotiate reduced size.
    """
    body = _U32.pack(ssrc & 0xFFFFFFFF) + _U32.pack(media_ssrc & 0xFFFFFFFF)
    return build_rr(ssrc) + _header(PSFB_PLI, RTCP_PSFB, len(body)) + body


def build_nack(ssrc: int, media_ssrc: int, lost) -> bytes:
    """
    A Generic NACK (RFC 4585 section 6.2.1) for sequence numbers C{lost} of
    C{media_ssrc} (at most L{NACK_LIMIT} of them, the oldest dropped), each
    FCI entry a PID and a bitmask of the 16 following; preceded by an empty RR
    like L{build_pli}.
    """
    pending = _in_sequence_order({s & 0xFFFF for s in lost})[-NACK_LIMIT:]
    fci = b""
    while pending:
        pid = pending.pop(0)
        mask = 0
        while pending and 0 < (pending[0] - pid) & 0xFFFF <= 16:
            mask |= 1 << (((pending.pop(0) - pid) & 0xFFFF) - 1)
        fci += struct.pack("!HH", pid, mask)
    body = _U32.pack(ssrc & 0xFFFFFFFF) + _U32.pack(media_ssrc & 0xFFFFFFFF) + fci
    return build_rr(ssrc) + _header(RTPFB_NACK, RTCP_RTPFB, len(body)) + body


def _in_sequence_order(numbers: set[int]) -> list[int]:
    """
    16-bit sequence numbers oldest first across a wrap: the list starts after
    the widest hole in the circle.
    """
    ordered = sorted(numbers)
    if len(ordered) < 2:
        return ordered
    holes = [(ordered[(i + 1) % len(ordered)] - n) & 0xFFFF for i, n in enumerate(ordered)]
    start = (holes.index(max(holes)) + 1) % len(ordered)
    return ordered[start:] + ordered[:start]


def _nack_fci(data: bytes, start: int, end: int) -> tuple[int, ...]:
    lost = []
    for offset in range(start, end - 3, 4):
        pid, mask = struct.unpack_from("!HH", data, offset)
        lost.append(pid)
        lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if mask >> bit & 1)
    return tuple(lost)


def is_keyframe_request(packets: list["RTCPPacket"]) -> bool:
    """
    Whether a parsed compound packet carries a PLI or a FIR (RFC 5104
    section 4.3.1): the receiver wants a new key frame.
    """
    return any(
        p.packet_type == RTCP_PSFB and p.count in (PSFB_PLI, PSFB_FIR) for p in packets
    )


def build_bye(ssrc: int) -> bytes:
    """
    A BYE for one source (RFC 3550 section 6.6).
    """
    return _header(1, RTCP_BYE, 4) + _U32.pack(ssrc & 0xFFFFFFFF)


@dataclass(frozen=True)
class RTCPPacket:
    """
    What a leg reads from one packet of a compound RTCP datagram.

    @ivar packet_type: 200 SR, 201 RR, 202 SDES, 203 BYE, 205/206 feedback...
    @ivar count: the 5-bit count field (report count, source count, FMT).
    @ivar ssrc: the sender SSRC (SR, RR, feedback) or first source (SDES,
        BYE); 0 if absent.
    @ivar ntp: the SR's NTP timestamp, else C{None}.
    @ivar rtp_timestamp: the SR's RTP timestamp, else C{None}.
    @ivar reports: the report blocks of an SR or RR.
    @ivar media_ssrc: the media source of an RTPFB/PSFB feedback message.
    @ivar lost: the sequence numbers a Generic NACK asks for, else empty.
    """

    packet_type: int
    count: int
    ssrc: int = 0
    ntp: Optional[int] = None
    rtp_timestamp: Optional[int] = None
    reports: tuple[ReportBlock, ...] = field(default=())
    media_ssrc: Optional[int] = None
    lost: tuple[int, ...] = ()

    @property
    def lsr(self) -> int:
        """
        The middle 32 bits of the SR's NTP timestamp, which a receiver echoes
        as LSR; 0 when this is not an SR.
        """
        return (self.ntp >> 16) & 0xFFFFFFFF if self.ntp is not None else 0


def parse_compound(data: bytes) -> list[RTCPPacket]:
    """
    Split a compound RTCP datagram and read each packet.

    @raise ValueError: if the version is not 2, a length runs past the end,
        or a report count does not fit its packet (RFC 3550 appendix A.2).
    """
    packets = []
    offset = 0
    total = len(data)
    while offset < total:
        if total - offset < 4:
            raise ValueError("truncated RTCP header")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise ValueError("RTCP version is not 2")
        size = (words + 1) * 4
        end = offset + size
        if end > total:
            raise ValueError("RTCP packet length runs past the datagram")
        count = first & 0x1F
        body = offset + 4
        if packet_type in (RTCP_SR, RTCP_RR):
            fixed = 24 if packet_type == RTCP_SR else 4
            if body + fixed + 24 * count > end:
                raise ValueError("RTCP report count does not fit the packet")
            source = _U32.unpack_from(data, body)[0]
            ntp = rtp_ts = None
            if packet_type == RTCP_SR:
                _, msw, lsw, rtp_ts, _, _ = _SR_BODY.unpack_from(data, body)
                ntp = (msw << 32) | lsw
            blocks = tuple(
                ReportBlock.unpack_from(data, body + fixed + 24 * i)
                for i in range(count)
            )
            packets.append(
                RTCPPacket(packet_type, count, source, ntp, rtp_ts, blocks)
            )
        elif packet_type in (RTCP_RTPFB, RTCP_PSFB) and size >= 12:
            source, media = struct.unpack_from("!II", data, body)
            lost = ()
            if packet_type == RTCP_RTPFB and count == RTPFB_NACK:
                lost = _nack_fci(data, body + 8, end)
            packets.append(RTCPPacket(packet_type, count, source, media_ssrc=media, lost=lost))
        else:
            source = _U32.unpack_from(data, body)[0] if size >= 8 else 0
            packets.append(RTCPPacket(packet_type, count, source))
        offset = end
    return packets


class ReceptionStatistics:
    """
    Reception report state for one remote source, computed at report time
    from the RTP path's packet counter and its last received datagram
    (RFC 3550 appendix A.1 and A.3, without the per-packet probation and
    jitter estimate).

    The extended highest sequence number unwraps the 16-bit counter between
    two reports, which is exact as long as fewer than 32768 packets arrive
    per reporting interval.
    """

    def __init__(self) -> None:
        self.ssrc: Optional[int] = None
        self._base = 0
        self._max = 0  # extended
        self._offset = 0
        self._received_total = 0
        self._expected_prior = 0
        self._received_prior = 0
        self.lsr = 0
        self._lsr_time: Optional[float] = None

    def restart(self, ssrc: int, sequence_number: int, received_before: int) -> None:
        """
        Start counting a new remote source whose first reported packet
        carries C{sequence_number}; C{received_before} is the RTP path's
        counter value before that source's packets.
        """
        self.ssrc = ssrc
        self._base = sequence_number
        self._max = sequence_number
        self._offset = received_before
        self._received_total = 0
        self._expected_prior = 0
        self._received_prior = 0

    def update(self, last_datagram: bytes, packets_received: int) -> None:
        """
        Account for everything received up to C{last_datagram}, the latest
        RTP datagram, with the RTP path's running counter.
        """
        source = _U32.unpack_from(last_datagram, 8)[0]
        seq = _SEQ.unpack_from(last_datagram, 2)[0]
        if source != self.ssrc:
            # A new source: count from its packets only (approximately: the
            # ones received since the last report may mix both sources).
            self.restart(source, seq, packets_received - 1)
        else:
            delta = (seq - self._max) & 0xFFFF
            if delta < 0x8000:
                self._max += delta
        self._received_total = packets_received - self._offset

    def note_sender_report(self, packet: RTCPPacket, now: float) -> None:
        """
        Remember an SR from the remote source for the LSR/DLSR fields.
        """
        self.lsr = packet.lsr
        self._lsr_time = now

    def report_block(self, now: float) -> Optional[ReportBlock]:
        """
        The block for the next report, or C{None} before any packet; advances
        the interval used for the fraction lost.
        """
        if self.ssrc is None:
            return None
        expected = self._max - self._base + 1
        lost = expected - self._received_total
        expected_interval = expected - self._expected_prior
        received_interval = self._received_total - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received_total
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self._lsr_time is not None:
            dlsr = int(max(0.0, now - self._lsr_time) * 65536)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=lost,
            highest_sequence=self._max & 0xFFFFFFFF,
            jitter=0,
            lsr=self.lsr,
            dlsr=dlsr,
        )
