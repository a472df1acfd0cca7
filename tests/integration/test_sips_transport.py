"""
RFC 5630 on real loopback sockets: an OPTIONS whose Request-URI is sips: is answered 480 when it
arrives over UDP or TCP (the hop was not secure) and 200 over TLS, by the server as
C{build_service} wires it.  The TLS client trusts the test CA that signed the server's
certificate.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sips_transport
"""

from __future__ import annotations

import os
import socket

from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint, connectProtocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from tests.integration.certificates import make_certificate
from tests.integration.peers import LOOPBACK, poll
from tests.integration.test_sip_tcp import Client
from tests.integration.tls_peers import start_server, tls_settings


def sips_options(transport: str, port: int) -> bytes:
    return (f"OPTIONS sips:{LOOPBACK} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {LOOPBACK}:{port};branch=z9hG4bKsips{transport}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sips:probe@{LOOPBACK}>;tag=p\r\n"
            f"To: <sips:{LOOPBACK}>\r\nCall-ID: sips-{transport}@test\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


class SIPSOverInsecureHopTests(TestCase):
    """
    A sips: Request-URI is served only over TLS.
    """

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        base = self.mktemp()
        os.makedirs(base)
        settings = tls_settings(make_certificate("WCS Test CA"), os.path.join(base, "pki"))
        self.ca = settings.sip_tls_ca_certificates
        self.server = yield start_server(self, settings, reactor)
        self.stack = self.server.sip_stack

    @defer.inlineCallbacks
    def stream_answer(self, endpoint, transport: str):
        """
        Send the sips: OPTIONS on a new connection; fire with the first answer's status.
        """
        client = yield connectProtocol(endpoint, Client())
        self.addCleanup(lambda: client.transport.loseConnection() or client.closed)
        client.transport.write(sips_options(transport, 5999))
        yield poll(lambda: client.messages, 10, reactor, 0.02)
        return client.messages[0].status_code

    @defer.inlineCallbacks
    def test_udp_gets_480(self):
        """
        Over UDP: 480 Temporarily Unavailable (416 would deny the scheme, which we support).
        """
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(probe.close)
        probe.bind((LOOPBACK, 0))
        probe.setblocking(False)
        probe.sendto(sips_options("UDP", probe.getsockname()[1]),
                     (LOOPBACK, self.stack.local_address("udp")[1]))

        def answered():
            try:
                return probe.recv(65536)
            except BlockingIOError:
                return None

        answer = yield poll(answered, 10, reactor, 0.02)
        self.assertTrue(answer.startswith(b"SIP/2.0 480 "), answer[:60])

    @defer.inlineCallbacks
    def test_tcp_gets_480(self):
        """
        Over TCP (reliable but not secure): 480 too.
        """
        status = yield self.stream_answer(TCP4ClientEndpoint(
            reactor, LOOPBACK, self.stack.local_address("tcp")[1]), "TCP")
        self.assertEqual(status, 480)

    @defer.inlineCallbacks
    def test_tls_gets_200(self):
        """
        Over TLS the same request is served.
        """
        with open(self.ca, "rb") as pem:
            trust = Certificate.loadPEM(pem.read())
        status = yield self.stream_answer(SSL4ClientEndpoint(
            reactor, LOOPBACK, self.stack.local_address("tls")[1],
            optionsForClientTLS(LOOPBACK, trustRoot=trust)), "TLS")
        self.assertEqual(status, 200)
