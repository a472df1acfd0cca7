"""
A SIP phone over TLS at our built-in registrar, and a browser calling it and called by it.

The server listens for SIP over TLS with a certificate from a test CA; baresip registers over
TLS (trusting that CA), so its binding is a TLS connection (RFC 5626 flow: requests for it go
back over that connection, not to its Contact).  The WCS test client (aiortc as the browser)
calls it and is called by it; tones are checked both ways, as in test_calls.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_tls_phone
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest

from tests.integration import audio
from tests.integration import test_calls as calls
from tests.integration.certificates import make_certificate
from tests.integration.peers import free_port, require_binary
from tests.integration.tls_peers import BaresipTLS, start_server, tls_settings
from wcs_twisted.sip.message import parse_message
from wcs_twisted.transport.trace import IN, OUT


class TLSPhoneTests(calls.CallTestCase):
    """
    Browser <-> wcs <-> baresip, the SIP leg over TLS.
    """

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.base = self.mktemp()
        os.makedirs(self.base)
        ca = make_certificate("WCS Test CA")
        low = free_port(span=200)
        settings = tls_settings(ca, os.path.join(self.base, "pki"), media_port_from=low,
                                media_port_to=low + 199, keep_alive_interval_ms=1000)
        self.ca_path = settings.sip_tls_ca_certificates
        self.server = yield start_server(self, settings, reactor)
        self.ws_url = ("ws://127.0.0.1:"
                       f"{self.server.service.getServiceNamed('ws').port.getHost().port}")
        self.tls_port = self.server.sip_stack.local_address("tls")[1]
        self.messages: list[tuple[str, bytes, object]] = []
        self.server.sip_stack.trace.observers.append(
            lambda direction, data, address: self.messages.append((direction, data, address)))

    async def baresip(self, name, tone_hz):
        require_binary("baresip")
        wav = audio.write_tone_wav(os.path.join(self.base, f"{name}.wav"), tone_hz, 30)
        agent = BaresipTLS(self.base, name, self.ca_path,
                           registrar=f"127.0.0.1:{self.tls_port}", password="x", tone_wav=wav)
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    async def tones_then_phone_hangs_up(self, alice, bob, call_id):
        """
        alice hears bob's 1000 Hz, bob hears her 440 Hz; bob's BYE finishes her call.
        """
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.wait_for_received_audio(1.5)
        self.assertFrequency(bob.received_wav(), 440)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH")
        self.assertEqual(alice.violations, [])

    def requests(self, direction, method):
        """
        (request, address) of the C{method} requests that went C{direction} over TLS.
        """
        return [(parse_message(data), address) for way, data, address in self.messages
                if way == direction and address.transport == "tls"
                and data.startswith(method.encode() + b" ")]

    async def test_browser_calls_tls_phone(self):
        """
        The INVITE reaches baresip over its registration's TLS connection; our Via and
        Record-Route there say TLS and name our TLS port; tones cross both ways.
        """
        bob = await self.baresip("bob", 1000)
        [(register, source)] = self.requests(IN, "REGISTER")[:1]
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        [(invite, address)] = self.requests(OUT, "INVITE")
        self.assertEqual(address, source)  # the connection the REGISTER came on
        via = invite.top_via
        self.assertEqual((via.transport.upper(), via.port), ("TLS", self.tls_port))
        [record_route, *_] = invite.headers.get_all("Record-Route")
        self.assertIn(f":{self.tls_port};transport=tls", record_route)
        await self.tones_then_phone_hangs_up(alice, bob, call_id)

    async def test_tls_phone_calls_browser(self):
        """
        baresip dials alice at our TLS port; she answers; tones cross both ways; the 200's
        Contact says transport=tls with our TLS port.
        """
        alice = await self.connect_local("alice")
        bob = await self.baresip("bob", 1000)
        await bob.dial(f"sip:alice@127.0.0.1:{self.tls_port};transport=tls")
        call_id = await alice.wait_incoming_call(timeout=10)
        await alice.answer(call_id, tone_hz=440)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.wait_event("CALL_ESTABLISHED")
        self.assertTrue(self.requests(IN, "INVITE"))
        answers = [parse_message(data) for way, data, address in self.messages
                   if way == OUT and address.transport == "tls"
                   and data.startswith(b"SIP/2.0 200") and b"INVITE" in data.split(b"CSeq:")[1][:20]]
        self.assertTrue(answers)
        contact = answers[0].contacts[0].uri
        self.assertEqual((contact.transport, contact.port), ("tls", self.tls_port))
        await self.tones_then_phone_hangs_up(alice, bob, call_id)
