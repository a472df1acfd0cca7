"""
Our user agent against a real Kamailio with digest authentication, and a real baresip behind it.

The server's SIP part is built for real by L{wcs_twisted.tap.build_service} (UDP and TCP on
port 0, local mode off, as with an external SIP server) and started on the reactor.  Then:

  - L{RegistrationClient} registers an account at Kamailio (401 -> digest -> 200), Kamailio
    routes requests for that user back to us, and stopping the client unregisters it; a wrong
    password ends in AUTHENTICATION_FAIL.
  - L{InviteSession.outgoing} calls a baresip registered at Kamailio, through Kamailio as
    outbound proxy (407 -> digest, record-routing), offering PCMU from an L{RTPSession} that
    sends a 440 Hz tone; baresip answers automatically and records what it hears.  Both ways
    of hanging up are checked, over UDP and over TCP, and so are CANCEL, a re-INVITE and
    Kamailio's double Record-Route between a UDP and a TCP leg.
  - baresip calls our registered account through Kamailio and an L{InviteSession} answers it.

Each test starts its own peers and skips when Kamailio or baresip is missing.  Run under the
asyncio reactor, as the server runs:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_kamailio_ua
"""

from __future__ import annotations

import math
import random

import numpy
from twisted.internet import defer, task
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.integration import audio
from tests.integration.peers import LOOPBACK, Baresip, Kamailio, poll, with_timeout
from tests.integration.test_peers import assert_within
from wcs_twisted.config import Settings
from wcs_twisted.interfaces import (
    IClientTransactionOwner,
    IInviteSessionObserver,
    IRequestRouter,
)
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.sdp.session import SessionDescription
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.tap import build_service
from wcs_twisted.transport.trace import OUT
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.ua.invite_session import InviteSession, InviteSessionState
from wcs_twisted.ua.outbound import build_request
from wcs_twisted.ua.registration import RegistrationClient, RegistrationState

#: Passwords of the Kamailio users (digest realm 127.0.0.1).
USERS = {"alice": "secret", "bob": "bobsecret"}
TONE_HZ = 440.0
#: What bob (baresip) sends back, so the two directions cannot be confused.
BOB_TONE_HZ = 1000.0
#: Every wait on a peer is bounded by this (the whole test by trial's timeout).
WAIT = 8.0


def pcmu_encode(samples) -> bytes:
    """
    G.711 mu-law encoding (ITU-T G.711) of float samples in [-1, 1].
    """
    pcm = numpy.clip(numpy.round(numpy.asarray(samples) * 32767), -32767, 32767).astype(int)
    sign = numpy.where(pcm < 0, 0x80, 0x00)
    magnitude = numpy.minimum(numpy.abs(pcm), 32635) + 0x84
    exponent = numpy.floor(numpy.log2(magnitude)).astype(int) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(numpy.uint8).tobytes()


def pcmu_decode(data: bytes):
    """
    G.711 mu-law bytes back to float samples in [-1, 1).
    """
    code = ~numpy.frombuffer(data, dtype=numpy.uint8).astype(int) & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return numpy.where(sign, -magnitude, magnitude) / 32768.0


class ToneSender:
    """
    Sends a 440 Hz PCMU tone through an L{RTPSession}, one 20 ms packet per tick.
    """

    def __init__(self, session: RTPSession, reactor, frequency: float = TONE_HZ) -> None:
        self.session = session
        self.frequency = frequency
        self.sample = 0
        self.loop = task.LoopingCall(self.send)
        self.loop.clock = reactor

    def start(self) -> None:
        self.loop.start(0.02, now=True)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def send(self) -> None:
        t = (self.sample + numpy.arange(160)) / 8000.0
        self.sample += 160
        self.session.send_payload(pcmu_encode(0.5 * numpy.sin(2 * math.pi * self.frequency * t)),
                                  0)


def dominant_frequency(samples, rate: int = 8000) -> float:
    """
    The strongest frequency in C{samples} (Hann-windowed FFT peak), in Hz.
    """
    spectrum = numpy.abs(numpy.fft.rfft(samples * numpy.hanning(len(samples))))
    return float(numpy.fft.rfftfreq(len(samples), 1.0 / rate)[int(numpy.argmax(spectrum))])


@implementer(IInviteSessionObserver)
class CallObserver:
    """
    Records what an L{InviteSession} reports; Deferreds for the moments the tests wait on.
    """

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.answered_d: defer.Deferred = defer.Deferred()
        self.ended_d: defer.Deferred = defer.Deferred()

    def provisional(self, session, response):
        self.events.append(("provisional", response.status_code))

    def answered(self, session, response):
        self.events.append(("answered", response.status_code))
        self.answered_d.callback(response)

    def confirmed(self, session):
        self.events.append(("confirmed",))

    def failed(self, session, status, reason, response):
        self.events.append(("failed", status, reason))
        if not self.answered_d.called:
            self.answered_d.errback(AssertionError(f"call failed: {status} {reason}"))
        if not self.ended_d.called:
            self.ended_d.callback(("failed", status))

    def terminated(self, session, reason, by_remote):
        self.events.append(("terminated", reason, by_remote))
        if not self.ended_d.called:
            self.ended_d.callback(("terminated", by_remote))

    def offer_received(self, session, offer):
        return None

    def info_received(self, session, request):
        return 200

    def refer_received(self, session, request, refer_to):
        return 603

    def notify_received(self, session, request):
        pass

    def message_received(self, session, request):
        pass


@implementer(IRequestRouter)
class AnsweringRouter:
    """
    Takes every out-of-dialog INVITE as an L{InviteSession} and answers it with C{sdp}.
    """

    def __init__(self, core, clock, sdp: bytes) -> None:
        self.core = core
        self.clock = clock
        self.sdp = sdp
        self.observer = CallObserver()
        self.sessions: list[InviteSession] = []
        self.confirmed_d: defer.Deferred = defer.Deferred()

    def accept_request(self, event) -> bool:
        if event.request.method != "INVITE":
            return False
        session = InviteSession.incoming(self.core, self.clock, self.observer, event)
        self.sessions.append(session)
        session.ring()
        session.accept(self.sdp)
        self.observer.confirmed = lambda session: self.confirmed_d.callback(session)
        return True


@implementer(IClientTransactionOwner)
class ResponseWaiter:
    """
    Fires C{done} with the final response of one client transaction (or the failure reason).
    """

    def __init__(self) -> None:
        self.done: defer.Deferred = defer.Deferred()

    def response_received(self, response):
        if response.status_code >= 200 and not self.done.called:
            self.done.callback(response.status_code)

    def transaction_failed(self, reason):
        if not self.done.called:
            self.done.callback(reason)


class KamailioUserAgentTests(TestCase):
    """
    RFC 3261 10.2, 13, 15 and 22 against a real Kamailio: our REGISTER client and INVITE
    session through a record-routing, digest-authenticating proxy.
    """

    timeout = 20

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self.base = self.mktemp()
        self.kamailio = Kamailio(self.base, users=USERS)

    @defer.inlineCallbacks
    def start(self, transports=("udp", "tcp")):
        """
        Start Kamailio and our server (its SIP part on port 0); fire when both listen.
        """
        self.addCleanup(self.kamailio.stop)
        yield self.kamailio.start()
        settings = Settings(bind_address=LOOPBACK, sip_port=0, ws_port=0, http_port=0,
                            enable_local_videochat=False, sip_transports=transports)
        self.root = build_service(settings, self.reactor)
        self.root.service.startService()
        self.addCleanup(self.root.service.stopService)
        yield defer.gatherResults([listener.when_ready() for listener in self.root.listeners])
        self.core = self.root.sip_core
        self.stack = self.root.sip_stack
        self.sent: list[tuple[bytes, SIPAddress]] = []
        self.stack.trace.observers.append(
            lambda direction, data, address: self.sent.append((data, address))
            if direction == OUT else None)

    def sent_requests(self, method: str):
        """
        The C{method} requests our stack sent, parsed, with where each went.
        """
        return [(parse_message(data), address) for data, address in self.sent
                if data.startswith(method.encode() + b" ")]

    def assert_routed_through_kamailio(self, method: str, protocol: str) -> None:
        """
        Every in-dialog C{method} we sent (Request-URI = the callee's Contact, not its address
        of record at Kamailio) went to Kamailio over C{protocol}, with Kamailio's Record-Route
        as its Route (12.2.1.1, loose routing).  The ACK of a 407 is not in a dialog.
        """
        requests = [(request, address) for request, address in self.sent_requests(method)
                    if request.uri.port != self.kamailio.port]
        self.assertTrue(requests, f"no in-dialog {method} sent")
        for request, address in requests:
            self.assertEqual(address, SIPAddress(protocol, LOOPBACK, self.kamailio.port))
            [route] = request.headers.get_all("Route")
            self.assertIn(f"sip:{LOOPBACK}:{self.kamailio.port}", route)
            self.assertIn(";lr", route)

    def account(self, login="alice", password=None) -> SIPAccount:
        return SIPAccount(login=login, authentication_name=login,
                          password=USERS[login] if password is None else password,
                          domain=LOOPBACK, outbound_proxy="", port=self.kamailio.port,
                          register_required=True)

    def registration(self, account, protocol="udp"):
        changes = []
        client = RegistrationClient(self.core, self.reactor, account, changes.append,
                                    expires=120, protocol=protocol, retry=False)
        return client, changes

    def wait_state(self, client, *states):
        return poll(lambda: client.state in states, WAIT, self.reactor, 0.02,
                    message=lambda: f"registration stayed {client.state}\n"
                                    f"{self.kamailio.log_tail()}")

    def options_via_kamailio(self, user, protocol="udp") -> defer.Deferred:
        """
        OPTIONS to C{user} at Kamailio from a user Kamailio does not challenge; fires with the
        final status (200 from us when Kamailio routes it to our binding, 404 when none).
        """
        uri = SIPURI.parse(self.kamailio.user_uri(user))
        request = build_request(
            self.stack, "OPTIONS", uri, from_value=f"<sip:probe@{LOOPBACK}>;tag=p1",
            to_value=f"<{uri}>", call_id=f"probe-{random.getrandbits(32)}@{LOOPBACK}", cseq=1,
            protocol=protocol)
        waiter = ResponseWaiter()
        self.core.send_request(request, SIPAddress(protocol, LOOPBACK, self.kamailio.port),
                               waiter)
        return with_timeout(waiter.done, WAIT, self.reactor, lambda: "no answer to OPTIONS")

    # --- registration -------------------------------------------------------------------

    @defer.inlineCallbacks
    def check_register_and_unregister(self, protocol):
        yield self.start()
        client, changes = self.registration(self.account(), protocol)
        client.start()
        yield self.wait_state(client, RegistrationState.REGISTERED,
                              RegistrationState.AUTHENTICATION_FAIL, RegistrationState.FAILED)
        self.assertEqual(client.state, RegistrationState.REGISTERED, changes)
        self.assertEqual(changes[-1].status, 200)
        self.assertEqual(client.granted, 120)
        # Kamailio now routes requests for alice to our Contact, and the UA core answers.
        status = yield self.options_via_kamailio("alice")
        self.assertEqual(status, 200)

        yield with_timeout(client.stop(), WAIT, self.reactor, lambda: "unREGISTER hung")
        self.assertEqual(client.state, RegistrationState.UNREGISTERED)
        self.assertEqual(changes[-1].status, 200)
        status = yield self.options_via_kamailio("alice")
        self.assertEqual(status, 404)

    def test_register_with_digest_and_unregister(self):
        """
        10.2 / 22.2: REGISTER is challenged (401), answered with digest, bound with the
        granted expiry, routed to by Kamailio, and removed by REGISTER Expires: 0 on stop.
        """
        return self.check_register_and_unregister("udp")

    def test_register_over_tcp(self):
        """
        18.3: the same registration over TCP, with a transport=tcp Contact.
        """
        return self.check_register_and_unregister("tcp")

    @defer.inlineCallbacks
    def test_wrong_password_is_authentication_fail(self):
        """
        22.2: credentials Kamailio refuses (403) end in AUTHENTICATION_FAIL, reported once.
        """
        yield self.start()
        client, changes = self.registration(self.account(password="wrong"))
        client.start()
        yield self.wait_state(client, RegistrationState.REGISTERED,
                              RegistrationState.AUTHENTICATION_FAIL, RegistrationState.FAILED)
        self.assertEqual(client.state, RegistrationState.AUTHENTICATION_FAIL)
        self.assertEqual([c.state for c in changes],
                         [RegistrationState.REGISTERING, RegistrationState.AUTHENTICATION_FAIL])
        self.assertEqual(changes[-1].status, 403)
        yield client.stop()

    # --- calls --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start_bob(self, transport="udp"):
        tone = audio.write_tone_wav(self.mktemp() + ".wav", BOB_TONE_HZ, 30)
        bob = Baresip(self.base, "bob", registrar=self.kamailio.address,
                      password=USERS["bob"], tone_wav=tone, answer="auto", transport=transport,
                      codecs=("PCMU/8000/1",))
        self.addCleanup(bob.stop)
        yield bob.start()
        return bob

    def media(self):
        """
        Our media leg: an RTP session on loopback and its PCMU offer.
        """
        session = RTPSession(self.reactor, LOOPBACK, rng=random.Random(3))
        session.start()
        self.addCleanup(session.stop)
        received: list[bytes] = []
        session.packet_received = received.append
        host, port = session.local_address
        offer = (
            "v=0\r\n"
            f"o=- 1 1 IN IP4 {LOOPBACK}\r\n"
            "s=-\r\n"
            f"c=IN IP4 {LOOPBACK}\r\n"
            "t=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\n"
            f"a=rtcp:{session.local_rtcp_port}\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
        ).encode()
        return session, offer, received

    @defer.inlineCallbacks
    def call_bob(self, protocol="udp", bob_transport="udp"):
        """
        Start everything, call bob through Kamailio and wait until the call is up and audio
        flows both ways; fire with (bob, session, observer, tone, received).
        """
        yield self.start()
        bob = yield self.start_bob(bob_transport)
        rtp, offer, received = self.media()
        observer = CallObserver()
        to_uri = SIPURI.parse(self.kamailio.user_uri("bob"))
        if protocol != "udp":
            to_uri = to_uri.with_params(transport=protocol)
        session = InviteSession.outgoing(
            self.core, self.reactor, observer, SIPURI.parse(f"sip:alice@{LOOPBACK}"), to_uri,
            offer, outbound_proxy=self.kamailio.address,
            credentials=("alice", USERS["alice"]), protocol=protocol)
        self.addCleanup(lambda: session.hang_up() if session.state is not
                        InviteSessionState.DISCONNECTED else None)
        answer = yield with_timeout(observer.answered_d, WAIT, self.reactor, lambda: (
            f"no answer; {observer.events}\n{self.kamailio.log_tail()}\n{bob.log_tail()}"))
        self.assertEqual(session.state, InviteSessionState.CONFIRMED)
        sdp = SessionDescription.parse(answer.body)
        [audio_section] = sdp.media
        connection = sdp.connection_for(audio_section)
        rtp.set_remote(connection.address, audio_section.port)
        tone = ToneSender(rtp, self.reactor)
        tone.start()
        self.addCleanup(tone.stop)
        yield bob.wait_event("CALL_ESTABLISHED", WAIT)
        return bob, session, observer, tone, received

    @defer.inlineCallbacks
    def check_audio(self, bob, received):
        """
        bob's recording of what we sent carries our 440 Hz tone, and what bob sends reaches
        our RTP session as his 1000 Hz tone.
        """
        path = yield bob.wait_for_received_audio(1.5, WAIT)
        samples, rate = audio.read_wav(path)
        steady = samples[int(0.5 * rate):]
        assert_within(self, dominant_frequency(steady, rate), TONE_HZ, 10, "bob hears")
        self.assertGreater(float(numpy.sqrt(numpy.mean(steady ** 2))), 0.25)
        yield poll(lambda: len(received) >= 50, WAIT, self.reactor, 0.05,
                   message=lambda: f"only {len(received)} RTP packets from bob")
        heard = pcmu_decode(b"".join(packet[12:] for packet in received[-50:]))
        assert_within(self, dominant_frequency(heard), BOB_TONE_HZ, 10, "we hear")

    @defer.inlineCallbacks
    def check_call_we_hang_up(self, protocol, bob_transport="udp"):
        bob, session, observer, tone, received = yield self.call_bob(protocol, bob_transport)
        yield self.check_audio(bob, received)
        session.hang_up()
        tone.stop()
        closed = yield bob.wait_event("CALL_CLOSED", WAIT)
        self.assertIn("by peer", closed.get("param", ""))
        self.assertEqual(observer.events[-1], ("terminated", "Normal call clearing", False))
        self.assertEqual(session.state, InviteSessionState.DISCONNECTED)
        self.assertEqual(self.core.dialog_count(), 0)
        self.assert_routed_through_kamailio("ACK", protocol)
        self.assert_routed_through_kamailio("BYE", protocol)
        # The INVITE was challenged once (407) and answered with digest (22.3).
        invites = [request for request, _ in self.sent_requests("INVITE")]
        self.assertEqual([request.headers.get("Proxy-Authorization") is not None
                          for request in invites], [False, True])

    @defer.inlineCallbacks
    def check_call_remote_hangs_up(self, protocol, bob_transport="udp"):
        bob, session, observer, tone, received = yield self.call_bob(protocol, bob_transport)
        yield bob.hangup()
        ended = yield with_timeout(observer.ended_d, WAIT, self.reactor, lambda: (
            f"no BYE reached us; {observer.events}\n{self.kamailio.log_tail()}"))
        self.assertEqual(ended, ("terminated", True))
        self.assertEqual(session.state, InviteSessionState.DISCONNECTED)
        self.assertEqual(self.core.dialog_count(), 0)
        yield bob.wait_event("CALL_CLOSED", WAIT)

    def test_call_through_kamailio_we_hang_up(self):
        """
        13.2 / 15.1 over UDP: our INVITE passes Kamailio's 407 with digest, baresip answers,
        our 440 Hz tone reaches it, and our BYE (along the record-routed path) closes its call.
        """
        return self.check_call_we_hang_up("udp")

    def test_call_through_kamailio_remote_hangs_up(self):
        """
        15.1.2 over UDP: baresip's BYE reaches us through Kamailio; the observer hears
        terminated(by_remote=True).
        """
        return self.check_call_remote_hangs_up("udp")

    def test_call_over_tcp_we_hang_up(self):
        """
        18.3: the call with our leg to Kamailio over TCP (baresip on TCP too), ended by us.
        """
        return self.check_call_we_hang_up("tcp", "tcp")

    def test_call_over_tcp_remote_hangs_up(self):
        """
        18.3: over TCP, baresip's BYE comes to us through Kamailio on a connection to our
        listening port.
        """
        return self.check_call_remote_hangs_up("tcp", "tcp")

    @defer.inlineCallbacks
    def test_call_udp_to_tcp_callee_with_double_record_route(self):
        """
        16.6 seen from the UAC: Kamailio bridges our UDP leg to baresip's TCP leg with two
        Record-Routes; our route set keeps both in reverse order and the BYE follows them.
        """
        bob, session, observer, tone, received = yield self.call_bob("udp", "tcp")
        routes = [str(route) for route in session.dialog.route_set]
        self.assertEqual(len(routes), 2)
        session.hang_up()
        yield bob.wait_event("CALL_CLOSED", WAIT)
        [(bye, address)] = self.sent_requests("BYE")
        self.assertEqual(address, SIPAddress("udp", LOOPBACK, self.kamailio.port))
        self.assertEqual(bye.headers.get_all("Route"), routes)
        self.assertEqual(self.core.dialog_count(), 0)

    @defer.inlineCallbacks
    def test_reinvite_hold_through_kamailio(self):
        """
        14.1: a re-INVITE (sendonly) goes along the route set, its 2xx is ACKed there, and the
        call stays up; baresip still answers our BYE afterwards.
        """
        bob, session, observer, tone, received = yield self.call_bob("udp")
        held = session.local_sdp.replace(b"a=sendrecv", b"a=sendonly").replace(
            b"o=- 1 1 ", b"o=- 1 2 ")
        response = yield with_timeout(session.reinvite(held), WAIT, self.reactor,
                                      lambda: "re-INVITE unanswered")
        self.assertEqual(response.status_code, 200)
        self.assertIn(b"a=recvonly", response.body)
        session.hang_up()
        yield bob.wait_event("CALL_CLOSED", WAIT)

    @defer.inlineCallbacks
    def test_cancel_through_kamailio(self):
        """
        9.1: a call baresip lets ring is cancelled; Kamailio relays our CANCEL, baresip's 487
        ends our INVITE (observer.failed with 487) and baresip closes the call.
        """
        yield self.start()
        tone = audio.write_tone_wav(self.mktemp() + ".wav", BOB_TONE_HZ, 30)
        bob = Baresip(self.base, "bob", registrar=self.kamailio.address,
                      password=USERS["bob"], tone_wav=tone, answer="manual",
                      codecs=("PCMU/8000/1",))
        self.addCleanup(bob.stop)
        yield bob.start()
        rtp, offer, received = self.media()
        observer = CallObserver()
        observer.answered_d.addErrback(lambda failure: None)  # never answered, on purpose
        session = InviteSession.outgoing(
            self.core, self.reactor, observer, SIPURI.parse(f"sip:alice@{LOOPBACK}"),
            SIPURI.parse(self.kamailio.user_uri("bob")), offer,
            outbound_proxy=self.kamailio.address, credentials=("alice", USERS["alice"]))
        yield bob.wait_event("CALL_INCOMING", WAIT)
        yield poll(lambda: ("provisional", 180) in observer.events, WAIT, self.reactor, 0.02,
                   message=lambda: f"no 180: {observer.events}")
        session.cancel()
        ended = yield with_timeout(observer.ended_d, WAIT, self.reactor,
                                   lambda: f"CANCEL did not end the call: {observer.events}")
        self.assertEqual(ended, ("failed", 487))
        yield bob.wait_event("CALL_CLOSED", WAIT)
        self.assertEqual(self.core.dialog_count(), 0)

    @defer.inlineCallbacks
    def check_incoming_call(self, protocol):
        yield self.start()
        client, changes = self.registration(self.account(), protocol)
        client.start()
        self.addCleanup(client.stop)
        yield self.wait_state(client, RegistrationState.REGISTERED)
        bob = yield self.start_bob(protocol)
        rtp, offer, received = self.media()
        router = AnsweringRouter(self.core, self.reactor, offer)
        self.core.add_router(router)
        self.addCleanup(self.core.routers.remove, router)
        yield bob.dial(self.kamailio.user_uri("alice"))
        session = yield with_timeout(router.confirmed_d, WAIT, self.reactor, lambda: (
            f"no ACK for our 200: {router.observer.events}\n{self.kamailio.log_tail()}"))
        yield bob.wait_event("CALL_ESTABLISHED", WAIT)
        self.assertEqual(session.state, InviteSessionState.CONFIRMED)
        self.assertEqual(len(session.dialog.route_set), 1)
        self.assertEqual(session.dialog.local_contact.uri.transport, protocol)
        sdp = SessionDescription.parse(session.remote_sdp)
        rtp.set_remote(sdp.connection_for(sdp.media[0]).address, sdp.media[0].port)
        tone = ToneSender(rtp, self.reactor)
        tone.start()
        self.addCleanup(tone.stop)
        yield self.check_audio(bob, received)
        session.hang_up()
        closed = yield bob.wait_event("CALL_CLOSED", WAIT)
        self.assertIn("by peer", closed.get("param", ""))
        self.assertEqual(self.core.dialog_count(), 0)
        self.assert_routed_through_kamailio("BYE", protocol)

    def test_incoming_call_through_kamailio(self):
        """
        12.1.1 / 13.3: baresip calls our registered account through Kamailio; we answer with
        its Record-Route copied, its ACK reaches us, audio flows, and our BYE uses the route set.
        """
        return self.check_incoming_call("udp")

    def test_incoming_call_over_tcp(self):
        """
        18.3: the incoming call with our registration, the INVITE and our BYE over TCP.
        """
        return self.check_incoming_call("tcp")
