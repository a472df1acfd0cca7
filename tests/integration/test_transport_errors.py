"""
RFC 3261 18.4 / 17.1.4 on a real server: a destination that answers with ICMP port
unreachable ends the call's INVITE transaction at once, not after Timer B (32 s).
"""

import socket

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.integration.loopback_server import start_loopback_server


def closed_udp_port() -> int:
    """
    A UDP port on 127.0.0.1 that nothing listens on (bound once, then closed).
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class PortUnreachableTests(TestCase):
    """
    A REST call to a closed UDP port fails within seconds, with the transport error's status.
    """

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_loopback_server(self)

    @defer.inlineCallbacks
    def test_rest_call_to_a_closed_port_fails_at_once(self):
        """
        The INVITE to 127.0.0.1:<closed> draws ICMP port unreachable; the call is FAILED well
        before Timer B (the wait below gives up after 5 s; Timer B would take 32 s).
        """
        port = closed_udp_port()
        call = self.server.calls.start_rest_call({
            "callId": "icmp1", "callee": f"bob@127.0.0.1:{port}", "sipLogin": "rest",
            "sipDomain": "127.0.0.1", "sipPort": str(port), "hasAudio": "true",
            "hasVideo": "false"})
        for _ in range(50):
            if call.status.released:
                break
            yield deferLater(reactor, 0.1, lambda: None)
        self.assertTrue(call.status.released, f"still {call.status.value} after 5 s")
        self.assertEqual(call.status.value, "FAILED")
        self.assertEqual(call.to_wcs()["sipStatus"], 503)
