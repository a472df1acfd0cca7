"""
AAC for RTMP and friends: G.711/Opus payloads decoded, resampled and encoded to AAC-LC with PyAV;
sound files read as the samples the encoder takes.
"""

from wcs_twisted.media.aac import (
    AAC_CHANNELS,
    AAC_RATE,
    SAMPLE_BYTES,
    AacEncoder,
    audio_specific_config,
    load_sound,
)

__all__ = ["AAC_CHANNELS", "AAC_RATE", "SAMPLE_BYTES", "AacEncoder", "audio_specific_config",
           "load_sound"]
