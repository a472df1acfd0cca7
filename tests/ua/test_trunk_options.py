"""
The trunk options (sip_session_expires, sip_min_se, sip_100rel) change what goes on the wire:
our own UAC and UAS on the in-memory network, one side configured, the wire checked.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.ua import test_invite_session as sessions
from wcs_twisted.config import settings_from_text
from wcs_twisted.sip.message import parse_message
from wcs_twisted.ua.trunk_options import TrunkOptions


class TrunkOptionsTests(SynchronousTestCase):
    """
    Each option, set on the caller (A) or the callee (B), seen in the messages exchanged.
    """

    setUp = sessions.InviteSessionTests.setUp
    call = sessions.InviteSessionTests.call
    established = sessions.InviteSessionTests.established

    def sent(self, start):
        return [parse_message(data) for _, _, data in self.network.delivered
                if data.startswith(start)]

    def test_defaults(self):
        """
        Unconfigured: Session-Expires 1800, Min-SE 90, Supported lists 100rel, no Require.
        """
        self.call()
        [invite] = self.sent(b"INVITE ")
        self.assertEqual((invite.headers.get("Session-Expires"), invite.headers.get("Min-SE")),
                         ("1800", "90"))
        self.assertIn("100rel", invite.headers.get_all("Supported"))
        self.assertIsNone(invite.headers.get("Require"))

    def test_session_expires_and_min_se(self):
        """
        sip_session_expires=600 and sip_min_se=120 are what our INVITE asks for.
        """
        self.core_a.trunk_options = TrunkOptions(session_expires=600, min_se=120)
        self.call()
        [invite] = self.sent(b"INVITE ")
        self.assertEqual((invite.headers.get("Session-Expires"), invite.headers.get("Min-SE")),
                         ("600", "120"))

    def test_min_se_refuses_a_shorter_interval(self):
        """
        A callee with sip_min_se=1000 refuses a refresh asking 900 with 422 naming Min-SE 1000
        (RFC 4028 6); one asking 1000 passes.
        """
        self.core_b.trunk_options = TrunkOptions(session_expires=1800, min_se=1000)
        session, incoming = self.established()
        statuses = []
        for seconds in ("900", "1000"):
            session.request("UPDATE", headers=(("Session-Expires", seconds),)).addCallbacks(
                lambda response: statuses.append(response.status_code),
                lambda failure: statuses.append(failure.value.status))
            self.network.run()
        self.assertEqual(statuses, [422, 200])
        [refusal] = self.sent(b"SIP/2.0 422")
        self.assertEqual(refusal.headers.get("Min-SE"), "1000")

    def test_100rel_required_as_uac(self):
        """
        sip_100rel=required: our INVITE says Require: 100rel.
        """
        self.core_a.trunk_options = TrunkOptions(reliable_provisional="required")
        self.call()
        [invite] = self.sent(b"INVITE ")
        self.assertEqual(invite.headers.get("Require"), "100rel")

    def test_100rel_required_as_uas_sends_reliable_1xx_to_a_supporting_caller(self):
        """
        sip_100rel=required on the callee: a caller that only supports 100rel gets its 180
        with Require: 100rel and RSeq, and PRACKs it.
        """
        self.core_b.trunk_options = TrunkOptions(reliable_provisional="required")
        self.call()
        self.callee.sessions[0].ring()
        self.network.run()
        [ringing] = self.sent(b"SIP/2.0 180")
        self.assertEqual(ringing.headers.get("Require"), "100rel")
        self.assertIsNotNone(ringing.headers.get("RSeq"))
        self.assertEqual(len(self.sent(b"PRACK ")), 1)

    def test_100rel_off(self):
        """
        sip_100rel=off: our INVITE does not offer 100rel, and a callee in the default mode
        then sends its 180 unreliably (no PRACK).
        """
        self.core_a.trunk_options = TrunkOptions(reliable_provisional="off")
        self.call()
        [invite] = self.sent(b"INVITE ")
        self.assertNotIn("100rel", invite.headers.get_all("Supported"))
        self.assertIn("timer", invite.headers.get_all("Supported"))
        self.callee.sessions[0].ring()
        self.network.run()
        [ringing] = self.sent(b"SIP/2.0 180")
        self.assertIsNone(ringing.headers.get("RSeq"))
        self.assertEqual(self.sent(b"PRACK "), [])

    def test_settings_keys(self):
        """
        The keys are read and checked: Min-SE below 90 is refused (RFC 4028 4).
        """
        settings = settings_from_text(
            "sip_session_expires=600\nsip_min_se=120\nsip_100rel=required\n").settings
        self.assertEqual((settings.sip_session_expires, settings.sip_min_se,
                          settings.sip_100rel), (600, 120, "required"))
        self.assertRaises(Exception, settings_from_text, "sip_min_se=30\n")
        self.assertRaises(Exception, settings_from_text, "sip_100rel=maybe\n")
