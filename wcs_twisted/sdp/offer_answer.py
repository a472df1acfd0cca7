# -*- test-case-name: tests.sdp.test_offer_answer -*-
# Over 600 lines as one piece: the RFC 3264 functions and the negotiator that is their only driver.
"""
RFC 3264 offer/answer: offers, answers, and the negotiator state machine
that carries one SIP dialog through its re-INVITEs (codec intersection is
L{wcs_twisted.sdp.codecs}).

The gateway has to answer SIP phones and browsers, make offers to them,
and, on every re-INVITE (hold, unhold, codec change, offerless INVITE),
know which SDP is in force.  The pure functions here (L{create_offer},
L{create_answer}, L{negotiated_codecs}, L{is_hold})
do the RFC work on L{SessionDescription} values without touching them;
L{SDPNegotiator} is the PJSIP C{sdp_neg}-shaped machine (NULL,
LOCAL_OFFER, REMOTE_OFFER, WAIT_NEGO, DONE) built on top of them.

Rules applied, with their sources:

  - The answer has one m= line per offered m= line, in order; a stream we
    cannot take is rejected with port 0 (RFC 3264 section 6).
  - Codecs in the answer keep the offerer's payload type numbers and
    order (section 6.1); parameters are ours, except that H.264 keeps the
    offered profile, the offered packetization-mode and at most the
    offered level unless both sides allow level asymmetry (RFC 6184
    section 8.2.2), and rtx/red keep the offered references.
  - Secondary formats (telephone-event, CN, rtx, red, FEC) are only kept
    next to a real codec; telephone-event and CN must share a clock rate
    with an accepted codec (RFC 4733 section 2.1).
  - Answer direction = reverse of the offered direction, limited by ours
    (section 6.1); a legacy 0.0.0.0 hold counts as sendonly (section 8.4).
  - Every new local SDP keeps the o= session id; its version goes up by
    one whenever its content changed, and stays when it is byte-identical
    to the last one sent (section 8; RFC 4028 session refreshes rely on
    the latter).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from wcs_twisted.sdp.codecs import (
    SECONDARY_ENCODINGS,
    Codec,
    codecs_match,
    find_common_codecs,
    keep_payload_types,
)
from wcs_twisted.sdp.errors import NegotiatorStateError, NoCommonCodec, SDPError
from wcs_twisted.sdp.fields import Attribute, Connection, Direction, Origin, Timing
from wcs_twisted.sdp.media import MediaDescription
from wcs_twisted.sdp.session import SessionDescription

__all__ = [
    "LocalCapabilities",
    "MediaCapability",
    "NegotiatedMedia",
    "NegotiatorState",
    "NegotiatorStateError",
    "NoCommonCodec",
    "SDPNegotiator",
    "answer_direction",
    "create_answer",
    "create_offer",
    "is_hold",
    "negotiate",
    "negotiated_codecs",
]


@dataclass(frozen=True)
class MediaCapability:
    """
    What we can do for one stream.

    @ivar kind: C{"audio"} or C{"video"} (the m= media type).
    @ivar codecs: the formats we accept, in preference order; their payload
        types are the ones used in our own offers.
    @ivar port: the local RTP port written in our m= line.
    @ivar direction: the most we are willing to do (sendrecv normally).
    @ivar protos: transport protocols we accept in an offer; the first is
        used in our offers.  None accepts any RTP profile.
    @ivar ptime: packet time to advertise, in milliseconds.
    @ivar rtcp_mux: whether we offer/accept RFC 5761 rtcp-mux.
    @ivar attributes: extra media-level attributes written verbatim
        (ICE credentials, fingerprint, ...).
    """

    kind: str
    codecs: tuple[Codec, ...]
    port: int
    direction: Direction = Direction.SENDRECV
    protos: tuple[str, ...] | None = ("RTP/AVP",)
    ptime: int | None = None
    rtcp_mux: bool = False
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "codecs", tuple(self.codecs))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if self.protos is not None:
            object.__setattr__(self, "protos", tuple(self.protos))
        seen = set()
        for codec in self.codecs:
            if codec.payload_type in seen:
                raise ValueError(f"duplicate payload type {codec.payload_type}")
            seen.add(codec.payload_type)

    @property
    def proto(self) -> str:
        """
        The transport protocol written in our offers.
        """
        return self.protos[0] if self.protos else "RTP/AVP"

    def accepts_proto(self, proto: str) -> bool:
        """
        Whether an offered stream with C{proto} can be answered.
        """
        if self.protos is None:
            return "RTP/" in proto.upper()
        return proto.upper() in (p.upper() for p in self.protos)


@dataclass(frozen=True)
class LocalCapabilities:
    """
    Everything needed to write our side of an SDP exchange.

    @ivar address: the media address written in c= and o=.
    @ivar media: one capability per stream we can run, in offer order.
    @ivar username: the o= username.
    @ivar session_name: the s= value.
    @ivar bundle: offer mids and a BUNDLE group, and accept an offered one.
    @ivar attributes: extra session-level attributes written verbatim.
    """

    address: str
    media: tuple[MediaCapability, ...]
    username: str = "-"
    session_name: str = "-"
    bundle: bool = False
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "media", tuple(self.media))
        object.__setattr__(self, "attributes", tuple(self.attributes))


@dataclass(frozen=True)
class NegotiatedMedia:
    """
    The outcome of one m= line after an offer/answer exchange, seen from
    our side.

    @ivar index: position of the m= line.
    @ivar kind: the media type.
    @ivar codecs: common formats in the answer's order, as the remote side
        described them (its fmtp says how we must send); includes
        secondary formats such as telephone-event.
    @ivar direction: what we may do: our direction limited by the remote's.
    @ivar remote_address: where to send RTP (None if unknown).
    @ivar remote_port: the remote RTP port; 0 when rejected.
    @ivar remote_rtcp_port: the remote RTCP port (RFC 3605 or port + 1).
    @ivar rtcp_mux: whether both sides agreed on rtcp-mux.
    @ivar remote_ptime: the remote's a=ptime, if any.
    @ivar mid: the media identifier, if any.
    """

    index: int
    kind: str
    codecs: tuple[Codec, ...]
    direction: Direction
    remote_address: str | None
    remote_port: int
    remote_rtcp_port: int | None = None
    rtcp_mux: bool = False
    remote_ptime: int | None = None
    mid: str | None = None

    @property
    def rejected(self) -> bool:
        """
        Whether the stream carries no media (port 0 or no common codec).
        """
        return self.remote_port == 0 or self.primary_codec is None

    @property
    def primary_codec(self) -> Codec | None:
        """
        The first common codec that carries media (the one to send with).
        """
        for codec in self.codecs:
            if codec.encoding not in SECONDARY_ENCODINGS:
                return codec
        return None

    @property
    def telephone_event(self) -> Codec | None:
        """
        The RFC 4733 format to send DTMF with: the one whose clock rate
        matches the primary codec, else the first one.
        """
        events = [c for c in self.codecs if c.encoding == "telephone-event"]
        primary = self.primary_codec
        for event in events:
            if primary is not None and event.clock_rate == primary.clock_rate:
                return event
        return events[0] if events else None

def answer_direction(offered: Direction, local: Direction) -> Direction:
    """
    RFC 3264 section 6.1: sendonly is answered recvonly, recvonly sendonly,
    inactive inactive, sendrecv with what we allow.
    """
    return offered.reverse().intersect(local)


# -- building descriptions ---------------------------------------------------


def _base_session(
    capabilities: LocalCapabilities, session_id: str | int, session_version: int
) -> SessionDescription:
    connection = Connection.for_address(capabilities.address)
    return SessionDescription(
        origin=Origin(
            capabilities.username,
            str(session_id),
            session_version,
            "IN",
            connection.address_type,
            capabilities.address,
        ),
        name=capabilities.session_name,
        connection=connection,
        timing=[Timing(0, 0)],
        attributes=list(capabilities.attributes),
    )


def _media_for(
    capability: MediaCapability,
    proto: str,
    codecs: list[Codec],
    direction: Direction,
    mid: str | None,
    rtcp_mux: bool,
) -> MediaDescription:
    media = MediaDescription(capability.kind, capability.port, proto)
    if mid is not None:
        media.add_attribute("mid", mid)
    media.set_codecs(codecs)
    if capability.ptime is not None:
        media.add_attribute("ptime", str(capability.ptime))
    media.add_attribute(str(direction))
    if rtcp_mux:
        media.add_attribute("rtcp-mux")
    media.attributes.extend(capability.attributes)
    return media


def _rejected(media: MediaDescription) -> MediaDescription:
    """
    A port-0 copy of an m= line (RFC 3264 sections 6 and 8.2).
    """
    rejected = MediaDescription(media.kind, 0, media.proto, list(media.fmt))
    if media.mid is not None:
        rejected.add_attribute("mid", media.mid)
    return rejected

def create_offer(
    capabilities: LocalCapabilities,
    *,
    session_id: str | int = "0",
    session_version: int = 0,
    previous: SessionDescription | None = None,
    hold: bool = False,
) -> SessionDescription:
    """
    Write an offer for C{capabilities}.

    @param previous: the last local SDP of this session, for a re-offer:
        its m= lines keep their positions (a slot with no capability left
        is kept disabled with port 0), its mids and its payload type
        numbers (RFC 3264 section 8).
    @param hold: offer sendonly instead of sendrecv (recvonly becomes
        inactive), RFC 3264 section 8.4 / RFC 6337.
    """
    offer = _base_session(capabilities, session_id, session_version)
    available = list(capabilities.media)
    limit = Direction.SENDONLY if hold else Direction.SENDRECV
    slots: list[tuple[MediaCapability, MediaDescription | None] | MediaDescription] = []
    if previous is not None:
        for old in previous.media:
            capability = next((c for c in available if c.kind == old.kind), None)
            if capability is None:
                slots.append(_rejected(old))
            else:
                available.remove(capability)
                slots.append((capability, old))
    slots.extend((capability, None) for capability in available)
    mids: list[str] = []
    for index, slot in enumerate(slots):
        if isinstance(slot, MediaDescription):
            offer.media.append(slot)
            continue
        capability, old = slot
        mid = old.mid if old is not None else None
        if mid is None and capabilities.bundle:
            mid = str(index)
        codecs = keep_payload_types(capability.codecs, old.codecs if old else [])
        offer.media.append(
            _media_for(
                capability,
                capability.proto,
                codecs,
                capability.direction.intersect(limit),
                mid,
                capability.rtcp_mux,
            )
        )
        if mid is not None:
            mids.append(mid)
    if capabilities.bundle and mids:
        offer.add_attribute("group", " ".join(["BUNDLE"] + mids))
    return offer


def create_answer(
    offer: SessionDescription,
    capabilities: LocalCapabilities,
    *,
    session_id: str | int = "0",
    session_version: int = 0,
    hold: bool = False,
) -> SessionDescription:
    """
    Answer C{offer} with C{capabilities} (RFC 3264 section 6).  The offer
    is not modified.

    @param hold: we are holding the other party: never answer with a
        receiving direction's counterpart (sendrecv becomes sendonly).
    @raise NoCommonCodec: the offer has active streams and none of them
        can be accepted ("No common codecs", status hint 488).
    @raise SDPError: the offer's rtpmap/fmtp lines are malformed.
    """
    answer = _base_session(capabilities, session_id, session_version)
    if offer.timing:
        first = offer.timing[0]
        answer.timing = [Timing(first.start, first.stop)]
    available = list(capabilities.media)
    offered_streams = accepted_streams = 0
    accepted_mids: set[str] = set()
    for media in offer.media:
        if media.port == 0:
            answer.media.append(_rejected(media))
            continue
        offered_streams += 1
        capability = next(
            (c for c in available if c.kind == media.kind and c.accepts_proto(media.proto)),
            None,
        )
        codecs = find_common_codecs(media.codecs, capability.codecs) if capability else []
        if capability is None or not codecs:
            answer.media.append(_rejected(media))
            continue
        available.remove(capability)
        accepted_streams += 1
        direction = answer_direction(offer.direction_for(media), capability.direction)
        if hold:
            direction = direction.intersect(Direction.SENDONLY)
        mid = media.mid
        if mid is not None:
            accepted_mids.add(mid)
        answer.media.append(
            _media_for(
                capability,
                media.proto,
                codecs,
                direction,
                mid,
                capability.rtcp_mux and media.rtcp_mux,
            )
        )
    if offered_streams and not accepted_streams:
        raise NoCommonCodec()
    if capabilities.bundle:
        for group in offer.bundle_groups:
            mids = [mid for mid in group if mid in accepted_mids]
            if mids:
                answer.add_attribute("group", " ".join(["BUNDLE"] + mids))
                break
    return answer


# -- reading an exchange -----------------------------------------------------


def negotiated_codecs(offer: SessionDescription, answer: SessionDescription) -> list[list[Codec]]:
    """
    For each m= line, the answer's codecs that the offer also listed (same
    payload type and encoding, or the same format under another number),
    in the answer's order; an empty list for rejected lines.

    @raise SDPError: the answer does not mirror the offer's m= lines.
    """
    if len(answer.media) != len(offer.media):
        raise SDPError(
            f"answer has {len(answer.media)} media descriptions, offer has {len(offer.media)}"
        )
    result = []
    for offered_media, answered_media in zip(offer.media, answer.media):
        if offered_media.port == 0 or answered_media.port == 0:
            result.append([])
            continue
        if offered_media.kind != answered_media.kind:
            raise SDPError(
                f"answer has {answered_media.kind} where the offer has {offered_media.kind}"
            )
        offered = offered_media.codecs
        by_type = {c.payload_type: c for c in offered}
        common = []
        for codec in answered_media.codecs:
            match = by_type.get(codec.payload_type)
            if match is not None and match.encoding == codec.encoding:
                common.append(codec)
            elif any(codecs_match(o, codec) for o in offered):
                common.append(codec)
        result.append(common)
    return result


def negotiate(
    local: SessionDescription,
    remote: SessionDescription,
    *,
    local_is_offerer: bool,
) -> list[NegotiatedMedia]:
    """
    Describe every stream of a completed exchange from our side.

    @raise SDPError: the answer does not mirror the offer.
    @raise NoCommonCodec: no stream is left with a common codec.
    """
    offer, answer = (local, remote) if local_is_offerer else (remote, local)
    per_line = negotiated_codecs(offer, answer)
    result = []
    for index, (ours, theirs) in enumerate(zip(local.media, remote.media)):
        remote_codecs = {c.payload_type: c for c in theirs.codecs}
        codecs = tuple(remote_codecs.get(c.payload_type, c) for c in per_line[index])
        connection = remote.connection_for(theirs)
        direction = local.direction_for(ours).intersect(remote.direction_for(theirs).reverse())
        mux = ours.rtcp_mux and theirs.rtcp_mux
        port = theirs.port if ours.port else 0
        rtcp_port = theirs.rtcp_port
        if rtcp_port is None and port:
            rtcp_port = port if mux else port + 1
        result.append(
            NegotiatedMedia(
                index=index,
                kind=theirs.kind,
                codecs=codecs,
                direction=direction,
                remote_address=None if connection is None else connection.address,
                remote_port=port,
                remote_rtcp_port=rtcp_port,
                rtcp_mux=mux,
                remote_ptime=theirs.ptime,
                mid=theirs.mid,
            )
        )
    if result and all(m.rejected for m in result) and any(o.port for o in offer.media):
        raise NoCommonCodec()
    return result


def is_hold(sdp: SessionDescription) -> bool:
    """
    Whether C{sdp} puts its recipient on hold: it has active streams and
    none of them wants to receive (sendonly, inactive, or a legacy
    0.0.0.0 connection address; RFC 3264 section 8.4, RFC 6337 section 5).
    """
    active = [m for m in sdp.media if m.port != 0]
    return bool(active) and not any(sdp.direction_for(m).receives for m in active)


# -- the negotiator ----------------------------------------------------------


class NegotiatorState(enum.Enum):
    """
    States of L{SDPNegotiator}, named as in PJSIP's C{sdp_neg}.
    """

    NULL = "null"
    LOCAL_OFFER = "local-offer"
    REMOTE_OFFER = "remote-offer"
    WAIT_NEGO = "wait-nego"
    DONE = "done"


class SDPNegotiator:
    """
    The offer/answer state of one session (one SIP dialog).

    Transitions::

        NULL / DONE  --create_offer-->   LOCAL_OFFER  --receive_answer--> WAIT_NEGO
        NULL / DONE  --receive_offer-->  REMOTE_OFFER --create_answer-->  WAIT_NEGO
        WAIT_NEGO    --negotiate-->      DONE
        LOCAL_OFFER / REMOTE_OFFER --cancel_offer--> DONE (or NULL if never done)

    An offerless INVITE is the same machine: the UAS calls L{create_offer}
    for its 200 and L{receive_answer} with the ACK body; the UAC calls
    L{receive_offer} with the 200 body and L{create_answer} for the ACK.
    A failed negotiation (L{NoCommonCodec}, malformed answer) falls back
    to the previous state so the last agreed media stays in force.

    @ivar capabilities: what we offer and accept; replace it (for
        example with new ports) before the next offer or answer.
    @ivar hold: whether we hold the other party (set by create_offer).
    @ivar local_description: our SDP of the last completed exchange.
    @ivar remote_description: their SDP of the last completed exchange.
    @ivar negotiated: the streams of the last completed exchange.
    """

    def __init__(
        self,
        capabilities: LocalCapabilities,
        *,
        session_id: str | int,
        session_version: int = 0,
    ) -> None:
        self.capabilities = capabilities
        self.state = NegotiatorState.NULL
        self.hold = False
        self.local_description: SessionDescription | None = None
        self.remote_description: SessionDescription | None = None
        self.negotiated: list[NegotiatedMedia] = []
        self.pending_local: SessionDescription | None = None
        self.pending_remote: SessionDescription | None = None
        self._session_id = str(session_id)
        self._first_version = session_version
        self._last_sent: SessionDescription | None = None
        self._offer_is_local = False

    def _require(self, *states: NegotiatorState) -> None:
        if self.state not in states:
            raise NegotiatorStateError(f"not allowed in state {self.state.name}")

    def _stamp(self, sdp: SessionDescription) -> SessionDescription:
        """
        Give C{sdp} our o= session id and the RFC 3264 section 8 version.
        """
        last = self._last_sent
        if last is None:
            version = self._first_version
        else:
            version = last.origin.session_version
            sdp.origin = replace(last.origin)
            if str(sdp) != str(last):
                version += 1
        sdp.origin = replace(sdp.origin, session_id=self._session_id, session_version=version)
        self._last_sent = sdp.copy()
        return sdp

    def _revert(self) -> None:
        self.pending_local = self.pending_remote = None
        self.state = (
            NegotiatorState.DONE if self.local_description is not None else NegotiatorState.NULL
        )

    @property
    def offer_is_local(self) -> bool:
        """
        Whether the exchange in progress (or the last one) started with our
        offer.
        """
        return self._offer_is_local

    @property
    def remote_hold(self) -> bool:
        """
        Whether the other party's SDP in force puts us on hold.
        """
        return self.remote_description is not None and is_hold(self.remote_description)

    def create_offer(self, *, hold: bool | None = None) -> SessionDescription:
        """
        Make a new local offer (initial, re-INVITE, or in a 200 answering an
        offerless INVITE).  C{hold} changes and remembers the hold state.
        """
        self._require(NegotiatorState.NULL, NegotiatorState.DONE)
        if hold is not None:
            self.hold = hold
        offer = create_offer(
            self.capabilities,
            session_id=self._session_id,
            previous=self.local_description,
            hold=self.hold,
        )
        self.pending_local = self._stamp(offer)
        self._offer_is_local = True
        self.state = NegotiatorState.LOCAL_OFFER
        return self.pending_local.copy()

    def receive_answer(self, answer: SessionDescription) -> None:
        """
        Take the remote answer to our pending offer.
        """
        self._require(NegotiatorState.LOCAL_OFFER)
        self.pending_remote = answer.copy()
        self.state = NegotiatorState.WAIT_NEGO

    def receive_offer(self, offer: SessionDescription) -> None:
        """
        Take a remote offer.

        @raise SDPError: with status hint 491 if an exchange is already in
            progress (RFC 3261 section 14.2: the re-INVITE must be refused
            with 491 Request Pending).
        """
        if self.state not in (NegotiatorState.NULL, NegotiatorState.DONE):
            raise SDPError(f"offer received while in state {self.state.name}", 491)
        self.pending_remote = offer.copy()
        self._offer_is_local = False
        self.state = NegotiatorState.REMOTE_OFFER

    def create_answer(self, *, hold: bool | None = None) -> SessionDescription:
        """
        Answer the pending remote offer.

        @raise NoCommonCodec: nothing can be accepted; the negotiator goes
            back to its previous state (answer the request with 488).
        """
        self._require(NegotiatorState.REMOTE_OFFER)
        if hold is not None:
            self.hold = hold
        assert self.pending_remote is not None
        try:
            answer = create_answer(
                self.pending_remote,
                self.capabilities,
                session_id=self._session_id,
                hold=self.hold,
            )
        except SDPError:
            self._revert()
            raise
        self.pending_local = self._stamp(answer)
        self.state = NegotiatorState.WAIT_NEGO
        return self.pending_local.copy()

    def negotiate(self) -> list[NegotiatedMedia]:
        """
        Complete the exchange and make the pending descriptions active.

        @raise SDPError: the remote answer does not fit our offer (the
            negotiator goes back to its previous state).
        """
        self._require(NegotiatorState.WAIT_NEGO)
        assert self.pending_local is not None and self.pending_remote is not None
        try:
            result = negotiate(
                self.pending_local,
                self.pending_remote,
                local_is_offerer=self._offer_is_local,
            )
        except SDPError:
            self._revert()
            raise
        self.local_description = self.pending_local
        self.remote_description = self.pending_remote
        self.negotiated = result
        self.pending_local = self.pending_remote = None
        self.state = NegotiatorState.DONE
        return result

    def cancel_offer(self) -> None:
        """
        Abandon the pending offer (ours was refused, e.g. 488 or 491 to a
        re-INVITE, or theirs is refused by us); the last agreed media stays.
        """
        self._require(NegotiatorState.LOCAL_OFFER, NegotiatorState.REMOTE_OFFER)
        self._revert()
