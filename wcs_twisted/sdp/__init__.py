"""
Sans-I/O SDP: the values of single lines (L{fields}), payload formats and
their matching rules (L{codecs}), media sections (L{media}), whole session
descriptions parsed and written (L{session}), RFC 3264 offer/answer
(L{offer_answer}) and RFC 4568 SDES keys (L{crypto}).  Standard library only; nothing here imports the SIP
package, Twisted networking or aiortc.
"""

__all__: list[str] = []
