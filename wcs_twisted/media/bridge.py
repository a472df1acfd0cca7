# -*- test-case-name: tests.media.test_bridge -*-
"""
Joins the two legs of a call: RELAY encoded packets when both legs settled
on the same codec, TRANSCODE audio otherwise.

A relayed packet costs a payload-type table lookup, a C{bytearray} copy of
the datagram, an in-place header rewrite (payload type through the
destination's map, our SSRC, continuous sequence numbers and timestamps, see
L{RTPRewriter}) and the send - no parsing, no decoding, no logging.  That is
what lets a core carry hundreds of relayed calls (docs/media.md).

Transcoding (L{wcs_twisted.media.transcode}) puts received packets through a
jitter buffer, decodes, resamples to the other leg's rate in 20 ms frames and
encodes, inline on the reactor thread.  Video is only ever relayed: with
different video codecs on the two legs no video crosses.  Keyframe requests
(RTCP PLI/FIR) from one leg's peer are passed to the other leg as a PLI, and
L{MediaBridge.on_keyframe_request} tells the call layer, which owns SIP INFO
C{picture_fast_update}.

RFC 4733 telephone events are relayed with their payload type mapped when
both legs negotiated them at the same clock rate as the relayed codec;
otherwise (transcoding, or different rates) each event is re-sent on the
other leg from its end packet, with its duration.  Either way the digit is
carried once, by the media path; the call layer only reports C{media_dtmf}.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IMediaBridge, IPausableBridge
from wcs_twisted.media import rtcp
from wcs_twisted.media.rtp_packet import decode_telephone_event, payload_bounds
from wcs_twisted.media.session import NegotiatedStream
from wcs_twisted.media.transcode import AudioTranscoder, can_transcode
from wcs_twisted.sdp.codecs import Codec

__all__ = ["MediaBridge", "can_relay"]

#: Keyframe requests closer together than this are passed on once.
KEYFRAME_REQUEST_INTERVAL = 0.25
#: Video packets one leg's peer may have resent or asked upstream per second by NACK (a
#: 30 frames/s stream at 10 % loss needs ~10): a flood of NACKs cannot make us a traffic pump.
NACK_BUDGET = 200


def can_relay(source: Codec, target: Codec) -> bool:
    """
    Whether packets of C{source} can go out as C{target} unchanged: same
    encoding and clock rate (Opus carries its channel count in-band), and for
    H.264 the same packetization mode (RFC 6184 section 8.2.2).
    """
    if source.encoding != target.encoding or source.clock_rate != target.clock_rate:
        return False
    if source.encoding == "h264":
        return source.parameters.get("packetization-mode", "0") == target.parameters.get(
            "packetization-mode", "0"
        )
    if source.encoding != "opus" and source.channel_count != target.channel_count:
        return False
    return True


class _DigitRegenerator:
    """
    Carries RFC 4733 events across when they cannot be relayed: each event
    is re-sent on the target leg once, when its first end packet arrives,
    with the duration it had.
    """

    def __init__(self, source: NegotiatedStream, target) -> None:
        assert source.telephone_event is not None
        self._clock_rate = source.telephone_event.clock_rate
        self._target = target
        self._seen: deque[tuple[int, int]] = deque(maxlen=8)

    def __call__(self, data: bytes) -> None:
        try:
            start, end = payload_bounds(data)
            event = decode_telephone_event(data[start:end])
        except (ValueError, IndexError):
            return
        if not event.end or event.digit is None:
            return
        key = (int.from_bytes(data[4:8], "big"), event.event)
        if key in self._seen:
            return
        self._seen.append(key)
        duration_ms = max(40, event.duration * 1000 // self._clock_rate)
        self._target.send_dtmf(event.digit, duration_ms)


class _LastPacket:
    """
    Keeps a reference to the last video packet relayed from one leg (for
    the SSRC a keyframe request must name).
    """

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: Optional[bytes] = None

    @property
    def ssrc(self) -> Optional[int]:
        data = self.data
        return None if data is None else int.from_bytes(data[8:12], "big")


@implementer(IMediaBridge, IPausableBridge)
class MediaBridge:
    """
    Two negotiated media sessions joined (see the module docstring).

    Renegotiation of either leg (a re-INVITE changing the codec, say)
    reconfigures the bridge: the sessions call L{session_changed}.

    @ivar mode: C{"relay"} when audio crosses unchanged both ways,
        C{"transcode"} when either direction transcodes, C{None} while the
        legs have no audio to join.
    @ivar modes: the mode of each direction, keyed C{"a->b"} and C{"b->a"}.
    @ivar on_keyframe_request: called with the session whose peer should
        produce a video key frame (for the call layer's SIP INFO
        picture_fast_update), after a PLI was sent to it; or C{None}.
    """

    log = Logger()

    def __init__(self, a, b, *, clock: Optional[IReactorTime] = None) -> None:
        """
        @param a: a negotiated media session of this package.
        @param b: the other one.
        @param clock: spaces keyframe requests; without it every request is
            passed on.
        """
        if a is b:
            raise ValueError("a media session cannot be bridged to itself")
        for session in (a, b):
            if session.bridge is not None:
                raise ValueError(f"{session!r} is already bridged")
        self.a = a
        self.b = b
        self.mode: Optional[str] = None
        self.modes: dict[str, Optional[str]] = {"a->b": None, "b->a": None}
        self.on_keyframe_request: Optional[Callable[[object], None]] = None
        self.transcoders: dict[str, AudioTranscoder] = {}
        self._clock = clock
        self._held = False
        self._closed = False
        #: ids of the legs that get no audio from the other one (L{pause_audio_to}).
        self._paused_into: set[int] = set()
        self._last_video = {id(a): _LastPacket(), id(b): _LastPacket()}
        self._last_keyframe_request = {id(a): -1e9, id(b): -1e9}
        #: Per leg: the second a NACK budget started, and what is left of it.
        self._nack_budget = {id(a): [-1e9, 0], id(b): [-1e9, 0]}
        a.bridge = self
        b.bridge = self
        self._configure()

    @property
    def held(self) -> bool:
        """
        Whether L{hold} is in effect.
        """
        return self._held

    def hold(self, held: bool) -> None:
        """
        While C{held}, forward nothing either way (no media, no events; the
        legs keep their ports, RTCP and ICE consent).  On resume each leg's
        outgoing streams continue gap-free (L{RTPRewriter.resync}): what the
        relay dropped during the hold is no loss to the peer.
        """
        held = bool(held)
        if held != self._held:
            self._held = held
            if not held:
                for session in (self.a, self.b):
                    for kind in ("audio", "video"):
                        if getattr(session, kind) is not None:
                            session.rewriter(kind).resync()
            self._configure()

    def pause_audio_to(self, session, paused: bool) -> None:
        """
        While C{paused}, forward no audio (nor telephone events) from the other
        leg into C{session}, so that something else can be heard there (a
        named stream injected into a call); video, RTCP and the other direction
        flow on.  The pause outlasts hold and renegotiation.
        """
        if session is not self.a and session is not self.b:
            raise ValueError("not a leg of this bridge")
        key = id(session)
        if bool(paused) != (key in self._paused_into):
            if paused:
                self._paused_into.add(key)
            else:
                self._paused_into.discard(key)
            if not self._closed:
                self._configure()

    def close(self) -> None:
        """
        Unjoin the sessions; they stay open (their owner closes them).
        """
        if self._closed:
            return
        self._closed = True
        for key, transcoder in self.transcoders.items():
            jitter = transcoder.jitter
            self.log.info(
                "Transcoded {key}: {packets} packets, {lost} lost ({repaired} rebuilt from "
                "the next packet's FEC where it had any), {late} late, {recovered} reordered "
                "in time",
                key=key, packets=transcoder.packets_in, lost=jitter.lost,
                repaired=jitter.repaired, late=jitter.late, recovered=jitter.recovered,
            )
        for session in (self.a, self.b):
            self._detach(session)
            if session.bridge is self:
                session.bridge = None
        self.transcoders = {}

    def session_changed(self, session) -> None:
        """
        A leg finished a new offer/answer exchange: rebuild the paths.
        """
        if not self._closed:
            self._configure()

    def request_keyframe(self, session) -> None:
        """
        Ask C{session}'s peer for a video key frame (RTCP PLI), e.g. when
        the other side's peer asked for one through SIP INFO.
        """
        if session is not self.a and session is not self.b:
            raise ValueError("not a leg of this bridge")
        session.send_keyframe_request(self._last_video[id(session)].ssrc)

    # -- wiring ---------------------------------------------------------------------------

    @staticmethod
    def _detach(session) -> None:
        session.set_receivers(None, None)
        session.set_feedback_receiver(None)
        for kind in ("audio", "video"):
            stream = getattr(session, kind)
            if stream is not None:
                session.rewriter(kind).set_payload_type_map(None)

    def _configure(self) -> None:
        a, b = self.a, self.b
        self._detach(a)
        self._detach(b)
        self.transcoders = {}
        if a.closed or b.closed:
            self.mode = None
            self.modes = {"a->b": None, "b->a": None}
            return
        routes = {
            "a->b": self._direction(a, b, "a->b"),
            "b->a": self._direction(b, a, "b->a"),
        }
        for key, target in (("a->b", b), ("b->a", a)):
            if id(target) in self._paused_into and target.audio is not None:
                # Whatever plays into the paused leg sends with that leg's own payload types.
                target.rewriter("audio").set_payload_type_map(None)
                self.transcoders.pop(key, None)
                mode, _, video = routes[key]
                routes[key] = (mode, {}, video)
        modes = self.modes = {key: mode for key, (mode, _, _) in routes.items()}
        if "transcode" in modes.values():
            self.mode = "transcode"
        elif "relay" in modes.values():
            self.mode = "relay"
        else:
            self.mode = None
        self.log.info(
            "Media bridge {a_kind}<->{b_kind}: {mode} ({a_codec} / {b_codec}, video "
            "{a_video} / {b_video})",
            a_kind=a.kind, b_kind=b.kind, mode=self.mode, a_codec=a.audio_codec,
            b_codec=b.audio_codec, a_video=a.video_codec, b_video=b.video_codec,
        )
        if self._held:
            return
        _, audio_ab, video_ab = routes["a->b"]
        _, audio_ba, video_ba = routes["b->a"]
        a.set_receivers(audio_ab, video_ab)
        b.set_receivers(audio_ba, video_ba)
        a.set_feedback_receiver(lambda kind, packets: self._feedback(a, b, kind, packets))
        b.set_feedback_receiver(lambda kind, packets: self._feedback(b, a, kind, packets))

    def _direction(self, source, target, key: str):
        """
        The mode and the receive routes (payload type -> handler) for media
        going from C{source} to C{target}.
        """
        audio_routes: dict[int, Callable[[bytes], None]] = {}
        video_routes: dict[int, Callable[[bytes], None]] = {}
        mode: Optional[str] = None
        src, dst = source.audio, target.audio
        if src is not None and dst is not None:
            if can_relay(src.codec, dst.codec):
                mode = "relay"
                send = target.relay_sender("audio")
                mapping = {src.receive_payload_type: dst.codec.payload_type}

                def relay(data: bytes, send=send) -> None:
                    send(bytearray(data))

                audio_routes[src.receive_payload_type] = relay
                if src.telephone_event is not None and dst.telephone_event is not None:
                    assert src.telephone_event_receive_payload_type is not None
                    mapping[src.telephone_event_receive_payload_type] = (
                        dst.telephone_event.payload_type
                    )
                    audio_routes[src.telephone_event_receive_payload_type] = relay
                target.rewriter("audio").set_payload_type_map(mapping)
            elif can_transcode(src.codec) and can_transcode(dst.codec):
                mode = "transcode"
                transcoder = self.transcoders[key] = AudioTranscoder(
                    src.codec, dst.codec, target.payload_sender()
                )
                audio_routes[src.receive_payload_type] = transcoder.packet
            else:
                self.log.warn(
                    "No audio path from {source} to {target}",
                    source=src.name, target=dst.name,
                )
            if (
                mode is not None
                and src.telephone_event is not None
                and src.telephone_event_receive_payload_type not in audio_routes
            ):
                assert src.telephone_event_receive_payload_type is not None
                audio_routes[src.telephone_event_receive_payload_type] = _DigitRegenerator(
                    src, target
                )
        vsrc, vdst = source.video, target.video
        if vsrc is not None and vdst is not None:
            if can_relay(vsrc.codec, vdst.codec):
                send_video = target.relay_sender("video")
                last = self._last_video[id(source)]

                def relay_video(data: bytes, send=send_video, last=last) -> None:
                    last.data = data
                    send(bytearray(data))

                video_routes[vsrc.receive_payload_type] = relay_video
                target.rewriter("video").set_payload_type_map(
                    {vsrc.receive_payload_type: vdst.codec.payload_type}
                )
            else:
                self.log.info(
                    "Video not relayed: {source} and {target} differ",
                    source=vsrc.name, target=vdst.name,
                )
        return mode, audio_routes, video_routes

    def _feedback(self, session, other, kind: str, packets: list) -> None:
        """
        RTCP from C{session}'s peer: a keyframe request goes on to the
        other leg as a PLI, and to the call layer's hook; a video NACK goes
        on to the other leg (L{_pass_nack}).
        """
        if other.video is None:
            return
        for packet in packets:
            if packet.lost:
                self._pass_nack(session, other, packet)
        if not rtcp.is_keyframe_request(packets):
            return
        if self._clock is not None:
            now = self._clock.seconds()
            if now - self._last_keyframe_request[id(other)] < KEYFRAME_REQUEST_INTERVAL:
                return
            self._last_keyframe_request[id(other)] = now
        other.send_keyframe_request(self._last_video[id(other)].ssrc)
        if self.on_keyframe_request is not None:
            self.on_keyframe_request(other)

    def _pass_nack(self, session, other, packet) -> None:
        """
        A Generic NACK (RFC 4585 6.2.1) for the video we relay to C{session}'s
        peer.  What the leg still holds it sends again (lost after us); the
        rest never reached us, so ask C{other}'s peer, which sent them and
        keeps them for retransmission (browsers do), in its own numbering: its
        retransmission is relayed like any packet and leaves with the number
        that was asked for.  At most L{rtcp.NACK_LIMIT} numbers per NACK and
        L{NACK_BUDGET} per second (with a clock) are served.
        """
        if session.video is None:
            return
        rewriter = session.rewriter("video")
        if packet.media_ssrc != rewriter.ssrc:
            return
        lost = list(dict.fromkeys(packet.lost))[:rtcp.NACK_LIMIT]
        if self._clock is not None:
            budget = self._nack_budget[id(session)]
            now = self._clock.seconds()
            if now - budget[0] >= 1.0:
                budget[:] = [now, NACK_BUDGET]
            lost = lost[:budget[1]]
            budget[1] -= len(lost)
        if not lost:
            return
        missing = session.retransmit_video(lost)
        upstream = rewriter.source_sequences(missing) if missing else None
        if upstream is not None:
            other.send_nack(*upstream)
