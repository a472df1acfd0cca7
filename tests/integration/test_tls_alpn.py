"""
Every TLS listener accepts a client whose ALPN offer shares nothing with it (RFC 7301 3.2: the
handshake goes on without ALPN): a SIP phone offering ALPN on the SIP TLS port, a browser
offering only h2.  Twisted's own select callback ended such handshakes with an internal_error
alert.  Real clients (openssl s_client, OpenSSL through Twisted's TLS) on 127.0.0.1, with a
certificate from a test CA.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_tls_alpn
"""

from __future__ import annotations

import os
import uuid

from twisted.internet import defer, protocol, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.trial.unittest import TestCase

from tests.integration.peers import LOOPBACK, poll, require_binary
from tests.integration.test_topology_browser import make_certificates
from wcs_twisted.config import Settings
from wcs_twisted.tap import build_service


class SClient(protocol.ProcessProtocol):
    """
    C{openssl s_client}: what it prints (handshake summary, then what the server sent).
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.ended.callback(None)


class _HTTPClient(protocol.Protocol):
    """
    Sends one request once connected; keeps what comes back.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.lost = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


def options_request(port: int) -> bytes:
    call_id = uuid.uuid4().hex
    return ("OPTIONS sip:127.0.0.1:%d;transport=tls SIP/2.0\r\n"
            "Via: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bK%s\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\n"
            "To: <sip:127.0.0.1:%d>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n" % (port, call_id[:12], port, call_id)).encode()


class ALPNTests(TestCase):
    """
    The server's TLS listeners against clients offering ALPN.
    """

    timeout = 30

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        self.ca, certificate, key = make_certificates(workdir, LOOPBACK)
        self.server = build_service(Settings(
            bind_address=LOOPBACK, ws_port=0, wss_port=0, http_port=0, https_port=0, sip_port=0,
            sip_tls_port=0, sip_transports=("udp", "tcp", "tls"), tls_certificate=certificate,
            tls_private_key=key, state_dir=os.path.join(workdir, "var")), reactor)
        self.server.service.startService()
        self.addCleanup(self.server.service.stopService)
        return defer.gatherResults([listener.when_ready() for listener in self.server.listeners])

    def port(self, name: str) -> int:
        return self.server.service.getServiceNamed(name).port.getHost().port

    async def test_sip_tls_client_offering_alpn(self):
        """
        C{openssl s_client -alpn h2,foo} (nothing we speak) on the SIP TLS port completes the
        handshake with no ALPN, verifies the certificate, and its OPTIONS is answered 200.
        """
        executable = require_binary("openssl")
        port = self.port("sip-tls")
        client = SClient()
        process = self.reactor.spawnProcess(
            client, executable,
            [executable, "s_client", "-connect", f"{LOOPBACK}:{port}", "-alpn", "h2,foo",
             "-CAfile", self.ca, "-verify_return_error", "-nocommands", "-ign_eof"],
            env={"PATH": os.environ.get("PATH", "")})

        def stop():
            if process.pid is not None:
                process.signalProcess("TERM")
            return client.ended
        self.addCleanup(stop)
        await poll(lambda: b"Verify return code" in client.output, 10, self.reactor, 0.05,
                   message=lambda: f"no handshake: {client.output[-2000:]!r}")
        process.write(options_request(port))
        await poll(lambda: b"SIP/2.0 200" in client.output, 10, self.reactor, 0.05,
                   message=lambda: f"OPTIONS unanswered: {client.output[-2000:]!r}")
        self.assertIn(b"No ALPN negotiated", client.output)
        self.assertIn(b"Verify return code: 0 (ok)", client.output)
        self.assertNotIn(b"alert", client.output.lower())

    async def https_exchange(self, offered: list[bytes]) -> _HTTPClient:
        with open(self.ca) as handle:
            authority = ssl.Certificate.loadPEM(handle.read())
        options = ssl.optionsForClientTLS(LOOPBACK, authority, acceptableProtocols=offered)
        client = await SSL4ClientEndpoint(self.reactor, LOOPBACK, self.port("https"),
                                          options).connect(protocol.Factory.forProtocol(
                                              lambda: _HTTPClient(
                                                  b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                  b"Connection: close\r\n\r\n")))
        await client.lost
        return client

    async def test_https_prefers_http11(self):
        """
        A browser-like offer (h2, http/1.1) negotiates http/1.1 and gets an HTTP/1.1 answer.
        """
        client = await self.https_exchange([b"h2", b"http/1.1"])
        self.assertTrue(client.received.startswith(b"HTTP/1.1 "), client.received[:200])
        self.assertEqual(client.transport.negotiatedProtocol, b"http/1.1")

    async def test_https_client_offering_only_h2(self):
        """
        A client offering only h2 still connects (no ALPN negotiated) and is answered.
        """
        client = await self.https_exchange([b"h2"])
        self.assertTrue(client.received.startswith(b"HTTP/1.1 "), client.received[:200])
        self.assertIsNone(client.transport.negotiatedProtocol)
