"""
RTP payloads to media for stream sinks: H.264 access units from RFC 6184 packets, VP8 frames
from RFC 7741 ones, SPS parsing,
avcC and Annex B framing, G.711 to 16-bit PCM, Opus packet durations, RTP clocks on one timeline.
"""

from wcs_twisted.media.depacketize import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    AccessUnit,
    H264Depacketizer,
    MediaTimeline,
    RtpClock,
    SequenceParameterSet,
    VP8Depacketizer,
    VP8Frame,
    alaw_to_s16le,
    annex_b,
    avc_decoder_configuration,
    avcc,
    codec_of,
    opus_packet_samples,
    parse_sps,
    ulaw_to_s16le,
)

__all__ = ["NAL_IDR", "NAL_PPS", "NAL_SPS", "AccessUnit", "H264Depacketizer", "MediaTimeline",
           "RtpClock", "SequenceParameterSet", "VP8Depacketizer", "VP8Frame", "alaw_to_s16le", "annex_b",
           "avc_decoder_configuration", "avcc", "codec_of", "opus_packet_samples", "parse_sps",
           "ulaw_to_s16le"]
