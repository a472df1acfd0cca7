# -*- test-case-name: tests.sip.test_message -*-
"""
Errors raised by the sans-I/O SIP package, split by whose fault they are.

L{RemoteProtocolError} means the peer sent something we cannot accept; it
carries C{status_hint}, the SIP status a server should answer with (400 Bad
Request unless the RFC names another: 416, 420, 481, 500, 505, ...).
L{LocalProtocolError} means our own code misused the API (for example building
an in-dialog request after the dialog ended).  This is h11's split
(C{h11/_util.py}) applied to SIP.

When the message parser fails after it has read the header section, the error
also carries what it managed to read (C{headers}, C{request_method}) so that a
server can still answer statelessly; see
L{wcs_twisted.sip.message.error_response}.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["SIPError", "RemoteProtocolError", "LocalProtocolError"]


class SIPError(Exception):
    """
    Base class of every error raised by C{wcs_twisted.sip}.
    """


class RemoteProtocolError(SIPError):
    """
    The remote party violated the protocol.

    @ivar status_hint: the SIP status code to answer a request with.
    @ivar headers: the header section read before the failure, as a
        L{wcs_twisted.sip.header_fields.Headers}, or L{None} when the failure
        happened before any header was read or was not raised by the parser.
    @ivar request_method: the method of the failed message when its start line
        looked like a request; L{None} for responses and unknown start lines.
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.headers: Optional[Any] = None
        self.request_method: Optional[str] = None


class LocalProtocolError(SIPError):
    """
    Our own code misused the SIP API; nothing should be sent to the peer.
    """
