"""
Real media through the gateway's media layer on 127.0.0.1: aiortc as the
browser <-> L{WebRTCMediaSession} <-> L{MediaBridge} <-> L{RTPMediaSession}
<-> a plain RTP phone in the test, with the tones checked by frequency.

Run under the asyncio reactor, as the server does:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_media_bridge

The call flows follow the call layer: for a browser call the browser's offer
(stripped of candidates, as the WCS Web SDK sends it) drives the SIP offer,
the phone's answer picks the codec and the browser's answer prefers it; for
an incoming call the phone's offer drives the server's offer to the browser.
Media is paced in real time (aiortc's track and the phone's 20 ms timer), so
each test runs for about two seconds.
"""

import asyncio
import fractions
import time
from unittest import mock

import numpy
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import SkipTest, TestCase

from wcs_twisted.media.factory import MediaFactory
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import build_rtp, peek_header

LOOPBACK = "127.0.0.1"
#: Seconds of audio analysed in each direction (after a settling time).
SECONDS = 1.0
SETTLE = 0.3


# -- G.711 mu-law (ITU-T G.711), written out so the check does not trust the
# -- codec library the gateway uses.


def ulaw_encode(samples):
    """
    16-bit linear samples -> mu-law bytes.
    """
    x = numpy.clip(numpy.asarray(samples, dtype=numpy.int32), -32635, 32635)
    sign = numpy.where(x < 0, 0x80, 0x00)
    magnitude = numpy.abs(x) + 0x84
    exponent = numpy.floor(numpy.log2(magnitude)).astype(numpy.int32) - 7
    exponent = numpy.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(numpy.uint8).tobytes()


def ulaw_decode(data):
    """
    mu-law bytes -> 16-bit linear samples.
    """
    u = ~numpy.frombuffer(data, dtype=numpy.uint8)
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa.astype(numpy.int32) << 3) + 0x84) << exponent) - 0x84
    return numpy.where(u & 0x80, -magnitude, magnitude)


def dominant_frequency(samples, rate):
    """
    The frequency of the largest FFT bin (Hann window, DC removed).
    """
    x = numpy.asarray(samples, dtype=numpy.float64)
    x = (x - x.mean()) * numpy.hanning(len(x))
    spectrum = numpy.abs(numpy.fft.rfft(x))
    return numpy.argmax(spectrum) * rate / len(x)


def tone(freq, start, count, rate, amplitude=0.5):
    t = (numpy.arange(count) + start) / rate
    return (amplitude * 32767 * numpy.sin(2 * numpy.pi * freq * t)).astype(numpy.int16)


# -- the browser -------------------------------------------------------------------------


def as_deferred(coroutine):
    """
    Run an asyncio coroutine (aiortc code) from a trial test.
    """
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


def strip_candidates(sdp):
    """
    The offer as the WCS Web SDK sends it: no candidates (it sends the SDP
    before gathering and never trickles).
    """
    return "".join(
        line for line in sdp.splitlines(keepends=True)
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )


def loopback_only():
    # aioice leaves 127.0.0.1 out of its host candidates; in the TEST
    # browser (never in the server) put it back.
    return mock.patch("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: [LOOPBACK])


def make_browser(testcase, codec_mime, freq):
    """
    An aiortc peer connection sending a C{freq} Hz tone, restricted to one
    audio codec, collecting what it receives.
    """
    import av
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
    from aiortc.mediastreams import MediaStreamTrack

    class ToneTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self):
            super().__init__()
            self.rate = 48000
            self.pts = 0
            self.started = None

        async def recv(self):
            samples = self.rate // 50
            if self.started is None:
                self.started = time.monotonic()
            else:
                wait = self.started + self.pts / self.rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            frame = av.AudioFrame.from_ndarray(
                tone(freq, self.pts, samples, self.rate).reshape(1, -1),
                format="s16", layout="mono",
            )
            frame.sample_rate = self.rate
            frame.pts = self.pts
            frame.time_base = fractions.Fraction(1, self.rate)
            self.pts += samples
            return frame

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    testcase.addCleanup(lambda: as_deferred(pc.close()))
    transceiver = pc.addTransceiver(ToneTrack(), direction="sendrecv")
    if codec_mime is not None:
        capabilities = RTCRtpSender.getCapabilities("audio")
        transceiver.setCodecPreferences(
            [c for c in capabilities.codecs if c.mimeType.lower() == codec_mime.lower()]
        )
    received = []

    @pc.on("track")
    def on_track(track):
        async def pull():
            while True:
                try:
                    received.append(await track.recv())
                except Exception:
                    return

        asyncio.ensure_future(pull())

    return pc, received


def browser_samples(frames):
    """
    The first channel of the received frames, and the sample rate.
    """
    chunks = []
    for frame in frames:
        channels = len(frame.layout.channels)
        chunks.append(frame.to_ndarray().reshape(-1, channels)[:, 0])
    return numpy.concatenate(chunks), frames[0].sample_rate


# -- the phone ------------------------------------------------------------------------------


class Phone(DatagramProtocol):
    """
    A plain RTP/AVP phone: PCMU at 8 kHz, 20 ms packets, symmetric RTP.
    """

    def __init__(self, freq):
        self.freq = freq
        self.received = []
        self.sequence = 0
        self.timestamp = 0
        self.remote = None

    def datagramReceived(self, data, addr):
        if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
            self.received.append(data)

    def sdp(self, port):
        return "\r\n".join([
            "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
            f"m=audio {port} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20",
            "a=sendrecv", "",
        ])

    def send(self):
        if self.remote is None:
            return
        payload = ulaw_encode(tone(self.freq, self.timestamp, 160, 8000))
        self.transport.write(
            build_rtp(0, self.sequence, self.timestamp, 0xC0FFEE, payload), self.remote
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp += 160

    def samples(self):
        return numpy.concatenate([ulaw_decode(d[12:]) for d in self.received if d[1] & 0x7F == 0])


async def until(predicate):
    """
    Let the reactor run until C{predicate} holds (the test's timeout bounds it).
    """
    while not predicate():
        d = defer.Deferred()
        reactor.callLater(0.02, d.callback, None)
        await d


class MediaBridgeLoopbackTests(TestCase):
    """
    Tones through the whole media path, relayed and transcoded.
    """

    timeout = 30

    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.factory = MediaFactory(reactor, LOOPBACK, LOOPBACK, PortPool(43000, 43999))
        self.webrtc = self.factory.create_session("webrtc")
        self.sip = self.factory.create_session("rtp")
        self.addCleanup(self.webrtc.close)
        self.addCleanup(self.sip.close)
        self.events = []
        self.webrtc.observer = self.sip.observer = self
        self.phone = Phone(1000.0)
        port = reactor.listenUDP(0, self.phone, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        self.phone_port = port.getHost().port
        self.pacer = LoopingCall(self.phone.send)

    # IMediaSessionObserver
    def media_connected(self, session):
        self.events.append(("connected", session.kind))

    def media_dtmf(self, session, digit):
        self.events.append(("dtmf", session.kind, digit))

    def media_inactive(self, session):
        self.events.append(("inactive", session.kind))

    def media_failed(self, session, reason):
        self.events.append(("failed", session.kind, reason))

    async def browser_calls(self, codec_mime):
        """
        The outgoing-call flow: browser offer -> SIP offer -> phone answer ->
        answer to the browser -> bridge.
        """
        from aiortc import RTCSessionDescription

        pc, frames = make_browser(self, codec_mime, 440.0)
        with loopback_only():
            await as_deferred(pc.setLocalDescription(await as_deferred(pc.createOffer())))
        offer = strip_candidates(pc.localDescription.sdp)
        audio, video = self.webrtc.offered_codecs(offer)
        sip_offer = self.sip.create_offer(audio, video, "sendrecv")
        self.assertIn("m=audio", sip_offer)
        self.sip.set_remote_answer(self.phone.sdp(self.phone_port))
        answer = self.webrtc.create_answer(offer, [self.sip.audio_codec], [], "sendrecv")
        bridge = self.factory.bridge(self.webrtc, self.sip)
        self.addCleanup(bridge.close)
        await as_deferred(pc.setRemoteDescription(RTCSessionDescription(answer, "answer")))
        self.phone.remote = self.sip.local_address
        self.pacer.start(0.02)
        self.addCleanup(self.pacer.stop)
        return bridge, frames

    def assertFrequency(self, samples, rate, expected, tolerance=10.0):
        measured = dominant_frequency(samples, rate)
        self.assertTrue(
            abs(measured - expected) <= tolerance,
            f"dominant frequency {measured:.1f} Hz, expected {expected} +- {tolerance} Hz",
        )

    async def check_both_ways(self, frames):
        rate = 8000
        await until(lambda: len(self.phone.received) >= (SETTLE + SECONDS) * 50)
        await until(lambda: sum(f.samples for f in frames) >= 48000 * (SETTLE + SECONDS)
                    if frames and frames[0].sample_rate == 48000
                    else sum(f.samples for f in frames) >= rate * (SETTLE + SECONDS))
        at_phone = self.phone.samples()[int(SETTLE * rate):]
        self.assertFrequency(at_phone, rate, 440.0)
        self.assertGreater(numpy.sqrt(numpy.mean(at_phone.astype(float) ** 2)), 3000)
        samples, browser_rate = browser_samples(frames)
        at_browser = samples[int(SETTLE * browser_rate):]
        self.assertFrequency(at_browser, browser_rate, 1000.0)
        self.assertIn(("connected", "webrtc"), self.events)
        self.assertIn(("connected", "rtp"), self.events)
        self.assertFalse([e for e in self.events if e[0] in ("failed", "inactive")])

    async def test_relay_pcmu_both_legs(self):
        """
        With PCMU on both legs the bridge relays: the phone gets the
        browser's 440 Hz tone as PCMU from the gateway's SSRC, and the
        browser gets the phone's 1000 Hz tone.
        """
        bridge, frames = await self.browser_calls("audio/PCMU")
        self.assertEqual(bridge.mode, "relay")
        self.assertEqual((self.webrtc.audio_codec, self.sip.audio_codec),
                         ("PCMU/8000", "PCMU/8000"))
        await self.check_both_ways(frames)
        header = peek_header(self.phone.received[-1])
        self.assertEqual((header.payload_type, header.ssrc), (0, self.sip.audio_rtp.ssrc))
        self.assertEqual(frames[0].sample_rate, 8000)

    async def test_transcode_opus_to_pcmu(self):
        """
        With Opus on the browser leg and PCMU on the SIP leg the bridge
        transcodes both ways and both tones keep their frequency.
        """
        bridge, frames = await self.browser_calls("audio/opus")
        self.assertEqual(bridge.mode, "transcode")
        self.assertEqual((self.webrtc.audio_codec, self.sip.audio_codec),
                         ("opus/48000/2", "PCMU/8000"))
        await self.check_both_ways(frames)
        self.assertEqual(frames[0].sample_rate, 48000)

    async def test_incoming_call_server_offers(self):
        """
        For an incoming call the server offers to the browser (actpass,
        audio-only for an audio-only phone); the browser answers active and
        media flows both ways through the relay.
        """
        from aiortc import RTCSessionDescription

        phone_offer = self.phone.sdp(self.phone_port)
        audio, video = self.sip.offered_codecs(phone_offer)
        self.assertEqual((audio, video), (["PCMU/8000"], []))
        offer = self.webrtc.create_offer(audio, video, "sendrecv")
        self.assertNotIn("m=video", offer)
        self.assertIn("a=setup:actpass", offer)
        pc, frames = make_browser(self, None, 440.0)
        await as_deferred(pc.setRemoteDescription(RTCSessionDescription(offer, "offer")))
        with loopback_only():
            await as_deferred(pc.setLocalDescription(await as_deferred(pc.createAnswer())))
        self.webrtc.set_remote_answer(strip_candidates(pc.localDescription.sdp))
        self.assertEqual(self.webrtc.transport.dtls.role, "server")
        self.sip.create_answer(phone_offer, [self.webrtc.audio_codec], [], "sendrecv")
        bridge = self.factory.bridge(self.webrtc, self.sip)
        self.addCleanup(bridge.close)
        self.assertEqual(bridge.mode, "relay")
        self.phone.remote = self.sip.local_address
        self.pacer.start(0.02)
        self.addCleanup(self.pacer.stop)
        await self.check_both_ways(frames)
