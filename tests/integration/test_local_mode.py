"""
Local mode against real SIP software: sipp agents register at our built-in registrar and call
each other through our stateful proxy, over real UDP on 127.0.0.1.

Each test starts its own server (SIP on UDP port 0) and skips when sipp is missing.  Run under
the asyncio reactor like the server:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_local_mode
"""

from __future__ import annotations

import os
import random
import socket

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.integration.peers import LOOPBACK, free_port, poll, require_binary, run_sipp
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.trace import MessageTrace
from wcs_twisted.transport.udp import SIPDatagramProtocol
from wcs_twisted.ua.core import UserAgentCore
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.registrar import Registrar

#: sipp's own limit per run; every test stays well under trial's timeout.
SIPP_TIMEOUT = 8


class LocalModeServer:
    """
    The SIP half of local mode, built from the real classes: stack, UDP listener, UA core,
    registrar, proxy.
    """

    def __init__(self, reactor, users=None) -> None:
        rng = random.SystemRandom()
        self.stack = SIPStack(TransactionLayer(), reactor, rng, advertised_host=LOOPBACK,
                              trace=MessageTrace(log_messages=False))
        self.core = UserAgentCore(self.stack, rng)
        self.stack.attach(self.core)
        self.location = LocationService()
        domains = [LOOPBACK, "localhost"]
        # sipp (and other RFC 2617 clients) answer the first challenge only and know only
        # MD5: offer it first.
        authenticator = DigestAuthenticator(LOOPBACK, os.urandom(32),
                                            algorithms=("MD5", "SHA-256")) if users else None
        self.registrar = Registrar(self.core, self.location, reactor, domains, users=users,
                                   authenticator=authenticator)
        self.proxy = Proxy(self.core, self.location, reactor, self.registrar.serves,
                           users=users or (), timers=self.stack.layer.timers)
        self.core.add_router(self.registrar)
        self.core.add_router(self.proxy)
        self.protocol = SIPDatagramProtocol(self.stack)
        self.listening = reactor.listenUDP(0, self.protocol, interface=LOOPBACK)
        self.port = self.listening.getHost().port
        self.stack.add_transport("udp", self.protocol, self.port)
        self.address = f"{LOOPBACK}:{self.port}"

    def stop(self):
        self.proxy.stop()
        self.stack.stop()
        return self.listening.stopListening()


def udp_port_taken(port: int) -> bool:
    """
    Whether something is bound to UDP C{port} (sipp, once it is up).  Read from
    /proc/net/udp where there is one, so that the check never holds the port itself.
    """
    try:
        with open("/proc/net/udp") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
        finally:
            probe.close()
        return False
    suffix = ":%04X" % port
    return any(row.split()[1].endswith(suffix) for row in rows if len(row.split()) > 1)


def first_message(messages: str, start: str) -> str:
    """
    The first message in a sipp trace whose start line begins with C{start}.
    """
    text = messages.replace("\r\n", "\n")
    index = text.find("\n" + start)
    if index < 0:
        return ""
    return text[index + 1:].split("\n\n", 1)[0]


class LocalModeTests(TestCase):
    """
    RFC 3261 10 and 16 against sipp: our registrar and proxy in local mode.
    """

    timeout = 25

    def setUp(self):
        require_binary("sipp", "sip-tester")
        from twisted.internet import reactor

        self.reactor = reactor
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)

    def start_server(self, users=None) -> LocalModeServer:
        server = LocalModeServer(self.reactor, users)
        self.addCleanup(server.stop)
        return server

    def sipp(self, scenario, target, args, **kwargs):
        return run_sipp(scenario, target, args, timeout=SIPP_TIMEOUT, workdir=self.workdir,
                        reactor=self.reactor, **kwargs)

    @defer.inlineCallbacks
    def register_callee(self, server, user="bob"):
        """
        REGISTER C{user} from a fresh port, and return that port for the sipp UAS to bind.
        """
        port = free_port()
        result = yield self.sipp("register", server.address, ["-s", user], local_port=port)
        self.assertEqual(result.exit_code, 0, result.describe())
        return port

    @defer.inlineCallbacks
    def call(self, server, uas_scenario, uac_scenario):
        """
        Register bob, start the sipp UAS as bob on the registered port, and once it is bound
        let the sipp UAC call sip:bob@US; fire with both results.
        """
        port = yield self.register_callee(server)
        callee = self.sipp(uas_scenario, None, ["-s", "bob"], local_port=port)
        yield poll(lambda: udp_port_taken(port), 5, self.reactor, 0.05,
                   message=lambda: f"sipp UAS never bound udp {port}")
        caller = yield self.sipp(uac_scenario, server.address, ["-s", "bob"])
        callee = yield callee
        return callee, caller

    @defer.inlineCallbacks
    def test_register_without_digest(self):
        """
        10.3: sipp's REGISTER gets 200 and the binding points where it came from.
        """
        server = self.start_server()
        port = free_port()
        result = yield self.sipp("register", server.address, ["-s", "alice"], local_port=port)
        self.assertEqual(result.exit_code, 0, result.describe())
        [binding] = server.location.lookup(f"sip:alice@{LOOPBACK}", self.reactor.seconds())
        self.assertEqual((binding.source.host, binding.source.port), (LOOPBACK, port))

    @defer.inlineCallbacks
    def test_register_with_digest(self):
        """
        22.1: sipp answers our 401 with -au/-ap and gets 200; a wrong password gets 403.
        """
        server = self.start_server(users={"alice": "secret"})
        result = yield self.sipp("register_auth", server.address,
                                 ["-s", "alice", "-au", "alice", "-ap", "secret"])
        self.assertEqual(result.exit_code, 0, result.describe())
        self.assertIn("SIP/2.0 401 Unauthorized", result.status_lines())
        self.assertEqual(
            len(server.location.lookup(f"sip:alice@{LOOPBACK}", self.reactor.seconds())), 1)
        wrong = yield self.sipp("register_auth", server.address,
                                ["-s", "alice", "-au", "alice", "-ap", "guess"])
        self.assertEqual(wrong.exit_code, 1, wrong.describe())
        self.assertIn("SIP/2.0 403 Wrong credentials", wrong.status_lines())

    @defer.inlineCallbacks
    def test_call_through_proxy_with_record_route(self):
        """
        16: a registered sipp UAS is called by a sipp UAC through us; the INVITE carries our
        Record-Route, and the ACK and BYE come back through us along the route set.
        """
        server = self.start_server()
        callee, caller = yield self.call(server, "uas_answer_200", "uac_invite_bye")
        self.assertEqual((callee.exit_code, caller.exit_code), (0, 0),
                         callee.describe() + caller.describe())
        record_route = f"Record-Route: <sip:{LOOPBACK}:{server.port};transport=udp;lr>"
        invite = first_message(callee.messages(), "INVITE ")
        self.assertIn(record_route, invite)
        self.assertIn(f"Via: SIP/2.0/UDP {LOOPBACK}:{server.port};branch=z9hG4bK", invite)
        bye_sent = first_message(caller.messages(), "BYE ")
        self.assertIn(f"Route: <sip:{LOOPBACK}:{server.port};transport=udp;lr>", bye_sent)
        bye_received = first_message(callee.messages(), "BYE ")
        self.assertIn(f"Via: SIP/2.0/UDP {LOOPBACK}:{server.port};branch=z9hG4bK", bye_received)
        self.assertNotIn("Route:", bye_received.replace("Record-Route:", ""))
        self.assertEqual(server.proxy.forwarded, 3)  # INVITE, ACK (stateless), BYE
        self.assertEqual(len(server.proxy), 0)

    @defer.inlineCallbacks
    def test_cancel(self):
        """
        16.10: the caller's CANCEL after 180 reaches the ringing callee as our CANCEL, and the
        callee's 487 reaches the caller.
        """
        server = self.start_server()
        callee, caller = yield self.call(server, "uas_ring_cancel", "uac_cancel_after_180")
        self.assertEqual((callee.exit_code, caller.exit_code), (0, 0),
                         callee.describe() + caller.describe())
        self.assertIn("SIP/2.0 487 Request Terminated", caller.status_lines())
        cancel = first_message(callee.messages(), "CANCEL ")
        self.assertIn(f"Via: SIP/2.0/UDP {LOOPBACK}:{server.port};branch=z9hG4bK", cancel)
        self.assertEqual(len(server.proxy), 0)

    @defer.inlineCallbacks
    def test_busy(self):
        """
        16.7: the callee's 486 is relayed to the caller, and both ACKs are where they belong.
        """
        server = self.start_server()
        callee, caller = yield self.call(server, "uas_busy_486", "proxy_uac_busy_486")
        self.assertEqual((callee.exit_code, caller.exit_code), (0, 0),
                         callee.describe() + caller.describe())
        self.assertIn("SIP/2.0 486 Busy Here", caller.status_lines())

    @defer.inlineCallbacks
    def test_unknown_user_and_foreign_domain(self):
        """
        16.5 and no open relay: an unregistered user gets 404, another domain 403.
        """
        server = self.start_server()
        result = yield self.sipp("proxy_uac_busy_486", server.address, ["-s", "nobody"])
        self.assertEqual(result.exit_code, 1, result.describe())
        self.assertIn("SIP/2.0 404 Not Found", result.status_lines())
        foreign = yield self.sipp("proxy_uac_busy_486", "192.0.2.1:5060",
                                  ["-s", "nobody", "-rsa", server.address])
        self.assertEqual(foreign.exit_code, 1, foreign.describe())
        self.assertIn("SIP/2.0 403 Relaying denied", foreign.status_lines())
        self.assertEqual((server.proxy.refused, server.proxy.relay_denied), (2, 1))
