# -*- test-case-name: tests.transport.test_udp -*-
"""
SIP over UDP (RFC 3261 18): datagrams in and out of a L{SIPStack}, nothing else.

Keep-alives (CRLFs, NUL bytes) are dropped unanswered; a datagram over the size limit, or one
that filled the socket's read buffer and so may have been cut short, is answered 513 Message Too
Large (RFC 3261 21.5.14) when its header section can be read.  The socket's receive buffer is
raised (to what the kernel allows) so a burst of requests during a pause of the process is
queued instead of dropped, which would cost the peers a retransmission each.
"""

from __future__ import annotations

import socket

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.message import Request, parse_message

#: Receive buffer asked for (Linux caps it at net.core.rmem_max): about 8,000 typical requests.
RECEIVE_BUFFER_SIZE = 4 * 1024 * 1024

#: How far into an oversize datagram we look for the end of its header section.
MAX_HEADER_SCAN = 16384


def oversize_error(data: bytes) -> RemoteProtocolError:
    """
    A 513 error for an oversize request, carrying the headers read from its header section so
    the stack can answer it (L{wcs_twisted.sip.message.error_response}).
    """
    error = RemoteProtocolError(f"message of {len(data)} bytes is too large", status_hint=513)
    end = data.find(b"\r\n\r\n", 0, MAX_HEADER_SCAN)
    if end < 0:
        return error
    try:
        message = parse_message(data[:end + 4])
    except RemoteProtocolError as partial:  # e.g. its Content-Length points past the head
        error.headers, error.request_method = partial.headers, partial.request_method
    else:
        if isinstance(message, Request):
            error.headers, error.request_method = message.headers, message.method
    return error


class SIPDatagramProtocol(DatagramProtocol):
    """
    Hands each datagram to the stack; sends what the stack gives it.
    """

    log = Logger()

    def __init__(self, stack, max_message_size: int = 65536, transport_name: str = "udp",
                 receive_buffer_size: int = RECEIVE_BUFFER_SIZE) -> None:
        self.stack = stack
        self.max_message_size = max_message_size
        self.transport_name = transport_name
        self.receive_buffer_size = receive_buffer_size

    def startProtocol(self) -> None:
        sock = getattr(self.transport, "socket", None)
        if sock is None or not self.receive_buffer_size:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_size)
        except OSError as error:
            self.log.info("SIP UDP receive buffer left as it is: {error}", error=str(error))

    def datagramReceived(self, data: bytes, addr) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # keep-alive (RFC 5626 CRLF, or NAT pings of null bytes)
        source = SIPAddress(self.transport_name, addr[0], addr[1])
        size = len(data)
        # A datagram that filled the port's read buffer may have been cut short by the kernel:
        # as oversize as one that is visibly over the limit.
        if size > self.max_message_size or size >= getattr(self.transport, "maxPacketSize",
                                                           size + 1):
            self.stack.reject(data[:2048], source, oversize_error(data))
            return
        self.stack.data_received(data, source)

    def send(self, data: bytes, address: SIPAddress) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, (address.host, address.port))
        except OSError as error:
            self.log.warn("UDP send to {address} failed: {error}", address=str(address),
                          error=str(error))
            self.stack.clock.callLater(0, self.stack.transport_error, address)
