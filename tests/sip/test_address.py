"""
Tests for L{wcs_twisted.sip.address}.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.address import SIPAddress


class SIPAddressTests(SynchronousTestCase):
    """
    Transport addresses as keys and text.
    """

    def test_reliable(self):
        """
        TCP and TLS are reliable transports (RFC 3261 17), UDP is not.
        """
        self.assertFalse(SIPAddress("udp", "127.0.0.1", 5060).reliable)
        self.assertTrue(SIPAddress("tcp", "127.0.0.1", 5060).reliable)
        self.assertTrue(SIPAddress("tls", "127.0.0.1", 5061).reliable)

    def test_text(self):
        """
        IPv6 hosts are bracketed.
        """
        self.assertEqual(str(SIPAddress("udp", "::1", 5060)), "udp:[::1]:5060")
        self.assertEqual(str(SIPAddress("tcp", "10.0.0.1", 5080)), "tcp:10.0.0.1:5080")
