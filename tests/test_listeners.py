"""
Tests for L{wcs_twisted.listeners.ListenerService}, with in-memory ports.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase


from wcs_twisted.listeners import ListenerService


class MemoryPort:
    """
    A listening port that records being stopped.
    """

    def __init__(self):
        self.stopped = False

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 8080)

    def stopListening(self):
        self.stopped = True
        return succeed(None)


class ListenerServiceTests(SynchronousTestCase):
    """
    Readiness and errors of one listener.
    """

    def test_ready_after_bind(self):
        """
        Ready with its address once bound; unbound and not ready after stop.
        """
        port = MemoryPort()
        pending = Deferred()
        service = ListenerService("ws", lambda: pending)
        waiting = service.when_ready()
        service.startService()
        self.assertFalse(service.ready)
        pending.callback(port)
        self.assertTrue(service.ready)
        self.assertEqual(service.address, "127.0.0.1:8080")
        self.assertIs(self.successResultOf(waiting), port)
        self.successResultOf(service.stopService())
        self.assertTrue(port.stopped)
        self.assertFalse(service.ready)

    def test_bind_failure_is_reported(self):
        """
        A failed bind counts an error and reports one line naming the listener.
        """
        reports, counted = [], []
        service = ListenerService("http", lambda: fail(OSError("Address already in use")),
                                  on_error=lambda: counted.append(1),
                                  on_bind_failure=reports.append)
        waiting = service.when_ready()
        service.startService()
        self.assertEqual(reports, ["cannot listen for http: Address already in use"])
        self.assertEqual((service.errors, counted), (1, [1]))
        self.failureResultOf(waiting, OSError)
        self.flushLoggedErrors(OSError)

    def test_bound_after_stop_is_released(self):
        """
        A port that arrives after stopService is closed at once.
        """
        port, pending = MemoryPort(), Deferred()
        service = ListenerService("ws", lambda: pending)
        service.startService()
        service.stopService()
        pending.callback(port)
        self.assertTrue(port.stopped)
        self.assertFalse(service.ready)
