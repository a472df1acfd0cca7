"""
Tests for L{wcs_twisted.media.jitter.JitterBuffer}: in-order packets pass at once,
reordering within the depth is undone, a gap is concealed once the depth is reached,
late and duplicate packets are dropped, and a sequence jump resynchronises.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media.jitter import MAX_CONCEALED, JitterBuffer


class JitterBufferTests(SynchronousTestCase):
    """
    The buffer's output for given arrival orders ("X" marks a concealment).
    """

    def setUp(self):
        self.out = []
        self.buffer = JitterBuffer(self.out.append, lambda: self.out.append("X"))

    def push(self, *sequences):
        for sequence in sequences:
            self.buffer.push(sequence & 0xFFFF, sequence & 0xFFFF)

    def test_in_order_passes_at_once(self):
        """
        Consecutive packets are delivered as they come, across the sequence wrap.
        """
        self.push(65534, 65535, 65536, 65537)
        self.assertEqual(self.out, [65534, 65535, 0, 1])

    def test_reorder_within_depth(self):
        """
        A packet overtaken by two others is still delivered in its place.
        """
        self.push(1, 3, 4, 2, 5)
        self.assertEqual(self.out, [1, 2, 3, 4, 5])
        self.assertEqual((self.buffer.lost, self.buffer.recovered), (0, 1))

    def test_loss_concealed_after_depth(self):
        """
        A missing packet is concealed when three later ones have arrived (60 ms), and a
        straggler after that is dropped as late.
        """
        self.push(1, 3, 4)
        self.assertEqual(self.out, [1])
        self.push(5)
        self.assertEqual(self.out, [1, "X", 3, 4, 5])
        self.push(2)
        self.assertEqual((self.buffer.lost, self.buffer.late), (1, 1))
        self.push(6)
        self.assertEqual(self.out[-1], 6)

    def test_long_gap_partly_concealed(self):
        """
        A gap of 10 packets is concealed for at most MAX_CONCEALED packets.
        """
        self.push(1, 12, 13, 14)
        self.assertEqual(self.out, [1] + ["X"] * MAX_CONCEALED + [12, 13, 14])
        self.assertEqual(self.buffer.lost, 10)

    def test_duplicate_dropped(self):
        """
        A packet received twice is delivered once.
        """
        self.push(1, 2, 2, 4, 4, 3)
        self.assertEqual(self.out, [1, 2, 3, 4])
        self.assertEqual(self.buffer.late, 2)

    def test_jump_resynchronises(self):
        """
        A jump of more than 100 (a new source) delivers what was held and starts over.
        """
        self.push(1, 3, 500, 501)
        self.assertEqual(self.out, [1, 3, 500, 501])
        self.assertEqual(self.buffer.lost, 0)
