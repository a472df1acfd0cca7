"""
Where local mode sends a call for a registered user, against real peers: to the Contact when a
REGISTER was sent on a phone's behalf (third-party registration, on 127.0.0.1), and through a
masquerading home NAT to a baresip phone that registered from behind it (network namespaces the
test creates; see L{tests.integration.netns}).

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_nat_registrar
"""

from __future__ import annotations

import os
import random

from twisted.internet import defer, protocol
from twisted.trial.unittest import TestCase

from tests.integration.netns import Topology, require_netns
from tests.integration.peers import LOOPBACK, Baresip, free_port, poll, require_binary, run_sipp
from tests.integration.test_local_mode import first_message, udp_port_taken
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.trace import MessageTrace
from wcs_twisted.transport.udp import SIPDatagramProtocol
from wcs_twisted.ua.core import UserAgentCore
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.registrar import Registrar

#: The NAT topology: the server's public network and the phone's home network behind it.
SERVER_IP, ROUTER_WAN_IP = "198.51.100.1", "198.51.100.2"
ROUTER_LAN_IP, PHONE_IP = "192.168.77.1", "192.168.77.2"


class RegistrarServer:
    """
    Local mode's SIP half (stack, UDP listener, UA core, registrar, proxy) on C{host}.
    """

    def __init__(self, reactor, host: str) -> None:
        rng = random.SystemRandom()
        self.stack = SIPStack(TransactionLayer(), reactor, rng, advertised_host=host,
                              trace=MessageTrace(log_messages=False))
        self.core = UserAgentCore(self.stack, rng)
        self.stack.attach(self.core)
        self.location = LocationService()
        self.registrar = Registrar(self.core, self.location, reactor, [host])
        self.proxy = Proxy(self.core, self.location, reactor, self.registrar.serves,
                           timers=self.stack.layer.timers)
        self.core.add_router(self.registrar)
        self.core.add_router(self.proxy)
        self.listening = reactor.listenUDP(0, SIPDatagramProtocol(self.stack), interface=host)
        self.port = self.listening.getHost().port
        self.stack.add_transport("udp", self.listening.protocol, self.port)
        self.host = host
        self.address = f"{host}:{self.port}"

    def stop(self):
        self.proxy.stop()
        self.stack.stop()
        return self.listening.stopListening()


class RawSIP(protocol.DatagramProtocol):
    """
    A UDP socket that sends hand-written SIP and keeps every message it receives.
    """

    def __init__(self) -> None:
        self.received: list[str] = []

    def datagramReceived(self, data, address):
        self.received.append(data.decode("utf-8", "replace"))

    def send(self, text: str, host: str, port: int) -> None:
        self.transport.write(text.replace("\n", "\r\n").encode(), (host, port))

    def starting(self, start: str) -> list[str]:
        return [message for message in self.received if message.startswith(start)]


def sip_text(start: str, headers: list[str], body: str = "") -> str:
    """
    A SIP message with "\n" line ends (L{RawSIP.send} makes them CRLF).
    """
    length = len(body.replace("\n", "\r\n").encode())
    return "\n".join([start, *headers, f"Content-Length: {length}", "", body])


class NatTestCase(TestCase):
    """
    Common start-up: the reactor and a work directory.
    """

    timeout = 40

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)

    def raw_socket(self, host: str) -> tuple[RawSIP, int]:
        raw = RawSIP()
        port = self.reactor.listenUDP(0, raw, interface=host)
        self.addCleanup(port.stopListening)
        return raw, port.getHost().port


class ThirdPartyRegistrationTests(NatTestCase):
    """
    RFC 3261 10.2 on 127.0.0.1: bob's phone (a sipp UAS) is registered by another socket.
    """

    @defer.inlineCallbacks
    def test_call_reaches_the_contact(self):
        """
        A raw socket registers bob with a Contact naming the sipp UAS's port; sipp's call for
        bob is answered by that UAS, and the registering socket gets no INVITE.
        """
        require_binary("sipp", "sip-tester")
        server = RegistrarServer(self.reactor, LOOPBACK)
        self.addCleanup(server.stop)
        phone_port = free_port()
        callee = run_sipp("uas_answer_200", None, ["-s", "bob"], timeout=10,
                          workdir=self.workdir, local_port=phone_port, reactor=self.reactor)
        yield poll(lambda: udp_port_taken(phone_port), 5, self.reactor, 0.05,
                   message=lambda: f"sipp UAS never bound udp {phone_port}")
        registering, port = self.raw_socket(LOOPBACK)
        registering.send(sip_text(f"REGISTER sip:{LOOPBACK} SIP/2.0", [
            f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK-3pcc;rport",
            "Max-Forwards: 70",
            f"From: <sip:admin@{LOOPBACK}>;tag=3pcc",
            f"To: <sip:bob@{LOOPBACK}>",
            "Call-ID: third-party-1",
            "CSeq: 1 REGISTER",
            f"Contact: <sip:bob@{LOOPBACK}:{phone_port}>",
            "Expires: 60"]), LOOPBACK, server.port)
        yield poll(lambda: registering.starting("SIP/2.0 200"), 5, self.reactor, 0.05,
                   message=lambda: f"no 200 for the REGISTER: {registering.received}")
        [binding] = server.location.lookup(f"sip:bob@{LOOPBACK}", self.reactor.seconds())
        self.assertFalse(binding.flow)
        caller = yield run_sipp("uac_invite_bye", server.address, ["-s", "bob"], timeout=10,
                                workdir=self.workdir, reactor=self.reactor)
        callee = yield callee
        self.assertEqual((callee.exit_code, caller.exit_code), (0, 0),
                         callee.describe() + caller.describe())
        self.assertIn(f"INVITE sip:bob@{LOOPBACK}:{phone_port}",
                      first_message(callee.messages(), "INVITE "))
        self.assertEqual(registering.starting("INVITE"), [])


class _NamespacedReactor:
    """
    The reactor, except that TCP connections are opened inside a namespace (baresip's
    ctrl_tcp listens there).
    """

    def __init__(self, reactor, topology: Topology, namespace: str) -> None:
        self._reactor, self._topology, self._namespace = reactor, topology, namespace

    def __getattr__(self, name):
        return getattr(self._reactor, name)

    def connectTCP(self, *args, **kwargs):
        with self._topology.inside(self._namespace):
            return self._reactor.connectTCP(*args, **kwargs)


class NamespacedBaresip(Baresip):
    """
    A baresip run inside C{namespace} (through C{ip netns exec}), listening on C{host} there.
    """

    def __init__(self, topology: Topology, namespace: str, host: str, tmpdir, name, reactor,
                 **kwargs) -> None:
        super().__init__(tmpdir, name, sip_port=5060, ctrl_port=4444,
                         reactor=_NamespacedReactor(reactor, topology, namespace), **kwargs)
        self.host = host
        wrapper = os.path.join(os.path.abspath(tmpdir), f"{name}-in-netns")
        with open(wrapper, "w") as script:
            script.write(f"#!/bin/sh\nexec ip netns exec {namespace} {self.executable} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        self.executable = wrapper


class NatedPhoneTests(NatTestCase):
    """
    A baresip phone in a home network (192.168.77.0/24) behind a MASQUERADE router whose
    public side (198.51.100.2) faces the server's network (198.51.100.1), each in its own
    namespace.
    """

    def setUp(self):
        super().setUp()
        require_netns()
        require_binary("baresip")
        topology = Topology()
        self.addCleanup(topology.destroy)
        self.topology = topology
        self.server_ns = topology.namespace("srv")
        self.router_ns = topology.namespace("nat")
        self.phone_ns = topology.namespace("home")
        wan, _ = topology.link(self.router_ns, f"{ROUTER_WAN_IP}/24",
                               self.server_ns, f"{SERVER_IP}/24")
        topology.link(self.phone_ns, f"{PHONE_IP}/24", self.router_ns, f"{ROUTER_LAN_IP}/24")
        topology.route(self.phone_ns, "default", ROUTER_LAN_IP)
        topology.masquerade(self.router_ns, wan)

    @defer.inlineCallbacks
    def test_call_reaches_phone_through_nat(self):
        """
        baresip registers with its private Contact through the NAT; an INVITE for it makes it
        ring, by way of the router's public address (the server has no route to the home
        network), and the caller's CANCEL ends it with 487.
        """
        with self.topology.inside(self.server_ns):
            server = RegistrarServer(self.reactor, SERVER_IP)
            caller, caller_port = self.raw_socket(SERVER_IP)
        self.addCleanup(server.stop)
        phone = NamespacedBaresip(self.topology, self.phone_ns, PHONE_IP, self.workdir, "bob",
                                  self.reactor, registrar=server.address, answer="manual")
        self.addCleanup(phone.stop)
        yield phone.start(timeout=15)
        [binding] = server.location.lookup(f"sip:bob@{SERVER_IP}", self.reactor.seconds())
        self.assertEqual(binding.contact.uri.host, PHONE_IP)
        self.assertEqual(binding.source.host, ROUTER_WAN_IP)
        self.assertTrue(binding.flow)

        common = [f"Via: SIP/2.0/UDP {SERVER_IP}:{caller_port};branch=z9hG4bK-nat1;rport",
                  "Max-Forwards: 70",
                  f"From: <sip:alice@{SERVER_IP}>;tag=nat1",
                  f"To: <sip:bob@{SERVER_IP}>",
                  "Call-ID: nat-call-1"]
        sdp = (f"v=0\no=- 1 1 IN IP4 {SERVER_IP}\ns=-\nc=IN IP4 {SERVER_IP}\nt=0 0\n"
               f"m=audio 40000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")
        caller.send(sip_text(f"INVITE sip:bob@{SERVER_IP} SIP/2.0", common + [
            "CSeq: 1 INVITE", f"Contact: <sip:alice@{SERVER_IP}:{caller_port}>",
            "Content-Type: application/sdp"], sdp), SERVER_IP, server.port)
        yield poll(lambda: caller.starting("SIP/2.0 180"), 10, self.reactor, 0.05,
                   message=lambda: f"no 180 from the phone: {caller.received}")
        yield phone.wait_event("CALL_INCOMING", timeout=10)
        caller.send(sip_text(f"CANCEL sip:bob@{SERVER_IP} SIP/2.0", common + ["CSeq: 1 CANCEL"]),
                    SERVER_IP, server.port)
        [final] = yield poll(lambda: caller.starting("SIP/2.0 487"), 10, self.reactor, 0.05,
                             message=lambda: f"no 487 after CANCEL: {caller.received}")
        to = next(line for line in final.split("\r\n") if line.lower().startswith("to:"))
        caller.send(sip_text(f"ACK sip:bob@{SERVER_IP} SIP/2.0", common[:3] + [
            to, "Call-ID: nat-call-1", "CSeq: 1 ACK"]), SERVER_IP, server.port)
        nat_rules = self.topology.nat_table(self.router_ns)
        self.assertRegex(nat_rules, r"\n\s*[1-9]\d*\s+\d+\w?\s+MASQUERADE")
