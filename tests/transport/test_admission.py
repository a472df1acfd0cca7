"""
Tests for L{wcs_twisted.transport.admission} and how the stack applies it: per-source rate
limits and load shedding, driven by a Clock over a fake UDP port and a fake stream connection,
and shedding by queueing delay on a real loopback socket (kernel receive timestamps).
"""

from __future__ import annotations

import random
import socket
import time

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.transport.test_udp import FakeDatagramTransport
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.transport.admission import LoadShedding, ReactorLag, SourceRateLimit
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.stream import SIPStreamTransport
from wcs_twisted.transport.udp import SO_TIMESTAMPNS, SIPDatagramProtocol, listen_udp
from wcs_twisted.ua.core import UserAgentCore

ATTACKER = ("10.0.0.66", 5070)
CLIENT = ("10.0.0.9", 5070)


def request(method: str, number: int, source=CLIENT, to_tag: str | None = None,
            transport: str = "UDP") -> bytes:
    """
    A minimal request from C{source}, its branch and Call-ID made unique by C{number}.
    """
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{method} sip:bob@10.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {source[0]}:{source[1]};branch=z9hG4bKadm{number};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:alice@{source[0]}>;tag=f{number}\r\n"
        f"To: <sip:bob@10.0.0.1>{tag}\r\n"
        f"Call-ID: adm-{number}@test\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:alice@{source[0]}:{source[1]}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class SourceRateLimitTests(SynchronousTestCase):
    """
    The token buckets, one per source address.
    """

    def test_burst_then_rate(self):
        """
        A source gets its burst at once, then tokens at the rate; another source is untouched.
        """
        limit = SourceRateLimit(rate=10, burst=5, exempt=())
        self.assertEqual([limit.allow("10.0.0.66", 0.0) for _ in range(7)], [True] * 5 + [False] * 2)
        self.assertTrue(limit.allow("10.0.0.9", 0.0))
        self.assertFalse(limit.allow("10.0.0.66", 0.05))
        self.assertTrue(limit.allow("10.0.0.66", 0.2))
        self.assertEqual(limit.limited, 3)

    def test_exempt_networks(self):
        """
        Exempt networks (loopback by default) are never limited.
        """
        limit = SourceRateLimit(rate=1, burst=1)
        self.assertTrue(all(limit.allow("127.0.0.2", 0.0) for _ in range(100)))
        self.assertTrue(all(limit.allow("::1", 0.0) for _ in range(100)))
        self.assertFalse(limit.allow("192.0.2.1", 0.0) and limit.allow("192.0.2.1", 0.0))

    def test_table_is_bounded(self):
        """
        A flood of distinct (spoofed) sources cannot grow the table past its bound; refilled
        buckets are forgotten first.
        """
        limit = SourceRateLimit(rate=10, burst=5, exempt=(), max_sources=100)
        for n in range(1000):
            limit.allow(f"10.1.{n // 256}.{n % 256}", n * 0.01)
        self.assertLessEqual(len(limit), 100)

    def test_full_table_still_limits_a_new_source(self):
        """
        A new source that arrives when the table is full (and so forgets the quiet ones) gets
        a bucket of its own that keeps limiting it, not a fresh burst on every request.
        """
        limit = SourceRateLimit(rate=1, burst=2, exempt=(), max_sources=4)
        for n in range(4):
            limit.allow(f"10.1.0.{n}", 0.0)
        admitted = [limit.allow("10.9.9.9", 0.0) for _ in range(5)]
        self.assertEqual(admitted, [True, True, False, False, False])

    def test_zero_rate_turns_it_off(self):
        """
        A rate of 0 admits everything.
        """
        limit = SourceRateLimit(rate=0, exempt=())
        self.assertTrue(all(limit.allow("10.0.0.66", 0.0) for _ in range(1000)))


class ReactorLagTests(SynchronousTestCase):
    """
    The tick that measures how late the reactor runs.
    """

    def test_two_late_ticks_mean_lagging(self):
        """
        One late tick is a pause; two in a row are a backlog; an on-time tick ends it.
        """
        clock = Clock()
        lag = ReactorLag(clock, interval=0.1, max_lag=0.3)
        lag.start()
        clock.advance(0.5)
        self.assertFalse(lag.lagging)
        clock.advance(0.5)
        self.assertTrue(lag.lagging)
        clock.advance(0.1)
        self.assertFalse(lag.lagging)
        lag.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class StackAdmissionTestCase(SynchronousTestCase):
    """
    A stack with a UA core behind a fake UDP port on a Clock.
    """

    stack_options: dict = {}

    def setUp(self):
        self.clock = Clock()
        self.stack = SIPStack(TransactionLayer(), self.clock, random.Random(1), "10.0.0.1",
                              **self.stack_options)
        self.stack.attach(UserAgentCore(self.stack, random.Random(2)))
        self.protocol = SIPDatagramProtocol(self.stack)
        self.transport = FakeDatagramTransport()
        self.protocol.makeConnection(self.transport)
        self.stack.add_transport("udp", self.protocol, 5060)
        self.addCleanup(self.stack.stop)

    def answers_to(self, address) -> list[int]:
        return [int(data.split(b" ", 2)[1]) for data, to in self.transport.written
                if to == address]


class RateLimitedStackTests(StackAdmissionTestCase):
    """
    A request flood from one address (the OPTIONS flood that starved other clients).
    """

    stack_options = {"source_rate": 20, "source_burst": 40, "source_exempt": ()}

    def test_flood_is_dropped_and_others_are_served(self):
        """
        10 s of 1,000 OPTIONS/s from one address: it gets its burst plus the rate, nothing
        more (unanswered, no transaction); a client's OPTIONS in between are all answered.
        """
        number = 0
        for tick in range(100):
            for _ in range(100):
                number += 1
                self.protocol.datagramReceived(request("OPTIONS", number, ATTACKER), ATTACKER)
            number += 1
            self.protocol.datagramReceived(request("OPTIONS", number, CLIENT), CLIENT)
            self.clock.advance(0.1)
        self.assertEqual(self.answers_to(CLIENT), [200] * 100)
        answered = len(self.answers_to(ATTACKER))
        self.assertLessEqual(answered, 40 + 20 * 10 + 1)
        self.assertGreaterEqual(answered, 40 + 20 * 9)
        self.assertLessEqual(len(self.stack.layer), 400)
        self.assertGreater(self.stack.rate_limit.limited, 9000)

    def test_responses_are_not_limited(self):
        """
        Responses do not spend the source's tokens (they are matched or dropped cheaply).
        """
        response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\r\n"
        for _ in range(100):
            self.protocol.datagramReceived(response, ATTACKER)
        self.protocol.datagramReceived(request("OPTIONS", 1, ATTACKER), ATTACKER)
        self.assertEqual(self.answers_to(ATTACKER), [200])

    def test_stream_request_over_the_rate_gets_503(self):
        """
        Over a connection the source is proven and will not retransmit: over its rate a
        request is answered 503 with Retry-After.
        """
        transports = SIPStreamTransport(self.stack, self.clock, "tcp")
        self.stack.add_transport("tcp", transports, 5060)
        protocol = transports.buildProtocol(None)
        connection = StringTransport(peerAddress=IPv4Address("TCP", *ATTACKER))
        protocol.makeConnection(connection)
        for number in range(41):
            protocol.dataReceived(request("OPTIONS", number, ATTACKER, transport="TCP"))
        responses = connection.value().split(b"SIP/2.0 ")[1:]
        self.assertEqual([r[:3] for r in responses], [b"200"] * 40 + [b"503"])
        self.assertIn(b"Retry-After: 5", responses[-1])
        protocol.connectionLost(None)


class SheddingTests(StackAdmissionTestCase):
    """
    Overload: new INVITEs and REGISTERs get 503 + Retry-After, everything else goes through.
    """

    stack_options = {"max_lag": 0.3, "max_transactions": 50, "retry_after": 7}

    def lag(self) -> None:
        """
        Two ticks of the lag probe half a second late, as a backlogged reactor runs them.
        """
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertTrue(self.stack.load.lag.lagging)

    def test_lag_probe_runs_while_listening(self):
        """
        The probe ticks while a listener is up and stops with the last one.
        """
        self.assertTrue(self.stack.load.lag.running)
        self.protocol.doStop()
        self.assertFalse(self.stack.load.lag.running)

    def test_new_invite_and_register_shed_when_lagging(self):
        """
        A lagging reactor: a new INVITE and a REGISTER get a stateless 503 with Retry-After
        and create no transaction; once a tick is on time again, INVITEs are taken.
        """
        self.lag()
        self.protocol.datagramReceived(request("INVITE", 1), CLIENT)
        self.protocol.datagramReceived(request("REGISTER", 2), CLIENT)
        self.assertEqual(self.answers_to(CLIENT), [503, 503])
        shed = parse_message(self.transport.written[0][0])
        self.assertEqual(shed.headers.get("Retry-After"), "7")
        self.assertIsNotNone(shed.to.tag)
        self.assertEqual(len(self.stack.layer), 0)
        self.assertEqual(self.stack.load.shed, 2)
        self.clock.advance(0.1)
        self.protocol.datagramReceived(request("INVITE", 3), CLIENT)
        self.assertNotIn(503, self.answers_to(CLIENT)[2:])
        self.assertEqual(len(self.stack.layer), 1)

    def test_in_dialog_and_other_requests_pass(self):
        """
        While shedding, a re-INVITE (To tag), an ACK, an OPTIONS and a retransmitted INVITE
        that already has a transaction are not refused.
        """
        self.protocol.datagramReceived(request("INVITE", 1), CLIENT)
        before = len(self.transport.written)
        self.lag()
        self.protocol.datagramReceived(request("INVITE", 1), CLIENT)  # retransmission
        self.protocol.datagramReceived(request("INVITE", 2, to_tag="t2"), CLIENT)
        self.protocol.datagramReceived(request("ACK", 3, to_tag="t3"), CLIENT)
        self.protocol.datagramReceived(request("OPTIONS", 4), CLIENT)
        self.assertNotIn(503, self.answers_to(CLIENT)[before:])
        self.assertEqual(self.stack.load.shed, 0)

    def test_refusal_from_raw_bytes_and_its_ack_absorbed(self):
        """
        While lagging, a new INVITE is refused from its raw lines (the raw screen counts it)
        and the ACK that answers the 503 is dropped before any parse: it reaches neither the
        transaction layer nor the core.  After Timer H's 32 s an ACK is no longer looked at.
        """
        self.lag()
        self.protocol.datagramReceived(request("INVITE", 1), CLIENT)
        refusal = parse_message(self.transport.written[-1][0])
        self.assertEqual((refusal.status_code, refusal.headers.get("Retry-After")), (503, "7"))
        ack = request("ACK", 1, to_tag=refusal.to.tag)
        self.protocol.datagramReceived(ack, CLIENT)
        self.assertEqual(self.stack.raw_shedding.absorbed, 1)
        self.assertEqual(len(self.stack.layer), 0)
        self.clock.advance(33)
        self.protocol.datagramReceived(ack, CLIENT)
        self.assertEqual(self.stack.raw_shedding.absorbed, 1)

    def test_flood_of_new_invites_refused_statelessly(self):
        """
        The attack: 90 new INVITEs (distinct branches, Call-IDs) and the ACK of each 503 while
        the server is overloaded.  Each INVITE gets exactly one 503, each ACK is absorbed, and
        none of them leaves a transaction behind.
        """
        self.lag()
        for number in range(90):
            self.protocol.datagramReceived(request("INVITE", number), CLIENT)
            tag = parse_message(self.transport.written[-1][0]).to.tag
            self.protocol.datagramReceived(request("ACK", number, to_tag=tag), CLIENT)
        self.assertEqual(self.answers_to(CLIENT), [503] * 90)
        self.assertEqual((self.stack.load.shed, self.stack.raw_shedding.absorbed), (90, 90))
        self.assertEqual(len(self.stack.layer), 0)

    def test_unusual_request_refused_by_the_full_path(self):
        """
        A new INVITE the raw screen leaves alone (a folded Call-ID) is still refused, after its
        parse, with the same 503.
        """
        self.lag()
        folded = request("INVITE", 1).replace(b"Call-ID: ", b"Call-ID:\r\n ")
        self.protocol.datagramReceived(folded, CLIENT)
        refusal = parse_message(self.transport.written[-1][0])
        self.assertEqual((refusal.status_code, refusal.call_id), (503, "adm-1@test"))
        self.assertEqual(self.stack.load.shed, 1)

    def test_shed_over_the_transaction_bound(self):
        """
        With the transaction table at its bound, a new INVITE is refused; below it, taken.
        """
        for number in range(50):
            self.protocol.datagramReceived(request("OPTIONS", number), CLIENT)
        self.assertEqual(len(self.stack.layer), 50)
        self.protocol.datagramReceived(request("INVITE", 100), CLIENT)
        self.assertEqual(self.answers_to(CLIENT)[-1], 503)
        self.clock.advance(32)  # Timer J ends the OPTIONS transactions
        self.protocol.datagramReceived(request("INVITE", 101), CLIENT)
        self.assertNotEqual(self.answers_to(CLIENT)[-1], 503)


class LoadSheddingTests(SynchronousTestCase):
    """
    The causes of shedding, each alone.
    """

    def test_queue_delay_over_the_bound(self):
        """
        A message that waited longer than max_queue_delay is refused, with the wait said;
        one at the bound or with its wait unknown (0) is not; 0 turns the check off.
        """
        load = LoadShedding(ReactorLag(Clock()), max_queue_delay=0.2)
        self.assertEqual(load.overloaded(0, 0.35), "waited 350 ms to be read")
        self.assertIsNone(load.overloaded(0, 0.2))
        self.assertIsNone(load.overloaded(0))
        load.max_queue_delay = 0
        self.assertIsNone(load.overloaded(0, 10.0))


class QueueDelayTests(TestCase):
    """
    Shedding by how long a datagram waited in the socket's receive buffer, on a real loopback
    socket: datagrams are queued while nothing reads the port (a busy reactor), then read at
    once.  The port's wall clock is moved instead of waiting, so the test takes no real time.
    """

    timeout = 5

    def setUp(self):
        from twisted.internet import reactor

        self.clock = Clock()
        self.stack = SIPStack(TransactionLayer(), self.clock, random.Random(1), "127.0.0.1",
                              max_queue_delay=0.2, retry_after=7)
        self.stack.attach(UserAgentCore(self.stack, random.Random(2)))
        self.port = listen_udp(reactor, 0, SIPDatagramProtocol(self.stack), "127.0.0.1")
        self.port.stopReading()  # the reactor never reads it: the test does, when it says
        self.stack.add_transport("udp", self.port.protocol, self.port.getHost().port)
        self.addCleanup(self.stack.stop)
        self.addCleanup(self.port.stopListening)
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.client.close)
        self.client.bind(("127.0.0.1", 0))
        self.client.settimeout(2.0)
        self.source = self.client.getsockname()

    def send(self, method: str, number: int, to_tag: str | None = None) -> None:
        self.client.sendto(request(method, number, self.source, to_tag),
                           ("127.0.0.1", self.port.getHost().port))

    def read_port(self, late_by: float) -> None:
        """
        Read every queued datagram as if C{late_by} more seconds had passed since they came.
        """
        self.port.wall_clock = lambda: time.time() + late_by
        self.port.doRead()

    def answers(self) -> dict[str, tuple[int, str | None]]:
        """
        The final responses received (sent during the read, so already in our socket):
        status code and Retry-After by Call-ID.
        """
        answered = {}
        self.client.setblocking(False)
        while True:
            try:
                response = parse_message(self.client.recv(65536))
            except BlockingIOError:
                return answered
            if response.status_code >= 200:
                answered[response.call_id] = (response.status_code,
                                              response.headers.get("Retry-After"))

    def test_old_new_requests_shed_in_dialog_pass(self):
        """
        Datagrams that waited a second: the new INVITE and REGISTER get a stateless 503 with
        Retry-After; a re-INVITE, a BYE and an ACK in a dialog (To tag) and an OPTIONS are
        served as ever (481: no such dialog here; the ACK has no answer; 200).
        """
        self.send("INVITE", 1)
        self.send("REGISTER", 2)
        self.send("INVITE", 3, to_tag="t3")
        self.send("BYE", 4, to_tag="t4")
        self.send("ACK", 5, to_tag="t5")
        self.send("OPTIONS", 6)
        self.read_port(late_by=1.0)
        answered = self.answers()
        self.assertEqual(answered["adm-1@test"], (503, "7"))
        self.assertEqual(answered["adm-2@test"], (503, "7"))
        self.assertEqual([answered[f"adm-{n}@test"][0] for n in (3, 4, 6)], [481, 481, 200])
        self.assertEqual(self.stack.load.shed, 2)

    def test_fresh_requests_not_shed(self):
        """
        Datagrams read as soon as they came (their real wait, microseconds) are taken: each
        new INVITE and REGISTER gets a transaction, none a 503.
        """
        self.send("INVITE", 1)
        self.send("REGISTER", 2)
        self.read_port(late_by=0.0)
        self.assertEqual(self.stack.load.shed, 0)
        self.assertEqual(len(self.stack.layer), 2)

    def test_wait_is_the_kernel_stamp(self):
        """
        The wait handed to the protocol is the port's wall clock minus the kernel's arrival
        stamp: read 5 s after sending, each datagram waited 5 s (less the send's own time).
        """
        waits = []
        self.port.protocol.timed_datagram_received = lambda data, addr, waited: waits.append(
            (addr, waited))
        sent_at = time.time()
        self.send("OPTIONS", 1)
        self.send("OPTIONS", 2)
        self.port.wall_clock = lambda: sent_at + 5.0
        self.port.doRead()
        self.assertEqual([addr for addr, _ in waits], [self.source] * 2)
        for _, waited in waits:
            self.assertTrue(4.5 < waited <= 5.0, waited)

    def test_no_stamps_when_not_shedding_by_wait(self):
        """
        With sip_max_queue_delay_ms 0 (the default) the port asks the kernel for no arrival
        stamps and reads as Twisted does: no control message nor clock read per datagram; the
        datagrams are still served.
        """
        from twisted.internet import reactor

        self.assertTrue(self.port.stamped)
        stack = SIPStack(TransactionLayer(), self.clock, random.Random(3), "127.0.0.1")
        stack.attach(UserAgentCore(stack, random.Random(4)))
        port = listen_udp(reactor, 0, SIPDatagramProtocol(stack), "127.0.0.1")
        port.stopReading()
        stack.add_transport("udp", port.protocol, port.getHost().port)
        self.addCleanup(stack.stop)
        self.addCleanup(port.stopListening)
        self.assertFalse(port.stamped)
        self.assertEqual(port.socket.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS), 0)
        self.client.sendto(request("OPTIONS", 1, self.source), ("127.0.0.1", port.getHost().port))
        port.doRead()
        self.assertEqual(self.answers().get("adm-1@test", (None,))[0], 200)
