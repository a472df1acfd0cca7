"""
Tests for loss repair from Opus in-band FEC: the jitter buffer hands the packet after a gap to
its C{repair} callback (L{wcs_twisted.media.jitter}), and L{OpusDecoder.recover} rebuilds the
lost frame from it closer to the original than concealment does.
"""

import ctypes

import numpy
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media.jitter import MAX_CONCEALED, JitterBuffer
from wcs_twisted.media.opus import OpusDecoder, opus_available

#: libopus requests (opus_defines.h).
OPUS_APPLICATION_VOIP, SET_BITRATE, SET_INBAND_FEC, SET_PACKET_LOSS_PERC = 2048, 4002, 4012, 4014


class RepairTests(SynchronousTestCase):
    """
    The buffer's output with a C{repair} callback ("X" a concealment, "R<n>" a repair from
    packet n).
    """

    def setUp(self):
        self.out = []
        self.buffer = JitterBuffer(self.out.append, lambda: self.out.append("X"),
                                   repair=lambda following: self.out.append(f"R{following}"))

    def push(self, *sequences):
        for sequence in sequences:
            self.buffer.push(sequence, sequence)

    def test_single_loss_repaired_from_the_next_packet(self):
        """
        One lost packet is rebuilt from the one after it, in its place.
        """
        self.push(1, 3, 4, 5)
        self.assertEqual(self.out, [1, "R3", 3, 4, 5])
        self.assertEqual((self.buffer.lost, self.buffer.repaired), (1, 1))

    def test_longer_gap_conceals_then_repairs_the_last(self):
        """
        In a gap of three only the last packet has its successor's FEC: the others are
        concealed; a very long gap is still bounded by MAX_CONCEALED.
        """
        self.push(1, 5, 6, 7)
        self.assertEqual(self.out, [1, "X", "X", "R5", 5, 6, 7])
        self.out.clear()
        self.push(30, 31, 32)
        self.assertEqual(self.out, ["X"] * (MAX_CONCEALED - 1) + ["R30", 30, 31, 32])


class OpusRecoverTests(SynchronousTestCase):
    """
    L{OpusDecoder.recover} against libopus's own encoder with FEC on (as browsers send it).
    """

    def setUp(self):
        if not opus_available():
            self.skipTest("libopus is not installed")

    def packets(self, rate=48000, frame=960, seconds=2):
        from wcs_twisted.media.opus import _INT, _lib
        error = _INT()
        encoder = _lib.opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, ctypes.byref(error))
        self.addCleanup(_lib.opus_encoder_destroy, encoder)
        for request, value in ((SET_BITRATE, 32000), (SET_INBAND_FEC, 1),
                               (SET_PACKET_LOSS_PERC, 10)):
            _lib.opus_encoder_ctl(encoder, request, value)
        t = numpy.arange(rate * seconds) / rate
        pcm = (0.3 * 32767 * numpy.sin(2 * numpy.pi * 440 * t)
               * (1 + 0.5 * numpy.sin(2 * numpy.pi * 3 * t))).astype("<i2")
        out = ctypes.create_string_buffer(1500)
        packets = []
        for start in range(0, len(pcm) - frame + 1, frame):
            size = _lib.opus_encode(encoder, pcm[start:start + frame].tobytes(), frame, out, 1500)
            packets.append(out.raw[:size])
        return packets

    def decoded(self, packets, lost, use_fec):
        decoder = OpusDecoder(48000)
        pcm = []
        for index, packet in enumerate(packets):
            if index not in lost:
                pcm.append(decoder.decode(packet))
            elif use_fec:
                pcm.append(decoder.recover(packets[index + 1]))
            else:
                pcm.append(decoder.conceal())
        return numpy.frombuffer(b"".join(pcm), dtype="<i2").astype(float)

    def test_fec_beats_concealment(self):
        """
        Every tenth frame lost: rebuilt from the next packet's FEC, the lost frames are
        closer to what a loss-free decoder gives than libopus's concealment.
        """
        packets = self.packets()
        lost = set(range(20, len(packets) - 1, 10))
        reference = self.decoded(packets, set(), False)

        def error(samples):
            return numpy.mean([
                numpy.sum((samples[i * 960:(i + 1) * 960] - reference[i * 960:(i + 1) * 960]) ** 2)
                / numpy.sum(reference[i * 960:(i + 1) * 960] ** 2) for i in lost])

        repaired, concealed = error(self.decoded(packets, lost, True)), error(
            self.decoded(packets, lost, False))
        self.assertLess(repaired, concealed * 0.9, (repaired, concealed))

    def test_recover_without_fec_conceals(self):
        """
        A following packet with no FEC in it (or none decodable) still yields one frame.
        """
        decoder = OpusDecoder(48000)
        self.assertEqual(len(decoder.recover(b"\xff")), 2 * 960)
