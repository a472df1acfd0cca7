# -*- test-case-name: tests.media.test_rtp,tests.media.test_rtp_srtp -*-
# Over 600 lines as one piece: one leg's receive and send paths (SRTP included) stay side by side.
"""
The SIP leg's media: plain RTP/AVP on a UDP port pair from the media range.

Where the leg accepts media from is security policy (docs/security.md, "RTP
source learning"): latching onto the first packet from anywhere lets whoever
floods the port range first take the call (CVE-2017-14099, "RTP bleed").  So
the source is learnt only from the expected peer - the host its SDP names,
or, when NAT is detected, the host its signalling came from.  The leg sends
where the peer's first packet came from (symmetric RTP, RFC 4961, so a NATed
port works); for a short learning window the peer's stream may still move to
another port, then the source is locked.  When the SDP address is unroutable
and the media comes from neither expected host (a phone behind a home NAT,
registered through a proxy), a source that sends a run of in-sequence packets
of one stream passes probation (L{Probation}) and is learnt, until an expected
host speaks within the window.  Everything else is dropped, counted
(L{RTPSession.packets_refused}) and logged at a bounded rate.  RTCP runs on
port + 1 (or on the RTP port with rtcp-mux, demultiplexed by RFC 5761),
learnt once from the expected hosts, with one compound report every ~5 s.

One timer per leg serves both the RTCP schedule and the inactivity watchdog:
the watchdog compares the packet counter between ticks, so the per-packet
path only bumps counters and hands the datagram, unparsed, to the
C{packet_received} slot; source checks run only for datagrams from another
address than the learnt one (the cold path).  Sending relays a C{bytearray}
rewritten in place by an L{RTPRewriter}; nothing on either path allocates
beyond the datagram.

With SDES-SRTP (L{set_srtp}, keys from L{wcs_twisted.media.sdes}) every
datagram is authenticated before anything else looks at it, source learning
included: a packet that fails libsrtp's check (forged, or a replay) is
dropped and counted (L{RTPSession.srtp_auth_failures},
L{RTPSession.srtp_replays}) and can never latch the leg.  What we send is
protected last, after the rewrite.

The reactor (C{IReactorUDP}) and clock (C{IReactorTime}, the reactor unless
given) are injected; this module never touches the global reactor.
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from wcs_twisted.media import rtcp
from wcs_twisted.media._dtmf import TelephoneEventPacing
from wcs_twisted.media._leg import _MediaLeg
from wcs_twisted.media.datagram_reading import read_one_datagram_per_wakeup
from wcs_twisted.media.ports import PortPool, PortReservation
from wcs_twisted.media.rtp_packet import RTP_HEADER_SIZE, is_rtcp, is_rtp, peek_header
from wcs_twisted.media.sdes import SRTPContext, SRTPError, is_replay
from wcs_twisted.media.rtp_source import (
    LEARNING_WINDOW,
    PROBATION_PACKETS,
    REFUSAL_LOG_INTERVAL,
    Probation,
    canonical_host,
    expected_hosts,
    nat_suspected,
)

__all__ = ["RTPSession"]

Address = tuple[str, int]

class _RTCPProtocol(DatagramProtocol):
    """
    The RTCP port of an L{RTPSession}.
    """

    def __init__(self, session: "RTPSession") -> None:
        self._session = session

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        self._session._rtcp_in(data, addr)


class RTPSession(_MediaLeg, TelephoneEventPacing, DatagramProtocol):
    """
    One RTP/RTCP session with a plain RTP peer.

    @ivar packet_received: called with each RTP datagram (C{bytes}, unparsed)
        from the latched peer while not on hold, telephone events included;
        C{None} drops them.
    @ivar rtcp_received: called with the parsed packets of each RTCP datagram
        (feedback such as PLI/FIR reaches the bridge this way), or C{None}.
    @ivar activity_lost: called once (with this session) when no RTP arrived
        for the watched time; re-armed when packets flow again.
    @ivar digit_received: called with each RFC 4733 DTMF digit received,
        once per event.
    @ivar source_latched: called with the peer's address when the first
        valid RTP packet from it latches the session (media is flowing).
    @ivar learning_window: seconds after that first packet during which the
        source may move to another port of an expected host if the packets
        carry the same stream (SSRC) on; then it is locked.
    @ivar packets_received: RTP packets accepted from the peer.
    @ivar octets_received: bytes of those datagrams.
    @ivar packets_sent: RTP packets sent (relayed, built or telephone events).
    @ivar octets_sent: payload bytes sent (the SR octet count).
    @ivar packets_dropped: datagrams dropped (not RTP/RTCP, or refused).
    @ivar packets_refused: those of them (RTP or RTCP) refused for their
        source: not the expected peer, or not the locked source.
    @ivar rtcp_sent: RTCP compound packets sent.
    @ivar rtcp_packets_received: RTCP compound packets accepted.
    @ivar srtp: the SDES-SRTP context in force (L{set_srtp}), or C{None}.
    @ivar srtp_auth_failures: SRTP/SRTCP datagrams refused by libsrtp's
        authentication (forged, wrong key, runt); counted in
        C{packets_dropped} too.
    @ivar srtp_replays: SRTP/SRTCP datagrams refused as replays.
    """

    log = Logger()

    # Datagrams are handled on the reactor thread only; these are the fields
    # the hot path reads, kept as plain attributes.
    packet_received: Optional[Callable[[bytes], None]] = None
    rtcp_received: Optional[Callable[[list[rtcp.RTCPPacket]], None]] = None
    activity_lost: Optional[Callable[["RTPSession"], None]] = None
    digit_received: Optional[Callable[[str], None]] = None
    source_latched: Optional[Callable[[Address], None]] = None

    def __init__(
        self,
        reactor: IReactorUDP,
        local_host: str,
        port_pool: Optional[PortPool] = None,
        *,
        clock: Optional[IReactorTime] = None,
        clock_rate: int = 8000,
        packet_interval: float = 0.02,
        rtcp_interval: float = 5.0,
        rtcp_mux: bool = False,
        ssrc: Optional[int] = None,
        cname: Optional[str] = None,
        rng: Optional[random.Random] = None,
        learning_window: float = LEARNING_WINDOW,
        signalling_source: Optional[str] = None,
        probation_packets: int = PROBATION_PACKETS,
    ) -> None:
        """
        @param reactor: provides C{listenUDP}.
        @param local_host: the address to bind (the configured media address).
        @param port_pool: where the RTP/RTCP pair comes from; without one, two
            ephemeral ports are bound (RTCP then is not RTP + 1: say so with
            a=rtcp, RFC 3605) - meant for tests.
        @param clock: timers and time; defaults to C{reactor}.
        @param clock_rate: RTP clock of the main codec, for timestamp steps.
        @param packet_interval: seconds of media per packet (ptime).
        @param rtcp_interval: mean seconds between RTCP reports.
        @param rtcp_mux: send RTCP on the RTP port (RFC 5761).
        @param ssrc: our SSRC; random when not given.
        @param cname: SDES CNAME; derived from the SSRC when not given.
        @param rng: randomness for SSRC, initial sequence/timestamp and the
            RTCP interval jitter.
        @param learning_window: see the C{learning_window} attribute.
        @param signalling_source: the host the peer's SIP messages come from,
            when known; see L{set_remote}.
        @param probation_packets: in-sequence packets of one stream after which
            a source off the expected hosts is learnt when the SDP address is
            unroutable (L{Probation}); 0 never learns one.
        """
        self._init_leg(
            reactor, local_host, port_pool, clock, clock_rate, packet_interval,
            rtcp_interval, ssrc, cname, rng,
        )
        self.clock_rate = clock_rate
        self.rtcp_mux = rtcp_mux

        # ports
        self._reservation: Optional[PortReservation] = None
        self._rtp_port = None
        self._rtcp_port = None
        self._rtcp_protocol = _RTCPProtocol(self)
        self._started = False
        self._stopped = False

        # where media may come from (None: from anywhere, see expected_hosts;
        # empty until the peer's SDP), the window, and refusal bookkeeping
        self.learning_window = learning_window
        self._signalling_source = signalling_source
        self._expected: Optional[frozenset[str]] = frozenset()
        self._learn_until: Optional[float] = None
        # sources off the expected hosts on probation (an unroutable SDP
        # address only), and whether the learnt source came that way
        self._probation: Optional[Probation] = None
        self._probation_packets = probation_packets
        self._probation_learnt = False
        self.packets_refused = 0
        self._refusals_logged = 0
        self._refusal_logged_at: Optional[float] = None

        # SDES-SRTP: libsrtp sessions, None for plain RTP (see set_srtp)
        self.srtp: Optional[SRTPContext] = None
        self._srtp_rx = None
        self._srtp_tx = None
        self.srtp_auth_failures = 0
        self.srtp_replays = 0

        # the socket's sendto once started (see start)
        self._sendto: Optional[Callable[[bytes, Address], object]] = None

        # addresses: where we send, and the source we accept (None until latched)
        self._send_addr: Optional[Address] = None
        self._source_addr: Optional[Address] = None
        self._sdp_addr: Optional[Address] = None
        self._rtcp_send_addr: Optional[Address] = None
        self._rtcp_source_addr: Optional[Address] = None
        self._sdp_rtcp_addr: Optional[Address] = None

        # direction, counters, RTCP statistics, watchdog, the leg's timer
        # (RTCP + watchdog)
        self._init_counters()
        self._next_rtcp: Optional[float] = None
        self.last_rtcp: Optional[list[rtcp.RTCPPacket]] = None
        self._init_telephone_events()

    # -- lifecycle ------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        """
        The bound (host, RTP port); valid after L{start}.
        """
        if self._rtp_port is None:
            raise RuntimeError("RTP session is not started")
        return (self._local_host, self._rtp_port.getHost().port)

    @property
    def local_rtcp_port(self) -> int:
        """
        The bound RTCP port (the RTP port with rtcp-mux).
        """
        if self.rtcp_mux:
            return self.local_address[1]
        if self._rtcp_port is None:
            raise RuntimeError("RTP session is not started")
        return self._rtcp_port.getHost().port

    @property
    def remote_address(self) -> Optional[Address]:
        """
        Where RTP goes: the latched source, else the SDP address.
        """
        return self._send_addr

    @property
    def latched(self) -> bool:
        """
        Whether the peer's source address was learnt from its packets.
        """
        return self._source_addr is not None

    @property
    def expected_hosts(self) -> Optional[frozenset[str]]:
        """
        The hosts media is learnt from (empty before the peer's SDP; C{None}
        when NAT is suspected and no signalling source is known: any).
        """
        return self._expected

    @property
    def on_hold(self) -> bool:
        """
        Whether L{hold} is in effect (neither sending nor receiving).
        """
        return not (self._sending or self._receiving)

    def start(self) -> None:
        """
        Bind the RTP and RTCP ports and start the leg's timer.

        @raise PortPoolExhausted: if the range has no free pair.
        @raise CannotListenError: if no pair could be bound.
        """
        if self._started:
            return
        if self._pool is None:
            self._rtcp_port = self._reactor.listenUDP(
                0, self._rtcp_protocol, interface=self._local_host
            )
            try:
                self._rtp_port = self._reactor.listenUDP(
                    0, self, interface=self._local_host
                )
            except BaseException:
                self._rtcp_port.stopListening()
                self._rtcp_port = None
                raise
        else:
            self._bind_from_pool()
        self._started = True
        for port in (self._rtp_port, self._rtcp_port):
            read_one_datagram_per_wakeup(self._reactor, port)
        # The socket's own sendto, for datagrams to the latched source: its
        # address came from recvfrom, so Twisted's per-write checks that it is
        # a literal IP address (3-4 string parses, ~10 % of a relayed packet's
        # cost under load) have nothing to find.  Transports without a socket
        # (test doubles) keep Port.write.
        sock = getattr(self._rtp_port, "socket", None)
        self._sendto = None if sock is None else sock.sendto
        self._next_rtcp = self._clock.seconds() + self._rtcp_delay()
        self._schedule_tick()

    def _bind_from_pool(self) -> None:
        assert self._pool is not None

        def bind(reservation: PortReservation):
            # RTCP first, with a protocol of its own per attempt: a port that
            # is given up detaches its protocol later, from the reactor.  The
            # RTP port (this object) is bound last, so it is never given up.
            rtcp_protocol = _RTCPProtocol(self)
            rtcp_port = self._reactor.listenUDP(
                reservation.rtcp_port, rtcp_protocol, interface=self._local_host
            )
            try:
                rtp_port = self._reactor.listenUDP(
                    reservation.rtp_port, self, interface=self._local_host
                )
            except BaseException:
                rtcp_port.stopListening()
                raise
            return rtp_port, rtcp_port, rtcp_protocol

        self._reservation, ports = self._pool.bind(bind, busy=(CannotListenError,))
        self._rtp_port, self._rtcp_port, self._rtcp_protocol = ports

    def stop(self) -> defer.Deferred[None]:
        """
        Send an RTCP BYE, stop the timers, close both ports and give the pair
        back to the pool.  Safe to call more than once and before L{start}.

        @return: fires when both ports are closed.
        """
        if self._stopped:
            return defer.succeed(None)
        self._stopped = True
        if self._tick_call is not None and self._tick_call.active():
            self._tick_call.cancel()
        self._tick_call = None
        self._cancel_digits()
        waits = []
        try:
            if self._started:
                self._send_rtcp(bye=True)
        finally:
            # The bridge may still relay into a stopped leg: make that a no-op.
            self._send_addr = self._rtcp_send_addr = None
            self._muted = False
            for port in (self._rtp_port, self._rtcp_port):
                if port is not None:
                    waits.append(defer.maybeDeferred(port.stopListening))
            self._rtp_port = self._rtcp_port = None
            self._sendto = None
            if self._reservation is not None:
                self._reservation.release()
        return defer.gatherResults(waits, consumeErrors=True).addCallback(
            lambda _: None
        )

    # -- remote address and source learning -----------------------------------

    def set_remote(
        self,
        host: str,
        port: int,
        rtcp_port: Optional[int] = None,
        *,
        signalling_source: Optional[str] = None,
    ) -> None:
        """
        Take the peer's address from its SDP (c=/m=, a=rtcp), and with it
        the hosts its media may come from (L{expected_hosts}).  A changed
        address starts learning afresh, so the next packets from those hosts
        latch; the same address again (a re-INVITE repeating the SDP) keeps
        the learnt source.

        @param signalling_source: the host the SDP's SIP message came from;
            C{None} keeps the one already known.
        """
        if signalling_source is not None:
            self._signalling_source = signalling_source
        self._expected = expected_hosts(host, self._signalling_source, self._local_host)
        addr = (host, port)
        rtcp_addr = (host, port if self.rtcp_mux else (rtcp_port or port + 1))
        if addr != self._sdp_addr:
            self._sdp_addr = addr
            self._source_addr = None
            self._learn_until = None
            self._send_addr = addr
            self._probation_learnt = False
            self._probation = (
                Probation(self._probation_packets, self.learning_window)
                if self._probation_packets > 0 and self._expected is not None
                and nat_suspected(host, self._local_host)
                else None
            )
        if rtcp_addr != self._sdp_rtcp_addr:
            self._sdp_rtcp_addr = rtcp_addr
            self._rtcp_source_addr = None
            self._rtcp_send_addr = rtcp_addr

    def _expected_host(self, host: str) -> bool:
        """
        Whether media may be learnt from C{host} (any host when none is known,
        see L{expected_hosts}; none before the peer's SDP).
        """
        expected = self._expected
        return expected is None or host in expected or canonical_host(host) in expected

    def _moves(self, data: bytes) -> bool:
        """
        Whether an RTP packet from another port than the learnt source may move
        the source there: within the learning window, and only if it carries
        the learnt stream on (same SSRC), as a NAT that rebinds early does;
        never when learning from any host.
        """
        until = self._learn_until
        last = self._last_received
        return (
            self._expected is not None
            and until is not None
            and last is not None
            and self._clock.seconds() < until
            and data[8:12] == last[8:12]
        )

    def _on_probation(self, data: bytes, addr: Address) -> bool:
        """
        Whether an RTP packet from a host off the expected ones may latch:
        only for an unroutable SDP address, once its source passes
        L{Probation}, or at once when libsrtp has authenticated it.
        """
        probation = self._probation
        if probation is None:
            return False
        if self._srtp_rx is not None:
            return True
        header = peek_header(data)
        return probation.passes(addr, header.ssrc, header.sequence_number, self._clock.seconds())

    def _overrules(self) -> bool:
        """
        Whether an expected host may take over a source learnt on probation:
        within the learning window, the peer the signalling names wins.
        """
        until = self._learn_until
        return self._probation_learnt and until is not None and self._clock.seconds() < until

    def _refuse(self, addr: Address, kind: str) -> None:
        """
        Count a datagram refused for its source and log, at most once per
        L{REFUSAL_LOG_INTERVAL}, how many were refused since the last line.
        """
        self.packets_dropped += 1
        self.packets_refused += 1
        now = self._clock.seconds()
        logged_at = self._refusal_logged_at
        if logged_at is not None and now - logged_at < REFUSAL_LOG_INTERVAL:
            return
        self._refusal_logged_at = now
        count = self.packets_refused - self._refusals_logged
        self._refusals_logged = self.packets_refused
        self.log.warn(
            "Refused {count} {kind} datagram(s) on port {port} from sources other than"
            " the peer, latest {source} (learnt {learnt}, expected hosts {expected},"
            " SDP said {sdp})",
            count=count, kind=kind, port=self._rtp_port.getHost().port if self._rtp_port else None,
            source=addr, learnt=self._source_addr,
            expected=None if self._expected is None else sorted(self._expected),
            sdp=self._sdp_addr,
        )

    def _accept(self, data: bytes, addr: Address) -> bool:
        """
        The cold path: a datagram too short for RTP, or from an address other
        than the learnt source.  Learn the source from the expected peer,
        let it move only while learning (L{_moves}); refuse everything else.
        """
        if self.rtcp_mux and is_rtcp(data):
            self._rtcp_datagram(data, addr)
            return False
        if not is_rtp(data):
            self.packets_dropped += 1
            return False
        previous = self._source_addr
        expected = self._expected_host(addr[0])
        if expected:
            refused = previous is not None and not (self._moves(data) or self._overrules())
        elif previous is None:
            refused = not self._on_probation(data, addr)
        else:
            # a NAT rebinding the stream learnt on probation to another port of its host
            refused = not (self._probation_learnt and addr[0] == previous[0]
                           and self._moves(data))
        if refused:
            self._refuse(addr, "RTP")
            return False
        self._probation_learnt = not expected
        self._source_addr = addr
        self._send_addr = addr
        header = peek_header(data)
        self._stats.restart(header.ssrc, header.sequence_number, self.packets_received)
        if self.rtcp_mux:
            # Muxed RTCP comes from the RTP source: it moves with it.
            self._rtcp_send_addr = self._rtcp_source_addr = addr
        if previous is not None:
            self.log.info("RTP source moved from {previous} to {source} while learning",
                          previous=previous, source=addr)
            return True
        self._learn_until = self._clock.seconds() + self.learning_window
        self.log.info(
            "RTP latched onto {source} (SDP said {sdp}, on probation: {probation})",
            source=addr, sdp=self._sdp_addr, probation=not expected,
        )
        if self.source_latched is not None:
            self.source_latched(addr)
        return True

    # -- receive path ---------------------------------------------------------

    def set_srtp(self, context: Optional[SRTPContext]) -> None:
        """
        Protect what we send and authenticate what we receive with
        C{context} from now on; C{None} goes back to plain RTP.
        """
        self.srtp = context
        self._srtp_rx = None if context is None else context.rx
        self._srtp_tx = None if context is None else context.tx

    def _unprotect(self, unprotect, data: bytes, addr: Address, kind: str) -> Optional[bytes]:
        """
        C{unprotect(data)}, or C{None} when libsrtp refuses it (counted).
        """
        try:
            return unprotect(data)
        except SRTPError as error:
            self.packets_dropped += 1
            if is_replay(error):
                self.srtp_replays += 1
            else:
                self.srtp_auth_failures += 1
            self.log.debug("{kind} from {source} refused: {error}", kind=kind, source=addr,
                           error=error)
            return None

    def _rtcp_in(self, data: bytes, addr: Address) -> None:
        """
        A datagram on the RTCP port (or muxed RTCP): SRTCP is authenticated
        and decrypted first.
        """
        rx = self._srtp_rx
        if rx is not None:
            if not is_rtcp(data):
                self.packets_dropped += 1
                return
            data = self._unprotect(rx.unprotect_rtcp, data, addr, "SRTCP")
            if data is None:
                return
        self._rtcp_datagram(data, addr)

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        rx = self._srtp_rx
        if rx is not None:
            if len(data) > 1 and 191 < data[1] < 224:
                self._rtcp_in(data, addr)
                return
            data = self._unprotect(rx.unprotect, data, addr, "SRTP")
            if data is None:
                return
        if (addr != self._source_addr or len(data) < RTP_HEADER_SIZE) and not self._accept(
            data, addr
        ):
            return
        b1 = data[1]
        if 191 < b1 < 224:
            # RTCP multiplexed on the RTP port (RFC 5761 section 4).
            self._rtcp_datagram(data, addr)
            return
        self.packets_received += 1
        self.octets_received += len(data)
        self._last_received = data
        if not self._receiving:
            return
        if (b1 & 0x7F) == self._te_rx_pt:
            self._telephone_event(data)
        callback = self.packet_received
        if callback is not None:
            callback(data)

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        if addr != self._rtcp_source_addr:
            if not is_rtcp(data):
                self.packets_dropped += 1
                return
            learnt = self._source_addr
            if self._rtcp_source_addr is not None or not (
                self._expected_host(addr[0])
                or (self._probation_learnt and learnt is not None and addr[0] == learnt[0])
            ):
                self._refuse(addr, "RTCP")
                return
            self._rtcp_source_addr = addr
            self._rtcp_send_addr = addr
        try:
            packets = rtcp.parse_compound(data)
        except ValueError as e:
            self.log.debug("Bad RTCP from {source}: {error}", source=addr, error=e)
            self.packets_dropped += 1
            return
        self.last_rtcp = packets
        self._deliver_rtcp(packets)

    # -- send path ------------------------------------------------------------

    def send_packet(self, buf: bytearray) -> None:
        """
        Relay one RTP packet: rewrite it in place onto our stream (SSRC,
        sequence, timestamp, payload type map of L{rewriter}) and send it to
        the peer.  Dropped, with the sequence kept gap-free, while on hold or
        while a telephone event is being sent.
        """
        if self._muted:
            self.rewriter.skip()
            return
        addr = self._send_addr
        if addr is None:
            return
        self.rewriter.rewrite(buf)
        self._send_datagram(buf, addr)
        self.packets_sent += 1
        self.octets_sent += len(buf) - RTP_HEADER_SIZE

    def _send_datagram(self, data: bytes, addr: Address) -> None:
        """
        Send straight through the socket to the latched source (an address
        recvfrom gave us); anything else, and any socket error, goes through
        Twisted's C{Port.write}, which validates the address and handles
        EINTR, EMSGSIZE and ECONNREFUSED.
        """
        tx = self._srtp_tx
        if tx is not None:
            data = tx.protect(bytes(data))
        sendto = self._sendto
        if sendto is not None and addr is self._source_addr:
            try:
                sendto(data, addr)
                return
            except OSError:
                pass
        self.transport.write(data, addr)

    @property
    def can_send(self) -> bool:
        """
        Whether a packet sent now would go out (not on hold or muted, the peer's address known).
        """
        return not self._muted and self._send_addr is not None

    def send_payload(self, payload: bytes, payload_type: int, marker: bool = False) -> None:
        """
        Send one packet of locally produced media (transcoded audio, a
        file): the next sequence number, the timestamp one packet interval
        after the last one.
        """
        if self._muted or self._send_addr is None:
            return
        self._write(self._next_payload_packet(payload, payload_type, marker))

    def _write(self, packet: bytes) -> None:
        assert self._send_addr is not None
        self._send_datagram(packet, self._send_addr)
        self.packets_sent += 1
        self.octets_sent += len(packet) - RTP_HEADER_SIZE

    def send_rtcp(self, data: bytes) -> None:
        """
        Send one compound RTCP packet (a PLI, for instance) to the peer's
        RTCP address.
        """
        addr = self._rtcp_send_addr
        transport = self.transport if self.rtcp_mux else self._rtcp_protocol.transport
        if addr is not None and transport is not None:
            self._write_rtcp(transport, data, addr)

    @property
    def remote_ssrc(self) -> Optional[int]:
        """
        The SSRC of the latest RTP packet received, or C{None}.
        """
        last = self._last_received
        return None if last is None else int.from_bytes(last[8:12], "big")

    # -- hold (set_direction is in _MediaLeg) ----------------------------------

    def hold(self) -> None:
        """
        Stop sending and ignore received media (RTCP carries on, RFC 3264
        section 5.1); the watchdog pauses.
        """
        self.set_direction(False, False)

    def resume(self) -> None:
        """
        Undo L{hold}; the watchdog counts afresh from now.
        """
        self.set_direction(True, True)

    # -- RFC 4733 (TelephoneEventPacing) ----------------------------------------------

    def _can_send_event(self) -> bool:
        return self._send_addr is not None

    def _write_event(self, packet: bytes) -> None:
        self._write(packet)

    # -- watchdog (watch_activity is in _MediaLeg) --------------------------------

    def _check_activity(self, now: float) -> None:
        if self._activity_stalled(now):
            self.log.info(
                "No RTP from {source} for {timeout} s",
                source=self._send_addr,
                timeout=self._watch_timeout,
            )
            if self.activity_lost is not None:
                self.activity_lost(self)

    # -- the leg's timer: RTCP and watchdog -----------------------------------

    def _tick(self) -> None:
        self._tick_call = None
        if self._stopped:
            return
        now = self._clock.seconds()
        self._check_activity(now)
        if self._stopped:  # the activity_lost callback may stop us
            return
        assert self._next_rtcp is not None
        if now >= self._next_rtcp:
            self._send_rtcp()
            self._next_rtcp = now + self._rtcp_delay()
        self._schedule_tick()

    def _send_rtcp(self, bye: bool = False) -> None:
        addr = self._rtcp_send_addr
        transport = self.transport if self.rtcp_mux else self._rtcp_protocol.transport
        if addr is None or transport is None:
            return
        compound = self._build_report(self._clock.seconds())
        if bye:
            compound += rtcp.build_bye(self.ssrc)
        self._write_rtcp(transport, compound, addr)

    def _write_rtcp(self, transport, data: bytes, addr: Address) -> None:
        tx = self._srtp_tx
        if tx is not None:
            data = tx.protect_rtcp(data)
        transport.write(data, addr)
        self.rtcp_sent += 1

