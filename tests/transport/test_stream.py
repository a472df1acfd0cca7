"""
Tests for L{wcs_twisted.transport.stream}: SIP over TCP on StringTransport and MemoryReactorClock.

No sockets: inbound connections are protocols built by the factory and connected to a
StringTransport; outbound connections go through the real TCP endpoint code on a
MemoryReactorClock, which the tests complete or fail by hand.
"""

from __future__ import annotations

import random

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IClientTransactionOwner
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.framing import PING, PONG
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.stream import SIPStreamTransport
from wcs_twisted.transport.trace import IN, MessageTrace
from wcs_twisted.ua.core import UserAgentCore

LOCAL_HOST = "10.0.0.1"
PEER = IPv4Address("TCP", "10.0.0.9", 40000)


def options(number: int = 1, body: bytes = b"", call_id: str = "tcp-1@test") -> bytes:
    return (
        f"OPTIONS sip:{LOCAL_HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {PEER.host}:5070;branch=z9hG4bKtcp{number}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{PEER.host}>;tag=f{number}\r\n"
        f"To: <sip:{LOCAL_HOST}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {number} OPTIONS\r\n"
        + ("Content-Type: text/plain\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def statuses(data: bytes) -> list[int]:
    """
    The status codes of the responses written on a connection, in order (read from the status
    lines: a 400 may echo the broken header it complains about).
    """
    return [int(line.split(b" ", 2)[1]) for line in data.split(b"\r\n")
            if line.startswith(b"SIP/2.0 ")]


@implementer(IClientTransactionOwner)
class RecordingOwner:
    """
    Records the final statuses and failures of one client transaction.
    """

    def __init__(self) -> None:
        self.responses: list[int] = []
        self.failures: list[str] = []

    def response_received(self, response):
        self.responses.append(response.status_code)

    def transaction_failed(self, reason):
        self.failures.append(reason)


class StreamTestCase(SynchronousTestCase):
    """
    A stack with a TCP transport on a MemoryReactorClock.
    """

    max_connections = 4
    max_message_size = 4096

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.traced: list[tuple[str, bytes, object]] = []
        trace = MessageTrace(log_messages=False)
        trace.observers.append(lambda *entry: self.traced.append(entry))
        self.bad: list[str] = []
        self.stack = SIPStack(TransactionLayer(), self.reactor, random.Random(1), LOCAL_HOST,
                              trace=trace, on_bad_message=self.bad.append)
        self.core = UserAgentCore(self.stack, random.Random(2))
        self.stack.user = self.core
        self.transports = SIPStreamTransport(self.stack, self.reactor, "tcp",
                                             max_connections=self.max_connections,
                                             max_message_size=self.max_message_size)
        self.stack.add_transport("tcp", self.transports, 5060)
        self.addCleanup(self.stack.stop)

    def accept(self, peer: IPv4Address = PEER):
        """
        An inbound connection from C{peer}: (protocol, its StringTransport).
        """
        protocol = self.transports.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def lose(self, protocol, transport) -> None:
        transport.loseConnection()
        protocol.connectionLost(Failure(ConnectionDone()))


class FramingTests(StreamTestCase):
    """
    RFC 3261 18.3: messages on a stream are delimited by Content-Length.
    """

    def test_whole_message(self):
        """
        A request in one read is answered 200 on the same connection (18.2.2).
        """
        protocol, transport = self.accept()
        protocol.dataReceived(options())
        self.assertEqual(statuses(transport.value()), [200])
        self.assertFalse(transport.disconnecting)

    def test_byte_by_byte(self):
        """
        A request (with a body) fed one byte per read is answered once, when complete.
        """
        protocol, transport = self.accept()
        data = options(body=b"hello")
        for index in range(len(data) - 1):
            protocol.dataReceived(data[index:index + 1])
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(data[-1:])
        self.assertEqual(statuses(transport.value()), [200])

    def test_two_messages_in_one_read(self):
        """
        Two requests in one read, the second split from a third read, are each answered.
        """
        protocol, transport = self.accept()
        third = options(3, call_id="tcp-3@test")
        protocol.dataReceived(options(1) + options(2, body=b"abc", call_id="tcp-2@test")
                              + third[:20])
        self.assertEqual(statuses(transport.value()), [200, 200])
        protocol.dataReceived(third[20:])
        self.assertEqual(statuses(transport.value()), [200, 200, 200])

    def test_reads_are_traced(self):
        """
        What arrives on a stream reaches the message trace as "in", as datagrams do.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(options())
        incoming = [entry for entry in self.traced if entry[0] == IN]
        self.assertEqual(incoming, [(IN, options(), SIPAddress("tcp", PEER.host, PEER.port))])

    def test_responses_reach_the_client_transaction(self):
        """
        18.1.2: a response on the connection we sent on matches our client transaction.
        """
        protocol, transport = self.accept()
        owner = RecordingOwner()
        request = parse_message(options(7))
        request.headers.set("Via", f"SIP/2.0/TCP {LOCAL_HOST}:5060;branch=z9hG4bKours7")
        self.core.send_request(request, SIPAddress("tcp", PEER.host, PEER.port), owner)
        self.assertEqual(transport.value(), request.serialize())
        response = request.create_response(200, to_tag="t7")
        protocol.dataReceived(response.serialize())
        self.assertEqual(owner.responses, [200])


class BadInputTests(StreamTestCase):
    """
    Bad input on a stream: answered when possible, then the connection is dropped.
    """

    def test_oversize_message_gets_413_and_is_dropped(self):
        """
        A Content-Length that makes the message exceed the limit is answered 413 as soon as
        the header section is read, and the connection is closed.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(options(body=b"x" * 5000)[:600])
        self.assertEqual(statuses(transport.value()), [413])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.bad, ["tcp"])

    def test_missing_content_length_gets_400_and_is_dropped(self):
        """
        18.3: Content-Length is mandatory on streams; without it the request gets 400 and the
        connection is closed (the stream cannot be resynchronised).
        """
        protocol, transport = self.accept()
        protocol.dataReceived(options().replace(b"Content-Length: 0\r\n", b""))
        self.assertEqual(statuses(transport.value()), [400])
        self.assertTrue(transport.disconnecting)

    def test_oversize_header_section_is_dropped(self):
        """
        A header section that never ends is refused once past the limit, unanswered (no
        headers could be read), and the connection is closed.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(b"OPTIONS sip:x SIP/2.0\r\nX-Filler: " + b"a" * 5000)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.bad, ["tcp"])

    def test_nothing_more_after_an_error(self):
        """
        Bytes arriving after the framing error (before the close completes) are ignored: one
        answer, one count.
        """
        protocol, transport = self.accept()
        broken = options().replace(b"Content-Length: 0\r\n", b"")
        protocol.dataReceived(broken)
        protocol.dataReceived(options(2))
        self.assertEqual(statuses(transport.value()), [400])
        self.assertEqual(self.bad, ["tcp"])


class KeepAliveTests(StreamTestCase):
    """
    RFC 5626 4.4.1: a double-CRLF ping is answered with a single-CRLF pong.
    """

    def test_ping_answered_with_pong(self):
        """
        A ping alone gets exactly one CRLF back.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(PING)
        self.assertEqual(transport.value(), PONG)
        self.assertEqual((protocol.framer.pings_received, protocol.pongs_sent), (1, 1))

    def test_ping_split_across_reads(self):
        """
        A ping split inside its CRLFs is answered once, when complete.  (Split exactly between
        them it reads as two pongs, as the framer documents: peers send a ping in one write.)
        """
        protocol, transport = self.accept()
        for part in (b"\r", b"\n\r", b"\n"):
            protocol.dataReceived(part)
        self.assertEqual(transport.value(), PONG)

    def test_pings_between_messages(self):
        """
        Pings before and after a request are answered and the request still is.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(PING + options() + PING)
        value = transport.value()
        self.assertEqual(statuses(value), [200])
        self.assertTrue(value.endswith(b"\r\n\r\n" + PONG + PONG), value[-12:])

    def test_pong_is_not_answered(self):
        """
        A single CRLF (a pong from the peer) is not answered.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(PONG)
        protocol.dataReceived(options())
        self.assertEqual(statuses(transport.value()), [200])
        self.assertEqual(protocol.pongs_sent, 0)


class ConnectionCapTests(StreamTestCase):
    """
    Floods of inbound connections are bounded, and cannot lock new clients out.
    """

    max_connections = 2

    def test_connection_over_the_cap_refused(self):
        """
        When every connection has spoken, the one over the cap is closed at once and counted;
        the others still work, and a slot freed by a close is usable again.
        """
        first = self.accept(IPv4Address("TCP", "10.0.0.9", 40001))
        second = self.accept(IPv4Address("TCP", "10.0.0.9", 40002))
        first[0].dataReceived(options(1))
        second[0].dataReceived(options(2))
        protocol, transport = self.accept(IPv4Address("TCP", "10.0.0.9", 40003))
        self.assertTrue(transport.disconnecting)
        self.assertEqual((self.transports.refused, self.transports.inbound), (1, 2))
        protocol.dataReceived(options())
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.transports.inbound, 2)
        first[0].dataReceived(options(3))
        self.assertEqual(statuses(first[1].value()), [200, 200])
        self.lose(*second)
        self.assertEqual(self.transports.inbound, 1)
        fourth = self.accept(IPv4Address("TCP", "10.0.0.9", 40004))
        self.assertFalse(fourth[1].disconnecting)

    def test_silent_connection_makes_room(self):
        """
        With the cap reached by connections that never sent a message, a new client is
        admitted and the oldest silent connection is closed (the idle-connection lock-out).
        """
        silent = [self.accept(IPv4Address("TCP", "10.0.0.66", 40000 + n)) for n in range(2)]
        protocol, transport = self.accept(IPv4Address("TCP", "10.0.0.9", 41000))
        self.assertFalse(transport.disconnecting)
        self.assertEqual([t.disconnecting for _, t in silent], [True, False])
        self.assertEqual((self.transports.evicted, self.transports.inbound), (1, 2))
        self.lose(*silent[0])
        self.assertEqual(self.transports.inbound, 2)
        protocol.dataReceived(options())
        self.assertEqual(statuses(transport.value()), [200])


class PerSourceCapTests(StreamTestCase):
    """
    One address cannot hold more than its share of connections.
    """

    max_connections = 100

    def setUp(self):
        super().setUp()
        self.transports.max_connections_per_source = 2

    def test_per_source_cap(self):
        """
        The third connection from one address is refused; another address is still admitted,
        and a closed connection gives its address a slot back.
        """
        first = self.accept(IPv4Address("TCP", "10.0.0.66", 40001))
        self.accept(IPv4Address("TCP", "10.0.0.66", 40002))
        _, third = self.accept(IPv4Address("TCP", "10.0.0.66", 40003))
        self.assertTrue(third.disconnecting)
        _, other = self.accept(IPv4Address("TCP", "10.0.0.9", 40001))
        self.assertFalse(other.disconnecting)
        self.lose(*first)
        _, again = self.accept(IPv4Address("TCP", "10.0.0.66", 40004))
        self.assertFalse(again.disconnecting)
        self.assertEqual(self.transports.refused, 1)


class IdleTimeoutTests(StreamTestCase):
    """
    Connections that carry nothing are closed; those with traffic stay.
    """

    def setUp(self):
        super().setUp()
        self.transports.first_message_timeout = 10
        self.transports.idle_timeout = 60

    def test_silent_connection_closed(self):
        """
        A connection that sends no whole message within the first-message timeout is closed,
        keep-alive pings or not.
        """
        protocol, transport = self.accept()
        self.reactor.advance(5)
        protocol.dataReceived(PING)
        self.reactor.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.transports.timed_out, 1)

    def test_keepalives_keep_a_used_connection(self):
        """
        After a message, RFC 5626 keep-alives count as traffic: the connection stays for as
        long as they come, and is closed one idle timeout after the last one.
        """
        protocol, transport = self.accept()
        protocol.dataReceived(options())
        for _ in range(5):
            self.reactor.advance(50)
            protocol.dataReceived(PING)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(59)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1.5)
        self.assertTrue(transport.disconnecting)

    def test_closed_connection_leaves_no_timer(self):
        """
        A connection that is lost cancels its idle timer.
        """
        protocol, transport = self.accept()
        self.lose(protocol, transport)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class OutboundTests(StreamTestCase):
    """
    Sending to an address with no connection opens one; failures reach the transactions.
    """

    destination = SIPAddress("tcp", "10.0.0.50", 5060)

    def send_options(self, number: int) -> RecordingOwner:
        owner = RecordingOwner()
        request = parse_message(options(number, call_id=f"out-{number}@test"))
        request.headers.set("Via", f"SIP/2.0/TCP {LOCAL_HOST}:5060;branch=z9hG4bKout{number}")
        self.core.send_request(request, self.destination, owner)
        return owner

    def test_connect_then_queued_messages_flushed(self):
        """
        Two requests sent while the connection is being made open one connection and leave
        on it in order once it is up.
        """
        self.send_options(1)
        self.send_options(2)
        [(host, port, factory, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("10.0.0.50", 5060))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.50", 5060))
        factory.buildProtocol(None).makeConnection(transport)
        sent = transport.value()
        self.assertLess(sent.index(b"z9hG4bKout1"), sent.index(b"z9hG4bKout2"))
        self.assertEqual(sent.count(b"OPTIONS sip:"), 2)
        self.send_options(3)
        self.assertEqual(len(self.reactor.tcpClients), 1)  # reused
        self.assertIn(b"z9hG4bKout3", transport.value())

    def test_connect_failure_is_a_transport_error(self):
        """
        17.1.4: a refused connection fails every transaction waiting on it with a transport
        error, and the next send tries again.
        """
        owners = [self.send_options(1), self.send_options(2)]
        [(_, _, factory, _, _)] = self.reactor.tcpClients
        factory.clientConnectionFailed(self.reactor.connectors[0],
                                       Failure(ConnectionRefusedError()))
        self.assertEqual([owner.failures for owner in owners], [["transport"], ["transport"]])
        self.send_options(3)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_outbound_connection_only_idles_out(self):
        """
        A connection we opened has no first-message timeout (we speak first); it is closed
        after the idle timeout with nothing received.
        """
        self.transports.first_message_timeout, self.transports.idle_timeout = 1, 60
        self.send_options(1)
        [(_, _, factory, _, _)] = self.reactor.tcpClients
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.50", 5060))
        factory.buildProtocol(None).makeConnection(transport)
        self.reactor.advance(59)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_connection_lost_is_a_transport_error(self):
        """
        A connection that drops while a transaction waits for its answer fails it (17.1.4).
        """
        owner = self.send_options(1)
        [(_, _, factory, _, _)] = self.reactor.tcpClients
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.50", 5060))
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(transport)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(owner.failures, ["transport"])
        self.assertEqual(self.transports.connections, {})

    def test_close_all(self):
        """
        Shutdown closes every connection.
        """
        first = self.accept(IPv4Address("TCP", "10.0.0.9", 40001))
        second = self.accept(IPv4Address("TCP", "10.0.0.9", 40002))
        self.transports.close_all()
        self.assertTrue(first[1].disconnecting and second[1].disconnecting)


class ConnectBudgetTests(StreamTestCase):
    """
    A silent target (SYN dropped, or a TLS handshake never finished) fails the connection
    within C{connect_timeout}, like a refused one.
    """

    destination = SIPAddress("tls", "10.0.0.50", 5061)

    def test_tcp_connect_timeout_is_the_budget(self):
        """
        The TCP connect is bounded by C{connect_timeout}, not the 10 s default.
        """
        self.transports.connect_timeout = 4.0
        self.transports.send(b"OPTIONS", SIPAddress("tcp", "10.0.0.50", 5060))
        [(_, _, _, timeout, _)] = self.reactor.tcpClients
        self.assertEqual(timeout, 4.0)

    def test_zero_means_the_default(self):
        """
        0 (no failover on silence) keeps the 10 s default rather than waiting forever.
        """
        transports = SIPStreamTransport(self.stack, self.reactor, "tls", connect_timeout=0)
        self.assertEqual(transports.connect_timeout, 10.0)

    def tls_connection(self, connect_timeout: float = 4.0):
        """
        An outbound TLS connection whose TCP part took 1 s: (transports, protocol, transport).
        """
        transports = SIPStreamTransport(self.stack, self.reactor, "tls",
                                        connect=lambda address: None,
                                        connect_timeout=connect_timeout)
        factory = transports._outbound_factory(self.destination, tls=True)
        self.reactor.advance(1)
        protocol = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.50", 5061))
        protocol.makeConnection(transport)
        return transports, protocol, transport

    def test_unfinished_handshake_aborted_at_the_deadline(self):
        """
        A TLS server that accepts the connection and never completes the handshake is cut off
        when the budget (counted from the connect) runs out, and that is a transport error.
        """
        errors = []
        self.stack.transport_error = errors.append
        transports, protocol, transport = self.tls_connection()
        self.reactor.advance(2.9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transports.timed_out, 1)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(errors, [self.destination])

    def test_finished_handshake_keeps_the_connection(self):
        """
        Once the handshake is done the budget no longer applies; no timer is left behind.
        """
        _, protocol, transport = self.tls_connection()
        protocol.handshakeCompleted()
        self.reactor.advance(10)
        self.assertFalse(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
