# -*- test-case-name: tests.media.test_webrtc -*-
"""
The WebRTC leg's transport: ICE-lite, DTLS-SRTP and SRTP on one Twisted UDP
port, with no asyncio task and no decoder on the media path.

A stock aiortc C{RTCPeerConnection} parses every packet into an object, pushes
it through asyncio queues and a jitter buffer, and decodes it in a thread per
receiver; that is ~3% of a core per leg.  A relaying gateway needs none of it:
when both legs agree on a codec the encoded payload only has to be decrypted,
re-stamped and sent.  So this leg is built from aiortc's lower layers -
its certificate and SRTP profile table (L{wcs_twisted.media.dtls}), aioice's
STUN codec (L{wcs_twisted.media.ice_lite}), libsrtp through pylibsrtp - driven
by one Twisted C{DatagramProtocol}:

  - first byte 0-3: STUN checks, answered by an ICE-lite agent which selects
    the browser's address from its nominations (RFC 8445 section 7.3);
  - 20-63: DTLS, fed to the handshake (RFC 5764); when it completes the
    libsrtp sessions are taken out;
  - 128-191: SRTP/SRTCP from the selected address, split by RFC 5761 and
    unprotected; RTP goes unparsed to the C{packet_received} slot.  From
    another address that passed a check, SRTP that authenticates moves the
    selection there (the browser roamed); from any other address it is dropped.

Sending protects a packet the bridge already rewrote in place.  Per packet
that is one libsrtp call each way plus a few struct operations (see
docs/media.md for the measured cost).  Transcoding, when the codecs differ,
happens in the bridge with aiortc's or PyAV's codecs; this transport only moves
encoded packets.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import pylibsrtp
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from wcs_twisted.media import rtcp
from wcs_twisted.media._dtmf import TelephoneEventPacing
from wcs_twisted.media._leg import _MediaLeg
from wcs_twisted.media.datagram_reading import read_one_datagram_per_wakeup
from wcs_twisted.media.dtls import DTLSSRTPEndpoint, DTLSState, RTCCertificate
from wcs_twisted.media.ice_lite import CONSENT_TIMEOUT, ICELiteAgent, candidate_priority
from wcs_twisted.media.ports import PortPool, PortReservation
from wcs_twisted.media.rtp_packet import RTP_HEADER_SIZE, RTPRewriter

__all__ = ["CONSENT_TIMEOUT", "WebRTCLocalParameters", "WebRTCTransport", "RTCCertificate"]

Address = tuple[str, int]

#: DTLS datagrams kept while the peer's fingerprint is not known yet.
EARLY_DTLS_LIMIT = 8
#: Video datagrams kept for retransmission on NACK (about 4 s at 30 frames/s of one packet).
VIDEO_HISTORY = 512


@dataclass(frozen=True)
class WebRTCLocalParameters:
    """
    What the SDP layer puts in our offer or answer for this transport
    (RFC 8839 ICE attributes, RFC 8122 fingerprint, one host candidate).
    """

    ice_ufrag: str
    ice_pwd: str
    ice_lite: bool
    fingerprints: tuple[tuple[str, str], ...]
    candidate_host: str
    candidate_port: int
    candidate_priority: int

    @property
    def candidate(self) -> str:
        """
        The a=candidate value of our single host candidate.
        """
        return (
            f"1 1 udp {self.candidate_priority} {self.candidate_host} "
            f"{self.candidate_port} typ host"
        )


class WebRTCTransport(_MediaLeg, TelephoneEventPacing, DatagramProtocol):
    """
    One bundled, rtcp-muxed WebRTC transport towards a browser.

    Audio goes out on L{ssrc} through L{rewriter}, video (bundled on the same
    port, RFC 8843) on L{video_ssrc} through L{video_rewriter}.

    @ivar packet_received: called with each decrypted RTP packet (C{bytes}).
    @ivar rtcp_received: called with the parsed packets of each SRTCP
        datagram (PLI/FIR for keyframe requests), or C{None}.
    @ivar state_changed: called with C{"connected"}, C{"failed"} or
        C{"closed"}.
    @ivar activity_lost: called once when no media arrived for the watched
        time, or when ICE consent expired.
    @ivar digit_received: called with RFC 4733 digits from the browser.
    """

    log = Logger()

    packet_received: Optional[Callable[[bytes], None]] = None
    rtcp_received: Optional[Callable[[list[rtcp.RTCPPacket]], None]] = None
    state_changed: Optional[Callable[[str], None]] = None
    activity_lost: Optional[Callable[["WebRTCTransport"], None]] = None
    digit_received: Optional[Callable[[str], None]] = None

    def __init__(
        self,
        reactor: IReactorUDP,
        local_host: str,
        certificate: RTCCertificate,
        port_pool: Optional[PortPool] = None,
        *,
        clock: Optional[IReactorTime] = None,
        advertised_host: Optional[str] = None,
        clock_rate: int = 48000,
        packet_interval: float = 0.02,
        rtcp_interval: float = 5.0,
        ssrc: Optional[int] = None,
        cname: Optional[str] = None,
        rng: Optional[random.Random] = None,
        ice_ufrag: Optional[str] = None,
        ice_pwd: Optional[str] = None,
    ) -> None:
        """
        @param local_host: the address to bind.
        @param certificate: the DTLS certificate (one per process will do).
        @param port_pool: where the port comes from (only the even port of a
            pair is bound: WebRTC multiplexes RTCP); an ephemeral port without.
        @param advertised_host: the address put in the candidate, when the
            bound one is not reachable as such (a public address before NAT).
        """
        self._init_leg(
            reactor, local_host, port_pool, clock, clock_rate, packet_interval,
            rtcp_interval, ssrc, cname, rng,
        )
        self._advertised_host = advertised_host or local_host
        self._certificate = certificate
        self.video_ssrc = self._rng.getrandbits(32)
        while self.video_ssrc == self.ssrc:
            self.video_ssrc = self._rng.getrandbits(32)
        # 90 kHz video clock, 30 frames/s: the step used across a source switch.
        self.video_rewriter = RTPRewriter(
            self.video_ssrc,
            initial_sequence_number=self._rng.getrandbits(15),
            initial_timestamp=self._rng.getrandbits(32),
            timestamp_step=3000,
        )
        #: The last VIDEO_HISTORY SRTP video datagrams sent, by sequence number, for NACKs.
        self._video_sent: list[Optional[bytes]] = [None] * VIDEO_HISTORY
        self.ice = ICELiteAgent(ice_ufrag, ice_pwd)
        self.dtls: Optional[DTLSSRTPEndpoint] = None
        self._early_dtls: deque[bytes] = deque(maxlen=EARLY_DTLS_LIMIT)

        self._port = None
        self._reservation: Optional[PortReservation] = None
        self._started = False
        self._stopped = False
        self.state = "new"

        # hot-path state: the selected address and the libsrtp sessions
        self._selected: Optional[Address] = None
        #: The port's socket.sendto once started (see L{_send}).
        self._sendto: Optional[Callable[[bytes, Address], object]] = None
        self._rx: Optional[pylibsrtp.Session] = None
        self._tx: Optional[pylibsrtp.Session] = None
        #: The SRTP sessions (rx, tx) put aside while ICE consent is lost (RFC 7675).
        self._keys_without_consent: Optional[tuple] = None

        # direction (see set_direction), counters, RTCP statistics, watchdog,
        # the leg's timer; then RFC 4733
        self._init_counters()
        self._next_rtcp = 0.0
        self._dtls_call: Optional[IDelayedCall] = None
        self._init_telephone_events()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        """
        The bound (host, port); valid after L{start}.
        """
        if self._port is None:
            raise RuntimeError("WebRTC transport is not started")
        return (self._local_host, self._port.getHost().port)

    @property
    def local_parameters(self) -> WebRTCLocalParameters:
        """
        ICE credentials, fingerprints and the host candidate for the SDP.
        """
        return WebRTCLocalParameters(
            ice_ufrag=self.ice.local_username,
            ice_pwd=self.ice.local_password,
            ice_lite=True,
            fingerprints=tuple(
                (f.algorithm, f.value) for f in self._certificate.getFingerprints()
            ),
            candidate_host=self._advertised_host,
            candidate_port=self.local_address[1],
            candidate_priority=candidate_priority(),
        )

    @property
    def remote_address(self) -> Optional[Address]:
        """
        The browser address ICE selected, or C{None}.
        """
        return self._selected

    def start(self) -> None:
        """
        Bind the port and start the leg's timer.
        """
        if self._started:
            return
        if self._pool is None:
            self._port = self._reactor.listenUDP(0, self, interface=self._local_host)
        else:
            # Only the even port: WebRTC multiplexes RTCP (RFC 5761).
            self._reservation, self._port = self._pool.bind(
                lambda r: self._reactor.listenUDP(r.rtp_port, self, interface=self._local_host),
                busy=(CannotListenError,),
            )
        self._started = True
        read_one_datagram_per_wakeup(self._reactor, self._port)
        # Test doubles have no socket: they keep Port.write.
        sock = getattr(self._port, "socket", None)
        self._sendto = None if sock is None else sock.sendto
        self._next_rtcp = self._clock.seconds() + self._rtcp_delay()
        self._schedule_tick()

    def stop(self) -> defer.Deferred[None]:
        """
        Send close_notify, stop the timers, close the port, free the pair.
        """
        if self._stopped:
            return defer.succeed(None)
        self._stopped = True
        for call in (self._tick_call, self._dtls_call):
            if call is not None and call.active():
                call.cancel()
        self._tick_call = self._dtls_call = None
        self._cancel_digits()
        try:
            if self.dtls is not None and self._selected is not None and self.transport:
                for datagram in self.dtls.close():
                    self.transport.write(datagram, self._selected)
        finally:
            # The bridge may still relay into a stopped leg: make that a no-op.
            self._rx = self._tx = self._keys_without_consent = None
            self._sendto = None
            port, self._port = self._port, None
            # Unbind before the number goes back to the pool, whatever happens next.
            stopped = (defer.succeed(None) if port is None
                       else defer.maybeDeferred(port.stopListening))
            if self._reservation is not None:
                self._reservation.release()
        self._set_state("closed")
        return stopped.addCallback(lambda _: None)

    def set_remote(
        self,
        ice_ufrag: Optional[str],
        fingerprints: list[tuple[str, str]],
        dtls_role: str = "server",
    ) -> None:
        """
        Take the browser's ICE ufrag and certificate fingerprints from its
        SDP, and our DTLS role: C{"server"} when the browser is a=setup:active
        (always, with browsers as answerer, and when we answered passive).
        """
        self.ice.set_remote_username(ice_ufrag)
        if self.dtls is not None:
            return
        self.dtls = DTLSSRTPEndpoint(self._certificate, dtls_role, fingerprints)
        if dtls_role == "server":
            self.dtls.start()  # waits for the ClientHello
        elif self._selected is not None:
            self._send_dtls(self.dtls.start())
        while self._early_dtls:
            self._dtls_datagram(self._early_dtls.popleft())

    # -- receive path ------------------------------------------------------------

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        rx = self._rx
        if (
            addr == self._selected
            and rx is not None
            and len(data) > RTP_HEADER_SIZE
            and 127 < data[0] < 192
        ):
            if 191 < data[1] < 224:
                self._srtcp(data)
                return
            try:
                packet = rx.unprotect(data)
            except pylibsrtp.Error:
                self.packets_dropped += 1
                return
            self.packets_received += 1
            self.octets_received += len(packet)
            self._last_received = packet
            if not self._receiving:
                return
            if (packet[1] & 0x7F) == self._te_rx_pt:
                self._telephone_event(packet)
            callback = self.packet_received
            if callback is not None:
                callback(packet)
            return
        self._demultiplex(data, addr)

    def _demultiplex(self, data: bytes, addr: Address) -> None:
        if not data:
            return
        first = data[0]
        if first < 4:
            result = self.ice.receive(data, addr, self._clock.seconds())
            if result.response is not None and self.transport is not None:
                self.transport.write(result.response, addr)
            if result.authenticated and self._keys_without_consent is not None:
                (self._rx, self._tx), self._keys_without_consent = self._keys_without_consent, None
                self.log.info("ICE consent regained from {address}", address=addr)
                self._set_state("connected")
            if result.selected_changed:
                self._selected = self.ice.selected
                self.log.info("ICE selected {address}", address=self._selected)
                dtls = self.dtls
                if dtls is not None and dtls.role == "client" and dtls.state is DTLSState.NEW:
                    self._send_dtls(dtls.start())
        elif 19 < first < 64:
            if addr != self._selected:
                self.packets_dropped += 1
            elif self.dtls is None:
                self._early_dtls.append(data)
            else:
                self._dtls_datagram(data)
        elif (
            127 < first < 192
            and self._rx is not None
            and len(data) > RTP_HEADER_SIZE
            and addr != self._selected
            and self.ice.validated(addr, self._clock.seconds())
        ):
            self._roam(data, addr)
        else:
            self.packets_dropped += 1

    def _roam(self, data: bytes, addr: Address) -> None:
        """
        SRTP from C{addr}, which passed a check but is not selected: the
        browser's address changed (NAT rebinding, another network) and its
        media followed its consent checks there.  Take it through the fast
        path as if selected; keep the selection only if it authenticated.
        """
        previous, dropped = self._selected, self.packets_dropped
        self._selected = addr
        self.datagramReceived(data, addr)
        if self.packets_dropped != dropped:
            self._selected = previous
            return
        self.ice.select(addr)
        self.log.info("ICE selected {address} (was {previous}): authenticated media "
                      "followed a check from it", address=addr, previous=previous)

    def _dtls_datagram(self, data: bytes) -> None:
        assert self.dtls is not None
        before = self.dtls.state
        self._send_dtls(self.dtls.receive(data))
        after = self.dtls.state
        if after is not before:
            if after is DTLSState.CONNECTED:
                self._rx = self.dtls.rx_srtp
                self._tx = self.dtls.tx_srtp
                self.log.info(
                    "DTLS-SRTP connected with {address} ({profile})",
                    address=self._selected,
                    profile=self.dtls.profile.openssl_profile.decode()
                    if self.dtls.profile else None,
                )
                self._set_state("connected")
            elif after is DTLSState.FAILED:
                self.log.warn("DTLS failed: {reason}", reason=self.dtls.error)
                self._set_state("failed")
            elif after is DTLSState.CLOSED:
                self._rx = self._tx = None
                self._set_state("closed")

    def _send(self, data: bytes) -> None:
        """
        Send to the selected address straight through the socket: ICE took
        that address from recvfrom, so Twisted's per-write checks that it is
        an IP literal (~6 % of a relayed call's CPU) have nothing to find.
        Any socket error goes through C{Port.write}, which handles EINTR,
        EMSGSIZE and ECONNREFUSED.
        """
        sendto = self._sendto
        if sendto is not None:
            try:
                sendto(data, self._selected)
                return
            except OSError:
                pass
        self.transport.write(data, self._selected)

    def _send_dtls(self, datagrams: list[bytes]) -> None:
        if self._selected is not None and self.transport is not None:
            for datagram in datagrams:
                self.transport.write(datagram, self._selected)
        self._schedule_dtls_timer()

    def _schedule_dtls_timer(self) -> None:
        if self._dtls_call is not None and self._dtls_call.active():
            self._dtls_call.cancel()
        self._dtls_call = None
        if self.dtls is None or self._stopped:
            return
        timeout = self.dtls.timeout()
        if timeout is not None:
            self._dtls_call = self._clock.callLater(timeout, self._dtls_timeout)

    def _dtls_timeout(self) -> None:
        self._dtls_call = None
        if self.dtls is not None:
            self._send_dtls(self.dtls.handle_timeout())

    def _srtcp(self, data: bytes) -> None:
        assert self._rx is not None
        try:
            plain = self._rx.unprotect_rtcp(data)
            packets = rtcp.parse_compound(plain)
        except (pylibsrtp.Error, ValueError):
            self.packets_dropped += 1
            return
        self._deliver_rtcp(packets)

    # -- send path ---------------------------------------------------------------

    def send_packet(self, buf: bytearray) -> None:
        """
        Rewrite the audio RTP packet in C{buf} onto our audio stream, protect
        and send it; dropped until DTLS-SRTP is up, and (sequence kept
        gap-free) while sending is paused or an RFC 4733 event is sent.
        """
        tx = self._tx
        if tx is None:
            return
        if self._muted:
            self.rewriter.skip()
            return
        self.rewriter.rewrite(buf)
        self._send(tx.protect(bytes(buf)))
        self.packets_sent += 1
        self.octets_sent += len(buf) - RTP_HEADER_SIZE

    def send_video_packet(self, buf: bytearray) -> None:
        """
        Like L{send_packet}, onto the video stream (L{video_rewriter}).
        """
        tx = self._tx
        if tx is None or not self._sending:
            return
        self.video_rewriter.rewrite(buf)
        data = tx.protect(bytes(buf))
        self._video_sent[(buf[2] << 8 | buf[3]) % VIDEO_HISTORY] = data
        self._send(data)
        self.packets_sent += 1
        self.octets_sent += len(buf) - RTP_HEADER_SIZE

    def retransmit_video(self, lost) -> list[int]:
        """
        Send again the SRTP video datagrams numbered C{lost} (a NACK, RFC 4585
        6.2.1), byte for byte: the browser never received them, so its replay
        check lets them in.  Return the numbers no longer (or never) sent here.
        """
        if self._tx is None:
            return list(lost)
        missing = []
        for seq in lost:
            data = self._video_sent[seq % VIDEO_HISTORY]
            if data is not None and int.from_bytes(data[2:4], "big") == seq:
                self._send(data)
            else:
                missing.append(seq)
        return missing

    def send_payload(self, payload: bytes, payload_type: int, marker: bool = False) -> None:
        """
        Send one packet of locally produced audio (transcoder output): the
        next sequence number, the timestamp one packet interval after the
        last one.
        """
        tx = self._tx
        if tx is None or self._muted:
            return
        self._write_event(self._next_payload_packet(payload, payload_type, marker))

    def _can_send_event(self) -> bool:
        return self._tx is not None and self._selected is not None

    def _write_event(self, packet: bytes) -> None:
        assert self._tx is not None
        self._send(self._tx.protect(packet))
        self.packets_sent += 1
        self.octets_sent += len(packet) - RTP_HEADER_SIZE

    def send_rtcp(self, data: bytes) -> None:
        """
        Protect and send one compound RTCP packet (a PLI, for instance).
        """
        if self._tx is not None and self._selected is not None:
            self._send(self._tx.protect_rtcp(data))
            self.rtcp_sent += 1

    # -- the leg's timer: RTCP, media watchdog, ICE consent -----------------------
    # (watch_activity and _schedule_tick are in _MediaLeg; ICE consent expiry
    # is always watched, so the timer runs at least every 5 s)

    _max_tick_interval = 5.0

    def _tick(self) -> None:
        self._tick_call = None
        if self._stopped:
            return
        now = self._clock.seconds()
        lost = self._activity_stalled(now)
        last_check = self.ice.last_check
        if (
            last_check is not None
            and now - last_check >= CONSENT_TIMEOUT
            and self.state == "connected"
        ):
            self.log.info("ICE consent expired for {address}", address=self._selected)
            # Stop the media (RFC 7675 5.1) but keep the keys: the browser's next valid check
            # gives consent back and resumes it (its peer connection may outlive a network
            # change; the gateway decides whether the call waits for that).
            self._keys_without_consent = (self._rx, self._tx)
            self._rx = self._tx = None
            self._set_state("failed")
            lost = True
        if lost and self.activity_lost is not None:
            self.activity_lost(self)
        if self._stopped:
            return
        if now >= self._next_rtcp:
            self._send_report(now)
            self._next_rtcp = now + self._rtcp_delay()
        self._schedule_tick()

    def _send_report(self, now: float) -> None:
        if self._tx is None or self._selected is None:
            return
        self.send_rtcp(self._build_report(now))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.state_changed is not None:
                self.state_changed(state)
