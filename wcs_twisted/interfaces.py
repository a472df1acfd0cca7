# -*- test-case-name: tests.test_interfaces -*-
"""
Every zope.interface contract of wcs-twisted, in one place.

Layers meet only through these: the call layer sees a signalling connection as an
L{IClientConnection}, the operations endpoints see listeners as L{IListener}, and so on.  Each
production implementation and each test fake is checked with C{verifyObject} in
tests/test_interfaces.py.
"""

from zope.interface import Attribute, Interface


class IClientConnection(Interface):
    """
    One client's signalling channel (a WCS WebSocket), as the layers above the front-end see it.
    """

    peer = Attribute("Text naming the remote end, e.g. '127.0.0.1:53211', for logs and sessionId.")

    def send_message(name, data):
        """
        Send one WCS message.

        @param name: the message name, e.g. C{"getUserData"}.
        @type name: L{str}
        @param data: the positional C{data} array; never L{None} (the SDK indexes it).
        @type data: L{list}
        """

    def close(code, reason):
        """
        Close the channel cleanly, telling the client why.

        @param code: WebSocket close code: 1000, or 3000-4999 for application reasons.
        @param reason: short human-readable text.
        """


class IListener(Interface):
    """
    A network listener whose readiness is reported by /health.
    """

    name = Attribute("Short name, e.g. 'ws', 'http', 'sip-udp'.")
    ready = Attribute("True while the listener is bound and accepting.")
    address = Attribute("Text of the bound address once ready, else None.")
    errors = Attribute("Count of errors seen on this listener (bind failures, bad input).")
