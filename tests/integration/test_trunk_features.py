"""
What SIP trunks and PBXs ask of the gateway, each insisted on by a sipp scenario the way a carrier
does, against the real server with the WCS test client (aiortc) as the browser, on 127.0.0.1.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_trunk_features
"""

from __future__ import annotations

import math
import os
import struct

from twisted.internet import reactor

from tests.integration.peers import free_port, poll, run_sipp
from tests.integration.test_calls import CallTestCase
from tests.integration.test_local_mode import udp_port_taken

#: sipp's own limit per run.
SIPP_TIMEOUT = 20

#: The top of each A-law segment (ITU-T G.711), for L{_alaw}.
_ALAW_SEGMENTS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _alaw(sample: int) -> int:
    """
    One 16-bit linear sample as G.711 A-law.
    """
    value = sample >> 3
    mask = 0xD5
    if value < 0:
        mask, value = 0x55, -value - 1
    segment = next((i for i, top in enumerate(_ALAW_SEGMENTS) if value <= top), 8)
    if segment >= 8:
        return 0x7F ^ mask
    code = (segment << 4) | ((value >> (1 if segment < 2 else segment)) & 0x0F)
    return code ^ mask


def write_tone_pcap(path: str, freq_hz: float, seconds: float) -> str:
    """
    A pcap (Ethernet/IPv4/UDP) of PCMA RTP carrying a sine, 20 ms a packet, for sipp's
    play_pcap_audio (which rewrites the addresses and ports).
    """
    packets = int(seconds * 50)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for number in range(packets):
        payload = bytes(_alaw(int(16000 * math.sin(2 * math.pi * freq_hz * (number * 160 + i)
                                                    / 8000))) for i in range(160))
        rtp = struct.pack("!BBHII", 0x80, 8, number, number * 160, 0x1234) + payload
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), number, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        out.append(struct.pack("<IIII", number // 50, (number % 50) * 20000, len(frame),
                               len(frame)) + frame)
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return path


class TrunkFeatureTestCase(CallTestCase):
    """
    The real server, a browser logged in as alice in local mode, and sipp as the trunk.
    """

    def sipp_calls_alice(self, scenario, *extra):
        """
        Start sipp as a trunk calling alice at the gateway; fires with its L{SippResult}.
        """
        return run_sipp(scenario, target=f"127.0.0.1:{self.sip_port}",
                        extra_args=["-s", "alice", *extra], timeout=SIPP_TIMEOUT,
                        workdir=self.base)

    def assertSippPassed(self, result):
        self.assertEqual(result.exit_code, 0, result.describe())

    async def call_to_sipp(self, scenario, *extra, codecs=("PCMU",)):
        """
        Start sipp as the carrier (a UAS, C{scenario}) and let alice call it once it is bound.
        Returns (alice's client, the callId, sipp's Deferred).
        """
        port = free_port()
        done = run_sipp(scenario, extra_args=["-s", "bob", *extra], local_port=port,
                        timeout=SIPP_TIMEOUT, workdir=self.base)
        await poll(lambda: udp_port_taken(port), 5, reactor, 0.05,
                   message=lambda: f"sipp UAS never bound udp {port}")
        alice = await self.connect_local("alice")
        call_id = await alice.call(f"bob@127.0.0.1:{port}", tone_hz=440, codecs=list(codecs))
        return alice, call_id, done

    async def answered_call_from_sipp(self, scenario, *extra, codecs=None):
        """
        sipp calls alice with C{scenario}; alice answers once notified.  Returns (alice's
        client, the callId, the notifyIncomingCall object, sipp's Deferred).
        """
        alice = await self.connect_local("alice")
        done = self.sipp_calls_alice(scenario, *extra)
        call_id = await alice.wait_incoming_call(timeout=10)
        incoming = alice.calls[call_id].incoming_object
        await alice.answer(call_id, tone_hz=440, codecs=codecs)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        return alice, call_id, incoming, done

    async def sipp_ends_the_call(self, alice, call_id, done):
        """
        sipp's scenario passes, its BYE gives FINISH, and the client saw no protocol violation.
        """
        self.assertSippPassed(await done)
        await alice.wait_status(call_id, "FINISH", timeout=5)
        self.assertEqual(alice.violations, [])


class CallerIdentityTests(TrunkFeatureTestCase):
    """
    RFC 3325 P-Asserted-Identity and X- headers from a trunk, seen by the browser.
    """

    async def test_asserted_identity_and_x_header_in_notify_incoming_call(self):
        """
        The trunk's From is its own number; notifyIncomingCall shows caller 1000 and
        visibleName Boss from P-Asserted-Identity, and the X- header in inviteParameters.
        """
        alice, call_id, incoming, done = await self.answered_call_from_sipp(
            "uac_trunk_identity", "-d", "1000")
        self.assertEqual((incoming["caller"], incoming["visibleName"],
                          incoming["inviteParameters"]),
                         ("1000", "Boss", {"X-Campaign": "spring"}))
        await self.sipp_ends_the_call(alice, call_id, done)


class ReliableProvisionalTests(TrunkFeatureTestCase):
    """
    RFC 3262 100rel / PRACK with a carrier that insists on it, both roles.
    """

    async def test_carrier_180_requiring_100rel_is_pracked(self):
        """
        The browser calls a carrier whose 180 requires 100rel: the gateway PRACKs it (sipp
        fails the call on a missing or wrong RAck), the 200 follows and the call is
        ESTABLISHED, RING having been seen once.
        """
        alice, call_id, done = await self.call_to_sipp("uas_100rel")
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        self.assertEqual(alice.calls[call_id].statuses.count("RING"), 1)
        await alice.hangup(call_id)
        self.assertSippPassed(await done)
        self.assertEqual(alice.violations, [])

    async def test_carrier_invite_requiring_100rel_gets_reliable_180(self):
        """
        A carrier INVITE with Require: 100rel: the gateway's 180 carries Require: 100rel and
        RSeq, sipp PRACKs it and the PRACK is answered 200 (sipp insists), then the browser
        answers.
        """
        alice, call_id, _, done = await self.answered_call_from_sipp(
            "uac_require_100rel", "-d", "500")
        await self.sipp_ends_the_call(alice, call_id, done)


class SessionTimerTests(TrunkFeatureTestCase):
    """
    RFC 4028 session timers with a carrier that insists on them, both roles.
    """

    async def test_gateway_refreshes_past_session_expires(self):
        """
        The carrier answers Session-Expires 4;refresher=uac: the gateway refreshes with
        UPDATE (sipp requires two before the BYE) and the call, with its echoed audio, lives
        on past the interval.
        """
        alice, call_id, done = await self.call_to_sipp(
            "uas_session_timer", "-rtp_echo", "-mp", str(free_port()))
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        received = await alice.wait_audio(call_id, seconds=6, timeout=15)
        self.assertFrequency(received, 440)
        self.assertEqual(alice.calls[call_id].status, "ESTABLISHED")
        await alice.hangup(call_id)
        self.assertSippPassed(await done)

    async def test_carrier_refreshes_by_reinvite_and_update(self):
        """
        A carrier INVITE with Session-Expires 90;refresher=uac: the 200 agrees with Require:
        timer, and so do the 200s to its re-INVITE and UPDATE refreshes (sipp insists).
        """
        alice, call_id, _, done = await self.answered_call_from_sipp("uac_session_timer")
        await self.sipp_ends_the_call(alice, call_id, done)


class EarlyMediaTests(TrunkFeatureTestCase):
    """
    Early media from a 183, heard in the browser before the answer.
    """

    async def test_ivr_tone_from_183_heard_before_the_answer(self):
        """
        The carrier answers 183 with SDP and plays a 1000 Hz tone from a pcap for 4 s before
        its 200: the browser gets SESSION_PROGRESS and hears the tone while the call is not yet
        ESTABLISHED; the 200 then establishes the call.
        """
        write_tone_pcap(os.path.join(self.base, "early_media.pcap"), 1000, 5)
        alice, call_id, done = await self.call_to_sipp(
            "uas_early_media", "-d", "4000", "-mp", str(free_port()), codecs=["PCMA"])
        await alice.wait_status(call_id, "SESSION_PROGRESS", timeout=10)
        received = await alice.wait_audio(call_id, seconds=1.5, timeout=4)
        self.assertNotIn("ESTABLISHED", alice.calls[call_id].statuses)
        self.assertFrequency(received, 1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await alice.hangup(call_id)
        self.assertSippPassed(await done)
        self.assertEqual(alice.violations, [])


class DelayedOfferTests(TrunkFeatureTestCase):
    """
    A PBX re-INVITE without SDP.
    """

    async def test_reinvite_without_sdp_gets_an_offer_and_the_call_keeps_its_audio(self):
        """
        The PBX re-INVITEs without SDP: the 200 carries a PCMU offer (sipp insists), the
        ACK's answer is taken, and the browser still hears the echoed tone afterwards.
        """
        alice, call_id, _, done = await self.answered_call_from_sipp(
            "uac_delayed_offer_reinvite", "-d", "4000", "-rtp_echo", "-mp", str(free_port()),
            codecs=["PCMU"])
        received = await alice.wait_audio(call_id, seconds=3, timeout=10)
        self.assertFrequency(received, 440)
        self.assertEqual(alice.calls[call_id].status, "ESTABLISHED")
        await self.sipp_ends_the_call(alice, call_id, done)


class UpdateTests(TrunkFeatureTestCase):
    """
    RFC 3311 UPDATE carrying offers from a PBX.
    """

    async def test_hold_and_unhold_by_update(self):
        """
        The PBX holds with an UPDATE offering sendonly (the 200 must answer recvonly) and
        resumes with sendrecv: the browser sees HOLD, then ESTABLISHED; sipp checks the answers.
        """
        alice, call_id, _, done = await self.answered_call_from_sipp(
            "uac_update_hold", "-d", "1500", codecs=["PCMU"])
        await alice.wait_status(call_id, "HOLD", timeout=10)
        statuses = alice.calls[call_id].statuses
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10,
                                since=statuses.index("HOLD"))
        await self.sipp_ends_the_call(alice, call_id, done)
