"""
Issue 13, "what trunks and PBXs ask for", proven where a WCS user runs the gateway: `twistd wcs`
behind the cloud's 1:1 NAT, browsers (the aiortc WCS client) behind a home NAT, and the carrier
(sipp, one process per feature, run in parallel) in a provider network reached by DNS name.

    home (browsers) -- homenat (MASQUERADE) -- inet -- cloud (1:1 NAT 203.0.113.10 <->
    10.0.0.10) -- gw;  inet (192.0.2.1) -- prov: carriers on 192.0.2.10-.17, dnsmasq on
    192.0.2.53 serving provider.test (NAPTR and _sip._udp SRV to t0 = 192.0.2.10, and A
    records t0..t7 = .10-.17)

Each carrier insists on its feature the way a carrier does (the scenario fails otherwise):
RFC 4028 session timers with 422 handling, RFC 3262 100rel/PRACK (both roles each), early media
from a 183 heard in the browser, a re-INVITE without SDP, UPDATE, P-Asserted-Identity and
Remote-Party-ID from a trusted peer (sip_trusted_peers = the provider's network) and X- headers
both ways.  What the carriers received, and every packet on the provider's link, carry only the
public address.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_topology_trunk
"""

from __future__ import annotations

import os
import re

from twisted.internet import defer

from tests.integration.netns import Capture
from tests.integration.peers import require_binary
from tests.integration.test_dns import DOMAIN, Dnsmasq
from tests.integration.test_local_mode import first_message
from tests.integration.test_topology_nat import (
    INTERNET_PHONE,
    PRIVATE,
    PUBLIC,
    SIP_PORT,
    CloudTopologyTestCase,
)
from tests.integration.test_trunk_features import write_tone_pcap

DNS = "192.0.2.53"
PROVIDER_NETWORK = "192.0.2.0/24"
#: The carriers' addresses: t<i>.provider.test is CARRIERS[i]; provider.test's SRV names t0.
CARRIERS = tuple(f"192.0.2.{10 + index}" for index in range(8))


def carrier_name(index: int) -> str:
    return f"t{index}.{DOMAIN}"


class TrunkTopologyTestCase(CloudTopologyTestCase):
    """
    The cloud topology of L{test_topology_nat} plus a provider network with a DNS server, and
    a gateway that trusts the provider's asserted identities.
    """

    timeout = 150

    def setUp(self):
        require_binary("sipp", "sip-tester")
        return super().setUp()

    def gateway_settings(self) -> str:
        return (f"sip_dns_servers={DNS}\nsip_trusted_peers={PROVIDER_NETWORK}\n"
                f"call_allowed_destinations={DOMAIN},*.{DOMAIN}\n")

    def start_gateway(self):
        self.provider, self.provider_link = self.provider_network((*CARRIERS, DNS))
        with self.topology.inside(self.provider):
            dns = Dnsmasq(53, [(10 * (index + 1), SIP_PORT, host)
                               for index, host in enumerate(CARRIERS)],
                          service="_sip._udp", listen=DNS)
        self.addCleanup(dns.stop)
        return super().start_gateway()

    def capture(self) -> Capture:
        """
        Every packet on the provider's link, as the carriers see it (after the cloud NAT).
        """
        wire = Capture(self.topology, self.provider, self.provider_link, self.reactor)
        self.addCleanup(wire.stop)
        return wire

    def assertNothingPrivateCrossed(self, wire: Capture) -> None:
        """
        No packet between the gateway and the provider names the private address, in its
        IP header or its payload (SIP and SDP).
        """
        wire.stop()
        self.assertTrue([packet for packet in wire.packets
                         if PUBLIC in (packet.source[0], packet.destination[0])],
                        "nothing captured")
        leaks = [packet for packet in wire.packets
                 if PRIVATE in (packet.source[0], packet.destination[0])
                 or PRIVATE.encode() in packet.payload]
        self.assertEqual(leaks, [])

    def assertPublicOnly(self, received: str, what: str) -> None:
        """
        What a carrier received names the public address (Via, Contact, o=, c=) and never
        the private network.
        """
        self.assertIn(PUBLIC, received, what)
        self.assertNotIn("10.0.0.", received, f"{what} leaks the private network")
        self.assertEqual(set(re.findall(r"(?m)^[oc]=.* IN IP4 (\S+)$", received)), {PUBLIC},
                         what)

    async def sipp_passed(self, peer, trace: str, what: str) -> str:
        """
        The carrier's scenario passed (it insists on its feature); returns what it received,
        checked for public addresses only.
        """
        ended = await peer.when_ended(30)
        self.assertFalse(getattr(ended, "exitCode", 0), peer.describe())
        received = self.received(trace)
        self.assertPublicOnly(received, what)
        return received

    def parallel(self, *flows):
        """
        Run the coroutines C{flows} at once; fails with the first failure.
        """
        return defer.gatherResults([defer.Deferred.fromCoroutine(flow) for flow in flows],
                                   consumeErrors=True)


class CarrierCalledTests(TrunkTopologyTestCase):
    """
    Browsers behind the home NAT call carriers by DNS name; each carrier insists on its
    feature as a UAS.
    """

    async def call_carrier(self, index: int, scenario: str, user: str, tone: int = 440,
                           echo: bool = True, extra: tuple[str, ...] = (), codecs=("PCMU",),
                           callee: str | None = None, sip_headers=None):
        """
        Start carrier C{index} (a sipp UAS running C{scenario}) and let browser C{user} call
        it; returns the browser, the callId, the carrier and its trace.
        """
        carrier, trace = await self.sipp_uas(self.provider, CARRIERS[index], "bob",
                                             scenario=scenario, echo=echo, label=scenario,
                                             extra=extra)
        browser = await self.connect_local(user)
        call_id = await browser.call(callee or f"bob@{carrier_name(index)}", tone_hz=tone,
                                     codecs=list(codecs), sip_headers=sip_headers)
        return browser, call_id, carrier, trace

    async def hang_up(self, browser, call_id) -> None:
        await browser.hangup(call_id)
        await browser.wait_status(call_id, "FINISH", timeout=10)
        self.assertEqual(browser.violations, [])

    async def prack_and_x_header(self):
        """
        provider.test by NAPTR/SRV: a 180 requiring 100rel is PRACKed; the browser's X- header
        reaches the carrier; the echoed tone comes back across both NATs.
        """
        browser, call_id, carrier, trace = await self.call_carrier(
            0, "uas_100rel", "alice", callee=f"bob@{DOMAIN}", sip_headers={"X-Ticket": "42"})
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        self.assertEqual(browser.calls[call_id].statuses.count("RING"), 1)
        self.assertTone(await browser.wait_audio(call_id, seconds=1.0, timeout=15), 440)
        await self.hang_up(browser, call_id)
        invite = first_message(await self.sipp_passed(carrier, trace, "uas_100rel"), "INVITE ")
        self.assertRegex(invite, r"(?m)^X-Ticket: 42\r?$")
        self.assertRegex(invite, rf"(?m)^Via: SIP/2.0/UDP {PUBLIC}:{SIP_PORT};")
        self.assertRegex(invite, rf"(?m)^Contact: <sip:[^@>]+@{PUBLIC}:{SIP_PORT}>")

    async def refreshes_session(self):
        """
        Session-Expires 4;refresher=uac in the carrier's 200: the gateway refreshes by UPDATE
        (two at least, the carrier insists) and the call keeps its audio past the interval.
        """
        browser, call_id, carrier, trace = await self.call_carrier(
            1, "uas_session_timer", "carol")
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        self.assertTone(await browser.wait_audio(call_id, seconds=6, timeout=20), 440)
        self.assertEqual(browser.calls[call_id].status, "ESTABLISHED")
        await self.hang_up(browser, call_id)
        received = await self.sipp_passed(carrier, trace, "uas_session_timer")
        self.assertGreaterEqual(len(re.findall(r"(?m)^UPDATE sip:", received)), 2)

    async def early_media(self):
        """
        The carrier's 183 plays a 1000 Hz IVR tone from a pcap: the browser hears it while
        not yet ESTABLISHED; the 200 then establishes the call.
        """
        browser, call_id, carrier, trace = await self.call_carrier(
            2, "uas_early_media", "dave", echo=False, extra=("-d", "8000"), codecs=("PCMA",))
        await browser.wait_status(call_id, "SESSION_PROGRESS", timeout=20)
        heard = await browser.wait_audio(call_id, seconds=1.5, timeout=7)
        self.assertNotIn("ESTABLISHED", browser.calls[call_id].statuses)
        self.assertTone(heard, 1000)
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        await self.hang_up(browser, call_id)
        await self.sipp_passed(carrier, trace, "uas_early_media")

    async def min_se_raised(self):
        """
        The carrier answers 422 with Min-SE 3600: the gateway asks again with 3600 (the
        carrier insists) and the call is established with its audio.
        """
        browser, call_id, carrier, trace = await self.call_carrier(
            3, "uas_session_timer_422", "erin")
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        self.assertTone(await browser.wait_audio(call_id, seconds=1.0, timeout=15), 440)
        await self.hang_up(browser, call_id)
        received = await self.sipp_passed(carrier, trace, "uas_session_timer_422")
        self.assertEqual(len(re.findall(r"(?m)^INVITE sip:", received)), 2)

    async def test_browsers_call_carriers(self):
        """
        Four browsers call four carriers at once: 100rel/PRACK and an X- header (provider.test
        found by NAPTR and SRV), session refresh by UPDATE, early media before the answer, and
        422 handling.  Each carrier's scenario passes, each received only the public address,
        and no packet on the provider's link names the private one.
        """
        write_tone_pcap(os.path.join(self.workdir, "early_media.pcap"), 1000, 10)
        wire = self.capture()
        await self.parallel(self.prack_and_x_header(), self.refreshes_session(),
                            self.early_media(), self.min_se_raised())
        self.assertNothingPrivateCrossed(wire)


class CarrierCallingTests(TrunkTopologyTestCase):
    """
    Carriers call browsers behind the home NAT at the gateway's public address; each insists
    on its feature as a UAC.
    """

    async def carrier_calls(self, namespace: str, host: str, scenario: str, user: str,
                            extra: tuple[str, ...] = (), codecs=None):
        """
        Browser C{user} logs in; a carrier at C{host} (in C{namespace}) runs C{scenario}
        calling it, echoing its tone; the browser answers.  Returns the browser, the callId,
        the notifyIncomingCall object, the carrier and its trace.
        """
        browser = await self.connect_local(user)
        carrier, trace = self.sipp(namespace, host, user, scenario,
                                   target=f"{PUBLIC}:{SIP_PORT}", extra=extra,
                                   label=f"{scenario}-{host}")
        call_id = await browser.wait_incoming_call(timeout=20)
        incoming = browser.calls[call_id].incoming_object
        await browser.answer(call_id, tone_hz=440, codecs=codecs)
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        return browser, call_id, incoming, carrier, trace

    async def carrier_hangs_up(self, browser, call_id, carrier, trace, scenario) -> str:
        received = await self.sipp_passed(carrier, trace, scenario)
        await browser.wait_status(call_id, "FINISH", timeout=10)
        self.assertEqual(browser.violations, [])
        return received

    async def asserted_identity(self, namespace, host, user, expected,
                                scenario="uac_trunk_identity"):
        """
        C{scenario} (From the trunk's number, "Boss" 1000 in P-Asserted-Identity or
        Remote-Party-ID, X-Campaign) from C{host}: notifyIncomingCall shows C{expected}
        (caller, visibleName) and the X- header in inviteParameters.
        """
        browser, call_id, incoming, carrier, trace = await self.carrier_calls(
            namespace, host, scenario, user, extra=("-d", "1000"))
        self.assertEqual((incoming["caller"], incoming["visibleName"]), expected)
        self.assertEqual(incoming["inviteParameters"], {"X-Campaign": "spring"})
        await self.carrier_hangs_up(browser, call_id, carrier, trace, scenario)

    async def reliable_180(self):
        """
        An INVITE with Require: 100rel gets a reliable 180 (Require: 100rel, RSeq), whose
        PRACK is answered 200 (the carrier insists).
        """
        browser, call_id, _, carrier, trace = await self.carrier_calls(
            self.provider, CARRIERS[1], "uac_require_100rel", "erin", extra=("-d", "500"))
        received = await self.carrier_hangs_up(browser, call_id, carrier, trace,
                                               "uac_require_100rel")
        self.assertRegex(first_message(received, "SIP/2.0 180"), r"(?m)^RSeq: \d+")

    async def too_small_interval(self):
        """
        Session-Expires 60 is refused with 422 and a Min-SE of at least 90; the retry with
        90 is answered with Session-Expires 90 and Require: timer (the carrier insists).
        """
        browser, call_id, _, carrier, trace = await self.carrier_calls(
            self.provider, CARRIERS[2], "uac_session_timer_422", "frank", extra=("-d", "500"))
        received = await self.carrier_hangs_up(browser, call_id, carrier, trace,
                                               "uac_session_timer_422")
        self.assertRegex(first_message(received, "SIP/2.0 422"), r"(?m)^Min-SE: 90\r?$")

    async def test_identity_100rel_and_422(self):
        """
        At once: a trusted carrier (the provider's network) names the caller by
        P-Asserted-Identity, another by Remote-Party-ID, each shown with its X- header in
        notifyIncomingCall; the same INVITE from the Internet (untrusted) shows the From user
        instead; a carrier requiring 100rel
        gets a reliable 180 and its PRACK answered; one asking too short a session interval
        gets 422, then the call.  Only the public address reaches the carriers.
        """
        wire = self.capture()
        await self.parallel(
            self.asserted_identity(self.provider, CARRIERS[0], "alice", ("1000", "Boss")),
            self.asserted_identity(self.inet, INTERNET_PHONE, "carol", ("+4930100", "Trunk")),
            self.asserted_identity(self.provider, CARRIERS[6], "dave", ("1000", "Boss"),
                                   scenario="uac_trunk_rpid"),
            self.reliable_180(), self.too_small_interval())
        self.assertNothingPrivateCrossed(wire)

    async def refreshed_by_carrier(self):
        """
        Session-Expires 90;refresher=uac: the 200 agrees with Require: timer, and so do the
        200s to the carrier's refreshes by re-INVITE and by UPDATE.
        """
        browser, call_id, _, carrier, trace = await self.carrier_calls(
            self.provider, CARRIERS[3], "uac_session_timer", "grace")
        await self.carrier_hangs_up(browser, call_id, carrier, trace, "uac_session_timer")

    async def delayed_offer(self):
        """
        A re-INVITE without SDP: the 200 carries a PCMU offer with the public address, the
        ACK's answer is taken and the browser still hears its echoed tone afterwards.
        """
        browser, call_id, _, carrier, trace = await self.carrier_calls(
            self.provider, CARRIERS[4], "uac_delayed_offer_reinvite", "heidi",
            extra=("-d", "5000"), codecs=["PCMU"])
        self.assertTone(await browser.wait_audio(call_id, seconds=3, timeout=15), 440)
        self.assertEqual(browser.calls[call_id].status, "ESTABLISHED")
        await self.carrier_hangs_up(browser, call_id, carrier, trace,
                                    "uac_delayed_offer_reinvite")

    async def hold_by_update(self):
        """
        UPDATE offering sendonly is answered recvonly (HOLD in the browser), UPDATE with
        sendrecv resumes (ESTABLISHED again).
        """
        browser, call_id, _, carrier, trace = await self.carrier_calls(
            self.provider, CARRIERS[5], "uac_update_hold", "ivan", extra=("-d", "1500"),
            codecs=["PCMU"])
        await browser.wait_status(call_id, "HOLD", timeout=15)
        statuses = browser.calls[call_id].statuses
        await browser.wait_status(call_id, "ESTABLISHED", timeout=15,
                                  since=statuses.index("HOLD"))
        await self.carrier_hangs_up(browser, call_id, carrier, trace, "uac_update_hold")

    async def test_refresh_delayed_offer_and_update(self):
        """
        At once: a carrier refreshing by re-INVITE and UPDATE, a PBX re-INVITEing without SDP,
        and a PBX holding and resuming by UPDATE; each passes, only the public address
        reaches them.
        """
        wire = self.capture()
        await self.parallel(self.refreshed_by_carrier(), self.delayed_offer(),
                            self.hold_by_update())
        self.assertNothingPrivateCrossed(wire)
