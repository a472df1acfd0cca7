"""
Tests for L{wcs_twisted.media.stream_endpoints} and the stream tap of
L{wcs_twisted.media.session}: a session's received media pushed into a named
stream (next to its bridge, through renegotiation), and a stream played out
on a session (relayed, transcoded, video and keyframes), on real RTP legs over
a fake UDP reactor.
"""

import fractions
import itertools
import random

import av
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.media.fakes import FakeUDPReactor
from tests.media.test_bridge import decode_ulaw, dominant_frequency, encode_pcmu, tone
from tests.media.test_session import BARESIP, PHONE, only_codecs
from wcs_twisted.interfaces import IMediaStreams, IMediaStreamSink, IMediaStreamSource, IStreamSink
from wcs_twisted.media import rtcp
from wcs_twisted.media.bridge import MediaBridge
from wcs_twisted.media.factory import MediaFactory
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import build_rtp, encode_telephone_event, peek_header
from wcs_twisted.media.rtp_session import RTPMediaSession
from wcs_twisted.media.stream_endpoints import SessionSink, SessionSource
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.sdp.session import SessionDescription

PUBLIC = "198.51.100.1"
BIND = "10.0.0.1"
OTHER_PHONE = ("192.0.2.20", 4000)
AUDIO_ONLY = str(SessionDescription.parse(BARESIP)).split("m=video")[0]


@implementer(IStreamSink)
class RecordingSink:
    """
    A stream sink that keeps every packet.
    """

    def __init__(self, kinds=("audio", "video")):
        self.kinds = kinds
        self.packets = []
        self.ended = []

    def packet_received(self, kind, payload, codec_name, timestamp, marker):
        self.packets.append((kind, payload, codec_name, timestamp, marker))

    def stream_ended(self, reason):
        self.ended.append(reason)


class StreamEndpointMixin:
    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.pool = PortPool(33000, 33039)
        self.registry = StreamRegistry(self.reactor)
        self.seeds = itertools.count(1)

    def session(self, offer=AUDIO_ONLY, audio=("PCMU/8000",), video=()):
        session = RTPMediaSession(self.reactor, BIND, PUBLIC, self.pool,
                                  rng=random.Random(next(self.seeds))).start()
        session.create_answer(offer, list(audio), list(video), "sendrecv")
        self.addCleanup(session.close)
        return session

    def receive(self, session, payload_type, seq, timestamp, payload, marker=False,
                source=PHONE, leg=None):
        leg = leg if leg is not None else session.audio_rtp
        leg.datagramReceived(build_rtp(payload_type, seq, timestamp, 0x1234, payload, marker),
                             source)

    def written(self, leg):
        """
        The RTP packets a leg sent (RTCP left out).
        """
        return [data for data, _ in self.reactor.bound[leg.local_address[1]].written
                if not 191 < data[1] < 224]


class SessionSourceTests(StreamEndpointMixin, SynchronousTestCase):
    """
    A session's received media as a stream source.
    """

    def publish(self, session, name="s"):
        source = SessionSource(session)
        stream = self.registry.publish(name, source)
        source.start(stream)
        sink = RecordingSink()
        stream.attach(sink)
        return source, stream, sink

    def test_interfaces(self):
        """
        The factory provides IMediaStreams; its sources and sinks their interfaces.
        """
        factory = MediaFactory(self.reactor, PUBLIC, BIND, self.pool)
        verifyObject(IMediaStreams, factory)
        session = self.session()
        verifyObject(IMediaStreamSource, factory.stream_source(session))
        verifyObject(IMediaStreamSink, factory.stream_sink(session, None))

    def test_packets_reach_the_stream(self):
        """
        Each RTP packet of the negotiated codec becomes (kind, payload, codec name, timestamp,
        marker); RFC 4733 events are not part of the stream.
        """
        session = self.session()
        source, stream, sink = self.publish(session)
        self.assertEqual((source.audio_codec, source.video_codec), ("PCMU/8000", None))
        self.receive(session, 0, 1, 160, b"\x01" * 160, marker=True)
        self.receive(session, 101, 2, 160, encode_telephone_event(5, False, 10, 160))
        self.receive(session, 0, 3, 480, b"\x02" * 160)
        self.assertEqual(sink.packets, [("audio", b"\x01" * 160, "PCMU/8000", 160, True),
                                        ("audio", b"\x02" * 160, "PCMU/8000", 480, False)])

    def test_no_tap_no_cost(self):
        """
        Without a bridge or a tap the leg's receive slot is empty, and it is empty again once
        the stream ends.
        """
        session = self.session()
        self.assertIsNone(session.audio_rtp.packet_received)
        source, stream, sink = self.publish(session)
        self.assertIsNotNone(session.audio_rtp.packet_received)
        stream.end("Stopped by publisher stop")
        self.assertIsNone(session.audio_rtp.packet_received)
        self.assertIsNone(source.stream)

    def test_tap_next_to_a_bridge(self):
        """
        A bridged leg still relays to the other leg while it feeds the stream, through the
        bridge's reconfigurations (hold, unhold); when the stream ends the relay goes on.
        """
        phone = self.session()
        other = self.session()
        other.audio_rtp.set_remote(*OTHER_PHONE)
        bridge = MediaBridge(phone, other)
        source, stream, sink = self.publish(phone)
        self.receive(phone, 0, 1, 160, b"\x01" * 160)
        self.assertEqual(len(sink.packets), 1)
        self.assertEqual(len(self.written(other.audio_rtp)), 1)
        bridge.hold(True)
        self.receive(phone, 0, 2, 320, b"\x02" * 160)
        self.assertEqual((len(sink.packets), len(self.written(other.audio_rtp))), (2, 1))
        bridge.hold(False)
        stream.end("Stopped by publisher stop")
        self.receive(phone, 0, 3, 480, b"\x03" * 160)
        self.assertEqual((len(sink.packets), len(self.written(other.audio_rtp))), (2, 2))

    def test_renegotiation_followed(self):
        """
        A re-INVITE moving the leg to PCMA (another payload type) re-routes the tap, and the
        stream names the new codec.
        """
        session = self.session()
        source, stream, sink = self.publish(session)
        reoffer = only_codecs(AUDIO_ONLY, "audio", "8 101").replace("o=- 1094721917 1830371389",
                                                                      "o=- 1094721917 1830371390")
        session.create_answer(reoffer, ["PCMA/8000"], [], "sendrecv")
        self.receive(session, 0, 1, 160, b"\x01" * 160)
        self.receive(session, 8, 2, 320, b"\xd5" * 160)
        self.assertEqual([(p[1][:1], p[2]) for p in sink.packets], [(b"\xd5", "PCMA/8000")])

    def test_video_and_keyframe_requests(self):
        """
        Video packets reach the stream with the video codec; a keyframe request from the
        stream is an RTCP PLI to the peer's video SSRC.
        """
        session = self.session(BARESIP, video=("VP8/90000",))
        source, stream, sink = self.publish(session)
        self.assertEqual(source.video_codec, "VP8/90000")
        video = session.video_rtp
        self.receive(session, 100, 1, 3000, b"\x90\x00frame", marker=True, leg=video,
                     source=("127.0.0.1", 7584))
        self.assertEqual(sink.packets[-1], ("video", b"\x90\x00frame", "VP8/90000", 3000, True))
        self.reactor.advance(1)
        source.request_keyframe()
        written = self.reactor.bound[video.local_rtcp_port].written
        packets = rtcp.parse_compound(written[-1][0])
        self.assertTrue(rtcp.is_keyframe_request(packets))


class SessionSinkTests(StreamEndpointMixin, SynchronousTestCase):
    """
    A stream played out on a session: relay first, transcode audio when needed.
    """

    def play(self, session, name="s", codec="PCMU/8000", ended=None):
        stream = self.registry.get(name)
        if stream is None:
            source_session = self.session(audio=(codec,))
            source = SessionSource(source_session)
            stream = self.registry.publish(name, source)
            source.start(stream)
        sink = SessionSink(session, ended)
        sink.play(stream)
        return stream, sink

    def test_relay(self):
        """
        The stream's payloads go out unchanged in packets of the session's own stream: its
        SSRC and payload type, consecutive sequence numbers, the source's timestamp spacing and
        marker bits.
        """
        player = self.session()
        stream, sink = self.play(player)
        stream.packet_received("audio", b"\x01" * 160, "PCMU/8000", 1000, True)
        stream.packet_received("audio", b"\x02" * 160, "PCMU/8000", 1480, False)
        first, second = self.written(player.audio_rtp)
        one, two = peek_header(first), peek_header(second)
        self.assertEqual((one.ssrc, two.ssrc), (player.audio_rtp.ssrc,) * 2)
        self.assertEqual((one.payload_type, one.marker, two.marker), (0, True, False))
        self.assertEqual(two.sequence_number, (one.sequence_number + 1) & 0xFFFF)
        self.assertEqual((two.timestamp - one.timestamp) & 0xFFFFFFFF, 480)
        self.assertEqual((first[12:], second[12:]), (b"\x01" * 160, b"\x02" * 160))
        self.assertEqual(sink.transcoders, {})

    def test_transcode(self):
        """
        A stream in another codec (PCMA to a PCMU player) is transcoded for this player: the
        tone keeps its frequency.
        """
        player = self.session()
        stream, sink = self.play(player, codec="PCMA/8000")
        encoder = av.CodecContext.create("pcm_alaw", "w")
        encoder.sample_rate, encoder.layout, encoder.format = 8000, "mono", "s16"
        encoder.time_base = fractions.Fraction(1, 8000)
        samples = tone(700, 1.0, 8000)
        for start in range(0, len(samples), 160):
            frame = av.AudioFrame.from_ndarray(samples[start:start + 160].reshape(1, -1),
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, start
            for packet in encoder.encode(frame):
                stream.packet_received("audio", bytes(packet), "PCMA/8000", start, False)
        self.assertEqual(list(sink.transcoders), ["PCMA/8000"])
        out = self.written(player.audio_rtp)
        self.assertGreater(len(out), 40)
        self.assertEqual({peek_header(p).payload_type for p in out}, {0})
        self.assertAlmostEqual(dominant_frequency(decode_ulaw([p[12:] for p in out]), 8000),
                               700, delta=10)

    def test_codec_change_mid_stream(self):
        """
        The source switches codec: the player follows (relay, then transcode, then relay
        again) without a jump in sequence numbers.
        """
        player = self.session()
        stream, sink = self.play(player)
        pcmu = encode_pcmu(tone(440, 0.1, 8000))
        stream.packet_received("audio", pcmu[0], "PCMU/8000", 0, False)
        stream.packet_received("audio", b"\xd5" * 160, "PCMA/8000", 160, False)
        stream.packet_received("audio", pcmu[1], "PCMU/8000", 320, False)
        numbers = [peek_header(p).sequence_number for p in self.written(player.audio_rtp)]
        self.assertEqual(len(numbers), 3)
        self.assertEqual([(b - a) & 0xFFFF for a, b in zip(numbers, numbers[1:])], [1, 1])

    def test_video_relay_and_keyframe_requests(self):
        """
        Video of the session's codec is relayed on its video leg, other video is dropped; a
        PLI from the player's peer becomes a keyframe request to the stream's source.
        """
        player = self.session(BARESIP, video=("VP8/90000",))
        source_session = self.session(BARESIP, video=("VP8/90000",))
        source = SessionSource(source_session)
        stream = self.registry.publish("v", source)
        source.start(stream)
        requests = []
        source.request_keyframe = lambda: requests.append(1)
        sink = SessionSink(player)
        self.assertEqual(sink.kinds, ("audio", "video"))
        self.reactor.advance(1)
        sink.play(stream)
        self.assertEqual(requests, [1], "a new video sink asks for a keyframe")
        stream.packet_received("video", b"vp8", "VP8/90000", 3000, True)
        stream.packet_received("video", b"h264", "H264/90000", 3000, True)
        [packet] = self.written(player.video_rtp)
        self.assertEqual((peek_header(packet).payload_type, packet[12:]), (100, b"vp8"))
        self.reactor.advance(1)
        pli = rtcp.build_pli(0x4321, player.video_rtp.ssrc)
        player.video_rtp._rtcp_datagram(pli, ("127.0.0.1", 7585))
        self.assertEqual(requests, [1, 1])

    def test_stream_end_and_stop(self):
        """
        The stream ending calls on_ended with its reason; stop() detaches without it.
        """
        ended = []
        player = self.session()
        stream, sink = self.play(player, ended=ended.append)
        stream.end("Stopped by rest /terminate")
        self.assertEqual((ended, sink.stream), (["Stopped by rest /terminate"], None))
        other = self.session()
        stream, sink = self.play(other, name="t", ended=ended.append)
        sink.stop()
        sink.stop()
        self.assertEqual(stream.sinks, ())
        self.assertEqual(len(ended), 1)

    def test_closed_session_drops(self):
        """
        Packets for a player whose session closed are dropped quietly.
        """
        player = self.session()
        stream, sink = self.play(player)
        player.close()
        stream.packet_received("audio", b"\x01" * 160, "PCMU/8000", 0, False)
        self.assertEqual(stream.sinks, (sink,))


class ManyPlayersTests(StreamEndpointMixin, SynchronousTestCase):
    """
    One source, many players.
    """

    def test_many_players_one_source(self):
        """
        Ten players of one source each get every packet with their own SSRC.
        """
        players = [self.session() for _ in range(10)]
        stream = None
        for player in players:
            stream, _ = self.play_on(player)
        for seq in range(5):
            stream.packet_received("audio", bytes([seq]) * 160, "PCMU/8000", 160 * seq, False)
        for player in players:
            packets = self.written(player.audio_rtp)
            self.assertEqual([p[12] for p in packets], [0, 1, 2, 3, 4])
            self.assertEqual({peek_header(p).ssrc for p in packets}, {player.audio_rtp.ssrc})

    def play_on(self, session):
        stream = self.registry.get("many")
        if stream is None:
            source = SessionSource(self.session())
            stream = self.registry.publish("many", source)
            source.start(stream)
        sink = SessionSink(session)
        sink.play(stream)
        return stream, sink



class InjectionIntoBridgedLegTests(StreamEndpointMixin, SynchronousTestCase):
    """
    A stream injected into a bridged SIP leg (REST /call/inject_stream): with the bridge's
    audio into that leg paused, the SIP peer gets the injected packets only, as one stream.
    """

    BROWSER_PAYLOAD = b"\x11" * 160

    def setUp(self):
        super().setUp()
        self.sip = self.session()
        self.browser = self.session()
        self.bridge = MediaBridge(self.browser, self.sip)
        self.browser_seq = itertools.count(100)

    def from_browser(self, count):
        """
        C{count} packets of the browser's audio, 20 ms apart, which the bridge relays (or
        would relay) to the SIP leg.
        """
        for _ in range(count):
            seq = next(self.browser_seq)
            self.receive(self.browser, 0, seq, 160 * seq, self.BROWSER_PAYLOAD,
                         leg=self.browser.audio_rtp)

    def inject(self, codec, payload):
        """
        Play a stream of C{codec} into the SIP leg as the stream table does (sink, then the
        bridge paused into the leg), and return a function pushing one packet of it.
        """
        source = SessionSource(self.session(audio=(codec,)))
        stream = self.registry.publish("inj", source)
        source.start(stream)
        sink = SessionSink(self.sip)
        self.bridge.pause_audio_to(self.sip, True)
        sink.play(stream)
        timestamps = itertools.count(5000, 160)

        def push():
            stream.packet_received("audio", payload, codec, next(timestamps), False)

        return sink, push

    def interleave(self, push, rounds):
        """
        Browser and injected packets alternating, as they arrive in a live call.
        """
        for _ in range(rounds):
            self.from_browser(1)
            push()

    def assertOneStream(self, packets):
        """
        C{packets} are one RTP stream: the leg's SSRC, consecutive sequence numbers, one
        packet interval between timestamps.
        """
        headers = [peek_header(p) for p in packets]
        self.assertEqual({h.ssrc for h in headers}, {self.sip.audio_rtp.ssrc})
        self.assertEqual({(b.sequence_number - a.sequence_number) & 0xFFFF
                          for a, b in zip(headers, headers[1:])}, {1})
        self.assertEqual({(b.timestamp - a.timestamp) & 0xFFFFFFFF
                          for a, b in zip(headers, headers[1:])}, {160})

    def check_injection(self, codec, payload, sent_payload):
        """
        Before injection the peer hears the browser; during it, only the stream (none of the
        browser's packets, which keep arriving); after it, the browser again; all of it one
        continuous stream.
        """
        self.from_browser(3)
        sink, push = self.inject(codec, payload)
        self.interleave(push, 10)
        sink.stop()
        self.bridge.pause_audio_to(self.sip, False)
        self.from_browser(3)
        packets = self.written(self.sip.audio_rtp)
        contents = [bytes(p[12:]) for p in packets]
        self.assertEqual(contents[:3], [self.BROWSER_PAYLOAD] * 3)
        during = contents[3:-3]
        self.assertEqual(during.count(self.BROWSER_PAYLOAD), 0)
        if sent_payload is not None:
            self.assertEqual(during, [sent_payload] * len(during))
        self.assertGreaterEqual(len(during), 9)
        self.assertEqual(contents[-3:], [self.BROWSER_PAYLOAD] * 3)
        self.assertOneStream(packets)

    def test_relayed_stream_replaces_the_browser(self):
        """
        A stream in the leg's codec (relayed): the peer gets each injected packet once and no
        browser packet while it plays, on the leg's SSRC with no sequence or timestamp jump.
        """
        self.check_injection("PCMU/8000", b"\x22" * 160, b"\x22" * 160)

    def test_transcoded_stream_replaces_the_browser(self):
        """
        A stream in another codec (PCMA, transcoded to PCMU): the peer gets the transcoded
        packets only while it plays, as one continuous stream.
        """
        self.check_injection("PCMA/8000", b"\xd5" * 160, None)
