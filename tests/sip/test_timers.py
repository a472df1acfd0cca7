"""
Tests for L{wcs_twisted.sip.timers}.
"""

from dataclasses import FrozenInstanceError

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.timers import DEFAULT_TIMERS, TimerValues


class TimerValuesTests(SynchronousTestCase):
    """
    Tests for L{TimerValues}.
    """

    def test_defaults(self) -> None:
        """
        The base values default to T1=500 ms, T2=4 s, T4=5 s (RFC 3261 table 4).
        """
        timers = TimerValues()
        self.assertEqual((timers.t1, timers.t2, timers.t4), (0.5, 4.0, 5.0))
        self.assertEqual(DEFAULT_TIMERS, timers)

    def test_client_invite_timers(self) -> None:
        """
        Timer A starts at T1, Timer B is 64*T1 and Timer C is over 3 minutes
        (RFC 3261 17.1.1.2, 16.6).
        """
        timers = TimerValues()
        self.assertEqual(timers.timer_a, 0.5)
        self.assertEqual(timers.timer_b, 32.0)
        self.assertGreaterEqual(timers.timer_c, 180.0)

    def test_timer_d(self) -> None:
        """
        Timer D is 32 s for unreliable transports and 0 for reliable ones
        (RFC 3261 17.1.1.2).
        """
        timers = TimerValues()
        self.assertEqual(timers.timer_d(reliable=False), 32.0)
        self.assertEqual(timers.timer_d(reliable=True), 0.0)

    def test_non_invite_client_timers(self) -> None:
        """
        Timer E starts at T1, Timer F is 64*T1, Timer K is T4 unreliable and
        0 reliable (RFC 3261 17.1.2.2).
        """
        timers = TimerValues()
        self.assertEqual(timers.timer_e, 0.5)
        self.assertEqual(timers.timer_f, 32.0)
        self.assertEqual(timers.timer_k(reliable=False), 5.0)
        self.assertEqual(timers.timer_k(reliable=True), 0.0)

    def test_server_invite_timers(self) -> None:
        """
        Timer G starts at T1, Timer H is 64*T1 for every transport, Timer I is
        T4 unreliable and 0 reliable (RFC 3261 17.2.1).
        """
        timers = TimerValues()
        self.assertEqual(timers.timer_g, 0.5)
        self.assertEqual(timers.timer_h, 32.0)
        self.assertEqual(timers.timer_i(reliable=False), 5.0)
        self.assertEqual(timers.timer_i(reliable=True), 0.0)

    def test_timer_j(self) -> None:
        """
        Timer J is 64*T1 for unreliable transports and 0 for reliable ones
        (RFC 3261 17.2.2).
        """
        timers = TimerValues()
        self.assertEqual(timers.timer_j(reliable=False), 32.0)
        self.assertEqual(timers.timer_j(reliable=True), 0.0)

    def test_accepted_timers(self) -> None:
        """
        Timers L and M of the Accepted state are 64*T1 (RFC 6026 8.4, 8.7).
        """
        timers = TimerValues()
        self.assertEqual(timers.timer_l, 32.0)
        self.assertEqual(timers.timer_m, 32.0)

    def test_scaled(self) -> None:
        """
        Changing T1 scales every 64*T1 timer, while Timer D keeps its own
        value (RFC 3261 table 4).
        """
        timers = TimerValues(t1=0.1, t2=0.8, t4=1.0)
        self.assertAlmostEqual(timers.timer_b, 6.4)
        self.assertAlmostEqual(timers.timer_f, 6.4)
        self.assertAlmostEqual(timers.timer_h, 6.4)
        self.assertAlmostEqual(timers.timer_j(reliable=False), 6.4)
        self.assertEqual(timers.timer_k(reliable=False), 1.0)
        self.assertEqual(timers.timer_d(reliable=False), 32.0)

    def test_backoff_capped(self) -> None:
        """
        The capped back-off doubles the interval up to T2 (Timers E and G,
        RFC 3261 17.1.2.2, 17.2.1).
        """
        timers = TimerValues()
        intervals = [0.5]
        for _ in range(5):
            intervals.append(timers.backoff(intervals[-1]))
        self.assertEqual(intervals, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])

    def test_backoff_uncapped(self) -> None:
        """
        Timer A keeps doubling past T2 (RFC 3261 17.1.1.2).
        """
        timers = TimerValues()
        self.assertEqual(timers.backoff(4.0, capped=False), 8.0)

    def test_frozen(self) -> None:
        """
        Timer values cannot be changed once built.
        """
        timers = TimerValues()
        with self.assertRaises(FrozenInstanceError):
            timers.t1 = 1.0  # type: ignore[misc]

    def test_invalid_values(self) -> None:
        """
        Non-positive values, and T2 smaller than T1, are rejected.
        """
        self.assertRaises(ValueError, TimerValues, t1=0)
        self.assertRaises(ValueError, TimerValues, t4=-1)
        self.assertRaises(ValueError, TimerValues, t1=2.0, t2=1.0)
