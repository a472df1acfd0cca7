# -*- test-case-name: tests.media.test_session -*-
"""
The codec catalogue of the media legs: the formats we offer and accept, in our order of
preference, and the WCS codec names (C{"opus/48000/2"}, C{"PCMU"}) that clients and settings
use to pick among them.

Kept apart from the legs because the stream endpoints and the bridge read the same table.
"""

from __future__ import annotations

from typing import Optional, Sequence

from wcs_twisted.sdp.codecs import SECONDARY_ENCODINGS, Codec, codecs_match

__all__ = [
    "AUDIO_CODECS",
    "SIP_AUDIO_CODECS",
    "TELEPHONE_EVENTS",
    "VIDEO_CODECS",
    "choose_codec",
    "codec_name",
    "local_codec",
    "name_matches",
    "ordered_codecs",
    "parse_codec_name",
]

#: Audio formats both kinds of leg carry (relayed, or transcoded by the
#: bridge), in our order of preference; the payload types are those of our
#: offers.  Opus is written stereo on the wire (RFC 7587 section 7).
AUDIO_CODECS: tuple[Codec, ...] = (
    Codec(111, "opus", 48000, 2, {"minptime": "10", "useinbandfec": "1"}),
    Codec(9, "G722", 8000),
    Codec(0, "PCMU", 8000),
    Codec(8, "PCMA", 8000),
)

#: Audio formats only SIP peers speak (browsers do not), offered and accepted on the SIP
#: leg after the common ones and transcoded to and from the WebRTC leg's codec: Speex
#: (RFC 5574) wide and narrow band, G.729 Annex A without Annex B (no VAD/SID frames).
SIP_AUDIO_CODECS: tuple[Codec, ...] = (
    Codec(98, "speex", 16000),
    Codec(99, "speex", 8000),
    Codec(18, "G729", 8000, None, {"annexb": "no"}),
)

#: RFC 4733 events, one per audio clock rate.
TELEPHONE_EVENTS: tuple[Codec, ...] = (
    Codec(110, "telephone-event", 48000, None, {"0-15": None}),
    Codec(101, "telephone-event", 8000, None, {"0-15": None}),
    Codec(100, "telephone-event", 16000, None, {"0-15": None}),
)

#: Video is relayed only, so these are the formats worth offering: keyframe
#: requests (PLI, FIR) are passed to the sending peer; Generic NACKs are answered
#: from the WebRTC leg's history of sent packets, or passed to the sending peer for
#: what never reached us (MediaBridge._pass_nack).
_VIDEO_FEEDBACK = ("ccm fir", "nack", "nack pli")
VIDEO_CODECS: tuple[Codec, ...] = (
    Codec(96, "VP8", 90000, None, {}, _VIDEO_FEEDBACK),
    Codec(
        102, "H264", 90000, None,
        {"level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42e01f"},
        _VIDEO_FEEDBACK,
    ),
    Codec(
        104, "H264", 90000, None,
        {"level-asymmetry-allowed": "1", "packetization-mode": "0", "profile-level-id": "42e01f"},
        _VIDEO_FEEDBACK,
    ),
)


# -- codec names ("name/clock_rate[/channels]", as in rtpmap) -----------------


def parse_codec_name(name: str) -> tuple[str, int, Optional[int]]:
    """
    Split C{"opus/48000/2"} into (lower-case encoding, clock rate, channels).

    @raise ValueError: if the clock rate or channel count is not a number.
    """
    parts = name.split("/")
    encoding = parts[0].strip().lower()
    clock_rate = int(parts[1]) if len(parts) > 1 else 0
    channels = int(parts[2]) if len(parts) > 2 else None
    return encoding, clock_rate, channels


def name_matches(name: str, codec: Codec) -> bool:
    try:
        encoding, clock_rate, channels = parse_codec_name(name)
    except ValueError:
        return False
    if encoding != codec.encoding or (clock_rate and clock_rate != codec.clock_rate):
        return False
    # Opus is always "/2" on the wire; for the rest a stated count must agree.
    return encoding == "opus" or channels is None or channels == codec.channel_count


def codec_name(codec: Codec) -> str:
    """
    The interface's name for C{codec}, spelled as in our own tables
    (C{"PCMU/8000"}, C{"opus/48000/2"}, C{"H264/90000"}).
    """
    for ours in AUDIO_CODECS + SIP_AUDIO_CODECS + VIDEO_CODECS + TELEPHONE_EVENTS:
        if ours.encoding == codec.encoding and ours.clock_rate == codec.clock_rate:
            return ours.rtpmap
    return codec.rtpmap


def local_codec(codec: Codec, table: Sequence[Codec]) -> Optional[Codec]:
    """
    Our format that can serve the remote C{codec}, or C{None}.
    """
    return next((ours for ours in table if codecs_match(ours, codec)), None)


def ordered_codecs(names: Sequence[str], table: Sequence[Codec]) -> list[Codec]:
    """
    C{table} reordered so the formats named in C{names} come first, in the
    order of C{names}.
    """
    first: list[Codec] = []
    for name in names:
        for codec in table:
            if codec not in first and name_matches(name, codec):
                first.append(codec)
    return first + [c for c in table if c not in first]


def choose_codec(offered: Sequence[Codec], table: Sequence[Codec],
            prefer: Sequence[str]) -> Optional[tuple[Codec, Codec]]:
    """
    The (offered, local) pair to answer with: the first name in C{prefer}
    the offer carries, else the offer's first format we carry.
    """
    usable = [
        (codec, local)
        for codec in offered
        if codec.encoding not in SECONDARY_ENCODINGS
        for local in [local_codec(codec, table)]
        if local is not None
    ]
    for name in prefer or ():
        for codec, local in usable:
            if name_matches(name, codec):
                return codec, local
    return usable[0] if usable else None
