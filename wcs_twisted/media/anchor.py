# -*- test-case-name: tests.media.test_anchor -*-
"""
Media anchored between two peers that cannot reach each other (an IPv6-only phone and an
IPv4-only one): each peer is offered and answered by an RTP leg of ours in its own family, and
a L{MediaBridge} relays between the legs.  The SIP proxy hands us the SDP bodies it forwards
(it knows which side sent each); we know nothing of SIP.

Offer/answer runs as our B2BUA calls do (L{wcs_twisted.gateway.call}): the far leg offers the
codecs of the near peer's offer that we carry, and once the far peer answers, the near leg
answers the offer with the codec the far peer chose, so the bridge relays without transcoding.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IMediaSessionObserver
from wcs_twisted.sdp.errors import SDPError
from wcs_twisted.sdp.session import SessionDescription

__all__ = ["AnchoredMedia", "MediaAnchor"]

def _direction(sdp: bytes) -> str:
    """
    The direction C{sdp}'s audio asks for (RFC 3264: its attribute, a c=0.0.0.0 hold), else
    sendrecv.
    """
    try:
        description = SessionDescription.parse(sdp)
    except SDPError:
        return "sendrecv"
    for media in description.media:
        if media.kind == "audio":
            return str(description.direction_for(media))
    return "sendrecv"


@implementer(IMediaSessionObserver)
class AnchoredMedia:
    """
    The two legs of one anchored dialog: side 0 faces the peer that offered first (the
    caller), side 1 the other.

    @ivar on_ended: called once, with a reason, when the media stops for good (inactivity or
        a failure of either leg) so that the owner forgets it.
    """

    log = Logger()

    def __init__(self, factory, peers: tuple[str, str]) -> None:
        """
        @param factory: an L{IMediaFactory}: each leg is C{create_session("rtp", peer)}.
        @param peers: the IP each side's media comes from (it picks the leg's family).
        @raise MediaError: "No available ports".
        """
        self._factory = factory
        self.legs = [factory.create_session("rtp", peers[0])]
        try:
            self.legs.append(factory.create_session("rtp", peers[1]))
        except MediaError:
            self.legs[0].close()
            raise
        for leg, peer in zip(self.legs, peers):
            leg.signalling_source = peer
            leg.observer = self
        self.bridge = None
        self.on_ended: Optional[Callable[[str], None]] = None
        #: The offer waiting for an answer: (side that made it, its SDP).
        self._offer: Optional[tuple[int, bytes]] = None
        #: The last SDP rewritten and what it became (a 2xx or ACK retransmitted).
        self._last: tuple[bytes, bytes] = (b"", b"")
        self.closed = False

    def offer(self, side: int, sdp: bytes) -> bytes:
        """
        C{side}'s offer, as our other leg offers it to the other side.

        @raise MediaError: "No common codecs" (nothing we carry), or an unusable SDP.
        """
        if sdp == self._last[0]:
            return self._last[1]
        near, far = self.legs[side], self.legs[1 - side]
        audio, video = near.offered_codecs(sdp)
        if not audio:
            raise MediaError("No common codecs")
        rewritten = far.create_offer(audio, video, _direction(sdp)).encode("utf-8")
        self._offer = (side, sdp)
        self._last = (sdp, rewritten)
        return rewritten

    def answer(self, sdp: bytes) -> bytes:
        """
        The answer to the pending offer, as our leg facing the offerer answers it.

        @raise MediaError: no offer pending, or the answer is unusable.
        """
        if sdp == self._last[0]:
            return self._last[1]
        if self._offer is None:
            raise MediaError("No offer to answer")
        side, offer = self._offer
        near, far = self.legs[side], self.legs[1 - side]
        far.set_remote_answer(sdp)
        answer = near.create_answer(offer, [far.audio_codec] if far.audio_codec else [],
                                    [far.video_codec] if far.video_codec else [],
                                    _direction(sdp)).encode("utf-8")
        self._offer = None
        self._last = (sdp, answer)
        if self.bridge is None:
            self.bridge = self._factory.bridge(*self.legs)
        return answer

    @property
    def offer_pending(self) -> bool:
        return self._offer is not None

    def close(self) -> None:
        """
        Stop relaying and give the ports back.
        """
        if self.closed:
            return
        self.closed = True
        if self.bridge is not None:
            self.bridge.close()
        for leg in self.legs:
            leg.close()

    # --- IMediaSessionObserver ----------------------------------------------------------------

    def media_connected(self, session) -> None:
        pass

    def media_inactive(self, session) -> None:
        self._ended("no RTP")

    def media_failed(self, session, reason) -> None:
        self._ended(reason)

    def media_dtmf(self, session, digit) -> None:
        pass  # RFC 4733 events are relayed by the bridge

    def _ended(self, reason: str) -> None:
        if self.closed:
            return
        self.close()
        if self.on_ended is not None:
            self.on_ended(reason)


class MediaAnchor:
    """
    Opens L{AnchoredMedia} on a media factory (whose address plan gives each family's address).
    """

    def __init__(self, factory) -> None:
        self.factory = factory

    def open(self, caller: str, callee: str) -> AnchoredMedia:
        """
        Legs toward C{caller} (side 0) and C{callee} (side 1), each an IP literal.

        @raise MediaError: "No available ports".
        """
        return AnchoredMedia(self.factory, (caller, callee))
