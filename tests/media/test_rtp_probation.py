"""
Tests for probation learning (L{wcs_twisted.media.rtp_source.Probation} and its use by
L{wcs_twisted.media.rtp.RTPSession}): a phone behind a home NAT whose signalling comes through
a proxy sends media from neither expected host; it is learnt once it proves to carry one
stream, while the RTP-bleed defence still holds.  Fake UDP reactor and a L{Clock}.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from tests.media.test_rtp import SessionTestMixin, rtp
from wcs_twisted.media import rtcp
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import build_rtp, peek_header
from wcs_twisted.media.sdes import SRTPContext
from wcs_twisted.media.rtp_source import PROBATION_PACKETS, Probation

#: The phone's private SDP address, its proxy (the signalling source), the
#: home NAT its media leaves by, and an attacker.
PRIVATE_SDP = ("192.168.2.20", 4000)
PROXY = "192.0.2.10"
HOME_NAT = ("198.51.100.2", 40000)
ATTACKER = ("5.6.7.8", 4000)


class ProbationTests(SynchronousTestCase):
    """
    The rule on its own: N consecutive in-sequence packets of one SSRC from one source, within
    the window.
    """

    def test_run_of_one_stream_passes(self):
        """
        The fourth in-sequence packet of one SSRC passes, not the third; sequence numbers
        wrap.
        """
        probation = Probation(packets=4, window=3.0)
        results = [probation.passes(HOME_NAT, 7, seq & 0xFFFF, 0.02 * i)
                   for i, seq in enumerate(range(65534, 65538))]
        self.assertEqual(results, [False, False, False, True])

    def test_gap_ssrc_change_or_slowness_restarts(self):
        """
        A gap in the sequence, another SSRC or a run slower than the window starts the count
        again from that packet.
        """
        probation = Probation(packets=3, window=1.0)
        self.assertFalse(probation.passes(HOME_NAT, 7, 1, 0.0))
        self.assertFalse(probation.passes(HOME_NAT, 7, 3, 0.1))   # gap: restarts at 3
        self.assertFalse(probation.passes(HOME_NAT, 8, 4, 0.2))   # other SSRC: restarts
        self.assertFalse(probation.passes(HOME_NAT, 8, 5, 0.3))
        self.assertFalse(probation.passes(HOME_NAT, 8, 6, 1.4))   # first of the run too old
        self.assertFalse(probation.passes(HOME_NAT, 8, 7, 1.5))
        self.assertTrue(probation.passes(HOME_NAT, 8, 8, 1.6))

    def test_sources_counted_apart(self):
        """
        Datagrams from other sources interleaved with the phone's neither pass nor reset the
        phone's run.
        """
        probation = Probation(packets=4, window=3.0)
        rng = random.Random(1)
        passed = []
        for i in range(4):
            for _ in range(50):
                attacker = (ATTACKER[0], rng.randrange(1024, 65536))
                passed.append(probation.passes(attacker, rng.getrandbits(32),
                                               rng.getrandbits(16), 0.02 * i))
            passed.append(probation.passes(HOME_NAT, 7, 100 + i, 0.02 * i))
        self.assertEqual([i for i, ok in enumerate(passed) if ok], [len(passed) - 1])

    def test_candidates_bounded(self):
        """
        At most C{capacity} hosts are followed; a new one evicts the oldest.  A run must come
        from one port of its host.
        """
        probation = Probation(packets=2, window=3.0, capacity=2)
        probation.passes(("5.6.7.1", 9), 1, 1, 0.0)
        probation.passes(("5.6.7.2", 9), 1, 1, 0.0)
        probation.passes(("5.6.7.3", 9), 1, 1, 0.0)
        self.assertFalse(probation.passes(("5.6.7.1", 9), 1, 2, 0.1))
        self.assertFalse(probation.passes(("5.6.7.3", 10), 1, 2, 0.1))
        self.assertTrue(probation.passes(("5.6.7.3", 10), 1, 3, 0.1))


class ProbationLearningTests(SessionTestMixin, SynchronousTestCase):
    """
    An RTP leg whose peer's SDP is private and whose signalling came through a proxy.
    """

    def natted_phone(self, **kw):
        session = self.make(signalling_source=PROXY, **kw)
        session.set_remote(*PRIVATE_SDP)
        return session

    def send_run(self, session, source, count, ssrc=0xDEAD, first=1, interval=0.02):
        for seq in range(first, first + count):
            session.datagramReceived(rtp(seq=seq, ssrc=ssrc), source)
            self.reactor.advance(interval)

    def test_phone_behind_home_nat_is_learnt_after_probation(self):
        """
        The phone's first three packets from its home NAT are refused, the fourth latches the
        leg: media goes back to the NAT from then on, and what follows reaches the bridge.
        """
        session = self.natted_phone()
        latched = []
        session.source_latched = latched.append
        self.send_run(session, HOME_NAT, PROBATION_PACKETS + 2)
        self.assertEqual(session.remote_address, HOME_NAT)
        self.assertEqual(latched, [HOME_NAT])
        self.assertEqual((len(self.received), session.packets_refused),
                         (3, PROBATION_PACKETS - 1))
        session.send_packet(bytearray(rtp()))
        self.assertEqual({a for _, a in self.rtp_port(session).written}, {HOME_NAT})

    def test_random_burst_never_wins(self):
        """
        An attacker racing the phone with random RTP (random SSRC and sequence from many
        ports, 50 datagrams per phone packet) never latches: the phone is learnt, and only its
        stream reaches the bridge.
        """
        session = self.natted_phone()
        rng = random.Random(7)
        for seq in range(1, 11):
            for _ in range(50):
                session.datagramReceived(
                    rtp(seq=rng.getrandbits(16), ssrc=rng.getrandbits(32)),
                    (ATTACKER[0], rng.randrange(1024, 65536)))
            session.datagramReceived(rtp(seq=seq), HOME_NAT)
            self.reactor.advance(0.02)
        self.assertEqual(session.remote_address, HOME_NAT)
        self.assertEqual({peek_header(d).ssrc for d in self.received}, {0xDEAD})

    def test_no_probation_once_learnt(self):
        """
        Once a source is learnt (here the phone, on probation) a well-formed stream from any
        other source is refused, in the window and after it.
        """
        session = self.natted_phone(learning_window=2.0)
        self.send_run(session, HOME_NAT, PROBATION_PACKETS)
        self.send_run(session, ATTACKER, 20, ssrc=0xBAD)
        self.reactor.advance(5)
        self.send_run(session, ATTACKER, 20, ssrc=0xBAD, first=100)
        self.assertEqual(session.remote_address, HOME_NAT)

    def test_learnt_stream_moves_port_within_window(self):
        """
        The stream learnt on probation may move to another port of its host with the same
        SSRC within the window (a NAT rebinding); another SSRC there may not, nor anything
        after the window.
        """
        session = self.natted_phone(learning_window=2.0)
        self.send_run(session, HOME_NAT, PROBATION_PACKETS)
        rebound = (HOME_NAT[0], HOME_NAT[1] + 2)
        session.datagramReceived(rtp(seq=50, ssrc=0xBAD), rebound)
        self.assertEqual(session.remote_address, HOME_NAT)
        session.datagramReceived(rtp(seq=5), rebound)
        self.assertEqual(session.remote_address, rebound)
        self.reactor.advance(3)
        session.datagramReceived(rtp(seq=6), HOME_NAT)
        self.assertEqual(session.remote_address, rebound)

    def test_expected_host_overrules_probation_within_window(self):
        """
        A source learnt on probation gives way to an expected host (the SDP's or the
        signalling's) within the window; after the window it is locked.
        """
        session = self.natted_phone(learning_window=2.0)
        self.send_run(session, HOME_NAT, PROBATION_PACKETS)
        session.datagramReceived(rtp(seq=1, ssrc=0xBEEF), (PROXY, 7000))
        self.assertEqual(session.remote_address, (PROXY, 7000))
        other = self.natted_phone(learning_window=2.0)
        self.send_run(other, HOME_NAT, PROBATION_PACKETS)
        self.reactor.advance(3)
        other.datagramReceived(rtp(seq=1, ssrc=0xBEEF), (PROXY, 7000))
        self.assertEqual(other.remote_address, HOME_NAT)

    def test_probation_off(self):
        """
        rtp_probation_packets=0: a source off the expected hosts is never learnt.
        """
        session = self.natted_phone(probation_packets=0)
        self.send_run(session, HOME_NAT, 50)
        self.assertFalse(session.latched)
        self.assertEqual(session.packets_refused, 50)

    def test_public_sdp_has_no_probation(self):
        """
        The RTP-bleed defence as before when the SDP address is public: a well-formed stream
        from a foreign host is refused however long it runs.
        """
        session = self.make(signalling_source=PROXY)
        session.set_remote("1.2.3.4", 4000)
        self.send_run(session, ATTACKER, 50)
        self.assertFalse(session.latched)
        self.assertEqual(session.packets_refused, 50)

    def test_rtcp_from_the_learnt_host(self):
        """
        RTCP from the host learnt on probation is taken (and where reports go); from the
        attacker it is not.
        """
        session = self.natted_phone()
        self.send_run(session, HOME_NAT, PROBATION_PACKETS)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(7), ATTACKER)
        rtcp_source = (HOME_NAT[0], HOME_NAT[1] + 1)
        session._rtcp_protocol.datagramReceived(rtcp.build_rr(1), rtcp_source)
        self.reactor.advance(10)
        self.assertEqual({a for _, a in self.rtcp_port(session).written}, {rtcp_source})
        self.assertEqual(session.rtcp_packets_received, 1)

    def test_new_sdp_address_restarts_probation(self):
        """
        A run begun before a re-INVITE that moves the SDP address does not count after it.
        """
        session = self.natted_phone()
        self.send_run(session, HOME_NAT, PROBATION_PACKETS - 1)
        session.set_remote("192.168.2.21", 4000)
        session.datagramReceived(rtp(seq=PROBATION_PACKETS), HOME_NAT)
        self.assertFalse(session.latched)


class SRTPProbationTests(SessionTestMixin, SynchronousTestCase):
    """
    With SDES-SRTP every packet is authenticated before learning: an authenticated packet from
    the home NAT needs no probation, a forged run never passes it.
    """

    def test_authenticated_packet_learnt_at_once(self):
        """
        The phone's first SRTP packet from its home NAT latches; a well-formed plain RTP run
        from an attacker (no key) never does, however long.
        """
        ours, theirs = bytes(range(30)), bytes(range(100, 130))
        suite = "AES_CM_128_HMAC_SHA1_80"
        phone = SRTPContext(suite, theirs, ours)
        session = self.make(signalling_source=PROXY)
        session.set_remote(*PRIVATE_SDP)
        session.set_srtp(SRTPContext(suite, ours, theirs))
        for seq in range(1, 20):
            session.datagramReceived(rtp(seq=seq, ssrc=0xBAD), ATTACKER)
        self.assertFalse(session.latched)
        session.datagramReceived(phone.tx.protect(build_rtp(0, 1, 160, 0xBEEF, b"\xff" * 160)),
                                 HOME_NAT)
        self.assertEqual(session.remote_address, HOME_NAT)
        self.assertEqual(session.srtp_auth_failures, 19)


class LoopbackProbationTests(SynchronousTestCase):
    """
    Listening on loopback, a loopback SDP is trusted as it is: no probation.
    """

    def test_no_probation_on_loopback(self):
        """
        A well-formed stream from another loopback address is refused, as before.
        """
        reactor = FakeUDPReactor()
        session = RTPSession(reactor, "127.0.0.1", PortPool(31000, 31009))
        session.start()
        self.addCleanup(session.stop)
        session.set_remote("127.0.0.1", 4000)
        for seq in range(10):
            session.datagramReceived(rtp(seq=seq), ("127.0.0.2", 4000))
        self.assertFalse(session.latched)
