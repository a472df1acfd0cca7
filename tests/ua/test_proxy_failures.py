"""
Tests for L{wcs_twisted.ua.proxy} removing a binding whose contact never answers (Kamailio's
"unregister on failure"): a dead phone must not keep its binding for its full hour.
"""

from twisted.logger import capturedLogs

from tests.ua.test_proxy import DOMAIN, ProxyTestCase
from wcs_twisted.sip.timers import TimerValues


class UnregisterOnFailureTests(ProxyTestCase):
    """
    A request the proxy sends to a binding's contact that ends with no response at all (Timer
    B or F, or a transport error) removes that binding; bindings that answered anything stay.
    """

    timers = TimerValues(tc=20.0)

    def bob_bindings(self):
        return self.location.lookup(f"sip:bob@{DOMAIN}", self.clock.seconds())

    def silence_bob(self):
        self.network.drop = lambda data, source, destination: destination == self.bob.address

    def test_invite_timeout_removes_binding(self):
        """
        An INVITE to a silent contact times out (Timer B, 408 upstream); the binding goes, it
        is counted and logged, and the next call gets 480 at once instead of 32 s of silence.
        """
        self.silence_bob()
        with capturedLogs() as events:
            invite = self.alice.invite()
            self.network.run()
            self.clock.pump([0.5] * 65)
        self.assertEqual(invite.codes, [100, 408])
        self.assertEqual(self.bob_bindings(), [])
        self.assertEqual(self.proxy.statistics()["unregistered"], 1)
        self.assertTrue(any("got no response" in event.get("log_format", "")
                            for event in events))
        again = self.alice.invite(call_id="call-2")
        self.network.run()
        self.assertEqual(again.codes, [100, 480])

    def test_options_timeout_removes_binding(self):
        """
        A non-INVITE (OPTIONS, Timer F) to a silent contact removes it too.
        """
        self.silence_bob()
        self.alice.send(self.alice.build("OPTIONS", f"sip:bob@{DOMAIN}",
                                         f"<sip:bob@{DOMAIN}>", "opt-1"))
        self.network.run()
        self.clock.pump([0.5] * 70)
        self.assertEqual(self.bob_bindings(), [])
        self.assertEqual(self.proxy.unregistered, 1)

    def test_transport_error_removes_binding(self):
        """
        A transport error on the branch (RFC 3261 18.4, e.g. ICMP port unreachable) removes
        the binding as a timeout does.
        """
        self.silence_bob()
        self.alice.invite()
        self.network.run()
        branch = next(iter(self.proxy._contexts)).branches[0]
        branch.transaction_failed("transport error")
        self.assertEqual(self.bob_bindings(), [])

    def test_answering_contact_kept(self):
        """
        A contact that answered anything (here 180, then nothing until Timer C) is alive: its
        binding stays.
        """
        self.bob.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.clock.pump([1.0] * 60)
        self.network.run()
        self.assertEqual(invite.codes[-1], 408)
        self.assertEqual(len(self.bob_bindings()), 1)
        self.assertEqual(self.proxy.statistics()["unregistered"], 0)

    def test_refreshed_binding_kept(self):
        """
        A binding refreshed by a REGISTER while the request was unanswered speaks for itself:
        the failure of the request sent to the old one does not remove it.
        """
        self.silence_bob()
        self.alice.invite()
        self.network.run()
        self.network.drop = lambda data, source, destination: False
        refresh = self.bob.register()
        self.network.run()
        self.assertEqual(refresh.codes, [200])
        self.silence_bob()
        self.clock.pump([0.5] * 65)
        self.assertEqual(len(self.bob_bindings()), 1)

    def test_only_the_silent_fork_removed(self):
        """
        Forking to two devices of bob: only the silent one loses its binding.
        """
        from tests.ua.test_proxy import Phone

        bob2 = Phone(self.network, "10.0.0.4", "bob", 4)
        bob2.register()
        self.network.run()
        bob2.script["INVITE"] = [486]
        self.silence_bob()
        self.alice.invite()
        self.network.run()
        self.clock.pump([0.5] * 65)
        self.assertEqual([str(b.contact.uri) for b in self.bob_bindings()],
                         ["sip:bob@10.0.0.4:5060"])
