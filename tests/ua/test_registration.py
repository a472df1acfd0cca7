"""
Tests for L{wcs_twisted.ua.registration}: our REGISTER client against our registrar, in memory.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.message import parse_message
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.registrar import Registrar
from wcs_twisted.ua.registration import RegistrationClient, RegistrationState


def account(password="secret", login="alice"):
    return SIPAccount(login=login, authentication_name=login, password=password,
                      domain="10.0.0.1", outbound_proxy="", port=5060, register_required=True)


class RegistrationTests(SynchronousTestCase):
    """
    RFC 3261 10.2 REGISTER client behaviour.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.server, self.server_core = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.location = LocationService()
        self.registrar = Registrar(
            self.server_core, self.location, self.clock, domains=["10.0.0.1"],
            users={"alice": "secret"},
            authenticator=DigestAuthenticator("10.0.0.1", b"0123456789abcdef" * 2,
                                              nonce_lifetime=30))
        self.server_core.add_router(self.registrar)
        self.client, self.client_core = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.changes = []

    def registration(self, **kwargs):
        client = RegistrationClient(self.client_core, self.clock, kwargs.pop("account", account()),
                                    self.changes.append, **kwargs)
        return client

    def test_digest_registration(self):
        """
        401 is answered with credentials; the 200 registers the Contact at the registrar.
        """
        client = self.registration()
        client.start()
        self.network.run()
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        self.assertEqual([c.state for c in self.changes],
                         [RegistrationState.REGISTERING, RegistrationState.REGISTERED])
        bindings = self.location.lookup("sip:alice@10.0.0.1", self.clock.seconds())
        self.assertEqual([str(b.contact.uri) for b in bindings], ["sip:alice@10.0.0.2:5060"])
        self.assertEqual(client.granted, 3600)

    def test_wrong_password(self):
        """
        A refused answer to the same nonce is AUTHENTICATION_FAIL, not an endless loop.
        """
        client = self.registration(account=account(password="wrong"), retry=False)
        client.start()
        self.network.run()
        self.assertEqual(client.state, RegistrationState.AUTHENTICATION_FAIL)
        self.assertEqual(self.changes[-1].status, 403)
        registers = [d for s, d, data in self.network.delivered
                     if data.startswith(b"REGISTER")]
        self.assertEqual(len(registers), 2)

    def test_refresh_before_expiry(self):
        """
        The binding is refreshed at 80% of the granted time and never lapses.
        """
        client = self.registration(expires=100)
        client.start()
        self.network.run()
        for _ in range(5):
            self.clock.advance(80)
            self.network.run()
            self.assertEqual(
                len(self.location.lookup("sip:alice@10.0.0.1", self.clock.seconds())), 1)
        self.assertEqual(client.state, RegistrationState.REGISTERED)

    def test_min_expires(self):
        """
        423 Interval Too Brief is followed by a REGISTER with the server's Min-Expires.
        """
        self.registrar.min_expires = 120
        client = self.registration(expires=30)
        client.start()
        self.network.run()
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        self.assertEqual(client.granted, 120)

    def test_unregister_on_stop(self):
        """
        stop() sends Expires: 0 and the registrar forgets the binding.
        """
        client = self.registration()
        client.start()
        self.network.run()
        stopped = client.stop()
        self.network.run()
        self.successResultOf(stopped)
        self.assertEqual(self.location.lookup("sip:alice@10.0.0.1", self.clock.seconds()), [])
        self.assertEqual(client.state, RegistrationState.UNREGISTERED)
        self.assertIsNone(client._timer)

    def test_stop_fires_after_the_state_is_final(self):
        """
        10.2.2: whoever waits on stop() sees UNREGISTERED (and the last change reported) when
        the Deferred fires, not the REGISTERED it had before the 200 to Expires: 0.
        """
        client = self.registration()
        client.start()
        self.network.run()
        seen = []
        client.stop().addCallback(
            lambda _: seen.append((client.state, self.changes[-1].state)))
        self.network.run()
        self.assertEqual(seen, [(RegistrationState.UNREGISTERED,
                                 RegistrationState.UNREGISTERED)])

    def test_domain_with_port(self):
        """
        A sipDomain of "host:port" registers at that port, with the port in the Request-URI
        and the address-of-record (10.2: the Request-URI names the registrar's domain).
        """
        server, server_core = build_memory_stack(self.network, "10.0.0.3", port=5070, seed=3)
        location = LocationService()
        server_core.add_router(Registrar(server_core, location, self.clock,
                                         domains=["10.0.0.3"]))
        client = self.registration(account=SIPAccount(
            login="bob", authentication_name="bob", password="", domain="10.0.0.3:5070",
            outbound_proxy="", port=5060, register_required=True), retry=False)
        client.start()
        self.network.run()
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        first = parse_message(self.network.delivered[0][2])
        self.assertEqual(str(first.uri), "sip:10.0.0.3:5070")
        self.assertEqual(str(first.to.uri), "sip:bob@10.0.0.3:5070")
        self.assertEqual(len(location.lookup("sip:bob@10.0.0.3", self.clock.seconds())), 1)

    def test_timeout_then_retry(self):
        """
        No answer: FAILED with 408 after Timer F, then a retry that succeeds once the path heals.
        """
        self.network.drop = lambda data, source, destination: True
        client = self.registration()
        client.start()
        self.clock.pump([0.5] * 65)
        self.assertEqual(client.state, RegistrationState.FAILED)
        self.assertEqual(self.changes[-1].status, 408)
        self.network.drop = lambda data, source, destination: False
        self.clock.advance(5)
        self.network.run()
        self.assertEqual(client.state, RegistrationState.REGISTERED)

    def test_contact_and_headers(self):
        """
        The REGISTER carries To=From=AOR, our Contact, Expires and a branch with the cookie.
        """
        client = self.registration()
        client.start()
        first = parse_message(self.network.delivered[0][2])
        self.assertEqual(str(first.uri), "sip:10.0.0.1")
        self.assertEqual(str(first.to.uri), "sip:alice@10.0.0.1")
        self.assertEqual(str(first.contacts[0].uri), "sip:alice@10.0.0.2:5060")
        self.assertEqual(first.headers.get("Expires"), "3600")
        self.assertTrue(first.top_via.branch.startswith("z9hG4bK"))
