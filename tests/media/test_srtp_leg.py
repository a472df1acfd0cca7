"""
SDES-SRTP on the SIP leg: L{wcs_twisted.media.rtp.RTPSession} protecting and authenticating
on a fake UDP reactor, and L{wcs_twisted.media.rtp_session.RTPMediaSession} negotiating keys
with SDP from baresip's srtp module (RFC 4568).
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.errors import MediaError
from wcs_twisted.media import rtcp
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import build_rtp
from wcs_twisted.media.rtp_session import RTPMediaSession
from wcs_twisted.media.sdes import SRTPContext
from wcs_twisted.sdp.crypto import crypto_attributes
from wcs_twisted.sdp.session import SessionDescription

PEER = ("192.0.2.10", 4000)
OUR_KEY = bytes(range(30))
PEER_KEY = bytes(range(100, 130))
SUITE = "AES_CM_128_HMAC_SHA1_80"

#: What baresip 1.0.0 with mediaenc=srtp-mand offers (keys replaced).
BARESIP_SAVP = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 192.0.2.10", "s=-", "c=IN IP4 192.0.2.10", "t=0 0",
    "m=audio 4000 RTP/SAVP 0 8 101",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15", "a=sendrecv", "a=ptime:20",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB",
    "",
])


def with_offer_line(sdp, old, new):
    return sdp.replace(old, new)


class LegTests(SynchronousTestCase):
    """
    RTPSession with an SRTP context: what it sends and what it accepts.
    """

    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.leg = RTPSession(self.reactor, "203.0.113.1", PortPool(31000, 31009),
                              rng=random.Random(3))
        self.leg.start()
        self.addCleanup(self.leg.stop)
        self.leg.set_remote(*PEER)
        self.leg.set_srtp(SRTPContext(SUITE, OUR_KEY, PEER_KEY))
        self.peer = SRTPContext(SUITE, PEER_KEY, OUR_KEY)
        self.received = []
        self.leg.packet_received = self.received.append
        self.port = self.reactor.bound[self.leg.local_address[1]]
        self.rtcp_port = self.reactor.bound[self.leg.local_rtcp_port]

    def from_peer(self, seq, payload=b"\xff" * 160):
        return self.peer.tx.protect(build_rtp(0, seq, seq * 160, 0xBEEF, payload))

    def test_sends_protected(self):
        """
        A relayed packet leaves rewritten, then protected: 10 bytes longer, payload
        encrypted, and the peer's context gets the rewritten packet back.
        """
        self.leg.send_packet(bytearray(build_rtp(0, 1, 160, 0xAAAA, b"\xff" * 160)))
        self.leg.send_payload(b"\xfe" * 160, 0)
        [(first, addr), (second, _)] = self.port.written
        self.assertEqual(addr, PEER)
        self.assertEqual(len(first), 12 + 160 + 10)
        self.assertNotIn(b"\xff" * 16, first)
        plain = self.peer.rx.unprotect(first)
        self.assertEqual(int.from_bytes(plain[8:12], "big"), self.leg.ssrc)
        self.assertEqual(plain[12:], b"\xff" * 160)
        self.assertEqual(self.peer.rx.unprotect(second)[12:], b"\xfe" * 160)
        self.assertEqual(self.leg.octets_sent, 320)

    def test_receives_plaintext(self):
        """
        SRTP from the peer is authenticated, decrypted and handed on as plain RTP; it
        latches the leg.
        """
        self.leg.datagramReceived(self.from_peer(1), PEER)
        self.assertEqual(self.received, [build_rtp(0, 1, 160, 0xBEEF, b"\xff" * 160)])
        self.assertTrue(self.leg.latched)
        self.assertEqual(self.leg.remote_ssrc, 0xBEEF)

    def test_forged_refused_before_learning(self):
        """
        The attack: packets with a valid header and a forged body or tag, and plain RTP, from
        the peer's host - refused, counted as auth failures, never latched or delivered.
        """
        genuine = bytearray(self.from_peer(5))
        genuine[-1] ^= 0x01
        forged = build_rtp(0, 6, 960, 0xBEEF, b"\x00" * 170)
        plain = build_rtp(0, 7, 1120, 0xBEEF, b"\xff" * 160)
        for datagram in (bytes(genuine), forged, plain, b"\x80"):
            self.leg.datagramReceived(datagram, PEER)
        self.assertEqual(self.received, [])
        self.assertFalse(self.leg.latched)
        self.assertEqual(self.leg.srtp_auth_failures, 4)
        self.assertEqual(self.leg.packets_dropped, 4)
        self.assertEqual(self.leg.packets_received, 0)

    def test_replay_refused(self):
        """
        The attack: a genuine packet sent again, even from the latched source, is refused
        as a replay and counted.
        """
        packet = self.from_peer(9)
        self.leg.datagramReceived(packet, PEER)
        self.leg.datagramReceived(packet, PEER)
        self.leg.datagramReceived(packet, ("192.0.2.10", 4002))
        self.assertEqual(len(self.received), 1)
        self.assertEqual(self.leg.srtp_replays, 2)
        self.assertEqual(self.leg.packets_received, 1)

    def test_srtcp_both_ways(self):
        """
        Our RTCP reports (here the BYE at stop) go out as SRTCP to the peer's RTCP port.
        """
        self.leg.datagramReceived(self.from_peer(1), PEER)
        self.leg.stop()
        [(report, addr)] = self.rtcp_port.written
        self.assertEqual(addr, (PEER[0], PEER[1] + 1))
        packets = rtcp.parse_compound(self.peer.rx.unprotect_rtcp(report))
        self.assertEqual(packets[-1].packet_type, 203)

    def test_srtcp_in(self):
        """
        SRTCP from the peer reaches rtcp_received decrypted; a forgery and a replay do not.
        """
        seen = []
        self.leg.rtcp_received = seen.append
        protected = self.peer.tx.protect_rtcp(rtcp.build_pli(0xBEEF, self.leg.ssrc))
        self.rtcp_port.protocol.datagramReceived(protected, (PEER[0], PEER[1] + 1))
        forged = bytearray(self.peer.tx.protect_rtcp(rtcp.build_pli(0xBEEF, self.leg.ssrc)))
        forged[-1] ^= 1
        self.rtcp_port.protocol.datagramReceived(bytes(forged), (PEER[0], PEER[1] + 1))
        self.rtcp_port.protocol.datagramReceived(protected, (PEER[0], PEER[1] + 1))
        self.assertEqual(len(seen), 1)
        self.assertEqual((self.leg.srtp_auth_failures, self.leg.srtp_replays), (1, 1))

    def test_muxed_srtcp(self):
        """
        With rtcp-mux, SRTCP on the RTP port is told from SRTP by its packet type.
        """
        self.leg.rtcp_mux = True
        self.leg.set_remote(*PEER)
        seen = []
        self.leg.rtcp_received = seen.append
        self.leg.datagramReceived(self.from_peer(1), PEER)
        self.leg.datagramReceived(
            self.peer.tx.protect_rtcp(rtcp.build_pli(0xBEEF, self.leg.ssrc)), PEER)
        self.assertEqual((len(self.received), len(seen)), (1, 1))

    def test_back_to_plain(self):
        """
        set_srtp(None) returns to plain RTP both ways.
        """
        self.leg.set_srtp(None)
        packet = build_rtp(0, 1, 160, 0xBEEF, b"\xff" * 160)
        self.leg.datagramReceived(packet, PEER)
        self.assertEqual(self.received, [packet])
        self.leg.send_payload(b"\xfe" * 160, 0)
        self.assertEqual(len(self.port.written[-1][0]), 172)


class NegotiationTests(SynchronousTestCase):
    """
    RTPMediaSession: SRTP from SDP, per policy.
    """

    def session(self, srtp="answer"):
        reactor = FakeUDPReactor()
        session = RTPMediaSession(reactor, "203.0.113.1", "203.0.113.1", PortPool(31000, 31019),
                                  clock=reactor, rng=random.Random(5), srtp=srtp).start()
        self.addCleanup(session.close)
        session.reactor = reactor
        return session

    def test_answer_baresip_savp(self):
        """
        baresip's RTP/SAVP offer is answered RTP/SAVP with its first usable suite (its
        order), the same tag and a fresh key of ours; the leg then runs that suite.
        """
        session = self.session()
        self.assertEqual(session.offered_codecs(BARESIP_SAVP)[0], ["PCMU/8000", "PCMA/8000"])
        answer = SessionDescription.parse(session.create_answer(BARESIP_SAVP, ["PCMU/8000"]))
        [audio] = answer.media
        self.assertEqual(audio.proto, "RTP/SAVP")
        [crypto] = crypto_attributes(audio)
        self.assertEqual((crypto.tag, crypto.suite), (1, "AES_CM_128_HMAC_SHA1_32"))
        self.assertEqual(len(crypto.key_salt), 30)
        self.assertEqual(session.srtp_suite, "AES_CM_128_HMAC_SHA1_32")
        context = session.audio_rtp.srtp
        self.assertEqual(context.local_key, crypto.key_salt)
        self.assertEqual(context.remote_key, bytes(range(30)))
        self.assertNotEqual(self.session().create_answer(BARESIP_SAVP), str(answer))

    def test_two_legs_talk(self):
        """
        A mandatory offerer and an answer-mode answerer agree on keys that work: what one
        sends, the other receives as the plain packet.
        """
        caller, callee = self.session("mandatory"), self.session()
        offer = caller.create_offer(["PCMU/8000"], [], "sendrecv")
        self.assertIn("m=audio 31", offer)
        self.assertIn("RTP/SAVP", offer)
        answer = callee.create_answer(offer.replace("203.0.113.1", "192.0.2.20"))
        caller.set_remote_answer(answer.replace("203.0.113.1", "192.0.2.30"))
        self.assertEqual(caller.srtp_suite, "AES_CM_128_HMAC_SHA1_80")
        self.assertEqual(callee.srtp_suite, "AES_CM_128_HMAC_SHA1_80")
        got = []
        callee.audio_rtp.packet_received = got.append
        caller.payload_sender()(b"\xfe" * 160, 0)
        port = caller.reactor.bound[caller.audio_rtp.local_address[1]]
        [(datagram, _)] = port.written
        callee.audio_rtp.datagramReceived(datagram, ("192.0.2.20", caller.audio_rtp.local_address[1]))
        self.assertEqual([g[12:] for g in got], [b"\xfe" * 160])

    def test_reoffer_keeps_srtp(self):
        """
        Once a stream runs SRTP (answered in the default mode), our re-offer (hold) keeps its
        transport and key, and the same answer again keeps libsrtp's state.
        """
        session = self.session()
        session.create_answer(BARESIP_SAVP)
        context = session.audio_rtp.srtp
        reoffer = SessionDescription.parse(session.create_offer(["PCMU/8000"], [], "sendonly"))
        [audio] = reoffer.media
        self.assertEqual(audio.proto, "RTP/SAVP")
        ours = {c.suite: c for c in crypto_attributes(audio)}
        self.assertEqual(ours["AES_CM_128_HMAC_SHA1_32"].key_salt, context.local_key)
        tag = ours["AES_CM_128_HMAC_SHA1_32"].tag
        session.set_remote_answer(with_offer_line(
            BARESIP_SAVP.replace("a=sendrecv", "a=recvonly"),
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB\r\n",
            "").replace("a=crypto:1 ", f"a=crypto:{tag} "))
        self.assertIs(session.audio_rtp.srtp, context)

    def test_policy_refusals(self):
        """
        off refuses RTP/SAVP, mandatory refuses plain RTP/AVP, a secure offer with no suite
        we run is refused: each with its reason, before the call rings (offered_codecs).
        """
        plain = BARESIP_SAVP.replace("RTP/SAVP", "RTP/AVP").split("a=crypto")[0]
        unknown = BARESIP_SAVP.replace("AES_CM_128_HMAC_SHA1", "F8_128_HMAC_SHA1")
        for mode, offer, reason in [
            ("off", BARESIP_SAVP, "SRTP offered but sip_srtp is off"),
            ("mandatory", plain, "SRTP required (sip_srtp=mandatory) but the offer has no keys"),
            ("answer", unknown, "No supported SRTP crypto suite offered"),
        ]:
            for call in (lambda s: s.offered_codecs(offer), lambda s: s.create_answer(offer)):
                with self.assertRaises(MediaError) as caught:
                    call(self.session(mode))
                self.assertEqual(caught.exception.info, reason)

    def test_malformed_crypto_offer(self):
        """
        A malformed a=crypto fails the offer with "Malformed SDP" (the call layer answers 488),
        not with a traceback.
        """
        bad = BARESIP_SAVP.replace("inline:AAEC", "inline:*AEC")
        with self.assertRaises(MediaError) as caught:
            self.session().offered_codecs(bad)
        self.assertTrue(caught.exception.info.startswith("Malformed SDP: invalid crypto"))

    def test_bad_answers(self):
        """
        To our RTP/SAVP offer, a plain answer or one with a tag we did not offer is refused,
        and the offer stays pending, so a correct answer is still taken.
        """
        session = self.session("mandatory")
        offer = SessionDescription.parse(session.create_offer(["PCMU/8000"], [], "sendrecv"))
        first = crypto_attributes(offer.media[0])[0]
        answer = BARESIP_SAVP.split("a=crypto")[0]
        with self.assertRaisesRegex(MediaError, "no keys"):
            session.set_remote_answer(answer)
        with self.assertRaisesRegex(MediaError, "was not offered"):
            session.set_remote_answer(answer + f"a=crypto:99 {first.suite} inline:{'A' * 40}\r\n")
        session.set_remote_answer(answer + f"a=crypto:1 {first.suite} inline:{'A' * 40}\r\n")
        self.assertEqual(session.srtp_suite, first.suite)

    def test_optional_falls_back(self):
        """
        sip_srtp=optional offers RTP/AVP with keys; a peer that ignores them gets plain RTP.
        """
        session = self.session("optional")
        offer = SessionDescription.parse(session.create_offer(["PCMU/8000"], [], "sendrecv"))
        self.assertEqual(offer.media[0].proto, "RTP/AVP")
        self.assertTrue(crypto_attributes(offer.media[0]))
        session.set_remote_answer(BARESIP_SAVP.replace("RTP/SAVP", "RTP/AVP").split("a=crypto")[0])
        self.assertIsNone(session.srtp_suite)

    def test_default_offers_plain(self):
        """
        The default policy (answer) offers plain RTP/AVP with no keys: SDES keys would cross
        cleartext signalling.
        """
        offer = self.session().create_offer(["PCMU/8000"], [], "sendrecv")
        self.assertIn("RTP/AVP", offer)
        self.assertNotIn("a=crypto", offer)
