"""
Tests for L{wcs_twisted.media.streams}: named streams, one source and many sinks.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import (
    IStream,
    IStreamObserver,
    IStreamRegistry,
    IStreamSink,
    IStreamSource,
)
from wcs_twisted.media.streams import (
    KEYFRAME_REQUEST_INTERVAL,
    StreamNameInUse,
    StreamNotFound,
    StreamRegistry,
)

OPUS = "opus/48000/2"
H264 = "H264/90000"


@implementer(IStreamSource)
class FakeSource:
    """
    A source that counts keyframe requests; C{on_keyframe_request} may answer one at once.
    """

    def __init__(self, audio_codec=OPUS, video_codec=H264, journal=None):
        self.audio_codec = audio_codec
        self.video_codec = video_codec
        self.keyframe_requests = 0
        self.on_keyframe_request = None
        self.ended = []
        self.journal = journal if journal is not None else []

    def request_keyframe(self):
        self.keyframe_requests += 1
        if self.on_keyframe_request is not None:
            self.on_keyframe_request()

    def stream_ended(self, reason):
        self.ended.append(reason)
        self.journal.append(("source ended", reason))


@implementer(IStreamSink)
class FakeSink:
    """
    A sink that records packets; C{on_packet} runs inside packet_received (re-entrancy tests).
    """

    def __init__(self, name="sink", kinds=("audio", "video"), journal=None):
        self.name = name
        self.kinds = frozenset(kinds)
        self.packets = []
        self.ended = []
        self.on_packet = None
        self.journal = journal if journal is not None else []

    def __repr__(self):
        return f"<FakeSink {self.name}>"

    def packet_received(self, kind, payload, codec_name, timestamp, marker):
        self.packets.append((kind, payload, codec_name, timestamp, marker))
        if self.on_packet is not None:
            self.on_packet()

    def stream_ended(self, reason):
        self.ended.append(reason)
        self.journal.append((self.name + " ended", reason))


@implementer(IStreamObserver)
class FakeObserver:
    def __init__(self, journal):
        self.journal = journal

    def stream_published(self, stream):
        self.journal.append(("published", stream.name))

    def stream_unpublished(self, stream, reason):
        self.journal.append(("unpublished", stream.name, reason))


def audio(stream, timestamp, payload=None):
    stream.packet_received("audio", payload or b"a%d" % timestamp, OPUS, timestamp, False)


def video(stream, timestamp, payload=None, marker=True):
    stream.packet_received("video", payload or b"v%d" % timestamp, H264, timestamp, marker)


def timestamps(sink, kind=None):
    return [packet[3] for packet in sink.packets if kind is None or packet[0] == kind]


class FakesTests(SynchronousTestCase):
    """
    The fakes provide the interfaces they stand for.
    """

    def test_fakes(self):
        """
        FakeSource, FakeSink and FakeObserver pass verifyObject.
        """
        verifyObject(IStreamSource, FakeSource())
        verifyObject(IStreamSink, FakeSink())
        verifyObject(IStreamObserver, FakeObserver([]))


class StreamRegistryTests(SynchronousTestCase):
    """
    Publishing, finding and ending named streams.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1700000000.25)
        self.registry = StreamRegistry(self.clock)

    def test_provides_the_interfaces(self):
        """
        The registry is an IStreamRegistry and what publish returns is an IStream.
        """
        verifyObject(IStreamRegistry, self.registry)
        verifyObject(IStream, self.registry.publish("s", FakeSource()))

    def test_publish_get_and_describe(self):
        """
        A published stream is found by name and described as a WCS stream object.
        """
        source = FakeSource(video_codec=None)
        stream = self.registry.publish("call-1", source, {"mediaSessionId": "m1",
                                                          "published": True})
        self.assertIs(self.registry.get("call-1"), stream)
        self.assertIsNone(self.registry.get("other"))
        self.assertIn("call-1", self.registry)
        self.assertEqual(len(self.registry), 1)
        self.assertIs(stream.source, source)
        self.assertIsNone(stream.ended)
        self.assertEqual(stream.describe(), {
            "mediaSessionId": "m1", "published": True, "name": "call-1",
            "audioCodec": OPUS, "videoCodec": None, "createDate": 1700000000250,
        })

    def test_find_matches_every_filter(self):
        """
        find() returns the streams whose description has every filter field, in publication
        order; empty filters return all.
        """
        one = self.registry.publish("one", FakeSource(), {"mediaSessionId": "m1"})
        two = self.registry.publish("two", FakeSource(), {"mediaSessionId": "m2"})
        self.assertEqual(self.registry.find({}), [one, two])
        self.assertEqual(self.registry.find({"mediaSessionId": "m2"}), [two])
        self.assertEqual(self.registry.find({"name": "one", "mediaSessionId": "m1"}), [one])
        self.assertEqual(self.registry.find({"name": "one", "mediaSessionId": "m2"}), [])
        self.assertEqual(self.registry.find({"nosuchfield": None}), [])

    def test_name_in_use(self):
        """
        A second publish under a name in use fails with the WCS info text.
        """
        self.registry.publish("s", FakeSource())
        error = self.assertRaises(StreamNameInUse, self.registry.publish, "s", FakeSource())
        self.assertIsInstance(error, MediaError)
        self.assertEqual(error.info, "Stream name is already in use")
        self.assertRaises(ValueError, self.registry.publish, "", FakeSource())

    def test_unknown_stream(self):
        """
        Attaching to or unpublishing an unknown name fails with "Stream not found"; detaching
        from one is ignored.
        """
        error = self.assertRaises(StreamNotFound, self.registry.attach, "nope", FakeSink())
        self.assertIsInstance(error, MediaError)
        self.assertEqual(error.info, "Stream not found")
        self.assertRaises(StreamNotFound, self.registry.unpublish, "nope", "x")
        self.registry.detach("nope", FakeSink())

    def test_name_is_free_once_ended(self):
        """
        An ended stream leaves the registry; ending it again does not touch a newer stream
        published under the same name.
        """
        old = self.registry.publish("s", FakeSource())
        old.end("Stopped by publisher stop")
        self.assertIsNone(self.registry.get("s"))
        new = self.registry.publish("s", FakeSource())
        old.end("Stopped by publisher stop")
        self.assertIs(self.registry.get("s"), new)
        self.assertIsNone(new.ended)

    def test_observers(self):
        """
        Observers hear of publications and of ends (after the sinks and the source); a
        raising observer is logged and the others still hear.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        journal = []

        class Broken:
            def stream_published(self, stream):
                raise RuntimeError("observer exploded")

            def stream_unpublished(self, stream, reason):
                raise RuntimeError("observer exploded")

        self.registry.add_observer(Broken())
        observer = FakeObserver(journal)
        self.registry.add_observer(observer)
        self.registry.add_observer(observer)
        stream = self.registry.publish("s", FakeSource(journal=journal))
        self.registry.attach("s", FakeSink("player", journal=journal))
        self.registry.unpublish("s", "Stopped by rest /terminate")
        self.assertEqual(journal, [
            ("published", "s"),
            ("player ended", "Stopped by rest /terminate"),
            ("source ended", "Stopped by rest /terminate"),
            ("unpublished", "s", "Stopped by rest /terminate"),
        ])
        self.assertEqual(stream.ended, "Stopped by rest /terminate")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertTrue(any("stream_published failed" in formatEvent(event) for event in events))
        self.registry.remove_observer(observer)
        self.registry.remove_observer(observer)
        self.registry.publish("t", FakeSource())
        self.assertEqual(journal[-1], ("unpublished", "s", "Stopped by rest /terminate"))
        self.flushLoggedErrors(RuntimeError)

    def test_end_all(self):
        """
        end_all() ends every stream with one reason.
        """
        sinks = [FakeSink(), FakeSink()]
        self.registry.attach(self.registry.publish("a", FakeSource()).name, sinks[0])
        self.registry.attach(self.registry.publish("b", FakeSource()).name, sinks[1])
        self.registry.end_all()
        self.assertEqual(len(self.registry), 0)
        self.assertEqual([sink.ended for sink in sinks],
                         [["Requested stream shutdown"], ["Requested stream shutdown"]])


class FanOutTests(SynchronousTestCase):
    """
    One source's packets reach every sink that takes them.
    """

    def setUp(self):
        self.clock = Clock()
        self.registry = StreamRegistry(self.clock)
        self.stream = self.registry.publish("s", FakeSource())

    def attach(self, *sinks):
        for sink in sinks:
            self.assertIs(self.registry.attach("s", sink), self.stream)
        return sinks

    def test_every_sink_gets_the_same_packet(self):
        """
        Each sink gets every packet, with the very same payload object and fields.
        """
        a, b, c = self.attach(FakeSink("a"), FakeSink("b"), FakeSink("c"))
        payload = b"\x01" * 160
        self.stream.packet_received("audio", payload, OPUS, 960, True)
        for sink in (a, b, c):
            self.assertEqual(sink.packets, [("audio", payload, OPUS, 960, True)])
            self.assertIs(sink.packets[0][1], payload)
        self.assertEqual(self.stream.sinks, (a, b, c))

    def test_sinks_get_only_their_kinds(self):
        """
        Audio-only sinks get no video, video-only sinks no audio; other kinds reach nobody.
        """
        both, audio_only, video_only = self.attach(
            FakeSink("both"), FakeSink("audio", ["audio"]), FakeSink("video", ["video"]))
        audio(self.stream, 1)
        video(self.stream, 2)
        self.stream.packet_received("data", b"x", "text/plain", 3, False)
        self.assertEqual(timestamps(both), [1, 2])
        self.assertEqual(timestamps(audio_only), [1])
        self.assertEqual(timestamps(video_only), [2])

    def test_bad_kinds_are_refused(self):
        """
        A sink must take audio and/or video.
        """
        self.assertRaises(ValueError, self.stream.attach, FakeSink(kinds=()))
        self.assertRaises(ValueError, self.stream.attach, FakeSink(kinds=["audio", "text"]))
        self.assertEqual(self.stream.sinks, ())

    def test_attach_and_detach_while_flowing(self):
        """
        A sink attached mid-stream gets the packets from then on, a detached one gets no more,
        and the other sinks miss nothing.
        """
        steady, = self.attach(FakeSink("steady"))
        leaving = FakeSink("leaving")
        joining = FakeSink("joining")
        audio(self.stream, 0)
        self.attach(leaving)
        audio(self.stream, 1)
        self.attach(joining)
        self.registry.detach("s", leaving)
        audio(self.stream, 2)
        self.stream.detach(joining)
        audio(self.stream, 3)
        self.assertEqual(timestamps(steady), [0, 1, 2, 3])
        self.assertEqual(timestamps(leaving), [1])
        self.assertEqual(timestamps(joining), [2])
        self.assertEqual(leaving.ended, [])

    def test_attach_twice_and_detach_unknown(self):
        """
        Attaching an attached sink changes nothing; detaching an unknown sink is ignored.
        """
        sink, = self.attach(FakeSink())
        self.attach(sink)
        self.stream.detach(FakeSink())
        audio(self.stream, 1)
        self.assertEqual(timestamps(sink), [1])
        self.assertEqual(self.stream.sinks, (sink,))

    def test_attach_inside_a_fan_out(self):
        """
        A sink attached by another sink during a packet's fan-out waits for the next packet;
        the packet still reaches everyone else.
        """
        a, b = self.attach(FakeSink("a"), FakeSink("b"))
        late = FakeSink("late")
        a.on_packet = lambda: self.stream.attach(late) if not late.packets else None
        audio(self.stream, 1)
        audio(self.stream, 2)
        self.assertEqual(timestamps(b), [1, 2])
        self.assertEqual(timestamps(late), [2])

    def test_detach_inside_a_fan_out(self):
        """
        A sink detached during a fan-out (by an earlier sink) gets nothing more, not even the
        packet being fanned out; the sinks after it still get it.
        """
        a, b, c = self.attach(FakeSink("a"), FakeSink("b"), FakeSink("c"))
        a.on_packet = lambda: self.stream.detach(b)
        audio(self.stream, 1)
        audio(self.stream, 2)
        self.assertEqual(timestamps(a), [1, 2])
        self.assertEqual(timestamps(b), [])
        self.assertEqual(timestamps(c), [1, 2])

    def test_a_raising_sink_is_detached(self):
        """
        A sink that raises is logged, detached and told "Failed by error"; the others get the
        packet and the following ones.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        bad, good = self.attach(FakeSink("bad"), FakeSink("good"))

        def explode():
            raise ZeroDivisionError()

        bad.on_packet = explode
        audio(self.stream, 1)
        audio(self.stream, 2)
        self.assertEqual(timestamps(good), [1, 2])
        self.assertEqual(timestamps(bad), [1])
        self.assertEqual(bad.ended, ["Failed by error"])
        self.assertEqual(self.stream.sinks, (good,))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertIn("stream s: sink <FakeSink bad> failed on a packet; detached",
                      [formatEvent(event) for event in events])


class EndTests(SynchronousTestCase):
    """
    A source ending stops its sinks with a WCS status info.
    """

    def setUp(self):
        self.clock = Clock()
        self.registry = StreamRegistry(self.clock)
        self.source = FakeSource()
        self.stream = self.registry.publish("s", self.source)

    def test_source_end_stops_every_sink(self):
        """
        Ending the stream tells each sink once, then the source, and no packet flows after.
        """
        sinks = [FakeSink("a"), FakeSink("b", ["audio"])]
        for sink in sinks:
            self.stream.attach(sink)
        self.stream.end("Stopped by publisher stop")
        audio(self.stream, 1)
        self.stream.end("Stopped by publisher stop")
        for sink in sinks:
            self.assertEqual(sink.ended, ["Stopped by publisher stop"])
            self.assertEqual(sink.packets, [])
        self.assertEqual(self.source.ended, ["Stopped by publisher stop"])
        self.assertEqual(self.stream.sinks, ())
        self.assertEqual(self.stream.ended, "Stopped by publisher stop")
        self.assertIsNone(self.registry.get("s"))
        error = self.assertRaises(StreamNotFound, self.stream.attach, FakeSink())
        self.assertEqual(error.info, "Stream not found")

    def test_default_reason_is_publisher_stop(self):
        """
        unpublish() and end() without a reason mean the publisher stopped.
        """
        sink = FakeSink()
        self.registry.attach("s", sink)
        self.registry.unpublish("s")
        self.assertEqual(sink.ended, ["Stopped by publisher stop"])

    def test_end_inside_a_fan_out(self):
        """
        A sink ending the stream during a fan-out: the sinks after it get stream_ended and
        never that packet.
        """
        a, b = FakeSink("a"), FakeSink("b")
        self.stream.attach(a)
        self.stream.attach(b)
        a.on_packet = lambda: self.stream.end("Stopped by user")
        audio(self.stream, 1)
        self.assertEqual(timestamps(b), [])
        self.assertEqual(b.ended, ["Stopped by user"])

    def test_raising_callbacks_do_not_stop_the_others(self):
        """
        A sink whose stream_ended raises is logged; the other sinks and the source are told.
        """
        class Bad(FakeSink):
            def stream_ended(self, reason):
                raise RuntimeError("ended exploded")

        good = FakeSink("good")
        self.stream.attach(Bad("bad"))
        self.stream.attach(good)
        self.stream.end("Stopped by rest /terminate")
        self.assertEqual(good.ended, ["Stopped by rest /terminate"])
        self.assertEqual(self.source.ended, ["Stopped by rest /terminate"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_republish_from_the_end_callback(self):
        """
        The name is free again by the time the sinks hear of the end.
        """
        sink = FakeSink()
        self.stream.attach(sink)
        sink.stream_ended = lambda reason: self.registry.publish("s", FakeSource())
        self.stream.end("Stopped by publisher stop")
        self.assertIsNot(self.registry.get("s"), self.stream)
        self.assertIsNotNone(self.registry.get("s"))


class KeyframeTests(SynchronousTestCase):
    """
    A new video sink gets a keyframe promptly; requests are merged.
    """

    def setUp(self):
        self.clock = Clock()
        self.registry = StreamRegistry(self.clock)
        self.source = FakeSource()
        self.stream = self.registry.publish("s", self.source)

    def test_video_sink_asks_for_a_keyframe(self):
        """
        Attaching a sink that takes video asks the source for a keyframe; an audio-only sink
        does not.
        """
        self.stream.attach(FakeSink(kinds=["audio"]))
        self.assertEqual(self.source.keyframe_requests, 0)
        self.stream.attach(FakeSink(kinds=["video"]))
        self.assertEqual(self.source.keyframe_requests, 1)

    def test_keyframe_reaches_the_new_sink(self):
        """
        The sink is attached before the request, so a keyframe the source sends at once
        reaches it.
        """
        self.source.on_keyframe_request = lambda: video(self.stream, 9000, b"IDR")
        sink = FakeSink()
        self.stream.attach(sink)
        self.assertEqual(sink.packets, [("video", b"IDR", H264, 9000, True)])

    def test_requests_are_merged(self):
        """
        Requests within KEYFRAME_REQUEST_INTERVAL of the last one become one request at the
        end of the interval; a later one goes out at once.
        """
        for _ in range(3):
            self.stream.attach(FakeSink())
        self.assertEqual(self.source.keyframe_requests, 1)
        self.stream.request_keyframe()
        self.clock.advance(KEYFRAME_REQUEST_INTERVAL - 0.01)
        self.assertEqual(self.source.keyframe_requests, 1)
        self.clock.advance(0.01)
        self.assertEqual(self.source.keyframe_requests, 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(5)
        self.stream.request_keyframe()
        self.assertEqual(self.source.keyframe_requests, 3)

    def test_end_cancels_a_pending_request(self):
        """
        Ending the stream drops a merged request that is still due, and later requests.
        """
        self.stream.attach(FakeSink())
        self.stream.request_keyframe()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.stream.end("Stopped by publisher stop")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.stream.request_keyframe()
        self.assertEqual(self.source.keyframe_requests, 1)

    def test_raising_source_is_logged(self):
        """
        A source whose request_keyframe raises is logged; the attach still succeeds.
        """
        def explode():
            raise RuntimeError("no keyframes here")

        self.source.on_keyframe_request = explode
        sink = FakeSink()
        self.stream.attach(sink)
        self.assertEqual(self.stream.sinks, (sink,))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
