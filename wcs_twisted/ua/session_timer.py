# -*- test-case-name: tests.ua.test_invite_session -*-
"""
Session timers (RFC 4028) for an INVITE session: the interval both sides agreed on, who
refreshes, and the timer that refreshes or ends the dialog.

Trunks use them to clear calls whose far end vanished without a BYE: a call whose refresher
stops refreshing is ended by the other side.  So we refresh when we are the refresher, and send
BYE when the peer was to refresh and did not (RFC 4028 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from twisted.logger import Logger

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import parse_params
from wcs_twisted.sip.message import option_tags

#: The option tag of RFC 4028.
OPTION = "timer"
#: The smallest interval we accept (RFC 4028 4: Min-SE is at least 90 s).
MIN_SE = 90
#: The interval our INVITEs ask for (RFC 4028 4 recommends 1800 s).
DEFAULT_INTERVAL = 1800
#: The shortest interval we run a timer for, whatever a 2xx says (no refresh storm).
SHORTEST_INTERVAL = 2


def _seconds(text: str | None) -> int | None:
    try:
        value = int((text or "").strip())
    except ValueError:
        return None
    return value if value > 0 else None


@dataclass(frozen=True)
class SessionInterval:
    """
    A Session-Expires value: delta-seconds and the refresher (C{uac}, C{uas} or None).
    """

    seconds: int
    refresher: str | None = None

    @classmethod
    def of(cls, message) -> "SessionInterval | None":
        """
        The Session-Expires of C{message}, or None when absent or unreadable.
        """
        value = message.headers.get("Session-Expires")
        if not value:
            return None
        delta, _, rest = value.partition(";")
        seconds = _seconds(delta)
        if seconds is None:
            return None
        try:
            params = {name.lower(): value for name, value in parse_params(
                ";" + rest if rest else "", "Session-Expires")}
        except RemoteProtocolError:  # a malformed parameter list: the delta alone still counts
            params = {}
        refresher = (params.get("refresher") or "").lower()
        return cls(seconds, refresher if refresher in ("uac", "uas") else None)

    def __str__(self) -> str:
        return f"{self.seconds};refresher={self.refresher}" if self.refresher else str(
            self.seconds)


def min_se(message) -> int:
    """
    The Min-SE of C{message} (0 without one).
    """
    return _seconds(message.headers.get("Min-SE")) or 0


def interval_too_small(request, minimum: int = MIN_SE, to_tag: str | None = None):
    """
    The 422 (with our Min-SE) for a request asking for an interval below C{minimum}, or None
    when it may be served (RFC 4028 8.1).
    """
    interval = SessionInterval.of(request)
    if interval is None or interval.seconds >= minimum:
        return None
    response = request.create_response(422, "Session Interval Too Small", to_tag=to_tag)
    response.headers.add("Min-SE", str(minimum))
    return response


def answer_interval(request, supports_timer: bool) -> SessionInterval | None:
    """
    What a UAS answers to a request's Session-Expires (RFC 4028 9): the same interval, and the
    refresher the UAC asked for, else the UAC when it supports timers (it then refreshes), else
    us.  None: the request asks for no session timer.
    """
    asked = SessionInterval.of(request)
    if asked is None:
        return None
    refresher = asked.refresher or ("uac" if supports_timer else "uas")
    return SessionInterval(asked.seconds, refresher)


class SessionTimer:
    """
    One dialog's timer: C{refresh} at half the interval when we refresh, else C{expire} when
    the peer's refresh is overdue (interval minus min(32, interval/3), RFC 4028 10).
    """

    log = Logger()

    def __init__(self, clock, refresh: Callable[[], None], expire: Callable[[], None]) -> None:
        self.clock = clock
        self._refresh = refresh
        self._expire = expire
        self._call = None
        #: The running interval, or None when no session timer runs.
        self.interval: SessionInterval | None = None
        self.we_refresh = False

    def start(self, interval: SessionInterval, we_refresh: bool) -> None:
        """
        (Re)start after a session refresh succeeded with C{interval}.
        """
        self.stop()
        self.interval = interval
        self.we_refresh = we_refresh
        seconds = max(interval.seconds, SHORTEST_INTERVAL)
        if we_refresh:
            self._call = self.clock.callLater(seconds / 2, self._fire, self._refresh)
        else:
            self._call = self.clock.callLater(seconds - min(32, seconds / 3), self._fire,
                                              self._expire)

    def _fire(self, action: Callable[[], None]) -> None:
        self._call = None
        action()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def cancel(self) -> None:
        """
        No session timer any more (the dialog ended, or the peer stopped asking for one).
        """
        self.stop()
        self.interval = None

    # --- the headers of one session refresh ------------------------------------------------

    def answer(self, request, response, peer_supports: bool) -> None:
        """
        As UAS of C{request} (the INVITE, a re-INVITE or an UPDATE): put the agreed interval in
        our 2xx C{response} and restart; a request without Session-Expires turns the timer off.
        """
        supports = peer_supports or OPTION in option_tags(request, "Supported")
        interval = answer_interval(request, supports)
        if interval is None:
            self.cancel()
            return
        response.headers.add("Session-Expires", str(interval))
        if supports:
            response.headers.add("Require", OPTION)
        self.start(interval, we_refresh=interval.refresher == "uas")

    def confirmed(self, response) -> None:
        """
        As UAC: the 2xx to our INVITE, re-INVITE or UPDATE sets the interval (none: no timer).
        """
        interval = SessionInterval.of(response)
        if interval is None:
            self.cancel()
            return
        self.start(interval, we_refresh=(interval.refresher or "uac") == "uac")

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """
        What our re-INVITE or UPDATE carries while a timer runs: it is a session refresh too,
        with the same interval and refresher (RFC 4028 7.4).
        """
        if self.interval is None:
            return ()
        refresher = "uac" if self.we_refresh else "uas"
        return (("Session-Expires", str(SessionInterval(self.interval.seconds, refresher))),
                ("Supported", OPTION))
