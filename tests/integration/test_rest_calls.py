"""
REST call methods against real phones: /call/startup to baresip through the built-in proxy and
through Kamailio with digest, /call/send_dtmf in each mode, /call/terminate, then 404.
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
from tests.integration.peers import Baresip, Kamailio, poll, require_binary

AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"admin:admin")],
        b"Content-Type": [b"application/json"]}


class RestCallTests(TestCase):
    """
    A real server per test; baresip answers automatically.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio")
        require_binary("baresip")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.server = yield start_media_server(self)
        self.http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        self.rest = f"http://127.0.0.1:{bound_port(self.server, 'http')}"
        self.sip_port = bound_port(self.server, "sip-udp")
        self.trace = []
        self.server.sip_stack.trace.observers.append(
            lambda direction, data, address: self.trace.append((direction, data)))

    @defer.inlineCallbacks
    def post(self, path, body):
        response = yield self.http.post(self.rest + "/rest-api" + path,
                                        data=json.dumps(body).encode(), headers=AUTH)
        content = yield response.content()
        return response.code, (json.loads(content) if content else None)

    @defer.inlineCallbacks
    def established(self, call_id):
        for _ in range(100):
            code, calls = yield self.post("/call/find", {"callId": call_id})
            if code == 200 and calls[0]["status"] == "ESTABLISHED":
                return calls[0]
            yield deferLater(reactor, 0.1, lambda: None)
        raise AssertionError(f"call {call_id} never reached ESTABLISHED")

    @defer.inlineCallbacks
    def exercise(self, bob, startup):
        """
        startup -> ESTABLISHED -> DTMF in each mode -> terminate -> 404; duplicate -> 409.
        """
        code, _ = yield self.post("/call/startup", startup)
        self.assertEqual(code, 200)
        yield self.established(startup["callId"])
        yield bob.wait_event("CALL_ESTABLISHED")
        code, _ = yield self.post("/call/startup", startup)
        self.assertEqual(code, 409)
        for digit, mode in (("1", "RFC2833"), ("2", "INFO")):
            code, _ = yield self.post("/call/send_dtmf", {"callId": startup["callId"],
                                                          "dtmf": digit, "type": mode})
            self.assertEqual(code, 200)
            event = yield bob.wait_event("CALL_DTMF_START")
            self.assertEqual(event["param"], digit, mode)
        code, _ = yield self.post("/call/send_dtmf", {"callId": startup["callId"], "dtmf": "3",
                                                      "type": "INFO_RELAY"})
        self.assertEqual(code, 200)
        # baresip reports no event for application/dtmf: read the wire instead.
        yield poll(lambda: any(direction == "out" and data.startswith(b"INFO ")
                               and b"application/dtmf\r\n" in data and data.endswith(b"\r\n\r\n3")
                               for direction, data in self.trace), 5.0, reactor,
                   message=lambda: "no INFO application/dtmf with the digit went out")
        yield poll(lambda: any(direction == "in" and data.startswith(b"SIP/2.0 200")
                               and b" INFO\r\n" in data for direction, data in self.trace),
                   5.0, reactor, message=lambda: "the INFO_RELAY INFO was not answered 200")
        code, _ = yield self.post("/call/terminate", {"callId": startup["callId"]})
        self.assertEqual(code, 200)
        yield bob.wait_event("CALL_CLOSED")
        code, _ = yield self.post("/call/find", {"callId": startup["callId"]})
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_through_the_builtin_proxy(self):
        """
        /call/startup to a baresip registered at our registrar.
        """
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 30)
        bob = Baresip(self.base, "bob", registrar=f"127.0.0.1:{self.sip_port}", password="x",
                      tone_wav=wav)
        self.addCleanup(bob.stop)
        yield bob.start()
        yield self.exercise(bob, {"callId": "r1", "callee": "bob", "sipLogin": "rest",
                                  "sipDomain": "127.0.0.1", "sipPort": "0"})

    @defer.inlineCallbacks
    def test_through_kamailio_with_digest(self):
        """
        /call/startup registering at Kamailio with digest, then calling its user bob.
        """
        kamailio = Kamailio(self.base, users={"rest": "pw", "bob": "secret"})
        self.addCleanup(kamailio.stop)
        yield kamailio.start()
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 30)
        bob = Baresip(self.base, "bob", registrar=kamailio.address, password="secret",
                      tone_wav=wav)
        self.addCleanup(bob.stop)
        yield bob.start()
        yield self.exercise(bob, {
            "callId": "k1", "callee": "bob", "sipLogin": "rest", "sipAuthenticationName": "rest",
            "sipPassword": "pw", "sipDomain": "127.0.0.1", "sipOutboundProxy": "127.0.0.1",
            "sipPort": str(kamailio.port), "sipRegisterRequired": "true"})
