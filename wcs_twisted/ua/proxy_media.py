# -*- test-case-name: tests.ua.test_proxy_media -*-
"""
Calls through the built-in proxy between phones of different address families.

A proxy connects signalling only: an IPv6-only phone's offer says c=IN IP6, which an IPv4-only
phone cannot send to, and the other way round: the media needs a relay on both families.  We are
the one node on both families, so the proxy anchors such a call's media in a media anchor (the
media package's L{MediaAnchor <wcs_twisted.media.anchor.MediaAnchor>}, handed in by the
composition root when C{ip6} is configured): every SDP body that crosses between the two
families is replaced by the anchor's, whose legs each speak the family of their peer.  Without
an anchor such a branch is not forwarded, and when no branch is left the caller gets 488 with
Warning 301 (RFC 3261 20.43 "Incompatible network address formats") and a log line says why.

The anchor follows the dialog by Call-ID: re-INVITEs (hold) and delayed offers (SDP in the 2xx,
answer in the ACK) are rewritten too; a BYE, a failed INVITE, or media inactivity ends it.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

from wcs_twisted.addresses import family, sdp_address
from wcs_twisted.errors import MediaError
from wcs_twisted.sip.address import SIPAddress

__all__ = ["ProxyMedia", "INCOMPATIBLE_ADDRESSES"]

#: Warning (RFC 3261 20.43) of a 488 for a call no media anchor can connect.
INCOMPATIBLE_ADDRESSES = "Incompatible network address formats"

class ProxyMedia:
    """
    The media anchors of the proxy's cross-family dialogs.

    @ivar anchor: opens anchored media (C{open(caller_ip, callee_ip)}); None: refuse instead.
    """

    log = Logger()

    def __init__(self, anchor: Any = None) -> None:
        self.anchor = anchor
        #: Anchors opened for an initial INVITE, until its branch is sent: (Call-ID, address).
        self._pending: dict[tuple[str, SIPAddress], Any] = {}
        #: Anchors by the Via branch of the request they rewrote, until its final response.
        self._branches: dict[str, tuple[Any, int]] = {}
        #: Anchors of dialogs, by Call-ID, with the From tag of the side that called (side 0).
        self._dialogs: dict[str, tuple[Any, str]] = {}
        self.refused = 0

    def __len__(self) -> int:
        return len(self._dialogs) + len(self._pending) + len(
            {id(anchor) for anchor, _ in self._branches.values()})

    # --- hooks of the proxy -------------------------------------------------------------------

    def prepare(self, request, upstream: str | None, targets: list,
                own: Callable[[SIPAddress], bool]) -> tuple[list, str | None]:
        """
        Before an initial INVITE is forked: open an anchor for each target of the other family
        than the caller's media.  Returns the targets to forward to and, when none is left, why.
        """
        if request.method != "INVITE" or request.to.tag is not None:
            return targets, None
        caller = sdp_address(request.body) or upstream
        if not caller:
            return targets, None
        kept, why = [], None
        for target in targets:
            destination = target[1]
            if own(destination) or family(destination.host) == family(caller):
                kept.append(target)
                continue
            why = self._open(request, caller, destination)
            if why is None:
                kept.append(target)
        return kept, (why if not kept else None)

    def _open(self, request, caller: str, destination: SIPAddress) -> str | None:
        if self.anchor is None:
            why = (f"caller's media is IPv{family(caller)}, {destination.host} is "
                   f"IPv{family(destination.host)} and no media anchor is configured (ip6)")
        else:
            try:
                media = self.anchor.open(caller, destination.host)
            except MediaError as error:
                why = f"no media anchor: {error.info}"
            else:
                try:
                    offer = media.offer(0, request.body) if request.body else b""
                except MediaError as error:
                    media.close()
                    why = f"offer not anchored: {error.info}"
                else:
                    self._pending[(request.call_id, destination)] = (media, offer)
                    return None
        self.refused += 1
        self.log.info("INVITE {call_id} not forwarded to {destination}: {why}",
                      call_id=request.call_id, destination=str(destination), why=why)
        return why

    def forwarded(self, request, destination: SIPAddress, branch: str) -> bytes:
        """
        The body of C{request}'s copy to C{destination} (sent with Via branch C{branch}).
        """
        if not self._pending and not self._dialogs:
            return request.body  # nothing anchored: the common case costs no lookup
        pending = self._pending.pop((request.call_id, destination), None)
        if pending is not None:
            media, offer = pending
            self._branches[branch] = (media, 0)
            self._watch(media, request.call_id)
            return offer if request.body else request.body
        dialog = self._dialogs.get(request.call_id) if request.to.tag else None
        if dialog is None:
            return request.body
        media, caller_tag = dialog
        if request.method == "BYE":
            self._end(request.call_id)
            return request.body
        side = 0 if request.from_.tag == caller_tag else 1
        if request.method != "ACK":
            self._branches[branch] = (media, side)
        return self._rewrite(media, side, request.body, request.call_id)

    def response(self, branch: str, request, response) -> None:
        """
        A response on a branch: its SDP rewritten for the other family; a final one ends the
        branch's hold on its anchor (a 2xx to the initial INVITE hands it to the dialog).
        """
        if response.status_code == 100 or not (self._branches or self._dialogs):
            return
        entry = self._branches.get(branch)
        if entry is None:
            dialog = self._dialogs.get(request.call_id)
            if dialog is None or response.status_code >= 300:
                return
            entry = (dialog[0], 0)
        media, side = entry
        if response.body:
            response.body = self._rewrite(media, 1 - side, response.body, request.call_id)
        if response.status_code < 200:
            return
        self._branches.pop(branch, None)
        if request.to.tag is None:
            if response.status_code < 300:
                self._dialogs.setdefault(request.call_id, (media, request.from_.tag))
            elif self._dialogs.get(request.call_id, (None,))[0] is not media:
                media.close()

    def retired(self, branches: list) -> None:
        """
        A proxied request is over: its branches (each with its C{sent_branch}) that never had
        a final response let go of their anchors.
        """
        if not self._branches:
            return
        for branch in branches:
            entry = self._branches.pop(branch.sent_branch, None)
            if entry is not None and not any(entry[0] is media for media, _ in
                                             self._dialogs.values()):
                entry[0].close()

    def stop(self) -> None:
        for media, _ in list(self._dialogs.values()) + list(self._branches.values()):
            media.close()
        for media, _ in self._pending.values():
            media.close()
        self._dialogs.clear()
        self._branches.clear()
        self._pending.clear()

    # --- the anchors ------------------------------------------------------------------------------

    def _rewrite(self, media, side: int, body: bytes, call_id: str) -> bytes:
        """
        C{side}'s SDP (an answer to the pending offer, else a new offer) as the other side
        must see it; unchanged when it cannot be (logged: that side's media will not flow).
        """
        if not body or media.closed:
            return body
        try:
            return media.answer(body) if media.offer_pending else media.offer(side, body)
        except MediaError as error:
            self.log.info("SDP of {call_id} not anchored: {error}", call_id=call_id,
                          error=error.info)
            return body

    def _watch(self, media, call_id: str) -> None:
        def ended(reason: str) -> None:
            self.log.info("anchored media of {call_id} ended: {reason}", call_id=call_id,
                          reason=reason)
            self._end(call_id, media)
        media.on_ended = ended

    def _end(self, call_id: str, media=None) -> None:
        dialog = self._dialogs.pop(call_id, None)
        if dialog is not None:
            media = dialog[0]
        if media is not None:
            media.close()
            for branch, (other, _) in list(self._branches.items()):
                if other is media:
                    del self._branches[branch]
