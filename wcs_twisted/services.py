# -*- test-case-name: tests.test_tap -*-
"""
The services of the tree that only start or stop something: shutdown order, client sessions,
REST hooks and the SIP stack.  The composition root (L{wcs_twisted.tap}) builds them.
"""

from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, succeed

from wcs_twisted.backend.hooks import RestHooks
from wcs_twisted.signalling.protocol import Signalling
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.stream import SIPStreamTransport


class OrderedMultiService(MultiService):
    """
    Stops its children one after another, last added first, each waiting for the one before.

    Clients must hear "going away" and SIP accounts must unregister while the SIP stack and the
    listeners are still up; Twisted's MultiService stops all children at once.
    """

    def stopService(self):
        Service.stopService(self)
        done = succeed(None)
        for service in reversed(list(self)):
            done.addCallback(lambda _, service=service: service.stopService())
        return done


class SessionShutdownService(Service):
    """
    On stop, closes every client session cleanly and waits (boundedly) for the close handshakes.
    """

    def __init__(self, signalling: Signalling, clock, grace: float = 2.0) -> None:
        self.setName("session-shutdown")
        self._signalling = signalling
        self._clock = clock
        self._grace = grace

    def stopService(self):
        super().stopService()
        sessions = self._signalling.sessions
        calls = self._signalling.calls
        if (not self._signalling.channels and not sessions.unregistering and not len(sessions)
                and not (calls is not None and len(calls))):
            return succeed(None)
        self._signalling.close_all()
        if self._signalling.calls is not None:
            self._signalling.calls.hang_up_all("Server shutting down")
        for session in list(sessions):
            # keepAlive sessions too: nobody will reconnect to a server that is going away.
            sessions.close(session, "Server shutting down")
        done: Deferred = Deferred()

        def check() -> None:
            idle = not self._signalling.channels and not sessions.unregistering
            if idle or self._clock.seconds() >= deadline:
                done.callback(None)
            else:
                self._clock.callLater(0.05, check)

        deadline = self._clock.seconds() + self._grace
        self._clock.callLater(0.05, check)
        return done


class HooksService(Service):
    """
    Cancels REST hook requests and retries at shutdown, after the sessions' last events.
    """

    def __init__(self, hooks: RestHooks) -> None:
        self.setName("rest-hooks")
        self.hooks = hooks

    def stopService(self):
        super().stopService()
        return self.hooks.close()


class SIPStackService(Service):
    """
    Stops the SIP stack's timer and open connections at shutdown.
    """

    def __init__(self, stack: SIPStack, streams: list[SIPStreamTransport], proxy=None) -> None:
        self.setName("sip-stack")
        self.stack = stack
        self.streams = streams
        self.proxy = proxy

    def stopService(self):
        super().stopService()
        if self.proxy is not None:
            self.proxy.stop()
        for transports in self.streams:
            transports.close_all()
        self.stack.stop()
