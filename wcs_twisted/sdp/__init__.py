"""
Sans-I/O SDP: parse and write session descriptions (L{session}) and run
RFC 3264 offer/answer (L{offer_answer}).  Standard library only; nothing
here imports the SIP package, Twisted networking or aiortc.
"""

__all__: list[str] = []
