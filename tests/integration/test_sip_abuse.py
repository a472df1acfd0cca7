"""
SIP attacks against the server as C{build_service} wires it, over real sockets on 127.0.0.1:
sending as a local user without her password, flooding a silent contact, and malformed
messages that used to raise (a traceback per datagram, or a TCP connection closed).

Run under the asyncio reactor, as the server runs:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sip_abuse
"""

from __future__ import annotations

import itertools

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase

from tests.integration.peers import LOOPBACK, poll
from tests.integration.test_sip_tcp import Client
from wcs_twisted.config import Settings
from wcs_twisted.sip.auth import DigestChallenge, build_authorization
from wcs_twisted.sip.message import Request, Response, parse_message
from wcs_twisted.tap import build_service
from wcs_twisted.ua.proxy_bounds import MAX_UNANSWERED

USERS = {"alice": "alicepw", "bob": "bobpw"}
_branches = itertools.count(1)


class Phone(DatagramProtocol):
    """
    A raw UDP endpoint that records every SIP message it receives and answers nothing.
    """

    def __init__(self) -> None:
        self.messages: list = []

    def datagramReceived(self, data, address) -> None:
        self.messages.append(parse_message(data))

    @property
    def port(self) -> int:
        return self.transport.getHost().port

    def responses(self, call_id):
        return [m for m in self.messages if isinstance(m, Response) and m.call_id == call_id]

    def requests(self, method):
        return [m for m in self.messages if isinstance(m, Request) and m.method == method]


def request_text(method, uri, port, from_user, to, call_id, extra=(), cseq=1, to_param=">"):
    """
    A request as a phone at 127.0.0.1:C{port} writes it (C{to_param} ends the To value).
    """
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bKabuse{next(_branches)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{from_user}@{LOOPBACK}>;tag=f{call_id}",
        *([f"To: <{to}{to_param}"] if to else []),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *extra,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


class SIPAbuseTests(TestCase):
    """
    Local mode with digest users alice and bob; bob's phone registered at a silent socket.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        settings = Settings(bind_address=LOOPBACK, sip_port=0, ws_port=0, http_port=0,
                            enable_local_videochat=True, sip_transports=("udp", "tcp"),
                            sip_users=USERS)
        self.root = build_service(settings, reactor)
        self.root.service.startService()
        self.addCleanup(self.root.service.stopService)
        yield defer.gatherResults([listener.when_ready() for listener in self.root.listeners])
        self.port = self.root.sip_stack.ports["udp"]
        self.bob = self.phone()
        self.attacker = self.phone()
        yield self.register_bob()

    def phone(self) -> Phone:
        phone = Phone()
        listening = self.reactor.listenUDP(0, phone, interface=LOOPBACK)
        self.addCleanup(listening.stopListening)
        return phone

    def send(self, phone, data):
        phone.transport.write(data, (LOOPBACK, self.port))

    def final(self, phone, call_id):
        """
        Fires with the first final response C{phone} gets for C{call_id}.
        """
        def found():
            finals = [r for r in phone.responses(call_id) if r.status_code >= 200]
            return finals[0] if finals else None
        return poll(found, 5, self.reactor, 0.01,
                    message=lambda: f"no final response for {call_id}: {phone.messages}")

    def register(self, call_id, contact="", authorization=None, cseq=1, user="bob"):
        extra = [f"Contact: <sip:{user}@{LOOPBACK}:{self.bob.port}>{contact}", "Expires: 600"]
        if authorization:
            extra.append(f"Authorization: {authorization}")
        self.send(self.bob, request_text("REGISTER", f"sip:{LOOPBACK}", self.bob.port, user,
                                         f"sip:{user}@{LOOPBACK}", call_id, extra, cseq))
        return self.final(self.bob, call_id)

    @defer.inlineCallbacks
    def authorization(self, call_id, uri=f"sip:{LOOPBACK}", user="bob"):
        """
        Credentials of C{user} for a REGISTER, after a first one is challenged.
        """
        challenge = yield self.register(call_id + "-challenge", user=user)
        self.assertEqual(challenge.status_code, 401)
        value = DigestChallenge.parse(challenge.headers.get_all("WWW-Authenticate")[-1])
        return build_authorization(value, "REGISTER", uri, user, USERS[user], cnonce="abc")

    @defer.inlineCallbacks
    def register_bob(self):
        authorization = yield self.authorization("reg")
        response = yield self.register("reg", authorization=authorization, cseq=2)
        self.assertEqual(response.status_code, 200)

    # --- sending as someone else ----------------------------------------------------------

    @defer.inlineCallbacks
    def test_spoofed_from_local_user_challenged(self):
        """
        An unauthenticated MESSAGE From: alice (a local user with a password) gets 407 and
        never reaches bob; a MESSAGE from a user without a password still does.
        """
        self.send(self.attacker, request_text(
            "MESSAGE", f"sip:bob@{LOOPBACK}", self.attacker.port, "alice",
            f"sip:bob@{LOOPBACK}", "spoof"))
        response = yield self.final(self.attacker, "spoof")
        self.assertEqual(response.status_code, 407)
        self.assertTrue(response.headers.get_all("Proxy-Authenticate"))
        self.send(self.attacker, request_text(
            "MESSAGE", f"sip:bob@{LOOPBACK}", self.attacker.port, "mallory",
            f"sip:bob@{LOOPBACK}", "honest"))
        yield poll(lambda: self.bob.requests("MESSAGE"), 5, self.reactor, 0.01)
        self.assertEqual([m.call_id for m in self.bob.requests("MESSAGE")], ["honest"])

    # --- fan-out --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_invite_flood_to_silent_contact_bounded(self):
        """
        3 * MAX_UNANSWERED INVITEs for bob, whose phone never answers: bob receives only
        MAX_UNANSWERED of them, the others are answered 503 at once.
        """
        count = 3 * MAX_UNANSWERED
        for n in range(count):
            self.send(self.attacker, request_text(
                "INVITE", f"sip:bob@{LOOPBACK}", self.attacker.port, "mallory",
                f"sip:bob@{LOOPBACK}", f"flood-{n}"))

        def refused():
            return [m for m in self.attacker.messages if m.status_code == 503]
        yield poll(lambda: len(refused()) >= count - MAX_UNANSWERED, 10, self.reactor, 0.05,
                   message=lambda: f"{len(refused())} refused")
        yield poll(lambda: len({m.call_id for m in self.bob.requests("INVITE")})
                   >= MAX_UNANSWERED, 5, self.reactor, 0.05)
        self.assertEqual(len({m.call_id for m in self.bob.requests("INVITE")}), MAX_UNANSWERED)
        self.assertEqual(len(refused()), count - MAX_UNANSWERED)

    # --- malformed input ------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_register_bad_q_and_digest_uri(self):
        """
        A REGISTER with q=7.5 (or nan, inf) gets 400; so do credentials whose uri is not the
        Request-URI, or holds a byte that is not UTF-8.  No traceback is logged.
        """
        for n, q in enumerate(("7.5", "nan", "inf")):
            authorization = yield self.authorization(f"q{n}")
            response = yield self.register(f"q{n}", f";q={q}", authorization, cseq=2)
            self.assertEqual((q, response.status_code), (q, 400))
        authorization = yield self.authorization("uri", uri=f"sip:alice@{LOOPBACK}")
        response = yield self.register("uri", authorization=authorization, cseq=2)
        self.assertEqual(response.status_code, 400)
        authorization = yield self.authorization("utf8")
        authorization = authorization.replace(f'uri="sip:{LOOPBACK}"',
                                              f'uri="sip:{LOOPBACK}\udcff"')
        response = yield self.register("utf8", authorization=authorization, cseq=2)
        self.assertEqual(response.status_code, 400)

    @defer.inlineCallbacks
    def test_ack_without_to(self):
        """
        ACKs without To are dropped (no traceback logged, which trial would report); the
        server still answers what follows.
        """
        for n in range(5):
            self.send(self.attacker, request_text("ACK", f"sip:bob@{LOOPBACK}",
                                                  self.attacker.port, "mallory", None, f"a{n}"))
        self.send(self.attacker, request_text("OPTIONS", f"sip:{LOOPBACK}", self.attacker.port,
                                              "mallory", f"sip:{LOOPBACK}", "after"))
        response = yield self.final(self.attacker, "after")
        self.assertEqual(response.status_code, 200)

    @defer.inlineCallbacks
    def test_cancel_of_invite_with_malformed_to_over_tcp(self):
        """
        Over TCP, an INVITE whose To is malformed gets 400 and its CANCEL 200; the connection
        stays open and answers the next request.
        """
        client = Client()
        tcp_port = self.root.sip_stack.ports["tcp"]
        yield connectProtocol(TCP4ClientEndpoint(self.reactor, LOOPBACK, tcp_port), client)
        self.addCleanup(lambda: client.closed)  # cleanups run last first: close, then wait
        self.addCleanup(client.transport.loseConnection)

        def tcp(text):
            return text.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")

        invite = tcp(request_text("INVITE", f"sip:bob@{LOOPBACK}", 5999, "mallory",
                                  f"sip:bob@{LOOPBACK}", "badto", to_param=""))
        client.transport.write(invite)
        yield poll(lambda: any(m.status_code == 400 for m in client.messages), 5,
                   self.reactor, 0.01, message=lambda: repr(client.messages))
        cancel = invite.replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
        client.transport.write(cancel)
        client.transport.write(tcp(request_text("OPTIONS", f"sip:{LOOPBACK}", 5999, "mallory",
                                                f"sip:{LOOPBACK}", "next")))
        yield poll(lambda: any(m.call_id == "next" for m in client.messages), 5,
                   self.reactor, 0.01, message=lambda: repr(client.messages))
        self.assertFalse(client.closed.called)
        self.assertIn((200, "CANCEL"), [(m.status_code, m.cseq.method)
                                        for m in client.messages])
