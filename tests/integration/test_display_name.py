"""
A WCS client's visibleName reaches a real SIP phone as a valid From display name: the real
server, the WCS test client (aiortc as the browser) and baresip registered at the built-in
registrar, all on 127.0.0.1.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_display_name
"""

from __future__ import annotations

from tests.integration.test_calls import CallTestCase
from wcs_twisted.sip.message import Response, parse_message
from wcs_twisted.transport.trace import IN

#: RFC 3261 25.1: both characters must travel as quoted-pairs inside the quoted-string.
NAME = 'He said "hi" \\o/'


class DisplayNameTests(CallTestCase):
    """
    Client -> wcs -> baresip with a display name that needs quoted-pairs.
    """

    def setUp(self):
        d = super().setUp()
        d.addCallback(self._trace)
        return d

    def _trace(self, _):
        self.traced: list[bytes] = []
        self.server.sip_stack.trace.observers.append(
            lambda direction, data, address: direction == IN and self.traced.append(data))

    def invite_responses(self) -> list[Response]:
        """
        Every response to our INVITE that baresip sent, parsed.
        """
        messages = [parse_message(data) for data in self.traced
                    if data.startswith(b"SIP/2.0 ")]
        return [m for m in messages if m.cseq.method == "INVITE"]

    async def test_quoted_visible_name_reaches_baresip(self):
        """
        baresip answers the INVITE (180/200, no 400), the call gets ESTABLISHED, and the From
        that baresip echoes back in its answers parses to the visibleName the client gave.
        """
        bob = await self.baresip("bob", 1000)
        alice = self.client("alice")
        await alice.connect(sipLogin="alice", sipAuthenticationName="alice", sipPassword="x",
                            sipDomain="127.0.0.1", sipOutboundProxy="127.0.0.1", sipPort="0",
                            sipRegisterRequired=False, visibleName=NAME)
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"], visible_name=NAME)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        responses = self.invite_responses()
        statuses = [r.status_code for r in responses]
        self.assertIn(200, statuses)
        self.assertNotIn(400, statuses)
        self.assertEqual({r.from_.display_name for r in responses}, {NAME})
        await alice.hangup(call_id)
        await alice.wait_status(call_id, "FINISH")
        self.assertEqual(alice.violations, [])
