"""
wss with a client that offers ALPN, as every browser does: Twisted answers ALPN only from the
protocols the factory lists, and with none the TLS handshake ends in an internal_error alert
(Chromium: net::ERR_SSL_PROTOCOL_ERROR).  On 127.0.0.1, with a certificate from a test CA.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_wss_alpn
"""

from __future__ import annotations

import os

from twisted.internet import defer, protocol, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.trial.unittest import TestCase

from tests.integration.peers import LOOPBACK, poll
from tests.integration.test_topology_browser import make_certificates
from wcs_twisted.config import Settings
from wcs_twisted.tap import build_service

UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class _Upgrade(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost = defer.Deferred()

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)

    def connectionMade(self) -> None:
        self.transport.write(UPGRADE)

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class ALPNTests(TestCase):
    """
    The wss listener against a TLS client offering ALPN http/1.1.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_browser_like_client_opens_wss(self):
        """
        A client offering ALPN http/1.1 and verifying the certificate against the test CA
        completes the handshake, negotiates http/1.1 and gets 101 Switching Protocols.
        """
        from twisted.internet import reactor

        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        ca, certificate, key = make_certificates(workdir, LOOPBACK)
        server = build_service(Settings(bind_address=LOOPBACK, ws_port=0, wss_port=0,
                                        http_port=0, https_port=0, sip_port=0,
                                        tls_certificate=certificate, tls_private_key=key,
                                        state_dir=os.path.join(workdir, "var")), reactor)
        server.service.startService()
        self.addCleanup(server.service.stopService)
        yield defer.gatherResults([listener.when_ready() for listener in server.listeners])
        port = server.service.getServiceNamed("wss").port.getHost().port
        with open(ca) as handle:
            authority = ssl.Certificate.loadPEM(handle.read())
        options = ssl.optionsForClientTLS(LOOPBACK, authority, acceptableProtocols=[b"http/1.1"])
        client = yield SSL4ClientEndpoint(reactor, LOOPBACK, port, options).connect(
            protocol.Factory.forProtocol(_Upgrade))

        def close():
            client.transport.loseConnection()
            return client.lost
        self.addCleanup(close)
        yield poll(lambda: b"\r\n\r\n" in client.received, 10, reactor, 0.05,
                   message=lambda: f"no answer to the upgrade: {client.received!r}")
        self.assertTrue(client.received.startswith(b"HTTP/1.1 101"), client.received)
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")
        # Close the TCP connection the way a tab does, before the server stops.
        client.transport.loseConnection()
        yield client.lost
