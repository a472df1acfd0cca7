"""
Matroska files written as they go (a cluster a second, playable after a crash), with PyAV; the
writer runs on a worker thread (L{wcs_twisted.toolkit.sinks.SerialWorker}).
"""

from wcs_twisted.media.matroska import AUDIO_TRACKS, AudioTrack, MatroskaWriter, VideoTrack

__all__ = ["AUDIO_TRACKS", "AudioTrack", "MatroskaWriter", "VideoTrack"]
