"""
A browser over IPv6 calling a phone over IPv4, in the cloud topology of
L{tests.integration.test_topology_nat} with IPv6 added: the home network, the Internet and the
gateway's network are also routed in IPv6 (2001:db8::/32, no NAT, as IPv6 is deployed), and
the gateway binds an IPv6 address (C{ip6}) beside its private IPv4 one.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_topology_ipv6
"""

from __future__ import annotations

import re

from tests.integration import audio
from tests.integration.test_topology_nat import (
    INTERNET_PHONE, PRIVATE, PUBLIC, SIP_PORT, WS_PORT, CloudTopologyTestCase, tcp_open,
)
from tests.integration.peers import poll
from tests.integration.wcs_client import WCSClient

GATEWAY6, BROWSER6 = "2001:db8:2::10", "2001:db8:1::2"
CLOUD_LAN6, HOME_ROUTER6 = "2001:db8:2::1", "2001:db8:1::1"
CLOUD_WAN6, INET_CLOUD6 = "2001:db8:4::1", "2001:db8:4::2"
HOMENAT_WAN6, INET_HOME6 = "2001:db8:3::1", "2001:db8:3::2"


class IPv6BrowserTests(CloudTopologyTestCase):
    """
    The browser reaches the gateway over IPv6 only; the phone is reached over IPv4.
    """

    def gateway_settings(self) -> str:
        net = self.topology
        for namespace, interface, address in (
                (self.gw, self.links["gw"][0], f"{GATEWAY6}/64"),
                (self.cloud, self.links["gw"][1], f"{CLOUD_LAN6}/64"),
                (self.cloud, self.links["cloud"][0], f"{CLOUD_WAN6}/64"),
                (self.inet, self.links["cloud"][1], f"{INET_CLOUD6}/64"),
                (self.homenat, self.links["home"][0], f"{HOMENAT_WAN6}/64"),
                (self.inet, self.links["home"][1], f"{INET_HOME6}/64"),
                (self.home, self.links["browser"][0], f"{BROWSER6}/64"),
                (self.homenat, self.links["browser"][1], f"{HOME_ROUTER6}/64")):
            net.address(namespace, interface, address)
        for router in (self.cloud, self.inet, self.homenat):
            net.forward(router, ipv6=True)
        net.route(self.gw, "default", CLOUD_LAN6)
        net.route(self.cloud, "default", INET_CLOUD6)
        net.route(self.inet, "2001:db8:2::/64", CLOUD_WAN6)
        net.route(self.inet, "2001:db8:1::/64", HOMENAT_WAN6)
        net.route(self.homenat, "default", INET_HOME6)
        net.route(self.home, "default", HOME_ROUTER6)
        return f"ip6={GATEWAY6}\n"

    async def test_ipv6_browser_calls_ipv4_phone(self):
        """
        The browser's WebSocket and media go over IPv6 (c=IN IP6 and the candidate name the
        gateway's IPv6 address, no IPv4 one), the Internet phone gets an IPv4 INVITE with only
        the public IPv4 address, and the browser's tone comes back from the phone.
        """
        self.assertTrue(await poll(lambda: tcp_open(GATEWAY6, WS_PORT), 10, self.reactor, 0.1,
                                   message=lambda: "no ws on IPv6"))
        uas, trace = await self.sipp_uas(self.inet, INTERNET_PHONE, "bob")
        browser = WCSClient(f"ws://[{GATEWAY6}]:{WS_PORT}", self.reactor, loopback=False,
                            directory=self.workdir + "/alice6")
        self.addCleanup(browser.close)
        await browser.connect(sipLogin="alice", sipAuthenticationName="alice", sipPassword="x",
                              sipDomain=PUBLIC, sipOutboundProxy=PUBLIC, sipPort="0",
                              sipRegisterRequired=False)
        call_id = await browser.call(f"bob@{INTERNET_PHONE}", tone_hz=440, codecs=["PCMU"])
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        heard = await browser.wait_audio(call_id, seconds=1.0, timeout=15)
        measured = audio.dominant_frequency(heard)
        self.assertLess(abs(measured - 440), 10, f"{heard}: {measured} Hz echoed, not 440")
        sdp = browser.calls[call_id].remote_sdp
        self.assertRegex(sdp, rf"(?m)^c=IN IP6 {GATEWAY6}\r?$")
        self.assertRegex(sdp, rf"a=candidate:\S+ 1 udp \d+ {GATEWAY6} ")
        self.assertNotRegex(sdp, r"IN IP4|candidate:\S+ 1 udp \d+ \d+\.")
        await browser.hangup(call_id)
        ended = await uas.when_ended(15)
        self.assertFalse(getattr(ended, "exitCode", 0), uas.describe())
        received = self.received(trace)
        self.assertEqual(set(re.findall(r"(?m)^[oc]=.* IN IP4 (\S+)$", received)), {PUBLIC})
        self.assertNotIn(PRIVATE, received)
        self.assertNotIn("2001:db8", received)
        self.assertRegex(received, rf"(?m)^Via: SIP/2.0/UDP {PUBLIC}:{SIP_PORT};")
