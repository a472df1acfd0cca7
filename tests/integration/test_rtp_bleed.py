"""
The RTP bleed attack at call set-up (CVE-2017-14099 class) against a real server: while calls
are set up, an attacker on another loopback address (127.0.0.2; all of 127/8 is loopback on
Linux) floods the server's whole media port range with RTP carrying its own tone, hoping to be
the first source a new call's SIP leg hears.  No call may latch onto it: the attacker receives
nothing, and each party hears only the other's tone.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_rtp_bleed
"""

from __future__ import annotations

import json
import os
import sys

from tests.integration.peers import PeerProcess, poll
from tests.integration.test_calls import CallTestCase

ATTACKER_HOST = "127.0.0.2"

#: The attacker, run as its own process so its flood costs the server's reactor nothing but
#: the datagrams: RTP (PCMU, a 2500 Hz tone) to every even port of the range and RTCP to every
#: odd one, a round every 2 ms or so (a new call's phone answers within milliseconds on
#: loopback, so the race is short); every datagram that comes back is counted by source port.
#: It writes its counts as JSON to argv[5] every second and when SIGTERM stops it.
ATTACKER = r"""
import json, math, os, select, signal, socket, struct, sys, time

host, target, low, high, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def ulaw(sample):
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = (sample >> 7).bit_length() - 1
    return ~(sign | exponent << 4 | (sample >> (exponent + 3)) & 0x0F) & 0xFF

tone = bytes(ulaw(int(16000 * math.sin(2 * math.pi * 2500 * n / 8000))) for n in range(8000))
rtcp = struct.pack("!BBHI", 0x80, 201, 1, 0xBADBAD)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, 0))
sock.setblocking(False)
state = {"sent": 0, "received": {}}
running = [True]
signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))

def dump():
    with open(out + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(out + ".tmp", out)

seq, last_dump = 0, 0.0
while running[0]:
    seq += 1
    offset = (seq * 160) % 8000
    packet = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, 0xBADBAD)
    packet += tone[offset:offset + 160]
    for port in range(low, high + 1):
        try:
            sock.sendto(rtcp if port & 1 else packet, (target, port))
            state["sent"] += 1
        except OSError:
            pass
    deadline = time.monotonic() + 0.001
    while running[0]:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        try:
            data, addr = sock.recvfrom(4096)
        except OSError:
            continue
        key = str(addr[1])
        state["received"][key] = state["received"].get(key, 0) + 1
    if time.monotonic() - last_dump >= 1.0:
        last_dump = time.monotonic()
        dump()
dump()
"""


class Attacker:
    """
    The flooding process and what it saw.
    """

    def __init__(self, base, low, high):
        self.results = os.path.abspath(os.path.join(base, "attacker.json"))
        self.process = PeerProcess("attacker", os.path.abspath(os.path.join(base, "attacker.log")))
        self.argv = [sys.executable, "-c", ATTACKER, ATTACKER_HOST, "127.0.0.1", str(low),
                     str(high), self.results]

    def counts(self):
        """
        The latest counts: C{{"sent": n, "received": {port: n}}}, or C{None} before the first.
        """
        try:
            with open(self.results, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    async def start(self):
        self.process.spawn(self.argv, os.path.dirname(self.results))

        def flooding():
            self.process.check_running()
            counts = self.counts()
            return counts is not None and counts["sent"] > 0

        await poll(flooding, 10, message=self.process.describe)

    async def stop(self):
        """
        Stop the flood and fire with the final counts.
        """
        await self.process.stop()
        return self.counts()


class RTPBleedTests(CallTestCase):
    """
    Calls set up under a flood of the media port range from a foreign address.
    """

    timeout = 90

    async def attacker(self):
        pool = self.server.calls.media.port_pool
        attacker = Attacker(self.base, pool.low, pool.high)
        self.addCleanup(attacker.process.stop)
        await attacker.start()
        return attacker

    def assertNotHijacked(self):
        """
        Every SIP leg of the calls up now learnt the phone's address; note how many datagrams
        each refused (checked at the end: the flood must have reached every leg).
        """
        legs = [call.rtp.audio_rtp for call in self.server.calls if call.rtp is not None]
        self.assertTrue(legs, "no call with a SIP leg is up")
        for leg in legs:
            self.assertNotEqual(leg.remote_address[0], ATTACKER_HOST,
                                f"the call latched onto the attacker {leg.remote_address}")
            self.assertEqual(leg.remote_address[0], "127.0.0.1")
            self.refused.append(getattr(leg, "packets_refused", 0))

    async def call_out(self, alice, bob):
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=10)
        self.assertNotHijacked()
        self.assertFrequency(received, 1000)
        self.assertFrequency(await bob.wait_for_received_audio(1.5), 440)
        await alice.hangup(call_id)
        await bob.wait_event("CALL_CLOSED")

    async def call_in(self, alice, bob):
        await bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}")
        incoming = await alice.wait_incoming_call(timeout=10)
        await alice.answer(incoming, tone_hz=440)
        await alice.wait_status(incoming, "ESTABLISHED", timeout=10)
        await bob.wait_event("CALL_ESTABLISHED")
        received = await alice.wait_audio(incoming, seconds=1.5, timeout=10)
        self.assertNotHijacked()
        self.assertFrequency(received, 1000)
        await bob.hangup()
        await alice.wait_status(incoming, "FINISH")

    async def test_flood_captures_no_call(self):
        """
        Browser -> phone, phone -> browser, browser -> phone, each set up under the flood:
        none latches onto the attacker, each party hears only the other's tone, every SIP leg
        refused the flood, and the attacker receives no datagram at all.
        """
        self.refused = []
        attacker = await self.attacker()
        bob = await self.baresip("bob", 1000)
        alice = await self.connect_local("alice")
        await self.call_out(alice, bob)
        await self.call_in(alice, bob)
        await self.call_out(alice, bob)
        counts = await attacker.stop()
        self.assertGreater(counts["sent"], 1000)
        self.assertEqual(counts["received"], {}, "the attacker received call media")
        self.assertEqual(len(self.refused), 3)
        self.assertNotIn(0, self.refused, "the flood did not reach every SIP leg")
        self.assertEqual(alice.violations, [])
