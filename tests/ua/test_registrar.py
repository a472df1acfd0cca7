"""
Tests for L{wcs_twisted.ua.registrar}: REGISTER handling (RFC 3261 10.3) and the location
service, with a client stack sending hand-built REGISTERs over a L{MemoryNetwork}.
"""

from __future__ import annotations

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from wcs_twisted.interfaces import IClientTransactionOwner, IRequestRouter
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.auth import DigestAuthenticator, DigestChallenge, build_authorization
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.location import Binding, LocationService, address_of_record
from wcs_twisted.ua.registrar import Registrar, flow_reason

REGISTRAR = SIPAddress("udp", "10.0.0.1", 5060)
DOMAIN = "example.test"


@implementer(IClientTransactionOwner)
class Exchange:
    """
    Collects the responses to one REGISTER.
    """

    def __init__(self) -> None:
        self.responses = []
        self.failures = []

    def response_received(self, response):
        self.responses.append(response)

    def transaction_failed(self, reason):
        self.failures.append(reason)

    @property
    def final(self):
        return self.responses[-1]


class RegistrarTestCase(SynchronousTestCase):
    """
    A registrar at 10.0.0.1 for example.test; a client stack at 10.0.0.2.
    """

    users = None

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.clock.advance(1000)
        _, self.server_core = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.changes = []
        self.location = LocationService(on_change=self.changes.append)
        self.authenticator = DigestAuthenticator(DOMAIN, b"s" * 32, nonce_lifetime=30)
        self.registrar = Registrar(self.server_core, self.location, self.clock, [DOMAIN],
                                   users=self.users, authenticator=self.authenticator,
                                   min_expires=60, max_expires=7200, default_expires=3600)
        self.server_core.add_router(self.registrar)
        self.client, self.client_core = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.cseq = 0

    def register(self, user="alice", contacts=("<sip:alice@10.0.0.2:5060>",), expires=None,
                 call_id="reg-1", cseq=None, uri=f"sip:{DOMAIN}", to_host=DOMAIN,
                 authorization=None, extra=()):
        """
        Send one REGISTER and deliver everything; return its L{Exchange}.
        """
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        headers = Headers([
            ("Via", f"SIP/2.0/UDP 10.0.0.2:5060;branch={self.client.generate_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{user}@{to_host}>;tag=reg"),
            ("To", f"<sip:{user}@{to_host}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} REGISTER"),
        ])
        for contact in contacts:
            headers.add("Contact", contact)
        if expires is not None:
            headers.add("Expires", str(expires))
        if authorization is not None:
            headers.add("Authorization", authorization)
        for name, value in extra:
            headers.add(name, value)
        exchange = Exchange()
        self.client_core.send_request(Request("REGISTER", SIPURI.parse(uri), headers),
                                      REGISTRAR, exchange)
        self.network.run()
        return exchange

    def bindings(self, user="alice"):
        return self.location.lookup(f"sip:{user}@{DOMAIN}", self.clock.seconds())


class RegisterTests(RegistrarTestCase):
    """
    RFC 3261 10.3 without authentication.
    """

    def test_router(self):
        """
        The registrar is an IRequestRouter.
        """
        self.assertTrue(verifyObject(IRequestRouter, self.registrar))

    def test_register_adds_binding(self):
        """
        10.3 step 7-8: the 200 lists the binding with its expires, plus Date; the location
        service keeps it with the address the REGISTER came from, reached at its Contact
        (nothing is NATed).
        """
        exchange = self.register(expires=600)
        response = exchange.final
        self.assertEqual(response.status_code, 200)
        contacts = response.contacts
        self.assertEqual([str(contact.uri) for contact in contacts], ["sip:alice@10.0.0.2:5060"])
        self.assertEqual(contacts[0].param("expires"), "600")
        self.assertIn("GMT", response.headers.get("Date"))
        self.assertIsNotNone(response.to.tag)
        [binding] = self.bindings()
        self.assertEqual(binding.source, SIPAddress("udp", "10.0.0.2", 5060))
        self.assertFalse(binding.flow)
        self.assertEqual(binding.expires_at, self.clock.seconds() + 600)
        self.assertEqual(self.changes, [1])

    def test_other_requests_not_taken(self):
        """
        Only REGISTER is taken; an OPTIONS falls through to the core.
        """
        headers = Headers([
            ("Via", f"SIP/2.0/UDP 10.0.0.2:5060;branch={self.client.generate_branch()}"),
            ("From", "<sip:a@x>;tag=1"), ("To", "<sip:b@x>"), ("Call-ID", "o"),
            ("CSeq", "1 OPTIONS")])
        exchange = Exchange()
        self.client_core.send_request(Request("OPTIONS", SIPURI.parse(f"sip:{DOMAIN}"), headers),
                                      REGISTRAR, exchange)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 200)
        self.assertIsNotNone(exchange.final.headers.get("Allow"))

    def test_default_and_capped_expiry(self):
        """
        10.3 step 7: no Expires means the default; a longer one is cut to the maximum.
        """
        self.register()
        self.assertEqual(self.bindings()[0].expires_in(self.clock.seconds()), 3600)
        exchange = self.register(contacts=("<sip:alice@10.0.0.2:5060>;expires=90000",))
        self.assertEqual(exchange.final.contacts[0].param("expires"), "7200")

    def test_expiry_in_lookups(self):
        """
        A binding is returned until its expiry and not after; the AOR stays known.
        """
        self.register(expires=60)
        self.clock.advance(59)
        self.assertEqual(len(self.bindings()), 1)
        self.clock.advance(1)
        self.assertEqual(self.bindings(), [])
        self.assertTrue(self.location.known(f"sip:alice@{DOMAIN}"))
        self.assertFalse(self.location.known(f"sip:bob@{DOMAIN}"))
        self.assertEqual(self.changes, [1, 0])

    def test_refresh_keeps_one_binding(self):
        """
        10.3 step 7: the same contact again (higher CSeq) updates, never duplicates.
        """
        self.register(expires=60)
        self.clock.advance(30)
        self.register(expires=60)
        [binding] = self.bindings()
        self.assertEqual(binding.expires_in(self.clock.seconds()), 60)
        self.assertEqual(len(self.location), 1)

    def test_query_lists_bindings(self):
        """
        10.3 step 8: a REGISTER without Contact changes nothing and lists the bindings.
        """
        self.register(contacts=("<sip:alice@10.0.0.2:5060>", "<sip:alice@10.0.0.9:5070>"))
        exchange = self.register(contacts=())
        self.assertEqual(exchange.final.status_code, 200)
        self.assertEqual(len(exchange.final.contacts), 2)

    def test_remove_one_contact(self):
        """
        10.2.2: Expires 0 on one contact removes that binding only.
        """
        self.register(contacts=("<sip:alice@10.0.0.2:5060>", "<sip:alice@10.0.0.9:5070>"))
        exchange = self.register(contacts=("<sip:alice@10.0.0.9:5070>;expires=0",))
        self.assertEqual([str(c.uri) for c in exchange.final.contacts],
                         ["sip:alice@10.0.0.2:5060"])

    def test_wildcard_removes_everything(self):
        """
        10.2.2: Contact: * with Expires: 0 removes every binding of the AOR.
        """
        self.register(contacts=("<sip:alice@10.0.0.2:5060>", "<sip:alice@10.0.0.9:5070>"))
        exchange = self.register(contacts=("*",), expires=0)
        self.assertEqual(exchange.final.status_code, 200)
        self.assertEqual(exchange.final.contacts, [])
        self.assertEqual(self.bindings(), [])
        self.assertEqual(len(self.location), 0)

    def test_wildcard_needs_expires_zero(self):
        """
        10.3 step 6: a wildcard with a non-zero Expires is a 400.
        """
        self.register()
        exchange = self.register(contacts=("*",), expires=3600)
        self.assertEqual(exchange.final.status_code, 400)
        self.assertEqual(len(self.bindings()), 1)

    def test_old_wildcard_refused(self):
        """
        10.3 step 6: a wildcard removal older than the binding (same Call-ID) fails with 500.
        """
        self.register(cseq=10)
        exchange = self.register(contacts=("*",), expires=0, cseq=5)
        self.assertEqual(exchange.final.status_code, 500)
        self.assertEqual(len(self.bindings()), 1)

    def test_interval_too_brief(self):
        """
        10.3 step 7: an expiry below the minimum gets 423 with Min-Expires.
        """
        exchange = self.register(expires=30)
        self.assertEqual(exchange.final.status_code, 423)
        self.assertEqual(exchange.final.headers.get("Min-Expires"), "60")
        self.assertEqual(self.bindings(), [])

    def test_bad_expires(self):
        """
        RFC 3261 20.19: Expires is delta-seconds; a negative or non-numeric value is a 400.
        """
        for value in ("-1", "soon"):
            exchange = self.register(expires=value)
            self.assertEqual(exchange.final.status_code, 400)
        exchange = self.register(contacts=("<sip:alice@10.0.0.2:5060>;expires=-5",))
        self.assertEqual(exchange.final.status_code, 400)
        self.assertEqual(self.bindings(), [])

    def test_foreign_domain(self):
        """
        10.3 step 1 (no forwarding here): a REGISTER for another domain gets 403.
        """
        exchange = self.register(uri="sip:elsewhere.example", to_host="elsewhere.example")
        self.assertEqual(exchange.final.status_code, 403)
        self.assertEqual(len(self.location), 0)

    def test_to_in_foreign_domain(self):
        """
        10.3 step 5: an AOR that is not in the Request-URI's domain gets 404.
        """
        exchange = self.register(to_host="elsewhere.example")
        self.assertEqual(exchange.final.status_code, 404)
        self.assertEqual(len(self.location), 0)

    def test_out_of_order(self):
        """
        10.3 step 7: a REGISTER of the same Call-ID with a CSeq not above the binding's fails
        with 500 and leaves the binding alone; another Call-ID may update it.
        """
        self.register(cseq=10, expires=600)
        exchange = self.register(cseq=10, expires=100)
        self.assertEqual(exchange.final.status_code, 500)
        self.assertEqual(self.bindings()[0].expires_in(self.clock.seconds()), 600)
        exchange = self.register(cseq=1, call_id="reg-2", expires=100)
        self.assertEqual(exchange.final.status_code, 200)
        self.assertEqual(self.bindings()[0].expires_in(self.clock.seconds()), 100)

    def test_q_orders_lookups(self):
        """
        16.6: lookups list the highest q first.
        """
        self.register(contacts=("<sip:alice@10.0.0.2:5060>;q=0.2",
                                "<sip:alice@10.0.0.9:5070>;q=0.9"))
        self.assertEqual([str(b.contact.uri) for b in self.bindings()],
                         ["sip:alice@10.0.0.9:5070", "sip:alice@10.0.0.2:5060"])


class DigestRegisterTests(RegistrarTestCase):
    """
    REGISTER with digest users (RFC 3261 22, RFC 7616).
    """

    users = {"alice": "secret", "bob": "hunter2"}

    def answer(self, challenge_response, user="alice", password="secret", nc=1):
        challenge = DigestChallenge.parse(
            challenge_response.headers.get_all("WWW-Authenticate")[-1])
        return build_authorization(challenge, "REGISTER", f"sip:{DOMAIN}", user, password,
                                   cnonce="c0ffee", nc=nc)

    def test_challenge_then_success(self):
        """
        22.1: no credentials -> 401 with one challenge per algorithm; answered -> 200.
        """
        first = self.register()
        self.assertEqual(first.final.status_code, 401)
        challenges = first.final.headers.get_all("WWW-Authenticate")
        self.assertEqual([DigestChallenge.parse(c).algorithm for c in challenges],
                         ["SHA-256", "MD5"])
        self.assertEqual(self.bindings(), [])
        second = self.register(authorization=self.answer(first.final))
        self.assertEqual(second.final.status_code, 200)
        self.assertEqual(len(self.bindings()), 1)

    def test_wrong_password(self):
        """
        A digest computed with the wrong password gets 403 and registers nothing.
        """
        first = self.register()
        second = self.register(authorization=self.answer(first.final, password="guess"))
        self.assertEqual(second.final.status_code, 403)
        self.assertEqual(self.bindings(), [])

    def test_unknown_user(self):
        """
        Credentials of a user that is not configured get 403.
        """
        first = self.register(user="mallory")
        second = self.register(user="mallory",
                               authorization=self.answer(first.final, "mallory", "x"))
        self.assertEqual(second.final.status_code, 403)

    def test_other_users_credentials(self):
        """
        Valid credentials of bob cannot register alice's AOR (403).
        """
        first = self.register()
        second = self.register(authorization=self.answer(first.final, "bob", "hunter2"))
        self.assertEqual(second.final.status_code, 403)
        self.assertEqual(self.bindings(), [])

    def test_stale_nonce(self):
        """
        RFC 7616 3.3: a right digest on an expired nonce gets 401 with stale=true.
        """
        first = self.register()
        self.clock.advance(31)
        second = self.register(authorization=self.answer(first.final))
        self.assertEqual(second.final.status_code, 401)
        challenge = DigestChallenge.parse(second.final.headers.get("WWW-Authenticate"))
        self.assertTrue(challenge.stale)
        third = self.register(authorization=self.answer(second.final))
        self.assertEqual(third.final.status_code, 200)

    def test_replayed_nonce_count(self):
        """
        RFC 7616 3.4.5: the same nonce-count twice is a replay: 401 stale, nothing changed.
        """
        first = self.register()
        authorization = self.answer(first.final)
        self.assertEqual(self.register(authorization=authorization).final.status_code, 200)
        replay = self.register(authorization=authorization, expires=0)
        self.assertEqual(replay.final.status_code, 401)
        self.assertEqual(len(self.bindings()), 1)

    def test_malformed_authorization(self):
        """
        Credentials missing their response parameter get 400.
        """
        exchange = self.register(authorization='Digest username="alice", realm="example.test"')
        self.assertEqual(exchange.final.status_code, 400)


class RegisterInputTests(RegistrarTestCase):
    """
    Malformed REGISTERs get the right status and one log line, never a traceback, and a
    client cannot grow the location service without end.
    """

    users = {"alice": "secret"}

    def answer(self, challenge_response, uri=f"sip:{DOMAIN}"):
        challenge = DigestChallenge.parse(
            challenge_response.headers.get_all("WWW-Authenticate")[-1])
        return build_authorization(challenge, "REGISTER", uri, "alice", "secret",
                                   cnonce="c0ffee")

    def test_q_out_of_range(self):
        """
        RFC 3261 20.10: q is 0 to 1 with up to three decimals; 7.5, nan, inf, -1 and 1e0 are
        refused with 400 and register nothing (the 200 it used to get ranked them first).
        """
        self.registrar.authentication = None
        for q in ("7.5", "nan", "inf", "-1", "1e0", "1.0001", "abc"):
            exchange = self.register(contacts=(f"<sip:alice@10.0.0.2:5060>;q={q}",))
            self.assertEqual(exchange.final.status_code, 400, q)
            self.assertEqual(exchange.final.reason, "Bad q parameter")
        self.assertEqual(self.bindings(), [])
        exchange = self.register(contacts=("<sip:alice@10.0.0.2:5060>;q=0.5",
                                           "<sip:alice@10.0.0.3:5060>;q=1.000"))
        self.assertEqual(exchange.final.status_code, 200)
        self.assertEqual([binding.q for binding in self.bindings()], [1.0, 0.5])

    def test_digest_uri_not_utf8(self):
        """
        A byte that is not UTF-8 in the digest uri is 400, with one log line and no traceback.
        """
        first = self.register()
        value = self.answer(first.final).replace(f'uri="sip:{DOMAIN}"',
                                                 f'uri="sip:{DOMAIN}\udcff"')
        with capturedLogs() as events:
            exchange = self.register(authorization=value)
        self.assertEqual(exchange.final.status_code, 400)
        self.assertEqual(self.bindings(), [])
        self.assertEqual([event.get("log_failure") for event in events], [None])
        self.assertEqual(len(events), 1)

    def test_digest_uri_other_than_request_uri(self):
        """
        RFC 2617 3.2.2.5 / RFC 7616 3.4.6: credentials computed for another URI (a digest
        captured elsewhere) are refused with 400, however right the digest is.
        """
        first = self.register()
        other = self.answer(first.final, uri="sip:elsewhere.test")
        exchange = self.register(authorization=other)
        self.assertEqual(exchange.final.status_code, 400)
        self.assertEqual(exchange.final.reason, "Digest uri is not the Request-URI")
        self.assertEqual(self.bindings(), [])

    def test_digest_uri_equivalent(self):
        """
        19.1.4: a digest uri that differs from the Request-URI only in host case passes.
        """
        first = self.register()
        exchange = self.register(authorization=self.answer(first.final,
                                                           uri="sip:EXAMPLE.test"))
        self.assertEqual(exchange.final.status_code, 200)

    def test_contacts_per_aor_capped(self):
        """
        Beyond max_contacts live contacts for one AOR, a REGISTER adding more gets 503 with
        Retry-After; refreshing an existing contact still works.
        """
        self.registrar.authentication = None
        self.registrar.max_contacts = 2
        contacts = [f"<sip:alice@10.0.1.{n}:5060>" for n in range(3)]
        self.assertEqual(self.register(contacts=contacts[:2]).final.status_code, 200)
        refused = self.register(contacts=contacts[2:])
        self.assertEqual(refused.final.status_code, 503)
        self.assertIsNotNone(refused.final.headers.get("Retry-After"))
        self.assertEqual(len(self.bindings()), 2)
        self.assertEqual(self.register(contacts=contacts[:1]).final.status_code, 200)

    def test_bindings_capped(self):
        """
        Beyond max_bindings in the whole location service, a new binding gets 503.
        """
        self.registrar.authentication = None
        self.registrar.max_bindings = 3
        for n in range(3):
            exchange = self.register(user=f"u{n}", contacts=(f"<sip:u{n}@10.0.0.2>",),
                                     call_id=f"c{n}")
            self.assertEqual(exchange.final.status_code, 200)
        exchange = self.register(user="u3", contacts=("<sip:u3@10.0.0.2>",), call_id="c3")
        self.assertEqual(exchange.final.status_code, 503)
        self.assertEqual(len(self.location), 3)


class LocationServiceTests(SynchronousTestCase):
    """
    The in-memory location service on its own.
    """

    def binding(self, aor, uri, expires_at, source="src"):
        return Binding(aor=aor, contact=NameAddress.parse(f"<{uri}>"), expires_at=expires_at,
                       call_id="c", cseq=1, source=source)

    def test_address_of_record(self):
        """
        10.3 step 5: the AOR keeps scheme, user and host (lower-cased), drops port and params.
        """
        uri = SIPURI.parse("sip:Alice@Example.TEST:5070;transport=tcp")
        self.assertEqual(address_of_record(uri), "sip:Alice@example.test")

    def test_count_and_change_callback(self):
        """
        The binding count is kept as bindings come, are replaced, go and expire.
        """
        changes = []
        location = LocationService(on_change=changes.append)
        location.update(self.binding("sip:a@x", "sip:a@1.1.1.1", 10))
        location.update(self.binding("sip:a@x", "sip:a@1.1.1.1", 20))
        location.update(self.binding("sip:a@x", "sip:a@2.2.2.2", 30))
        location.update(self.binding("sip:b@x", "sip:b@3.3.3.3", 30))
        self.assertEqual(len(location), 3)
        location.remove("sip:a@x", "sip:a@2.2.2.2")
        location.lookup("sip:a@x", 25)
        location.remove("sip:b@x")
        self.assertEqual(changes, [1, 1, 2, 3, 2, 1, 0])
        self.assertEqual(len(location), 0)

    def test_binding_at(self):
        """
        A live binding is found by its contact's host and port, not once expired or replaced.
        """
        location = LocationService()
        location.update(self.binding("sip:a@x", "sip:a@10.0.0.5:5062", 10, source="nat"))
        self.assertEqual(location.binding_at("10.0.0.5", 5062, 5).source, "nat")
        self.assertIsNone(location.binding_at("10.0.0.5", 5060, 5))
        self.assertIsNone(location.binding_at("10.0.0.5", 5062, 10))
        self.assertEqual(len(location), 0)
        location.update(self.binding("sip:a@x", "sip:a@10.0.0.5:5062", 50))
        location.remove("sip:a@x")
        self.assertIsNone(location.binding_at("10.0.0.5", 5062, 5))

    def test_purge(self):
        """
        purge() drops every expired binding.
        """
        location = LocationService()
        location.update(self.binding("sip:a@x", "sip:a@1.1.1.1", 10))
        location.update(self.binding("sip:b@x", "sip:b@1.1.1.1", 30))
        location.purge(20)
        self.assertEqual(len(location), 1)
        self.assertEqual(location.lookup("sip:a@x", 20), [])

    def test_known_bounded(self):
        """
        The AORs remembered as known (480 rather than 404) are capped: registering ever new
        names forgets the oldest, while a refreshed one stays.
        """
        location = LocationService(max_known=3)
        for name in ("a", "b", "c"):
            location.update(self.binding(f"sip:{name}@x", f"sip:{name}@1.1.1.1", 10))
        location.update(self.binding("sip:a@x", "sip:a@1.1.1.1", 20))
        location.update(self.binding("sip:d@x", "sip:d@1.1.1.1", 10))
        self.assertEqual([location.known(f"sip:{name}@x") for name in "abcd"],
                         [True, False, True, True])
        for n in range(100):
            location.update(self.binding(f"sip:n{n}@x", f"sip:n{n}@1.1.1.1", 10))
            location.remove(f"sip:n{n}@x")
        self.assertEqual(len(location._known), 3)
        self.assertTrue(location.known("sip:n99@x"))
        self.assertFalse(location.known("sip:a@x"))


class FlowReasonTests(SynchronousTestCase):
    """
    L{flow_reason}, rule by rule: when a binding is reached back where its REGISTER came from.
    """

    def reason(self, contact, source=("udp", "203.0.113.7", 5060), via="203.0.113.7:5060"):
        request = Request("REGISTER", SIPURI.parse(f"sip:{DOMAIN}"), Headers([
            ("Via", f"SIP/2.0/{source[0].upper()} {via};branch=z9hG4bK1;rport"),
            ("Contact", contact)]))
        return flow_reason(request, NameAddress.parse(contact), SIPAddress(*source))

    def test_direct(self):
        """
        A Contact equal to the source and the Via: no NAT, the Contact is used.
        """
        self.assertIsNone(self.reason("<sip:a@203.0.113.7:5060>"))
        self.assertIsNone(self.reason("<sip:a@203.0.113.7>"))

    def test_third_party(self):
        """
        A public Contact elsewhere than the (public) source, or a private one registered from
        a private source, is a third-party registration: the Contact is used.
        """
        self.assertIsNone(self.reason("<sip:a@198.51.100.9:5070>"))
        self.assertIsNone(self.reason("<sip:a@10.1.2.3:5060>", ("udp", "192.168.0.9", 5062),
                                      "192.168.0.9:5062"))
        self.assertIsNone(self.reason("<sip:a@127.0.0.1:6000>", ("udp", "127.0.0.1", 5062),
                                      "127.0.0.1:5062"))

    def test_via_host_differs(self):
        """
        RFC 3581 received: a Via sent-by host other than the source is NAT.
        """
        self.assertIn("NAT", self.reason("<sip:a@203.0.113.7:5060>", via="192.168.1.2:5060"))

    def test_via_port_differs(self):
        """
        RFC 3581 rport: a Via sent-by port other than the source port is NAT (a port-mapping
        router), with an absent port meaning 5060.
        """
        self.assertIn("NAT", self.reason("<sip:a@203.0.113.7:5060>",
                                         ("udp", "203.0.113.7", 40000)))
        self.assertIn("NAT", self.reason("<sip:a@203.0.113.7:5060>",
                                         ("udp", "203.0.113.7", 40000), "203.0.113.7"))

    def test_private_contact_from_public_source(self):
        """
        A private (RFC 1918, CGNAT 100.64/10, ULA), link-local or loopback Contact registered
        from a wider network is NAT.
        """
        for contact in ("<sip:a@192.168.1.2:5060>", "<sip:a@100.64.0.5>",
                        "<sip:a@169.254.1.1>", "<sip:a@127.0.0.1>"):
            self.assertIn("NAT", self.reason(contact), contact)
        self.assertIn("NAT", self.reason("<sip:a@[fd00::5]:5060>", ("udp", "2001:db8::7", 5060),
                                         "[2001:db8::7]:5060"))
        self.assertIn("NAT", self.reason("<sip:a@127.0.0.1:5060>", ("udp", "10.0.0.7", 5060),
                                         "10.0.0.7:5060"))

    def test_connection_oriented(self):
        """
        Over TCP, TLS and WebSocket the connection is the route, NAT or not.
        """
        for transport in ("tcp", "tls", "ws", "wss"):
            self.assertEqual(self.reason("<sip:a@198.51.100.9:5070>",
                                         (transport, "203.0.113.7", 5060)),
                             "connection-oriented")

    def test_outbound(self):
        """
        RFC 5626: reg-id with +sip.instance, or an ;ob Contact, keeps the flow.
        """
        instance = '+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>"'
        self.assertEqual(self.reason(f"<sip:a@198.51.100.9>;reg-id=1;{instance}"),
                         "RFC 5626 outbound")
        self.assertEqual(self.reason("<sip:a@198.51.100.9;ob>"), "RFC 5626 outbound")
        self.assertIsNone(self.reason("<sip:a@198.51.100.9>;reg-id=1"))

    def test_contact_needs_dns(self):
        """
        A Contact by host name cannot be reached without DNS here: the source is used.
        """
        self.assertEqual(self.reason("<sip:a@phone.example.test>"), "Contact host needs DNS")

    def test_source_not_an_address(self):
        """
        A REGISTER from no transport address (an internal source) binds to the Contact.
        """
        request = Request("REGISTER", SIPURI.parse(f"sip:{DOMAIN}"), Headers([
            ("Via", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1")]))
        self.assertIsNone(flow_reason(request, NameAddress.parse("<sip:a@10.0.0.2>"), None))
