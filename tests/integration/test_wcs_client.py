"""
Tests of the Web-SDK-like test client (L{tests.integration.wcs_client})
against a tiny fake WCS server on 127.0.0.1, so the client is known to be
right before it is pointed at the real gateway.

The fake server is an Autobahn server protocol that speaks just enough of
the protocol: getUserData (+ registered when asked), a ping every 0.2 s,
and calls and streams whose "gateway media" is a second aiortc peer
connection that answers (or, for incoming calls, makes) the offer, plays a
1000 Hz tone and records what it hears.

Run with the asyncio reactor (aiortc needs it):
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_wcs_client
"""

import asyncio
import json
import os
import uuid

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import defer, reactor
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import audio
from tests.integration.wcs_client import (
    LOOPBACK,
    ToneTrack,
    WAVRecorder,
    WCSClient,
    WCSConnectionClosed,
    WCSProtocolError,
    WCSTimeout,
    close_peer_connection,
    loopback_host_addresses,
    payload_types,
)

GATEWAY_TONE = 1000.0
CLIENT_TONE = 440.0


def as_deferred(coroutine):
    """
    Run an asyncio coroutine (aiortc code) from a trial test.
    """
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


class FakeGateway:
    """
    The media side of the fake server for one call or stream: an aiortc
    peer connection with a tone to send and a recorder for what it receives.
    """

    def __init__(self, directory, name, tone_hz=GATEWAY_TONE):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tone = ToneTrack(tone_hz)
        self.recorder = WAVRecorder(os.path.join(directory, f"gateway-{name}.wav"))
        self._closed = None

        @self.pc.on("track")
        def on_track(track):
            if track.kind == "audio" and self.recorder._file is None:
                self.recorder.start(track)

    async def answer(self, offer_sdp):
        """
        Answer a client offer; the answer carries our candidates.
        """
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        if any(t.kind == "audio" for t in self.pc.getTransceivers()):
            self.pc.addTrack(self.tone)
        with loopback_host_addresses():
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def offer(self):
        """
        Make an audio offer for an incoming call.
        """
        self.pc.addTransceiver(self.tone, direction="sendrecv")
        with loopback_host_addresses():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp):
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    def remote_candidate_type(self):
        """
        The type of the remote candidate ICE nominated ("prflx" when it was
        learned from the client's checks).
        """
        transceiver = self.pc.getTransceivers()[0]
        connection = transceiver.receiver.transport.transport._connection
        pair = connection._nominated.get(1)
        return None if pair is None else pair.remote_candidate.type

    def close(self):
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._close())
        return self._closed

    async def _close(self):
        await close_peer_connection(self.pc)
        self.tone.stop()
        await self.recorder.stop()


class FakeWCSServerProtocol(WebSocketServerProtocol):
    """
    One client connection of L{FakeWCSServer}.
    """

    def onOpen(self):
        self.server = self.factory.server
        self.server.protocols.append(self)
        self.pinger = LoopingCall(self.send, "ping")
        self.pinger.clock = reactor
        self.pinger.start(self.server.ping_interval, now=False)

    def send(self, name, *data):
        self.send_raw({"message": name, "data": list(data)})

    def send_raw(self, message):
        if self.state == self.STATE_OPEN:
            self.server.sent.append(message)
            self.sendMessage(json.dumps(message).encode())

    def onMessage(self, payload, isBinary):
        message = json.loads(payload)
        self.server.received.append(message)
        handler = self.server.handlers.get(message["message"])
        if handler is not None:
            handler(self, message["data"][0])

    def onClose(self, wasClean, code, reason):
        if getattr(self, "pinger", None) is not None and self.pinger.running:
            self.pinger.stop()


class FakeWCSServer:
    """
    Just enough of a WCS server to exercise the test client.
    """

    def __init__(self, directory, ping_interval=0.2):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.ping_interval = ping_interval
        self.protocols = []
        self.received = []
        self.sent = []
        self.gateways = {}
        self.errors = []
        self._tasks = set()
        self.handlers = {
            "connection": self._connection,
            "call": self._call,
            "answer": self._answer,
            "hangup": self._hangup,
            "hold": self._hold,
            "unhold": self._unhold,
            "playStream": self._play,
            "publishStream": self._publish,
            "stopStream": self._stop_stream,
            "unPublishStream": self._stop_stream,
        }

    def start(self):
        factory = WebSocketServerFactory(reactor=reactor)
        factory.protocol = FakeWCSServerProtocol
        factory.server = self
        self.port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.url = f"ws://{LOOPBACK}:{self.port.getHost().port}"

    @defer.inlineCallbacks
    def stop(self):
        for protocol in self.protocols:
            if protocol.pinger.running:
                protocol.pinger.stop()
            if protocol.transport is not None and protocol.transport.connected:
                protocol.transport.abortConnection()
        yield as_deferred(self._close_all())
        yield self.port.stopListening()

    async def _close_all(self):
        for gateway in self.gateways.values():
            await gateway.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def received_named(self, name):
        return [m["data"][0] for m in self.received if m["message"] == name]

    def wait_received(self, name):
        """
        Fire with the first C{data[0]} of a message called C{name} received.
        """
        async def poll():
            while not self.received_named(name):
                await asyncio.sleep(0.01)
            return self.received_named(name)[0]
        return as_deferred(poll())

    def spawn(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def done(task):
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.errors.append(repr(task.exception()))
        task.add_done_callback(done)

    def gateway(self, session_id):
        gateway = FakeGateway(self.directory, session_id)
        self.gateways[session_id] = gateway
        return gateway

    # -- handlers -----------------------------------------------------------

    def _connection(self, protocol, obj):
        user_data = {k: v for k, v in obj.items() if k != "sipPassword"}
        user_data["authToken"] = "token-1"
        protocol.send("getUserData", user_data)
        if obj.get("sipRegisterRequired") in (True, "true"):
            protocol.send("registered")

    def _call(self, protocol, obj):
        call_id = obj["callId"]
        protocol.send("notifyTryingResponse", {"callId": call_id, "status": "TRYING"})

        async def negotiate():
            answer = await self.gateway(call_id).answer(obj["sdp"])
            protocol.send("setRemoteSDP", call_id, answer, True)
            protocol.send("talk", {"callId": call_id, "status": "ESTABLISHED", "sipStatus": 200})
        self.spawn(negotiate())

    def _answer(self, protocol, obj):
        async def accept():
            await self.gateways[obj["callId"]].accept(obj["sdp"])
            protocol.send("talk", {"callId": obj["callId"], "status": "ESTABLISHED"})
        self.spawn(accept())

    def _hangup(self, protocol, obj):
        protocol.send("finish", {"callId": obj["callId"], "status": "FINISH",
                                 "info": "Normal call clearing"})
        if obj["callId"] in self.gateways:
            self.spawn(self.gateways[obj["callId"]].close())

    def _hold(self, protocol, obj):
        protocol.send("hold", {"callId": obj["callId"], "status": "HOLD"})

    def _unhold(self, protocol, obj):
        protocol.send("talk", {"callId": obj["callId"], "status": "ESTABLISHED"})

    def _play(self, protocol, obj):
        self._stream(protocol, obj, "PLAYING")

    def _publish(self, protocol, obj):
        self._stream(protocol, obj, "PUBLISHING")

    def _stream(self, protocol, obj, status):
        media_session_id = obj["mediaSessionId"]

        async def negotiate():
            answer = await self.gateway(media_session_id).answer(obj["sdp"])
            protocol.send("setRemoteSDP", media_session_id, answer, True)
            protocol.send("notifyStreamStatusEvent", {
                "mediaSessionId": media_session_id, "name": obj["name"],
                "published": obj["published"], "status": status})
        self.spawn(negotiate())

    def _stop_stream(self, protocol, obj):
        status = "UNPUBLISHED" if obj["published"] else "STOPPED"
        protocol.send("notifyStreamStatusEvent", {
            "mediaSessionId": obj["mediaSessionId"], "name": obj["name"],
            "published": obj["published"], "status": status, "info": "Stopped by user"})
        self.spawn(self.gateways[obj["mediaSessionId"]].close())

    # -- server-initiated -----------------------------------------------------

    async def offer_incoming_call(self, protocol, caller="bob", callee="alice",
                                  sdp_first=True):
        """
        Call the client: setRemoteSDP (our offer, isInitiator false), then
        notifyIncomingCall and ring, or (C{sdp_first=False}) the two first
        messages the wrong way round. Returns the callId.
        """
        call_id = str(uuid.uuid4())
        offer = await self.gateway(call_id).offer()
        notify = {"callId": call_id, "incoming": True, "caller": caller, "callee": callee,
                  "visibleName": caller, "mediaProvider": "WebRTC", "status": "RING",
                  "hasAudio": True, "hasVideo": False, "custom": {}}
        if sdp_first:
            protocol.send("setRemoteSDP", call_id, offer, False)
            protocol.send("notifyIncomingCall", notify)
        else:
            protocol.send("notifyIncomingCall", notify)
            protocol.send("setRemoteSDP", call_id, offer, False)
        protocol.send("ring", {"callId": call_id, "status": "RING"})
        return call_id


def _is_media_task(task):
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return any(part in filename for part in ("/aiortc/", "/aioice/", "/av/", "wcs_client.py",
                                             "test_wcs_client.py"))


class WCSClientTestCase(TestCase):
    """
    A fake server per test and a helper for clients; cleanups close the
    clients, then the server, then check that no aiortc task is left.
    """

    timeout = 20

    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.addCleanup(self._no_media_tasks_left)
        self.server = FakeWCSServer(os.path.join(self.mktemp(), "server"))
        self.server.start()
        self.addCleanup(self.server.stop)

    def make_client(self):
        client = WCSClient(self.server.url, reactor,
                           directory=os.path.join(self.mktemp(), "client"))
        self.addCleanup(client.close)
        return client

    async def connected_client(self, **fields):
        client = self.make_client()
        await client.connect(sipLogin="alice", **fields)
        return client

    def _no_media_tasks_left(self):
        async def check():
            for _ in range(50):
                left = [t for t in asyncio.all_tasks()
                        if t is not asyncio.current_task() and not t.done() and _is_media_task(t)]
                if not left:
                    return
                await asyncio.sleep(0.02)
            for task in left:
                task.cancel()
            raise AssertionError(f"asyncio tasks left behind: {left}")
        return as_deferred(check())

    def assertFrequency(self, path, expected):
        measured = audio.dominant_frequency(path)
        self.assertLess(abs(measured - expected), 10, f"{path}: {measured} Hz, not {expected} Hz")


class ConnectionTests(WCSClientTestCase):
    """
    The session: connection, getUserData, registered, pings and waits.
    """

    async def test_connection_fields_and_user_data(self):
        """
        connect() sends connection like the SDK (defaultApp, WebRTC, 2.0, the
        SIP fields with sipPort as a string) and fires with getUserData.
        """
        client = self.make_client()
        user_data = await client.connect(
            sipLogin="alice", sipAuthenticationName="alice", sipPassword="secret",
            sipDomain="127.0.0.1", sipPort=5060, sipRegisterRequired=True, sipProxy=None)
        sent = self.server.received_named("connection")[0]
        self.assertEqual((sent["appKey"], sent["mediaProviders"], sent["clientVersion"]),
                         ("defaultApp", ["WebRTC"], "2.0"))
        self.assertEqual((sent["sipLogin"], sent["sipPort"], sent["sipRegisterRequired"]),
                         ("alice", "5060", True))
        self.assertNotIn("sipProxy", sent)
        self.assertEqual((user_data["sipLogin"], user_data["authToken"]), ("alice", "token-1"))
        self.assertEqual(client.messages[0]["message"], "getUserData")
        registered = await client.wait_registered(timeout=5)
        self.assertEqual(registered["message"], "registered")
        self.assertEqual(client.status, "REGISTERED")
        self.assertEqual(client.violations, [])

    async def test_every_ping_gets_a_pong(self):
        """
        Each server ping is answered with pong whose data is [null].
        """
        client = await self.connected_client()
        await client.wait_message("ping", timeout=5, since=len(client.messages))
        await client.wait_message("ping", timeout=5, since=len(client.messages))
        await client.wait_message("ping", timeout=5, since=len(client.messages))
        pings = [m for m in client.messages if m["message"] == "ping"]
        pongs = [m for m in client.sent if m["message"] == "pong"]
        self.assertGreaterEqual(len(pings), 3)
        self.assertEqual(len(pongs), len(pings))
        self.assertEqual({json.dumps(m["data"]) for m in pongs}, {"[null]"})
        self.assertEqual([m["message"] for m in client.messages[:1]], ["getUserData"])

    async def test_wait_times_out_with_context_and_close_fails_waiters(self):
        """
        A wait that runs out fails with WCSTimeout naming what it waited for;
        waits pending at close() fail with WCSConnectionClosed.
        """
        client = await self.connected_client()
        with self.assertRaises(WCSTimeout) as caught:
            await client.wait_message("neverSent", timeout=0.3)
        self.assertIn("neverSent", str(caught.exception))
        self.assertIn("getUserData", str(caught.exception))
        pending = client.wait_message("neverSent", timeout=10)
        await client.close()
        with self.assertRaises(WCSConnectionClosed):
            await pending
        self.assertEqual(client.status, "DISCONNECTED")

    async def test_sdk_breaking_messages_are_recorded(self):
        """
        A ping without a data array is not answered (the SDK throws on it),
        and registered sent to a session that did not ask is a violation.
        """
        client = await self.connected_client()
        protocol = self.server.protocols[0]
        protocol.pinger.stop()
        protocol.send_raw({"message": "ping"})
        protocol.send("registered")
        protocol.send("ping")
        await client.wait_message("ping", lambda m: "data" not in m, timeout=5)
        await client.wait_message("ping", timeout=5, since=len(client.messages))
        pings = [m for m in client.messages if m["message"] == "ping"]
        pongs = [m for m in client.sent if m["message"] == "pong"]
        self.assertEqual(len(pongs), len([m for m in pings if "data" in m]))
        self.assertEqual(len(pongs), len(pings) - 1)
        self.assertEqual(len(client.violations), 2)
        self.assertIn("without a data array", client.violations[0])
        self.assertIn("did not ask for SIP registration", client.violations[1])


class CallTests(WCSClientTestCase):
    """
    Calls through the fake gateway, with real media on loopback.
    """

    async def test_outgoing_call_media_both_ways(self):
        """
        call() offers without candidates; the gateway learns our address from
        STUN checks (prflx); its 1000 Hz reaches us and our 440 Hz reaches it;
        hangup ends in FINISH.
        """
        client = await self.connected_client()
        call_id = await client.call("bob")
        self.assertEqual(uuid.UUID(call_id).version, 1)
        sent = await self.server.wait_received("call")
        self.assertEqual(
            {k: sent[k] for k in ("callId", "status", "caller", "callee", "visibleName",
                                  "hasAudio", "hasVideo", "incoming", "mediaProvider")},
            {"callId": call_id, "status": "PENDING", "caller": "alice", "callee": "bob",
             "visibleName": "alice", "hasAudio": True, "hasVideo": False, "incoming": False,
             "mediaProvider": "WebRTC"})
        self.assertNotIn("a=candidate", sent["sdp"])
        self.assertNotIn("a=end-of-candidates", sent["sdp"])
        self.assertIn("c=IN IP4 0.0.0.0", sent["sdp"])

        await client.wait_status(call_id, "ESTABLISHED")
        path = await client.wait_audio(call_id, 1.5)
        self.assertFrequency(path, GATEWAY_TONE)
        gateway = self.server.gateways[call_id]
        await as_deferred(gateway.recorder.wait_duration(1.5))
        self.assertFrequency(gateway.recorder.path, CLIENT_TONE)
        self.assertEqual(gateway.remote_candidate_type(), "prflx")
        self.assertGreater((await client.packets_received(call_id)), 40)

        await client.hangup(call_id)
        finish = await client.wait_status(call_id, "FINISH")
        self.assertEqual(finish["info"], "Normal call clearing")
        call = client.calls[call_id]
        self.assertEqual(call.statuses, ["TRYING", "ESTABLISHED", "FINISH"])
        self.assertGreater(call.final_stats["audio"]["packetsSent"], 40)
        self.assertEqual((client.violations, client.errors, self.server.errors), ([], [], []))

    async def test_codec_preferences_and_call_commands(self):
        """
        codecs=["PCMU"] leaves only PCMU in the offer and the call works;
        hold, hold_for_transfer, unhold, send_dtmf and transfer send the SDK's
        fields, and wait_status only counts statuses after the last command.
        """
        client = await self.connected_client()
        call_id = await client.call("bob", codecs=["PCMU"])
        self.assertEqual(payload_types(client.calls[call_id].local_sdp), [0])
        await client.wait_status(call_id, "ESTABLISHED")
        self.assertFrequency((await client.wait_audio(call_id, 1.5)), GATEWAY_TONE)

        await client.hold(call_id)
        await client.wait_status(call_id, "HOLD")
        await client.unhold(call_id)
        await client.wait_status(call_id, "ESTABLISHED")
        await client.hold_for_transfer(call_id)
        await client.send_dtmf(call_id, 5)
        await client.send_dtmf(call_id, "#", type="INFO")
        await client.transfer(call_id, "1002")
        await client.wait_status(call_id, "HOLD")
        await self.server.wait_received("transfer")
        self.assertEqual(client.calls[call_id].statuses,
                         ["TRYING", "ESTABLISHED", "HOLD", "ESTABLISHED", "HOLD"])
        self.assertEqual(self.server.received_named("hold"),
                         [{"callId": call_id}, {"callId": call_id, "holdForTransfer": True}])
        self.assertEqual(self.server.received_named("sendDtmf"),
                         [{"callId": call_id, "dtmf": "5", "type": "RFC2833"},
                          {"callId": call_id, "dtmf": "#", "type": "INFO"}])
        self.assertEqual(self.server.received_named("transfer"),
                         [{"callId": call_id, "target": "1002"}])
        await client.hangup(call_id)
        await client.wait_status(call_id, "FINISH")
        self.assertEqual((client.violations, client.errors, self.server.errors), ([], [], []))

    async def test_incoming_call_answered(self):
        """
        setRemoteSDP before notifyIncomingCall: answer() sends an answer
        without candidates, the call is ESTABLISHED and tones flow both ways
        (the gateway is the ICE-controlling offerer here).
        """
        client = await self.connected_client()
        call_id = await as_deferred(self.server.offer_incoming_call(self.server.protocols[0]))
        self.assertEqual((await client.wait_incoming_call()), call_id)
        await client.wait_status(call_id, "RING")
        self.assertEqual(client.calls[call_id].caller, "bob")
        await client.answer(call_id)
        sent = await self.server.wait_received("answer")
        self.assertEqual((sent["incoming"], sent["hasVideo"], sent["status"], sent["callee"]),
                         (True, True, "PENDING", "alice"))
        self.assertNotIn("a=candidate", sent["sdp"])
        await client.wait_status(call_id, "ESTABLISHED")
        self.assertFrequency((await client.wait_audio(call_id, 1.5)), GATEWAY_TONE)
        gateway = self.server.gateways[call_id]
        await as_deferred(gateway.recorder.wait_duration(1.5))
        self.assertFrequency(gateway.recorder.path, CLIENT_TONE)
        self.assertEqual(gateway.remote_candidate_type(), "prflx")
        await client.hangup(call_id)
        await client.wait_status(call_id, "FINISH")
        self.assertEqual((client.violations, client.errors, self.server.errors), ([], [], []))

    async def test_incoming_call_offer_after_notification_is_refused(self):
        """
        notifyIncomingCall before its setRemoteSDP: answer() fails with a
        WCSProtocolError explaining the ordering, both messages are recorded
        as violations, and no answer is sent.
        """
        client = await self.connected_client()
        call_id = await as_deferred(
            self.server.offer_incoming_call(self.server.protocols[0], sdp_first=False))
        await client.wait_status(await client.wait_incoming_call(), "RING")
        with self.assertRaises(WCSProtocolError) as caught:
            await client.answer(call_id)
        self.assertIn("BEFORE notifyIncomingCall", str(caught.exception))
        self.assertEqual(len(client.violations), 2)
        self.assertIn("before its setRemoteSDP", client.violations[0])
        self.assertIn("after notifyIncomingCall", client.violations[1])
        self.assertEqual(self.server.received_named("answer"), [])


class StreamTests(WCSClientTestCase):
    """
    playStream and publishStream against the fake server.
    """

    async def test_publish_and_play(self):
        """
        publish_stream sends a sendonly offer and reaches PUBLISHING with our
        tone at the gateway; play_stream sends a recvonly offer, reaches
        PLAYING and records the gateway's tone; stopping gives UNPUBLISHED
        and STOPPED.
        """
        client = await self.connected_client()
        published = await client.publish_stream("stream1")
        played = await client.play_stream("stream1", video=False)
        publish = await self.server.wait_received("publishStream")
        play = await self.server.wait_received("playStream")
        self.assertEqual((publish["mediaSessionId"], publish["published"], publish["name"]),
                         (published, True, "stream1"))
        self.assertIn("a=sendonly", publish["sdp"])
        self.assertEqual((play["mediaSessionId"], play["published"]), (played, False))
        self.assertIn("a=recvonly", play["sdp"])
        self.assertNotIn("a=candidate", play["sdp"])
        await client.wait_stream_status(published, "PUBLISHING")
        await client.wait_stream_status(played, "PLAYING")
        self.assertFrequency((await client.wait_audio(played, 1.5)), GATEWAY_TONE)
        gateway = self.server.gateways[published]
        await as_deferred(gateway.recorder.wait_duration(1.5))
        self.assertFrequency(gateway.recorder.path, CLIENT_TONE)
        await client.stop_stream(published)
        await client.stop_stream(played)
        await client.wait_stream_status(published, "UNPUBLISHED")
        stopped = await client.wait_stream_status(played, "STOPPED")
        self.assertEqual(stopped["info"], "Stopped by user")
        self.assertEqual((client.violations, client.errors, self.server.errors), ([], [], []))
