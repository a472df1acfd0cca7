"""
WebRTC <-> SIP calls end to end: the real server, the WCS test client (aiortc as the browser) and
baresip as the SIP phone, all on 127.0.0.1.  Media is checked by the tones that arrive.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_calls
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import audio
from tests.integration.loopback_server import bound_port, start_media_server
from tests.integration.peers import Baresip, require_binary
from tests.integration.wcs_client import WCSClient


class CallTestCase(TestCase):
    """
    A real server per test (SIP, WebSocket and HTTP on port 0; media from a private range).
    """

    timeout = 40
    #: More settings for the server (a subclass's policy under test).
    settings_overrides: dict = {}

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.server = yield start_media_server(self, media_ports=200, keep_alive_interval_ms=1000,
                                               **self.settings_overrides)
        self.ws_url = f"ws://127.0.0.1:{bound_port(self.server, 'ws')}"
        self.sip_port = bound_port(self.server, "sip-udp")
        self.base = self.mktemp()
        os.makedirs(self.base)

    def client(self, name):
        client = WCSClient(self.ws_url, reactor, directory=os.path.join(self.base, name))
        self.addCleanup(client.close)
        return client

    async def connect_local(self, name):
        """
        A Phone page in WCS local mode: domain and outbound proxy = the server, port 0.
        """
        client = self.client(name)
        await client.connect(sipLogin=name, sipAuthenticationName=name, sipPassword="x",
                             sipDomain="127.0.0.1", sipOutboundProxy="127.0.0.1", sipPort="0",
                             sipRegisterRequired=False)
        return client

    async def baresip(self, name, tone_hz):
        require_binary("baresip")
        wav = audio.write_tone_wav(os.path.join(self.base, f"{name}.wav"), tone_hz, 30)
        agent = Baresip(self.base, name, registrar=f"127.0.0.1:{self.sip_port}",
                        password="x", tone_wav=wav)
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    def assertFrequency(self, path, expected):
        measured = audio.dominant_frequency(path)
        self.assertLess(abs(measured - expected), 10, f"{path}: {measured} Hz, not {expected}")


class BrowserToPhoneTests(CallTestCase):
    """
    Client -> wcs -> baresip through the built-in registrar/proxy.
    """

    async def test_call_media_dtmf_hold_hangup(self):
        """
        Tones cross both ways, RFC2833 and INFO digits arrive, hold/unhold answer, BYE ends it.
        """
        bob = await self.baresip("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        await alice.send_dtmf(call_id, "5", "RFC2833")
        event = await bob.wait_event("CALL_DTMF_START")
        self.assertEqual(event["param"], "5")
        await alice.send_dtmf(call_id, "7", "INFO")
        event = await bob.wait_event("CALL_DTMF_START")
        self.assertEqual(event["param"], "7")
        await alice.hold(call_id)
        await alice.wait_status(call_id, "HOLD")
        await alice.unhold(call_id)
        await alice.wait_status(call_id, "ESTABLISHED")
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH")
        self.assertEqual(alice.violations, [])

    async def test_opus_browser_transcoded_to_pcmu_phone(self):
        """
        Opus on the WebRTC leg, PCMU on the SIP leg: the tones still arrive at their frequency.
        """
        bob = await self.baresip("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["opus"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        calls = self.server.calls
        self.assertEqual([call.bridge.mode for call in calls], ["transcode"])

    async def test_browser_hangup_and_socket_drop(self):
        """
        hangup gives FINISH and baresip hears BYE; a dropped socket hangs up too.
        """
        bob = await self.baresip("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        await alice.hangup(call_id)
        await alice.wait_status(call_id, "FINISH")
        await bob.wait_event("CALL_CLOSED")
        call_id = await alice.call("bob", codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await alice.close()
        await bob.wait_event("CALL_CLOSED", timeout=5)


class PhoneToBrowserTests(CallTestCase):
    """
    baresip -> wcs -> client.
    """

    async def test_incoming_call(self):
        """
        setRemoteSDP precedes notifyIncomingCall; answering carries media both ways.
        """
        alice = await self.connect_local("alice")
        bob = await self.baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        call_id = await alice.wait_incoming_call(timeout=10)
        await alice.answer(call_id, tone_hz=440)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.wait_event("CALL_ESTABLISHED")
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH")
        self.assertEqual(alice.violations, [])


class BrowserToBrowserTests(CallTestCase):
    """
    Two clients in local mode, SIP inside.
    """

    async def test_local_call(self):
        """
        alice calls bob; both reach ESTABLISHED and hear each other's tone; hangup ends both.
        """
        alice = await self.connect_local("alice")
        bob = await self.connect_local("bob")
        call_id = await alice.call("bob", tone_hz=440)
        incoming = await bob.wait_incoming_call(timeout=10)
        await bob.answer(incoming, tone_hz=1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.wait_status(incoming, "ESTABLISHED", timeout=10)
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=10), 1000)
        self.assertFrequency(await bob.wait_audio(incoming, seconds=1.5, timeout=10), 440)
        await alice.hangup(call_id)
        await bob.wait_status(incoming, "FINISH", timeout=5)
        self.assertEqual(alice.violations + bob.violations, [])


class TransferTests(CallTestCase):
    """
    Blind transfer (spec 9.6) with REFER to a real phone.
    """

    async def test_transfer_to_third_phone(self):
        """
        alice transfers bob to carol: ACCEPTED, then COMPLETED from the NOTIFYs, carol rings.
        """
        bob = await self.baresip("bob", 1000)
        carol = await self.baresip("carol", 700)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        await alice.hold_for_transfer(call_id)
        await alice.wait_status(call_id, "HOLD")
        await alice.transfer(call_id, "carol")
        await alice.wait_transfer_status(call_id, "ACCEPTED", timeout=10)
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.wait_transfer_status(call_id, "COMPLETED", timeout=10)
        await alice.wait_status(call_id, "FINISH", timeout=10)
        await carol.wait_for_received_audio(1.5)
        self.assertFrequency(carol.received_wav(), 1000)  # bob, now talking to carol
        self.assertEqual(alice.violations, [])

    async def test_transfer_between_browsers(self):
        """
        In local mode alice transfers bob to carol: our leg for bob honours the REFER, carol's
        tab rings, and once she answers bob hears her while alice's call finishes.
        """
        alice = await self.connect_local("alice")
        bob = await self.connect_local("bob")
        carol = await self.connect_local("carol")
        call_id = await alice.call("bob", tone_hz=440)
        bob_call = await bob.wait_incoming_call(timeout=10)
        await bob.answer(bob_call, tone_hz=1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await alice.transfer(call_id, "carol")
        carol_call = await carol.wait_incoming_call(timeout=10)
        await carol.answer(carol_call, tone_hz=700)
        await alice.wait_transfer_status(call_id, "COMPLETED", timeout=10)
        await alice.wait_status(call_id, "FINISH", timeout=10)
        self.assertFrequency(await carol.wait_audio(carol_call, seconds=1.5, timeout=10), 1000)
        # bob's recording holds alice first; what he hears now is carol (700 Hz).
        heard = bob._session_for(bob_call).recorder.duration
        path = await bob.wait_audio(bob_call, seconds=heard + 1.5, timeout=10)
        measured = audio.dominant_frequency(path, start=heard + 0.5, seconds=1.0)
        self.assertLess(abs(measured - 700), 10, f"bob hears {measured} Hz after the transfer")
        self.assertEqual({(call.call_id, call.status.value) for call in self.server.calls
                          if call.call_id == bob_call}, {(bob_call, "ESTABLISHED")})
        self.assertEqual(alice.violations + bob.violations + carol.violations, [])


class ThroughKamailioTests(CallTestCase):
    """
    The session registers at a real Kamailio (digest) and calls go through it, both ways.
    """

    async def start_kamailio(self):
        from tests.integration.peers import Kamailio

        self.kamailio = Kamailio(self.base, users={"alice": "secret", "bob": "secret"})
        self.addCleanup(self.kamailio.stop)
        await self.kamailio.start()

    async def registered_client(self):
        client = self.client("alice")
        await client.connect_registered("alice", "secret", self.kamailio.port)
        return client

    async def kamailio_baresip(self, name, tone_hz):
        require_binary("baresip")
        wav = audio.write_tone_wav(os.path.join(self.base, f"{name}.wav"), tone_hz, 30)
        agent = Baresip(self.base, name, registrar=self.kamailio.address, password="secret",
                        tone_wav=wav)
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    async def test_call_out_through_kamailio(self):
        """
        registered -> call bob at Kamailio (407 answered) -> tones both ways -> hangup.
        """
        await self.start_kamailio()
        bob = await self.kamailio_baresip("bob", 1000)
        alice = await self.registered_client()
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=10), 1000)
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        await alice.hangup(call_id)
        await bob.wait_event("CALL_CLOSED")
        self.assertEqual(alice.violations, [])

    async def test_call_in_through_kamailio(self):
        """
        bob calls alice's registration at Kamailio; the session gets the call and answers.
        """
        await self.start_kamailio()
        alice = await self.registered_client()
        bob = await self.kamailio_baresip("bob", 1000)
        await bob.dial(self.kamailio.user_uri("alice"))
        call_id = await alice.wait_incoming_call(timeout=10)
        await alice.answer(call_id, tone_hz=440)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=10), 1000)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH", timeout=10)


    async def test_two_sessions_through_kamailio(self):
        """
        alice and bob register at Kamailio; alice calls bob; both hear each other; hangup.
        """
        await self.start_kamailio()
        alice = await self.registered_client()
        bob = self.client("bob")
        await bob.connect(sipLogin="bob", sipAuthenticationName="bob", sipPassword="secret",
                          sipDomain="127.0.0.1", sipOutboundProxy="127.0.0.1",
                          sipPort=str(self.kamailio.port), sipRegisterRequired=True)
        await bob.wait_registered(timeout=10)
        call_id = await alice.call("bob", tone_hz=440)
        incoming = await bob.wait_incoming_call(timeout=10)
        await bob.answer(incoming, tone_hz=1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=10), 1000)
        self.assertFrequency(await bob.wait_audio(incoming, seconds=1.5, timeout=10), 440)
        await alice.hangup(call_id)
        await bob.wait_status(incoming, "FINISH", timeout=10)
        self.assertEqual(alice.violations + bob.violations, [])


class PhoneToPhoneTests(CallTestCase):
    """
    Two SIP phones (baresip) that know nothing of WebRTC register at the built-in registrar and
    call each other through the built-in proxy.
    """

    async def test_baresip_pair_through_our_proxy(self):
        """
        Registered at us; alice calls bob: established, tones both ways, RFC 4733 DTMF, BYE.
        """
        alice = await self.baresip("alice", 440)
        bob = await self.baresip("bob", 1000)
        await alice.dial(f"sip:bob@127.0.0.1:{self.sip_port}")
        await alice.wait_event("CALL_ESTABLISHED")
        await bob.wait_event("CALL_ESTABLISHED")
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        await alice.wait_for_received_audio(1.5)
        self.assertFrequency(alice.received_wav(), 1000)
        await alice.send_dtmf("9")
        event = await bob.wait_event("CALL_DTMF_START")
        self.assertEqual(event["param"], "9")
        await alice.hangup()
        await bob.wait_event("CALL_CLOSED")
        self.assertEqual(len(self.server.location), 2, "both phones are still registered")
