"""
Tests for L{wcs_twisted.rest.throttle}: failed-login counting per source, driven by a Clock.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.rest.throttle import FailureThrottle, source_key


class SourceKeyTests(SynchronousTestCase):
    """
    What one limit covers.
    """

    def test_ipv4_is_itself(self):
        """
        An IPv4 address is its own source.
        """
        self.assertEqual(source_key("192.0.2.7"), "192.0.2.7")

    def test_ipv6_counts_per_64(self):
        """
        IPv6 addresses in one /64 are one source; an IPv4-mapped one is its IPv4 address.
        """
        self.assertEqual(source_key("2001:db8::1"), source_key("2001:db8::ffff:1"))
        self.assertNotEqual(source_key("2001:db8::1"), source_key("2001:db8:0:1::1"))
        self.assertEqual(source_key("::ffff:192.0.2.7"), "192.0.2.7")


class FailureThrottleTests(SynchronousTestCase):
    """
    max_failures within the window block a source for the window; success resets.
    """

    def setUp(self):
        self.clock = Clock()
        self.throttle = FailureThrottle(self.clock, max_failures=3, window=60)

    def test_blocks_after_max_failures(self):
        """
        The third failure within the window blocks for 60 s, counting down; then it is free.
        """
        self.assertEqual([self.throttle.failed("192.0.2.1") for _ in range(2)], [0, 0])
        self.assertEqual(self.throttle.retry_after("192.0.2.1"), 0)
        self.assertEqual(self.throttle.failed("192.0.2.1"), 60)
        self.assertEqual(self.throttle.retry_after("192.0.2.1"), 60)
        self.clock.advance(59.5)
        self.assertEqual(self.throttle.retry_after("192.0.2.1"), 1)
        self.clock.advance(0.5)
        self.assertEqual(self.throttle.retry_after("192.0.2.1"), 0)
        self.assertEqual(self.throttle.failed("192.0.2.1"), 0, "a fresh window after the block")

    def test_other_sources_unaffected(self):
        """
        A blocked source does not block another.
        """
        for _ in range(3):
            self.throttle.failed("192.0.2.1")
        self.assertEqual(self.throttle.retry_after("192.0.2.2"), 0)

    def test_window_expires(self):
        """
        Failures spread wider than the window never block.
        """
        for _ in range(10):
            self.assertEqual(self.throttle.failed("192.0.2.1"), 0)
            self.assertEqual(self.throttle.failed("192.0.2.1"), 0)
            self.clock.advance(60)

    def test_success_resets(self):
        """
        A right login forgets earlier failures.
        """
        self.throttle.failed("192.0.2.1")
        self.throttle.failed("192.0.2.1")
        self.throttle.succeeded("192.0.2.1")
        self.assertEqual(self.throttle.failed("192.0.2.1"), 0)
        self.assertEqual(self.throttle.failed("192.0.2.1"), 0)

    def test_zero_never_blocks(self):
        """
        max_failures=0 turns throttling off.
        """
        throttle = FailureThrottle(self.clock, max_failures=0, window=60)
        for _ in range(100):
            self.assertEqual(throttle.failed("192.0.2.1"), 0)
        self.assertEqual(len(throttle), 0)

    def test_table_is_bounded(self):
        """
        Past max_sources the least recently seen source is forgotten; stale ones go first.
        """
        throttle = FailureThrottle(self.clock, max_failures=3, window=60, max_sources=100)
        for number in range(1000):
            throttle.failed(f"10.0.{number // 256}.{number % 256}")
        self.assertEqual(len(throttle), 100)
        self.clock.advance(61)
        throttle.failed("192.0.2.1")
        self.assertEqual(len(throttle), 1)
