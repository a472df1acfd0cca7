"""
Tests for a browser that roams mid-call (L{wcs_twisted.media.webrtc} with
L{wcs_twisted.media.ice_lite}): its NAT rebinds, its consent checks and SRTP
come from a new address.  The same fake reactor and in-memory browser as
L{tests.media.test_webrtc}.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.media.test_webrtc import BROWSER, OTHER, WebRTCTransportTests
from wcs_twisted.media.rtp_packet import build_rtp, peek_header

ROAMED = ("198.51.100.77", 61000)


class RoamingTests(SynchronousTestCase):
    """
    The selection follows the browser only through an authenticated check and authenticated
    media; nothing else moves it (no RTP bleed).
    """

    setUp = WebRTCTransportTests.setUp
    connect = WebRTCTransportTests.connect

    def sent_to(self, addr):
        """
        How many datagrams the transport wrote to C{addr}.
        """
        return sum(1 for _, a in self.port.written if a == addr)

    def test_media_follows_a_check_from_a_new_address(self):
        """
        After a consent check (no USE-CANDIDATE) from the new address, the browser's SRTP
        from there is delivered, the selection moves, and our media goes there.
        """
        self.connect()
        self.browser.send_rtp(1)
        self.browser.check(use_candidate=False, addr=ROAMED)
        self.assertEqual(self.transport.remote_address, BROWSER)
        self.browser.send_rtp(2, addr=ROAMED)
        self.assertEqual([peek_header(p).sequence_number for p in self.received], [1, 2])
        self.assertEqual(self.transport.remote_address, ROAMED)
        self.assertEqual(self.transport.ice.selected, ROAMED)
        self.transport.send_payload(b"\x00" * 160, 0)
        self.assertEqual(self.port.written[-1][1], ROAMED)
        self.assertEqual(self.transport.packets_dropped, 0)

    def test_media_before_the_check_is_dropped(self):
        """
        SRTP from the new address before its first check is dropped and moves nothing (the
        gap a roam costs lasts until the browser's next consent check).
        """
        self.connect()
        self.browser.send_rtp(1, addr=ROAMED)
        self.assertEqual((self.received, self.transport.remote_address), ([], BROWSER))
        self.assertEqual(self.transport.packets_dropped, 1)
        self.browser.check(use_candidate=False, addr=ROAMED)
        self.browser.send_rtp(2, addr=ROAMED)
        self.assertEqual([peek_header(p).sequence_number for p in self.received], [2])

    def test_forged_srtp_from_a_checked_address_moves_nothing(self):
        """
        A datagram that looks like SRTP but fails authentication, even from an address that
        passed a check, is dropped and leaves the selection where it was.
        """
        self.connect()
        self.browser.check(use_candidate=False, addr=ROAMED)
        forged = bytearray(self.browser.dtls.tx_srtp.protect(build_rtp(0, 5, 5, 0xB0B, b"x" * 160)))
        forged[20] ^= 0xFF
        self.transport.datagramReceived(bytes(forged), ROAMED)
        self.assertEqual((self.received, self.transport.remote_address), ([], BROWSER))
        self.assertEqual(self.transport.packets_dropped, 1)

    def test_third_address_refused_while_the_roam_works(self):
        """
        The real roam works while genuine SRTP replayed from a third address that never
        passed a check is refused and gets nothing sent to it.
        """
        self.connect()
        self.browser.check(use_candidate=False, addr=ROAMED)
        packet = self.browser.dtls.tx_srtp.protect(build_rtp(0, 7, 7 * 160, 0xB0B, b"\xff" * 160))
        self.transport.datagramReceived(packet, OTHER)
        self.browser.send_rtp(8, addr=ROAMED)
        self.transport.datagramReceived(packet, OTHER)
        self.transport.send_payload(b"\x00" * 160, 0)
        self.assertEqual([peek_header(p).sequence_number for p in self.received], [8])
        self.assertEqual(self.transport.remote_address, ROAMED)
        self.assertEqual(self.sent_to(OTHER), 0)
        self.assertEqual(self.transport.packets_dropped, 2)

    def test_srtcp_from_a_checked_address_moves_the_selection(self):
        """
        Authenticated SRTCP (a receiver report) from a checked address moves it too.
        """
        from wcs_twisted.media import rtcp
        reports = []
        self.transport.rtcp_received = reports.append
        self.connect()
        self.browser.check(use_candidate=False, addr=ROAMED)
        report = rtcp.build_pli(0xB0B, self.transport.ssrc)
        self.transport.datagramReceived(self.browser.dtls.tx_srtp.protect_rtcp(report), ROAMED)
        self.assertEqual(len(reports), 1)
        self.assertEqual(self.transport.remote_address, ROAMED)

    def test_check_expired_address_is_not_followed(self):
        """
        An address whose last check is older than the consent timeout is no longer followed.
        """
        self.connect()
        self.browser.check(use_candidate=False, addr=ROAMED)
        for _ in range(31):
            self.reactor.advance(1.0)
            self.browser.check(use_candidate=False)
        self.browser.send_rtp(2, addr=ROAMED)
        self.assertEqual((self.received, self.transport.remote_address), ([], BROWSER))
