"""
RFC 3263 against a real DNS server: dnsmasq on 127.0.0.1 serves provider.test with NAPTR, SRV
and A records pointing at sipp UAS instances on loopback ports; a REST call to
bob@provider.test must reach the target SRV names first, fail over when it is dead, and follow
a changed record once the TTL has run out.
"""

import os
import re
import random
import shutil
import socket

from twisted.internet import defer, protocol, reactor
from twisted.names import dns
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration.loopback_server import start_loopback_server
from tests.integration.peers import free_port, run_sipp
from tests.integration.test_transport_errors import closed_udp_port
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.transport.dns import SIPResolver, build_resolver
from wcs_twisted.transport.failover import TargetFailover

DOMAIN = "provider.test"
#: The NAPTR service naming each SRV record (RFC 3263 4.1).
NAPTR_SERVICES = {"_sip._udp": "SIP+D2U", "_sip._tcp": "SIP+D2T", "_sips._tcp": "SIPS+D2T"}


class Dnsmasq(protocol.ProcessProtocol):
    """
    One dnsmasq in the foreground, answering only for the records given (no upstream).
    """

    def __init__(self, port, srv, ttl=60, service="_sip._udp", listen="127.0.0.1"):
        """
        @param srv: (priority, port) or (priority, port, address) per SRV target, named
            t<index>.provider.test with an A record for the address (default 127.0.0.1).
        """
        self.port = port
        self.ended = defer.Deferred()
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not os.path.exists(binary):
            raise SkipTest("dnsmasq is not installed (apt-get install dnsmasq-base)")
        args = [binary, "-k", "-p", str(port), f"--listen-address={listen}", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
                f"--local=/{DOMAIN}/", f"--local-ttl={ttl}", "--user=root",
                f"--naptr-record={DOMAIN},10,50,S,{NAPTR_SERVICES[service]},,{service}.{DOMAIN}"]
        for index, (priority, port_number, *address) in enumerate(srv):
            args.append(f"--srv-host={service}.{DOMAIN},t{index}.{DOMAIN},{port_number},"
                        f"{priority},10")
            args.append(f"--host-record=t{index}.{DOMAIN},{(address or ['127.0.0.1'])[0]}")
        self.transport = reactor.spawnProcess(self, binary, args, env={})

    def processEnded(self, reason):
        self.ended.callback(None)

    def stop(self):
        if self.ended.called:
            return self.ended
        self.transport.signalProcess("TERM")
        return self.ended


def wait_answering(server: Dnsmasq, tries: int = 30) -> None:
    """
    Block until C{server} (on 127.0.0.1) answers a query, at most C{tries} x 0.1 s: a test's
    first lookup must not race dnsmasq's start, and a dnsmasq that could not start (its port
    taken meanwhile) fails the test here with that reason, not as a SIP timeout later.
    """
    query = dns.Message(id=7, recDes=False)
    query.addQuery(DOMAIN.encode(), dns.A)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(0.1)
    try:
        for _ in range(tries):
            probe.sendto(query.toStr(), ("127.0.0.1", server.port))
            try:
                probe.recvfrom(512)
                return
            except OSError:  # timeout, or ICMP port unreachable (not bound yet)
                continue
    finally:
        probe.close()
    raise AssertionError(f"dnsmasq on port {server.port} never answered "
                         f"(exited: {server.ended.called})")


class Recorder(protocol.DatagramProtocol):
    """
    A SIP target that takes datagrams and never answers (a silent server).
    """

    def __init__(self):
        self.received = []

    def datagramReceived(self, data, addr):
        self.received.append(data)


@defer.inlineCallbacks
def uas(port, scenario="uas_busy_486"):
    """
    Start a sipp UAS answering 486 on C{port}; fire with its run once it has bound the port
    (a datagram before that would draw ICMP port unreachable).
    """
    run = run_sipp(scenario, local_port=port, timeout=15)
    for _ in range(100):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            break
        finally:
            probe.close()
        yield deferLater(reactor, 0.05, lambda: None)
    return [run]  # in a list: a Deferred returned here would be waited for


def dns_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class SRVTests(TestCase):
    """
    REST calls to sip:bob@provider.test, resolved by SRV through dnsmasq.
    """

    timeout = 40

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_loopback_server(self)
        self.dns_port = dns_port()
        stack = self.server.sip_stack
        stack.resolver = SIPResolver(
            build_resolver([("127.0.0.1", self.dns_port)], reactor=reactor), reactor,
            random.Random(7))
        stack.failover = TargetFailover(silence_timeout=1.0)

    def dnsmasq(self, srv, ttl=60, service="_sip._udp"):
        server = Dnsmasq(self.dns_port, srv, ttl, service)
        self.addCleanup(server.stop)
        wait_answering(server)
        return server

    def recorder(self):
        target = Recorder()
        port = reactor.listenUDP(0, target, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return target, port.getHost().port

    @defer.inlineCallbacks
    def call(self, call_id):
        """
        Start a REST call to bob@provider.test and wait until it is released.
        """
        call = self.server.calls.start_rest_call({
            "callId": call_id, "callee": f"bob@{DOMAIN}", "sipLogin": "rest",
            "hasAudio": "true", "hasVideo": "false"})
        for _ in range(150):
            if call.status.released:
                break
            yield deferLater(reactor, 0.1, lambda: None)
        return call

    @defer.inlineCallbacks
    def test_srv_priority_order(self):
        """
        The INVITE goes to the priority-10 target (a sipp UAS answering 486), not to the
        priority-20 one.
        """
        uas_port = free_port()
        second, second_port = self.recorder()
        self.dnsmasq([(20, second_port), (10, uas_port)])
        (callee,) = yield uas(uas_port)
        call = yield self.call("srv1")
        result = yield callee
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual(call.to_wcs()["sipStatus"], 486)
        self.assertEqual(second.received, [])

    @defer.inlineCallbacks
    def test_closed_first_target_fails_over(self):
        """
        The first target's port is closed (ICMP port unreachable): the INVITE is sent again to
        the second target at once, and the call gets its answer.
        """
        uas_port = free_port()
        self.dnsmasq([(10, closed_udp_port()), (20, uas_port)])
        (callee,) = yield uas(uas_port)
        call = yield self.call("srv2")
        result = yield callee
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual(call.to_wcs()["sipStatus"], 486)

    @defer.inlineCallbacks
    def test_silent_first_target_fails_over(self):
        """
        The first target takes the INVITE and never answers: after the silence timeout (1 s
        here) its retransmission goes to the second target.
        """
        uas_port = free_port()
        silent, silent_port = self.recorder()
        self.dnsmasq([(10, silent_port), (20, uas_port)])
        (callee,) = yield uas(uas_port)
        call = yield self.call("srv3")
        result = yield callee
        self.assertEqual(result.exit_code, 0, result.stderr)
        self.assertEqual(call.to_wcs()["sipStatus"], 486)
        self.assertTrue(silent.received and silent.received[0].startswith(b"INVITE "))

    @defer.inlineCallbacks
    def test_503_goes_to_the_next_target_as_a_new_transaction(self):
        """
        RFC 3263 4.3: the priority-10 sipp answers 503 (Retry-After 60); the INVITE goes to the
        priority-20 sipp with a new branch, whose 486 is the call's answer; the first target
        is skipped for the Retry-After.
        """
        first_port, second_port = free_port(), free_port()
        self.dnsmasq([(10, first_port), (20, second_port)])
        (unavailable,) = yield uas(first_port, "uas_unavailable_503")
        (busy,) = yield uas(second_port)
        call = yield self.call("srv503")
        first = yield unavailable
        second = yield busy
        self.assertEqual(first.exit_code, 0, first.stderr)
        self.assertEqual(second.exit_code, 0, second.stderr)
        self.assertEqual(call.to_wcs()["sipStatus"], 486)
        branch = re.compile(r"^Via:.*branch=([^;\s]+)", re.M | re.I)
        first_branches = set(branch.findall(first.messages()))
        second_branches = set(branch.findall(second.messages()))
        self.assertTrue(first_branches and second_branches)
        self.assertFalse(first_branches & second_branches)
        failover = self.server.sip_stack.failover
        now = reactor.seconds()
        self.assertTrue(failover.is_down(SIPAddress("udp", "127.0.0.1", first_port), now + 50))

    @defer.inlineCallbacks
    def test_changed_record_takes_effect_after_its_ttl(self):
        """
        With a 1 s TTL, a call after the record changed (dnsmasq restarted with another SRV
        target) reaches the new target; the cached answer is used until then.
        """
        first_port, second_port = free_port(), free_port()
        dns = self.dnsmasq([(10, first_port)], ttl=1)
        first = (yield uas(first_port))[0]
        yield self.call("ttl1")
        self.assertEqual((yield first).exit_code, 0)
        yield dns.stop()
        self.dnsmasq([(10, second_port)], ttl=1)
        destination = SIPAddress("udp", DOMAIN, 0)
        resolver = self.server.sip_stack.resolver
        for _ in range(30):
            if resolver.cached(destination) is None:
                break
            yield deferLater(reactor, 0.1, lambda: None)
        self.assertIsNone(resolver.cached(destination))
        second = (yield uas(second_port))[0]
        call = yield self.call("ttl2")
        self.assertEqual((yield second).exit_code, 0)
        self.assertEqual(call.to_wcs()["sipStatus"], 486)
