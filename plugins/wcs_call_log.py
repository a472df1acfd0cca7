"""
Built-in module C{call_log}: an audit log entry for every call status change.

Like every drop-in this file stays tiny: the implementation is imported when the module starts.
"""

from wcs_twisted.plugin_proxy import LazyModule

call_log = LazyModule("call_log", "wcs_twisted.modules_builtin.call_log.CallLog", __name__)
