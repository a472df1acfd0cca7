"""
Tests for L{wcs_twisted.media.silence.SilenceFiller} and its use by
L{wcs_twisted.media.rtp_session.RTPMediaSession}: an unfed leg sends silence at the
packet rate after a grace interval, stops as soon as something else sends, resumes
when that stops, and stops for good when the call ends.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import peek_header
from wcs_twisted.media.rtp_session import RTPMediaSession
from wcs_twisted.media.silence import WATCH_INTERVAL, SilenceFiller


class FakeLeg:
    """
    The two things the filler uses of an RTPSession.
    """

    def __init__(self):
        self.packets_sent = 0
        self.sent = []
        self.can_send = True

    def send_payload(self, payload, payload_type):
        if not self.can_send:
            return
        self.packets_sent += 1
        self.sent.append((payload, payload_type))


class SilenceFillerTests(SynchronousTestCase):
    """
    The filler's timing, on a Clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.leg = FakeLeg()
        self.filler = SilenceFiller(self.clock, self.leg)

    def test_fills_after_grace(self):
        """
        Nothing for one watch interval, then one packet every 20 ms.
        """
        self.filler.start(b"\xff" * 160, 0)
        self.clock.advance(WATCH_INTERVAL - 0.001)
        self.assertEqual(self.leg.sent, [])
        self.clock.pump([0.001] + [0.02] * 50)
        self.assertEqual(len(self.leg.sent), 51)
        self.assertEqual(self.leg.sent[0], (b"\xff" * 160, 0))
        self.assertTrue(self.filler.filling)

    def test_stops_when_fed_and_resumes(self):
        """
        Another sender stops the filling at the next tick; when it stops, silence
        comes back within two watch intervals.
        """
        self.filler.start(b"s", 0)
        self.clock.pump([WATCH_INTERVAL] + [0.02] * 5)
        filled = self.filler.filled
        for _ in range(50):  # a bridge sending 1 s of audio
            self.leg.packets_sent += 1
            self.clock.advance(0.02)
        self.assertLessEqual(self.filler.filled, filled + 1)
        self.assertFalse(self.filler.filling)
        self.clock.pump([0.02] * int(2 * WATCH_INTERVAL / 0.02 + 1))
        self.assertTrue(self.filler.filling)

    def test_on_hold_only_watches(self):
        """
        While the leg cannot send (hold), the filler only watches at 5 Hz instead of ticking
        every 20 ms; it fills again once the leg may send.
        """
        self.filler.start(b"s", 0)
        self.clock.pump([WATCH_INTERVAL] + [0.02] * 5)
        self.leg.can_send = False
        self.clock.pump([0.02] * 50)
        self.assertFalse(self.filler.filling)
        [pending] = self.clock.getDelayedCalls()
        self.assertEqual(pending.func, self.filler._check)  # the 5 Hz watch, not the 20 ms tick
        self.leg.can_send = True
        filled = self.filler.filled
        self.clock.pump([0.02] * int(2 * WATCH_INTERVAL / 0.02 + 5))
        self.assertGreater(self.filler.filled, filled)

    def test_leg_bridged_at_once_gets_no_silence(self):
        """
        A leg that is fed from the start never sends silence.
        """
        self.filler.start(b"s", 0)
        for _ in range(50):
            self.leg.packets_sent += 1
            self.clock.advance(0.02)
        self.assertEqual(self.filler.filled, 0)

    def test_stop(self):
        """
        stop() leaves no timer behind.
        """
        self.filler.start(b"s", 0)
        self.clock.pump([WATCH_INTERVAL, 0.02])
        self.filler.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.filler.running)


class SessionSilenceTests(SynchronousTestCase):
    """
    An RTP leg with negotiated audio and nothing feeding it sends silence in its codec.
    """

    def test_unfed_leg_sends_codec_silence_until_closed(self):
        """
        PCMU silence with our payload type, 50 packets a second, none after close().
        """
        reactor = FakeUDPReactor()
        session = RTPMediaSession(reactor, "127.0.0.1", "198.51.100.1",
                                  PortPool(40000, 40100)).start()
        session.create_offer(["PCMU/8000"], [], "sendrecv")
        session.set_remote_answer("\r\n".join([
            "v=0", "o=phone 1 1 IN IP4 192.0.2.10", "s=-", "c=IN IP4 192.0.2.10", "t=0 0",
            "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=sendrecv", ""]))
        reactor.pump([WATCH_INTERVAL] + [0.02] * 50)
        written = reactor.bound[session.local_address[1]].written
        self.assertGreaterEqual(len(written), 50)
        self.assertEqual({peek_header(bytes(d))[0] for d, _ in written}, {0})
        self.assertEqual({bytes(d)[12:] for d, _ in written}, {b"\xff" * 160})
        session.close()
        count = len(written)
        reactor.pump([0.02] * 20)
        self.assertEqual(len(written), count)
        self.assertFalse(session.silence.running)
