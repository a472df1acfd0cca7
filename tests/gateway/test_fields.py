"""
Tests for L{wcs_twisted.gateway.fields}: reading WCS fields and the SIP account in them.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.gateway.fields import account_from_fields, read_boolean, read_port
from wcs_twisted.errors import InvalidField
from wcs_twisted.ua.account import SIPAccount


class AccountFieldsTests(SynchronousTestCase):
    """
    Reading sip* fields as the SDK and demo pages send them.
    """

    def test_demo_page_strings(self):
        """
        sipPort and sipRegisterRequired arrive as strings from the demos.
        """
        account = account_from_fields({
            "sipLogin": "1001", "sipPassword": "pw", "sipDomain": "pbx.example.com",
            "sipOutboundProxy": "10.0.0.1:5070", "sipPort": "5080",
            "sipRegisterRequired": "true"})
        self.assertEqual(account, SIPAccount(
            login="1001", authentication_name="1001", password="pw", domain="pbx.example.com",
            outbound_proxy="10.0.0.1:5070", port=5080, register_required=True))

    def test_no_login_no_account(self):
        """
        A streaming-only session has no SIP account.
        """
        self.assertIsNone(account_from_fields({"appKey": "defaultApp"}))

    def test_logins_sip_cannot_carry(self):
        """
        Spaces, angle brackets, quotes and @ are refused naming the field (RFC 3261 25.1).
        """
        for login in ("alice smith", "<alice>", 'al"ice', "alice@host"):
            error = self.assertRaises(InvalidField, account_from_fields, {"sipLogin": login})
            self.assertEqual(error.field, "sipLogin")
        error = self.assertRaises(InvalidField, account_from_fields,
                                  {"sipLogin": "ok", "sipAuthenticationName": "bad name"})
        self.assertEqual(error.field, "sipAuthenticationName")

    def test_escaped_and_user_unreserved_allowed(self):
        """
        %-escapes and user-unreserved characters are valid user names.
        """
        account = account_from_fields({"sipLogin": "alice%20smith+1;x=y"})
        self.assertEqual(account.login, "alice%20smith+1;x=y")

    def test_bad_domain_and_port(self):
        """
        A domain with spaces and a port out of range are refused.
        """
        self.assertRaises(InvalidField, account_from_fields,
                          {"sipLogin": "a", "sipDomain": "bad domain"})
        self.assertRaises(InvalidField, account_from_fields,
                          {"sipLogin": "a", "sipPort": "70000"})
        self.assertEqual(account_from_fields({"sipLogin": "a", "sipPort": "0"}).port, 5060,
                         "port 0 means the server's own port (WCS local mode)")
        self.assertRaises(InvalidField, account_from_fields, {"sipLogin": "a", "sipPort": "x"})


class FieldReaderTests(SynchronousTestCase):
    """
    Booleans and ports in their JSON and string forms.
    """

    def test_booleans(self):
        """
        true/false as JSON or strings; anything else names the field.
        """
        self.assertTrue(read_boolean({"x": "TRUE"}, "x", False))
        self.assertFalse(read_boolean({"x": False}, "x", True))
        self.assertTrue(read_boolean({}, "x", True))
        error = self.assertRaises(InvalidField, read_boolean, {"x": "maybe"}, "x", False)
        self.assertEqual(error.field, "x")

    def test_ports(self):
        """
        Ports as numbers or strings, default when empty, booleans refused.
        """
        self.assertEqual(read_port({"p": 5062}, "p", 5060), 5062)
        self.assertEqual(read_port({"p": ""}, "p", 5060), 5060)
        self.assertRaises(InvalidField, read_port, {"p": True}, "p", 5060)
