# -*- test-case-name: tests.test_interfaces -*-
"""
Verified fakes of the media interfaces, for call-layer tests without sockets.

L{FakeMediaSession} produces and reads real SDP text (via wcs_twisted.sdp) so the call layer's
codec choices can be asserted; it records DTMF, direction and closing instead of moving packets.
"""

from __future__ import annotations

from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaBridge, IMediaFactory, IMediaSession
from wcs_twisted.sdp.session import SessionDescription

#: What a fake leg can carry, by kind, in our order of preference.
SUPPORTED = {
    "webrtc": (("opus/48000/2", 111), ("PCMU/8000", 0), ("PCMA/8000", 8)),
    "rtp": (("PCMU/8000", 0), ("PCMA/8000", 8), ("opus/48000/2", 111), ("G722/8000", 9)),
}


def _name(codec) -> str:
    channels = f"/{codec.channels}" if codec.channels and codec.channels > 1 else ""
    return f"{codec.name}/{codec.clock_rate}{channels}"


@implementer(IMediaSession)
class FakeMediaSession:
    """
    An IMediaSession that negotiates SDP for real and moves no media.
    """

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        self.port = port
        self.observer = None
        self.audio_codec = None
        self.video_codec = None
        self.local_sdp = None
        self.direction = "sendrecv"
        self.dtmf_sent: list[str] = []
        self.closed = False
        self._version = 0

    def _supported(self) -> dict[str, int]:
        return {name.lower(): pt for name, pt in SUPPORTED[self.kind]}

    def offered_codecs(self, sdp):
        try:
            description = SessionDescription.parse(sdp)
        except ValueError:
            raise MediaError("Bad SDP") from None
        supported = self._supported()
        audio = []
        for media in description.media:
            if media.kind == "audio" and media.port:
                audio.extend(_name(c) for c in media.codecs if _name(c).lower() in supported)
        return audio, []

    def _sdp(self, codecs, direction) -> str:
        self._version += 1
        pts = " ".join(str(self._supported()[c.lower()]) for c in codecs)
        lines = ["v=0", f"o=- 1 {self._version} IN IP4 127.0.0.1", "s=-",
                 "c=IN IP4 127.0.0.1", "t=0 0", f"m=audio {self.port} RTP/AVP {pts}"]
        for codec in codecs:
            name, rate, *channels = codec.split("/")
            suffix = f"/{channels[0]}" if channels else ""
            lines.append(f"a=rtpmap:{self._supported()[codec.lower()]} {name}/{rate}{suffix}")
        lines.append(f"a={direction}")
        self.local_sdp = "\r\n".join(lines) + "\r\n"
        return self.local_sdp

    def create_offer(self, audio_codecs, video_codecs, direction):
        ours = [name for name, _ in SUPPORTED[self.kind]]
        ordered = [c for c in audio_codecs if c.lower() in self._supported()]
        ordered += [c for c in ours if c.lower() not in {o.lower() for o in ordered}]
        self.direction = direction
        return self._sdp(ordered, direction)

    def create_answer(self, offer, prefer_audio, prefer_video, direction):
        offered, _ = self.offered_codecs(offer)
        lowered = [c.lower() for c in offered]
        chosen = next((c for c in prefer_audio if c.lower() in lowered), None)
        if chosen is None:
            chosen = offered[0] if offered else None
        if chosen is None:
            raise MediaError("No common codecs")
        self.audio_codec = chosen
        self.direction = direction
        return self._sdp([chosen], direction)

    def set_remote_answer(self, answer):
        offered, _ = self.offered_codecs(answer)
        if not offered:
            raise MediaError("No common codecs")
        self.audio_codec = offered[0]

    def set_direction(self, direction):
        self.direction = direction

    def send_dtmf(self, digit, duration_ms):
        self.dtmf_sent.append(digit)

    def close(self):
        from twisted.internet.defer import succeed

        self.closed = True
        return succeed(None)


@implementer(IMediaBridge)
class FakeMediaBridge:
    """
    Records what the call does with the bridge.
    """

    def __init__(self, a, b) -> None:
        self.a, self.b = a, b
        self.mode = "relay" if a.audio_codec and a.audio_codec == b.audio_codec else "transcode"
        self.held = False
        self.closed = False
        self.on_keyframe_request = None
        self.keyframes_requested: list = []

    def request_keyframe(self, session):
        self.keyframes_requested.append(session)

    def hold(self, held):
        self.held = held

    def close(self):
        self.closed = True


@implementer(IMediaFactory)
class FakeMediaFactory:
    """
    Hands out fake sessions and bridges and remembers them.
    """

    def __init__(self) -> None:
        self.sessions: list[FakeMediaSession] = []
        self.bridges: list[FakeMediaBridge] = []
        self.exhausted = False

    def create_session(self, kind, peer=None):
        if self.exhausted:
            raise MediaError("No available ports")
        session = FakeMediaSession(kind, 40000 + 2 * len(self.sessions))
        self.sessions.append(session)
        return session

    def bridge(self, a, b):
        bridge = FakeMediaBridge(a, b)
        self.bridges.append(bridge)
        return bridge
