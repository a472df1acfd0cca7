# -*- test-case-name: tests.gateway.test_call_transfer -*-
"""
Transfers of a call (RFC 3515 REFER, RFC 5589 call transfer, RFC 3891 Replaces), apart from the
call's state machine (L{wcs_twisted.gateway.call}), in both directions:

  - we transfer the SIP peer (the client's C{transfer}): blind to a URI, or attended to another
    call of the same session, whose dialog the Refer-To names in a Replaces header;
  - the SIP peer transfers us (an incoming REFER): we dial the target on the session's behalf,
    with the Replaces header the Refer-To carries, and move the browser's media to the new leg;
  - an INVITE with Replaces names one of our established legs (a transferee dialling us to
    replace its consultation call): the call takes the new leg in place of the old one, and
    the browser never renegotiates (spec 7: one setRemoteSDP per call).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import DomainError, MediaError
from wcs_twisted.interfaces import IInviteSessionObserver
from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.gateway.call_events import (
    NORMAL_CLEARING,
    CallStatus,
    TransferStatus,
    transfer_status_for_sipfrag,
)
from wcs_twisted.ua.invite_session import InviteSession, SIPRequestFailed

#: Refer-To URI headers copied into the INVITE to the target (RFC 3261 19.1.5 lets a URI carry
#: headers; only Replaces is a transfer's business, the rest could forge the request).
REFER_TO_HEADERS = frozenset({"replaces"})

#: Statuses in which a call's SIP dialog may be transferred or replaced.
CONNECTED = frozenset({CallStatus.ESTABLISHED, CallStatus.HOLD})


def parse_replaces(value: str) -> tuple[str, str, str] | None:
    """
    A Replaces header value (RFC 3891 6.1) as (call-id, to-tag, from-tag), or None if malformed.
    """
    call_id, _, rest = value.partition(";")
    tags = {}
    for param in rest.split(";"):
        name, _, tag = param.partition("=")
        tags[name.strip().lower()] = tag.strip()
    if not call_id.strip() or not tags.get("to-tag") or not tags.get("from-tag"):
        return None
    return call_id.strip(), tags["to-tag"], tags["from-tag"]


class CallTransfers:
    """
    Mixed into L{Call <wcs_twisted.gateway.call.Call>}: it uses the call's C{table}, C{sip},
    C{rtp}, C{webrtc}, C{bridge}, C{status}, C{_client}, C{_set_status}, C{_bridge} and
    C{hang_up}.
    """

    log = Logger()

    def _init_transfers(self) -> None:
        self._referred: SIPURI | None = None
        self._referred_leg: InviteSession | None = None
        #: Our REFER awaits its final response; NOTIFY statuses wait in the list meanwhile.
        self._refer_pending = False
        self._early_transfer_statuses: list[TransferStatus] = []

    # --- we transfer the peer ---------------------------------------------------------------

    def replaces_uri(self) -> SIPURI:
        """
        The URI a transferee dials to replace this call's dialog (RFC 5589 7.1): our peer's
        contact with a Replaces header naming the dialog as the peer sees it (RFC 3891 3).

        @raise DomainError: the call has no confirmed dialog to replace.
        """
        dialog = self.sip.dialog if self.sip is not None else None
        if dialog is None or self.status not in CONNECTED or not isinstance(
                dialog.remote_target, SIPURI):
            raise DomainError("Call to transfer to is not established")
        replaces = (f"{dialog.call_id};to-tag={dialog.remote_tag};"
                    f"from-tag={dialog.local_tag}")
        target = dialog.remote_target.without_headers()
        return SIPURI(target.scheme, target.user, None, target.host, target.port,
                      target.params, (("Replaces", replaces),))

    def transfer(self, target_uri) -> None:
        """
        Transfer the SIP peer to C{target_uri} with REFER (RFC 3515): blind, or attended when
        the URI carries a Replaces header (RFC 5589 7).

        A NOTIFY may overtake the 202 (RFC 3515 2.4.4 allows it, and our own record-routing
        proxy gives the REFER and its 202 an extra hop): its statuses wait for the 202, so the
        client always hears ACCEPTED first (spec 9.6).
        """
        self.target = str(target_uri)
        self._refer_pending = True
        self._early_transfer_statuses = []

        def accepted(response) -> None:
            self._refer_pending = False
            self._transfer_status(TransferStatus.ACCEPTED)
            early, self._early_transfer_statuses = self._early_transfer_statuses, []
            for status in early:
                self._transfer_status(status)

        def refused(failure) -> None:
            failure.trap(SIPRequestFailed)
            self._refer_pending = False
            self._early_transfer_statuses = []
            self._transfer_status(TransferStatus.FAILED, failure.value.status)

        local = self.sip.dialog.local_uri if self.sip.dialog is not None else None
        headers = [("Refer-To", str(NameAddress(None, target_uri)))]
        if local is not None:
            headers.append(("Referred-By", str(local)))
        self.sip.request("REFER", headers=tuple(headers)).addCallbacks(accepted, refused)

    def _transfer_status(self, status: TransferStatus, sip_status: int | None = None) -> None:
        if self.status.released:
            return
        if self._client is not None:
            self._client.transfer_status(self, status, sip_status)
        self.table.transfer_changed(self, status)
        if status is TransferStatus.COMPLETED:
            # RFC 5589 6.1: the transferor ends its dialog once the transfer succeeded.
            self.hang_up(NORMAL_CLEARING)

    def notify_received(self, session, request) -> None:
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event == "refer":
            status = transfer_status_for_sipfrag(request.body)
            if status is None:
                return
            if self._refer_pending:
                self._early_transfer_statuses.append(status)
            else:
                self._transfer_status(status)

    # --- the peer transfers us --------------------------------------------------------------

    def refer_received(self, session, request, refer_to):
        """
        The SIP peer transfers us (RFC 3515): the application backend hears OnTransferEvent
        (and may refuse), then we call the target on the browser's behalf, and on success move
        the browser's media to the new leg and drop the old one.
        """
        if session is not self.sip or self.status not in CONNECTED:
            return 603
        try:
            target = NameAddress.parse(refer_to).uri
        except RemoteProtocolError:
            return 400
        if not isinstance(target, SIPURI) or self._referred is not None:
            return 400 if not isinstance(target, SIPURI) else 491
        replaces = [value for name, value in target.headers if name.lower() == "replaces"]
        if replaces and parse_replaces(replaces[0]) is None:
            return 400
        try:
            self.table.check_refer_target(self, target.without_headers())
        except DomainError:
            return 403  # the refusal is logged by the table
        self._referred = target
        self.target = str(target.without_headers())
        decided: Deferred = self.table.transfer_requested(self, target)

        def go(_) -> int:
            if self.status not in CONNECTED or self._referred is not target:
                return 481
            self.log.info("REFER of {call_id} to {target}: calling it", call_id=self.call_id,
                          target=str(target))
            # After the 202 has gone (RFC 3515 2.4.4): progress NOTIFYs, then the new INVITE.
            self.table.clock.callLater(0, self._call_refer_target, target)
            return 202

        def refused(failure) -> int:
            failure.trap(DomainError)
            self._referred = None
            self.log.info("REFER of {call_id} to {target} refused by the backend: {info}",
                          call_id=self.call_id, target=str(target), info=failure.value.info)
            return 603

        return decided.addCallbacks(go, refused)

    def _call_refer_target(self, target: SIPURI) -> None:
        self._notify_referrer(b"SIP/2.0 100 Trying", final=False)
        try:
            rtp = self.table.media.create_session("rtp")
            rtp.observer = self
            codec = (self.webrtc.audio_codec if self.webrtc is not None else None) or \
                self.rtp.audio_codec
            offer = rtp.create_offer([codec] if codec else [], [], "sendrecv")
        except MediaError as error:
            self._referred = None
            self._notify_referrer(b"SIP/2.0 503 Service Unavailable", final=True)
            self.log.warn("REFER target not called: {info}", info=error.info)
            return
        local = self.sip.dialog.local_uri.uri
        headers = tuple((name, value) for name, value in target.headers
                        if name.lower() in REFER_TO_HEADERS)
        dialled = target.without_headers()
        self._referred_leg = InviteSession.outgoing(
            self.table.core, self.table.clock, _ReferredLeg(self, rtp), local, dialled,
            offer.encode("utf-8"), outbound_proxy=self.table.outbound_proxy_for(self, dialled),
            extra_headers=headers)
        rtp.signalling_source = self._referred_leg.peer_host

    def _refer_answered(self, leg, rtp, response) -> None:
        self._referred_leg = None
        try:
            if leg.remote_sdp:
                rtp.set_remote_answer(leg.remote_sdp.decode("utf-8", "replace"))
        except MediaError as error:
            leg.observer = _DETACHED
            leg.hang_up(reason=error.info)
            self._refer_failed(rtp, 488)
            return
        self._notify_referrer(b"SIP/2.0 200 OK", final=True)
        self._referred = None
        self.callee = str(leg.request_uri)
        self._take_leg(leg, rtp, leg.remote_sdp, "Transferred")
        self._set_status(CallStatus.ESTABLISHED, response.status_code, response)

    def _refer_failed(self, rtp, status: int) -> None:
        self._referred_leg = None
        rtp.close()
        self._referred = None
        self._notify_referrer(f"SIP/2.0 {status} Transfer failed".encode(), final=True)

    def _notify_referrer(self, sipfrag: bytes, final: bool) -> None:
        state = "terminated;reason=noresource" if final else "active;expires=60"
        done = self.sip.request("NOTIFY", sipfrag, "message/sipfrag;version=2.0",
                                headers=(("Event", "refer"), ("Subscription-State", state)))
        done.addErrback(lambda failure: self.log.info(
            "transfer NOTIFY on {call_id} refused: {error}", call_id=self.call_id,
            error=failure.getErrorMessage()))

    def _drop_referred_leg(self) -> None:
        """
        A REFER target still ringing when the call ended: it must not ring on alone.
        """
        leg, self._referred_leg = self._referred_leg, None
        if leg is not None:
            leg.observer.rtp.close()
            leg.observer = _DETACHED
            leg.hang_up()

    # --- a transferee replaces our leg --------------------------------------------------------

    def matches_replaces(self, call_id: str, to_tag: str, from_tag: str) -> bool:
        """
        Whether a Replaces header names this call's SIP dialog (RFC 3891 3: to-tag is ours).
        """
        dialog = self.sip.dialog if self.sip is not None else None
        return (dialog is not None and dialog.call_id == call_id
                and dialog.local_tag == to_tag and dialog.remote_tag == from_tag)

    def replace_leg(self, leg: InviteSession) -> None:
        """
        An INVITE with Replaces for our established dialog (RFC 3891): answer it with the codec
        the browser already uses, move the media onto it, and BYE the replaced dialog.
        """
        try:
            rtp = self.table.media.create_session("rtp", leg.peer_host)
            rtp.observer = self
            rtp.signalling_source = leg.peer_host
            if not leg.remote_sdp:
                raise MediaError("No offer in the replacing INVITE")
            codec = (self.webrtc.audio_codec if self.webrtc is not None else None) or \
                self.rtp.audio_codec
            answer = rtp.create_answer(leg.remote_sdp.decode("utf-8", "replace"),
                                       [codec] if codec else [], [], "sendrecv")
        except MediaError as error:
            leg.observer = _DETACHED
            leg.reject(488, "Not Acceptable Here")
            self.log.info("INVITE replacing {call_id} refused: {info}", call_id=self.call_id,
                          info=error.info)
            return
        leg.accept(answer.encode("utf-8"))
        self.log.info("{call_id}: dialog replaced (RFC 3891)", call_id=self.call_id)
        self.caller = getattr(leg.invite.from_.uri, "user", None) or self.caller
        self._take_leg(leg, rtp, leg.remote_sdp, "Replaced")
        self._set_status(CallStatus.ESTABLISHED, 200)

    def _take_leg(self, leg: InviteSession, rtp, remote_sdp: bytes | None, reason: str) -> None:
        """
        Put C{leg} and its RTP session in place of the current SIP leg, which is hung up.
        """
        old_sip, old_rtp = self.sip, self.rtp
        old_sip.observer = _DETACHED
        old_sip.hang_up(reason=reason)
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        old_rtp.close()
        leg.observer = self
        self.sip, self.rtp = leg, rtp
        self._sip_answer = remote_sdp
        self._held = False
        self._bridge()


@implementer(IInviteSessionObserver)
class _Detached:
    """
    The observer of a leg the call has let go of (after a transfer): hears nothing.
    """

    def provisional(self, session, response):
        pass

    def answered(self, session, response):
        pass

    def confirmed(self, session):
        pass

    def failed(self, session, status, reason, response):
        pass

    def terminated(self, session, reason, by_remote):
        pass

    def offer_received(self, session, offer):
        return None

    def info_received(self, session, request):
        return 200

    def refer_received(self, session, request, refer_to):
        return 603

    def notify_received(self, session, request):
        pass

    def message_received(self, session, request):
        pass


_DETACHED = _Detached()


@implementer(IInviteSessionObserver)
class _ReferredLeg(_Detached):
    """
    The new leg a REFER made us dial, until it answers (then the call takes it over).
    """

    def __init__(self, call, rtp) -> None:
        self.call = call
        self.rtp = rtp

    def answered(self, session, response):
        self.call._refer_answered(session, self.rtp, response)

    def failed(self, session, status, reason, response):
        self.call._refer_failed(self.rtp, status)
