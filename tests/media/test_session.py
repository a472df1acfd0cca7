"""
Tests for L{wcs_twisted.media.session}, L{wcs_twisted.media.webrtc_session} and
L{wcs_twisted.media.rtp_session}: the SDP each kind of leg produces for
real offers from tests/data/sdp/, and the media events it reports, on a fake
UDP reactor (the WebRTC leg's peer is the in-memory browser of
L{tests.media.test_webrtc}).
"""

import os
import random

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.media.fakes import FakeUDPReactor
from tests.media.test_webrtc import BROWSER, BROWSER_CERT, SERVER_CERT, Browser, fingerprints
from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaSession
from wcs_twisted.media.dtls import DTLSState
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import build_rtp, encode_telephone_event, peek_header
from wcs_twisted.media.rtp_session import RTPMediaSession
from wcs_twisted.media.webrtc_session import WebRTCMediaSession
from wcs_twisted.sdp.fields import Direction
from wcs_twisted.sdp.session import SessionDescription

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sdp")
PUBLIC = "198.51.100.1"
BIND = "10.0.0.1"
PHONE = ("192.0.2.10", 17196)


def sdp_file(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return f.read()


CHROME_AV = sdp_file("chrome-156-offer-audio-video.sdp")
CHROME_AUDIO = sdp_file("chrome-156-offer-audio.sdp")
BARESIP = sdp_file("baresip-1.0.0-offer.sdp")


def browser_offer(text=CHROME_AUDIO):
    """
    A Chrome offer whose ICE ufrag and fingerprint are those of the
    in-memory test browser, so a handshake can complete.
    """
    offer = SessionDescription.parse(text)
    value = fingerprints(BROWSER_CERT)[0][1]
    for media in offer.media:
        media.set_attribute("ice-ufrag", "brws")
        media.set_attribute("fingerprint", f"sha-256 {value}")
    return str(offer)


def only_codecs(text, kind, fmt):
    """
    C{text} with the C{kind} m= line's format list cut down to C{fmt}.
    """
    offer = SessionDescription.parse(text)
    for media in offer.media:
        if media.kind == kind:
            media.set_codecs([c for c in media.codecs if str(c.payload_type) in fmt.split()])
    return str(offer)


class Observer:
    """
    An IMediaSessionObserver recording what it is told.
    """

    def __init__(self):
        self.events = []

    def media_connected(self, session):
        self.events.append(("connected",))

    def media_dtmf(self, session, digit):
        self.events.append(("dtmf", digit))

    def media_inactive(self, session):
        self.events.append(("inactive",))

    def media_failed(self, session, reason):
        self.events.append(("failed", reason))


class WebRTCSessionMixin:
    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.pool = PortPool(31000, 31019)
        self.observer = Observer()

    def session(self, **kw):
        session = WebRTCMediaSession(
            self.reactor, BIND, PUBLIC, self.pool, SERVER_CERT, rng=random.Random(5), **kw
        ).start()
        session.observer = self.observer
        self.addCleanup(session.close)
        return session

    def port(self, session):
        return self.reactor.bound[session.local_address[1]]


class WebRTCAnswerTests(WebRTCSessionMixin, SynchronousTestCase):
    """
    The answer to a real Chromium offer (no candidates, BUNDLE, rtcp-mux).
    """

    def answer(self, offer=CHROME_AV, audio=("PCMU/8000",), video=(), direction="sendrecv"):
        self.webrtc = self.session()
        text = self.webrtc.create_answer(offer, list(audio), list(video), direction)
        return SessionDescription.parse(text)

    def test_provides_interface(self):
        """
        The session provides IMediaSession with kind "webrtc".
        """
        session = self.session()
        verifyObject(IMediaSession, session)
        self.assertEqual(session.kind, "webrtc")

    def test_ice_lite_and_credentials(self):
        """
        The answer is ICE-lite (RFC 8445 2.5) at session level and carries the
        transport's ufrag and password in each m= line.
        """
        answer = self.answer()
        self.assertTrue(answer.ice_lite)
        params = self.webrtc.transport.local_parameters
        for media in answer.media:
            self.assertEqual((media.ice_ufrag, media.ice_pwd), (params.ice_ufrag, params.ice_pwd))

    def test_fingerprint_and_setup(self):
        """
        The answer carries our certificate's sha-256 fingerprint (RFC 8122)
        and a=setup:passive to Chrome's actpass: we are the DTLS server.
        """
        answer = self.answer()
        expected = dict(fingerprints(SERVER_CERT))["sha-256"]
        for media in answer.media:
            [fingerprint] = media.fingerprints
            self.assertEqual((fingerprint.algorithm, fingerprint.value), ("sha-256", expected))
            self.assertEqual(media.setup, "passive")
        self.assertEqual(self.webrtc.transport.dtls.role, "server")

    def test_setup_active_offer(self):
        """
        An offer that is a=setup:passive gets a=setup:active: we are then
        the DTLS client (RFC 5763 5).
        """
        offer = CHROME_AUDIO.replace("a=setup:actpass", "a=setup:passive")
        answer = self.answer(offer)
        self.assertEqual(answer.media[0].setup, "active")
        self.assertEqual(self.webrtc.transport.dtls.role, "client")

    def test_one_host_candidate_for_the_bundle(self):
        """
        Every m= line names the bound port and the public address, with one
        host candidate for it (the SDK sends no candidates of its own).
        """
        answer = self.answer()
        port = self.webrtc.local_address[1]
        self.assertEqual(answer.connection.address, PUBLIC)
        self.assertEqual(answer.origin.address, PUBLIC)
        for media in answer.media:
            self.assertEqual(media.port, port)
            [candidate] = media.candidates
            self.assertEqual(
                (candidate.address, candidate.port, candidate.type, candidate.transport.lower()),
                (PUBLIC, port, "host", "udp"),
            )
            self.assertTrue(media.end_of_candidates)

    def test_bundle_mids_mirror_offer(self):
        """
        The answer's mids and BUNDLE group mirror the offer's (RFC 8843).
        """
        answer = self.answer(video=("VP8/90000",))
        self.assertEqual([m.mid for m in answer.media], ["0", "1"])
        self.assertEqual(answer.bundle_groups, [("0", "1")])
        for media in answer.media:
            self.assertTrue(media.rtcp_mux)
            self.assertEqual(media.proto, "UDP/TLS/RTP/SAVPF")
            self.assertEqual(media.direction, Direction.SENDRECV)

    def test_preferred_codec_only(self):
        """
        The answer carries only the preferred codec the offer allows, with
        Chrome's payload type, and telephone-event at its clock rate.
        """
        answer = self.answer(audio=("PCMA/8000", "PCMU/8000"), video=("H264/90000",))
        audio, video = answer.media
        self.assertEqual([c.rtpmap for c in audio.codecs], ["PCMA/8000", "telephone-event/8000"])
        self.assertEqual(audio.fmt, ["8", "126"])
        [h264] = video.codecs
        self.assertEqual((h264.payload_type, h264.parameters["packetization-mode"]), (108, "1"))
        self.assertEqual(h264.rtcp_fb, ("ccm fir", "nack", "nack pli"))
        self.assertEqual((self.webrtc.audio_codec, self.webrtc.video_codec),
                         ("PCMA/8000", "H264/90000"))

    def test_offer_order_without_preference(self):
        """
        With no preference the offer's first supported codec wins (Opus for
        Chrome), with telephone-event/48000.
        """
        answer = self.answer(audio=(), video=())
        self.assertEqual([c.rtpmap for c in answer.media[0].codecs],
                         ["opus/48000/2", "telephone-event/48000"])
        self.assertEqual([c.rtpmap for c in answer.media[1].codecs], ["VP8/90000"])
        self.assertEqual(self.webrtc.audio.telephone_event.payload_type, 110)

    def test_no_header_extensions(self):
        """
        No RTP header extension is accepted (the relay forwards fixed
        headers only), nor transport-cc/REMB feedback.
        """
        text = self.webrtc_answer_text = self.session().create_answer(
            CHROME_AV, [], [], "sendrecv")
        self.assertNotIn("a=extmap", text)
        self.assertNotIn("transport-cc", text)
        self.assertNotIn("goog-remb", text)

    def test_our_sources_announced(self):
        """
        Each m= line announces our SSRC for it (audio and video differ) with
        a CNAME, so the browser creates its tracks.
        """
        answer = self.answer(video=("VP8/90000",))
        audio, video = answer.media
        self.assertEqual({s.ssrc for s in audio.ssrcs}, {self.webrtc.transport.ssrc})
        self.assertEqual({s.ssrc for s in video.ssrcs}, {self.webrtc.transport.video_ssrc})
        self.assertNotEqual(self.webrtc.transport.ssrc, self.webrtc.transport.video_ssrc)

    def test_unsupported_video_rejected(self):
        """
        A video m= line with nothing we carry is rejected with port 0 and
        left out of the BUNDLE group; audio is answered.
        """
        offer = only_codecs(CHROME_AV, "video", "45 98")  # AV1, VP9
        answer = self.answer(offer)
        self.assertEqual(answer.media[1].port, 0)
        self.assertEqual(answer.bundle_groups, [("0",)])
        self.assertIsNone(self.webrtc.video_codec)

    def test_no_common_codecs(self):
        """
        An offer whose audio lists only formats we cannot carry raises
        MediaError("No common codecs") and produces no SDP.
        """
        session = self.session()
        offer = only_codecs(CHROME_AUDIO, "audio", "63 13 126")  # red, CN, telephone-event
        error = self.assertRaises(MediaError, session.create_answer, offer, [], [], "sendrecv")
        self.assertEqual(error.info, "No common codecs")
        self.assertIsNone(session.local_sdp)

    def test_malformed_offer(self):
        """
        An offer that does not parse raises MediaError naming the SDP.
        """
        error = self.assertRaises(
            MediaError, self.session().create_answer, "v=0\r\nbogus\r\n", [], [], "sendrecv")
        self.assertTrue(error.info.startswith("Malformed SDP"))

    def test_offered_codecs(self):
        """
        offered_codecs lists what Chrome offers that this leg carries, in
        Chrome's order, each name once.
        """
        self.assertEqual(
            self.session().offered_codecs(CHROME_AV),
            (["opus/48000/2", "G722/8000", "PCMU/8000", "PCMA/8000"],
             ["VP8/90000", "H264/90000"]),
        )

    def test_recvonly_direction(self):
        """
        Answering with direction "recvonly" to a sendrecv offer writes
        recvonly and stops our sending.
        """
        answer = self.answer(CHROME_AUDIO, direction="recvonly")
        self.assertEqual(answer.media[0].direction, Direction.RECVONLY)
        self.assertFalse(self.webrtc.transport._sending)


class WebRTCOfferTests(WebRTCSessionMixin, SynchronousTestCase):
    """
    The server's offer to the browser (incoming calls).
    """

    def test_audio_only_offer(self):
        """
        With no video codecs the offer has one m=audio: ICE-lite, actpass,
        our candidate, BUNDLE, the SIP side's codecs first.
        """
        session = self.session()
        offer = SessionDescription.parse(session.create_offer(["PCMA/8000"], [], "sendrecv"))
        self.assertTrue(offer.ice_lite)
        [audio] = offer.media
        self.assertEqual(audio.kind, "audio")
        self.assertEqual(audio.setup, "actpass")
        self.assertEqual(len(audio.candidates), 1)
        self.assertEqual(offer.bundle_groups, [("0",)])
        self.assertEqual([c.rtpmap for c in audio.codecs][:2], ["PCMA/8000", "opus/48000/2"])
        self.assertIn("telephone-event/48000", [c.rtpmap for c in audio.codecs])
        self.assertIn("telephone-event/8000", [c.rtpmap for c in audio.codecs])

    def test_video_offer(self):
        """
        With video codecs from the SIP side the offer has m=video with only
        those (video is relayed, never transcoded), bundled.
        """
        session = self.session()
        offer = SessionDescription.parse(
            session.create_offer(["PCMU/8000"], ["H264/90000"], "sendrecv"))
        audio, video = offer.media
        self.assertEqual({c.encoding for c in video.codecs}, {"h264"})
        self.assertEqual(offer.bundle_groups, [("0", "1")])
        self.assertEqual(video.port, audio.port)

    def answer_from_browser(self, offer_text, setup):
        answer = SessionDescription.parse(offer_text)
        answer.attributes = [a for a in answer.attributes if a.name not in ("ice-lite",)]
        value = fingerprints(BROWSER_CERT)[0][1]
        for media in answer.media:
            media.set_attribute("ice-ufrag", "brws")
            media.set_attribute("ice-pwd", "browserpassword012345678")
            media.set_attribute("fingerprint", f"sha-256 {value}")
            media.set_attribute("setup", setup)
            media.remove_attribute("candidate")
            media.remove_attribute("end-of-candidates")
            media.set_codecs(media.codecs[:1])
        return str(answer)

    def test_remote_answer_active_makes_us_server(self):
        """
        A browser answering a=setup:active makes us the DTLS server; the
        codec is the one it answered.
        """
        session = self.session()
        offer = session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.answer_from_browser(offer, "active"))
        self.assertEqual(session.transport.dtls.role, "server")
        self.assertEqual(session.audio_codec, "PCMU/8000")

    def test_remote_answer_passive_makes_us_client(self):
        """
        A browser answering a=setup:passive makes us the DTLS client.
        """
        session = self.session()
        offer = session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.answer_from_browser(offer, "passive"))
        self.assertEqual(session.transport.dtls.role, "client")

    def test_answer_without_offer(self):
        """
        An answer when no offer of ours is pending is refused.
        """
        session = self.session()
        error = self.assertRaises(MediaError, session.set_remote_answer, CHROME_AUDIO)
        self.assertEqual(error.info, "No offer to answer")

    def test_reoffer_keeps_port_and_bumps_version(self):
        """
        A second offer keeps the port and the o= session and increments the
        version (RFC 3264 8).
        """
        session = self.session()
        first = SessionDescription.parse(session.create_offer(["PCMU/8000"], [], "sendrecv"))
        second = SessionDescription.parse(session.create_offer(["PCMU/8000"], [], "sendonly"))
        self.assertEqual(first.media[0].port, second.media[0].port)
        self.assertEqual(first.origin.session_id, second.origin.session_id)
        self.assertEqual(second.origin.session_version, first.origin.session_version + 1)
        self.assertEqual(second.media[0].direction, Direction.SENDONLY)


class WebRTCEventTests(WebRTCSessionMixin, SynchronousTestCase):
    """
    What the leg tells its observer.
    """

    def connected_session(self, **kw):
        session = self.session(**kw)
        session.create_answer(browser_offer(), ["PCMU/8000"], [], "sendrecv")
        browser = Browser(self, session.transport, self.port(session))
        browser.connect()
        return session, browser

    def test_connected(self):
        """
        ICE + DTLS completing reports media_connected once.
        """
        self.connected_session()
        self.assertEqual(self.observer.events, [("connected",)])

    def test_inbound_dtmf(self):
        """
        RFC 4733 digits from the browser (its telephone-event payload type)
        are reported once each.
        """
        session, browser = self.connected_session()
        for seq in (1, 2, 3, 4):
            browser.send_rtp(seq, 126, encode_telephone_event(7, seq > 2, 10, 160 * seq), ts=800)
        self.assertEqual(self.observer.events[1:], [("dtmf", "7")])

    def test_send_dtmf(self):
        """
        send_dtmf sends RFC 4733 packets with the negotiated payload type.
        """
        session, browser = self.connected_session()
        browser.replies()
        session.send_dtmf("5", 60)
        self.reactor.pump([0.02] * 10)
        events = [browser.dtls.rx_srtp.unprotect(d) for d in browser.replies() if d[1] < 192]
        self.assertEqual({peek_header(p).payload_type for p in events}, {126})
        self.assertEqual(events[0][12], 5)

    def test_send_dtmf_without_telephone_event(self):
        """
        Without a negotiated telephone-event send_dtmf sends nothing.
        """
        session = self.session()
        session.create_answer(only_codecs(CHROME_AUDIO, "audio", "0"), [], [], "sendrecv")
        before = len(self.reactor.getDelayedCalls())
        session.send_dtmf("5", 100)
        self.assertIsNone(session.audio.telephone_event)
        self.assertEqual(len(self.reactor.getDelayedCalls()), before)

    def test_inactivity(self):
        """
        No media for the configured time reports media_inactive once.
        """
        session, browser = self.connected_session(inactivity_timeout=5)
        browser.send_rtp(1)
        for _ in range(40):
            self.reactor.advance(0.5)
            browser.check(use_candidate=False)
        self.assertEqual(self.observer.events, [("connected",), ("inactive",)])

    def test_slow_handshake_is_not_inactivity(self):
        """
        A handshake that takes longer than the inactivity timeout (a loaded browser or
        server) is judged by the connect timeout alone: no media_inactive before the leg
        connects, and the inactivity watch counts from the connection.
        """
        session = self.session(inactivity_timeout=5, connect_timeout=30)
        session.create_answer(browser_offer(), [], [], "sendrecv")
        browser = Browser(self, session.transport, self.port(session))
        for _ in range(16):  # 8 s without a check
            self.reactor.advance(0.5)
        self.assertEqual(self.observer.events, [])
        browser.connect()
        for _ in range(8):  # 4 s connected, no media yet
            self.reactor.advance(0.5)
            browser.check(use_candidate=False)
        self.assertEqual(self.observer.events, [("connected",)])
        for _ in range(6):
            self.reactor.advance(0.5)
            browser.check(use_candidate=False)
        self.assertEqual(self.observer.events, [("connected",), ("inactive",)])

    def test_dtls_failure(self):
        """
        A DTLS certificate that does not match the SDP fingerprint fails the
        leg with "Failed by DTLS error".
        """
        session = self.session()
        session.create_answer(CHROME_AUDIO.replace("a=ice-ufrag:X/IG", "a=ice-ufrag:brws"),
                              [], [], "sendrecv")
        browser = Browser(self, session.transport, self.port(session))
        browser.check()
        out = browser.dtls.start()
        for _ in range(10):
            for datagram in out:
                session.transport.datagramReceived(datagram, BROWSER)
            back = [d for d in browser.replies() if 19 < d[0] < 64]
            if not back:
                break
            out = [d for datagram in back for d in browser.dtls.receive(datagram)]
        self.assertIs(session.transport.dtls.state, DTLSState.FAILED)
        self.assertEqual(self.observer.events, [("failed", "Failed by DTLS error")])

    def test_ice_consent_lost(self):
        """
        ICE consent expiring after connection fails the leg with "Failed by
        ICE error", and no media_inactive follows it.
        """
        self.connected_session(inactivity_timeout=60)
        self.reactor.pump([1.0] * 40)
        self.assertEqual(self.observer.events,
                         [("connected",), ("failed", "Failed by ICE error")])
        self.reactor.pump([1.0] * 40)
        self.assertEqual(len(self.observer.events), 2)

    def test_never_connected(self):
        """
        A browser that never sends a check fails the leg with "Failed by ICE
        error" after the connect timeout.
        """
        session = self.session(connect_timeout=10)
        session.create_answer(browser_offer(), [], [], "sendrecv")
        self.reactor.advance(9)
        self.assertEqual(self.observer.events, [])
        self.reactor.advance(2)
        self.assertEqual(self.observer.events, [("failed", "Failed by ICE error")])

    def test_close_releases_port(self):
        """
        close frees the pool pair, leaves no timer, and can be called twice;
        the session then refuses SDP work.
        """
        session = self.session(inactivity_timeout=5)
        session.create_answer(browser_offer(), [], [], "sendrecv")
        self.assertEqual(self.pool.in_use, 1)
        self.successResultOf(session.close())
        self.successResultOf(session.close())
        self.assertEqual(self.pool.in_use, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertRaises(MediaError, session.create_offer, ["PCMU/8000"], [], "sendrecv")

    def test_no_ports(self):
        """
        An exhausted pool makes start raise MediaError("No available ports").
        """
        pool = PortPool(31000, 31001)
        first = WebRTCMediaSession(self.reactor, BIND, PUBLIC, pool, SERVER_CERT).start()
        self.addCleanup(first.close)
        second = WebRTCMediaSession(self.reactor, BIND, PUBLIC, pool, SERVER_CERT)
        error = self.assertRaises(MediaError, second.start)
        self.assertEqual(error.info, "No available ports")


class RTPSessionMixin:
    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.pool = PortPool(32000, 32019)
        self.observer = Observer()

    def session(self, **kw):
        session = RTPMediaSession(
            self.reactor, BIND, PUBLIC, self.pool, rng=random.Random(9), **kw
        ).start()
        session.observer = self.observer
        self.addCleanup(session.close)
        return session

    def written(self, port):
        return [(peek_header(d), d, a) for d, a in self.reactor.bound[port].written]


class RTPAnswerTests(RTPSessionMixin, SynchronousTestCase):
    """
    Answers to a real baresip offer (RTP/AVP, audio + video).
    """

    def test_provides_interface(self):
        """
        The session provides IMediaSession with kind "rtp".
        """
        session = self.session()
        verifyObject(IMediaSession, session)
        self.assertEqual(session.kind, "rtp")

    def test_answer(self):
        """
        The answer is RTP/AVP from the public address and the bound port,
        ptime 20, one codec and telephone-event/8000 with baresip's payload
        type.
        """
        session = self.session()
        answer = SessionDescription.parse(
            session.create_answer(BARESIP, ["PCMU/8000"], [], "sendrecv"))
        audio = answer.media[0]
        self.assertEqual(answer.connection.address, PUBLIC)
        self.assertEqual((audio.port, audio.proto), (session.local_address[1], "RTP/AVP"))
        self.assertEqual(audio.fmt, ["0", "101"])
        self.assertEqual(audio.ptime, 20)
        self.assertEqual(audio.direction, Direction.SENDRECV)
        self.assertFalse(answer.ice_lite or audio.fingerprints or audio.candidates)
        self.assertEqual(session.audio_codec, "PCMU/8000")
        self.assertEqual(session.audio.telephone_event.payload_type, 101)

    def test_video_gets_its_own_pair(self):
        """
        baresip's video is answered on a second port pair from the pool.
        """
        session = self.session()
        answer = SessionDescription.parse(
            session.create_answer(BARESIP, ["PCMU/8000"], ["VP8/90000"], "sendrecv"))
        audio, video = answer.media
        self.assertEqual(video.port, session.video_rtp.local_address[1])
        self.assertNotEqual(video.port, audio.port)
        self.assertEqual([c.rtpmap for c in video.codecs], ["VP8/90000"])
        self.assertEqual(self.pool.in_use, 2)

    def test_remote_address_from_sdp(self):
        """
        The session sends to the offer's c=/m= address until RTP latches it.
        """
        session = self.session()
        session.create_answer(BARESIP, ["PCMU/8000"], [], "sendrecv")
        self.assertEqual(session.audio_rtp.remote_address, ("127.0.0.1", 17196))

    def test_latch_reports_connected(self):
        """
        The first RTP packet latches the session onto its source and reports
        media_connected once.
        """
        session = self.session()
        session.create_answer(BARESIP, ["PCMU/8000"], [], "sendrecv")
        for seq in (1, 2):
            session.audio_rtp.datagramReceived(build_rtp(0, seq, 160 * seq, 5, b"\xff" * 160),
                                               PHONE)
        self.assertEqual(session.audio_rtp.remote_address, PHONE)
        self.assertEqual(self.observer.events, [("connected",)])

    def test_no_common_codecs(self):
        """
        An offer with only GSM raises MediaError("No common codecs").
        """
        offer = only_codecs(BARESIP, "audio", "101").replace(
            "m=audio 17196 RTP/AVP 101", "m=audio 17196 RTP/AVP 3 101")
        error = self.assertRaises(MediaError, self.session().create_answer, offer, [], [],
                                  "sendrecv")
        self.assertEqual(error.info, "No common codecs")

    def test_offered_codecs(self):
        """
        offered_codecs lists baresip's audio and video formats we carry.
        """
        self.assertEqual(
            self.session().offered_codecs(BARESIP),
            (["opus/48000/2", "G722/8000", "PCMU/8000", "PCMA/8000"],
             ["H264/90000", "VP8/90000"]),
        )

    def test_reinvite_hold(self):
        """
        A re-INVITE putting us on hold (sendonly) is answered recvonly and
        stops our sending; the watchdog pauses only when we stop receiving.
        """
        session = self.session()
        session.create_answer(BARESIP, ["PCMU/8000"], [], "sendrecv")
        hold = BARESIP.replace("a=sendrecv", "a=sendonly")
        answer = SessionDescription.parse(
            session.create_answer(hold, ["PCMU/8000"], [], "sendrecv"))
        self.assertEqual(answer.media[0].direction, Direction.RECVONLY)
        self.assertFalse(session.audio_rtp._sending)
        self.assertTrue(session.audio_rtp._receiving)


class RTPOfferTests(RTPSessionMixin, SynchronousTestCase):
    """
    Offers to SIP peers and their answers.
    """

    def test_offer(self):
        """
        The offer lists the other leg's codecs first, then ours (the SIP-only
        Speex and G.729 last); telephone-event at each codec clock rate;
        ptime 20; no m=video without video codecs.
        """
        session = self.session()
        offer = SessionDescription.parse(
            session.create_offer(["PCMU/8000", "opus/48000/2"], [], "sendrecv"))
        [audio] = offer.media
        self.assertEqual(
            [c.rtpmap for c in audio.codecs],
            ["PCMU/8000", "opus/48000/2", "G722/8000", "PCMA/8000", "speex/16000",
             "speex/8000", "G729/8000", "telephone-event/48000", "telephone-event/8000",
             "telephone-event/16000"],
        )
        self.assertEqual(audio.ptime, 20)
        self.assertEqual(offer.connection.address, PUBLIC)
        self.assertFalse(audio.rtcp_mux)

    def phone_answer(self, port=4000, fmt="0 96", extra=("a=rtpmap:96 telephone-event/8000",)):
        return "\r\n".join(
            ["v=0", "o=phone 1 1 IN IP4 192.0.2.10", "s=-", "c=IN IP4 192.0.2.10", "t=0 0",
             f"m=audio {port} RTP/AVP {fmt}", "a=rtpmap:0 PCMU/8000", *extra, "a=sendrecv", ""])

    def test_answer_applied(self):
        """
        The phone's answer sets the codec, the address to send to, and
        telephone-event sent with the phone's number but recognised by ours.
        """
        session = self.session()
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.phone_answer())
        self.assertEqual(session.audio_codec, "PCMU/8000")
        self.assertEqual(session.audio_rtp.remote_address, ("192.0.2.10", 4000))
        self.assertEqual(session.audio.telephone_event.payload_type, 96)
        self.assertEqual(session.audio.telephone_event_receive_payload_type, 101)

    def test_send_dtmf(self):
        """
        send_dtmf sends RFC 4733 packets (marker on the first, three ends)
        with the payload type the phone answered.
        """
        session = self.session()
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.phone_answer())
        session.send_dtmf("9", 40)
        self.reactor.pump([0.02] * 10)
        sent = self.written(session.local_address[1])
        self.assertEqual([h.payload_type for h, _, _ in sent], [96] * 4)
        self.assertTrue(sent[0][0].marker)
        self.assertEqual({d[12] for _, d, _ in sent}, {9})

    def test_inbound_dtmf(self):
        """
        Digits arriving with our telephone-event number are reported once.
        """
        session = self.session()
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.phone_answer())
        for seq in (1, 2, 3):
            session.audio_rtp.datagramReceived(
                build_rtp(101, seq, 1600, 5, encode_telephone_event(11, seq == 3, 10, 160)),
                PHONE)
        self.assertEqual(self.observer.events, [("connected",), ("dtmf", "#")])

    def test_answer_without_common_codec(self):
        """
        An answer naming nothing we offered raises "No common codecs".
        """
        session = self.session()
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        answer = self.phone_answer(fmt="3", extra=("a=rtpmap:3 GSM/8000",)).replace(
            "a=rtpmap:0 PCMU/8000\r\n", "")
        error = self.assertRaises(MediaError, session.set_remote_answer, answer)
        self.assertEqual(error.info, "No common codecs")

    def test_inactivity(self):
        """
        No RTP for the configured time reports media_inactive once.
        """
        session = self.session(inactivity_timeout=3)
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.phone_answer())
        self.reactor.pump([0.5] * 20)
        self.assertEqual(self.observer.events, [("inactive",)])

    def test_set_direction_hold(self):
        """
        set_direction("inactive") stops sending and receiving without SDP;
        "sendrecv" resumes.
        """
        session = self.session()
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer(self.phone_answer())
        session.set_direction("inactive")
        self.assertTrue(session.audio_rtp.on_hold)
        session.set_direction("sendrecv")
        self.assertFalse(session.audio_rtp.on_hold)

    def test_video_dropped_releases_ports(self):
        """
        A re-offer without video gives the video pair back; close gives back
        everything.
        """
        session = self.session()
        session.create_offer(["PCMU/8000"], ["VP8/90000"], "sendrecv")
        self.assertEqual(self.pool.in_use, 2)
        video_answer = self.phone_answer() + "m=video 4002 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\n"
        session.set_remote_answer(video_answer)
        self.assertEqual(session.video_codec, "VP8/90000")
        offer = SessionDescription.parse(session.create_offer(["PCMU/8000"], [], "sendrecv"))
        self.assertEqual(offer.media[1].port, 0)
        session.set_remote_answer(self.phone_answer() + "m=video 0 RTP/AVP 100\r\n")
        self.assertIsNone(session.video_rtp)
        self.assertEqual(self.pool.in_use, 1)
        self.successResultOf(session.close())
        self.assertEqual(self.pool.in_use, 0)
        self.assertEqual(self.reactor.bound, {})

    def test_no_ports_for_video(self):
        """
        When the range has no pair left for video, the offer is answered
        audio-only instead of failing the call.
        """
        pool = PortPool(32100, 32101)
        session = RTPMediaSession(self.reactor, BIND, PUBLIC, pool).start()
        self.addCleanup(session.close)
        answer = SessionDescription.parse(
            session.create_answer(BARESIP, ["PCMU/8000"], ["VP8/90000"], "sendrecv"))
        self.assertEqual(answer.media[1].port, 0)
        self.assertIsNone(session.video_codec)
        self.assertEqual(pool.in_use, 1)

    def test_offered_codecs_skip_other_transports(self):
        """
        An RTP leg lists nothing from a WebRTC (UDP/TLS/RTP/SAVPF) offer.
        """
        self.assertEqual(self.session().offered_codecs(CHROME_AUDIO), ([], []))
