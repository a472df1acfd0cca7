"""
Built-in module C{recording}: streams written to Matroska files (REST /recorder/*, C{sip_record_stream}).

Like every drop-in this file stays tiny: the implementation is imported when the module starts;
the configuration keys are declared here, so the configuration is checked before that.
"""

from wcs_twisted.plugin_proxy import LazyModule
from wcs_twisted.toolkit.config import NON_EMPTY, ModuleKey

recording = LazyModule("recording", "wcs_twisted.modules_builtin.recorder.RecordingModule",
                       __name__, (
    ModuleKey("record_dir", NON_EMPTY, "records",
              "Folder the recording module writes its .mkv files to (WCS_HOME/records in WCS); "
              "relative to the working directory."),
    ModuleKey("record_file_template", NON_EMPTY, "{streamName}-{startTime}",
              "Recording file name: {streamName}, {startTime} (ms), {mediaSessionId}, "
              "{sessionId}, {appKey}, {callId}; .mkv is added."),
))
