"""
Tests for L{wcs_twisted.signalling.protocol.Signalling}, driven without sockets and with a Clock.
"""

import json

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_stream_table import PUBLISH_OFFER, FakeStreamMedia
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.signalling.protocol import CLOSE_GOING_AWAY, CLOSE_KEEP_ALIVE, Signalling
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.gateway.stream_table import StreamTable


class RecordingWebSocket:
    """
    Stands in for the Autobahn protocol: records what Signalling sends through it.
    """

    def __init__(self):
        self.sent = []
        self.closed = None

    def sendMessage(self, payload, isBinary=False):
        assert not isBinary
        self.sent.append(json.loads(payload))

    def sendClose(self, code=None, reason=None):
        self.closed = (code, reason)

    def names(self):
        return [message["message"] for message in self.sent]


class SignallingTests(SynchronousTestCase):
    """
    The session part of the WCS protocol.
    """

    def setUp(self):
        self.clock = Clock()
        self.metrics = ServerMetrics()
        tokens = iter(f"token{n}" for n in range(100))
        self.sessions = SessionTable("node@127.0.0.1", token_factory=lambda: next(tokens),
                                     clock=self.clock, keep_alive_grace=60)
        self.signalling = Signalling(self.sessions, self.clock, self.metrics,
                                     server_address=lambda: "127.0.0.1:8080")
        self.socket = RecordingWebSocket()
        self.channel = self.signalling.channel_opened(self.socket, "127.0.0.1:40000")

    def send(self, name, payload=None):
        raw = json.dumps({"message": name, "data": [payload]}).encode()
        self.signalling.message_received(self.channel, raw, False)

    def test_connection_gets_user_data(self):
        """
        connection -> getUserData echoing the fields, without the password, with authToken.
        """
        self.send("connection", {"appKey": "defaultApp", "sipLogin": "alice",
                                 "sipPassword": "secret", "sipRegisterRequired": "false",
                                 "custom": {"x": 1}})
        self.assertEqual(self.socket.names(), ["getUserData"])
        user_data = self.socket.sent[0]["data"][0]
        self.assertEqual(user_data["sipLogin"], "alice")
        self.assertEqual(user_data["authToken"], "token0")
        self.assertEqual(user_data["custom"], {"x": 1})
        self.assertEqual(user_data["sessionId"], "/127.0.0.1:40000/127.0.0.1:8080")
        self.assertNotIn("sipPassword", user_data)
        self.assertEqual(len(self.sessions), 1)

    def test_second_connection_refused(self):
        """
        A second connection on the same socket is refused with fail, the session kept.
        """
        self.send("connection", {})
        self.send("connection", {})
        self.assertEqual(self.socket.names(), ["getUserData", "fail"])
        self.assertEqual(self.socket.sent[1]["data"][0]["apiMethod"], "connection")
        self.assertEqual(len(self.sessions), 1)

    def test_invalid_sip_login_fails(self):
        """
        A sipLogin SIP cannot carry unescaped gets a fail naming the field, and no session.
        """
        self.send("connection", {"sipLogin": "alice smith"})
        self.assertEqual(self.socket.names(), ["fail"])
        self.assertIn("sipLogin", self.socket.sent[0]["data"][0]["info"])
        self.assertEqual(len(self.sessions), 0)

    def test_ping_every_interval(self):
        """
        The server pings every 5 s with a data array.
        """
        self.clock.advance(4.9)
        self.assertEqual(self.socket.sent, [])
        self.clock.advance(0.1)
        self.assertEqual(self.socket.sent, [{"message": "ping", "data": []}])
        self.clock.advance(5)
        self.assertEqual(self.socket.names(), ["ping", "ping"])

    def test_pongs_keep_the_connection(self):
        """
        A client answering every ping is never dropped.
        """
        for _ in range(30):
            self.clock.advance(5)
            self.send("pong")
        self.assertIsNone(self.socket.closed)
        self.assertEqual(self.socket.names().count("ping"), 30)

    def test_ten_missed_pongs_close(self):
        """
        After 10 unanswered pings the connection is closed by keep-alive.
        """
        self.clock.pump([5] * 10)
        self.assertIsNone(self.socket.closed)
        self.assertEqual(self.socket.names().count("ping"), 10)
        self.clock.advance(5)
        self.assertEqual(self.socket.closed, (CLOSE_KEEP_ALIVE, "Terminated by keep-alive"))
        self.clock.pump([5] * 10)
        self.assertEqual(self.socket.names().count("ping"), 10)

    def test_malformed_and_unknown_get_fail(self):
        """
        Bad JSON, binary frames and unknown messages get fail and are logged; nothing closes.
        """
        with capturedLogs() as events:
            self.signalling.message_received(self.channel, b"{oops", False)
            self.signalling.message_received(self.channel, b"\x00\x01", True)
            self.send("noSuchMessage", {})
        self.assertEqual(self.socket.names(), ["fail", "fail", "fail"])
        infos = [message["data"][0]["info"] for message in self.socket.sent]
        self.assertIn("Malformed JSON", infos[0])
        self.assertIn("Binary", infos[1])
        self.assertEqual(infos[2], "Unknown message 'noSuchMessage'")
        self.assertEqual(self.socket.sent[2]["data"][0]["apiMethod"], "noSuchMessage")
        self.assertIsNone(self.socket.closed)
        self.assertEqual(sum(1 for e in events if e["log_level"] == LogLevel.warn), 3)

    def test_connect_hook_approval_marks_the_session(self):
        """
        A session a backend's connect hook approved is marked so (its calls are vouched
        for); with no backend for its appKey it is not.
        """
        from twisted.internet.defer import succeed

        class Hooks:
            def app_for(self, app_key, method):
                return object() if app_key == "gated" else None

            def connect(self, fields):
                return succeed(dict(fields))

        self.signalling.hooks = Hooks()
        self.send("connection", {"appKey": "gated"})
        other = self.signalling.channel_opened(RecordingWebSocket(), "127.0.0.1:40001")
        self.signalling.message_received(other, json.dumps(
            {"message": "connection", "data": [{"appKey": "open"}]}).encode(), False)
        self.assertEqual(sorted((s.app_key, s.approved_by_backend) for s in self.sessions),
                         [("gated", True), ("open", False)])

    def test_unexpected_error_is_contained(self):
        """
        A bug in a handler becomes a fail and a logged failure, not a dropped connection.
        """
        def broken(channel, payload):
            raise RuntimeError("bug")

        self.signalling._handlers["connection"] = broken
        with capturedLogs() as events:
            self.send("connection", {})
        self.assertEqual(self.socket.sent[0]["data"][0]["info"], "Failed by error")
        self.assertTrue(any("log_failure" in event for event in events))
        self.flushLoggedErrors(RuntimeError)

    def test_close_forgets_session_and_stops_pings(self):
        """
        A closed socket releases its session and its ping timer.
        """
        self.send("connection", {})
        self.signalling.channel_closed(self.channel, "closed")
        self.assertEqual(len(self.sessions), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_all(self):
        """
        Graceful shutdown closes every channel with going-away.
        """
        self.signalling.close_all()
        self.assertEqual(self.socket.closed, (CLOSE_GOING_AWAY, "Server shutting down"))

    def test_metrics_count_sessions_and_messages(self):
        """
        Messages are counted by known name only; unknown names share one label.
        """
        self.send("connection", {})
        self.send("whatever1", {})
        self.send("whatever2", {})
        text = self.metrics.render().decode()
        self.assertIn('wcs_signalling_messages_total{direction="in",message="connection"} 1.0', text)
        self.assertIn('wcs_signalling_messages_total{direction="in",message="unknown"} 2.0', text)
        self.assertNotIn("whatever", text)

    def test_keep_alive_reconnect_with_token(self):
        """
        A keepAlive session survives its socket for the grace period; a connection carrying its
        authToken gets the original fields back (spec 8, "Connect with token").
        """
        self.send("connection", {"sipLogin": "alice", "keepAlive": True})
        self.signalling.channel_closed(self.channel, "closed")
        self.assertEqual(len(self.sessions), 1)
        socket = RecordingWebSocket()
        channel = self.signalling.channel_opened(socket, "127.0.0.1:40001")
        raw = json.dumps({"message": "connection", "data": [{"authToken": "token0",
                                                             "keepAlive": True}]}).encode()
        self.signalling.message_received(channel, raw, False)
        user_data = socket.sent[0]["data"][0]
        self.assertEqual((user_data["sipLogin"], user_data["authToken"]), ("alice", "token0"))
        self.assertEqual(len(self.sessions), 1)
        self.clock.advance(120)
        self.assertEqual(len(self.sessions), 1, "reattached sessions do not expire")

    def test_keep_alive_grace_expires(self):
        """
        Nobody reconnects: the session closes when the grace period ends.
        """
        self.send("connection", {"sipLogin": "alice", "keepAlive": "true"})
        self.signalling.channel_closed(self.channel, "closed")
        self.clock.advance(59)
        self.assertEqual(len(self.sessions), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.sessions), 0)

    def test_unknown_token_is_a_new_session(self):
        """
        An authToken nobody holds opens a fresh session.
        """
        self.send("connection", {"authToken": "stale"})
        self.assertEqual(self.socket.sent[0]["data"][0]["authToken"], "token0")


class StreamHandlerTests(SynchronousTestCase):
    """
    The stream messages (spec 3, 9.8, 9.9) reach the stream table.
    """

    def setUp(self):
        self.clock = Clock()
        self.sessions = SessionTable("node@127.0.0.1", clock=self.clock)
        self.streams = StreamTable(StreamRegistry(self.clock), FakeStreamMedia(), self.sessions,
                                   clock=self.clock)
        self.signalling = Signalling(self.sessions, self.clock, ServerMetrics(),
                                     server_address=lambda: "127.0.0.1:8080",
                                     streams=self.streams)
        self.socket = RecordingWebSocket()
        self.channel = self.signalling.channel_opened(self.socket, "127.0.0.1:40000")

    def send(self, name, payload=None):
        raw = json.dumps({"message": name, "data": [payload]}).encode()
        self.signalling.message_received(self.channel, raw, False)

    def test_stream_messages(self):
        """
        Before connection a stream message gets fail "Session not ready"; after it, playStream
        of an unknown name is FAILED "Stream not found", and a publish then stop round-trips.
        """
        self.send("playStream", {"mediaSessionId": "m0", "name": "x"})
        self.assertEqual(self.socket.sent[-1]["data"][0]["info"], "Session not ready")
        self.send("connection", {})
        self.send("playStream", {"mediaSessionId": "m1", "name": "x", "sdp": "v=0"})
        self.assertEqual(self.socket.sent[-1]["message"], "notifyStreamStatusEvent")
        self.assertEqual(self.socket.sent[-1]["data"][0]["info"], "Stream not found")
        self.send("publishStream", {"mediaSessionId": "m2", "name": "cam", "sdp": PUBLISH_OFFER})
        self.assertEqual(self.socket.names()[-2:], ["setRemoteSDP", "notifyStreamStatusEvent"])
        self.send("unPublishStream", {"mediaSessionId": "m2", "name": "cam"})
        self.assertEqual(self.socket.sent[-1]["data"][0]["status"], "UNPUBLISHED")
        self.send("stopStream", {})
        fail = self.socket.sent[-1]["data"][0]
        self.assertEqual((self.socket.names()[-1], fail["apiMethod"], fail["info"]),
                         ("fail", "stopStream", "MediaSessionId is null"))


    def test_available_and_stream_event(self):
        """
        availableStream is answered by a message of its name with status "true"/"false" as
        text (the SDK's test); sendStreamEvent for a stream not published here is a fail
        naming it.
        """
        self.send("connection", {})
        self.send("availableStream", {"mediaSessionId": "a1", "name": "cam"})
        self.assertEqual(self.socket.sent[-1], {"message": "availableStream", "data": [
            {"id": "a1", "status": "false", "info": "Stream not found"}]})
        self.send("publishStream", {"mediaSessionId": "m2", "name": "cam", "sdp": PUBLISH_OFFER})
        self.send("availableStream", {"mediaSessionId": "a2", "name": "cam"})
        self.assertEqual(self.socket.sent[-1], {"message": "availableStream", "data": [
            {"id": "a2", "status": "true"}]})
        self.send("sendStreamEvent", {"mediaSessionId": "m2", "type": "data", "payload": {}})
        self.assertNotEqual(self.socket.names()[-1], "fail")
        self.send("sendStreamEvent", {"mediaSessionId": "zz", "type": "data"})
        self.assertEqual(self.socket.sent[-1]["data"][0]["apiMethod"], "sendStreamEvent")


class VanishedWebSocket(RecordingWebSocket):
    """
    A socket whose TCP connection is gone before Autobahn said so.
    """

    def sendMessage(self, payload, isBinary=False):
        from autobahn.exception import Disconnected

        raise Disconnected("Attempt to send on a closed protocol")


class VanishedPeerTests(SynchronousTestCase):
    """
    A ping or event for a peer that just vanished is dropped, not raised.
    """

    def test_ping_to_vanished_peer(self):
        """
        The keep-alive timer firing after the TCP connection died raises nothing.
        """
        clock = Clock()
        signalling = Signalling(SessionTable("n"), clock, ServerMetrics(), lambda: "x:1")
        channel = signalling.channel_opened(VanishedWebSocket(), "127.0.0.1:1")
        clock.advance(5)
        self.assertTrue(channel.closing)
        clock.advance(5)
