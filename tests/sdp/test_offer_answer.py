"""
Tests for L{wcs_twisted.sdp.offer_answer} and L{wcs_twisted.sdp.codecs}: answers computed from (offer,
local capabilities) tables, offers, reading a finished exchange, hold
detection and the L{SDPNegotiator} state machine (RFC 3264).
"""

import os
from textwrap import dedent

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sdp.errors import NegotiatorStateError, NoCommonCodec, SDPError
from wcs_twisted.sdp.offer_answer import (
    LocalCapabilities,
    MediaCapability,
    NegotiatedMedia,
    NegotiatorState,
    SDPNegotiator,
    answer_direction,
    create_answer,
    create_offer,
    is_hold,
    negotiate,
    negotiated_codecs,
)
from wcs_twisted.sdp.codecs import Codec, codecs_match, find_common_codecs
from wcs_twisted.sdp.fields import Attribute, Direction
from wcs_twisted.sdp.session import SessionDescription

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sdp")

PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
G722 = Codec(9, "G722", 8000)
OPUS = Codec(111, "opus", 48000, 2, {"useinbandfec": "1"})
DTMF = Codec(101, "telephone-event", 8000, None, {"0-16": None})
DTMF48 = Codec(110, "telephone-event", 48000, None, {"0-16": None})
VP8 = Codec(96, "VP8", 90000, None, {}, ("nack", "nack pli"))
VP8_RTX = Codec(97, "rtx", 90000, None, {"apt": "96"})
H264 = Codec(
    98,
    "H264",
    90000,
    None,
    {"packetization-mode": "1", "profile-level-id": "42e01f", "level-asymmetry-allowed": "1"},
    ("nack", "nack pli"),
)

AUDIO = MediaCapability("audio", (PCMU, PCMA, DTMF), 40000, ptime=20)
VIDEO = MediaCapability("video", (VP8, VP8_RTX, H264), 40002)


def caps(*media: MediaCapability, address: str = "192.0.2.50", **kw) -> LocalCapabilities:
    """
    Local capabilities with our test address and o= username "wcs".
    """
    return LocalCapabilities(address, media, username="wcs", **kw)


def text(value: str) -> str:
    """
    Dedent C{value} and give it CRLF line endings.
    """
    return dedent(value).lstrip("\n").replace("\n", "\r\n")


def sdp(value: str) -> SessionDescription:
    """
    Parse an indented SDP literal.
    """
    return SessionDescription.parse(text(value))


def load(name: str) -> SessionDescription:
    """
    Parse one corpus file.
    """
    with open(os.path.join(DATA, name), "rb") as f:
        return SessionDescription.parse(f.read())


def phone_offer(media: str, session: str = "") -> SessionDescription:
    """
    A SIP phone offer from 198.51.100.9 with the given extra session lines
    and media sections.
    """
    return sdp(
        "v=0\no=bob 5 5 IN IP4 198.51.100.9\ns=-\nc=IN IP4 198.51.100.9\nt=0 0\n"
        + dedent(session).lstrip("\n")
        + dedent(media).lstrip("\n")
    )


def expect(media: str, head: str | None = None) -> str:
    """
    CRLF text of an expected answer: C{head} (our usual session lines when
    None) followed by C{media}.
    """
    if head is None:
        head = ANSWER_HEAD
    return text(head) + text(media)


ANSWER_HEAD = """
v=0
o=wcs 42 1 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=0 0
"""

# (behaviour, offer, capabilities, expected answer)
ANSWER_TABLE = [
    (
        "SIPp PCMU + telephone-event is answered with both, our fmtp and ptime",
        lambda: load("sipp-3.6.1-telephone-event-offer.sdp"),
        caps(AUDIO),
        expect(
            """
            m=audio 40000 RTP/AVP 0 101
            a=rtpmap:0 PCMU/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-16
            a=ptime:20
            a=sendrecv
            """
        ),
    ),
    (
        "baresip audio is answered in the offerer's order; video is rejected with port 0",
        lambda: load("baresip-1.0.0-offer.sdp"),
        caps(MediaCapability("audio", (PCMA, G722, DTMF), 40000, ptime=20)),
        expect(
            """
            m=audio 40000 RTP/AVP 9 8 101
            a=rtpmap:9 G722/8000
            a=rtpmap:8 PCMA/8000
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-16
            a=ptime:20
            a=sendrecv
            m=video 0 RTP/AVP 96 97 34 98 99 100
            """
        ),
    ),
    (
        "linphone: telephone-event kept per clock rate only where a codec has that rate",
        lambda: load("linphone-5.1.65-offer.sdp"),
        caps(MediaCapability("audio", (OPUS, PCMU, DTMF48, DTMF), 40000)),
        expect(
            """
            m=audio 40000 RTP/AVP 96 0 99 101
            a=rtpmap:96 opus/48000/2
            a=fmtp:96 useinbandfec=1
            a=rtpmap:0 PCMU/8000
            a=rtpmap:99 telephone-event/48000
            a=fmtp:99 0-16
            a=rtpmap:101 telephone-event/8000
            a=fmtp:101 0-16
            a=sendrecv
            """
        ),
    ),
    (
        "Kamailio-rewritten offer answered with PCMU only",
        lambda: load("kamailio-5.6.3-sdpops-offer.sdp"),
        caps(MediaCapability("audio", (PCMU,), 40000)),
        expect(
            """
            m=audio 40000 RTP/AVP 0
            a=rtpmap:0 PCMU/8000
            a=sendrecv
            """
        ),
    ),
    (
        "Chrome audio answered as a WebRTC peer: mid echoed, rtcp-mux, te/8000 beside PCMU",
        lambda: load("chrome-156-offer-audio.sdp"),
        caps(MediaCapability("audio", (PCMU, DTMF), 40000, protos=None, rtcp_mux=True)),
        expect(
            """
            m=audio 40000 UDP/TLS/RTP/SAVPF 0 126
            a=mid:0
            a=rtpmap:0 PCMU/8000
            a=rtpmap:126 telephone-event/8000
            a=fmtp:126 0-16
            a=sendrecv
            a=rtcp-mux
            """
        ),
    ),
    (
        "telephone-event/8000 dropped when only opus/48000 is common",
        lambda: load("chrome-156-offer-audio.sdp"),
        caps(MediaCapability("audio", (OPUS, DTMF), 40000, protos=None)),
        expect(
            """
            m=audio 40000 UDP/TLS/RTP/SAVPF 111
            a=mid:0
            a=rtpmap:111 opus/48000/2
            a=fmtp:111 useinbandfec=1
            a=sendrecv
            """
        ),
    ),
    (
        "Chrome audio+video with BUNDLE: group, rtx tied to accepted codecs, H.264 "
        "constrained baseline only, feedback intersected",
        lambda: load("chrome-156-offer-audio-video.sdp"),
        caps(
            MediaCapability("audio", (OPUS, PCMU), 40000, protos=None, rtcp_mux=True),
            MediaCapability("video", (VP8, VP8_RTX, H264), 40000, protos=None, rtcp_mux=True),
            bundle=True,
        ),
        expect(
            """
            a=group:BUNDLE 0 1
            m=audio 40000 UDP/TLS/RTP/SAVPF 111 0
            a=mid:0
            a=rtpmap:111 opus/48000/2
            a=fmtp:111 useinbandfec=1
            a=rtpmap:0 PCMU/8000
            a=sendrecv
            a=rtcp-mux
            m=video 40000 UDP/TLS/RTP/SAVPF 96 97 108 109
            a=mid:1
            a=rtpmap:96 VP8/90000
            a=rtcp-fb:96 nack
            a=rtcp-fb:96 nack pli
            a=rtpmap:97 rtx/90000
            a=fmtp:97 apt=96
            a=rtpmap:108 H264/90000
            a=rtcp-fb:108 nack
            a=rtcp-fb:108 nack pli
            a=fmtp:108 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1
            a=rtpmap:109 rtx/90000
            a=fmtp:109 apt=108
            a=sendrecv
            a=rtcp-mux
            """
        ),
    ),
    (
        "Chrome play offer (recvonly) is answered sendonly",
        lambda: load("chrome-156-offer-play-recvonly.sdp"),
        caps(
            MediaCapability("audio", (OPUS,), 40000, protos=None),
            MediaCapability("video", (VP8,), 40000, protos=None),
        ),
        expect(
            """
            m=audio 40000 UDP/TLS/RTP/SAVPF 111
            a=mid:0
            a=rtpmap:111 opus/48000/2
            a=fmtp:111 useinbandfec=1
            a=sendonly
            m=video 40000 UDP/TLS/RTP/SAVPF 96
            a=mid:1
            a=rtpmap:96 VP8/90000
            a=rtcp-fb:96 nack
            a=rtcp-fb:96 nack pli
            a=sendonly
            """
        ),
    ),
    (
        "legacy c=0.0.0.0 hold is answered recvonly (RFC 3264 section 8.4)",
        lambda: load("rfc3264-legacy-hold.sdp"),
        caps(AUDIO),
        expect(
            """
            m=audio 40000 RTP/AVP 0
            a=rtpmap:0 PCMU/8000
            a=ptime:20
            a=recvonly
            """
        ),
    ),
    (
        "an offered port-0 stream stays rejected with its formats and mid",
        lambda: phone_offer(
            """
            m=audio 5004 RTP/AVP 8
            a=mid:a
            m=video 0 RTP/AVP 31
            a=mid:v
            """
        ),
        caps(AUDIO, VIDEO),
        expect(
            """
            m=audio 40000 RTP/AVP 8
            a=mid:a
            a=rtpmap:8 PCMA/8000
            a=ptime:20
            a=sendrecv
            m=video 0 RTP/AVP 31
            a=mid:v
            """
        ),
    ),
    (
        "a second audio stream has no capability left and is rejected",
        lambda: phone_offer(
            """
            m=audio 5004 RTP/AVP 0
            m=audio 5006 RTP/AVP 0
            """
        ),
        caps(AUDIO),
        expect(
            """
            m=audio 40000 RTP/AVP 0
            a=rtpmap:0 PCMU/8000
            a=ptime:20
            a=sendrecv
            m=audio 0 RTP/AVP 0
            """
        ),
    ),
    (
        "an offer without media gets an answer without media",
        lambda: phone_offer(""),
        caps(AUDIO),
        expect(""),
    ),
    (
        "the offer's t= line and lower-case encoding names are kept",
        lambda: sdp(
            """
            v=0
            o=bob 5 5 IN IP4 198.51.100.9
            s=-
            c=IN IP4 198.51.100.9
            t=3724394400 3724398000
            m=audio 5004 RTP/AVP 0 100
            a=rtpmap:0 pcmu/8000
            a=rtpmap:100 TELEPHONE-EVENT/8000
            """
        ),
        caps(AUDIO),
        expect(
            """
            m=audio 40000 RTP/AVP 0 100
            a=rtpmap:0 pcmu/8000
            a=rtpmap:100 TELEPHONE-EVENT/8000
            a=fmtp:100 0-16
            a=ptime:20
            a=sendrecv
            """,
            head=ANSWER_HEAD.replace("t=0 0", "t=3724394400 3724398000"),
        ),
    ),
    (
        "rtcp-mux is not answered when the offer lacks it",
        lambda: load("sipp-3.6.1-uac-offer.sdp"),
        caps(MediaCapability("audio", (PCMU,), 40000, rtcp_mux=True)),
        expect(
            """
            m=audio 40000 RTP/AVP 0
            a=rtpmap:0 PCMU/8000
            a=sendrecv
            """
        ),
    ),
    (
        "an IPv6 address gives IP6 c= and o= lines; extra attributes are written",
        lambda: load("sipp-3.6.1-uac-offer.sdp"),
        caps(
            MediaCapability("audio", (PCMU,), 40000, attributes=(Attribute("x-media", "1"),)),
            address="2001:db8::5",
            attributes=(Attribute("x-session"),),
        ),
        expect(
            """
            v=0
            o=wcs 42 1 IN IP6 2001:db8::5
            s=-
            c=IN IP6 2001:db8::5
            t=0 0
            a=x-session
            m=audio 40000 RTP/AVP 0
            a=rtpmap:0 PCMU/8000
            a=sendrecv
            a=x-media:1
            """,
            head="",
        ),
    ),
]


class AnswerTableTests(SynchronousTestCase):
    """
    create_answer over a table of (offer, capabilities) -> expected answer
    (RFC 3264 section 6).
    """

    def test_answer_table(self) -> None:
        """
        Each offer in the table is answered exactly as expected.
        """
        for behaviour, offer, capabilities, expected in ANSWER_TABLE:
            answer = create_answer(offer(), capabilities, session_id=42, session_version=1)
            self.assertEqual(str(answer), expected, behaviour)

    def test_offer_not_modified(self) -> None:
        """
        Answering leaves the offer object as it was.
        """
        offer = load("chrome-156-offer-audio-video.sdp")
        before = str(offer)
        create_answer(offer, ANSWER_TABLE[6][2])
        self.assertEqual(str(offer), before)

    def test_no_common_codecs(self) -> None:
        """
        An offer with nothing we support raises NoCommonCodec, "No common
        codecs", status hint 488.
        """
        offer = phone_offer("m=audio 5004 RTP/AVP 18\n")
        error = self.assertRaises(NoCommonCodec, create_answer, offer, caps(AUDIO))
        self.assertEqual(str(error), "No common codecs")
        self.assertEqual(error.status_hint, 488)

    def test_unsupported_profile_is_no_common_codec(self) -> None:
        """
        A WebRTC (or SDES RTP/SAVP) offer to a plain RTP/AVP capability
        rejects every stream.
        """
        self.assertRaises(
            NoCommonCodec,
            create_answer,
            load("chrome-156-offer-audio-video.sdp"),
            caps(AUDIO, VIDEO),
        )
        savp = phone_offer("m=audio 5004 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\n")
        self.assertRaises(NoCommonCodec, create_answer, savp, caps(AUDIO))

    def test_telephone_event_alone_is_not_common(self) -> None:
        """
        Sharing only telephone-event is no common codec (RFC 4733 needs a
        real codec beside it).
        """
        offer = phone_offer("m=audio 5004 RTP/AVP 18 101\na=rtpmap:101 telephone-event/8000\n")
        self.assertRaises(NoCommonCodec, create_answer, offer, caps(AUDIO))

    def test_hold_answer(self) -> None:
        """
        While we hold the other party, sendrecv is answered sendonly and
        sendonly inactive (RFC 6337 section 5).
        """
        for offered, expected in [
            ("sendrecv", Direction.SENDONLY),
            ("sendonly", Direction.INACTIVE),
        ]:
            offer = phone_offer(f"m=audio 5004 RTP/AVP 0\na={offered}\n")
            answer = create_answer(offer, caps(AUDIO), hold=True)
            self.assertEqual(answer.media[0].direction, expected, offered)


# (offered direction or None, our direction, expected answer direction)
DIRECTION_TABLE = [
    (None, Direction.SENDRECV, Direction.SENDRECV),
    ("sendrecv", Direction.SENDRECV, Direction.SENDRECV),
    ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
    ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
    ("inactive", Direction.SENDRECV, Direction.INACTIVE),
    ("sendrecv", Direction.RECVONLY, Direction.RECVONLY),
    ("sendrecv", Direction.SENDONLY, Direction.SENDONLY),
    ("sendonly", Direction.SENDONLY, Direction.INACTIVE),
    ("recvonly", Direction.RECVONLY, Direction.INACTIVE),
    ("recvonly", Direction.INACTIVE, Direction.INACTIVE),
]


class DirectionAnswerTests(SynchronousTestCase):
    """
    The RFC 3264 section 6.1 direction table.
    """

    def test_direction_table(self) -> None:
        """
        Each offered direction is answered as the table says.
        """
        for offered, local, expected in DIRECTION_TABLE:
            media = "m=audio 5004 RTP/AVP 0\n" + (f"a={offered}\n" if offered else "")
            capability = MediaCapability("audio", (PCMU,), 40000, direction=local)
            answer = create_answer(phone_offer(media), caps(capability))
            self.assertEqual(answer.media[0].direction, expected, (offered, local))
            if offered:
                self.assertEqual(answer_direction(Direction(offered), local), expected)

    def test_session_level_direction(self) -> None:
        """
        A session-level sendonly applies to media without their own.
        """
        offer = phone_offer("m=audio 5004 RTP/AVP 0\n", session="a=sendonly\n")
        self.assertEqual(create_answer(offer, caps(AUDIO)).media[0].direction, Direction.RECVONLY)


def h264(fmtp: str) -> Codec:
    """
    An offered H.264 format with payload type 102 and the given fmtp.
    """
    offer = phone_offer(f"m=video 5006 RTP/AVP 102\na=rtpmap:102 H264/90000\na=fmtp:102 {fmtp}\n")
    return offer.media[0].codecs[0]


# (offered fmtp, answer fmtp or None when the format is not accepted); our
# capability is constrained baseline level 3.1, packetization-mode 1,
# level-asymmetry-allowed.
H264_TABLE = [
    (
        "packetization-mode=1;profile-level-id=42e01f",
        "packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1",
    ),
    (
        "profile-level-id=42e00d;packetization-mode=1",
        "packetization-mode=1;profile-level-id=42e00d;level-asymmetry-allowed=1",
    ),
    (
        "profile-level-id=42e00d;packetization-mode=1;level-asymmetry-allowed=1",
        "packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1",
    ),
    (
        "profile-level-id=42c028;packetization-mode=1",
        "packetization-mode=1;profile-level-id=42c01f;level-asymmetry-allowed=1",
    ),
    (
        "profile-level-id=4d801f;packetization-mode=1",
        "packetization-mode=1;profile-level-id=4d801f;level-asymmetry-allowed=1",
    ),
    ("profile-level-id=42e01f", None),
    ("packetization-mode=1;profile-level-id=42001f", None),
    ("packetization-mode=1;profile-level-id=4d001f", None),
    ("packetization-mode=1;profile-level-id=4d401f", None),
    ("packetization-mode=1;profile-level-id=640c1f", None),
    ("packetization-mode=1", None),
    ("packetization-mode=1;profile-level-id=zzzzzz", None),
]


class CodecMatchingTests(SynchronousTestCase):
    """
    Codec matching and the answer's parameters.
    """

    def test_h264_table(self) -> None:
        """
        H.264 matches on profile and packetization-mode and answers with the
        offered profile at an allowed level (RFC 6184 section 8.2.2).
        """
        for offered, expected in H264_TABLE:
            common = find_common_codecs([h264(offered)], [H264])
            if expected is None:
                self.assertEqual(common, [], offered)
            else:
                self.assertEqual([c.fmtp for c in common], [expected], offered)
                self.assertEqual(common[0].payload_type, 102)

    def test_h264_unknown_profile_matches_identical_text(self) -> None:
        """
        An unparseable profile-level-id only matches the same text.
        """
        local = Codec(99, "H264", 90000, None, {"profile-level-id": "zzzzzz"})
        self.assertTrue(codecs_match(local, h264("profile-level-id=ZZZZZZ")))

    def test_simple_matches(self) -> None:
        """
        Names are compared case-insensitively with clock rate and channels;
        opus ignores a missing channel count; VP9 compares profile-id.
        """
        self.assertTrue(codecs_match(PCMU, Codec(0, "pcmu", 8000)))
        self.assertFalse(codecs_match(PCMU, Codec(0, "PCMU", 16000)))
        self.assertFalse(codecs_match(Codec(10, "L16", 44100, 2), Codec(11, "L16", 44100)))
        self.assertTrue(codecs_match(OPUS, Codec(96, "opus", 48000)))
        vp9 = Codec(98, "VP9", 90000, None, {"profile-id": "0"})
        self.assertTrue(codecs_match(vp9, Codec(100, "VP9", 90000)))
        self.assertFalse(codecs_match(vp9, Codec(100, "VP9", 90000, None, {"profile-id": "2"})))
        av1 = Codec(45, "AV1", 90000)
        self.assertFalse(codecs_match(av1, Codec(45, "AV1", 90000, None, {"profile": "1"})))

    def test_rtx_and_red_need_their_codecs(self) -> None:
        """
        rtx and red are kept only when every payload type they refer to is
        accepted.
        """
        offered = [
            Codec(100, "VP8", 90000),
            Codec(101, "rtx", 90000, None, {"apt": "100"}),
            Codec(
                102, "H264", 90000, None, {"profile-level-id": "640c1f", "packetization-mode": "1"}
            ),
            Codec(103, "rtx", 90000, None, {"apt": "102"}),
            Codec(104, "rtx", 90000),
        ]
        common = find_common_codecs(offered, [VP8, VP8_RTX, H264])
        self.assertEqual([(c.payload_type, c.fmtp) for c in common], [(100, ""), (101, "apt=100")])
        red_offer = [
            Codec(111, "opus", 48000, 2),
            Codec(63, "red", 48000, 2, {"111/111": None}),
            Codec(64, "red", 48000, 2, {"120/120": None}),
        ]
        red = Codec(63, "red", 48000, 2)
        common = find_common_codecs(red_offer, [OPUS, red])
        self.assertEqual(
            [(c.payload_type, c.fmtp) for c in common], [(111, "useinbandfec=1"), (63, "111/111")]
        )

    def test_offered_feedback_without_duplicates(self) -> None:
        """
        rtcp-fb given both per type and with "*" is answered once.
        """
        offered = [Codec(100, "VP8", 90000, None, {}, ("nack", "nack pli", "nack"))]
        self.assertEqual(find_common_codecs(offered, [VP8])[0].rtcp_fb, ("nack", "nack pli"))

    def test_duplicate_capability_payload_types(self) -> None:
        """
        A capability listing one payload type twice is a local error.
        """
        self.assertRaises(ValueError, MediaCapability, "audio", (PCMU, Codec(0, "PCMA", 8000)), 1)


class OfferTests(SynchronousTestCase):
    """
    create_offer for initial offers and re-offers (RFC 3264 sections 5, 8).
    """

    def test_initial_offer(self) -> None:
        """
        Every capability becomes an m= line with our payload types.
        """
        offer = create_offer(caps(AUDIO, VIDEO), session_id=7, session_version=3)
        self.assertEqual(
            str(offer),
            text(
                """
                v=0
                o=wcs 7 3 IN IP4 192.0.2.50
                s=-
                c=IN IP4 192.0.2.50
                t=0 0
                m=audio 40000 RTP/AVP 0 8 101
                a=rtpmap:0 PCMU/8000
                a=rtpmap:8 PCMA/8000
                a=rtpmap:101 telephone-event/8000
                a=fmtp:101 0-16
                a=ptime:20
                a=sendrecv
                m=video 40002 RTP/AVP 96 97 98
                a=rtpmap:96 VP8/90000
                a=rtcp-fb:96 nack
                a=rtcp-fb:96 nack pli
                a=rtpmap:97 rtx/90000
                a=fmtp:97 apt=96
                a=rtpmap:98 H264/90000
                a=rtcp-fb:98 nack
                a=rtcp-fb:98 nack pli
                a=fmtp:98 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1
                a=sendrecv
                """
            ),
        )

    def test_bundle_offer(self) -> None:
        """
        With bundle on, each m= line gets a mid and one BUNDLE group lists them.
        """
        offer = create_offer(caps(AUDIO, VIDEO, bundle=True))
        self.assertEqual([m.mid for m in offer.media], ["0", "1"])
        self.assertEqual(offer.bundle_groups, [("0", "1")])

    def test_hold_offer(self) -> None:
        """
        A hold offer is sendonly, or inactive for a receive-only capability
        (RFC 6337 section 5.3).
        """
        listen = MediaCapability("video", (VP8,), 40002, direction=Direction.RECVONLY)
        offer = create_offer(caps(AUDIO, listen), hold=True)
        self.assertEqual(
            [m.direction for m in offer.media], [Direction.SENDONLY, Direction.INACTIVE]
        )
        self.assertTrue(is_hold(offer))

    def test_reoffer_keeps_payload_types(self) -> None:
        """
        A re-offer reuses the numbers the session already uses for a format
        and renumbers a clashing capability (RFC 3264 section 8.3.2).
        """
        previous = phone_offer(
            """
            m=audio 40000 RTP/AVP 8 100
            a=rtpmap:8 PCMA/8000
            a=rtpmap:100 telephone-event/8000
            m=video 40002 RTP/AVP 96
            a=rtpmap:96 H264/90000
            a=fmtp:96 packetization-mode=1;profile-level-id=42e01f
            """
        )
        offer = create_offer(caps(AUDIO, VIDEO), previous=previous)
        audio, video = offer.media
        self.assertEqual(audio.fmt, ["0", "8", "100"])
        self.assertEqual(video.fmt, ["97", "98", "96"])
        by_type = {c.payload_type: c for c in video.codecs}
        self.assertEqual(
            (by_type[97].name, by_type[98].name, by_type[96].name), ("VP8", "rtx", "H264")
        )
        self.assertEqual(by_type[98].parameters, {"apt": "97"})

    def test_reoffer_keeps_slots(self) -> None:
        """
        A re-offer keeps every earlier m= line in place: one with no
        capability left is disabled with port 0, mids are kept, and new
        capabilities go at the end.
        """
        previous = phone_offer(
            """
            m=video 40002 RTP/AVP 96
            a=mid:v
            a=rtpmap:96 VP8/90000
            m=audio 40000 RTP/AVP 0
            a=mid:a
            """
        )
        offer = create_offer(
            caps(AUDIO, MediaCapability("audio", (PCMA,), 40004)), previous=previous
        )
        self.assertEqual(
            [(m.kind, m.port, m.fmt, m.mid) for m in offer.media],
            [
                ("video", 0, ["96"], "v"),
                ("audio", 40000, ["0", "8", "101"], "a"),
                ("audio", 40004, ["8"], None),
            ],
        )

    def test_reoffer_red_references_follow_renumbering(self) -> None:
        """
        A red format's payload list follows the renumbered primary codec.
        """
        previous = phone_offer("m=audio 40000 RTP/AVP 111\na=rtpmap:111 PCMU/8000\n")
        red = Codec(63, "red", 48000, 2, {"111/111": None})
        offer = create_offer(caps(MediaCapability("audio", (OPUS, red), 40000)), previous=previous)
        self.assertEqual(
            [(c.payload_type, c.name, c.fmtp) for c in offer.media[0].codecs],
            [(96, "opus", "useinbandfec=1"), (63, "red", "96/96")],
        )


PHONE_ANSWER = """
v=0
o=bob 1 1 IN IP4 198.51.100.9
s=-
c=IN IP4 198.51.100.9
t=0 0
m=audio 30000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
a=recvonly
m=video 0 RTP/AVP 96
"""


class ExchangeTests(SynchronousTestCase):
    """
    Reading a finished exchange: negotiated_codecs, negotiate, is_hold.
    """

    def test_negotiated_codecs(self) -> None:
        """
        Per m= line, the answer's codecs that the offer listed; [] for
        rejected lines.
        """
        offer = load("baresip-1.0.0-offer.sdp")
        answer = create_answer(offer, caps(MediaCapability("audio", (PCMA, G722, DTMF), 40000)))
        self.assertEqual(
            [[str(c) for c in line] for line in negotiated_codecs(offer, answer)],
            [["9 G722/8000", "8 PCMA/8000", "101 telephone-event/8000"], []],
        )

    def test_negotiated_codecs_tolerates_renumbering(self) -> None:
        """
        An answer that renumbers an offered format still counts it; a format
        the offer never listed does not.
        """
        offer = load("sipp-3.6.1-telephone-event-offer.sdp")
        answer = phone_offer("m=audio 30000 RTP/AVP 0 100 18\na=rtpmap:100 telephone-event/8000\n")
        self.assertEqual(
            [[str(c) for c in line] for line in negotiated_codecs(offer, answer)],
            [["0 PCMU/8000", "100 telephone-event/8000"]],
        )

    def test_answer_must_mirror_offer(self) -> None:
        """
        An answer with a different number or kind of m= lines is an SDPError.
        """
        offer = load("baresip-1.0.0-offer.sdp")
        short = phone_offer("m=audio 30000 RTP/AVP 0\n")
        error = self.assertRaises(SDPError, negotiated_codecs, offer, short)
        self.assertEqual(str(error), "answer has 1 media descriptions, offer has 2")
        swapped = phone_offer("m=video 30000 RTP/AVP 0\nm=audio 30002 RTP/AVP 0\n")
        error = self.assertRaises(SDPError, negotiated_codecs, offer, swapped)
        self.assertEqual(str(error), "answer has video where the offer has audio")

    def test_negotiate_from_our_offer(self) -> None:
        """
        Our offer plus a phone's answer gives where and how to send.
        """
        offer = create_offer(caps(AUDIO, VIDEO))
        audio, video = negotiate(offer, sdp(PHONE_ANSWER), local_is_offerer=True)
        self.assertEqual(
            audio,
            NegotiatedMedia(
                index=0,
                kind="audio",
                codecs=(PCMA, Codec(101, "telephone-event", 8000, None, {"0-15": None})),
                direction=Direction.SENDONLY,
                remote_address="198.51.100.9",
                remote_port=30000,
                remote_rtcp_port=30001,
                rtcp_mux=False,
                remote_ptime=30,
                mid=None,
            ),
        )
        self.assertFalse(audio.rejected)
        self.assertEqual(audio.primary_codec, PCMA)
        self.assertEqual(audio.telephone_event.payload_type, 101)
        self.assertTrue(video.rejected)
        self.assertEqual((video.remote_port, video.codecs), (0, ()))

    def test_negotiate_as_answerer(self) -> None:
        """
        Media-level c=, a=rtcp and rtcp-mux of the remote offer are used, and
        the telephone-event matching the primary clock rate is chosen.
        """
        offer = phone_offer(
            """
            m=audio 5004 RTP/AVP 0 100 101
            c=IN IP4 198.51.100.77
            a=rtpmap:100 telephone-event/48000
            a=rtpmap:101 telephone-event/8000
            a=rtcp:5010
            a=rtcp-mux
            """
        )
        capability = MediaCapability("audio", (PCMU, DTMF48, DTMF), 40000, rtcp_mux=True)
        answer = create_answer(offer, caps(capability))
        (media,) = negotiate(answer, offer, local_is_offerer=False)
        self.assertEqual(media.remote_address, "198.51.100.77")
        self.assertEqual(
            (media.remote_port, media.remote_rtcp_port, media.rtcp_mux), (5004, 5010, True)
        )
        self.assertEqual([c.payload_type for c in media.codecs], [0, 101])
        self.assertEqual(media.telephone_event.clock_rate, 8000)
        self.assertEqual(media.direction, Direction.SENDRECV)

    def test_telephone_event_fallback(self) -> None:
        """
        Without a telephone-event at the primary clock rate the first one is
        used, and none gives None.
        """
        media = NegotiatedMedia(0, "audio", (OPUS, DTMF), Direction.SENDRECV, "h", 1)
        self.assertEqual(media.telephone_event, DTMF)
        media = NegotiatedMedia(0, "audio", (OPUS,), Direction.SENDRECV, "h", 1)
        self.assertIsNone(media.telephone_event)
        self.assertIsNone(
            NegotiatedMedia(0, "audio", (DTMF,), Direction.SENDRECV, "h", 1).primary_codec
        )

    def test_negotiate_all_rejected(self) -> None:
        """
        An answer that rejects every stream is NoCommonCodec.
        """
        offer = create_offer(caps(AUDIO))
        answer = phone_offer("m=audio 0 RTP/AVP 0\n")
        self.assertRaises(NoCommonCodec, negotiate, offer, answer, local_is_offerer=True)

    def test_is_hold(self) -> None:
        """
        Hold means every active stream refuses to receive (sendonly,
        inactive, legacy 0.0.0.0); ICE placeholders, recvonly and mixed
        streams are not hold.
        """
        table = [
            ("m=audio 5004 RTP/AVP 0\na=sendonly\n", "", True),
            ("m=audio 5004 RTP/AVP 0\na=inactive\n", "", True),
            ("m=audio 5004 RTP/AVP 0\n", "a=sendonly\n", True),
            ("m=audio 5004 RTP/AVP 0\na=recvonly\n", "", False),
            ("m=audio 5004 RTP/AVP 0\n", "", False),
            ("m=audio 5004 RTP/AVP 0\na=sendonly\nm=video 5006 RTP/AVP 31\n", "", False),
            ("m=audio 5004 RTP/AVP 0\na=sendonly\nm=video 0 RTP/AVP 31\n", "", True),
            ("m=audio 0 RTP/AVP 0\na=sendonly\n", "", False),
        ]
        for media, session, expected in table:
            self.assertEqual(is_hold(phone_offer(media, session)), expected, (media, session))
        self.assertTrue(is_hold(load("rfc3264-legacy-hold.sdp")))
        self.assertFalse(is_hold(load("chrome-156-offer-audio-video.sdp")))
        self.assertFalse(is_hold(phone_offer("")))


def remote_offer(
    direction: str = "sendrecv", version: int = 5, port: int = 5004
) -> SessionDescription:
    """
    A phone's offer with PCMU and telephone-event/8000 at payload type 100.
    """
    return sdp(
        f"""
        v=0
        o=bob 77 {version} IN IP4 198.51.100.9
        s=-
        c=IN IP4 198.51.100.9
        t=0 0
        m=audio {port} RTP/AVP 0 100
        a=rtpmap:100 telephone-event/8000
        a={direction}
        """
    )


def phone_answer_to(offer: SessionDescription, direction: str = "sendrecv") -> SessionDescription:
    """
    What a PCMU phone at 198.51.100.9 answers to C{offer}.
    """
    phone = LocalCapabilities(
        "198.51.100.9",
        (
            MediaCapability(
                "audio",
                (PCMU, Codec(101, "telephone-event", 8000)),
                30000,
                direction=Direction(direction),
            ),
        ),
        username="bob",
    )
    return create_answer(offer, phone, session_id=1)


class NegotiatorTests(SynchronousTestCase):
    """
    SDPNegotiator: the PJSIP sdp_neg states across INVITE, offerless
    INVITE and re-INVITEs.
    """

    def setUp(self) -> None:
        self.negotiator = SDPNegotiator(caps(AUDIO), session_id=9000, session_version=1)

    def test_uac_initial_offer(self) -> None:
        """
        NULL -> LOCAL_OFFER -> WAIT_NEGO -> DONE for an INVITE with an offer.
        """
        n = self.negotiator
        self.assertEqual(n.state, NegotiatorState.NULL)
        offer = n.create_offer()
        self.assertEqual(n.state, NegotiatorState.LOCAL_OFFER)
        self.assertEqual(str(offer.origin), "wcs 9000 1 IN IP4 192.0.2.50")
        n.receive_answer(phone_answer_to(offer))
        self.assertEqual(n.state, NegotiatorState.WAIT_NEGO)
        (media,) = n.negotiate()
        self.assertEqual(n.state, NegotiatorState.DONE)
        self.assertTrue(n.offer_is_local)
        self.assertEqual([c.payload_type for c in media.codecs], [0, 101])
        self.assertEqual(n.negotiated, [media])
        self.assertEqual(str(n.local_description), str(offer))
        self.assertIsNone(n.pending_local)

    def test_uas_initial_offer(self) -> None:
        """
        NULL -> REMOTE_OFFER -> WAIT_NEGO -> DONE for an incoming INVITE.
        """
        n = self.negotiator
        n.receive_offer(remote_offer())
        self.assertEqual(n.state, NegotiatorState.REMOTE_OFFER)
        answer = n.create_answer()
        self.assertEqual(n.state, NegotiatorState.WAIT_NEGO)
        self.assertEqual(answer.media[0].fmt, ["0", "100"])
        self.assertEqual(answer.origin.session_version, 1)
        (media,) = n.negotiate()
        self.assertEqual(n.state, NegotiatorState.DONE)
        self.assertFalse(n.offer_is_local)
        self.assertEqual((media.remote_address, media.remote_port), ("198.51.100.9", 5004))

    def test_offerless_invite_as_uas(self) -> None:
        """
        An INVITE without SDP: our offer goes in the 200, the answer comes in
        the ACK (RFC 3261 section 13.2.1).
        """
        n = self.negotiator
        offer_in_200 = n.create_offer()
        n.receive_answer(phone_answer_to(offer_in_200))
        n.negotiate()
        self.assertEqual(n.state, NegotiatorState.DONE)
        self.assertEqual(n.remote_description.origin.username, "bob")

    def test_offerless_invite_as_uac(self) -> None:
        """
        We sent an INVITE without SDP: the 200 carries the offer and our
        answer goes in the ACK.
        """
        n = self.negotiator
        n.receive_offer(remote_offer())
        answer_in_ack = n.create_answer()
        self.assertEqual(n.negotiate()[0].remote_port, 5004)
        self.assertEqual(str(n.local_description), str(answer_in_ack))

    def _established(self) -> SDPNegotiator:
        n = self.negotiator
        offer = n.create_offer()
        n.receive_answer(phone_answer_to(offer))
        n.negotiate()
        return n

    def test_reinvite_hold_and_unhold(self) -> None:
        """
        Our hold re-offer is sendonly with the o= version one higher, the
        same session id and origin; unhold raises it again.
        """
        n = self._established()
        hold = n.create_offer(hold=True)
        self.assertEqual(hold.media[0].direction, Direction.SENDONLY)
        self.assertEqual(str(hold.origin), "wcs 9000 2 IN IP4 192.0.2.50")
        n.receive_answer(phone_answer_to(hold, "recvonly"))
        self.assertEqual(n.negotiate()[0].direction, Direction.SENDONLY)
        self.assertTrue(n.hold)
        unhold = n.create_offer(hold=False)
        self.assertEqual(unhold.media[0].direction, Direction.SENDRECV)
        self.assertEqual(unhold.origin.session_version, 3)

    def test_reoffer_keeps_origin_when_capabilities_change(self) -> None:
        """
        A re-offer after a new port keeps the o= username, id and address and
        only raises the version (RFC 3264 section 8).
        """
        n = self._established()
        n.capabilities = caps(MediaCapability("audio", (PCMU,), 41000), address="192.0.2.99")
        offer = n.create_offer()
        self.assertEqual(str(offer.origin), "wcs 9000 2 IN IP4 192.0.2.50")
        self.assertEqual(offer.connection.address, "192.0.2.99")
        self.assertEqual(offer.media[0].port, 41000)

    def test_remote_hold(self) -> None:
        """
        A remote sendonly re-offer is answered recvonly with a new version and
        shows as remote hold.
        """
        n = self.negotiator
        n.receive_offer(remote_offer())
        first = n.create_answer()
        n.negotiate()
        self.assertFalse(n.remote_hold)
        n.receive_offer(remote_offer("sendonly", version=6))
        answer = n.create_answer()
        n.negotiate()
        self.assertEqual(answer.media[0].direction, Direction.RECVONLY)
        self.assertEqual(answer.origin.session_version, first.origin.session_version + 1)
        self.assertTrue(n.remote_hold)

    def test_session_refresh_keeps_version(self) -> None:
        """
        An unchanged re-offer (session refresh) gets a byte-identical answer
        with the same o= version.
        """
        n = self.negotiator
        n.receive_offer(remote_offer())
        first = n.create_answer()
        n.negotiate()
        n.receive_offer(remote_offer())
        again = n.create_answer()
        n.negotiate()
        self.assertEqual(str(again), str(first))

    def test_wrong_state_is_local_error(self) -> None:
        """
        Calls out of order raise NegotiatorStateError.
        """
        n = self.negotiator
        self.assertRaises(NegotiatorStateError, n.create_answer)
        self.assertRaises(NegotiatorStateError, n.receive_answer, remote_offer())
        self.assertRaises(NegotiatorStateError, n.negotiate)
        self.assertRaises(NegotiatorStateError, n.cancel_offer)
        n.create_offer()
        self.assertRaises(NegotiatorStateError, n.create_offer)
        self.assertRaises(NegotiatorStateError, n.negotiate)
        self.assertEqual(n.state, NegotiatorState.LOCAL_OFFER)

    def test_glare_is_491(self) -> None:
        """
        A remote offer while our offer is pending is refused with status hint
        491 (RFC 3261 section 14.2) and changes nothing.
        """
        n = self._established()
        n.create_offer(hold=True)
        error = self.assertRaises(SDPError, n.receive_offer, remote_offer())
        self.assertEqual(error.status_hint, 491)
        self.assertEqual(n.state, NegotiatorState.LOCAL_OFFER)

    def test_rejected_reoffer_keeps_media(self) -> None:
        """
        A remote re-offer with no common codec raises NoCommonCodec and the
        negotiator returns to DONE with the previous media in force.
        """
        n = self._established()
        before = n.local_description
        n.receive_offer(
            sdp(
                """
            v=0
            o=bob 1 2 IN IP4 198.51.100.9
            s=-
            c=IN IP4 198.51.100.9
            t=0 0
            m=audio 5004 RTP/AVP 18
            """
            )
        )
        self.assertRaises(NoCommonCodec, n.create_answer)
        self.assertEqual(n.state, NegotiatorState.DONE)
        self.assertIs(n.local_description, before)

    def test_cancelled_offer(self) -> None:
        """
        After our re-offer is refused (488/491) the last agreed SDP stays;
        an identical retry keeps the refused offer's version and a
        different one goes one higher.
        """
        n = self._established()
        active = n.local_description
        refused = n.create_offer(hold=True)
        n.cancel_offer()
        self.assertEqual(n.state, NegotiatorState.DONE)
        self.assertIs(n.local_description, active)
        retry = n.create_offer()
        self.assertEqual(str(retry), str(refused))
        n.cancel_offer()
        unhold = n.create_offer(hold=False)
        self.assertEqual(unhold.origin.session_version, refused.origin.session_version + 1)

    def test_cancel_remote_offer(self) -> None:
        """
        A remote offer we refuse can be cancelled back to NULL before any
        exchange completed.
        """
        n = self.negotiator
        n.receive_offer(remote_offer())
        n.cancel_offer()
        self.assertEqual(n.state, NegotiatorState.NULL)
        self.assertIsNone(n.pending_remote)

    def test_bad_answer_reverts(self) -> None:
        """
        An answer that does not mirror our offer fails negotiate() with
        SDPError and the negotiator falls back to NULL.
        """
        n = self.negotiator
        n.create_offer()
        n.receive_answer(sdp(PHONE_ANSWER))
        error = self.assertRaises(SDPError, n.negotiate)
        self.assertEqual(str(error), "answer has 2 media descriptions, offer has 1")
        self.assertEqual(n.state, NegotiatorState.NULL)

    def test_answerer_reoffer_keeps_remote_numbers(self) -> None:
        """
        After answering an offer with telephone-event at 100, our own
        re-offer keeps 100 instead of our default 101.
        """
        n = self.negotiator
        n.receive_offer(remote_offer())
        n.create_answer()
        n.negotiate()
        offer = n.create_offer()
        self.assertEqual(offer.media[0].fmt, ["0", "8", "100"])

    def test_returned_descriptions_are_copies(self) -> None:
        """
        Editing a returned offer does not change what the negotiator holds.
        """
        n = self.negotiator
        offer = n.create_offer()
        offer.media[0].port = 1
        self.assertEqual(n.pending_local.media[0].port, 40000)
