"""
What trunks ask of the call layer, over the in-memory network: who an incoming INVITE says is
calling and its C{X-} headers (L{wcs_twisted.gateway.caller_identity}), and a session interval
below our Min-SE refused before the browser hears of the call.
"""

import dataclasses

from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_call import BROWSER_OFFER, PEER_ANSWER, PEER_OFFER, CallTestMixin
from tests.ua.test_invite_session import Observer
from wcs_twisted.gateway.caller_identity import TrustedPeers, caller_identity, invite_parameters
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.message import Request, parse_message
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.invite_session import InviteSession
from wcs_twisted.ua.trunk_options import TrunkOptions


def invite(*headers):
    """
    An INVITE from a trunk number with the given extra headers.
    """
    return Request("INVITE", SIPURI.parse("sip:alice@10.0.0.1"), Headers(
        (("From", '"Trunk" <sip:+4930100@carrier>;tag=1'), ("To", "<sip:alice@10.0.0.1>"))
        + headers))


class CallerIdentityTests(SynchronousTestCase):
    """
    P-Asserted-Identity, then Remote-Party-ID, then From.
    """

    def test_from_alone(self):
        """
        Without an asserted identity the caller is From's user and its display name.
        """
        self.assertEqual(caller_identity(invite(), trusted=True), ("+4930100", "Trunk"))

    def test_asserted_identity_wins(self):
        """
        P-Asserted-Identity names the caller and its display name, not From's.
        """
        request = invite(("P-Asserted-Identity", '"Boss" <sip:1000@carrier>'))
        self.assertEqual(caller_identity(request, trusted=True), ("1000", "Boss"))

    def test_sip_identity_before_tel(self):
        """
        Of a tel: and a sip: identity (RFC 3325 9.1), the sip: one is shown.
        """
        request = invite(("P-Asserted-Identity", "<tel:+15550001>, \"Ann\" <sip:2000@carrier>"))
        self.assertEqual(caller_identity(request, trusted=True), ("2000", "Ann"))

    def test_asserted_without_name_shows_its_user(self):
        """
        An asserted identity without display name shows its number, never the trunk's name.
        """
        request = invite(("P-Asserted-Identity", "<tel:+15550001>"))
        self.assertEqual(caller_identity(request, trusted=True), ("+15550001", "+15550001"))

    def test_remote_party_id(self):
        """
        Remote-Party-ID of the calling party is used; a called-party one is not.
        """
        request = invite(("Remote-Party-ID", '"Called" <sip:9@c>;party=called'),
                         ("Remote-Party-ID", '"Cal" <sip:3000@c>;party=calling;screen=yes'))
        self.assertEqual(caller_identity(request, trusted=True), ("3000", "Cal"))
        request = invite(("Remote-Party-ID", '"Called" <sip:9@c>;party=called'))
        self.assertEqual(caller_identity(request, trusted=True), ("+4930100", "Trunk"))

    def test_malformed_identity_ignored(self):
        """
        A P-Asserted-Identity that does not parse is as if absent.
        """
        request = invite(("P-Asserted-Identity", "<<nonsense"))
        self.assertEqual(caller_identity(request, trusted=True), ("+4930100", "Trunk"))

    def test_invite_parameters(self):
        """
        X- headers are collected by name; other headers are not; none gives None.
        """
        request = invite(("X-Account", "42"), ("Subject", "hi"), ("x-lower", "a b"))
        self.assertEqual(invite_parameters(request), {"X-Account": "42", "x-lower": "a b"})
        self.assertIsNone(invite_parameters(invite()))


class CallTableTrunkTests(CallTestMixin, SynchronousTestCase):
    """
    Trunk features through the call table: identity, 422, delayed offer.
    """

    def trunk_call(self, trusted: tuple[str, ...]) -> dict:
        """
        The trunk at 10.0.0.2 calls alice with an asserted identity and an X- header, with
        C{trusted} as sip_trusted_peers; the notifyIncomingCall alice's browser got.
        """
        self.calls.settings = dataclasses.replace(self.calls.settings,
                                                  trusted_peers=TrustedPeers(trusted))
        connection, session = self.connect("alice", "/a")
        InviteSession.outgoing(
            self.phone_core, self.clock, Observer(), SIPURI.parse("sip:trunk@10.0.0.2"),
            SIPURI.parse("sip:alice@10.0.0.1"), PEER_OFFER,
            extra_headers=(("P-Asserted-Identity", '"Boss" <sip:1000@carrier>'),
                           ("Remote-Party-ID", '"Cal" <sip:3000@carrier>;party=calling'),
                           ("X-Campaign", "spring")))
        self.network.run()
        return dict(connection.messages)["notifyIncomingCall"][0]

    def test_notify_incoming_call_shows_asserted_caller_and_x_headers(self):
        """
        A trusted trunk's INVITE with P-Asserted-Identity and an X- header: notifyIncomingCall
        carries caller 1000, visibleName Boss and inviteParameters with the X- header.
        """
        incoming = self.trunk_call(("10.0.0.0/24",))
        self.assertEqual((incoming["caller"], incoming["visibleName"],
                          incoming["inviteParameters"]),
                         ("1000", "Boss", {"X-Campaign": "spring"}))

    def test_untrusted_asserted_identity_is_ignored(self):
        """
        RFC 3325: from a source outside sip_trusted_peers (the default: loopback only) the
        P-Asserted-Identity and Remote-Party-ID are ignored; From names the caller.
        """
        for trusted in (("127.0.0.0/8", "::1/128"), ("10.0.0.3", "10.0.1.0/24"), ()):
            self.setUp()
            incoming = self.trunk_call(trusted)
            self.assertEqual((incoming["caller"], incoming["visibleName"]),
                             ("trunk", "trunk"), trusted)

    def test_trusted_peers_matching(self):
        """
        Addresses and networks of either family; IPv4-mapped IPv6 sources match their IPv4
        network; host names and garbage never match.
        """
        peers = TrustedPeers(("10.0.0.2", "192.0.2.0/24", "2001:db8::/32"))
        self.assertIn("10.0.0.2", peers)
        self.assertIn("192.0.2.77", peers)
        self.assertIn("[2001:db8::5]", peers)
        self.assertIn("::ffff:192.0.2.1", peers)
        self.assertNotIn("10.0.0.3", peers)
        self.assertNotIn("trunk.example.com", peers)
        self.assertNotIn(None, peers)

    def test_interval_below_min_se_gets_422_before_the_browser_hears(self):
        """
        An INVITE asking Session-Expires 30 is answered 422 with Min-SE 90 before any
        notifyIncomingCall; the caller asks again with 90 and the browser is rung once.
        """
        connection, session = self.connect("alice", "/a")
        self.phone_core.trunk_options = TrunkOptions(session_expires=30, min_se=30)
        InviteSession.outgoing(
            self.phone_core, self.clock, Observer(), SIPURI.parse("sip:trunk@10.0.0.2"),
            SIPURI.parse("sip:alice@10.0.0.1"), PEER_OFFER)
        self.network.run()
        messages = [parse_message(data) for _, _, data in self.network.delivered]
        refusal = next(m for m in messages if getattr(m, "status_code", None) == 422)
        self.assertEqual(refusal.headers.get("Min-SE"), "90")
        invites = [m for m in messages if getattr(m, "method", None) == "INVITE"]
        self.assertEqual([m.headers.get("Session-Expires") for m in invites], ["30", "90"])
        names = [name for name, _ in connection.messages]
        self.assertEqual(names.count("notifyIncomingCall"), 1)

    def test_reinvite_without_sdp_gets_an_offer_answered_in_the_ack(self):
        """
        A PBX re-INVITE without SDP (delayed offer): our 200 carries a fresh offer of the codec
        in use, and the SDP in the PBX's ACK is taken as the answer by the SIP media leg.
        """
        connection, session = self.connect("alice", "/a")
        leg = InviteSession.outgoing(
            self.phone_core, self.clock, Observer(), SIPURI.parse("sip:pbx@10.0.0.2"),
            SIPURI.parse("sip:alice@10.0.0.1"), PEER_OFFER)
        self.network.run()
        call_id = connection.messages[0][1][0]
        self.calls.answer(session, {"callId": call_id,
                                    "sdp": BROWSER_OFFER.replace("111 0 8", "0")})
        self.network.run()
        rtp = self.calls.get(call_id).rtp
        self.assertEqual(rtp.audio_codec, "PCMU/8000")
        leg._ack_reinvite = lambda request, response: leg._send_ack(
            leg.dialog, request.cseq.number, PEER_ANSWER)
        answers = []
        leg.request("INVITE").addCallback(answers.append)
        self.network.run()
        self.assertIn(b"m=audio", answers[0].body)
        self.assertIn(b"PCMU/8000", answers[0].body)
        self.assertEqual(rtp.audio_codec, "PCMA/8000")
        self.assertEqual(self.calls.get(call_id).status.value, "ESTABLISHED")


class ForkedTrunkCallTests(CallTestMixin, SynchronousTestCase):
    """
    A trunk's INVITE for a login with a phone and a browser: the proxy forks it, and the fork
    to the session comes back to this stack from our own address.
    """

    def setUp(self):
        super().setUp()
        from wcs_twisted.sip.headers import NameAddress
        from wcs_twisted.testing.network import build_memory_stack
        from wcs_twisted.ua.location import Binding
        from wcs_twisted.ua.proxy import Proxy

        [self.proxy] = [router for router in self.core.routers if isinstance(router, Proxy)]
        self.calls.proxy = self.proxy
        self.connection, self.session = self.connect("bob", "/b")
        self.location.update(Binding("sip:bob@10.0.0.1",
                                     NameAddress(None, SIPURI.parse("sip:bob@10.0.0.2")),
                                     self.clock.seconds() + 3600, "x", 1, None))
        self.trunk_stack, self.trunk_core = build_memory_stack(self.network, "10.0.0.3", seed=3)

    def offered(self, trusted: tuple[str, ...]) -> dict:
        self.calls.settings = dataclasses.replace(self.calls.settings,
                                                  trusted_peers=TrustedPeers(trusted))
        InviteSession.outgoing(
            self.trunk_core, self.clock, Observer(), SIPURI.parse("sip:trunk@10.0.0.3"),
            SIPURI.parse("sip:bob@10.0.0.1"), PEER_OFFER,
            extra_headers=(("P-Asserted-Identity", '"Boss" <sip:1000@carrier>'),))
        self.network.run()
        self.assertEqual(len(self.phone.sessions), 1)  # the fork reached the phone too
        return dict(self.connection.messages)["notifyIncomingCall"][0]

    def test_trust_follows_the_original_source(self):
        """
        The forwarded INVITE's trust is that of the trunk it came from (10.0.0.3), not that
        of our own address: listed, it asserts the caller.
        """
        incoming = self.offered(("10.0.0.3",))
        self.assertEqual((incoming["caller"], incoming["visibleName"]), ("1000", "Boss"))

    def test_own_address_lends_no_trust(self):
        """
        Our own address (10.0.0.1) listed, the trunk not: the identity is ignored.
        """
        incoming = self.offered(("10.0.0.1",))
        self.assertEqual(incoming["caller"], "trunk")
