# -*- test-case-name: tests.media.test_stream_endpoints -*-
"""
Media sessions at either end of a named stream: a session's received media as the stream's
source (a SIP call, a publishing browser), and a session that plays a stream out (a WebRTC
player).

The source taps the session's receive path (L{_MediaSession.set_stream_tap}): for each packet
of the negotiated codec it finds the payload, the timestamp and the marker bit and pushes them
into the stream, next to whatever the session's bridge does with the packet.  Without a tap the
session's receive path is untouched, so calls that are not streams pay nothing.

The sink relays first: when the stream's codec is the one the player's session negotiated (the
stream layer answers players with the source's codec whenever the browser offers it), each
payload gets a fresh RTP header and goes through the session's send path (rewrite onto the
player's SSRC and sequence, SRTP, send), never decoded.  Audio in another codec is transcoded
for that player alone (PyAV, as in the bridge); video in another codec is dropped.  Each player
keeps its own packet path per codec, chosen on the first packet of that codec, so a source that
changes codec mid-stream (a re-INVITE) is followed.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any, Callable, Optional

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IMediaStreamSink, IMediaStreamSource
from wcs_twisted.media import rtcp
from wcs_twisted.media.transcode import AudioTranscoder, can_transcode
from wcs_twisted.media.rtp_packet import payload_bounds
from wcs_twisted.media.codecs import AUDIO_CODECS, parse_codec_name
from wcs_twisted.media.session import PTIME

__all__ = ["SessionSink", "SessionSource"]

_TIMESTAMP = struct.Struct("!I")
_HEADER = struct.Struct("!BBHII")

#: SSRCs of the synthetic packets a sink builds, one per packet path: a new path (a codec
#: change) is a new source to the session's rewriter, which then carries the output on
#: without a jump in sequence numbers.
_path_ssrcs = itertools.count(0x5EED0000)


def _tap(kind: str, push: Callable, session) -> Callable[[bytes], None]:
    """
    The per-packet function handing C{session}'s received C{kind} packets to C{push}
    (an IStream's C{packet_received}).
    """
    attribute = "audio_codec" if kind == "audio" else "video_codec"
    unpack_timestamp = _TIMESTAMP.unpack_from

    def tap(data: bytes) -> None:
        try:
            start, end = payload_bounds(data)
        except ValueError:
            return
        push(kind, data[start:end], getattr(session, attribute),
             unpack_timestamp(data, 4)[0], data[1] > 127)

    return tap


@implementer(IMediaStreamSource)
class SessionSource:
    """
    A media session's received audio and video as a stream source (L{IMediaStreamSource}).
    """

    log = Logger()

    def __init__(self, session) -> None:
        self.session = session
        self.stream = None

    def __repr__(self) -> str:
        return f"<SessionSource {self.session.kind} {self.audio_codec}/{self.video_codec}>"

    @property
    def audio_codec(self) -> Optional[str]:
        return self.session.audio_codec

    @property
    def video_codec(self) -> Optional[str]:
        return self.session.video_codec

    def start(self, stream) -> None:
        if self.stream is not None:
            raise ValueError(f"{self!r} already feeds {self.stream!r}")
        self.stream = stream
        push = stream.packet_received
        self.session.set_stream_tap(_tap("audio", push, self.session),
                                    _tap("video", push, self.session))

    def stop(self) -> None:
        if self.stream is None:
            return
        self.stream = None
        self.session.set_stream_tap(None, None)

    def request_keyframe(self) -> None:
        if self.session.video is not None and not self.session.closed:
            self.session.send_keyframe_request(None)

    def stream_ended(self, reason: str) -> None:
        self.stop()


class _Relay:
    """
    One codec's relay onto a session: a plain RTP header in front of the payload, then the
    session's own relay send (rewrite, protect, send).
    """

    __slots__ = ("send", "payload_type", "ssrc", "sequence_number")

    def __init__(self, send: Callable[[bytearray], None], payload_type: int) -> None:
        self.send = send
        self.payload_type = payload_type & 0x7F
        self.ssrc = next(_path_ssrcs) & 0xFFFFFFFF
        self.sequence_number = 0

    def __call__(self, payload: bytes, timestamp: int, marker: bool) -> None:
        self.sequence_number = sequence_number = (self.sequence_number + 1) & 0xFFFF
        second = (self.payload_type | 0x80) if marker else self.payload_type
        buf = bytearray(12 + len(payload))
        _HEADER.pack_into(buf, 0, 0x80, second, sequence_number, timestamp, self.ssrc)
        buf[12:] = payload
        self.send(buf)


class _Paced:
    """
    Transcoder output onto a L{_Relay}: one packet interval of timestamp per payload.

    Going through the relay (the session's rewriter) rather than the session's own payload
    sender makes the transcoded packets a source of their own to the rewriter, so that when
    the session's bridge relays into it again (an injection ending) the rewriter re-bases
    the bridged source after the last packet sent: no jump in sequence numbers.
    """

    __slots__ = ("relay", "step", "timestamp")

    def __init__(self, relay: _Relay, step: int) -> None:
        self.relay = relay
        self.step = step
        self.timestamp = 0

    def __call__(self, payload: bytes, payload_type: int) -> None:
        self.timestamp = timestamp = (self.timestamp + self.step) & 0xFFFFFFFF
        self.relay(payload, timestamp, False)


def _drop(payload: bytes, timestamp: int, marker: bool) -> None:
    return None


def _local_audio_codec(name: str):
    """
    Our audio format called C{name}, or None.
    """
    try:
        encoding, clock_rate, _ = parse_codec_name(name)
    except ValueError:
        return None
    return next((codec for codec in AUDIO_CODECS
                 if (codec.encoding, codec.clock_rate) == (encoding, clock_rate)), None)


def _same_format(a: Optional[str], b: Optional[str]) -> bool:
    """
    Whether two codec names are one format (encoding and clock rate; Opus carries its
    channels in-band).
    """
    if not a or not b:
        return False
    try:
        return parse_codec_name(a)[:2] == parse_codec_name(b)[:2]
    except ValueError:
        return False


@implementer(IMediaStreamSink)
class SessionSink:
    """
    A named stream sent out on a negotiated media session (L{IMediaStreamSink}).

    @ivar kinds: what the session sends: "audio" and/or "video".
    @ivar transcoders: the audio transcoders made so far, by source codec name.
    """

    log = Logger()

    def __init__(self, session, on_ended: Optional[Callable[[str], None]] = None) -> None:
        self.session = session
        self.on_ended = on_ended
        self.stream = None
        kinds = [kind for kind in ("audio", "video")
                 if getattr(session, kind) is not None and getattr(session, kind).direction.sends]
        # A sink takes at least one kind; with nothing negotiated it drops what it gets.
        self.kinds = tuple(kinds) or ("audio",)
        self.transcoders: dict[str, AudioTranscoder] = {}
        #: kind -> codec name -> (the NegotiatedStream it was chosen for, the packet path).
        self._paths: dict[str, dict[str, tuple[Any, Callable[[bytes, int, bool], None]]]] = {
            "audio": {}, "video": {}}

    def __repr__(self) -> str:
        return f"<SessionSink {self.session.kind} {'+'.join(self.kinds)}>"

    # -- IMediaStreamSink -------------------------------------------------------------------

    def play(self, stream) -> None:
        if self.stream is not None:
            raise ValueError(f"{self!r} already plays {self.stream!r}")
        stream.attach(self)
        self.stream = stream
        if "video" in self.kinds and self.session.bridge is None:
            self.session.set_feedback_receiver(self._feedback)

    def stop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is None:
            return
        stream.detach(self)
        self._forget_feedback()

    def packet_received(self, kind: str, payload: bytes, codec_name: str, timestamp: int,
                        marker: bool) -> None:
        paths = self._paths[kind]
        cached = paths.get(codec_name)
        negotiated = getattr(self.session, kind)
        if cached is None or cached[0] is not negotiated:
            # First packet of this codec, or the leg was renegotiated (a new NegotiatedStream):
            # choose relay/transcode/drop again.
            cached = paths[codec_name] = (negotiated, self._path(kind, codec_name))
        cached[1](payload, timestamp, marker)

    def stream_ended(self, reason: str) -> None:
        self.stream = None
        self._forget_feedback()
        if self.on_ended is not None:
            self.on_ended(reason)

    # -- packet paths -----------------------------------------------------------------------

    def _path(self, kind: str, name: str) -> Callable[[bytes, int, bool], None]:
        """
        How packets of codec C{name} reach the session: relay, transcode or drop.
        """
        session = self.session
        negotiated = getattr(session, kind)
        if negotiated is None or session.closed:
            return _drop
        if _same_format(name, negotiated.name):
            return _Relay(session.relay_sender(kind), negotiated.codec.payload_type)
        if kind == "audio":
            source = _local_audio_codec(name)
            if source is not None and can_transcode(source) and can_transcode(negotiated.codec):
                transcoder = self.transcoders[name] = AudioTranscoder(
                    source, negotiated.codec, _Paced(_Relay(
                        session.relay_sender(kind), negotiated.codec.payload_type),
                        negotiated.codec.clock_rate * PTIME // 1000))
                self.log.info("stream {stream}: {source} transcoded to {target} for a player",
                              stream=getattr(self.stream, "name", None), source=name,
                              target=negotiated.name)
                return lambda payload, timestamp, marker: transcoder.payload(payload)
        self.log.info("stream {stream}: {kind} {source} cannot be sent as {target}; dropped",
                      stream=getattr(self.stream, "name", None), kind=kind, source=name,
                      target=negotiated.name)
        return _drop

    # -- keyframes ------------------------------------------------------------------------

    def _feedback(self, kind: str, packets: list) -> None:
        stream = self.stream
        if stream is not None and rtcp.is_keyframe_request(packets):
            stream.request_keyframe()

    def _forget_feedback(self) -> None:
        if "video" in self.kinds and self.session.bridge is None:
            self.session.set_feedback_receiver(None)
