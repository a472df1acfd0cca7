# -*- test-case-name: tests.transport.test_stream -*-
"""
SIP over TCP and TLS (RFC 3261 18.3): framed by Content-Length, one connection per peer address.

Inbound connections are registered under the peer's address so responses go back on the same
connection; outbound messages to an address with no connection open one (queuing until it is up).
A peer that sends a message over the size caps or garbage that cannot be framed is answered (when
possible) and disconnected.  A double-CRLF keep-alive ping (RFC 5626 4.4.1) is answered with a
single-CRLF pong.

Idle connections must not lock clients out (a thousand silent sockets once did): inbound
connections are capped in all and per source address; a connection that has not sent a whole
SIP message within C{first_message_timeout} is closed, and so is one that has received nothing
(keep-alives count) for C{idle_timeout}; when the cap is reached, the oldest connection that
has not spoken yet makes room for the new one.

Outbound TLS (RFC 3261 26.3.1, RFC 5922) connects to the host name the stack hands over unresolved:
the name goes out as SNI and the server certificate must match it (or the IP literal) and chain to
the configured trust root - the system's CA store when none is configured, never "trust anything".
A name without a port is resolved by the stack (NAPTR/SRV, RFC 3263); the connection then goes to
the SRV target's address, and the certificate must match the domain that was resolved (RFC 5922
4.1: the SRV target name is not what the user asked for), which the stack leaves in
C{server_names}.

A target that never answers the connection (its SYNs dropped) or never finishes the TLS
handshake is a silent target: the connect and the handshake together are bounded by
C{connect_timeout} (the stack's failover silence, C{sip_dns_silence_ms}), after which the
connection attempt fails like a refused one (RFC 3261 17.1.4: its transactions end at once, and
a destination given by name moves to the next SRV target).  The OS's own connect timeout (two
minutes on Linux) and a 10 s default would outlast the budget UDP gets for the same silence.
"""

from __future__ import annotations

from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.framing import PONG, StreamFramer
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.transport.trace import IN


class ServerNames:
    """
    The domain each resolved TLS target stands for (bounded: targets come from DNS answers).
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._names: dict[SIPAddress, str] = {}

    def remember(self, target: SIPAddress, name: str) -> None:
        if len(self._names) >= self.LIMIT and target not in self._names:
            self._names.clear()
        self._names[target] = name

    def get(self, target: SIPAddress, default: str) -> str:
        return self._names.get(target, default)


@implementer(IHandshakeListener)
class SIPStreamProtocol(Protocol):
    """
    One SIP stream connection: bytes -> framer -> stack.

    @ivar handshake_deadline: for an outbound TLS connection, when its handshake must be done
        (the rest of the connect budget); None otherwise.
    """

    handshake_deadline: float | None = None

    def __init__(self, transports: "SIPStreamTransport", outbound_to: SIPAddress | None = None):
        self.transports = transports
        self.framer = StreamFramer(max_message_size=transports.max_message_size)
        self.address: SIPAddress | None = outbound_to
        self.inbound = False
        self.pongs_sent = 0
        self._failed = False
        # An outbound connection is ours: only the idle timeout applies to it.
        self.spoken = outbound_to is not None
        self.last_received = 0.0
        self._idle_call = None

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        if self.address is None:
            self.address = SIPAddress(self.transports.name, peer.host, peer.port)
            if not self.transports.accept(self):
                self.transport.loseConnection()
                self.address = None
                return
        self.last_received = self.transports.reactor.seconds()
        self._watch()
        if self.handshake_deadline is not None:
            self._handshake_call = self.transports.reactor.callLater(
                max(0.0, self.handshake_deadline - self.last_received), self._handshake_late)
        self.transports.connected(self)

    _handshake_call = None

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is done: the connect budget no longer applies.
        """
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None

    def _handshake_late(self) -> None:
        self._handshake_call = None
        self.transports.timed_out += 1
        self.transports.log.info("SIP {name} handshake with {address} timed out",
                                 name=self.transports.name, address=str(self.address))
        self.transport.abortConnection()

    def _watch(self) -> None:
        """
        (Re)arm the one idle timer: the first-message timeout, then the idle timeout.
        """
        transports = self.transports
        delay = transports.idle_timeout if self.spoken else transports.first_message_timeout
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        if delay > 0:
            self._idle_call = transports.reactor.callLater(delay, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_call = None
        transports = self.transports
        if self.spoken:
            quiet = transports.reactor.seconds() - self.last_received
            if quiet < transports.idle_timeout:
                self._idle_call = transports.reactor.callLater(transports.idle_timeout - quiet,
                                                               self._idle_check)
                return
        transports.timed_out += 1
        transports.log.debug("closing idle SIP {name} connection {address}",
                             name=transports.name, address=str(self.address))
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.address is None or self._failed:
            return
        stack = self.transports.stack
        framer = self.framer
        self.last_received = stack.clock.seconds()
        # Traced per read: the framer hands over parsed messages, not their bytes.
        stack.trace.record(IN, data, self.address)
        try:
            framer.receive_data(data)
            while True:
                message = framer.next_message()
                if message is None:
                    break
                if not self.spoken:
                    self.spoken = True
                    self.transports.spoke(self)
                    self._watch()
                stack.message_received(message, self.address)
        except RemoteProtocolError as error:
            # The stream cannot be resynchronised (RFC 4475 3.1.2.3): answer if we can, close.
            self._failed = True
            stack.reject(data[:2048], self.address, error)
            self.transport.loseConnection()
            return
        finally:
            self._answer_pings()

    def _answer_pings(self) -> None:
        """
        RFC 5626 4.4.1: one CRLF pong for each double-CRLF ping the framer saw.
        """
        missing = self.framer.pings_received - self.pongs_sent
        if missing > 0 and not self._failed:
            self.pongs_sent += missing
            self.transport.write(PONG * missing)

    def connectionLost(self, reason) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        self.handshakeCompleted()
        if self.address is not None:
            self.transports.disconnected(self)

    def send(self, data: bytes) -> None:
        self.transport.write(data)


#: Seconds an outbound connection and its TLS handshake may take by default.
CONNECT_TIMEOUT = 10.0


class SIPStreamTransport(Factory):
    """
    The set of stream connections of one transport ("tcp" or "tls"), as a MessageSender.

    @ivar resolves_names: a "tls" transport takes host names unresolved from the stack, since
        the name is what the certificate is checked against.
    """

    log = Logger()

    def __init__(self, stack, reactor, name: str = "tcp", max_connections: int = 1024,
                 max_message_size: int = 65536, connect=None, trust_root=None, *,
                 max_connections_per_source: int = 64, first_message_timeout: float = 10.0,
                 idle_timeout: float = 3600.0, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        """
        @param trust_root: for "tls", the L{IOpenSSLTrustRoot} server certificates must chain
            to; None means the platform's CA store.
        @param max_connections_per_source: inbound connections one IP address may hold.
        @param first_message_timeout: seconds a new inbound connection (TLS handshake included)
            has to send a whole SIP message before it is closed; 0 for no limit.
        @param idle_timeout: seconds a connection may receive nothing, keep-alives included,
            before it is closed; 0 for no limit.
        @param connect_timeout: seconds an outbound connection may take to be up, TLS
            handshake included (0: L{CONNECT_TIMEOUT}).
        """
        self.stack = stack
        self.reactor = reactor
        self.name = name
        self.max_connections = max_connections
        self.max_connections_per_source = max_connections_per_source
        self.first_message_timeout = first_message_timeout
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout or CONNECT_TIMEOUT
        self.max_message_size = max_message_size
        self.trust_root = trust_root
        self.resolves_names = name == "tls"
        self.server_names = ServerNames() if name == "tls" else None
        self._connect = connect or (self._connect_tls if name == "tls" else self._connect_tcp)
        self.connections: dict[SIPAddress, SIPStreamProtocol] = {}
        self._pending: dict[SIPAddress, list[bytes]] = {}
        self.inbound = 0
        self.refused = 0
        self.timed_out = 0
        self.evicted = 0
        self._per_source: dict[str, int] = {}
        # Inbound connections that have not sent a whole message yet, oldest first.
        self._silent: dict[SIPStreamProtocol, None] = {}

    def startFactory(self) -> None:
        self.stack.listening_started()

    def stopFactory(self) -> None:
        self.stack.listening_stopped()

    def buildProtocol(self, addr) -> SIPStreamProtocol:
        return SIPStreamProtocol(self)

    def accept(self, protocol: SIPStreamProtocol) -> bool:
        """
        Admit an inbound connection within the caps, or refuse it (counted, logged at debug: a
        flood must not become a flood of log lines).
        """
        host = protocol.address.host
        if self._per_source.get(host, 0) >= self.max_connections_per_source:
            return self._refuse(protocol, "from that address")
        if self.inbound >= self.max_connections:
            if not self._silent:
                return self._refuse(protocol, "in all")
            oldest = next(iter(self._silent))
            self._uncount(oldest)
            self.evicted += 1
            oldest.transport.loseConnection()
        self.inbound += 1
        self._per_source[host] = self._per_source.get(host, 0) + 1
        self._silent[protocol] = None
        protocol.inbound = True
        return True

    def _refuse(self, protocol: SIPStreamProtocol, scope: str) -> bool:
        self.refused += 1
        self.log.debug("refusing SIP {name} connection from {address}: too many {scope}",
                       name=self.name, address=str(protocol.address), scope=scope)
        return False

    def _uncount(self, protocol: SIPStreamProtocol) -> None:
        if not protocol.inbound:
            return
        protocol.inbound = False
        self.inbound -= 1
        self._silent.pop(protocol, None)
        host = protocol.address.host
        left = self._per_source.get(host, 1) - 1
        if left > 0:
            self._per_source[host] = left
        else:
            self._per_source.pop(host, None)

    def spoke(self, protocol: SIPStreamProtocol) -> None:
        """
        C{protocol} delivered its first whole message: it may no longer be evicted.
        """
        self._silent.pop(protocol, None)

    def connected(self, protocol: SIPStreamProtocol) -> None:
        self.connections[protocol.address] = protocol
        for data in self._pending.pop(protocol.address, []):
            protocol.send(data)

    def disconnected(self, protocol: SIPStreamProtocol) -> None:
        self._uncount(protocol)
        if self.connections.get(protocol.address) is protocol:
            del self.connections[protocol.address]
        self.stack.transport_error(protocol.address)

    def send(self, data: bytes, address: SIPAddress) -> None:
        connection = self.connections.get(address)
        if connection is not None:
            connection.send(data)
            return
        if address in self._pending:
            self._pending[address].append(data)
            return
        self._pending[address] = [data]
        self._connect(address).addErrback(self._connect_failed, address)

    def _outbound_factory(self, address: SIPAddress, tls: bool = False) -> Factory:
        deadline = self.reactor.seconds() + self.connect_timeout if tls else None

        def build() -> SIPStreamProtocol:
            protocol = SIPStreamProtocol(self, outbound_to=address)
            protocol.handshake_deadline = deadline
            return protocol

        return Factory.forProtocol(build)

    def _connect_tcp(self, address: SIPAddress):
        endpoint = TCP4ClientEndpoint(self.reactor, address.host, address.port,
                                      timeout=self.connect_timeout)
        return endpoint.connect(self._outbound_factory(address))

    def _connect_tls(self, address: SIPAddress):
        """
        TLS to C{address.host}: SNI and certificate check against that name (RFC 5922 7.2).
        """
        options = optionsForClientTLS(self.server_names.get(address, address.host),
                                      trustRoot=self.trust_root)
        endpoint = wrapClientTLS(options, HostnameEndpoint(
            self.reactor, address.host, address.port, timeout=self.connect_timeout))
        return endpoint.connect(self._outbound_factory(address, tls=True))

    def _connect_failed(self, failure, address: SIPAddress) -> None:
        self._pending.pop(address, None)
        self.log.info("SIP {name} connect to {address} failed: {error}", name=self.name,
                      address=str(address), error=failure.getErrorMessage())
        self.stack.transport_error(address)

    def close_all(self) -> None:
        for protocol in list(self.connections.values()):
            protocol.transport.loseConnection()
