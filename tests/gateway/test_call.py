"""
Tests for L{wcs_twisted.gateway.call} and L{wcs_twisted.gateway.call_table}: WCS calls over the in-memory
SIP network, with fake media sessions that negotiate real SDP.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.ua.test_invite_session import Callee, Observer
from tests.gateway.test_sessions import RecordingConnection
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.testing.fakes import FakeMediaFactory
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.gateway.call_table import CallSettings, CallTable
from wcs_twisted.errors import DomainError, InvalidField
from wcs_twisted.ua.invite_session import InviteSession
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.registrar import Registrar
from wcs_twisted.gateway.sessions import SessionTable

BROWSER_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=sendrecv\r\n")
PEER_ANSWER = (b"v=0\r\no=- 2 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
               b"m=audio 5000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
PEER_OFFER = (b"v=0\r\no=- 3 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
              b"m=audio 5002 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")


class CallTestMixin:
    """
    Our server at 10.0.0.1 (registrar, call table, proxy) and a SIP phone at 10.0.0.2.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.stack, self.core = build_memory_stack(self.network, "10.0.0.1", seed=1)
        self.location = LocationService()
        registrar = Registrar(self.core, self.location, self.clock, ["10.0.0.1"],
                              authenticator=DigestAuthenticator("10.0.0.1", b"k" * 32))
        self.core.add_router(registrar)
        self.sessions = SessionTable("node@10.0.0.1")
        self.media = FakeMediaFactory()
        self.counts = []
        self.calls = CallTable(self.core, self.clock, self.media, self.sessions, self.location,
                               CallSettings(local_domains=("10.0.0.1",)),
                               on_count=self.counts.append)
        self.core.add_router(self.calls)
        self.core.add_router(Proxy(self.core, self.location, self.clock, registrar.serves))
        self.phone_stack, self.phone_core = build_memory_stack(self.network, "10.0.0.2", seed=2)
        self.phone = Callee(self.phone_core, self.clock)
        self.phone_core.add_router(self.phone)

    def connect(self, login, session_id):
        connection = RecordingConnection()
        session = self.sessions.open(connection, session_id, {
            "sipLogin": login, "sipDomain": "10.0.0.1", "sipOutboundProxy": "10.0.0.1",
            "sipPort": "0"})
        return connection, session

    def place_call(self):
        """
        alice's browser calls the phone as c1; the phone has the INVITE, unanswered.
        """
        connection, session = self.connect("alice", "/a")
        self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                        "sdp": BROWSER_OFFER, "hasAudio": "true"})
        self.network.run()
        return connection, session

    def statuses(self, connection, call_id=None):
        return [(name, data[0]["status"]) for name, data in connection.messages
                if name in ("notifyTryingResponse", "ring", "talk", "hold", "finish")
                and (call_id is None or data[0]["callId"] == call_id)]


class OutgoingCallTests(CallTestMixin, SynchronousTestCase):
    """
    Browser -> SIP phone (spec 9.2).
    """

    def test_rtp_leg_knows_where_the_peer_signals_from(self):
        """
        The SIP leg's media session learns the next hop's address before the answer's SDP, so
        that under NAT it accepts media from there and from nowhere else (docs/security.md).
        """
        self.place_call()
        self.assertEqual(self.calls.get("c1").rtp.signalling_source, "10.0.0.2")

    def test_trying_ring_talk_finish(self):
        """
        TRYING at once, RING on 180, one setRemoteSDP then ESTABLISHED on 200, FINISH on BYE.
        """
        connection, session = self.place_call()
        self.assertEqual(self.statuses(connection), [("notifyTryingResponse", "TRYING")])
        phone_leg = self.phone.sessions[0]
        phone_leg.ring()
        self.network.run()
        phone_leg.accept(PEER_ANSWER)
        self.network.run()
        names = [name for name, _ in connection.messages]
        self.assertEqual(names, ["notifyTryingResponse", "ring", "setRemoteSDP", "talk"])
        set_remote = connection.messages[2][1]
        self.assertEqual((set_remote[0], set_remote[2]), ("c1", True))
        self.assertIn("PCMA/8000", set_remote[1], "browser answered with the phone's codec")
        self.assertEqual(self.media.bridges[0].mode, "relay")
        self.assertEqual(self.calls.get("c1").to_wcs()["sipStatus"], 200)
        phone_leg.hang_up()
        self.network.run()
        self.assertEqual(self.statuses(connection)[-1], ("finish", "FINISH"))
        self.assertEqual(len(self.calls), 0)
        self.assertTrue(all(s.closed for s in self.media.sessions))
        self.assertEqual(self.counts, [1, 0])

    def test_sip_offer_lists_browser_codecs_first(self):
        """
        The INVITE offers the browser's codecs (opus, PCMU, PCMA) so both legs can match.
        """
        self.place_call()
        offer = self.phone.sessions[0].remote_sdp.decode()
        self.assertIn("m=audio 40002 RTP/AVP 111 0 8 9", offer)

    def test_busy(self):
        """
        486 gives finish with status BUSY and releases the call.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].reject(486)
        self.network.run()
        self.assertEqual(self.statuses(connection)[-1], ("finish", "BUSY"))
        self.assertEqual(len(self.calls), 0)

    def test_failure_status(self):
        """
        A 404 is FAILED with the SIP status.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].reject(404)
        self.network.run()
        finish = connection.messages[-1][1][0]
        self.assertEqual((finish["status"], finish["sipStatus"]), ("FAILED", 404))

    def test_hangup_before_answer_cancels(self):
        """
        hangup while ringing: FINISH at once, CANCEL reaches the phone.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].ring()
        self.network.run()
        self.calls.hang_up(session, {"callId": "c1"})
        self.assertEqual(self.statuses(connection)[-1], ("finish", "FINISH"))
        self.network.run()
        self.assertEqual(self.phone.observer.events[-1], ("terminated", "cancelled", True))

    def test_hold_unhold(self):
        """
        hold re-INVITEs sendonly and answers HOLD; unhold answers ESTABLISHED (spec 9.4).
        """
        connection, session = self.place_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.phone.observer.reinvite_answer = PEER_ANSWER.replace(b"PCMA/8000\r\n",
                                                                   b"PCMA/8000\r\na=recvonly\r\n")
        self.calls.hold(session, {"callId": "c1"})
        self.network.run()
        self.assertEqual(self.statuses(connection)[-1], ("hold", "HOLD"))
        self.assertIn(b"a=sendonly", self.phone.observer.events[-1][1])
        self.assertTrue(self.media.bridges[0].held)
        self.phone.observer.reinvite_answer = PEER_ANSWER
        self.calls.unhold(session, {"callId": "c1"})
        self.network.run()
        self.assertEqual(self.statuses(connection)[-1], ("talk", "ESTABLISHED"))
        self.assertFalse(self.media.bridges[0].held)
        setremotes = [name for name, _ in connection.messages if name == "setRemoteSDP"]
        self.assertEqual(len(setremotes), 1, "re-INVITEs stay on the SIP leg")

    def test_dtmf_three_ways(self):
        """
        RFC2833 goes to the RTP leg; INFO and INFO_RELAY become SIP INFO bodies.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.calls.send_dtmf(session, {"callId": "c1", "dtmf": "12", "type": "RFC2833"})
        self.calls.send_dtmf(session, {"callId": "c1", "dtmf": "5", "type": "INFO"})
        self.calls.send_dtmf(session, {"callId": "c1", "dtmf": "#", "type": "INFO_RELAY"})
        self.network.run()
        rtp_leg = self.media.sessions[1]
        self.assertEqual(rtp_leg.dtmf_sent, ["1", "2"])
        infos = [event[1] for event in self.phone.observer.events if event[0] == "info"]
        self.assertEqual(infos, [b"Signal=5\r\nDuration=160\r\n", b"#"])
        self.assertRaises(InvalidField, self.calls.send_dtmf, session,
                          {"callId": "c1", "dtmf": "x"})
        self.assertRaises(InvalidField, self.calls.send_dtmf, session,
                          {"callId": "c1", "dtmf": "1", "type": "SMOKE"})

    def test_transfer_refers_to_a_name_address(self):
        """
        transfer REFERs the phone with the target as a name-addr (RFC 3515) and reports
        ACCEPTED on its 202 as a notifyTransferEvent carrying the call object.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.calls.transfer(session, {"callId": "c1", "target": "carol@10.0.0.3"})
        self.network.run()
        refers = [event[1] for event in self.phone.observer.events if event[0] == "refer"]
        self.assertEqual(refers, ["<sip:carol@10.0.0.3>"])
        transfers = [data[0] for name, data in connection.messages
                     if name == "notifyTransferEvent"]
        self.assertEqual([(t["callId"], t["status"]) for t in transfers], [("c1", "ACCEPTED")])

    def test_dtmf_from_phone_reported(self):
        """
        An INFO dtmf-relay from the phone is reported to the session.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.phone.sessions[0].request("INFO", b"Signal=7\r\nDuration=100\r\n",
                                       "application/dtmf-relay")
        self.network.run()
        self.assertIn(("notifyDtmfEvent", [{"callId": "c1", "dtmf": "7", "type": "INFO"}]),
                      connection.messages)

    def test_session_close_hangs_up(self):
        """
        A closed WebSocket ends its calls with BYE (spec 8).
        """
        connection, session = self.place_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.sessions.close(session, "socket closed")
        self.network.run()
        self.assertEqual(self.phone.observer.events[-1],
                         ("terminated", "Normal call clearing", True))
        self.assertEqual(len(self.calls), 0)

    def test_rtp_inactivity(self):
        """
        No RTP: FAILED "Failed by RTP activity" and a BYE.
        """
        connection, session = self.place_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        call = self.calls.get("c1")
        call.media_inactive(call.rtp)
        self.network.run()
        finish = connection.messages[-1][1][0]
        self.assertEqual((finish["status"], finish["info"]), ("FAILED", "Failed by RTP activity"))
        self.assertEqual(self.phone.observer.events[-1][0], "terminated")

    def test_no_common_codec(self):
        """
        A browser offer with nothing we carry fails the call with "No common codecs".
        """
        connection, session = self.connect("alice", "/a")
        offer = BROWSER_OFFER.replace("111 0 8", "96").replace("opus/48000/2", "VP9/90000")
        self.calls.start_call(session, {"callId": "c2", "callee": "bob@10.0.0.2", "sdp": offer})
        finish = connection.messages[-1][1][0]
        self.assertEqual((finish["status"], finish["info"]), ("FAILED", "No common codecs"))

    def test_bad_requests(self):
        """
        Missing callee/sdp and duplicate callIds are refused; a session without SIP cannot call.
        """
        connection, session = self.connect("alice", "/a")
        self.assertRaises(InvalidField, self.calls.start_call, session,
                          {"callId": "x", "sdp": BROWSER_OFFER})
        self.assertRaises(InvalidField, self.calls.start_call, session,
                          {"callId": "x", "callee": "bob"})
        plain = self.sessions.open(RecordingConnection(), "/p", {})
        self.assertRaises(DomainError, self.calls.start_call, plain,
                          {"callId": "y", "callee": "bob", "sdp": BROWSER_OFFER})


class IncomingCallTests(CallTestMixin, SynchronousTestCase):
    """
    SIP phone -> browser (spec 9.3), through the built-in proxy in local mode.
    """

    def phone_calls(self, login="alice"):
        caller = Observer()
        leg = InviteSession.outgoing(
            self.phone_core, self.clock, caller, SIPURI.parse("sip:bob@10.0.0.2"),
            SIPURI.parse(f"sip:{login}@10.0.0.1"), PEER_OFFER)
        self.network.run()
        return leg, caller

    def test_rtp_leg_knows_where_the_caller_signals_from(self):
        """
        The SIP leg's media session of an incoming call learns the INVITE's source address.
        """
        connection, session = self.connect("alice", "/a")
        self.phone_calls()
        call_id = connection.messages[0][1][0]
        source = self.calls.get(call_id).rtp.signalling_source
        self.assertIsNotNone(source)
        self.assertEqual(source, self.calls.get(call_id).sip.peer_address.host)

    def test_set_remote_sdp_then_incoming_then_ring(self):
        """
        setRemoteSDP (server offer, isInitiator false) precedes notifyIncomingCall, then RING.
        """
        connection, session = self.connect("alice", "/a")
        leg, caller = self.phone_calls()
        names = [name for name, _ in connection.messages]
        self.assertEqual(names, ["setRemoteSDP", "notifyIncomingCall", "ring"])
        call_id, offer, initiator = connection.messages[0][1]
        self.assertFalse(initiator)
        self.assertTrue(offer.index("PCMU") < offer.index("opus"), "phone's codecs first")
        incoming = connection.messages[1][1][0]
        self.assertEqual((incoming["callId"], incoming["incoming"], incoming["caller"],
                          incoming["mediaProvider"]), (call_id, True, "bob", "WebRTC"))
        self.assertEqual(caller.events, [("provisional", 180)])

    def test_answer(self):
        """
        The browser's answer becomes the SIP 200 with the codec the browser chose.
        """
        connection, session = self.connect("alice", "/a")
        leg, caller = self.phone_calls()
        call_id = connection.messages[0][1][0]
        browser_answer = BROWSER_OFFER.replace("111 0 8", "0")
        self.calls.answer(session, {"callId": call_id, "sdp": browser_answer})
        self.network.run()
        self.assertEqual(caller.events[-1], ("answered", 200))
        self.assertIn(b"PCMU/8000", leg.remote_sdp)
        self.assertNotIn(b"PCMA", leg.remote_sdp)
        self.assertEqual(self.statuses(connection)[-1], ("talk", "ESTABLISHED"))
        self.assertEqual(self.media.bridges[0].mode, "relay")

    def test_decline(self):
        """
        hangup before answer sends 486 to the caller and FINISH to the browser.
        """
        connection, session = self.connect("alice", "/a")
        leg, caller = self.phone_calls()
        self.calls.hang_up(session, {"callId": connection.messages[0][1][0]})
        self.network.run()
        self.assertEqual(caller.events[-1], ("failed", 486))
        self.assertEqual(self.statuses(connection)[-1], ("finish", "FINISH"))

    def test_caller_cancels(self):
        """
        CANCEL from the phone gives FINISH to the browser.
        """
        connection, session = self.connect("alice", "/a")
        leg, caller = self.phone_calls()
        leg.cancel()
        self.network.run()
        self.assertEqual(self.statuses(connection)[-1], ("finish", "FINISH"))
        self.assertEqual(caller.events[-1], ("failed", 487))

    def test_unknown_user(self):
        """
        A call for nobody connected gets 404 from the proxy.
        """
        leg, caller = self.phone_calls("nobody")
        self.assertEqual(caller.events, [("failed", 404)])


class LocalCallTests(CallTestMixin, SynchronousTestCase):
    """
    Browser -> browser in local mode, SIP inside through our own proxy.
    """

    def test_two_sessions_call_each_other(self):
        """
        alice calls bob: bob's session gets the call; answering establishes both; hangup ends both.
        """
        alice_connection, alice = self.connect("alice", "/a")
        bob_connection, bob = self.connect("bob", "/b")
        self.calls.start_call(alice, {"callId": "c1", "callee": "bob", "sdp": BROWSER_OFFER})
        self.network.run()
        self.assertEqual([n for n, _ in bob_connection.messages],
                         ["setRemoteSDP", "notifyIncomingCall", "ring"])
        self.assertEqual(self.statuses(alice_connection, "c1")[-1], ("ring", "RING"))
        bob_call = bob_connection.messages[0][1][0]
        self.calls.answer(bob, {"callId": bob_call,
                                "sdp": BROWSER_OFFER.replace("111 0 8", "111")})
        self.network.run()
        self.assertEqual(self.statuses(alice_connection, "c1")[-1], ("talk", "ESTABLISHED"))
        self.assertEqual(self.statuses(bob_connection, bob_call)[-1], ("talk", "ESTABLISHED"))
        self.calls.hang_up(alice, {"callId": "c1"})
        self.network.run()
        self.assertEqual(self.statuses(bob_connection, bob_call)[-1], ("finish", "FINISH"))
        self.assertEqual(len(self.calls), 0)


class KeyframeTests(CallTestMixin, SynchronousTestCase):
    """
    Key frame requests cross the B2BUA: RTCP PLI <-> SIP INFO picture_fast_update (RFC 5168).
    """

    def test_both_ways(self):
        """
        The browser's PLI becomes an INFO to the phone; the phone's INFO becomes a PLI request.
        """
        connection, session = self.connect("alice", "/a")
        self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        call = self.calls.get("c1")
        bridge = self.media.bridges[0]
        bridge.on_keyframe_request(call.rtp)
        self.network.run()
        info = [event[1] for event in self.phone.observer.events if event[0] == "info"]
        self.assertIn(b"picture_fast_update", info[-1])
        self.phone.sessions[0].request("INFO", info[-1], "application/media_control+xml")
        self.network.run()
        self.assertEqual(bridge.keyframes_requested, [call.webrtc])
