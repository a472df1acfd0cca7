"""
Our outgoing stream stays one gap-free RTP stream across a hold: L{RTPRewriter.resync}
after media of our own (silence) or a pause of the relay, and the SIP leg bridged to
another through a hold with its silence filler running (fake reactor, L{Clock} time).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from tests.media.test_bridge import pcmu_leg
from wcs_twisted.media.bridge import MediaBridge
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import RTPRewriter, build_rtp, peek_header


def relayed(rewriter, seq, ts, ssrc=0x42):
    buf = bytearray(build_rtp(0, seq, ts, ssrc, b"\xff" * 160))
    rewriter.rewrite(buf)
    header = peek_header(buf)
    return header.sequence_number, header.timestamp


def own_packet(rewriter):
    """
    What a leg does for a packet of its own (L{_MediaLeg._next_payload_packet}).
    """
    rewriter.resync()
    seq = rewriter.allocate()
    rewriter.last_timestamp = (rewriter.last_timestamp + rewriter.timestamp_step) & 0xFFFFFFFF
    return seq, rewriter.last_timestamp


class RewriterResyncTests(SynchronousTestCase):
    """
    L{RTPRewriter.resync} re-anchors the next relayed packet, even from the same source.
    """

    def test_after_own_packets_the_source_follows_them(self):
        """
        Own packets that went further than the source's clock: the source continues one
        sequence number and one timestamp step after them, not back in time.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=100, initial_timestamp=0)
        for n in range(3):
            relayed(rewriter, 10 + n, 1000 + 160 * n)
        last = [own_packet(rewriter) for _ in range(20)][-1]
        self.assertEqual(last, (122, 160 * 22))
        # The source resumes 5 packets later on its own clock: behind our silence.
        self.assertEqual(relayed(rewriter, 18, 1000 + 160 * 8), (123, 160 * 23))
        self.assertEqual(relayed(rewriter, 19, 1000 + 160 * 9), (124, 160 * 24))

    def test_after_a_pause_the_source_keeps_its_clock(self):
        """
        A relay pause with nothing sent (a hold): the sequence goes on without a gap, the
        timestamp tells the pause's length as the source's clock does.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=100, initial_timestamp=0)
        relayed(rewriter, 10, 1000)
        rewriter.resync()
        self.assertEqual(relayed(rewriter, 510, 1000 + 160 * 500), (101, 160 * 500))

    def test_without_resync_offsets_stay(self):
        """
        No resync (the RFC 4733 path skips and allocates): the same source keeps its offsets.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=100, initial_timestamp=0)
        relayed(rewriter, 10, 1000)
        self.assertEqual(relayed(rewriter, 20, 1000 + 160 * 10), (110, 1600))

    def test_resync_before_any_packet_is_harmless(self):
        """
        Resync before the first relayed packet: the stream starts at its initial values.
        """
        rewriter = RTPRewriter(1, initial_sequence_number=100, initial_timestamp=500)
        rewriter.resync()
        self.assertEqual(relayed(rewriter, 7, 9999), (100, 500))


class HeldLegTests(SynchronousTestCase):
    """
    Two real RTP legs bridged, on a fake reactor: the SIP side held while the other keeps
    receiving, its silence filler running, then resumed.
    """

    def test_stream_gap_free_through_hold(self):
        """
        Relay, hold (silence fills the SIP leg, the other leg's packets are dropped), resume:
        the phone gets one SSRC, each sequence number one more, timestamps never back.
        """
        reactor = FakeUDPReactor()
        pool = PortPool(33000, 33009)
        browser, phone = (pcmu_leg(self, reactor, pool, port) for port in (4000, 5000))
        bridge = MediaBridge(browser, phone)
        seq = ts = 0

        def browser_sends(packets):
            nonlocal seq, ts
            for _ in range(packets):
                seq, ts = seq + 1, ts + 160
                browser.audio_rtp.datagramReceived(
                    build_rtp(0, seq, ts, 0x42, b"\xff" * 160), ("192.0.2.1", 4000))
                reactor.advance(0.02)

        browser_sends(10)
        bridge.hold(True)
        browser_sends(100)
        self.assertGreater(phone.silence.filled, 50)
        bridge.hold(False)
        browser_sends(10)
        headers = [peek_header(data) for data, _ in reactor.bound[phone.local_address[1]].written
                   if len(data) > 12 and data[1] & 0x7F == 0]
        self.assertGreater(len(headers), 70)
        self.assertEqual({h.ssrc for h in headers}, {phone.audio_rtp.ssrc})
        for before, after in zip(headers, headers[1:]):
            self.assertEqual((after.sequence_number - before.sequence_number) & 0xFFFF, 1)
            self.assertEqual((after.timestamp - before.timestamp) & 0x80000000, 0)
