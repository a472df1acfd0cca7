# -*- test-case-name: tests.modules_builtin.test_rtmp -*-
"""
Built-in module C{rtmp}: streams republished to RTMP servers (REST /push/*, C{rtmpUrl} of
/call/startup).

Like every drop-in this file stays tiny (each discovery imports it); the module itself,
L{wcs_twisted.modules_builtin.rtmp}, with PyAV behind it, is imported when it starts.
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from wcs_twisted.interfaces import IWcsModule


@implementer(IPlugin, IWcsModule)
class RtmpPlugin:
    """
    Starts and stops a L{wcs_twisted.modules_builtin.rtmp.RtmpModule}.
    """

    name = "rtmp"

    def __init__(self):
        self._running = None

    def start(self, context):
        from wcs_twisted.modules_builtin.rtmp import RtmpModule

        running = RtmpModule()
        running.start(context)
        self._running = running

    def stop(self):
        running, self._running = self._running, None
        if running is not None:
            return running.stop()
        return None


rtmp = RtmpPlugin()
