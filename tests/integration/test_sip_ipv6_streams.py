"""
SIP over TCP and TLS on IPv6 (RFC 5118): with C{ip6=::1} each stream transport also listens on
[::1]; a baresip phone that speaks only IPv6 registers over TCP, or over TLS (trusting the test
CA; our certificate names ::1), at the built-in registrar, then calls a browser (the aiortc WCS
client, on IPv4) and is called by one.  Requests for it go back over its registration's
connection; our Via, Record-Route and Contact toward it carry our bracketed IPv6 address, its
media goes over IPv6 (c=IN IP6 ::1), and the tones cross both ways.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sip_ipv6_streams
"""

from __future__ import annotations

import os

from tests.integration import audio
from tests.integration import test_tls_phone
from tests.integration.certificates import (
    make_certificate, server_certificate, write_combined_pem, write_pem,
)
from tests.integration.peers import require_binary
from tests.integration.test_sip_ipv6 import IPv6Baresip, IPv6TestCase
from tests.integration.tls_peers import BaresipTLS
from wcs_twisted.sip.message import parse_message
from wcs_twisted.transport.trace import IN, OUT


class IPv6TLSBaresip(IPv6Baresip, BaresipTLS):
    """
    An L{IPv6Baresip} whose account reaches us over TLS, trusting the test CA.
    """


class IPv6StreamPhoneTests(IPv6TestCase):
    """
    An IPv6-only phone over a stream transport (C{transport}) and an IPv4 browser.
    """

    transport = "tcp"

    def setUp(self):
        self.pki = pki = os.path.abspath(self.mktemp())
        self.ca = ca = make_certificate("WCS Test CA")
        self.ca_path = write_pem(pki, "ca", ca)[0]
        certificate, key = write_pem(pki, "gateway", server_certificate(
            ca, addresses=("127.0.0.1", "::1")))
        self.settings_overrides = {
            "ipv6_address": "::1", "sip_transports": ("udp", "tcp", "tls"), "sip_tls_port": 0,
            "https_port": 0, "wss_port": 0, "tls_certificate": certificate,
            "tls_private_key": key, "sip_tls_ca_certificates": self.ca_path}
        d = super().setUp()

        def ports(_):
            self.port = self.server.sip_stack.local_address(self.transport)[1]
        return d.addCallback(ports)

    async def phone(self, name: str, tone_hz: int, register: bool = True) -> IPv6Baresip:
        """
        C{name}'s baresip on [::1] only, registered over C{transport} through [::1] (or not
        registered, when it is dialled by address: over TLS it then has a certificate for ::1).
        """
        require_binary("baresip")
        self.assertTrue(self.server.service.getServiceNamed(f"sip-{self.transport}6").ready)
        wav = audio.write_tone_wav(os.path.join(self.base, f"{name}.wav"), tone_hz, 30)
        common = dict(password="x", tone_wav=wav)
        if register:
            common.update(registrar=f"127.0.0.1:{self.port}",
                          outbound=f"[::1]:{self.port};transport={self.transport}")
        if self.transport == "tls":
            certificate = None if register else write_combined_pem(
                self.pki, name, server_certificate(self.ca, addresses=("::1",)))
            agent = IPv6TLSBaresip(self.base, name, self.ca_path, certificate=certificate,
                                   **common)
        else:
            agent = IPv6Baresip(self.base, name, transport=self.transport, **common)
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    def requests(self, direction: str, start: bytes):
        """
        (message, address) of what went C{direction} over our transport, starting C{start}.
        """
        return [(parse_message(data), address) for way, data, address in self.messages
                if way == direction and address.transport == self.transport
                and data.startswith(start)]

    async def test_browser_calls_ipv6_phone(self):
        """
        bob registers over [::1]; alice's INVITE reaches him over that very connection with
        our Via and Record-Route naming [::1] and the transport, and offers c=IN IP6 ::1.
        """
        bob = await self.phone("bob", 1000)
        [(register, source), *_] = self.requests(IN, b"REGISTER ")
        self.assertEqual(source.host, "::1")
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        [(invite, address)] = self.requests(OUT, b"INVITE ")
        self.assertEqual(address, source)  # the connection the REGISTER came on
        via = invite.top_via
        self.assertEqual((via.transport.lower(), via.host, via.port),
                         (self.transport, "[::1]", self.port))
        self.assertIn(f"[::1]:{self.port};transport={self.transport}",
                      invite.headers.get_all("Record-Route")[0])
        self.assertRegex(invite.body.decode(), r"(?m)^c=IN IP6 ::1\r?$")
        await test_tls_phone.TLSPhoneTests.tones_then_phone_hangs_up(self, alice, bob, call_id)

    async def test_browser_calls_ipv6_phone_by_address(self):
        """
        alice dials bob at [::1] (no registration, so no connection to reuse): we open one
        to [::1] (over TLS checking his certificate's IPv6 address), our Via there names
        [::1], and the tones cross both ways.
        """
        bob = await self.phone("bob", 1000, register=False)
        port = bob.sip_port + (1 if self.transport == "tls" else 0)  # baresip: TLS on +1
        alice = await self.connect_local("alice")
        call_id = await alice.call(f"sip:bob@[::1]:{port};transport={self.transport}",
                                   tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        [(invite, address)] = self.requests(OUT, b"INVITE ")
        self.assertEqual((address.host, address.port), ("::1", port))
        self.assertEqual(invite.top_via.host, "[::1]")
        self.assertRegex(invite.body.decode(), r"(?m)^c=IN IP6 ::1\r?$")
        await test_tls_phone.TLSPhoneTests.tones_then_phone_hangs_up(self, alice, bob, call_id)

    async def test_ipv6_phone_calls_browser(self):
        """
        bob dials alice through [::1]; our 200 to him names [::1] and the transport in its
        Contact and answers c=IN IP6 ::1.
        """
        alice = await self.connect_local("alice")
        bob = await self.phone("bob", 1000)
        call_id = await self.phone_calls_browser(
            alice, bob, f"sip:alice@127.0.0.1:{self.port};transport={self.transport}")
        [(invite, source), *_] = self.requests(IN, b"INVITE ")
        self.assertEqual(source.host, "::1")
        answers = [message for message, address in self.requests(OUT, b"SIP/2.0 200")
                   if message.cseq.method == "INVITE"]
        self.assertTrue(answers, "no 200 for the INVITE over IPv6")
        contact = answers[0].contacts[0].uri
        self.assertEqual((contact.host, contact.port, contact.transport),
                         ("[::1]", self.port, self.transport))
        self.assertRegex(answers[0].body.decode(), r"(?m)^c=IN IP6 ::1\r?$")
        await test_tls_phone.TLSPhoneTests.tones_then_phone_hangs_up(self, alice, bob, call_id)


class IPv6TLSPhoneTests(IPv6StreamPhoneTests):
    """
    The same over TLS.
    """

    transport = "tls"
