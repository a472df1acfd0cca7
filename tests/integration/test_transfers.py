"""
Transfers with real peers: the order of notifyTransferEvent (spec 9.6), attended transfer
(REFER with Replaces, RFC 3891 / RFC 5589) both ways.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_transfers
"""

from __future__ import annotations

from tests.integration.test_calls import CallTestCase


class BlindTransferOrderTests(CallTestCase):
    """
    The client sees ACCEPTED before the NOTIFY-derived statuses, whatever order SIP brings them.
    """

    async def test_baresip_transferee_order(self):
        """
        alice (browser) transfers baresip bob to baresip carol: ACCEPTED, TRYING, COMPLETED.
        The REFER and its 202 cross our own record-routing proxy while bob's first NOTIFY
        comes straight back, so on the wire the NOTIFY arrives first.
        """
        bob = await self.baresip("bob", 1000)
        carol = await self.baresip("carol", 700)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        await alice.hold_for_transfer(call_id)
        await alice.wait_status(call_id, "HOLD")
        await alice.transfer(call_id, "carol")
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.wait_transfer_status(call_id, "COMPLETED", timeout=10)
        await alice.wait_status(call_id, "FINISH", timeout=10)
        statuses = alice._call_for(call_id).transfer_statuses
        self.assertEqual(statuses, ["ACCEPTED", "TRYING", "COMPLETED"])
