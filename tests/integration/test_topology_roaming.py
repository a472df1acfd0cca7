"""
A browser whose address changes mid-call keeps its call: the aiortc WCS client behind the home
NAT of the cloud topology (L{tests.integration.test_topology_nat}) calls a sipp phone on the
Internet that echoes its tone, and mid-call the home router's mapping changes - a new SNAT
port range for UDP and the UDP flows dropped from its conntrack table, as when a NAT reboots
or rebinds.  The browser's consent checks and SRTP then arrive from a new public port; the
gateway (ICE-lite) must follow them there, and only there.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_topology_roaming
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import time

from tests.integration import audio
from tests.integration.test_topology_nat import (
    HOME_WAN, INTERNET_PHONE, PUBLIC, CloudTopologyTestCase,
)
from twisted.trial.unittest import SkipTest

#: The public ports the home router uses for UDP after the rebinding.
REBOUND_PORTS = (40000, 40999)


class NATRebindingTests(CloudTopologyTestCase):
    """
    RFC 8445 7.3.1.3 / RFC 7675: an authenticated consent check from the new address makes it
    a peer-reflexive candidate, and the browser's authenticated media from there moves the
    selected pair.
    """

    timeout = 120

    def setUp(self):
        if shutil.which("conntrack") is None:
            raise SkipTest("conntrack not found (apt-get install conntrack)")
        return super().setUp()

    def rebind(self) -> None:
        """
        Give UDP leaving the home a new public port range and forget the existing UDP mappings
        (the WebSocket's TCP mapping stays, as the browser's signalling would survive too).
        """
        home_wan = self.links["home"][0]
        run = self.topology._check
        run(self.topology.command(self.homenat, [
            "iptables", "-t", "nat", "-I", "POSTROUTING", "1", "-o", home_wan, "-p", "udp",
            "-j", "SNAT", "--to-source", f"{HOME_WAN}:{REBOUND_PORTS[0]}-{REBOUND_PORTS[1]}"]))
        run(self.topology.command(self.homenat, ["conntrack", "-D", "-p", "udp"]))

    def media_port(self, sdp: str) -> int:
        return int(re.search(rf"a=candidate:\S+ 1 udp \d+ {re.escape(PUBLIC)} (\d+) ",
                             sdp).group(1))

    def forge(self, port: int, count: int) -> None:
        """
        From the Internet phone's host (a third address that never passed a check), SRTP-shaped
        datagrams at the browser leg's port.
        """
        with self.topology.inside(self.inet):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for seq in range(count):
                header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xBAD)
                sock.sendto(header + b"\x55" * 170, (PUBLIC, port))
        finally:
            sock.close()

    async def test_call_survives_nat_rebinding(self):
        """
        The tone is echoed before the rebinding, stops, and comes back after it from the new
        public port; the gateway logs the move to 198.51.100.2:40000-40999, forged datagrams
        from a third address meanwhile change nothing, and the gap is measured from the
        arrival times of the received audio.
        """
        uas, _ = await self.sipp_uas(self.inet, INTERNET_PHONE, "bob")
        browser = await self.connect_local("alice")
        call_id = await browser.call(f"bob@{INTERNET_PHONE}", tone_hz=440, codecs=["PCMU"])
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        path = await browser.wait_audio(call_id, seconds=1.5, timeout=15)
        self.assertLess(abs(audio.dominant_frequency(path) - 440), 10)

        session = browser.calls[call_id]
        recorder = session.recorder
        arrivals: list[tuple[float, float]] = []
        progress = recorder.on_progress

        def arrived() -> None:
            arrivals.append((time.monotonic(), recorder.duration))
            if progress is not None:
                progress()
        recorder.on_progress = arrived

        before = recorder.duration
        switched_at = time.monotonic()
        self.rebind()
        self.forge(self.media_port(session.remote_sdp), 50)
        await browser.wait_audio(call_id, seconds=before + 3.0, timeout=30)
        self.forge(self.media_port(session.remote_sdp), 50)
        await browser.wait_audio(call_id, seconds=before + 4.0, timeout=10)

        # The longest silence between received frames after the rebinding.
        times = [switched_at] + [t for t, _ in arrivals]
        gap = max(b - a for a, b in zip(times, times[1:]))
        after = before + 2.0
        measured = audio.dominant_frequency(path, start=after, seconds=1.5)
        self.assertLess(abs(measured - 440), 10, f"{measured} Hz after the rebinding")

        log = self.twistd_log(tail=None)
        moved = re.findall(r"ICE selected \('([\d.]+)', (\d+)\) \(was \('[\d.]+', (\d+)\)\)", log)
        self.assertTrue(moved, log[-3000:])
        host, port, old = moved[-1]
        self.assertEqual(host, HOME_WAN)
        self.assertTrue(REBOUND_PORTS[0] <= int(port) <= REBOUND_PORTS[1], moved)
        self.assertNotEqual(port, old)
        self.assertNotIn(INTERNET_PHONE + "'", "".join(
            line for line in log.splitlines() if "ICE selected" in line))
        print(f"\nroaming: audio stopped {gap:.2f} s around the NAT rebinding")
        await browser.hangup(call_id)
        await browser.wait_status(call_id, "FINISH", timeout=10)
        ended = await uas.when_ended(15)
        self.assertFalse(getattr(ended, "exitCode", 0), uas.describe())

