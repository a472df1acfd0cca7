"""
Tests for L{wcs_twisted.media.ports}.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media.ports import PortPool, PortPoolExhausted


class PortPoolTests(SynchronousTestCase):
    """
    Allocating RTP/RTCP port pairs from the configured range.
    """

    def test_even_rtp_odd_rtcp(self):
        """
        Every pair is an even RTP port with RTCP on the next port
        (RFC 3550 section 11), inside the range.
        """
        pool = PortPool(31001, 31010)
        pairs = [pool.allocate() for _ in range(pool.capacity)]
        self.assertEqual(sorted(r.rtp_port for r in pairs), [31002, 31004, 31006, 31008])
        for r in pairs:
            self.assertEqual(r.rtcp_port, r.rtp_port + 1)
            self.assertLessEqual(r.rtcp_port, 31010)

    def test_odd_high_bound_excludes_incomplete_pair(self):
        """
        A last even port whose RTCP port would fall outside the range is not used.
        """
        pool = PortPool(40000, 40004)
        self.assertEqual(pool.capacity, 2)

    def test_exhaustion(self):
        """
        Allocating past the range raises PortPoolExhausted naming the range.
        """
        pool = PortPool(40000, 40003)
        pool.allocate()
        pool.allocate()
        error = self.assertRaises(PortPoolExhausted, pool.allocate)
        self.assertIn("40000-40003", str(error))

    def test_release_makes_room(self):
        """
        A released pair can be allocated again.
        """
        pool = PortPool(40000, 40001)
        first = pool.allocate()
        first.release()
        self.assertEqual(pool.allocate().rtp_port, 40000)

    def test_double_release_is_harmless(self):
        """
        Releasing a reservation twice does not free the pair handed out since.
        """
        pool = PortPool(40000, 40001)
        first = pool.allocate()
        first.release()
        second = pool.allocate()
        first.release()
        pool.release(first)
        self.assertEqual(pool.in_use, 1)
        self.assertFalse(second.released)
        self.assertRaises(PortPoolExhausted, pool.allocate)

    def test_context_manager_releases_on_error(self):
        """
        Leaving a with-block, even by an exception, releases the pair.
        """
        pool = PortPool(40000, 40001)
        with self.assertRaises(ZeroDivisionError):
            with pool.allocate() as reservation:
                1 / 0
        self.assertTrue(reservation.released)
        self.assertEqual(pool.available, 1)

    def test_random_order(self):
        """
        Pairs come out in no predictable order: the first pair of a fresh
        pool varies, and successive pairs are not the next ports up (an
        attacker cannot aim at the next call's ports).
        """
        firsts = {PortPool(40000, 40999, rng=random.Random(seed)).allocate().rtp_port
                  for seed in range(20)}
        self.assertGreater(len(firsts), 10)
        pool = PortPool(40000, 40999, rng=random.Random(1))
        ports = [pool.allocate().rtp_port for _ in range(10)]
        steps = {b - a for a, b in zip(ports, ports[1:])}
        self.assertNotEqual(steps, {2})

    def test_never_hands_out_a_pair_in_use(self):
        """
        Every pair of the range is handed out exactly once while held; a
        released pair is the only one that can come out next.
        """
        pool = PortPool(40000, 40099, rng=random.Random(2))
        held = [pool.allocate() for _ in range(pool.capacity)]
        ports = [r.rtp_port for r in held]
        self.assertEqual(sorted(ports), list(range(40000, 40099, 2)))
        held[17].release()
        self.assertEqual(pool.allocate().rtp_port, ports[17])
        self.assertRaises(PortPoolExhausted, pool.allocate)

    def test_foreign_reservation(self):
        """
        A reservation cannot be released into another pool.
        """
        pool = PortPool(40000, 40003)
        other = PortPool(40000, 40003)
        self.assertRaises(ValueError, pool.release, other.allocate())

    def test_counts(self):
        """
        capacity, available and in_use follow allocation and release.
        """
        pool = PortPool(40000, 40007)
        r = pool.allocate()
        self.assertEqual((pool.capacity, pool.available, pool.in_use), (4, 3, 1))
        r.release()
        self.assertEqual((pool.available, pool.in_use), (4, 0))

    def test_invalid_ranges(self):
        """
        Empty, inverted or out-of-range bounds are refused.
        """
        for low, high in ((0, 10), (10, 5), (40000, 70000), (40001, 40002), (40000, 40000)):
            self.assertRaises(ValueError, PortPool, low, high)


class PortPoolBindTests(SynchronousTestCase):
    """
    Binding a pair while other processes hold some ports of the range.
    """

    def test_busy_pairs_skipped(self):
        """
        Pairs whose bind reports "busy" are released and the next is tried.
        """
        pool = PortPool(40000, 40005, rng=random.Random(3))
        tried = []

        def bind(reservation):
            tried.append(reservation.rtp_port)
            if reservation.rtp_port < 40004:
                raise OSError("in use")
            return "bound"

        reservation, result = pool.bind(bind)
        self.assertEqual((reservation.rtp_port, result), (40004, "bound"))
        self.assertEqual(len(tried), len(set(tried)), "a busy pair is not tried twice")
        self.assertEqual(tried[-1], 40004)
        self.assertEqual(pool.in_use, 1)
        self.assertEqual(pool.available, 2)

    def test_other_errors_release_and_propagate(self):
        """
        An error that is not "busy" releases the pair and propagates at once.
        """
        pool = PortPool(40000, 40005)

        def bind(reservation):
            raise KeyError("bug")

        self.assertRaises(KeyError, pool.bind, bind)
        self.assertEqual(pool.in_use, 0)

    def test_all_busy(self):
        """
        When every pair is busy, each is tried once, PortPoolExhausted says
        so (chained to the last busy error) and nothing is held.
        """
        pool = PortPool(40000, 40003)
        tried = []

        def bind(reservation):
            tried.append(reservation.rtp_port)
            raise OSError(reservation.rtp_port)

        error = self.assertRaises(PortPoolExhausted, pool.bind, bind)
        self.assertEqual(sorted(tried), [40000, 40002])
        self.assertIsInstance(error.__cause__, OSError)
        self.assertIn("40000-40003", str(error))
        self.assertIn("other processes", str(error))
        self.assertEqual(pool.in_use, 0)

    def test_attempts_bounded(self):
        """
        In a large range held mostly by others, bind gives up after its
        attempts instead of walking the whole range.
        """
        pool = PortPool(40000, 49999)
        tried = []

        def bind(reservation):
            tried.append(reservation.rtp_port)
            raise OSError("in use")

        self.assertRaises(PortPoolExhausted, pool.bind, bind, attempts=5)
        self.assertEqual(len(tried), 5)
        self.assertEqual(pool.in_use, 0)
