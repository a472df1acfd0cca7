# -*- test-case-name: tests.media.test_datagram_reading -*-
"""
How a media leg's UDP port is read: one datagram per wake-up, called by the event loop
directly.

A leg's socket gets one packet every 20 ms, and with independent callers nearly every
packet is an event-loop wake-up of its own.  Per wake-up, Twisted's asyncio reactor runs
the port's reader through C{callWithLogger} (a log context pushed and popped) and
C{_readOrWrite}, and C{udp.Port.doRead} reads until the socket says EAGAIN: a second,
failing C{recvfrom} and an exception for nearly every media packet.  Reading one datagram
per wake-up leaves the rest to the next loop iteration (epoll is level-triggered, so a
socket with more queued is reported again, beside every other ready socket); calling
C{doRead} straight from the loop skips the log context.  In-process
(C{bench/transcode_path.py}) a wake-up for one datagram went from ~8.5 to ~4.8 us.

Only the port's receive side changes; C{Port.doRead} still reads, so socket errors are
handled as Twisted handles them.  On any other reactor, or a test double without a socket,
only the one-datagram limit applies (or nothing).
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.logger import Logger

__all__ = ["read_one_datagram_per_wakeup"]

log = Logger()


def read_one_datagram_per_wakeup(reactor, port) -> Optional[Callable[[], None]]:
    """
    Have C{port} (a listening C{udp.Port} of C{reactor}) read one datagram per wake-up,
    from the asyncio loop directly when C{reactor} is Twisted's asyncio reactor.

    @return: the function the loop now calls when the port is readable, or C{None} when
        the reactor keeps its own.
    """
    if not hasattr(port, "maxThroughput"):
        return None
    # doRead stops once it has read this many bytes: after the first datagram.
    port.maxThroughput = 1
    loop = getattr(reactor, "_asyncioEventloop", None)
    readers = getattr(reactor, "_readers", None)
    if loop is None or readers is None or port not in readers:
        return None
    do_read = port.doRead

    def read() -> None:
        try:
            do_read()
        except Exception:
            # Give the port back to the reactor's own reader, which closes it if the
            # error persists (what it does with any port whose read fails).
            log.failure("Reading {port} failed", port=port)
            reactor.removeReader(port)
            reactor.addReader(port)

    # Replaces the reactor's callback for this descriptor; the reactor still tracks the
    # port as a reader, so stopListening unregisters it as usual.
    loop.add_reader(readers[port], read)
    return read
