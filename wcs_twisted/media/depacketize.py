# -*- test-case-name: tests.media.test_depacketize -*-
"""
From RTP payloads to media samples: what the recorder and the RTMP pusher both need.

Stream sinks get RTP payloads, RTP timestamps and marker bits (no sequence numbers, no headers).
Containers and RTMP want whole frames on one timeline: H.264 access units rebuilt from RFC 6184
packets, durations of Opus packets (RFC 6716 3.1), G.711 samples (ITU-T G.711), and one clock in
seconds shared by the audio and the video of a stream even though their RTP clocks start at
random values.  Pure Python and stdlib only, so all of it is tested without a reactor.
VP8 frames are rebuilt from RFC 7741 packets the same way (browsers publish VP8 by default).

Over 600 lines: one depacketizer per codec a sink records or pushes, sharing one timeline.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import Optional

from wcs_twisted.media.g711 import ALAW, ULAW

__all__ = [
    "AccessUnit",
    "H264Depacketizer",
    "MediaTimeline",
    "RtpClock",
    "SequenceParameterSet",
    "VP8Depacketizer",
    "VP8Frame",
    "alaw_to_s16le",
    "annex_b",
    "avc_decoder_configuration",
    "avcc",
    "codec_of",
    "opus_packet_samples",
    "parse_sps",
    "ulaw_to_s16le",
]

# --- codec names --------------------------------------------------------------------------------


def codec_of(codec_name: Optional[str]) -> tuple[str, int]:
    """
    The encoding name (lower case) and clock rate of an rtpmap-style codec name.

    >>> codec_of("opus/48000/2")
    ('opus', 48000)
    """
    if not codec_name:
        return "", 0
    parts = codec_name.split("/")
    try:
        rate = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        rate = 0
    return parts[0].lower(), rate


# --- G.711 --------------------------------------------------------------------------------------


def _little_endian(pcm: bytes) -> bytes:
    if sys.byteorder == "little":
        return pcm
    samples = array("h", pcm)
    samples.byteswap()
    return samples.tobytes()


def ulaw_to_s16le(payload: bytes) -> bytes:
    """
    PCMU payload (one byte per sample) as signed 16-bit little-endian samples.
    """
    return _little_endian(ULAW.decode(payload))


def alaw_to_s16le(payload: bytes) -> bytes:
    """
    PCMA payload (one byte per sample) as signed 16-bit little-endian samples.
    """
    return _little_endian(ALAW.decode(payload))


# --- Opus ---------------------------------------------------------------------------------------


def _opus_frame_samples(toc: int) -> int:
    """
    Samples at 48 kHz in one frame of the configuration the TOC byte names (RFC 6716 3.1).
    """
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        return (480, 960, 1920, 2880)[config & 3]
    if config < 16:  # Hybrid: 10, 20 ms
        return (480, 960)[config & 1]
    return (120, 240, 480, 960)[config & 3]  # CELT: 2.5, 5, 10, 20 ms


def opus_packet_samples(payload: bytes) -> int:
    """
    The duration of an Opus packet in samples at 48 kHz, from its TOC byte and frame count
    (RFC 6716 3.1, 3.2.5); 0 for an empty or malformed packet.
    """
    if not payload:
        return 0
    toc = payload[0]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(payload) < 2:
            return 0
        frames = payload[1] & 0x3F
    samples = frames * _opus_frame_samples(toc)
    return samples if samples <= 5760 else 0  # at most 120 ms (RFC 6716 3.2.5)


# --- H.264 --------------------------------------------------------------------------------------

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_STAP_A = 24
NAL_FU_A = 28

#: A larger access unit is dropped as corrupt (a 4K keyframe is well below this).
MAX_ACCESS_UNIT = 4 * 1024 * 1024

_START_CODE = b"\x00\x00\x00\x01"


@dataclass(frozen=True)
class AccessUnit:
    """
    One H.264 picture: its NAL units (without start codes) and RTP timestamp.

    @ivar keyframe: it holds an IDR slice.
    @ivar sps: the last sequence parameter set seen so far in the stream (or None).
    @ivar pps: the last picture parameter set seen so far in the stream (or None).
    """

    timestamp: int
    nal_units: tuple[bytes, ...]
    keyframe: bool
    sps: Optional[bytes]
    pps: Optional[bytes]

    @property
    def decodable_start(self) -> bool:
        """
        A decoder can start here: an IDR with parameter sets known.
        """
        return self.keyframe and self.sps is not None and self.pps is not None

    def with_parameter_sets(self) -> tuple[bytes, ...]:
        """
        The NAL units, with the SPS and PPS put first when this keyframe lacks them (so every
        keyframe in a file or an RTMP stream can start decoding on its own).
        """
        types = {nal[0] & 0x1F for nal in self.nal_units}
        if not self.keyframe or (NAL_SPS in types and NAL_PPS in types) \
                or self.sps is None or self.pps is None:
            return self.nal_units
        return (self.sps, self.pps) + tuple(
            nal for nal in self.nal_units if nal[0] & 0x1F not in (NAL_SPS, NAL_PPS))


def annex_b(nal_units) -> bytes:
    """
    NAL units in the byte-stream format (H.264 Annex B): each after a start code.
    """
    return b"".join(_START_CODE + nal for nal in nal_units)


def avcc(nal_units) -> bytes:
    """
    NAL units in the length-prefixed format of MP4, Matroska and FLV (4-byte lengths).
    """
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in nal_units)


class H264Depacketizer:
    """
    Rebuilds H.264 access units from RTP payloads (RFC 6184 5.6 single NAL unit, 5.7.1 STAP-A,
    5.8 FU-A; packetization modes 0 and 1).

    An access unit ends with the marker bit, or when a packet with another timestamp arrives.
    Without sequence numbers loss shows as a fragmented unit whose start or end is missing; such
    an access unit is dropped and L{lost} counts it, so the owner can ask for a keyframe.
    """

    def __init__(self) -> None:
        self._timestamp: Optional[int] = None
        self._nals: list[bytes] = []
        self._size = 0
        self._fragment: Optional[bytearray] = None
        self._corrupt = False
        self.sps: Optional[bytes] = None
        self.pps: Optional[bytes] = None
        #: Access units dropped because a fragment was missing or they were too big.
        self.lost = 0

    def feed(self, payload: bytes, timestamp: int, marker: bool) -> list[AccessUnit]:
        """
        Take one RTP payload; return the access units it completed (usually zero or one).
        """
        done: list[AccessUnit] = []
        if self._timestamp is not None and timestamp != self._timestamp:
            self._finish(done)
        self._timestamp = timestamp
        if payload:
            self._packet(payload)
        if marker:
            self._finish(done)
        return done

    def flush(self) -> list[AccessUnit]:
        """
        The access unit being gathered, if any is complete (the stream ended).
        """
        done: list[AccessUnit] = []
        self._finish(done)
        return done

    def _packet(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._fragment_broken()
            self._add(payload)
        elif kind == NAL_STAP_A:
            self._fragment_broken()
            offset = 1
            while offset + 2 <= len(payload):
                size = int.from_bytes(payload[offset:offset + 2], "big")
                offset += 2
                if size == 0 or offset + size > len(payload):
                    self._corrupt = True
                    return
                self._add(payload[offset:offset + size])
                offset += size
        elif kind == NAL_FU_A:
            if len(payload) < 2:
                self._corrupt = True
                return
            header = payload[1]
            start, end = header & 0x80, header & 0x40
            if start:
                self._fragment_broken()
                self._fragment = bytearray(((payload[0] & 0xE0) | (header & 0x1F),))
            elif self._fragment is None:
                self._corrupt = True  # its start was lost
                return
            self._fragment += payload[2:]
            if len(self._fragment) > MAX_ACCESS_UNIT:
                self._fragment = None
                self._corrupt = True
            elif end:
                nal, self._fragment = bytes(self._fragment), None
                self._add(nal)
        else:
            # STAP-B, MTAP, FU-B (interleaved mode) and reserved types: not carried.
            self._corrupt = True

    def _fragment_broken(self) -> None:
        if self._fragment is not None:  # a fragmented unit never got its end
            self._fragment = None
            self._corrupt = True

    def _add(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == NAL_SPS:
            self.sps = nal
        elif kind == NAL_PPS:
            self.pps = nal
        elif kind == NAL_AUD:
            return  # access unit delimiters are left out of containers
        self._size += len(nal)
        if self._size > MAX_ACCESS_UNIT:
            self._corrupt = True
            return
        self._nals.append(nal)

    def _finish(self, done: list[AccessUnit]) -> None:
        self._fragment_broken()
        nals, corrupt = self._nals, self._corrupt
        self._nals, self._size, self._corrupt = [], 0, False
        if corrupt:
            self.lost += 1
            return
        if not nals or self._timestamp is None:
            return
        if not any(1 <= nal[0] & 0x1F <= 5 for nal in nals):
            return  # parameter sets or SEI alone: kept in sps/pps, no picture to write
        keyframe = any(nal[0] & 0x1F == NAL_IDR for nal in nals)
        done.append(AccessUnit(self._timestamp, tuple(nals), keyframe, self.sps, self.pps))



# --- VP8 (RFC 7741) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VP8Frame:
    """
    One VP8 frame (RFC 6386) as a container stores it, with its RTP timestamp.

    @ivar keyframe: an intra frame; only those carry the picture size, and a decoder can start
        only at one.
    @ivar width: the picture width of a keyframe (None for an interframe).
    @ivar height: the picture height of a keyframe (None for an interframe).
    """

    timestamp: int
    data: bytes
    keyframe: bool
    width: Optional[int]
    height: Optional[int]

    @property
    def decodable_start(self) -> bool:
        """
        A decoder can start here: a keyframe whose size was read.
        """
        return self.keyframe and self.width is not None


#: The start code of a VP8 keyframe header (RFC 6386 9.1).
_VP8_START_CODE = b"\x9d\x01\x2a"


def _vp8_descriptor_size(payload: bytes) -> int:
    """
    The length of the VP8 payload descriptor (RFC 7741 4.2) at the start of C{payload}.

    @raise ValueError: the payload is shorter than its descriptor says.
    """
    size = 1
    if payload[0] & 0x80:  # X: extension byte
        if len(payload) < 2:
            raise ValueError("truncated VP8 payload descriptor")
        extension = payload[1]
        size = 2
        if extension & 0x80:  # I: PictureID, 15 bits when its M bit is set
            if len(payload) < 3:
                raise ValueError("truncated VP8 payload descriptor")
            size += 2 if payload[2] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            size += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX
            size += 1
    if size >= len(payload):
        raise ValueError("VP8 payload descriptor without payload")
    return size


class VP8Depacketizer:
    """
    Rebuilds VP8 frames from RTP payloads (RFC 7741): a frame starts with a packet whose S bit
    is set with partition index 0 and ends with the marker bit.

    Without sequence numbers loss shows as a frame without its start, or one whose timestamp
    changed before its marker; such a frame is dropped and L{lost} counts it, so the owner can
    ask for a keyframe.
    """

    def __init__(self) -> None:
        self._timestamp: Optional[int] = None
        self._parts: list[bytes] = []
        self._size = 0
        self._started = False
        self._corrupt = False
        #: Frames dropped because a packet was missing or they were too big.
        self.lost = 0

    def feed(self, payload: bytes, timestamp: int, marker: bool) -> list[VP8Frame]:
        """
        Take one RTP payload; return the frames it completed (zero or one).
        """
        done: list[VP8Frame] = []
        if self._timestamp is not None and timestamp != self._timestamp and (
                self._parts or self._corrupt):
            self._corrupt = True  # the previous frame never got its marker
            self._finish(done)
        self._timestamp = timestamp
        if payload:
            self._packet(payload)
        if marker:
            self._finish(done)
        return done

    def _packet(self, payload: bytes) -> None:
        try:
            offset = _vp8_descriptor_size(payload)
        except ValueError:
            self._corrupt = True
            return
        start = payload[0] & 0x10 and payload[0] & 0x07 == 0
        if start:
            if self._parts:  # the frame before never got its marker
                self.lost += 1
                self._parts, self._size = [], 0
            self._started = True
        elif not self._started:
            self._corrupt = True  # its start was lost
            return
        self._size += len(payload) - offset
        if self._size > MAX_ACCESS_UNIT:
            self._corrupt = True
            return
        self._parts.append(payload[offset:])

    def _finish(self, done: list[VP8Frame]) -> None:
        parts, corrupt = self._parts, self._corrupt
        self._parts, self._size, self._started, self._corrupt = [], 0, False, False
        if corrupt:
            self.lost += 1
            return
        if not parts or self._timestamp is None:
            return
        data = b"".join(parts)
        keyframe = not data[0] & 0x01  # the P bit of the frame tag (RFC 6386 9.1)
        width = height = None
        if keyframe and len(data) >= 10 and data[3:6] == _VP8_START_CODE:
            width = int.from_bytes(data[6:8], "little") & 0x3FFF
            height = int.from_bytes(data[8:10], "little") & 0x3FFF
        done.append(VP8Frame(self._timestamp, data, keyframe, width, height))


class _BitReader:
    """
    Reads the RBSP bits of a NAL unit (emulation prevention bytes removed).
    """

    def __init__(self, data: bytes) -> None:
        self._data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self._bit = 0

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self._bit >> 3
            if byte >= len(self._data):
                raise ValueError("SPS ends early")
            value = (value << 1) | ((self._data[byte] >> (7 - (self._bit & 7))) & 1)
            self._bit += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


@dataclass(frozen=True)
class SequenceParameterSet:
    """
    What the containers need from an H.264 SPS (ITU-T H.264 7.3.2.1.1).
    """

    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int


_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def parse_sps(nal: bytes) -> SequenceParameterSet:
    """
    Read the profile, level, chroma format, bit depths and cropped picture size of an SPS NAL
    unit (with its one-byte NAL header).

    @raise ValueError: it is not a well-formed SPS.
    """
    if len(nal) < 4 or nal[0] & 0x1F != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    reader = _BitReader(nal[1:])
    profile_idc = reader.bits(8)
    constraint_flags = reader.bits(8)
    level_idc = reader.bits(8)
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc, depth_luma, depth_chroma, separate_planes = 1, 8, 8, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            separate_planes = reader.bits(1)
        depth_luma = reader.ue() + 8
        depth_chroma = reader.ue() + 8
        reader.bits(1)  # qpprime_y_zero_transform_bypass_flag
        if reader.bits(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.bits(1):
                    last, following = 8, 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + reader.se() + 256) % 256
                        last = following or last
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        reader.bits(1)
        reader.se()
        reader.se()
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.bits(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_map_units = reader.ue() + 1
    frame_mbs_only = reader.bits(1)
    if not frame_mbs_only:
        reader.bits(1)  # mb_adaptive_frame_field_flag
    reader.bits(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = height_map_units * 16 * (2 - frame_mbs_only)
    if reader.bits(1):  # frame_cropping_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        chroma = 0 if separate_planes else chroma_format_idc
        crop_x = 1 if chroma == 0 else (2 if chroma in (1, 2) else 1)
        crop_y = (1 if chroma in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ValueError("SPS gives an empty picture")
    return SequenceParameterSet(profile_idc, constraint_flags, level_idc, chroma_format_idc,
                                depth_luma, depth_chroma, width, height)


def avc_decoder_configuration(sps: bytes, pps: bytes) -> bytes:
    """
    The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) for one SPS and one PPS, with
    4-byte NAL lengths: the avcC of MP4, the CodecPrivate of Matroska, the FLV/RTMP sequence
    header.
    """
    info = parse_sps(sps)
    record = bytearray((1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1))
    record += len(sps).to_bytes(2, "big") + sps
    record += bytes((1,)) + len(pps).to_bytes(2, "big") + pps
    if info.profile_idc in (100, 110, 122, 144):
        record += bytes((0xFC | info.chroma_format_idc, 0xF8 | (info.bit_depth_luma - 8),
                         0xF8 | (info.bit_depth_chroma - 8), 0))
    return bytes(record)


# --- one timeline for the kinds of a stream -----------------------------------------------------

#: RTP time further than this from the arrival time (seconds) is a jump: re-anchor there.
MAX_CLOCK_SKEW = 2.0


class MediaTimeline:
    """
    The shared origin of a stream's audio and video: time 0 is the first packet of any kind.

    RTP timestamps of different media start at random values (RFC 3550 5.1) and only RTCP
    sender reports relate them, which sinks do not see.  Each kind is therefore anchored at the
    arrival time of its first packet, and from there advances by its RTP timestamps, which keeps
    durations exact and audio and video aligned to within the arrival jitter.
    """

    def __init__(self) -> None:
        self.origin: Optional[float] = None

    def since_origin(self, now: float) -> float:
        if self.origin is None:
            self.origin = now
        return now - self.origin


class RtpClock:
    """
    One kind's RTP timestamps as seconds on a L{MediaTimeline}.

    Timestamps are unwrapped (RFC 3550 wraps them at 2**32).  A jump (new source, timestamps
    that stood still while the stream was paused, a sender that restarted) shows as RTP time
    moving more than L{MAX_CLOCK_SKEW} away from arrival time; the clock then re-anchors at the
    arrival time, never going back before what it already returned.
    """

    def __init__(self, clock_rate: int, timeline: MediaTimeline,
                 max_skew: float = MAX_CLOCK_SKEW) -> None:
        if clock_rate <= 0:
            raise ValueError("clock rate must be positive")
        self.clock_rate = clock_rate
        self._timeline = timeline
        self._max_skew = max_skew
        self._last_timestamp: Optional[int] = None
        self._extended = 0
        self._anchor_extended = 0
        self._anchor_time = 0.0
        self._last_time = 0.0
        #: How many times the clock re-anchored.
        self.jumps = 0

    def seconds(self, timestamp: int, now: float) -> float:
        """
        The time on the timeline of a packet with this RTP timestamp arriving at C{now}.
        """
        arrival = self._timeline.since_origin(now)
        if self._last_timestamp is None:
            self._last_timestamp = timestamp
            self._anchor_time = self._last_time = arrival
            return arrival
        delta = ((timestamp - self._last_timestamp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        self._last_timestamp = timestamp
        self._extended += delta
        time = self._anchor_time + (self._extended - self._anchor_extended) / self.clock_rate
        if abs(time - arrival) > self._max_skew:
            self.jumps += 1
            self._anchor_extended = self._extended
            self._anchor_time = time = max(arrival, self._last_time)
        self._last_time = max(self._last_time, time)
        return time
