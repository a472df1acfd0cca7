"""
Tests for L{wcs_twisted.sdp.crypto}: RFC 4568 a=crypto attributes and their offer/answer
pairing.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sdp.crypto import (
    CryptoAttribute,
    KeyParameter,
    answered_crypto,
    crypto_attributes,
    is_secure_proto,
    select_crypto,
)
from wcs_twisted.sdp.errors import SDPError
from wcs_twisted.sdp.media import MediaDescription

#: RFC 4568 section 4's example key (30 bytes: AES_CM_128 key and salt).
KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")


def media(*crypto, proto="RTP/SAVP"):
    description = MediaDescription("audio", 4000, proto, ["0"])
    for value in crypto:
        description.add_attribute("crypto", value)
    return description


class ParseTests(SynchronousTestCase):
    """
    Parsing and writing one attribute value.
    """

    def test_rfc_example(self):
        """
        RFC 4568's example parses into tag, suite, key||salt, lifetime and MKI, and is
        written back unchanged (a 2^n lifetime as its value).
        """
        value = f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:32"
        crypto = CryptoAttribute.parse(value)
        self.assertEqual(crypto.tag, 1)
        self.assertEqual(crypto.suite, "AES_CM_128_HMAC_SHA1_80")
        self.assertEqual(crypto.key_salt, base64.b64decode(KEY))
        self.assertEqual(crypto.keys[0].lifetime, 2 ** 20)
        self.assertEqual(crypto.keys[0].mki, (1, 32))
        self.assertEqual(str(crypto), f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1048576|1:32")
        self.assertEqual(CryptoAttribute.parse(str(crypto)), crypto)

    def test_plain_key_round_trip(self):
        """
        A key with no lifetime or MKI, as baresip writes it, round-trips exactly.
        """
        value = f"3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"
        self.assertEqual(str(CryptoAttribute.parse(value)), value)
        self.assertEqual(str(KeyParameter(b"\x00" * 30)), "inline:" + "A" * 40)

    def test_session_parameters(self):
        """
        Session parameters are kept; only a window size hint leaves the attribute usable.
        """
        wsh = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} WSH=64")
        kdr = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=1 WSH=64")
        self.assertEqual(kdr.session_parameters, ("KDR=1", "WSH=64"))
        self.assertTrue(wsh.usable(SUITES))
        self.assertFalse(kdr.usable(SUITES))
        self.assertFalse(CryptoAttribute.parse(
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP").usable(SUITES))

    def test_unusable(self):
        """
        An unknown suite (any key size), several keys or an MKI parse but are not usable.
        """
        unknown = CryptoAttribute.parse("1 F8_128_HMAC_SHA1_80 inline:AAAA")
        self.assertFalse(unknown.usable(SUITES))
        two = CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4;inline:{KEY}|2:4")
        self.assertEqual(len(two.keys), 2)
        self.assertFalse(two.usable(SUITES))
        self.assertFalse(CryptoAttribute.parse(
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4").usable(SUITES))
        self.assertFalse(CryptoAttribute.parse(
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}").usable(("AEAD_AES_128_GCM",)))

    def test_malformed(self):
        """
        Each malformed attribute raises SDPError with status 488, never another exception.
        """
        for value in [
            "",
            "1 AES_CM_128_HMAC_SHA1_80",
            f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
            f"-1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
            f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
            f"1 AES-CM inline:{KEY}",
            f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}",
            f"1 AES_CM_128_HMAC_SHA1_80 {KEY}",
            "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AEAD_AES_128_GCM inline:" + KEY,
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^x",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|0",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:0",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:999",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4|2^20",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|2^20",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1|2|3",
        ]:
            with self.assertRaises(SDPError, msg=value) as caught:
                CryptoAttribute.parse(value)
            self.assertEqual(caught.exception.status_hint, 488)
            self.assertIn("crypto", str(caught.exception))

    def test_secure_protos(self):
        """
        RTP/SAVP and RTP/SAVPF are secure in any case; RTP/AVP and the browser's
        UDP/TLS/RTP/SAVPF (DTLS keys, not SDES) are not.
        """
        self.assertTrue(is_secure_proto("RTP/SAVP"))
        self.assertTrue(is_secure_proto("rtp/savpf"))
        self.assertFalse(is_secure_proto("RTP/AVP"))
        self.assertFalse(is_secure_proto("UDP/TLS/RTP/SAVPF"))


class OfferAnswerTests(SynchronousTestCase):
    """
    Choosing what to answer and pairing an answer with its offer.
    """

    def test_attributes_of_a_media_line(self):
        """
        crypto_attributes reads every a=crypto in order and refuses repeated tags.
        """
        line = media(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
                     f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}")
        self.assertEqual([c.tag for c in crypto_attributes(line)], [1, 2])
        with self.assertRaises(SDPError):
            crypto_attributes(media(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
                                    f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"))

    def test_select_offerer_order(self):
        """
        The offerer's first usable attribute is taken, skipping unknown suites and MKIs.
        """
        offered = crypto_attributes(media(
            "1 F8_128_HMAC_SHA1_80 inline:AAAA",
            f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4",
            f"3 AES_CM_128_HMAC_SHA1_32 inline:{KEY}",
            f"4 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
        ))
        self.assertEqual(select_crypto(offered, SUITES).tag, 3)
        self.assertIsNone(select_crypto(offered[:2], SUITES))

    def test_answered_pair(self):
        """
        The answer's one attribute is paired with the offered one of the same tag.
        """
        offer = media(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
                      "2 AES_CM_128_HMAC_SHA1_32 inline:" + "B" * 40)
        answer = media("2 AES_CM_128_HMAC_SHA1_32 inline:" + "C" * 40)
        offered, answered = answered_crypto(offer, answer)
        self.assertEqual((offered.tag, offered.key_salt), (2, base64.b64decode("B" * 40)))
        self.assertEqual(answered.key_salt, base64.b64decode("C" * 40))
        self.assertIsNone(answered_crypto(offer, media(proto="RTP/AVP")))

    def test_answer_not_fitting(self):
        """
        An answer with a tag not offered, another suite under an offered tag, or two
        attributes is an SDPError.
        """
        offer = media(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")
        for answer in [
            media(f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
            media(f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),
            media(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}",
                  f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
        ]:
            with self.assertRaises(SDPError):
                answered_crypto(offer, answer)
