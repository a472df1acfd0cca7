"""
Registrations of a WCS account given by DNS name and transport (RFC 3263 with NAPTR/SRV for TCP
and TLS): dnsmasq serves provider.test with C{_sip._tcp} or C{_sips._tcp} records pointing at a
Kamailio with its tls module; the account comes from WCS fields (C{sipDomain} "sips:..." or
"...;transport=tcp", no C{sipPort}).  Over TLS the certificate names only provider.test, so the
handshake proves it was checked against the resolved domain (RFC 5922), not the SRV target or
its address.

L{SilentTargetTests}: the first SRV target is silent (its SYNs dropped inside a network namespace
the test makes, or it accepts TCP and never finishes the TLS handshake); the registration reaches
the second target once C{sip_dns_silence_ms} has passed, as over UDP, not after a 10 s connect
timeout.
"""

import random
import re

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import TestCase

from tests.integration.certificates import make_certificate, server_certificate, write_pem
from tests.integration.netns import Topology, require_netns
from tests.integration.peers import LOOPBACK, poll
from tests.integration import test_dns
from tests.integration.test_dns import DOMAIN, dns_port
from tests.integration.test_kamailio_ua import USERS, WAIT
from tests.integration.tls_peers import KamailioTLS, start_server, tls_settings
from wcs_twisted.gateway.fields import account_from_fields
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.transport.dns import SIPResolver, build_resolver
from wcs_twisted.transport.trace import OUT
from wcs_twisted.ua.registration import RegistrationClient, RegistrationState


class DNSRegistrationCase(TestCase):
    """
    Kamailio (TLS too) for provider.test, our server, and a resolver asking our dnsmasq.
    """

    timeout = 30
    dnsmasq = test_dns.SRVTests.dnsmasq
    #: Settings over tls_settings' for this class's server.
    overrides: dict = {}

    @defer.inlineCallbacks
    def setUp(self):
        self.base = self.mktemp()
        ca = make_certificate("WCS Test CA")
        pki = self.base + "/pki"
        settings = tls_settings(ca, pki, enable_local_videochat=False, **self.overrides)
        self.kamailio = KamailioTLS(
            self.base, *write_pem(pki, "provider",
                                  server_certificate(ca, names=(DOMAIN,), addresses=())),
            ca=settings.sip_tls_ca_certificates, users=USERS, domain=DOMAIN)
        self.addCleanup(self.kamailio.stop)
        yield self.kamailio.start()
        self.root = yield start_server(self, settings, reactor)
        self.stack = self.root.sip_stack
        self.dns_port = dns_port()
        self.stack.resolver = SIPResolver(
            build_resolver([("127.0.0.1", self.dns_port)], reactor=reactor), reactor,
            random.Random(3))
        self.sent = []
        self.stack.trace.observers.append(
            lambda direction, data, address: self.sent.append((data, address))
            if direction == OUT else None)

    @defer.inlineCallbacks
    def register(self, fields):
        """
        Register the account the WCS C{fields} describe; fire with the client when it settled.
        """
        account = account_from_fields({"sipLogin": "alice", "sipPassword": USERS["alice"],
                                       "sipRegisterRequired": "true", **fields}, 5060)
        self.assertEqual(account.port, 0)  # no sipPort: found by DNS
        client = RegistrationClient(self.root.sip_core, reactor, account, lambda change: None,
                                    expires=120, retry=False)
        client.start()
        self.addCleanup(client.stop)
        yield poll(lambda: client.state not in (RegistrationState.REGISTERING,
                                                RegistrationState.UNREGISTERED), WAIT, reactor,
                   0.02, message=lambda: self.kamailio.log_tail())
        return client

    def registers_sent(self):
        return [address for data, address in self.sent if data.startswith(b"REGISTER ")]


class RegistrationByDNSTests(DNSRegistrationCase):
    """
    REGISTER to sip:provider.test found by SRV, over TCP and over TLS.
    """

    @defer.inlineCallbacks
    def test_register_over_tcp_by_srv(self):
        """
        sipDomain "provider.test;transport=tcp": _sip._tcp SRV names Kamailio's TCP port.
        """
        self.dnsmasq([(10, self.kamailio.port)], service="_sip._tcp")
        client = yield self.register({"sipDomain": f"{DOMAIN};transport=tcp"})
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        self.assertEqual(set(self.registers_sent()),
                         {SIPAddress("tcp", LOOPBACK, self.kamailio.port)})

    @defer.inlineCallbacks
    def test_register_over_tls_by_srv(self):
        """
        sipDomain "sips:provider.test": _sips._tcp SRV names Kamailio's TLS port; its
        certificate (provider.test only) is accepted, so it was checked against the domain.
        """
        self.dnsmasq([(10, self.kamailio.tls_port)], service="_sips._tcp")
        client = yield self.register({"sipDomain": f"sips:{DOMAIN}"})
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        self.assertEqual(set(self.registers_sent()),
                         {SIPAddress("tls", LOOPBACK, self.kamailio.tls_port)})
        self.assertEqual(client.contact.transport, "tls")

    @defer.inlineCallbacks
    def test_reregistration_follows_a_changed_record_after_its_ttl(self):
        """
        The _sip._tcp SRV record (TTL 1 s) names Kamailio, then another server: once the TTL
        has run out the cached answer is gone, and the next REGISTER of the same client goes
        to the new target (a TCP server that records what it gets).
        """
        dns = self.dnsmasq([(10, self.kamailio.port)], ttl=1, service="_sip._tcp")
        client = yield self.register({"sipDomain": f"{DOMAIN};transport=tcp"})
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        recorder = Recorder()
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(lambda: recorder),
                                 interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        yield dns.stop()
        self.dnsmasq([(10, port.getHost().port)], ttl=1, service="_sip._tcp")
        destination = SIPAddress("tcp", DOMAIN, 0)
        yield poll(lambda: self.stack.resolver.cached(destination) is None, 5, reactor, 0.05)
        client._cancel_timer()
        client._refresh()  # the refresh, now rather than in 96 s
        yield poll(lambda: b"REGISTER " in recorder.data, 5, reactor, 0.02)
        self.assertEqual(self.registers_sent()[-1],
                         SIPAddress("tcp", LOOPBACK, port.getHost().port))
        # The recorder hangs up: the REGISTER fails at once, and nothing is left to unregister.
        recorder.transport.loseConnection()
        yield poll(lambda: client.state is RegistrationState.FAILED, 5, reactor, 0.02)


class Recorder(protocol.Protocol):
    """
    A SIP server over TCP that keeps what it receives and never answers.
    """

    def __init__(self):
        self.data = b""

    def dataReceived(self, data):
        self.data += data


class Silence(protocol.Protocol):
    """
    A server that takes the connection and never says a word (no ServerHello, no response).
    """


class SilentTargetTests(DNSRegistrationCase):
    """
    RFC 3263 4.3 with a silent first SRV target over TCP and TLS: connect and handshake are
    bounded by C{sip_dns_silence_ms} (1 s here), then the REGISTER goes to the second target as
    a new transaction (new branch).

    The whole test runs in a network namespace of its own (this thread enters it, so the
    gateway's sockets, dnsmasq and Kamailio live there): 127.0.0.2 there drops every TCP
    packet, a host that is down without a word.
    """

    overrides = {"sip_dns_silence_ms": 1000}
    SILENT = "127.0.0.2"

    def setUp(self):
        require_netns()
        topology = Topology("wcsst")
        self.addCleanup(topology.destroy)
        namespace = topology.namespace("net")
        topology._check(topology.command(namespace, [
            "iptables", "-A", "INPUT", "-d", self.SILENT, "-p", "tcp", "-j", "DROP"]))
        self.addCleanup(topology.enter(namespace))
        return super().setUp()

    def silent_listener(self) -> int:
        """
        A TCP port on loopback that takes connections and never says a word: its number.
        """
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Silence), interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def fails_over(self, first: tuple[int, str], service: str, domain: str):
        """
        Register with the first SRV target C{first} (port, address) silent and Kamailio second;
        fire with the seconds the move took, after checking where each REGISTER went.
        """
        second_port = self.kamailio.port if service == "_sip._tcp" else self.kamailio.tls_port
        self.dnsmasq([(10, *first), (20, second_port)], service=service)
        stamps = []
        self.stack.trace.observers.append(
            lambda direction, data, address: stamps.append(reactor.seconds())
            if direction == OUT and data.startswith(b"REGISTER ") else None)
        client = yield self.register({"sipDomain": domain})
        # From the REGISTER to the silent target to its copy to the second one.
        took = stamps[1] - stamps[0]
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        transport = "tcp" if service == "_sip._tcp" else "tls"
        [silent, *rest] = self.registers_sent()
        self.assertEqual(silent, SIPAddress(transport, first[1], first[0]))
        self.assertEqual(set(rest), {SIPAddress(transport, LOOPBACK, second_port)})
        branch = re.compile(rb"^Via:.*branch=([^;\s]+)", re.M | re.I)
        branches = [branch.search(data).group(1) for data, _ in self.sent
                    if data.startswith(b"REGISTER ")]
        self.assertNotEqual(branches[0], branches[1])
        return took

    @defer.inlineCallbacks
    def test_syn_dropped_over_tcp(self):
        """
        _sip._tcp: the first target never answers the SYN; the second gets the REGISTER after
        the 1 s budget (not the 10 s connect timeout).
        """
        took = yield self.fails_over((5060, self.SILENT), "_sip._tcp", f"{DOMAIN};transport=tcp")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3)

    @defer.inlineCallbacks
    def test_syn_dropped_over_tls(self):
        """
        _sips._tcp: the same over TLS.
        """
        took = yield self.fails_over((5061, self.SILENT), "_sips._tcp", f"sips:{DOMAIN}")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3)

    @defer.inlineCallbacks
    def test_connected_but_never_answering(self):
        """
        _sip._tcp: the first target accepts the connection and reads the REGISTER but never
        answers a word (nothing is retransmitted over TCP); after the same budget the REGISTER
        goes to the second target, not after Timer F (32 s).
        """
        took = yield self.fails_over((self.silent_listener(), LOOPBACK), "_sip._tcp",
                                     f"{DOMAIN};transport=tcp")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3)

    @defer.inlineCallbacks
    def test_handshake_never_finished(self):
        """
        _sips._tcp: the first target accepts the TCP connection and never answers the
        ClientHello; the handshake is cut off within the same budget.
        """
        took = yield self.fails_over((self.silent_listener(), LOOPBACK), "_sips._tcp",
                                     f"sips:{DOMAIN}")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3)
        self.assertEqual(self.root.sip_stack.transports["tls"].timed_out, 1)
