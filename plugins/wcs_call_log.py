"""
Built-in module C{call_log}: an audit log entry for every call status change.

Like every drop-in this file stays tiny: the implementation is imported when the module starts;
the configuration keys are declared here, so the configuration is checked before that.
"""

from wcs_twisted.plugin_proxy import LazyModule
from wcs_twisted.toolkit.config import STRING, ModuleKey

call_log = LazyModule("call_log", "wcs_twisted.modules_builtin.call_log.CallLog", __name__, (
    ModuleKey("call_log_file", STRING, "",
              "The call_log module also appends every call status change to this file as one "
              "JSON object per line; empty means log events only."),
))
