"""
Built-in module C{rtmp}: streams republished to RTMP servers (REST /push/*,
C{rtmpUrl} of /call/startup).

Like every drop-in this file stays tiny: the implementation is imported when the module starts.
"""

from wcs_twisted.plugin_proxy import LazyModule

rtmp = LazyModule("rtmp", "wcs_twisted.modules_builtin.rtmp.RtmpModule", __name__)
