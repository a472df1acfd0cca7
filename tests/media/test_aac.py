"""
Tests for L{wcs_twisted.media.aac}: stream audio to AAC for RTMP.
"""

import array
import math
import os
import wave

import av
from twisted.trial.unittest import SynchronousTestCase

from tests.modules_builtin.synthetic import opus_tone, pcmu_tone, tone_samples
from wcs_twisted.media.aac import (
    AAC_RATE,
    SAMPLE_BYTES,
    AacEncoder,
    audio_specific_config,
    load_sound,
)


def decode_aac(frames):
    """
    Decode raw AAC-LC frames (44.1 kHz mono) into float samples.
    """
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = audio_specific_config()
    samples = array.array("f")
    for frame in frames:
        for decoded in decoder.decode(av.Packet(frame)):
            samples.frombytes(bytes(decoded.planes[0])[:decoded.samples * 4])
    return samples


def frequency(samples, rate=AAC_RATE):
    """
    The frequency of a tone from its zero crossings.
    """
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate)


def rms(samples):
    return math.sqrt(sum(x * x for x in samples) / max(1, len(samples)))


def write_wav(path, seconds, frequency_hz, rate=16000):
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(tone_samples(seconds, frequency_hz, 0.5, rate))


class AudioSpecificConfigTests(SynchronousTestCase):
    """
    The AAC-LC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
    """

    def test_values(self):
        """
        Object type 2, the frequency index and the channel count, in 2 bytes.
        """
        self.assertEqual(audio_specific_config(44100, 1), b"\x12\x08")
        self.assertEqual(audio_specific_config(48000, 2), b"\x11\x90")


class AacEncoderTests(SynchronousTestCase):
    """
    RTP audio in, AAC frames out, in step with the clock.
    """

    def encode(self, codec, rate, payloads, step=0.02, replace=lambda count: None, start=0.0):
        sent = []
        encoder = AacEncoder(lambda milliseconds, frame: sent.append((milliseconds, frame)))
        for index, payload in enumerate(payloads):
            encoder.audio(codec, rate, payload, start + index * step, replace)
        return encoder, sent

    def test_pcmu_tone(self):
        """
        A 440 Hz PCMU tone comes out as AAC frames that decode to 440 Hz at the same level,
        with timestamps of 1024 samples apart.
        """
        encoder, sent = self.encode("pcmu", 8000, pcmu_tone(2.0))
        samples = decode_aac([frame for _, frame in sent])
        self.assertApproximates(frequency(samples[4096:]), 440.0, 5.0)
        self.assertApproximates(rms(samples[4096:]), 0.354, 0.03)
        stamps = [milliseconds for milliseconds, _ in sent]
        self.assertEqual(stamps, sorted(stamps))
        self.assertApproximates(stamps[-1], 2000 - 1024 * 1000 / AAC_RATE * 2, 30)
        self.assertEqual(encoder.errors, 0)

    def test_opus_tone(self):
        """
        Opus packets are decoded and transcoded the same way.
        """
        _, sent = self.encode("opus", 48000, opus_tone(1.0))
        samples = decode_aac([frame for _, frame in sent])
        self.assertApproximates(frequency(samples[4096:]), 440.0, 5.0)

    def test_timeline_offset(self):
        """
        Timestamps start where the first packet is on the timeline.
        """
        _, sent = self.encode("pcmu", 8000, pcmu_tone(0.5), start=3.0)
        self.assertApproximates(sent[1][0], 3000, 1)

    def test_gaps_filled_with_silence(self):
        """
        A pause in the packets (DTX, loss) becomes silence of the same length, so the audio
        after it is still in step with the clock.
        """
        tone = pcmu_tone(2.0)
        sent = []
        encoder = AacEncoder(lambda milliseconds, frame: sent.append((milliseconds, frame)))
        for index, payload in enumerate(tone[:50]):
            encoder.audio("pcmu", 8000, payload, index * 0.02, lambda count: None)
        for index, payload in enumerate(tone[50:]):
            encoder.audio("pcmu", 8000, payload, 3.0 + index * 0.02, lambda count: None)
        self.assertApproximates(sent[-1][0], 4000 - 2 * 1024 * 1000 / AAC_RATE, 30)
        samples = decode_aac([frame for _, frame in sent])
        self.assertLess(rms(samples[2 * AAC_RATE:3 * AAC_RATE - 2048]), 0.01)

    def test_replacement(self):
        """
        Samples from the replace callback are sent instead of the stream's (mute, sound).
        """
        _, sent = self.encode("pcmu", 8000, pcmu_tone(1.0),
                              replace=lambda count: bytes(count * SAMPLE_BYTES))
        self.assertLess(rms(decode_aac([frame for _, frame in sent])), 0.001)

    def test_undecodable_payloads_counted(self):
        """
        Codecs it cannot decode are counted as errors and produce nothing.
        """
        encoder, sent = self.encode("g729", 8000, [b"\x00" * 20] * 10)
        self.assertEqual((encoder.errors, sent), (10, []))


class LoadSoundTests(SynchronousTestCase):
    """
    Sound files for /push/sound_on.
    """

    def test_wav_resampled(self):
        """
        A 16 kHz WAV becomes 44.1 kHz mono float samples of the same length and tone.
        """
        path = self.mktemp() + ".wav"
        write_wav(path, 1.0, 1000)
        samples = array.array("f", load_sound(path))
        self.assertApproximates(len(samples), AAC_RATE, 200)
        self.assertApproximates(frequency(samples), 1000.0, 10.0)

    def test_not_sound(self):
        """
        A file FFmpeg cannot read as audio raises ValueError.
        """
        path = self.mktemp()
        with open(path, "wb") as handle:
            handle.write(os.urandom(64))
        self.assertRaises(ValueError, load_sound, path)
