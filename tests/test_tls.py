"""
The ALPN answer of our TLS listeners, and loading their certificate (wcs_twisted/tls.py).
"""

from __future__ import annotations

import os

import twisted.test
from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.tls import ServerTLS, load_server_options, select_protocol

CERTIFICATE = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")


class SelectProtocolTests(SynchronousTestCase):
    """
    RFC 7301 3.2: our preference among what the client offers, else no ALPN at all.
    """

    def test_overlap_picks_our_preference(self):
        """
        Of several protocols both sides speak, the server's first wins.
        """
        self.assertEqual(select_protocol([b"h2", b"http/1.1", b"x"], [b"http/1.1", b"x"]),
                         b"http/1.1")

    def test_no_overlap_means_no_alpn(self):
        """
        Nothing in common (or a factory with no list) answers NO_OVERLAPPING_PROTOCOLS, which
        lets the handshake go on, never an empty protocol (an internal_error alert).
        """
        self.assertIs(select_protocol([b"h2", b"foo"], [b"http/1.1"]),
                      SSL.NO_OVERLAPPING_PROTOCOLS)
        self.assertIs(select_protocol([b"sip"], ()), SSL.NO_OVERLAPPING_PROTOCOLS)


class LoadTests(SynchronousTestCase):
    """
    The certificate and key files of a listener.
    """

    def test_combined_file(self):
        """
        One PEM holding certificate and key is enough (tls_private_key empty).
        """
        options = load_server_options(CERTIFICATE, CERTIFICATE)
        self.assertIsNotNone(options.certificate)
        ServerTLS(options)  # the context accepts our ALPN callback before any connection

    def test_bad_pem(self):
        """
        A file that is not PEM fails at load time, not at the first handshake.
        """
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write("not a certificate\n")
        self.assertRaises(Exception, load_server_options, path, path)
        self.assertRaises(OSError, load_server_options, "/no/such.pem", "/no/such.pem")
