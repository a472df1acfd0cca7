"""
Attacks on the gateway performed against a real server on 127.0.0.1 (issue 11): toll fraud
through an anonymous WebSocket session, hijacking a local user's calls with a password-less
login, holding ports with calls that fail during set-up, and a JSON nesting bomb.

An "exposed" server is the same loopback server with its policy's C{exposed} flag set, as the
composition root sets it for a non-loopback listener.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_gateway_security
"""

from __future__ import annotations

import dataclasses
import json
import os

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration.loopback_server import start_media_server
from tests.integration.peers import Baresip, free_port, poll, require_binary, run_sipp
from tests.integration.test_local_mode import udp_port_taken
from wcs_twisted.transport.trace import OUT

OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
    "a=rtcp-mux\r\na=sendrecv\r\n")


class Client(WebSocketClientProtocol):
    """
    A WCS client speaking raw JSON, recording every message.
    """

    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        message = json.loads(payload)
        if message["message"] == "ping":
            self.send("pong", None)
        else:
            self.factory.inbox.put(message)

    def send(self, name, payload):
        self.sendMessage(json.dumps({"message": name, "data": [payload]}).encode())

    def onClose(self, wasClean, code, reason):
        self.factory.closed.callback((code, reason))


class SIPSink(DatagramProtocol):
    """
    Where a fraudulent INVITE would land: a UDP port that records what reaches it.
    """

    def __init__(self):
        self.received = []
        self.arrived = defer.Deferred()

    def datagramReceived(self, data, address):
        self.received.append(data)
        if not self.arrived.called:
            self.arrived.callback(data)


class GatewaySecurityTestCase(TestCase):
    """
    A real server per test; C{policy} overrides fields of its call policy.
    """

    timeout = 30
    settings: dict = {}
    policy: dict = {}

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.built = yield start_media_server(self, media_ports=40, **self.settings)
        self.server = self.built.service
        self.calls = self.built.signalling.calls
        self.set_policy(**self.policy)
        self.ws_port = self.server.getServiceNamed("ws").port.getHost().port
        self.sip_port = self.server.getServiceNamed("sip-udp").port.getHost().port
        self.ports = self.calls.media.port_pool

    def set_policy(self, **values):
        """
        Override fields of the call policy (a server without one, before issue 11, is left
        as it is: the attacks then show what it does).
        """
        settings = self.calls.settings
        if values and hasattr(settings, "policy"):
            self.calls.settings = dataclasses.replace(
                settings, policy=dataclasses.replace(settings.policy, **values))

    @defer.inlineCallbacks
    def client(self, **fields):
        """
        A connected WebSocket; with C{fields}, also a C{connection} sent (its answer unread).
        """
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{self.ws_port}/", reactor=reactor)
        factory.protocol = Client
        factory.inbox = defer.DeferredQueue()
        factory.opened = defer.Deferred()
        factory.closed = defer.Deferred()
        protocol = yield TCP4ClientEndpoint(reactor, "127.0.0.1", self.ws_port).connect(factory)
        yield factory.opened
        self.addCleanup(self._drop, protocol)
        if fields:
            protocol.send("connection", dict({"appKey": "defaultApp"}, **fields))
        return protocol

    def _drop(self, protocol):
        if not protocol.factory.closed.called:
            protocol.sendClose(1000)
            return protocol.factory.closed

    @defer.inlineCallbacks
    def next_message(self, protocol, *names):
        while True:
            message = yield protocol.factory.inbox.get()
            if message["message"] in names:
                return message

    def sink(self):
        sink = SIPSink()
        port = reactor.listenUDP(0, sink, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return sink, port.getHost().port

    @defer.inlineCallbacks
    def anonymous(self, **fields):
        client = yield self.client(sipLogin="mallory", **fields)
        yield self.next_message(client, "getUserData")
        return client


class TollFraudTests(GatewaySecurityTestCase):
    """
    An exposed server: an anonymous session may not make it INVITE anyone it likes.
    """

    policy = {"exposed": True}

    @defer.inlineCallbacks
    def test_call_to_foreign_host_refused(self):
        """
        call to sip:1900@<someone else's SIP server>: fail naming the setting, no INVITE sent,
        no call left.
        """
        sink, port = self.sink()
        client = yield self.anonymous()
        client.send("call", {"callId": "c1", "callee": f"sip:1900@127.0.0.1:{port}",
                             "sdp": OFFER, "hasAudio": True})
        answer = yield self.next_message(client, "fail", "notifyTryingResponse")
        self.assertEqual(answer["message"], "fail")
        self.assertEqual(answer["data"][0]["apiMethod"], "call")
        self.assertIn("call_anonymous", answer["data"][0]["info"])
        self.assertEqual(sink.received, [])
        self.assertEqual((len(self.calls), self.ports.in_use), (0, 0))

    @defer.inlineCallbacks
    def test_outbound_proxy_elsewhere_refused(self):
        """
        sipOutboundProxy pointing at another server, callee a bare number: refused too.
        """
        sink, port = self.sink()
        client = yield self.anonymous(sipDomain="127.0.0.1",
                                      sipOutboundProxy=f"127.0.0.1:{port}")
        client.send("call", {"callId": "c1", "callee": "1900", "sdp": OFFER})
        answer = yield self.next_message(client, "fail", "notifyTryingResponse")
        self.assertEqual(answer["message"], "fail")
        self.assertEqual(sink.received, [])

    @defer.inlineCallbacks
    def test_allow_list_and_anonymous_any(self):
        """
        With the destination on call_allowed_destinations and anonymous calls allowed, the
        INVITE goes out; another port of the same host stays refused.
        """
        sink, port = self.sink()
        self.set_policy(allowed_destinations=(f"127.0.0.1:{port}",), anonymous_calls="any")
        client = yield self.anonymous()
        client.send("call", {"callId": "c1", "callee": f"sip:1900@127.0.0.1:{port + 1}",
                             "sdp": OFFER})
        answer = yield self.next_message(client, "fail", "notifyTryingResponse")
        self.assertIn("call_allowed_destinations", answer["data"][0]["info"])
        client.send("call", {"callId": "c2", "callee": f"sip:1900@127.0.0.1:{port}",
                             "sdp": OFFER})
        invite = yield sink.arrived
        self.assertTrue(invite.startswith(b"INVITE sip:1900@127.0.0.1:"))


class RegistrarRelayTests(GatewaySecurityTestCase):
    """
    An exposed server: registering at a registrar of one's own does not make a session
    trusted (the registrar could relay its INVITEs to any carrier).
    """

    policy = {"exposed": True}

    @defer.inlineCallbacks
    def test_registration_at_own_registrar_refused(self):
        """
        mallory (anonymous) registers at a sipp registrar that accepts anyone: refused
        before any REGISTER leaves (fail RegistrationStatusEvent, socket closed).  Once the
        operator allow-lists that registrar, carol's registration reaches it and vouches for
        her call through it: the registrar sees her REGISTER and INVITE, none of mallory's.
        """
        port = free_port()
        registrar = run_sipp("attacker_registrar", local_port=port, calls=2, timeout=20)
        yield poll(lambda: udp_port_taken(port), 5, reactor, 0.05)
        fields = {"sipDomain": "127.0.0.1", "sipPort": port, "sipPassword": "x",
                  "sipRegisterRequired": True}
        mallory = yield self.client(sipLogin="mallory", **fields)
        answer = yield self.next_message(mallory, "fail", "registered")
        self.assertEqual(answer["message"], "fail")
        self.assertEqual(answer["data"][0]["apiMethod"], "RegistrationStatusEvent")
        self.assertIn(f"Registering at 127.0.0.1:{port}", answer["data"][0]["info"])
        yield mallory.factory.closed

        self.set_policy(allowed_destinations=(f"127.0.0.1:{port}",))
        carol = yield self.client(sipLogin="carol", **fields)
        yield self.next_message(carol, "registered")
        carol.send("call", {"callId": "c1", "callee": "1900", "sdp": OFFER})
        yield self.next_message(carol, "notifyTryingResponse")
        result = yield registrar
        self.assertEqual(result.exit_code, 0, result.describe())
        messages = result.messages()
        self.assertIn("INVITE sip:1900@127.0.0.1:", messages)
        self.assertIn("sip:carol@", messages)
        self.assertNotIn("mallory", messages)


class SpoofedCallerTests(GatewaySecurityTestCase):
    """
    alice has credentials at the built-in registrar; carol is a browser session (a login
    without credentials, bound in local mode).  A SIP INVITE to carol claiming to be alice
    is challenged as the proxy challenges it.
    """

    # baresip 1.0 gives up (ENOSYS) on a SHA-256 challenge even when an MD5 one is offered.
    settings = {"sip_users": {"alice": "secret", "bob": "bobpw"},
                "sip_digest_algorithms": ("MD5",)}
    policy = {"local_users": {"alice": "secret", "bob": "bobpw"}}
    timeout = 40

    @defer.inlineCallbacks
    def phone(self, name, password):
        """
        A baresip phone registered at the built-in registrar with its password.
        """
        require_binary("baresip")
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        phone = Baresip(base, name, registrar=f"127.0.0.1:{self.sip_port}",
                        password=password, answer="manual")
        self.addCleanup(phone.stop)
        yield phone.start()
        return phone

    @defer.inlineCallbacks
    def carol(self):
        session = yield self.client(sipLogin="carol", sipDomain="127.0.0.1")
        yield self.next_message(session, "getUserData")
        return session

    @defer.inlineCallbacks
    def test_spoofed_from_is_challenged(self):
        """
        sipp sends INVITE sip:carol From sip:alice@<our domain> without credentials: 407,
        no call, the browser hears nothing.
        """
        carol = yield self.carol()
        result = yield run_sipp("uac_spoofed_from", f"127.0.0.1:{self.sip_port}",
                                ["-s", "carol"], timeout=15)
        self.assertEqual(result.exit_code, 0, result.describe())
        self.assertIn("SIP/2.0 407 Proxy Authentication Required", result.status_lines())
        self.assertEqual(len(self.calls), 0)
        self.assertEqual([m["message"] for m in carol.factory.inbox.pending], [])
        self.assertEqual(self.built.sip_proxy.refused, 1)

    @defer.inlineCallbacks
    def test_alice_with_her_password_rings_the_browser(self):
        """
        The honest path: alice's phone (baresip, registered with her password) calls carol,
        answers the 407 with her credentials, and the browser rings with alice as caller.
        """
        phone = yield self.phone("alice", "secret")
        carol = yield self.carol()
        yield phone.dial(f"sip:carol@127.0.0.1:{self.sip_port}")
        offered = yield self.next_message(carol, "notifyIncomingCall")
        self.assertEqual(offered["data"][0]["caller"], "alice")
        self.assertEqual(self.built.sip_proxy.refused, 1)  # the one 407 she answered

    @defer.inlineCallbacks
    def test_session_with_password_calls_a_browser(self):
        """
        bob's browser session (his password proven) calls carol's: our own INVITE From bob
        is challenged like anyone's, and the session answers with bob's password.
        """
        carol = yield self.carol()
        bob = yield self.client(sipLogin="bob", sipPassword="bobpw", sipDomain="127.0.0.1")
        yield self.next_message(bob, "getUserData")
        bob.send("call", {"callId": "to-carol", "callee": "carol", "sdp": OFFER})
        offered = yield self.next_message(carol, "notifyIncomingCall")
        self.assertEqual(offered["data"][0]["caller"], "bob")

    @defer.inlineCallbacks
    def test_forked_by_our_proxy_is_not_challenged_twice(self):
        """
        bob has a phone and a browser session: alice's call goes through the built-in
        proxy, which checks her credentials once and forks to both; the INVITE it forwards
        to bob's session (back to this very stack) rings the browser without a second 407.
        """
        alice = yield self.phone("alice", "secret")
        bob_phone = yield self.phone("bob", "bobpw")
        bob = yield self.client(sipLogin="bob", sipPassword="bobpw", sipDomain="127.0.0.1")
        yield self.next_message(bob, "getUserData")
        yield alice.dial(f"sip:bob@127.0.0.1:{self.sip_port}")
        offered = yield self.next_message(bob, "notifyIncomingCall")
        self.assertEqual(offered["data"][0]["caller"], "alice")
        yield bob_phone.wait_event("CALL_INCOMING")
        self.assertEqual(self.built.sip_proxy.refused, 1)


class AssertedIdentityTrustTests(GatewaySecurityTestCase):
    """
    RFC 3325 trust domain: only 127.0.0.2 (sip_trusted_peers) may assert who is calling.
    """

    settings = {"sip_trusted_peers": ("127.0.0.2",)}

    @defer.inlineCallbacks
    def offered_caller(self, source):
        """
        sipp as a trunk at C{source} calls alice's browser with P-Asserted-Identity 1000
        (From: +4930100), then cancels; the caller the browser was shown.
        """
        alice = yield self.client(sipLogin="alice", sipDomain="127.0.0.1")
        yield self.next_message(alice, "getUserData")
        trunk = run_sipp("uac_trunk_identity_cancel", f"127.0.0.1:{self.sip_port}",
                         ["-s", "alice", "-i", source], timeout=15)
        offered = yield self.next_message(alice, "notifyIncomingCall")
        result = yield trunk
        self.assertEqual(result.exit_code, 0, result.describe())
        self.assertIn(f"Via: SIP/2.0/UDP {source}:", result.messages())
        return offered["data"][0]["caller"], offered["data"][0]["visibleName"]

    @defer.inlineCallbacks
    def test_untrusted_source_cannot_assert(self):
        """
        From 127.0.0.1 (not listed) the asserted identity is ignored: the browser sees From.
        """
        caller = yield self.offered_caller("127.0.0.1")
        self.assertEqual(caller, ("+4930100", "Trunk"))

    @defer.inlineCallbacks
    def test_trusted_source_asserts(self):
        """
        From 127.0.0.2 (listed) the asserted identity names the caller.
        """
        caller = yield self.offered_caller("127.0.0.2")
        self.assertEqual(caller, ("1000", "Boss"))


    @defer.inlineCallbacks
    def test_phone_never_sees_a_strangers_assertion(self):
        """
        The built-in proxy forwards an asserted identity to a registered phone (baresip) only
        from the trust domain: sipp at 127.0.0.1 writing P-Asserted-Identity "Boss" reaches
        bob's phone without it; the same INVITE from 127.0.0.2 keeps it.
        """
        require_binary("baresip")
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        phone = Baresip(base, "bob", registrar=f"127.0.0.1:{self.sip_port}", password="x",
                        answer="manual")
        self.addCleanup(phone.stop)
        yield phone.start()
        forwarded = []
        self.built.sip_stack.trace.observers.append(
            lambda direction, data, address: forwarded.append(data)
            if direction == OUT and data.startswith(b"INVITE ") else None)
        for source in ("127.0.0.1", "127.0.0.2"):
            result = yield run_sipp("uac_trunk_identity_cancel", f"127.0.0.1:{self.sip_port}",
                                    ["-s", "bob", "-i", source], timeout=15)
            self.assertEqual(result.exit_code, 0, result.describe())
        self.assertEqual(len(forwarded), 2, forwarded)
        untrusted, trusted = forwarded
        self.assertNotIn(b"P-Asserted-Identity", untrusted)
        self.assertIn(b"From: \"Trunk\"", untrusted)
        self.assertIn(b'P-Asserted-Identity: "Boss" <sip:1000@carrier>', trusted)


class LoopbackDefaultTests(GatewaySecurityTestCase):
    """
    The loopback default keeps today's openness: only local clients can reach the server.
    """

    @defer.inlineCallbacks
    def test_anonymous_call_anywhere(self):
        """
        Not exposed, no allow-list: an anonymous session's INVITE reaches any SIP server.
        """
        sink, port = self.sink()
        client = yield self.anonymous()
        client.send("call", {"callId": "c1", "callee": f"sip:1900@127.0.0.1:{port}",
                             "sdp": OFFER})
        yield self.next_message(client, "notifyTryingResponse")
        invite = yield sink.arrived
        self.assertTrue(invite.startswith(b"INVITE "))


class PortExhaustionTests(GatewaySecurityTestCase):
    """
    Calls that fail while being set up give back everything at once; caps bound the rest.
    """

    policy = {"max_calls_per_session": 2}

    @defer.inlineCallbacks
    def test_bad_rtpmap_releases_call_and_ports(self):
        """
        An offer with a malformed rtpmap: the call ends FAILED and its ports are free again
        while the WebSocket stays open.
        """
        client = yield self.anonymous()
        for n, rtpmap in enumerate(("opus/abc/2", "x111")):
            client.send("call", {"callId": f"c{n}", "callee": "bob",
                                 "sdp": OFFER.replace("opus/48000/2", rtpmap)})
            yield self.next_message(client, "fail", "finish")
            self.assertEqual((len(self.calls), self.ports.in_use), (0, 0))

    @defer.inlineCallbacks
    def test_control_characters_release_nothing_taken(self):
        """
        A CRLF in visibleName, a bad sipHeaders name: fail naming the field, no call kept.
        """
        client = yield self.anonymous()
        client.send("call", {"callId": "c1", "callee": "bob", "sdp": OFFER,
                             "visibleName": "Bob\r\nX-Evil: 1"})
        fail = yield self.next_message(client, "fail")
        self.assertIn("visibleName", fail["data"][0]["info"])
        client.send("call", {"callId": "c2", "callee": "bob", "sdp": OFFER,
                             "sipHeaders": {"X-Bad Name": "1"}})
        fail = yield self.next_message(client, "fail")
        self.assertIn("sipHeaders", fail["data"][0]["info"])
        self.assertEqual((len(self.calls), self.ports.in_use), (0, 0))

    @defer.inlineCallbacks
    def test_calls_per_session_capped(self):
        """
        max_calls_per_session=2: the third concurrent call is refused with its reason.
        """
        sink, port = self.sink()
        client = yield self.anonymous()
        for n in range(2):
            client.send("call", {"callId": f"c{n}", "callee": f"sip:x@127.0.0.1:{port}",
                                 "sdp": OFFER})
            yield self.next_message(client, "notifyTryingResponse")
        client.send("call", {"callId": "c2", "callee": f"sip:x@127.0.0.1:{port}",
                             "sdp": OFFER})
        fail = yield self.next_message(client, "fail", "notifyTryingResponse")
        self.assertIn("max_calls_per_session", fail["data"][0]["info"])
        self.assertEqual(len(self.calls), 2)


class NestingBombTests(GatewaySecurityTestCase):
    """
    Deeply nested JSON is answered, not a dropped connection.
    """

    @defer.inlineCallbacks
    def test_nested_brackets_get_fail(self):
        """
        "[" * 1000 over the WebSocket: fail, and the connection still opens a session.
        """
        client = yield self.client()
        client.sendMessage(b"[" * 1000)
        fail = yield self.next_message(client, "fail")
        self.assertIn("nested too deeply", fail["data"][0]["info"])
        client.send("connection", {"appKey": "defaultApp"})
        yield self.next_message(client, "getUserData")


class CallHijackTests(GatewaySecurityTestCase):
    """
    alice has credentials at the built-in registrar and her phone (baresip) registered.
    """

    # baresip 1.0 gives up (ENOSYS) on a SHA-256 challenge even when an MD5 one is offered.
    settings = {"sip_users": {"alice": "secret", "bob": "bobpw"},
                "sip_digest_algorithms": ("MD5",)}
    # What the composition root passes: the registrar's users.
    policy = {"local_users": {"alice": "secret", "bob": "bobpw"}}
    timeout = 40

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        require_binary("baresip")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.phone = Baresip(self.base, "alice", registrar=f"127.0.0.1:{self.sip_port}",
                             password="secret", answer="manual")
        self.addCleanup(self.phone.stop)
        yield self.phone.start()

    def aor_contacts(self):
        return sorted(str(binding.contact.uri) for binding in self.built.location.lookup(
            "sip:alice@127.0.0.1", reactor.seconds()))

    @defer.inlineCallbacks
    def call_alice(self):
        caller = yield self.client(sipLogin="bob", sipPassword="bobpw", sipDomain="127.0.0.1")
        yield self.next_message(caller, "getUserData")
        caller.send("call", {"callId": "to-alice", "callee": "alice", "sdp": OFFER})
        return caller

    @defer.inlineCallbacks
    def test_login_without_password_is_refused(self):
        """
        sipLogin=alice with no password, then a wrong one: fail, no binding; alice's phone
        still gets her calls.
        """
        phone_contacts = self.aor_contacts()
        for password in (None, "guess"):
            fields = {"sipLogin": "alice", "sipDomain": "127.0.0.1"}
            if password is not None:
                fields["sipPassword"] = password
            thief = yield self.client(**fields)
            answer = yield self.next_message(thief, "fail", "getUserData")
            self.assertEqual(answer["message"], "fail")
            self.assertIn("sipPassword", answer["data"][0]["info"])
        self.assertEqual(self.aor_contacts(), phone_contacts)
        yield self.call_alice()
        yield self.phone.wait_event("CALL_INCOMING")

    @defer.inlineCallbacks
    def test_proven_login_rings_with_the_phone(self):
        """
        With the right password the session gets its own binding next to the phone's, and a
        call to alice rings both.
        """
        session = yield self.client(sipLogin="alice", sipPassword="secret",
                                    sipDomain="127.0.0.1")
        yield self.next_message(session, "getUserData")
        self.assertEqual(len(self.aor_contacts()), 2)
        yield self.call_alice()
        yield self.next_message(session, "notifyIncomingCall")
        yield self.phone.wait_event("CALL_INCOMING")
