# -*- test-case-name: tests.ua.test_invite_session -*-
# Over 600 lines as one piece: one INVITE dialog usage, UAC and UAS halves share every in-dialog path.
"""
The INVITE session usage of a dialog (RFC 3261 13-15, RFC 6026), for both roles.

An L{InviteSession} is one SIP call leg: as UAC it sends the INVITE (answering digest challenges),
follows provisional responses into early dialogs, ACKs the 2xx (and its retransmissions), cancels
or hangs up; as UAS it rings, answers with a 2xx that it retransmits until the ACK comes
(13.3.1.4), rejects, or is cancelled.  In the confirmed dialog it sends and answers re-INVITE
(offer/answer bodies are opaque here: the call layer negotiates SDP), BYE, INFO, REFER, NOTIFY,
MESSAGE and UPDATE.  What happens is reported to one L{IInviteSessionObserver}.
"""

from __future__ import annotations

import enum
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IClientTransactionOwner, IDialogUsage
from wcs_twisted.sip.address import is_ip_literal
from wcs_twisted.sip.auth import build_authorization, select_challenge
from wcs_twisted.sip.dialog import Dialog, DialogState
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress, Via
from wcs_twisted.sip.message import Request, Response, new_call_id, new_tag, option_tags
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.reliable_provisional import (
    ProvisionalReceiver,
    ReliableProvisionalSender,
)
from wcs_twisted.ua.trunk_options import trunk_options
from wcs_twisted.ua.session_timer import (
    OPTION as SESSION_TIMER,
    SessionTimer,
    interval_too_small,
    min_se,
)
from wcs_twisted.ua.outbound import (
    USER_AGENT,
    build_request,
    cnonce,
    contact_uri,
    next_hop,
    via_value,
)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, MESSAGE, UPDATE, PRACK"
#: The option tags our INVITEs announce.


class InviteSessionState(enum.Enum):
    """
    The INVITE session states of PJSIP's sip_inv (NULL .. DISCONNECTED).
    """

    NULL = "NULL"
    CALLING = "CALLING"
    INCOMING = "INCOMING"
    EARLY = "EARLY"
    CONNECTING = "CONNECTING"
    CONFIRMED = "CONFIRMED"
    DISCONNECTED = "DISCONNECTED"


class SIPRequestFailed(Exception):
    """
    An in-dialog request got a final failure (or timed out: status 408).
    """

    def __init__(self, status: int, reason: str, response: Response | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.response = response


@implementer(IClientTransactionOwner)
class _PendingRequest:
    """
    One in-dialog client transaction (re-INVITE, BYE, INFO, ...) and its Deferred.
    """

    def __init__(self, session: "InviteSession", request: Request) -> None:
        self.session = session
        self.request = request
        self.done: Deferred = Deferred()
        self.authenticated = False
        if request.method == "BYE":
            # Nobody waits on a BYE: the call is over whatever the peer answers.
            self.done.addErrback(lambda failure: session.log.debug(
                "BYE answered {error}", error=failure.getErrorMessage()))

    def response_received(self, response: Response) -> None:
        if response.status_code < 200 or self.done.called:
            if 200 <= response.status_code < 300 and self.request.method == "INVITE":
                self.session._ack_reinvite(self.request, response)  # 2xx retransmission
            return
        self.session._in_dialog_response(self, response)

    def transaction_failed(self, reason: str) -> None:
        if not self.done.called:
            self.session._in_dialog_failed(self, reason)


@implementer(IClientTransactionOwner, IDialogUsage)
class InviteSession:
    """
    One call leg.  Build it with L{InviteSession.outgoing} or L{InviteSession.incoming}.
    """

    log = Logger()

    def __init__(self, core, clock, observer, protocol: str = "udp") -> None:
        self.core = core
        self.clock = clock
        self.observer = observer
        self.protocol = protocol
        self.state = InviteSessionState.NULL
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.invite_key = None
        self.destination = None
        #: Where the peer's SIP messages come from: the INVITE's source (UAS), or the next hop
        #: the INVITE went to (UAC).
        self.peer_address = None
        self.final_status: int | None = None
        self.local_sdp: bytes | None = None
        self.remote_sdp: bytes | None = None
        self.credentials: tuple[str, str] | None = None
        self._answered_nonce: str | None = None
        self._pending_invite: _PendingRequest | None = None
        self._retransmit = None
        self._retransmit_interval = 0.0
        self._retransmit_deadline = 0.0
        self._ok: Response | None = None
        self._server_key = None
        self._remote_reinvite = None
        #: Our 2xx to the peer's re-INVITE carried the offer (it had none): the ACK answers.
        self._offer_in_2xx = False
        self._cancel_requested = False
        self._reliable = False
        self._ended = False
        #: RFC 3262: which reliable 1xx we PRACKed (UAC), and our own reliable 1xx (UAS, when
        #: the INVITE requires 100rel).
        self._prack = ProvisionalReceiver()
        self._reliable_1xx: ReliableProvisionalSender | None = None
        #: RFC 4028: the session timer, what our INVITE asks for, and what the peer supports.
        self._timer = SessionTimer(clock, self._refresh_session, self._session_expired)
        self._options = trunk_options(core)
        self._session_expires = self._options.session_expires
        self._min_se = self._options.min_se
        self._authorization: tuple[str, str] | None = None
        self._peer_timer = False
        self._peer_allow: set[str] = set()

    # === UAC =================================================================================

    @classmethod
    def outgoing(
        cls,
        core,
        clock,
        observer,
        from_uri: SIPURI,
        to_uri: SIPURI,
        sdp: bytes | None,
        outbound_proxy: str = "",
        credentials: tuple[str, str] | None = None,
        display_name: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        protocol: str | None = None,
    ) -> "InviteSession":
        """
        Start a call to C{to_uri}: the INVITE leaves at once.

        @param protocol: the transport; by default the one C{to_uri} names (transport=, sips:).

        @param credentials: (authentication name, password) for 401/407 challenges.
        """
        destination = next_hop(to_uri, outbound_proxy)
        protocol = protocol or destination.transport
        session = cls(core, clock, observer, protocol)
        session.credentials = credentials
        session.local_sdp = sdp
        session._from = NameAddress(display_name or None, from_uri).with_tag(
            new_tag(core.random))
        session._to = NameAddress(None, to_uri)
        session.destination = session.peer_address = destination
        local_host = core.transport.local_address(protocol, session.destination.host)[0]
        session._call_id = new_call_id(core.random, local_host)
        session._contact = NameAddress(None, contact_uri(core.transport, protocol, from_uri.user,
                                                         toward=session.destination.host,
                                                         secure=to_uri.scheme == "sips"))
        session._cseq = 1
        session._extra = extra_headers
        session.request_uri = to_uri
        session.state = InviteSessionState.CALLING
        session._send_invite(authorization=None)
        return session

    @property
    def call_id(self) -> str:
        if self.dialog is not None:
            return self.dialog.call_id
        if self.invite is not None:
            return self.invite.call_id
        return ""

    def _send_invite(self, authorization: tuple[str, str] | None) -> None:
        extra = list(self._extra) + [
            ("Allow", ALLOW)] + self._options.invite_headers(self._session_expires, self._min_se)
        self._authorization = authorization
        if authorization is not None:
            extra.append(authorization)
        body = self.local_sdp or b""
        self.invite = build_request(
            self.core.transport, "INVITE", self.request_uri, self._from, self._to,
            self._call_id, self._cseq, self.protocol, contact=self._contact,
            extra_headers=tuple(extra), body=body,
            content_type="application/sdp" if body else None, toward=self.destination.host)
        self.invite_key = self.core.send_request(self.invite, self.destination, self)
        if self._cancel_requested:
            self.core.transport.cancel(self.invite_key)

    def response_received(self, response: Response) -> None:
        """
        A response to our INVITE (the UAC side of RFC 3261 13.2.2).
        """
        if response.cseq.number != self.invite.cseq.number:
            return
        status = response.status_code
        if status == 100:
            return
        if status < 200:
            self._provisional(response)
        elif status < 300:
            self._success(response)
        elif status in (401, 407) and self._answer_challenge(response):
            return
        elif status == 422 and self._answer_too_small(response):
            return
        else:
            self._invite_failed(status, response.reason, response)

    def transaction_failed(self, reason: str) -> None:
        if self.state in (InviteSessionState.CALLING, InviteSessionState.EARLY):
            self._invite_failed(408 if reason == "timeout" else 503,
                                "Request Timeout" if reason == "timeout" else "Transport Error",
                                None)

    def _provisional(self, response: Response) -> None:
        if self.state not in (InviteSessionState.CALLING, InviteSessionState.EARLY):
            return
        if response.to.tag and self.dialog is None:
            try:
                self.dialog = Dialog.create_uac(self.invite, response, rng=self.core.random)
            except (LocalProtocolError, RemoteProtocolError) as error:
                self.log.info("no early dialog from {status}: {error}",
                              status=response.status_code, error=str(error))
        elif self.dialog is not None and response.to.tag == self.dialog.remote_tag:
            self.dialog.update_from_response(response)
        fresh, rack = self._prack.accept(response)
        if not fresh:
            return  # a reliable 1xx again, or one ahead of its RSeq (RFC 3262 4)
        self.state = InviteSessionState.EARLY
        if (rack is not None and self.dialog is not None
                and response.to.tag == self.dialog.remote_tag):
            self.request("PRACK", headers=(("RAck", rack),)).addErrback(
                lambda failure: self.log.info("PRACK on {call_id} failed: {error}",
                                              call_id=self.call_id,
                                              error=failure.getErrorMessage()))
        if response.body and self._is_sdp(response):
            self.remote_sdp = response.body
        self.observer.provisional(self, response)

    def _success(self, response: Response) -> None:
        to_tag = response.to.tag or ""
        if self.dialog is not None and self.dialog.remote_tag == to_tag:
            if self.dialog.state is DialogState.EARLY:
                self.dialog.update_from_response(response)
        elif self.dialog is None or self.dialog.state is DialogState.EARLY:
            try:
                self.dialog = Dialog.create_uac(self.invite, response, rng=self.core.random)
            except (LocalProtocolError, RemoteProtocolError) as error:
                self.log.warn("2xx without a usable dialog: {error}", error=str(error))
                self._invite_failed(502, "Bad 2xx", response)
                return
        else:
            # A 2xx from another fork after we settled: ACK it, then end it (RFC 3261 13.2.2.4).
            extra = Dialog.create_uac(self.invite, response, rng=self.core.random)
            self._send_ack(extra, self.invite.cseq.number, b"")
            bye = extra.create_request("BYE", via=self._new_via())
            self.core.send_request(bye, self._destination_for(bye), _PendingRequest(self, bye))
            return
        first = self.state is not InviteSessionState.CONFIRMED
        self._send_ack(self.dialog, self.invite.cseq.number, b"")
        if not first:
            return  # retransmitted 2xx: the ACK was all it needed
        self.core.register_dialog(self.dialog.call_id, self.dialog.local_tag,
                                  self.dialog.remote_tag, self)
        if response.body and self._is_sdp(response):
            self.remote_sdp = response.body
        self.final_status = response.status_code
        self.state = InviteSessionState.CONFIRMED
        if self._cancel_requested:
            self.hang_up()
            return
        self._peer_allow = self._allowed(response)
        self._timer.confirmed(response)
        self.observer.answered(self, response)

    def _answer_too_small(self, response: Response) -> bool:
        """
        422: ask again, once, with the Min-SE the peer wants (RFC 4028 7.4).
        """
        wanted = min_se(response)
        if self.state is not InviteSessionState.CALLING or wanted <= self._session_expires:
            return False
        self._min_se = self._session_expires = wanted
        self._cseq += 1
        self._send_invite(self._authorization)
        return True

    def _answer_challenge(self, response: Response) -> bool:
        if self.credentials is None or self.state is not InviteSessionState.CALLING:
            return False
        header = "WWW-Authenticate" if response.status_code == 401 else "Proxy-Authenticate"
        challenge = select_challenge(response.headers.get_all(header))
        # Credentials refused once (a new challenge that is not stale) means they are wrong.
        if challenge is None or (self._answered_nonce is not None and not challenge.stale):
            return False
        self._answered_nonce = challenge.nonce
        user, password = self.credentials
        try:
            value = build_authorization(challenge, "INVITE", str(self.request_uri), user,
                                        password, cnonce(self.core.random))
        except LocalProtocolError:
            return False
        self._cseq += 1
        name = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
        self._send_invite((name, value))
        return True

    def _invite_failed(self, status: int, reason: str, response: Response | None) -> None:
        if self.state in (InviteSessionState.DISCONNECTED, InviteSessionState.CONFIRMED):
            return
        if self.dialog is not None:
            self.dialog.terminate()
        self.final_status = status
        self._end()
        self.observer.failed(self, status, reason, response)

    def cancel(self) -> None:
        """
        Give up on an outgoing call that is not answered yet (RFC 3261 9.1).
        """
        if self.state in (InviteSessionState.CALLING, InviteSessionState.EARLY):
            self._cancel_requested = True
            self.core.transport.cancel(self.invite_key)

    @property
    def peer_host(self) -> str | None:
        """
        The IP address the peer's signalling comes from, or None when it is only known by name.
        """
        host = (getattr(self.peer_address, "host", None) or "").strip("[]")
        return host if is_ip_literal(host) else None

    # === UAS =================================================================================

    @classmethod
    def incoming(cls, core, clock, observer, event,
                 protocol: str | None = None) -> "InviteSession":
        """
        Take an out-of-dialog INVITE (a RequestReceived event).  Nothing is answered yet; the
        layer already sent 100 Trying.

        @param protocol: the transport of our Contact and of the requests we send in the
            dialog; by default the one the INVITE arrived on, so a caller on TCP is not told
            to reach us over UDP (which may not even be enabled).
        """
        if protocol is None:
            protocol = getattr(event.source, "transport", None) or "udp"
        session = cls(core, clock, observer, protocol)
        request = event.request
        session.invite = request
        session._server_key = event.transaction_key
        session.peer_address = event.source
        session._reliable = event.reliable
        local_tag = new_tag(core.random)
        secure = getattr(request.uri, "scheme", "") == "sips"  # RFC 3261 12.1.1
        contact = NameAddress(None, contact_uri(core.transport, protocol,
                                                getattr(request.uri, "user", None),
                                                toward=getattr(event.source, "host", None),
                                                secure=secure))
        session.dialog = Dialog.create_uas(request, local_tag, contact, rng=core.random)
        session.state = InviteSessionState.INCOMING
        if request.body and session._is_sdp(request):
            session.remote_sdp = request.body
        session._peer_timer = SESSION_TIMER in (option_tags(request, "Supported")
                                                | option_tags(request, "Require"))
        session._peer_allow = session._allowed(request)
        if session._options.reliable_for(request):
            session._reliable_1xx = ReliableProvisionalSender(
                clock, core.timers.t1, core.random, session._respond_invite,
                session._no_prack)
        core.own_server(event.transaction_key, session)
        core.register_dialog(request.call_id, local_tag, session.dialog.remote_tag, session)
        return session

    def _respond_invite(self, response: Response) -> None:
        try:
            self.core.respond(self._server_key, response)
        except LocalProtocolError as error:
            self.log.info("response to the INVITE not sent: {error}", error=str(error))

    def _no_prack(self) -> None:
        """
        Our reliable 1xx went unacknowledged for 64*T1: reject the INVITE (RFC 3262 3).
        """
        if self.state in (InviteSessionState.INCOMING, InviteSessionState.EARLY):
            self.reject(504, "No PRACK")
            self.observer.terminated(self, "No PRACK", by_remote=True)

    def _stop_provisionals(self) -> None:
        if self._reliable_1xx is not None:
            self._reliable_1xx.stop()

    def _uas_response(self, status: int, reason: str | None = None, body: bytes = b"",
                      headers: tuple[tuple[str, str], ...] = ()) -> Response:
        response = self.invite.create_response(status, reason, to_tag=self.dialog.local_tag,
                                               record_route=status < 300)
        if 100 < status < 300:
            response.headers.add("Contact", str(self.dialog.local_contact))
            response.headers.add("Allow", ALLOW)
        response.headers.add("User-Agent", USER_AGENT)
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        return response

    def ring(self, sdp: bytes | None = None) -> None:
        """
        180 Ringing, or 183 Session Progress carrying early media SDP.
        """
        if self.state not in (InviteSessionState.INCOMING, InviteSessionState.EARLY):
            return
        status = 183 if sdp else 180
        if sdp:
            self.local_sdp = sdp
        self.state = InviteSessionState.EARLY
        response = self._uas_response(status, body=sdp or b"")
        if self._reliable_1xx is not None:
            self._reliable_1xx.send(response)
        else:
            self.core.respond(self._server_key, response)

    def accept(self, sdp: bytes | None) -> None:
        """
        Answer with 200 OK, retransmitted until the ACK arrives (RFC 3261 13.3.1.4).
        """
        if self.state not in (InviteSessionState.INCOMING, InviteSessionState.EARLY):
            return
        self.local_sdp = sdp
        self._stop_provisionals()
        self._ok = self._uas_response(200, body=sdp or b"")
        self._timer.answer(self.invite, self._ok, self._peer_timer)
        self.dialog.update_from_response(self._ok)
        self.core.expect_ack(self.dialog.call_id, self.dialog.local_tag, self)
        self.state = InviteSessionState.CONNECTING
        self.final_status = 200
        self.core.respond(self._server_key, self._ok)
        t1 = self.core.timers.t1
        self._retransmit_interval = t1
        self._retransmit_deadline = self.clock.seconds() + 64 * t1
        if self._reliable:
            self._retransmit = self.clock.callLater(64 * t1, self._ack_timeout)
        else:
            self._retransmit = self.clock.callLater(t1, self._retransmit_ok)

    def _retransmit_ok(self) -> None:
        self._retransmit = None
        if self.state is not InviteSessionState.CONNECTING:
            return
        if self.clock.seconds() >= self._retransmit_deadline:
            self._ack_timeout()
            return
        try:
            self.core.respond(self._server_key, self._ok)
        except LocalProtocolError:
            pass  # the transaction is gone (Timer L); keep waiting for the ACK until 64*T1
        self._retransmit_interval = min(self._retransmit_interval * 2, self.core.timers.t2)
        self._retransmit = self.clock.callLater(self._retransmit_interval, self._retransmit_ok)

    def _ack_timeout(self) -> None:
        self._retransmit = None
        if self.state is not InviteSessionState.CONNECTING:
            return
        self.log.info("no ACK for 2xx of {call_id}: ending the call", call_id=self.call_id)
        self.state = InviteSessionState.CONFIRMED
        self.hang_up(reason="ACK timeout")

    def ack_received(self, event) -> None:
        if self._retransmit is not None and self._retransmit.active():
            self._retransmit.cancel()
        self._retransmit = None
        request = event.request
        if self._remote_reinvite is not None:
            self._remote_reinvite = None
            offered, self._offer_in_2xx = self._offer_in_2xx, False
            if request.body and self._is_sdp(request):
                self.remote_sdp = request.body
                if offered:
                    self.observer.confirmed(self)  # the answer to the offer in our 2xx
            return
        if self.state is InviteSessionState.CONNECTING:
            self.state = InviteSessionState.CONFIRMED
            if request.body and self._is_sdp(request):
                self.remote_sdp = request.body
            self.observer.confirmed(self)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """
        Refuse an incoming call that is not answered yet.
        """
        if self.state not in (InviteSessionState.INCOMING, InviteSessionState.EARLY):
            return
        self.final_status = status
        self.core.respond(self._server_key, self._uas_response(status, reason))
        self.dialog.terminate()
        self._end()

    def cancel_received(self, event) -> None:
        """
        The caller gave up before we answered: 487 to the INVITE (RFC 3261 9.2).
        """
        if self.state not in (InviteSessionState.INCOMING, InviteSessionState.EARLY):
            return
        self.final_status = 487
        self.core.respond(self._server_key, self._uas_response(487))
        self.dialog.terminate()
        self._end()
        self.observer.terminated(self, "cancelled", by_remote=True)

    # === in the dialog ========================================================================

    def hang_up(self, reason: str = "Normal call clearing") -> None:
        """
        End the call however far it got: CANCEL, reject, or BYE.
        """
        if self._ended:
            return
        if self.state in (InviteSessionState.CALLING, InviteSessionState.EARLY,
                          InviteSessionState.INCOMING):
            if self.dialog is None or self.dialog.is_uac:
                self.cancel()
            else:
                self.reject(603, "Decline")
            return
        if self.state in (InviteSessionState.CONFIRMED, InviteSessionState.CONNECTING):
            if self._retransmit is not None and self._retransmit.active():
                self._retransmit.cancel()
            self._retransmit = None
            bye = self.dialog.create_request("BYE", via=self._new_via(),
                                             headers=(("Reason", f'SIP;cause=200;text="{reason}"'),))
            self.core.send_request(bye, self._destination_for(bye), _PendingRequest(self, bye))
            self._end()
            self.observer.terminated(self, reason, by_remote=False)

    def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                headers: tuple[tuple[str, str], ...] = ()) -> Deferred:
        """
        Send an in-dialog request; fires with the 2xx response or fails with SIPRequestFailed.
        """
        if self.dialog is None or self.state not in (InviteSessionState.CONFIRMED,
                                                     InviteSessionState.CONNECTING,
                                                     InviteSessionState.EARLY):
            return fail(SIPRequestFailed(481, "No dialog"))
        if method == "INVITE" and (self._pending_invite is not None
                                   or self._remote_reinvite is not None):
            return fail(SIPRequestFailed(491, "Request Pending"))
        if method in ("INVITE", "UPDATE"):
            headers = tuple(headers) + self._timer.request_headers()
        request = self.dialog.create_request(method, body=body, content_type=content_type,
                                             headers=headers, via=self._new_via())
        pending = _PendingRequest(self, request)
        if method == "INVITE":
            self._pending_invite = pending
            self.local_sdp = body or self.local_sdp
        self.core.send_request(request, self._destination_for(request), pending)
        return pending.done

    def reinvite(self, sdp: bytes) -> Deferred:
        """
        A re-INVITE with a new offer (hold, unhold, codec change); fires with the 2xx.
        """
        return self.request("INVITE", body=sdp, content_type="application/sdp")

    def _in_dialog_response(self, pending: _PendingRequest, response: Response) -> None:
        request = pending.request
        status = response.status_code
        if status in (401, 407) and not pending.authenticated and self.credentials:
            challenge = select_challenge(response.headers.get_all(
                "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"))
            if challenge is not None:
                user, password = self.credentials
                retry = self.dialog.create_request(
                    request.method, body=request.body, content_type=request.content_type,
                    headers=((("Authorization" if status == 401 else "Proxy-Authorization"),
                              build_authorization(challenge, request.method, str(request.uri),
                                                  user, password, cnonce(self.core.random))),),
                    via=self._new_via())
                again = _PendingRequest(self, retry)
                again.done = pending.done
                again.authenticated = True
                if pending is self._pending_invite:
                    self._pending_invite = again
                self.core.send_request(retry, self._destination_for(retry), again)
                return
        if request.method == "INVITE":
            self._pending_invite = None
            if 200 <= status < 300:
                self._ack_reinvite(request, response)
                if response.body and self._is_sdp(response):
                    self.remote_sdp = response.body
        if request.method in ("INVITE", "UPDATE") and 200 <= status < 300:
            self._timer.confirmed(response)
        if self.dialog is not None and self.dialog.is_uac:
            # Dialog.update_from_response follows responses a UAC receives; a UAS dialog's own
            # requests only need the 481/408 rule below.
            self.dialog.update_from_response(response)
        if 200 <= status < 300:
            pending.done.callback(response)
            return
        pending.done.errback(SIPRequestFailed(status, response.reason, response))
        if status in (408, 481) and request.method != "BYE" and not self._ended:
            self._end()
            self.observer.terminated(self, f"{status} {response.reason}", by_remote=True)

    def _in_dialog_failed(self, pending: _PendingRequest, reason: str) -> None:
        if pending is self._pending_invite:
            self._pending_invite = None
        pending.done.errback(SIPRequestFailed(408, "Request Timeout"))
        if pending.request.method != "BYE" and not self._ended:
            self.hang_up(reason="Request timeout")

    def _ack_reinvite(self, request: Request, response: Response) -> None:
        self._send_ack(self.dialog, request.cseq.number, b"")

    def request_received(self, event) -> None:
        """
        An in-dialog request from the peer (RFC 3261 12.2.2).
        """
        request = event.request
        try:
            self.dialog.receive_request(request)
        except RemoteProtocolError as error:
            self.core.respond(event.transaction_key, request.create_response(
                error.status_hint, str(error)[:80]))
            return
        handler = self._IN_DIALOG.get(request.method)
        if handler is None:
            response = request.create_response(405)
            response.headers.add("Allow", ALLOW)
            self.core.respond(event.transaction_key, response)
            return
        handler(self, event)

    def _on_bye(self, event) -> None:
        self.core.respond(event.transaction_key, event.request.create_response(200))
        if self._retransmit is not None and self._retransmit.active():
            self._retransmit.cancel()
        self._retransmit = None
        if not self._ended:
            self._end()
            self.observer.terminated(self, "Normal call clearing", by_remote=True)

    def _on_invite(self, event) -> None:
        request = event.request
        if self._pending_invite is not None or self._remote_reinvite is not None:
            response = request.create_response(491)
            self.core.respond(event.transaction_key, response)
            return
        if self._refuse_too_small(event):
            return
        offer = request.body if request.body and self._is_sdp(request) else None
        taken, answer = self._offer_to_observer(event, offer)
        if not taken:
            return
        response = request.create_response(200)
        response.headers.add("Contact", str(self.dialog.local_contact))
        response.headers.add("Allow", ALLOW)
        body = answer if answer is not None else (self.local_sdp or b"")
        if body:
            self.local_sdp = body
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self._timer.answer(request, response, self._peer_timer)
        self._remote_reinvite = event.transaction_key
        self._offer_in_2xx = offer is None and bool(body)
        self.core.expect_ack(self.dialog.call_id, self.dialog.local_tag, self)
        self.core.respond(event.transaction_key, response)

    def _offer_to_observer(self, event, offer: bytes | None) -> tuple[bool, bytes | None]:
        """
        Hand a re-INVITE's or UPDATE's offer to the observer: (True, its answer), or (False,
        None) when it refused the offer (the request is then answered with its status).
        """
        try:
            answer = self.observer.offer_received(self, offer)
        except RemoteProtocolError as error:
            self.core.respond(event.transaction_key, event.request.create_response(
                error.status_hint, str(error)[:80]))
            return False, None
        if offer is not None:
            self.remote_sdp = offer
        return True, answer

    def _on_info(self, event) -> None:
        status = self.observer.info_received(self, event.request)
        self.core.respond(event.transaction_key, event.request.create_response(status or 200))

    def _on_refer(self, event) -> None:
        request = event.request
        refer_to = request.headers.get("Refer-To")
        if not refer_to:
            self.core.respond(event.transaction_key,
                              request.create_response(400, "Missing Refer-To"))
            return
        decision = self.observer.refer_received(self, request, refer_to)

        def respond(status) -> None:
            try:
                self.core.respond(event.transaction_key, request.create_response(status or 202))
            except LocalProtocolError as error:
                self.log.info("REFER answer {status} not sent: {error}", status=status,
                              error=str(error))

        def failed(failure) -> None:
            self.log.failure("REFER decision failed", failure)
            respond(500)

        if isinstance(decision, Deferred):
            # The call asks someone first (an application backend): the REFER's server
            # transaction absorbs retransmissions until the answer goes.
            decision.addCallbacks(respond, failed)
            return
        respond(decision)

    def _on_notify(self, event) -> None:
        self.observer.notify_received(self, event.request)
        self.core.respond(event.transaction_key, event.request.create_response(200))

    def _on_message(self, event) -> None:
        self.observer.message_received(self, event.request)
        self.core.respond(event.transaction_key, event.request.create_response(200))

    def _on_options(self, event) -> None:
        response = event.request.create_response(200)
        response.headers.add("Allow", ALLOW)
        self.core.respond(event.transaction_key, response)

    def _on_prack(self, event) -> None:
        request = event.request
        sender = self._reliable_1xx
        if sender is None or not sender.prack_received(request.headers.get("RAck")):
            self.core.respond(event.transaction_key,
                              request.create_response(481, "No Matching Provisional"))
            return
        self.core.respond(event.transaction_key, request.create_response(200))

    def _on_update(self, event) -> None:
        """
        UPDATE (RFC 3311): a session refresh, or an offer answered in its 200 (no ACK follows).
        """
        request = event.request
        offer = request.body if request.body and self._is_sdp(request) else None
        if request.body and offer is None:
            self.core.respond(event.transaction_key, request.create_response(415))
            return
        if offer is not None and (self._pending_invite is not None
                                  or self._remote_reinvite is not None):
            self.core.respond(event.transaction_key, request.create_response(491))
            return
        if self._refuse_too_small(event):
            return
        response = request.create_response(200)
        if offer is not None:
            taken, answer = self._offer_to_observer(event, offer)
            if not taken:
                return
            self.local_sdp = answer or self.local_sdp
            response.headers.add("Contact", str(self.dialog.local_contact))
            response.headers.add("Content-Type", "application/sdp")
            response.body = self.local_sdp or b""
        self._timer.answer(request, response, self._peer_timer)
        self.core.respond(event.transaction_key, response)

    _IN_DIALOG: dict[str, Callable[["InviteSession", Any], None]] = {
        "BYE": _on_bye,
        "INVITE": _on_invite,
        "INFO": _on_info,
        "REFER": _on_refer,
        "NOTIFY": _on_notify,
        "MESSAGE": _on_message,
        "OPTIONS": _on_options,
        "UPDATE": _on_update,
        "PRACK": _on_prack,
    }

    # === session timer (RFC 4028) =============================================================

    def _refuse_too_small(self, event) -> bool:
        response = interval_too_small(event.request, self._min_se)
        if response is None:
            return False
        self.core.respond(event.transaction_key, response)
        return True

    def _refresh_session(self) -> None:
        """
        Our turn to refresh: UPDATE without a body when the peer allows it, else a re-INVITE
        with our current SDP (RFC 4028 9).
        """
        if self.state is not InviteSessionState.CONFIRMED:
            return
        if "UPDATE" in self._peer_allow:
            done = self.request("UPDATE")
        else:
            done = self.request("INVITE", body=self.local_sdp or b"",
                                content_type="application/sdp" if self.local_sdp else None)
        done.addErrback(self._refresh_failed)

    def _refresh_failed(self, failure) -> None:
        failure.trap(SIPRequestFailed)
        self.log.info("session refresh of {call_id} failed: {error}", call_id=self.call_id,
                      error=failure.getErrorMessage())
        if not self._ended and self._timer.interval is not None:
            self._timer.start(self._timer.interval, we_refresh=True)

    def _session_expired(self) -> None:
        self.log.info("session timer of {call_id} expired: no refresh", call_id=self.call_id)
        self.hang_up(reason="Session timer expired")

    @staticmethod
    def _allowed(message) -> set[str]:
        return {method.strip().upper() for method in message.headers.get_all("Allow")}

    # === helpers ==============================================================================

    def _new_via(self) -> Via:
        return via_value(self.core.transport, self.protocol, self.core.transport.generate_branch(),
                         self.peer_host)

    def _destination_for(self, request: Request):
        """
        Next hop of an in-dialog request: the first Route if any, else the Request-URI.
        """
        routes = request.routes
        return next_hop(routes[0].uri if routes else request.uri)

    def _send_ack(self, dialog: Dialog, cseq: int, body: bytes) -> None:
        ack = dialog.create_request("ACK", cseq=cseq, via=self._new_via(),
                                    body=body, content_type="application/sdp" if body else None)
        self.core.transport.send_message(ack, self._destination_for(ack))

    @staticmethod
    def _is_sdp(message) -> bool:
        return message.media_type == "application/sdp"

    def _end(self) -> None:
        self._ended = True
        self._stop_provisionals()
        self._timer.cancel()
        self.state = InviteSessionState.DISCONNECTED
        if self._retransmit is not None and self._retransmit.active():
            self._retransmit.cancel()
        self._retransmit = None
        if self.dialog is not None:
            self.core.unregister_dialog(self.dialog.call_id, self.dialog.local_tag,
                                        self.dialog.remote_tag)
