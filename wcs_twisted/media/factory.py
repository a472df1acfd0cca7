# -*- test-case-name: tests.media.test_factory -*-
"""
The call layer's one entry to media (L{IMediaFactory}): it makes sessions of
either kind on the configured addresses and port range, and bridges; and
(L{IMediaStreams}) it turns sessions into the sources and sinks of named
streams.

Everything a leg needs that is shared per process lives here: the reactor,
the port pool, the addresses, the inactivity timeout and the DTLS
certificate.  A certificate costs a few milliseconds of CPU to generate and
its fingerprint travels in every SDP, so one per process is enough (browsers
do not pin it across calls); it is made on first use when none is given.
"""

from __future__ import annotations

import random
from typing import Optional

from twisted.internet.interfaces import IReactorTime, IReactorUDP
from zope.interface import implementer

from wcs_twisted.addresses import AddressPlan
from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaFactory, IMediaStreams
from wcs_twisted.media.rtp_source import LEARNING_WINDOW, PROBATION_PACKETS
from wcs_twisted.media.bridge import MediaBridge
from wcs_twisted.media.dtls import RTCCertificate
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_session import RTPMediaSession
from wcs_twisted.media.session import CONNECT_TIMEOUT
from wcs_twisted.media.webrtc_session import WebRTCMediaSession
from wcs_twisted.media.stream_endpoints import SessionSink, SessionSource

__all__ = ["MediaFactory", "process_certificate"]

_certificate: Optional[RTCCertificate] = None


def process_certificate() -> RTCCertificate:
    """
    The process-wide DTLS certificate, generated on first use.
    """
    global _certificate
    if _certificate is None:
        _certificate = RTCCertificate.generateCertificate()
    return _certificate


@implementer(IMediaFactory, IMediaStreams)
class MediaFactory:
    """
    Makes L{WebRTCMediaSession}s, L{RTPMediaSession}s and L{MediaBridge}s,
    and stream sources and sinks over sessions.
    """

    def __init__(
        self,
        reactor: IReactorUDP,
        public_address: str,
        bind_address: str,
        port_pool: PortPool,
        certificate: Optional[RTCCertificate] = None,
        inactivity_timeout: Optional[float] = None,
        *,
        clock: Optional[IReactorTime] = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        rng: Optional[random.Random] = None,
        rtp_learning_window: float = LEARNING_WINDOW,
        rtp_probation_packets: int = PROBATION_PACKETS,
        sip_srtp: str = "answer",
        addresses: Optional[AddressPlan] = None,
    ) -> None:
        """
        @param reactor: provides C{listenUDP} (and the clock unless given).
        @param public_address: the address written in SDP (c=, candidates).
        @param bind_address: the address media ports are bound to.
        @param port_pool: the configured RTP port range.
        @param certificate: the DTLS certificate; the process one if None.
        @param inactivity_timeout: seconds without RTP before
            C{media_inactive} (WCS "Failed by RTP activity"); None or 0 off.
        @param rtp_learning_window: seconds after a SIP leg's first packet during which its
            source may still move with the same stream (docs/security.md).
        @param rtp_probation_packets: in-sequence packets after which a SIP leg with a
            private SDP address learns a source off its expected hosts; 0 never.
        @param sip_srtp: the SDES-SRTP policy of SIP legs (L{wcs_twisted.media.sdes}).
        @param addresses: which address each peer's SDP carries behind NAT; by default
            C{public_address} for every peer.
        """
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor  # type: ignore[assignment]
        self.public_address = public_address
        self.bind_address = bind_address
        self.port_pool = port_pool
        self.certificate = certificate if certificate is not None else process_certificate()
        self.inactivity_timeout = inactivity_timeout
        self.connect_timeout = connect_timeout
        self.rtp_learning_window = rtp_learning_window
        self.rtp_probation_packets = rtp_probation_packets
        self.sip_srtp = sip_srtp
        self._rng = rng
        self.addresses = addresses or AddressPlan(public_address, public_address)

    def create_session(self, kind: str, peer: Optional[str] = None):
        """
        A new session of C{kind} ("webrtc" or "rtp") with its ports bound, whose SDP carries
        the address C{peer} (its IP; None when unknown or a name) can reach.

        @raise MediaError: "No available ports" when the range is used up.
        @raise ValueError: for an unknown kind.
        """
        advertised = self.addresses.toward(peer)
        bind = self.addresses.bind_toward(peer, self.bind_address)
        if kind == "webrtc":
            return WebRTCMediaSession(
                self.reactor, bind, advertised, self.port_pool,
                self.certificate, clock=self.clock, inactivity_timeout=self.inactivity_timeout,
                connect_timeout=self.connect_timeout, rng=self._rng,
            ).start()
        if kind == "rtp":
            return RTPMediaSession(
                self.reactor, bind, advertised, self.port_pool,
                clock=self.clock, inactivity_timeout=self.inactivity_timeout, rng=self._rng,
                learning_window=self.rtp_learning_window, srtp=self.sip_srtp,
                probation_packets=self.rtp_probation_packets,
            ).start()
        raise ValueError(f"unknown media session kind {kind!r}")

    def bridge(self, a, b) -> MediaBridge:
        """
        Join two negotiated sessions.

        @raise MediaError: if either session is closed.
        """
        if a.closed or b.closed:
            raise MediaError("Media session closed")
        return MediaBridge(a, b, clock=self.clock)

    def stream_source(self, session) -> SessionSource:
        """
        C{session}'s received media as a stream source (see L{IMediaStreams}).
        """
        return SessionSource(session)

    def stream_sink(self, session, on_ended=None) -> SessionSink:
        """
        A stream sink sending on C{session} (see L{IMediaStreams}).
        """
        return SessionSink(session, on_ended)
