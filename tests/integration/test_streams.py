"""
Named streams end to end: the real server, WCS test clients (aiortc as the browsers) and baresip
as the SIP phone, all on 127.0.0.1.  A SIP call captured with /call/startup toStream is played
by a client; a client's publish is played by another.  Media is checked by the tones that
arrive.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_streams
"""

from __future__ import annotations

import json
import os

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest
from twisted.web.client import Agent, HTTPConnectionPool

from tests.integration.loopback_server import bound_port, start_media_server
from tests.integration.test_calls import CallTestCase
from wcs_twisted.media import rtcp


class StreamTestCase(CallTestCase):
    """
    A real server per test (with C{settings} changed as the class says), plus a REST client
    for /rest-api/.
    """

    timeout = 60
    settings = {}

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.server = yield start_media_server(self, media_ports=200, keep_alive_interval_ms=1000,
                                               **self.settings)
        self.ws_url = f"ws://127.0.0.1:{bound_port(self.server, 'ws')}"
        self.sip_port = bound_port(self.server, "sip-udp")
        self.base = self.mktemp()
        os.makedirs(self.base)
        self.rest_url = f"http://127.0.0.1:{bound_port(self.server, 'http')}/rest-api"
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)

    async def rest(self, path, body=None):
        """
        POST C{body} as JSON (or GET without one); return (status, parsed JSON or None).
        """
        auth = {b"Authorization": [b"Basic YWRtaW46YWRtaW4="]}
        if body is None:
            response = await self.http.get(self.rest_url + path, headers=auth)
        else:
            response = await self.http.post(
                self.rest_url + path, data=json.dumps(body).encode(),
                headers={**auth, b"Content-Type": [b"application/json"]})
        content = await response.content()
        return response.code, (json.loads(content) if content else None)

    async def connect_player(self, name):
        """
        A Player page: a session without SIP fields (ESTABLISHED, never REGISTERED).
        """
        client = self.client(name)
        await client.connect()
        return client


class SIPCallStreamTests(StreamTestCase):
    """
    /call/startup with toStream to baresip (spec 9.10); the call's SIP media is the stream.
    """

    async def test_play_the_stream_of_a_sip_call(self):
        """
        A player of the call's stream hears baresip's 1000 Hz tone (relayed, PCMU), /stream/find
        shows the stream, and terminating the call stops the player "Stopped by publisher stop".
        """
        bob = await self.baresip("bob", 1000)
        code, _ = await self.rest("/call/startup", {
            "callId": "c1", "callee": "bob", "toStream": "call_bob", "hasAudio": "true",
            "hasVideo": "false", "sipLogin": "alice", "sipAuthenticationName": "alice",
            "sipPassword": "x", "sipDomain": "127.0.0.1", "sipOutboundProxy": "127.0.0.1",
            "sipPort": str(self.sip_port), "sipRegisterRequired": "false"})
        self.assertEqual(code, 200)
        await bob.wait_event("CALL_ESTABLISHED", timeout=15)
        viewer = await self.connect_player("viewer")
        stream_id = await viewer.play_stream("call_bob")
        await viewer.wait_stream_status(stream_id, "PLAYING", timeout=10)
        received = await viewer.wait_audio(stream_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)

        code, found = await self.rest("/stream/find", {"name": "call_bob", "published": True})
        self.assertEqual(code, 200)
        [stream] = found
        self.assertEqual((stream["published"], stream["mediaSessionId"], stream["status"]),
                         (True, "c1", "PUBLISHING"))
        self.assertEqual(stream["audioCodec"], "PCMU/8000")
        code, found = await self.rest("/stream/find", {"published": False})
        self.assertEqual([(s["name"], s["mediaSessionId"], s["status"]) for s in found],
                         [("call_bob", stream_id, "PLAYING")])
        code, calls = await self.rest("/call/find", {"callId": "c1"})
        self.assertEqual(calls[0]["streamName"], "call_bob")
        player = self.server.stream_table.get(stream_id)
        self.assertEqual(player.sink.transcoders, {}, "PCMU is relayed to the player")

        code, _ = await self.rest("/call/terminate", {"callId": "c1"})
        self.assertEqual(code, 200)
        stopped = await viewer.wait_stream_status(stream_id, "STOPPED", timeout=10)
        self.assertEqual(stopped["info"], "Stopped by publisher stop")
        await bob.wait_event("CALL_CLOSED", timeout=10)
        self.assertEqual((await self.rest("/stream/find", {"name": "call_bob"}))[0], 404)
        self.assertEqual(len(self.server.stream_table), 0)
        self.assertEqual(viewer.violations, [])


class RecordStreamTests(StreamTestCase):
    """
    sip_record_stream=true: every SIP call is a stream, browser calls included.
    """

    settings = {"sip_record_stream": True}

    async def test_browser_call_is_a_stream_too(self):
        """
        alice's call to baresip is published as call_<callId> from its SIP leg: a player hears
        baresip's tone while alice, through the call's bridge, still hears it too; the stream
        ends with the call.
        """
        bob = await self.baresip("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        viewer = await self.connect_player("viewer")
        played = await viewer.play_stream(f"call_{call_id}", video=False)
        await viewer.wait_stream_status(played, "PLAYING", timeout=10)
        self.assertFrequency(await viewer.wait_audio(played, seconds=1.5, timeout=10), 1000)
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=10), 1000)
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        code, found = await self.rest("/stream/find", {"mediaSessionId": call_id})
        self.assertEqual((code, found[0]["name"], found[0]["record"]),
                         (200, f"call_{call_id}", True))
        await alice.hangup(call_id)
        stopped = await viewer.wait_stream_status(played, "STOPPED", timeout=10)
        self.assertEqual(stopped["info"], "Stopped by publisher stop")
        self.assertEqual(alice.violations + viewer.violations, [])


class BrowserStreamTests(StreamTestCase):
    """
    publishStream / playStream / stopStream / unPublishStream between two clients (9.8, 9.9).
    """

    async def test_publish_and_play(self):
        """
        bob plays alice's 440 Hz publish; stopStream gives STOPPED, a second player is stopped
        "Stopped by publisher stop" when alice unpublishes (UNPUBLISHED).
        """
        alice = await self.connect_player("alice")
        bob = await self.connect_player("bob")
        published = await alice.publish_stream("tone440", tone_hz=440)
        await alice.wait_stream_status(published, "PUBLISHING", timeout=10)
        played = await bob.play_stream("tone440")
        await bob.wait_stream_status(played, "PLAYING", timeout=10)
        self.assertFrequency(await bob.wait_audio(played, seconds=1.5, timeout=10), 440)
        await bob.stop_stream(played)
        await bob.wait_stream_status(played, "STOPPED", timeout=5)

        again = await bob.play_stream("tone440")
        await bob.wait_stream_status(again, "PLAYING", timeout=10)
        code, found = await self.rest("/stream/find_all")
        self.assertEqual(code, 200)
        self.assertEqual(sorted((s["name"], s["published"]) for s in found),
                         [("tone440", False), ("tone440", True)])
        await alice.stop_stream(published)
        await alice.wait_stream_status(published, "UNPUBLISHED", timeout=5)
        stopped = await bob.wait_stream_status(again, "STOPPED", timeout=5)
        self.assertEqual(stopped["info"], "Stopped by publisher stop")
        self.assertEqual((await self.rest("/stream/find_all"))[0], 404)
        self.assertEqual(alice.violations + bob.violations, [])

    async def test_unknown_stream_and_name_in_use(self):
        """
        Playing a name nobody publishes fails "Stream not found"; publishing a name in use
        fails "Stream name is already in use"; /stream/terminate stops the rest.
        """
        alice = await self.connect_player("alice")
        bob = await self.connect_player("bob")
        missing = await bob.play_stream("nobody")
        failed = await bob.wait_stream_status(missing, "FAILED", timeout=5)
        self.assertEqual(failed["info"], "Stream not found")
        first = await alice.publish_stream("s1", tone_hz=440)
        await alice.wait_stream_status(first, "PUBLISHING", timeout=10)
        second = await bob.publish_stream("s1", tone_hz=700)
        failed = await bob.wait_stream_status(second, "FAILED", timeout=5)
        self.assertEqual(failed["info"], "Stream name is already in use")
        played = await bob.play_stream("s1")
        await bob.wait_stream_status(played, "PLAYING", timeout=10)
        code, _ = await self.rest("/stream/terminate", {"name": "s1"})
        self.assertEqual(code, 200)
        ended = await alice.wait_stream_status(first, "UNPUBLISHED", timeout=5)
        self.assertEqual(ended["info"], "Stopped by rest /terminate")
        stopped = await bob.wait_stream_status(played, "STOPPED", timeout=5)
        self.assertEqual(stopped["info"], "Stopped by rest /terminate")
        self.assertEqual((await self.rest("/stream/terminate", {"name": "s1"}))[0], 404)
        self.assertEqual(alice.violations + bob.violations, [])

    async def test_video_publish_is_relayed_with_a_keyframe(self):
        """
        A published VP8 video reaches a player that joins later (it asks the publisher for a
        keyframe, so the player's decoder can start) and the audio still crosses.
        """
        alice = await self.connect_player("alice")
        bob = await self.connect_player("bob")
        published = await alice.publish_stream("cam", tone_hz=440, video=True)
        await alice.wait_stream_status(published, "PUBLISHING", timeout=10)
        stream = self.server.streams.get("cam")
        self.assertEqual(stream.source.video_codec, "VP8/90000")
        transport = self.server.stream_table.get(published).media.transport
        rtcp_sent, send_rtcp = [], transport.send_rtcp
        transport.send_rtcp = lambda data: (rtcp_sent.append(bytes(data)), send_rtcp(data))
        played = await bob.play_stream("cam")
        await bob.wait_stream_status(played, "PLAYING", timeout=10)
        self.assertTrue(any(rtcp.is_keyframe_request(rtcp.parse_compound(d)) for d in rtcp_sent),
                        "an RTCP PLI went to the publisher when the player joined")
        self.assertFrequency(await bob.wait_audio(played, seconds=1.5, timeout=15), 440)
        self.assertGreater(bob.streams[played].video_frames_received, 5)
        self.assertEqual(alice.violations + bob.violations, [])
