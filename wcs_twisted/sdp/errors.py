# -*- test-case-name: tests.sdp.test_session -*-
"""
Errors raised by the SDP package.

They exist so that callers can tell whose fault a failure is without parsing
messages: L{SDPError} and its subclasses mean the remote party sent an SDP we
cannot accept, and carry the SIP status to answer with (488 Not Acceptable
Here by default).  L{NegotiatorStateError} means our own code drove the
offer/answer machine in the wrong order.  The package must not import
C{wcs_twisted.sip}, so these classes stand alone; the SIP layer maps
C{status_hint} to a response.
"""

__all__ = ["SDPError", "NoCommonCodec", "NegotiatorStateError"]


class SDPError(ValueError):
    """
    The remote party's session description is malformed or unacceptable.

    @ivar status_hint: the SIP status code a UAS should answer with.
    """

    def __init__(self, message: str, status_hint: int = 488) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class NoCommonCodec(SDPError):
    """
    An offer or answer shares no usable codec with our capabilities
    (RFC 3264 section 6: every stream would have to be rejected).
    """

    def __init__(self, message: str = "No common codecs", status_hint: int = 488) -> None:
        super().__init__(message, status_hint)


class NegotiatorStateError(RuntimeError):
    """
    Local misuse: an offer/answer operation was requested in a negotiator
    state that does not allow it (for example an answer without an offer).
    """
