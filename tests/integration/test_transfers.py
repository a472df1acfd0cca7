"""
Transfers with real peers: the order of notifyTransferEvent (spec 9.6), attended transfer
(REFER with Replaces, RFC 3891 / RFC 5589) both ways.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_transfers
"""

from __future__ import annotations

from tests.integration import audio
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
        await self.baresip("bob", 1000)
        carol = await self.baresip("carol", 700)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await alice.transfer(call_id, "carol")
        await alice.wait_status(call_id, "FINISH", timeout=10)
        self.assertEqual(alice._call_for(call_id).transfer_statuses,
                         ["ACCEPTED", "TRYING", "COMPLETED"])
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)


class AttendedTransferTests(CallTestCase):
    """
    Attended transfer (RFC 5589 7): the client's C{transfer} whose target is the callId of its
    other call REFERs with Replaces; the transferee dials the target with Replaces, and the
    target's leg is replaced in place.
    """

    async def test_browser_transfers_one_call_to_the_other(self):
        """
        alice (browser) talks to bob and to carol (browsers in local mode), then transfers bob
        to her call with carol: bob's leg honours the REFER with an INVITE carrying Replaces,
        carol's call takes that leg without a new negotiation, both of alice's calls finish,
        and bob and carol hear each other.
        """
        alice = await self.connect_local("alice")
        bob = await self.connect_local("bob")
        carol = await self.connect_local("carol")
        to_bob = await alice.call("bob", tone_hz=440)
        bob_call = await bob.wait_incoming_call(timeout=10)
        await bob.answer(bob_call, tone_hz=1000)
        await alice.wait_status(to_bob, "ESTABLISHED", timeout=10)
        await alice.hold_for_transfer(to_bob)
        await alice.wait_status(to_bob, "HOLD")
        to_carol = await alice.call("carol", tone_hz=440)
        carol_call = await carol.wait_incoming_call(timeout=10)
        await carol.answer(carol_call, tone_hz=700)
        await alice.wait_status(to_carol, "ESTABLISHED", timeout=10)
        await alice.transfer(to_bob, to_carol)
        await alice.wait_transfer_status(to_bob, "COMPLETED", timeout=10)
        await alice.wait_status(to_bob, "FINISH", timeout=10)
        await alice.wait_status(to_carol, "FINISH", timeout=10)
        self.assertEqual(alice._call_for(to_bob).transfer_statuses,
                         ["ACCEPTED", "TRYING", "COMPLETED"])
        self.assertEqual(len([m for m in carol.messages if m["message"] == "notifyIncomingCall"]),
                         1, "carol's call was replaced, not rung again")
        heard = bob._session_for(bob_call).recorder.duration
        path = await bob.wait_audio(bob_call, seconds=heard + 1.5, timeout=10)
        measured = audio.dominant_frequency(path, start=heard + 0.5, seconds=1.0)
        self.assertLess(abs(measured - 700), 10, f"bob hears {measured} Hz after the transfer")
        heard = carol._session_for(carol_call).recorder.duration
        path = await carol.wait_audio(carol_call, seconds=heard + 1.5, timeout=10)
        measured = audio.dominant_frequency(path, start=heard + 0.5, seconds=1.0)
        self.assertLess(abs(measured - 1000), 10, f"carol hears {measured} Hz after the transfer")
        self.assertEqual(sorted(call.status.value for call in self.server.calls),
                         ["ESTABLISHED", "ESTABLISHED"])
        self.assertEqual(alice.violations + bob.violations + carol.violations, [])
