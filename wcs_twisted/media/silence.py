# -*- test-case-name: tests.media.test_silence -*-
"""
Keeps a SIP leg's RTP flowing while nothing feeds it.

A REST-originated call, or a leg waiting for a stream to be injected, has no other leg
sending into it; the phone would receive nothing, and PBXs and carriers hang up on RTP
silence timers (baresip's C{rtp_timeout}, Asterisk's C{rtptimeout}).  A live but muted leg
sends silence frames in its codec at the packet rate, so that is what this sends, until a
real source (a bridge, an injected stream, DTMF) sends on the leg.

It only watches the leg's sent-packet counter, so nothing touches the media path: one
C{callLater} per leg, every 20 ms while it fills, every L{WATCH_INTERVAL} while something
else feeds the leg, none after L{SilenceFiller.stop}.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from wcs_twisted.media.session import PTIME

__all__ = ["WATCH_INTERVAL", "SilenceFiller"]

#: While a real source feeds the leg, how often to look whether it stopped.
WATCH_INTERVAL = 0.2


class SilenceFiller:
    """
    Sends one packet of silence every packet interval on C{leg} (an L{RTPSession}) while no
    one else sends on it.

    @ivar filled: silence packets sent.
    """

    def __init__(self, clock: IReactorTime, leg) -> None:
        self._clock = clock
        self._leg = leg
        self._payload: Optional[bytes] = None
        self._payload_type = 0
        self._call: Optional[IDelayedCall] = None
        self._seen = 0
        self._due = 0.0
        self.filled = 0

    @property
    def running(self) -> bool:
        """
        Whether a timer is armed.
        """
        return self._call is not None

    @property
    def filling(self) -> bool:
        """
        Whether silence is being sent (nothing else feeds the leg).
        """
        return self._call is not None and self._due != 0.0

    def start(self, payload: bytes, payload_type: int) -> None:
        """
        Fill with C{payload} (one packet of silence) sent as C{payload_type}; called again
        after a renegotiation changes the codec.
        """
        self._payload = payload
        self._payload_type = payload_type
        if self._call is None:
            # A leg about to be bridged gets no silence at all: fill only once nothing
            # was sent for a watch interval.
            self._watch()

    def stop(self) -> None:
        """
        Stop for good (the call ended).
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _fill(self) -> None:
        """
        Send now and every packet interval from now on.
        """
        self._due = self._clock.seconds()
        self._tick()

    def _tick(self) -> None:
        leg = self._leg
        if leg.packets_sent != self._seen or not leg.can_send:
            # Fed by another source, or on hold / no address yet: watch (5 Hz), don't tick.
            self._watch()
            return
        if self._payload is not None:
            leg.send_payload(self._payload, self._payload_type)
            self.filled += 1
        self._seen = leg.packets_sent
        self._due += PTIME / 1000.0
        self._call = self._clock.callLater(max(0.0, self._due - self._clock.seconds()),
                                           self._tick)

    def _watch(self) -> None:
        self._due = 0.0
        self._seen = self._leg.packets_sent
        self._call = self._clock.callLater(WATCH_INTERVAL, self._check)

    def _check(self) -> None:
        if self._leg.packets_sent != self._seen or not self._leg.can_send:
            self._watch()
        else:
            self._fill()
