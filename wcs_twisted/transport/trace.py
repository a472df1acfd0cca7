# -*- test-case-name: tests.transport.test_trace -*-
"""
The one message-trace hook of the SIP transports: every message in, out, rejected or retransmitted.

Observers get (direction, data, address).  Nothing is logged per message unless asked for
(C{log_messages=True}): formatting and writing one log line costs about 65 us, as much as parsing
and routing the message, so a default per-message log would halve the calls a core can carry.
Rejected messages are logged by the stack itself, once each, whatever this hook does.
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

    @ivar observers: called in order with (direction, data, address); a per-call trace or a test
        appends itself here.
    """

    log = Logger()

    def __init__(self, log_messages: bool = False) -> None:
        self.observers: list[TraceObserver] = []
        if log_messages:
            self.observers.append(self._log_message)

    def record(self, direction: str, data: bytes, address: object) -> None:
        for observer in self.observers:
            observer(direction, data, address)

    def _log_message(self, direction: str, data: bytes, address: object) -> None:
        first_line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        self.log.debug("SIP {direction} {address}: {first_line}", direction=direction,
                       address=str(address), first_line=first_line)
