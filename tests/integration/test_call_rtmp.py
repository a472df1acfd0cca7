"""
A SIP call started over REST with rtmpUrl is republished to a real nginx-rtmp: the whole server
(REST, call table, streams, the RTMP module) against baresip and nginx, checked with ffprobe.
"""

from __future__ import annotations

import base64
import json
import os

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tests.integration import audio
from tests.integration.loopback_server import bound_port, start_media_server
from tests.integration.peers import Baresip, poll, require_binary
from tests.integration.test_rtmp import NginxRtmp, decode_audio, ffprobe

AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"admin:admin")],
        b"Content-Type": [b"application/json"]}


class CallToRtmpTests(TestCase):
    """
    /call/startup {rtmpUrl, rtmpStream} -> AAC at nginx-rtmp.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio")
        require_binary("baresip")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.nginx = NginxRtmp(os.path.join(self.base, "nginx"))
        self.server = yield start_media_server(
            self, module_values={"record_dir": os.path.join(self.base, "records")})
        self.http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        self.rest = f"http://127.0.0.1:{bound_port(self.server, 'http')}"
        self.sip_port = bound_port(self.server, "sip-udp")

    @defer.inlineCallbacks
    def post(self, path, body):
        response = yield self.http.post(self.rest + "/rest-api" + path,
                                        data=json.dumps(body).encode(), headers=AUTH)
        content = yield response.content()
        return response.code, (json.loads(content) if content else None)

    @defer.inlineCallbacks
    def test_call_republished_as_aac(self):
        """
        The call reaches ESTABLISHED and RTMP_STREAM_ACTIVE; nginx records AAC carrying the
        phone's 1000 Hz tone for about as long as the call lasted.
        """
        yield self.nginx.start()
        self.addCleanup(self.nginx.stop)
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 30)
        bob = Baresip(self.base, "bob", registrar=f"127.0.0.1:{self.sip_port}", password="x",
                      tone_wav=wav)
        self.addCleanup(bob.stop)
        yield bob.start()
        code, _ = yield self.post("/call/startup", {
            "callId": "rtmp1", "callee": "bob", "sipLogin": "rest", "sipDomain": "127.0.0.1",
            "sipPort": "0", "rtmpUrl": self.nginx.url, "rtmpStream": "call1"})
        self.assertEqual(code, 200)

        found = {}

        @defer.inlineCallbacks
        def active():
            code, calls = yield self.post("/call/find", {"callId": "rtmp1"})
            found.update(calls[0] if code == 200 else {})
            return (found.get("status"), found.get("rtmpStreamStatus")) == (
                "ESTABLISHED", "RTMP_STREAM_ACTIVE")

        for _ in range(100):
            if (yield active()):
                break
            yield deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((found.get("status"), found.get("rtmpStreamStatus")),
                         ("ESTABLISHED", "RTMP_STREAM_ACTIVE"))
        yield deferLater(reactor, 3.0, lambda: None)  # let 3 s of media reach nginx
        code, _ = yield self.post("/call/terminate", {"callId": "rtmp1"})
        self.assertEqual(code, 200)
        yield poll(lambda: self.nginx.finished_publishes() >= 1, 10.0, reactor,
                   message=lambda: "nginx never saw the publish end")
        [flv] = self.nginx.recordings()
        info = yield ffprobe(flv)
        self.assertIn("aac", info["codecs"])
        self.assertGreater(info["duration"], 2.0)
        decoded = os.path.join(self.base, "decoded.wav")
        yield decode_audio(flv, decoded)
        self.assertLess(abs(audio.dominant_frequency(decoded) - 1000), 15)
        code, _ = yield self.post("/call/find", {"callId": "rtmp1"})
        self.assertEqual(code, 404)
