# -*- test-case-name: tests.media.test_session -*-
"""
The SIP peer's leg: RTP/AVP SDP (RTP/SAVP with SDES keys when the policy
and the peer want SRTP, L{wcs_twisted.media.sdes}), one L{RTPSession} per
m= line, behind L{IMediaSession}.
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime, IReactorUDP
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaSession
from wcs_twisted.media import rtcp
from wcs_twisted.media.codecs import AUDIO_CODECS, SIP_AUDIO_CODECS
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_source import LEARNING_WINDOW, PROBATION_PACKETS
from wcs_twisted.media.sdes import SDESKeys, SRTPContext
from wcs_twisted.media.silence import SilenceFiller
from wcs_twisted.media.rtp_packet import RTPRewriter
from wcs_twisted.media.session import (
    PTIME,
    MediaSession,
    _parse,
    bind_ports,
    dispatcher,
    drop,
)
from wcs_twisted.media.transcode import silence_payload
from wcs_twisted.sdp.media import MediaDescription
from wcs_twisted.sdp.offer_answer import LocalCapabilities, MediaCapability, NegotiatedMedia

__all__ = ["RTPMediaSession"]

#: The transports a SIP peer's audio may come in; others (a browser's) are simply not ours.
_SIP_PROTOS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")


# -- the SIP peer's leg ---------------------------------------------------------------------


@implementer(IMediaSession)
class RTPMediaSession(MediaSession):
    """
    A SIP peer's leg: plain RTP/AVP, one L{RTPSession} (even RTP port, RTCP
    on the next) per stream, c= from the configured public address, ptime
    20, telephone-event at 8000 Hz (and 48000 Hz next to Opus).  Symmetric
    RTP: the leg sends to the SDP address until the peer's first packet
    latches it onto the packet's source.  While nothing feeds the audio
    stream, a L{SilenceFiller} sends silence in the negotiated codec, as a
    live leg would, so the peer's RTP timeout does not end the call.

    SRTP follows C{srtp} (the C{sip_srtp} policy, see L{SDESKeys}): an
    answer takes the offerer's first usable a=crypto with a key of our own;
    once a stream runs SRTP, our re-offers keep it whatever the policy.
    """

    kind = "rtp"
    audio_table = AUDIO_CODECS + SIP_AUDIO_CODECS

    def __init__(
        self,
        reactor: IReactorUDP,
        bind_address: str,
        public_address: str,
        port_pool: Optional[PortPool],
        *,
        clock: Optional[IReactorTime] = None,
        inactivity_timeout: Optional[float] = None,
        rng: Optional[random.Random] = None,
        learning_window: float = LEARNING_WINDOW,
        srtp: str = "answer",
        probation_packets: int = PROBATION_PACKETS,
    ) -> None:
        clock = clock if clock is not None else reactor  # type: ignore[assignment]
        self.sdes = SDESKeys(srtp)
        super().__init__(clock, public_address, inactivity_timeout, rng)
        self._reactor = reactor
        self._bind_address = bind_address
        self._pool = port_pool
        self._learning_window = learning_window
        self._probation_packets = probation_packets
        self.audio_rtp = self._leg()
        self.video_rtp: Optional[RTPSession] = None
        self.silence = SilenceFiller(self._clock, self.audio_rtp)

    def _leg(self) -> RTPSession:
        leg = RTPSession(self._reactor, self._bind_address, self._pool, clock=self._clock,
                         rng=self._rng, learning_window=self._learning_window,
                         probation_packets=self._probation_packets)
        return leg

    def start(self) -> "RTPMediaSession":
        """
        Bind the audio port pair.

        @raise MediaError: "No available ports".
        """
        bind_ports(self.audio_rtp.start)
        self.audio_rtp.source_latched = lambda addr: self._report_connected()
        self.audio_rtp.activity_lost = self._report_inactive
        self.audio_rtp.digit_received = self._report_digit
        return self

    @property
    def local_address(self) -> tuple[str, int]:
        """
        The bound (host, audio RTP port).
        """
        return self.audio_rtp.local_address

    def _accepts(self, proto: str) -> bool:
        return self.sdes.accepts_proto(proto)

    def _accepts_media(self, media: MediaDescription) -> bool:
        return self.sdes.plan(media) is not None

    def _check_offer(self, sdp: str | bytes) -> None:
        """
        Refuse an offer whose audio the SRTP policy cannot take with the
        reason (not just "No common codecs"); a malformed a=crypto raises
        "Malformed SDP: ..." from L{SDESKeys.plan}.
        """
        audio = [m for m in _parse(sdp).media
                 if m.kind == "audio" and m.port and m.proto.upper() in _SIP_PROTOS]
        if audio and not any(self._accepts_media(m) for m in audio):
            raise MediaError(self.sdes.refusal(audio[0]))

    def offered_codecs(self, sdp: str | bytes) -> tuple[list[str], list[str]]:
        """
        See L{MediaSession.offered_codecs}; also refuses (L{MediaError}) an
        offer the SRTP policy cannot take, so a call fails before it rings.
        """
        self._check_offer(sdp)
        return super().offered_codecs(sdp)

    def create_answer(self, offer, prefer_audio=(), prefer_video=(), direction="sendrecv"):
        """
        See L{MediaSession.create_answer}; SRTP as L{offered_codecs} says.
        """
        self._check_offer(offer)
        return super().create_answer(offer, prefer_audio, prefer_video, direction)

    def set_remote_answer(self, answer: str | bytes) -> None:
        """
        See L{MediaSession.set_remote_answer}; an answer whose a=crypto does
        not fit our offer, or that drops the SRTP we required, is refused
        before anything changes.
        """
        offer = self._negotiator.pending_local
        if offer is not None:
            remote = _parse(answer)
            for ours, theirs in zip(offer.media, remote.media):
                if ours.port and theirs.port and ours.kind == theirs.kind:
                    self.sdes.agreed(ours, theirs, local_is_offerer=True)
        super().set_remote_answer(answer)

    def _leg_of(self, kind: str) -> Optional[RTPSession]:
        return self.audio_rtp if kind == "audio" else self.video_rtp

    def _media_capability(self, kind, codecs, port, direction, offer, remote, **extra):
        """
        One stream's capability with its transport and a=crypto lines: for
        an offer, the policy's (or SRTP kept from the last exchange); for an
        answer, what L{SDESKeys.plan} chose for the offered line.
        """
        protos: tuple[str, ...] = ("RTP/AVP", "RTP/AVPF")
        attributes: tuple = ()
        if offer:
            leg = self._leg_of(kind)
            previous = self._negotiator.local_description
            old = None if previous is None else next(
                (m for m in previous.media if m.kind == kind and m.port), None)
            if leg is not None and leg.srtp is not None and old is not None:
                protos = (old.proto,)
                attributes = self.sdes.offer_attributes(kind, secured=True)
            else:
                protos = (self.sdes.offer_proto,)
                attributes = self.sdes.offer_attributes(kind)
        else:
            for media in remote.media if remote is not None else ():
                if media.kind == kind and media.port:
                    plan = self.sdes.plan(media)
                    if plan is not None:
                        protos = (media.proto,)
                        attributes = self.sdes.answer_attributes(kind, plan)
                        break
        return MediaCapability(kind, tuple(codecs), port, direction, protos,
                               rtcp_mux=not offer, attributes=attributes, **extra)

    def _capabilities(self, audio, video, direction, offer, remote):
        media = [self._media_capability(
            "audio", audio, self.audio_rtp.local_address[1], direction, offer, remote,
            ptime=PTIME,
        )]
        if video and self.video_rtp is not None:
            media.append(self._media_capability(
                "video", video, self.video_rtp.local_address[1], direction, offer, remote,
            ))
        return LocalCapabilities(self._public_address, tuple(media))

    def _prepare_video(self) -> bool:
        if self.video_rtp is None:
            leg = self._leg()
            try:
                bind_ports(leg.start)
            except MediaError:
                self.log.warn("No port pair left for video: the call goes on audio-only")
                return False
            self.video_rtp = leg
        return True

    def _configure(self, negotiated, remote):
        audio = next((m for m in negotiated if m.kind == "audio" and not m.rejected), None)
        video = next((m for m in negotiated if m.kind == "video" and not m.rejected), None)
        if audio is not None:
            self._point(self.audio_rtp, audio)
            stream = self.audio
            assert stream is not None
            event = stream.telephone_event
            self.audio_rtp.set_telephone_event(
                None if event is None else event.payload_type,
                stream.codec.clock_rate,
                stream.telephone_event_receive_payload_type,
            )
            self.audio_rtp.clock_rate = stream.codec.clock_rate
            self.audio_rtp.rewriter.timestamp_step = stream.samples_per_packet
            self._watch_activity(self.audio_rtp)
            silence = silence_payload(stream.codec)
            if silence is not None:
                self.silence.start(silence, stream.codec.payload_type)
        if video is not None and self.video_rtp is not None:
            self._point(self.video_rtp, video)
            self.video_rtp.clock_rate = 90000
            self.video_rtp.rewriter.timestamp_step = 3000
        elif self.video_rtp is not None:
            # Video rejected or dropped: give its ports back now.
            self.video_rtp.stop()
            self.video_rtp = None

    def _secure(self, leg: RTPSession, media: NegotiatedMedia) -> None:
        """
        Give C{leg} the SRTP keys the exchange agreed on for C{media}; the
        same keys again (a re-INVITE) keep libsrtp's state.
        """
        local = self._negotiator.local_description
        remote = self._negotiator.remote_description
        assert local is not None and remote is not None
        agreed = self.sdes.agreed(local.media[media.index], remote.media[media.index],
                                  self._negotiator.offer_is_local)
        current = leg.srtp
        if agreed is None:
            if current is not None:
                self.log.info("{kind} stream back to plain RTP", kind=media.kind)
            leg.set_srtp(None)
        elif current is None or (current.suite, current.local_key, current.remote_key) != agreed:
            self.log.info("{kind} stream protected with SRTP {suite}", kind=media.kind,
                          suite=agreed[0])
            leg.set_srtp(SRTPContext(*agreed))

    @property
    def srtp_suite(self) -> Optional[str]:
        """
        The SRTP suite of the audio stream, or C{None} for plain RTP.
        """
        context = self.audio_rtp.srtp
        return None if context is None else context.suite

    def _point(self, leg: RTPSession, media: NegotiatedMedia) -> None:
        self._secure(leg, media)
        leg.rtcp_mux = media.rtcp_mux
        address = media.remote_address
        if address and address not in ("0.0.0.0", "::") and media.remote_port:
            leg.set_remote(address, media.remote_port, media.remote_rtcp_port,
                           signalling_source=self.signalling_source)

    def _apply_direction(self):
        direction = self._effective(self.audio)
        self.audio_rtp.set_direction(direction.sends, direction.receives)
        if self.video_rtp is not None:
            direction = self._effective(self.video)
            self.video_rtp.set_direction(direction.sends, direction.receives)

    def _audio_transport(self):
        return self.audio_rtp

    def _stop(self):
        self.silence.stop()
        legs = [self.audio_rtp] + ([self.video_rtp] if self.video_rtp is not None else [])
        return defer.gatherResults([leg.stop() for leg in legs], consumeErrors=True).addCallback(
            lambda _: None
        )

    # -- bridge-facing ----------------------------------------------------------------------

    def _set_dispatch(self, audio: Optional[dict[int, Callable[[bytes], None]]],
                      video: Optional[dict[int, Callable[[bytes], None]]]) -> None:
        # One RTP session per stream, each with its own table.
        self.audio_rtp.packet_received = dispatcher(audio)
        if self.video_rtp is not None:
            self.video_rtp.packet_received = dispatcher(video)

    def set_feedback_receiver(self, receiver: Optional[Callable[[str, list], None]]) -> None:
        """
        Call C{receiver(kind, packets)} with each RTCP compound received on
        either stream.
        """
        if receiver is None:
            self.audio_rtp.rtcp_received = None
            if self.video_rtp is not None:
                self.video_rtp.rtcp_received = None
            return
        self.audio_rtp.rtcp_received = lambda packets: receiver("audio", packets)
        if self.video_rtp is not None:
            self.video_rtp.rtcp_received = lambda packets: receiver("video", packets)

    def relay_sender(self, kind: str) -> Callable[[bytearray], None]:
        """
        The function that rewrites and sends one relayed packet of C{kind}.
        """
        if kind == "audio":
            return self.audio_rtp.send_packet
        if self.video_rtp is None:
            return drop
        return self.video_rtp.send_packet

    def payload_sender(self) -> Callable[..., None]:
        """
        The function that sends one locally produced audio payload.
        """
        return self.audio_rtp.send_payload

    def rewriter(self, kind: str) -> RTPRewriter:
        """
        The rewriter of our outgoing C{kind} stream.
        """
        if kind == "audio":
            return self.audio_rtp.rewriter
        assert self.video_rtp is not None
        return self.video_rtp.rewriter

    def send_keyframe_request(self, media_ssrc: Optional[int]) -> None:
        """
        Ask the SIP peer for a video key frame (RTCP PLI; the SIP INFO
        picture_fast_update is the call layer's business).
        """
        leg = self.video_rtp
        if leg is None or self.video is None:
            return
        if media_ssrc is None:
            media_ssrc = leg.remote_ssrc or self.video.remote_ssrc or 0
        leg.send_rtcp(rtcp.build_pli(leg.ssrc, media_ssrc))

    def retransmit_video(self, lost: list[int]) -> list[int]:
        """
        Nothing is kept for retransmission on this leg: all of C{lost} is missing.
        """
        return list(lost)

    def send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        """
        Ask the SIP peer to retransmit video packets C{lost} (RTCP Generic NACK).
        """
        leg = self.video_rtp
        if leg is not None and self.video is not None:
            leg.send_rtcp(rtcp.build_nack(leg.ssrc, media_ssrc, lost))
