"""
Tests for what L{wcs_twisted.ua.proxy} refuses to do for an attacker, in memory: send as a
local user without her password (RFC 3261 22.3), or multiply a flood of requests for a silent
contact into retransmissions (bounded fan-out), or hold an unbounded number of requests.

Same set-up as L{tests.ua.test_proxy}: a proxy at 10.0.0.1 for example.test, alice (10.0.0.2)
and bob (10.0.0.3) registered; time moves only with the network's Clock.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from tests.ua.test_proxy import DOMAIN, RECORD_ROUTE, ProxyTestCase
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.auth import DigestAuthenticator, DigestChallenge, build_authorization
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.message import Request, parse_message
from wcs_twisted.ua.location import Binding
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.proxy_bounds import (
    LIVE_FACTOR, LIVE_WINDOW, MAX_UNANSWERED, ForwardingBounds)

SILENT = SIPAddress("udp", "10.0.0.9", 5060)  # no stack there: nothing ever answers


class AuthenticatingProxyTestCase(ProxyTestCase):
    """
    The proxy knows alice's and carol's passwords (sip_user.alice, sip_user.carol).
    """

    def setUp(self):
        super().setUp()
        self.core.routers.remove(self.proxy)
        self.proxy = Proxy(self.core, self.location, self.clock, self.registrar.serves,
                           users={"alice": "secret", "carol": "pw"}, timers=self.timers,
                           authenticator=DigestAuthenticator(DOMAIN, b"k" * 32))
        self.core.add_router(self.proxy)
        self.bob.script["MESSAGE"] = [200]
        self.bob.script["INVITE"] = [200]

    def message(self, from_user="alice", from_host=DOMAIN, credentials=None, call_id="m"):
        request = self.alice.build("MESSAGE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>",
                                   call_id, from_value=f"<sip:{from_user}@{from_host}>;tag=x")
        if credentials is not None:
            request.headers.add("Proxy-Authorization", credentials)
        exchange = self.alice.send(request)
        self.network.run()
        return exchange

    def answer(self, response, method="MESSAGE", uri=f"sip:bob@{DOMAIN}", user="alice",
               password="secret"):
        challenge = DigestChallenge.parse(response.headers.get_all("Proxy-Authenticate")[-1])
        return build_authorization(challenge, method, uri, user, password, cnonce="c0ffee")


class SpoofedSenderTests(AuthenticatingProxyTestCase):
    """
    RFC 3261 22.3: a request From a local user who has a password is proxied only with
    that user's credentials (Kamailio's proxy_authorize in front of its proxy).
    """

    def test_spoofed_message_challenged(self):
        """
        An unauthenticated MESSAGE saying From: alice gets 407 with a challenge for our realm;
        bob receives nothing (it used to be delivered).
        """
        exchange = self.message()
        self.assertEqual(exchange.codes, [407])
        challenges = [DigestChallenge.parse(value) for value in
                      exchange.final.headers.get_all("Proxy-Authenticate")]
        self.assertEqual({challenge.realm for challenge in challenges}, {DOMAIN})
        self.assertEqual(self.bob.requests, [])

    def test_spoofed_invite_challenged(self):
        """
        The same for an INVITE: 407, acknowledged, and no INVITE reaches bob.
        """
        invite = self.alice.send(self.alice.build(
            "INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "spoof",
            from_value=f"<sip:alice@{DOMAIN}>;tag=x"))
        self.network.run()
        self.assertEqual(invite.codes, [100, 407])
        self.assertEqual(self.bob.requests, [])
        self.assertEqual(len(self.proxy), 0)

    def test_credentials_accepted_and_consumed(self):
        """
        The challenge answered with alice's password: the MESSAGE reaches bob without our
        Proxy-Authorization (consumed), and bob's 200 comes back.
        """
        first = self.message()
        exchange = self.message(credentials=self.answer(first.final))
        self.assertEqual(exchange.codes, [200])
        received = self.bob.last("MESSAGE").request
        self.assertEqual(received.headers.get_all("Proxy-Authorization"), [])

    def test_invite_with_credentials_then_bye_not_challenged(self):
        """
        An authenticated INVITE is proxied; the in-dialog ACK and BYE (To tag, our Route)
        pass without credentials.
        """
        self.bob.script["BYE"] = [200]
        request = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "auth")
        first = self.alice.send(request)
        self.network.run()
        self.assertEqual(first.final.status_code, 407)
        retry = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "auth")
        retry.headers.add("Proxy-Authorization", self.answer(first.final, "INVITE"))
        invite = self.alice.send(retry)
        self.network.run()
        self.assertEqual(invite.final.status_code, 200)
        self.alice.ack(invite, invite.final)
        bye = self.alice.bye(invite, invite.final)
        self.network.run()
        self.assertEqual(len(self.bob.acks), 1)
        self.assertEqual(bye.codes, [200])

    def test_other_users_credentials_refused(self):
        """
        carol's valid credentials do not let her send as alice: 403.
        """
        first = self.message()
        exchange = self.message(credentials=self.answer(first.final, user="carol",
                                                        password="pw"))
        self.assertEqual(exchange.codes, [403])
        self.assertEqual(self.bob.requests, [])

    def test_wrong_password_refused(self):
        """
        A digest made with the wrong password gets 403, with one log line.
        """
        first = self.message()
        with capturedLogs() as logged:
            exchange = self.message(credentials=self.answer(first.final, password="guess"))
        self.assertEqual(exchange.codes, [403])
        self.assertEqual([event.get("log_failure") for event in logged], [None])
        self.assertEqual(self.bob.requests, [])

    def test_digest_for_another_uri_refused(self):
        """
        RFC 2617 3.2.2.5: credentials computed for another Request-URI (captured from another
        request) get 400.
        """
        first = self.message()
        exchange = self.message(credentials=self.answer(first.final,
                                                        uri=f"sip:carol@{DOMAIN}"))
        self.assertEqual(exchange.codes, [400])
        self.assertEqual(self.bob.requests, [])

    def test_senders_without_password_not_challenged(self):
        """
        Only local users with a password are challenged: a local user without one, and any
        user of another domain, are proxied as before.
        """
        self.assertEqual(self.message(from_user="dave", call_id="m1").codes, [200])
        self.assertEqual(self.message(from_host="elsewhere.test", call_id="m2").codes, [200])
        self.assertEqual(len(self.bob.requests), 2)

    def test_no_passwords_no_challenge(self):
        """
        users given as bare names (no passwords) challenge nobody: the default set-up.
        """
        self.core.routers.remove(self.proxy)
        self.core.add_router(Proxy(self.core, self.location, self.clock,
                                   self.registrar.serves, users={"alice"}))
        self.assertEqual(self.message().codes, [200])


class FanOutTests(ProxyTestCase):
    """
    A flood of requests for a contact that never answers cannot make us send it more than
    max_unanswered transactions' worth of retransmissions; the rest are answered 503.
    """

    def setUp(self):
        super().setUp()
        self.setUp_dave()

    def setUp_dave(self):
        """
        Bind dave, whose contact never answers.
        """
        self.location.update(Binding(
            aor=f"sip:dave@{DOMAIN}", contact=NameAddress.parse("<sip:dave@10.0.0.9>"),
            expires_at=3600, call_id="d", cseq=1, source=SILENT))

    def sent_to_silent(self):
        return [parse_message(data) for data, destination in self.stack.transports["udp"].sent
                if destination == SILENT]

    def flood(self, count, method="INVITE"):
        exchanges = []
        for n in range(count):
            exchanges.append(self.alice.send(self.alice.build(
                method, f"sip:dave@{DOMAIN}", f"<sip:dave@{DOMAIN}>", f"flood-{n}")))
        self.network.run()
        return exchanges

    def test_invite_flood_to_silent_contact_bounded(self):
        """
        200 INVITEs for a silent contact: only MAX_UNANSWERED are forwarded, the others get
        503 with Retry-After; over Timer B the contact receives at most 7 copies of each
        forwarded one (it used to receive all 200, retransmitted).
        """
        exchanges = self.flood(200)
        refused = [e for e in exchanges if e.final is not None and e.final.status_code == 503]
        self.assertEqual(len(refused), 200 - MAX_UNANSWERED)
        self.assertIsNotNone(refused[0].final.headers.get("Retry-After"))
        self.clock.pump([0.5] * 70)
        self.network.run()
        invites = [m for m in self.sent_to_silent() if isinstance(m, Request)]
        self.assertEqual(len({m.top_via.branch for m in invites}), MAX_UNANSWERED)
        self.assertLessEqual(len(invites), 7 * MAX_UNANSWERED)
        self.assertEqual(len(self.proxy), 0)

    def test_slots_free_after_timeout(self):
        """
        Once the silent transactions time out (Timer B), new requests are forwarded again.
        The timeouts also removed the silent binding (unregister on failure): dave registers
        again first.
        """
        self.flood(MAX_UNANSWERED + 1)
        self.clock.pump([0.5] * 70)
        self.network.run()
        self.assertEqual(self.location.lookup(f"sip:dave@{DOMAIN}", self.clock.seconds()), [])
        self.setUp_dave()
        [exchange] = self.flood(1)
        self.assertNotEqual(exchange.codes[-1:], [503])
        self.assertEqual(len({m.top_via.branch for m in self.sent_to_silent()
                              if isinstance(m, Request) and m.method == "INVITE"}),
                         MAX_UNANSWERED + 1)

    def test_cancelled_invites_still_count(self):
        """
        A CANCEL right after each INVITE does not free its slot: the cancelled INVITE keeps
        retransmitting until Timer B, so it still counts.
        """
        self.proxy.bounds.max_unanswered = 4
        for exchange in self.flood(4):
            self.alice.stack.cancel(exchange.key)
        self.network.run()
        [exchange] = self.flood(1)
        self.assertEqual(exchange.codes[-1], 503)

    def test_message_flood_bounded(self):
        """
        Non-INVITE requests (which retransmit up to 11 times) are bounded alike.
        """
        exchanges = self.flood(50, "MESSAGE")
        self.assertEqual(sum(1 for e in exchanges if e.codes == [503]), 50 - MAX_UNANSWERED)

    def test_refusals_logged_once(self):
        """
        A flood is one log line until the destination answers again, not one per request.
        """
        with capturedLogs() as logged:
            self.flood(MAX_UNANSWERED + 20)
        lines = [event for event in logged if "without any response" in event["log_format"]]
        self.assertEqual(len(lines), 1)

    def test_answering_destination_not_limited(self):
        """
        A contact that answers (bob's 100 Trying) frees its slot at once: 3 * MAX_UNANSWERED
        calls one after the other all reach bob.
        """
        self.bob.script["INVITE"] = [180]
        for n in range(3 * MAX_UNANSWERED):
            self.alice.invite(call_id=f"c{n}")
            self.network.run()
        self.assertEqual(len(self.bob.requests), 3 * MAX_UNANSWERED)

    def in_dialog(self, method, call_id="dialog-1"):
        """
        C{method} within a dialog with dave, routed through us (his To tag, our Route).
        """
        return self.alice.send(self.alice.build(
            method, "sip:dave@10.0.0.9", f"<sip:dave@{DOMAIN}>;tag=dave-tag", call_id,
            routes=[RECORD_ROUTE]))

    def test_bye_passes_destination_at_its_bound(self):
        """
        With dave at his bound of unanswered requests (new INVITEs get 503), a BYE, a
        re-INVITE and an INFO in a dialog with him are still forwarded: refusing them would
        leave calls up at both ends.  They count towards the bound all the same.
        """
        self.flood(MAX_UNANSWERED)
        [refused] = self.flood(1)
        self.assertEqual(refused.codes[-1], 503)
        exchanges = [self.in_dialog(method, f"dialog-{method}")
                     for method in ("BYE", "INVITE", "INFO")]
        self.network.run()
        self.assertEqual([e.codes for e in exchanges], [[], [100], []])
        forwarded = {(m.method, m.call_id) for m in self.sent_to_silent()
                     if isinstance(m, Request)}
        self.assertTrue({("BYE", "dialog-BYE"), ("INVITE", "dialog-INVITE"),
                         ("INFO", "dialog-INFO")} <= forwarded)
        [refused] = self.flood(1)
        self.assertEqual(refused.codes[-1], 503)

    def test_in_dialog_requests_bounded_at_twice_max_pending(self):
        """
        Forged in-dialog requests cannot grow the proxy without bound: past twice max_pending
        requests in progress they too are answered 503.
        """
        self.proxy.bounds.max_pending = 2
        exchanges = [self.in_dialog("INFO", f"forged-{n}") for n in range(5)]
        self.network.run()
        self.assertEqual([e.codes for e in exchanges], [[], [], [], [], [503]])

    def test_pending_requests_bounded(self):
        """
        Beyond max_pending proxied requests in progress (ringing calls here), 503.
        """
        self.proxy.bounds.max_pending = 3
        self.bob.script["INVITE"] = [180]
        calls = [self.alice.invite(call_id=f"p{n}") for n in range(4)]
        self.network.run()
        self.assertEqual([call.codes[-1] for call in calls], [180, 180, 180, 503])
        self.assertEqual(len(self.bob.requests), 3)


class LiveDestinationTests(ProxyTestCase):
    """
    A destination that answered lately is alive and only slow for a moment (a trunk taking every
    call): it may owe LIVE_FACTOR times more answers before new requests are refused, so a
    scheduling hiccup at 500 calls/s does not fail calls to a healthy peer (the SIP ladder bench
    saw 11 of 4,000 fail that way); one that never answered keeps the strict bound.
    """

    def test_bob_heard_lately_takes_a_burst(self):
        """
        bob answered one INVITE (180); then, while he is momentarily silent, a burst of 3 *
        MAX_UNANSWERED INVITEs all reach him.
        """
        self.bob.script["INVITE"] = [180]
        self.alice.invite(call_id="first")
        self.network.run()
        self.bob.script["INVITE"] = []
        burst = [self.alice.invite(call_id=f"burst-{n}") for n in range(3 * MAX_UNANSWERED)]
        self.network.run()
        self.assertEqual([call.codes for call in burst if 503 in call.codes], [])
        self.assertEqual(len(self.bob.requests), 1 + 3 * MAX_UNANSWERED)

    def test_bound_for_a_live_destination_is_still_a_bound(self):
        """
        Even an alive destination is refused past LIVE_FACTOR * max_unanswered unanswered.
        """
        self.proxy.bounds.max_unanswered = 2
        self.bob.script["INVITE"] = [180]
        self.alice.invite(call_id="first")
        self.network.run()
        self.bob.script["INVITE"] = []
        calls = [self.alice.invite(call_id=f"b{n}") for n in range(2 * LIVE_FACTOR + 1)]
        self.network.run()
        self.assertEqual([call.codes[-1:] for call in calls].count([503]), 1)
        self.assertEqual(calls[-1].codes[-1], 503)

    def test_alive_only_within_the_window(self):
        """
        The bounds themselves: a destination heard LIVE_WINDOW ago or more, or only failed
        (a timeout is not an answer), is back to max_unanswered.
        """
        clock = Clock()
        bounds = ForwardingBounds(max_pending=100, max_unanswered=2, clock=clock)
        target = [("sip:bob@example.com", SILENT)]
        for _ in range(3):
            bounds.started(SILENT)
        bounds.answered(SILENT, heard=False)
        self.assertEqual(bounds.admit(0, target), ([], "Destination not answering"))
        bounds.started(SILENT)
        bounds.answered(SILENT, heard=True)
        self.assertEqual(bounds.admit(0, target), (target, None))
        clock.advance(LIVE_WINDOW)
        self.assertEqual(bounds.admit(0, target), ([], "Destination not answering"))
