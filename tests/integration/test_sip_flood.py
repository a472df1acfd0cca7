"""
Floods against the server as C{build_service} wires it, on real loopback sockets: an OPTIONS
flood over UDP from one address, and idle TCP connections that once locked every new
SIP-over-TCP client out (issue 11, item 7).

Run under the asyncio reactor, as the server runs:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sip_flood
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.trial.unittest import TestCase

from tests.integration.peers import LOOPBACK, poll
from wcs_twisted.config import Settings
from wcs_twisted.sip.framing import PING, StreamFramer
from wcs_twisted.tap import build_service
from wcs_twisted.transport.admission import SourceRateLimit

#: The flooding address; loopback is exempt from the rate limit by default, so the tests
#: below give the server a limit without exemptions.
ATTACKER = "127.0.0.2"


def options(transport: str, port: int, local: tuple[str, int], number: int) -> bytes:
    host, local_port = local
    return (
        f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{local_port};branch=z9hG4bKflood{number};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{host}>;tag=f{number}\r\n"
        f"To: <sip:{LOOPBACK}:{port}>\r\n"
        f"Call-ID: flood-{number}@{host}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class Counter(DatagramProtocol):
    """
    A UDP peer that counts the responses it gets.
    """

    def __init__(self) -> None:
        self.answers = 0

    def datagramReceived(self, data, addr) -> None:
        if data.startswith(b"SIP/2.0 200"):
            self.answers += 1


class StreamClient(Protocol):
    """
    A raw TCP client that frames what the server sends back.
    """

    def __init__(self) -> None:
        self.framer = StreamFramer()
        self.messages = []
        self.closed = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.framer.receive_data(data)
        while (message := self.framer.next_message()) is not None:
            self.messages.append(message)

    def connectionLost(self, reason) -> None:
        self.closed.callback(None)


class FloodTests(TestCase):
    """
    One abusive address cannot starve or lock out the others.
    """

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        settings = Settings(bind_address=LOOPBACK, sip_port=0, ws_port=0, http_port=0,
                            enable_local_videochat=False, sip_transports=("udp", "tcp"),
                            sip_max_tcp_connections=50)
        self.root = build_service(settings, reactor)
        self.root.service.startService()
        self.addCleanup(self.root.service.stopService)
        yield defer.gatherResults([listener.when_ready() for listener in self.root.listeners])
        self.stack = self.root.sip_stack
        self.stack.rate_limit = SourceRateLimit(rate=50, burst=100, exempt=())

    def listen(self, host: str) -> tuple[Counter, object]:
        counter = Counter()
        port = self.reactor.listenUDP(0, counter, interface=host)
        self.addCleanup(port.stopListening)
        return counter, port

    @defer.inlineCallbacks
    def test_udp_options_flood(self):
        """
        4,000 OPTIONS from 127.0.0.2 in 20 bursts while 127.0.0.1 sends one per burst: every
        probe is answered, the flood gets no more than its burst plus the rate, and it leaves
        no transactions behind beyond those.
        """
        flooder, flood_port = self.listen(ATTACKER)
        prober, probe_port = self.listen(LOOPBACK)
        server = (LOOPBACK, self.stack.ports["udp"])
        flood_local = (ATTACKER, flood_port.getHost().port)
        probe_local = (LOOPBACK, probe_port.getHost().port)
        started = self.reactor.seconds()
        number = 0
        for burst in range(20):
            for _ in range(200):
                number += 1
                flood_port.write(options("UDP", server[1], flood_local, number), server)
            number += 1
            probe_port.write(options("UDP", server[1], probe_local, number), server)
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        yield poll(lambda: prober.answers >= 20, 5, self.reactor, 0.05,
                   message=lambda: f"{prober.answers} of 20 probes answered")
        elapsed = self.reactor.seconds() - started
        self.assertLessEqual(flooder.answers, 100 + 50 * elapsed + 10)
        self.assertLessEqual(len(self.stack.layer), 100 + 50 * elapsed + 30)
        self.assertGreater(self.stack.rate_limit.limited, 3000)

    @defer.inlineCallbacks
    def connect(self, bind_host: str) -> StreamClient:
        client = StreamClient()
        endpoint = TCP4ClientEndpoint(self.reactor, LOOPBACK, self.stack.ports["tcp"],
                                      bindAddress=(bind_host, 0))
        yield connectProtocol(endpoint, client)
        self.addCleanup(self.disconnect, client)
        return client

    def disconnect(self, client: StreamClient):
        if not client.closed.called:
            client.transport.loseConnection()
        return client.closed

    @defer.inlineCallbacks
    def test_idle_tcp_connections_do_not_lock_clients_out(self):
        """
        60 silent connections from 127.0.0.2 against a cap of 50: a client from 127.0.0.1 is
        still admitted and answered, the silent connections are closed after the
        first-message timeout, and the client (keep-alives only after its request) stays.
        """
        transports = self.stack.transports["tcp"]
        transports.first_message_timeout = 1.0
        transports.idle_timeout = 0.6
        silent = []
        for _ in range(60):
            silent.append((yield self.connect(ATTACKER)))
        client = yield self.connect(LOOPBACK)
        host, port = client.transport.getHost().host, client.transport.getHost().port
        client.transport.write(options("TCP", self.stack.ports["tcp"], (host, port), 1))
        yield poll(lambda: client.messages, 3, self.reactor, 0.02,
                   message=lambda: "the client got no answer")
        self.assertEqual(client.messages[0].status_code, 200)
        for _ in range(30):  # 1.5 s of keep-alives, longer than both timeouts
            client.transport.write(PING)
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        yield poll(lambda: all(c.closed.called for c in silent), 3, self.reactor, 0.05,
                   message=lambda: f"{sum(not c.closed.called for c in silent)} still open")
        self.assertFalse(client.closed.called)
        self.assertEqual(transports.inbound, 1)
