"""
A phone behind a home NAT, registered at a provider's proxy, calls a browser through the gateway
on its cloud VM: the phone's SDP names its private address, its signalling reaches the gateway
from the proxy, and its media from its NAT's public address - neither host the RTP-bleed
defence expects.  Probation learning (docs/security.md, "RTP source learning") lets it in;
a random flood racing it does not win.

    home (192.168.1.2, the browser) and phone (192.168.2.20, baresip bob) -- homenat
    (MASQUERADE, 198.51.100.2) -- inet (203.0.113.20: the attacker) -- cloud (1:1 NAT
    203.0.113.10 <-> 10.0.0.10) -- gw;  inet (192.0.2.1) -- prov: Kamailio on 192.0.2.10,
    the registrar and record-routing proxy of both alice (the gateway) and bob

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_topology_natted_phone
"""

from __future__ import annotations

import json
import os
import re
import sys

from twisted.internet import defer

from tests.integration import audio
from tests.integration.peers import Kamailio, PeerProcess, poll, require_binary
from tests.integration.test_kamailio_ua import USERS
from tests.integration.test_nat_registrar import NamespacedBaresip
from tests.integration.test_topology_nat import (
    HOME_WAN,
    INTERNET_PHONE,
    PUBLIC,
    CloudTopologyTestCase,
)

PROXY = "192.0.2.10"
PHONE_ROUTER, PHONE = "192.168.2.1", "192.168.2.20"
ALICE_TONE, BOB_TONE = 440, 1000
#: The gateway's media ports (gateway_config's media_port_from/to).
MEDIA_PORTS = (31000, 31100)

#: The attacker: random RTP (random SSRC, sequence number and source port among 8 sockets, a
#: 2500 Hz PCMU tone) to every port of the range, a round every 5 ms, until SIGTERM or 90 s;
#: counts every datagram that comes back and writes the counts to argv[4] as JSON.
ATTACKER = r"""
import json, math, os, random, select, signal, socket, struct, sys, time

target, low, high, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tone = bytes(0xFF if math.sin(2 * math.pi * 2500 * n / 8000) >= 0 else 0x7F for n in range(160))
sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
for s in sockets:
    s.setblocking(False)
state = {"sent": 0, "received": 0}
running = [True]
signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
deadline = time.monotonic() + 90

def dump():
    with open(out + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(out + ".tmp", out)

last_dump = 0.0
while running[0] and time.monotonic() < deadline:
    for port in range(low, high + 1):
        packet = struct.pack("!BBHII", 0x80, 0, random.getrandbits(16), random.getrandbits(32),
                             random.getrandbits(32)) + tone
        try:
            random.choice(sockets).sendto(packet, (target, port))
            state["sent"] += 1
        except OSError:
            pass
    for s in select.select(sockets, [], [], 0.005)[0]:
        try:
            while s.recv(4096):
                state["received"] += 1
        except OSError:
            pass
    if time.monotonic() - last_dump >= 0.5:
        last_dump = time.monotonic()
        dump()
dump()
"""


class NattedPhoneTopologyTestCase(CloudTopologyTestCase):
    """
    The cloud topology of L{test_topology_nat} plus Kamailio in a provider network and bob
    (baresip) in a second network behind the home NAT.
    """

    timeout = 120

    def setUp(self):
        require_binary("baresip")
        require_binary("kamailio")
        return super().setUp()

    def gateway_settings(self) -> str:
        return f"call_allowed_destinations={PROXY}\n"

    def start_gateway(self):
        net = self.topology
        self.provider, _ = self.provider_network((PROXY,))
        self.phone = net.namespace("phone")
        net.link(self.phone, f"{PHONE}/24", self.homenat, f"{PHONE_ROUTER}/24")
        net.route(self.phone, "default", PHONE_ROUTER)
        return super().start_gateway()

    @defer.inlineCallbacks
    def start_proxy(self):
        kamailio = Kamailio(self.workdir, port=5060, users=USERS, domain=PROXY,
                            reactor=self.reactor)
        kamailio.host = PROXY
        yield self.start_inside(self.provider, kamailio)
        return kamailio

    @defer.inlineCallbacks
    def start_bob(self):
        """
        bob behind the home NAT, registered at Kamailio with his private Contact (Kamailio
        does no NAT fixing: the SDP keeps 192.168.2.20).
        """
        tone = audio.write_tone_wav(os.path.join(self.workdir, "bob.wav"), BOB_TONE, 30)
        bob = NamespacedBaresip(self.topology, self.phone, PHONE, self.workdir, "bob",
                                self.reactor, registrar=f"{PROXY}:5060",
                                password=USERS["bob"], tone_wav=tone, codecs=("PCMU/8000/1",))
        self.addCleanup(bob.stop)
        yield bob.start(timeout=15)
        return bob

    async def start_attacker(self) -> tuple[PeerProcess, str]:
        """
        The random flood from the Internet (203.0.113.20) at the gateway's public media ports,
        running once its first counts are written.
        """
        results = os.path.join(self.workdir, "attacker.json")
        attacker = PeerProcess("attacker", os.path.join(self.workdir, "attacker.log"),
                               self.reactor)
        attacker.spawn(self.topology.command(self.inet, [
            sys.executable, "-c", ATTACKER, PUBLIC, *map(str, MEDIA_PORTS), results]),
            cwd=self.workdir)
        self.addCleanup(attacker.stop)
        await poll(lambda: os.path.exists(results), 10, self.reactor, 0.1,
                   message=attacker.describe)
        return attacker, results

    def latched(self) -> list[tuple[str, str]]:
        """
        The gateway log's RTP latches: (source host, whether on probation).
        """
        return re.findall(r"RTP latched onto \('([^']+)', \d+\) \(SDP said [^)]*\),"
                          r" on probation: (\w+)\)", self.twistd_log(tail=None))

    async def bob_calls_alice(self) -> None:
        """
        alice (the browser, registered at Kamailio through the gateway) takes bob's call;
        each hears the other's tone; bob hangs up.
        """
        await self.start_proxy()
        bob = await self.start_bob()
        alice = self.client("alice")
        await alice.connect_registered("alice", USERS["alice"], 5060, host=PROXY, timeout=20)
        await bob.dial(f"sip:alice@{PROXY}:5060")
        call_id = await alice.wait_incoming_call(timeout=20)
        await alice.answer(call_id, tone_hz=ALICE_TONE, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=20)
        await bob.wait_event("CALL_ESTABLISHED", 15)
        self.assertTone(await alice.wait_audio(call_id, seconds=1.0, timeout=15), BOB_TONE)
        self.assertTone(await bob.wait_for_received_audio(1.0, timeout=15), ALICE_TONE)
        await bob.hangup()
        await alice.wait_status(call_id, "FINISH", timeout=10)
        self.assertEqual(alice.violations, [])


class NattedPhoneTests(NattedPhoneTopologyTestCase):
    """
    The phone's media comes from neither its SDP's host nor its signalling's.
    """

    async def test_phone_behind_home_nat_calls_browser(self):
        """
        bob (SDP 192.168.2.20, signalling from Kamailio 192.0.2.10, media from the home NAT
        198.51.100.2) calls alice: tones both ways.  The gateway's SIP leg learnt the home
        NAT on probation.
        """
        await self.bob_calls_alice()
        self.assertIn((HOME_WAN, "True"), self.latched())

    async def test_random_burst_does_not_win(self):
        """
        An attacker on the Internet floods every media port of the gateway with random RTP
        from before bob dials until after the call: bob and alice still hear each other, no
        leg latched onto the attacker, and not one datagram came back to it.
        """
        attacker, results = await self.start_attacker()
        await self.bob_calls_alice()
        await attacker.stop()
        with open(results) as handle:
            counts = json.load(handle)
        self.assertGreater(counts["sent"], 10000)
        self.assertEqual(counts["received"], 0)
        latched = self.latched()
        self.assertIn((HOME_WAN, "True"), latched)
        self.assertNotIn(INTERNET_PHONE, [host for host, _ in latched])
