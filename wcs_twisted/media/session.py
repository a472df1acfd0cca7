# -*- test-case-name: tests.media.test_session -*-
"""
The two kinds of call leg as the call layer sees them (L{IMediaSession}):
SDP in and out, media events out.

L{WebRTCMediaSession} puts a L{WebRTCTransport} (ICE-lite, DTLS-SRTP, one
bundled rtcp-muxed port) behind WebRTC SDP; L{RTPMediaSession} puts one
L{RTPSession} per m= line behind plain RTP/AVP SDP for SIP peers.  Both use
the sans-I/O offer/answer machine of L{wcs_twisted.sdp} (so re-offers keep
their o= session, payload types and m= positions), answer with exactly one
codec per stream (plus telephone-event at its clock rate) so the peer cannot
switch formats under a relay, and translate transport events into
L{IMediaSessionObserver} calls with the WCS failure strings.

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
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReactorUDP
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaSession
from wcs_twisted.media import rtcp
from wcs_twisted.media.dtls import DTLSState, RTCCertificate
from wcs_twisted.media.ports import PortPool, PortPoolExhausted
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import RTPRewriter
from wcs_twisted.media.webrtc import WebRTCTransport
from wcs_twisted.sdp.errors import NegotiatorStateError, NoCommonCodec, SDPError
from wcs_twisted.sdp.codecs import SECONDARY_ENCODINGS, Codec, codecs_match
from wcs_twisted.sdp.fields import Attribute, Direction
from wcs_twisted.sdp.offer_answer import (
    LocalCapabilities,
    MediaCapability,
    NegotiatedMedia,
    NegotiatorState,
    SDPNegotiator,
)
from wcs_twisted.sdp.session import SessionDescription

__all__ = [
    "AUDIO_CODECS",
    "NO_COMMON_CODECS",
    "NegotiatedStream",
    "RTPMediaSession",
    "TELEPHONE_EVENTS",
    "VIDEO_CODECS",
    "WebRTCMediaSession",
    "codec_name",
    "parse_codec_name",
]

#: The WCS info strings this module reports.
NO_COMMON_CODECS = "No common codecs"
NO_AVAILABLE_PORTS = "No available ports"
FAILED_BY_ICE = "Failed by ICE error"
FAILED_BY_DTLS = "Failed by DTLS error"

#: Audio formats both kinds of leg carry (relayed, or transcoded by the
#: bridge), in our order of preference; the payload types are those of our
#: offers.  Opus is written stereo on the wire (RFC 7587 section 7).
AUDIO_CODECS: tuple[Codec, ...] = (
    Codec(111, "opus", 48000, 2, {"minptime": "10", "useinbandfec": "1"}),
    Codec(9, "G722", 8000),
    Codec(0, "PCMU", 8000),
    Codec(8, "PCMA", 8000),
)

#: RFC 4733 events, one per audio clock rate.
TELEPHONE_EVENTS: tuple[Codec, ...] = (
    Codec(110, "telephone-event", 48000, None, {"0-15": None}),
    Codec(101, "telephone-event", 8000, None, {"0-15": None}),
)

#: Video is relayed only, so these are the formats worth offering: keyframe
#: requests (PLI, FIR) are accepted, NACK is not (no retransmission history;
#: without it the browser asks for a key frame on loss, which we pass on).
_VIDEO_FEEDBACK = ("ccm fir", "nack pli")
VIDEO_CODECS: tuple[Codec, ...] = (
    Codec(96, "VP8", 90000, None, {}, _VIDEO_FEEDBACK),
    Codec(
        102, "H264", 90000, None,
        {"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42e01f"},
        _VIDEO_FEEDBACK,
    ),
    Codec(
        104, "H264", 90000, None,
        {"level-asymmetry-allowed": "1", "packetization-mode": "0", "profile-level-id": "42e01f"},
        _VIDEO_FEEDBACK,
    ),
)

WEBRTC_PROTOS = ("UDP/TLS/RTP/SAVPF",)
RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")
PTIME = 20

#: Seconds a WebRTC leg may take from the end of offer/answer to DTLS-SRTP.
CONNECT_TIMEOUT = 30.0


# -- codec names ("name/clock_rate[/channels]", as in rtpmap) -----------------


def parse_codec_name(name: str) -> tuple[str, int, Optional[int]]:
    """
    Split C{"opus/48000/2"} into (lower-case encoding, clock rate, channels).

    @raise ValueError: if the clock rate or channel count is not a number.
    """
    parts = name.split("/")
    encoding = parts[0].strip().lower()
    clock_rate = int(parts[1]) if len(parts) > 1 else 0
    channels = int(parts[2]) if len(parts) > 2 else None
    return encoding, clock_rate, channels


def _name_matches(name: str, codec: Codec) -> bool:
    try:
        encoding, clock_rate, channels = parse_codec_name(name)
    except ValueError:
        return False
    if encoding != codec.encoding or (clock_rate and clock_rate != codec.clock_rate):
        return False
    # Opus is always "/2" on the wire; for the rest a stated count must agree.
    return encoding == "opus" or channels is None or channels == codec.channel_count


def codec_name(codec: Codec) -> str:
    """
    The interface's name for C{codec}, spelled as in our own tables
    (C{"PCMU/8000"}, C{"opus/48000/2"}, C{"H264/90000"}).
    """
    for ours in AUDIO_CODECS + VIDEO_CODECS + TELEPHONE_EVENTS:
        if ours.encoding == codec.encoding and ours.clock_rate == codec.clock_rate:
            return ours.rtpmap
    return codec.rtpmap


def _local_codec(codec: Codec, table: Sequence[Codec]) -> Optional[Codec]:
    """
    Our format that can serve the remote C{codec}, or C{None}.
    """
    return next((ours for ours in table if codecs_match(ours, codec)), None)


def _ordered(names: Sequence[str], table: Sequence[Codec]) -> list[Codec]:
    """
    C{table} reordered so the formats named in C{names} come first, in the
    order of C{names}.
    """
    first: list[Codec] = []
    for name in names:
        for codec in table:
            if codec not in first and _name_matches(name, codec):
                first.append(codec)
    return first + [c for c in table if c not in first]


def _choose(offered: Sequence[Codec], table: Sequence[Codec],
            prefer: Sequence[str]) -> Optional[tuple[Codec, Codec]]:
    """
    The (offered, local) pair to answer with: the first name in C{prefer}
    the offer carries, else the offer's first format we carry.
    """
    usable = [
        (codec, local)
        for codec in offered
        if codec.encoding not in SECONDARY_ENCODINGS
        for local in [_local_codec(codec, table)]
        if local is not None
    ]
    for name in prefer or ():
        for codec, local in usable:
            if _name_matches(name, codec):
                return codec, local
    return usable[0] if usable else None


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


class _MediaSession:
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
        self._rng = rng if rng is not None else random.SystemRandom()
        self.observer = None
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
            if media.port == 0 or media.kind not in names or not self._accepts(media.proto):
                continue
            for codec in media.codecs:
                if codec.encoding in SECONDARY_ENCODINGS:
                    continue
                if _local_codec(codec, tables[media.kind]) is not None:
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
        video = [c for c in _ordered(video_codecs, self.video_table)
                 if any(_name_matches(n, c) for n in video_codecs)]
        if video and not self._prepare_video():
            video = []
        audio = _ordered(audio_codecs, self.audio_table)
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
            (m for m in remote.media if m.kind == "audio" and m.port and self._accepts(m.proto)),
            None,
        )
        if audio_media is None:
            raise MediaError(NO_COMMON_CODECS)
        try:
            audio_choice = _choose(audio_media.codecs, self.audio_table, prefer_audio)
        except SDPError as e:
            raise MediaError(f"Malformed SDP: {e}") from e
        if audio_choice is None:
            raise MediaError(NO_COMMON_CODECS)
        video: list[Codec] = []
        video_media = next(
            (m for m in remote.media if m.kind == "video" and m.port and self._accepts(m.proto)),
            None,
        )
        if video_media is not None:
            try:
                video_choice = _choose(video_media.codecs, self.video_table, prefer_video or ())
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
            audio = _with_tap(audio, self.audio.receive_payload_type, tap_audio)
        if tap_video is not None and self.video is not None:
            video = _with_tap(video, self.video.receive_payload_type, tap_video)
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


def _with_tap(routes: Optional[dict[int, Callable[[bytes], None]]], payload_type: int,
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


def _bind(start: Callable[[], None]) -> None:
    try:
        start()
    except (PortPoolExhausted, CannotListenError) as e:
        raise MediaError(NO_AVAILABLE_PORTS) from e


# -- the browser leg ----------------------------------------------------------------------


@implementer(IMediaSession)
class WebRTCMediaSession(_MediaSession):
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
        _bind(self.transport.start)
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
            transport.watch_activity(self._inactivity_timeout)
            if transport.state != "connected" and self._connect_timeout:
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
        self.transport.packet_received = _dispatcher({**(video or {}), **(audio or {})})

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


# -- the SIP peer's leg ---------------------------------------------------------------------


@implementer(IMediaSession)
class RTPMediaSession(_MediaSession):
    """
    A SIP peer's leg: plain RTP/AVP, one L{RTPSession} (even RTP port, RTCP
    on the next) per stream, c= from the configured public address, ptime
    20, telephone-event at 8000 Hz (and 48000 Hz next to Opus).  Symmetric
    RTP: the leg sends to the SDP address until the peer's first packet
    latches it onto the packet's source.
    """

    kind = "rtp"

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
    ) -> None:
        clock = clock if clock is not None else reactor  # type: ignore[assignment]
        super().__init__(clock, public_address, inactivity_timeout, rng)
        self._reactor = reactor
        self._bind_address = bind_address
        self._pool = port_pool
        self.audio_rtp = self._leg()
        self.video_rtp: Optional[RTPSession] = None
        self._watching = False

    def _leg(self) -> RTPSession:
        leg = RTPSession(self._reactor, self._bind_address, self._pool, clock=self._clock,
                         rng=self._rng)
        return leg

    def start(self) -> "RTPMediaSession":
        """
        Bind the audio port pair.

        @raise MediaError: "No available ports".
        """
        _bind(self.audio_rtp.start)
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
        return proto.upper() in RTP_PROTOS

    def _prepare_video(self) -> bool:
        if self.video_rtp is None:
            leg = self._leg()
            try:
                _bind(leg.start)
            except MediaError:
                self.log.warn("No port pair left for video: the call goes on audio-only")
                return False
            self.video_rtp = leg
        return True

    def _capabilities(self, audio, video, direction, offer, remote):
        media = [MediaCapability(
            "audio", tuple(audio), self.audio_rtp.local_address[1], direction, RTP_PROTOS,
            ptime=PTIME, rtcp_mux=not offer,
        )]
        if video and self.video_rtp is not None:
            media.append(MediaCapability(
                "video", tuple(video), self.video_rtp.local_address[1], direction, RTP_PROTOS,
                rtcp_mux=not offer,
            ))
        return LocalCapabilities(self._public_address, tuple(media))

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
            if not self._watching:
                self._watching = True
                self.audio_rtp.watch_activity(self._inactivity_timeout)
        if video is not None and self.video_rtp is not None:
            self._point(self.video_rtp, video)
            self.video_rtp.clock_rate = 90000
            self.video_rtp.rewriter.timestamp_step = 3000
        elif self.video_rtp is not None:
            # Video rejected or dropped: give its ports back now.
            self.video_rtp.stop()
            self.video_rtp = None

    @staticmethod
    def _point(leg: RTPSession, media: NegotiatedMedia) -> None:
        leg.rtcp_mux = media.rtcp_mux
        address = media.remote_address
        if address and address not in ("0.0.0.0", "::") and media.remote_port:
            leg.set_remote(address, media.remote_port, media.remote_rtcp_port)

    def _apply_direction(self):
        direction = self._effective(self.audio)
        self.audio_rtp.set_direction(direction.sends, direction.receives)
        if self.video_rtp is not None:
            direction = self._effective(self.video)
            self.video_rtp.set_direction(direction.sends, direction.receives)

    def _audio_transport(self):
        return self.audio_rtp

    def _stop(self):
        legs = [self.audio_rtp] + ([self.video_rtp] if self.video_rtp is not None else [])
        return defer.gatherResults([leg.stop() for leg in legs], consumeErrors=True).addCallback(
            lambda _: None
        )

    # -- bridge-facing ----------------------------------------------------------------------

    def _set_dispatch(self, audio: Optional[dict[int, Callable[[bytes], None]]],
                      video: Optional[dict[int, Callable[[bytes], None]]]) -> None:
        # One RTP session per stream, each with its own table.
        self.audio_rtp.packet_received = _dispatcher(audio)
        if self.video_rtp is not None:
            self.video_rtp.packet_received = _dispatcher(video)

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
            return _drop
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


def _drop(data) -> None:
    return None


def _dispatcher(routes: Optional[dict[int, Callable[[bytes], None]]]):
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
