"""
The SIP server's transport and port as WCS fields give them (L{account_from_fields}): "sips:",
";transport=", C{sipTransport}, and no C{sipPort} for a name meaning "find it by DNS".
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.errors import InvalidField
from wcs_twisted.gateway.fields import account_from_fields


def account(**fields):
    return account_from_fields({"sipLogin": "alice", **fields}, default_port=5070)


class ServerTransportTests(SynchronousTestCase):
    """
    Which transport and port an account's SIP server gets.
    """

    def test_udp_by_default(self):
        """
        A plain domain with a port: UDP on that port, as WCS does.
        """
        found = account(sipDomain="provider.test", sipPort="5080")
        self.assertEqual((found.transport, found.port, found.domain), ("udp", 5080,
                                                                       "provider.test"))

    def test_transport_parameter_of_the_outbound_proxy(self):
        """
        "host;transport=tcp" in sipOutboundProxy names TCP; the host is kept without it.
        """
        found = account(sipDomain="provider.test", sipOutboundProxy="edge.test;transport=TCP")
        self.assertEqual((found.transport, found.outbound_proxy), ("tcp", "edge.test"))

    def test_sips_domain_means_tls(self):
        """
        "sips:provider.test" (RFC 3261 26.2.2) is TLS; no sipPort: found by DNS (port 0).
        """
        found = account(sipDomain="sips:provider.test")
        self.assertEqual((found.transport, found.port, found.domain), ("tls", 0,
                                                                       "provider.test"))

    def test_sip_transport_field(self):
        """
        An explicit sipTransport applies when the server fields name none.
        """
        self.assertEqual(account(sipDomain="10.0.0.5", sipTransport="TLS").transport, "tls")
        self.assertEqual(account(sipDomain="10.0.0.5;transport=tcp",
                                 sipTransport="TLS").transport, "tcp")

    def test_name_without_port_is_resolved(self):
        """
        No sipPort and a host name: port 0 (NAPTR/SRV); an IP literal keeps the default port,
        and TLS to an IP literal 5061.
        """
        self.assertEqual(account(sipDomain="provider.test").port, 0)
        self.assertEqual(account(sipDomain="provider.test:5090").port, 5070)
        self.assertEqual(account(sipDomain="10.0.0.5").port, 5070)
        self.assertEqual(account(sipDomain="10.0.0.5;transport=tls").port, 5061)

    def test_bad_transport_refused(self):
        """
        A transport we do not have is refused naming the field.
        """
        with self.assertRaises(InvalidField) as raised:
            account(sipOutboundProxy="edge.test;transport=sctp")
        self.assertIn("sipOutboundProxy", str(raised.exception))
        self.assertRaises(InvalidField, account, sipTransport="ws")
