"""
Tests for Generic NACK handling (RFC 4585 6.2.1): building and reading the FCI
(L{wcs_twisted.media.rtcp}), the relay's mapping back to the sender's numbers
(L{wcs_twisted.media.rtp_packet.RTPRewriter.source_sequences}), the bridge
answering from the leg's history or passing the rest upstream
(L{wcs_twisted.media.bridge}), and the WebRTC leg's history itself.
"""

import random
import struct

from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from tests.media.test_bridge import VP8, FakeSession, stream
from tests.media.test_webrtc import SERVER_CERT, Browser, fingerprints, BROWSER_CERT
from wcs_twisted.media import rtcp
from twisted.internet.task import Clock

from wcs_twisted.media.bridge import NACK_BUDGET, MediaBridge
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import RTPRewriter, build_rtp, peek_header
from wcs_twisted.media.webrtc import VIDEO_HISTORY, WebRTCTransport


class NACKPacketTests(SynchronousTestCase):
    """
    L{rtcp.build_nack} and the C{lost} field L{rtcp.parse_compound} fills.
    """

    def nacked(self, lost):
        data = rtcp.build_nack(0x1111, 0x2222, lost)
        first, nack = rtcp.parse_compound(data)
        self.assertEqual((first.packet_type, nack.packet_type, nack.count),
                         (rtcp.RTCP_RR, rtcp.RTCP_RTPFB, rtcp.RTPFB_NACK))
        self.assertEqual((nack.ssrc, nack.media_ssrc), (0x1111, 0x2222))
        return nack.lost, len(data)

    def test_round_trip_across_the_wrap(self):
        """
        Numbers around 65535 -> 0 come back oldest first, in one PID + bitmask entry.
        """
        lost, size = self.nacked([0, 65534, 5, 65535])
        self.assertEqual(lost, (65534, 65535, 0, 5))
        self.assertEqual(size, 8 + 12 + 4)

    def test_far_apart_numbers_take_one_entry_each(self):
        """
        Numbers more than 16 apart need an FCI entry each.
        """
        lost, size = self.nacked([100, 117, 200])
        self.assertEqual(lost, (100, 117, 200))
        self.assertEqual(size, 8 + 12 + 3 * 4)

    def test_limit_keeps_the_newest(self):
        """
        At most NACK_LIMIT numbers are asked for: the newest.
        """
        lost, _ = self.nacked(range(1000, 1100))
        self.assertEqual(lost, tuple(range(1100 - rtcp.NACK_LIMIT, 1100)))

    def test_other_feedback_has_no_lost(self):
        """
        A PLI carries no sequence numbers.
        """
        self.assertEqual(rtcp.parse_compound(rtcp.build_pli(1, 2))[1].lost, ())


class SourceSequenceTests(SynchronousTestCase):
    """
    L{RTPRewriter.source_sequences} inverts the rewrite of the current source.
    """

    def test_inverse_of_rewrite(self):
        """
        The number a packet left with maps back to the SSRC and number it came with.
        """
        rewriter = RTPRewriter(0xAAAA, initial_sequence_number=40000)
        out = bytearray(build_rtp(96, 65530, 0, 0xB0B, b"x"))
        rewriter.rewrite(out)
        self.assertEqual(peek_header(out).sequence_number, 40000)
        self.assertEqual(rewriter.source_sequences([40010, 40011]), (0xB0B, [4, 5]))

    def test_no_source(self):
        """
        Before any packet, and after a resync, nothing maps.
        """
        rewriter = RTPRewriter(0xAAAA)
        self.assertIsNone(rewriter.source_sequences([1]))
        rewriter.rewrite(bytearray(build_rtp(96, 1, 0, 0xB0B, b"x")))
        rewriter.resync()
        self.assertIsNone(rewriter.source_sequences([1]))


class RetainingSession(FakeSession):
    """
    A fake leg that holds the video packets numbered C{held} and records NACKs it sends.
    """

    def __init__(self, *args, held=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.held = set(held)
        self.retransmitted = []
        self.nacks = []

    def retransmit_video(self, lost):
        self.retransmitted.extend(s for s in lost if s in self.held)
        return [s for s in lost if s not in self.held]

    def send_nack(self, media_ssrc, lost):
        self.nacks.append((media_ssrc, list(lost)))


class BridgeNACKTests(SynchronousTestCase):
    """
    A browser's NACK for relayed video: answered from the browser leg's history, or passed
    to the SIP leg in the SIP peer's own numbers.
    """

    def setUp(self):
        self.sip = RetainingSession("rtp", video=stream("video", VP8), ssrc=0x7000)
        self.browser = RetainingSession("webrtc", video=stream("video", VP8), ssrc=0x5E00)
        self.bridge = MediaBridge(self.sip, self.browser)
        for seq in range(500, 505):
            self.sip.receive(build_rtp(96, seq, seq * 3000, 0xCAFE, b"v"), "video")
        self.first = peek_header(self.browser.sent["video"][0]).sequence_number

    def nack(self, media_ssrc, lost):
        self.browser.feedback("video", rtcp.parse_compound(
            rtcp.build_nack(0xB0B, media_ssrc, lost)))

    def test_held_packets_are_resent_the_rest_asked_upstream(self):
        """
        What the browser leg holds it resends; the rest goes to the SIP peer as a NACK for
        its SSRC, numbered as it sent them.
        """
        wanted = [(self.first + 1) & 0xFFFF, (self.first + 3) & 0xFFFF, (self.first + 4) & 0xFFFF]
        self.browser.held = {wanted[2]}
        self.nack(self.browser.rewriters["video"].ssrc, wanted)
        self.assertEqual(self.browser.retransmitted, [wanted[2]])
        self.assertEqual(self.sip.nacks, [(0xCAFE, [501, 503])])  # 504 was resent
        self.assertEqual(self.browser.nacks, [])

    def test_nack_for_another_stream_is_ignored(self):
        """
        A NACK naming an SSRC we do not send video on changes nothing.
        """
        self.nack(0x1234, [self.first])
        self.assertEqual((self.sip.nacks, self.browser.retransmitted), ([], []))

    def test_nack_flood_is_bounded(self):
        """
        The attack: NACKs naming thousands of numbers, many times a second.  Each serves at
        most NACK_LIMIT numbers, and a leg's peer gets at most NACK_BUDGET served per second
        (resent or asked upstream) until the next second.
        """
        clock = Clock()
        self.bridge._clock = clock
        self.browser.held = set(range(65536))
        ssrc = self.browser.rewriters["video"].ssrc
        # 300 FCI entries of 17 numbers each: 5100 numbers in one 1.2 kB packet.
        fci = b"".join(struct.pack("!HH", pid, 0xFFFF) for pid in range(0, 5100, 17))
        body = struct.pack("!II", 0xB0B, ssrc) + fci
        flood = rtcp.parse_compound(
            struct.pack("!BBH", 0x80 | rtcp.RTPFB_NACK, rtcp.RTCP_RTPFB, len(body) // 4) + body)
        self.assertEqual(len(flood[0].lost), 5100)
        self.browser.feedback("video", flood)
        self.assertEqual(len(self.browser.retransmitted), rtcp.NACK_LIMIT)
        for _ in range(50):
            self.browser.feedback("video", flood)
        self.assertEqual(len(self.browser.retransmitted), NACK_BUDGET)
        clock.advance(1.0)
        self.browser.feedback("video", flood)
        self.assertEqual(len(self.browser.retransmitted), NACK_BUDGET + rtcp.NACK_LIMIT)

    def test_all_held_nothing_upstream(self):
        """
        When the leg holds every packet asked for, the sender is not bothered.
        """
        self.browser.held = {self.first}
        self.nack(self.browser.rewriters["video"].ssrc, [self.first])
        self.assertEqual((self.browser.retransmitted, self.sip.nacks), ([self.first], []))


class WebRTCHistoryTests(SynchronousTestCase):
    """
    L{WebRTCTransport.retransmit_video} resends the very SRTP datagram it sent.
    """

    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.transport = WebRTCTransport(self.reactor, "203.0.113.1", SERVER_CERT,
                                         PortPool(31000, 31009), rng=random.Random(3))
        self.transport.start()
        self.addCleanup(self.transport.stop)
        port = self.reactor.bound[self.transport.local_address[1]]
        self.browser = Browser(self, self.transport, port)
        self.transport.set_remote("brws", fingerprints(BROWSER_CERT), "server")
        self.browser.connect()
        self.browser.replies()

    def test_resend_and_report_missing(self):
        """
        A packet still in the history goes out again byte for byte (the browser, which
        lost it, decrypts it); one never sent, or overwritten, is reported missing.
        """
        for seq in range(10):
            self.transport.send_video_packet(bytearray(build_rtp(96, seq, seq, 0xB0B, b"v")))
        sent = self.browser.replies()
        first = peek_header(self.browser.dtls.rx_srtp.unprotect(sent[0])).sequence_number
        never = (first + 20) & 0xFFFF
        self.assertEqual(self.transport.retransmit_video([(first + 3) & 0xFFFF, never]), [never])
        [again] = self.browser.replies()
        self.assertEqual(again, sent[3])
        for seq in range(10, 10 + VIDEO_HISTORY):
            self.transport.send_video_packet(bytearray(build_rtp(96, seq, seq, 0xB0B, b"v")))
        self.assertEqual(self.transport.retransmit_video([first]), [first])
