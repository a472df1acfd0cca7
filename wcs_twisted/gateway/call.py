# -*- test-case-name: tests.gateway.test_call -*-
"""
One WCS call: a B2BUA joining a WebRTC leg (the browser, through its WCS session) and a SIP leg
(an InviteSession with an RTP media session), or a SIP leg alone for calls started over REST.

The call owns both media sessions and the bridge between them, and is the single place where SIP
outcomes become WCS statuses.  Re-INVITEs stay on the SIP leg: the browser gets exactly one
setRemoteSDP per call (spec section 7), so hold, unhold and codec changes are re-bridged here.
For an outgoing call the browser's answer is made once the SIP side has chosen its codec (183 or
200 with SDP), so that both legs can use the same codec and the bridge relays instead of
transcoding.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.addresses import offered_ipv6
from wcs_twisted.errors import MediaError
from wcs_twisted.interfaces import IInviteSessionObserver, IMediaSessionObserver
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.gateway.call_events import (
    FAILED_BY_ERROR,
    FAILED_BY_RTP_ACTIVITY,
    NORMAL_CLEARING,
    UNANSWERED,
    CallStatus,
    status_for_failure,
    status_for_provisional,
)
from wcs_twisted.gateway.call_timers import CallTimers
from wcs_twisted.gateway.call_transfer import CallTransfers
from wcs_twisted.ua.invite_session import InviteSession, SIPRequestFailed

#: RFC 5168 body asking the SIP peer's encoder for a key frame.
PICTURE_FAST_UPDATE = (b'<?xml version="1.0" encoding="utf-8" ?>'
                       b"<media_control><vc_primitive><to_encoder><picture_fast_update/>"
                       b"</to_encoder></vc_primitive></media_control>")

#: DTMF digits the WCS API accepts.
DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")


def dtmf_from_info(request) -> str | None:
    """
    The digit of an INFO carrying application/dtmf-relay ("Signal=5") or application/dtmf ("5").
    """
    media_type = request.media_type
    body = request.body.decode("utf-8", "replace")
    if media_type == "application/dtmf-relay":
        for line in body.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal" and value.strip()[:1] in DTMF_DIGITS:
                return value.strip()[:1].upper()
    elif media_type == "application/dtmf":
        digit = body.strip()[:1]
        if digit in DTMF_DIGITS:
            return digit.upper()
    return None


def direction_of(sdp: bytes | None) -> str:
    """
    The audio direction an SDP asks for (sendrecv when unstated; c=0.0.0.0 counts as hold).
    """
    if not sdp:
        return "sendrecv"
    text = sdp.decode("utf-8", "replace")
    for direction in ("sendonly", "recvonly", "inactive"):
        if f"a={direction}" in text:
            return direction
    if "c=IN IP4 0.0.0.0" in text and "a=ice-ufrag" not in text:
        return "sendonly"
    return "sendrecv"


_ANSWER_DIRECTION = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
                     "sendrecv": "sendrecv"}


@implementer(IInviteSessionObserver, IMediaSessionObserver)
class Call(CallTimers, CallTransfers):
    """
    A call and its WCS call object.
    """

    log = Logger()

    def __init__(self, table, call_id: str, session, incoming: bool, fields: dict[str, Any]):
        self.table = table
        self.call_id = call_id
        self.session = session
        self.incoming = incoming
        self.status = CallStatus.PENDING
        self.sip_status: int | None = None
        self.sip_message_raw: str | None = None
        self.caller = fields.get("caller") or ""
        self.callee = fields.get("callee") or ""
        self.visible_name = fields.get("visibleName")
        self.has_audio = bool(fields.get("hasAudio", True))
        self.has_video = bool(fields.get("hasVideo", False))
        self.custom = fields.get("custom") or {}
        #: An incoming INVITE's X- headers by name (caller_identity.invite_parameters).
        self.invite_parameters = fields.get("inviteParameters")
        self.app_key = session.app_key if session is not None else fields.get("appKey",
                                                                                "defaultApp")
        #: The stream the call's SIP media is published as (REST C{toStream}, a module, or
        #: C{call_<callId>} with sip_record_stream), once named; see L{call_streams}.
        self.stream_name: str | None = None
        #: Call-object fields a module shows on this call (the RTMP push: rtmpUrl, rtmpStream,
        #: rtmpStreamStatus): to_wcs() shows them over its own.  State a module does not show
        #: stays in the module, keyed by callId and dropped from an L{on_release} callback.
        self.extra: dict[str, Any] = {}
        self.browser_sdp: str | None = None
        self.sip_offer: bytes | None = None
        self.sip: InviteSession | None = None
        self.webrtc = None
        self.rtp = None
        self.bridge = None
        self.browser_answered = False
        self.hold_for_transfer = False
        self.target: str | None = None
        self.registration = None
        self.account = None
        #: Called with the call once it is released (e.g. to stop its RTMP push).
        self.on_release: list = []
        self._cancelled_by_us = False
        self._held = False
        self._sip_answer: bytes | None = None
        #: Our 2xx to a re-INVITE without SDP carried a fresh offer: its answer comes in the ACK.
        self._offer_in_2xx = False
        #: Whether the client knows the call (an incoming one waits for OnCallEvent first).
        self._offered = not incoming
        self._init_transfers()
        self._init_timers()

    # --- the WCS call object ------------------------------------------------------------------

    def to_wcs(self) -> dict[str, Any]:
        """
        The call object with exactly the seed's fields (REST /call/find, status messages, hooks).
        """
        session = self.session
        wcs = {
            "custom": self.custom,
            "nodeId": self.table.node_id,
            "appKey": self.app_key,
            "sessionId": session.session_id if session is not None else None,
            "callId": self.call_id,
            "parentCallId": None,
            "incoming": self.incoming,
            "status": self.status.value,
            "sipStatus": self.sip_status,
            "rtmpUrl": None,
            "rtmpStream": None,
            "streamName": self.stream_name,
            "rtmpStreamStatus": None,
            "caller": self.caller,
            "callee": self.callee,
            "hasAudio": self.has_audio,
            "hasVideo": self.has_video,
            "sdp": self.browser_sdp,
            "visibleName": self.visible_name,
            "inviteParameters": self.invite_parameters,
            "mediaProvider": "WebRTC",
            "sipMessageRaw": self.sip_message_raw,
            "isMsrp": False,
            "target": self.target,
            "holdForTransfer": self.hold_for_transfer,
        }
        wcs.update(self.extra)
        return wcs

    @property
    def _client(self):
        """
        The owning client's L{IClientConnection}, or None for a call started over REST.
        """
        return self.session.connection if self.session is not None else None

    @property
    def client_address(self) -> str | None:
        """
        The owning client's IP (where its WebRTC media comes from), or None over REST.
        """
        return getattr(self.session, "address", None) or None

    def _set_status(self, status: CallStatus, sip_status: int | None = None,
                    message=None, info: str | None = None) -> None:
        if self.status.released:
            return
        self.status = status
        if sip_status is not None:
            self.sip_status = sip_status
        if message is not None:
            self.sip_message_raw = message.serialize().decode("utf-8", "replace")
        if status not in UNANSWERED:
            self._stop_ring_timer()
        if self._client is not None and self._offered:
            self._client.call_status(self, info)
        self.table.status_changed(self, info)
        if status.released:
            self._release()

    # --- outgoing (browser or REST -> SIP) ---------------------------------------------------------

    def start_outgoing(self, browser_sdp: str | None, target_uri, from_uri, outbound_proxy: str,
                       credentials: tuple[str, str] | None,
                       extra_headers: tuple[tuple[str, str], ...] = ()) -> None:
        """
        Answer TRYING at once, then send the INVITE with an offer built from the browser's codecs.
        """
        self.browser_sdp = browser_sdp
        self._set_status(CallStatus.TRYING)
        try:
            audio, video = [], []
            if browser_sdp is not None:
                self.webrtc = self.table.media.create_session("webrtc", self.client_address)
                self.webrtc.observer = self
                audio, video = self.webrtc.offered_codecs(browser_sdp)
                if not audio and not video:
                    raise MediaError("No common codecs")
            # The SDP names the address, and family, where the call goes can reach.
            self.rtp = self.table.media.create_session(
                "rtp", self.table.media_peer(target_uri, outbound_proxy))
            self.rtp.observer = self
            offer = self.rtp.create_offer(audio, video if self.has_video else [],
                                          "sendrecv" if self.has_audio else "recvonly")
        except MediaError as error:
            self.fail(error.info)
            return
        self.sip = InviteSession.outgoing(
            self.table.core, self.table.clock, self, from_uri, target_uri,
            offer.encode("utf-8"), outbound_proxy=outbound_proxy, credentials=credentials,
            display_name=self.visible_name, extra_headers=extra_headers)
        self._start_ring_timer()
        # Under NAT the peer's media comes from where its SIP does (docs/security.md).
        self.rtp.signalling_source = self.sip.peer_host

    def provisional(self, session, response) -> None:
        has_sdp = bool(response.body) and session.remote_sdp == response.body
        if has_sdp and not self._apply_sip_answer(response.body):
            return
        self._set_status(status_for_provisional(response.status_code, has_sdp),
                         response.status_code, response)

    def answered(self, session, response) -> None:
        if session.remote_sdp and not self._apply_sip_answer(session.remote_sdp):
            return
        if not self.browser_answered and self.webrtc is not None:
            self.fail("No common codecs")
            return
        self._set_status(CallStatus.ESTABLISHED, response.status_code, response)

    def _apply_sip_answer(self, sdp: bytes) -> bool:
        """
        Take the SIP side's answer (1xx or 2xx), answer the browser with the same codec, bridge.
        """
        try:
            if sdp != self._sip_answer:
                self.rtp.set_remote_answer(sdp.decode("utf-8", "replace"))
                self._sip_answer = sdp
            if self.webrtc is not None and not self.browser_answered:
                answer = self.webrtc.create_answer(
                    self.browser_sdp,
                    [self.rtp.audio_codec] if self.rtp.audio_codec else [],
                    [self.rtp.video_codec] if self.rtp.video_codec else [], "sendrecv")
                self.browser_answered = True
                if self._client is not None:
                    self._client.remote_sdp(self.call_id, answer, True)
            self._bridge()
        except MediaError as error:
            self.sip.hang_up(reason=error.info)
            self.fail(error.info)
            return False
        return True

    def _bridge(self) -> None:
        if self.bridge is None and self.webrtc is not None and self.rtp is not None:
            self.bridge = self.table.media.bridge(self.webrtc, self.rtp)
            self.bridge.on_keyframe_request = self._keyframe_requested
            self.bridge.hold(self._held)

    def _keyframe_requested(self, leg) -> None:
        """
        The browser asked for a key frame (RTCP PLI/FIR) that the SIP side must make: SIP INFO
        picture_fast_update (RFC 5168).
        """
        if leg is not self.rtp or self.sip is None or self.status.released:
            return
        done = self.sip.request("INFO", PICTURE_FAST_UPDATE, "application/media_control+xml")
        done.addErrback(lambda failure: self.log.debug(
            "picture_fast_update on {call_id} refused: {error}", call_id=self.call_id,
            error=failure.getErrorMessage()))

    def failed(self, session, status, reason, response) -> None:
        call_status, info = status_for_failure(status, self._cancelled_by_us)
        self.sip_message_raw = (response.serialize().decode("utf-8", "replace")
                                if response is not None else None)
        self._set_status(call_status, status, info=info if call_status is not CallStatus.BUSY
                         else reason)

    # --- incoming (SIP -> browser) ---------------------------------------------------------------

    def start_incoming(self, sip: InviteSession) -> None:
        """
        Offer the browser the SIP caller's codecs first: setRemoteSDP, notifyIncomingCall, ring.
        """
        self.sip = sip
        self.sip_offer = sip.remote_sdp
        self.sip_message_raw = sip.invite.serialize().decode("utf-8", "replace")
        try:
            # A phone on IPv6 may reach us through our IPv4 proxy: answer in its family.
            self.rtp = self.table.media.create_session(
                "rtp", offered_ipv6(self.sip_offer) or sip.peer_host)
            self.rtp.observer = self
            self.rtp.signalling_source = sip.peer_host
            self.webrtc = self.table.media.create_session("webrtc", self.client_address)
            self.webrtc.observer = self
            if self.sip_offer:
                audio, video = self.rtp.offered_codecs(self.sip_offer.decode("utf-8", "replace"))
                if not audio and not video:
                    raise MediaError("No common codecs")
            else:
                audio, video = [], []
            self.has_video = bool(video)
            offer = self.webrtc.create_offer(audio, video, "sendrecv")
        except MediaError as error:
            sip.reject(488, "Not Acceptable Here")
            self.fail(error.info)
            return
        self.status = CallStatus.RING
        self._offered = True
        if self._client is not None:
            self._client.remote_sdp(self.call_id, offer, False)
            self._client.incoming_call(self)
        self._set_status(CallStatus.RING)
        sip.ring()
        self._start_ring_timer()

    def answer(self, browser_answer: str) -> None:
        """
        The browser answered: answer the SIP caller with the codec the browser chose.
        """
        if not self.incoming or self.status is not CallStatus.RING:
            return
        self.browser_sdp = browser_answer
        try:
            self.webrtc.set_remote_answer(browser_answer)
            prefer_audio = [self.webrtc.audio_codec] if self.webrtc.audio_codec else []
            prefer_video = [self.webrtc.video_codec] if self.webrtc.video_codec else []
            if self.sip_offer:
                sip_sdp = self.rtp.create_answer(self.sip_offer.decode("utf-8", "replace"),
                                                 prefer_audio, prefer_video, "sendrecv")
            else:
                sip_sdp = self.rtp.create_offer(prefer_audio, prefer_video, "sendrecv")
        except MediaError as error:
            self.sip.reject(488, "Not Acceptable Here")
            self.fail(error.info)
            return
        self.browser_answered = True
        self.sip.accept(sip_sdp.encode("utf-8"))
        if self.sip_offer:
            self._bridge()
        self._set_status(CallStatus.ESTABLISHED, 200)

    def confirmed(self, session) -> None:
        """
        The ACK for our 2xx; when that 2xx made the offer (the INVITE or a re-INVITE came
        without SDP: a delayed offer), the ACK's SDP is the answer.
        """
        answer_in_ack = self._offer_in_2xx or (self.incoming and not self.sip_offer)
        self._offer_in_2xx = False
        if answer_in_ack and session.remote_sdp:
            try:
                self.rtp.set_remote_answer(session.remote_sdp.decode("utf-8", "replace"))
                self._bridge()
            except MediaError as error:
                session.hang_up(reason=error.info)
                self.fail(error.info)

    # --- in the call ----------------------------------------------------------------------------

    def terminated(self, session, reason, by_remote) -> None:
        if reason == "cancelled":
            reason = NORMAL_CLEARING
        self._set_status(CallStatus.FINISH, info=reason)

    def hang_up(self, reason: str = NORMAL_CLEARING) -> None:
        """
        The browser (or REST, or a closed session) ends the call: FINISH now, SIP cleanup after.
        """
        if self.status.released:
            return
        ringing = self.incoming and self.status is CallStatus.RING
        self._set_status(CallStatus.FINISH, info=reason)
        if self.sip is not None:
            if ringing:
                self.sip.reject(486 if reason == NORMAL_CLEARING else 480)
            else:
                self._cancelled_by_us = True
                self.sip.hang_up(reason=reason)

    def fail(self, info: str) -> None:
        """
        End the call as FAILED with a WCS info text, releasing the SIP leg however far it got.
        """
        if self.status.released:
            return
        self._set_status(CallStatus.FAILED, info=info)
        if self.sip is not None:
            self._cancelled_by_us = True
            self.sip.hang_up(reason=info)

    def hold(self, for_transfer: bool = False) -> None:
        """
        Put the SIP side on hold (re-INVITE sendonly); answer HOLD, or ESTABLISHED if refused.
        """
        if self.status is not CallStatus.ESTABLISHED:
            if self.status is CallStatus.HOLD and self._client is not None:
                self._client.call_status(self, None)
            return
        self.hold_for_transfer = for_transfer
        self._reoffer("sendonly", held=True)

    def unhold(self) -> None:
        if self.status is not CallStatus.HOLD:
            if self.status is CallStatus.ESTABLISHED and self._client is not None:
                self._client.call_status(self, None)
            return
        self._reoffer("sendrecv", held=False)

    def _reoffer(self, direction: str, held: bool) -> None:
        try:
            audio = [self.rtp.audio_codec] if self.rtp.audio_codec else []
            video = [self.rtp.video_codec] if self.rtp.video_codec else []
            offer = self.rtp.create_offer(audio, video, direction)
        except MediaError as error:
            self.log.warn("re-offer for {call_id} failed: {info}", call_id=self.call_id,
                          info=error.info)
            self._set_status(self.status)
            return

        def accepted(response) -> None:
            if response.body:
                try:
                    self.rtp.set_remote_answer(response.body.decode("utf-8", "replace"))
                except MediaError as error:
                    self.log.warn("re-INVITE answer unusable: {info}", info=error.info)
            self._held = held
            if self.bridge is not None:
                self.bridge.hold(held)
            self._set_status(CallStatus.HOLD if held else CallStatus.ESTABLISHED, 200)

        def refused(failure) -> None:
            failure.trap(SIPRequestFailed)
            self.log.info("re-INVITE of {call_id} refused: {status}", call_id=self.call_id,
                          status=failure.value.status)
            self._set_status(self.status)

        self.sip.reinvite(offer.encode("utf-8")).addCallbacks(accepted, refused)

    def offer_received(self, session, offer):
        """
        The SIP peer re-INVITEs (remote hold, codec change): answer on the SIP leg only.  A
        re-INVITE without SDP (a PBX's delayed offer, RFC 3261 14.2) gets a fresh offer of the
        codecs in use, answered in the ACK (L{confirmed}).
        """
        if offer is None:
            try:
                fresh = self.rtp.create_offer(
                    [self.rtp.audio_codec] if self.rtp.audio_codec else [],
                    [self.rtp.video_codec] if self.rtp.video_codec else [], "sendrecv")
            except MediaError as error:
                raise RemoteProtocolError(error.info, 488) from None
            self._offer_in_2xx = True
            return fresh.encode("utf-8")
        text = offer.decode("utf-8", "replace")
        remote_direction = direction_of(offer)
        try:
            answer = self.rtp.create_answer(
                text, [self.rtp.audio_codec] if self.rtp.audio_codec else [],
                [self.rtp.video_codec] if self.rtp.video_codec else [],
                _ANSWER_DIRECTION[remote_direction])
        except MediaError as error:
            raise RemoteProtocolError(error.info, 488) from None
        held = remote_direction != "sendrecv"
        if held != self._held:
            self._held = held
            if self.bridge is not None:
                self.bridge.hold(held)
            self._set_status(CallStatus.HOLD if held else CallStatus.ESTABLISHED)
        return answer.encode("utf-8")

    def send_dtmf(self, digit: str, method: str) -> None:
        """
        DTMF towards the SIP side: RFC 4733 in RTP, or SIP INFO (dtmf-relay / dtmf).
        """
        if method == "RFC2833":
            self.rtp.send_dtmf(digit, 160)
            return
        if method == "INFO":
            body, content_type = f"Signal={digit}\r\nDuration=160\r\n", "application/dtmf-relay"
        else:  # INFO_RELAY
            body, content_type = digit, "application/dtmf"
        done = self.sip.request("INFO", body.encode("ascii"), content_type)
        done.addErrback(lambda failure: self.log.info(
            "INFO DTMF on {call_id} refused: {error}", call_id=self.call_id,
            error=failure.getErrorMessage()))

    def info_received(self, session, request):
        digit = dtmf_from_info(request)
        if digit is not None:
            self._dtmf_from_sip(digit, "INFO")
            return 200
        if b"picture_fast_update" in request.body:
            if self.bridge is not None and self.webrtc is not None:
                self.bridge.request_keyframe(self.webrtc)
            return 200
        return 415

    def media_dtmf(self, session, digit) -> None:
        if session is self.rtp:
            self._dtmf_from_sip(digit, "RFC2833")

    def _dtmf_from_sip(self, digit: str, method: str) -> None:
        self.log.info("DTMF {digit} ({method}) from SIP on {call_id}", digit=digit,
                      method=method, call_id=self.call_id)
        if self._client is not None:
            self._client.dtmf(self.call_id, digit, method)
        self.table.dtmf_received(self, digit, method)

    def message_received(self, session, request) -> None:
        self.log.info("MESSAGE in call {call_id}", call_id=self.call_id)

    # --- media events -----------------------------------------------------------------------

    def media_connected(self, session) -> None:
        self.log.debug("media connected on {kind} leg of {call_id}", kind=session.kind,
                       call_id=self.call_id)
        if session is self.webrtc:
            self._browser_media_connected()

    def media_inactive(self, session) -> None:
        if self._waits_for_browser(session):
            return
        if self.status in (CallStatus.ESTABLISHED,) and not self._held:
            self.fail(FAILED_BY_RTP_ACTIVITY)

    def media_failed(self, session, reason) -> None:
        if self._waits_for_browser(session, reason or FAILED_BY_ERROR):
            return
        self.fail(reason or FAILED_BY_ERROR)

    # --- release ------------------------------------------------------------------------------

    def _release(self) -> None:
        self._stop_timers()
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        for media in (self.webrtc, self.rtp):
            if media is not None:
                media.close()
        self._drop_referred_leg()
        released, self.on_release = self.on_release, []
        for callback in released:
            callback(self)
        self.table.released(self)
