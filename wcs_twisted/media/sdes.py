# -*- test-case-name: tests.media.test_sdes -*-
"""
SRTP with SDES keys (RFC 4568) for the SIP leg: which suites libsrtp runs,
our keys, what goes into our offers and answers, and the libsrtp sessions
an agreed exchange gives.

The browser leg gets its SRTP keys from DTLS (L{wcs_twisted.media.dtls});
a SIP phone or trunk that wants SRTP sends them in its SDP instead.  The
two legs never share keys, so a relayed packet is unprotected on one leg
and protected again on the other; the codec payload is never decoded.

Policy (the C{sip_srtp} setting, docs/media.md "SRTP on the SIP leg"):

  - C{off}: plain RTP only; an RTP/SAVP offer is refused.
  - C{answer} (the default): SRTP when the peer offers it (RTP/SAVP, or
    RTP/AVP with a=crypto as baresip's C{mediaenc=srtp} does); our own
    offers are plain.  SDES keys travel in clear over UDP/TCP SIP, so
    offering them unasked is only worth it where the operator knows the
    signalling is protected.
  - C{optional}: also offer keys in our RTP/AVP offers (best effort: a peer
    that ignores them gets plain RTP).
  - C{mandatory}: offer RTP/SAVP and refuse offers without usable keys.

One key per suite and stream is drawn from the OS at first use and kept
for the session, so re-INVITEs (hold, refresh) keep the libsrtp state.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Optional

import pylibsrtp
from pylibsrtp import Policy, Session

from wcs_twisted.errors import MediaError
from wcs_twisted.sdp.crypto import (
    SUITES,
    CryptoAttribute,
    KeyParameter,
    answered_crypto,
    crypto_attributes,
    is_secure_proto,
    select_crypto,
)
from wcs_twisted.sdp.errors import SDPError
from wcs_twisted.sdp.fields import Attribute
from wcs_twisted.sdp.media import MediaDescription

__all__ = [
    "MODES",
    "SDES_SUITES",
    "SRTPError",
    "SDESKeys",
    "SRTPContext",
]

#: The values of the sip_srtp setting.
MODES = ("off", "answer", "optional", "mandatory")

#: What libsrtp raises for a packet it refuses.
SRTPError = pylibsrtp.Error

#: Replay window in packets (RFC 3711 3.3.2 asks at least 64; libsrtp's default is 128): wide
#: enough for the reordering a jitter buffer still uses.
REPLAY_WINDOW = 1024


def _available_suites() -> dict[str, int]:
    # AES-GCM may be missing, depending on how libsrtp2 was built; AES-256-CM has no
    # pylibsrtp profile.
    found = {}
    for suite, profile in (
        ("AES_CM_128_HMAC_SHA1_80", "AES128_CM_SHA1_80"),
        ("AES_CM_128_HMAC_SHA1_32", "AES128_CM_SHA1_32"),
        ("AEAD_AES_128_GCM", "AEAD_AES_128_GCM"),
        ("AEAD_AES_256_GCM", "AEAD_AES_256_GCM"),
    ):
        value = getattr(Policy, "SRTP_PROFILE_" + profile, None)
        if value is None:  # pragma: no cover
            continue
        try:
            Policy(srtp_profile=value)
        except pylibsrtp.Error:  # pragma: no cover
            continue
        found[suite] = value
    return found


_PROFILES = _available_suites()

#: The suites we run, in the order we offer them: the widely deployed 80-bit tag first.
SDES_SUITES: tuple[str, ...] = tuple(_PROFILES)


class SRTPContext:
    """
    The two libsrtp sessions of one stream (RTP and its RTCP share them):
    C{tx} protects with our key, C{rx} checks with the peer's.

    @ivar suite: the agreed suite name.
    """

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        profile = _PROFILES[suite]
        self.suite = suite
        self.local_key = local_key
        self.remote_key = remote_key
        tx_policy = Policy(key=local_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        tx_policy.allow_repeat_tx = True
        tx_policy.window_size = REPLAY_WINDOW
        rx_policy = Policy(key=remote_key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
        rx_policy.window_size = REPLAY_WINDOW
        self.tx: Session = Session(tx_policy)
        self.rx: Session = Session(rx_policy)


def is_replay(error: Exception) -> bool:
    """
    Whether libsrtp refused a packet as a replay (rather than a failed
    authentication or a runt).
    """
    return "replay" in str(error)


@dataclass(frozen=True)
class _Plan:
    """
    What we answer on one offered m= line: the offered attribute we take, or
    None for plain RTP.
    """

    chosen: Optional[CryptoAttribute]


class SDESKeys:
    """
    One SIP leg's SDES state: the policy, our keys, and the choices an offer
    leads to.  Sans-I/O apart from drawing keys.
    """

    def __init__(self, mode: str = "answer") -> None:
        if mode not in MODES:
            raise ValueError(f"sip_srtp must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self._keys: dict[tuple[str, str], bytes] = {}

    @property
    def offers_keys(self) -> bool:
        """
        Whether our offers carry a=crypto lines.
        """
        return self.mode in ("optional", "mandatory")

    @property
    def offer_proto(self) -> str:
        """
        The transport of our offers.
        """
        return "RTP/SAVP" if self.mode == "mandatory" else "RTP/AVP"

    def accepts_proto(self, proto: str) -> bool:
        """
        Whether an offered m= line's transport could be answered (keys aside).
        """
        upper = proto.upper()
        if is_secure_proto(upper):
            return self.mode != "off"
        return upper in ("RTP/AVP", "RTP/AVPF")

    def key(self, kind: str, suite: str) -> bytes:
        """
        Our master key||salt for C{kind}'s stream under C{suite}, drawn once.
        """
        found = self._keys.get((kind, suite))
        if found is None:
            found = secrets.token_bytes(SUITES[suite].key_salt_length)
            self._keys[(kind, suite)] = found
        return found

    # -- answering ----------------------------------------------------------------------------

    def plan(self, media: MediaDescription) -> Optional[_Plan]:
        """
        How we would answer the offered line C{media}: a plan (with the
        crypto to take, or none for plain RTP), or None when it cannot be
        taken under the policy (SRTP required on one side, no usable keys).

        @raise MediaError: a malformed crypto attribute ("Malformed SDP: ...").
        """
        if not self.accepts_proto(media.proto):
            return None
        try:
            offered = crypto_attributes(media)
        except SDPError as e:
            raise MediaError(f"Malformed SDP: {e}") from e
        if self.mode == "off":
            return _Plan(None)
        chosen = select_crypto(offered, SDES_SUITES)
        if chosen is None and (is_secure_proto(media.proto) or self.mode == "mandatory"):
            return None
        return _Plan(chosen)

    def refusal(self, media: MediaDescription) -> str:
        """
        Why L{plan} refused C{media}, for the call's failure info.
        """
        if is_secure_proto(media.proto) and self.mode == "off":
            return "SRTP offered but sip_srtp is off"
        if is_secure_proto(media.proto) or crypto_attributes(media):
            return "No supported SRTP crypto suite offered"
        return "SRTP required (sip_srtp=mandatory) but the offer has no keys"

    def answer_attributes(self, kind: str, plan: _Plan) -> tuple[Attribute, ...]:
        """
        The a=crypto line answering C{plan}: the offer's tag and suite with
        our own key.
        """
        if plan.chosen is None:
            return ()
        chosen = plan.chosen
        ours = CryptoAttribute(chosen.tag, chosen.suite,
                               (KeyParameter(self.key(kind, chosen.suite)),))
        return (Attribute("crypto", str(ours)),)

    # -- offering -----------------------------------------------------------------------------

    def offer_attributes(self, kind: str, secured: bool = False) -> tuple[Attribute, ...]:
        """
        The a=crypto lines of our offer for C{kind}: one per suite we run,
        tags from 1 in our order of preference.  None unless the policy
        offers keys or the stream already runs SRTP (C{secured}).
        """
        if not (self.offers_keys or secured):
            return ()
        return tuple(
            Attribute("crypto", str(CryptoAttribute(tag, suite, (KeyParameter(self.key(kind, suite)),))))
            for tag, suite in enumerate(SDES_SUITES, start=1)
        )

    # -- the outcome --------------------------------------------------------------------------

    def agreed(self, local: MediaDescription, remote: MediaDescription,
               local_is_offerer: bool) -> Optional[tuple[str, bytes, bytes]]:
        """
        The (suite, our key, their key) an exchange agreed on for one m=
        line, or None for plain RTP.

        @raise MediaError: the answer's crypto does not fit the offer, or a
            secure offer of ours got a plain answer.
        """
        offer, answer = (local, remote) if local_is_offerer else (remote, local)
        try:
            pair = answered_crypto(offer, answer)
        except SDPError as e:
            raise MediaError(f"Malformed SDP: {e}") from e
        if pair is None:
            if local_is_offerer and (is_secure_proto(local.proto) or self.mode == "mandatory"):
                raise MediaError("SRTP offered but the answer has no keys")
            return None
        offered, answered = pair
        if offered.suite not in _PROFILES or not answered.usable(SDES_SUITES):
            raise MediaError(f"Malformed SDP: unusable crypto attribute {answered}")
        ours, theirs = (offered, answered) if local_is_offerer else (answered, offered)
        return offered.suite, ours.key_salt, theirs.key_salt
