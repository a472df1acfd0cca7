"""
Tests for L{wcs_twisted.media.bridge}: relay rewriting, transcoding (checked
by the frequency of a tone after a PCMU -> Opus -> PCMU round trip), RFC 4733
events, video keyframe requests, hold and renegotiation; with fake sessions
exposing the bridge-facing methods of L{wcs_twisted.media.session}, and once
with two real RTP legs on a fake reactor.
"""

import fractions
import random

import av
import numpy
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.interfaces import IMediaBridge, IPausableBridge
from wcs_twisted.media import rtcp
from wcs_twisted.media.bridge import MediaBridge, can_relay
from wcs_twisted.media.transcode import AudioTranscoder
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import (
    RTPRewriter,
    build_rtp,
    encode_telephone_event,
    peek_header,
)
from wcs_twisted.media.rtp_session import RTPMediaSession
from wcs_twisted.media.session import NegotiatedStream
from wcs_twisted.sdp.codecs import Codec

PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
OPUS = Codec(111, "opus", 48000, 2)
G722 = Codec(9, "G722", 8000)
TE8 = Codec(101, "telephone-event", 8000)
TE8_OTHER = Codec(126, "telephone-event", 8000)
TE48 = Codec(110, "telephone-event", 48000)
VP8 = Codec(96, "VP8", 90000)
VP8_OTHER = Codec(100, "VP8", 90000)
H264_PM1 = Codec(102, "H264", 90000, None, {"packetization-mode": "1"})
H264_PM0 = Codec(104, "H264", 90000, None, {"packetization-mode": "0"})


def stream(kind, codec, event=None, receive=None):
    return NegotiatedStream(
        kind, codec, codec.payload_type if receive is None else receive, event,
        None if event is None else event.payload_type,
    )


class FakeSession:
    """
    The bridge-facing side of a media session: received packets are fed
    with L{receive}, and what the bridge sends is recorded after the same
    in-place rewrite a real leg does.
    """

    def __init__(self, kind, audio=None, video=None, ssrc=0x5E55):
        self.kind = kind
        self.audio = audio
        self.video = video
        self.audio_codec = None if audio is None else audio.name
        self.video_codec = None if video is None else video.name
        self.closed = False
        self.bridge = None
        self.receivers = (None, None)
        self.feedback = None
        self.rewriters = {"audio": RTPRewriter(ssrc), "video": RTPRewriter(ssrc + 1)}
        self.sent = {"audio": [], "video": []}
        self.payloads = []
        self.digits = []
        self.keyframe_requests = []

    def set_receivers(self, audio, video):
        self.receivers = (audio, video)

    def set_feedback_receiver(self, receiver):
        self.feedback = receiver

    def receive(self, data, kind="audio"):
        routes = self.receivers[0 if kind == "audio" else 1] or {}
        handler = routes.get(data[1] & 0x7F)
        if handler is not None:
            handler(data)

    def relay_sender(self, kind):
        def send(buf):
            self.rewriters[kind].rewrite(buf)
            self.sent[kind].append(bytes(buf))
        return send

    def payload_sender(self):
        return lambda payload, payload_type, marker=False: self.payloads.append(
            (payload_type, payload))

    def rewriter(self, kind):
        return self.rewriters[kind]

    def send_keyframe_request(self, media_ssrc):
        self.keyframe_requests.append(media_ssrc)

    def send_dtmf(self, digit, duration_ms):
        self.digits.append((digit, duration_ms))

    def renegotiate(self, audio):
        self.audio = audio
        self.audio_codec = audio.name
        if self.bridge is not None:
            self.bridge.session_changed(self)


def tone(freq, seconds, rate, amplitude=0.5):
    t = numpy.arange(int(seconds * rate)) / rate
    return (amplitude * 32767 * numpy.sin(2 * numpy.pi * freq * t)).astype(numpy.int16)


def encode_pcmu(samples):
    """
    20 ms PCMU payloads of C{samples} (8 kHz), through FFmpeg's encoder.
    """
    encoder = av.CodecContext.create("pcm_mulaw", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 8000, "mono", "s16"
    encoder.time_base = fractions.Fraction(1, 8000)
    payloads = []
    for start in range(0, len(samples) - 159, 160):
        frame = av.AudioFrame.from_ndarray(samples[start:start + 160].reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = 8000
        frame.pts = start
        payloads.extend(bytes(p) for p in encoder.encode(frame))
    return payloads


def decode_ulaw(payloads):
    """
    G.711 mu-law to linear, written out (independent of FFmpeg).
    """
    u = ~numpy.frombuffer(b"".join(payloads), dtype=numpy.uint8)
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F).astype(numpy.int32) << 3) + 0x84) << exponent) - 0x84
    return numpy.where(u & 0x80, -magnitude, magnitude)


def dominant_frequency(samples, rate):
    x = numpy.asarray(samples, dtype=numpy.float64)
    x = (x - x.mean()) * numpy.hanning(len(x))
    return numpy.argmax(numpy.abs(numpy.fft.rfft(x))) * rate / len(x)


class CodecRuleTests(SynchronousTestCase):
    """
    When packets may be relayed unchanged.
    """

    def test_can_relay(self):
        """
        Same encoding and clock relay (payload types may differ); H.264 also
        needs the same packetization-mode (RFC 6184 8.2.2).
        """
        self.assertTrue(can_relay(PCMU, Codec(0, "pcmu", 8000)))
        self.assertTrue(can_relay(OPUS, Codec(96, "opus", 48000, 2, {"stereo": "1"})))
        self.assertTrue(can_relay(VP8, VP8_OTHER))
        self.assertFalse(can_relay(PCMU, PCMA))
        self.assertFalse(can_relay(H264_PM1, H264_PM0))


class RelayTests(SynchronousTestCase):
    """
    Same codec on both legs: header rewrite only.
    """

    def setUp(self):
        self.a = FakeSession("webrtc", stream("audio", Codec(0, "PCMU", 8000), TE8_OTHER),
                             ssrc=0xAAAA)
        self.b = FakeSession("rtp", stream("audio", PCMU, TE8), ssrc=0xBBBB)
        self.bridge = MediaBridge(self.a, self.b)

    def test_interface_and_mode(self):
        """
        The bridge provides IMediaBridge and relays both ways.
        """
        verifyObject(IMediaBridge, self.bridge)
        self.assertEqual(self.bridge.mode, "relay")
        self.assertEqual(self.bridge.modes, {"a->b": "relay", "b->a": "relay"})
        self.assertEqual(self.bridge.transcoders, {})

    def test_rewrites_ssrc_and_sequence(self):
        """
        Relayed packets carry the target leg's SSRC and continuous sequence
        numbers; the payload is untouched.
        """
        for seq in (7, 8):
            self.a.receive(build_rtp(0, seq, 160 * seq, 0x1234, bytes([seq]) * 160))
        first, second = (peek_header(p) for p in self.b.sent["audio"])
        self.assertEqual((first.ssrc, second.ssrc), (0xBBBB, 0xBBBB))
        self.assertEqual(second.sequence_number, (first.sequence_number + 1) & 0xFFFF)
        self.assertEqual(self.b.sent["audio"][1][12:], bytes([8]) * 160)

    def test_telephone_event_payload_type_mapped(self):
        """
        RFC 4733 packets cross with the target's telephone-event payload
        type (126 -> 101), keeping the marker bit; audio keeps PT 0.
        """
        self.a.receive(build_rtp(126, 1, 800, 0x1234, encode_telephone_event(5), marker=True))
        self.b.receive(build_rtp(101, 1, 800, 0x9999, encode_telephone_event(6)))
        [to_b] = self.b.sent["audio"]
        [to_a] = self.a.sent["audio"]
        self.assertEqual((peek_header(to_b).payload_type, peek_header(to_b).marker), (101, True))
        self.assertEqual(peek_header(to_a).payload_type, 126)

    def test_payload_type_mapped(self):
        """
        The same codec under different payload types is renumbered.
        """
        self.b.renegotiate(stream("audio", Codec(96, "PCMU", 8000), TE8))
        self.a.receive(build_rtp(0, 1, 160, 1, b"\xff" * 160))
        self.assertEqual(peek_header(self.b.sent["audio"][0]).payload_type, 96)
        self.b.receive(build_rtp(96, 1, 160, 1, b"\xff" * 160))
        self.assertEqual(peek_header(self.a.sent["audio"][0]).payload_type, 0)

    def test_unknown_payload_dropped(self):
        """
        Payload types that were not negotiated (comfort noise) do not cross.
        """
        self.a.receive(build_rtp(13, 1, 160, 1, b"\x40"))
        self.assertEqual(self.b.sent["audio"], [])

    def test_events_not_relayed_blindly(self):
        """
        When the target negotiated no telephone-event, events are not
        relayed as packets; the digit is re-sent from the end packet only
        (which the target ignores without telephone-event).
        """
        self.b.renegotiate(stream("audio", PCMU))
        for seq, end in ((1, False), (2, True), (3, True)):
            self.a.receive(build_rtp(126, seq, 800, 1, encode_telephone_event(4, end, 10, 800)))
        self.assertEqual(self.b.sent["audio"], [])
        self.assertEqual(self.b.digits, [("4", 100)])

    def test_hold(self):
        """
        hold(True) stops forwarding both ways; hold(False) restores it.
        """
        self.bridge.hold(True)
        self.assertTrue(self.bridge.held)
        self.a.receive(build_rtp(0, 1, 160, 1, b"\xff" * 160))
        self.b.receive(build_rtp(0, 1, 160, 1, b"\xff" * 160))
        self.assertEqual((self.a.sent["audio"], self.b.sent["audio"]), ([], []))
        self.bridge.hold(False)
        self.a.receive(build_rtp(0, 2, 320, 1, b"\xff" * 160))
        self.assertEqual(len(self.b.sent["audio"]), 1)

    def test_pause_audio_to_one_leg(self):
        """
        pause_audio_to(b) stops a's audio and events reaching b (b's payload type map is
        cleared for whatever plays into it) while b's audio still reaches a; it outlasts hold
        and renegotiation, and pause_audio_to(b, False) restores the audio.
        """
        verifyObject(IPausableBridge, self.bridge)
        self.bridge.pause_audio_to(self.b, True)
        self.a.receive(build_rtp(0, 1, 160, 1, b"\xff" * 160))
        self.a.receive(build_rtp(126, 2, 160, 1, encode_telephone_event(5), marker=True))
        self.b.receive(build_rtp(0, 1, 160, 2, b"\xff" * 160))
        self.assertEqual((len(self.a.sent["audio"]), self.b.sent["audio"]), (1, []))
        self.assertEqual(self.b.digits, [])
        self.bridge.hold(True)
        self.bridge.hold(False)
        self.b.renegotiate(stream("audio", Codec(96, "PCMU", 8000), TE8))
        self.a.receive(build_rtp(0, 3, 480, 1, b"\xff" * 160))
        self.assertEqual(self.b.sent["audio"], [])
        # A packet sent into b by someone else keeps its payload type (no map applied).
        self.b.relay_sender("audio")(bytearray(build_rtp(0, 1, 160, 7, b"\xff" * 160)))
        self.assertEqual(peek_header(self.b.sent["audio"][0]).payload_type, 0)
        self.bridge.pause_audio_to(self.b, False)
        self.a.receive(build_rtp(0, 4, 640, 1, b"\xff" * 160))
        self.assertEqual(peek_header(self.b.sent["audio"][-1]).payload_type, 96)
        self.assertEqual(len(self.b.sent["audio"]), 2)
        self.assertRaises(ValueError, self.bridge.pause_audio_to, FakeSession("rtp"), True)

    def test_close(self):
        """
        close detaches both sessions and their payload type maps.
        """
        self.bridge.close()
        self.assertEqual((self.a.receivers, self.b.receivers), ((None, None), (None, None)))
        self.assertIsNone(self.a.bridge)
        self.assertIsNone(self.b.feedback)
        self.a.receive(build_rtp(0, 1, 160, 1, b"\xff" * 160))
        self.assertEqual(self.b.sent["audio"], [])
        self.bridge.close()

    def test_one_bridge_per_session(self):
        """
        A session already bridged cannot join a second bridge.
        """
        other = FakeSession("rtp", stream("audio", PCMU))
        self.assertRaises(ValueError, MediaBridge, self.a, other)


class TranscodeTests(SynchronousTestCase):
    """
    Different codecs: decode, resample, encode.
    """

    def test_pcmu_opus_pcmu_keeps_tone(self):
        """
        A 440 Hz PCMU tone from the SIP leg goes out as Opus on the browser
        leg, and that Opus sent back comes out as PCMU still at 440 Hz.
        """
        sip = FakeSession("rtp", stream("audio", PCMU, TE8))
        browser = FakeSession("webrtc", stream("audio", OPUS, TE48))
        bridge = MediaBridge(browser, sip)
        self.assertEqual(bridge.mode, "transcode")
        for seq, payload in enumerate(encode_pcmu(tone(440.0, 1.5, 8000))):
            sip.receive(build_rtp(0, seq, 160 * seq, 0x51, payload))
        opus = [p for pt, p in browser.payloads]
        self.assertEqual({pt for pt, _ in browser.payloads}, {111})
        self.assertGreaterEqual(len(opus), 70)
        for seq, payload in enumerate(opus):
            browser.receive(build_rtp(111, seq, 960 * seq, 0x52, payload))
        self.assertEqual({pt for pt, _ in sip.payloads}, {0})
        self.assertEqual({len(p) for pt, p in sip.payloads}, {160})
        samples = decode_ulaw([p for _, p in sip.payloads])[4000:]
        self.assertLess(abs(dominant_frequency(samples, 8000) - 440.0), 10.0)
        self.assertGreater(numpy.sqrt(numpy.mean(samples.astype(float) ** 2)), 5000)

    def test_g722_to_pcma(self):
        """
        G.722 (16 kHz audio on an 8 kHz RTP clock) transcodes to PCMA with
        one 160-byte payload per 20 ms.
        """
        sent = []
        to_g722 = AudioTranscoder(PCMU, G722, lambda p, pt: sent.append(p))
        for seq, payload in enumerate(encode_pcmu(tone(300.0, 0.5, 8000))):
            to_g722.packet(build_rtp(0, seq, 160 * seq, 1, payload))
        self.assertEqual({len(p) for p in sent}, {160})
        out = []
        to_pcma = AudioTranscoder(G722, PCMA, lambda p, pt: out.append((pt, p)))
        for seq, payload in enumerate(sent):
            to_pcma.packet(build_rtp(9, seq, 160 * seq, 1, payload))
        self.assertGreaterEqual(len(out), len(sent) - 2)
        self.assertEqual({pt for pt, _ in out}, {8})

    def test_corrupt_payload_counted(self):
        """
        A payload the decoder refuses is counted and dropped, not raised.
        """
        transcoder = AudioTranscoder(OPUS, PCMU, lambda p, pt: None)
        transcoder.packet(build_rtp(111, 1, 0, 1, b"\xff" * 3)[:13])
        transcoder.packet(b"\x90" + bytes(11))  # extension bit, no extension
        self.assertEqual(transcoder.errors, 2)

    def test_dtmf_regenerated(self):
        """
        While transcoding, an RFC 4733 event is re-sent on the other leg
        once, with its duration, when its end arrives.
        """
        sip = FakeSession("rtp", stream("audio", PCMU, TE8))
        browser = FakeSession("webrtc", stream("audio", OPUS, TE48))
        MediaBridge(browser, sip)
        for seq, (end, duration) in enumerate(((False, 960), (True, 7680), (True, 7680))):
            browser.receive(build_rtp(110, seq, 4800, 1,
                                      encode_telephone_event(10, end, 10, duration)))
        self.assertEqual(sip.digits, [("*", 160)])
        self.assertEqual(sip.payloads, [])

    def test_renegotiation_switches_mode(self):
        """
        A leg renegotiating to the other's codec turns transcoding into relay.
        """
        sip = FakeSession("rtp", stream("audio", PCMU, TE8))
        browser = FakeSession("webrtc", stream("audio", OPUS, TE48))
        bridge = MediaBridge(browser, sip)
        self.assertEqual(bridge.mode, "transcode")
        sip.renegotiate(stream("audio", Codec(96, "opus", 48000, 2), TE48))
        self.assertEqual(bridge.mode, "relay")
        self.assertEqual(bridge.transcoders, {})


class VideoTests(SynchronousTestCase):
    """
    Video is relayed when both legs use the same codec; keyframe requests
    cross as PLI.
    """

    def setUp(self):
        self.clock = Clock()
        self.browser = FakeSession("webrtc", stream("audio", PCMU), stream("video", VP8))
        self.sip = FakeSession("rtp", stream("audio", PCMU), stream("video", VP8_OTHER))
        self.bridge = MediaBridge(self.browser, self.sip, clock=self.clock)
        self.hook = []
        self.bridge.on_keyframe_request = self.hook.append

    def test_relayed_with_payload_type_map(self):
        """
        Video packets cross renumbered onto the target's video SSRC.
        """
        self.sip.receive(build_rtp(100, 1, 3000, 0x7777, b"\x10" * 900), "video")
        [packet] = self.browser.sent["video"]
        header = peek_header(packet)
        self.assertEqual((header.payload_type, header.ssrc), (96, 0x5E56))

    def test_pli_from_browser_goes_upstream(self):
        """
        A PLI from the browser makes the bridge ask the SIP leg for a key
        frame of the source it relays (by SSRC) and tells the hook.
        """
        self.sip.receive(build_rtp(100, 1, 3000, 0x7777, b"\x10" * 900), "video")
        packets = rtcp.parse_compound(rtcp.build_pli(0xB0B, 0x5E56))
        self.browser.feedback("video", packets)
        self.assertEqual(self.sip.keyframe_requests, [0x7777])
        self.assertEqual(self.hook, [self.sip])

    def test_requests_spaced(self):
        """
        Requests closer together than a quarter second are passed on once.
        """
        packets = rtcp.parse_compound(rtcp.build_pli(1, 2))
        self.browser.feedback("video", packets)
        self.browser.feedback("video", packets)
        self.clock.advance(0.3)
        self.browser.feedback("video", packets)
        self.assertEqual(len(self.sip.keyframe_requests), 2)

    def test_reports_ignored(self):
        """
        Plain receiver reports are not keyframe requests.
        """
        self.sip.feedback("video", rtcp.parse_compound(rtcp.build_rr(1)))
        self.assertEqual(self.browser.keyframe_requests, [])

    def test_request_keyframe(self):
        """
        request_keyframe (SIP INFO picture_fast_update from the phone) asks
        the browser leg for a key frame.
        """
        self.bridge.request_keyframe(self.browser)
        self.assertEqual(self.browser.keyframe_requests, [None])

    def test_different_codecs_not_relayed(self):
        """
        With H.264 packetization modes that differ no video crosses; audio
        still relays.
        """
        browser = FakeSession("webrtc", stream("audio", PCMU), stream("video", H264_PM1))
        sip = FakeSession("rtp", stream("audio", PCMU), stream("video", H264_PM0))
        bridge = MediaBridge(browser, sip)
        sip.receive(build_rtp(104, 1, 3000, 1, b"\x10" * 100), "video")
        self.assertEqual(browser.sent["video"], [])
        self.assertEqual(bridge.mode, "relay")


def pcmu_leg(case, reactor, pool, port):
    """
    A started SIP leg that negotiated PCMU with a phone at 192.0.2.1:C{port}, closed by
    C{case}'s cleanup.
    """
    leg = RTPMediaSession(reactor, "10.0.0.1", "198.51.100.1", pool,
                          rng=random.Random(port)).start()
    case.addCleanup(leg.close)
    leg.create_offer(["PCMU/8000"], [], "sendrecv")
    leg.set_remote_answer(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    return leg


class RealLegTests(SynchronousTestCase):
    """
    Two real RTP legs on a fake reactor, bridged through their
    bridge-facing methods.
    """

    def test_relay_between_rtp_sessions(self):
        """
        A packet received on one leg leaves the other leg's port with that
        leg's SSRC, to the other phone's address.
        """
        reactor = FakeUDPReactor()
        pool = PortPool(33000, 33009)
        a, b = (pcmu_leg(self, reactor, pool, port) for port in (4000, 5000))
        bridge = MediaBridge(a, b)
        a.audio_rtp.datagramReceived(build_rtp(0, 1, 160, 0x42, b"\xff" * 160), ("192.0.2.1", 4000))
        [(data, addr)] = reactor.bound[b.local_address[1]].written
        self.assertEqual(addr, ("192.0.2.1", 5000))
        self.assertEqual(peek_header(data).ssrc, b.audio_rtp.ssrc)
        self.successResultOf(a.close())
        self.assertIsNone(b.bridge)
        self.assertEqual(bridge.mode, "relay")
