"""
Tests for L{wcs_twisted.media.sdes}: the suites libsrtp runs, the sip_srtp policy, our keys,
and the libsrtp sessions an agreed exchange gives.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.errors import MediaError
from wcs_twisted.media.rtp_packet import build_rtp
from wcs_twisted.media import rtcp
from wcs_twisted.media.sdes import SDES_SUITES, SDESKeys, SRTPContext, SRTPError, is_replay
from wcs_twisted.sdp.crypto import SUITES, CryptoAttribute, crypto_attributes
from wcs_twisted.sdp.media import MediaDescription

KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"


def offered(proto="RTP/SAVP", *crypto):
    media = MediaDescription("audio", 4000, proto, ["0"])
    for value in crypto:
        media.add_attribute("crypto", value)
    return media


def pair(suite):
    """
    Two contexts that talk to each other: what one sends the other receives.
    """
    a = bytes(range(SUITES[suite].key_salt_length))
    b = bytes(reversed(range(SUITES[suite].key_salt_length)))
    return SRTPContext(suite, a, b), SRTPContext(suite, b, a)


class ContextTests(SynchronousTestCase):
    """
    SRTPContext: libsrtp sessions in both directions.
    """

    def test_suites(self):
        """
        At least RFC 4568's two AES-CM suites run, 80-bit tag first (the one every peer has).
        """
        self.assertEqual(SDES_SUITES[:2], ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"))

    def test_round_trip_every_suite(self):
        """
        RTP and RTCP protected by one side are unprotected by the other, for every suite;
        the auth tag is 10 bytes (80), 4 (32) or 16 (GCM) on RTP.
        """
        tags = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4,
                "AEAD_AES_128_GCM": 16, "AEAD_AES_256_GCM": 16}
        for suite in SDES_SUITES:
            ours, theirs = pair(suite)
            packet = build_rtp(0, 7, 160, 0x1234, b"\xff" * 160)
            protected = ours.tx.protect(packet)
            self.assertEqual(len(protected) - len(packet), tags[suite], suite)
            self.assertNotEqual(protected[12:172], packet[12:])
            self.assertEqual(theirs.rx.unprotect(protected), packet)
            report = rtcp.build_bye(0x1234)
            self.assertEqual(theirs.rx.unprotect_rtcp(ours.tx.protect_rtcp(report)), report)

    def test_forgery_and_replay(self):
        """
        A changed byte fails authentication; the same packet twice is a replay; is_replay
        tells them apart.
        """
        ours, theirs = pair("AES_CM_128_HMAC_SHA1_80")
        protected = ours.tx.protect(build_rtp(0, 8, 320, 0x1234, b"\xff" * 160))
        forged = bytearray(protected)
        forged[20] ^= 1
        with self.assertRaises(SRTPError) as caught:
            theirs.rx.unprotect(bytes(forged))
        self.assertFalse(is_replay(caught.exception))
        theirs.rx.unprotect(protected)
        with self.assertRaises(SRTPError) as caught:
            theirs.rx.unprotect(protected)
        self.assertTrue(is_replay(caught.exception))


class PolicyTests(SynchronousTestCase):
    """
    SDESKeys: what each sip_srtp mode accepts, offers and answers.
    """

    def test_modes(self):
        """
        Only the four modes exist; off refuses secure transports; every mode takes RTP/AVP.
        """
        with self.assertRaises(ValueError):
            SDESKeys("on")
        self.assertFalse(SDESKeys("off").accepts_proto("RTP/SAVP"))
        for mode in ("answer", "optional", "mandatory"):
            keys = SDESKeys(mode)
            self.assertTrue(keys.accepts_proto("RTP/SAVP") and keys.accepts_proto("RTP/SAVPF"))
        for mode in ("off", "answer", "optional", "mandatory"):
            self.assertTrue(SDESKeys(mode).accepts_proto("RTP/AVP"))
            self.assertFalse(SDESKeys(mode).accepts_proto("UDP/TLS/RTP/SAVPF"))

    def test_plans(self):
        """
        A secure offer needs a usable key; RTP/AVP with a key gets SRTP (baresip's
        best-effort mode) except when off; mandatory refuses a plain offer.
        """
        keyed = f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"
        self.assertEqual(SDESKeys().plan(offered("RTP/SAVP", keyed)).chosen.tag, 1)
        self.assertIsNone(SDESKeys().plan(offered("RTP/SAVP")))
        self.assertIsNone(SDESKeys().plan(offered("RTP/SAVP", "1 F8_128_HMAC_SHA1_80 inline:AAAA")))
        self.assertIsNotNone(SDESKeys().plan(offered("RTP/AVP", keyed)).chosen)
        self.assertIsNone(SDESKeys().plan(offered("RTP/AVP")).chosen)
        self.assertIsNone(SDESKeys("off").plan(offered("RTP/AVP", keyed)).chosen)
        self.assertIsNone(SDESKeys("off").plan(offered("RTP/SAVP", keyed)))
        self.assertIsNone(SDESKeys("mandatory").plan(offered("RTP/AVP")))

    def test_refusals_say_why(self):
        """
        Each refusal has its own reason for the call's failure info.
        """
        self.assertEqual(SDESKeys("off").refusal(offered("RTP/SAVP")),
                         "SRTP offered but sip_srtp is off")
        self.assertEqual(SDESKeys().refusal(offered("RTP/SAVP")),
                         "No supported SRTP crypto suite offered")
        self.assertIn("SRTP required", SDESKeys("mandatory").refusal(offered("RTP/AVP")))

    def test_malformed_is_media_error(self):
        """
        A malformed a=crypto becomes MediaError("Malformed SDP: ..."), whatever the mode,
        on any transport we would otherwise take.
        """
        for mode, proto in [("off", "RTP/AVP"), ("answer", "RTP/SAVP"), ("answer", "RTP/AVP"),
                            ("mandatory", "RTP/SAVP")]:
            with self.assertRaises(MediaError) as caught:
                SDESKeys(mode).plan(offered(proto, "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"))
            self.assertTrue(str(caught.exception).startswith("Malformed SDP: invalid crypto"))

    def test_keys(self):
        """
        Keys are drawn per stream and suite, at the suite's size, and kept; two sessions
        never share one.
        """
        keys = SDESKeys()
        first = keys.key("audio", "AES_CM_128_HMAC_SHA1_80")
        self.assertEqual(len(first), 30)
        self.assertEqual(keys.key("audio", "AES_CM_128_HMAC_SHA1_80"), first)
        self.assertNotEqual(keys.key("video", "AES_CM_128_HMAC_SHA1_80"), first)
        self.assertNotEqual(SDESKeys().key("audio", "AES_CM_128_HMAC_SHA1_80"), first)
        if "AEAD_AES_256_GCM" in SDES_SUITES:
            self.assertEqual(len(keys.key("audio", "AEAD_AES_256_GCM")), 44)

    def test_answer_attribute(self):
        """
        The answer repeats the chosen tag and suite with our key, nothing else.
        """
        keys = SDESKeys()
        plan = keys.plan(offered("RTP/SAVP", "1 F8_128_HMAC_SHA1_80 inline:AAAA",
                                 f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"))
        [attribute] = keys.answer_attributes("audio", plan)
        answer = CryptoAttribute.parse(attribute.value)
        self.assertEqual((answer.tag, answer.suite), (7, "AES_CM_128_HMAC_SHA1_32"))
        self.assertEqual(answer.key_salt, keys.key("audio", "AES_CM_128_HMAC_SHA1_32"))
        self.assertEqual(str(answer), f"7 AES_CM_128_HMAC_SHA1_32 inline:"
                                      f"{str(answer).split(':', 1)[1]}")

    def test_offers(self):
        """
        off and answer offer plain RTP/AVP; optional RTP/AVP with one key per suite;
        mandatory RTP/SAVP with them; a stream already secured keeps its keys in any mode.
        """
        self.assertEqual(SDESKeys("answer").offer_attributes("audio"), ())
        self.assertEqual(SDESKeys("answer").offer_proto, "RTP/AVP")
        self.assertEqual(SDESKeys("optional").offer_proto, "RTP/AVP")
        self.assertEqual(SDESKeys("mandatory").offer_proto, "RTP/SAVP")
        media = offered("RTP/SAVP")
        media.attributes.extend(SDESKeys("mandatory").offer_attributes("audio"))
        lines = crypto_attributes(media)
        self.assertEqual([c.tag for c in lines], list(range(1, len(SDES_SUITES) + 1)))
        self.assertEqual([c.suite for c in lines], list(SDES_SUITES))
        self.assertEqual(len(SDESKeys("answer").offer_attributes("audio", secured=True)),
                         len(SDES_SUITES))

    def test_agreed(self):
        """
        The agreed keys are ours from our line and theirs from theirs, whoever offered;
        a plain answer to a secure offer, or one with a foreign tag, is refused.
        """
        keys = SDESKeys("mandatory")
        ours = offered("RTP/SAVP")
        ours.attributes.extend(keys.offer_attributes("audio"))
        theirs = offered("RTP/SAVP", "2 AES_CM_128_HMAC_SHA1_32 inline:" + "B" * 40)
        suite, local, remote = keys.agreed(ours, theirs, local_is_offerer=True)
        self.assertEqual(suite, "AES_CM_128_HMAC_SHA1_32")
        self.assertEqual(local, keys.key("audio", suite))
        self.assertEqual(remote, b"\x04\x10\x41" * 10)
        self.assertEqual(keys.agreed(theirs, ours, local_is_offerer=False)[1:], (remote, local))
        with self.assertRaisesRegex(MediaError, "the answer has no keys"):
            keys.agreed(ours, offered("RTP/SAVP"), local_is_offerer=True)
        with self.assertRaisesRegex(MediaError, "Malformed SDP: .*was not offered"):
            keys.agreed(ours, offered("RTP/SAVP", f"9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
                        local_is_offerer=True)
        self.assertIsNone(SDESKeys("optional").agreed(
            offered("RTP/AVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"), offered("RTP/AVP"),
            local_is_offerer=True))
