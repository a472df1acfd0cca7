"""
Tests for L{wcs_twisted.transport.stack.SIPStack}: two stacks on an in-memory network.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IClientTransactionOwner
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.sip.address import SIPAddress


@implementer(IClientTransactionOwner)
class RecordingOwner:
    """
    Records what comes back for a request.
    """

    def __init__(self):
        self.responses = []
        self.failures = []

    def response_received(self, response):
        self.responses.append(response)

    def transaction_failed(self, reason):
        self.failures.append(reason)


def options_request(stack, target_host, branch):
    host, port = stack.local_address("udp")
    headers = Headers([
        ("Via", f"SIP/2.0/UDP {host}:{port};branch={branch};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:a@{host}>;tag=abc"),
        ("To", f"<sip:b@{target_host}>"),
        ("Call-ID", "call-1@test"),
        ("CSeq", "1 OPTIONS"),
    ])
    return Request("OPTIONS", SIPURI.parse(f"sip:b@{target_host}"), headers)


class StackTests(SynchronousTestCase):
    """
    The stack drives transactions over a (memory) transport with one timer.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.a, self.core_a = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.b, self.core_b = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.b_address = SIPAddress("udp", "10.0.0.2", 5060)

    def test_options_round_trip(self):
        """
        An OPTIONS is answered 200 with Allow by the UA core (RFC 3261 11.2).
        """
        owner = RecordingOwner()
        self.core_a.send_request(options_request(self.a, "10.0.0.2", self.a.generate_branch()),
                                 self.b_address, owner)
        self.network.run()
        self.assertEqual([r.status_code for r in owner.responses], [200])
        self.assertIn("INVITE", owner.responses[0].headers.get("Allow"))

    def test_rport_and_received_stamped(self):
        """
        RFC 3581: the server fills rport and received in the top Via it answers with.
        """
        request = options_request(self.a, "10.0.0.2", self.a.generate_branch())
        request.headers.set("Via", "SIP/2.0/UDP 192.0.2.99:5999;branch="
                            + self.a.generate_branch() + ";rport")
        owner = RecordingOwner()
        # The response goes back to the real source, so A still gets it.
        self.core_a.send_request(request, self.b_address, owner)
        self.network.run()
        via = owner.responses[0].top_via
        self.assertEqual((via.received, via.rport), ("10.0.0.1", 5060))

    def test_retransmission_under_loss(self):
        """
        RFC 3261 17.1.2.2: a lost request is retransmitted by Timer E on the stack's one timer.
        """
        lost = []

        def drop_first(data, source, destination):
            if not lost:
                lost.append(data)
                return True
            return False

        self.network.drop = drop_first
        owner = RecordingOwner()
        self.core_a.send_request(options_request(self.a, "10.0.0.2", self.a.generate_branch()),
                                 self.b_address, owner)
        self.network.run()
        self.assertEqual(owner.responses, [])
        self.network.clock.advance(0.5)
        self.network.run()
        self.assertEqual([r.status_code for r in owner.responses], [200])

    def test_timeout_reaches_owner(self):
        """
        RFC 3261 17.1.2.2: with no answer, Timer F (64*T1) fails the transaction.
        """
        self.network.drop = lambda data, source, destination: True
        owner = RecordingOwner()
        self.core_a.send_request(options_request(self.a, "10.0.0.2", self.a.generate_branch()),
                                 self.b_address, owner)
        self.network.clock.pump([0.5] * 63)
        self.assertEqual(owner.failures, [])
        self.network.clock.pump([0.5] * 2)
        self.assertEqual(owner.failures, ["timeout"])

    def test_malformed_request_gets_400(self):
        """
        A request with a broken CSeq is answered 400 statelessly, and counted.
        """
        bad = []
        self.b._on_bad_message = bad.append
        raw = (b"OPTIONS sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n"
               b"From: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:b@10.0.0.2>\r\nCall-ID: c\r\n"
               b"CSeq: notanumber OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        self.b.data_received(raw, SIPAddress("udp", "10.0.0.1", 5060))
        sent = self.b.transports["udp"].sent
        self.assertEqual(len(sent), 1)
        self.assertTrue(sent[0][0].startswith(b"SIP/2.0 400 "), sent[0][0][:40])
        self.assertIn(b"\r\nCall-ID: c\r\n", sent[0][0])
        self.assertEqual(bad, ["udp"])

    def test_garbage_is_dropped(self):
        """
        Bytes that are not SIP are dropped without an answer.
        """
        self.b.data_received(b"\x16\x03\x01 hello", SIPAddress("udp", "10.0.0.1", 5060))
        self.assertEqual(self.b.transports["udp"].sent, [])

    def test_unknown_method_gets_405(self):
        """
        RFC 3261 8.2.1: a method the UAS does not know gets 405 with Allow.
        """
        request = options_request(self.a, "10.0.0.2", self.a.generate_branch())
        request.method = "FOO"
        request.headers.set("CSeq", "1 FOO")
        owner = RecordingOwner()
        self.core_a.send_request(request, self.b_address, owner)
        self.network.run()
        self.assertEqual(owner.responses[0].status_code, 405)

    def test_stop_inside_an_event_leaves_no_timer(self):
        """
        A stack stopped by its user while it delivers an event (a service shutting down when
        the last response arrives) arms no timer afterwards, though Timer K is due (17.1.2.2).
        """
        class StoppingOwner(RecordingOwner):
            def response_received(owner, response):
                super().response_received(response)
                self.a.stop()

        owner = StoppingOwner()
        self.core_a.send_request(options_request(self.a, "10.0.0.2", self.a.generate_branch()),
                                 self.b_address, owner)
        self.network.run()
        self.assertEqual([r.status_code for r in owner.responses], [200])
        self.assertIsNotNone(self.a.layer.get_timer())  # Timer K is still pending in the layer
        self.assertEqual([call for call in self.network.clock.getDelayedCalls()
                          if call.func == self.a._timer_fired], [])

    def test_names_reach_a_sender_that_resolves_them(self):
        """
        A sender with C{resolves_names} (TLS: the certificate is checked against the name) gets
        the host name as the transaction layer addressed it, not resolved by the stack.
        """
        class NamingSender:
            resolves_names = True

            def __init__(self):
                self.sent = []

            def send(self, data, address):
                self.sent.append(address)

        sender = NamingSender()
        self.a.add_transport("tls", sender, 5061)
        target = SIPAddress("tls", "sip.example.com", 5061)
        self.core_a.send_request(options_request(self.a, "sip.example.com",
                                                 self.a.generate_branch()),
                                 target, RecordingOwner())
        self.assertEqual(sender.sent, [target])
