# -*- test-case-name: tests.media.test_rtp,tests.media.test_webrtc -*-
"""
The cold-path bookkeeping shared by both kinds of leg.

The plain RTP leg (L{wcs_twisted.media.rtp.RTPSession}) and the WebRTC leg
(L{wcs_twisted.media.webrtc.WebRTCTransport}) differ in how packets enter and
leave (plain UDP with latching, or ICE-lite + DTLS-SRTP) but keep the same
identity (SSRC, CNAME, rewriter), counters, direction switch, inactivity
watchdog and RTCP reports.  That part lives here as a mixin; the per-packet
paths stay in each leg, unchanged, so this adds no indirection per packet.
"""

from __future__ import annotations

import random
from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReactorUDP

from wcs_twisted.media import rtcp
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import RTPRewriter, build_rtp


class _MediaLeg:
    """
    Mixin for a leg: call L{_init_leg} and L{_init_counters} from
    C{__init__}.  The leg provides C{_update_muted} (from
    L{TelephoneEventPacing <wcs_twisted.media._dtmf.TelephoneEventPacing>}),
    C{_tick}, C{_next_rtcp}, C{_started}, C{_stopped} and C{rtcp_received}.
    """

    #: The longest the leg's timer may sleep, or None (only the next RTCP
    #: report and the watchdog decide).
    _max_tick_interval: Optional[float] = None

    def _init_leg(
        self,
        reactor: IReactorUDP,
        local_host: str,
        port_pool: Optional[PortPool],
        clock: Optional[IReactorTime],
        clock_rate: int,
        packet_interval: float,
        rtcp_interval: float,
        ssrc: Optional[int],
        cname: Optional[str],
        rng: Optional[random.Random],
    ) -> None:
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor  # type: ignore[assignment]
        self._local_host = local_host
        self._pool = port_pool
        self._rng = rng if rng is not None else random.SystemRandom()
        self.packet_interval = packet_interval
        self.rtcp_interval = rtcp_interval
        self.ssrc = ssrc if ssrc is not None else self._rng.getrandbits(32)
        self.cname = (cname or f"wcs-{self.ssrc:08x}").encode("utf-8")
        self.rewriter = RTPRewriter(
            self.ssrc,
            initial_sequence_number=self._rng.getrandbits(15),
            initial_timestamp=self._rng.getrandbits(32),
            timestamp_step=max(1, round(clock_rate * packet_interval)),
        )

    def _init_counters(self) -> None:
        # Direction: _receiving off drops received media and pauses the
        # watchdog; _sending off (or an RFC 4733 event in progress, see
        # _muted) suppresses what we send.
        self._receiving = True
        self._sending = True
        self._muted = False

        # counters
        self.packets_received = 0
        self.octets_received = 0
        self.packets_sent = 0
        self.octets_sent = 0
        self.packets_dropped = 0
        self.rtcp_sent = 0
        self.rtcp_packets_received = 0
        self._last_received: Optional[bytes] = None

        # RTCP state
        self._stats = rtcp.ReceptionStatistics()
        self._sent_at_last_report = 0

        # watchdog state
        self._watch_timeout: Optional[float] = None
        self._watch_count = 0
        self._watch_since = 0.0
        self._watch_fired = False

        # the one timer of the leg; RFC 4733 pacing has its own
        self._tick_call: Optional[IDelayedCall] = None

    # -- direction ---------------------------------------------------------------

    def set_direction(self, sending: bool, receiving: bool) -> None:
        """
        Pause or resume each half of the stream: not sending drops what the
        bridge relays and produces, and RFC 4733 events (audio sequence
        numbers stay gap-free); not receiving drops received media before the
        bridge sees it and pauses the watchdog, which counts afresh when
        receiving resumes.  RTCP (and ICE consent) carry on (RFC 3264
        section 5.1).
        """
        if receiving and not self._receiving:
            self._watch_since = self._clock.seconds()
            self._watch_count = self.packets_received
            self._watch_fired = False
        self._receiving = receiving
        self._sending = sending
        self._update_muted()

    # -- locally produced media ----------------------------------------------------

    def _next_payload_packet(self, payload: bytes, payload_type: int, marker: bool) -> bytes:
        """
        Build the RTP packet for locally produced media: the next sequence
        number, the timestamp one packet interval after the last one.
        """
        rewriter = self.rewriter
        rewriter.resync()
        seq = rewriter.allocate()
        ts = (rewriter.last_timestamp + rewriter.timestamp_step) & 0xFFFFFFFF
        rewriter.last_timestamp = ts
        return build_rtp(payload_type, seq, ts, self.ssrc, payload, marker)

    # -- watchdog -----------------------------------------------------------------

    def watch_activity(self, timeout: Optional[float]) -> None:
        """
        Call C{activity_lost} when no media arrives for C{timeout} seconds
        (detected within a fifth of the timeout after it); C{None} stops
        watching.  Counting starts now.
        """
        self._watch_timeout = timeout
        self._watch_since = self._clock.seconds()
        self._watch_count = self.packets_received
        self._watch_fired = False
        if self._started and not self._stopped:
            self._schedule_tick()

    def _activity_stalled(self, now: float) -> bool:
        """
        Advance the watchdog; return whether it fired just now (no media for
        the watched time since the last packet, once per silence).
        """
        timeout = self._watch_timeout
        if timeout is None or not self._receiving:
            return False
        if self.packets_received != self._watch_count:
            self._watch_count = self.packets_received
            self._watch_since = now
            self._watch_fired = False
        elif not self._watch_fired and now - self._watch_since >= timeout:
            self._watch_fired = True
            return True
        return False

    # -- the leg's timer --------------------------------------------------------------

    def _schedule_tick(self) -> None:
        if self._tick_call is not None and self._tick_call.active():
            self._tick_call.cancel()
        now = self._clock.seconds()
        due = self._next_rtcp
        assert due is not None
        if self._max_tick_interval is not None:
            due = min(due, now + self._max_tick_interval)
        if self._watch_timeout is not None:
            due = min(due, now + max(self._watch_timeout / 5, 0.05))
        self._tick_call = self._clock.callLater(max(0.0, due - now), self._tick)

    # -- RTCP -----------------------------------------------------------------------

    def _rtcp_delay(self) -> float:
        # RFC 3550 section 6.3.1: randomized over [0.5, 1.5] times the interval.
        return self.rtcp_interval * (0.5 + self._rng.random())

    def _build_report(self, now: float) -> bytes:
        """
        Our SR (when we sent since the last report) or RR, then SDES.
        """
        if self._last_received is not None:
            self._stats.update(self._last_received, self.packets_received)
        block = self._stats.report_block(now)
        reports = (block,) if block is not None else ()
        if self.packets_sent != self._sent_at_last_report:
            self._sent_at_last_report = self.packets_sent
            report = rtcp.build_sr(
                self.ssrc,
                rtcp.ntp_timestamp(now),
                self.rewriter.last_timestamp,
                self.packets_sent,
                self.octets_sent,
                reports,
            )
        else:
            report = rtcp.build_rr(self.ssrc, reports)
        return report + rtcp.build_sdes(self.ssrc, self.cname)

    def _deliver_rtcp(self, packets: list[rtcp.RTCPPacket]) -> None:
        """
        Note the peer's sender reports and pass the parsed packets on.
        """
        self.rtcp_packets_received += 1
        now = self._clock.seconds()
        for packet in packets:
            if packet.packet_type == rtcp.RTCP_SR:
                self._stats.note_sender_report(packet, now)
        if self.rtcp_received is not None:
            self.rtcp_received(packets)
