"""
The local-mode proxy behind a 1:1 NAT (L{wcs_twisted.addresses}): Via and Record-Route carry
the address each side can reach, in memory.  The proxy is 10.0.0.1 publicly mapped to
203.0.113.10; alice and bob are on the private network, dave on the Internet.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.ua.test_proxy import DOMAIN, Phone
from wcs_twisted.addresses import AddressPlan
from wcs_twisted.sip.timers import TimerValues
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.registrar import Registrar

PUBLIC, PRIVATE = "203.0.113.10", "10.0.0.1"
TOWARD_PUBLIC = f"<sip:{PUBLIC}:5060;transport=udp;lr>"
TOWARD_PRIVATE = f"<sip:{PRIVATE}:5060;transport=udp;lr>"


class ProxyBehindNATTests(SynchronousTestCase):
    """
    RFC 3261 16.6 steps 4 and 8 with two addresses, and RFC 5658 double Record-Route.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        clock = self.network.clock
        self.stack, core = build_memory_stack(self.network, PRIVATE, seed=1)
        self.stack.addresses = AddressPlan(PUBLIC, PRIVATE)
        timers = TimerValues()
        location = LocationService()
        registrar = Registrar(core, location, clock, [DOMAIN], min_expires=10)
        proxy = Proxy(core, location, clock, registrar.serves, timers=timers,
                      aliases=(PRIVATE,))
        core.add_router(registrar)
        core.add_router(proxy)
        self.alice = Phone(self.network, "10.0.0.2", "alice", 2)
        self.bob = Phone(self.network, "10.0.0.3", "bob", 3)
        self.dave = Phone(self.network, "198.51.100.7", "dave", 4)
        for phone in (self.alice, self.bob, self.dave):
            phone.script["INVITE"] = [180, 200]
            phone.script["BYE"] = [200]
            exchange = phone.register()
            self.network.run()
            self.assertEqual(exchange.codes, [200])

    def test_internet_callee_sees_the_public_address(self):
        """
        alice (private) calls dave (Internet): dave's INVITE has our public address in its top
        Via and the Record-Route toward him, the private one only in the entry toward alice;
        alice's BYE along that route set reaches dave.
        """
        invite = self.alice.invite("dave")
        self.network.run()
        [event] = self.dave.requests
        request = event.request
        self.assertEqual((request.top_via.host, request.top_via.port), (PUBLIC, 5060))
        self.assertEqual(request.headers.get_all("Record-Route"),
                         [TOWARD_PUBLIC, TOWARD_PRIVATE])
        self.assertEqual(invite.final.status_code, 200)
        self.alice.ack(invite, invite.final)
        bye = self.alice.bye(invite, invite.final)
        self.network.run()
        self.assertEqual(bye.codes, [200])
        self.assertEqual(self.dave.last("BYE").request.top_via.host, PUBLIC)

    def test_private_callee_sees_only_the_private_address(self):
        """
        alice calls bob, both private: one Record-Route and our Via, both with 10.0.0.1.
        """
        invite = self.alice.invite("bob")
        self.network.run()
        request = self.bob.requests[0].request
        self.assertEqual(request.top_via.host, PRIVATE)
        self.assertEqual(request.headers.get_all("Record-Route"), [TOWARD_PRIVATE])
        self.assertEqual(invite.final.status_code, 200)
