"""
The public toolkit for modules: what a module (built-in, or a drop-in in plugin_dirs) may import
from wcs-twisted besides L{wcs_twisted.interfaces} and L{wcs_twisted.errors}.

  - L{wcs_twisted.toolkit.config}: L{ModuleKey} and the value types, to declare config keys.
  - L{wcs_twisted.toolkit.fields}: reading REST body fields the way the core methods do.
  - L{wcs_twisted.toolkit.sinks}: stream-sink helpers (L{SerialWorker}: slow work off the
    reactor thread, in order, bounded).
  - L{wcs_twisted.toolkit.depacketize}: RTP payloads to media: H.264 access units (RFC 6184),
    SPS parsing, avcC/Annex B, G.711 decoding, Opus durations, RTP clocks on one timeline.
  - L{wcs_twisted.toolkit.aac}: AAC encoding of G.711/Opus audio (PyAV), sound files.
  - L{wcs_twisted.toolkit.matroska}: Matroska files written as they go (PyAV).
  - L{wcs_twisted.toolkit.rtp}: plain RTP packets, built and read (relaying streams between nodes).

The layering test holds modules to this list; the names here are kept stable for them.  This
package imports nothing itself, so a drop-in importing L{wcs_twisted.toolkit.config} to declare its
keys stays light; the media parts load PyAV when imported.
"""
