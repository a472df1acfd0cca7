"""
Tests for L{wcs_twisted.transport.trace}.
"""

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.transport.trace import IN, OUT, MessageTrace

ADDRESS = SIPAddress("udp", "10.0.0.9", 5070)
MESSAGE = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK1\r\n\r\n"


class MessageTraceTests(SynchronousTestCase):
    """
    The message trace hook: observers, and the optional per-message log.
    """

    def test_observers_see_every_message(self):
        """
        Each recorded message reaches every observer, in order, with direction and address.
        """
        trace = MessageTrace()
        seen = []
        trace.observers.append(lambda *entry: seen.append(("first",) + entry))
        trace.observers.append(lambda *entry: seen.append(("second",) + entry))
        trace.record(IN, MESSAGE, ADDRESS)
        self.assertEqual(seen, [("first", IN, MESSAGE, ADDRESS), ("second", IN, MESSAGE, ADDRESS)])

    def test_no_per_message_log_by_default(self):
        """
        By default nothing is logged per message (the hot path stays a loop over no observers).
        """
        trace = MessageTrace()
        with capturedLogs() as events:
            trace.record(OUT, MESSAGE, ADDRESS)
        self.assertEqual((trace.observers, list(events)), ([], []))

    def test_log_messages_logs_first_line_at_debug(self):
        """
        With log_messages, each message is logged once at debug level with its start line.
        """
        trace = MessageTrace(log_messages=True)
        with capturedLogs() as events:
            trace.record(OUT, MESSAGE, ADDRESS)
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.debug)
        self.assertEqual((event["direction"], event["address"], event["first_line"]),
                         (OUT, "udp:10.0.0.9:5070", "OPTIONS sip:x SIP/2.0"))
