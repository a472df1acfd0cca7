# -*- test-case-name: tests.modules_builtin.test_recording -*-
"""
Helpers for stream sinks (L{wcs_twisted.interfaces.IStreamSink}) that do slow work.

A sink's C{packet_received} runs on the reactor thread for every packet, so anything slow (disk
writes, muxing) goes to another thread, in order and with a bounded backlog: L{SerialWorker}.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed

__all__ = ["MAX_BACKLOG", "SerialWorker"]

#: Items waiting for the worker thread beyond this many are refused (about 20 s of media).
MAX_BACKLOG = 2000


class SerialWorker:
    """
    Runs jobs in submission order on another thread: one batch at a time, bounded backlog.

    @param run: runs a callable away from the reactor thread and returns a Deferred of its
        result (C{deferToThreadPool} on the reactor's pool; a synchronous call in unit tests).
    @param handle: called (on that thread) with each batch, a list of submitted items.
    @param limit: items waiting beyond this are refused (L{submit} returns False).
    """

    def __init__(self, run: Callable[[Callable[[], Any]], Deferred],
                 handle: Callable[[list], None], limit: int = MAX_BACKLOG) -> None:
        self._run = run
        self._handle = handle
        self._limit = limit
        self._queue: list = []
        self._busy = False
        self._idle: list[Deferred] = []
        #: The failure of a batch, after which nothing more is run.
        self.failure = None
        #: Items refused because the backlog was full.
        self.dropped = 0

    def submit(self, item, force: bool = False) -> bool:
        """
        Queue C{item}; C{force} bypasses the backlog limit (for control items).

        @return: False if it was refused (backlog full, or the worker failed).
        """
        if self.failure is not None:
            return False
        if not force and len(self._queue) >= self._limit:
            self.dropped += 1
            return False
        self._queue.append(item)
        if not self._busy:
            self._next()
        return True

    def _next(self) -> None:
        batch, self._queue = self._queue, []
        self._busy = True
        running = self._run(lambda: self._handle(batch))
        running.addCallbacks(self._done, self._failed)

    def _done(self, _: object) -> None:
        self._busy = False
        if self._queue:
            self._next()
        else:
            self._fire_idle()

    def _failed(self, failure) -> None:
        self._busy = False
        self.failure = failure
        self._queue = []
        self._fire_idle()

    def _fire_idle(self) -> None:
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            waiter.callback(None)

    def idle(self) -> Deferred:
        """
        A Deferred that fires once every submitted item has been handled (or the worker failed).
        """
        if not self._busy:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._idle.append(waiter)
        return waiter
