# -*- test-case-name: tests.sdp.test_offer_answer -*-
"""
RTP payload formats in SDP: the L{Codec} value, format parameters, the RFC 3551 static
payload types, and the rules that say whether two formats are the same codec (RFC 3264
section 6.1, RFC 6184 for H.264, RFC 7587 for Opus), how to answer one, and how to keep
payload type numbers stable across re-offers (RFC 3264 section 8.3.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

__all__ = [
    "SECONDARY_ENCODINGS",
    "STATIC_PAYLOAD_TYPES",
    "Codec",
    "codecs_match",
    "find_common_codecs",
    "format_fmtp",
    "keep_payload_types",
    "parse_fmtp",
]

#: RFC 3551 static payload types: payload type -> (encoding, clock, channels).
STATIC_PAYLOAD_TYPES: Mapping[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, None),
    3: ("GSM", 8000, None),
    4: ("G723", 8000, None),
    5: ("DVI4", 8000, None),
    6: ("DVI4", 16000, None),
    7: ("LPC", 8000, None),
    8: ("PCMA", 8000, None),
    9: ("G722", 8000, None),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, None),
    12: ("QCELP", 8000, None),
    13: ("CN", 8000, None),
    14: ("MPA", 90000, None),
    15: ("G728", 8000, None),
    16: ("DVI4", 11025, None),
    17: ("DVI4", 22050, None),
    18: ("G729", 8000, None),
    25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None),
    28: ("nv", 90000, None),
    31: ("H261", 90000, None),
    32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None),
    34: ("H263", 90000, None),
}


def parse_fmtp(text: str) -> dict[str, str | None]:
    """
    Split format parameters (C{"minptime=10;useinbandfec=1"}) into an
    ordered dict.  Items without C{=} (C{"0-15"}, C{"111/111"}) map to None.
    """
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        params[key.strip()] = value.strip() if sep else None
    return params


def format_fmtp(params: Mapping[str, str | None]) -> str:
    """
    The inverse of L{parse_fmtp}.
    """
    return ";".join(k if v is None else f"{k}={v}" for k, v in params.items())


@dataclass(frozen=True)
class Codec:
    """
    One RTP payload format of a media description, assembled from the
    C{m=} format list and the C{rtpmap}, C{fmtp} and C{rtcp-fb} attributes.

    @ivar payload_type: the RTP payload type number (0-127).
    @ivar name: encoding name as written (C{"opus"}, C{"PCMU"}); compare
        it case-insensitively.
    @ivar clock_rate: RTP clock rate in Hz.
    @ivar channels: audio channel count, or None when the rtpmap has none
        (which means one channel for audio).
    @ivar parameters: the C{fmtp} parameters in order; treat as read-only.
    @ivar rtcp_fb: the C{rtcp-fb} values for this payload type, including
        those given with the C{*} wildcard, e.g. C{("nack", "nack pli")}.
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    parameters: dict[str, str | None] = field(default_factory=dict, hash=False)
    rtcp_fb: tuple[str, ...] = ()

    @property
    def encoding(self) -> str:
        """
        The lower-case encoding name, for comparisons.
        """
        return self.name.lower()

    @property
    def channel_count(self) -> int:
        """
        The number of channels, with the RFC 8866 default of one.
        """
        return 1 if self.channels is None else self.channels

    @property
    def rtpmap(self) -> str:
        """
        The encoding part of the rtpmap, e.g. C{"opus/48000/2"}.
        """
        if self.channels is None:
            return f"{self.name}/{self.clock_rate}"
        return f"{self.name}/{self.clock_rate}/{self.channels}"

    @property
    def fmtp(self) -> str:
        """
        The parameters formatted for an C{a=fmtp} line (may be empty).
        """
        return format_fmtp(self.parameters)

    def same_format(self, other: "Codec") -> bool:
        """
        Whether both describe the same encoding, clock rate and channel
        count (payload type and parameters are not compared).
        """
        return (
            self.encoding == other.encoding
            and self.clock_rate == other.clock_rate
            and self.channel_count == other.channel_count
        )

    def __str__(self) -> str:
        return f"{self.payload_type} {self.rtpmap}"


#: Formats that only make sense next to a real codec.
SECONDARY_ENCODINGS = frozenset(
    ("telephone-event", "cn", "rtx", "red", "ulpfec", "flexfec", "flexfec-03")
)

_DYNAMIC_PAYLOAD_TYPES = tuple(range(96, 128)) + tuple(range(35, 64))


# -- codec matching ----------------------------------------------------------


def _param(codec: Codec, name: str, default: str | None = None) -> str | None:
    for key, value in codec.parameters.items():
        if key.lower() == name:
            return value
    return default


def _set_param(params: dict[str, str | None], name: str, value: str | None) -> None:
    for key in list(params):
        if key.lower() == name:
            if value is None:
                del params[key]
            else:
                params[key] = value
            return
    if value is not None:
        params[name] = value


def _bits(pattern: str) -> tuple[int, int]:
    mask = value = 0
    for char in pattern:
        mask <<= 1
        value <<= 1
        if char != "x":
            mask |= 1
            if char == "1":
                value |= 1
    return mask, value


# (profile_idc, profile-iop pattern, profile name): RFC 6184 table 5 and the
# constraint flags of ITU-T H.264 A.2; "x" bits are not looked at.
_H264_PROFILES = tuple(
    (idc, *_bits(pattern), name)
    for idc, pattern, name in (
        (0x42, "x1xx0000", "constrained-baseline"),
        (0x4D, "1xxx0000", "constrained-baseline"),
        (0x58, "11xx0000", "constrained-baseline"),
        (0x42, "x0xx0000", "baseline"),
        (0x58, "10xx0000", "baseline"),
        (0x4D, "0x0x0000", "main"),
        (0x58, "00xx0000", "extended"),
        (0x64, "00000000", "high"),
        (0x64, "00001100", "constrained-high"),
        (0x6E, "00000000", "high-10"),
        (0x7A, "00000000", "high-422"),
        (0xF4, "00000000", "high-444"),
        (0x6E, "00010000", "high-10-intra"),
        (0x7A, "00010000", "high-422-intra"),
        (0xF4, "00010000", "high-444-intra"),
        (0x2C, "00010000", "cavlc-444-intra"),
    )
)

#: RFC 6184 section 8.1: profile-level-id absent means Baseline, level 1.0.
_H264_DEFAULT_PROFILE_LEVEL_ID = "42000a"


def _h264_profile_level(codec: Codec) -> tuple[str | None, int]:
    """
    The profile name and level_idc of an H.264 format, (None, 0) if the
    profile-level-id is not six hex digits or names an unknown profile.
    """
    text = _param(codec, "profile-level-id", _H264_DEFAULT_PROFILE_LEVEL_ID) or ""
    if len(text) != 6:
        return None, 0
    try:
        number = int(text, 16)
    except ValueError:
        return None, 0
    idc, iop, level = number >> 16, (number >> 8) & 0xFF, number & 0xFF
    for profile_idc, mask, value, name in _H264_PROFILES:
        if idc == profile_idc and iop & mask == value:
            return name, level
    return None, level


def _h264_match(local: Codec, remote: Codec) -> bool:
    if _param(local, "packetization-mode", "0") != _param(remote, "packetization-mode", "0"):
        return False
    local_profile, _ = _h264_profile_level(local)
    remote_profile, _ = _h264_profile_level(remote)
    if local_profile is None or remote_profile is None:
        return (_param(local, "profile-level-id") or "").lower() == (
            _param(remote, "profile-level-id") or ""
        ).lower()
    return local_profile == remote_profile


def codecs_match(local: Codec, remote: Codec) -> bool:
    """
    Whether a local capability can serve an offered format: same encoding
    name (case-insensitive), clock rate and channel count (Opus is always
    stereo on the wire, RFC 7587), plus H.264 profile and
    packetization-mode (RFC 6184 section 8.2.2) and VP9/AV1 profile.
    """
    encoding = local.encoding
    if encoding != remote.encoding or local.clock_rate != remote.clock_rate:
        return False
    if encoding == "opus" or encoding in SECONDARY_ENCODINGS:
        pass
    elif local.channel_count != remote.channel_count:
        return False
    if encoding == "h264":
        return _h264_match(local, remote)
    if encoding == "vp9":
        return _param(local, "profile-id", "0") == _param(remote, "profile-id", "0")
    if encoding == "av1":
        return _param(local, "profile", "0") == _param(remote, "profile", "0")
    return True


def _h264_answer_parameters(local: Codec, offered: Codec) -> dict[str, str | None]:
    params = dict(local.parameters)
    offered_id = _param(offered, "profile-level-id", _H264_DEFAULT_PROFILE_LEVEL_ID) or ""
    local_id = _param(local, "profile-level-id", _H264_DEFAULT_PROFILE_LEVEL_ID) or ""
    if len(offered_id) == 6 and len(local_id) == 6:
        try:
            offered_level = int(offered_id[4:], 16)
            local_level = int(local_id[4:], 16)
        except ValueError:
            pass
        else:
            asymmetric = (
                _param(local, "level-asymmetry-allowed") == "1"
                and _param(offered, "level-asymmetry-allowed") == "1"
            )
            level = local_level if asymmetric else min(local_level, offered_level)
            _set_param(params, "profile-level-id", f"{offered_id[:4]}{level:02x}")
    _set_param(params, "packetization-mode", _param(offered, "packetization-mode"))
    return params


def _answer_codec(offered: Codec, local: Codec) -> Codec:
    encoding = offered.encoding
    if encoding == "h264":
        params = _h264_answer_parameters(local, offered)
    elif encoding in ("rtx", "red"):
        params = dict(offered.parameters)
    elif encoding == "telephone-event":
        params = dict(local.parameters or offered.parameters)
    else:
        params = dict(local.parameters)
    feedback = tuple(f for f in dict.fromkeys(offered.rtcp_fb) if f in local.rtcp_fb)
    return Codec(
        offered.payload_type,
        offered.name,
        offered.clock_rate,
        offered.channels,
        params,
        feedback,
    )


def _references(codec: Codec) -> list[int] | None:
    """
    Payload types a secondary format refers to (rtx apt, red list).
    """
    if codec.encoding == "rtx":
        apt = _param(codec, "apt")
        return [int(apt)] if apt is not None and apt.isdigit() else []
    if codec.encoding == "red" and len(codec.parameters) == 1:
        (text,) = codec.parameters
        pts = text.split("/")
        if all(p.isdigit() for p in pts):
            return [int(p) for p in pts]
    return None


def find_common_codecs(offered: Sequence[Codec], local: Sequence[Codec]) -> list[Codec]:
    """
    The answer's formats for one stream: the offered formats we support,
    in the offerer's order and with its payload types.  Empty when no
    real codec is common.
    """
    accepted: dict[int, Codec] = {}
    for codec in offered:
        if codec.encoding in SECONDARY_ENCODINGS:
            continue
        for candidate in local:
            if codecs_match(candidate, codec):
                accepted[codec.payload_type] = _answer_codec(codec, candidate)
                break
    if not accepted:
        return []
    primaries = set(accepted)
    clock_rates = {c.clock_rate for c in accepted.values()}
    for codec in offered:
        if codec.encoding not in SECONDARY_ENCODINGS:
            continue
        local_codec = next((c for c in local if codecs_match(c, codec)), None)
        if local_codec is None:
            continue
        references = _references(codec)
        if references is not None:
            if not references or not all(pt in primaries for pt in references):
                continue
        elif codec.encoding in ("telephone-event", "cn"):
            if codec.clock_rate not in clock_rates:
                continue
        accepted[codec.payload_type] = _answer_codec(codec, local_codec)
    return [accepted[c.payload_type] for c in offered if c.payload_type in accepted]


# -- stable payload types ----------------------------------------------------


def _free_payload_type(used: set[int]) -> int:
    for payload_type in _DYNAMIC_PAYLOAD_TYPES:
        if payload_type not in used:
            return payload_type
    raise ValueError("no free dynamic payload type")


def keep_payload_types(codecs: Sequence[Codec], previous: Sequence[Codec]) -> list[Codec]:
    """
    Renumber C{codecs} so that every format already in C{previous} keeps its
    payload type (RFC 3264 section 8.3.2: a mapping must not change within
    a session) and no new format takes a number already in use.

    Primary formats are numbered first; rtx/red, which name other payload
    types, follow once the numbers they refer to are known.
    """
    if not previous:
        return list(codecs)
    taken = {c.payload_type for c in previous}
    used: set[int] = set()
    mapping: dict[int, int] = {}

    def number(codec: Codec) -> int:
        references = _references(codec)
        match = next(
            (
                p
                for p in previous
                if p.payload_type not in used
                and codecs_match(codec, p)
                and (references is None or _references(p) == references)
            ),
            None,
        )
        if match is not None:
            chosen = match.payload_type
        elif codec.payload_type in taken or codec.payload_type in used:
            chosen = _free_payload_type(taken | used)
        else:
            chosen = codec.payload_type
        used.add(chosen)
        return chosen

    result: list[Codec | None] = []
    for codec in codecs:
        if _references(codec) is not None:
            result.append(None)  # placed once the referenced types are known
            continue
        mapping[codec.payload_type] = number(codec)
        result.append(replace(codec, payload_type=mapping[codec.payload_type]))
    for position, codec in enumerate(codecs):
        if result[position] is None:
            template = replace(codec, parameters=_renumbered_references(codec, mapping))
            result[position] = replace(template, payload_type=number(template))
    return [c for c in result if c is not None]


def _renumbered_references(codec: Codec, mapping: dict[int, int]) -> dict[str, str | None]:
    """
    The parameters of an rtx/red format with the payload types it names renumbered.
    """
    params = dict(codec.parameters)
    if codec.encoding == "rtx":
        apt = int(_param(codec, "apt") or "0")
        _set_param(params, "apt", str(mapping.get(apt, apt)))
    else:
        ((text, _),) = params.items()
        del params[text]
        params["/".join(str(mapping.get(int(p), int(p))) for p in text.split("/"))] = None
    return params
