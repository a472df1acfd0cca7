"""
SIP over TLS both ways against Kamailio's tls module, with certificates from a test CA.

Our server (built by L{build_service} with UDP, TCP and TLS listeners, its certificate signed by
the test CA, and C{sip_tls_ca_certificates} = that CA) and Kamailio (TLS listener, the same CA):

  - our L{RegistrationClient} registers alice at Kamailio over TLS (Contact with
    C{transport=tls} and our TLS port); a baresip bob (UDP) calls alice, and Kamailio brings
    the INVITE to our TLS listener on a connection it opens, verifying our certificate; we
    answer, audio is checked both ways, and our BYE goes back over TLS;
  - we call bob through Kamailio over TLS (C{transport=tls} outbound proxy): our client checks
    Kamailio's certificate; audio both ways.

Run under the asyncio reactor:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_kamailio_tls
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.integration.certificates import (
    make_certificate,
    server_certificate,
    write_combined_pem,
    write_pem,
)
from tests.integration.peers import LOOPBACK, with_timeout
from tests.integration import test_kamailio_ua as plain
from tests.integration.test_kamailio_ua import (
    USERS,
    WAIT,
    AnsweringRouter,
    CallObserver,
    ToneSender,
)
from tests.integration import audio
from tests.integration.tls_peers import BaresipTLS, KamailioTLS, start_server, tls_settings
from wcs_twisted.sdp.session import SessionDescription
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.transport.trace import IN, OUT
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.ua.invite_session import InviteSession, InviteSessionState
from wcs_twisted.ua.registration import RegistrationState


class KamailioTLSTests(TestCase):
    """
    RFC 3261 26.2 / RFC 5922 against Kamailio: we are a TLS server and a TLS client.
    """

    timeout = 30

    # The helpers of the UDP/TCP tests, without inheriting their tests.
    media = plain.KamailioUserAgentTests.media
    start_bob = plain.KamailioUserAgentTests.start_bob
    check_audio = plain.KamailioUserAgentTests.check_audio
    wait_state = plain.KamailioUserAgentTests.wait_state
    registration = plain.KamailioUserAgentTests.registration
    sent_requests = plain.KamailioUserAgentTests.sent_requests

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.base = self.mktemp()
        ca = self.ca = make_certificate("WCS Test CA")
        pki = self.base + "/pki"
        self.settings = tls_settings(ca, pki, enable_local_videochat=False)
        self.kamailio = KamailioTLS(
            self.base, *write_pem(pki, "kamailio", server_certificate(ca)),
            ca=self.settings.sip_tls_ca_certificates, users=USERS)

    @defer.inlineCallbacks
    def start(self):
        """
        Start Kamailio and our server with TLS; record every message with its direction.
        """
        self.addCleanup(self.kamailio.stop)
        yield self.kamailio.start()
        self.root = yield start_server(self, self.settings, self.reactor)
        self.core = self.root.sip_core
        self.stack = self.root.sip_stack
        self.sent: list[tuple[bytes, SIPAddress]] = []
        self.received: list[tuple[bytes, SIPAddress]] = []
        self.stack.trace.observers.append(
            lambda direction, data, address: (self.sent if direction == OUT else self.received
                                              if direction == IN else []).append((data, address)))

    def account(self) -> SIPAccount:
        return SIPAccount(login="alice", authentication_name="alice", password=USERS["alice"],
                          domain=LOOPBACK, outbound_proxy="", port=self.kamailio.tls_port,
                          register_required=True, transport="tls")

    check_incoming_call = plain.KamailioUserAgentTests.check_incoming_call

    @defer.inlineCallbacks
    def start_bob(self, transport="udp"):
        """
        bob (baresip) registered at Kamailio, over TLS to its TLS port when C{transport} is.
        """
        if transport != "tls":
            return (yield plain.KamailioUserAgentTests.start_bob(self, transport))
        tone = audio.write_tone_wav(self.mktemp() + ".wav", plain.BOB_TONE_HZ, 30)
        bob = BaresipTLS(self.base, "bob", self.settings.sip_tls_ca_certificates,
                         certificate=write_combined_pem(self.base + "/pki", "bob",
                                                        server_certificate(self.ca)),
                         registrar=self.kamailio.tls_address, password=USERS["bob"],
                         tone_wav=tone, codecs=("PCMU/8000/1",))
        self.addCleanup(bob.stop)
        yield bob.start()
        return bob

    def assert_routed_through_kamailio(self, method: str, protocol: str) -> None:
        """
        Every C{method} we sent went to Kamailio's TLS port, with its Record-Route as Route.
        """
        requests = self.sent_requests(method)
        self.assertTrue(requests, f"no {method} sent")
        for request, address in requests:
            self.assertEqual(address, SIPAddress("tls", LOOPBACK, self.kamailio.tls_port))
            self.assertIn(f":{self.kamailio.tls_port};transport=tls",
                          request.headers.get("Route"))

    @defer.inlineCallbacks
    def call_bob(self, bob_transport: str, from_uri: SIPURI, to_uri: SIPURI, **options):
        """
        Start Kamailio, us and bob (over C{bob_transport}); call C{to_uri} as alice (digest
        answered) and check audio both ways; fire with (session, bob).
        """
        yield self.start()
        bob = yield self.start_bob(bob_transport)
        rtp, offer, received = self.media()
        observer = CallObserver()
        session = InviteSession.outgoing(self.core, self.reactor, observer, from_uri, to_uri,
                                         offer, credentials=("alice", USERS["alice"]), **options)
        self.addCleanup(lambda: session.hang_up() if session.state is not
                        InviteSessionState.DISCONNECTED else None)
        answer = yield with_timeout(observer.answered_d, WAIT, self.reactor, lambda: (
            f"no answer; {observer.events}\n{self.kamailio.log_tail()}"))
        sdp = SessionDescription.parse(answer.body)
        rtp.set_remote(sdp.connection_for(sdp.media[0]).address, sdp.media[0].port)
        tone = ToneSender(rtp, self.reactor)
        tone.start()
        self.addCleanup(tone.stop)
        yield bob.wait_event("CALL_ESTABLISHED", WAIT)
        yield self.check_audio(bob, received)
        return session, bob

    @defer.inlineCallbacks
    def test_kamailio_calls_us_over_tls(self):
        """
        We register over TLS (Contact transport=tls with our TLS port); bob's call (baresip
        over TLS too) reaches us from Kamailio on a TLS connection to our TLS port that
        Kamailio opened, verifying our certificate; audio both ways; our BYE leaves over TLS
        along the record-route.
        """
        # bob dials alice's address of record at Kamailio's TLS port.
        self.kamailio.user_uri = (
            lambda user: f"sip:{user}@{self.kamailio.tls_address};transport=tls")
        yield self.check_incoming_call("tls")
        [register, *_] = [request for request, _ in self.sent_requests("REGISTER")]
        contact = register.contacts[0].uri
        self.assertEqual((contact.transport, contact.port),
                         ("tls", self.stack.local_address("tls")[1]))
        self.assertEqual(register.top_via.transport.upper(), "TLS")
        invites = [address for data, address in self.received if data.startswith(b"INVITE ")]
        self.assertEqual({address.transport for address in invites}, {"tls"})

    @defer.inlineCallbacks
    def test_we_call_through_kamailio_over_tls(self):
        """
        Our INVITE goes to Kamailio's TLS port (its certificate checked against the test CA),
        passes its 407 with digest, reaches bob; audio both ways; our BYE goes over TLS.
        """
        to_uri = SIPURI.parse(self.kamailio.user_uri("bob"))
        session, bob = yield self.call_bob(
            "udp", SIPURI.parse(f"sip:alice@{LOOPBACK}"), to_uri.with_params(transport="tls"),
            outbound_proxy=self.kamailio.tls_address)
        invites = self.sent_requests("INVITE")
        self.assertEqual({address for _, address in invites},
                         {SIPAddress("tls", LOOPBACK, self.kamailio.tls_port)})
        self.assertEqual(invites[0][0].top_via.transport.upper(), "TLS")
        session.hang_up()
        yield bob.wait_event("CALL_CLOSED", WAIT)
        [(bye, address)] = self.sent_requests("BYE")
        self.assertEqual(address.transport, "tls")


class KamailioSIPSTests(TestCase):
    """
    RFC 5630 against Kamailio's tls module and baresip over TLS: a sips: account keeps the sips
    scheme in what we send (REGISTER, INVITE, our 2xx), with no C{transport=tls}, and Kamailio
    and baresip accept it both ways.
    """

    timeout = KamailioTLSTests.timeout
    # The helpers of the TLS tests, without inheriting their tests.
    setUp = KamailioTLSTests.setUp
    start = KamailioTLSTests.start
    start_bob = KamailioTLSTests.start_bob
    media = KamailioTLSTests.media
    check_audio = KamailioTLSTests.check_audio
    wait_state = KamailioTLSTests.wait_state
    registration = KamailioTLSTests.registration
    sent_requests = KamailioTLSTests.sent_requests
    check_incoming_call = KamailioTLSTests.check_incoming_call
    call_bob = KamailioTLSTests.call_bob
    assert_routed_through_kamailio = KamailioTLSTests.assert_routed_through_kamailio

    def account(self) -> SIPAccount:
        return SIPAccount(login="alice", authentication_name="alice", password=USERS["alice"],
                          domain=LOOPBACK, outbound_proxy="", port=self.kamailio.tls_port,
                          register_required=True, transport="tls", scheme="sips")

    def assertSIPS(self, message, *uris) -> None:
        """
        Each of C{uris} is a sips: URI and C{message} nowhere says transport=tls.
        """
        for uri in uris:
            self.assertEqual(uri.scheme, "sips", str(uri))
        self.assertNotIn(b"transport=tls", message.serialize().lower())

    @defer.inlineCallbacks
    def test_sips_account_is_called_over_tls(self):
        """
        Our REGISTER has a sips: Request-URI, To, From and Contact (our TLS port) and Kamailio
        accepts it; bob (baresip over TLS) dials alice: the INVITE Kamailio brings us has our
        sips: Contact as its Request-URI, our 200 answers with a sips: Contact, audio both
        ways, our BYE leaves over TLS.  (baresip 1.0.0 cannot dial a sips: URI itself: its
        dial command makes "sip:sips:...", so bob dials alice's sip: address over TLS.)
        """
        self.kamailio.user_uri = (
            lambda user: f"sip:{user}@{self.kamailio.tls_address};transport=tls")
        yield self.check_incoming_call("tls")
        [register, *_] = [request for request, _ in self.sent_requests("REGISTER")]
        self.assertSIPS(register, register.uri, register.to.uri, register.from_.uri,
                        register.contacts[0].uri)
        self.assertEqual(register.contacts[0].uri.port, self.stack.local_address("tls")[1])
        [invite] = [parse_message(data) for data, address in self.received
                    if data.startswith(b"INVITE ")]
        self.assertEqual(invite.uri.scheme, "sips")
        [ok] = [parse_message(data) for data, _ in self.sent
                if data.startswith(b"SIP/2.0 200 ") and b"INVITE" in data.split(b"CSeq:")[1][:20]]
        # The rest of the 200 echoes the INVITE (To, Record-Route are Kamailio's).
        self.assertEqual(str(ok.contacts[0].uri),
                         f"sips:alice@{LOOPBACK}:{self.stack.local_address('tls')[1]}")

    @defer.inlineCallbacks
    def test_sips_call_to_baresip_over_tls(self):
        """
        We call sips:bob through Kamailio's TLS port: Request-URI, To, From and Contact are
        sips:; Kamailio relays to bob (baresip over TLS), who answers; audio both ways.
        """
        session, bob = yield self.call_bob("tls", SIPURI.parse(f"sips:alice@{LOOPBACK}"),
                                           SIPURI.parse(f"sips:bob@{self.kamailio.tls_address}"))
        [*_, (invite, address)] = self.sent_requests("INVITE")
        self.assertEqual(address, SIPAddress("tls", LOOPBACK, self.kamailio.tls_port))
        self.assertSIPS(invite, invite.uri, invite.to.uri, invite.from_.uri,
                        invite.contacts[0].uri)
        session.hang_up()
        yield bob.wait_event("CALL_CLOSED", WAIT)
