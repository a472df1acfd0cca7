# -*- test-case-name: tests.test_tls -*-
"""
The server side of every TLS listener (SIP over TLS, wss, https): certificate, key and ALPN.

Twisted (26.10) installs an ALPN select callback on every server context that answers a
client's offer with an empty protocol when nothing overlaps the factory's list, which OpenSSL
turns into a fatal internal_error alert.  A SIP phone offering ALPN, or a browser offering only
h2 to a listener that speaks http/1.1, could then not connect at all.  RFC 7301 3.2 lets a
server that shares no protocol with the client go on without ALPN, which is what
L{ServerTLS} does: it picks the factory's protocol when the client offers one
(L{IProtocolNegotiationFactory}), and otherwise answers
C{OpenSSL.SSL.NO_OVERLAPPING_PROTOCOLS}, so the handshake completes with no ALPN.
"""

from __future__ import annotations

import re
from typing import Sequence

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolNegotiationFactory,
)
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate
from zope.interface import implementer

__all__ = ["ServerTLS", "load_server_options", "select_protocol"]

_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                          re.DOTALL)


def load_server_options(certificate_path: str, key_path: str) -> CertificateOptions:
    """
    Twisted's secure defaults for a server holding the first certificate of
    C{certificate_path} (the certificates after it are sent as its chain) and the key of
    C{key_path} (which may be the same file).

    @raise OSError: a file cannot be read.
    @raise Exception: OpenSSL's or Twisted's own error for PEM that is not a certificate and
        its private key.
    """
    with open(certificate_path, "rb") as pem:
        certificate_pem = pem.read()
    with open(key_path, "rb") as pem:
        key_pem = pem.read()
    own = PrivateCertificate.loadPEM(certificate_pem + b"\n" + key_pem)
    chain = [Certificate.loadPEM(block).original
             for block in _CERTIFICATE.findall(certificate_pem)[1:]]
    return CertificateOptions(privateKey=own.privateKey.original, certificate=own.original,
                              extraCertChain=chain or None)


def select_protocol(offered: Sequence[bytes], ours: Sequence[bytes]):
    """
    The ALPN answer (RFC 7301 3.2): our most preferred protocol the client offered, else
    C{NO_OVERLAPPING_PROTOCOLS} (the handshake goes on without ALPN).
    """
    for name in ours:
        if name in offered:
            return name
    return SSL.NO_OVERLAPPING_PROTOCOLS


def _factory_protocols(connection: SSL.Connection) -> Sequence[bytes]:
    tls = connection.get_app_data()
    factory = getattr(getattr(tls, "factory", None), "wrappedFactory", None)
    negotiation = IProtocolNegotiationFactory(factory, None)
    return tuple(negotiation.acceptableProtocols()) if negotiation is not None else ()


def _alpn_select(connection: SSL.Connection, offered: Sequence[bytes]):
    return select_protocol(offered, _factory_protocols(connection))


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    Server TLS connections from L{CertificateOptions}, with an ALPN answer that never aborts.
    """

    def __init__(self, options: CertificateOptions) -> None:
        self._options = options
        # The options build (and cache) their context once; until the first connection is
        # made from it, it may still be changed: replace Twisted's ALPN callback by ours.
        options.getContext().set_alpn_select_callback(_alpn_select)

    @classmethod
    def from_files(cls, certificate_path: str, key_path: str) -> "ServerTLS":
        return cls(load_server_options(certificate_path, key_path))

    def serverConnectionForTLS(self, protocol) -> SSL.Connection:
        return self._options.serverConnectionForTLS(protocol)
