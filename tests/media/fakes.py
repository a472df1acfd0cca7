"""
Fakes for the media tests: a UDP reactor without sockets.
"""

from zope.interface import implementer

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP, IUDPTransport
from twisted.internet.task import Clock


@implementer(IUDPTransport, IListeningPort)
class FakeUDPPort:
    """
    A bound UDP port that records what is written to it.
    """

    def __init__(self, reactor, port, protocol, interface):
        self.reactor = reactor
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.written = []
        self.listening = True

    def startListening(self):
        self.protocol.makeConnection(self)

    def stopListening(self):
        if self.listening:
            self.listening = False
            del self.reactor.bound[self.port]
            self.protocol.doStop()

    def write(self, datagram, addr=None):
        self.written.append((bytes(datagram), addr))

    def connect(self, host, port):
        raise NotImplementedError()

    def getHost(self):
        return IPv4Address("UDP", self.interface, self.port)

    def setBroadcastAllowed(self, enabled):
        pass

    def getBroadcastAllowed(self):
        return False


class FakeSocket:
    """
    The socket behind a fake port: records C{sendto}, or raises C{error}.
    """

    def __init__(self):
        self.sent = []
        self.error = None

    def sendto(self, datagram, addr):
        if self.error is not None:
            raise self.error
        self.sent.append((bytes(datagram), addr))
        return len(datagram)


@implementer(IReactorUDP)
class FakeUDPReactor(Clock):
    """
    A L{Clock} that can also bind fake UDP ports; C{busy} ports refuse.
    With C{sockets}, every port has a L{FakeSocket} as C{socket}, as
    Twisted's C{udp.Port} has a real one.
    """

    def __init__(self, sockets=False):
        super().__init__()
        self.sockets = sockets
        self.bound = {}
        self.busy = set()
        self._ephemeral = 50000

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        if port == 0:
            self._ephemeral += 1
            port = self._ephemeral
        if port in self.busy or port in self.bound:
            raise CannotListenError(interface, port, OSError("in use"))
        p = self.bound[port] = FakeUDPPort(self, port, protocol, interface)
        if self.sockets:
            p.socket = FakeSocket()
        p.startListening()
        return p
