"""
L{wcs_twisted.addresses}: the address each peer is told behind a 1:1 NAT.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.addresses import AddressPlan, route_source

PUBLIC, PRIVATE = "203.0.113.10", "10.0.0.10"


class AddressPlanTests(SynchronousTestCase):
    """
    Public toward peers across the NAT, local toward peers in the local networks.
    """

    def test_public_toward_outside_peers(self):
        """
        An Internet peer, a peer known by name, and an unknown peer get the public address.
        """
        plan = AddressPlan(PUBLIC, PRIVATE)
        for peer in ("198.51.100.7", "sip.example.com", None, "2001:db8::1"):
            self.assertEqual(plan.toward(peer), PUBLIC, peer)

    def test_local_toward_private_peers(self):
        """
        Peers in RFC 1918 / loopback / ULA networks (the default local networks) get the bind
        address, IPv6 literals in brackets and IPv4-mapped ones included.
        """
        plan = AddressPlan(PUBLIC, PRIVATE)
        for peer in ("10.0.1.20", "192.168.1.5", "172.20.0.1", "127.0.0.1", "[fd00::5]",
                     "::ffff:10.0.0.9"):
            self.assertEqual(plan.toward(peer), PRIVATE, peer)

    def test_configured_local_networks_replace_the_default(self):
        """
        C{local_networks} names this side of the NAT: only those peers get the local address.
        """
        plan = AddressPlan(PUBLIC, PRIVATE, ["100.64.0.0/10"])
        self.assertEqual(plan.toward("100.64.3.3"), PRIVATE)
        self.assertEqual(plan.toward("192.168.1.5"), PUBLIC)

    def test_no_nat_means_one_address(self):
        """
        Without a public address, or with the same one as the bind address, every peer gets it.
        """
        for plan in (AddressPlan("", PRIVATE), AddressPlan(PRIVATE, PRIVATE)):
            self.assertEqual({plan.toward(peer) for peer in ("10.0.1.20", "8.8.8.8", None)},
                             {PRIVATE})
            self.assertFalse(plan.own(PRIVATE))

    def test_wildcard_bind_uses_the_route_source(self):
        """
        Bound to 0.0.0.0, a local peer is told the source address of the route to it (asked of
        the kernel; nothing is sent).
        """
        plan = AddressPlan(PUBLIC, "0.0.0.0")
        self.assertEqual(plan.toward("127.0.0.1"), "127.0.0.1")
        self.assertEqual(route_source("127.0.0.1"), "127.0.0.1")
        self.assertEqual(plan.toward("8.8.8.8"), PUBLIC)

    def test_way_home_avoids_the_hairpin(self):
        """
        What we address to our own public address goes to the bind address (or loopback when
        bound to a wildcard); other hosts are left alone.
        """
        self.assertEqual(AddressPlan(PUBLIC, PRIVATE).way_home(PUBLIC), PRIVATE)
        self.assertEqual(AddressPlan(PUBLIC, "0.0.0.0").way_home(PUBLIC), "127.0.0.1")
        self.assertEqual(AddressPlan(PUBLIC, PRIVATE).way_home("198.51.100.7"), "198.51.100.7")

    def test_ipv6_peers_get_the_ipv6_address(self):
        """
        With an IPv6 address configured, IPv6 peers are told it and sockets for them bind it;
        IPv4 and IPv4-mapped peers keep the IPv4 rules.  Without one, nothing changes.
        """
        plan = AddressPlan(PUBLIC, PRIVATE, ipv6="2001:db8::10")
        self.assertEqual(plan.toward("2001:db8:1::2"), "2001:db8::10")
        self.assertEqual(plan.bind_toward("2001:db8:1::2", PRIVATE), "2001:db8::10")
        self.assertEqual(plan.toward("::ffff:198.51.100.7"), PUBLIC)
        self.assertEqual(plan.bind_toward("198.51.100.7", PRIVATE), PRIVATE)
        self.assertEqual(AddressPlan(PUBLIC, PRIVATE).bind_toward("2001:db8:1::2", PRIVATE),
                         PRIVATE)

    def test_names_resolved_to_ipv6_get_the_ipv6_address(self):
        """
        A peer known by a name the resolver found an IPv6 address for is told our IPv6
        address; a name resolved to IPv4, or not resolved, keeps the IPv4 rules (public).
        """
        plan = AddressPlan(PUBLIC, PRIVATE, ipv6="2001:db8::10")
        plan.names = {"six.test": "2001:db8:1::2", "four.test": "10.0.0.7"}.get
        self.assertEqual(plan.toward("six.test"), "2001:db8::10")
        self.assertEqual(plan.bind_toward("six.test", PRIVATE), "2001:db8::10")
        self.assertEqual(plan.toward("four.test"), PUBLIC)
        self.assertEqual(plan.toward("unknown.test"), PUBLIC)
        without = AddressPlan(PUBLIC, PRIVATE)
        without.names = plan.names
        self.assertEqual(without.toward("six.test"), PUBLIC)

    def test_ourselves_get_the_local_address(self):
        """
        A message or SDP written for our own public address (a local-mode call looping through
        our SIP side) carries the local address, which needs no hairpin.
        """
        self.assertEqual(AddressPlan(PUBLIC, PRIVATE).toward(PUBLIC), PRIVATE)


class SeparateAddressesTests(SynchronousTestCase):
    """
    C{sip_public_address} and C{media_public_address}, wired by the composition root.
    """

    def test_signalling_and_media_public_addresses_differ(self):
        """
        SIP peers outside get C{sip_public_address}, SDP for them C{media_public_address};
        both fall back to C{ip}, and local peers get C{ip_local} either way.
        """
        from twisted.internet.task import Clock

        from wcs_twisted.config import Settings
        from wcs_twisted.metrics import ServerMetrics
        from wcs_twisted.tap import build_media, build_sip

        settings = Settings(public_address=PUBLIC, bind_address=PRIVATE,
                            sip_public_address="198.51.100.5",
                            media_public_address="198.51.100.6")
        stack = build_sip(settings, Clock(), ServerMetrics())[0]
        media = build_media(settings, Clock())
        self.assertEqual(stack.local_address("udp", "8.8.8.8")[0], "198.51.100.5")
        self.assertEqual(media.addresses.toward("8.8.8.8"), "198.51.100.6")
        self.assertEqual(stack.local_address("udp", "10.9.9.9")[0], PRIVATE)
        self.assertEqual(media.addresses.toward("10.9.9.9"), PRIVATE)
        fallback = Settings(public_address=PUBLIC, bind_address=PRIVATE)
        self.assertEqual(build_sip(fallback, Clock(), ServerMetrics())[0].local_address(
            "udp", "8.8.8.8")[0], PUBLIC)
        self.assertEqual(build_media(fallback, Clock()).addresses.toward("8.8.8.8"), PUBLIC)
