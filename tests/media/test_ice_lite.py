"""
Tests for L{wcs_twisted.media.ice_lite}.
"""

from aioice import stun

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.media.ice_lite import (
    CONSENT_TIMEOUT, MAX_VALIDATED, ICELiteAgent, candidate_priority, random_ice_string,
)

UFRAG = "srvU"
PWD = "serverpassword12345678901"
BROWSER = ("192.0.2.50", 50123)


def check(username=f"{UFRAG}:brwz", password=PWD, use_candidate=False, method=stun.Method.BINDING):
    """
    A browser's connectivity check, as the controlling agent sends it.
    """
    request = stun.Message(method, stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING"] = 42
    if use_candidate:
        request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(password.encode())
    return request


class ICELiteAgentTests(SynchronousTestCase):
    """
    Answering checks and selecting the nominated address (RFC 8445 section 7.3).
    """

    def setUp(self):
        self.agent = ICELiteAgent(UFRAG, PWD)

    def test_success_response(self):
        """
        A valid check gets a Binding success with the source as
        XOR-MAPPED-ADDRESS, integrity with our password and a fingerprint.
        """
        request = check()
        result = self.agent.receive(bytes(request), BROWSER, now=1.0)
        response = stun.parse_message(result.response)
        self.assertEqual(response.message_class, stun.Class.RESPONSE)
        self.assertEqual(response.transaction_id, request.transaction_id)
        self.assertEqual(response.attributes["XOR-MAPPED-ADDRESS"], BROWSER)
        self.assertTrue(response.check_message_integrity(PWD.encode()))
        self.assertIn("FINGERPRINT", response.attributes)
        self.assertTrue(result.authenticated)
        self.assertEqual(self.agent.last_check, 1.0)

    def test_first_check_selects_provisionally(self):
        """
        Before any nomination the first valid check's source is selected, so
        DTLS can begin; it is not marked nominated.
        """
        result = self.agent.receive(bytes(check()), BROWSER, 0)
        self.assertTrue(result.selected_changed)
        self.assertEqual(self.agent.selected, BROWSER)
        self.assertFalse(self.agent.nominated)
        other = ("192.0.2.51", 1)
        self.assertFalse(self.agent.receive(bytes(check()), other, 0).selected_changed)
        self.assertEqual(self.agent.selected, BROWSER)

    def test_use_candidate_selects(self):
        """
        USE-CANDIDATE from the controlling agent selects that address, and a
        later nomination of another address moves the selection.
        """
        self.agent.receive(bytes(check()), ("192.0.2.51", 1), 0)
        result = self.agent.receive(bytes(check(use_candidate=True)), BROWSER, 0)
        self.assertTrue(result.selected_changed)
        self.assertEqual((self.agent.selected, self.agent.nominated), (BROWSER, True))
        self.assertFalse(self.agent.receive(bytes(check(use_candidate=True)), BROWSER, 0).selected_changed)
        moved = ("198.51.100.9", 4444)
        self.assertTrue(self.agent.receive(bytes(check(use_candidate=True)), moved, 0).selected_changed)
        self.assertEqual(self.agent.selected, moved)

    def test_wrong_password(self):
        """
        A check with a bad MESSAGE-INTEGRITY gets 401 and selects nothing.
        """
        result = self.agent.receive(bytes(check(password="x" * 22, use_candidate=True)), BROWSER, 0)
        response = stun.parse_message(result.response)
        self.assertEqual(response.message_class, stun.Class.ERROR)
        self.assertEqual(response.error_code, 401)
        self.assertIsNone(self.agent.selected)
        self.assertEqual(self.agent.checks_refused, 1)

    def test_wrong_username(self):
        """
        A check for another ufrag, or from a peer ufrag other than the one in
        its SDP, gets 401.
        """
        self.assertEqual(
            stun.parse_message(self.agent.receive(bytes(check("nope:brwz")), BROWSER, 0).response).error_code,
            401,
        )
        self.agent.set_remote_username("abcd")
        self.assertEqual(
            stun.parse_message(self.agent.receive(bytes(check()), BROWSER, 0).response).error_code,
            401,
        )
        self.assertIsNotNone(self.agent.receive(bytes(check(f"{UFRAG}:abcd")), BROWSER, 0).response)
        self.assertEqual(self.agent.selected, BROWSER)

    def test_missing_integrity(self):
        """
        A Binding request without USERNAME/MESSAGE-INTEGRITY gets 400.
        """
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        request.add_fingerprint()
        result = self.agent.receive(bytes(request), BROWSER, 0)
        self.assertEqual(stun.parse_message(result.response).error_code, 400)

    def test_non_binding_method(self):
        """
        Other STUN methods are answered 400.
        """
        result = self.agent.receive(bytes(check(method=stun.Method.ALLOCATE)), BROWSER, 0)
        self.assertEqual(stun.parse_message(result.response).error_code, 400)

    def test_ignores_responses_and_garbage(self):
        """
        Responses, indications and unparsable data produce nothing.
        """
        indication = stun.Message(stun.Method.BINDING, stun.Class.INDICATION)
        self.assertIsNone(self.agent.receive(bytes(indication), BROWSER, 0).response)
        self.assertIsNone(self.agent.receive(b"\x00\x01\x00", BROWSER, 0).response)
        self.assertIsNone(self.agent.selected)

    def test_credentials(self):
        """
        Generated credentials meet RFC 8839 lengths; short ones are refused.
        """
        agent = ICELiteAgent()
        self.assertGreaterEqual(len(agent.local_username), 4)
        self.assertGreaterEqual(len(agent.local_password), 22)
        self.assertNotEqual(random_ice_string(22), random_ice_string(22))
        self.assertRaises(ValueError, ICELiteAgent, "abc", PWD)

    def test_priority(self):
        """
        A host candidate of component 1 has the RFC 8445 recommended priority.
        """
        self.assertEqual(candidate_priority(), 2130706431)

    def test_checks_validate_addresses(self):
        """
        Every address a valid check came from is remembered as validated (a peer-reflexive
        candidate, RFC 8445 7.3.1.3) for the consent timeout, without moving the selection;
        a refused check validates nothing.
        """
        self.agent.receive(bytes(check(use_candidate=True)), BROWSER, 0)
        roamed = ("198.51.100.9", 4444)
        result = self.agent.receive(bytes(check()), roamed, 10.0)
        self.assertFalse(result.selected_changed)
        self.assertEqual(self.agent.selected, BROWSER)
        self.assertTrue(self.agent.validated(roamed, 10.0 + CONSENT_TIMEOUT - 0.1))
        self.assertFalse(self.agent.validated(roamed, 10.0 + CONSENT_TIMEOUT))
        forged = ("203.0.113.66", 9999)
        self.agent.receive(bytes(check(password="x" * 22)), forged, 10.0)
        self.assertFalse(self.agent.validated(forged, 10.0))
        self.agent.select(roamed)
        self.assertEqual(self.agent.selected, roamed)

    def test_validated_addresses_are_bounded(self):
        """
        Only the MAX_VALIDATED most recently checked addresses are remembered.
        """
        addresses = [("198.51.100.9", 4000 + n) for n in range(MAX_VALIDATED + 2)]
        for n, address in enumerate(addresses):
            self.agent.receive(bytes(check()), address, float(n))
        now = float(len(addresses))
        self.assertEqual([self.agent.validated(a, now) for a in addresses],
                         [False, False] + [True] * MAX_VALIDATED)
