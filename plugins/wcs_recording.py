"""
Built-in module C{recording}: streams written to WebM/Matroska files (REST /recorder/*,
C{publishStream{record:true}}, C{sip_record_stream}), served at /client/records/.

Like every drop-in this file stays tiny: the implementation is imported when the module starts;
the configuration keys are declared here, so the configuration is checked before that.
"""

from wcs_twisted.plugin_proxy import LazyModule
from wcs_twisted.toolkit.config import NON_EMPTY, ModuleKey

recording = LazyModule("recording", "wcs_twisted.modules_builtin.recorder.RecordingModule",
                       __name__, (
    ModuleKey("record_dir", NON_EMPTY, "records",
              "Folder the recording module writes its .webm/.mkv files to and serves at "
              "/client/records/ (WCS_HOME/records in WCS); relative to the working directory."),
    ModuleKey("record_file_template", NON_EMPTY, "{streamName}-{startTime}",
              "Recording file name: {streamName}, {startTime} (ms), {mediaSessionId}, "
              "{sessionId}, {appKey}, {callId}; .webm (VP8/Opus) or .mkv is added."),
))
