"""
Registrations of a WCS account given by DNS name and transport (RFC 3263 with NAPTR/SRV for TCP
and TLS): dnsmasq serves provider.test with C{_sip._tcp} or C{_sips._tcp} records pointing at a
Kamailio with its tls module; the account comes from WCS fields (C{sipDomain} "sips:..." or
"...;transport=tcp", no C{sipPort}).  Over TLS the certificate names only provider.test, so the
handshake proves it was checked against the resolved domain (RFC 5922), not the SRV target or
its address.
"""

import random

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from tests.integration.certificates import make_certificate, server_certificate, write_pem
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


class RegistrationByDNSTests(TestCase):
    """
    REGISTER to sip:provider.test found by SRV, over TCP and over TLS.
    """

    timeout = 30
    dnsmasq = test_dns.SRVTests.dnsmasq

    @defer.inlineCallbacks
    def setUp(self):
        self.base = self.mktemp()
        ca = make_certificate("WCS Test CA")
        pki = self.base + "/pki"
        settings = tls_settings(ca, pki, enable_local_videochat=False)
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
