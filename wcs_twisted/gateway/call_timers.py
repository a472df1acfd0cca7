# -*- test-case-name: tests.gateway.test_call_timers -*-
"""
The timers of a call that users feel, apart from its state machine (L{wcs_twisted.gateway.call}):

  - the ring timeout: an unanswered call is given up after C{settings.ring_timeout};
  - the keep-alive grace against ICE consent: a keepAlive session is promised keep_alive.grace
    across a WebSocket reconnect, and a browser that lost its network loses ICE consent
    (RFC 7675) after ~30 s, before the server even notices its WebSocket is dead.  So when the
    browser leg of a keepAlive session's call loses its media, the SIP leg keeps the call for
    the grace: our WebRTC transport has stopped sending but keeps its keys, and the browser's
    peer connection, which the Web SDK keeps across a WebSocket reconnect, resumes the media
    with its next consent check.  The session's grace ending hangs the call up; once the
    client is back (reattached, or never gone) and the media is not, the call fails.

The decision is written down in docs/security.md ("Timers").
"""

from __future__ import annotations

from wcs_twisted.gateway.call_events import UNANSWERED, FAILED_BY_RING_TIMEOUT, CallStatus

#: RFC 7675 section 5.1: the consent timeout (media/webrtc.py watches the same 30 s).
CONSENT_WINDOW = 30.0


class CallTimers:
    """
    Mixed into L{Call <wcs_twisted.gateway.call.Call>}: it uses the call's C{table}, C{status},
    C{sip}, C{webrtc}, C{session}, C{incoming}, C{_set_status} and C{fail}.
    """

    def _init_timers(self) -> None:
        self._ring_timer = None
        #: The browser leg got its media up once (only media that was up is waited for).
        self._browser_media_up = False
        #: Why the browser leg's media went away while its session was detached, or None.
        self._browser_media_lost: str | None = None
        self._consent_timer = None

    def _stop_timers(self) -> None:
        self._stop_ring_timer()
        timer, self._consent_timer = self._consent_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    # --- the ring timeout ---------------------------------------------------------------------

    def _start_ring_timer(self) -> None:
        """
        Bound the ringing (settings.ring_timeout): without it a call rings until the far end's
        Timer C, 3 minutes or more, and an incoming call until the caller gives up.
        """
        timeout = self.table.settings.ring_timeout
        if timeout > 0 and self._ring_timer is None and not self.status.released:
            self._ring_timer = self.table.clock.callLater(timeout, self._ring_expired)

    def _stop_ring_timer(self) -> None:
        timer, self._ring_timer = self._ring_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _ring_expired(self) -> None:
        """
        Nobody answered in time: CANCEL an outgoing INVITE (the client hears FAILED, 408), or
        answer an incoming one 480 (the browser hears FAILED and stops ringing).
        """
        self._ring_timer = None
        if self.status not in UNANSWERED or self.sip is None:
            return
        self.log.info("call {call_id} not answered in {timeout}s: {action}",
                      call_id=self.call_id, timeout=self.table.settings.ring_timeout,
                      action="480 to the caller" if self.incoming else "CANCEL")
        if self.incoming:
            self._set_status(CallStatus.FAILED, 480, info=FAILED_BY_RING_TIMEOUT)
            self.sip.reject(480, "Temporarily Unavailable")
        else:
            self._set_status(CallStatus.FAILED, 408, info=FAILED_BY_RING_TIMEOUT)
            self._cancelled_by_us = True
            self.sip.hang_up(reason=FAILED_BY_RING_TIMEOUT)

    # --- the browser's media across a keep-alive reconnect ------------------------------------

    def _keep_alive_grace(self) -> float:
        """
        The grace the call's session was promised (0: none, the session is not keepAlive).
        """
        session = self.session
        if session is None or not session.keep_alive:
            return 0.0
        return float(self.table.sessions.keep_alive_grace)

    def _waits_for_browser(self, leg, reason: str | None = None) -> bool:
        """
        Whether a media failure (C{reason}) or inactivity (no reason) of C{leg} is waited for
        rather than ending the call: the browser leg had media and the session is keepAlive.

        A browser that lost its network loses ICE consent after 30 s, but the server notices
        its WebSocket is dead only after keep_alive.probes pings (50 s by default): so the wait
        starts at the loss, attached or not, and lasts the grace.
        """
        grace = self._keep_alive_grace()
        if (leg is not self.webrtc or not self._browser_media_up or grace <= 0
                or self.status.released):
            return False
        if reason is not None and self._browser_media_lost is None:
            self._browser_media_lost = reason
            self._wait_for_browser(grace)
            self.log.info("call {call_id}: browser media lost ({reason}); the SIP leg keeps "
                          "the call up to {grace}s for the client to come back",
                          call_id=self.call_id, reason=reason, grace=grace)
        return True

    def _wait_for_browser(self, seconds: float) -> None:
        timer = self._consent_timer
        if timer is not None and timer.active():
            timer.cancel()
        self._consent_timer = self.table.clock.callLater(seconds, self._browser_wait_over)

    def _browser_media_connected(self) -> None:
        self._browser_media_up = True
        if self._browser_media_lost is not None:
            self._browser_media_lost = None
            self.log.info("call {call_id}: browser media back", call_id=self.call_id)
        timer, self._consent_timer = self._consent_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def session_reattached(self) -> None:
        """
        The client is back: a browser leg still without media gets one consent window to
        resume (consent freshness applies again), then the call fails.
        """
        if self._browser_media_lost is not None:
            self._wait_for_browser(CONSENT_WINDOW)

    def _browser_wait_over(self) -> None:
        """
        The wait is over: fail the call unless its session is detached (then the session's own
        grace timer closes it, and that hangs the call up).
        """
        self._consent_timer = None
        reason = self._browser_media_lost
        if reason is not None and not self.session.detached:
            self.fail(reason)
