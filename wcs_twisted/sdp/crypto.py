# -*- test-case-name: tests.sdp.test_crypto -*-
"""
SDES key exchange in SDP (RFC 4568): the C{a=crypto} attribute, parsed and
written, and the offer/answer rules that pair an answer's key with the
offered one.

The keys travel in the SDP itself, so this module only deals with their
text form and never makes a key: the media layer draws them and runs
SRTP.  Suite facts (key and salt sizes) come from RFC 4568 section 6.2,
RFC 6188 and RFC 7714.

A malformed attribute (bad tag, unknown key method, key of the wrong size,
bad lifetime or MKI) raises L{SDPError} (488): a peer that writes its keys
wrongly would otherwise get a call with no audio in either direction.  A
well-formed attribute we cannot use (unknown suite, MKI, several keys,
session parameters other than a window size hint) is skipped when choosing
what to answer, as RFC 4568 section 7.1.2 lets an answerer do.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from wcs_twisted.sdp.errors import SDPError
from wcs_twisted.sdp.media import MediaDescription

__all__ = [
    "SAVP_PROTOS",
    "SUITES",
    "CryptoAttribute",
    "CryptoSuite",
    "KeyParameter",
    "answered_crypto",
    "crypto_attributes",
    "is_secure_proto",
    "select_crypto",
]

#: The RTP profiles whose m= line says SRTP is required (RFC 3711 section 12, RFC 5124).
SAVP_PROTOS = ("RTP/SAVP", "RTP/SAVPF")


@dataclass(frozen=True)
class CryptoSuite:
    """
    One SDES crypto-suite: its name and the sizes of its master key and salt in bytes.
    """

    name: str
    key_length: int
    salt_length: int

    @property
    def key_salt_length(self) -> int:
        """
        Bytes of the inline key||salt.
        """
        return self.key_length + self.salt_length


#: Suites whose key sizes we know, by name (RFC 4568 6.2, RFC 6188 7.1, RFC 7714 12).
SUITES: dict[str, CryptoSuite] = {
    suite.name: suite for suite in (
        CryptoSuite("AES_CM_128_HMAC_SHA1_80", 16, 14),
        CryptoSuite("AES_CM_128_HMAC_SHA1_32", 16, 14),
        CryptoSuite("AES_256_CM_HMAC_SHA1_80", 32, 14),
        CryptoSuite("AES_256_CM_HMAC_SHA1_32", 32, 14),
        CryptoSuite("AEAD_AES_128_GCM", 16, 12),
        CryptoSuite("AEAD_AES_256_GCM", 32, 12),
    )
}

_TAG = re.compile(r"[0-9]{1,9}\Z")
_SUITE = re.compile(r"[A-Za-z0-9_]+\Z")
_LIFETIME = re.compile(r"(?:2\^([0-9]{1,2})|([0-9]{1,20}))\Z")
_MKI = re.compile(r"([0-9]{1,10}):([0-9]{1,3})\Z")


def is_secure_proto(proto: str) -> bool:
    """
    Whether an m= line's transport says SRTP (RTP/SAVP or RTP/SAVPF).
    """
    return proto.upper() in SAVP_PROTOS


@dataclass(frozen=True)
class KeyParameter:
    """
    One C{inline:} key parameter.

    @ivar key_salt: the master key followed by the master salt.
    @ivar lifetime: packets the key may protect, if given.
    @ivar mki: the master key identifier value and its length in bytes, if given.
    """

    key_salt: bytes
    lifetime: int | None = None
    mki: tuple[int, int] | None = None

    def __str__(self) -> str:
        text = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki[0]}:{self.mki[1]}"
        return text


def _invalid(value: str, why: str) -> SDPError:
    return SDPError(f"invalid crypto attribute ({why}): {value!r}")


def _key_parameter(text: str, suite: CryptoSuite | None, value: str) -> KeyParameter:
    method, sep, info = text.partition(":")
    if not sep or method.lower() != "inline":
        raise _invalid(value, "key method is not inline")
    parts = info.split("|")
    if len(parts) > 3:
        raise _invalid(value, "too many key fields")
    try:
        key_salt = base64.b64decode(parts[0], validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(value, "key is not base64") from None
    if suite is not None and len(key_salt) != suite.key_salt_length:
        raise _invalid(value, f"{suite.name} needs a {suite.key_salt_length}-byte key and salt,"
                              f" not {len(key_salt)}")
    lifetime = mki = None
    for field in parts[1:]:
        if ":" in field:
            match = _MKI.match(field)
            if match is None or mki is not None or not 1 <= int(match.group(2)) <= 128:
                raise _invalid(value, "bad MKI")
            mki = (int(match.group(1)), int(match.group(2)))
        else:
            match = _LIFETIME.match(field)
            if match is None or lifetime is not None or mki is not None:
                raise _invalid(value, "bad key lifetime")
            lifetime = 2 ** int(match.group(1)) if match.group(1) else int(match.group(2))
            if lifetime == 0:
                raise _invalid(value, "bad key lifetime")
    return KeyParameter(key_salt, lifetime, mki)


@dataclass(frozen=True)
class CryptoAttribute:
    """
    One C{a=crypto:<tag> <suite> <key-params> [<session-params>]} value.

    @ivar keys: the key parameters (several only with MKIs).
    @ivar session_parameters: the session parameter tokens, as written.
    """

    tag: int
    suite: str
    keys: tuple[KeyParameter, ...]
    session_parameters: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> "CryptoAttribute":
        """
        Parse an attribute value (what follows C{a=crypto:}).

        @raise SDPError: malformed, or a key that does not fit its known suite.
        """
        fields = value.split()
        if len(fields) < 3:
            raise _invalid(value, "needs a tag, a suite and a key")
        if not _TAG.match(fields[0]):
            raise _invalid(value, "bad tag")
        if not _SUITE.match(fields[1]):
            raise _invalid(value, "bad suite")
        suite = SUITES.get(fields[1].upper())
        keys = tuple(_key_parameter(text, suite, value) for text in fields[2].split(";"))
        return cls(int(fields[0]), fields[1].upper(), keys, tuple(fields[3:]))

    def __str__(self) -> str:
        return " ".join([str(self.tag), self.suite, ";".join(str(k) for k in self.keys),
                         *self.session_parameters])

    @property
    def key_salt(self) -> bytes:
        """
        The first key's master key||salt.
        """
        return self.keys[0].key_salt

    def usable(self, suites: tuple[str, ...] | frozenset[str]) -> bool:
        """
        Whether we can run this attribute: a suite in C{suites}, one key
        without MKI, and no session parameter but a window size hint
        (RFC 4568 6.3.7; KDR, UNENCRYPTED_*, FEC_* change what libsrtp does).
        """
        return (
            self.suite in suites
            and len(self.keys) == 1
            and self.keys[0].mki is None
            and all(p.upper().startswith("WSH=") for p in self.session_parameters)
        )


def crypto_attributes(media: MediaDescription) -> list[CryptoAttribute]:
    """
    The C{a=crypto} attributes of C{media}, in order.

    @raise SDPError: one is malformed, or two share a tag.
    """
    result = [CryptoAttribute.parse(a.value or "") for a in media.attributes if a.name == "crypto"]
    tags = [c.tag for c in result]
    if len(set(tags)) != len(tags):
        raise SDPError(f"crypto attributes repeat a tag: {tags}")
    return result


def select_crypto(offered: list[CryptoAttribute],
                  suites: tuple[str, ...] | frozenset[str]) -> CryptoAttribute | None:
    """
    The offered attribute to answer: the offerer's first usable one (its
    order is its preference, RFC 4568 section 7.1.1), or None.
    """
    return next((c for c in offered if c.usable(suites)), None)


def answered_crypto(offer: MediaDescription, answer: MediaDescription
                    ) -> tuple[CryptoAttribute, CryptoAttribute] | None:
    """
    The (offered, answered) attribute pair an exchange agreed on for one
    m= line, or None when the answer carries no crypto (plain RTP).

    @raise SDPError: the answer has several crypto lines, or one whose tag
        or suite the offer does not have (RFC 4568 section 7.1.3).
    """
    answered = crypto_attributes(answer)
    if not answered:
        return None
    if len(answered) > 1:
        raise SDPError("the answer has more than one crypto attribute")
    chosen = answered[0]
    for candidate in crypto_attributes(offer):
        if candidate.tag == chosen.tag:
            if candidate.suite != chosen.suite:
                raise SDPError(f"the answer's crypto tag {chosen.tag} has suite {chosen.suite},"
                               f" the offer {candidate.suite}")
            return candidate, chosen
    raise SDPError(f"the answer's crypto tag {chosen.tag} was not offered")
