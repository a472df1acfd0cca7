"""
Tests for L{wcs_twisted.gateway.call_policy}, and for the call table enforcing it: who may call
where, local logins with credentials, caps, and every set-up failure giving back its media.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_call import BROWSER_OFFER, PEER_ANSWER, CallTestMixin
from tests.gateway.test_sessions import RecordingConnection
from wcs_twisted.errors import DomainError, InvalidField, MediaError
from wcs_twisted.gateway.call_policy import (
    CallPolicy,
    CallRefused,
    Destination,
    LoginRefused,
    matches,
)
from wcs_twisted.gateway.call_table import CallSettings, CallTable


class Session:
    """
    The session attributes the policy reads.
    """

    def __init__(self, approved=False, proven=False, registered=False, address="192.0.2.1"):
        self.approved_by_backend = approved
        self.credentials_proven = proven
        self.registered = registered
        self.address = address


FOREIGN = [Destination("carrier.example.com", 5060)]


class PolicyTests(SynchronousTestCase):
    """
    The decision table of L{CallPolicy.check_call} and L{CallPolicy.login_proven}.
    """

    def test_patterns(self):
        """
        host matches any port, host:port only that port (5060 when unstated), wildcards glob.
        """
        self.assertTrue(matches(["carrier.example.com"], FOREIGN[0]))
        self.assertTrue(matches(["*.example.com:5060"], FOREIGN[0]))
        self.assertTrue(matches(["10.0.0.5:5060"], Destination("10.0.0.5", None)))
        self.assertFalse(matches(["10.0.0.5:5070"], Destination("10.0.0.5", None)))
        self.assertFalse(matches(["example.com"], FOREIGN[0]))

    def test_loopback_default_is_open(self):
        """
        Not exposed, nothing configured: anyone may call anywhere (only local clients reach us).
        """
        CallPolicy().check_call(Session(), FOREIGN, False)

    def test_exposed_default(self):
        """
        Exposed: anonymous sessions call local users only; a vouched session without a
        backend or allow-list still may not leave; a backend-approved one may.
        """
        policy = CallPolicy(exposed=True)
        policy.check_call(Session(), [], False)
        error = self.assertRaises(CallRefused, policy.check_call, Session(), FOREIGN, False)
        self.assertIn("call_anonymous", error.info)
        error = self.assertRaises(CallRefused, policy.check_call, Session(proven=True),
                                  FOREIGN, False)
        self.assertIn("call_allowed_destinations", error.info)
        policy.check_call(Session(approved=True), FOREIGN, False)
        policy.check_call(Session(registered=True, approved=True), FOREIGN, True, FOREIGN)

    def test_registration_vouches_only_at_an_allowed_registrar(self):
        """
        A session registered at a registrar of its own choosing (anyone can run one) is still
        anonymous on an exposed server; registered at an allow-listed registrar, or at ours,
        it is vouched for.
        """
        evil = [Destination("evil.test", 5060)]
        exposed = CallPolicy(exposed=True)
        error = self.assertRaises(CallRefused, exposed.check_call, Session(registered=True),
                                  evil, True, evil)
        self.assertIn("call_anonymous", error.info)
        self.assertRaises(CallRefused, exposed.check_call, Session(registered=True),
                          FOREIGN, True, None)
        listed = CallPolicy(exposed=True, allowed_destinations=("*.example.com",))
        listed.check_call(Session(registered=True), FOREIGN, True, FOREIGN)
        error = self.assertRaises(CallRefused, listed.check_call, Session(registered=True),
                                  FOREIGN, True, evil)
        self.assertIn("call_anonymous", error.info)
        none = CallPolicy(exposed=True, anonymous_calls="none")
        none.check_call(Session(registered=True), [], False, [])

    def test_check_registration(self):
        """
        Registering upstream is allowed where a vouched-for session could call: at this
        server always; elsewhere on a loopback server, at allow-listed registrars, or for
        backend-approved sessions; an anonymous one on an exposed server is refused.
        """
        evil = [Destination("evil.test", 5060)]
        CallPolicy(exposed=True).check_registration(Session(), [])
        CallPolicy().check_registration(Session(), evil)
        CallPolicy(exposed=True).check_registration(Session(approved=True), evil)
        error = self.assertRaises(CallRefused, CallPolicy(exposed=True).check_registration,
                                  Session(), evil)
        self.assertIn("Registering at evil.test:5060", error.info)
        listed = CallPolicy(exposed=True, allowed_destinations=("*.example.com",))
        listed.check_registration(Session(), FOREIGN)
        error = self.assertRaises(CallRefused, listed.check_registration,
                                  Session(approved=True), evil)
        self.assertIn("call_allowed_destinations", error.info)

    def test_allow_list_binds_everyone(self):
        """
        With an allow-list every foreign hop must match it, even for approved sessions.
        """
        policy = CallPolicy(exposed=True, allowed_destinations=("*.example.com",))
        policy.check_call(Session(approved=True), FOREIGN, False)
        self.assertRaises(CallRefused, policy.check_call, Session(approved=True),
                          FOREIGN + [Destination("evil.test", None)], False)
        self.assertRaises(CallRefused, policy.check_call, Session(), FOREIGN, False)
        CallPolicy(allowed_destinations=("*.example.com",), anonymous_calls="any").check_call(
            Session(), FOREIGN, False)

    def test_anonymous_none(self):
        """
        call_anonymous=none: anonymous sessions may not even call local users.
        """
        policy = CallPolicy(anonymous_calls="none")
        self.assertRaises(CallRefused, policy.check_call, Session(), [], False)
        policy.check_call(Session(proven=True), [], False)

    def test_bad_anonymous_value(self):
        """
        An unknown anonymous policy is a configuration error.
        """
        self.assertRaises(ValueError, CallPolicy, anonymous_calls="some")

    def test_login_proven(self):
        """
        No credentials: nothing proven; right password: proven; wrong or missing: refused.
        """
        policy = CallPolicy(local_users={"alice": "secret"})
        self.assertFalse(policy.login_proven("bob", "bob", ""))
        self.assertTrue(policy.login_proven("alice", "alice", "secret"))
        self.assertRaises(LoginRefused, policy.login_proven, "alice", "alice", "")
        self.assertRaises(LoginRefused, policy.login_proven, "alice", "alice", "guess")
        self.assertRaises(LoginRefused, policy.login_proven, "alice", "mallory", "secret")


class CallTablePolicyTests(CallTestMixin, SynchronousTestCase):
    """
    The call table applies the policy before any port is taken.
    """

    def use(self, **policy):
        self.calls.settings = CallSettings(local_domains=("10.0.0.1",),
                                           policy=CallPolicy(**policy))

    def test_exposed_refuses_foreign_call(self):
        """
        An anonymous session calling the phone at 10.0.0.2 on an exposed server: refused, no
        media session, no INVITE.
        """
        self.use(exposed=True)
        connection, session = self.connect("alice", "/a")
        self.assertRaises(CallRefused, self.calls.start_call, session, {
            "callId": "c1", "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER})
        self.network.run()
        self.assertEqual((len(self.calls), self.media.sessions, self.phone.sessions),
                         (0, [], []))

    def test_refer_to_foreign_target_refused(self):
        """
        The peer REFERs an anonymous session's call elsewhere on an exposed server: 403.
        """
        self.use(exposed=True, allowed_destinations=("10.0.0.2",), anonymous_calls="any")
        connection, session = self.connect("alice", "/a")
        call = self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                               "sdp": BROWSER_OFFER})
        self.network.run()
        from wcs_twisted.sip.uri import SIPURI
        self.assertRaises(CallRefused, self.calls.check_refer_target, call,
                          SIPURI.parse("sip:1900@198.51.100.7"))
        self.calls.check_refer_target(call, SIPURI.parse("sip:carol@10.0.0.2"))

    def test_transfer_to_foreign_target_refused(self):
        """
        A browser's blind transfer makes the transferee dial the target in the session's name:
        on an exposed server, a target outside the allow-list is refused and no REFER goes out.
        """
        self.use(exposed=True, allowed_destinations=("10.0.0.2",), anonymous_calls="any")
        connection, session = self.connect("alice", "/a")
        call = self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                               "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")
        error = self.assertRaises(CallRefused, self.calls.transfer, session,
                                  {"callId": "c1", "target": "sip:1900@198.51.100.7"})
        self.assertIn("call_allowed_destinations", error.info)
        self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.calls.transfer(session, {"callId": "c1", "target": "sip:carol@10.0.0.2"})

    def test_registered_login_reached_only_at_its_domain_or_ours(self):
        """
        An INVITE reaches an upstream-registered session by its login only when the
        Request-URI's host is ours or the account's domain, not sip:<login>@anywhere.
        """
        from wcs_twisted.sip.uri import SIPURI
        connection, session = self.connect("alice", "/a")
        session.registered = True
        self.assertIsNone(self.calls._session_for(SIPURI.parse("sip:alice@evil.example")))
        domain = session.account.domain
        self.assertIs(self.calls._session_for(SIPURI.parse(f"sip:alice@{domain}")), session)

    def test_caps(self):
        """
        Per session and per address: the call over the cap is refused, the others stand.
        """
        self.use(max_calls_per_session=1, max_calls_per_address=2)
        first, session_a = self.connect("alice", "/a")
        second, session_b = self.connect("carol", "/b")
        third, session_c = self.connect("dave", "/c")
        start = self.calls.start_call
        start(session_a, {"callId": "a1", "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER})
        error = self.assertRaises(CallRefused, start, session_a,
                                  {"callId": "a2", "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER})
        self.assertIn("max_calls_per_session", error.info)
        start(session_b, {"callId": "b1", "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER})
        error = self.assertRaises(CallRefused, start, session_c,
                                  {"callId": "c1", "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER})
        self.assertIn("max_calls_per_address", error.info)
        self.assertEqual(len(self.calls), 2)

    def test_login_with_credentials_must_be_proven(self):
        """
        A local login that has credentials: refused without its password (no session, no
        binding); with it, bound and marked proven.
        """
        self.use(local_users={"alice": "secret"})
        fields = {"sipLogin": "alice", "sipDomain": "10.0.0.1", "sipPort": "0"}
        self.assertRaises(LoginRefused, self.sessions.open, RecordingConnection(), "/a", fields)
        self.assertEqual((len(self.sessions), len(self.location)), (0, 0))
        session = self.sessions.open(RecordingConnection(), "/b",
                                     dict(fields, sipPassword="secret"))
        self.assertTrue(session.credentials_proven)
        self.assertEqual(len(self.location), 1)


class BrokenMedia:
    """
    Wraps the fake media factory and breaks one set-up step: C{step} is
    "webrtc", "codecs", "rtp" or "offer" (or "headers", broken by the test itself); C{error}
    what it raises.
    """

    def __init__(self, media, step, error):
        self.media, self.step, self.error = media, step, error

    def create_session(self, kind, peer=None):
        if self.step == kind:
            raise self.error
        session = self.media.create_session(kind)
        if kind == "webrtc" and self.step == "codecs":
            session.offered_codecs = self._raise
        if kind == "rtp" and self.step == "offer":
            session.create_offer = self._raise
        return session

    def _raise(self, *args):
        raise self.error

    def bridge(self, a, b):
        return self.media.bridge(a, b)


class SetupFailureTests(CallTestMixin, SynchronousTestCase):
    """
    A failure at any step of an outgoing call's set-up ends the call and closes every media
    session it had opened.
    """

    def test_every_step(self):
        """
        For each step and each kind of error: the call is FAILED and gone, its media closed.
        """
        connection, session = self.connect("alice", "/a")
        errors = (MediaError("No available ports"), ValueError("bad rtpmap"),
                  RuntimeError("bug"))
        for step in ("webrtc", "codecs", "rtp", "offer", "headers"):
            for error in errors:
                call_id = f"{step}-{type(error).__name__}"
                self.calls.media = BrokenMedia(self.media, step, error)
                fields = {"callId": call_id, "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER}
                if step == "headers":
                    fields["sipHeaders"] = {"X-Ok": "1"}
                    self.patch(self.calls, "_sip_headers", self._broken_headers(error))
                try:
                    self.calls.start_call(session, fields)
                except DomainError:
                    pass
                self.assertEqual(len(self.calls), 0, call_id)
                self.assertTrue(all(media.closed for media in self.media.sessions), call_id)
                self.assertEqual(self.statuses(connection, call_id)[-1][1], "FAILED", call_id)
        self.network.run()
        self.assertEqual(self.phone.sessions, [])

    def _broken_headers(self, error):
        calls = []

        def headers(fields):
            calls.append(fields)
            if len(calls) > 1:  # validated once in _new_outgoing, then used by _dial
                raise error
            return ()

        return headers

    def test_bad_header_fields_refused_up_front(self):
        """
        CRLF in visibleName, a sipHeaders name that is no token: InvalidField, no call, over
        the WebSocket and REST alike.
        """
        connection, session = self.connect("alice", "/a")
        self.assertRaises(InvalidField, self.calls.start_call, session, {
            "callee": "bob@10.0.0.2", "sdp": BROWSER_OFFER, "visibleName": "a\r\nb"})
        self.assertRaises(InvalidField, self.calls.start_rest_call, {
            "callee": "bob@10.0.0.2", "sipLogin": "x", "sipHeaders": {"X-a b": "1"}})
        self.assertRaises(InvalidField, self.calls.start_rest_call, {
            "callee": "bob@10.0.0.2", "sipLogin": "x", "sipHeaders": {"X-a": "1\r\nVia: x"}})
        self.assertEqual((len(self.calls), self.media.sessions), (0, []))


class SessionForkTests(CallTestMixin, SynchronousTestCase):
    """
    A session bound for a login that a phone registered too takes no call from the phone.
    """

    def test_phone_binding_stays_reachable(self):
        """
        With a phone's binding next to the session's, an INVITE for the user is not taken by
        the call table alone (the proxy forks it).
        """
        from wcs_twisted.sip.headers import NameAddress
        from wcs_twisted.sip.uri import SIPURI
        from wcs_twisted.ua.location import Binding

        connection, session = self.connect("bob", "/b")
        uri = SIPURI.parse("sip:bob@10.0.0.1")
        self.assertIs(self.calls._session_for(uri), session)
        self.location.update(Binding("sip:bob@10.0.0.1",
                                     NameAddress(None, SIPURI.parse("sip:bob@10.0.0.2")),
                                     self.clock.seconds() + 3600, "x", 1, None))
        self.assertIsNone(self.calls._session_for(uri))
