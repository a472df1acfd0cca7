# -*- test-case-name: tests.transport.test_udp -*-
"""
SIP over UDP (RFC 3261 18): datagrams in and out of a L{SIPStack}, nothing else.
"""

from __future__ import annotations

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.address import SIPAddress


class SIPDatagramProtocol(DatagramProtocol):
    """
    Hands each datagram to the stack; sends what the stack gives it.
    """

    log = Logger()

    def __init__(self, stack, max_message_size: int = 65536, transport_name: str = "udp") -> None:
        self.stack = stack
        self.max_message_size = max_message_size
        self.transport_name = transport_name

    def datagramReceived(self, data: bytes, addr) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # keep-alive (RFC 5626 CRLF, or NAT pings of null bytes)
        source = SIPAddress(self.transport_name, addr[0], addr[1])
        if len(data) > self.max_message_size:
            self.stack.reject(data[:2048], source,
                              RemoteProtocolError("message too large", status_hint=513))
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
