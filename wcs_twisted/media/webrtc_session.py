# -*- test-case-name: tests.media.test_session -*-
"""
The browser leg: WebRTC SDP (ICE-lite, DTLS-SRTP, BUNDLE, rtcp-mux) over one
L{WebRTCTransport}, behind L{IMediaSession}.
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReactorUDP
from zope.interface import implementer

from wcs_twisted.interfaces import IMediaSession
from wcs_twisted.media import rtcp
from wcs_twisted.media.dtls import DTLSState, RTCCertificate
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp_packet import RTPRewriter
from wcs_twisted.media.session import (
    CONNECT_TIMEOUT,
    FAILED_BY_DTLS,
    FAILED_BY_ICE,
    WEBRTC_PROTOS,
    MediaSession,
    bind_ports,
    dispatcher,
)
from wcs_twisted.media.webrtc import WebRTCTransport
from wcs_twisted.sdp.fields import Attribute
from wcs_twisted.sdp.offer_answer import LocalCapabilities, MediaCapability

__all__ = ["WebRTCMediaSession"]


# -- the browser leg ----------------------------------------------------------------------


@implementer(IMediaSession)
class WebRTCMediaSession(MediaSession):
    """
    A browser leg: WebRTC SDP (ICE-lite, DTLS-SRTP, BUNDLE, rtcp-mux) over
    one L{WebRTCTransport}.

    When answering we take DTLS C{passive} (the browser, offering C{actpass},
    becomes the DTLS client); when offering we write C{actpass} and follow the
    browser's choice.  The server's SDP carries its one host candidate, since
    the WCS SDK neither sends nor trickles candidates.
    """

    kind = "webrtc"

    def __init__(
        self,
        reactor: IReactorUDP,
        bind_address: str,
        public_address: str,
        port_pool: Optional[PortPool],
        certificate: RTCCertificate,
        *,
        clock: Optional[IReactorTime] = None,
        inactivity_timeout: Optional[float] = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        rng: Optional[random.Random] = None,
    ) -> None:
        """
        @param bind_address: the address the media port is bound to.
        @param public_address: the address written in c= and the candidate.
        @param inactivity_timeout: seconds without media before
            C{media_inactive}; None or 0 never.
        @param connect_timeout: seconds from the end of offer/answer to
            DTLS-SRTP before C{media_failed}.
        """
        clock = clock if clock is not None else reactor  # type: ignore[assignment]
        super().__init__(clock, public_address, inactivity_timeout, rng)
        self.transport = WebRTCTransport(
            reactor, bind_address, certificate, port_pool, clock=clock,
            advertised_host=public_address, rng=self._rng,
        )
        self.transport.state_changed = self._state_changed
        self.transport.activity_lost = self._report_inactive
        self.transport.digit_received = self._report_digit
        self._connect_timeout = connect_timeout
        self._connect_call: Optional[IDelayedCall] = None
        self._msid = f"wcs-{self._rng.getrandbits(48):012x}"
        self._remote_known = False

    def start(self) -> "WebRTCMediaSession":
        """
        Bind the media port.

        @raise MediaError: "No available ports".
        """
        bind_ports(self.transport.start)
        return self

    @property
    def local_address(self) -> tuple[str, int]:
        """
        The bound (host, port).
        """
        return self.transport.local_address

    def _accepts(self, proto: str) -> bool:
        return proto.upper() in WEBRTC_PROTOS

    def _capabilities(self, audio, video, direction, offer, remote):
        params = self.transport.local_parameters
        if offer:
            setup = "actpass"
        else:
            assert remote is not None
            first = next((m for m in remote.media if m.port), None)
            theirs = remote.attribute_for(first, "setup") if first is not None else None
            setup = "active" if theirs == "passive" else "passive"
        algorithm, value = next(
            ((a, v) for a, v in params.fingerprints if a == "sha-256"), params.fingerprints[0]
        )
        cname = self.transport.cname.decode()
        common = (
            Attribute("ice-ufrag", params.ice_ufrag),
            Attribute("ice-pwd", params.ice_pwd),
            Attribute("fingerprint", f"{algorithm} {value}"),
            Attribute("setup", setup),
            Attribute("candidate", params.candidate),
            Attribute("end-of-candidates"),
        )

        def source(ssrc: int, track: str) -> tuple[Attribute, ...]:
            return (
                Attribute("msid", f"{self._msid} {track}"),
                Attribute("ssrc", f"{ssrc} cname:{cname}"),
                Attribute("ssrc", f"{ssrc} msid:{self._msid} {track}"),
            )

        media = [MediaCapability(
            "audio", tuple(audio), params.candidate_port, direction, WEBRTC_PROTOS,
            rtcp_mux=True, attributes=common + source(self.transport.ssrc, f"{self._msid}-a"),
        )]
        if video:
            media.append(MediaCapability(
                "video", tuple(video), params.candidate_port, direction, WEBRTC_PROTOS,
                rtcp_mux=True,
                attributes=common + source(self.transport.video_ssrc, f"{self._msid}-v"),
            ))
        return LocalCapabilities(
            params.candidate_host, tuple(media), bundle=True,
            attributes=(Attribute("ice-lite"), Attribute("msid-semantic", " WMS " + self._msid)),
        )

    def _configure(self, negotiated, remote):
        first = next((m for m in negotiated if not m.rejected), None)
        if first is None:
            return
        media = remote.media[first.index]
        ufrag = remote.attribute_for(media, "ice-ufrag")
        fingerprints = [(f.algorithm, f.value) for f in remote.fingerprints_for(media)]
        local = self._negotiator.local_description
        assert local is not None
        ours = local.attribute_for(local.media[first.index], "setup")
        # Whoever wrote "passive" is the DTLS server (RFC 5763 section 5).
        if ours == "passive":
            role = "server"
        elif ours == "active":
            role = "client"
        else:
            role = "client" if remote.attribute_for(media, "setup") == "passive" else "server"
        if not fingerprints:
            self._report_failed(FAILED_BY_DTLS)
            return
        try:
            self.transport.set_remote(ufrag, fingerprints, role)
        except Exception as e:  # DTLSError: no usable fingerprint
            self.log.info("Cannot use the browser's DTLS parameters: {error}", error=e)
            self._report_failed(FAILED_BY_DTLS)
            return
        audio = self.audio
        transport = self.transport
        if audio is not None:
            event = audio.telephone_event
            transport.set_telephone_event(
                None if event is None else event.payload_type,
                audio.codec.clock_rate,
                audio.telephone_event_receive_payload_type,
            )
            transport.rewriter.timestamp_step = audio.samples_per_packet
        if not self._remote_known:
            self._remote_known = True
            if transport.state == "connected":
                self._watch_activity(self.transport)
            elif self._connect_timeout:
                # Until ICE and DTLS are done no media can arrive: the connect
                # timeout judges that time, the inactivity watch what follows.
                self._connect_call = self._clock.callLater(
                    self._connect_timeout, self._connect_expired
                )

    def _apply_direction(self):
        direction = self._effective(self.audio if self.audio is not None else self.video)
        if self.audio is None and self.video is None:
            direction = self._direction
        self.transport.set_direction(direction.sends, direction.receives)

    def _audio_transport(self):
        return self.transport

    def _state_changed(self, state: str) -> None:
        if state == "connected":
            self._cancel_connect_timer()
            if self._remote_known:
                self._watch_activity(self.transport)
            if self._failed:
                # ICE consent regained after it expired: the leg works again, and a later
                # failure or silence must be reported again.
                self._failed = self._connected = False
            self._report_connected()
        elif state == "failed":
            self._cancel_connect_timer()
            dtls = self.transport.dtls
            if dtls is not None and dtls.state is DTLSState.FAILED:
                self._report_failed(FAILED_BY_DTLS)
            else:
                self._report_failed(FAILED_BY_ICE)

    def _connect_expired(self) -> None:
        self._connect_call = None
        if self.transport.state == "connected":
            return
        # Checks arrived (an address is selected) but no handshake finished:
        # DTLS is at fault; otherwise the browser never reached us.
        if self.transport.remote_address is not None:
            self._report_failed(FAILED_BY_DTLS)
        else:
            self._report_failed(FAILED_BY_ICE)

    def _cancel_connect_timer(self) -> None:
        if self._connect_call is not None and self._connect_call.active():
            self._connect_call.cancel()
        self._connect_call = None

    def _stop(self):
        self._cancel_connect_timer()
        return self.transport.stop()

    # -- bridge-facing ----------------------------------------------------------------------

    def _set_dispatch(self, audio: Optional[dict[int, Callable[[bytes], None]]],
                      video: Optional[dict[int, Callable[[bytes], None]]]) -> None:
        # Audio and video share the port: one table by payload type; audio wins a (buggy) clash.
        self.transport.packet_received = dispatcher({**(video or {}), **(audio or {})})

    def set_feedback_receiver(self, receiver: Optional[Callable[[str, list], None]]) -> None:
        """
        Call C{receiver("video", packets)} with each RTCP compound received
        (bundled: the browser's feedback for both streams arrives here).
        """
        if receiver is None:
            self.transport.rtcp_received = None
        else:
            self.transport.rtcp_received = lambda packets: receiver("video", packets)

    def relay_sender(self, kind: str) -> Callable[[bytearray], None]:
        """
        The function that rewrites and sends one relayed packet of C{kind}.
        """
        return self.transport.send_packet if kind == "audio" else self.transport.send_video_packet

    def payload_sender(self) -> Callable[..., None]:
        """
        The function that sends one locally produced audio payload.
        """
        return self.transport.send_payload

    def rewriter(self, kind: str) -> RTPRewriter:
        """
        The rewriter of our outgoing C{kind} stream (the bridge sets its
        payload type map).
        """
        return self.transport.rewriter if kind == "audio" else self.transport.video_rewriter

    def send_keyframe_request(self, media_ssrc: Optional[int]) -> None:
        """
        Ask the browser for a video key frame (RTCP PLI over SRTCP).
        """
        if self.video is None:
            return
        if media_ssrc is None:
            media_ssrc = self.video.remote_ssrc or 0
        self.transport.send_rtcp(rtcp.build_pli(self.transport.video_ssrc, media_ssrc))

    def retransmit_video(self, lost: list[int]) -> list[int]:
        """
        Resend the video packets C{lost} we still hold; return the others.
        """
        return self.transport.retransmit_video(lost)

    def send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        """
        Ask the browser to retransmit video packets C{lost} (RTCP Generic NACK).
        """
        if self.video is not None:
            self.transport.send_rtcp(rtcp.build_nack(self.transport.video_ssrc, media_ssrc, lost))
