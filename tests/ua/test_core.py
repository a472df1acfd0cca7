"""
Tests for L{wcs_twisted.ua.core.UserAgentCore}: how requests are routed and refused.
"""

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.transport.test_stack import RecordingOwner, options_request
from wcs_twisted.interfaces import IRequestRouter
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack


@implementer(IRequestRouter)
class MessageTaker:
    """
    Takes MESSAGE requests and answers 202.
    """

    def __init__(self, core):
        self.core = core
        self.taken = []

    def accept_request(self, event):
        if event.request.method != "MESSAGE":
            return False
        self.taken.append(event.request)
        self.core.respond(event.transaction_key,
                          event.request.create_response(202, to_tag=self.core.new_tag()))
        return True


class UserAgentCoreTests(SynchronousTestCase):
    """
    Routing and the message-level checks of RFC 3261 8.2.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.a, self.core_a = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.b, self.core_b = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.taker = MessageTaker(self.core_b)
        self.core_b.add_router(self.taker)

    def send(self, request):
        owner = RecordingOwner()
        self.core_a.send_request(request, SIPAddress("udp", "10.0.0.2", 5060), owner)
        self.network.run()
        return owner

    def request(self, method):
        request = options_request(self.a, "10.0.0.2", self.a.generate_branch())
        request.method = method
        request.headers.set("CSeq", f"1 {method}")
        return request

    def test_router_takes_request(self):
        """
        A router that accepts a request answers it; nobody else does.
        """
        owner = self.send(self.request("MESSAGE"))
        self.assertEqual([r.status_code for r in owner.responses], [202])
        self.assertEqual(len(self.taker.taken), 1)

    def test_unrouted_known_method_is_404(self):
        """
        An INVITE nobody takes is 404 (no such user here).
        """
        owner = self.send(self.request("INVITE"))
        self.assertEqual(owner.responses[-1].status_code, 404)

    def test_in_dialog_without_dialog_is_481(self):
        """
        RFC 3261 12.2.2: a request with a To tag for no dialog gets 481.
        """
        request = self.request("BYE")
        request.headers.set("To", "<sip:b@10.0.0.2>;tag=nosuchdialog")
        owner = self.send(request)
        self.assertEqual(owner.responses[-1].status_code, 481)

    def test_unsupported_require_is_420(self):
        """
        RFC 3261 8.2.2.3: Require of an extension we lack gets 420 with Unsupported listing
        only those (100rel and timer are supported).
        """
        request = self.request("OPTIONS")
        request.headers.add("Require", "100rel, foo, timer, bar")
        owner = self.send(request)
        response = owner.responses[-1]
        self.assertEqual(response.status_code, 420)
        self.assertEqual(response.headers.get_all("Unsupported"), ["foo", "bar"])

    def test_ack_without_to_dropped_quietly(self):
        """
        An ACK without To (no answer is possible) is dropped with one log line, not a
        critical traceback per datagram (log amplification).
        """
        text = (b"ACK sip:b@10.0.0.2 SIP/2.0\r\n"
                b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnoto\r\n"
                b"From: <sip:a@10.0.0.1>;tag=a\r\nCall-ID: no-to\r\nCSeq: 1 ACK\r\n"
                b"Content-Length: 0\r\n\r\n")
        with capturedLogs() as logged:
            for _ in range(3):
                self.b.data_received(text, SIPAddress("udp", "10.0.0.1", 5060))
        self.assertEqual([event.get("log_failure") for event in logged], [None] * 3)
        self.assertTrue(all(event["log_level"] is LogLevel.info for event in logged))

    def test_late_header_error_answered_400(self):
        """
        A router that finds a malformed header only when it reads it (RemoteProtocolError)
        makes the core answer 400 with one log line, not a traceback.
        """

        @implementer(IRequestRouter)
        class Strict:
            def accept_request(self, event):
                raise RemoteProtocolError("malformed Refer-To", 400)

        self.core_b.routers.insert(0, Strict())
        with capturedLogs() as logged:
            owner = self.send(self.request("MESSAGE"))
        self.assertEqual([r.status_code for r in owner.responses], [400])
        self.assertEqual(owner.responses[0].reason, "malformed Refer-To")
        self.assertEqual([event.get("log_failure") for event in logged], [None])
