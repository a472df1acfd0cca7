"""
Tests for the timers of L{wcs_twisted.gateway.call} that users feel: the ring timeout, and ICE
consent against the keep-alive grace of the call's session.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_call import BROWSER_OFFER, PEER_ANSWER, PEER_OFFER, CallTestMixin
from tests.ua.test_invite_session import Observer
from wcs_twisted.gateway.call_events import FAILED_BY_RING_TIMEOUT
from wcs_twisted.gateway.call_table import CallSettings
from wcs_twisted.media.session import FAILED_BY_ICE
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.invite_session import InviteSession


def last_finish(connection):
    """
    The call object of the last finish message a connection got.
    """
    return [data[0] for name, data in connection.messages if name == "finish"][-1]


class RingTimeoutTests(CallTestMixin, SynchronousTestCase):
    """
    A call nobody answers is given up after settings.ring_timeout (default 60 s).
    """

    def test_default_is_sixty_seconds(self):
        """
        The call layer bounds ringing by default, as WCS-like gateways do.
        """
        self.assertEqual(CallSettings(local_domains=("x",)).ring_timeout, 60.0)

    def place_ringing_call(self):
        connection, session = self.connect("alice", "/a")
        self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[0].ring()
        self.network.run()
        return connection

    def test_outgoing_cancelled(self):
        """
        An outgoing call ringing longer than the timeout is CANCELled and the browser hears
        FAILED, sipStatus 408, "Failed by ring timeout"; its media is released.
        """
        connection = self.place_ringing_call()
        self.clock.advance(59)
        self.network.run()
        self.assertEqual(self.calls.get("c1").status.value, "RING")
        self.clock.advance(1)
        self.network.run()
        finish = last_finish(connection)
        self.assertEqual((finish["status"], finish["sipStatus"], finish["info"]),
                         ("FAILED", 408, FAILED_BY_RING_TIMEOUT))
        self.assertEqual(self.phone.observer.events[-1], ("terminated", "cancelled", True))
        self.assertEqual(len(self.calls), 0)
        self.assertTrue(all(s.closed for s in self.media.sessions))

    def test_answered_call_not_touched(self):
        """
        Once answered, the ring timer is gone: the call outlives it.
        """
        self.place_ringing_call()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.clock.advance(120)
        self.network.run()
        self.assertEqual(self.calls.get("c1").status.value, "ESTABLISHED")

    def test_zero_disables(self):
        """
        ring_timeout 0 leaves the ringing to the far end (the old behaviour).
        """
        self.calls.settings = CallSettings(local_domains=("10.0.0.1",), ring_timeout=0)
        self.place_ringing_call()
        self.clock.advance(120)
        self.network.run()
        self.assertEqual(self.calls.get("c1").status.value, "RING")

    def test_incoming_answered_480(self):
        """
        An incoming call the browser does not answer in time gets 480 towards the caller, and
        the browser hears FAILED "Failed by ring timeout" (its ringing stops).
        """
        connection, session = self.connect("alice", "/a")
        caller = Observer()
        InviteSession.outgoing(self.phone_core, self.clock, caller,
                               SIPURI.parse("sip:bob@10.0.0.2"),
                               SIPURI.parse("sip:alice@10.0.0.1"), PEER_OFFER)
        self.network.run()
        self.assertEqual(caller.events, [("provisional", 180)])
        self.clock.advance(60)
        self.network.run()
        self.assertEqual(caller.events[-1], ("failed", 480))
        finish = last_finish(connection)
        self.assertEqual((finish["status"], finish["sipStatus"], finish["info"]),
                         ("FAILED", 480, FAILED_BY_RING_TIMEOUT))
        self.assertEqual(len(self.calls), 0)


class KeepAliveGraceTests(CallTestMixin, SynchronousTestCase):
    """
    A keepAlive session is promised keep_alive.grace across a WebSocket reconnect; the browser
    leg's ICE consent (RFC 7675, ~30 s) must not end its calls before the grace does.
    """

    def setUp(self):
        super().setUp()
        self.sessions.clock = self.clock
        self.sessions.keep_alive_grace = 60

    def established(self, media_up=True):
        """
        A call of a keepAlive session, answered by the phone; its browser media connected
        unless C{media_up} is false.
        """
        connection, session = self.connect("alice", "/a")
        session.keep_alive = True
        self.calls.start_call(session, {"callId": "c1", "callee": "bob@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        call = self.calls.get("c1")
        if media_up:
            call.media_connected(call.webrtc)
        return connection, session, call

    def test_consent_lost_in_grace_keeps_the_call(self):
        """
        The WebSocket drops, then ICE consent expires: the SIP leg keeps the call until the
        grace ends, then it is hung up with BYE.
        """
        connection, session, call = self.established()
        self.sessions.detach(session, "socket lost")
        self.clock.advance(30)
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        call.media_inactive(call.webrtc)
        self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.assertNotIn("terminated", self.phone.observer.names())
        self.clock.advance(30)
        self.network.run()
        self.assertEqual(self.phone.observer.events[-1][0], "terminated")
        self.assertEqual(len(self.calls), 0)

    def test_consent_regained_before_reattach(self):
        """
        The browser's checks came back (its peer connection survives a WebSocket reconnect):
        after reattaching, the call goes on.
        """
        connection, session, call = self.established()
        self.sessions.detach(session, "socket lost")
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        call.media_connected(call.webrtc)
        self.sessions.reattach(session.auth_token, connection)
        self.clock.advance(120)
        self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")

    def test_consent_still_lost_after_reattach(self):
        """
        Reattached but the browser's media never came back: consent freshness applies again,
        and the call fails "Failed by ICE error" one consent timeout later.
        """
        connection, session, call = self.established()
        self.sessions.detach(session, "socket lost")
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        self.sessions.reattach(session.auth_token, connection)
        self.clock.advance(29)
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.clock.advance(1)
        self.network.run()
        finish = last_finish(connection)
        self.assertEqual((finish["status"], finish["info"]), ("FAILED", FAILED_BY_ICE))
        self.assertEqual(self.phone.observer.events[-1][0], "terminated")

    def test_not_keep_alive_fails_at_once(self):
        """
        A session that did not ask for keepAlive is promised nothing: a browser leg that lost
        consent ends the call at once, as before.
        """
        connection, session, call = self.established()
        session.keep_alive = False
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        self.network.run()
        self.assertEqual((last_finish(connection)["status"]), "FAILED")

    def test_consent_lost_before_the_socket_is_seen_dead(self):
        """
        A browser that lost its network loses consent at 30 s, but its WebSocket is seen dead
        only at 50 s (10 missed pings): the call is kept from the loss, then through the grace.
        """
        connection, session, call = self.established()
        self.clock.advance(30)
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        self.clock.advance(20)
        self.sessions.detach(session, "Terminated by keep-alive")
        self.clock.advance(59)
        self.network.run()
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.clock.advance(1)
        self.network.run()
        self.assertEqual(self.phone.observer.events[-1][0], "terminated")

    def test_attached_and_media_never_back(self):
        """
        The WebSocket stays up but the browser's media is gone for good (UDP blocked): the
        call fails once the grace has passed since the loss.
        """
        connection, session, call = self.established()
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        self.clock.advance(59)
        self.assertEqual(call.status.value, "ESTABLISHED")
        self.clock.advance(1)
        self.network.run()
        finish = last_finish(connection)
        self.assertEqual((finish["status"], finish["info"]), ("FAILED", FAILED_BY_ICE))

    def test_never_connected_fails_in_grace(self):
        """
        Only media that was up is waited for: a browser leg that never connected (its answer
        went to a dead socket) fails the call even in the grace.
        """
        connection, session, call = self.established(media_up=False)
        self.sessions.detach(session, "socket lost")
        call.media_failed(call.webrtc, FAILED_BY_ICE)
        self.network.run()
        self.assertEqual(len(self.calls), 0)
