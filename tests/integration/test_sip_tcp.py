"""
SIP over a real TCP socket on 127.0.0.1 against the server as C{build_service} wires it.

Run under the asyncio reactor, as the server runs:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sip_tcp
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from tests.integration.peers import LOOPBACK, poll
from wcs_twisted.config import Settings
from wcs_twisted.sip.framing import PING, PONG, StreamFramer
from wcs_twisted.tap import build_service


class Client(Protocol):
    """
    A raw TCP client that frames what the server sends back.
    """

    def __init__(self) -> None:
        self.framer = StreamFramer()
        self.raw = b""
        self.messages = []
        self.closed = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self.framer.receive_data(data)
        while (message := self.framer.next_message()) is not None:
            self.messages.append(message)

    def connectionLost(self, reason) -> None:
        self.closed.callback(None)


def options(port: int, body: bytes = b"") -> bytes:
    return (
        f"OPTIONS sip:{LOOPBACK}:{port};transport=tcp SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {LOOPBACK}:5999;branch=z9hG4bKrealtcp1\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag=t1\r\n"
        f"To: <sip:{LOOPBACK}:{port}>\r\n"
        "Call-ID: real-tcp-1@test\r\n"
        "CSeq: 1 OPTIONS\r\n"
        + ("Content-Type: text/plain\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class SIPOverTCPTests(TestCase):
    """
    RFC 3261 18.3 and RFC 5626 4.4.1 over a real loopback socket.
    """

    timeout = 10

    @defer.inlineCallbacks
    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        settings = Settings(bind_address=LOOPBACK, sip_port=0, ws_port=0, http_port=0,
                            enable_local_videochat=False, sip_transports=("tcp",),
                            sip_max_message_size=4096)
        self.root = build_service(settings, reactor)
        self.root.service.startService()
        self.addCleanup(self.root.service.stopService)
        yield defer.gatherResults([listener.when_ready() for listener in self.root.listeners])
        self.port = self.root.sip_stack.ports["tcp"]

    @defer.inlineCallbacks
    def connect(self):
        client = Client()
        yield connectProtocol(TCP4ClientEndpoint(self.reactor, LOOPBACK, self.port), client)
        self.addCleanup(self.disconnect, client)
        return client

    def disconnect(self, client):
        if not client.closed.called:
            client.transport.loseConnection()
        return client.closed

    @defer.inlineCallbacks
    def test_options_answered_200(self):
        """
        An OPTIONS written in two pieces, followed by a keep-alive ping, gets 200 with Allow
        on the same connection, then the CRLF pong.
        """
        client = yield self.connect()
        data = options(self.port)
        client.transport.write(data[:50])
        client.transport.write(data[50:] + PING)
        yield poll(lambda: client.messages and client.raw.endswith(PONG), 5, self.reactor,
                   0.01, message=lambda: f"got {client.raw!r}")
        [response] = client.messages
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.top_via.branch, "z9hG4bKrealtcp1")
        self.assertIn("INVITE", response.headers.get("Allow"))
        self.assertEqual(client.framer.pongs_received, 1)

    @defer.inlineCallbacks
    def test_oversize_answered_413_and_closed(self):
        """
        A request over sip_max_message_size gets 413 and the server closes the connection.
        """
        client = yield self.connect()
        client.transport.write(options(self.port, body=b"x" * 8000))
        yield client.closed
        self.assertEqual([m.status_code for m in client.messages], [413])
