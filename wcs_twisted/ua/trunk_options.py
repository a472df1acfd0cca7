# -*- test-case-name: tests.ua.test_trunk_options -*-
"""
What our INVITE sessions ask of a SIP trunk and accept from it, as the operator configured it:
the session timer interval and Min-SE (RFC 4028) and the 100rel mode (RFC 3262).

Carriers differ: some refuse an INVITE whose Session-Expires is under their Min-SE (422 costs a
round trip per call), some insist on PRACK, some break on it.  The UA core carries one
L{TrunkOptions} (C{core.trunk_options}, set by tap.py); sessions read it when they start.
"""

from __future__ import annotations

from dataclasses import dataclass

from wcs_twisted.sip.message import option_tags
from wcs_twisted.ua.reliable_provisional import OPTION as RELIABLE_PROVISIONAL
from wcs_twisted.ua.session_timer import DEFAULT_INTERVAL, MIN_SE

#: sip_100rel values: offer it (default), insist on it, or never offer it.
RELIABLE_MODES = ("supported", "required", "off")


@dataclass(frozen=True)
class TrunkOptions:
    """
    @ivar session_expires: the interval our INVITEs ask for (Session-Expires).
    @ivar min_se: the smallest interval we accept (a request under it gets 422) and the Min-SE
        our INVITEs carry.
    @ivar reliable_provisional: "supported": our INVITEs say Supported: 100rel and our 1xx are
        reliable when the caller requires it; "required": our INVITEs say Require: 100rel and
        our 1xx are reliable whenever the caller supports it; "off": we do not offer 100rel
        (a caller that requires it is still served reliably, RFC 3262 3).
    """

    session_expires: int = DEFAULT_INTERVAL
    min_se: int = MIN_SE
    reliable_provisional: str = "supported"

    def __post_init__(self) -> None:
        if self.reliable_provisional not in RELIABLE_MODES:
            raise ValueError(f"100rel mode {self.reliable_provisional!r} is not one of "
                             f"{', '.join(RELIABLE_MODES)}")

    @property
    def supported(self) -> str:
        """
        Our Supported header value for an INVITE.
        """
        tags = ["replaces", "norefersub", RELIABLE_PROVISIONAL, "timer"]
        if self.reliable_provisional == "off":
            tags.remove(RELIABLE_PROVISIONAL)
        return ", ".join(tags)

    def invite_headers(self, session_expires: int, min_se: int) -> list[tuple[str, str]]:
        """
        Supported, Require (100rel required) and the session timer headers of our INVITE.
        """
        headers = [("Supported", self.supported)]
        if self.reliable_provisional == "required":
            headers.append(("Require", RELIABLE_PROVISIONAL))
        headers += [("Session-Expires", str(session_expires)), ("Min-SE", str(min_se))]
        return headers

    def reliable_for(self, request) -> bool:
        """
        Whether our 1xx to the INVITE C{request} are sent reliably.
        """
        if RELIABLE_PROVISIONAL in option_tags(request, "Require"):
            return True
        return (self.reliable_provisional == "required"
                and RELIABLE_PROVISIONAL in option_tags(request, "Supported"))


DEFAULT_TRUNK_OPTIONS = TrunkOptions()


def trunk_options(core) -> TrunkOptions:
    """
    The options the UA core C{core} carries (the defaults when none were set).
    """
    return getattr(core, "trunk_options", DEFAULT_TRUNK_OPTIONS)
