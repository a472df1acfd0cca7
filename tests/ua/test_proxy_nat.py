"""
Tests for where the local-mode proxy sends a request for a registered user: to the Contact
(RFC 3261 10.2, third-party registration) unless the registrar saw NAT, a connection or RFC 5626
outbound, when it goes back where the REGISTER came from.  In memory, Clock-driven; the NATed
phone's stack sits at a public address while its Via and Contact carry a private one.
"""

from __future__ import annotations

from wcs_twisted.sip.address import SIPAddress

from tests.ua.test_proxy import DOMAIN, PROXY, Phone, ProxyTestCase

#: The public address a home router maps a phone to; the phone itself says 192.168.1.2.
PUBLIC = "203.0.113.7"
PRIVATE = "192.168.1.2"


class ContactRoutingTests(ProxyTestCase):
    """
    alice (10.0.0.2) calls bob; bob's binding was made in different ways per test.
    """

    def setUp(self):
        super().setUp()
        self.bob.register(expires=0)  # the fixture's own binding: each test makes its own
        self.network.run()

    def register_for(self, registering: Phone, contact: str, via_host: str | None = None,
                     call_id: str = "reg-bob"):
        """
        REGISTER bob from C{registering} with C{contact}; its Via says C{via_host}:5060
        (default: the registering host itself).
        """
        request = registering.build("REGISTER", f"sip:{DOMAIN}", f"<sip:bob@{DOMAIN}>", call_id)
        request.headers.set("Contact", contact)
        if via_host is not None:
            request.headers.set("Via", f"SIP/2.0/UDP {via_host}:5060;branch="
                                f"{registering.stack.generate_branch()};rport")
        exchange = registering.send(request)
        self.network.run()
        self.assertEqual(exchange.codes, [200])
        [binding] = self.location.lookup(f"sip:bob@{DOMAIN}", self.clock.seconds())
        return binding

    def call_bob(self):
        exchange = self.alice.invite()
        self.network.run()
        return exchange

    def test_third_party_registration_reaches_the_contact(self):
        """
        10.2: a REGISTER sent by another host for bob's phone makes the INVITE go to the phone
        (the Contact), not to the host that registered it.
        """
        admin = Phone(self.network, "10.0.0.5", "admin", 5)
        phone = Phone(self.network, "10.0.0.4", "bob", 4)
        phone.script["INVITE"] = [200]
        binding = self.register_for(admin, "<sip:bob@10.0.0.4:5060>")
        self.assertFalse(binding.flow)
        self.assertEqual(binding.source, admin.address)
        invite = self.call_bob()
        self.assertEqual(len(phone.requests), 1)
        self.assertEqual(admin.requests, [])
        self.assertEqual(invite.final.status_code, 200)

    def test_private_third_party_stays_on_the_contact(self):
        """
        A private Contact registered from a host in a private network too is not NAT: both
        are in the same kind of network, so the Contact is reachable.
        """
        admin = Phone(self.network, "192.168.1.9", "admin", 5)
        phone = Phone(self.network, PRIVATE, "bob", 4)
        binding = self.register_for(admin, f"<sip:bob@{PRIVATE}:5060>")
        self.assertFalse(binding.flow)
        self.call_bob()
        self.assertEqual(len(phone.requests), 1)
        self.assertEqual(admin.requests, [])

    def test_nated_phone_via_differs(self):
        """
        RFC 3581: a Via sent-by (192.168.1.2) that is not where the REGISTER came from
        (203.0.113.7) is NAT: the INVITE goes to the public address, its Request-URI is still
        the private Contact.
        """
        nated = Phone(self.network, PUBLIC, "bob", 7)
        binding = self.register_for(nated, f"<sip:bob@{PRIVATE}:5060>", via_host=PRIVATE)
        self.assertTrue(binding.flow)
        self.call_bob()
        [event] = nated.requests
        self.assertEqual(str(event.request.uri), f"sip:bob@{PRIVATE}:5060")
        self.assertEqual(event.source, PROXY)

    def test_nated_phone_private_contact(self):
        """
        A phone that learnt its public address for Via (STUN) but puts its private one in the
        Contact: a private Contact registered from a public source is NAT.
        """
        nated = Phone(self.network, PUBLIC, "bob", 7)
        binding = self.register_for(nated, f"<sip:bob@{PRIVATE}:5060>")
        self.assertTrue(binding.flow)
        self.call_bob()
        self.assertEqual(len(nated.requests), 1)

    def test_in_dialog_request_to_nated_contact(self):
        """
        Requests whose Request-URI is the NATed Contact (the ACK and BYE of the call) go to
        the public address too.
        """
        nated = Phone(self.network, PUBLIC, "bob", 7)
        nated.contact = f"<sip:bob@{PRIVATE}:5060>"
        nated.script["INVITE"] = [200]
        self.register_for(nated, nated.contact, via_host=PRIVATE)
        invite = self.call_bob()
        self.assertEqual(invite.final.status_code, 200)
        self.alice.ack(invite, invite.final)
        self.alice.bye(invite, invite.final)
        self.network.run()
        self.assertEqual(len(nated.acks), 1)
        self.assertEqual(str(nated.last("BYE").request.uri), f"sip:bob@{PRIVATE}:5060")

    def test_outbound_goes_back_over_the_flow(self):
        """
        RFC 5626: a Contact with reg-id and +sip.instance, or with ;ob, is reached over the
        flow its REGISTER came on, even with nothing NATed.
        """
        admin = Phone(self.network, "10.0.0.5", "admin", 5)
        phone = Phone(self.network, "10.0.0.4", "bob", 4)
        binding = self.register_for(
            admin, '<sip:bob@10.0.0.4:5060>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-'
                   '0000-0000-000000000001>"')
        self.assertTrue(binding.flow)
        self.call_bob()
        self.assertEqual(len(admin.requests), 1)
        self.assertEqual(phone.requests, [])

    def test_contact_by_name_goes_to_the_source(self):
        """
        A Contact naming a host (no DNS here) is reached where its REGISTER came from.
        """
        binding = self.register_for(self.bob, "<sip:bob@phone.example.test:5060>")
        self.assertTrue(binding.flow)
        self.call_bob()
        self.assertEqual(len(self.bob.requests), 1)

    def test_connection_is_the_route(self):
        """
        Over TCP the connection is the only way back: a REGISTER over it binds to its source
        whatever the Contact says.
        """
        self.network.attach(self.stack, "10.0.0.1", 5060, "tcp")
        self.network.attach(self.bob.stack, "10.0.0.3", 5060, "tcp")
        request = self.bob.build("REGISTER", f"sip:{DOMAIN}", f"<sip:bob@{DOMAIN}>", "regtcp")
        request.headers.set("Contact", "<sip:bob@10.0.0.4:5070>")
        request.headers.set("Via", f"SIP/2.0/TCP 10.0.0.3:5060;branch="
                            f"{self.bob.stack.generate_branch()}")
        self.bob.send(request, SIPAddress("tcp", "10.0.0.1", 5060))
        self.network.run()
        [binding] = self.location.lookup(f"sip:bob@{DOMAIN}", self.clock.seconds())
        self.assertTrue(binding.flow)
        self.assertEqual(binding.source, SIPAddress("tcp", "10.0.0.3", 5060))
        self.call_bob()
        [event] = self.bob.requests
        self.assertEqual(event.source, SIPAddress("tcp", "10.0.0.1", 5060))

    def test_contact_we_cannot_resolve_goes_to_the_source(self):
        """
        A binding made without NAT whose Contact names a transport we do not send on (a WCS
        session's C{transport=ws} binding elsewhere) is reached at its source.
        """
        from wcs_twisted.sip.headers import NameAddress
        from wcs_twisted.ua.location import Binding

        self.location.update(Binding(
            aor=f"sip:bob@{DOMAIN}",
            contact=NameAddress.parse("<sip:bob@10.0.0.9:8080;transport=ws>"),
            expires_at=self.clock.seconds() + 60, call_id="ws", cseq=1, source=self.bob.address))
        self.call_bob()
        self.assertEqual(len(self.bob.requests), 1)
