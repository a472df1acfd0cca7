# -*- test-case-name: tests.sip.test_framing -*-
"""
Finding message boundaries in a SIP byte stream (TCP, TLS).

Stream transports carry messages back to back, so the receiver must frame
them: the header section ends at the first empty line and the body is exactly
Content-Length octets, which is therefore mandatory on streams (RFC 3261
18.3).  L{StreamFramer} does this with h11's API shape: the adapter feeds
whatever arrived with L{StreamFramer.receive_data} and calls
L{StreamFramer.next_message} until it returns L{None} (need more data).

Memory is bounded: a header section longer than C{max_header_size} is a 400
and a message longer than C{max_message_size} a 413, both raised as soon as
the buffered bytes prove it, before the rest arrives.  After an error the
stream cannot be resynchronised (RFC 4475 3.1.2.3: "the framing error is not
recoverable, and the connection should be closed"), so every later call
raises the same error.

CRLFs between messages are keep-alives (RFC 5626 4.4.1): a double CRLF is a
"ping" the server must answer with a single CRLF "pong".  They never reach
the parser; L{StreamFramer.pings_received} and
L{StreamFramer.pongs_received} count them so the adapter can answer pings
(L{PONG}) and note pongs.
"""

from __future__ import annotations

from typing import Optional

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.message import Message, _build, _parse_head

__all__ = ["StreamFramer", "PING", "PONG"]

#: RFC 5626 4.4.1 keep-alive request and answer on stream transports.
PING = b"\r\n\r\n"
PONG = b"\r\n"


class StreamFramer:
    """
    Split a SIP byte stream into messages.

    @ivar pings_received: double-CRLF keep-alives seen between messages.
    @ivar pongs_received: single-CRLF keep-alives seen between messages.  A
        lone CRLF at the end of the buffered data counts as a pong at once
        (pongs are sent as one write); a ping split across two reads is
        therefore counted as two pongs.
    """

    def __init__(self, max_message_size: int = 65536, max_header_size: int = 16384) -> None:
        if max_message_size <= 0 or max_header_size <= 0:
            raise LocalProtocolError("size limits must be positive")
        self.max_message_size = max_message_size
        # A header section can never be larger than the whole message.
        self.max_header_size = min(max_header_size, max_message_size)
        self.pings_received = 0
        self.pongs_received = 0
        self._buffer = bytearray()
        self._scan_from = 0
        self._head: Optional[tuple] = None
        self._body_start = 0
        self._error: Optional[RemoteProtocolError] = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """
        True once C{receive_data(b"")} reported the end of the stream.
        """
        return self._closed

    @property
    def buffered(self) -> int:
        """
        The number of received bytes not yet returned as messages.
        """
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """
        Add bytes received from the peer; C{b""} means the peer closed.
        """
        if self._closed:
            if data:
                raise LocalProtocolError("data received after the end of the stream")
            return
        if not data:
            self._closed = True
            return
        self._buffer += data

    def next_message(self) -> Optional[Message]:
        """
        Return the next complete message, or L{None} until more data arrives.

        @raise RemoteProtocolError: malformed framing or message (400),
            missing Content-Length (400), a header section over
            C{max_header_size} (400) or a message over C{max_message_size}
            (413), or the stream ended inside a message (400).
        """
        if self._error is not None:
            raise self._error
        try:
            message = self._next()
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        if message is None and self._closed and self._buffer:
            self._error = RemoteProtocolError(
                f"connection closed with {len(self._buffer)} bytes of an incomplete message", 400
            )
            raise self._error
        return message

    def _skip_keepalives(self) -> bool:
        """
        Drop CRLFs before a start line, counting pings and pongs.  Return
        False when the buffer holds the start of a possible ping.
        """
        buffer = self._buffer
        while buffer[:2] == b"\r\n":
            if buffer[:4] == PING:
                self.pings_received += 1
                del buffer[:4]
            elif len(buffer) == 3 and buffer[2:3] == b"\r":
                return False
            else:
                self.pongs_received += 1
                del buffer[:2]
        if buffer[:1] == b"\r" and len(buffer) == 1:
            return False
        return True

    def _next(self) -> Optional[Message]:
        buffer = self._buffer
        if self._head is None:
            if not self._skip_keepalives() or not buffer:
                return None
            end = buffer.find(b"\r\n\r\n", self._scan_from)
            if end < 0:
                if len(buffer) > self.max_header_size:
                    raise RemoteProtocolError(
                        f"header section exceeds {self.max_header_size} bytes", 400
                    )
                # The terminator may straddle the next read.
                self._scan_from = max(0, len(buffer) - 3)
                return None
            self._scan_from = 0
            if end > self.max_header_size:
                raise RemoteProtocolError(
                    f"header section exceeds {self.max_header_size} bytes", 400
                )
            start, headers, content_length = _parse_head(bytes(buffer[:end]))
            if content_length is None:
                exc = RemoteProtocolError(
                    "Content-Length is mandatory on stream transports (RFC 3261 18.3)", 400
                )
                exc.headers = headers
                exc.request_method = start[1] if start[0] == "request" else None
                raise exc
            self._body_start = end + 4
            if self._body_start + content_length > self.max_message_size:
                exc = RemoteProtocolError(
                    f"message of {self._body_start + content_length} bytes exceeds "
                    f"{self.max_message_size}",
                    413,
                )
                exc.headers = headers
                exc.request_method = start[1] if start[0] == "request" else None
                raise exc
            self._head = (start, headers, content_length)
        start, headers, content_length = self._head
        end_of_message = self._body_start + content_length
        if len(buffer) < end_of_message:
            return None
        body = bytes(buffer[self._body_start : end_of_message])
        del buffer[:end_of_message]
        self._head = None
        return _build(start, headers, body)
