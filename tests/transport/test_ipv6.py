"""
SIP over IPv6 (RFC 5118) through the stack: bracketed hosts on the wire, bare addresses in
transport addresses, and the UDP sender that picks a socket by family.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.transport.test_stack import RecordingOwner
from wcs_twisted.sip.address import SIPAddress, same_host
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.headers import NameAddress, Via
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.transport.udp import DatagramFamilies

A, B = "2001:db8::1", "2001:db8::2"


def options(via_host: str, branch: str) -> Request:
    headers = Headers([
        ("Via", f"SIP/2.0/UDP {via_host}:5060;branch={branch};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:a@[{A}]>;tag=abc"),
        ("To", f"<sip:b@[{B}]>"),
        ("Call-ID", "v6@test"),
        ("CSeq", "1 OPTIONS"),
    ])
    return Request("OPTIONS", SIPURI.parse(f"sip:b@[{B}]"), headers)


class IPv6StackTests(SynchronousTestCase):
    """
    Two stacks on IPv6 addresses of an in-memory network.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.a, self.core_a = build_memory_stack(self.network, A, seed=1)
        self.b, self.core_b = build_memory_stack(self.network, B, seed=2)

    def round_trip(self, via_host: str):
        owner = RecordingOwner()
        self.core_a.send_request(options(via_host, self.a.generate_branch()),
                                 SIPAddress("udp", B, 5060), owner)
        self.network.run()
        [response] = owner.responses
        return response.top_via

    def test_bracketed_sent_by_matching_source(self):
        """
        A sent-by written as an IPv6 reference is the source: received is only stamped
        because rport asks for it, and then in brackets (RFC 5118 4.5), so it parses again.
        """
        via = self.round_trip(f"[{A}]")
        self.assertEqual((via.received, via.rport), (f"[{A}]", 5060))
        self.assertEqual(Via.parse(str(via)).received, f"[{A}]")

    def test_other_spelling_is_the_same_host(self):
        """
        RFC 5118 4.1: the same address written differently (zeros, case) is the same host.
        """
        self.assertTrue(same_host("[2001:DB8:0:0::1]", A))
        self.assertFalse(same_host("[2001:db8::9]", A))
        self.assertFalse(same_host("2001.example", A))

    def test_sent_by_elsewhere(self):
        """
        A sent-by that is not the source gets the real source as received.
        """
        via = self.round_trip("[2001:db8::99]")
        self.assertEqual(via.received, f"[{A}]")


class IPv6ParsingTests(SynchronousTestCase):
    """
    RFC 5118 torture-style values: Via received and maddr, Contact hosts.
    """

    def test_received_bare_or_bracketed(self):
        """
        RFC 3261's ABNF writes received as a bare IPv6address, RFC 5118 4.5 allows the
        reference too: both parse.
        """
        for value in ("2001:db8::9:1", "[2001:db8::9:1]"):
            via = Via.parse(f"SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3;received={value}")
            self.assertEqual(via.received, value)
            self.assertEqual(via.sent_by, ("[2001:db8::9:1]", 6050))

    def test_maddr_and_contact(self):
        """
        An IPv6 maddr and a Contact with an IPv6 reference and port (RFC 5118 4.2, 4.6).
        """
        uri = SIPURI.parse("sip:user@[2001:db8::10]:5070;maddr=[2001:db8::20];transport=tcp")
        self.assertEqual((uri.host, uri.port), ("[2001:db8::10]", 5070))
        self.assertEqual(uri.param("maddr"), "[2001:db8::20]")
        contact = NameAddress.parse('"Caller" <sip:caller@[2001:db8::1]:5060>;expires=60')
        self.assertEqual(contact.uri.host_port, ("[2001:db8::1]", 5060))

    def test_unterminated_reference_refused(self):
        """
        RFC 5118 4.3/4.4-style damage: an IPv6 host with no brackets or half of them is a
        parse error, not a host name.
        """
        from wcs_twisted.sip.errors import RemoteProtocolError
        for text in ("sip:user@2001:db8::10", "sip:user@[2001:db8::10:5070"):
            self.assertRaises(RemoteProtocolError, SIPURI.parse, text)


class _Recorder:
    def __init__(self):
        self.sent = []

    def send(self, data, address):
        self.sent.append(address)


class DatagramFamiliesTests(SynchronousTestCase):
    """
    The "udp" sender of a dual-stack server.
    """

    def test_by_family(self):
        """
        IPv6 destinations leave by the IPv6 socket, IPv4 ones by the IPv4 socket; without an
        IPv6 socket everything goes to the IPv4 one.
        """
        four, six = _Recorder(), _Recorder()
        families = DatagramFamilies(four, six)
        families.send(b"x", SIPAddress("udp", "::1", 5060))
        families.send(b"x", SIPAddress("udp", "127.0.0.1", 5060))
        self.assertEqual([a.host for a in six.sent], ["::1"])
        self.assertEqual([a.host for a in four.sent], ["127.0.0.1"])
        DatagramFamilies(four).send(b"x", SIPAddress("udp", "::1", 5060))
        self.assertEqual(len(four.sent), 2)
