"""
Tests for L{wcs_twisted.media.g711} (G.711 by table, PCM attenuation) against FFmpeg's
own G.711 codecs, and for L{wcs_twisted.media.opus} (libopus by ctypes).
"""

import random
import subprocess
import sys
from array import array

import av
import numpy
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.media.test_bridge import OPUS, PCMA, PCMU, dominant_frequency, tone
from wcs_twisted.media.g711 import ALAW, ULAW, attenuate
from wcs_twisted.media import opus
from wcs_twisted.media.opus import OpusDecoder, OpusEncoder, opus_available
from wcs_twisted.media.transcode import AudioTranscoder

EVERY_SAMPLE = array("h", range(-32768, 32768)).tobytes()


def ffmpeg(name, mode):
    context = av.CodecContext.create(name, mode)
    context.sample_rate = 8000
    context.layout = "mono"
    if mode == "w":
        context.format = "s16"
    return context


def ffmpeg_encode(name, pcm):
    """
    C{pcm} through FFmpeg's encoder C{name}, in 128-sample frames.
    """
    context, out = ffmpeg(name, "w"), []
    for start in range(0, len(pcm), 256):
        frame = av.AudioFrame(format="s16", layout="mono", samples=128)
        frame.planes[0].update(pcm[start:start + 256])
        frame.sample_rate, frame.pts = 8000, start // 2
        out += [bytes(packet) for packet in context.encode(frame)]
    return b"".join(out)


class G711Tests(SynchronousTestCase):
    """
    The tables give FFmpeg's code words and levels exactly, for every input.
    """

    def test_decode_every_code_word(self):
        """
        Each of the 256 code words of both laws decodes to FFmpeg's level.
        """
        codes = bytes(range(256))
        for law, name in ((ULAW, "pcm_mulaw"), (ALAW, "pcm_alaw")):
            [frame] = ffmpeg(name, "r").decode(av.Packet(codes))
            self.assertEqual(law.decode(codes), bytes(frame.planes[0])[:512], name)

    def test_encode_every_sample(self):
        """
        Each of the 65,536 16-bit samples encodes to FFmpeg's code word.
        """
        for law, name in ((ULAW, "pcm_mulaw"), (ALAW, "pcm_alaw")):
            self.assertEqual(law.encode(EVERY_SAMPLE), ffmpeg_encode(name, EVERY_SAMPLE), name)

    def test_numpy_imported_by_the_first_encoding(self):
        """
        Importing the media package does not import NumPy (~16 MiB a relaying server never
        needs), nor does the G.711 silence every SIP leg keeps ready; the first encoding does.
        """
        code = ("import sys; from wcs_twisted.media.g711 import ULAW; "
                "from wcs_twisted.media.bridge import MediaBridge; "
                "from wcs_twisted.media.transcode import silence_payload; "
                "from wcs_twisted.sdp.codecs import Codec; "
                "print('numpy' in sys.modules); "
                "assert silence_payload(Codec(0, 'PCMU', 8000)) == ULAW.silence; "
                "assert silence_payload(Codec(8, 'PCMA', 8000)) == b'\\xd5' * 160; "
                "print('numpy' in sys.modules); ULAW.encode(bytes(320)); "
                "print('numpy' in sys.modules)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60)
        self.assertEqual(result.stdout.split(), ["False", "False", "True"], result.stderr)

    def test_silence(self):
        """
        Zero level is 0xFF in mu-law and 0xD5 in A-law.
        """
        self.assertEqual((ULAW.silence[:2], ALAW.silence[:2]), (b"\xff\xff", b"\xd5\xd5"))
        self.assertEqual(len(ULAW.silence), 160)

    def test_attenuate_is_an_arithmetic_shift(self):
        """
        attenuate(pcm, k) is every sample >> k, negative ones included.
        """
        rng = random.Random(7)
        samples = array("h", [rng.randint(-32768, 32767) for _ in range(960)]
                        + [-32768, -1, 0, 1, 32767])
        for shift in range(1, 8):
            out = array("h", attenuate(samples.tobytes(), shift))
            self.assertEqual(out.tolist(), [s >> shift for s in samples], shift)


class OpusTests(SynchronousTestCase):
    """
    libopus at the other side's rate, so Opus <-> G.711 needs no resampler.
    """

    def setUp(self):
        if not opus_available():
            raise SkipTest("libopus0 is needed")

    def test_round_trip_at_8khz(self):
        """
        A tone encoded at 8 kHz comes back at its frequency; 20 ms is 160 samples.
        """
        encoder, decoder = OpusEncoder(8000, 32000), OpusDecoder(8000)
        pcm = tone(440, 1.0, 8000)
        decoded = b"".join(decoder.decode(encoder.encode(pcm[i:i + 160].tobytes()))
                           for i in range(0, len(pcm), 160))
        self.assertEqual(len(decoded), 2 * len(pcm))
        samples = numpy.frombuffer(decoded, numpy.int16)
        self.assertLess(abs(dominant_frequency(samples[1600:], 8000) - 440), 10)

    def test_lower_complexity_keeps_the_signal(self):
        """
        The encoder's complexity (L{opus.COMPLEXITY}, below libopus's default of 10 to save
        CPU) costs under 2 dB of signal-to-error ratio on narrow-band audio (two tones, one
        of them modulated): the round trip stays above 30 dB.
        """
        rate = 8000
        t = numpy.arange(2 * rate) / rate
        signal = (0.3 * 32767 * numpy.sin(2 * numpy.pi * 300 * t)
                  + 0.15 * 32767 * numpy.sin(2 * numpy.pi * 1250 * t)
                  * (1 + 0.5 * numpy.sin(2 * numpy.pi * 3 * t))).astype(numpy.int16)

        def snr(complexity):
            encoder, decoder = OpusEncoder(rate, 32000), OpusDecoder(rate)
            if complexity is not None:
                opus._lib.opus_encoder_ctl(encoder._state, opus._SET_COMPLEXITY, complexity)
            decoded = numpy.frombuffer(b"".join(
                decoder.decode(encoder.encode(signal[i:i + 160].tobytes()))
                for i in range(0, len(signal), 160)), numpy.int16).astype(float)
            reference = signal.astype(float)[4000:14000]
            delay = max(range(80), key=lambda k: numpy.dot(reference, decoded[4000 + k:14000 + k]))
            error = decoded[4000 + delay:14000 + delay] - reference
            return 10 * numpy.log10(numpy.sum(reference ** 2) / numpy.sum(error ** 2))

        ours, best = snr(None), snr(10)
        self.assertLess(opus.COMPLEXITY, 10)
        self.assertGreater(ours, 30)
        self.assertGreater(ours, best - 2)

    def test_conceal_and_corrupt(self):
        """
        A loss is one 20 ms frame of libopus's concealment; a corrupt packet is a
        ValueError, and a transcoder counts it.
        """
        decoder = OpusDecoder(8000)
        self.assertEqual(len(decoder.conceal()), 320)
        self.assertRaises(ValueError, decoder.decode, b"\xff\xff\xff")

    def test_no_resampler_between_opus_and_g711(self):
        """
        Opus <-> PCMU/PCMA transcoders decode or encode Opus at 8 kHz: no resampler.
        """
        for source, target in ((OPUS, PCMU), (PCMU, OPUS), (OPUS, PCMA), (PCMA, OPUS)):
            self.assertIsNone(AudioTranscoder(source, target, lambda p, pt: None)._resampler)
