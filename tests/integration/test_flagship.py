"""
Issue 13's flagship: every piece of "a small Internet inside the tests" in one topology.

    home (192.168.1.2, the browser) -- homenat (MASQUERADE) -- inet -- cloud (1:1 NAT
    203.0.113.10 <-> 10.0.0.10) -- gw (`twistd wcs`);  inet (192.0.2.1) -- provider:
    Kamailio with its tls module on 192.0.2.10 (and .11, the second SRV target), bob (baresip,
    mediaenc=srtp-mand) on 192.0.2.20, dnsmasq on 192.0.2.53 serving provider.test (NAPTR,
    SRV _sips._tcp, A)

The browser (the aiortc WCS client; in L{SDKPhonePageTests} Chromium running the official SDK
over https/wss) connects with the account sips:provider.test and no sipPort: the gateway finds
Kamailio's TLS port by SRV, checks its certificate (provider.test, the provider's CA), registers,
calls bob through Kamailio over TLS with SDES-SRTP on the SIP leg (sip_srtp=mandatory), and bob
calls back.  What the provider sees is captured in its namespace: its loopback (Kamailio
relaying to bob, in the clear) and its link to the Internet (the gateway's TLS and SRTP, after
the cloud NAT).  L{ProviderFailoverTests}: the first SRV target refuses, or is silent.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_flagship
"""

from __future__ import annotations

import os
import re

from twisted.internet import defer
from twisted.internet.ssl import Certificate, optionsForClientTLS

from tests.integration import audio
from tests.integration.certificates import make_certificate, server_certificate, write_pem
from tests.integration.netns import Capture
from tests.integration.peers import poll, require_binary
from tests.integration.test_dns import DOMAIN, Dnsmasq
from tests.integration.test_kamailio_ua import USERS
from tests.integration.test_nat_registrar import NamespacedBaresip
from tests.integration.test_srtp import SRTPBaresip, SRTPCallTestCase
from tests.integration import test_topology_browser as home_browser
from tests.integration.test_topology_browser import install_sdk, make_certificates, open_sdk_page
from tests.integration.test_topology_nat import PUBLIC, PRIVATE, CloudTopologyTestCase
from tests.integration.tls_peers import KamailioTLS
from tests.integration.wcs_client import WCSClient
from tests.web.browser import PACKETS_FLOWING, browser_test, wait_for, wait_until_true

PROXY, SECOND_PROXY, BOB, DNS = "192.0.2.10", "192.0.2.11", "192.0.2.20", "192.0.2.53"
WSS_PORT, SIPS_PORT = 8443, 5061
ALICE_TONE, BOB_TONE = 440, 1000


class ProviderPhone(NamespacedBaresip, SRTPBaresip):
    """
    bob: baresip in the provider's namespace, SDES-SRTP mandatory (RTP/SAVP only).
    """


class FlagshipTopologyTestCase(CloudTopologyTestCase):
    """
    The cloud topology of L{test_topology_nat} plus a SIP provider on the Internet, and a
    gateway that reaches it only by name, over TLS, with SRTP.
    """

    timeout = 150

    def setUp(self):
        require_binary("baresip")
        require_binary("kamailio")
        return super().setUp()

    def gateway_settings(self) -> str:
        # The web's CA signs the gateway's certificate for 203.0.113.10 (wss, https and its
        # SIP TLS server, which Kamailio checks); the provider's own CA signs provider.test.
        self.ca, certificate, key = make_certificates(self.workdir)
        pki = os.path.join(self.workdir, "pki")
        provider_ca = make_certificate("Provider CA")
        self.provider_ca = write_pem(pki, "provider-ca", provider_ca)[0]
        self.provider_pem = write_pem(
            pki, "provider", server_certificate(provider_ca, names=(DOMAIN,), addresses=()))
        # Later lines win over gateway_config's: only the provider may be called.
        return (f"tls_certificate={certificate}\ntls_private_key={key}\nwss.port={WSS_PORT}\n"
                f"https.port=8444\nsip_transports=udp,tls\nsip_tls_port={SIPS_PORT}\n"
                f"sip_tls_ca_certificates={self.provider_ca}\nsip_dns_servers={DNS}\n"
                f"sip_srtp=mandatory\ncall_allowed_destinations={DOMAIN},*.{DOMAIN},"
                f"192.0.2.*\n")

    def start_gateway(self):
        # bob's address first: baresip's RTP leaves from the link's first address, and the
        # gateway takes media only from the SDP's host or the signalling's (RTP bleed).
        self.provider, self.provider_link = self.provider_network((BOB, PROXY, SECOND_PROXY,
                                                                   DNS))
        return super().start_gateway()

    def start_dns(self, targets: list[tuple[int, int, str]]) -> None:
        """
        dnsmasq on 192.0.2.53:53 with NAPTR, C{_sips._tcp} SRV and A records for C{targets}.
        """
        with self.topology.inside(self.provider):
            dns = Dnsmasq(53, targets, service="_sips._tcp", listen=DNS)
        self.addCleanup(dns.stop)

    @defer.inlineCallbacks
    def start_proxy(self, host: str):
        """
        Kamailio on C{host}: UDP/TCP 5060 and TLS 5061 with the provider.test certificate,
        checking the gateway's against the web CA when it connects to it.
        """
        kamailio = KamailioTLS(os.path.join(self.workdir, host), *self.provider_pem,
                               ca=self.ca, users=USERS, domain=DOMAIN, port=5060)
        kamailio.host, kamailio.tls_port = host, SIPS_PORT
        yield self.start_inside(self.provider, kamailio)
        return kamailio

    @defer.inlineCallbacks
    def start_bob(self, proxy: str):
        """
        bob registered (over UDP, inside the provider) at the Kamailio on C{proxy}.
        """
        tone = audio.write_tone_wav(os.path.join(self.workdir, "bob.wav"), BOB_TONE, 30)
        bob = ProviderPhone(self.topology, self.provider, BOB, self.workdir, "bob", self.reactor,
                            registrar=f"{proxy}:5060", password=USERS["bob"], tone_wav=tone,
                            codecs=("PCMU/8000/1",), mediaenc="srtp-mand")
        self.addCleanup(bob.stop)
        yield bob.start(timeout=15)
        return bob

    async def connect_alice(self):
        """
        The browser behind the home NAT: wss to the public address (certificate checked
        against the test CA), the account sips:provider.test without sipPort, registered.
        """
        with open(self.ca, "rb") as pem:
            web_ca = Certificate.loadPEM(pem.read())
        client = WCSClient(f"wss://{PUBLIC}:{WSS_PORT}", self.reactor, loopback=False,
                           directory=os.path.join(self.workdir, "alice"),
                           tls_options=optionsForClientTLS(PUBLIC, trustRoot=web_ca))
        self.addCleanup(client.close)
        await client.connect(sipLogin="alice", sipAuthenticationName="alice",
                             sipPassword=USERS["alice"], sipDomain=f"sips:{DOMAIN}",
                             sipRegisterRequired=True, timeout=20)
        await client.wait_registered(timeout=20)
        return client

    def assertGatewayRequests(self, kamailio: KamailioTLS) -> None:
        """
        Kamailio's own view (its per-request log line): it received the gateway's REGISTER
        and INVITE from the public address, and everything from there over TLS.
        """
        with open(kamailio.log_path) as log:
            seen = re.findall(r"wcs-test: (\S+) \S+ from (\S+):\d+ \((\w+)\)", log.read())
        from_gateway = {(method, protocol) for method, host, protocol in seen if host == PUBLIC}
        self.assertTrue({("REGISTER", "tls"), ("INVITE", "tls")} <= from_gateway, seen)
        self.assertEqual({protocol for _, protocol in from_gateway}, {"tls"}, seen)

    async def browser_calls_bob(self, alice, bob) -> None:
        """
        alice dials "bob" (in her account's domain); tones both ways; alice hangs up.
        """
        call_id = await alice.call("bob", tone_hz=ALICE_TONE, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=20)
        self.assertTone(await alice.wait_audio(call_id, seconds=1.0, timeout=15), BOB_TONE)
        self.assertTone(await bob.wait_for_received_audio(1.0, timeout=15),
                        ALICE_TONE)
        await alice.send_dtmf(call_id, "5", "RFC2833")
        digit = await bob.wait_event("CALL_DTMF_START", 10)
        self.assertEqual(digit.get("param"), "5")
        await alice.hangup(call_id)
        await alice.wait_status(call_id, "FINISH", timeout=10)
        await bob.wait_event("CALL_CLOSED", 10)


class FlagshipTests(FlagshipTopologyTestCase):
    """
    The deployment issue 13 asks to prove, end to end.
    """

    async def test_browser_and_provider_phone_call_each_other(self):
        """
        alice registers at sips:provider.test (SRV, TLS, test CA), calls bob and bob calls
        her; each hears the other's tone both times.  The provider's captures show: every
        message from the gateway came over TLS from 203.0.113.10 (nothing on 5060, no
        cleartext SIP on 5061), no private address in Via/Contact/Record-Route/SDP as
        Kamailio relayed them to bob, RTP/SAVP with a=crypto in the SDP, and SRTP packets
        between 203.0.113.10 and bob (SRTP-sized, the tone not readable in them).  bob's call
        arriving proves the registered Contact was public: the provider has no route to
        10.0.0.0/8.
        """
        self.start_dns([(10, SIPS_PORT, PROXY)])
        kamailio = await self.start_proxy(PROXY)
        bob = await self.start_bob(PROXY)
        wire = Capture(self.topology, self.provider, self.provider_link, self.reactor)
        inside = Capture(self.topology, self.provider, "lo", self.reactor)
        self.addCleanup(wire.stop)
        self.addCleanup(inside.stop)
        alice = await self.connect_alice()

        await self.browser_calls_bob(alice, bob)

        recorded = len(bob.received_wavs())
        await bob.dial(f"sip:alice@{PROXY}:5060")
        call_id = await alice.wait_incoming_call(timeout=20)
        await alice.answer(call_id, tone_hz=ALICE_TONE)
        await bob.wait_event("CALL_ESTABLISHED", 15)
        self.assertTone(await alice.wait_audio(call_id, seconds=1.0, timeout=15), BOB_TONE)
        await poll(lambda: len(bob.received_wavs()) > recorded, 10, self.reactor, 0.1)
        self.assertTone(await bob.wait_for_received_audio(1.0, timeout=15),
                        ALICE_TONE)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH", timeout=10)
        wire.stop()
        inside.stop()

        self.assertSignallingOverTLS(wire, kamailio)
        self.assertNoPrivateAddress(inside)
        # SRTP both ways, both calls.
        media = [packet for packet in wire.packets if packet.protocol == "udp"
                 and 53 not in (packet.source[1], packet.destination[1])]
        for sender, tone in ((PUBLIC, ALICE_TONE), (BOB, BOB_TONE)):
            SRTPCallTestCase.assertEncrypted(
                self, [packet.payload for packet in media if packet.source[0] == sender], tone)

    def assertSignallingOverTLS(self, wire: Capture, kamailio: KamailioTLS) -> None:
        """
        The gateway spoke to the provider only over TCP to or from port 5061, encrypted;
        Kamailio's log shows it received the gateway's requests over TLS from the public
        address.
        """
        sip = [packet for packet in wire.packets if 5060 in
               (packet.source[1], packet.destination[1]) and PUBLIC in
               (packet.source[0], packet.destination[0])]
        self.assertEqual(sip, [], "cleartext SIP between the gateway and the provider")
        tls = wire.between("tcp", PUBLIC, PROXY)
        self.assertTrue(tls)
        self.assertTrue({SIPS_PORT} & {p.source[1] for p in tls} & {p.destination[1] for p in tls})
        for packet in tls:
            self.assertNotRegex(packet.payload[:16], rb"^(SIP/2\.0|[A-Z]+ sips?:)",
                                "cleartext SIP on the TLS port")
        self.assertFalse([packet for packet in wire.packets
                          if PRIVATE in (packet.source[0], packet.destination[0])])
        self.assertGatewayRequests(kamailio)

    def assertNoPrivateAddress(self, inside: Capture) -> None:
        """
        What Kamailio relayed to bob from the gateway (INVITE, ACK, BYE, the 200 for bob's
        INVITE) names only the public address; the SDP offers RTP/SAVP with SDES keys.
        """
        to_bob = [packet.payload.decode("utf-8", "replace") for packet in inside.packets
                  if packet.protocol == "udp" and packet.destination == (BOB, 5060)]
        invite = next(text for text in to_bob if text.startswith("INVITE "))
        self.assertRegex(invite, rf"(?m)^Via: SIP/2.0/TLS {PUBLIC}:{SIPS_PORT};")
        self.assertRegex(invite, rf"(?m)^Contact: <sips?:[^@>]+@{PUBLIC}:{SIPS_PORT}")
        self.assertRegex(invite, rf"(?m)^c=IN IP4 {PUBLIC}\r?$")
        self.assertRegex(invite, r"(?m)^m=audio \d+ RTP/SAVP ")
        self.assertRegex(invite, r"(?m)^a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:")
        ok = next(text for text in to_bob if text.startswith("SIP/2.0 200")
                  and "INVITE" in text.split("CSeq:", 1)[-1].split("\n", 1)[0])
        for text in to_bob:
            self.assertNotIn("10.0.0.", text)
        self.assertRegex(ok, rf"(?m)^c=IN IP4 {PUBLIC}\r?$")


class ProviderFailoverTests(FlagshipTopologyTestCase):
    """
    RFC 3263 4.3 in the topology: the provider's first SRV target is down.
    """

    async def test_first_srv_target_down_registration_and_call_go_to_the_second(self):
        """
        _sips._tcp names 192.0.2.10 (priority 10, nothing listening: the connection is
        refused) and 192.0.2.11 (priority 20, Kamailio): alice registers at the second at once
        and her call to bob (registered there) goes there too, tones both ways; the first
        target got only refused connection attempts.
        """
        self.start_dns([(10, SIPS_PORT, PROXY), (20, SIPS_PORT, SECOND_PROXY)])
        kamailio = await self.start_proxy(SECOND_PROXY)
        bob = await self.start_bob(SECOND_PROXY)
        wire = Capture(self.topology, self.provider, self.provider_link, self.reactor)
        self.addCleanup(wire.stop)
        alice = await self.connect_alice()
        await self.browser_calls_bob(alice, bob)
        wire.stop()
        refused = wire.between("tcp", PUBLIC, PROXY)
        self.assertTrue(refused, "the first target was never tried")
        self.assertEqual({packet.payload for packet in refused}, {b""})
        self.assertEqual({packet.destination for packet in refused
                          if packet.source[0] == PUBLIC}, {(PROXY, SIPS_PORT)})
        self.assertGatewayRequests(kamailio)


    async def test_first_srv_target_silent_registration_goes_to_the_second(self):
        """
        The same, but the first target's host is down without a word (the provider drops
        every packet for it, so the TCP connection is never answered): the registration and
        the call still reach the second target, the registration once the connection attempt
        has been silent for sip_dns_silence_ms (4 s by default, the budget a silent UDP target
        gets), not the 10 s default connect timeout nor the REGISTER's Timer F (32 s); the
        call finds the first target marked down and goes straight to the second.
        """
        self.topology.drop(self.provider, self.provider_link, PROXY)
        self.start_dns([(10, SIPS_PORT, PROXY), (20, SIPS_PORT, SECOND_PROXY)])
        kamailio = await self.start_proxy(SECOND_PROXY)
        bob = await self.start_bob(SECOND_PROXY)
        started = self.reactor.seconds()
        alice = await self.connect_alice()
        registered = self.reactor.seconds() - started
        await self.browser_calls_bob(alice, bob)
        self.assertGatewayRequests(kamailio)
        self.assertLess(registered, 8, "the registration waited longer than the silence budget")


class SDKPhonePageTests(FlagshipTopologyTestCase):
    """
    The official SDK Phone page in Chromium behind the home NAT, loaded over https.
    """

    serve_sdk_page = home_browser.HomeBrowserTests.serve_sdk_page

    def setUp(self):
        return install_sdk(self).addCallback(lambda _: super(SDKPhonePageTests, self).setUp())

    @browser_test
    async def test_sdk_page_registers_by_dns_over_tls_and_calls_both_ways(self):
        """
        The page (https://203.0.113.10, a certificate Chromium verifies) connects over wss
        with the account sips:provider.test and an empty port, as the Phone demo's form sends
        it; the session is REGISTERED at Kamailio (SRV, TLS); it calls bob (SRTP leg): bob
        hears the fake microphone's tone, the page receives audio, DTMF 5 reaches bob; then
        bob calls the page, which answers: each side receives the other's audio.
        """
        from playwright.async_api import async_playwright

        self.start_dns([(10, SIPS_PORT, PROXY)])
        kamailio = await wait_for(self.start_proxy(PROXY))
        bob = await wait_for(self.start_bob(PROXY))
        self.serve_sdk_page(self._sdk_dir)
        playwright = await async_playwright().start()
        try:
            browser, page, console = await open_sdk_page(self, playwright, ALICE_TONE)
            account = {"password": USERS["alice"], "domain": f"sips:{DOMAIN}",
                       "outboundProxy": "", "port": "", "registerRequired": True}
            await page.evaluate("([url, account]) => connect(url, 'alice', account)",
                                [f"wss://{PUBLIC}:{WSS_PORT}", account])
            await page.wait_for_function("sessionStatuses.includes('REGISTERED')",
                                         timeout=20000)
            await page.evaluate("makeCall('bob')")
            await self.page_talks(page, console)
            self.assertTone(await wait_for(bob.wait_for_received_audio(1.0, timeout=15)),
                            ALICE_TONE)
            await page.evaluate("call.sendDTMF('5', 'RFC2833')")
            digit = await wait_for(bob.wait_event("CALL_DTMF_START", 10))
            self.assertEqual(digit.get("param"), "5")
            await page.evaluate("call.hangup()")
            await page.wait_for_function("callStatuses.includes('FINISH')", timeout=10000)
            await wait_for(bob.wait_event("CALL_CLOSED", 10))

            recorded = len(bob.received_wavs())
            await page.evaluate("window.call = null; window.callStatuses = []")
            await wait_for(bob.dial(f"sip:alice@{PROXY}:5060"))
            await page.wait_for_function("window.call !== null", timeout=20000)
            await page.evaluate("answer()")
            await self.page_talks(page, console)
            await wait_for(poll(lambda: len(bob.received_wavs()) > recorded, 10, self.reactor,
                                0.1))
            self.assertTone(await wait_for(bob.wait_for_received_audio(1.0, timeout=15)),
                            ALICE_TONE)
            await wait_for(bob.hangup())
            await page.wait_for_function("callStatuses.includes('FINISH')", timeout=10000)
            await browser.close()
        finally:
            await playwright.stop()
        self.assertGatewayRequests(kamailio)

    async def page_talks(self, page, console: list[str]) -> None:
        """
        The page's call is ESTABLISHED and its audio packets flow in.
        """
        try:
            await page.wait_for_function("callStatuses.includes('ESTABLISHED')", timeout=30000)
            await wait_until_true(page, f"inboundAudioPackets().then(n => n > {PACKETS_FLOWING})")
        except Exception as error:
            raise AssertionError(f"{error}\nconsole: {console}\n{self.twistd_log()}")
