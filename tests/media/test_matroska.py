"""
Tests for L{wcs_twisted.media.matroska}: recordings written with PyAV.
"""

import os

import av
from twisted.trial.unittest import SynchronousTestCase

from tests.modules_builtin.synthetic import h264_access_units, opus_tone, pcmu_tone, vp8_frames
from wcs_twisted.media.matroska import AUDIO_TRACKS, MatroskaWriter, VideoTrack


def read_back(path):
    """
    (codec names, duration in seconds, decoded audio samples per stream index, video frames).
    """
    with av.open(path) as container:
        codecs = [stream.codec_context.name for stream in container.streams]
        duration = container.duration / 1e6 if container.duration else None
        samples, frames = 0, 0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.AudioFrame):
                samples += frame.samples
            else:
                frames += 1
    return codecs, duration, samples, frames


class MatroskaWriterTests(SynchronousTestCase):
    """
    Items in, a Matroska file out.
    """

    def setUp(self):
        self.path = os.path.join(os.path.abspath(self.mktemp()), "sub", "call.mkv")

    def test_pcmu_as_pcm_and_h264(self):
        """
        G.711 is stored as 16-bit PCM and H.264 as it came; durations come from the pts given.
        """
        writer = MatroskaWriter(self.path)
        units = h264_access_units(50)
        items = [("open", AUDIO_TRACKS["pcmu"], VideoTrack(320, 240))]
        for index, payload in enumerate(pcmu_tone(2.0)):
            items.append(("audio", payload, index * 160, 160))
        for index, (data, keyframe) in enumerate(units):
            items.append(("video", data, index * 3600, 3600, keyframe))
        items.sort(key=lambda item: (item[2] / (8000 if item[0] == "audio" else 90000))
                   if item[0] != "open" else -1)
        writer.handle(items[:40])
        writer.handle(items[40:] + [("close",)])
        codecs, duration, samples, frames = read_back(self.path)
        self.assertEqual(codecs, ["pcm_s16le", "h264"])
        self.assertApproximates(duration, 2.0, 0.01)
        self.assertEqual((samples, frames), (16000, 50))

    def test_opus_audio_only(self):
        """
        Opus packets are stored as they are, with an OpusHead the decoder accepts.
        """
        writer = MatroskaWriter(self.path)
        items = [("open", AUDIO_TRACKS["opus"], None)]
        for index, payload in enumerate(opus_tone(1.0)):
            items.append(("audio", payload, index * 960, 960))
        items.append(("video", b"ignored", 0, 3600, True))
        writer.handle(items + [("close",)])
        codecs, duration, samples, frames = read_back(self.path)
        self.assertEqual(codecs, ["opus"])
        self.assertApproximates(duration, 1.0, 0.02)
        self.assertEqual(frames, 0)
        self.assertGreater(samples, 47000)

    def test_repeated_timestamps_are_dropped(self):
        """
        A frame whose timestamp does not move forward (a repeated or late RTP packet) is dropped
        and counted, so the file's timestamps always increase and ffmpeg remuxes it cleanly.
        """
        import subprocess
        writer = MatroskaWriter(self.path)
        items = [("open", AUDIO_TRACKS["opus"], None)]
        payloads = list(opus_tone(1.0))
        for index, payload in enumerate(payloads):
            items.append(("audio", payload, index * 960, 960))
            if index in (10, 20):
                items.append(("audio", payload, index * 960, 960))  # a duplicate
                items.append(("audio", payload, index * 960 - 960, 960))  # a late one
        writer.handle(items + [("close",)])
        self.assertEqual(writer.dropped, 4)
        result = subprocess.run(["ffmpeg", "-v", "error", "-i", self.path, "-f", "null", "-"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        codecs, duration, samples, frames = read_back(self.path)
        self.assertApproximates(duration, 1.0, 0.02)

    def test_vp8_and_opus_as_webm(self):
        """
        A .webm path is written as WebM (the container browsers play) with VP8 stored as it
        came.
        """
        path = self.path[:-len(".mkv")] + ".webm"
        writer = MatroskaWriter(path)
        items = [("open", AUDIO_TRACKS["opus"], VideoTrack(320, 240, "vp8"))]
        for index, payload in enumerate(opus_tone(1.0)):
            items.append(("audio", payload, index * 960, 960))
        for index, (frame, keyframe) in enumerate(vp8_frames(25)):
            items.append(("video", frame, index * 3600, 3600, keyframe))
        items[1:] = sorted(items[1:], key=lambda item: item[2] / (48000 if item[0] == "audio"
                                                                   else 90000))
        writer.handle(items + [("close",)])
        with open(path, "rb") as written:
            self.assertIn(b"\x42\x82\x84webm", written.read(64))  # EBML DocType "webm"
        codecs, duration, samples, frames = read_back(path)
        self.assertEqual(codecs, ["opus", "vp8"])
        self.assertApproximates(duration, 1.0, 0.05)
        self.assertEqual(frames, 25)

    def test_close_without_open(self):
        """
        Closing a writer that never opened writes nothing.
        """
        MatroskaWriter(self.path).handle([("close",)])
        self.assertFalse(os.path.exists(self.path))
