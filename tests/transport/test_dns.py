"""
RFC 3263 resolution (L{wcs_twisted.transport.dns}) against an in-memory resolver and a Clock.
"""

import random

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.names import dns, error
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.transport.dns import SIPResolver, srv_order
from wcs_twisted.transport.failover import TargetFailover


def record(name, payload, ttl=60):
    return dns.RRHeader(name, payload.TYPE, ttl=ttl, payload=payload)


class Zone:
    """
    An IResolver answering from a dict {(method, name): answers}; everything else NXDOMAIN.
    """

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def __getattr__(self, method):
        def lookup(name):
            self.asked.append((method, name))
            found = self.answers.get((method, name))
            if found is None:
                return fail(error.DNSNameError(name))
            return succeed((found, [], []))
        return lookup


def zone(srv_ttl=60):
    return Zone({
        ("lookupService", "_sip._udp.provider.test"): [
            record("_sip._udp.provider.test", dns.Record_SRV(20, 10, 5072, "b.provider.test"),
                   srv_ttl),
            record("_sip._udp.provider.test", dns.Record_SRV(10, 10, 5071, "a.provider.test"),
                   srv_ttl)],
        ("lookupAddress", "a.provider.test"): [record("a.provider.test",
                                                      dns.Record_A("10.0.0.1"))],
        ("lookupAddress", "b.provider.test"): [record("b.provider.test",
                                                      dns.Record_A("10.0.0.2"))],
        ("lookupAddress", "provider.test"): [record("provider.test", dns.Record_A("10.0.0.9"))],
    })


class ResolverTests(SynchronousTestCase):
    """
    What is queried when, and how long the answer is kept.
    """

    def resolve(self, resolver, destination):
        results = []
        resolver.resolve(destination).addCallback(results.append)
        return results[0]

    def test_srv_targets_in_priority_order(self):
        """
        A name with no port: SRV targets by priority, each with its SRV port.
        """
        resolver = SIPResolver(zone(), Clock(), random.Random(1))
        found = self.resolve(resolver, SIPAddress("udp", "provider.test", 0))
        self.assertEqual(found.targets, (SIPAddress("udp", "10.0.0.1", 5071),
                                         SIPAddress("udp", "10.0.0.2", 5072)))

    def test_cached_host(self):
        """
        The first target of a name's unexpired resolution, whatever transport and port it was
        resolved for; None before and after its TTL.
        """
        clock = Clock()
        resolver = SIPResolver(zone(), clock, random.Random(1))
        self.assertIsNone(resolver.cached_host("provider.test"))
        self.resolve(resolver, SIPAddress("udp", "provider.test", 0))
        self.assertEqual(resolver.cached_host("Provider.TEST"), "10.0.0.1")
        clock.advance(24 * 3600)
        self.assertIsNone(resolver.cached_host("provider.test"))

    def test_explicit_port_skips_srv(self):
        """
        With an explicit port only A/AAAA are asked (RFC 3263 4.2).
        """
        names = zone()
        resolver = SIPResolver(names, Clock(), random.Random(1))
        found = self.resolve(resolver, SIPAddress("udp", "provider.test", 5080))
        self.assertEqual(found.targets, (SIPAddress("udp", "10.0.0.9", 5080),))
        self.assertEqual({method for method, _ in names.asked},
                         {"lookupAddress", "lookupIPV6Address"})

    def test_no_srv_falls_back_to_address_and_default_port(self):
        """
        No SRV records for TCP: the name's A record on port 5060.
        """
        resolver = SIPResolver(zone(), Clock(), random.Random(1))
        found = self.resolve(resolver, SIPAddress("tcp", "provider.test", 0))
        self.assertEqual(found.targets, (SIPAddress("tcp", "10.0.0.9", 5060),))

    def test_naptr_names_the_srv_record(self):
        """
        A NAPTR record for our transport names the SRV record to ask.
        """
        names = zone()
        names.answers[("lookupNamingAuthorityPointer", "provider.test")] = [record(
            "provider.test", dns.Record_NAPTR(10, 50, b"S", b"SIP+D2U", b"",
                                              b"_sip._udp.provider.test"))]
        resolver = SIPResolver(names, Clock(), random.Random(1))
        found = self.resolve(resolver, SIPAddress("udp", "provider.test", 0))
        self.assertEqual(found.targets[0], SIPAddress("udp", "10.0.0.1", 5071))
        self.assertIn(("lookupService", "_sip._udp.provider.test"), names.asked)

    def test_cache_expires_at_the_ttl(self):
        """
        The answer is kept for the smallest TTL of its records, then asked again.
        """
        clock = Clock()
        resolver = SIPResolver(zone(srv_ttl=5), clock, random.Random(1), negative_ttl=30)
        destination = SIPAddress("udp", "provider.test", 0)
        self.resolve(resolver, destination)
        clock.advance(4.9)
        self.assertIsNotNone(resolver.cached(destination))
        clock.advance(0.2)
        self.assertIsNone(resolver.cached(destination))

    def test_cache_is_bounded(self):
        """
        Beyond C{max_entries} the oldest answers are forgotten.
        """
        resolver = SIPResolver(zone(), Clock(), random.Random(1), max_entries=2)
        for port in (1, 2, 3):
            self.resolve(resolver, SIPAddress("udp", "provider.test", port))
        self.assertIsNone(resolver.cached(SIPAddress("udp", "provider.test", 1)))
        self.assertIsNotNone(resolver.cached(SIPAddress("udp", "provider.test", 3)))

    def test_srv_weights(self):
        """
        Within one priority, a heavier record comes first more often (RFC 2782).
        """
        heavy, light = dns.Record_SRV(10, 90, 1, "h"), dns.Record_SRV(10, 10, 2, "l")
        rng = random.Random(3)
        firsts = [srv_order([light, heavy], rng)[0] is heavy for _ in range(200)]
        self.assertGreater(sum(firsts), 150)


class FailoverTests(SynchronousTestCase):
    """
    The target a destination uses, and moving on when it fails.
    """

    destination = SIPAddress("udp", "provider.test", 0)
    first = SIPAddress("udp", "10.0.0.1", 5071)
    second = SIPAddress("udp", "10.0.0.2", 5072)

    def test_transport_error_resends_to_the_next_target(self):
        """
        The request the failed target left unanswered is handed back for the next target.
        """
        failover = TargetFailover()
        targets = (self.first, self.second)
        self.assertEqual(failover.choose(self.destination, targets, 0), self.first)
        failover.sent(self.first, self.destination, b"INVITE x", 0)
        self.assertEqual(list(failover.failed(self.first, 0.1)),
                         [(self.destination, [b"INVITE x"])])
        self.assertEqual(failover.choose(self.destination, targets, 0.2), self.second)

    def test_last_target_failing_fails_the_transactions(self):
        """
        No target left: the destination's transactions fail (None).
        """
        failover = TargetFailover()
        failover.choose(self.destination, (self.first,), 0)
        failover.sent(self.first, self.destination, b"INVITE x", 0)
        self.assertEqual(list(failover.failed(self.first, 0.1)), [(self.destination, None)])

    def test_silence_moves_a_retransmission_on(self):
        """
        A target silent for C{silence_timeout} after a request loses the retransmission;
        one that answered keeps it.
        """
        failover = TargetFailover(silence_timeout=4)
        targets = (self.first, self.second)
        failover.choose(self.destination, targets, 0)
        failover.sent(self.first, self.destination, b"INVITE x", 0)
        self.assertEqual(failover.choose(self.destination, targets, 3.5), self.first)
        self.assertEqual(failover.choose(self.destination, targets, 4.5), self.second)
        failover.sent(self.second, self.destination, b"INVITE x", 4.5)
        failover.heard_from(self.second.host)
        self.assertEqual(failover.choose(self.destination, targets, 20), self.second)

    def test_silent_connection_is_abandoned_for_another_target(self):
        """
        Over a connection nothing is retransmitted: a target silent for C{silence_timeout}
        is abandoned when another target is up; one that said a word, or the only target,
        is not.
        """
        failover = TargetFailover(silence_timeout=4)
        destination = SIPAddress("tcp", "provider.test", 0)
        first, second = SIPAddress("tcp", "10.0.0.1", 5060), SIPAddress("tcp", "10.0.0.2", 5060)
        failover.choose(destination, (first, second), 0)
        failover.sent(first, destination, b"REGISTER x", 0)
        self.assertFalse(failover.abandoned(first, destination, 3.9))
        self.assertTrue(failover.abandoned(first, destination, 4.0))
        self.assertFalse(failover.abandoned(second, destination, 4.0))  # not its target
        failover.heard_from(first.host)
        self.assertFalse(failover.abandoned(first, destination, 10))
        alone = SIPAddress("tcp", "alone.test", 0)
        failover.choose(alone, (first,), 20)
        failover.sent(first, alone, b"REGISTER y", 20)
        self.assertFalse(failover.abandoned(first, alone, 30))

    def test_retransmissions_are_kept_once(self):
        """
        A request retransmitted to a target that then fails goes to the next target once,
        not once per retransmission.
        """
        failover = TargetFailover()
        failover.choose(self.destination, (self.first, self.second), 0)
        for when in (0, 0.5, 1.5, 3.5):
            failover.sent(self.first, self.destination, b"INVITE x", when)
        failover.sent(self.first, self.destination, b"OPTIONS y", 4)
        moved = list(failover.failed(self.first, 5))
        self.assertEqual(moved, [(self.destination, [b"INVITE x", b"OPTIONS y"])])

    def test_down_mark_expires(self):
        """
        A failed target is skipped for C{down_for} seconds, then tried first again.
        """
        failover = TargetFailover(down_for=30)
        targets = (self.first, self.second)
        failover.choose(self.destination, targets, 0)
        failover.sent(self.first, self.destination, b"OPTIONS x", 0)
        list(failover.failed(self.first, 0))
        other = SIPAddress("udp", "other.test", 0)
        self.assertEqual(failover.choose(other, targets, 10), self.second)
        self.assertEqual(failover.choose(SIPAddress("udp", "third.test", 0), targets, 31),
                         self.first)
