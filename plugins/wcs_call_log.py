# -*- test-case-name: tests.test_modules -*-
"""
Built-in module C{call_log}: an audit log entry for every call status change.

Like every drop-in this file stays tiny (each discovery imports it); the module itself,
L{wcs_twisted.modules_builtin.call_log}, is imported when the module starts.
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from wcs_twisted.interfaces import IWcsModule


@implementer(IPlugin, IWcsModule)
class CallLogModule:
    """
    Starts and stops a L{wcs_twisted.modules_builtin.call_log.CallLog}.
    """

    name = "call_log"

    def __init__(self):
        self._running = None

    def start(self, context):
        from wcs_twisted.modules_builtin.call_log import CallLog

        running = CallLog()
        running.start(context)
        self._running = running

    def stop(self):
        running, self._running = self._running, None
        if running is not None:
            running.stop()


call_log = CallLogModule()
