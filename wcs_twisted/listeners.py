# -*- test-case-name: tests.test_listeners -*-
"""
A service per listening socket, so that /health can tell when the server is really reachable.

Stream listeners come from endpoints and datagram listeners from C{listenUDP}; both are given as a
zero-argument callable returning a Deferred of the listening port, which keeps this module free of
any reactor.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wcs_twisted.interfaces import IListener


def describe_address(address) -> str:
    """
    'host:port' for an IPv4/IPv6 address object, else its repr.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is None:
        return repr(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(IListener)
class ListenerService(Service):
    """
    Binds on start, unbinds on stop, and reports readiness and errors.
    """

    log = Logger()

    def __init__(self, name: str, listen: Callable[[], Deferred],
                 on_error: Callable[[], None] = lambda: None,
                 on_bind_failure: Callable[[str], None] = lambda message: None) -> None:
        self.setName(name)
        self._listen = listen
        self._on_error = on_error
        self._on_bind_failure = on_bind_failure
        self.port: IListeningPort | None = None
        self.errors = 0
        self._waiting: list[Deferred] = []

    @property
    def ready(self) -> bool:
        return self.port is not None

    @property
    def address(self) -> str | None:
        return describe_address(self.port.getHost()) if self.port is not None else None

    def when_ready(self) -> Deferred:
        """
        A Deferred that fires with the listening port once bound (at once if it already is).
        """
        if self.port is not None:
            return succeed(self.port)
        waiting: Deferred = Deferred()
        self._waiting.append(waiting)
        return waiting

    def record_error(self) -> None:
        """
        Count one error against this listener (also exported as a metric).
        """
        self.errors += 1
        self._on_error()

    def startService(self) -> None:
        super().startService()
        maybeDeferred(self._listen).addCallbacks(self._bound, self._failed)

    def _bound(self, port: IListeningPort) -> None:
        if not self.running:
            port.stopListening()
            return
        self.port = port
        self.log.info("{name} listening on {address}", name=self.name, address=self.address)
        waiting, self._waiting = self._waiting, []
        for deferred in waiting:
            deferred.callback(port)

    def _failed(self, failure: Failure) -> None:
        self.record_error()
        message = f"cannot listen for {self.name}: {failure.getErrorMessage()}"
        self.log.error("{message}", message=message)
        self._on_bind_failure(message)
        waiting, self._waiting = self._waiting, []
        for deferred in waiting:
            deferred.errback(failure)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return maybeDeferred(port.stopListening)
        return None
