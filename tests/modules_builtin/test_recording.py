"""
Tests for L{wcs_twisted.modules_builtin.recording} and the C{recording} drop-in.

The writer thread is replaced by a synchronous call, so files are complete when a test looks;
the real thread pool, real-time feeding and a killed writer are in
tests/integration/test_recording.py.
"""

import os

import av
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.modules_builtin.synthetic import (
    SyntheticFeed,
    vp8_frames,
    SyntheticSource,
    h264_access_units,
    opus_tone,
    pcmu_tone,
)
from wcs_twisted.interfaces import IStreamObserver, IStreamSink, IWcsModule
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules import plugin_package
from wcs_twisted.modules_builtin.recorder import RecordingModule, RecordingService
from wcs_twisted.modules_builtin.recording import KEYFRAME_RETRY, TRACK_WAIT, render_file_name
from wcs_twisted.toolkit.sinks import SerialWorker
from tests.modules_builtin.contexts import module_context
from wcs_twisted.errors import Conflict, InvalidField, NotFound


def synchronous(job):
    return maybeDeferred(job)


def probe(path):
    """
    (codec names, duration in seconds, video frames decoded).
    """
    with av.open(path) as container:
        codecs = [stream.codec_context.name for stream in container.streams]
        duration = container.duration / 1e6
        frames = sum(1 for _ in container.decode(video=0)) if container.streams.video else 0
    return codecs, duration, frames


class RenderFileNameTests(SynchronousTestCase):
    """
    File names from templates.
    """

    def test_fields(self):
        """
        Fields are replaced and .mkv added.
        """
        self.assertEqual(render_file_name("{streamName}-{startTime}",
                                          {"streamName": "call1", "startTime": 1700000000000}),
                         "call1-1700000000000.mkv")
        self.assertEqual(render_file_name("rec-{mediaSessionId}.mkv", {"mediaSessionId": "m"}),
                         "rec-m.mkv")

    def test_values_cannot_leave_the_folder(self):
        """
        Characters other than letters, digits, '.', '_' and '-' in values become '_'.
        """
        self.assertEqual(render_file_name("{streamName}", {"streamName": "../../etc/passwd"}),
                         ".._.._etc_passwd.mkv")
        self.assertEqual(render_file_name("{callId}", {}), "record.mkv")
        self.assertEqual(render_file_name("..", {}), "...mkv")

    def test_bad_templates(self):
        """
        Unknown fields, format specs, conversions, path separators and empty templates are
        refused.
        """
        for template in ("{nope}", "{startTime:>20}", "a/{streamName}", "", "{streamName!r}"):
            self.assertRaises(ValueError, render_file_name, template, {"streamName": "s"})


class SerialWorkerTests(SynchronousTestCase):
    """
    Jobs in order, one batch at a time, bounded.
    """

    def setUp(self):
        self.batches = []
        self.pending = []

        def run(job):
            waiting = Deferred()
            self.pending.append((job, waiting))
            return waiting

        self.worker = SerialWorker(run, self.batches.append, limit=3)

    def finish_one(self):
        job, waiting = self.pending.pop(0)
        job()
        waiting.callback(None)

    def test_batches_in_order(self):
        """
        Items submitted while a batch runs form the next batch.
        """
        self.worker.submit(1)
        self.worker.submit(2)
        self.worker.submit(3)
        idle = self.worker.idle()
        self.finish_one()
        self.assertNoResult(idle)
        self.finish_one()
        self.assertEqual(self.batches, [[1], [2, 3]])
        self.successResultOf(idle)
        self.assertEqual(self.pending, [])

    def test_bounded_backlog(self):
        """
        Beyond the limit items are refused and counted, unless forced.
        """
        self.worker.submit(0)
        results = [self.worker.submit(n) for n in range(1, 6)]
        self.assertEqual(results, [True, True, True, False, False])
        self.assertTrue(self.worker.submit("close", force=True))
        self.assertEqual(self.worker.dropped, 2)
        self.finish_one()
        self.finish_one()
        self.assertEqual(self.batches, [[0], [1, 2, 3, "close"]])

    def test_failure_stops_the_worker(self):
        """
        A failed batch keeps its failure and refuses everything after it.
        """
        worker = SerialWorker(lambda job: fail(OSError("disk full")), lambda batch: None)
        worker.submit(1)
        self.assertIsInstance(worker.failure.value, OSError)
        self.assertFalse(worker.submit(2, force=True))
        self.successResultOf(worker.idle())


class RecordingServiceTests(SynchronousTestCase):
    """
    The "recorder" service, with the file work done synchronously.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1700000000)
        self.streams = StreamRegistry(self.clock)
        self.folder = os.path.abspath(self.mktemp())
        self.service = RecordingService(self.streams, self.clock, record_dir=self.folder,
                                        file_template="{streamName}-{startTime}",
                                        run_in_thread=synchronous)
        self.service.start()

    def publish(self, name="call1", audio="PCMU/8000", video=None, **properties):
        source = SyntheticSource(audio, video)
        return source, self.streams.publish(name, source, properties)

    def test_provides_the_interfaces(self):
        """
        The service observes streams and each recording is a stream sink.
        """
        verifyObject(IStreamObserver, self.service)
        _, stream = self.publish()
        self.service.startup("call1")
        verifyObject(IStreamSink, self.service.get("call1"))

    def test_pcmu_and_h264(self):
        """
        A PCMU + H.264 stream is recorded as PCM + H.264 with the duration that was fed, every
        frame decodable, and the file is named from the template.
        """
        source, stream = self.publish(video="H264/90000", mediaSessionId="m-1")
        description = self.service.startup("call1")
        self.assertEqual(description, {"fileName": "call1-1700000000000.mkv",
                                       "mediaSessionId": "m-1", "streamName": "call1",
                                       "startTime": 1700000000000})
        self.assertEqual(self.service.find_all(), [description])
        self.assertEqual(source.keyframe_requests, 1)
        feed = SyntheticFeed(stream, audio=pcmu_tone(4.0), video=h264_access_units(100))
        feed.run_with_clock(self.clock)
        recording = self.service.get("m-1")
        stream.end("Stopped by publisher stop")
        path = self.successResultOf(recording.closed)
        self.assertEqual(path, os.path.join(self.folder, "call1-1700000000000.mkv"))
        codecs, duration, frames = probe(path)
        self.assertEqual(codecs, ["pcm_s16le", "h264"])
        self.assertApproximates(duration, 4.0, 0.05)
        self.assertEqual(frames, 100)
        self.assertEqual(self.service.find_all(), [])

    def test_opus(self):
        """
        Opus is recorded as it came.
        """
        _, stream = self.publish(audio="opus/48000/2")
        self.service.startup("call1")
        recording = self.service.get("call1")
        SyntheticFeed(stream, audio=opus_tone(2.0), audio_codec="opus/48000/2") \
            .run_with_clock(self.clock)
        self.service.terminate("call1")
        codecs, duration, _ = probe(self.successResultOf(recording.closed))
        self.assertEqual(codecs, ["opus"])
        self.assertApproximates(duration, 2.0, 0.05)

    def test_vp8_and_opus_as_webm(self):
        """
        What a browser publishes (VP8 and Opus) is recorded as WebM: both tracks, the duration
        fed, every frame decodable; the file name is set on the stream as recordName.
        """
        _, stream = self.publish("cam", audio="opus/48000/2", video="VP8/90000")
        self.assertEqual(self.service.startup("cam")["fileName"], "cam-1700000000000.webm")
        self.assertEqual(stream.properties["recordName"], "cam-1700000000000.webm")
        recording = self.service.get("cam")
        SyntheticFeed(stream, audio=opus_tone(3.0), audio_codec="opus/48000/2",
                      video=vp8_frames(75), video_codec="VP8/90000").run_with_clock(self.clock)
        stream.end("Stopped by publisher stop")
        codecs, duration, frames = probe(self.successResultOf(recording.closed))
        self.assertEqual(codecs, ["opus", "vp8"])
        self.assertApproximates(duration, 3.0, 0.05)
        self.assertEqual(frames, 75)

    def test_published_with_record(self):
        """
        A stream published with record true is recorded without a REST request (the
        WebSocket publishStream{record:true}); one without it is not.
        """
        self.publish("plain", audio="opus/48000/2")
        self.publish("asked", audio="opus/48000/2", record=True)
        self.assertEqual([r["streamName"] for r in self.service.find_all()], ["asked"])

    def test_waits_for_a_keyframe_then_goes_without_video(self):
        """
        A stream announcing H.264 that sends no keyframe is asked again every second and,
        after TRACK_WAIT, recorded without video; audio from the start is kept.
        """
        source, stream = self.publish(video="H264/90000")
        self.service.startup("call1")
        recording = self.service.get("call1")
        units = [unit for unit in h264_access_units(60) if not unit[1]]
        SyntheticFeed(stream, audio=pcmu_tone(6.0), video=units).run_with_clock(self.clock)
        self.assertEqual(source.keyframe_requests, 1 + int(TRACK_WAIT / KEYFRAME_RETRY) - 1)
        self.service.terminate("call1")
        codecs, duration, _ = probe(self.successResultOf(recording.closed))
        self.assertEqual(codecs, ["pcm_s16le"])
        self.assertApproximates(duration, 6.0, 0.05)

    def test_codec_change_left_out(self):
        """
        Packets of another audio codec than the recording's are left out.
        """
        _, stream = self.publish()
        self.service.startup("call1")
        recording = self.service.get("call1")
        SyntheticFeed(stream, audio=pcmu_tone(1.0)).run_with_clock(self.clock)
        for index in range(50):
            stream.packet_received("audio", b"\x78" + bytes(40), "opus/48000/2", index * 960,
                                   False)
        self.service.terminate("call1")
        _, duration, _ = probe(self.successResultOf(recording.closed))
        self.assertApproximates(duration, 1.0, 0.03)

    def test_nothing_recorded(self):
        """
        A recording stopped before any media leaves no file.
        """
        self.publish()
        self.service.startup("call1")
        recording = self.service.get("call1")
        self.service.terminate("call1")
        self.assertIsNone(self.successResultOf(recording.closed))
        self.assertFalse(os.path.exists(recording.path))

    def test_errors(self):
        """
        Unknown streams are 404, a second recording of a stream 409, a bad template 400, and
        terminating an unknown recording 404.
        """
        self.assertRaises(NotFound, self.service.startup, "nope")
        self.assertRaises(NotFound, self.service.startup, media_session_id="nope")
        self.assertRaises(InvalidField, self.service.startup)
        self.publish()
        self.assertRaises(InvalidField, self.service.startup, "call1", "{bad}")
        self.assertEqual(self.service.find_all(), [])
        self.service.startup("call1")
        self.assertRaises(Conflict, self.service.startup, "call1")
        self.assertRaises(NotFound, self.service.terminate, "other")

    def test_by_media_session_id_and_unique_names(self):
        """
        A stream can be named by its mediaSessionId; a file name in use gets a number.
        """
        self.publish("a", mediaSessionId="m-a")
        self.publish("b", mediaSessionId="m-b")
        first = self.service.startup(media_session_id="m-a", file_template="same")
        second = self.service.startup("b", "same")
        self.assertEqual((first["fileName"], second["fileName"]), ("same.mkv", "same-1.mkv"))
        self.assertEqual(self.service.terminate("m-a")["streamName"], "a")

    def test_auto_record_sip_call_streams(self):
        """
        With auto_record, streams published with a callId are recorded, others are not.
        """
        service = RecordingService(self.streams, self.clock, record_dir=self.folder,
                                   file_template="{callId}", run_in_thread=synchronous,
                                   auto_record=True)
        self.publish("before", callId="c-0")
        service.start()
        self.publish("browser")
        _, stream = self.publish("call", callId="c-1")
        self.assertEqual(sorted(r["fileName"] for r in service.find_all()), ["c-0.mkv", "c-1.mkv"])
        SyntheticFeed(stream, audio=pcmu_tone(0.5)).run_with_clock(self.clock)
        recording = service.get("call")
        stream.end("Stopped by publisher stop")
        self.assertTrue(os.path.exists(self.successResultOf(recording.closed)))
        self.successResultOf(service.stop())
        self.assertEqual(service.find_all(), [])
        self.publish("later", callId="c-2")
        self.assertEqual(service.find_all(), [])

    def test_stop_finishes_recordings(self):
        """
        Stopping the service completes every file, then fires.
        """
        _, stream = self.publish()
        self.service.startup("call1")
        recording = self.service.get("call1")
        SyntheticFeed(stream, audio=pcmu_tone(1.0)).run_with_clock(self.clock)
        self.successResultOf(self.service.stop())
        self.assertEqual(stream.sinks, ())
        self.assertTrue(os.path.exists(self.successResultOf(recording.closed)))

    def test_writer_failure_is_logged(self):
        """
        A file that cannot be written ends the recording (logged) without touching the stream.
        """
        blocker = os.path.join(self.folder, "blocker")
        os.makedirs(self.folder, exist_ok=True)
        with open(blocker, "w"):
            pass
        service = RecordingService(self.streams, self.clock, record_dir=blocker,
                                   file_template="x", run_in_thread=synchronous)
        _, stream = self.publish()
        service.startup("call1")
        recording = service.get("call1")
        SyntheticFeed(stream, audio=pcmu_tone(0.2)).run_with_clock(self.clock)
        self.assertIsNotNone(recording.worker.failure)
        self.assertIsNone(self.successResultOf(recording.closed))
        self.assertEqual(service.find_all(), [])
        self.assertEqual(stream.sinks, ())
        self.assertIsNone(stream.ended)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class RecordingModuleTests(SynchronousTestCase):
    """
    The module and its drop-in.
    """

    def test_module_provides_the_recorder(self):
        """
        Started with a context, it provides "recorder" with the configured folder, template and
        sip_record_stream; its stop fires once the recordings are finished.
        """
        clock = Clock()
        folder = os.path.abspath(self.mktemp())
        context = module_context("recording", clock, sip_record_stream=True, values={
            "record_dir": folder, "record_file_template": "{streamName}"})
        module = RecordingModule()
        verifyObject(IWcsModule, module)
        module.start(context)
        service = context.services["recorder"]
        self.assertEqual((service.record_dir, service.file_template, service.auto_record),
                         (folder, "{streamName}", True))
        self.successResultOf(module.stop())
        self.assertIsNone(module.service)

    def test_bad_template_fails_the_start(self):
        """
        A configured template with an unknown field makes start() raise.
        """
        clock = Clock()
        context = module_context("recording", clock, values={"record_file_template": "{x}"})
        self.assertRaises(ValueError, RecordingModule().start, context)

    def test_drop_in(self):
        """
        plugins/wcs_recording.py starts and stops the module.
        """
        plugin_package()
        from wcs_plugins.wcs_recording import recording

        clock = Clock()
        context = module_context("recording", clock,
                                 values={"record_dir": os.path.abspath(self.mktemp())})
        verifyObject(IWcsModule, recording)
        recording.start(context)
        self.assertIn("recorder", context.services)
        self.successResultOf(succeed(recording.stop()))
