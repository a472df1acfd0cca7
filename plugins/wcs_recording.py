# -*- test-case-name: tests.modules_builtin.test_recording -*-
"""
Built-in module C{recording}: streams written to Matroska files (REST /recorder/*,
C{sip_record_stream}).

Like every drop-in this file stays tiny (each discovery imports it); the module itself,
L{wcs_twisted.modules_builtin.recording}, with PyAV behind it, is imported when it starts.
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from wcs_twisted.interfaces import IWcsModule


@implementer(IPlugin, IWcsModule)
class RecordingPlugin:
    """
    Starts and stops a L{wcs_twisted.modules_builtin.recording.RecordingModule}.
    """

    name = "recording"

    def __init__(self):
        self._running = None

    def start(self, context):
        from wcs_twisted.modules_builtin.recording import RecordingModule

        running = RecordingModule()
        running.start(context)
        self._running = running

    def stop(self):
        running, self._running = self._running, None
        if running is not None:
            return running.stop()
        return None


recording = RecordingPlugin()
