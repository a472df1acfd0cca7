"""
Tests for L{wcs_twisted.media.datagram_reading}: a media leg's port reads one datagram per
wake-up, called by the asyncio loop directly, and loses nothing.

Real UDP sockets on 127.0.0.1 and the running (asyncio) reactor: loopback delivery is
complete when C{sendto} returns, so what a read finds is known without waiting.
"""

from __future__ import annotations

import errno
import random
import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SkipTest, TestCase

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.media.datagram_reading import read_one_datagram_per_wakeup
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import build_rtp

LOOPBACK = "127.0.0.1"


class Collect(DatagramProtocol):
    """
    Keeps what arrives; fires C{waiting} once it holds C{expected} datagrams.
    """

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.waiting: defer.Deferred | None = None
        self.expected = 0

    def datagramReceived(self, data, addr):
        self.received.append(data)
        if self.waiting is not None and len(self.received) >= self.expected:
            waiting, self.waiting = self.waiting, None
            waiting.callback(None)

    def wait_for(self, count: int) -> defer.Deferred:
        if len(self.received) >= count:
            return defer.succeed(None)
        self.expected = count
        self.waiting = defer.Deferred()
        return self.waiting


class OneDatagramPerWakeupTests(TestCase):
    """
    The port of a leg on the asyncio reactor.
    """

    def setUp(self):
        if not hasattr(reactor, "_asyncioEventloop"):
            raise SkipTest("needs --reactor=asyncio")
        self.protocol = Collect()
        self.port = reactor.listenUDP(0, self.protocol, interface=LOOPBACK)
        self.addCleanup(self.port.stopListening)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.sender.close)
        self.address = (LOOPBACK, self.port.getHost().port)

    def send(self, *datagrams: bytes) -> None:
        for datagram in datagrams:
            self.sender.sendto(datagram, self.address)

    def test_one_datagram_per_read(self):
        """
        A read takes one of the queued datagrams; the loop reads the others on its next
        iterations, in order, and none is lost.
        """
        read = read_one_datagram_per_wakeup(reactor, self.port)
        self.assertIsNotNone(read)
        self.send(b"one", b"two", b"three")
        read()
        self.assertEqual(self.protocol.received, [b"one"])
        done = self.protocol.wait_for(3)
        done.addCallback(
            lambda _: self.assertEqual(self.protocol.received, [b"one", b"two", b"three"]))
        return done

    def test_called_by_the_loop(self):
        """
        The loop calls the installed reader (not the reactor's own, which would read every
        queued datagram in one call): a burst arrives whole, one datagram per call.
        """
        read = read_one_datagram_per_wakeup(reactor, self.port)
        calls = []
        loop = reactor._asyncioEventloop

        def counting():
            calls.append(len(self.protocol.received))
            read()

        loop.add_reader(self.port.fileno(), counting)
        self.send(*(bytes([i]) * 20 for i in range(5)))
        done = self.protocol.wait_for(5)

        def check(_):
            self.assertEqual(self.protocol.received, [bytes([i]) * 20 for i in range(5)])
            self.assertEqual(calls, [0, 1, 2, 3, 4])

        return done.addCallback(check)

    def test_stop_listening_unregisters(self):
        """
        stopListening takes the port out of the loop as usual: the reactor no longer
        watches it.
        """
        read_one_datagram_per_wakeup(reactor, self.port)
        fileno = self.port.fileno()
        self.assertIn(self.port, reactor.getReaders())
        d = defer.maybeDeferred(self.port.stopListening)

        def check(_):
            self.assertNotIn(self.port, reactor.getReaders())
            self.assertRaises(KeyError, reactor._asyncioEventloop._selector.get_key, fileno)

        return d.addCallback(check)

    def test_read_error_returns_the_port_to_the_reactor(self):
        """
        A socket error Twisted does not ignore is logged and the port goes back to the
        reactor's own reader (which closes a port whose reads keep failing); it is still
        read, through the reactor, once the error is gone.
        """
        read = read_one_datagram_per_wakeup(reactor, self.port)
        real = self.port.socket

        class Failing:
            def recvfrom(self, size):
                raise OSError(errno.ENOMEM, "no memory")

        self.port.socket = Failing()
        read()
        self.port.socket = real
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIn(self.port, reactor.getReaders())
        self.send(b"a", b"b")
        done = self.protocol.wait_for(2)
        return done.addCallback(lambda _: self.assertEqual(self.protocol.received, [b"a", b"b"]))

    def test_rtp_leg_reads_this_way(self):
        """
        An RTP leg's ports read one datagram per wake-up: a burst from the peer is
        delivered whole.
        """
        leg = RTPSession(reactor, LOOPBACK, rng=random.Random(3))
        leg.start()
        self.addCleanup(leg.stop)
        self.assertEqual(leg._rtp_port.maxThroughput, 1)
        self.assertEqual(leg._rtcp_port.maxThroughput, 1)
        got = []
        done = defer.Deferred()

        def received(data):
            got.append(data)
            if len(got) == 4:
                done.callback(None)

        leg.packet_received = received
        leg.set_remote(LOOPBACK, self.address[1])
        packets = [build_rtp(0, i, 160 * i, 0x1234, b"\xff" * 160) for i in range(4)]
        for packet in packets:
            self.port.write(packet, leg.local_address)
        return done.addCallback(lambda _: self.assertEqual(got, packets))


class OtherReactorTests(TestCase):
    """
    Without the asyncio reactor.
    """

    def test_test_double_keeps_its_reader(self):
        """
        A fake port without C{maxThroughput} is left alone; no reader is installed.
        """
        fake = FakeUDPReactor()
        port = fake.listenUDP(0, DatagramProtocol())
        self.assertIsNone(read_one_datagram_per_wakeup(fake, port))
        self.assertFalse(hasattr(port, "maxThroughput"))
