"""
Real-socket tests of the media legs on 127.0.0.1: L{RTPSession} (plain RTP)
and L{WebRTCTransport} relaying to it, with aiortc as the browser.

Run under the asyncio reactor, as the server does:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_rtp_loopback

Datagrams travel through the kernel; time-driven behaviour (RTCP schedule,
DTMF pacing, the inactivity watchdog) runs on an injected L{Clock} so the
tests never wait for wall-clock seconds, only for loopback delivery.
"""

import asyncio
import random
from unittest import mock

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, TestCase

from wcs_twisted.media import rtcp
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import build_rtp, peek_header

LOOPBACK = "127.0.0.1"


class Peer(DatagramProtocol):
    """
    A plain UDP socket standing in for a SIP phone (or a NAT mapping of one).
    """

    def __init__(self):
        self.received = []
        self._waiters = []

    def datagramReceived(self, data, addr):
        self.received.append((data, addr))
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def wait(self, count):
        """
        Fire once C{count} datagrams in total have arrived.
        """
        if len(self.received) >= count:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d.addCallback(lambda _: self.wait(count))


def tick():
    """
    Let the reactor run one short round (loopback delivery).
    """
    d = defer.Deferred()
    reactor.callLater(0.001, d.callback, None)
    return d


async def until(predicate):
    """
    Let the reactor run until C{predicate} holds (the test's timeout bounds it).
    """
    while not predicate():
        await tick()


def bind_peer(testcase):
    """
    A L{Peer} on an ephemeral loopback port, closed at cleanup.
    """
    peer = Peer()
    port = reactor.listenUDP(0, peer, interface=LOOPBACK)
    testcase.addCleanup(port.stopListening)
    return peer, (LOOPBACK, port.getHost().port)


class RTPLoopbackTests(TestCase):
    """
    RTP sessions over real UDP on loopback.
    """

    timeout = 10

    def setUp(self):
        self.clock = Clock()
        # A high range; ports other processes hold are skipped by the session.
        self.pool = PortPool(42000, 42999)

    def session(self, **kw):
        kw.setdefault("rng", random.Random(7))
        session = RTPSession(reactor, LOOPBACK, self.pool, clock=self.clock, **kw)
        session.start()
        self.addCleanup(session.stop)
        return session

    def peer(self):
        return bind_peer(self)

    async def test_symmetric_latching(self):
        """
        The session sends to where the peer's packets come from, not to the
        SDP address, and ignores a third source after latching (RFC 4961).
        """
        session = self.session()
        got = []
        session.packet_received = got.append
        sdp_peer, sdp_addr = self.peer()
        nat_peer, nat_addr = self.peer()
        intruder, _ = self.peer()
        session.set_remote(*sdp_addr)

        nat_peer.transport.write(build_rtp(0, 1, 160, 0xA, b"\xff" * 160), session.local_address)
        await until(lambda: session.latched)
        self.assertEqual(session.remote_address, nat_addr)

        intruder.transport.write(build_rtp(0, 9, 999, 0xB, b"\x00" * 160), session.local_address)
        nat_peer.transport.write(build_rtp(0, 2, 320, 0xA, b"\xff" * 160), session.local_address)
        await until(lambda: session.packets_received == 2)
        await until(lambda: session.packets_dropped == 1)
        self.assertEqual([peek_header(d).sequence_number for d in got], [1, 2])

        session.send_packet(bytearray(build_rtp(0, 77, 0, 0xC, b"\x55" * 160)))
        await nat_peer.wait(1)
        data, source = nat_peer.received[0]
        self.assertEqual(source, session.local_address)
        self.assertEqual(peek_header(data).ssrc, session.ssrc)
        self.assertEqual(sdp_peer.received, [])

    async def test_rtcp_emission(self):
        """
        The leg's timer sends a compound RR + SDES from RTP port + 1 to the
        peer's RTP port + 1, reporting the peer's stream.
        """
        session = self.session()
        peer, peer_addr = self.peer()
        rtcp_peer = Peer()
        rtcp_port = reactor.listenUDP(peer_addr[1] + 1, rtcp_peer, interface=LOOPBACK)
        self.addCleanup(rtcp_port.stopListening)
        session.set_remote(*peer_addr)
        for seq in range(100, 110):
            peer.transport.write(build_rtp(0, seq, seq * 160, 0xFEED, b"\xff" * 160),
                                 session.local_address)
        await until(lambda: session.packets_received == 10)
        self.clock.advance(7.5)
        await rtcp_peer.wait(1)
        data, source = rtcp_peer.received[0]
        self.assertEqual(source, (LOOPBACK, session.local_rtcp_port))
        self.assertEqual(session.local_rtcp_port, session.local_address[1] + 1)
        rr, sdes = rtcp.parse_compound(data)
        self.assertEqual((rr.packet_type, sdes.packet_type), (rtcp.RTCP_RR, rtcp.RTCP_SDES))
        self.assertEqual(rr.reports[0].ssrc, 0xFEED)
        self.assertEqual(rr.reports[0].highest_sequence, 109)
        self.assertEqual(rr.reports[0].packets_lost, 0)

    async def test_dtmf_round_trip(self):
        """
        Digits sent as RFC 4733 events by one session are reported once each,
        in order, by another.
        """
        a = self.session()
        b = self.session()
        for s, other in ((a, b), (b, a)):
            s.set_remote(*other.local_address)
            s.set_telephone_event(101)
        digits = []
        b.digit_received = digits.append
        for digit in "4#9":
            a.send_digit(digit, duration=0.08)
        # Pace the events on the clock, letting the reactor deliver each step.
        for _ in range(40):
            self.clock.advance(0.02)
            await tick()
        # 80 ms at 20 ms packets: 3 updates and 3 end packets per digit.
        await until(lambda: b.packets_received == 3 * 6)
        self.assertEqual(digits, ["4", "#", "9"])

    async def test_inactivity_watchdog(self):
        """
        When the peer stops sending, activity_lost is called once.
        """
        session = self.session()
        peer, peer_addr = self.peer()
        session.set_remote(*peer_addr)
        lost = []
        session.activity_lost = lost.append
        session.watch_activity(1.0)
        for seq in range(5):
            peer.transport.write(build_rtp(0, seq, 0, 1, b"\xff" * 160), session.local_address)
            await until(lambda: session.packets_received == seq + 1)
            self.clock.advance(0.2)
        self.assertEqual(lost, [])
        self.clock.pump([0.1] * 15)
        self.assertEqual(lost, [session])
        self.clock.pump([0.1] * 30)
        self.assertEqual(len(lost), 1)

    async def test_ephemeral_ports_and_release(self):
        """
        Without a pool the session binds two ephemeral ports; with one, stop
        gives the pair back.
        """
        ephemeral = RTPSession(reactor, LOOPBACK, clock=self.clock)
        ephemeral.start()
        self.assertNotEqual(ephemeral.local_address[1], 0)
        await ephemeral.stop()
        session = self.session()
        self.assertEqual(self.pool.in_use, 1)
        await session.stop()
        self.assertEqual(self.pool.in_use, 0)


def answer_for(offer_sdp, params, ssrc):
    """
    The SDP answer a gateway gives an aiortc offer: ICE-lite, our host
    candidate, DTLS passive, PCMU, rtcp-mux, BUNDLE.  (The real one is the
    SDP layer's job; this is the minimum a browser accepts.)
    """
    from aiortc.sdp import SessionDescription

    offer = SessionDescription.parse(offer_sdp)
    media = offer.media[0]
    algorithm, value = next(f for f in params.fingerprints if f[0] == "sha-256")
    return "\r\n".join([
        "v=0", f"o=- 1 1 IN IP4 {params.candidate_host}", "s=-", "t=0 0",
        "a=ice-lite", f"a=group:BUNDLE {media.rtp.muxId}",
        f"m=audio {params.candidate_port} UDP/TLS/RTP/SAVPF 0",
        f"c=IN IP4 {params.candidate_host}",
        f"a=mid:{media.rtp.muxId}", "a=sendrecv", "a=rtcp-mux",
        f"a=ice-ufrag:{params.ice_ufrag}", f"a=ice-pwd:{params.ice_pwd}",
        f"a=fingerprint:{algorithm} {value}", "a=setup:passive",
        f"a=candidate:{params.candidate}", "a=end-of-candidates",
        "a=rtpmap:0 PCMU/8000", f"a=ssrc:{ssrc} cname:wcs", "",
    ])


def as_deferred(coroutine):
    """
    Run an asyncio coroutine (aiortc code) from a trial test.
    """
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


class WebRTCRelayLoopbackTests(TestCase):
    """
    aiortc (the browser stand-in) <-> WebRTCTransport <-> RTPSession <-> a
    plain UDP phone: ICE-lite, DTLS-SRTP and the encoded relay, both ways.
    """

    timeout = 20

    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        from wcs_twisted.media.webrtc import RTCCertificate, WebRTCTransport

        self.pool = PortPool(42000, 42999)
        self.webrtc = WebRTCTransport(reactor, LOOPBACK, RTCCertificate.generateCertificate(),
                                      self.pool, clock_rate=8000)
        self.webrtc.start()
        self.addCleanup(self.webrtc.stop)
        self.rtp = RTPSession(reactor, LOOPBACK, self.pool, clock=Clock())
        self.rtp.start()
        self.addCleanup(self.rtp.stop)
        # The bridge's relay path: no parse, no decode.
        self.webrtc.packet_received = lambda data: self.rtp.send_packet(bytearray(data))
        self.rtp.packet_received = lambda data: self.webrtc.send_packet(bytearray(data))

    async def test_relay_both_ways(self):
        """
        The browser's PCMU reaches the phone as plain RTP, and the phone's
        RTP reaches the browser, which decodes it.
        """
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import AudioStreamTrack
        from aiortc.sdp import SessionDescription

        phone, phone_addr = bind_peer(self)
        self.rtp.set_remote(*phone_addr)
        states = []
        self.webrtc.state_changed = states.append
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.addCleanup(lambda: as_deferred(pc.close()))
        pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        frames = []

        @pc.on("track")
        def on_track(track):
            async def pull():
                while True:
                    try:
                        frames.append(await track.recv())
                    except Exception:
                        return
            asyncio.ensure_future(pull())

        async def negotiate():
            # aioice leaves 127.0.0.1 out of its host candidates; a
            # loopback-only test has to put it back.
            with mock.patch("aioice.ice.get_host_addresses",
                            lambda use_ipv4, use_ipv6: [LOOPBACK]):
                await pc.setLocalDescription(await pc.createOffer())
            offer = SessionDescription.parse(pc.localDescription.sdp)
            media = offer.media[0]
            self.webrtc.set_remote(
                media.ice.usernameFragment,
                [(f.algorithm, f.value) for f in media.dtls.fingerprints],
                "server",
            )
            answer = answer_for(pc.localDescription.sdp, self.webrtc.local_parameters,
                                self.webrtc.ssrc)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

        await as_deferred(negotiate())
        await phone.wait(5)
        self.assertEqual(states, ["connected"])
        self.assertEqual(self.webrtc.remote_address[0], LOOPBACK)
        data, source = phone.received[0]
        self.assertEqual(source, self.rtp.local_address)
        header = peek_header(data)
        self.assertEqual((header.payload_type, header.ssrc), (0, self.rtp.ssrc))
        self.assertEqual(len(data), 12 + 160)

        for seq in range(50):
            phone.transport.write(build_rtp(0, seq, seq * 160, 0xF00D, b"\xff" * 160),
                                  self.rtp.local_address)
            if seq % 10 == 9:
                await until(lambda: self.webrtc.packets_sent > seq - 5)
        await until(lambda: len(frames) >= 10)
        # Every packet the phone sent is relayed (one datagram per loop wake-up: the last
        # few may still be queued when the browser has decoded ten frames).
        await until(lambda: self.webrtc.packets_sent >= 50)
        self.assertEqual(self.webrtc.packets_sent, 50)
        self.assertEqual(frames[0].sample_rate, 8000)
