"""
Tests for L{wcs_twisted.transport.udp}: the datagram adapter on a fake UDP transport and a Clock.
"""

from __future__ import annotations

import random
import socket

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.interfaces import IUDPTransport
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from wcs_twisted.interfaces import IClientTransactionOwner
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.trace import BAD, IN, MessageTrace
from wcs_twisted.transport.udp import SIPDatagramProtocol, listen_udp
from tests.integration.peers import poll
from wcs_twisted.ua.core import UserAgentCore

PEER = ("10.0.0.9", 5070)


@implementer(IUDPTransport)
class FakeDatagramTransport:
    """
    A UDP port that records what is written; C{fail_with} makes the next writes raise.
    """

    def __init__(self, host: str = "10.0.0.1", port: int = 5060,
                 max_packet_size: int = 65536) -> None:
        self.host = host
        self.port = port
        self.maxPacketSize = max_packet_size
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.fail_with: OSError | None = None
        self.broadcast = False
        self.connected_to: tuple[str, int] | None = None
        self.listening = True

    def write(self, packet, addr=None):
        if self.fail_with is not None:
            raise self.fail_with
        self.written.append((packet, addr))

    def connect(self, host, port):
        self.connected_to = (host, port)

    def getHost(self):
        return IPv4Address("UDP", self.host, self.port)

    def stopListening(self):
        self.listening = False

    def setBroadcastAllowed(self, enabled):
        self.broadcast = enabled

    def getBroadcastAllowed(self):
        return self.broadcast


def options(branch: str = "z9hG4bKudp1", padding: int = 0, call_id: str = "udp-1@test") -> bytes:
    body = b"x" * padding
    return (
        "OPTIONS sip:10.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {PEER[0]}:{PEER[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{PEER[0]}>;tag=f1\r\n"
        "To: <sip:10.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        + ("Content-Type: text/plain\r\n" if padding else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class FakeDatagramTransportTests(SynchronousTestCase):
    """
    The fake used below is a real IUDPTransport.
    """

    def test_provides_interface(self):
        """
        The fake datagram transport provides every method of IUDPTransport.
        """
        self.assertTrue(verifyObject(IUDPTransport, FakeDatagramTransport()))


class SIPDatagramProtocolTests(SynchronousTestCase):
    """
    RFC 3261 18 over UDP: one datagram is one message.
    """

    def setUp(self):
        self.clock = Clock()
        self.traced: list[tuple[str, bytes, object]] = []
        trace = MessageTrace(log_messages=False)
        trace.observers.append(lambda *entry: self.traced.append(entry))
        self.bad: list[str] = []
        self.stack = SIPStack(TransactionLayer(), self.clock, random.Random(1), "10.0.0.1",
                              trace=trace, on_bad_message=self.bad.append)
        self.stack.user = UserAgentCore(self.stack, random.Random(2))
        self.protocol = SIPDatagramProtocol(self.stack, max_message_size=4096)
        self.transport = FakeDatagramTransport()
        self.protocol.makeConnection(self.transport)
        self.stack.add_transport("udp", self.protocol, 5060)
        self.addCleanup(self.stack.stop)

    def answers(self) -> list[tuple[int, tuple[str, int]]]:
        """
        The status codes written and where to (read from the status line: a 400 echoes the
        broken header it complains about).
        """
        return [(int(data.split(b" ", 2)[1]), addr) for data, addr in self.transport.written]

    def test_request_answered_to_its_source(self):
        """
        18.2.2 / RFC 3581: an OPTIONS datagram is answered 200 to the address it came from,
        with received and rport filled in.
        """
        self.protocol.datagramReceived(options(), ("10.0.0.77", 6000))
        self.assertEqual(self.answers(), [(200, ("10.0.0.77", 6000))])
        via = parse_message(self.transport.written[0][0]).top_via
        self.assertEqual((via.received, via.rport), ("10.0.0.77", 6000))
        self.assertEqual([direction for direction, _, _ in self.traced], [IN, "out"])

    def test_retransmission_absorbed(self):
        """
        17.2.2: the same request again is answered from the server transaction, not re-handled.
        """
        self.protocol.datagramReceived(options(), PEER)
        self.protocol.datagramReceived(options(), PEER)
        self.assertEqual(self.answers(), [(200, PEER), (200, PEER)])
        first, second = (data for data, _ in self.transport.written)
        self.assertEqual(first, second)  # same To tag: the stored response was resent

    def test_keepalives_ignored(self):
        """
        RFC 5626 4.4.1 / NAT keep-alives: CRLF, double CRLF and NUL datagrams are dropped
        silently, neither answered nor traced nor counted as bad.
        """
        for keepalive in (b"\r\n", b"\r\n\r\n", b"\x00", b"\x00\x00\x00\x00", b" \r\n"):
            self.protocol.datagramReceived(keepalive, PEER)
        self.assertEqual((self.transport.written, self.traced, self.bad), ([], [], []))

    def test_oversize_request_gets_513(self):
        """
        18.1.1 / 21.5.14: a request over the size limit is answered 513 with its Via, Call-ID
        and CSeq, and is not handed to the transaction layer.
        """
        self.protocol.datagramReceived(options(padding=5000), PEER)
        [(data, addr)] = self.transport.written
        response = parse_message(data)
        self.assertEqual((response.status_code, addr), (513, PEER))
        self.assertEqual((response.call_id, str(response.cseq)), ("udp-1@test", "1 OPTIONS"))
        self.assertEqual(response.top_via.branch, "z9hG4bKudp1")
        self.assertEqual(len(self.stack.layer), 0)
        self.assertEqual(self.bad, ["udp"])
        self.assertEqual(self.traced[0][0], BAD)

    def test_truncated_datagram_gets_513(self):
        """
        A datagram that filled the socket's read buffer (the kernel cut it to maxPacketSize)
        is treated as oversize, not parsed as a short message.
        """
        self.transport.maxPacketSize = 1024
        data = options(padding=2000)[:1024]
        self.protocol.datagramReceived(data, PEER)
        self.assertEqual(self.answers(), [(513, PEER)])

    def test_oversize_without_headers_dropped(self):
        """
        Oversize bytes with no readable header section are dropped unanswered, and counted.
        """
        self.protocol.datagramReceived(b"A" * 5000, PEER)
        self.assertEqual((self.transport.written, self.bad), ([], ["udp"]))

    def test_oversize_response_dropped(self):
        """
        18.1.2: an oversize response is never answered.
        """
        response = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n"
                    b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: r\r\nCSeq: 1 OPTIONS\r\n"
                    b"Content-Length: 5000\r\n\r\n" + b"y" * 5000)
        self.protocol.datagramReceived(response, PEER)
        self.assertEqual((self.transport.written, self.bad), ([], ["udp"]))

    def test_malformed_request_gets_400(self):
        """
        8.2.6.2 / RFC 4475: a request whose CSeq cannot be parsed is answered 400 statelessly.
        """
        data = options().replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
        self.protocol.datagramReceived(data, PEER)
        self.assertEqual(self.answers(), [(400, PEER)])
        self.assertEqual(self.bad, ["udp"])

    def test_send_failure_is_a_transport_error(self):
        """
        17.1.4: when the socket refuses a send, the client transaction fails with a transport
        error on the next reactor turn (never inside the send).
        """
        failures = []

        @implementer(IClientTransactionOwner)
        class Owner:
            def response_received(self, response):
                pass

            def transaction_failed(self, reason):
                failures.append(reason)

        self.transport.fail_with = OSError(101, "Network is unreachable")
        request = parse_message(options(branch="z9hG4bKout1"))
        request.headers.set("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKout1;rport")
        self.stack.user.send_request(request, SIPAddress("udp", "10.0.0.50", 5060), Owner())
        self.assertEqual(failures, [])
        self.clock.advance(0)
        self.assertEqual(failures, ["transport"])

    def test_receive_buffer_raised(self):
        """
        On start the socket's receive buffer is raised, so bursts queue rather than drop; a
        refusal (an OSError) leaves it as it was.
        """
        class Socket:
            def __init__(self, error=None):
                self.options = []
                self.error = error

            def setsockopt(self, level, name, value):
                if self.error is not None:
                    raise self.error
                self.options.append((level, name, value))

        transport = FakeDatagramTransport()
        transport.socket = Socket()
        SIPDatagramProtocol(self.stack, receive_buffer_size=1 << 20).makeConnection(transport)
        self.assertEqual(transport.socket.options,
                         [(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)])
        refusing = FakeDatagramTransport()
        refusing.socket = Socket(OSError(1, "Operation not permitted"))
        SIPDatagramProtocol(self.stack).makeConnection(refusing)
        self.assertEqual(refusing.socket.options, [])

    def test_send_before_listening_is_dropped(self):
        """
        A protocol that has no transport yet (or any more) drops what it is asked to send.
        """
        protocol = SIPDatagramProtocol(self.stack)
        protocol.send(b"data", SIPAddress("udp", "10.0.0.50", 5060))
        self.assertEqual(self.transport.written, [])


class ICMPErrorTests(TestCase):
    """
    RFC 3261 18.4 / 17.1.4 on a real loopback socket: an ICMP port unreachable ends the
    client transaction at once, not after Timer F.  The stack runs on a Clock that never
    moves, so only the ICMP error can end it.
    """

    timeout = 5

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.clock = Clock()
        self.stack = SIPStack(TransactionLayer(), self.clock, random.Random(1), "127.0.0.1")
        self.core = UserAgentCore(self.stack, random.Random(2))
        self.stack.attach(self.core)
        self.protocol = SIPDatagramProtocol(self.stack)
        self.port = listen_udp(reactor, 0, self.protocol, "127.0.0.1")
        self.stack.add_transport("udp", self.protocol, self.port.getHost().port)
        self.addCleanup(self.stack.stop)
        self.addCleanup(self.port.stopListening)

    def closed_port(self) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def send_options(self, port: int, number: int = 1):
        @implementer(IClientTransactionOwner)
        class Owner:
            failures: list[str] = []
            responses: list = []

            def response_received(self, response):
                self.responses.append(response)

            def transaction_failed(self, reason):
                self.failures.append(reason)

        owner = Owner()
        owner.failures, owner.responses = [], []
        request = parse_message(options(branch=f"z9hG4bKicmp{number}",
                                        call_id=f"icmp-{number}@test"))
        request.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port.getHost().port};"
                            f"branch=z9hG4bKicmp{number};rport")
        self.core.send_request(request, SIPAddress("udp", "127.0.0.1", port), owner)
        return owner

    @defer.inlineCallbacks
    def test_port_unreachable_is_a_transport_error(self):
        """
        An OPTIONS to a closed UDP port fails with "transport" within a second of real time.
        """
        owner = self.send_options(self.closed_port())
        yield poll(lambda: owner.failures, 1.0, self.reactor, 0.01,
                   message=lambda: "no transport error within 1 s")
        self.assertEqual(owner.failures, ["transport"])
        self.assertEqual(len(self.stack.layer), 0)

    @defer.inlineCallbacks
    def test_other_destinations_still_reached(self):
        """
        The pending ICMP error of one destination does not cost the next datagram to another
        (Linux makes that send fail; the port reads the error and sends again).
        """
        received = []

        class Peer(DatagramProtocol):
            def datagramReceived(self, data, addr):
                received.append(data)

        peer = self.reactor.listenUDP(0, Peer(), interface="127.0.0.1")
        self.addCleanup(peer.stopListening)
        failed = self.send_options(self.closed_port(), 1)
        self.send_options(peer.getHost().port, 2)
        yield poll(lambda: received and failed.failures, 1.0, self.reactor, 0.01,
                   message=lambda: f"received {len(received)}, failures {failed.failures}")
        self.assertIn(b"z9hG4bKicmp2", received[0])
