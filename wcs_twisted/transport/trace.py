# -*- test-case-name: tests.transport.test_stack -*-
"""
The one message-trace hook of the SIP transports: every message in, out, rejected or retransmitted.

Observers get (direction, data, address); the default observer logs at debug level, and a
per-call trace can subscribe later.  Nothing here runs when no one listens beyond one loop.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

#: Directions a traced message can have.
IN, OUT, BAD, RETRANSMIT = "in", "out", "bad", "retransmit"

TraceObserver = Callable[[str, bytes, object], None]


class MessageTrace:
    """
    Fan-out of traced SIP messages to observers.
    """

    log = Logger()

    def __init__(self, log_messages: bool = True) -> None:
        self.observers: list[TraceObserver] = []
        if log_messages:
            self.observers.append(self._log_message)

    def record(self, direction: str, data: bytes, address: object) -> None:
        for observer in self.observers:
            observer(direction, data, address)

    def _log_message(self, direction: str, data: bytes, address: object) -> None:
        first_line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        if direction == BAD:
            self.log.info("SIP {direction} {address}: {first_line}", direction=direction,
                          address=str(address), first_line=first_line)
        else:
            self.log.debug("SIP {direction} {address}: {first_line}", direction=direction,
                           address=str(address), first_line=first_line)
