# -*- test-case-name: tests.media.test_ice_lite -*-
"""
The server side of ICE as an ICE-lite agent (RFC 8445 sections 2.5 and 7.3).

The WCS Web SDK sends no ICE candidates and does not trickle, so the server
cannot run connectivity checks of its own: it must learn the browser's address
from the browser's checks.  A lite agent does exactly that and nothing else - it
offers one host candidate (the media address and port it bound), answers
authenticated Binding requests, and sends media to the address the
controlling browser nominated with USE-CANDIDATE.  The same checks, repeated
every few seconds as consent freshness (RFC 7675), tell the leg the browser is
still there.

Only authenticated STUN moves the selected address, so unlike plain RTP
latching a spoofed datagram cannot redirect a call.  A browser whose address
changes mid-call (its NAT rebinds, it roams) keeps checking consent from the
new address without nominating again: the agent remembers each address that
passed a check as a peer-reflexive candidate (RFC 8445 section 7.3.1.3), and
the transport moves the selection there once authenticated SRTP follows
(L{ICELiteAgent.validated}, L{ICELiteAgent.select}).

Sans-I/O: L{ICELiteAgent.receive} takes the datagram and its source and returns
the response to send plus what changed; time is an argument.  STUN encoding is
aioice's (an aiortc dependency).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Optional

from aioice import stun

__all__ = ["CONSENT_TIMEOUT", "ICELiteAgent", "STUNResult", "candidate_priority",
           "random_ice_string"]

Address = tuple[str, int]

#: RFC 7675: consent expires 30 s after the last successful check; so does what a
#: check from a non-selected address proved.
CONSENT_TIMEOUT = 30.0
#: Peer-reflexive addresses remembered at once: a browser has a few paths, not more.
MAX_VALIDATED = 8

_ICE_CHARS = string.ascii_letters + string.digits + "+/"


def random_ice_string(length: int) -> str:
    """
    A random ice-char string (RFC 8839 section 5.4): at least 4 characters
    for a ufrag, 22 for a password.
    """
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(length))


def candidate_priority(component: int = 1, type_preference: int = 126,
                       local_preference: int = 65535) -> int:
    """
    The candidate priority formula of RFC 8445 section 5.1.2.1.
    """
    return (type_preference << 24) | (local_preference << 8) | (256 - component)


@dataclass(frozen=True)
class STUNResult:
    """
    What one STUN datagram did.

    @ivar response: bytes to send back to the source, or C{None}.
    @ivar selected_changed: the selected address changed with this check.
    @ivar authenticated: it was a valid check from the peer (consent).
    """

    response: Optional[bytes]
    selected_changed: bool = False
    authenticated: bool = False


class ICELiteAgent:
    """
    A lite, always-controlled ICE agent for one component (rtcp-mux and
    BUNDLE are assumed, as WebRTC requires).

    @ivar local_username: our ufrag.
    @ivar local_password: our ICE password.
    @ivar remote_username: the peer's ufrag from its SDP, if known; checks
        must then carry C{"<ours>:<theirs>"}.
    @ivar selected: the nominated remote address, or a provisional one (the
        source of the first valid check) until a nomination arrives.
    @ivar nominated: whether L{selected} was nominated with USE-CANDIDATE.
    @ivar last_check: C{now} of the latest valid check (consent freshness).
    """

    def __init__(
        self,
        local_username: Optional[str] = None,
        local_password: Optional[str] = None,
        remote_username: Optional[str] = None,
    ) -> None:
        self.local_username = local_username or random_ice_string(8)
        self.local_password = local_password or random_ice_string(24)
        if len(self.local_username) < 4 or len(self.local_password) < 22:
            raise ValueError("ICE ufrag needs >= 4 characters, password >= 22")
        self.remote_username = remote_username
        self._key = self.local_password.encode("utf-8")
        self.selected: Optional[Address] = None
        self.nominated = False
        self.last_check: Optional[float] = None
        self.checks_received = 0
        self.checks_refused = 0
        #: address -> C{now} of its latest valid check (learned peer-reflexive candidates).
        self._validated: dict[Address, float] = {}

    def set_remote_username(self, remote_username: Optional[str]) -> None:
        """
        Take the peer's ufrag from its SDP.
        """
        self.remote_username = remote_username

    def _username_ok(self, username: str) -> bool:
        ours, sep, theirs = username.partition(":")
        if not sep or ours != self.local_username:
            return False
        return self.remote_username is None or theirs == self.remote_username

    def receive(self, data: bytes, addr: Address, now: float) -> STUNResult:
        """
        Handle one STUN datagram from C{addr}.
        """
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.checks_refused += 1
            return STUNResult(None)
        if message.message_class != stun.Class.REQUEST:
            # A lite agent sends no requests, so it expects no responses;
            # indications (keepalives) need no answer.
            return STUNResult(None)
        if message.message_method != stun.Method.BINDING:
            return STUNResult(self._error(message, addr, 400, "Bad Request"))
        username = message.attributes.get("USERNAME")
        if username is None or "MESSAGE-INTEGRITY" not in message.attributes:
            self.checks_refused += 1
            return STUNResult(self._error(message, addr, 400, "Bad Request"))
        if not (self._username_ok(username) and message.check_message_integrity(self._key)):
            self.checks_refused += 1
            return STUNResult(self._error(message, addr, 401, "Unauthenticated"))

        self.checks_received += 1
        self.last_check = now
        self._validated.pop(addr, None)
        self._validated[addr] = now
        if len(self._validated) > MAX_VALIDATED:
            del self._validated[next(iter(self._validated))]
        changed = False
        if "USE-CANDIDATE" in message.attributes:
            # The controlling agent's nomination selects the pair (RFC 8445
            # section 7.3.1.5); a later nomination replaces it.
            changed = addr != self.selected or not self.nominated
            self.selected = addr
            self.nominated = True
        elif self.selected is None:
            # Provisional until nominated, so DTLS can start meanwhile.
            self.selected = addr
            changed = True

        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        response.add_message_integrity(self._key)
        return STUNResult(bytes(response), selected_changed=changed, authenticated=True)

    def validated(self, addr: Address, now: float) -> bool:
        """
        Whether C{addr} passed a check within the consent timeout: media from it
        may move the selection (RFC 8445 section 7.3.1.3, a lite agent learns the
        browser's new address only from its checks).
        """
        seen = self._validated.get(addr)
        return seen is not None and now - seen < CONSENT_TIMEOUT

    def select(self, addr: Address) -> None:
        """
        Move the selection to C{addr}, a L{validated} address the browser's
        authenticated media now comes from.
        """
        self.selected = addr

    def _error(self, message: stun.Message, addr: Address, code: int, reason: str) -> bytes:
        response = stun.Message(
            message_method=message.message_method,
            message_class=stun.Class.ERROR,
            transaction_id=message.transaction_id,
        )
        response.attributes["ERROR-CODE"] = (code, reason)
        response.add_fingerprint()
        return bytes(response)
