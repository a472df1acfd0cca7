"""
Tests for L{wcs_twisted.ua.invite_session}: two user agents on the in-memory network.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IInviteSessionObserver, IRequestRouter
from wcs_twisted.sip.auth import DigestAuthenticator, DigestResult
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.invite_session import InviteSession, InviteSessionState, SIPRequestFailed
from wcs_twisted.ua.session_timer import interval_too_small

OFFER = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ANSWER = b"v=0\r\no=- 2 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


@implementer(IInviteSessionObserver)
class Observer:
    """
    Records every callback; answers re-INVITEs and INFO as told.
    """

    def __init__(self):
        self.events = []
        self.reinvite_answer = ANSWER
        self.refuse_reinvite = False

    def names(self):
        return [event[0] for event in self.events]

    def provisional(self, session, response):
        self.events.append(("provisional", response.status_code))

    def answered(self, session, response):
        self.events.append(("answered", response.status_code))

    def confirmed(self, session):
        self.events.append(("confirmed",))

    def failed(self, session, status, reason, response):
        self.events.append(("failed", status))

    def terminated(self, session, reason, by_remote):
        self.events.append(("terminated", reason, by_remote))

    def offer_received(self, session, offer):
        self.events.append(("offer", offer))
        if self.refuse_reinvite:
            raise RemoteProtocolError("no", 488)
        return self.reinvite_answer

    def info_received(self, session, request):
        self.events.append(("info", request.body))
        return 200

    def refer_received(self, session, request, refer_to):
        self.events.append(("refer", refer_to))
        return 202

    def notify_received(self, session, request):
        self.events.append(("notify", request.body))

    def message_received(self, session, request):
        self.events.append(("message", request.body))


@implementer(IRequestRouter)
class Callee:
    """
    Takes INVITEs as InviteSessions, optionally demanding proxy digest first.
    """

    def __init__(self, core, clock, authenticator=None):
        self.core = core
        self.clock = clock
        self.authenticator = authenticator
        self.observer = Observer()
        self.sessions = []

    def accept_request(self, event):
        if event.request.method != "INVITE":
            return False
        if self.authenticator is not None:
            credentials = event.request.headers.get("Proxy-Authorization")
            if credentials is None or self.authenticator.verify(
                    credentials, "INVITE", {"alice": "pw"}.get,
                    self.clock.seconds()) is not DigestResult.OK:
                response = event.request.create_response(407, to_tag=self.core.new_tag())
                for value in self.authenticator.challenge(self.clock.seconds()):
                    response.headers.add("Proxy-Authenticate", value)
                self.core.respond(event.transaction_key, response)
                return True
        self.sessions.append(InviteSession.incoming(self.core, self.clock, self.observer, event))
        return True


class InviteSessionTests(SynchronousTestCase):
    """
    RFC 3261 13-15 between our own UAC and UAS.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.a, self.core_a = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.b, self.core_b = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.callee = Callee(self.core_b, self.clock)
        self.core_b.add_router(self.callee)
        self.caller = Observer()

    def call(self, **kwargs):
        session = InviteSession.outgoing(
            self.core_a, self.clock, self.caller, SIPURI.parse("sip:alice@10.0.0.1"),
            SIPURI.parse("sip:bob@10.0.0.2"), OFFER, **kwargs)
        self.network.run()
        return session

    def established(self):
        session = self.call()
        incoming = self.callee.sessions[0]
        incoming.ring()
        self.network.run()
        incoming.accept(ANSWER)
        self.network.run()
        return session, incoming

    def test_call_answer_hangup(self):
        """
        INVITE, 180, 200, ACK, BYE: both sides see the call start and end (RFC 3261 13, 15).
        """
        session, incoming = self.established()
        self.assertEqual(self.caller.names(), ["provisional", "answered"])
        self.assertEqual(self.callee.observer.names(), ["confirmed"])
        self.assertEqual((session.remote_sdp, incoming.remote_sdp), (ANSWER, OFFER))
        self.assertEqual(session.state, InviteSessionState.CONFIRMED)
        session.hang_up()
        self.network.run()
        self.assertEqual(self.callee.observer.events[-1],
                         ("terminated", "Normal call clearing", True))
        self.assertEqual(self.caller.events[-1], ("terminated", "Normal call clearing", False))
        self.assertEqual(self.core_a.dialog_count() + self.core_b.dialog_count(), 0)

    def test_incoming_over_tcp_answers_with_a_tcp_contact(self):
        """
        RFC 3261 12.1.1 / 18.3: a UAS answering an INVITE that came over TCP gives a
        transport=tcp Contact, so the caller's ACK and BYE come back over TCP, and its own BYE
        leaves over TCP.
        """
        self.network.attach(self.a, "10.0.0.1", 5060, "tcp")
        self.network.attach(self.b, "10.0.0.2", 5060, "tcp")
        session = InviteSession.outgoing(
            self.core_a, self.clock, self.caller, SIPURI.parse("sip:alice@10.0.0.1"),
            SIPURI.parse("sip:bob@10.0.0.2;transport=tcp"), OFFER, protocol="tcp")
        self.network.run()
        incoming = self.callee.sessions[0]
        incoming.accept(ANSWER)
        self.network.run()
        self.assertEqual(str(incoming.dialog.local_contact.uri),
                         "sip:bob@10.0.0.2:5060;transport=tcp")
        self.assertEqual(session.dialog.remote_target.transport, "tcp")
        self.assertEqual(self.callee.observer.names(), ["confirmed"])
        incoming.hang_up()
        self.network.run()
        bye = [(source, data) for source, destination, data in self.network.delivered
               if data.startswith(b"BYE ")]
        self.assertEqual([source.transport for source, _ in bye], ["tcp"])
        self.assertIn(b"Via: SIP/2.0/TCP ", bye[0][1])
        self.assertEqual(self.caller.events[-1], ("terminated", "Normal call clearing", True))

    def test_display_name_with_quote_and_backslash_is_a_quoted_string(self):
        """
        RFC 3261 25.1: a display name holding C{"} or C{\\} goes out as quoted-pairs, so the
        callee parses the From back to the same name instead of answering 400.
        """
        name = 'He said "hi" \\o/'
        self.call(display_name=name)
        invite = parse_message(next(data for _, _, data in self.network.delivered
                                    if data.startswith(b"INVITE ")))
        self.assertIn(b'From: "He said \\"hi\\" \\\\o/" <sip:alice@10.0.0.1>',
                      bytes(invite))
        self.assertEqual(invite.from_.display_name, name)
        self.assertEqual(len(self.callee.sessions), 1)

    def test_no_display_name_writes_a_bare_uri(self):
        """
        Without a display name the From is C{<uri>;tag=...}, with no empty quotes.
        """
        self.call()
        invite = parse_message(next(data for _, _, data in self.network.delivered
                                    if data.startswith(b"INVITE ")))
        self.assertTrue(invite.headers.get("From").startswith("<sip:alice@10.0.0.1>;tag="))

    def test_cancel_before_answer(self):
        """
        RFC 3261 9: CANCEL after 180 gives 487 to the INVITE; the callee sees the cancel.
        """
        session = self.call()
        self.callee.sessions[0].ring()
        self.network.run()
        session.cancel()
        self.network.run()
        self.assertEqual(self.caller.events[-1], ("failed", 487))
        self.assertEqual(self.callee.observer.events[-1], ("terminated", "cancelled", True))

    def test_busy(self):
        """
        A 486 reaches the caller as a failure with that status.
        """
        self.call()
        self.callee.sessions[0].reject(486)
        self.network.run()
        self.assertEqual(self.caller.events, [("failed", 486)])

    def test_reinvite_hold(self):
        """
        RFC 3261 14: a re-INVITE's offer reaches the peer, whose answer comes back in the 2xx.
        """
        session, incoming = self.established()
        hold = OFFER.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=sendonly\r\n")
        done = session.reinvite(hold)
        self.network.run()
        self.assertEqual(self.successResultOf(done).status_code, 200)
        self.assertEqual(self.callee.observer.events[-1], ("offer", hold))
        self.assertEqual(incoming.remote_sdp, hold)
        self.assertIsNone(incoming._remote_reinvite)

    def test_refused_reinvite_keeps_call(self):
        """
        A 488 to a re-INVITE fails the request but not the call.
        """
        session, incoming = self.established()
        self.callee.observer.refuse_reinvite = True
        done = session.reinvite(OFFER)
        self.network.run()
        self.assertEqual(self.failureResultOf(done, SIPRequestFailed).value.status, 488)
        self.assertEqual(session.state, InviteSessionState.CONFIRMED)

    def test_info_and_message(self):
        """
        INFO and MESSAGE in the dialog reach the observer and get 200.
        """
        session, incoming = self.established()
        info = session.request("INFO", b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay")
        self.network.run()
        self.assertEqual(self.successResultOf(info).status_code, 200)
        self.assertEqual(self.callee.observer.events[-1],
                         ("info", b"Signal=5\r\nDuration=160\r\n"))

    def test_refer(self):
        """
        RFC 3515: a REFER is answered 202 and handed to the observer with its Refer-To.
        """
        session, incoming = self.established()
        refer = session.request("REFER", headers=(("Refer-To", "<sip:carol@10.0.0.3>"),))
        self.network.run()
        self.assertEqual(self.successResultOf(refer).status_code, 202)
        self.assertEqual(self.callee.observer.events[-1], ("refer", "<sip:carol@10.0.0.3>"))

    def test_lost_200_is_retransmitted(self):
        """
        RFC 3261 13.3.1.4: the UAS resends its 2xx until the ACK arrives.
        """
        self.call()
        dropped = []

        def drop_first_ok(data, source, destination):
            if data.startswith(b"SIP/2.0 200") and not dropped:
                dropped.append(data)
                return True
            return False

        self.network.drop = drop_first_ok
        self.callee.sessions[0].accept(ANSWER)
        self.network.run()
        self.assertEqual(self.caller.names(), [])
        self.clock.advance(0.5)
        self.network.run()
        self.assertEqual(self.caller.names(), ["answered"])
        self.assertEqual(self.callee.observer.names(), ["confirmed"])

    def test_no_ack_ends_call(self):
        """
        RFC 3261 13.3.1.4: no ACK within 64*T1 -> the UAS sends BYE.
        """
        self.call()
        self.network.drop = lambda data, source, destination: data.startswith(b"ACK")
        self.callee.sessions[0].accept(ANSWER)
        self.network.run()
        self.clock.pump([0.5] * 80)
        self.network.run()
        self.assertEqual(self.callee.observer.events[-1], ("terminated", "ACK timeout", False))
        self.assertEqual(self.caller.events[-1], ("terminated", "Normal call clearing", True))

    def test_proxy_authentication(self):
        """
        A 407 is answered once with Proxy-Authorization, and the call goes through.
        """
        self.callee.authenticator = DigestAuthenticator("10.0.0.2", b"s" * 32)
        session = self.call(credentials=("alice", "pw"))
        self.assertEqual(len(self.callee.sessions), 1)
        self.assertEqual(session.state, InviteSessionState.CALLING)
        invites = [parse_message(data) for _, _, data in self.network.delivered
                   if data.startswith(b"INVITE")]
        self.assertEqual([invite.cseq.number for invite in invites], [1, 2])

    def test_wrong_proxy_password(self):
        """
        A second 407 for the same nonce fails the call with 407.
        """
        self.callee.authenticator = DigestAuthenticator("10.0.0.2", b"s" * 32)
        self.call(credentials=("alice", "wrong"))
        self.assertEqual(self.caller.events, [("failed", 407)])

    def test_timeout(self):
        """
        An INVITE nobody answers fails with 408 after Timer B.
        """
        self.network.drop = lambda data, source, destination: True
        self.call()
        self.clock.pump([0.5] * 65)
        self.assertEqual(self.caller.events, [("failed", 408)])


class ReliableProvisionalTests(SynchronousTestCase):
    """
    RFC 3262 100rel / PRACK between our own UAC and UAS.
    """

    setUp = InviteSessionTests.setUp
    call = InviteSessionTests.call

    def sent(self, start):
        return [data for _, _, data in self.network.delivered if data.startswith(start)]

    def test_required_100rel_is_pracked_and_stops_retransmission(self):
        """
        An INVITE requiring 100rel gets a 180 with Require: 100rel and RSeq; the UAC PRACKs it
        once (RAck = RSeq, CSeq, INVITE), the 200 to the PRACK stops the 180's retransmission.
        """
        session = self.call(extra_headers=(("Require", "100rel"),))
        incoming = self.callee.sessions[0]
        incoming.ring()
        self.network.run()
        ringing = parse_message(self.sent(b"SIP/2.0 180")[0])
        self.assertEqual(ringing.headers.get("Require"), "100rel")
        rseq = ringing.headers.get("RSeq")
        pracks = [parse_message(data) for data in self.sent(b"PRACK ")]
        self.assertEqual([p.headers.get("RAck") for p in pracks], [f"{rseq} 1 INVITE"])
        self.clock.advance(10)
        self.network.run()
        self.assertEqual(len(self.sent(b"SIP/2.0 180")), 1)
        self.assertEqual(self.caller.names(), ["provisional"])
        incoming.accept(ANSWER)
        self.network.run()
        self.assertEqual(session.state, InviteSessionState.CONFIRMED)
        self.assertEqual(self.callee.observer.names(), ["confirmed"])

    def test_invite_announces_100rel(self):
        """
        Our INVITE lists 100rel in Supported, and an unreliable 180 is not PRACKed.
        """
        self.call()
        self.callee.sessions[0].ring()
        self.network.run()
        invite = parse_message(self.sent(b"INVITE ")[0])
        self.assertIn("100rel", invite.headers.get_all("Supported"))
        self.assertEqual(self.sent(b"PRACK "), [])
        self.assertIsNone(parse_message(self.sent(b"SIP/2.0 180")[0]).headers.get("RSeq"))

    def test_unacknowledged_reliable_1xx_rejects_after_64_t1(self):
        """
        Without a PRACK the 180 is sent at T1, 2*T1, ... and after 64*T1 the INVITE is
        rejected with a 5xx and the UAS's observer hears of it.
        """
        self.call(extra_headers=(("Require", "100rel"),))
        incoming = self.callee.sessions[0]
        self.network.drop = lambda data, source, destination: data.startswith(b"PRACK ")
        incoming.ring()
        for _ in range(40):
            self.clock.advance(1)
            self.network.run()
        self.assertGreater(len(self.sent(b"SIP/2.0 180")), 4)
        self.assertEqual(incoming.final_status, 504)
        self.assertEqual(self.callee.observer.events[-1], ("terminated", "No PRACK", True))
        self.assertEqual(self.caller.events[-1], ("failed", 504))

    def test_prack_for_unknown_rseq_gets_481(self):
        """
        A PRACK whose RAck names no outstanding reliable 1xx is answered 481.
        """
        session = self.call(extra_headers=(("Require", "100rel"),))
        incoming = self.callee.sessions[0]
        incoming.ring()
        self.network.run()
        failures = []
        session.request("PRACK", headers=(("RAck", "999 1 INVITE"),)).addErrback(
            lambda failure: failures.append(failure.value.status))
        self.network.run()
        self.assertEqual(failures, [481])


class SessionTimerTests(SynchronousTestCase):
    """
    RFC 4028 session timers between our own UAC and UAS, on the in-memory network's clock.
    """

    setUp = InviteSessionTests.setUp
    call = InviteSessionTests.call
    established = InviteSessionTests.established
    sent = ReliableProvisionalTests.sent

    def advance(self, seconds):
        for _ in range(int(seconds)):
            self.clock.advance(1)
            self.network.run()

    def test_interval_negotiated_and_refreshed_by_uac(self):
        """
        Our INVITE asks Session-Expires 1800 with Min-SE 90 and Supported timer; the UAS
        answers 1800;refresher=uac with Require: timer; the UAC refreshes with UPDATE every
        900 s and the call outlives several intervals.
        """
        session, incoming = self.established()
        invite = parse_message(self.sent(b"INVITE ")[0])
        self.assertEqual((invite.headers.get("Session-Expires"), invite.headers.get("Min-SE")),
                         ("1800", "90"))
        self.assertIn("timer", invite.headers.get_all("Supported"))
        ok = parse_message(next(data for data in self.sent(b"SIP/2.0 200")
                                if b"INVITE" in data.split(b"CSeq:")[1][:12]))
        self.assertEqual(ok.headers.get("Session-Expires"), "1800;refresher=uac")
        self.assertIn("timer", ok.headers.get_all("Require"))
        self.advance(4000)
        updates = [parse_message(data) for data in self.sent(b"UPDATE ")]
        self.assertEqual(len(updates), 4)
        self.assertEqual(updates[0].headers.get("Session-Expires"), "1800;refresher=uac")
        self.assertEqual((session.state, incoming.state),
                         (InviteSessionState.CONFIRMED, InviteSessionState.CONFIRMED))

    def test_missing_refresh_ends_the_call(self):
        """
        When the refresher (the UAC) never refreshes, the other side sends BYE before the
        interval ends (1800 - 32 s).
        """
        session, incoming = self.established()
        session._timer.cancel()
        self.advance(1767)
        self.assertEqual(incoming.state, InviteSessionState.CONFIRMED)
        self.advance(2)
        self.assertEqual(self.callee.observer.events[-1],
                         ("terminated", "Session timer expired", False))
        self.assertEqual(self.caller.events[-1],
                         ("terminated", "Normal call clearing", True))

    def test_422_is_answered_with_the_min_se_asked_for(self):
        """
        A UAS answering 422 with Min-SE 3600: the INVITE is sent again (next CSeq) with
        Session-Expires and Min-SE 3600, and the call goes on.
        """
        accept = self.callee.accept_request

        def strict(event):
            refusal = interval_too_small(event.request, 3600, to_tag="t422")
            if refusal is not None:
                self.core_b.respond(event.transaction_key, refusal)
                return True
            return accept(event)

        self.callee.accept_request = strict
        session = self.call()
        invites = [parse_message(data) for data in self.sent(b"INVITE ")]
        self.assertEqual([(i.cseq.number, i.headers.get("Session-Expires"),
                           i.headers.get("Min-SE")) for i in invites],
                         [(1, "1800", "90"), (2, "3600", "3600")])
        self.assertEqual(len(self.callee.sessions), 1)
        self.assertEqual(session.state, InviteSessionState.CALLING)

    def test_reinvite_below_min_se_gets_422(self):
        """
        A refresh asking for less than our Min-SE is refused 422 with Min-SE 90; the call stays.
        """
        session, incoming = self.established()
        statuses = []
        session.request("UPDATE", headers=(("Session-Expires", "30"),)).addErrback(
            lambda failure: statuses.append(failure.value.status))
        self.network.run()
        self.assertEqual(statuses, [422])
        self.assertEqual(incoming.state, InviteSessionState.CONFIRMED)

    def test_refresh_by_reinvite_when_update_not_allowed(self):
        """
        Without UPDATE in the peer's Allow, the refresher sends a re-INVITE with its SDP.
        """
        session, incoming = self.established()
        session._peer_allow.discard("UPDATE")
        self.advance(901)
        reinvites = [parse_message(data) for data in self.sent(b"INVITE ")][1:]
        self.assertEqual(len(reinvites), 1)
        self.assertEqual(reinvites[0].body, OFFER)
        self.assertEqual(reinvites[0].headers.get("Session-Expires"), "1800;refresher=uac")


class UpdateTests(SynchronousTestCase):
    """
    RFC 3311 UPDATE in a confirmed dialog.
    """

    setUp = InviteSessionTests.setUp
    call = InviteSessionTests.call
    established = InviteSessionTests.established

    def test_update_with_offer_is_answered_in_its_200(self):
        """
        An UPDATE carrying SDP goes to the observer as an offer; its answer is the 200's body.
        """
        session, incoming = self.established()
        answers = []
        session.request("UPDATE", body=OFFER, content_type="application/sdp").addCallback(
            answers.append)
        self.network.run()
        self.assertEqual(self.callee.observer.events[-1], ("offer", OFFER))
        self.assertEqual(answers[0].body, ANSWER)
        self.assertEqual(answers[0].media_type, "application/sdp")

    def test_refused_update_offer_keeps_the_call(self):
        """
        An offer the observer refuses gets its status (488); the call goes on.
        """
        session, incoming = self.established()
        self.callee.observer.refuse_reinvite = True
        statuses = []
        session.request("UPDATE", body=OFFER, content_type="application/sdp").addErrback(
            lambda failure: statuses.append(failure.value.status))
        self.network.run()
        self.assertEqual(statuses, [488])
        self.assertEqual(incoming.state, InviteSessionState.CONFIRMED)

    def test_update_with_a_body_that_is_not_sdp_gets_415(self):
        """
        A body that is no SDP is unsupported media (415).
        """
        session, incoming = self.established()
        statuses = []
        session.request("UPDATE", body=b"x", content_type="text/plain").addErrback(
            lambda failure: statuses.append(failure.value.status))
        self.network.run()
        self.assertEqual(statuses, [415])
