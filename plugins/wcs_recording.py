"""
Built-in module C{recording}: streams written to Matroska files (REST /recorder/*, C{sip_record_stream}).

Like every drop-in this file stays tiny: the implementation is imported when the module starts.
"""

from wcs_twisted.plugin_proxy import LazyModule

recording = LazyModule("recording", "wcs_twisted.modules_builtin.recording.RecordingModule", __name__)
