"""
Every production implementation and every fake provides the interface it claims.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.rest.test_web import StaticListener
from tests.gateway.test_sessions import RecordingConnection, SilentConnection
from wcs_twisted.gateway.sessions import DetachedConnection
from wcs_twisted.interfaces import IClientConnection, IListener
from wcs_twisted.listeners import ListenerService
from wcs_twisted.signalling.protocol import Channel


class InterfaceConformanceTests(SynchronousTestCase):
    """
    verifyObject over implementations and fakes.
    """

    def test_client_connections(self):
        """
        The signalling Channel, a detached session's connection and the test connections are
        IClientConnections.
        """
        verifyObject(IClientConnection, Channel(object(), "127.0.0.1:1"))
        verifyObject(IClientConnection, DetachedConnection())
        verifyObject(IClientConnection, SilentConnection())
        verifyObject(IClientConnection, RecordingConnection())

    def test_listeners(self):
        """
        ListenerService and the static test listener are IListeners.
        """
        verifyObject(IListener, ListenerService("ws", lambda: None))
        verifyObject(IListener, StaticListener("ws", True))
