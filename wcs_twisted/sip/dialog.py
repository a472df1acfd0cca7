# -*- test-case-name: tests.sip.test_dialog -*-
"""
Dialog state (RFC 3261 section 12): who we are talking to, how to reach
them, and in which order requests flow.

A L{Dialog} is created by a UAC from the request it sent and a 1xx (with a To
tag) or 2xx it received (L{Dialog.create_uac}, RFC 3261 12.1.2), or by a UAS
from the request it received (L{Dialog.create_uas}, 12.1.1).  It then builds
in-dialog requests (L{Dialog.create_request}, 12.2.1.1, including strict
routing toward RFC 2543 proxies), checks the ordering of requests the peer
sends (L{Dialog.receive_request}, 12.2.2) and follows responses
(L{Dialog.update_from_response}: early to confirmed, target refresh, 481/408
termination).

The class is sans-I/O: it never sends anything.  Randomness (the initial
local CSeq of a UAS, branch parameters) comes from a source passed in, as
everywhere in this package.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.headers import NameAddress, Via
from wcs_twisted.sip.message import RandomSource, Request, Response, initial_cseq, new_branch
from wcs_twisted.sip.uri import URI, SIPURI

__all__ = ["Dialog", "DialogState", "DialogID", "TARGET_REFRESH_METHODS"]

#: Methods whose requests and 2xx responses replace the remote target
#: (RFC 3261 12.2, RFC 3311 UPDATE, RFC 3515 REFER, RFC 6665 SUBSCRIBE/NOTIFY).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    """
    RFC 3261 12: a dialog created by a provisional response is early; a 2xx
    confirms it; BYE, a non-2xx final answer to the creating request, or a
    481/408 to an in-dialog request ends it.
    """

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class DialogID:
    """
    The dialog identifier (RFC 3261 12): Call-ID, local tag, remote tag, seen
    from our side.
    """

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def for_uas(cls, request: Request) -> "DialogID":
        """
        The identifier of the dialog an incoming request belongs to: our tag
        is in To, the peer's in From.
        """
        return cls(request.call_id, request.to.tag or "", request.from_.tag or "")

    @classmethod
    def for_uas_response(cls, response: Response) -> "DialogID":
        """
        The identifier of the dialog a response we send as UAS belongs to:
        our tag is in To, the peer's in From.
        """
        return cls(response.call_id, response.to.tag or "", response.from_.tag or "")

    @classmethod
    def for_uac(cls, response: Response) -> "DialogID":
        """
        The identifier of the dialog an incoming response belongs to: our tag
        is in From, the peer's in To.
        """
        return cls(response.call_id, response.from_.tag or "", response.to.tag or "")


def _without_tag(address: NameAddress) -> NameAddress:
    return address.without_params("tag") if address.has_param("tag") else address


def _contact_uri(message, what: str) -> URI:
    if message.headers.get("Contact") is None:
        raise RemoteProtocolError(f"{what} has no Contact for the dialog's remote target", 400)
    contacts = message.contacts
    if len(contacts) != 1:
        raise RemoteProtocolError(f"{what} must carry exactly one Contact", 400)
    return contacts[0].uri


class Dialog:
    """
    The state of one dialog, as RFC 3261 12 defines it.

    @ivar state: a L{DialogState}.
    @ivar call_id: the Call-ID.
    @ivar local_tag: our tag; @ivar remote_tag: the peer's ("" for an RFC
        2543 peer that sent none).
    @ivar local_uri: our address (From of our requests), without tag.
    @ivar remote_uri: the peer's address (To of our requests), without tag.
    @ivar local_seq: the CSeq number of our last request, L{None} until we
        send one.
    @ivar remote_seq: the CSeq number of the peer's last request, L{None}
        until it sends one.
    @ivar remote_target: where requests go (the peer's Contact).
    @ivar route_set: the Route values our requests carry, in order.
    @ivar secure: whether the dialog was established over sips/TLS.
    @ivar local_contact: the Contact we put in target refresh requests.
    @ivar is_uac: True if we created the dialog as UAC.
    """

    def __init__(
        self,
        *,
        state: DialogState,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddress,
        remote_uri: NameAddress,
        remote_target: URI,
        route_set: Iterable[NameAddress] = (),
        local_seq: Optional[int] = None,
        remote_seq: Optional[int] = None,
        secure: bool = False,
        local_contact: Optional[NameAddress] = None,
        is_uac: bool = True,
        initial_method: str = "INVITE",
        rng: Optional[RandomSource] = None,
    ) -> None:
        self.state = state
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set: Tuple[NameAddress, ...] = tuple(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.local_contact = local_contact
        self.is_uac = is_uac
        self.initial_method = initial_method
        self._rng = rng

    def __repr__(self) -> str:
        return (
            f"<Dialog {self.state.name} call_id={self.call_id!r} "
            f"local_tag={self.local_tag!r} remote_tag={self.remote_tag!r}>"
        )

    @property
    def id(self) -> DialogID:
        return DialogID(self.call_id, self.local_tag, self.remote_tag)

    # -- creation ----------------------------------------------------------------

    @classmethod
    def create_uac(
        cls,
        request: Request,
        response: Response,
        *,
        local_contact: Optional[NameAddress] = None,
        secure: Optional[bool] = None,
        rng: Optional[RandomSource] = None,
    ) -> "Dialog":
        """
        Create the dialog a UAC enters when C{response} (a 101-199 with a To
        tag, or a 2xx) answers C{request} (RFC 3261 12.1.2).

        The route set is the response's Record-Route in reverse order, the
        remote target its Contact, the local sequence number the request's
        CSeq.  C{secure} defaults to whether the Request-URI is sips.

        @raise LocalProtocolError: C{response} cannot create a dialog.
        @raise RemoteProtocolError: the response lacks its Contact.
        """
        status = response.status_code
        if not 101 <= status <= 299:
            raise LocalProtocolError(f"a {status} response does not create a dialog")
        to = response.to
        if status < 200 and not to.tag:
            raise LocalProtocolError("a provisional response without a To tag creates no dialog")
        if response.call_id != request.call_id or response.cseq != request.cseq:
            raise LocalProtocolError("the response does not answer this request")
        from_ = request.from_
        if not from_.tag:
            raise LocalProtocolError("our request has no From tag")
        if local_contact is None and request.headers.get("Contact") is not None:
            local_contact = request.contacts[0]
        if secure is None:
            secure = isinstance(request.uri, SIPURI) and request.uri.scheme == "sips"
        return cls(
            state=DialogState.CONFIRMED if status >= 200 else DialogState.EARLY,
            call_id=request.call_id,
            local_tag=from_.tag,
            remote_tag=to.tag or "",
            local_uri=_without_tag(from_),
            remote_uri=_without_tag(to),
            remote_target=_contact_uri(response, f"{status} response"),
            route_set=tuple(reversed(response.record_routes)),
            local_seq=request.cseq.number,
            remote_seq=None,
            secure=secure,
            local_contact=local_contact,
            is_uac=True,
            initial_method=request.method,
            rng=rng,
        )

    @classmethod
    def create_uas(
        cls,
        request: Request,
        local_tag: str,
        local_contact: NameAddress,
        *,
        secure: Optional[bool] = None,
        rng: Optional[RandomSource] = None,
    ) -> "Dialog":
        """
        Create the dialog a UAS enters when it answers C{request} with a 1xx
        or 2xx carrying C{local_tag} in To (RFC 3261 12.1.1).  The dialog
        starts early; L{update_from_response} with the 2xx we send confirms
        it.

        The route set is the request's Record-Route in order, the remote
        target its Contact, the remote sequence number its CSeq; the local
        sequence number stays empty until we send a request.
        """
        if not local_tag:
            raise LocalProtocolError("a UAS dialog needs a local tag")
        if request.to.tag:
            raise LocalProtocolError("the request is already inside a dialog (To has a tag)")
        if secure is None:
            secure = isinstance(request.uri, SIPURI) and request.uri.scheme == "sips"
        from_ = request.from_
        return cls(
            state=DialogState.EARLY,
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=from_.tag or "",
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(from_),
            remote_target=_contact_uri(request, f"{request.method} request"),
            route_set=tuple(request.record_routes),
            local_seq=None,
            remote_seq=request.cseq.number,
            secure=secure,
            local_contact=local_contact,
            is_uac=False,
            initial_method=request.method,
            rng=rng,
        )

    # -- requests we send --------------------------------------------------------

    def _rng_or(self, rng: Optional[RandomSource]) -> RandomSource:
        source = rng if rng is not None else self._rng
        if source is None:
            raise LocalProtocolError("this operation needs a random source (rng=)")
        return source

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: Optional[str] = None,
        headers: Iterable[Tuple[str, str]] = (),
        via: Optional[Via] = None,
        cseq: Optional[int] = None,
        max_forwards: int = 70,
        rng: Optional[RandomSource] = None,
    ) -> Request:
        """
        Build a request inside this dialog (RFC 3261 12.2.1.1).

        To, From, Call-ID come from the dialog; CSeq is one more than the
        last we sent (ACK reuses the INVITE's number, given as C{cseq} or
        defaulting to the last); the Request-URI and Route follow the route
        set: with no route set or a loose-routing first hop (C{lr}), the
        Request-URI is the remote target and Route the route set; with a
        strict router first, the Request-URI is that router's URI and the
        remote target becomes the last Route.  Target refresh requests carry
        C{local_contact}.  C{via}, if given, becomes the only Via, with a new
        branch when it has none.

        @raise LocalProtocolError: the dialog is terminated, CANCEL is
            requested (it is built from the INVITE, RFC 3261 9.1), a UAS asks
            for BYE on an early dialog (RFC 3261 15), or a needed random
            source is missing.
        """
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("the dialog is terminated")
        if method == "CANCEL":
            raise LocalProtocolError("CANCEL is built from the request it cancels, not the dialog")
        if method == "BYE" and not self.is_uac and self.state is DialogState.EARLY:
            raise LocalProtocolError("a UAS must not send BYE on an early dialog (RFC 3261 15)")
        if method == "ACK":
            number = cseq if cseq is not None else self.local_seq
            if number is None:
                raise LocalProtocolError("ACK needs the CSeq number of the INVITE")
        else:
            if cseq is not None:
                if self.local_seq is not None and cseq <= self.local_seq:
                    raise LocalProtocolError(f"CSeq {cseq} does not increase past {self.local_seq}")
                number = cseq
            elif self.local_seq is None:
                number = initial_cseq(self._rng_or(rng))
            else:
                number = self.local_seq + 1
            self.local_seq = number

        request_uri, routes = self._request_uri_and_routes()
        entries = Headers()
        if via is not None:
            if via.branch is None:
                via = via.with_params(branch=new_branch(self._rng_or(rng)))
            entries.add("Via", str(via))
        entries.add("Max-Forwards", str(max_forwards))
        for route in routes:
            entries.add("Route", str(route))
        entries.add("From", str(self.local_uri.with_tag(self.local_tag)))
        to = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        entries.add("To", str(to))
        entries.add("Call-ID", self.call_id)
        entries.add("CSeq", f"{number} {method}")
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            entries.add("Contact", str(self.local_contact))
        for name, value in headers:
            entries.add(name, value)
        if content_type is not None:
            entries.add("Content-Type", content_type)
        elif body:
            raise LocalProtocolError("a request with a body needs a content_type")
        entries.add("Content-Length", str(len(body)))
        request = Request(method, request_uri, entries, body)
        if method == "BYE":
            # RFC 3261 15.1.1: the session ends as soon as BYE is sent.
            self.state = DialogState.TERMINATED
        return request

    def _request_uri_and_routes(self) -> Tuple[URI, Tuple[NameAddress, ...]]:
        route_set = self.route_set
        if not route_set:
            return self.remote_target, ()
        first = route_set[0].uri
        if first.has_param("lr"):
            return self.remote_target, route_set
        # RFC 3261 12.2.1.1, strict routing: the first route becomes the
        # Request-URI, stripped of what a Request-URI may not carry (19.1.1:
        # the method parameter and headers), and the remote target is
        # appended as the last Route.
        if isinstance(first, SIPURI):
            first = first.without_params("method").without_headers()
        return first, route_set[1:] + (NameAddress(None, self.remote_target),)

    # -- requests we receive ----------------------------------------------------

    def receive_request(self, request: Request) -> None:
        """
        Account for a request the peer sent inside this dialog (RFC 3261
        12.2.2): check it belongs here, check its CSeq is not lower than the
        last one (ACK and CANCEL reuse the INVITE's number and are not
        checked), remember it, and take the new remote target from a target
        refresh request's Contact.  BYE terminates the dialog.

        @raise RemoteProtocolError: 481 when the request is not part of this
            dialog or the dialog is terminated; 500 when its CSeq is lower
            than the remote sequence number.
        """
        if DialogID.for_uas(request) != self.id:
            raise RemoteProtocolError("the request does not belong to this dialog", 481)
        if self.state is DialogState.TERMINATED:
            raise RemoteProtocolError("the dialog is terminated", 481)
        method = request.method
        number = request.cseq.number
        if method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and number < self.remote_seq:
                raise RemoteProtocolError(
                    f"CSeq {number} is lower than {self.remote_seq} (RFC 3261 12.2.2)", 500
                )
            self.remote_seq = number
        if method in TARGET_REFRESH_METHODS and request.headers.get("Contact") is not None:
            self.remote_target = _contact_uri(request, f"{method} request")
        if method == "BYE":
            self.state = DialogState.TERMINATED

    # -- responses ----------------------------------------------------------------

    def update_from_response(self, response: Response) -> None:
        """
        Follow a response within this dialog: one we received as UAC, or one
        we sent as UAS.

          - A 2xx to the request that created the dialog confirms an early
            dialog; a UAC then recomputes the route set from the 2xx's
            Record-Route (RFC 3261 13.2.2.4) and takes its Contact as remote
            target.
          - A non-2xx final response to that request terminates an early
            dialog (12.3).
          - A UAC takes the remote target from the Contact of a 2xx to a
            target refresh request, or of a provisional in an early dialog
            (12.2.1.2), and terminates the dialog on a 481 or 408 (12.2.1.2).

        Responses after termination are ignored.

        @raise LocalProtocolError: the response belongs to another dialog.
        """
        if self.state is DialogState.TERMINATED:
            return
        if self.is_uac:
            found = DialogID.for_uac(response)
            matches = (
                found.call_id == self.call_id
                and found.local_tag == self.local_tag
                and (found.remote_tag == self.remote_tag or response.status_code == 100)
            )
        else:
            matches = DialogID.for_uas_response(response) == self.id
        if not matches:
            raise LocalProtocolError("the response belongs to another dialog")
        status = response.status_code
        method = response.cseq.method
        creating = method == self.initial_method and self.state is DialogState.EARLY
        if 200 <= status < 300:
            if creating:
                self.state = DialogState.CONFIRMED
                if self.is_uac:
                    self.route_set = tuple(reversed(response.record_routes))
            if self.is_uac and method in TARGET_REFRESH_METHODS:
                if response.headers.get("Contact") is not None:
                    self.remote_target = _contact_uri(response, f"{status} response")
        elif status >= 300:
            if creating:
                self.state = DialogState.TERMINATED
            elif self.is_uac and status in (481, 408):
                self.state = DialogState.TERMINATED
        elif status > 100 and self.is_uac and self.state is DialogState.EARLY:
            if response.headers.get("Contact") is not None:
                self.remote_target = _contact_uri(response, f"{status} response")

    def terminate(self) -> None:
        """
        End the dialog (for example when its usage gives up on it).
        """
        self.state = DialogState.TERMINATED
