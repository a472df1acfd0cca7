"""
Tests for L{wcs_twisted.sdp.session}: parsing, writing and the typed views
of session descriptions, over the corpus in C{tests/data/sdp/}.
"""

import ast
import os
import re
import sys
from textwrap import dedent

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sdp import errors, session
from wcs_twisted.sdp.codecs import Codec, format_fmtp, parse_fmtp
from wcs_twisted.sdp.errors import SDPError
from wcs_twisted.sdp.fields import (
    Attribute,
    Bandwidth,
    Candidate,
    Connection,
    Direction,
    Fingerprint,
    Group,
    Origin,
    SSRCAttribute,
    SSRCGroup,
    Timing,
)
from wcs_twisted.sdp.media import MediaDescription
from wcs_twisted.sdp.session import SessionDescription

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sdp")
CORPUS = sorted(name for name in os.listdir(DATA) if name.endswith(".sdp"))


def load(name: str) -> bytes:
    """
    The bytes of one corpus file.
    """
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def parse(name: str) -> SessionDescription:
    """
    One corpus file, parsed.
    """
    return SessionDescription.parse(load(name))


def crlf(text: str) -> str:
    """
    Dedent C{text} and give it CRLF line endings.
    """
    return dedent(text).lstrip("\n").replace("\n", "\r\n")


class CorpusRoundTripTests(SynchronousTestCase):
    """
    Every corpus file parses and is written back byte for byte.
    """

    def test_corpus_is_not_empty(self) -> None:
        """
        The corpus holds the real offers this suite relies on.
        """
        self.assertGreaterEqual(len(CORPUS), 13)

    def test_readme_lists_every_file(self) -> None:
        """
        Every corpus file has its origin recorded in the README, and the
        README names no missing file.
        """
        with open(os.path.join(DATA, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        mentioned = set(re.findall(r"`([a-z0-9.-]+[.]sdp)`", readme))
        self.assertEqual(mentioned, set(CORPUS))

    def test_parse_twice_equal(self) -> None:
        """
        Parsing the written text again gives an equal object.
        """
        for name in CORPUS:
            description = parse(name)
            self.assertEqual(SessionDescription.parse(str(description)), description, name)


def _round_trip_test(name: str):
    def test(self: SynchronousTestCase) -> None:
        data = load(name)
        description = SessionDescription.parse(data)
        self.assertEqual(bytes(description), data)
        self.assertEqual(str(description), data.decode("utf-8"))

    test.__doc__ = f"{name} is written back byte for byte after parsing."
    return test


for _name in CORPUS:
    setattr(
        CorpusRoundTripTests,
        "test_round_trip_" + _name[:-4].replace("-", "_").replace(".", "_"),
        _round_trip_test(_name),
    )
del _name


class ChromeOfferTests(SynchronousTestCase):
    """
    A real Chromium 156 offer as the WCS WebSDK sends it (BUNDLE, rtcp-mux,
    no candidates because it is sent before ICE gathering).
    """

    def setUp(self) -> None:
        self.sdp = parse("chrome-156-offer-audio-video.sdp")
        self.audio, self.video = self.sdp.media

    def test_session_level(self) -> None:
        """
        The o= line, BUNDLE group and msid-semantic value are read as written.
        """
        self.assertEqual(
            self.sdp.origin,
            Origin("-", "3668901259849965359", 2, "IN", "IP4", "127.0.0.1"),
        )
        self.assertEqual(self.sdp.name, "-")
        self.assertEqual([(t.start, t.stop) for t in self.sdp.timing], [(0, 0)])
        self.assertEqual(self.sdp.groups, [Group("BUNDLE", ("0", "1"))])
        self.assertEqual(self.sdp.bundle_groups, [("0", "1")])
        self.assertEqual(
            self.sdp.get_attribute("msid-semantic"),
            " WMS 1ca5de13-fe99-4381-81c8-c820946ca0c2",
        )
        self.assertTrue(self.sdp.has_attribute("extmap-allow-mixed"))
        self.assertIsNone(self.sdp.get_attribute("extmap-allow-mixed"))

    def test_media_lines(self) -> None:
        """
        Both m= lines are read with port 9, the WebRTC profile and mids.
        """
        self.assertEqual(
            (self.audio.kind, self.audio.port, self.audio.proto),
            ("audio", 9, "UDP/TLS/RTP/SAVPF"),
        )
        self.assertEqual(self.audio.fmt, ["111", "63", "9", "0", "8", "13", "110", "126"])
        self.assertEqual(self.video.kind, "video")
        self.assertEqual([self.audio.mid, self.video.mid], ["0", "1"])
        self.assertIs(self.sdp.media_by_mid("1"), self.video)
        self.assertIsNone(self.sdp.media_by_mid("2"))
        self.assertEqual(list(self.sdp), [self.audio, self.video])
        self.assertEqual(self.audio.connection, Connection("IN", "IP4", "0.0.0.0"))

    def test_ice_and_dtls(self) -> None:
        """
        ICE credentials, options, fingerprint and setup role are exposed;
        there are no candidates.
        """
        self.assertEqual(self.audio.ice_ufrag, "jPDP")
        self.assertEqual(self.audio.ice_pwd, "QkTlfojCgC5xDtVhMDvlwUh9")
        self.assertEqual(self.audio.ice_options, ("trickle",))
        self.assertFalse(self.audio.ice_lite)
        self.assertEqual(
            self.audio.fingerprints,
            [
                Fingerprint(
                    "sha-256",
                    "9B:BD:55:18:25:47:6E:74:9F:E1:C8:01:00:E6:82:C3:"
                    "54:CC:ED:6F:3B:74:A4:FA:9F:B9:EC:8D:21:D5:9C:BD",
                )
            ],
        )
        self.assertEqual(self.audio.setup, "actpass")
        self.assertEqual(self.audio.candidates, [])
        self.assertFalse(self.audio.end_of_candidates)
        self.assertTrue(self.sdp.uses_ice(self.audio))

    def test_rtcp(self) -> None:
        """
        rtcp-mux and the RFC 3605 a=rtcp port and address are read.
        """
        self.assertTrue(self.audio.rtcp_mux)
        self.assertEqual(self.audio.rtcp_port, 9)
        self.assertEqual(self.audio.rtcp_address, "0.0.0.0")

    def test_audio_codecs(self) -> None:
        """
        rtpmap, fmtp and rtcp-fb are combined per payload type, in m= order.
        """
        codecs = self.audio.codecs
        self.assertEqual(
            [str(c) for c in codecs],
            [
                "111 opus/48000/2",
                "63 red/48000/2",
                "9 G722/8000",
                "0 PCMU/8000",
                "8 PCMA/8000",
                "13 CN/8000",
                "110 telephone-event/48000",
                "126 telephone-event/8000",
            ],
        )
        self.assertEqual(
            codecs[0],
            Codec(
                111, "opus", 48000, 2, {"minptime": "10", "useinbandfec": "1"}, ("transport-cc",)
            ),
        )
        self.assertEqual(codecs[1].parameters, {"111/111": None})
        self.assertEqual([c.payload_type for c in self.audio.telephone_events], [110, 126])
        self.assertEqual(self.audio.codec(126).clock_rate, 8000)
        self.assertIsNone(self.audio.codec(127))

    def test_video_codecs(self) -> None:
        """
        H.264 variants keep their own fmtp; rtx carries its apt.
        """
        by_type = {c.payload_type: c for c in self.video.codecs}
        self.assertEqual(
            by_type[102].parameters,
            {
                "level-asymmetry-allowed": "1",
                "packetization-mode": "1",
                "profile-level-id": "42001f",
            },
        )
        self.assertEqual(by_type[104].parameters["packetization-mode"], "0")
        self.assertEqual(by_type[97].parameters, {"apt": "96"})
        self.assertEqual(
            by_type[96].rtcp_fb,
            ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"),
        )
        self.assertEqual(len(self.video.codecs), len(self.video.fmt))

    def test_ssrc_and_msid(self) -> None:
        """
        a=ssrc lines and a=msid are read.
        """
        self.assertEqual(
            self.audio.ssrcs,
            [
                SSRCAttribute(4175305518, "cname", "wxbSyugHMz2gQGvs"),
                SSRCAttribute(
                    4175305518,
                    "msid",
                    "1ca5de13-fe99-4381-81c8-c820946ca0c2 6976af8f-a7dc-4fce-81e5-8abaede77102",
                ),
            ],
        )
        self.assertEqual(
            self.audio.msid,
            "1ca5de13-fe99-4381-81c8-c820946ca0c2 6976af8f-a7dc-4fce-81e5-8abaede77102",
        )

    def test_direction_ignores_ice_placeholder_address(self) -> None:
        """
        c=IN IP4 0.0.0.0 in an ICE offer is a placeholder, not an RFC 2543
        hold: the stream stays sendrecv (RFC 8839 section 4.2.1.1).
        """
        self.assertEqual(self.audio.direction, Direction.SENDRECV)
        self.assertEqual(self.sdp.direction_for(self.audio), Direction.SENDRECV)

    def test_play_offer_is_recvonly(self) -> None:
        """
        The Chromium offer used for playing a stream is recvonly on both lines.
        """
        play = parse("chrome-156-offer-play-recvonly.sdp")
        self.assertEqual(
            [play.direction_for(m) for m in play.media],
            [Direction.RECVONLY, Direction.RECVONLY],
        )
        self.assertEqual(play.media[0].ssrcs, [])


class AiortcOfferTests(SynchronousTestCase):
    """
    An offer written by aiortc 1.16 after ICE gathering.
    """

    def setUp(self) -> None:
        self.sdp = parse("aiortc-1.16.0-offer.sdp")
        self.audio, self.video = self.sdp.media

    def test_candidates(self) -> None:
        """
        Host candidates and end-of-candidates are parsed.
        """
        self.assertEqual(
            self.audio.candidates,
            [
                Candidate(
                    "f957a2332b1715da3b0ef8ba684454eb",
                    1,
                    "udp",
                    2130706431,
                    "192.0.2.2",
                    60412,
                    "host",
                ),
                Candidate(
                    "d0bcf3d9c29a2bc887618212a1623bfa",
                    1,
                    "udp",
                    2130706431,
                    "fd00::2",
                    50296,
                    "host",
                ),
            ],
        )
        self.assertTrue(self.audio.end_of_candidates)
        self.assertEqual(self.sdp.connection_for(self.audio).address, "192.0.2.2")

    def test_fingerprints_and_groups(self) -> None:
        """
        All three fingerprints and the FID ssrc-group are read.
        """
        self.assertEqual(
            [f.algorithm for f in self.video.fingerprints],
            ["sha-256", "sha-384", "sha-512"],
        )
        self.assertEqual(self.video.ssrc_groups, [SSRCGroup("FID", (123683417, 1702978382))])
        self.assertEqual(self.sdp.get_attribute("msid-semantic"), "WMS *")


class SIPPhoneOfferTests(SynchronousTestCase):
    """
    Offers captured from SIP phones and tools.
    """

    def test_baresip_wildcard_feedback(self) -> None:
        """
        baresip's a=rtcp-fb:* applies to every video payload type.
        """
        sdp = parse("baresip-1.0.0-offer.sdp")
        audio, video = sdp.media
        self.assertEqual({c.rtcp_fb for c in video.codecs}, {("nack pli",)})
        self.assertEqual(audio.codecs[0].rtcp_fb, ())
        self.assertEqual(audio.ptime, 20)
        self.assertEqual(audio.get_attribute("minptime"), "20")
        self.assertEqual(audio.telephone_events[0].parameters, {"0-15": None})
        self.assertEqual(video.get_attribute("framerate"), "25.00")
        self.assertEqual(sdp.connection, Connection("IN", "IP4", "127.0.0.1"))
        self.assertEqual(sdp.get_attribute("tool"), "baresip 1.0.0")

    def test_linphone_static_payload_without_rtpmap(self) -> None:
        """
        Static payload type 18 has only an fmtp line; RFC 3551 gives G729.
        """
        audio = parse("linphone-5.1.65-offer.sdp").media[0]
        by_type = {c.payload_type: c for c in audio.codecs}
        self.assertEqual(
            by_type[18],
            Codec(18, "G729", 8000, None, {"annexb": "yes"}, ("trr-int 5000", "ccm tmmbr")),
        )
        self.assertEqual([c.clock_rate for c in audio.telephone_events], [48000, 16000, 8000])

    def test_sipp_offers(self) -> None:
        """
        The SIPp offers carry PCMU, with and without telephone-event.
        """
        plain = parse("sipp-3.6.1-uac-offer.sdp").media[0]
        self.assertEqual([str(c) for c in plain.codecs], ["0 PCMU/8000"])
        self.assertIsNone(plain.direction)
        dtmf = parse("sipp-3.6.1-telephone-event-offer.sdp").media[0]
        self.assertEqual([str(c) for c in dtmf.codecs], ["0 PCMU/8000", "101 telephone-event/8000"])
        self.assertEqual(dtmf.direction, Direction.SENDRECV)

    def test_kamailio_rewritten_offer(self) -> None:
        """
        The offer rewritten by Kamailio sdpops has no video and no opus.
        """
        sdp = parse("kamailio-5.6.3-sdpops-offer.sdp")
        self.assertEqual([m.kind for m in sdp.media], ["audio"])
        self.assertEqual(sdp.media[0].fmt, ["9", "0", "8", "101"])


class AllLineTypesTests(SynchronousTestCase):
    """
    The hand-written description that uses every RFC 8866 line type.
    """

    def setUp(self) -> None:
        self.sdp = parse("rfc8866-all-line-types.sdp")

    def test_session_fields(self) -> None:
        """
        v o s i u e p c b t r z k a at session level are all read.
        """
        sdp = self.sdp
        self.assertEqual(sdp.version, 0)
        self.assertEqual(sdp.origin.username, "jdoe")
        self.assertEqual(sdp.origin.session_version, 3724394405)
        self.assertEqual(sdp.name, "Call to John Smith")
        self.assertEqual(sdp.information, "SDP Offer #1")
        self.assertEqual(sdp.uri, "http://www.jdoe.example.com/home.html")
        self.assertEqual(sdp.emails, ["Jane Doe <jane@jdoe.example.com>"])
        self.assertEqual(sdp.phones, ["+1 617 555-6011"])
        self.assertEqual(sdp.bandwidths, [Bandwidth("CT", 128)])
        self.assertEqual(
            sdp.timing,
            [
                Timing(3724394400, 3724398000, ["604800 3600 0 90000", "7d 1h 0 25h"]),
                Timing(0, 0, []),
            ],
        )
        self.assertEqual(sdp.time_zones, "3730928400 -1h 3749680800 0")
        self.assertEqual(sdp.key, "prompt")
        self.assertEqual(sdp.direction, Direction.RECVONLY)

    def test_media_fields(self) -> None:
        """
        Media-level i c b k, multicast suffixes and port counts are read.
        """
        audio, video = self.sdp.media
        self.assertEqual(audio.information, "Voice stream")
        self.assertEqual(audio.connections, [Connection("IN", "IP4", "233.252.0.1", 127, 2)])
        self.assertEqual(audio.bandwidths, [Bandwidth("AS", 64)])
        self.assertEqual(audio.key, "prompt")
        self.assertEqual((video.port, video.port_count), (51372, 2))
        self.assertEqual(video.connection, Connection("IN", "IP6", "ff15::101", None, 3))
        self.assertEqual([str(c) for c in video.codecs], ["99 h263-1998/90000"])

    def test_session_direction_applies_to_media(self) -> None:
        """
        A session-level direction applies to media without their own
        (RFC 8866 section 6.7).
        """
        self.assertIsNone(self.sdp.media[0].direction)
        self.assertEqual(self.sdp.direction_for(self.sdp.media[0]), Direction.RECVONLY)


class LegacyAndLayoutTests(SynchronousTestCase):
    """
    Hand-written descriptions for the legacy hold, a Firefox-style layout
    and unknown line types.
    """

    def test_legacy_hold(self) -> None:
        """
        c=0.0.0.0 without ICE means "do not send to me": sendrecv becomes
        sendonly (RFC 3264 section 8.4).
        """
        sdp = parse("rfc3264-legacy-hold.sdp")
        self.assertEqual(sdp.direction_for(sdp.media[0]), Direction.SENDONLY)
        self.assertTrue(sdp.connection.is_unspecified)

    def test_legacy_hold_recvonly_becomes_inactive(self) -> None:
        """
        A recvonly stream at 0.0.0.0 receives nothing either: inactive.
        """
        sdp = parse("rfc3264-legacy-hold.sdp")
        sdp.media[0].direction = Direction.RECVONLY
        self.assertEqual(sdp.direction_for(sdp.media[0]), Direction.INACTIVE)

    def test_blank_session_name_kept(self) -> None:
        """
        The RFC 8866 "s= " (one blank) survives the trailing-blank tolerance.
        """
        sdp = parse("rfc3264-legacy-hold.sdp")
        self.assertEqual(sdp.name, " ")
        self.assertIn("\r\ns= \r\n", str(sdp))

    def test_session_level_dtls_fallback(self) -> None:
        """
        A fingerprint written only at session level applies to each media.
        """
        sdp = parse("firefox-layout-session-level-dtls.sdp")
        audio = sdp.media[0]
        self.assertEqual(audio.fingerprints, [])
        self.assertEqual(sdp.fingerprints_for(audio), sdp.fingerprints)
        self.assertEqual(sdp.fingerprints[0].algorithm, "sha-256")
        self.assertEqual(sdp.attribute_for(audio, "ice-ufrag"), "4e1b2c3d")
        self.assertEqual(sdp.attribute_for(audio, "ice-options"), "trickle")
        self.assertIsNone(sdp.attribute_for(audio, "ice-lite"))
        self.assertEqual(sdp.ice_options, ("trickle",))

    def test_explicit_mono_channel(self) -> None:
        """
        "G722/8000/1" keeps its explicit channel count and equals one channel.
        """
        audio = parse("firefox-layout-session-level-dtls.sdp").media[0]
        g722 = audio.codec(9)
        self.assertEqual(g722.channels, 1)
        self.assertEqual(g722.channel_count, 1)
        self.assertEqual(g722.rtpmap, "G722/8000/1")
        self.assertTrue(g722.same_format(Codec(9, "g722", 8000)))

    def test_unknown_lines_kept(self) -> None:
        """
        Unknown y= and f= lines stay with their media section.
        """
        sdp = parse("gb28181-style-unknown-lines.sdp")
        self.assertEqual(sdp.media[0].other_lines, [("y", "0100000001"), ("f", "")])
        self.assertEqual(sdp.other_lines, [])


class ToleranceTests(SynchronousTestCase):
    """
    Inputs that deviate from the grammar in harmless ways are accepted.
    """

    def test_lf_line_endings(self) -> None:
        """
        LF-only input parses and is written with CRLF.
        """
        data = load("sipp-3.6.1-telephone-event-offer.sdp")
        sdp = SessionDescription.parse(data.replace(b"\r\n", b"\n"))
        self.assertEqual(bytes(sdp), data)

    def test_trailing_blanks_and_blank_lines(self) -> None:
        """
        Trailing spaces and tabs, blank lines and a missing final newline
        are ignored.
        """
        text = (
            "v=0 \r\n\r\no=- 1 2 IN IP4 192.0.2.1\t\r\ns=-\r\n"
            "t=0 0  \r\nm=audio 4000 RTP/AVP 0 \r\na=sendonly "
        )
        sdp = SessionDescription.parse(text)
        self.assertEqual(
            str(sdp),
            crlf(
                """
                v=0
                o=- 1 2 IN IP4 192.0.2.1
                s=-
                t=0 0
                m=audio 4000 RTP/AVP 0
                a=sendonly
                """
            ),
        )

    def test_missing_session_name_and_timing(self) -> None:
        """
        A description without s= and t= parses and is written without them.
        """
        text = crlf(
            """
            v=0
            o=- 1 1 IN IP4 192.0.2.1
            c=IN IP4 192.0.2.1
            m=audio 4000 RTP/AVP 8
            """
        )
        sdp = SessionDescription.parse(text)
        self.assertIsNone(sdp.name)
        self.assertEqual(sdp.timing, [])
        self.assertEqual(str(sdp), text)

    def test_non_utf8_bytes_round_trip(self) -> None:
        """
        Latin-1 bytes in s= survive parse and bytes().
        """
        data = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Caf\xe9\r\nt=0 0\r\n"
        self.assertEqual(bytes(SessionDescription.parse(data)), data)

    def test_rejected_stream_without_formats(self) -> None:
        """
        A port-0 m= line without formats is accepted and kept as written.
        """
        text = crlf(
            """
            v=0
            o=- 1 1 IN IP4 192.0.2.1
            s=-
            t=0 0
            m=video 0 RTP/AVP
            """
        )
        sdp = SessionDescription.parse(text)
        self.assertEqual(sdp.media[0].fmt, [])
        self.assertEqual(str(sdp), text)

    def test_session_without_media(self) -> None:
        """
        A description with no m= line is valid (RFC 3264 section 5).
        """
        sdp = SessionDescription.parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n")
        self.assertEqual(sdp.media, [])

    def test_non_rtp_media_has_no_codecs(self) -> None:
        """
        Formats of non-RTP media (data channels, T.38) are not payload types.
        """
        sdp = SessionDescription.parse(
            crlf(
                """
                v=0
                o=- 1 1 IN IP4 192.0.2.1
                s=-
                t=0 0
                m=application 9 UDP/DTLS/SCTP webrtc-datachannel
                m=image 4002 udptl t38
                """
            )
        )
        self.assertEqual([m.codecs for m in sdp.media], [[], []])
        self.assertFalse(sdp.media[0].is_rtp)

    def test_unknown_dynamic_payload_type_skipped(self) -> None:
        """
        A dynamic payload type without an rtpmap is left out of the codecs.
        """
        sdp = SessionDescription.parse(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 97 0\r\n"
        )
        self.assertEqual([c.payload_type for c in sdp.media[0].codecs], [0])


BASE = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"

# (description of the defect, input, exact message)
BROKEN = [
    ("empty input", "", "empty session description"),
    ("only blank lines", "\r\n \r\n", "empty session description"),
    (
        "starts with o=",
        "o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n",
        "session description does not start with v=",
    ),
    ("starts with a=", "a=sendrecv\r\nv=0\r\n", "session description does not start with v="),
    ("version 1", "v=1\r\n", "unsupported SDP version: v='1'"),
    ("duplicate v=", BASE + "v=0\r\n", "duplicate v= line"),
    ("no o=", "v=0\r\ns=-\r\nt=0 0\r\n", "session description has no o= line"),
    ("short o=", "v=0\r\no=- 1 1 IN IP4\r\n", "invalid origin line: o='- 1 1 IN IP4'"),
    (
        "o= version not a number",
        "v=0\r\no=- 1 x IN IP4 h\r\n",
        "invalid origin session version: 'x'",
    ),
    ("duplicate o=", BASE + "o=- 1 1 IN IP4 192.0.2.1\r\n", "duplicate o= line"),
    ("line without =", BASE + "hello\r\n", "invalid SDP line: 'hello'"),
    ("one letter line", BASE + "m\r\n", "invalid SDP line: 'm'"),
    ("empty attribute name", BASE + "a=:x\r\n", "invalid attribute line: 'a=:x'"),
    ("short c=", BASE + "c=IN IP4\r\n", "invalid connection line: c='IN IP4'"),
    (
        "duplicate session c=",
        BASE + "c=IN IP4 a\r\nc=IN IP4 b\r\n",
        "duplicate session-level c= line",
    ),
    ("bad ttl", BASE + "c=IN IP4 233.252.0.1/x\r\n", "invalid connection address suffix: 'x'"),
    ("bad bandwidth", BASE + "b=AS:lots\r\n", "invalid bandwidth: 'lots'"),
    ("bandwidth without type", BASE + "b=64\r\n", "invalid bandwidth line: b='64'"),
    ("bad t=", "v=0\r\no=- 1 1 IN IP4 h\r\nt=0\r\n", "invalid timing line: t='0'"),
    (
        "r= before t=",
        "v=0\r\no=- 1 1 IN IP4 h\r\nr=1 2 3\r\n",
        "r= line without a preceding t= line",
    ),
    ("short m=", BASE + "m=audio 4000\r\n", "invalid media line: m='audio 4000'"),
    (
        "m= without formats",
        BASE + "m=audio 4000 RTP/AVP\r\n",
        "media line has no formats: m='audio 4000 RTP/AVP'",
    ),
    ("m= port not a number", BASE + "m=audio x RTP/AVP 0\r\n", "invalid media port: 'x'"),
    ("m= port too big", BASE + "m=audio 70000 RTP/AVP 0\r\n", "media port out of range: 70000"),
    ("negative port", BASE + "m=audio -1 RTP/AVP 0\r\n", "invalid media port: '-1'"),
    (
        "t= inside media",
        BASE + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n",
        "t= line inside a media description",
    ),
    (
        "o= inside media",
        BASE + "m=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 h\r\n",
        "o= line inside a media description",
    ),
    (
        "oversized",
        BASE + "a=x:" + "y" * session.MAX_SDP_SIZE + "\r\n",
        "session description longer than 65536 characters",
    ),
]

# (description, media section, exact message) for errors found by typed views.
BROKEN_VIEWS = [
    ("payload type not a number", "m=audio 4000 RTP/AVP x\r\n", "invalid payload type: 'x'"),
    ("payload type out of range", "m=audio 4000 RTP/AVP 200\r\n", "payload type out of range: 200"),
    (
        "rtpmap without clock",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n",
        "invalid rtpmap attribute: '96 opus'",
    ),
    (
        "rtpmap bad channels",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/x\r\n",
        "invalid rtpmap attribute: '96 opus/48000/x'",
    ),
    ("empty fmtp", "m=audio 4000 RTP/AVP 96\r\na=fmtp:\r\n", "invalid fmtp attribute: ''"),
]


class ErrorTests(SynchronousTestCase):
    """
    Broken descriptions raise L{SDPError} with an exact message and a 488
    status hint.
    """

    def test_broken_descriptions(self) -> None:
        """
        Each structural defect raises SDPError with its own message.
        """
        for description, text, message in BROKEN:
            error = self.assertRaises(SDPError, SessionDescription.parse, text)
            self.assertEqual(str(error), message, description)
            self.assertEqual(error.status_hint, 488, description)

    def test_broken_codec_attributes(self) -> None:
        """
        Malformed payload formats raise SDPError when the codecs are read.
        """
        for description, media, message in BROKEN_VIEWS:
            sdp = SessionDescription.parse(BASE + media)
            error = self.assertRaises(SDPError, lambda: sdp.media[0].codecs)
            self.assertEqual(str(error), message, description)

    def test_broken_candidate(self) -> None:
        """
        A candidate without "typ" raises SDPError.
        """
        error = self.assertRaises(SDPError, Candidate.parse, "1 1 udp 1 192.0.2.1 4000 host")
        self.assertEqual(str(error), "invalid candidate: '1 1 udp 1 192.0.2.1 4000 host'")

    def test_error_classes(self) -> None:
        """
        SDPError is a ValueError that does not depend on the SIP package.
        """
        self.assertTrue(issubclass(SDPError, ValueError))
        self.assertTrue(issubclass(errors.NoCommonCodec, SDPError))
        self.assertEqual(errors.NoCommonCodec().status_hint, 488)
        self.assertEqual(str(errors.NoCommonCodec()), "No common codecs")
        self.assertEqual(SDPError("x", 491).status_hint, 491)


class EditingTests(SynchronousTestCase):
    """
    Descriptions can be built and changed through the typed API.
    """

    def test_build_from_scratch(self) -> None:
        """
        A description assembled from values is written in RFC order.
        """
        media = MediaDescription("audio", 40000, "RTP/AVP")
        media.set_codecs(
            [Codec(0, "PCMU", 8000), Codec(101, "telephone-event", 8000, None, {"0-16": None})]
        )
        media.direction = Direction.SENDRECV
        media.add_attribute("ptime", "20")
        sdp = SessionDescription(
            origin=Origin("wcs", "42", 1, "IN", "IP4", "192.0.2.5"),
            connection=Connection.for_address("192.0.2.5"),
            timing=[Timing()],
            media=[media],
        )
        self.assertEqual(
            str(sdp),
            crlf(
                """
                v=0
                o=wcs 42 1 IN IP4 192.0.2.5
                s=-
                c=IN IP4 192.0.2.5
                t=0 0
                m=audio 40000 RTP/AVP 0 101
                a=rtpmap:0 PCMU/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-16
                a=sendrecv
                a=ptime:20
                """
            ),
        )

    def test_direction_setter_keeps_position(self) -> None:
        """
        Setting the direction replaces the old attribute in place.
        """
        sdp = parse("sipp-3.6.1-telephone-event-offer.sdp")
        media = sdp.media[0]
        media.add_attribute("x-last")
        media.direction = Direction.INACTIVE
        self.assertEqual(
            [str(a) for a in media.attributes[-3:]], ["ptime:20", "inactive", "x-last"]
        )
        media.direction = None
        self.assertIsNone(media.direction)
        self.assertEqual(sdp.direction_for(media), Direction.SENDRECV)

    def test_set_codecs_replaces_format_attributes(self) -> None:
        """
        set_codecs rewrites the m= formats and rtpmap/fmtp/rtcp-fb lines
        where the old ones were, leaving other attributes alone.
        """
        media = parse("baresip-1.0.0-offer.sdp").media[1]
        media.set_codecs([Codec(100, "VP8", 90000, None, {}, ("nack", "nack pli"))])
        self.assertEqual(media.fmt, ["100"])
        self.assertEqual(
            [str(a) for a in media.attributes],
            [
                "rtpmap:100 VP8/90000",
                "rtcp-fb:100 nack",
                "rtcp-fb:100 nack pli",
                "sendrecv",
                "label:2",
                "rtcp-rsize",
                "ssrc:306324247 cname:sip:alice@127.0.0.1",
                "framerate:25.00",
                "content:main",
            ],
        )

    def test_attribute_helpers(self) -> None:
        """
        set_attribute, remove_attribute and get_attributes act on names.
        """
        media = MediaDescription("audio", 4000, "RTP/AVP", ["0"])
        media.add_attribute("a", "1")
        media.add_attribute("b")
        media.add_attribute("a", "2")
        self.assertEqual(media.get_attributes("a"), ["1", "2"])
        media.set_attribute("a", "3")
        self.assertEqual([str(a) for a in media.attributes], ["a:3", "b"])
        self.assertEqual(media.remove_attribute("b"), 1)
        self.assertEqual(media.remove_attribute("b"), 0)
        self.assertFalse(media.has_attribute("b"))

    def test_copy_is_independent(self) -> None:
        """
        Editing a copy leaves the original untouched.
        """
        original = parse("chrome-156-offer-audio.sdp")
        text = str(original)
        clone = original.copy()
        clone.media[0].direction = Direction.INACTIVE
        clone.media[0].port = 0
        clone.attributes.clear()
        self.assertEqual(str(original), text)
        self.assertNotEqual(str(clone), text)

    def test_origin_and_connection_text(self) -> None:
        """
        Origin and Connection values write the canonical line text.
        """
        self.assertEqual(str(Origin.parse("- 1 2 IN IP6 ::1")), "- 1 2 IN IP6 ::1")
        self.assertEqual(Connection.for_address("2001:db8::1").address_type, "IP6")
        self.assertEqual(str(Connection.parse("IN IP4 233.252.0.1/127")), "IN IP4 233.252.0.1/127")
        self.assertEqual(Attribute.parse("rtcp-mux"), Attribute("rtcp-mux", None))
        self.assertEqual(Attribute.parse("foo:"), Attribute("foo", ""))
        self.assertEqual(str(Attribute("foo", "")), "foo:")


class ValueTests(SynchronousTestCase):
    """
    The small value types parse and write their attribute values.
    """

    def test_candidate_round_trip(self) -> None:
        """
        Related address/port and extensions survive parse and str.
        """
        text = (
            "842163049 1 udp 1677729535 198.51.100.7 50001 typ srflx "
            "raddr 10.0.0.2 rport 50001 generation 0 network-cost 999"
        )
        candidate = Candidate.parse(text)
        self.assertEqual(candidate.type, "srflx")
        self.assertEqual((candidate.related_address, candidate.related_port), ("10.0.0.2", 50001))
        self.assertEqual(candidate.extensions, (("generation", "0"), ("network-cost", "999")))
        self.assertEqual(str(candidate), text)

    def test_fmtp_helpers(self) -> None:
        """
        parse_fmtp tolerates blanks and flag items; format_fmtp inverts it.
        """
        self.assertEqual(
            parse_fmtp("profile-level-id=42e01f; packetization-mode=1;;0-15"),
            {"profile-level-id": "42e01f", "packetization-mode": "1", "0-15": None},
        )
        self.assertEqual(format_fmtp({"apt": "96", "0-15": None}), "apt=96;0-15")
        self.assertEqual(parse_fmtp(""), {})

    def test_group_ssrc_values(self) -> None:
        """
        Group, SSRCGroup, SSRCAttribute and Fingerprint write what they read.
        """
        for cls, text in [
            (Group, "BUNDLE 0 1"),
            (Group, "LS"),
            (SSRCGroup, "FID 1 2"),
            (SSRCAttribute, "1 cname:x:y"),
            (SSRCAttribute, "7 flag"),
            (Fingerprint, "sha-256 AB:CD"),
            (Bandwidth, "TIAS:64000"),
        ]:
            self.assertEqual(str(cls.parse(text)), text)

    def test_codec_is_hashable_and_compared_by_value(self) -> None:
        """
        Codecs compare by all fields and can be set members.
        """
        a = Codec(96, "opus", 48000, 2, {"stereo": "1"})
        b = Codec(96, "opus", 48000, 2, {"stereo": "1"})
        self.assertEqual(a, b)
        self.assertEqual(len({a, b}), 1)
        self.assertNotEqual(a, Codec(96, "opus", 48000, 2))
        self.assertEqual(a.fmtp, "stereo=1")
        self.assertEqual(a.encoding, "opus")


class DirectionTests(SynchronousTestCase):
    """
    Direction arithmetic used by offer/answer.
    """

    def test_reverse(self) -> None:
        """
        sendonly and recvonly swap; sendrecv and inactive stay.
        """
        self.assertEqual(
            [d.reverse() for d in Direction],
            [Direction.SENDRECV, Direction.RECVONLY, Direction.SENDONLY, Direction.INACTIVE],
        )

    def test_intersect(self) -> None:
        """
        The intersection keeps only what both directions allow.
        """
        self.assertEqual(Direction.SENDRECV.intersect(Direction.SENDONLY), Direction.SENDONLY)
        self.assertEqual(Direction.RECVONLY.intersect(Direction.SENDONLY), Direction.INACTIVE)
        self.assertEqual(Direction.RECVONLY.intersect(Direction.SENDRECV), Direction.RECVONLY)
        self.assertEqual(str(Direction.SENDONLY), "sendonly")


class LayeringTests(SynchronousTestCase):
    """
    The SDP package stays sans-I/O.
    """

    def test_imports_only_stdlib_and_itself(self) -> None:
        """
        Modules of wcs_twisted.sdp import only the standard library and
        wcs_twisted.sdp (no SIP, Twisted, asyncio, socket, time or random).
        """
        package = os.path.dirname(session.__file__)
        forbidden = {"asyncio", "socket", "time", "random", "twisted", "aiortc", "av"}
        for name in sorted(os.listdir(package)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(package, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    modules = [node.module or ""]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if module.startswith("wcs_twisted."):
                        self.assertTrue(module.startswith("wcs_twisted.sdp"), (name, module))
                    else:
                        self.assertIn(top, sys.stdlib_module_names, (name, module))
                        self.assertNotIn(top, forbidden, (name, module))

    def test_source_headers(self) -> None:
        """
        Every module names its test module in its first line.
        """
        package = os.path.dirname(session.__file__)
        for name in ("errors.py", "session.py", "offer_answer.py"):
            with open(os.path.join(package, name), encoding="utf-8") as f:
                self.assertTrue(
                    f.readline().startswith("# -*- test-case-name: tests.sdp.test_"), name
                )
