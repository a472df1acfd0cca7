"""
Built-in module C{rtmp}: streams republished to RTMP servers (REST /push/*,
C{rtmpUrl} of /call/startup).

Like every drop-in this file stays tiny: the implementation is imported when the module starts;
the configuration keys are declared here, so the configuration is checked before that.
"""

from wcs_twisted.plugin_proxy import LazyModule
from wcs_twisted.toolkit.config import NON_EMPTY, STRING, ModuleKey

rtmp = LazyModule("rtmp", "wcs_twisted.modules_builtin.rtmp.RtmpModule", __name__, (
    ModuleKey("media_dir", NON_EMPTY, "media",
              "Folder of the sound files that /push/sound_on plays (WCS_HOME/media in WCS)."),
    ModuleKey("rtmp_transponder_stream_name_prefix", STRING, "rtmp_",
              "Put before a stream's name to name it on the RTMP server: /push/startup "
              "streamName, /call/startup rtmpStream (WCS key; the official pages expect rtmp_). "
              "Empty: the name as given."),
))
