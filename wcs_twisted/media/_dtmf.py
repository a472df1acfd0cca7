# -*- test-case-name: tests.media.test_rtp,tests.media.test_webrtc -*-
"""
RFC 4733 event sending and receiving shared by both kinds of leg.

A digit sent on a leg is a short burst of telephone-event packets paced one
packet interval apart on the leg's clock, during which relayed audio on the
same stream is held back so the receiver does not hear both (RFC 4733
section 2.5.1.1 allows either; sending both confuses some phones).  The
plain RTP leg (L{wcs_twisted.media.rtp.RTPSession}) and the WebRTC leg
(L{wcs_twisted.media.webrtc.WebRTCTransport}) differ only in how a finished
packet leaves (plain or SRTP-protected), so the pacing lives here as a
mixin and each leg supplies the last step.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from wcs_twisted.media.rtp_packet import (
    RTPRewriter,
    TelephoneEvent,
    TelephoneEventReceiver,
    TelephoneEventSender,
    build_rtp,
)

__all__ = ["TelephoneEventPacing"]


class TelephoneEventPacing:
    """
    Mixin: RFC 4733 digits out (paced on the clock, audio muted meanwhile)
    and in (each event reported once to C{digit_received}).

    The host class provides C{_clock}, C{packet_interval}, C{rewriter},
    C{ssrc}, C{_stopped}, C{_sending} (whether media may be sent at all),
    C{_muted} (read by its relay path), C{_can_send_event()} and
    C{_write_event(packet)}.
    """

    log: Logger

    digit_received: Optional[Callable[[str], None]] = None

    _clock: IReactorTime
    packet_interval: float
    rewriter: RTPRewriter
    ssrc: int
    _stopped: bool
    _sending: bool
    _muted: bool

    def _init_telephone_events(self) -> None:
        self._te_pt = -1
        self._te_rx_pt = -1
        self._te_clock_rate = 8000
        self._te_receiver = TelephoneEventReceiver()
        self._te_sender: Optional[TelephoneEventSender] = None
        self._digits: deque[tuple[str, float]] = deque()
        self._dtmf_call: Optional[IDelayedCall] = None

    def _can_send_event(self) -> bool:
        raise NotImplementedError()

    def _write_event(self, packet: bytes) -> None:
        raise NotImplementedError()

    def _update_muted(self) -> None:
        """
        Recompute C{_muted}: relayed audio is dropped while sending is paused
        or an event is being sent.
        """
        self._muted = not self._sending or (
            self._te_sender is not None and self._te_sender.active
        )

    def set_telephone_event(
        self,
        payload_type: Optional[int],
        clock_rate: int = 8000,
        receive_payload_type: Optional[int] = None,
    ) -> None:
        """
        The negotiated telephone-event payload type (None: not negotiated)
        and its clock rate.  Received packets are recognised by
        C{receive_payload_type} when the two sides numbered the format
        differently (it defaults to C{payload_type}).
        """
        self._te_pt = -1 if payload_type is None else payload_type
        if receive_payload_type is None:
            receive_payload_type = payload_type
        self._te_rx_pt = -1 if receive_payload_type is None else receive_payload_type
        self._te_clock_rate = clock_rate

    @property
    def telephone_event_payload_type(self) -> Optional[int]:
        """
        The payload type digits are sent with, or C{None}.
        """
        return None if self._te_pt < 0 else self._te_pt

    def _telephone_event(self, data: bytes) -> None:
        event: Optional[TelephoneEvent] = self._te_receiver.receive_packet(data)
        if event is not None and event.digit is not None:
            self.log.debug("RFC 4733 digit {digit} received", digit=event.digit)
            if self.digit_received is not None:
                self.digit_received(event.digit)

    def send_digit(self, digit: str, duration: float = 0.1) -> None:
        """
        Send one DTMF digit as RFC 4733 events, after any digits queued
        before it; relayed audio is suppressed while an event is sent.

        @raise ValueError: if telephone-event was not negotiated or the digit
            is unknown.
        """
        if self._te_pt < 0:
            raise ValueError("telephone-event was not negotiated")
        # Validates the digit and duration now rather than when it is sent.
        TelephoneEventSender().start(digit, max(1, round(duration * self._te_clock_rate)), 0)
        self._digits.append((digit, duration))
        if self._dtmf_call is None and not (self._te_sender and self._te_sender.active):
            self._next_digit()

    def _cancel_digits(self) -> None:
        if self._dtmf_call is not None and self._dtmf_call.active():
            self._dtmf_call.cancel()
        self._dtmf_call = None
        self._digits.clear()

    def _next_digit(self) -> None:
        self._dtmf_call = None
        if self._stopped:
            return
        if not self._digits:
            self._te_sender = None
            self._update_muted()
            return
        digit, duration = self._digits.popleft()
        interval = round(self._te_clock_rate * self.packet_interval)
        sender = self._te_sender = TelephoneEventSender(packet_interval=interval)
        start = (self.rewriter.last_timestamp + self.rewriter.timestamp_step) & 0xFFFFFFFF
        sender.start(digit, max(1, round(duration * self._te_clock_rate)), start)
        self._muted = True
        self._dtmf_step()

    def _dtmf_step(self) -> None:
        self._dtmf_call = None
        sender = self._te_sender
        if self._stopped or sender is None:
            return
        packet = sender.next_packet()
        if packet is None:
            # Event over: the media timeline continues after it, then the
            # next queued digit follows one packet interval later.
            self.rewriter.last_timestamp = (
                sender.timestamp + sender.duration
            ) & 0xFFFFFFFF
            self._dtmf_call = self._clock.callLater(self.packet_interval, self._next_digit)
            return
        if self._sending and self._can_send_event():
            self._write_event(
                build_rtp(
                    self._te_pt,
                    self.rewriter.allocate(),
                    packet.timestamp,
                    self.ssrc,
                    packet.payload,
                    packet.marker,
                )
            )
        self._dtmf_call = self._clock.callLater(self.packet_interval, self._dtmf_step)
