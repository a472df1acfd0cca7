"""
SDES-SRTP on the SIP leg (RFC 4568) against baresip's srtp module, end to end: the real
server, the aiortc WCS client as the browser, baresip with C{mediaenc=srtp-mand} (RTP/SAVP)
or C{mediaenc=srtp} (RTP/AVP with a=crypto) as the phone, all on 127.0.0.1.

Each call is checked three ways: the tones arrive at their frequency both ways (so the
relay unprotects and protects correctly), a packet capture of the SIP leg's RTP port
(an AF_PACKET socket on lo: we run as root) shows SRTP-sized packets whose payload is
not G.711 audio (and is the tone once decrypted with the leg's keys), and forged or
replayed packets sent at the leg are refused and counted
while the call's audio goes on.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_srtp
"""

from __future__ import annotations

import os
import socket
import struct

import numpy
from twisted.internet import protocol, reactor, task
from twisted.trial.unittest import SkipTest

from tests.integration import audio
from tests.integration.peers import Baresip, poll, require_binary
from tests.integration.test_calls import CallTestCase
from wcs_twisted.media.sdes import SRTPContext

#: RTP header + 20 ms of PCMU + the 80-bit authentication tag of AES_CM_128_HMAC_SHA1_80.
SRTP_PCMU_SIZE = 12 + 160 + 10
_ETH_P_ALL = 0x0003
_PACKET_HOST = 0


class SRTPBaresip(Baresip):
    """
    baresip with its srtp module loaded and the account's C{mediaenc} set.
    """

    def __init__(self, *args, mediaenc="srtp-mand", **kwargs):
        super().__init__(*args, **kwargs)
        self.mediaenc = mediaenc

    def config_text(self):
        return super().config_text() + "module\t\t\tsrtp.so\n"

    def account_line(self):
        return super().account_line() + f";mediaenc={self.mediaenc}"


class LoopbackCapture:
    """
    Every UDP datagram to or from one port on lo, read from an AF_PACKET socket drained
    every 20 ms while it runs: (source port, destination port, payload).
    """

    def __init__(self, port):
        self.port = port
        self.packets = []
        try:
            self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                         socket.htons(_ETH_P_ALL))
        except (PermissionError, AttributeError) as e:
            raise SkipTest(f"no packet capture here: {e}")
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self._socket.bind(("lo", 0))
        self._socket.setblocking(False)
        self._loop = task.LoopingCall(self._drain)
        self._loop.clock = reactor
        self._loop.start(0.02)

    def _drain(self):
        for _ in range(10000):
            try:
                frame, address = self._socket.recvfrom(65535)
            except BlockingIOError:
                return
            if address[2] != _PACKET_HOST:
                continue  # lo shows each packet twice: keep the received copy
            self._keep(frame[14:])

    def _keep(self, ip):
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
            return
        header = (ip[0] & 0x0F) * 4
        source, destination = struct.unpack_from("!HH", ip, header)
        if self.port in (source, destination):
            self.packets.append((source, destination, bytes(ip[header + 8:])))

    def stop(self):
        if self._loop.running:
            self._loop.stop()
        self._socket.close()

    def sent_by(self, port):
        """
        The payloads of the datagrams sent from C{port}.
        """
        return [payload for source, _, payload in self.packets if source == port]


def _audio(payload):
    """
    Whether a captured datagram is RTP with PCMU (payload type 0).
    """
    return len(payload) > 12 and payload[1] & 0x7F == 0


def _ulaw_to_linear(data):
    """
    G.711 mu-law bytes to samples in -1..1 (ITU-T G.711 decoding).
    """
    u = ~numpy.frombuffer(data, dtype=numpy.uint8).astype(numpy.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return numpy.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84) / 32768.0


def tone_share(samples, freq_hz, rate=8000):
    """
    The share of C{samples}' power within 50 Hz of C{freq_hz}: near 1 for that tone, a few
    per cent for noise (what encrypted bytes decode to).
    """
    samples = samples - samples.mean()
    spectrum = numpy.abs(numpy.fft.rfft(samples * numpy.hanning(len(samples)))) ** 2
    freqs = numpy.fft.rfftfreq(len(samples), 1.0 / rate)
    band = spectrum[numpy.abs(freqs - freq_hz) <= 50].sum()
    return float(band / max(spectrum.sum(), 1e-20))


class SRTPCallTestCase(CallTestCase):
    """
    Calls with an SRTP phone; helpers that check the SIP leg's packets.
    """

    async def srtp_baresip(self, name, tone_hz, mediaenc="srtp-mand"):
        require_binary("baresip")
        wav = audio.write_tone_wav(os.path.join(self.base, f"{name}.wav"), tone_hz, 30)
        agent = SRTPBaresip(self.base, name, registrar=f"127.0.0.1:{self.sip_port}",
                            password="x", tone_wav=wav, mediaenc=mediaenc)
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    def sip_leg(self):
        """
        The only call's SIP-side media session.
        """
        calls = list(self.server.calls)
        self.assertEqual(len(calls), 1)
        return calls[0].rtp

    async def capture(self, port, packets=30, timeout=10.0):
        """
        Capture the SIP leg's RTP port until C{packets} audio datagrams went each way (a
        count, not a time: a loaded machine may send 50 packets/s late), at most C{timeout} s.
        """
        capture = LoopbackCapture(port)
        self.addCleanup(capture.stop)

        def enough():
            sent = [p for source, _, p in capture.packets if source == port and _audio(p)]
            received = [p for source, _, p in capture.packets if source != port and _audio(p)]
            return len(sent) >= packets and len(received) >= packets

        await poll(enough, timeout).addErrback(lambda _: None)  # the assertions say what lacks
        capture.stop()
        return capture

    async def capture_call(self, alice, call_id, bob, port):
        """
        Capture the SIP leg's RTP port while checking that the browser hears the phone's
        1000 Hz and the phone the browser's 440 Hz; check that what the leg sent was SRTP.
        """
        capture = await self.capture(port)
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        self.assertEncrypted(capture.sent_by(port), 440)
        return capture

    def assertEncrypted(self, payloads, tone_hz):
        """
        Every captured audio packet is SRTP-sized for PCMU (tag included), and its payload,
        read as PCMU, is not the tone it carries.
        """
        audio_packets = [p for p in payloads if _audio(p)]
        self.assertGreater(len(audio_packets), 20, "too few RTP packets captured")
        self.assertEqual({len(p) for p in audio_packets}, {SRTP_PCMU_SIZE})
        samples = _ulaw_to_linear(b"".join(p[12:12 + 160] for p in audio_packets))
        share = tone_share(samples, tone_hz)
        self.assertLess(share, 0.2, f"captured payload looks like the {tone_hz} Hz tone")
        return share


class PhoneCallsBrowserTests(SRTPCallTestCase):
    """
    baresip (srtp-mand) -> wcs -> browser, with the default sip_srtp (answer).
    """

    async def test_srtp_mand_phone_calls_browser(self):
        """
        The RTP/SAVP offer is answered with one of its suites and our own key; tones cross
        both ways; the capture shows ciphertext; a forged and a replayed packet are refused,
        counted, and do not move the leg.
        """
        alice = await self.connect_local("alice")
        bob = await self.srtp_baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        call_id = await alice.wait_incoming_call(timeout=10)
        await alice.answer(call_id, tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.wait_event("CALL_ESTABLISHED")
        leg = self.sip_leg()
        self.assertEqual(leg.srtp_suite, "AES_CM_128_HMAC_SHA1_80")
        self.assertIn("RTP/SAVP", leg.local_sdp)
        self.assertEqual(leg.local_sdp.count("a=crypto:"), 1)
        rtp = leg.audio_rtp
        port = rtp.local_address[1]
        capture = await self.capture_call(alice, call_id, bob, port)
        peer = rtp.remote_address
        from_phone = capture.sent_by(peer[1])
        self.assertEncrypted(from_phone, 1000)
        # The control: the same captured packets, decrypted with the leg's keys, are the tone.
        keys = SRTPContext(rtp.srtp.suite, rtp.srtp.local_key, rtp.srtp.remote_key)
        plain = [keys.rx.unprotect(p) for p in from_phone if p[1] & 0x7F == 0]
        share = tone_share(_ulaw_to_linear(b"".join(p[12:] for p in plain)), 1000)
        self.assertGreater(share, 0.9)

        # The attack: a packet with a genuine header and a forged body, and a genuine packet
        # sent again, from the phone's host but another port.
        genuine = next(p for p in reversed(from_phone) if p[1] & 0x7F == 0)
        forged = bytearray(genuine)
        forged[2:4] = ((int.from_bytes(genuine[2:4], "big") + 500) & 0xFFFF).to_bytes(2, "big")
        forged[12:] = os.urandom(len(forged) - 12)
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(attacker.close)
        attacker.bind(("127.0.0.1", 0))
        before = (rtp.srtp_auth_failures, rtp.srtp_replays, rtp.packets_received)
        for _ in range(5):
            attacker.sendto(bytes(forged), ("127.0.0.1", port))
        attacker.sendto(genuine, ("127.0.0.1", port))
        await poll(lambda: rtp.srtp_auth_failures >= before[0] + 5
                   and rtp.srtp_replays >= before[1] + 1, 5, reactor,
                   message=lambda: f"forgeries not counted: {rtp.srtp_auth_failures}"
                                   f" {rtp.srtp_replays}")
        self.assertEqual(rtp.remote_address, peer)
        await poll(lambda: rtp.packets_received > before[2] + 10, 5, reactor)
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH")
        self.assertEqual(alice.violations, [])

    async def test_best_effort_srtp_phone_calls_browser(self):
        """
        baresip's mediaenc=srtp offers RTP/AVP with a=crypto: answered RTP/AVP with a key,
        and the media is SRTP both ways.
        """
        alice = await self.connect_local("alice")
        bob = await self.srtp_baresip("bob", 1000, mediaenc="srtp")
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        call_id = await alice.wait_incoming_call(timeout=10)
        await alice.answer(call_id, tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        leg = self.sip_leg()
        self.assertIsNotNone(leg.srtp_suite)
        self.assertIn("RTP/AVP", leg.local_sdp)
        port = leg.audio_rtp.local_address[1]
        capture = await self.capture_call(alice, call_id, bob, port)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH")


class _SIPSink(protocol.DatagramProtocol):
    """
    Collects the responses a raw INVITE gets.
    """

    def __init__(self):
        self.received = []

    def datagramReceived(self, data, addr):
        self.received.append(data)


class MalformedCryptoTests(SRTPCallTestCase):
    """
    An INVITE whose a=crypto is malformed is refused with 488 before anything rings.
    """

    async def test_malformed_crypto_refused(self):
        """
        The attack: RTP/SAVP with a key of the wrong size, sent as a raw INVITE to a
        connected browser user: 488 comes back, the browser never hears of it, the server
        keeps serving.
        """
        alice = await self.connect_local("alice")
        sink = _SIPSink()
        port = reactor.listenUDP(0, sink, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        ours = port.getHost().port
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAA\r\n")
        invite = (f"INVITE sip:alice@127.0.0.1:{self.sip_port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{ours};branch=z9hG4bK-srtp-bad;rport\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:mallory@127.0.0.1>;tag=m1\r\n"
                  "To: <sip:alice@127.0.0.1>\r\nCall-ID: srtp-bad-crypto@127.0.0.1\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:mallory@127.0.0.1:{ours}>\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        port.write(invite.encode(), ("127.0.0.1", self.sip_port))

        def final():
            return next((r for r in sink.received if not r.startswith(b"SIP/2.0 1")), None)

        response = await poll(final, 5, reactor, message=lambda: f"no final response: {sink.received}")
        self.assertTrue(response.startswith(b"SIP/2.0 488"), response[:40])
        self.assertEqual(list(self.server.calls), [])
        self.assertEqual(alice.violations, [])
        bob = await self.srtp_baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        await alice.wait_incoming_call(timeout=10)


class SRTPOffTests(SRTPCallTestCase):
    """
    sip_srtp=off: an RTP/SAVP offer is refused with 488, the reason in the logs.
    """

    settings_overrides = {"sip_srtp": "off"}

    async def test_srtp_offer_refused(self):
        """
        baresip srtp-mand calling gets 488 and closes the call; no call reaches the browser.
        """
        alice = await self.connect_local("alice")
        bob = await self.srtp_baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        event = await bob.wait_event("CALL_CLOSED", timeout=10)
        self.assertIn("488", event.get("param", ""))
        self.assertEqual(list(self.server.calls), [])


class BrowserCallsPhoneTests(SRTPCallTestCase):
    """
    browser -> wcs -> baresip (srtp-mand) with sip_srtp=mandatory: our offer is RTP/SAVP.
    """

    settings_overrides = {"sip_srtp": "mandatory"}

    async def test_browser_calls_srtp_mand_phone(self):
        """
        The offer carries one key per suite; baresip picks one; tones cross both ways and
        the capture shows ciphertext in both directions.
        """
        bob = await self.srtp_baresip("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        leg = self.sip_leg()
        self.assertIn("m=audio", leg.local_sdp)
        self.assertIn("RTP/SAVP", leg.local_sdp)
        self.assertGreaterEqual(leg.local_sdp.count("a=crypto:"), 2)
        self.assertIsNotNone(leg.srtp_suite)
        port = leg.audio_rtp.local_address[1]
        capture = await self.capture_call(alice, call_id, bob, port)
        self.assertEncrypted(capture.sent_by(leg.audio_rtp.remote_address[1]), 1000)
        # Our re-offer (hold) keeps RTP/SAVP and the keys: the phone's packets still pass.
        rtp = leg.audio_rtp
        context = rtp.srtp
        # baresip's one plain RTCP APP at call start is refused (and counted) whenever it lands
        # after the keys are set: count only what comes after this point.
        refused = (rtp.srtp_auth_failures, rtp.srtp_replays)
        await alice.hold(call_id)
        await alice.wait_status(call_id, "HOLD")
        self.assertIn("RTP/SAVP", leg.local_sdp)
        self.assertGreaterEqual(leg.local_sdp.count("a=crypto:"), 2)
        self.assertIs(rtp.srtp, context)
        await alice.unhold(call_id)
        await alice.wait_status(call_id, "ESTABLISHED")
        count = rtp.packets_received
        await poll(lambda: rtp.packets_received > count + 25, 5, reactor)
        self.assertEqual((rtp.srtp_auth_failures, rtp.srtp_replays), refused)
        await alice.hangup(call_id)
        await bob.wait_event("CALL_CLOSED")
