"""
RFC 3263 4.3 on the in-memory network: a request for provider.test whose first SRV target
answers 503 or fails with a transport error goes to the second target as a new client
transaction (new branch), and the UA sees one transaction under the key it was given.
"""

import random

from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.transport.test_dns import Zone, record
from tests.transport.test_stack import RecordingOwner, options_request
from wcs_twisted.interfaces import IRequestRouter
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.message import parse_message
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.transport.dns import SIPResolver
from wcs_twisted.transport.retarget import with_new_branch

DESTINATION = SIPAddress("udp", "provider.test", 0)


@implementer(IRequestRouter)
class Refuser:
    """
    Answers every request with C{status} (and a Retry-After when given).
    """

    def __init__(self, core, status, retry_after=None):
        self.core = core
        self.status = status
        self.retry_after = retry_after
        self.seen = []

    def accept_request(self, event):
        self.seen.append(event.request)
        response = event.request.create_response(self.status, to_tag="r1")
        if self.retry_after is not None:
            response.headers.set("Retry-After", self.retry_after)
        self.core.respond(event.transaction_key, response)
        return True


class RetargetTests(SynchronousTestCase):
    """
    Two SRV targets (10.0.0.2 priority 10, 10.0.0.3 priority 20) behind provider.test.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.a, self.core_a = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.b, self.core_b = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.c, self.core_c = build_memory_stack(self.network, "10.0.0.3", seed=3)
        srv = "_sip._udp.provider.test"
        self.a.resolver = SIPResolver(Zone({
            ("lookupService", srv): [
                record(srv, dns.Record_SRV(10, 10, 5060, "b.provider.test")),
                record(srv, dns.Record_SRV(20, 10, 5060, "c.provider.test"))],
            ("lookupAddress", "b.provider.test"): [
                record("b.provider.test", dns.Record_A("10.0.0.2"))],
            ("lookupAddress", "c.provider.test"): [
                record("c.provider.test", dns.Record_A("10.0.0.3"))],
        }), self.network.clock, random.Random(5))

    def send(self):
        owner = RecordingOwner()
        request = options_request(self.a, "provider.test", self.a.generate_branch())
        key = self.core_a.send_request(request, DESTINATION, owner)
        self.network.run()
        return owner, key, request

    def received_by(self, host):
        return [parse_message(data) for source, destination, data in self.network.delivered
                if destination.host == host and not data.startswith(b"SIP/")]

    def test_503_goes_to_the_next_target_with_a_new_branch(self):
        """
        The first target's 503 never reaches the UA; the request reaches the second target
        with another branch, and its 200 comes back under the original key.
        """
        refuser = Refuser(self.core_b, 503)
        self.core_b.add_router(refuser)
        owner, key, request = self.send()
        [first] = self.received_by("10.0.0.2")
        [second] = self.received_by("10.0.0.3")
        self.assertEqual(first.top_via.branch, request.top_via.branch)
        self.assertNotEqual(second.top_via.branch, request.top_via.branch)
        self.assertEqual(second.call_id, request.call_id)
        self.assertEqual([r.status_code for r in owner.responses], [200])
        self.assertEqual(owner.failures, [])
        self.assertEqual(self.a.retarget.retargeted, 1)
        # The second target is used from now on: the first is down (30 s without Retry-After).
        self.send()
        self.assertEqual(len(self.received_by("10.0.0.2")), 1)

    def test_retry_after_sets_how_long_the_target_is_skipped(self):
        """
        A 503 with Retry-After: 5 skips the first target for 5 s, not the default 30 s.
        """
        self.core_b.add_router(Refuser(self.core_b, 503, retry_after="5 (maintenance)"))
        self.send()
        first, now = SIPAddress("udp", "10.0.0.2", 5060), self.network.clock.seconds()
        self.assertTrue(self.a.failover.is_down(first, now + 4.9))
        self.assertFalse(self.a.failover.is_down(first, now + 5.1))

    def test_last_target_503_reaches_the_user(self):
        """
        With no target left, the 503 is the answer the UA gets.
        """
        self.core_b.add_router(Refuser(self.core_b, 503))
        self.core_c.add_router(Refuser(self.core_c, 503))
        owner, key, request = self.send()
        self.assertEqual([r.status_code for r in owner.responses], [503])

    def test_other_failures_do_not_move(self):
        """
        A 486 or 404 is the target's answer, not a reason to try the next one.
        """
        self.core_b.add_router(Refuser(self.core_b, 404))
        owner, key, request = self.send()
        self.assertEqual([r.status_code for r in owner.responses], [404])
        self.assertEqual(self.received_by("10.0.0.3"), [])

    def test_transport_error_goes_to_the_next_target_with_a_new_branch(self):
        """
        ICMP unreachable from the first target (before it answered): the request goes to the
        second target as a new transaction; the UA sees only its 200.
        """
        self.network.drop = lambda data, source, destination: destination.host == "10.0.0.2"
        owner = RecordingOwner()
        request = options_request(self.a, "provider.test", self.a.generate_branch())
        self.core_a.send_request(request, DESTINATION, owner)
        self.network.run()
        self.a.transport_error(SIPAddress("udp", "10.0.0.2", 5060))
        self.network.run()
        [second] = self.received_by("10.0.0.3")
        self.assertNotEqual(second.top_via.branch, request.top_via.branch)
        self.assertEqual([r.status_code for r in owner.responses], [200])
        self.assertEqual(owner.failures, [])

    def test_cancel_follows_the_moved_invite(self):
        """
        The key of the first transaction cancels the one in flight at the second target.
        """
        self.core_b.add_router(Refuser(self.core_b, 503))
        owner = RecordingOwner()
        request = options_request(self.a, "provider.test", self.a.generate_branch())
        key = self.core_a.send_request(request, DESTINATION, owner)
        self.network.run()
        self.assertEqual(self.a.retarget.current(key).branch,
                         self.received_by("10.0.0.3")[0].top_via.branch)

    def test_loop_mark_is_kept(self):
        """
        A proxy's branch suffix (its loop mark) survives the new branch.
        """
        request = options_request(self.a, "provider.test", "z9hG4bKabc-loop1")
        moved = with_new_branch(request, "z9hG4bKnew")
        self.assertEqual(moved.top_via.branch, "z9hG4bKnew-loop1")
        self.assertEqual(request.top_via.branch, "z9hG4bKabc-loop1")
