"""
Tests for L{wcs_twisted.media.rtp_packet}.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media import rtp_packet
from wcs_twisted.media.rtp_packet import (
    RTPRewriter,
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    build_rtp,
    decode_telephone_event,
    encode_telephone_event,
)


def packet(pt=0, seq=1000, ts=160000, ssrc=0x11223344, payload=b"\xff" * 160, marker=False):
    return build_rtp(pt, seq, ts, ssrc, payload, marker)


class HeaderReadingTests(SynchronousTestCase):
    """
    Reading header fields without parsing (RFC 3550 section 5.1).
    """

    def test_peek_header(self):
        """
        peek_header returns payload type, sequence, timestamp, SSRC and marker.
        """
        data = packet(pt=8, seq=65535, ts=0xFFFFFFFF, ssrc=0xCAFEBABE, marker=True)
        header = rtp_packet.peek_header(data)
        self.assertEqual(header, (8, 65535, 0xFFFFFFFF, 0xCAFEBABE, True))
        self.assertEqual(header.sequence_number, 65535)
        self.assertTrue(header.marker)

    def test_single_field_readers(self):
        """
        The single-field readers agree with the header layout.
        """
        data = packet(pt=101, seq=7, ts=99, ssrc=5, marker=False)
        self.assertEqual(rtp_packet.payload_type(data), 101)
        self.assertEqual(rtp_packet.sequence_number(data), 7)
        self.assertEqual(rtp_packet.timestamp(data), 99)
        self.assertEqual(rtp_packet.ssrc(data), 5)
        self.assertFalse(rtp_packet.marker(data))

    def test_peek_short_datagram(self):
        """
        A datagram shorter than the fixed header cannot be read.
        """
        self.assertRaises(struct.error, rtp_packet.peek_header, b"\x80\x00\x00")

    def test_header_size_with_csrc_and_extension(self):
        """
        The payload starts after the CSRC list and the header extension
        (RFC 3550 section 5.3.1).
        """
        data = bytearray(packet(payload=b""))
        data[0] = 0x80 | 0x10 | 2  # X bit, CC = 2
        data += b"\x00" * 8  # two CSRCs
        data += b"\xbe\xde\x00\x01" + b"\x10\xff\x00\x00"  # one-word extension
        data += b"PAYLOAD"
        self.assertEqual(rtp_packet.header_size(bytes(data)), 12 + 8 + 8)
        start, end = rtp_packet.payload_bounds(bytes(data))
        self.assertEqual(bytes(data[start:end]), b"PAYLOAD")

    def test_truncated_extension(self):
        """
        An extension running past the datagram is an error.
        """
        data = bytearray(packet(payload=b""))
        data[0] |= 0x10
        data += b"\xbe\xde\x00\x09"
        self.assertRaises(ValueError, rtp_packet.header_size, bytes(data))

    def test_padding_is_excluded(self):
        """
        RFC 3550 padding is not part of the payload.
        """
        data = bytearray(packet(payload=b"abcd" + b"\x00\x00\x00\x04"))
        data[0] |= 0x20
        self.assertEqual(rtp_packet.payload_bounds(bytes(data)), (12, 16))


class DemultiplexingTests(SynchronousTestCase):
    """
    Telling RTP, RTCP, STUN and DTLS apart (RFC 5761 section 4, RFC 7983).
    """

    def test_rtcp_types_are_rtcp(self):
        """
        SR, RR, SDES, BYE and feedback packets are RTCP.
        """
        for packet_type in (200, 201, 202, 203, 205, 206):
            data = bytes([0x80, packet_type, 0, 1, 0, 0, 0, 1])
            self.assertTrue(rtp_packet.is_rtcp(data), packet_type)
            self.assertFalse(rtp_packet.is_rtp(data + b"\x00" * 8), packet_type)

    def test_rtp_with_marker_is_not_rtcp(self):
        """
        RTP payload types 0-63 and 96-127, marker set or not, are not RTCP.
        """
        for pt in (0, 8, 9, 63, 96, 101, 111, 127):
            for marker in (False, True):
                data = packet(pt=pt, marker=marker)
                self.assertFalse(rtp_packet.is_rtcp(data), (pt, marker))
                self.assertTrue(rtp_packet.is_rtp(data), (pt, marker))

    def test_first_byte_ranges(self):
        """
        The first byte separates STUN (0-3), DTLS (20-63) and RTP (128-191).
        """
        stun = b"\x00\x01" + b"\x00" * 18
        dtls = b"\x16\xfe\xfd" + b"\x00" * 20
        rtp = packet()
        self.assertTrue(rtp_packet.looks_like_stun(stun))
        self.assertFalse(rtp_packet.looks_like_stun(dtls))
        self.assertTrue(rtp_packet.looks_like_dtls(dtls))
        self.assertFalse(rtp_packet.looks_like_dtls(rtp))
        self.assertTrue(rtp_packet.is_rtp_or_rtcp(rtp))
        self.assertFalse(rtp_packet.is_rtp_or_rtcp(stun))

    def test_wrong_version_is_not_rtp(self):
        """
        Version 1 or a datagram shorter than 12 bytes is not RTP.
        """
        self.assertFalse(rtp_packet.is_rtp(b"\x40" + packet()[1:]))
        self.assertFalse(rtp_packet.is_rtp(packet()[:11]))


class RewriteTests(SynchronousTestCase):
    """
    In-place header rewriting.
    """

    def test_rewrite_fields(self):
        """
        rewrite sets payload type and SSRC, adds offsets modulo 2**16 / 2**32,
        keeps the marker and leaves the payload alone.
        """
        buf = bytearray(packet(pt=0, seq=65535, ts=0xFFFFFF00, marker=True, payload=b"xyz"))
        rtp_packet.rewrite(buf, payload_type=8, ssrc=42, sequence_offset=2, timestamp_offset=0x200)
        self.assertEqual(rtp_packet.peek_header(buf), (8, 1, 0x100, 42, True))
        self.assertEqual(bytes(buf[12:]), b"xyz")

    def test_rewrite_keeps_unspecified(self):
        """
        Without a payload type or SSRC, those fields are kept.
        """
        buf = bytearray(packet(pt=9, ssrc=7))
        rtp_packet.rewrite(buf, sequence_offset=1)
        header = rtp_packet.peek_header(buf)
        self.assertEqual((header.payload_type, header.ssrc), (9, 7))
        self.assertEqual(header.sequence_number, 1001)


class RTPRewriterTests(SynchronousTestCase):
    """
    Mapping relayed packets onto one outgoing stream.
    """

    def out(self, rewriter, **kw):
        buf = bytearray(packet(**kw))
        rewriter.rewrite(buf)
        return rtp_packet.peek_header(buf)

    def test_first_source_starts_at_initial_values(self):
        """
        The first relayed packet carries the configured initial sequence
        number and timestamp and our SSRC; the next follow the input's steps.
        """
        rewriter = RTPRewriter(0xABCD, initial_sequence_number=500, initial_timestamp=9000)
        first = self.out(rewriter, seq=10, ts=1000)
        second = self.out(rewriter, seq=11, ts=1160)
        self.assertEqual((first.sequence_number, first.timestamp, first.ssrc), (500, 9000, 0xABCD))
        self.assertEqual((second.sequence_number, second.timestamp), (501, 9160))

    def test_source_switch_continues_stream(self):
        """
        A new incoming SSRC continues at the next sequence number and one
        timestamp step later, as one source would (RFC 3550 section 5.1).
        """
        rewriter = RTPRewriter(1, initial_sequence_number=100, initial_timestamp=0, timestamp_step=160)
        self.out(rewriter, seq=5, ts=50, ssrc=1000)
        switched = self.out(rewriter, seq=40000, ts=123456, ssrc=2000)
        self.assertEqual((switched.sequence_number, switched.timestamp), (101, 160))

    def test_late_packet_does_not_rewind_the_stream(self):
        """
        A late or resent packet (answered NACK) keeps its own place but does not move the
        stream back: the next source continues after the newest number, not a used one.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=100, initial_timestamp=0,
                               timestamp_step=160)
        for seq in (5, 6, 7):
            self.out(rewriter, seq=seq, ts=seq * 160, ssrc=1000)
        self.assertEqual(self.out(rewriter, seq=5, ts=800, ssrc=1000).sequence_number, 100)
        self.assertEqual((rewriter.last_sequence_number, rewriter.last_timestamp), (102, 320))
        self.assertEqual(self.out(rewriter, seq=9000, ts=5, ssrc=2000).sequence_number, 103)

    def test_sequence_wraps(self):
        """
        Output sequence numbers wrap at 2**16.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=65535)
        self.assertEqual(self.out(rewriter, seq=0).sequence_number, 65535)
        self.assertEqual(self.out(rewriter, seq=1).sequence_number, 0)

    def test_skip_and_allocate_keep_sequence_gap_free(self):
        """
        Skipped relayed packets and locally originated ones leave no gap
        and no duplicate in the outgoing sequence.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=10)
        self.assertEqual(self.out(rewriter, seq=1).sequence_number, 10)
        rewriter.skip()  # input seq 2 dropped
        self.assertEqual(rewriter.allocate(), 11)
        self.assertEqual(rewriter.allocate(), 12)
        self.assertEqual(self.out(rewriter, seq=3).sequence_number, 13)

    def test_payload_type_map(self):
        """
        Payload types are translated through the map, keeping the marker bit;
        unmapped ones pass unchanged.
        """
        rewriter = RTPRewriter(1, payload_type_map={111: 96, 101: 126})
        self.assertEqual(self.out(rewriter, pt=111, marker=True)[::4], (96, True))
        self.assertEqual(self.out(rewriter, pt=101).payload_type, 126)
        self.assertEqual(self.out(rewriter, pt=0).payload_type, 0)

    def test_identity_map_disables_translation(self):
        """
        An identity map leaves payload types as they are.
        """
        rewriter = RTPRewriter(1, payload_type_map={0: 0})
        self.assertEqual(self.out(rewriter, pt=0).payload_type, 0)
        self.assertIsNone(rewriter._pt_table)


class TelephoneEventCodingTests(SynchronousTestCase):
    """
    The RFC 4733 section 2.3 payload.
    """

    def test_round_trip(self):
        """
        Encoding then decoding yields the same event, E bit, volume, duration.
        """
        data = encode_telephone_event(11, end=True, volume=10, duration=800)
        self.assertEqual(data, b"\x0b\x8a\x03\x20")
        self.assertEqual(decode_telephone_event(data), TelephoneEvent(11, True, 10, 800))
        self.assertEqual(decode_telephone_event(data).digit, "#")

    def test_reserved_bit_ignored(self):
        """
        The R bit does not leak into the volume.
        """
        self.assertEqual(decode_telephone_event(b"\x01\x4a\x00\xa0").volume, 10)

    def test_short_payload(self):
        """
        Fewer than 4 bytes is an error.
        """
        self.assertRaises(ValueError, decode_telephone_event, b"\x01\x0a\x00")

    def test_out_of_range(self):
        """
        Volume over 63 or a duration beyond 16 bits cannot be encoded.
        """
        self.assertRaises(ValueError, encode_telephone_event, 1, volume=64)
        self.assertRaises(ValueError, encode_telephone_event, 1, duration=70000)

    def test_digit_codes(self):
        """
        Digits map to codes 0-15 (RFC 4733 section 3.2); other events have no digit.
        """
        self.assertEqual(
            [rtp_packet.DTMF_EVENTS[d] for d in "0123456789*#ABCD"], list(range(16))
        )
        self.assertIsNone(TelephoneEvent(16, False, 0, 0).digit)


class TelephoneEventSenderTests(SynchronousTestCase):
    """
    Producing one event's packets (RFC 4733 section 2.5.1).
    """

    def drain(self, sender):
        packets = []
        while (p := sender.next_packet()) is not None:
            packets.append(p)
        return packets

    def test_event_packet_sequence(self):
        """
        A 100 ms digit at 20 ms packets: marker on the first packet only,
        durations growing by 160, then three end packets with the full
        duration, all with the start timestamp.
        """
        sender = TelephoneEventSender(packet_interval=160)
        sender.start("5", duration=800, timestamp=12345)
        packets = self.drain(sender)
        events = [decode_telephone_event(p.payload) for p in packets]
        self.assertEqual([p.marker for p in packets], [True] + [False] * 6)
        self.assertEqual({p.timestamp for p in packets}, {12345})
        self.assertEqual([e.duration for e in events], [160, 320, 480, 640, 800, 800, 800])
        self.assertEqual([e.end for e in events], [False] * 4 + [True] * 3)
        self.assertEqual({e.event for e in events}, {5})
        self.assertFalse(sender.active)

    def test_short_event(self):
        """
        An event shorter than one interval starts with its first end packet,
        which keeps the marker.
        """
        sender = TelephoneEventSender(packet_interval=160)
        sender.start("#", duration=80, timestamp=0)
        packets = self.drain(sender)
        self.assertEqual(len(packets), 3)
        self.assertTrue(packets[0].marker)
        self.assertTrue(all(decode_telephone_event(p.payload).end for p in packets))

    def test_overlapping_start_refused(self):
        """
        A second event cannot start while one is being sent.
        """
        sender = TelephoneEventSender()
        sender.start("1", 800, 0)
        sender.next_packet()
        self.assertRaises(ValueError, sender.start, "2", 800, 0)

    def test_bad_digit_and_duration(self):
        """
        Unknown digits and durations outside 1..65535 are refused.
        """
        sender = TelephoneEventSender()
        self.assertRaises(ValueError, sender.start, "x", 800, 0)
        self.assertRaises(ValueError, sender.start, "1", 0, 0)
        self.assertRaises(ValueError, sender.start, "1", 70000, 0)

    def test_lowercase_digit(self):
        """
        Letters A-D are accepted in either case.
        """
        sender = TelephoneEventSender()
        sender.start("d", 160, 0)
        self.assertEqual(decode_telephone_event(sender.next_packet().payload).event, 15)


class TelephoneEventReceiverTests(SynchronousTestCase):
    """
    Reporting each received event once.
    """

    def test_each_event_reported_once(self):
        """
        All packets of one event, end retransmissions included, report it once.
        """
        sender = TelephoneEventSender()
        sender.start("7", 800, 5000)
        receiver = TelephoneEventReceiver()
        reports = []
        while (p := sender.next_packet()) is not None:
            event = receiver.receive(p.timestamp, p.payload)
            if event is not None:
                reports.append(event.digit)
        self.assertEqual(reports, ["7"])

    def test_same_digit_twice(self):
        """
        The same digit pressed twice (two timestamps) is reported twice.
        """
        receiver = TelephoneEventReceiver()
        payload = encode_telephone_event(1, True, 10, 800)
        self.assertIsNotNone(receiver.receive(1000, payload))
        self.assertIsNone(receiver.receive(1000, payload))
        self.assertIsNotNone(receiver.receive(3000, payload))

    def test_end_only_still_reported(self):
        """
        If only end packets arrive, the event is still reported, once.
        """
        receiver = TelephoneEventReceiver()
        payload = encode_telephone_event(9, True, 10, 800)
        self.assertEqual(receiver.receive(77, payload).digit, "9")
        self.assertIsNone(receiver.receive(77, payload))

    def test_late_retransmission_of_previous_event(self):
        """
        An end retransmission of the previous event arriving after the next
        event started is not reported again.
        """
        receiver = TelephoneEventReceiver()
        first = encode_telephone_event(1, True, 10, 800)
        second = encode_telephone_event(2, False, 10, 160)
        receiver.receive(1000, first)
        receiver.receive(2000, second)
        self.assertIsNone(receiver.receive(1000, first))

    def test_whole_packet(self):
        """
        receive_packet reads timestamp and payload from an RTP datagram and
        ignores a truncated payload.
        """
        receiver = TelephoneEventReceiver()
        data = build_rtp(101, 1, 4242, 9, encode_telephone_event(10, False, 10, 160))
        self.assertEqual(receiver.receive_packet(data).digit, "*")
        self.assertIsNone(receiver.receive_packet(data))
        self.assertIsNone(receiver.receive_packet(build_rtp(101, 2, 1, 9, b"\x01")))
