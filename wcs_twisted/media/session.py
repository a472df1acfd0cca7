# -*- test-case-name: tests.media.test_session -*-
"""
What both kinds of call leg share as the call layer sees them (L{IMediaSession}):
SDP in and out, media events out.

L{MediaSession} uses the sans-I/O offer/answer machine of L{wcs_twisted.sdp} (so
re-offers keep their o= session, payload types and m= positions), answers with exactly
one codec per stream (plus telephone-event at its clock rate) so the peer cannot switch
formats under a relay, and translates transport events into L{IMediaSessionObserver}
calls with the WCS failure strings.  The two legs are
L{wcs_twisted.media.webrtc_session.WebRTCMediaSession} (browsers) and
L{wcs_twisted.media.rtp_session.RTPMediaSession} (SIP peers); the codec catalogue is
L{wcs_twisted.media.codecs}.

The bridge (L{wcs_twisted.media.bridge}) reads what was negotiated from
L{NegotiatedStream} values and plugs into the legs through a few
bridge-facing methods (C{set_receivers}, C{relay_sender}, ...); the call
layer only uses the interface.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from wcs_twisted.errors import MediaError
from wcs_twisted.media.codecs import (
    AUDIO_CODECS,
    TELEPHONE_EVENTS,
    VIDEO_CODECS,
    choose_codec,
    codec_name,
    local_codec,
    name_matches,
    ordered_codecs,
)
from wcs_twisted.media.ports import PortPoolExhausted
from wcs_twisted.sdp.codecs import SECONDARY_ENCODINGS, Codec, codecs_match
from wcs_twisted.sdp.errors import NegotiatorStateError, NoCommonCodec, SDPError
from wcs_twisted.sdp.fields import Direction
from wcs_twisted.sdp.offer_answer import (
    LocalCapabilities,
    NegotiatedMedia,
    NegotiatorState,
    SDPNegotiator,
)
from wcs_twisted.sdp.session import SessionDescription

__all__ = [
    "CONNECT_TIMEOUT",
    "NO_AVAILABLE_PORTS",
    "NO_COMMON_CODECS",
    "PTIME",
    "MediaSession",
    "NegotiatedStream",
    "bind_ports",
    "dispatcher",
    "drop",
]

#: The WCS info strings this module reports.
NO_COMMON_CODECS = "No common codecs"
NO_AVAILABLE_PORTS = "No available ports"
FAILED_BY_ICE = "Failed by ICE error"
FAILED_BY_DTLS = "Failed by DTLS error"

WEBRTC_PROTOS = ("UDP/TLS/RTP/SAVPF",)
RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")
PTIME = 20

#: Seconds a WebRTC leg may take from the end of offer/answer to DTLS-SRTP.
CONNECT_TIMEOUT = 30.0


# -- what the bridge reads -------------------------------------------------------


@dataclass(frozen=True)
class NegotiatedStream:
    """
    One negotiated stream (the audio or the video of a leg) as the bridge
    needs it.

    @ivar kind: C{"audio"} or C{"video"}.
    @ivar codec: the format in use, as the remote described it: its
        C{payload_type} is the one we send with.
    @ivar receive_payload_type: the payload type the peer sends it with (the
        number in our SDP; the same as C{codec.payload_type} unless the two
        SDPs numbered it differently).
    @ivar telephone_event: the RFC 4733 format at the codec's clock rate
        (its payload type is the one we send with), or C{None}.
    @ivar telephone_event_receive_payload_type: the peer's number for it.
    @ivar direction: what we may do, from the SDP exchange.
    @ivar remote_ssrc: the peer's SSRC from its a=ssrc lines, if any.
    """

    kind: str
    codec: Codec
    receive_payload_type: int
    telephone_event: Optional[Codec] = None
    telephone_event_receive_payload_type: Optional[int] = None
    direction: Direction = Direction.SENDRECV
    remote_ssrc: Optional[int] = None

    @property
    def name(self) -> str:
        """
        The codec's interface name, e.g. C{"PCMU/8000"}.
        """
        return codec_name(self.codec)

    @property
    def samples_per_packet(self) -> int:
        """
        RTP timestamp units per 20 ms packet (G.722 counts at 8 kHz,
        RFC 3551 section 4.5.2).
        """
        return self.codec.clock_rate * PTIME // 1000


def _receive_payload_type(local: SessionDescription, index: int, codec: Codec) -> int:
    """
    The payload type our SDP (m= line C{index}) gave to C{codec}'s format.
    """
    media = local.media[index]
    ours = media.codec(codec.payload_type)
    if ours is not None and ours.encoding == codec.encoding:
        return codec.payload_type
    for ours in media.codecs:
        if codecs_match(ours, codec):
            return ours.payload_type
    return codec.payload_type


def _stream(kind: str, negotiated: Sequence[NegotiatedMedia], local: SessionDescription,
            remote: SessionDescription) -> Optional[NegotiatedStream]:
    for media in negotiated:
        if media.kind != kind or media.rejected:
            continue
        codec = media.primary_codec
        assert codec is not None
        event = media.telephone_event
        if event is not None and event.clock_rate != codec.clock_rate:
            event = None
        ssrcs = remote.media[media.index].ssrcs
        return NegotiatedStream(
            kind=kind,
            codec=codec,
            receive_payload_type=_receive_payload_type(local, media.index, codec),
            telephone_event=event,
            telephone_event_receive_payload_type=(
                None if event is None else _receive_payload_type(local, media.index, event)
            ),
            direction=media.direction,
            remote_ssrc=ssrcs[0].ssrc if ssrcs else None,
        )
    return None


def _parse(sdp: str | bytes) -> SessionDescription:
    try:
        return SessionDescription.parse(sdp)
    except SDPError as e:
        raise MediaError(f"Malformed SDP: {e}") from e


def _direction(direction: str | Direction) -> Direction:
    try:
        return Direction(str(direction).lower())
    except ValueError:
        raise ValueError(f"unknown media direction {direction!r}") from None


# -- the common part ------------------------------------------------------------------


class MediaSession:
    """
    Offer/answer bookkeeping, direction and observer plumbing shared by
    both kinds of leg.
    """

    kind = ""
    log = Logger()

    #: Formats this kind of leg carries.
    audio_table: tuple[Codec, ...] = AUDIO_CODECS
    video_table: tuple[Codec, ...] = VIDEO_CODECS

    def __init__(
        self,
        clock: IReactorTime,
        public_address: str,
        inactivity_timeout: Optional[float],
        rng: Optional[random.Random],
    ) -> None:
        self._clock = clock
        self._public_address = public_address
        self._inactivity_timeout = inactivity_timeout or None
        self._watching = False
        self._rng = rng if rng is not None else random.SystemRandom()
        self.observer = None
        #: The host the peer's SIP messages come from (an IP literal), set by the call layer
        #: before the peer's SDP: under NAT, media is accepted from there too (docs/security.md).
        self.signalling_source: str | None = None
        self.audio_codec: Optional[str] = None
        self.video_codec: Optional[str] = None
        self.local_sdp: Optional[str] = None
        self.audio: Optional[NegotiatedStream] = None
        self.video: Optional[NegotiatedStream] = None
        self._direction = Direction.SENDRECV
        self._negotiator = SDPNegotiator(
            LocalCapabilities(public_address, ()),
            session_id=self._rng.getrandbits(62),
        )
        self._closed = False
        self._connected = False
        self._failed = False
        #: The bridge joined to this leg (set and cleared by the bridge).
        self.bridge = None
        # What received packets go to: the bridge's routes (payload type -> handler, per kind)
        # and the stream taps (one handler per kind, see set_stream_tap).
        self._routes: tuple = (None, None)
        self._taps: tuple = (None, None)

    def _watch_activity(self, leg) -> None:
        """
        Start C{leg}'s inactivity watch once, when media can first flow on it.
        """
        if not self._watching:
            self._watching = True
            leg.watch_activity(self._inactivity_timeout)

    # -- IMediaSession ---------------------------------------------------------------

    def offered_codecs(self, sdp: str | bytes) -> tuple[list[str], list[str]]:
        """
        The audio and video codec names of C{sdp} this leg can carry, in its
        order, without duplicates (m= lines with a transport this kind of
        leg cannot answer are skipped).
        """
        description = _parse(sdp)
        names: dict[str, list[str]] = {"audio": [], "video": []}
        tables = {"audio": self.audio_table, "video": self.video_table}
        for media in description.media:
            if media.port == 0 or media.kind not in names or not self._accepts_media(media):
                continue
            for codec in media.codecs:
                if codec.encoding in SECONDARY_ENCODINGS:
                    continue
                if local_codec(codec, tables[media.kind]) is not None:
                    name = codec_name(codec)
                    if name not in names[media.kind]:
                        names[media.kind].append(name)
        return names["audio"], names["video"]

    def create_offer(self, audio_codecs: Sequence[str], video_codecs: Sequence[str],
                     direction: str = "sendrecv") -> str:
        """
        See L{IMediaSession.create_offer}.  Video is offered only when
        C{video_codecs} names something we carry.
        """
        self._check_open()
        wanted = _direction(direction)
        video = [c for c in ordered_codecs(video_codecs, self.video_table)
                 if any(name_matches(n, c) for n in video_codecs)]
        if video and not self._prepare_video():
            video = []
        audio = ordered_codecs(audio_codecs, self.audio_table)
        rates = {c.clock_rate for c in audio}
        audio += [e for e in TELEPHONE_EVENTS if e.clock_rate in rates]
        self._negotiator.capabilities = self._capabilities(
            audio, video, wanted, offer=True, remote=None
        )
        self._abandon_pending()
        offer = self._negotiator.create_offer()
        self.local_sdp = str(offer)
        return self.local_sdp

    def create_answer(self, offer: str | bytes, prefer_audio: Sequence[str] = (),
                      prefer_video: Optional[Sequence[str]] = (),
                      direction: str = "sendrecv") -> str:
        """
        See L{IMediaSession.create_answer}.  The answer carries one codec per
        stream (and telephone-event at its clock rate), so the peer has no
        other format to switch to.  With C{prefer_video=None} an offered
        video stream is answered C{inactive} (a player of a stream without
        video: nothing flows on it).

        @raise MediaError: "No common codecs" when the offer's audio has
            nothing we carry; "Malformed SDP: ..." when it does not parse.
        """
        self._check_open()
        wanted = _direction(direction)
        remote = _parse(offer)
        audio_media = next(
            (m for m in remote.media if m.kind == "audio" and m.port and self._accepts_media(m)),
            None,
        )
        if audio_media is None:
            raise MediaError(NO_COMMON_CODECS)
        try:
            audio_choice = choose_codec(audio_media.codecs, self.audio_table, prefer_audio)
        except SDPError as e:
            raise MediaError(f"Malformed SDP: {e}") from e
        if audio_choice is None:
            raise MediaError(NO_COMMON_CODECS)
        video: list[Codec] = []
        video_media = next(
            (m for m in remote.media if m.kind == "video" and m.port and self._accepts_media(m)),
            None,
        )
        if video_media is not None:
            try:
                video_choice = choose_codec(video_media.codecs, self.video_table, prefer_video or ())
            except SDPError:
                video_choice = None
            if video_choice is not None:
                video = [video_choice[1]]
        if video and not self._prepare_video():
            video = []
        local_audio = audio_choice[1]
        audio = [local_audio] + [
            e for e in TELEPHONE_EVENTS if e.clock_rate == local_audio.clock_rate
        ]
        capabilities = self._capabilities(audio, video, wanted, offer=False, remote=remote)
        if prefer_video is None and video:
            # Accepted but inactive, rather than rejected: some stacks (aiortc) refuse an
            # answer whose port-0 m= line lacks ICE, DTLS and rtcp-mux attributes.
            capabilities = replace(capabilities, media=tuple(
                replace(m, direction=Direction.INACTIVE) if m.kind == "video" else m
                for m in capabilities.media))
        self._negotiator.capabilities = capabilities
        self._abandon_pending()
        try:
            self._negotiator.receive_offer(remote)
            answer = self._negotiator.create_answer()
            negotiated = self._negotiator.negotiate()
        except NoCommonCodec as e:
            raise MediaError(NO_COMMON_CODECS) from e
        except SDPError as e:
            raise MediaError(f"Malformed SDP: {e}") from e
        self.local_sdp = str(answer)
        self._apply(negotiated)
        return self.local_sdp

    def set_remote_answer(self, answer: str | bytes) -> None:
        """
        See L{IMediaSession.set_remote_answer}.

        @raise MediaError: "No common codecs", "Malformed SDP: ...", or
            "No offer to answer" when no offer of ours is pending.
        """
        self._check_open()
        remote = _parse(answer)
        if self._negotiator.state is not NegotiatorState.LOCAL_OFFER:
            raise MediaError("No offer to answer")
        self._negotiator.receive_answer(remote)
        try:
            negotiated = self._negotiator.negotiate()
        except NoCommonCodec as e:
            raise MediaError(NO_COMMON_CODECS) from e
        except SDPError as e:
            raise MediaError(f"Malformed SDP: {e}") from e
        if not any(m.kind == "audio" and not m.rejected for m in negotiated):
            raise MediaError(NO_COMMON_CODECS)
        self._apply(negotiated)

    def set_direction(self, direction: str) -> None:
        """
        Pause or resume sending/receiving without new SDP; the effective
        direction is this one limited by what the SDP exchange allowed.
        """
        self._direction = _direction(direction)
        if not self._closed:
            self._apply_direction()

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """
        Send C{digit} as RFC 4733 events; a no-op (logged) without a
        negotiated telephone-event.

        @raise ValueError: if C{digit} is not a DTMF digit.
        """
        if self._closed or self.audio is None or self.audio.telephone_event is None:
            self.log.info(
                "DTMF {digit} not sent on {kind} leg: no telephone-event negotiated",
                digit=digit, kind=self.kind,
            )
            return
        self._audio_transport().send_digit(digit, max(0.01, duration_ms / 1000.0))

    def close(self) -> defer.Deferred[None]:
        """
        Stop media and release every port; closing twice is harmless.
        """
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        bridge = self.bridge
        if bridge is not None:
            bridge.close()
        return self._stop()

    # -- shared machinery -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """
        Whether L{close} was called.
        """
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise MediaError("Media session closed")

    def _accepts(self, proto: str) -> bool:
        raise NotImplementedError()

    def _accepts_media(self, media) -> bool:
        # One offered m= line; a leg may look past the transport (SDES keys, say).
        return self._accepts(media.proto)

    def _prepare_video(self) -> bool:
        """
        Make sure video has ports before it is offered or answered; C{False}
        when it cannot (the call then goes on audio-only).
        """
        return True

    def _capabilities(self, audio: list[Codec], video: list[Codec], direction: Direction,
                      offer: bool, remote: Optional[SessionDescription]) -> LocalCapabilities:
        raise NotImplementedError()

    def _abandon_pending(self) -> None:
        # A new offer or answer supersedes one that was never completed (our
        # offer refused with 488, say); the last agreed media stays in force.
        if self._negotiator.state in (NegotiatorState.LOCAL_OFFER, NegotiatorState.REMOTE_OFFER):
            self._negotiator.cancel_offer()
        elif self._negotiator.state is NegotiatorState.WAIT_NEGO:
            raise NegotiatorStateError("offer/answer in progress")

    def _apply(self, negotiated: list[NegotiatedMedia]) -> None:
        local = self._negotiator.local_description
        remote = self._negotiator.remote_description
        assert local is not None and remote is not None
        self.audio = _stream("audio", negotiated, local, remote)
        self.video = _stream("video", negotiated, local, remote)
        self.audio_codec = None if self.audio is None else self.audio.name
        self.video_codec = None if self.video is None else self.video.name
        self._configure(negotiated, remote)
        self._apply_direction()
        if self.bridge is not None:
            self.bridge.session_changed(self)  # which calls set_receivers, taps included
        elif self._taps != (None, None):
            self._install_receivers()

    def _configure(self, negotiated: list[NegotiatedMedia], remote: SessionDescription) -> None:
        raise NotImplementedError()

    def _effective(self, stream: Optional[NegotiatedStream]) -> Direction:
        if stream is None:
            return Direction.INACTIVE
        return stream.direction.intersect(self._direction)

    def _apply_direction(self) -> None:
        raise NotImplementedError()

    def _audio_transport(self):
        raise NotImplementedError()

    def _stop(self) -> defer.Deferred[None]:
        raise NotImplementedError()

    # -- received packets: bridge routes and stream taps ------------------------------------

    def set_receivers(self, audio: Optional[dict[int, Callable[[bytes], None]]],
                      video: Optional[dict[int, Callable[[bytes], None]]]) -> None:
        """
        Route received RTP of each kind by payload type (the bridge's
        paths); C{None} for both detaches.  A stream tap stays in place.
        """
        self._routes = (audio, video)
        self._install_receivers()

    def set_stream_tap(self, audio: Optional[Callable[[bytes], None]],
                       video: Optional[Callable[[bytes], None]]) -> None:
        """
        Also hand every received RTP packet of the negotiated audio (video)
        codec to C{audio} (C{video}), unparsed, after the bridge's handler
        for it: how a leg's media becomes a named stream.  Telephone events
        and other formats are not tapped.  C{None} for both removes the tap;
        without one the receive path is exactly the bridge's.
        """
        self._taps = (audio, video)
        self._install_receivers()

    def _install_receivers(self) -> None:
        audio, video = self._routes
        tap_audio, tap_video = self._taps
        if tap_audio is not None and self.audio is not None:
            audio = with_tap(audio, self.audio.receive_payload_type, tap_audio)
        if tap_video is not None and self.video is not None:
            video = with_tap(video, self.video.receive_payload_type, tap_video)
        self._set_dispatch(audio, video)

    def _set_dispatch(self, audio, video) -> None:
        raise NotImplementedError()

    # -- observer calls -------------------------------------------------------------------

    def _report_connected(self) -> None:
        if not self._connected and not self._closed:
            self._connected = True
            if self.observer is not None:
                self.observer.media_connected(self)

    def _report_digit(self, digit: str) -> None:
        if self.observer is not None and not self._closed:
            self.observer.media_dtmf(self, digit)

    def _report_inactive(self, _leg=None) -> None:
        if self.observer is not None and not self._closed and not self._failed:
            self.observer.media_inactive(self)

    def _report_failed(self, reason: str) -> None:
        if not self._failed and not self._closed:
            self._failed = True
            self.log.info("{kind} media failed: {reason}", kind=self.kind, reason=reason)
            if self.observer is not None:
                self.observer.media_failed(self, reason)


def with_tap(routes: Optional[dict[int, Callable[[bytes], None]]], payload_type: int,
              tap: Callable[[bytes], None]) -> dict[int, Callable[[bytes], None]]:
    """
    C{routes} with C{tap} also called for C{payload_type} (after the route's
    own handler, if any).
    """
    routes = dict(routes or {})
    first = routes.get(payload_type)
    if first is None:
        routes[payload_type] = tap
    else:
        def both(data: bytes) -> None:
            first(data)
            tap(data)

        routes[payload_type] = both
    return routes


def bind_ports(start: Callable[[], None]) -> None:
    try:
        start()
    except (PortPoolExhausted, CannotListenError) as e:
        raise MediaError(NO_AVAILABLE_PORTS) from e


def drop(data) -> None:
    return None


def dispatcher(routes: Optional[dict[int, Callable[[bytes], None]]]):
    if not routes:
        return None
    table: list[Optional[Callable[[bytes], None]]] = [None] * 128
    for payload_type, handler in routes.items():
        table[payload_type & 0x7F] = handler

    def dispatch(data: bytes) -> None:
        handler = table[data[1] & 0x7F]
        if handler is not None:
            handler(data)

    return dispatch
