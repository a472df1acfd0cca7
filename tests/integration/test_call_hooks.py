"""
The call hooks WCS names incoming invocations (OnCallEvent, OnTransferEvent) from the real server
to a real HTTP backend, with baresip and the WCS test client as the peers: the backend hears
them signed, may change the call (restPolicy OVERWRITE) or refuse it (restOnError FAIL).
"""

from __future__ import annotations

import json

from twisted.internet import defer, reactor
from twisted.web.server import Site

from tests.integration.test_calls import CallTestCase
from tests.integration.test_hooks_server import SECRET, Backend


class CallBackend(Backend):
    """
    The signing-checking backend of test_hooks_server, with per-method answers.

    @ivar answers: method -> (HTTP status, JSON object merged into the echoed body).
    """

    def __init__(self):
        super().__init__()
        self.answers = {}

    def render_POST(self, request):
        echoed = super().render_POST(request)
        method, fields, _ = self.received[-1]
        status, changes = self.answers.get(method, (200, {}))
        request.setResponseCode(status)
        return json.dumps(dict(fields, **changes)).encode() if status == 200 else echoed

    def bodies(self, method):
        return [fields for name, fields, _ in self.received if name == method]

    async def wait_for(self, method):
        """
        The bodies of C{method} once at least one has arrived (events are sent in the
        background, after the client already heard).
        """
        while not self.bodies(method):
            await self.arrived.get()
        return self.bodies(method)


#: The connect answer that makes the session's incoming invocations decide.
DECIDING = {"restClientConfig": {
    "OnCallEvent": {"restPolicy": "OVERWRITE", "restOverwrite": "visibleName",
                    "restOnError": "FAIL"},
    "OnTransferEvent": {"restOnError": "FAIL"}}}


class CallHookTests(CallTestCase):
    """
    A local-mode server whose defaultApp has a real backend that decides incoming invocations.
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.backend = CallBackend()
        self.backend.answers["connect"] = (200, DECIDING)
        port = reactor.listenTCP(0, Site(self.backend), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.settings_overrides = {
            "rest_hook_urls": {"defaultApp": f"http://127.0.0.1:{port.getHost().port}/app"},
            "rest_hook_secrets": {"defaultApp": SECRET}}
        yield CallTestCase.setUp(self)

    async def test_incoming_call_changed_by_the_backend(self):
        """
        baresip calls alice: the backend hears OnCallEvent (signed, incoming:true) before the
        browser rings, and the visibleName it answers is what the browser shows.
        """
        self.backend.answers["OnCallEvent"] = (200, {"visibleName": "Bob from the CRM"})
        alice = await self.connect_local("alice")
        bob = await self.baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        call_id = await alice.wait_incoming_call(timeout=10)
        [offered] = await self.backend.wait_for("OnCallEvent")
        self.assertEqual((offered["incoming"], offered["caller"], offered["callee"]),
                         (True, "bob", "alice"))
        self.assertTrue(all(valid for _, _, valid in self.backend.received))
        self.assertEqual(alice._call_for(call_id).visible_name, "Bob from the CRM")
        await alice.answer(call_id, tone_hz=440)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH")
        self.assertEqual(alice.violations, [])

    async def test_incoming_call_refused_by_the_backend(self):
        """
        OnCallEvent answered 403 with restOnError FAIL: baresip's call is refused with 403
        and the browser never hears of it.
        """
        self.backend.answers["OnCallEvent"] = (403, {})
        alice = await self.connect_local("alice")
        bob = await self.baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        closed = await bob.wait_event("CALL_CLOSED", timeout=10)
        self.assertIn("403", json.dumps(closed))
        self.assertEqual([m for m in alice.messages if m["message"] == "notifyIncomingCall"], [])
        self.assertEqual(len(self.server.calls), 0)

    async def test_transfer_request_heard_and_refused(self):
        """
        alice transfers bob (browsers in local mode): bob's leg gets the REFER, and the backend
        hears OnTransferEvent (the call object, status PENDING, the target) for bob's call.
        Refused (403, restOnError FAIL), the REFER is answered 603 and alice hears FAILED.
        """
        self.backend.answers["OnTransferEvent"] = (403, {})
        alice = await self.connect_local("alice")
        bob = await self.connect_local("bob")
        await self.connect_local("carol")
        call_id = await alice.call("bob", tone_hz=440)
        bob_call = await bob.wait_incoming_call(timeout=10)
        await bob.answer(bob_call, tone_hz=1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await alice.transfer(call_id, "carol")
        await alice.wait_transfer_status(call_id, "FAILED", timeout=10)
        [request] = self.backend.bodies("OnTransferEvent")
        self.assertEqual((request["callId"], request["status"]), (bob_call, "PENDING"))
        self.assertTrue(request["target"].startswith("sip:carol@"), request["target"])
        self.assertEqual({call.status.value for call in self.server.calls}, {"ESTABLISHED"})
        failed = [fields for fields in await self.backend.wait_for("TransferStatusEvent")
                  if fields["callId"] == call_id]
        self.assertEqual([fields["status"] for fields in failed], ["FAILED"])
        self.assertEqual(alice.violations + bob.violations, [])
