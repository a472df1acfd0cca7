"""
Tests for L{wcs_twisted.gateway.stream_table}: WebSocket publish/play, SIP calls as streams and the
/stream/* queries, over the real stream registry with fake media (SDP negotiated for real by
L{wcs_twisted.testing.fakes}, no packets) and, for SIP calls, the in-memory SIP network.
"""

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.gateway.test_call import BROWSER_OFFER, PEER_ANSWER, CallTestMixin
from tests.gateway.test_sessions import RecordingConnection
from wcs_twisted.interfaces import (
    ICallObserver,
    IMediaStreams,
    IMediaStreamSink,
    IMediaStreamSource,
    IPausableBridge,
    IStreamObserver,
)
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.testing.fakes import FakeMediaBridge, FakeMediaFactory
from wcs_twisted.errors import DomainError, InvalidField, NotFound
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.gateway.stream_table import BadParameters, StreamTable

PLAY_OFFER = BROWSER_OFFER.replace("a=sendrecv", "a=recvonly")
PUBLISH_OFFER = BROWSER_OFFER.replace("a=sendrecv", "a=sendonly")
VIDEO_ONLY_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n"
    "a=recvonly\r\n")


@implementer(IMediaStreamSource)
class FakeSource:
    """
    A session's media as a stream source, recording what the table does with it.
    """

    def __init__(self, session):
        self.session = session
        self.stream = None
        self.started = []
        self.keyframe_requests = 0
        self.ended = []

    @property
    def audio_codec(self):
        return self.session.audio_codec

    @property
    def video_codec(self):
        return self.session.video_codec

    def start(self, stream):
        self.stream = stream
        self.started.append(stream)

    def stop(self):
        self.stream = None

    def request_keyframe(self):
        self.keyframe_requests += 1

    def stream_ended(self, reason):
        self.ended.append(reason)
        self.stop()


@implementer(IMediaStreamSink)
class FakeSink:
    """
    A stream sent out on a session: records the packets it would send.
    """

    kinds = ("audio",)

    def __init__(self, session, on_ended):
        self.session = session
        self.on_ended = on_ended
        self.stream = None
        self.packets = []

    def play(self, stream):
        stream.attach(self)
        self.stream = stream

    def stop(self):
        if self.stream is not None:
            self.stream.detach(self)
            self.stream = None

    def packet_received(self, kind, payload, codec_name, timestamp, marker):
        self.packets.append((kind, payload, codec_name))

    def stream_ended(self, reason):
        self.stream = None
        self.on_ended(reason)


@implementer(IMediaStreams)
class FakeStreamMedia(FakeMediaFactory):
    """
    The fake media factory plus stream sources and sinks.
    """

    def __init__(self):
        super().__init__()
        self.sources = []
        self.sinks = []

    def stream_source(self, session):
        source = FakeSource(session)
        self.sources.append(source)
        return source

    def stream_sink(self, session, on_ended):
        sink = FakeSink(session, on_ended)
        self.sinks.append(sink)
        return sink


def stream_events(connection, media_session_id=None):
    """
    The (status, info) of every notifyStreamStatusEvent sent, optionally for one stream.
    """
    return [(data[0]["status"], data[0].get("info")) for name, data in connection.messages
            if name == "notifyStreamStatusEvent"
            and media_session_id in (None, data[0]["mediaSessionId"])]


class StreamTableMixin:
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry = StreamRegistry(self.clock)
        self.media = FakeStreamMedia()
        self.sessions = SessionTable("node@10.0.0.1")
        self.table = StreamTable(self.registry, self.media, self.sessions, clock=self.clock)

    def connect(self, session_id):
        connection = RecordingConnection()
        return connection, self.sessions.open(connection, session_id, {})

    def publish_source(self, name, codec="PCMA/8000"):
        """
        A stream published by someone else (a SIP call, a module): a fake session's media.
        """
        session = self.media.create_session("rtp")
        session.audio_codec = codec
        source = self.media.stream_source(session)
        stream = self.registry.publish(name, source, {"mediaSessionId": f"src-{name}"})
        source.start(stream)
        return stream

    def play(self, session, media_session_id, name, sdp=PLAY_OFFER):
        return self.table.play(session, {"mediaSessionId": media_session_id, "name": name,
                                         "published": False, "sdp": sdp})

    def publish(self, session, media_session_id, name, sdp=PUBLISH_OFFER, **fields):
        return self.table.publish(session, {"mediaSessionId": media_session_id, "name": name,
                                            "published": True, "sdp": sdp, **fields})


class PlayTests(StreamTableMixin, SynchronousTestCase):
    """
    playStream / stopStream (spec 9.8).
    """

    def test_provides_observer_interfaces(self):
        """
        The table and its call streams observe the registry, call streams and injections
        observe calls; the fakes match the interfaces.
        """
        verifyObject(ICallObserver, self.table.call_streams)
        verifyObject(ICallObserver, self.table.injections)
        verifyObject(IStreamObserver, self.table.call_streams)
        verifyObject(IStreamObserver, self.table)
        verifyObject(IMediaStreams, self.media)
        session = self.media.create_session("webrtc")
        verifyObject(IMediaStreamSource, self.media.stream_source(session))
        verifyObject(IMediaStreamSink, self.media.stream_sink(session, None))

    def test_play_answers_with_the_stream_codec(self):
        """
        The browser's recvonly offer is answered sendonly with the stream's own codec, then
        setRemoteSDP [id, answer, true] and PLAYING; the stream's packets reach the player.
        """
        stream = self.publish_source("s1", codec="PCMA/8000")
        connection, session = self.connect("/p")
        self.play(session, "m1", "s1")
        names = [name for name, _ in connection.messages]
        self.assertEqual(names, ["setRemoteSDP", "notifyStreamStatusEvent"])
        media_session_id, answer, initiator = connection.messages[0][1]
        self.assertEqual((media_session_id, initiator), ("m1", True))
        self.assertIn("a=rtpmap:8 PCMA/8000", answer)
        self.assertIn("a=sendonly", answer)
        status = connection.messages[1][1][0]
        self.assertEqual((status["status"], status["name"], status["published"]),
                         ("PLAYING", "s1", False))
        self.assertEqual((status["sessionId"], status["audioCodec"]), ("/p", "PCMA/8000"))
        [sink] = self.media.sinks
        self.assertEqual(stream.sinks, (sink,))
        stream.packet_received("audio", b"\xd5" * 160, "PCMA/8000", 160, False)
        self.assertEqual(sink.packets, [("audio", b"\xd5" * 160, "PCMA/8000")])

    def test_unknown_stream(self):
        """
        A name nobody publishes: FAILED "Stream not found", no media session, nothing kept.
        """
        connection, session = self.connect("/p")
        self.play(session, "m1", "nobody")
        self.assertEqual(stream_events(connection), [("FAILED", "Stream not found")])
        self.assertEqual(self.media.sessions, [])
        self.assertEqual(len(self.table), 0)

    def test_media_session_id_checks(self):
        """
        No mediaSessionId, or one in use, is refused as a request (the SDK has no stream to
        fail): DomainError with the WCS text.
        """
        self.publish_source("s1")
        connection, session = self.connect("/p")
        error = self.assertRaises(DomainError, self.table.play, session, {"name": "s1"})
        self.assertEqual(error.info, "MediaSessionId is null")
        self.play(session, "m1", "s1")
        error = self.assertRaises(DomainError, self.play, session, "m1", "s1")
        self.assertEqual(error.info, "MediaSessionId is already in use")
        self.assertEqual(len(self.table), 1)

    def test_stop_stream(self):
        """
        stopStream detaches the player (the stream goes on), answers STOPPED and closes the
        media session.
        """
        stream = self.publish_source("s1")
        connection, session = self.connect("/p")
        self.play(session, "m1", "s1")
        self.table.stop(session, {"mediaSessionId": "m1"})
        self.assertEqual(stream_events(connection), [("PLAYING", None), ("STOPPED", None)])
        self.assertEqual(stream.sinks, ())
        self.assertIsNone(stream.ended)
        self.assertTrue(self.media.sessions[-1].closed)
        self.assertEqual(len(self.table), 0)

    def test_stop_unknown_or_foreign_stream(self):
        """
        Stopping an id this session does not own answers FAILED "Stream not found" for that id
        and leaves the owner's player alone.
        """
        self.publish_source("s1")
        owner_connection, owner = self.connect("/owner")
        connection, other = self.connect("/other")
        self.play(owner, "m1", "s1")
        self.table.stop(other, {"mediaSessionId": "m1"})
        self.assertEqual(stream_events(connection), [("FAILED", "Stream not found")])
        self.assertEqual(stream_events(owner_connection), [("PLAYING", None)])
        self.assertEqual(len(self.table), 1)

    def test_source_end_stops_players(self):
        """
        The stream's source ends: every player is STOPPED with the reason and released.
        """
        stream = self.publish_source("s1")
        first, session1 = self.connect("/a")
        second, session2 = self.connect("/b")
        self.play(session1, "m1", "s1")
        self.play(session2, "m2", "s1")
        stream.end("Stopped by publisher stop")
        for connection in (first, second):
            self.assertEqual(stream_events(connection)[-1],
                             ("STOPPED", "Stopped by publisher stop"))
        self.assertEqual(len(self.table), 0)
        self.assertTrue(all(session.closed for session in self.media.sessions[1:]))

    def test_no_common_codecs(self):
        """
        An offer the answer cannot be made for: FAILED with the media's info, media closed.
        """
        self.publish_source("s1")
        connection, session = self.connect("/p")
        self.play(session, "m1", "s1", sdp=VIDEO_ONLY_OFFER)
        self.assertEqual(stream_events(connection), [("FAILED", "No common codecs")])
        self.assertTrue(self.media.sessions[-1].closed)
        self.assertEqual(len(self.table), 0)

    def test_no_ports(self):
        """
        No media ports left: FAILED "No available ports".
        """
        self.publish_source("s1")
        self.media.exhausted = True
        connection, session = self.connect("/p")
        self.play(session, "m1", "s1")
        self.assertEqual(stream_events(connection), [("FAILED", "No available ports")])

    def test_player_media_failure(self):
        """
        The player's WebRTC leg fails (ICE): FAILED with that info, detached from the stream.
        """
        stream = self.publish_source("s1")
        connection, session = self.connect("/p")
        player = self.play(session, "m1", "s1")
        player.media.observer.media_failed(player.media, "Failed by ICE error")
        self.assertEqual(stream_events(connection)[-1], ("FAILED", "Failed by ICE error"))
        self.assertEqual(stream.sinks, ())

    def test_session_close_releases_players(self):
        """
        A closed session's players are detached and their media closed.
        """
        stream = self.publish_source("s1")
        connection, session = self.connect("/p")
        self.play(session, "m1", "s1")
        self.sessions.close(session, "gone")
        self.assertEqual(stream.sinks, ())
        self.assertTrue(self.media.sessions[-1].closed)
        self.assertEqual(len(self.table), 0)


class PublishTests(StreamTableMixin, SynchronousTestCase):
    """
    publishStream / unPublishStream (spec 9.9).
    """

    def test_publish(self):
        """
        The sendonly offer is answered recvonly, the browser's media is published under the
        name with the WCS fields, PUBLISHING.
        """
        connection, session = self.connect("/pub")
        self.publish(session, "m1", "cam", record=True, custom={"k": 1})
        self.assertEqual([name for name, _ in connection.messages],
                         ["setRemoteSDP", "notifyStreamStatusEvent"])
        self.assertIn("a=recvonly", connection.messages[0][1][1])
        self.assertEqual(stream_events(connection), [("PUBLISHING", None)])
        stream = self.registry.get("cam")
        [source] = self.media.sources
        self.assertEqual((stream.source, source.started), (source, [stream]))
        described = stream.describe()
        self.assertEqual(
            {k: described[k] for k in ("mediaSessionId", "published", "sessionId", "record",
                                       "status", "custom", "audioCodec", "mediaType")},
            {"mediaSessionId": "m1", "published": True, "sessionId": "/pub", "record": True,
             "status": "PUBLISHING", "custom": {"k": 1}, "audioCodec": "opus/48000/2",
             "mediaType": "publish"})

    def test_name_in_use(self):
        """
        A second publish of a name: FAILED "Stream name is already in use", no media made.
        """
        connection, session = self.connect("/pub")
        self.publish(session, "m1", "cam")
        made = len(self.media.sessions)
        self.publish(session, "m2", "cam")
        self.assertEqual(stream_events(connection, "m2"),
                         [("FAILED", "Stream name is already in use")])
        self.assertEqual(len(self.media.sessions), made)
        self.assertEqual(self.registry.get("cam").properties["mediaSessionId"], "m1")

    def test_unpublish_stops_players(self):
        """
        unPublishStream: the publisher UNPUBLISHED, its players STOPPED "Stopped by publisher
        stop", the name free again, every media session closed.
        """
        connection, session = self.connect("/pub")
        viewer, viewer_session = self.connect("/view")
        self.publish(session, "m1", "cam")
        self.play(viewer_session, "v1", "cam")
        self.table.unpublish(session, {"mediaSessionId": "m1", "published": True})
        self.assertEqual(stream_events(connection)[-1],
                         ("UNPUBLISHED", "Stopped by publisher stop"))
        self.assertEqual(stream_events(viewer)[-1], ("STOPPED", "Stopped by publisher stop"))
        self.assertIsNone(self.registry.get("cam"))
        self.assertEqual(self.media.sources[0].ended, ["Stopped by publisher stop"])
        self.assertTrue(all(s.closed for s in self.media.sessions))
        self.assertEqual(len(self.table), 0)

    def test_publisher_media_failure(self):
        """
        The publishing leg fails: the publisher FAILED and its players STOPPED with the reason;
        no RTP for the watched time is "Failed by RTP activity".
        """
        connection, session = self.connect("/pub")
        viewer, viewer_session = self.connect("/view")
        publisher = self.publish(session, "m1", "cam")
        self.play(viewer_session, "v1", "cam")
        publisher.media.observer.media_failed(publisher.media, "Failed by ICE error")
        self.assertEqual(stream_events(connection)[-1], ("FAILED", "Failed by ICE error"))
        self.assertEqual(stream_events(viewer)[-1], ("STOPPED", "Failed by ICE error"))
        publisher = self.publish(session, "m2", "cam")
        publisher.media.observer.media_inactive(publisher.media)
        self.assertEqual(stream_events(connection)[-1], ("FAILED", "Failed by RTP activity"))

    def test_session_close_ends_published_streams(self):
        """
        The publisher's session closes: its stream ends and players hear "Stopped by publisher
        stop".
        """
        connection, session = self.connect("/pub")
        viewer, viewer_session = self.connect("/view")
        self.publish(session, "m1", "cam")
        self.play(viewer_session, "v1", "cam")
        self.sessions.close(session, "gone")
        self.assertIsNone(self.registry.get("cam"))
        self.assertEqual(stream_events(viewer)[-1], ("STOPPED", "Stopped by publisher stop"))

    def test_missing_name_or_sdp(self):
        """
        A publish without a name or without SDP fails at once, keeping nothing.
        """
        connection, session = self.connect("/pub")
        self.publish(session, "m1", "")
        self.publish(session, "m2", "cam", sdp=None)
        self.assertEqual(stream_events(connection), [("FAILED", "Stream name is null"),
                                                     ("FAILED", "Failed by error")])
        self.assertEqual((len(self.table), len(self.registry)), (0, 0))


class RecordNameTests(StreamTableMixin, SynchronousTestCase):
    """
    The recordName a recording module sets on a published stream reaches the publisher.
    """

    def test_unpublished_names_the_record(self):
        """
        Once a recorder set C{recordName} on the stream, UNPUBLISHED carries it (the SDK's
        getRecordInfo()); without one there is no such field.
        """
        connection, session = self.connect("/pub")
        self.publish(session, "m1", "cam", record=True)
        self.registry.get("cam").properties["recordName"] = "cam-1.webm"
        self.table.unpublish(session, {"mediaSessionId": "m1"})
        last = connection.messages[-1][1][0]
        self.assertEqual((last["status"], last["recordName"]), ("UNPUBLISHED", "cam-1.webm"))
        self.publish(session, "m2", "cam2")
        self.table.unpublish(session, {"mediaSessionId": "m2"})
        self.assertNotIn("recordName", connection.messages[-1][1][0])


class StreamEventTests(StreamTableMixin, SynchronousTestCase):
    """
    availableStream and sendStreamEvent (spec 3, 4).
    """

    def test_available(self):
        """
        A published name is available; any other is not, with "Stream not found".
        """
        _, session = self.connect("/view")
        self.publish_source("cam")
        self.assertEqual(self.table.available(session, {"mediaSessionId": "a1", "name": "cam"}),
                         ("a1", True, None))
        self.assertEqual(self.table.available(session, {"mediaSessionId": "a2", "name": "x"}),
                         ("a2", False, "Stream not found"))
        self.assertRaises(DomainError, self.table.available, session, {"name": "cam"})

    def test_send_event_reaches_players(self):
        """
        A publisher's event goes to each player of its stream under the player's own
        mediaSessionId, as notifyStreamEvent; players of other streams hear nothing.
        """
        publisher, session = self.connect("/pub")
        viewer, viewer_session = self.connect("/view")
        other, other_session = self.connect("/other")
        self.publish(session, "m1", "cam")
        self.publish_source("elsewhere")
        self.play(viewer_session, "v1", "cam")
        self.play(other_session, "o1", "elsewhere")
        told = self.table.send_event(session, {"mediaSessionId": "m1", "type": "data",
                                               "payload": {"count": 23}})
        self.assertEqual(told, 1)
        self.assertEqual(viewer.messages[-1], ("notifyStreamEvent", [
            {"mediaSessionId": "v1", "type": "data", "payload": {"count": 23}}]))
        self.assertNotIn("notifyStreamEvent", [name for name, _ in other.messages])

    def test_send_event_refused(self):
        """
        An event for a stream the session does not publish, or without a type, is refused.
        """
        _, session = self.connect("/pub")
        _, intruder = self.connect("/intruder")
        self.publish(session, "m1", "cam")
        for who, fields in ((intruder, {"mediaSessionId": "m1", "type": "data"}),
                            (session, {"mediaSessionId": "nope", "type": "data"}),
                            (session, {"mediaSessionId": "m1"})):
            self.assertRaises(DomainError, self.table.send_event, who, fields)


class RestQueryTests(StreamTableMixin, SynchronousTestCase):
    """
    /stream/find, /find_all and /terminate (spec 11).
    """

    def setUp(self):
        super().setUp()
        self.publisher_connection, self.publisher = self.connect("/pub")
        self.viewer_connection, self.viewer = self.connect("/view")
        self.publish(self.publisher, "m1", "cam")
        self.publish_source("sip1")
        self.play(self.viewer, "v1", "cam")
        self.play(self.viewer, "v2", "sip1")

    def test_find(self):
        """
        Published streams and players, filtered on any stream-object field; published accepts
        the demo pages' "true"/"false"; mediaSessionIds is terminate's.
        """
        every = self.table.find({})
        self.assertEqual([(s["name"], s["mediaSessionId"], s["published"]) for s in every],
                         [("cam", "m1", True), ("sip1", "src-sip1", True),
                          ("cam", "v1", False), ("sip1", "v2", False)])
        self.assertEqual([s["mediaSessionId"] for s in self.table.find({"name": "cam"})],
                         ["m1", "v1"])
        self.assertEqual([s["mediaSessionId"] for s in self.table.find({"published": "false"})],
                         ["v1", "v2"])
        self.assertEqual([s["status"] for s in self.table.find({"mediaSessionId": "v2"})],
                         ["PLAYING"])
        self.assertEqual(len(self.table.find({"name": "cam", "display": ["metrics"]})), 2)
        self.assertRaises(NotFound, self.table.find, {"name": "nobody"})
        for bad in ({"bogus": 1}, {"published": "maybe"}, {"display": "metrics"},
                    {"mediaSessionIds": ["v1"]}):
            self.assertRaises(BadParameters, self.table.find, bad)

    def test_terminate_players(self):
        """
        Terminating players by id: STOPPED "Stopped by rest /terminate"; the streams go on.
        """
        self.assertEqual(self.table.terminate({"mediaSessionIds": ["v1", "v2"]}), 2)
        self.assertEqual([e for e in stream_events(self.viewer_connection) if e[0] == "STOPPED"],
                         [("STOPPED", "Stopped by rest /terminate")] * 2)
        self.assertEqual(len(self.registry), 2)

    def test_terminate_published(self):
        """
        Terminating a published stream ends it: its publisher UNPUBLISHED and its players
        STOPPED, both "Stopped by rest /terminate"; terminating it again is 404.
        """
        self.assertEqual(self.table.terminate({"name": "cam", "published": True}), 1)
        self.assertEqual(stream_events(self.publisher_connection)[-1],
                         ("UNPUBLISHED", "Stopped by rest /terminate"))
        self.assertEqual(stream_events(self.viewer_connection, "v1")[-1],
                         ("STOPPED", "Stopped by rest /terminate"))
        self.assertRaises(NotFound, self.table.terminate, {"name": "cam", "published": True})

    def test_terminate_all(self):
        """
        {} terminates every stream; with nothing left it is 404; bad filters are refused.
        """
        self.assertEqual(self.table.terminate({}), 4)
        self.assertEqual((len(self.table), len(self.registry)), (0, 0))
        self.assertRaises(NotFound, self.table.terminate, {})
        self.assertRaises(BadParameters, self.table.terminate, {"display": ["metrics"]})


class SIPCallStreamTests(CallTestMixin, SynchronousTestCase):
    """
    A SIP call's media as a stream (spec 9.10): REST toStream, sip_record_stream.
    """

    def setUp(self):
        super().setUp()
        self.registry = StreamRegistry(self.clock)
        self.stream_media = FakeStreamMedia()
        self.table = StreamTable(self.registry, self.stream_media, self.sessions, self.calls,
                                 clock=self.clock)

    def rest_call(self, **fields):
        self.calls.start_rest_call({
            "callId": "r1", "callee": "bob@10.0.0.2", "sipLogin": "1001",
            "sipDomain": "10.0.0.1", "sipPort": "5060", "toStream": "call_r1", **fields})
        self.network.run()
        return self.calls.get("r1")

    def test_to_stream_published_once_media_is_negotiated(self):
        """
        /call/startup toStream: nothing is published while the phone rings; its 200 publishes
        the SIP leg's media under the name (mediaSessionId = callId); the call's end ends it.
        """
        call = self.rest_call()
        phone_leg = self.phone.sessions[0]
        phone_leg.ring()
        self.network.run()
        self.assertIsNone(self.registry.get("call_r1"))
        phone_leg.accept(PEER_ANSWER)
        self.network.run()
        stream = self.registry.get("call_r1")
        [source] = self.stream_media.sources
        self.assertIs(source.session, call.rtp)
        self.assertEqual(source.started, [stream])
        described = stream.describe()
        self.assertEqual((described["mediaSessionId"], described["callId"],
                          described["audioCodec"], described["published"]),
                         ("r1", "r1", "PCMA/8000", True))
        self.assertIs(self.table.call_streams.get("r1"), stream)
        viewer = RecordingConnection()
        session = self.sessions.open(viewer, "/view", {})
        self.table.play(session, {"mediaSessionId": "v1", "name": "call_r1", "sdp": PLAY_OFFER})
        phone_leg.hang_up()
        self.network.run()
        self.assertEqual(stream.ended, "Stopped by publisher stop")
        self.assertIsNone(self.registry.get("call_r1"))
        self.assertEqual(stream_events(viewer)[-1], ("STOPPED", "Stopped by publisher stop"))
        self.assertIsNone(self.table.call_streams.get("r1"))

    def test_record_sip_calls_names_every_call(self):
        """
        With sip_record_stream every SIP call is a stream: a browser call too, named
        call_<callId>, shown as the call's streamName.
        """
        self.table.call_streams.record_sip_calls = True
        connection, session = self.connect("alice", "/a")
        self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        call = self.calls.get("c1")
        stream = self.registry.get("call_c1")
        self.assertIs(stream.source.session, call.rtp)
        self.assertEqual(stream.describe()["record"], True)
        self.assertEqual(call.to_wcs()["streamName"], "call_c1")

    def test_without_a_name_nothing_is_published(self):
        """
        A call without toStream (and sip_record_stream off) is no stream.
        """
        self.rest_call(toStream=None)
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.assertEqual(len(self.registry), 0)

    def test_name_in_use(self):
        """
        toStream names a stream in use: the call goes on unpublished, with a warning.
        """
        self.registry.publish("call_r1", FakeSource(self.media.create_session("rtp")))
        call = self.rest_call()
        with capturedLogs() as events:
            self.phone.sessions[0].accept(PEER_ANSWER)
            self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.assertEqual(self.stream_media.sources[0].started, [])
        self.assertTrue(any(e["log_level"] == LogLevel.warn and
                            e.get("info") == "Stream name is already in use" for e in events))

    def test_terminated_stream_is_not_republished(self):
        """
        REST /stream/terminate ends a call's stream, the call goes on; later status changes
        (hold) do not publish it again.
        """
        call = self.rest_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.table.terminate({"name": "call_r1"})
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.calls.hold(None, {"callId": "r1"})
        self.network.run()
        self.assertEqual(call.status.value, "HOLD")
        self.assertEqual(len(self.registry), 0)
        self.assertEqual(len(self.stream_media.sources), 1)

    def test_observer_faults_stay_out_of_the_call(self):
        """
        A fault while publishing is logged; the call still reaches ESTABLISHED.
        """
        def broken(session):
            raise RuntimeError("bug")

        self.stream_media.stream_source = broken
        call = self.rest_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


@implementer(IPausableBridge)
class PausableFakeBridge(FakeMediaBridge):
    """
    The fake bridge, recording which legs get no audio from the other one.
    """

    def __init__(self, a, b):
        super().__init__(a, b)
        self.paused_into = []

    def pause_audio_to(self, session, paused):
        if session is not self.a and session is not self.b:
            raise ValueError("not a leg of this bridge")
        if paused and session not in self.paused_into:
            self.paused_into.append(session)
        elif not paused and session in self.paused_into:
            self.paused_into.remove(session)


class InjectionMixin:
    """
    A stream table over the in-memory SIP network whose calls get pausable fake bridges.
    """

    def setUp(self):
        super().setUp()
        self.registry = StreamRegistry(self.clock)
        self.stream_media = FakeStreamMedia()
        self.table = StreamTable(self.registry, self.stream_media, self.sessions, self.calls,
                                 clock=self.clock)

        def bridge(a, b):
            made = PausableFakeBridge(a, b)
            self.media.bridges.append(made)
            return made

        self.media.bridge = bridge

    def browser_call(self, call_id="c1"):
        """
        An established browser call to the phone; returns the call.
        """
        connection, session = self.connect("alice", "/a")
        self.calls.start_call(session, {"callId": call_id, "callee": "bob@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[-1].accept(PEER_ANSWER)
        self.network.run()
        return self.calls.get(call_id)

    def inj_stream(self, name="inj"):
        session = self.stream_media.create_session("webrtc")
        session.audio_codec = "opus/48000/2"
        source = FakeSource(session)
        stream = self.registry.publish(name, source, {"mediaSessionId": f"src-{name}"})
        source.start(stream)
        return stream


class InjectionTests(InjectionMixin, CallTestMixin, SynchronousTestCase):
    """
    StreamTable.inject / stop_injection (REST /call/inject_stream): a stream's audio replaces
    the browser's towards the SIP party.
    """

    def test_inject_and_terminate(self):
        """
        inject plays the stream on the call's SIP leg and pauses the bridge's audio into that
        leg; stop_injection detaches the sink and restores the browser's audio.
        """
        call = self.browser_call()
        stream = self.inj_stream()
        self.table.inject("c1", "inj")
        [sink] = self.stream_media.sinks
        self.assertIs(sink.session, call.rtp)
        self.assertIs(sink.stream, stream)
        self.assertEqual(call.bridge.paused_into, [call.rtp])
        self.assertEqual(self.table.injected_stream("c1"), "inj")
        stream.packet_received("audio", b"x", "opus/48000/2", 960, False)
        self.assertEqual(sink.packets, [("audio", b"x", "opus/48000/2")])
        self.table.stop_injection("c1")
        self.assertIsNone(sink.stream)
        stream.packet_received("audio", b"y", "opus/48000/2", 1920, False)
        self.assertEqual(len(sink.packets), 1)
        self.assertEqual(call.bridge.paused_into, [])
        self.assertIsNone(self.table.injected_stream("c1"))
        self.assertRaises(NotFound, self.table.stop_injection, "c1")

    def test_unknown_call_or_stream(self):
        """
        An unknown call or stream is NotFound (404), a missing name InvalidField (400);
        nothing is paused.
        """
        call = self.browser_call()
        self.inj_stream()
        self.assertRaises(NotFound, self.table.inject, "nope", "inj")
        self.assertRaises(NotFound, self.table.inject, "c1", "nope")
        self.assertRaises(InvalidField, self.table.inject, "c1", None)
        self.assertRaises(InvalidField, self.table.inject, 5, "inj")
        self.assertRaises(NotFound, self.table.stop_injection, "nope")
        self.assertEqual((self.stream_media.sinks, call.bridge.paused_into), ([], []))

    def test_second_injection_replaces_the_first(self):
        """
        Injecting another stream into a call that has one switches to it; the bridge stays
        paused.
        """
        call = self.browser_call()
        self.inj_stream("one")
        second = self.inj_stream("two")
        self.table.inject("c1", "one")
        self.table.inject("c1", "two")
        one, two = self.stream_media.sinks
        self.assertEqual((one.stream, two.stream), (None, second))
        self.assertEqual(call.bridge.paused_into, [call.rtp])
        self.assertEqual(self.table.injected_stream("c1"), "two")

    def test_stream_end_restores_browser_audio(self):
        """
        The injected stream ending restores the bridge; the call goes on.
        """
        call = self.browser_call()
        stream = self.inj_stream()
        self.table.inject("c1", "inj")
        stream.end("Stopped by publisher stop")
        self.assertEqual(call.bridge.paused_into, [])
        self.assertIsNone(self.table.injected_stream("c1"))
        self.assertEqual(call.status.value, "ESTABLISHED")

    def test_call_end_stops_injection(self):
        """
        The call ending detaches the sink; the stream goes on for its other consumers.
        """
        self.browser_call()
        stream = self.inj_stream()
        self.table.inject("c1", "inj")
        [sink] = self.stream_media.sinks
        self.phone.sessions[0].hang_up()
        self.network.run()
        self.assertIsNone(sink.stream)
        self.assertIsNone(self.table.injected_stream("c1"))
        self.assertIsNone(stream.ended)
        self.assertRaises(NotFound, self.table.inject, "c1", "inj")

    def test_rest_call_without_bridge(self):
        """
        A REST call has no browser leg and no bridge: the stream is simply played on its SIP
        leg; a call without negotiated SIP audio yet is refused (500).
        """
        self.calls.start_rest_call({
            "callId": "r1", "callee": "bob@10.0.0.2", "sipLogin": "1001",
            "sipDomain": "10.0.0.1", "sipPort": "5060"})
        self.network.run()
        self.inj_stream()
        error = self.assertRaises(DomainError, self.table.inject, "r1", "inj")
        self.assertNotIsInstance(error, NotFound)
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        call = self.calls.get("r1")
        self.table.inject("r1", "inj")
        [sink] = self.stream_media.sinks
        self.assertIs(sink.session, call.rtp)
        self.assertIsNone(call.bridge)
        self.table.stop_injection("r1")
        self.assertIsNone(sink.stream)
