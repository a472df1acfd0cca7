"""
The sips: scheme (RFC 5630) in memory: a sips: account keeps sips: in the Request-URI, To,
From and Contact (at our TLS port, no C{transport=tls}), a C{sip:...;transport=tls} one keeps
sip: (TLS to the first hop only), and a sips: Request-URI that arrived over UDP or TCP is refused
with 480.  Both stacks of the L{MemoryNetwork} have a "tls" transport beside UDP.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.gateway.fields import account_from_fields
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.message import parse_message
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.registrar import Registrar
from wcs_twisted.ua.registration import RegistrationClient, RegistrationState

SERVER, CLIENT, TLS_PORT = "10.0.0.1", "10.0.0.2", 5061


def account(scheme: str) -> SIPAccount:
    return SIPAccount(login="alice", authentication_name="alice", password="secret",
                      domain=SERVER, outbound_proxy="", port=TLS_PORT, register_required=True,
                      transport="tls", scheme=scheme)


class SIPSRegistrationTests(SynchronousTestCase):
    """
    REGISTER from a sips: account and from a sip:;transport=tls one, at our registrar.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.server, server_core = build_memory_stack(self.network, SERVER, seed=1)
        self.network.attach(self.server, SERVER, TLS_PORT, "tls")
        self.location = LocationService()
        registrar = Registrar(
            server_core, self.location, self.clock, domains=[SERVER], users={"alice": "secret"},
            authenticator=DigestAuthenticator(SERVER, b"0123456789abcdef" * 2))
        server_core.add_router(registrar)
        server_core.add_router(Proxy(server_core, self.location, self.clock, registrar.serves))
        self.client, self.client_core = build_memory_stack(self.network, CLIENT, seed=2)
        self.network.attach(self.client, CLIENT, TLS_PORT, "tls")

    def register(self, scheme: str):
        """
        Register alice with a C{scheme} account; return the last REGISTER sent.
        """
        client = RegistrationClient(self.client_core, self.clock, account(scheme),
                                    lambda change: None)
        client.start()
        self.network.run()
        self.assertEqual(client.state, RegistrationState.REGISTERED)
        [*_, (source, destination, data)] = [
            entry for entry in self.network.delivered if entry[2].startswith(b"REGISTER ")]
        self.assertEqual(destination, SIPAddress("tls", SERVER, TLS_PORT))
        return parse_message(data)

    def test_sips_account_keeps_sips_everywhere(self):
        """
        Request-URI, To, From and Contact are sips: URIs, the Contact at our TLS port, and
        nothing says transport=tls; the registrar binds the sips: Contact.
        """
        register = self.register("sips")
        self.assertEqual(str(register.uri), f"sips:{SERVER}")
        self.assertEqual(str(register.to.uri), f"sips:alice@{SERVER}")
        self.assertEqual(str(register.from_.uri), f"sips:alice@{SERVER}")
        self.assertEqual(str(register.contacts[0].uri), f"sips:alice@{CLIENT}:{TLS_PORT}")
        self.assertEqual(register.top_via.transport.upper(), "TLS")
        self.assertNotIn(b"transport=tls", register.serialize().lower())
        [binding] = self.location.lookup(f"sip:alice@{SERVER}", self.clock.seconds())
        self.assertEqual(str(binding.contact.uri), f"sips:alice@{CLIENT}:{TLS_PORT}")

    def test_transport_tls_account_keeps_sip(self):
        """
        A sip: server reached over TLS: sip: URIs, the Contact says transport=tls (hop by hop).
        """
        register = self.register("sip")
        self.assertEqual(str(register.uri), f"sip:{SERVER}")
        self.assertEqual(str(register.to.uri), f"sip:alice@{SERVER}")
        self.assertEqual(str(register.contacts[0].uri),
                         f"sip:alice@{CLIENT}:{TLS_PORT};transport=tls")

    def test_proxy_record_routes_sips_toward_a_sips_contact(self):
        """
        RFC 3261 16.6 step 4: an INVITE proxied to alice's sips: Contact (over TLS) carries a
        sips: Record-Route at our TLS port, without transport=.
        """
        self.register("sips")
        invite = (f"INVITE sips:alice@{SERVER} SIP/2.0\r\n"
                  "Via: SIP/2.0/TLS 10.0.0.3:5061;branch=z9hG4bKsipsinvite\r\n"
                  "Max-Forwards: 70\r\n"
                  "From: <sips:carol@elsewhere.test>;tag=c\r\nTo: <sips:alice@10.0.0.1>\r\n"
                  "Call-ID: sips-invite@test\r\nCSeq: 1 INVITE\r\n"
                  "Contact: <sips:carol@10.0.0.3:5061>\r\nContent-Length: 0\r\n\r\n")
        self.network.deliver(SIPAddress("tls", "10.0.0.3", 5061), invite.encode(),
                             SIPAddress("tls", SERVER, TLS_PORT))
        self.network.run()
        [forwarded] = [parse_message(data) for source, destination, data in self.network.delivered
                       if data.startswith(b"INVITE ") and destination.host == CLIENT]
        self.assertEqual(str(forwarded.uri), f"sips:alice@{CLIENT}:{TLS_PORT}")
        self.assertEqual(forwarded.headers.get_all("Record-Route"),
                         [f"<sips:{SERVER}:{TLS_PORT};lr>"])

    def test_sips_over_udp_refused_with_480(self):
        """
        RFC 5630: a sips: Request-URI must have come over TLS; over UDP it is answered 480
        before any router (the registrar here) sees it, and nothing is bound.
        """
        request = (f"REGISTER sips:{SERVER} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {CLIENT}:5060;branch=z9hG4bKsipsudp\r\n"
                   "Max-Forwards: 70\r\n"
                   f"From: <sips:alice@{SERVER}>;tag=1\r\nTo: <sips:alice@{SERVER}>\r\n"
                   "Call-ID: sips-udp@test\r\nCSeq: 1 REGISTER\r\n"
                   f"Contact: <sips:alice@{CLIENT}:{TLS_PORT}>\r\nContent-Length: 0\r\n\r\n")
        self.network.deliver(SIPAddress("udp", CLIENT, 5060), request.encode(),
                             SIPAddress("udp", SERVER, 5060))
        self.network.run()
        [answer] = [data for source, _, data in self.network.delivered
                    if source.host == SERVER]
        self.assertTrue(answer.startswith(b"SIP/2.0 480 "), answer[:40])
        self.assertEqual(self.location.lookup(f"sip:alice@{SERVER}", self.clock.seconds()),
                         [])


class SIPSFieldsTests(SynchronousTestCase):
    """
    Which WCS fields make a sips: account.
    """

    def test_sips_domain(self):
        """
        sipDomain "sips:host": scheme sips, transport TLS.
        """
        found = account_from_fields({"sipLogin": "alice", "sipDomain": "sips:provider.test"})
        self.assertEqual((found.scheme, found.transport), ("sips", "tls"))

    def test_transport_tls_domain(self):
        """
        sipDomain "host;transport=tls": TLS to the server, sip: URIs.
        """
        found = account_from_fields({"sipLogin": "alice",
                                     "sipDomain": "provider.test;transport=tls"})
        self.assertEqual((found.scheme, found.transport), ("sip", "tls"))
