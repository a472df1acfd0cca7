"""
Tests for L{wcs_twisted.media.dtls}: two endpoints shaking hands in memory.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media.dtls import (
    DTLSError,
    DTLSSRTPEndpoint,
    DTLSState,
    RTCCertificate,
    split_records,
)
from wcs_twisted.media.rtp_packet import build_rtp

SERVER_CERT = RTCCertificate.generateCertificate()
CLIENT_CERT = RTCCertificate.generateCertificate()


def fingerprints(certificate):
    return [(f.algorithm, f.value) for f in certificate.getFingerprints()]


def handshake(server, client):
    """
    Start both endpoints and shuttle datagrams until both are quiet.
    """
    server.start()
    shuttle(server, client, client.start())


def shuttle(server, client, out):
    """
    Deliver C{out} to the server, its answers to the client, and so on.
    """
    for _ in range(10):
        if not out:
            break
        back = [d for datagram in out for d in server.receive(datagram)]
        out = [d for datagram in back for d in client.receive(datagram)]


class DTLSSRTPEndpointTests(SynchronousTestCase):
    """
    DTLS-SRTP key agreement (RFC 5764).
    """

    def pair(self, client_expects=None, server_expects=None):
        server = DTLSSRTPEndpoint(SERVER_CERT, "server", server_expects or fingerprints(CLIENT_CERT))
        client = DTLSSRTPEndpoint(CLIENT_CERT, "client", client_expects or fingerprints(SERVER_CERT))
        return server, client

    def test_handshake_yields_matching_srtp(self):
        """
        After the handshake both sides are connected on the same profile and
        each one's SRTP output is accepted by the other.
        """
        server, client = self.pair()
        handshake(server, client)
        self.assertEqual((server.state, client.state), (DTLSState.CONNECTED, DTLSState.CONNECTED))
        self.assertEqual(server.profile, client.profile)
        packet = build_rtp(0, 1, 160, 7, b"\xff" * 160)
        self.assertEqual(client.rx_srtp.unprotect(server.tx_srtp.protect(packet)), packet)
        self.assertEqual(server.rx_srtp.unprotect(client.tx_srtp.protect(packet)), packet)

    def test_connections_share_one_context_without_session_cache(self):
        """
        Every endpoint of a certificate uses one DTLS context (a context per call was malloc
        churn the soak saw as RSS growth), with no session cache that would keep each peer's
        session, and a second pair of calls still agrees on fresh keys.
        """
        from OpenSSL import SSL

        first_server, first_client = self.pair()
        second_server, second_client = self.pair()
        context = first_server._ssl.get_context()
        self.assertIs(second_server._ssl.get_context(), context)
        self.assertEqual(context.get_session_cache_mode(), SSL.SESS_CACHE_OFF)
        handshake(first_server, first_client)
        handshake(second_server, second_client)
        self.assertEqual(second_server.state, DTLSState.CONNECTED)
        packet = build_rtp(0, 1, 160, 7, b"\xff" * 160)
        protected = second_server.tx_srtp.protect(packet)
        self.assertNotEqual(protected, first_server.tx_srtp.protect(packet))
        self.assertEqual(second_client.rx_srtp.unprotect(protected), packet)

    def test_fingerprint_mismatch_fails(self):
        """
        A peer certificate that does not match the SDP fingerprint fails the
        association (RFC 5763 section 5).
        """
        server, client = self.pair(client_expects=fingerprints(CLIENT_CERT))
        handshake(server, client)
        self.assertEqual(client.state, DTLSState.FAILED)
        self.assertIn("fingerprint", client.error)
        self.assertIsNone(client.tx_srtp)

    def test_no_usable_fingerprint(self):
        """
        Fingerprints only in unknown hash algorithms are refused up front.
        """
        self.assertRaises(DTLSError, DTLSSRTPEndpoint, SERVER_CERT, "server", [("md2", "00")])
        self.assertRaises(ValueError, DTLSSRTPEndpoint, SERVER_CERT, "both", fingerprints(CLIENT_CERT))

    def test_retransmission_timer(self):
        """
        While connecting a retransmission timeout is pending (OpenSSL keeps
        its own clock, so the reactor only has to call handle_timeout when it
        is due); handling it early resends nothing, and once connected no
        timer is asked for.
        """
        server, client = self.pair()
        first_flight = client.start()
        self.assertEqual(len(first_flight), 1)
        timeout = client.timeout()
        self.assertTrue(0 < timeout <= 1.0, timeout)
        self.assertEqual(client.handle_timeout(), [])
        server.start()
        shuttle(server, client, first_flight)
        self.assertEqual(client.state, DTLSState.CONNECTED)
        self.assertIsNone(client.timeout())
        self.assertIsNone(server.timeout())

    def test_close_notify(self):
        """
        close() sends close_notify, and the peer goes to CLOSED.
        """
        server, client = self.pair()
        handshake(server, client)
        for datagram in client.close():
            server.receive(datagram)
        self.assertEqual((client.state, server.state), (DTLSState.CLOSED, DTLSState.CLOSED))
        self.assertEqual(server.receive(b"\x16" * 20), [])


class SplitRecordsTests(SynchronousTestCase):
    """
    Packing DTLS records into datagrams.
    """

    def record(self, size):
        return bytes([22, 0xFE, 0xFD]) + bytes(8) + size.to_bytes(2, "big") + bytes(size)

    def test_records_packed_up_to_mtu(self):
        """
        Records share a datagram up to the MTU and are never split.
        """
        records = [self.record(500), self.record(500), self.record(500)]
        datagrams = split_records(b"".join(records), mtu=1200)
        self.assertEqual(datagrams, [records[0] + records[1], records[2]])

    def test_oversized_record_alone(self):
        """
        A record bigger than the MTU goes in a datagram of its own.
        """
        records = [self.record(100), self.record(2000), self.record(10)]
        datagrams = split_records(b"".join(records), mtu=1200)
        self.assertEqual(datagrams, [records[0], records[1], records[2]])
