"""
Tests for L{wcs_twisted.media.anchor}: two RTP legs, one per address family, that answer and
offer for each other and are bridged once both sides agreed.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from tests.media.test_webrtc import SERVER_CERT
from wcs_twisted.addresses import AddressPlan
from wcs_twisted.errors import MediaError
from wcs_twisted.media.anchor import MediaAnchor
from wcs_twisted.media.factory import MediaFactory
from wcs_twisted.media.ports import PortPool


def phone_sdp(connection: str, port: int, direction: str = "sendrecv",
              formats: str = "0 8 101") -> bytes:
    rtpmaps = {"0": "PCMU/8000", "8": "PCMA/8000", "101": "telephone-event/8000",
               "9": "G722/8000"}
    lines = ["v=0", f"o=- 1 1 {connection}", "s=-", f"c={connection}", "t=0 0",
             f"m=audio {port} RTP/AVP {formats}"]
    lines += [f"a=rtpmap:{pt} {rtpmaps[pt]}" for pt in formats.split()]
    lines += [f"a={direction}", ""]
    return "\r\n".join(lines).encode()


IPV6_PHONE = phone_sdp("IN IP6 2001:db8::2", 4000)


class AnchoredMediaTests(SynchronousTestCase):
    """
    An IPv6 phone (side 0) calling an IPv4 one (side 1) through the anchor.
    """

    def setUp(self):
        self.pool = PortPool(34000, 34011)
        plan = AddressPlan("198.51.100.1", "10.0.0.1", ipv6="2001:db8::10")
        factory = MediaFactory(FakeUDPReactor(), "198.51.100.1", "10.0.0.1", self.pool,
                               SERVER_CERT, 30, addresses=plan)
        self.media = MediaAnchor(factory).open("2001:db8::2", "10.0.0.3")
        self.addCleanup(self.media.close)

    def test_each_leg_in_its_peers_family(self):
        """
        The leg toward the IPv6 caller is bound on our IPv6 address, the other on IPv4; the
        callee is offered our IPv4 address with the caller's codecs we carry.
        """
        caller, callee = self.media.legs
        self.assertEqual(caller.local_address[0], "2001:db8::10")
        self.assertEqual(callee.local_address[0], "10.0.0.1")
        offer = self.media.offer(0, IPV6_PHONE).decode()
        self.assertIn("c=IN IP4 10.0.0.1", offer)
        self.assertIn(f"m=audio {callee.local_address[1]} RTP/AVP 0 8", offer)
        self.assertNotIn("IP6", offer)
        self.assertTrue(self.media.offer_pending)

    def test_answer_carries_the_callees_codec_and_bridges(self):
        """
        The callee's answer (PCMA) becomes ours to the caller in PCMA on our IPv6 address; the
        legs are bridged, relaying; the same answer again (a 2xx retransmission) gives the
        same bytes.
        """
        self.media.offer(0, IPV6_PHONE)
        answer = self.media.answer(phone_sdp("IN IP4 10.0.0.3", 5000, formats="8 101"))
        text = answer.decode()
        self.assertIn("c=IN IP6 2001:db8::10", text)
        self.assertIn(f"m=audio {self.media.legs[0].local_address[1]} RTP/AVP 8", text)
        self.assertIsNotNone(self.media.bridge)
        self.assertEqual(self.media.bridge.mode, "relay")
        self.assertEqual(self.media.answer(phone_sdp("IN IP4 10.0.0.3", 5000, formats="8 101")),
                         answer)
        self.assertFalse(self.media.offer_pending)

    def test_hold_from_the_callee(self):
        """
        A re-offer from side 1 with a=sendonly (hold) reaches side 0 as sendonly, and side 0's
        recvonly answer goes back recvonly.
        """
        self.media.offer(0, IPV6_PHONE)
        self.media.answer(phone_sdp("IN IP4 10.0.0.3", 5000))
        reoffer = self.media.offer(1, phone_sdp("IN IP4 10.0.0.3", 5000, "sendonly"))
        self.assertIn("a=sendonly", reoffer.decode())
        self.assertIn("c=IN IP6 2001:db8::10", reoffer.decode())
        answer = self.media.answer(phone_sdp("IN IP6 2001:db8::2", 4000, "recvonly"))
        self.assertIn("a=recvonly", answer.decode())
        self.assertIn("c=IN IP4 10.0.0.1", answer.decode())

    def test_legacy_hold_from_the_callee(self):
        """
        A re-offer from side 1 with c=0.0.0.0 (RFC 2543 hold, RFC 3264 8.4) and no direction
        attribute reaches side 0 as a hold (sendonly), not as sendrecv.
        """
        self.media.offer(0, IPV6_PHONE)
        self.media.answer(phone_sdp("IN IP4 10.0.0.3", 5000))
        hold = phone_sdp("IN IP4 0.0.0.0", 5000).replace(b"a=sendrecv\r\n", b"")
        self.assertIn("a=sendonly", self.media.offer(1, hold).decode())

    def test_nothing_in_common(self):
        """
        An offer with nothing we carry is refused, nothing offered on.
        """
        with self.assertRaises(MediaError):
            self.media.offer(0, phone_sdp("IN IP6 2001:db8::2", 4000, formats="9"
                                          ).replace(b"G722", b"X-none"))

    def test_close_gives_ports_back(self):
        """
        Closing releases both legs' ports.
        """
        self.assertEqual(self.pool.in_use, 2)
        self.media.close()
        self.assertEqual(self.pool.in_use, 0)

    def test_inactivity_ends_it(self):
        """
        A leg reporting no RTP (the phones are gone, their BYE lost) closes the anchor and
        tells its owner once.
        """
        ended = []
        self.media.on_ended = ended.append
        self.media.media_inactive(self.media.legs[1])
        self.media.media_failed(self.media.legs[0], "again")
        self.assertEqual(ended, ["no RTP"])
        self.assertTrue(self.media.closed)
        self.assertEqual(self.pool.in_use, 0)
