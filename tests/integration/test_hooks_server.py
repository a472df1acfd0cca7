"""
REST hooks from the real server to a real backend: a connect refused by the backend is a failed
session for the client; accepted sessions and calls report their events, signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.integration.wcs_client import WCSClient, WCSConnectionClosed
from wcs_twisted.config import Settings
from wcs_twisted.tap import build_service

SECRET = "s3cret"


class Backend(Resource):
    """
    Records hooks; refuses connect for users named "mallory".
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.received = []
        self.arrived = defer.DeferredQueue()

    def render_POST(self, request):
        body = request.content.read()
        method = request.path.decode().rsplit("/", 1)[-1]
        timestamp = request.getHeader(b"x-wcs-timestamp").decode()
        signature = request.getHeader(b"x-wcs-signature").decode()
        expected = hmac.new(SECRET.encode(), f"{timestamp}.{method}.".encode() + body,
                            hashlib.sha256).hexdigest()
        fields = json.loads(body)
        self.received.append((method, fields, signature == f"sha256={expected}"))
        self.arrived.put(method)
        if method == "connect" and fields.get("sipLogin") == "mallory":
            request.setResponseCode(403, b"Blocked user")
            return b""
        request.setHeader(b"content-type", b"application/json")
        return body


class HookedServerTests(TestCase):
    """
    A server whose defaultApp has a backend.
    """

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio")
        self.backend = Backend()
        port = reactor.listenTCP(0, Site(self.backend), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/app"
        settings = Settings(bind_address="127.0.0.1", ws_port=0, http_port=0, sip_port=0,
                            rest_hook_urls={"defaultApp": url},
                            rest_hook_secrets={"defaultApp": SECRET})
        self.server = build_service(settings, reactor)
        self.server.service.startService()
        self.addCleanup(lambda: self.server.service.running and self.server.service.stopService())
        yield defer.gatherResults([l.when_ready() for l in self.server.listeners])
        self.url = f"ws://127.0.0.1:{self.server.service.getServiceNamed('ws').port.getHost().port}"

    def client(self):
        client = WCSClient(self.url, reactor, directory=self.mktemp())
        self.addCleanup(client.close)
        return client

    async def test_refused_connect_fails_the_session(self):
        """
        The backend's 403 reaches the client as a fail with its reason, then the socket closes.
        """
        client = self.client()
        with self.assertRaises(WCSConnectionClosed):
            await client.connect(sipLogin="mallory")
        fails = [m["data"][0] for m in client.messages if m["message"] == "fail"]
        self.assertEqual(fails[0]["apiMethod"], "ConnectionStatusEvent")
        self.assertIn("Blocked user", fails[0]["info"])
        self.assertEqual(len(self.server.sessions), 0)

    async def test_accepted_connect_and_events_signed(self):
        """
        connect, then ConnectionStatusEvent ESTABLISHED, both signed with HMAC-SHA256.
        """
        client = self.client()
        user_data = await client.connect(sipLogin="alice")
        self.assertEqual(user_data["sipLogin"], "alice")
        methods = [await self.backend.arrived.get(), await self.backend.arrived.get()]
        self.assertEqual(methods, ["connect", "ConnectionStatusEvent"])
        self.assertTrue(all(valid for _, _, valid in self.backend.received))
        status = self.backend.received[1][1]
        self.assertEqual((status["status"], status["sipLogin"]), ("ESTABLISHED", "alice"))
        self.assertNotIn("sipPassword", status)
