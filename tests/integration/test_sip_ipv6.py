"""
SIP over IPv6 (RFC 5118): with C{ip6=::1} the server's SIP listens on ::1 too.  A baresip phone
that speaks only IPv6 registers at the built-in registrar over [::1] and calls a browser (the
aiortc WCS client, over IPv4), is called by one (our offer to it says c=IN IP6 ::1: its
binding's family, not the browser's), and calls or is called by an IPv4-only baresip through
our proxy, which anchors their media (one RTP leg per family).  Tones cross both ways each time.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_sip_ipv6
"""

from __future__ import annotations

import os
import re
import socket

from tests.integration import audio
from tests.integration import test_calls as calls
from tests.integration import test_dns
from tests.integration import test_tls_phone
from tests.integration.peers import Baresip, free_port, require_binary
from twisted.trial.unittest import SkipTest

from wcs_twisted.transport.trace import IN, OUT


class IPv6Baresip(Baresip):
    """
    A baresip bound to [::1] only (SIP and RTP); its AOR is in our IPv4 domain, reached
    through our IPv6 address as outbound proxy (a domain with A and AAAA records).
    """

    def __init__(self, *args, outbound: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outbound = outbound

    def config_text(self) -> str:
        text = super().config_text()
        text = text.replace(f"sip_listen\t\t{self.host}:", "sip_listen\t\t[::1]:")
        return text.replace(f"net_interface\t\t{self.host}", "net_interface\t\t::1")

    def account_line(self) -> str:
        if not self.outbound:
            return super().account_line()
        return super().account_line() + f";outbound=\"sip:{self.outbound}\""


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class IPv6TestCase(calls.CallTestCase):
    """
    A server with C{ip6=::1} whose SIP messages are recorded (C{messages}).
    """

    settings_overrides = {"ipv6_address": "::1"}

    def setUp(self):
        if not ipv6_loopback():
            raise SkipTest("no IPv6 loopback")
        self.messages: list[tuple[str, bytes, object]] = []
        d = super().setUp()

        def trace(_):
            self.server.sip_stack.trace.observers.append(
                lambda direction, data, address: self.messages.append((direction, data,
                                                                       address)))
        return d.addCallback(trace)

    def exchanged(self, direction: str, start: bytes) -> list[tuple[str, object]]:
        """
        (text, address) of the messages that went C{direction} starting with C{start}.
        """
        return [(data.decode("utf-8", "replace"), address)
                for way, data, address in self.messages
                if way == direction and data.startswith(start)]

    async def phone_calls_browser(self, alice, bob, uri: str) -> str:
        """
        C{bob} dials C{uri}; C{alice} answers with her 440 Hz; both see the call established.
        """
        await bob.dial(uri)
        call_id = await alice.wait_incoming_call(timeout=10)
        await alice.answer(call_id, tone_hz=440)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.wait_event("CALL_ESTABLISHED")
        return call_id


class IPv6PhoneTests(IPv6TestCase):
    """
    An IPv6 phone and an IPv4 browser through one server.
    """

    async def phone(self, name: str, tone_hz: int) -> IPv6Baresip:
        require_binary("baresip")
        self.assertTrue(self.server.service.getServiceNamed("sip-udp6").ready)
        wav = audio.write_tone_wav(os.path.join(self.base, f"{name}.wav"), tone_hz, 30)
        agent = IPv6Baresip(self.base, name, registrar=f"127.0.0.1:{self.sip_port}",
                            password="x", tone_wav=wav, outbound=f"[::1]:{self.sip_port}")
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    async def test_ipv6_phone_calls_ipv4_browser(self):
        """
        bob (IPv6 only) registers over [::1] (his binding's source is ::1), dials alice (a
        browser on IPv4); she answers; every SIP message to bob leaves from ::1, our Contact
        there is our bracketed IPv6 address (RFC 5118), the answer he gets says c=IN IP6 ::1,
        and the tones cross both ways (440 Hz to him, 1000 Hz to her).
        """
        alice = await self.connect_local("alice")
        bob = await self.phone("bob", 1000)
        [binding] = self.server.location.lookup("sip:bob@127.0.0.1", self.reactor_seconds())
        self.assertEqual(binding.source.host, "::1")
        self.assertEqual(binding.contact.uri.host, "[::1]")
        call_id = await self.phone_calls_browser(alice, bob,
                                                 f"sip:alice@127.0.0.1:{self.sip_port}")

        [(invite, source), *_] = self.exchanged(IN, b"INVITE sip:alice")
        self.assertEqual(source.host, "::1")
        self.assertRegex(invite, r"(?m)^Via: SIP/2.0/UDP \[::1\]:\d+")
        answers = [text for text, address in self.exchanged(OUT, b"SIP/2.0 200")
                   if address.host == "::1" and "INVITE" in text.split("CSeq:")[1][:20]]
        self.assertTrue(answers, "no 200 to the phone over IPv6")
        self.assertRegex(answers[0], r"(?m)^c=IN IP6 ::1\r?$")
        self.assertNotRegex(answers[0], r"(?m)^c=IN IP4")
        self.assertRegex(answers[0], rf"(?m)^Contact: <sip:alice@\[::1\]:{self.sip_port}>")

        await test_tls_phone.TLSPhoneTests.tones_then_phone_hangs_up(self, alice, bob, call_id)
        byes = [address for text, address in self.exchanged(IN, b"BYE ")]
        self.assertIn("::1", [address.host for address in byes])
        self.assertFalse(re.search(r"received=", invite), invite)

    def reactor_seconds(self) -> float:
        from twisted.internet import reactor
        return reactor.seconds()

    async def test_ipv4_browser_calls_ipv6_phone(self):
        """
        alice (a browser on IPv4, local mode) dials bob, registered here over [::1] only: the
        INVITE our proxy sends him goes to ::1 and offers c=IN IP6 ::1 (his binding's family,
        not the browser's), and the tones cross both ways.
        """
        bob = await self.phone("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        [(invite, destination)] = [(text, address) for text, address
                                   in self.exchanged(OUT, b"INVITE sip:bob")
                                   if address.host == "::1"]
        self.assertRegex(invite, r"(?m)^c=IN IP6 ::1\r?$")
        self.assertNotRegex(invite, r"(?m)^c=IN IP4")
        self.assertRegex(invite, rf"(?m)^Via: SIP/2.0/UDP \[::1\]:{self.sip_port};")
        await test_tls_phone.TLSPhoneTests.tones_then_phone_hangs_up(self, alice, bob, call_id)

    async def test_ipv6_phone_calls_ipv4_phone_media_anchored(self):
        """
        bob (IPv6 only) dials carol (IPv4 only), both registered here: our proxy forwards the
        INVITE to her over IPv4 with an offer of ours on IPv4 (c=IN IP4 127.0.0.1, an anchor
        port), and gives him her answer rewritten to our IPv6 address; the tones cross both
        ways through the anchor, which is released by his BYE.
        """
        bob = await self.phone("bob", 1000)
        carol = await self.baresip("carol", 440)
        await self.anchored_call(bob, "::1", carol, "127.0.0.1")

    async def test_ipv4_phone_calls_ipv6_phone_media_anchored(self):
        """
        The other way: carol (IPv4) dials bob (IPv6); he is offered c=IN IP6 ::1, she is
        answered c=IN IP4 127.0.0.1, the tones cross, her BYE releases the anchor.
        """
        bob = await self.phone("bob", 1000)
        carol = await self.baresip("carol", 440)
        await self.anchored_call(carol, "127.0.0.1", bob, "::1")

    async def anchored_call(self, caller, caller_host: str, callee, callee_host: str):
        """
        C{caller} dials C{callee} through our proxy; what each got says our address in its
        own family only; each hears the other's tone; the caller's BYE releases the anchor.
        """
        family = {"::1": ("IP6 ::1", "IP4"), "127.0.0.1": ("IP4 127.0.0.1", "IP6")}
        await caller.dial(f"sip:{callee.user}@127.0.0.1:{self.sip_port}")
        await callee.wait_event("CALL_ESTABLISHED", timeout=15)
        await caller.wait_event("CALL_ESTABLISHED", timeout=15)
        [(invite, _)] = [(text, address) for text, address
                         in self.exchanged(OUT, f"INVITE sip:{callee.user}".encode())
                         if address.host == callee_host]
        ours, other = family[callee_host]
        self.assertRegex(invite, rf"(?m)^c=IN {ours}\r?$")
        self.assertNotIn(other, invite)
        answers = [text for text, address in self.exchanged(OUT, b"SIP/2.0 200")
                   if address.host == caller_host and "INVITE" in text.split("CSeq:")[1][:20]]
        self.assertTrue(answers, f"no 200 to the caller at {caller_host}")
        ours, other = family[caller_host]
        self.assertRegex(answers[0], rf"(?m)^c=IN {ours}\r?$")
        self.assertNotIn(other, answers[0])
        proxy_media = self.server.sip_proxy.media
        self.assertEqual(len(proxy_media._dialogs), 1)
        await caller.wait_for_received_audio(1.5)
        self.assertFrequency(caller.received_wav(), 440 if caller.name == "bob" else 1000)
        await callee.wait_for_received_audio(1.5)
        self.assertFrequency(callee.received_wav(), 440 if callee.name == "bob" else 1000)
        await caller.hangup()
        await callee.wait_event("CALL_CLOSED", timeout=10)
        self.assertEqual(len(proxy_media._dialogs), 0)


class IPv6NameTests(IPv6TestCase):
    """
    A phone on IPv6 known only by a name: dnsmasq serves provider.test with an SRV record whose
    target has only an AAAA record (::1).
    """

    def setUp(self):
        self.dns_port = test_dns.dns_port()
        self.settings_overrides = {"ipv6_address": "::1",
                                   "sip_dns_servers": (f"127.0.0.1:{self.dns_port}",)}
        return super().setUp()

    async def test_browser_calls_ipv6_phone_by_name(self):
        """
        alice dials bob@provider.test; the name resolves (SRV, then AAAA) to bob's baresip on
        [::1] only, so the offer it gets says c=IN IP6 ::1, and the tones cross both ways.
        """
        require_binary("baresip")
        port = free_port(span=2)
        dns = test_dns.Dnsmasq(self.dns_port, [(10, port, "::1")])
        self.addCleanup(dns.stop)
        test_dns.wait_answering(dns)
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 30)
        bob = IPv6Baresip(self.base, "bob", sip_port=port, tone_wav=wav)
        self.addCleanup(bob.stop)
        await bob.start()
        alice = await self.connect_local("alice")
        call_id = await alice.call(f"bob@{test_dns.DOMAIN}", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        [(invite, address)] = self.exchanged(OUT, b"INVITE sip:bob")
        self.assertEqual((address.host, address.port), ("::1", port))
        self.assertRegex(invite, r"(?m)^c=IN IP6 ::1\r?$")
        self.assertNotRegex(invite, r"(?m)^c=IN IP4")
        await test_tls_phone.TLSPhoneTests.tones_then_phone_hangs_up(self, alice, bob, call_id)
