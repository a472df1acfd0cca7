"""
Tests for L{wcs_twisted.gc_tuning}: what the server does to CPython's garbage collector.
"""

import gc

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.gc_tuning import YOUNG_THRESHOLD, GarbageCollectorTuning


class GarbageCollectorTuningTests(SynchronousTestCase):
    """
    Started: what exists is frozen and young collections are rarer; stopped: as before.
    """

    def test_start_and_stop(self):
        """
        Starting freezes the live objects and raises the young threshold (older ones kept);
        stopping puts the thresholds back and unfreezes.
        """
        before = gc.get_threshold()
        tuning = GarbageCollectorTuning()
        tuning.startService()
        try:
            self.assertEqual(gc.get_threshold(), (YOUNG_THRESHOLD,) + before[1:])
            self.assertGreater(gc.get_freeze_count(), 0)
        finally:
            tuning.stopService()
        self.assertEqual(gc.get_threshold(), before)
        self.assertEqual(gc.get_freeze_count(), 0)
