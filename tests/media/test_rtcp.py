"""
Tests for L{wcs_twisted.media.rtcp}.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media import rtcp
from wcs_twisted.media.rtp_packet import build_rtp, is_rtcp


class BuildAndParseTests(SynchronousTestCase):
    """
    Compound RTCP packets (RFC 3550 section 6).
    """

    def test_sr_round_trip(self):
        """
        An SR with one report block parses back to the same fields.
        """
        block = rtcp.ReportBlock(ssrc=7, fraction_lost=25, packets_lost=-3,
                                 highest_sequence=70000, jitter=0, lsr=0x12345678, dlsr=65536)
        data = rtcp.build_sr(1, 0x0102030405060708, 160, 50, 8000, (block,))
        self.assertEqual(len(data), 28 + 24)
        self.assertTrue(is_rtcp(data))
        [packet] = rtcp.parse_compound(data)
        self.assertEqual(packet.packet_type, rtcp.RTCP_SR)
        self.assertEqual((packet.ssrc, packet.ntp, packet.rtp_timestamp), (1, 0x0102030405060708, 160))
        self.assertEqual(packet.reports, (block,))
        self.assertEqual(packet.lsr, 0x03040506)

    def test_compound_rr_sdes_bye(self):
        """
        RR + SDES + BYE split into three packets with 32-bit aligned lengths.
        """
        data = rtcp.build_rr(9) + rtcp.build_sdes(9, b"wcs@host") + rtcp.build_bye(9)
        self.assertEqual(len(data) % 4, 0)
        types = [(p.packet_type, p.ssrc) for p in rtcp.parse_compound(data)]
        self.assertEqual(types, [(201, 9), (202, 9), (203, 9)])

    def test_sdes_padding(self):
        """
        The SDES chunk ends with a null item and is padded to 32 bits for
        every CNAME length.
        """
        for n in range(1, 9):
            data = rtcp.build_sdes(1, b"x" * n)
            self.assertEqual(len(data) % 4, 0)
            self.assertEqual(data[-1], 0)
            self.assertEqual(rtcp.parse_compound(data)[0].packet_type, rtcp.RTCP_SDES)

    def test_feedback_media_ssrc(self):
        """
        A PLI (RFC 4585 section 6.3.1) reports its media source.
        """
        pli = bytes([0x81, 206, 0, 2]) + (5).to_bytes(4, "big") + (6).to_bytes(4, "big")
        [packet] = rtcp.parse_compound(pli)
        self.assertEqual((packet.packet_type, packet.count, packet.media_ssrc), (206, 1, 6))

    def test_malformed(self):
        """
        Bad version, overlong length and a report count that does not fit are errors.
        """
        good = rtcp.build_rr(1)
        self.assertRaises(ValueError, rtcp.parse_compound, b"\x40" + good[1:])
        self.assertRaises(ValueError, rtcp.parse_compound, good + b"\x80\xc9\x00\x05")
        self.assertRaises(ValueError, rtcp.parse_compound, b"\x81" + good[1:])
        self.assertRaises(ValueError, rtcp.parse_compound, good + b"\x80")

    def test_ntp_timestamp(self):
        """
        Unix time 0 is NTP second 2208988800; half a second is 2**31 fraction.
        """
        self.assertEqual(rtcp.ntp_timestamp(0.5), (2208988800 << 32) | (1 << 31))


class ReceptionStatisticsTests(SynchronousTestCase):
    """
    Report blocks derived from counters (RFC 3550 appendix A.3).
    """

    def test_no_packets_no_block(self):
        """
        Before any packet there is nothing to report.
        """
        self.assertIsNone(rtcp.ReceptionStatistics().report_block(0.0))

    def test_loss_and_wrap(self):
        """
        Packets lost across a sequence wrap are counted, and the extended
        highest sequence carries the cycle.
        """
        stats = rtcp.ReceptionStatistics()
        stats.restart(ssrc=5, sequence_number=65530, received_before=0)
        # 65530..65535 and 0..13 is 20 packets expected; 15 arrived.
        stats.update(build_rtp(0, 13, 0, 5, b""), packets_received=15)
        block = stats.report_block(10.0)
        self.assertEqual(block.ssrc, 5)
        self.assertEqual(block.highest_sequence, 65536 + 13)
        self.assertEqual(block.packets_lost, 5)
        self.assertEqual(block.fraction_lost, (5 << 8) // 20)
        # next interval: 10 expected, 10 received -> no fraction lost
        stats.update(build_rtp(0, 23, 0, 5, b""), packets_received=25)
        block = stats.report_block(15.0)
        self.assertEqual((block.packets_lost, block.fraction_lost), (5, 0))

    def test_lsr_dlsr(self):
        """
        After an SR, the block echoes its middle NTP bits and the delay since
        in 1/65536 s.
        """
        stats = rtcp.ReceptionStatistics()
        stats.restart(1, 0, 0)
        stats.update(build_rtp(0, 0, 0, 1, b""), 1)
        [sr] = rtcp.parse_compound(rtcp.build_sr(1, 0xAAAABBBBCCCCDDDD, 0, 0, 0))
        stats.note_sender_report(sr, now=100.0)
        block = stats.report_block(now=101.5)
        self.assertEqual((block.lsr, block.dlsr), (0xBBBBCCCC, 98304))

    def test_new_source_restarts(self):
        """
        A different SSRC in the last datagram restarts the statistics.
        """
        stats = rtcp.ReceptionStatistics()
        stats.restart(1, 100, 0)
        stats.update(build_rtp(0, 500, 0, 2, b""), packets_received=300)
        block = stats.report_block(0.0)
        self.assertEqual((block.ssrc, block.packets_lost, block.highest_sequence), (2, 0, 500))


class FeedbackTests(SynchronousTestCase):
    """
    Keyframe requests (RFC 4585, RFC 5104).
    """

    def test_pli(self):
        """
        build_pli makes an RR followed by a PSFB FMT 1 naming both SSRCs,
        which is_keyframe_request recognises.
        """
        packets = rtcp.parse_compound(rtcp.build_pli(0x11, 0x22))
        self.assertEqual([p.packet_type for p in packets], [rtcp.RTCP_RR, rtcp.RTCP_PSFB])
        self.assertEqual((packets[1].count, packets[1].ssrc, packets[1].media_ssrc),
                         (rtcp.PSFB_PLI, 0x11, 0x22))
        self.assertTrue(rtcp.is_keyframe_request(packets))

    def test_fir_and_others(self):
        """
        A FIR (FMT 4) is a keyframe request; a report or a NACK is not.
        """
        fir = bytes([0x84, 206, 0, 4]) + bytes(16)
        nack = bytes([0x81, 205, 0, 3]) + bytes(12)
        self.assertTrue(rtcp.is_keyframe_request(rtcp.parse_compound(fir)))
        self.assertFalse(rtcp.is_keyframe_request(rtcp.parse_compound(nack)))
        self.assertFalse(rtcp.is_keyframe_request(rtcp.parse_compound(rtcp.build_rr(1))))
