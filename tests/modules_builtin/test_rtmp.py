"""
Tests for L{wcs_twisted.modules_builtin.rtmp} and the C{rtmp} drop-in.

Connections go to an in-memory transport answered by L{ScriptedServer} (the server side of
tests/modules_builtin/test_rtmp_protocol.py); what the push sends is parsed back and its AAC
decoded.  The real nginx-rtmp is in tests/integration/test_rtmp.py.
"""

import array
import os
import wave

import av
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.modules_builtin.synthetic import (
    SyntheticFeed,
    SyntheticSource,
    h264_access_units,
    opus_tone,
    pcmu_tone,
    tone_samples,
)
from tests.modules_builtin.test_rtmp_protocol import ScriptedServer
from wcs_twisted.interfaces import IStreamObserver, IStreamSink, IWcsModule
from wcs_twisted.media.aac import audio_specific_config
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules import plugin_package
from wcs_twisted.modules_builtin.rtmp import RtmpModule, RtmpService, push_call
from wcs_twisted.modules_builtin.rtmp_push import CLOSE_TIMEOUT, RtmpStreamStatus
from tests.modules_builtin.contexts import module_context
from wcs_twisted.modules_builtin.rtmp_protocol import AUDIO, VIDEO
from wcs_twisted.errors import Conflict, InvalidField, NotFound

URL = "rtmp://127.0.0.1:1935/live"
WAIT = RtmpStreamStatus.RTMP_STREAM_WAIT.value
ACTIVE = RtmpStreamStatus.RTMP_STREAM_ACTIVE.value
LOST = RtmpStreamStatus.RTMP_CONNECTION_LOST.value
FAILED = RtmpStreamStatus.RTMP_CONNECTION_FAILED.value


def rms(samples):
    return (sum(x * x for x in samples) / max(1, len(samples))) ** 0.5


def frequency(samples, rate=44100):
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / rate)


class Connections:
    """
    The service's connect(): each attempt is recorded; the test decides its fate.
    """

    def __init__(self):
        self.attempts = []

    def __call__(self, target, protocol):
        waiting = Deferred(lambda d: None)
        self.attempts.append((target, protocol, waiting))
        return waiting

    def accept(self, index=-1):
        """
        Connect the attempt and play the server up to a successful publish.
        """
        target, protocol, waiting = self.attempts[index]
        transport = StringTransport()
        protocol.makeConnection(transport)
        waiting.callback(protocol)
        server = ScriptedServer(protocol, transport)
        server.receive()
        server.command("_result", 1.0, None, {"code": "NetConnection.Connect.Success"})
        server.receive()
        server.command("_result", 4.0, None, 1.0)
        server.receive()
        server.command("onStatus", 0.0, None,
                       {"level": "status", "code": "NetStream.Publish.Start"}, stream_id=1)
        return server

    def refuse(self, index=-1):
        self.attempts[index][2].errback(ConnectionRefusedError("refused"))


class CallStub:
    """
    What push_call needs of a call.
    """

    def __init__(self, call_id):
        self.call_id = call_id
        self.extra = {}
        self.on_release = []


class RtmpServiceTests(SynchronousTestCase):
    """
    The "rtmp" service: pushes, statuses, reconnection, audio and video sent.
    """

    def setUp(self):
        self.clock = Clock()
        self.streams = StreamRegistry(self.clock)
        self.connections = Connections()
        self.media = os.path.abspath(self.mktemp())
        os.makedirs(self.media)
        self.service = RtmpService(self.streams, self.clock, media_dir=self.media,
                                   connect=self.connections, reconnect_delay=1.0,
                                   max_reconnect_delay=4.0, max_failed_attempts=3)
        self.statuses = []

    def publish(self, name="s1", audio="PCMU/8000", video=None):
        source = SyntheticSource(audio, video)
        return source, self.streams.publish(name, source, {})

    def start(self, name="s1", **kw):
        kw.setdefault("on_status", self.statuses.append)
        return self.service.startup(name, URL, **kw)

    def sent(self, server, kind):
        return [message for message in server.receive() if message[0] == kind] \
            if server is not None else []

    def decoded_audio(self, messages):
        decoder = av.CodecContext.create("aac", "r")
        decoder.extradata = audio_specific_config()
        samples = array.array("f")
        for _, _, _, body in messages:
            if body[1] == 1:
                for frame in decoder.decode(av.Packet(body[2:])):
                    samples.frombytes(bytes(frame.planes[0])[:frame.samples * 4])
        return samples

    def write_wav(self, name, frequency_hz):
        with wave.open(os.path.join(self.media, name), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(8000)
            handle.writeframes(tone_samples(1.0, frequency_hz, 0.5, 8000))

    def test_interfaces(self):
        """
        The service observes streams and a push is a stream sink.
        """
        verifyObject(IStreamObserver, self.service)
        self.publish()
        push = self.service.get(self.start()["mediaSessionId"])
        verifyObject(IStreamSink, push)

    def test_startup_describes_the_push(self):
        """
        /push/startup answers with the RTMP stream name rtmp_<name>, the URL and the status.
        """
        self.publish()
        description = self.start()
        self.assertEqual({key: value for key, value in description.items()
                          if key != "mediaSessionId"},
                         {"streamName": "rtmp_s1", "localStreamName": "s1", "rtmpUrl": URL,
                          "width": 0, "height": 0, "muted": False, "soundEnabled": False,
                          "options": {}, "status": WAIT})
        [(target, _, _)] = self.connections.attempts
        self.assertEqual((target.host, target.port, target.app, target.stream),
                         ("127.0.0.1", 1935, "live", "rtmp_s1"))

    def test_stream_name_prefix(self):
        """
        The RTMP name is the prefix (rtmp_transponder_stream_name_prefix) before the local
        name; an empty prefix keeps the name; an explicit rtmpTransponderStreamName is as is.
        """
        self.publish()
        self.service.stream_name_prefix = ""
        self.assertEqual(self.start()["streamName"], "s1")
        self.service.stream_name_prefix = "out-"
        self.assertEqual(self.service.startup("s1", URL + "2")["streamName"], "out-s1")
        self.assertEqual(self.service.startup("s1", URL + "3", "given")["streamName"], "given")
        self.assertEqual([target.stream for target, _, _ in self.connections.attempts],
                         ["s1", "out-s1", "given"])

    def test_call_push_prefixes_rtmp_stream(self):
        """
        /call/startup's rtmpStream is pushed with the prefix (the URL the official SIP-as-RTMP
        pages print: <rtmpUrl>/rtmp_<rtmpStream>); without one, the call's stream is named as
        /push/startup names it; the push waits for the call's stream and ends with the call.
        """
        calls = [CallStub("c1"), CallStub("c2")]
        push_call(self.service, calls[0], {"rtmpUrl": URL, "rtmpStream": "room"})
        push_call(self.service, calls[1], {"rtmpUrl": URL})
        self.assertEqual(sorted(push["streamName"] for push in self.service.find_all()),
                         ["rtmp_call_c2", "rtmp_room"])
        for call in calls:
            for release in call.on_release:
                release(call)
        self.assertEqual(self.service.find_all(), [])
        with self.assertRaises(InvalidField):
            push_call(self.service, CallStub("c3"), {"rtmpUrl": URL, "rtmpStream": 5})

    def test_errors(self):
        """
        A duplicate stream + URL is 409, a bad URL or action 400, an unknown stream 404.
        """
        self.publish()
        self.start()
        self.assertRaises(Conflict, self.service.startup, "s1", URL)
        self.assertRaises(Conflict, self.service.startup, "s1", URL + "/rtmp_s1", full_url=True)
        self.service.startup("s1", URL, "other")
        self.assertRaises(InvalidField, self.service.startup, "s1", "http://x/live")
        self.assertRaises(InvalidField, self.service.startup, "s1", URL, "x",
                          {"action": "explode"})
        self.assertRaises(NotFound, self.service.startup, "nope", URL)
        self.assertRaises(NotFound, self.service.terminate, "nope")
        self.assertRaises(NotFound, self.service.mute, "nope")

    def test_active_then_media(self):
        """
        Once published the status is ACTIVE; PCMU goes out as AAC (sequence header first) that
        decodes to the 440 Hz tone, and H.264 as an AVC sequence header then frames, starting
        at a keyframe, with the picture size learnt.
        """
        source, stream = self.publish(video="H264/90000")
        description = self.start()
        server = self.connections.accept()
        self.assertEqual(self.statuses, [RtmpStreamStatus.RTMP_STREAM_ACTIVE])
        self.clock.advance(0.25)  # the stream merges requests 0.25 s apart
        self.assertEqual(source.keyframe_requests, 2)  # attach, then publish
        units = h264_access_units(50)
        SyntheticFeed(stream, audio=pcmu_tone(2.0), video=units[5:]).run_with_clock(self.clock)
        messages = server.receive()
        audio = [m for m in messages if m[0] == AUDIO]
        video = [m for m in messages if m[0] == VIDEO]
        self.assertEqual(audio[0][3], b"\xaf\x00" + audio_specific_config())
        samples = self.decoded_audio(audio)
        self.assertApproximates(frequency(samples[4096:]), 440.0, 5.0)
        self.assertApproximates(audio[-1][2], 2000, 80)
        self.assertEqual(video[0][3][:2], b"\x17\x00")
        self.assertEqual(video[1][3][:2], b"\x17\x01")
        self.assertEqual(len(video), 1 + 25)  # the 25 frames from the keyframe at frame 25
        self.assertApproximates(video[1][2], 800, 60)
        found = self.service.find({"mediaSessionId": description["mediaSessionId"]})
        self.assertEqual((found[0]["width"], found[0]["height"], found[0]["status"]),
                         (320, 240, ACTIVE))

    def test_opus_audio(self):
        """
        Opus is transcoded to AAC too.
        """
        _, stream = self.publish(audio="opus/48000/2")
        self.start()
        server = self.connections.accept()
        SyntheticFeed(stream, audio=opus_tone(1.0), audio_codec="opus/48000/2") \
            .run_with_clock(self.clock)
        samples = self.decoded_audio(self.sent(server, AUDIO))
        self.assertApproximates(frequency(samples[4096:]), 440.0, 5.0)

    def test_mute_unmute(self):
        """
        Muted pushes send silence in place of the audio; unmuted ones the audio again.
        """
        _, stream = self.publish()
        push_id = self.start(options={"action": "mute"})["mediaSessionId"]
        server = self.connections.accept()
        feed = SyntheticFeed(stream, audio=pcmu_tone(2.0))
        feed.run_with_clock(self.clock, seconds=1.0)
        self.assertLess(rms(self.decoded_audio(self.sent(server, AUDIO))), 0.001)
        self.assertTrue(self.service.unmute(push_id)["muted"] is False)
        feed.run_with_clock(self.clock, seconds=1.0)
        self.assertGreater(rms(self.decoded_audio(self.sent(server, AUDIO))[2048:]), 0.2)
        self.assertTrue(self.service.mute(push_id)["muted"])

    def test_sound_on_and_off(self):
        """
        sound_on sends a WAV from the media folder in place of the audio, until it ends (or
        sound_off); the stream's audio comes back after it.
        """
        self.write_wav("beep.wav", 1000)
        _, stream = self.publish()
        push_id = self.start()["mediaSessionId"]
        server = self.connections.accept()
        self.assertTrue(self.service.sound_on(push_id, "beep.wav")["soundEnabled"])
        feed = SyntheticFeed(stream, audio=pcmu_tone(5.0))
        feed.run_with_clock(self.clock, seconds=0.9)
        self.assertApproximates(frequency(self.decoded_audio(self.sent(server, AUDIO))[4096:]),
                                1000.0, 15.0)
        feed.run_with_clock(self.clock, seconds=0.5)
        self.assertFalse(self.service.find({})[0]["soundEnabled"])
        self.service.sound_on(push_id, "beep.wav", loop=True)
        feed.run_with_clock(self.clock, seconds=1.5)
        self.assertTrue(self.service.find({})[0]["soundEnabled"])
        self.service.sound_off(push_id)
        self.sent(server, AUDIO)
        feed.run_with_clock(self.clock, seconds=0.9)
        self.assertApproximates(frequency(self.decoded_audio(self.sent(server, AUDIO))[4096:]),
                                440.0, 10.0)

    def test_sound_files_checked(self):
        """
        Sound files must exist inside the media folder and be sound.
        """
        self.publish()
        push_id = self.start()["mediaSessionId"]
        self.assertRaises(NotFound, self.service.sound_on, push_id, "missing.wav")
        self.assertRaises(InvalidField, self.service.sound_on, push_id, "../secret.wav")
        self.assertRaises(InvalidField, self.service.sound_on, push_id, "/etc/passwd")
        with open(os.path.join(self.media, "text.wav"), "w") as handle:
            handle.write("not a sound")
        self.assertRaises(InvalidField, self.service.sound_on, push_id, "text.wav")
        self.assertRaises(NotFound, self.service.startup, "s1", URL, "x",
                          {"action": "sound_on", "soundFile": "missing.wav"})

    def test_lost_and_reconnected_with_backoff(self):
        """
        A lost session is RTMP_CONNECTION_LOST and is retried after 1, 2, 4, 4 s until the
        server takes it again (ACTIVE); a new session starts with new headers.
        """
        _, stream = self.publish()
        self.start()
        server = self.connections.accept()
        server.publisher.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.statuses[-1], RtmpStreamStatus.RTMP_CONNECTION_LOST)
        waits = []
        for attempt in range(4):
            before = len(self.connections.attempts)
            elapsed = 0.0
            while len(self.connections.attempts) == before:
                self.clock.advance(0.5)
                elapsed += 0.5
            waits.append(elapsed)
            self.connections.refuse()
        self.assertEqual(waits, [1.0, 2.0, 4.0, 4.0])
        self.assertEqual(self.service.find({})[0]["status"], LOST)
        self.clock.advance(4.0)
        server = self.connections.accept()
        self.assertEqual(self.statuses[-1], RtmpStreamStatus.RTMP_STREAM_ACTIVE)
        SyntheticFeed(stream, audio=pcmu_tone(0.2)).run_with_clock(self.clock)
        self.assertEqual(self.sent(server, AUDIO)[0][3][:2], b"\xaf\x00")

    def test_never_connected_gives_up(self):
        """
        A push whose server never accepts it is RTMP_CONNECTION_FAILED and is removed after
        max_failed_attempts.
        """
        self.publish()
        self.start()
        self.connections.refuse()
        self.assertEqual(self.statuses, [RtmpStreamStatus.RTMP_CONNECTION_FAILED])
        self.clock.advance(1.0)
        self.connections.refuse()
        self.clock.advance(2.0)
        self.connections.refuse()
        self.assertEqual(len(self.connections.attempts), 3)
        self.assertEqual(self.service.find_all(), [])
        self.clock.advance(60)
        self.assertEqual(len(self.connections.attempts), 3)
        self.assertEqual(self.streams.get("s1").sinks, ())

    def test_publish_timeout(self):
        """
        A server that accepts TCP but never confirms the publish is dropped after the timeouts
        and counts as a failed attempt.
        """
        self.publish()
        self.start()
        target, protocol, waiting = self.connections.attempts[0]
        transport = StringTransport()
        protocol.makeConnection(transport)
        waiting.callback(protocol)
        self.clock.advance(self.service.connect_timeout + self.service.publish_timeout)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.statuses, [RtmpStreamStatus.RTMP_CONNECTION_FAILED])

    def test_terminate_and_stream_end(self):
        """
        terminate closes the session and forgets the push; a stream that ends takes its pushes
        with it.
        """
        _, stream = self.publish()
        first = self.start()["mediaSessionId"]
        second = self.service.startup("s1", URL, "two")["mediaSessionId"]
        server = self.connections.accept(0)
        push = self.service.get(first)
        self.assertEqual(self.service.terminate(first)["mediaSessionId"], first)
        self.assertTrue(push.ended)
        self.assertTrue(server.transport.disconnecting)
        self.assertEqual([p["mediaSessionId"] for p in self.service.find_all()], [second])
        self.assertEqual(len(stream.sinks), 1)
        stream.end("Stopped by publisher stop")
        self.assertEqual(self.service.find_all(), [])
        self.assertTrue(self.connections.attempts[1][2].called)  # its connect was cancelled

    def test_wait_for_stream(self):
        """
        A push for a stream not published yet (a call not answered) waits in RTMP_STREAM_WAIT
        and connects when the stream appears.
        """
        description = self.start("later", wait_for_stream=True)
        self.assertEqual((description["status"], self.connections.attempts), (WAIT, []))
        self.publish("later")
        self.assertEqual(len(self.connections.attempts), 1)
        self.publish("other")
        self.assertEqual(len(self.connections.attempts), 1)

    def test_find_filters(self):
        """
        /push/find matches the RTMP or local stream name, the URL, the mediaSessionId.
        """
        self.publish("a")
        self.publish("b")
        first = self.service.startup("a", URL)
        self.service.startup("b", URL, "custom")
        self.assertEqual([p["streamName"] for p in self.service.find({"streamName": "a"})],
                         ["rtmp_a"])
        self.assertEqual([p["streamName"] for p in self.service.find({"streamName": "custom"})],
                         ["custom"])
        self.assertEqual(len(self.service.find({"rtmpUrl": URL})), 2)
        self.assertEqual(len(self.service.find({"rtmpUrl": URL + "/custom"})), 1)
        self.assertEqual(self.service.find({"mediaSessionId": first["mediaSessionId"],
                                            "streamName": "b"}), [])

    def test_stop(self):
        """
        Stopping the service ends every push and fires once their connections are closed.
        """
        self.publish()
        self.start()
        server = self.connections.accept()
        done = self.service.stop()
        self.assertNoResult(done)
        server.publisher.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(done)
        self.assertEqual(self.service.find_all(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stuck_close_is_aborted(self):
        """
        A session whose server stops reading is dropped after CLOSE_TIMEOUT.
        """
        self.publish()
        push_id = self.start()["mediaSessionId"]
        server = self.connections.accept()
        closed = self.service.get(push_id).end()
        self.assertFalse(server.transport.disconnected)
        self.clock.advance(CLOSE_TIMEOUT)
        self.assertTrue(server.transport.disconnected)  # abortConnection
        server.publisher.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(closed)

    def test_audio_only_stream(self):
        """
        A stream without H.264 is pushed as audio only: no video sink, no video in the
        metadata.
        """
        self.publish(video="VP8/90000")
        push = self.service.get(self.start()["mediaSessionId"])
        self.assertEqual(push.kinds, ("audio",))
        server = self.connections.accept()
        [metadata] = [m for m in server.receive() if m[0] == 18]
        self.assertNotIn("videocodecid", metadata[3][2])


class RtmpModuleTests(SynchronousTestCase):
    """
    The module and its drop-in.
    """

    def context(self, clock):
        return module_context("rtmp", clock, values={"media_dir": "sounds"})

    def test_module_provides_the_service(self):
        """
        The module provides "rtmp" with the configured media folder.
        """
        clock = Clock()
        context = self.context(clock)
        module = RtmpModule()
        verifyObject(IWcsModule, module)
        module.start(context)
        self.assertEqual(context.services["rtmp"].media_dir, os.path.abspath("sounds"))
        self.successResultOf(module.stop())

    def test_stream_name_prefix_key(self):
        """
        rtmp_transponder_stream_name_prefix is the module's key: rtmp_ by default (WCS's), any
        text (empty included) when configured.
        """
        for values, prefix in (({}, "rtmp_"), ({"rtmp_transponder_stream_name_prefix": ""}, ""),
                               ({"rtmp_transponder_stream_name_prefix": "wcs_"}, "wcs_")):
            context = module_context("rtmp", Clock(), values=values)
            module = RtmpModule()
            module.start(context)
            self.assertEqual(context.services["rtmp"].stream_name_prefix, prefix)
            self.successResultOf(module.stop())

    def test_drop_in(self):
        """
        plugins/wcs_rtmp.py starts and stops the module.
        """
        plugin_package()
        from wcs_plugins.wcs_rtmp import rtmp

        context = self.context(Clock())
        verifyObject(IWcsModule, rtmp)
        rtmp.start(context)
        self.assertIn("rtmp", context.services)
        self.successResultOf(succeed(rtmp.stop()))
