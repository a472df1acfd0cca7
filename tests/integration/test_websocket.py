"""
The real server on loopback: the WebSocket handshake with a real Autobahn client, keep-alive,
bad messages, REST over HTTP and graceful shutdown.
"""

import base64
import json

from treq.client import HTTPClient
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.trial.unittest import TestCase

from wcs_twisted.config import Settings
from wcs_twisted.tap import build_service

ADMIN = {b"Authorization": [b"Basic " + base64.b64encode(b"admin:admin")]}


class RecordingClient(WebSocketClientProtocol):
    """
    A WCS client that records every message and can be told to stop answering pings.
    """

    answer_pings = True

    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        message = json.loads(payload)
        self.factory.inbox.put(message)
        if message["message"] == "ping" and self.answer_pings and self.state == self.STATE_OPEN:
            self.send("pong", None)

    def send(self, name, payload):
        self.sendMessage(json.dumps({"message": name, "data": [payload]}).encode())

    def onClose(self, wasClean, code, reason):
        self.factory.closed.callback((code, reason))


class RunningServerTests(TestCase):
    """
    One real server per test, on 127.0.0.1 with ports chosen by the kernel.
    """

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        settings = Settings(bind_address="127.0.0.1", ws_port=0, http_port=0, sip_port=0,
                            keep_alive_interval_ms=100, keep_alive_probes=3)
        self.server = build_service(settings, reactor)
        self.server.service.startService()
        self.addCleanup(self.stop_server)
        yield defer.gatherResults([l.when_ready() for l in self.server.listeners])
        self.ws_port = self.server.service.getServiceNamed("ws").port.getHost().port
        self.http_port = self.server.service.getServiceNamed("http").port.getHost().port

    def stop_server(self):
        if self.server.service.running:
            return self.server.service.stopService()

    @defer.inlineCallbacks
    def connect(self, path="/"):
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{self.ws_port}{path}", reactor=reactor)
        factory.protocol = RecordingClient
        factory.inbox = defer.DeferredQueue()
        factory.opened = defer.Deferred()
        factory.closed = defer.Deferred()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.ws_port)
        protocol = yield endpoint.connect(factory)
        yield factory.opened
        self.addCleanup(self.drop, protocol)
        return protocol

    def drop(self, protocol):
        if not protocol.factory.closed.called:
            protocol.sendClose(1000)
            return protocol.factory.closed

    @defer.inlineCallbacks
    def next_message(self, protocol, name):
        while True:
            message = yield protocol.factory.inbox.get()
            if message["message"] == name:
                return message

    @defer.inlineCallbacks
    def test_connection_user_data_and_pings(self):
        """
        connection -> getUserData with authToken; then pings with a data array.
        """
        client = yield self.connect("/any/path")
        client.send("connection", {"appKey": "defaultApp", "sipLogin": "alice"})
        user_data = yield self.next_message(client, "getUserData")
        self.assertEqual(user_data["data"][0]["sipLogin"], "alice")
        self.assertTrue(user_data["data"][0]["authToken"])
        ping = yield self.next_message(client, "ping")
        self.assertEqual(ping["data"], [])
        yield self.next_message(client, "ping")
        self.assertFalse(client.factory.closed.called)

    @defer.inlineCallbacks
    def test_bad_messages_get_fail_and_connection_survives(self):
        """
        Malformed JSON and unknown messages get fail; the connection still works afterwards.
        """
        client = yield self.connect()
        client.sendMessage(b"{not json")
        fail = yield self.next_message(client, "fail")
        self.assertIn("Malformed JSON", fail["data"][0]["info"])
        client.send("bogus", {})
        fail = yield self.next_message(client, "fail")
        self.assertEqual(fail["data"][0]["apiMethod"], "bogus")
        client.send("connection", {})
        yield self.next_message(client, "getUserData")

    @defer.inlineCallbacks
    def test_missed_pongs_drop_the_connection(self):
        """
        A client that never answers pings is closed by keep-alive.
        """
        client = yield self.connect()
        client.answer_pings = False
        code, reason = yield client.factory.closed
        self.assertEqual((code, reason), (4008, "Terminated by keep-alive"))

    @defer.inlineCallbacks
    def test_rest_health_and_sessions(self):
        """
        Over real HTTP: health is ready, REST lists the open session, the index page loads.
        """
        client = yield self.connect()
        client.send("connection", {"sipLogin": "bob"})
        yield self.next_message(client, "getUserData")
        base = f"http://127.0.0.1:{self.http_port}"
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        response = yield http.get(base + "/health")
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.json())["status"], "ready")
        response = yield http.get(base + "/rest-api/connection/find_all", headers=ADMIN)
        self.assertEqual([c["sipLogin"] for c in (yield response.json())], ["bob"])
        response = yield http.get(base + "/")
        self.assertIn(b"wcs-twisted", (yield response.content()))
        response = yield http.get(base + "/metrics")
        self.assertIn(b"wcs_sessions 1.0", (yield response.content()))

    @defer.inlineCallbacks
    def test_graceful_shutdown_closes_sessions(self):
        """
        Stopping the service tells clients 'going away' and closes cleanly.
        """
        client = yield self.connect()
        client.send("connection", {})
        yield self.next_message(client, "getUserData")
        yield self.server.service.stopService()
        code, reason = yield client.factory.closed
        self.assertEqual((code, reason), (1000, "Server shutting down"))
        self.assertEqual(len(self.server.sessions), 0)


class TLSListenerTests(TestCase):
    """
    With a certificate the server also serves wss:// and https://.
    """

    timeout = 20

    @defer.inlineCallbacks
    def test_wss_and_https(self):
        """
        A TLS WebSocket client gets getUserData; https /health answers ready.
        """
        import os

        import twisted.test
        from autobahn.twisted.websocket import connectWS
        from twisted.internet import ssl
        from twisted.web.iweb import IPolicyForHTTPS
        from zope.interface import implementer

        certificate = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")
        settings = Settings(bind_address="127.0.0.1", ws_port=0, http_port=0, sip_port=0,
                            wss_port=0, https_port=0, tls_certificate=certificate)
        server = build_service(settings, reactor)
        server.service.startService()
        self.addCleanup(lambda: server.service.running and server.service.stopService())
        yield defer.gatherResults([l.when_ready() for l in server.listeners])
        wss_port = server.service.getServiceNamed("wss").port.getHost().port
        https_port = server.service.getServiceNamed("https").port.getHost().port

        factory = WebSocketClientFactory(f"wss://127.0.0.1:{wss_port}/", reactor=reactor)
        factory.protocol = RecordingClient
        factory.inbox = defer.DeferredQueue()
        factory.opened = defer.Deferred()
        factory.closed = defer.Deferred()
        connector = connectWS(factory, ssl.ClientContextFactory())
        self.addCleanup(connector.disconnect)
        client = yield factory.opened
        client.send("connection", {"sipLogin": "tls"})
        while True:
            message = yield factory.inbox.get()
            if message["message"] == "getUserData":
                break
        self.assertEqual(message["data"][0]["sipLogin"], "tls")
        client.sendClose(1000)
        yield factory.closed

        @implementer(IPolicyForHTTPS)
        class TrustAnything:
            def creatorForNetloc(self, hostname, port):
                return ssl.CertificateOptions(verify=False)

        agent = Agent(reactor, contextFactory=TrustAnything(),
                      pool=HTTPConnectionPool(reactor, persistent=False))
        response = yield HTTPClient(agent).get(f"https://127.0.0.1:{https_port}/health")
        self.assertEqual(response.code, 200)
        body = yield response.json()
        self.assertEqual(set(body["listeners"]), {"ws", "http", "wss", "https", "sip-udp",
                                                  "sip-tcp"})
