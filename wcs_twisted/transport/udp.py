# -*- test-case-name: tests.transport.test_udp -*-
"""
SIP over UDP (RFC 3261 18): datagrams in and out of a L{SIPStack}, nothing else.

Keep-alives (CRLFs, NUL bytes) are dropped unanswered; a datagram over the size limit, or one
that filled the socket's read buffer and so may have been cut short, is answered 513 Message Too
Large (RFC 3261 21.5.14) when its header section can be read.  The socket's receive buffer is
raised (to what the kernel allows) so a burst of requests during a pause of the process is
queued instead of dropped, which would cost the peers a retransmission each.

An ICMP error (port or host unreachable) for a datagram we sent ends the transactions sending to
that address at once (RFC 3261 18.4, 17.1.4) instead of after Timer B/F (32 s).  Twisted reports
ICMP errors only on connected UDP sockets, so L{listen_udp} opens a port that asks Linux for them
on its unconnected socket (C{IP_RECVERR}) and reads them, with the address they concern, from the
socket's error queue.

The same port asks the kernel to stamp each datagram with its arrival time (C{SO_TIMESTAMPNS},
read as ancillary data of the C{recvmsg} that reads the datagram: no extra system call), so the
stack knows how long each one waited in the socket's receive buffer and can shed new work that
waited too long (L{wcs_twisted.transport.admission.LoadShedding}).
"""

from __future__ import annotations

import errno
import socket
import struct
import time

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.message import Request, parse_message

#: Receive buffer asked for (Linux caps it at net.core.rmem_max): about 8,000 typical requests.
RECEIVE_BUFFER_SIZE = 4 * 1024 * 1024

#: How far into an oversize datagram we look for the end of its header section.
MAX_HEADER_SCAN = 16384


#: Linux socket options (not in Python's socket module before 3.12): queue ICMP errors.
IP_RECVERR = 11
IPV6_RECVERR = 25

#: struct sock_extended_err (linux/errqueue.h): ee_errno, ee_origin, ee_type, ee_code, pad,
#: ee_info, ee_data.
_EXTENDED_ERROR = struct.Struct("=IBBBBII")

#: How many queued errors one read drains at most (each is one ICMP message).
MAX_ERRORS_PER_READ = 64

#: Linux socket option (asm-generic/socket.h; not in Python's socket module): stamp each
#: datagram with its arrival time, a struct timespec of CLOCK_REALTIME in a control message of
#: the same type.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)

_log = Logger()


class ErrorQueuePort(udp.Port):
    """
    A UDP port that hands ICMP errors for its datagrams to its protocol's C{icmp_error}, and
    each datagram with the seconds it waited to be read to its protocol's
    C{timed_datagram_received} (when its C{wants_arrival_stamps} is true and the kernel stamps
    datagrams: otherwise no stamp is asked for nor parsed per datagram).

    With C{IP_RECVERR} the kernel also makes the next C{sendto} fail with the pending error
    (and not send): a send that fails so drains the queue and is tried once more.

    @ivar wall_clock: the time now, on the clock of the kernel's stamps (CLOCK_REALTIME).
    """

    wall_clock = staticmethod(time.time)
    stamped = False

    def createInternetSocket(self):
        sock = super().createInternetSocket()
        level, option = ((socket.IPPROTO_IPV6, IPV6_RECVERR)
                         if self.addressFamily == socket.AF_INET6
                         else (socket.IPPROTO_IP, IP_RECVERR))
        try:
            sock.setsockopt(level, option, 1)
        except OSError:
            pass  # not Linux: ICMP errors stay unseen, as with a plain port
        if getattr(self.protocol, "wants_arrival_stamps", False):
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                pass  # not Linux: no stamps, shedding by wait is off
            else:
                self.stamped = True
        return sock

    def doRead(self) -> None:
        if self.stamped:
            self._read_stamped()
        else:
            super().doRead()
        self.read_errors()

    def _read_stamped(self) -> None:
        """
        Twisted's C{udp.Port.doRead} with C{recvmsg}: the datagram and its arrival stamp.
        """
        receive, size, deliver = self.socket.recvmsg, self.maxPacketSize, self.protocol
        read = 0
        while read < self.maxThroughput:
            try:
                data, ancillary, _, addr = receive(size, _STAMP_SPACE)
            except OSError as error:
                if error.args[0] in udp._sockErrReadIgnore:
                    return
                if error.args[0] in udp._sockErrReadRefuse:
                    return  # an ICMP error pending: read_errors reports it
                raise
            read += len(data)
            waited = 0.0
            for level, kind, stamp in ancillary:
                if (level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
                        and len(stamp) >= _TIMESPEC.size):
                    seconds, nanoseconds = _TIMESPEC.unpack_from(stamp)
                    waited = self.wall_clock() - seconds - nanoseconds * 1e-9
            try:
                deliver.timed_datagram_received(data, addr[:2], waited)
            except Exception:
                _log.failure("SIP UDP: a datagram from {addr} failed", addr=addr)

    def write(self, datagram: bytes, addr=None):
        try:
            return self.socket.sendto(datagram, addr)
        except ConnectionRefusedError:
            self.read_errors()
        except OSError:
            pass
        return super().write(datagram, addr)  # Twisted's own retries and error mapping

    def read_errors(self) -> None:
        """
        Drain the socket's error queue, reporting each ICMP error with its destination.
        """
        for _ in range(MAX_ERRORS_PER_READ):
            try:
                _, ancillary, _, address = self.socket.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except OSError:
                return  # empty (EAGAIN), or no error queue on this platform
            for _, _, data in ancillary:
                if len(data) >= _EXTENDED_ERROR.size and address:
                    code = _EXTENDED_ERROR.unpack_from(data)[0]
                    try:
                        self.protocol.icmp_error(address[0], address[1], code)
                    except Exception:
                        _log.failure("SIP UDP: reporting an ICMP error failed")


def listen_udp(reactor, port: int, protocol: "SIPDatagramProtocol", interface: str = "",
               maxPacketSize: int = 8192) -> ErrorQueuePort:
    """
    C{reactor.listenUDP}, with a port that reports ICMP errors (L{ErrorQueuePort}).
    """
    listening = ErrorQueuePort(port, protocol, interface, maxPacketSize, reactor)
    listening.startListening()
    return listening


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
        self.stack.listening_started()
        sock = getattr(self.transport, "socket", None)
        if sock is None or not self.receive_buffer_size:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_size)
        except OSError as error:
            self.log.info("SIP UDP receive buffer left as it is: {error}", error=str(error))

    @property
    def wants_arrival_stamps(self) -> bool:
        """
        Whether the port should read kernel arrival stamps: only when the stack sheds by wait
        (C{sip_max_queue_delay_ms}), since each stamp costs a control message and a clock read.
        """
        return bool(self.stack.load.max_queue_delay)

    def stopProtocol(self) -> None:
        self.stack.listening_stopped()

    def icmp_error(self, host: str, port: int, code: int) -> None:
        """
        A datagram to C{host}:C{port} came back as an ICMP error: a transport error there.
        """
        self.log.info("SIP UDP to {host}:{port}: {error}", host=host, port=port,
                      error=errno.errorcode.get(code, str(code)))
        self.stack.transport_error(SIPAddress(self.transport_name, host, port))

    def datagramReceived(self, data: bytes, addr) -> None:
        self.timed_datagram_received(data, addr, 0.0)

    def timed_datagram_received(self, data: bytes, addr, waited: float) -> None:
        """
        A datagram that waited C{waited} seconds in the socket's receive buffer (0: unknown).
        """
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
        self.stack.data_received(data, source, waited)

    def send(self, data: bytes, address: SIPAddress) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, (address.host, address.port))
        except OSError as error:
            self.log.warn("UDP send to {address} failed: {error}", address=str(address),
                          error=str(error))
            self.stack.clock.callLater(0, self.stack.transport_error, address)


class DatagramFamilies:
    """
    The "udp" sender of a stack listening on an IPv4 and an IPv6 socket: a datagram leaves
    by the socket of its destination's family (an IPv4 socket cannot send to an IPv6 peer).
    """

    def __init__(self, ipv4: SIPDatagramProtocol, ipv6: SIPDatagramProtocol | None = None):
        self.ipv4 = ipv4
        self.ipv6 = ipv6

    def send(self, data: bytes, address: SIPAddress) -> None:
        if self.ipv6 is not None and ":" in address.host:
            self.ipv6.send(data, address)
        else:
            self.ipv4.send(data, address)
