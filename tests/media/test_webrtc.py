"""
Tests for L{wcs_twisted.media.webrtc}: the WebRTC transport on a fake UDP
reactor, with an in-memory DTLS client and hand-made STUN checks standing in
for the browser.
"""

import random

from aioice import stun

from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.media import rtcp
from wcs_twisted.media.dtls import DTLSSRTPEndpoint, DTLSState, RTCCertificate
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import build_rtp, encode_telephone_event, peek_header
from wcs_twisted.media.webrtc import CONSENT_TIMEOUT, WebRTCTransport

SERVER_CERT = RTCCertificate.generateCertificate()
BROWSER_CERT = RTCCertificate.generateCertificate()
BROWSER = ("192.0.2.50", 50123)
OTHER = ("203.0.113.66", 9999)


def fingerprints(certificate):
    return [(f.algorithm, f.value) for f in certificate.getFingerprints()]


class Browser:
    """
    The browser's side: ICE checks and a DTLS client, talking through the
    transport's datagramReceived and reading what the fake port recorded.
    """

    def __init__(self, testcase, transport, port, addr=BROWSER):
        self.testcase = testcase
        self.transport = transport
        self.port = port
        self.addr = addr
        self.dtls = DTLSSRTPEndpoint(BROWSER_CERT, "client", fingerprints(SERVER_CERT))
        self.seen = 0

    def check(self, use_candidate=True, addr=None):
        params = self.transport.local_parameters
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{params.ice_ufrag}:brws"
        request.attributes["PRIORITY"] = 1853824767
        request.attributes["ICE-CONTROLLING"] = 1
        if use_candidate:
            request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(params.ice_pwd.encode())
        self.transport.datagramReceived(bytes(request), addr or self.addr)

    def replies(self):
        """
        Datagrams the transport wrote to this browser since the last call.
        """
        new = self.port.written[self.seen:]
        self.seen = len(self.port.written)
        return [d for d, a in new if a == self.addr]

    def connect(self):
        self.check()
        self.replies()
        out = self.dtls.start()
        for _ in range(10):
            for datagram in out:
                self.transport.datagramReceived(datagram, self.addr)
            back = [d for d in self.replies() if 19 < d[0] < 64]
            if not back:
                break
            out = [d for datagram in back for d in self.dtls.receive(datagram)]
        self.testcase.assertEqual(self.dtls.state, DTLSState.CONNECTED)

    def send_rtp(self, seq, payload_type=0, payload=b"\xff" * 160, ts=None, addr=None):
        packet = build_rtp(payload_type, seq, seq * 160 if ts is None else ts, 0xB0B, payload)
        self.transport.datagramReceived(self.dtls.tx_srtp.protect(packet), addr or self.addr)


class WebRTCTransportTests(SynchronousTestCase):
    """
    ICE-lite, DTLS-SRTP and the SRTP fast path on one port.
    """

    def setUp(self):
        self.reactor = FakeUDPReactor()
        self.pool = PortPool(31000, 31009)
        self.transport = WebRTCTransport(
            self.reactor, "203.0.113.1", SERVER_CERT, self.pool,
            advertised_host="198.51.100.1", rng=random.Random(3), clock_rate=8000,
        )
        self.transport.start()
        self.addCleanup(self.transport.stop)
        self.states = []
        self.transport.state_changed = self.states.append
        self.received = []
        self.transport.packet_received = self.received.append
        self.port = self.reactor.bound[self.transport.local_address[1]]
        self.browser = Browser(self, self.transport, self.port)

    def connect(self):
        self.transport.set_remote("brws", fingerprints(BROWSER_CERT), "server")
        self.browser.connect()

    def test_local_parameters(self):
        """
        The SDP layer gets ICE-lite credentials, our fingerprints and one host
        candidate on the advertised address and the even pool port.
        """
        params = self.transport.local_parameters
        self.assertTrue(params.ice_lite)
        port = self.transport.local_address[1]
        self.assertEqual((port % 2, params.candidate_port), (0, port))
        self.assertEqual(params.candidate, f"1 1 udp 2130706431 198.51.100.1 {port} typ host")
        self.assertIn(("sha-256", fingerprints(SERVER_CERT)[0][1]), params.fingerprints)
        self.assertNotIn(port + 1, self.reactor.bound)

    def test_handshake_connects(self):
        """
        A nominated check then a DTLS handshake bring the transport to
        connected, with the browser's address selected.
        """
        self.connect()
        self.assertEqual(self.states, ["connected"])
        self.assertEqual(self.transport.remote_address, BROWSER)

    def test_early_dtls_is_kept(self):
        """
        A ClientHello arriving before the browser's SDP is processed is kept
        and answered once the fingerprint is known.
        """
        self.browser.check()
        self.browser.replies()
        for datagram in self.browser.dtls.start():
            self.transport.datagramReceived(datagram, BROWSER)
        self.assertEqual(self.browser.replies(), [])
        self.transport.set_remote("brws", fingerprints(BROWSER_CERT), "server")
        self.assertTrue(self.browser.replies())

    def test_dtls_from_unselected_address_dropped(self):
        """
        DTLS from an address that passed no check is dropped.
        """
        self.transport.set_remote("brws", fingerprints(BROWSER_CERT), "server")
        for datagram in self.browser.dtls.start():
            self.transport.datagramReceived(datagram, OTHER)
        self.assertEqual(self.port.written, [])
        self.assertEqual(self.transport.packets_dropped, 1)

    def test_srtp_received_and_decrypted(self):
        """
        SRTP from the selected address reaches packet_received decrypted;
        from another address it is dropped.
        """
        self.connect()
        self.browser.send_rtp(1)
        self.browser.send_rtp(2, addr=OTHER)
        self.assertEqual([peek_header(p).sequence_number for p in self.received], [1])
        self.assertEqual(self.received[0][12:], b"\xff" * 160)
        self.assertEqual(self.transport.packets_received, 1)
        self.assertEqual(self.transport.packets_dropped, 1)

    def test_tampered_srtp_dropped(self):
        """
        An SRTP packet failing authentication is dropped.
        """
        self.connect()
        packet = bytearray(self.browser.dtls.tx_srtp.protect(build_rtp(0, 1, 1, 1, b"x" * 160)))
        packet[20] ^= 0xFF
        self.transport.datagramReceived(bytes(packet), BROWSER)
        self.assertEqual(self.received, [])
        self.assertEqual(self.transport.packets_dropped, 1)

    def test_send_packet(self):
        """
        send_packet stamps our SSRC and protects the packet for the browser;
        nothing is sent before DTLS-SRTP is up.
        """
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        self.assertEqual(self.port.written, [])
        self.connect()
        self.browser.replies()
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        [datagram] = self.browser.replies()
        plain = self.browser.dtls.rx_srtp.unprotect(datagram)
        self.assertEqual(peek_header(plain).ssrc, self.transport.ssrc)
        self.assertEqual(plain[12:], b"\x01" * 160)

    def test_renomination_moves_media(self):
        """
        A later nomination from a new address (the browser changed network)
        moves where media goes and comes from.
        """
        self.connect()
        moved = ("198.51.100.20", 40000)
        self.browser.check(addr=moved)
        self.assertEqual(self.transport.remote_address, moved)
        self.browser.send_rtp(1, addr=moved)
        self.assertEqual(len(self.received), 1)

    def test_srtcp_received(self):
        """
        SRTCP from the browser is decrypted, parsed and handed to rtcp_received.
        """
        seen = []
        self.transport.rtcp_received = seen.append
        self.connect()
        pli = bytes([0x81, 206, 0, 2]) + (0xB0B).to_bytes(4, "big") + (5).to_bytes(4, "big")
        self.transport.datagramReceived(self.browser.dtls.tx_srtp.protect_rtcp(pli), BROWSER)
        self.assertEqual(seen[0][0].packet_type, rtcp.RTCP_PSFB)

    def test_rtcp_reports(self):
        """
        The leg's timer sends a protected SR + SDES once media went out.
        """
        self.connect()
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        self.browser.replies()
        self.reactor.advance(8)
        reports = [d for d in self.browser.replies() if 191 < d[1] < 224]
        packets = rtcp.parse_compound(self.browser.dtls.rx_srtp.unprotect_rtcp(reports[0]))
        self.assertEqual([p.packet_type for p in packets], [rtcp.RTCP_SR, rtcp.RTCP_SDES])

    def test_telephone_event_digit(self):
        """
        RFC 4733 digits from the browser are reported once.
        """
        digits = []
        self.transport.digit_received = digits.append
        self.transport.set_telephone_event(101)
        self.connect()
        for seq in (1, 2, 3):
            self.browser.send_rtp(seq, 101, encode_telephone_event(3, seq == 3, 10, 160 * seq), ts=999)
        self.assertEqual(digits, ["3"])

    def test_consent_expiry(self):
        """
        Without checks for 30 s (RFC 7675) the transport fails and reports
        the loss once; media stops flowing.
        """
        lost = []
        self.transport.activity_lost = lost.append
        self.connect()
        self.reactor.pump([1.0] * int(CONSENT_TIMEOUT - 2))
        self.assertEqual(lost, [])
        self.reactor.pump([1.0] * 10)
        self.assertEqual(lost, [self.transport])
        self.assertEqual(self.states, ["connected", "failed"])
        self.browser.send_rtp(9)
        self.assertEqual(self.received, [])

    def test_consent_regained_by_a_check(self):
        """
        After consent expired, the browser's next valid check (its peer connection survived,
        perhaps from a new address) gives consent back: connected again, media flows both
        ways with the same keys.
        """
        self.connect()
        self.reactor.pump([1.0] * 35)
        self.assertEqual(self.states, ["connected", "failed"])
        self.browser.check()
        self.assertEqual(self.states, ["connected", "failed", "connected"])
        self.browser.send_rtp(9)
        self.assertEqual(len(self.received), 1)
        before = len(self.port.written)
        self.transport.send_payload(b"\x00" * 160, 0)
        self.assertEqual(len(self.port.written), before + 1)

    def test_consent_refreshed_by_checks(self):
        """
        Regular checks keep consent alive.
        """
        lost = []
        self.transport.activity_lost = lost.append
        self.connect()
        for _ in range(20):
            self.reactor.pump([1.0] * 5)
            self.browser.check(use_candidate=False)
        self.assertEqual(lost, [])

    def test_media_watchdog(self):
        """
        watch_activity reports a leg whose browser stopped sending media.
        """
        lost = []
        self.transport.activity_lost = lost.append
        self.connect()
        self.transport.watch_activity(2.0)
        self.browser.send_rtp(1)
        self.reactor.pump([0.1] * 30)
        self.assertEqual(lost, [self.transport])

    def test_stop(self):
        """
        stop sends close_notify, closes the port, frees the pool pair and
        leaves no timer behind; a second stop does nothing, and relaying into
        the stopped leg sends nothing.
        """
        self.connect()
        self.browser.replies()
        self.successResultOf(self.transport.stop())
        [alert] = self.browser.replies()
        self.assertEqual(alert[0], 21)  # DTLS alert record
        self.assertEqual(self.reactor.bound, {})
        self.assertEqual(self.pool.in_use, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.states[-1], "closed")
        self.successResultOf(self.transport.stop())
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        self.assertEqual(self.browser.replies(), [])

    def sent_to_browser(self):
        return [self.browser.dtls.rx_srtp.unprotect(d)
                for d in self.browser.replies() if 127 < d[0] < 192 and not 191 < d[1] < 224]

    def test_send_payload(self):
        """
        send_payload builds audio packets on our SSRC one timestamp step
        apart (transcoder output).
        """
        self.connect()
        self.browser.replies()
        self.transport.send_payload(b"a" * 50, 111, marker=True)
        self.transport.send_payload(b"b" * 50, 111)
        first, second = (peek_header(p) for p in self.sent_to_browser())
        self.assertEqual((first.payload_type, first.ssrc, first.marker), (111, self.transport.ssrc, True))
        self.assertEqual((second.timestamp - first.timestamp) & 0xFFFFFFFF, 160)
        self.assertEqual(second.sequence_number, (first.sequence_number + 1) & 0xFFFF)

    def test_video_on_its_own_stream(self):
        """
        Video goes out on the video SSRC with its own sequence numbers,
        bundled on the same port.
        """
        self.connect()
        self.browser.replies()
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        self.transport.send_video_packet(bytearray(build_rtp(96, 9, 9000, 78, b"\x02" * 900)))
        audio, video = (peek_header(p) for p in self.sent_to_browser())
        self.assertEqual(audio.ssrc, self.transport.ssrc)
        self.assertEqual((video.ssrc, video.payload_type), (self.transport.video_ssrc, 96))
        self.assertNotEqual(self.transport.ssrc, self.transport.video_ssrc)

    def test_send_digit_mutes_audio(self):
        """
        A digit goes out as RFC 4733 packets on the audio SSRC while relayed
        audio is held back; audio then resumes with no sequence gap.
        """
        self.transport.set_telephone_event(101, 8000)
        self.connect()
        self.browser.replies()
        self.transport.send_packet(bytearray(build_rtp(0, 1, 160, 7, b"\x01" * 160)))
        self.transport.send_digit("1", duration=0.04)
        self.transport.send_packet(bytearray(build_rtp(0, 2, 320, 7, b"\x01" * 160)))
        self.reactor.pump([0.02] * 10)
        self.transport.send_packet(bytearray(build_rtp(0, 3, 480, 7, b"\x01" * 160)))
        headers = [peek_header(p) for p in self.sent_to_browser()]
        self.assertEqual([h.payload_type for h in headers], [0, 101, 101, 101, 101, 0])
        sequence = [h.sequence_number for h in headers]
        self.assertEqual(sequence, [(sequence[0] + i) & 0xFFFF for i in range(6)])

    def test_direction(self):
        """
        Not sending drops relayed and produced audio and video; not
        receiving keeps media from the bridge; both resume.
        """
        self.connect()
        self.browser.replies()
        self.transport.set_direction(False, False)
        self.transport.send_packet(bytearray(build_rtp(0, 1, 160, 7, b"\x01" * 160)))
        self.transport.send_video_packet(bytearray(build_rtp(96, 1, 160, 7, b"\x01" * 160)))
        self.transport.send_payload(b"x" * 20, 111)
        self.browser.send_rtp(1)
        self.assertEqual((self.sent_to_browser(), self.received), ([], []))
        self.transport.set_direction(True, True)
        self.transport.send_packet(bytearray(build_rtp(0, 2, 320, 7, b"\x01" * 160)))
        self.browser.send_rtp(2)
        self.assertEqual((len(self.sent_to_browser()), len(self.received)), (1, 1))

    def test_telephone_event_receive_payload_type(self):
        """
        Digits are recognised by the receive payload type when the two
        sides numbered telephone-event differently.
        """
        digits = []
        self.transport.digit_received = digits.append
        self.transport.set_telephone_event(96, 8000, receive_payload_type=126)
        self.connect()
        self.browser.send_rtp(1, 96, encode_telephone_event(1, True, 10, 800), ts=5)
        self.browser.send_rtp(2, 126, encode_telephone_event(2, True, 10, 800), ts=6)
        self.assertEqual(digits, ["2"])


class WebRTCSessionConsentTests(SynchronousTestCase):
    """
    The browser leg (L{wcs_twisted.media.webrtc_session}) reports consent lost, then
    regained, then lost again.
    """

    def test_regained_then_lost_again(self):
        """
        Consent regained reports media_connected again, and a second expiry is reported as
        a failure again (the call decides each time: gateway/call_timers.py).
        """
        # test_session imports this module: import its helpers once both are loaded.
        from tests.media.test_session import BIND, PUBLIC, Observer, browser_offer
        from wcs_twisted.media.webrtc_session import WebRTCMediaSession

        reactor, observer = FakeUDPReactor(), Observer()
        session = WebRTCMediaSession(reactor, BIND, PUBLIC, PortPool(31000, 31019),
                                     SERVER_CERT, rng=random.Random(5),
                                     ).start()
        session.observer = observer
        self.addCleanup(session.close)
        session.create_answer(browser_offer(), ["PCMU/8000"], [], "sendrecv")
        browser = Browser(self, session.transport, reactor.bound[session.local_address[1]])
        browser.connect()
        reactor.pump([1.0] * 35)
        browser.check()
        reactor.pump([1.0] * 35)
        self.assertEqual(observer.events, [
            ("connected",), ("failed", "Failed by ICE error"), ("connected",),
            ("failed", "Failed by ICE error")])


class WebRTCDirectSendTests(SynchronousTestCase):
    """
    SRTP and SRTCP to the selected address go straight to the socket's sendto (no
    Port.write address checks); a socket error falls back to Port.write.
    """

    def setUp(self):
        self.reactor = FakeUDPReactor(sockets=True)
        self.transport = WebRTCTransport(
            self.reactor, "203.0.113.1", SERVER_CERT, PortPool(31000, 31009),
            rng=random.Random(3), clock_rate=8000,
        )
        self.transport.start()
        self.addCleanup(self.transport.stop)
        self.port = self.reactor.bound[self.transport.local_address[1]]
        self.browser = Browser(self, self.transport, self.port)
        self.transport.set_remote("brws", fingerprints(BROWSER_CERT), "server")
        self.browser.connect()

    def test_media_through_socket(self):
        """
        Relayed packets, locally produced payloads and RTCP reach the browser through
        sendto, decryptable, and nothing media goes through Port.write.
        """
        written = len(self.port.written)
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        self.transport.send_payload(b"\x02" * 160, 0)
        self.transport.send_rtcp(rtcp.build_pli(self.transport.ssrc, 0xB0B))
        sent = self.port.socket.sent
        self.assertEqual([addr for _, addr in sent], [BROWSER] * 3)
        rx = self.browser.dtls.rx_srtp
        self.assertEqual(rx.unprotect(sent[0][0])[12:], b"\x01" * 160)
        self.assertEqual(rx.unprotect(sent[1][0])[12:], b"\x02" * 160)
        self.assertTrue(rx.unprotect_rtcp(sent[2][0]))
        self.assertEqual(len(self.port.written), written)
        self.assertEqual(self.transport.packets_sent, 2)

    def test_socket_error_falls_back(self):
        """
        An error on the direct path hands the datagram to Port.write, which knows
        which errors to ignore.
        """
        written = len(self.port.written)
        self.port.socket.error = ConnectionRefusedError()
        self.transport.send_packet(bytearray(build_rtp(0, 5, 800, 77, b"\x01" * 160)))
        self.assertEqual(len(self.port.written), written + 1)
        self.assertEqual(self.port.written[-1][1], BROWSER)
        self.assertEqual(self.transport.packets_sent, 1)
