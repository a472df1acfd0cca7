# -*- test-case-name: tests.gateway.test_call_trunk -*-
"""
What an incoming INVITE says about its caller, as the call object shows it.

A trunk or PBX names the real caller in P-Asserted-Identity (RFC 3325) or the older
Remote-Party-ID (draft-ietf-sip-privacy-04), while its From often holds a trunk number or
"anonymous"; the browser's notifyIncomingCall must show the asserted one.  But anyone can write
those headers: RFC 3325 believes them only inside a trust domain, so they count only when the
INVITE came from a trusted peer (C{sip_trusted_peers}), and from anyone else are ignored.  The
INVITE's C{X-} headers reach the browser as the call's C{inviteParameters}, the mirror of
C{sipHeaders}.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, NamedTuple

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress


class CallerIdentity(NamedTuple):
    """
    The C{caller} and C{visibleName} fields of an incoming call.
    """

    caller: str
    visible_name: str | None


def _parsed(values: list[str]) -> list[NameAddress]:
    parsed = []
    for value in values:
        try:
            parsed.append(NameAddress.parse(value))
        except RemoteProtocolError:
            continue  # a malformed identity is ignored, as if absent
    return parsed


def _asserted(request) -> NameAddress | None:
    """
    The first usable P-Asserted-Identity, a sip:/sips: one before a tel: one (RFC 3325 9.1
    allows one of each), else the calling party's Remote-Party-ID.
    """
    asserted = _parsed(request.headers.get_all("P-Asserted-Identity"))
    if asserted:
        return sorted(asserted, key=lambda a: str(a.uri).startswith("tel:"))[0]
    for party in _parsed(request.headers.get_all("Remote-Party-ID")):
        if party.param("party", "calling").lower() == "calling":
            return party
    return None


def _user(address: NameAddress) -> str:
    return getattr(address.uri, "user", None) or str(address.uri)


class TrustedPeers:
    """
    The RFC 3325 trust domain: the addresses whose asserted identities are believed.

    Only the transport source counts (a UDP source or a TCP peer), never a header; a forged
    UDP source gets no answer back, and loopback sources cannot arrive from the network.
    """

    #: Answers remembered (asked per forwarded request; hosts come from the network).
    MAX_REMEMBERED = 4096

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(network, strict=False)
                              for network in networks)
        self._answers: dict[object, bool] = {}

    def __contains__(self, host: object) -> bool:
        answer = self._answers.get(host)
        if answer is None:
            if len(self._answers) >= self.MAX_REMEMBERED:
                self._answers.clear()
            answer = self._answers[host] = self._trusted(host)
        return answer

    def _trusted(self, host: object) -> bool:
        try:
            address = ipaddress.ip_address(str(host).strip("[]"))
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        return any(address in network for network in self.networks)


def caller_identity(request, *, trusted: bool) -> CallerIdentity:
    """
    The caller of an incoming INVITE: the asserted identity when there is one and the INVITE
    came from a trusted peer (C{trusted}), else From.  The display name falls back from the
    asserted identity's to From's to the user part.
    """
    sender = request.from_
    asserted = _asserted(request) if trusted else None
    chosen = asserted or sender
    name = chosen.display_name or (sender.display_name if asserted is None else None)
    return CallerIdentity(_user(chosen), name or getattr(chosen.uri, "user", None))


def invite_parameters(request) -> dict[str, str] | None:
    """
    The INVITE's C{X-} headers by name (the last value of a repeated one), or None without any.
    """
    found = {name: value for name, value in request.headers.items()
             if name.lower().startswith("x-")}
    return found or None
