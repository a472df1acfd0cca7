"""
Outbound SIP over TLS (RFC 3261 26.3.1, RFC 5922) on a real loopback socket: a C{transport=tls}
target must get a TLS handshake (SNI, certificate checked against the configured CA), then SIP.

The certificates are made in the test: a CA, a server certificate it signs for "localhost" and
127.0.0.1, and a second CA nobody trusts.  Run under the asyncio reactor, as the server runs:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sip_tls
"""

from __future__ import annotations

import ipaddress
import random

from cryptography import x509
from OpenSSL import crypto
from twisted.internet import defer, ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.integration.certificates import make_certificate, trust_root
from tests.integration.peers import LOOPBACK, poll
from tests.integration.test_kamailio_ua import ResponseWaiter
from wcs_twisted.sip.framing import StreamFramer
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.stream import SIPStreamTransport
from wcs_twisted.transport.trace import MessageTrace
from wcs_twisted.ua.core import UserAgentCore
from wcs_twisted.ua.outbound import next_hop


class SIPServer(Protocol):
    """
    The TLS peer: records the SIP it reads (in plain text, after the handshake) and answers 200.
    """

    def connectionMade(self) -> None:
        self.framer = StreamFramer()
        self.factory.open += 1

    def connectionLost(self, reason) -> None:
        self.factory.open -= 1

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)
        self.framer.receive_data(data)
        while (request := self.framer.next_message()) is not None:
            self.transport.write(request.create_response(200, to_tag="tls1").serialize())


@implementer(IOpenSSLContextFactory)
class ServerContext:
    """
    The server's TLS context; remembers the SNI names clients send.
    """

    def __init__(self, certificate, key) -> None:
        self.server_names: list[bytes | None] = []
        options = ssl.CertificateOptions(
            privateKey=crypto.PKey.from_cryptography_key(key),
            certificate=crypto.X509.from_cryptography(certificate))
        self.context = options.getContext()
        self.context.set_tlsext_servername_callback(
            lambda connection: self.server_names.append(connection.get_servername()))

    def getContext(self):
        return self.context


class OutboundTLSTests(TestCase):
    """
    A request for a C{transport=tls} URI goes out over TLS, checked against the trusted CA.
    """

    timeout = 10

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.ca = make_certificate("Test CA")
        self.server_certificate = make_certificate(
            "localhost", issuer=self.ca,
            sans=(x509.DNSName("localhost"),
                  x509.IPAddress(ipaddress.ip_address(LOOPBACK))))
        self.context = ServerContext(*self.server_certificate)
        factory = Factory.forProtocol(SIPServer)
        factory.received = []
        factory.open = 0
        self.server = factory
        self.received = factory.received
        self.port = reactor.listenSSL(0, factory, self.context, interface=LOOPBACK)
        self.addCleanup(self.port.stopListening)

    def client(self, trusted) -> UserAgentCore:
        """
        A stack with only a TLS transport that trusts the CA C{trusted}.
        """
        stack = SIPStack(TransactionLayer(), self.reactor, random.Random(1), LOOPBACK,
                         trace=MessageTrace(log_messages=False))
        core = UserAgentCore(stack, random.Random(2))
        stack.attach(core)
        transports = SIPStreamTransport(stack, self.reactor, "tls",
                                        trust_root=trust_root(trusted[0]))
        stack.add_transport("tls", transports, 5061)

        def stop():
            stack.stop()
            transports.close_all()
            # The TLS close handshake takes a turn or two of the reactor.
            return poll(lambda: not transports.connections and not self.server.open, 5,
                        self.reactor, 0.01)
        self.addCleanup(stop)
        return core

    def send_options(self, core: UserAgentCore, host: str) -> ResponseWaiter:
        """
        An OPTIONS to C{sip:probe@host:port;transport=tls}, routed by L{next_hop}.
        """
        port = self.port.getHost().port
        uri = SIPURI.parse(f"sip:probe@{host}:{port};transport=tls")
        request = parse_message((
            f"OPTIONS {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {LOOPBACK}:5061;branch=z9hG4bKtls{random.getrandbits(32)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:gateway@{LOOPBACK}>;tag=f1\r\n"
            f"To: <{uri}>\r\n"
            "Call-ID: tls-1@test\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode())
        owner = ResponseWaiter()
        core.send_request(request, next_hop(uri), owner)
        return owner

    @defer.inlineCallbacks
    def test_handshake_then_sip(self):
        """
        The server sees a TLS handshake naming "localhost" (SNI), then the OPTIONS in plain
        text, and its 200 reaches the client transaction.
        """
        owner = self.send_options(self.client(self.ca), "localhost")
        status = yield owner.done
        self.assertEqual(status, 200)
        self.assertEqual(self.context.server_names, [b"localhost"])
        self.assertTrue(b"".join(self.received).startswith(b"OPTIONS sip:probe@localhost:"))

    @defer.inlineCallbacks
    def test_ip_literal_target(self):
        """
        An IP literal target is checked against the certificate's IP address (no SNI is sent).
        """
        owner = self.send_options(self.client(self.ca), LOOPBACK)
        status = yield owner.done
        self.assertEqual(status, 200)
        self.assertEqual(self.context.server_names, [None])

    @defer.inlineCallbacks
    def test_untrusted_certificate_refused(self):
        """
        A server certificate that does not chain to the trusted CA ends the connection before
        any SIP is sent; the transaction fails.
        """
        other_ca = make_certificate("Other CA")
        owner = self.send_options(self.client(other_ca), "localhost")
        outcome = yield owner.done
        self.assertNotEqual(outcome, 200)
        self.assertEqual(self.received, [])
