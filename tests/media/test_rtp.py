"""
Tests for L{wcs_twisted.media.rtp}: the SIP leg's RTP session, on a fake UDP
reactor and a L{Clock} (no sockets, no wall clock).
"""

import random

from zope.interface.verify import verifyObject

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP, IUDPTransport
from twisted.logger import Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.media import rtcp
from wcs_twisted.media.ports import PortPool, PortPoolExhausted
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import (
    TelephoneEventSender,
    build_rtp,
    decode_telephone_event,
    peek_header,
)
from wcs_twisted.media.rtp_source import expected_hosts, nat_suspected

# Documentation addresses are not global: a peer whose SDP names one may be
# behind NAT, so with no signalling source known the leg learns from any
# source (see SourceLearningTests for the strict cases).
PEER = ("192.0.2.10", 4000)
NAT = ("198.51.100.7", 61000)


def rtp(seq=1, ts=160, ssrc=0xDEAD, pt=0, payload=b"\x7f" * 160, marker=False):
    return build_rtp(pt, seq, ts, ssrc, payload, marker)


class FakesTests(SynchronousTestCase):
    """
    The fakes used here provide the interfaces they claim.
    """

    def test_verify(self):
        """
        FakeUDPPort and FakeUDPReactor pass verifyObject.
        """
        reactor = FakeUDPReactor()
        verifyObject(IReactorUDP, reactor)
        port = reactor.listenUDP(0, RTPSession(reactor, "127.0.0.1"))
        verifyObject(IUDPTransport, port)
        verifyObject(IListeningPort, port)


class SessionTestMixin:
    def make(self, pool=None, **kw):
        self.reactor = FakeUDPReactor()
        self.pool = pool if pool is not None else PortPool(31000, 31009)
        kw.setdefault("rng", random.Random(4))
        session = RTPSession(self.reactor, "203.0.113.1", self.pool, **kw)
        session.start()
        self.addCleanup(session.stop)
        self.received = []
        session.packet_received = self.received.append
        return session

    def rtp_port(self, session):
        return self.reactor.bound[session.local_address[1]]

    def rtcp_port(self, session):
        return self.reactor.bound[session.local_rtcp_port]


class LifecycleTests(SessionTestMixin, SynchronousTestCase):
    """
    Binding from the port pool and giving ports back.
    """

    def test_binds_pair_from_pool(self):
        """
        start binds the even RTP port and RTCP on the next one, on the
        configured address.
        """
        session = self.make()
        host, port = session.local_address
        self.assertEqual(host, "203.0.113.1")
        self.assertTrue(31000 <= port < 31009 and port % 2 == 0, port)
        self.assertEqual(session.local_rtcp_port, port + 1)
        self.assertEqual(self.pool.in_use, 1)

    def test_skips_ports_taken_elsewhere(self):
        """
        A pair another process holds is skipped and goes back to the pool.
        """
        reactor = FakeUDPReactor()
        reactor.busy.update({31000, 31002})
        pool = PortPool(31000, 31005)
        session = RTPSession(reactor, "127.0.0.1", pool)
        session.start()
        self.assertEqual(session.local_address[1], 31004)
        self.assertEqual((pool.in_use, pool.available), (1, 2))
        self.assertEqual(sorted(reactor.bound), [31004, 31005])
        session.stop()

    def test_stop_releases_everything(self):
        """
        stop closes both ports, cancels the timer and frees the pair; a
        second stop does nothing.
        """
        session = self.make()
        d = session.stop()
        self.successResultOf(d)
        self.assertEqual(self.reactor.bound, {})
        self.assertEqual(self.pool.in_use, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.successResultOf(session.stop())
        self.assertEqual(self.pool.in_use, 0)

    def test_send_after_stop_is_noop(self):
        """
        Relaying into a stopped leg sends nothing and raises nothing.
        """
        session = self.make()
        session.set_remote(*PEER)
        port = self.rtp_port(session)
        session.stop()
        session.send_packet(bytearray(rtp()))
        session.send_payload(b"x" * 160, 0)
        self.assertEqual(port.written, [])

    def test_exhausted_pool(self):
        """
        With no free pair, start raises PortPoolExhausted and binds nothing.
        """
        reactor = FakeUDPReactor()
        pool = PortPool(31000, 31001)
        held = pool.allocate()
        session = RTPSession(reactor, "127.0.0.1", pool)
        self.assertRaises(PortPoolExhausted, session.start)
        self.assertEqual(reactor.bound, {})
        held.release()

    def test_all_pairs_busy(self):
        """
        When every pair is taken by others, start fails with
        PortPoolExhausted and holds no pair.
        """
        reactor = FakeUDPReactor()
        reactor.busy.update({31000, 31002})
        pool = PortPool(31000, 31003)
        session = RTPSession(reactor, "127.0.0.1", pool)
        error = self.assertRaises(PortPoolExhausted, session.start)
        self.assertIsInstance(error.__cause__, CannotListenError)
        self.assertEqual(pool.in_use, 0)
        self.assertEqual(reactor.bound, {})

    def test_stop_sends_bye(self):
        """
        stop ends with an RTCP BYE to the peer (RFC 3550 section 6.6).
        """
        session = self.make()
        session.set_remote(*PEER)
        rtcp_port = self.rtcp_port(session)
        session.stop()
        data, addr = rtcp_port.written[-1]
        self.assertEqual(addr, (PEER[0], PEER[1] + 1))
        self.assertEqual(rtcp.parse_compound(data)[-1].packet_type, rtcp.RTCP_BYE)


class LatchingTests(SessionTestMixin, SynchronousTestCase):
    """
    Symmetric RTP (RFC 4961): send where the peer sends from, latch once.
    """

    def test_latches_onto_first_source(self):
        """
        The first packet's source replaces the SDP address for sending.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.datagramReceived(rtp(), NAT)
        self.assertTrue(session.latched)
        session.send_packet(bytearray(rtp()))
        self.assertEqual(self.rtp_port(session).written[-1][1], NAT)

    def test_other_sources_refused_after_latch(self):
        """
        After latching, packets from any other address are dropped and not
        delivered.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.datagramReceived(rtp(seq=1), NAT)
        session.datagramReceived(rtp(seq=2), ("203.0.113.66", 9))
        self.assertEqual(len(self.received), 1)
        self.assertEqual(session.packets_dropped, 1)
        self.assertEqual(session.remote_address, NAT)

    def test_same_sdp_keeps_latch(self):
        """
        The same SDP address again (a re-INVITE) keeps the latch.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.datagramReceived(rtp(), NAT)
        session.set_remote(*PEER)
        self.assertEqual(session.remote_address, NAT)
        self.assertTrue(session.latched)

    def test_new_sdp_address_relatches(self):
        """
        A changed SDP address resets the latch; the next source latches.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.datagramReceived(rtp(), NAT)
        session.set_remote("192.0.2.99", 5000)
        self.assertEqual(session.remote_address, ("192.0.2.99", 5000))
        self.assertFalse(session.latched)
        other = ("198.51.100.8", 1234)
        session.datagramReceived(rtp(seq=2), other)
        self.assertEqual(session.remote_address, other)

    def test_nothing_learnt_before_sdp(self):
        """
        Before the peer's SDP says who it is, no source is learnt: packets
        are refused (they are what a flood of the port range looks like).
        """
        session = self.make()
        session.datagramReceived(rtp(), NAT)
        self.assertFalse(session.latched)
        self.assertIsNone(session.remote_address)
        self.assertEqual((self.received, session.packets_refused), ([], 1))

    def test_garbage_does_not_latch(self):
        """
        Datagrams that are not RTP neither latch nor reach the bridge.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.datagramReceived(b"\x00\x01hello", NAT)
        session.datagramReceived(b"\x40" + rtp()[1:], NAT)
        self.assertFalse(session.latched)
        self.assertEqual(self.received, [])
        self.assertEqual(session.packets_dropped, 2)

    def test_short_datagram_from_peer_dropped(self):
        """
        A datagram shorter than an RTP header from the latched peer is dropped.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.datagramReceived(rtp(), NAT)
        session.datagramReceived(b"\x80\x00", NAT)
        self.assertEqual(len(self.received), 1)
        self.assertEqual(session.packets_dropped, 1)


class PacketPathTests(SessionTestMixin, SynchronousTestCase):
    """
    Receive and send paths, counters and hold.
    """

    def test_callback_gets_datagram_itself(self):
        """
        The bridge's callback receives the received bytes object, unchanged.
        """
        session = self.make()
        session.set_remote(*PEER)
        data = rtp()
        session.datagramReceived(data, PEER)
        self.assertIs(self.received[0], data)
        self.assertEqual((session.packets_received, session.octets_received), (1, len(data)))

    def test_send_rewrites_onto_our_stream(self):
        """
        send_packet stamps our SSRC and continuous sequence numbers and
        counts payload octets.
        """
        session = self.make()
        session.set_remote(*PEER)
        for seq in (100, 101):
            session.send_packet(bytearray(rtp(seq=seq, ssrc=0x1111)))
        headers = [peek_header(d) for d, _ in self.rtp_port(session).written]
        self.assertEqual({h.ssrc for h in headers}, {session.ssrc})
        self.assertEqual(headers[1].sequence_number, (headers[0].sequence_number + 1) & 0xFFFF)
        self.assertEqual((session.packets_sent, session.octets_sent), (2, 320))

    def test_no_remote_no_send(self):
        """
        Without a remote address nothing is sent.
        """
        session = self.make()
        session.send_packet(bytearray(rtp()))
        self.assertEqual(self.rtp_port(session).written, [])

    def test_hold_and_resume(self):
        """
        On hold nothing is sent and received media is not delivered; after
        resume both flow again, with no sequence gap in what we send.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.send_packet(bytearray(rtp(seq=1)))
        session.hold()
        session.send_packet(bytearray(rtp(seq=2)))
        session.datagramReceived(rtp(seq=2), PEER)
        self.assertEqual(len(self.rtp_port(session).written), 1)
        self.assertEqual(self.received, [])
        session.resume()
        session.send_packet(bytearray(rtp(seq=3)))
        session.datagramReceived(rtp(seq=3), PEER)
        written = [peek_header(d).sequence_number for d, _ in self.rtp_port(session).written]
        self.assertEqual(written[1], (written[0] + 1) & 0xFFFF)
        self.assertEqual(len(self.received), 1)

    def test_send_payload(self):
        """
        send_payload builds packets one timestamp step apart.
        """
        session = self.make(clock_rate=8000, packet_interval=0.02)
        session.set_remote(*PEER)
        session.send_payload(b"a" * 160, 0, marker=True)
        session.send_payload(b"b" * 160, 0)
        first, second = (peek_header(d) for d, _ in self.rtp_port(session).written)
        self.assertTrue(first.marker)
        self.assertEqual((second.timestamp - first.timestamp) & 0xFFFFFFFF, 160)
        self.assertEqual(second.sequence_number, (first.sequence_number + 1) & 0xFFFF)


class DirectSendTests(SynchronousTestCase):
    """
    Datagrams to the latched source skip Port.write's address checks and go
    straight to the socket; everything else keeps Port.write.
    """

    def make(self):
        reactor = FakeUDPReactor(sockets=True)
        session = RTPSession(reactor, "203.0.113.1", PortPool(31000, 31009),
                             rng=random.Random(4))
        session.start()
        self.addCleanup(session.stop)
        session.set_remote(*PEER)
        return session, reactor.bound[session.local_address[1]]

    def test_latched_source_through_socket(self):
        """
        Once latched, relayed packets and locally produced ones reach the
        peer through the socket's sendto, to the address recvfrom gave.
        """
        session, port = self.make()
        source = (PEER[0], PEER[1])
        session.datagramReceived(rtp(), source)
        session.send_packet(bytearray(rtp(seq=7)))
        session.send_payload(b"\xff" * 160, 0)
        self.assertEqual([addr for _, addr in port.socket.sent], [source, source])
        self.assertIs(port.socket.sent[0][1], session._source_addr)
        self.assertEqual(port.written, [])
        self.assertEqual(session.packets_sent, 2)

    def test_unlatched_through_port_write(self):
        """
        Before latching, packets go to the SDP address through Port.write,
        which validates it.
        """
        session, port = self.make()
        session.send_packet(bytearray(rtp()))
        self.assertEqual(port.socket.sent, [])
        self.assertEqual([addr for _, addr in port.written], [PEER])

    def test_socket_error_falls_back(self):
        """
        A socket error on the direct path hands the datagram to Port.write,
        which knows which errors to ignore.
        """
        session, port = self.make()
        session.datagramReceived(rtp(), PEER)
        port.socket.error = ConnectionRefusedError()
        session.send_packet(bytearray(rtp(seq=9)))
        self.assertEqual(len(port.written), 1)
        self.assertEqual(session.packets_sent, 1)


class RTCPTests(SessionTestMixin, SynchronousTestCase):
    """
    RTCP reports from the leg's one timer (RFC 3550 section 6).
    """

    def reports(self, session):
        return [
            (rtcp.parse_compound(d), a) for d, a in self.rtcp_port(session).written
        ]

    def test_receiver_report_then_sender_report(self):
        """
        With nothing sent the report is an RR with a block for the peer; once
        media went out it is an SR carrying our counts; each is followed by
        SDES CNAME and goes to RTP port + 1.
        """
        session = self.make(rtcp_interval=5.0)
        session.set_remote(*PEER)
        for seq in range(10, 20):
            session.datagramReceived(rtp(seq=seq), PEER)
        self.reactor.advance(7.5)
        [(packets, addr)] = self.reports(session)
        self.assertEqual(addr, (PEER[0], PEER[1] + 1))
        self.assertEqual([p.packet_type for p in packets], [rtcp.RTCP_RR, rtcp.RTCP_SDES])
        self.assertEqual(packets[0].reports[0].ssrc, 0xDEAD)
        self.assertEqual(packets[0].reports[0].highest_sequence, 19)
        session.send_packet(bytearray(rtp()))
        self.reactor.advance(7.5)
        sr = self.reports(session)[-1][0][0]
        self.assertEqual(sr.packet_type, rtcp.RTCP_SR)
        self.assertEqual(sr.ssrc, session.ssrc)

    def test_interval_randomized(self):
        """
        Reports come every 0.5-1.5 times the interval, never per packet.
        """
        session = self.make(rtcp_interval=5.0)
        session.set_remote(*PEER)
        times = []
        for step in range(600):
            self.reactor.advance(0.1)
            if len(self.rtcp_port(session).written) > len(times):
                times.append(self.reactor.seconds())
        gaps = [b - a for a, b in zip([0.0] + times, times)]
        self.assertGreater(len(times), 7)
        for gap in gaps:
            self.assertTrue(2.5 - 0.11 <= gap <= 7.5 + 0.11, gaps)

    def test_one_timer_per_leg(self):
        """
        A running leg with a watchdog has exactly one pending timer.
        """
        session = self.make()
        session.watch_activity(10)
        session.set_remote(*PEER)
        for seq in range(50):
            session.datagramReceived(rtp(seq=seq), PEER)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)

    def test_incoming_sr_echoed(self):
        """
        An SR from the peer reaches rtcp_received and its NTP middle bits
        come back as LSR in our next report.
        """
        session = self.make()
        session.set_remote(*PEER)
        seen = []
        session.rtcp_received = seen.append
        session.datagramReceived(rtp(), PEER)
        sr = rtcp.build_sr(0xDEAD, 0x1111222233334444, 0, 1, 160)
        self.reactor.advance(1)
        session._rtcp_protocol.datagramReceived(sr, (PEER[0], PEER[1] + 1))
        self.assertEqual(seen[0][0].packet_type, rtcp.RTCP_SR)
        self.reactor.advance(10)
        block = self.reports(session)[-1][0][0].reports[0]
        self.assertEqual(block.lsr, 0x22223333)

    def test_rtcp_latching(self):
        """
        RTCP is sent back to where the peer's RTCP comes from, latched once.
        """
        session = self.make()
        session.set_remote(*PEER)
        source = ("198.51.100.7", 61001)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(1), source)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(1), ("203.0.113.9", 7))
        self.assertEqual(session.rtcp_packets_received, 1)
        self.reactor.advance(10)
        self.assertEqual(self.reports(session)[-1][1], source)

    def test_rtcp_mux(self):
        """
        With rtcp-mux, RTCP arriving on the RTP port is demultiplexed by its
        type (RFC 5761 section 4) and reports go out on the RTP port.
        """
        session = self.make(rtcp_mux=True)
        session.set_remote(*PEER)
        seen = []
        session.rtcp_received = seen.append
        session.datagramReceived(rtp(), PEER)
        session.datagramReceived(rtcp.build_rr(0xDEAD), PEER)
        self.assertEqual(len(seen), 1)
        self.assertEqual(len(self.received), 1)
        self.reactor.advance(10)
        data, addr = self.rtp_port(session).written[-1]
        self.assertEqual(addr, PEER)
        self.assertEqual(rtcp.parse_compound(data)[0].packet_type, rtcp.RTCP_RR)


class WatchdogTests(SessionTestMixin, SynchronousTestCase):
    """
    The RTP inactivity watchdog ("Failed by RTP activity").
    """

    def setUp(self):
        self.session = self.make()
        self.session.set_remote(*PEER)
        self.lost = []
        self.session.activity_lost = self.lost.append
        self.seq = 0

    def flow(self, seconds):
        for _ in range(int(seconds / 0.02)):
            self.seq += 1
            self.session.datagramReceived(rtp(seq=self.seq), PEER)
            self.reactor.advance(0.02)

    def test_fires_once_after_timeout(self):
        """
        Silence for the timeout calls activity_lost once, within a fifth of
        the timeout after it.
        """
        self.session.watch_activity(10)
        self.flow(3)
        silent_from = self.reactor.seconds()
        while not self.lost and self.reactor.seconds() < 100:
            self.reactor.advance(0.1)
        self.assertEqual(self.lost, [self.session])
        waited = self.reactor.seconds() - silent_from
        self.assertTrue(10 <= waited <= 12.1, waited)
        self.reactor.advance(60)
        self.assertEqual(len(self.lost), 1)

    def test_flowing_media_never_fires(self):
        """
        Continuous media keeps the watchdog quiet.
        """
        self.session.watch_activity(1)
        self.flow(10)
        self.assertEqual(self.lost, [])

    def test_rearmed_after_media_returns(self):
        """
        After media comes back the watchdog can fire again.
        """
        self.session.watch_activity(2)
        self.reactor.pump([0.1] * 30)
        self.assertEqual(len(self.lost), 1)
        self.flow(1)
        self.reactor.pump([0.1] * 30)
        self.assertEqual(len(self.lost), 2)

    def test_paused_on_hold(self):
        """
        No loss is reported while on hold, and counting restarts at resume.
        """
        self.session.watch_activity(2)
        self.session.hold()
        self.reactor.advance(10)
        self.assertEqual(self.lost, [])
        self.session.resume()
        self.reactor.advance(1.5)
        self.assertEqual(self.lost, [])
        self.reactor.advance(1)
        self.assertEqual(len(self.lost), 1)

    def test_disarm(self):
        """
        watch_activity(None) stops watching.
        """
        self.session.watch_activity(2)
        self.session.watch_activity(None)
        self.reactor.advance(10)
        self.assertEqual(self.lost, [])


class TelephoneEventTests(SessionTestMixin, SynchronousTestCase):
    """
    RFC 4733 digits in both directions.
    """

    def test_send_digit(self):
        """
        A 100 ms digit goes out at 20 ms pacing as 4 updates and 3 end
        packets with one timestamp, marker first, in our sequence; relayed
        audio during the event is held back without a sequence gap.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.set_telephone_event(101)
        session.send_packet(bytearray(rtp(seq=1)))
        session.send_digit("5", duration=0.1)
        for seq in range(2, 12):
            self.reactor.advance(0.02)
            session.send_packet(bytearray(rtp(seq=seq)))
        written = [d for d, _ in self.rtp_port(session).written]
        headers = [peek_header(d) for d in written]
        events = [(h, decode_telephone_event(d[12:])) for h, d in zip(headers, written)
                  if h.payload_type == 101]
        self.assertEqual(len(events), 7)
        self.assertEqual([h.marker for h, _ in events], [True] + [False] * 6)
        self.assertEqual(len({h.timestamp for h, _ in events}), 1)
        self.assertEqual([e.end for _, e in events], [False] * 4 + [True] * 3)
        self.assertEqual({e.event for _, e in events}, {5})
        seqs = [h.sequence_number for h in headers]
        self.assertEqual(seqs, [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))])
        self.assertEqual(headers[-1].payload_type, 0)

    def test_digits_queue(self):
        """
        Digits sent back to back go out one event after another.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.set_telephone_event(101)
        for digit in "12#":
            session.send_digit(digit, duration=0.06)
        self.reactor.pump([0.02] * 40)
        events = [decode_telephone_event(d[12:]) for d, _ in self.rtp_port(session).written]
        starts = [e.event for e in events if not e.end and e.duration == 160]
        self.assertEqual(starts, [1, 2, 11])
        self.assertEqual(self.reactor.getDelayedCalls()[0].func, session._tick)

    def test_send_digit_needs_negotiation(self):
        """
        Without a negotiated telephone-event type, send_digit refuses.
        """
        session = self.make()
        self.assertRaises(ValueError, session.send_digit, "1")
        session.set_telephone_event(101)
        self.assertRaises(ValueError, session.send_digit, "Z")

    def test_receive_digit_once(self):
        """
        An event's packets, end retransmissions included, report the digit
        once, and still reach the bridge.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.set_telephone_event(101)
        digits = []
        session.digit_received = digits.append
        sender = TelephoneEventSender()
        sender.start("9", 800, 4000)
        seq = 0
        while (p := sender.next_packet()) is not None:
            seq += 1
            session.datagramReceived(build_rtp(101, seq, p.timestamp, 7, p.payload, p.marker), PEER)
        self.assertEqual(digits, ["9"])
        self.assertEqual(len(self.received), 7)


class DirectionTests(SessionTestMixin, SynchronousTestCase):
    """
    Each half of the stream paused on its own (RFC 3264 sendonly/recvonly),
    and what the bridge reads from the leg.
    """

    def test_sendonly(self):
        """
        Sending but not receiving: what we send goes out, received media is
        not delivered and the watchdog pauses.
        """
        session = self.make()
        session.set_remote(*PEER)
        lost = []
        session.activity_lost = lost.append
        session.watch_activity(1.0)
        session.set_direction(True, False)
        session.send_packet(bytearray(rtp(seq=1)))
        session.datagramReceived(rtp(seq=1), PEER)
        self.reactor.pump([0.1] * 30)
        self.assertEqual(len(self.rtp_port(session).written), 1)
        self.assertEqual((self.received, lost), ([], []))
        self.assertFalse(session.on_hold)

    def test_recvonly(self):
        """
        Receiving but not sending: received media is delivered, nothing goes
        out (sequence kept gap-free for later).
        """
        session = self.make()
        session.set_remote(*PEER)
        session.set_direction(False, True)
        session.send_packet(bytearray(rtp(seq=1)))
        session.send_payload(b"x" * 160, 0)
        session.datagramReceived(rtp(seq=1), PEER)
        self.assertEqual(self.rtp_port(session).written, [])
        self.assertEqual(len(self.received), 1)

    def test_source_latched_callback(self):
        """
        source_latched is called once, with the peer's address, when the
        first valid packet latches the session.
        """
        session = self.make()
        session.set_remote(*PEER)
        latched = []
        session.source_latched = latched.append
        session.datagramReceived(rtp(seq=1), PEER)
        session.datagramReceived(rtp(seq=2), PEER)
        self.assertEqual(latched, [PEER])
        self.assertEqual(session.remote_ssrc, 0xDEAD)

    def test_send_rtcp(self):
        """
        send_rtcp writes a compound packet to the peer's RTCP address.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.send_rtcp(rtcp.build_pli(session.ssrc, 5))
        [(data, addr)] = self.rtcp_port(session).written
        self.assertEqual(addr, (PEER[0], PEER[1] + 1))
        self.assertTrue(rtcp.is_keyframe_request(rtcp.parse_compound(data)))

    def test_telephone_event_receive_payload_type(self):
        """
        Received digits are recognised by the receive payload type when the
        peer numbered telephone-event differently from our sending type.
        """
        session = self.make()
        session.set_remote(*PEER)
        session.set_telephone_event(96, 8000, receive_payload_type=101)
        digits = []
        session.digit_received = digits.append
        session.datagramReceived(rtp(seq=1, pt=96, payload=bytes([1, 0x8A, 0, 160])), PEER)
        session.datagramReceived(rtp(seq=2, pt=101, ts=320, payload=bytes([2, 0x8A, 0, 160])), PEER)
        self.assertEqual(digits, ["2"])


# Global addresses (the fake reactor sends nothing anywhere): with them the
# SDP address is trusted as it is, no NAT suspected.
PHONE = ("1.2.3.4", 4000)
ATTACKER = ("5.6.7.8", 4000)


class SourcePolicyTests(SynchronousTestCase):
    """
    Which hosts a leg learns media from (L{wcs_twisted.media.rtp_source}).
    """

    def test_nat_suspected(self):
        """
        Only a global SDP address, or loopback while we listen on loopback, is
        taken as where the packets come from; private, shared (CGNAT),
        link-local, unspecified addresses and names may hide a NAT.
        """
        for host in ("1.2.3.4", "2001:4860::1", "::ffff:1.2.3.4"):
            self.assertFalse(nat_suspected(host, "0.0.0.0"), host)
        self.assertFalse(nat_suspected("127.0.0.1", "127.0.0.1"))
        for host in ("10.1.2.3", "192.168.1.5", "100.64.0.9", "169.254.1.1", "fd00::5",
                     "0.0.0.0", "phone.example.com"):
            self.assertTrue(nat_suspected(host, "0.0.0.0"), host)
        self.assertTrue(nat_suspected("127.0.0.1", "10.0.0.1"))

    def test_expected_hosts(self):
        """
        The SDP host; plus the signalling source when it differs (NAT); any
        host (None) when NAT is suspected and no signalling source is known.
        """
        self.assertEqual(expected_hosts("1.2.3.4", None, "0.0.0.0"), {"1.2.3.4"})
        self.assertEqual(expected_hosts("1.2.3.4", "1.2.3.4", "0.0.0.0"), {"1.2.3.4"})
        self.assertEqual(expected_hosts("192.168.1.5", "1.2.3.4", "0.0.0.0"),
                         {"192.168.1.5", "1.2.3.4"})
        self.assertEqual(expected_hosts("1.2.3.4", "5.6.7.9", "0.0.0.0"),
                         {"1.2.3.4", "5.6.7.9"})
        self.assertIsNone(expected_hosts("192.168.1.5", None, "0.0.0.0"))
        self.assertEqual(expected_hosts("::ffff:1.2.3.4", None, "0.0.0.0"), {"1.2.3.4"})


class SourceLearningTests(SessionTestMixin, SynchronousTestCase):
    """
    The source is learnt only from the expected peer, within a window after
    its first packet, then locked (the CVE-2017-14099 "RTP bleed" set-up).
    """

    def test_flood_from_foreign_host_never_latches(self):
        """
        A flood from another host before and after the peer's first packet
        is refused and counted; the leg latches onto the peer and keeps
        sending to it, and only the peer's media reaches the bridge.
        """
        session = self.make()
        session.set_remote(*PHONE)
        for seq in range(100):
            session.datagramReceived(rtp(seq=seq, ssrc=0xBAD), ATTACKER)
        self.assertFalse(session.latched)
        self.assertEqual(session.remote_address, PHONE)
        session.datagramReceived(rtp(seq=1), PHONE)
        for seq in range(100, 200):
            session.datagramReceived(rtp(seq=seq, ssrc=0xBAD), (ATTACKER[0], 4000 + seq))
            self.reactor.advance(0.05)
        session.send_packet(bytearray(rtp()))
        self.assertEqual(session.remote_address, PHONE)
        self.assertEqual({a for _, a in self.rtp_port(session).written}, {PHONE})
        self.assertEqual([peek_header(d).ssrc for d in self.received], [0xDEAD])
        self.assertEqual((session.packets_refused, session.packets_dropped), (200, 200))

    def test_nat_learnt_from_signalling_source(self):
        """
        A private SDP address with the signalling from a public host: the
        NAT's public side (any port) is learnt, the foreign host is not.
        """
        session = self.make(signalling_source=PHONE[0])
        session.set_remote("192.168.1.5", 4000)
        session.datagramReceived(rtp(seq=1, ssrc=0xBAD), ATTACKER)
        session.datagramReceived(rtp(seq=1), (PHONE[0], 61000))
        self.assertEqual(session.remote_address, (PHONE[0], 61000))
        self.assertEqual(session.expected_hosts, {"192.168.1.5", PHONE[0]})
        self.assertEqual((len(self.received), session.packets_refused), (1, 1))

    def test_signalling_source_with_the_sdp(self):
        """
        set_remote takes the signalling source of the message carrying the
        SDP; a later set_remote without one keeps it.
        """
        session = self.make()
        session.set_remote("10.0.0.7", 4000, signalling_source=PHONE[0])
        session.set_remote("10.0.0.7", 4000)
        session.datagramReceived(rtp(), (PHONE[0], 5555))
        self.assertTrue(session.latched)

    def test_private_sdp_without_signalling_source_learns_from_any(self):
        """
        NAT suspected but the signalling source unknown: nothing to check
        against, so the first source latches (and then holds).
        """
        session = self.make()
        session.set_remote("192.168.1.5", 4000)
        self.assertIsNone(session.expected_hosts)
        session.datagramReceived(rtp(seq=1), ATTACKER)
        session.datagramReceived(rtp(seq=2), PHONE)
        self.assertEqual(session.remote_address, ATTACKER)
        self.assertEqual(session.packets_refused, 1)

    def test_stream_moves_within_window_then_locks(self):
        """
        Within the learning window after the first packet, the peer's stream
        (same SSRC) may move to another port of an expected host (a NAT that
        rebinds early); another stream from that host may not.  After the
        window the source is locked: even the same stream on another port is
        refused.  source_latched is reported once.
        """
        session = self.make(learning_window=2.0)
        session.set_remote(*PHONE)
        latched = []
        session.source_latched = latched.append
        session.datagramReceived(rtp(seq=1), PHONE)
        session.datagramReceived(rtp(seq=9, ssrc=0xBAD), (PHONE[0], 4002))
        self.reactor.advance(1.9)
        moved = (PHONE[0], 4010)
        session.datagramReceived(rtp(seq=2), moved)
        self.assertEqual(session.remote_address, moved)
        self.reactor.advance(0.2)
        session.datagramReceived(rtp(seq=3), (PHONE[0], 4020))
        session.datagramReceived(rtp(seq=4), PHONE)
        self.assertEqual(session.remote_address, moved)
        self.assertEqual((latched, len(self.received), session.packets_refused),
                         ([PHONE], 2, 3))

    def test_no_moves_when_learning_from_any_host(self):
        """
        Learning from any host (NAT suspected, no signalling source), the
        first source holds even within the window.
        """
        session = self.make()
        session.set_remote("192.168.1.5", 4000)
        session.datagramReceived(rtp(seq=1), PHONE)
        session.datagramReceived(rtp(seq=2), (PHONE[0], 4010))
        self.assertEqual(session.remote_address, PHONE)

    def test_window_starts_with_media(self):
        """
        The window opens at the peer's first packet, not at the SDP: a peer
        that starts sending late (a call ringing for a minute) still latches.
        """
        session = self.make(learning_window=1.0)
        session.set_remote(*PHONE)
        self.reactor.advance(60)
        session.datagramReceived(rtp(), PHONE)
        self.assertTrue(session.latched)

    def test_new_sdp_address_learns_anew(self):
        """
        A locked leg given a new SDP address (a re-INVITE moving the media)
        learns from the new host only; the same address again keeps the lock.
        """
        session = self.make(learning_window=1.0)
        session.set_remote(*PHONE)
        session.datagramReceived(rtp(seq=1), PHONE)
        self.reactor.advance(5)
        session.set_remote(*PHONE)
        session.datagramReceived(rtp(seq=2), (PHONE[0], 4444))
        self.assertEqual(session.remote_address, PHONE)
        other = ("9.9.9.9", 6000)
        session.set_remote(*other)
        session.datagramReceived(rtp(seq=3), PHONE)
        self.assertFalse(session.latched)
        session.datagramReceived(rtp(seq=4), other)
        self.assertEqual(session.remote_address, other)

    def test_rtcp_learnt_from_expected_peer(self):
        """
        RTCP from a foreign host is refused and never becomes where reports
        go; the peer's first RTCP source is learnt and held.
        """
        session = self.make()
        session.set_remote(*PHONE)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(7), ATTACKER)
        session.datagramReceived(rtp(), PHONE)
        rtcp_source = (PHONE[0], 4001)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(1), rtcp_source)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(1), (PHONE[0], 4003))
        self.reactor.advance(10)
        self.assertEqual({a for _, a in self.rtcp_port(session).written}, {rtcp_source})
        self.assertEqual((session.rtcp_packets_received, session.packets_refused), (1, 2))

    def test_rtcp_mux_from_foreign_host_refused(self):
        """
        With rtcp-mux, RTCP arriving on the RTP port from a foreign host is
        refused like its RTP.
        """
        session = self.make(rtcp_mux=True)
        session.set_remote(*PHONE)
        seen = []
        session.rtcp_received = seen.append
        session.datagramReceived(rtcp.build_rr(0xBAD), ATTACKER)
        session.datagramReceived(rtp(), PHONE)
        session.datagramReceived(rtcp.build_rr(0xDEAD), PHONE)
        self.assertEqual((len(seen), session.packets_refused), (1, 1))

    def test_rtcp_mux_moves_with_the_stream(self):
        """
        With rtcp-mux, the peer's stream moving within the learning window takes its RTCP
        along: muxed RTCP from the new port is taken, not refused as foreign.
        """
        session = self.make(rtcp_mux=True, learning_window=2.0)
        session.set_remote(*PHONE)
        seen = []
        session.rtcp_received = seen.append
        session.datagramReceived(rtp(seq=1), PHONE)
        session.datagramReceived(rtcp.build_rr(0xDEAD), PHONE)
        moved = (PHONE[0], 4010)
        session.datagramReceived(rtp(seq=2), moved)
        session.datagramReceived(rtcp.build_rr(0xDEAD), moved)
        self.assertEqual((len(seen), session.packets_refused), (2, 0))

    def test_loopback_peer_on_loopback(self):
        """
        Listening on loopback, a loopback SDP address is trusted as it is:
        another loopback address (all of 127/8 reaches us) is refused.
        """
        self.reactor = FakeUDPReactor()
        session = RTPSession(self.reactor, "127.0.0.1", PortPool(31000, 31009))
        session.start()
        self.addCleanup(session.stop)
        session.set_remote("127.0.0.1", 4000)
        session.datagramReceived(rtp(), ("127.0.0.2", 4000))
        session.datagramReceived(rtp(), ("127.0.0.1", 4000))
        self.assertEqual((session.remote_address, session.packets_refused),
                         (("127.0.0.1", 4000), 1))

    def test_refusals_logged_at_a_bounded_rate(self):
        """
        A flood gives one warning per interval, with the count since the
        last one and the latest source as format fields, not one per packet.
        """
        session = self.make()
        events = []
        session.log = Logger(observer=events.append)
        session.set_remote(*PHONE)
        for seq in range(500):
            session.datagramReceived(rtp(seq=seq), (ATTACKER[0], 4000 + seq))
            self.reactor.advance(0.05)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual([e["count"] for e in warnings], [1, 200, 200])
        self.assertEqual(warnings[-1]["source"], (ATTACKER[0], 4400))
        self.assertIn("5.6.7.8", formatEvent(warnings[0]))
        self.assertEqual(session.packets_refused, 500)
