"""
Hold and unhold between the browser (the aiortc WCS client) and a real phone, both ways of
who holds, checked where users feel it: at the phone.

The phone is linphonec (PCMU only, so the bridge relays): its recording of received audio
goes on across re-INVITEs, so the browser's 440 Hz is checked in it after the unhold.  The
phone's own RTCP receiver reports say how many of our packets it counts as lost (RFC 3550
A.3), and a capture of the SIP leg's port shows what we sent: one SSRC, sequence numbers
without a gap, timestamps that never go back.  Before the fix, the browser's packets that
the held bridge dropped still advanced our sequence numbers after the unhold (and silence
sent meanwhile left the relay's timestamps behind), so the phone counted every 20 ms of
hold as a lost packet.

baresip is no judge of this: baresip 1.0.0 flushes its rx audio-filter chain at the first
hold re-INVITE and does not rebuild it while its tx chain exists, so its sndfile recording
of received audio stops for good, even between two baresips with no gateway in between
(it goes on decoding).  sipp checks the re-INVITE SDP (RFC 3264 section 8.4).

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_hold
"""

from __future__ import annotations

import os
import re
import struct

import numpy
from twisted.internet import reactor

from tests.integration import audio
from tests.integration.peers import free_port, poll, run_sipp
from tests.integration.test_calls import CallTestCase
from tests.integration.test_codecs import Linphone
from tests.integration.test_local_mode import udp_port_taken
from tests.integration import test_srtp
from tests.integration.test_srtp import LoopbackCapture

#: Bytes per second of linphonec's recording (16-bit mono at 8 kHz) and its header.
_RECORD_RATE = 16000
_WAV_HEADER = 44

#: Packets (20 ms each) the browser sends into the held bridge in these tests.
_HOLD_PACKETS = 100

#: Losses a phone may count after the unhold: the bug counted the whole hold (>= 100); a
#: loaded 2-core box has starved a phone of ~46 packets once (SRTP, sipp soak alongside).
_LOSS_ALLOWED = _HOLD_PACKETS // 2


def sent_rtp(capture, port, payload_type=0):
    """
    (sequence number, timestamp, SSRC) of each audio packet captured leaving C{port}.
    """
    return [struct.unpack_from("!HII", p, 2) for p in capture.sent_by(port)
            if len(p) > 12 and p[0] >> 6 == 2 and p[1] & 0x7F == payload_type]


class HoldTestCase(CallTestCase):
    """
    The real server, alice's browser (440 Hz) and linphonec as bob (PCMU, 1000 Hz).
    """

    timeout = 90
    #: linphonec's start and aiortc lag the reactor on a loaded 2-core box; the INVITE is
    #: then shed with 503 (sip_max_reactor_lag_ms), which is not what these tests measure.
    settings_overrides = {"sip_max_reactor_lag_ms": 0}

    async def call_phone(self):
        """
        alice calls bob; fire with (alice, call id, the call, bob) once the phone hears her.
        """
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 60)
        bob = Linphone(self.base, "bob", self.sip_port, ("PCMU", 8000), wav)
        self.addCleanup(bob.stop)
        await bob.start()
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        [call] = self.server.calls
        self.assertEqual(call.bridge.mode, "relay")
        await bob.wait_received(_WAV_HEADER + _RECORD_RATE)
        return alice, call_id, call, bob

    def capture(self, call):
        """
        Capture the SIP leg's RTP port from now on (and take its L{sequence_mark}).
        """
        self.mark = self.sequence_mark(call.rtp.audio_rtp)
        capture = LoopbackCapture(call.rtp.audio_rtp.local_address[1])
        self.addCleanup(capture.stop)
        return capture

    async def browser_sends_through_hold(self, call):
        """
        Wait while the browser sends L{_HOLD_PACKETS} more packets into the held bridge.
        """
        transport = call.webrtc.transport
        count = transport.packets_received + _HOLD_PACKETS
        await poll(lambda: transport.packets_received >= count, 10, reactor,
                   message=lambda: "the browser stopped sending during the hold")

    async def assertHeardAfterResume(self, alice, call_id, call, bob, capture):
        """
        From the resume on: the phone records 2 s of the browser's 440 Hz, the browser hears
        the phone's 1000 Hz, the phone's next receiver report counts no packet of ours lost,
        and what we sent the phone (captured across the hold) is one gap-free stream.
        """
        resumed_at = os.path.getsize(bob.record_wav)
        heard = alice.calls[call_id].recorder.duration
        leg = call.rtp.audio_rtp
        resumed_seq = leg.rewriter.last_sequence_number
        await bob.wait_received(resumed_at + 2 * _RECORD_RATE, timeout=15)
        path = await alice.wait_audio(call_id, heard + 1.5, timeout=10)
        self.assertTone(path, 1000, heard + 0.3, 1.0)
        report = await self.phone_report_after(leg, resumed_seq + 100)
        self.assertLess(report.packets_lost, _LOSS_ALLOWED, report)
        capture.stop()
        self.assertGapFree(sent_rtp(capture, leg.local_address[1]))
        self.assertEverySendCounted(leg, self.mark)
        await alice.hangup(call_id)
        with open(await bob.wait_recording(), "rb") as f:
            f.seek(resumed_at + _RECORD_RATE // 4)
            after = f.read(2 * _RECORD_RATE - _RECORD_RATE // 4)
        samples = numpy.frombuffer(after[:len(after) // 2 * 2], dtype="<i2") / 32768.0
        path = audio.write_samples_wav(os.path.join(self.base, "bob-after-resume.wav"), samples)
        self.assertTone(path, 440, 0.0, None)
        self.assertGreater(audio.rms(path), 0.2, "the phone hears (almost) nothing after resume")

    def assertTone(self, path, expected, start, seconds):
        """
        C{path} from C{start} for C{seconds} (to the end when None) is C{expected} Hz.
        """
        measured = audio.dominant_frequency(path, start=start, seconds=seconds)
        self.assertLess(abs(measured - expected), 10,
                        f"{path} from {start}s: {measured} Hz, not {expected}")

    async def phone_report_after(self, leg, sequence_number):
        """
        The phone's first RTCP report block about our stream that covers C{sequence_number}.
        """
        def covering():
            for packet in leg.last_rtcp or ():
                for block in packet.reports:
                    if (block.ssrc == leg.ssrc
                            and (block.highest_sequence - sequence_number) & 0x8000 == 0):
                        return block
            return None

        return await poll(covering, 15, reactor, message=lambda: (
            f"no receiver report covering {sequence_number}: {leg.last_rtcp}"))

    def assertGapFree(self, packets):
        """
        One SSRC; no timestamp going back; where the sequence number skips k, the timestamp
        moved at least k packet intervals (the capture itself may miss packets on a loaded
        box, and then both move alike; the bug moved the sequence number alone).
        """
        self.assertGreater(len(packets), _HOLD_PACKETS)
        self.assertEqual(len({ssrc for _, _, ssrc in packets}), 1)
        for (seq0, ts0, _), (seq1, ts1, _) in zip(packets, packets[1:]):
            steps, elapsed = (seq1 - seq0) & 0xFFFF, (ts1 - ts0) & 0xFFFFFFFF
            self.assertEqual(elapsed & 0x80000000, 0, f"timestamp {ts0} -> {ts1}")
            self.assertGreaterEqual(elapsed, 160 * steps, f"{seq0}/{ts0} -> {seq1}/{ts1}")
            self.assertGreater(steps, 0, f"sequence {seq0} -> {seq1}")

    def assertEverySendCounted(self, leg, before):
        """
        Since C{before} (L{sequence_mark}), each packet sent took exactly one sequence
        number: the relay's drops during the hold took none.
        """
        self.assertEqual(self.sequence_mark(leg), before)

    @staticmethod
    def sequence_mark(leg):
        """
        The last sequence number sent less the packets sent: constant while gap-free.
        """
        return (leg.rewriter.last_sequence_number - leg.packets_sent) & 0xFFFF


class BrowserHoldsPhoneTests(HoldTestCase):
    """
    The browser holds (our re-INVITE offers sendonly; we keep sending silence) and unholds.
    """

    async def test_phone_hears_browser_after_unhold(self):
        """
        hold, 1.5 s of the browser sending into the held bridge, unhold: the phone hears
        440 Hz again, with no packet counted lost and one gap-free stream on the wire.
        """
        alice, call_id, call, bob = await self.call_phone()
        capture = self.capture(call)
        await alice.hold(call_id)
        await alice.wait_status(call_id, "HOLD")
        self.assertIn("a=sendonly", call.rtp.local_sdp)
        filled = call.rtp.silence.filled
        await self.browser_sends_through_hold(call)
        self.assertGreater(call.rtp.silence.filled, filled, "no silence sent while holding")
        await alice.unhold(call_id)
        await alice.wait_status(call_id, "ESTABLISHED")
        await self.assertHeardAfterResume(alice, call_id, call, bob, capture)
        self.assertEqual(alice.violations, [])


class PhoneHoldsBrowserTests(HoldTestCase):
    """
    The phone holds (linphonec C{pause}: its re-INVITE offers sendonly, we answer recvonly
    and send nothing) and resumes.
    """

    async def test_phone_hears_browser_after_resume(self):
        """
        The browser sees HOLD then ESTABLISHED; after the resume the phone hears 440 Hz with
        no packet counted lost, and the browser hears 1000 Hz.
        """
        alice, call_id, call, bob = await self.call_phone()
        capture = self.capture(call)
        statuses = alice.calls[call_id].statuses
        bob.command("pause")
        await alice.wait_status(call_id, "HOLD", timeout=10)
        self.assertIn("a=recvonly", call.rtp.local_sdp)
        await self.browser_sends_through_hold(call)
        bob.command("resume")
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10,
                                since=statuses.index("HOLD"))
        await self.assertHeardAfterResume(alice, call_id, call, bob, capture)
        self.assertEqual(alice.violations, [])


class ReinviteSDPTests(HoldTestCase):
    """
    The hold and unhold re-INVITEs' SDP, as a carrier's sipp UAS insists (RFC 3264 8.4).
    """

    async def test_hold_offer_sendonly_then_sendrecv_with_versions(self):
        """
        sipp passes only if the hold offer says sendonly (or inactive) and the unhold offer
        sendrecv; its answers (recvonly, sendrecv) give HOLD then ESTABLISHED; each re-offer
        keeps the o= session id and port and increments the version by one.
        """
        port = free_port()
        done = run_sipp("uas_hold_reinvite", extra_args=["-s", "bob"], local_port=port,
                        timeout=20, workdir=self.base)
        await poll(lambda: udp_port_taken(port), 5, reactor, 0.05,
                   message=lambda: f"sipp UAS never bound udp {port}")
        alice = await self.connect_local("alice")
        call_id = await alice.call(f"bob@127.0.0.1:{port}", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await alice.hold(call_id)
        await alice.wait_status(call_id, "HOLD")
        await alice.unhold(call_id)
        await alice.wait_status(call_id, "ESTABLISHED")
        await alice.hangup(call_id)
        result = await done
        self.assertEqual(result.exit_code, 0, result.describe())
        with open(result.trace_files["messages"], encoding="utf-8", errors="replace") as f:
            trace = f.read()
        offers = re.findall(r"INVITE sip:.*?(?=\n-{5,}|\Z)", trace, re.S)
        self.assertEqual(len(offers), 3, trace[-3000:])
        origins = [re.search(r"^o=(\S+) (\d+) (\d+) ", o, re.M).groups() for o in offers]
        ports = {re.search(r"^m=audio (\d+) ", o, re.M).group(1) for o in offers}
        directions = [re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)", o, re.M).group(1)
                      for o in offers]
        self.assertEqual(len({(user, session) for user, session, _ in origins}), 1, origins)
        versions = [int(version) for _, _, version in origins]
        self.assertEqual(versions, [versions[0], versions[0] + 1, versions[0] + 2])
        self.assertEqual(len(ports), 1, ports)
        self.assertEqual(directions, ["sendrecv", "sendonly", "sendrecv"])
        self.assertEqual(alice.violations, [])


class BaresipHoldTests(HoldTestCase):
    """
    The case first reported with baresip: browser -> baresip, hold, unhold.  Its recording
    of received audio is frozen by its own hold handling (see the module docstring), so the
    phone is asked through its RTCP reports and its decoder's counters instead.
    """

    srtp = False

    def phone(self):
        """
        Start bob, the phone (1000 Hz).
        """
        return self.baresip("bob", 1000)

    async def test_baresip_counts_no_loss_after_unhold(self):
        """
        After the unhold baresip's receiver report counts none of our packets lost, it
        discarded no frame, our stream is gap-free, and the browser hears 1000 Hz again.
        """
        bob = await self.phone()
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        [call] = self.server.calls
        self.assertEqual(call.rtp.srtp_suite is not None, self.srtp)
        capture = self.capture(call)
        await bob.wait_for_received_audio(1.0)
        await alice.hold(call_id)
        await alice.wait_status(call_id, "HOLD")
        await self.browser_sends_through_hold(call)
        await alice.unhold(call_id)
        await alice.wait_status(call_id, "ESTABLISHED")
        heard = alice.calls[call_id].recorder.duration
        leg = call.rtp.audio_rtp
        report = await self.phone_report_after(leg, leg.rewriter.last_sequence_number + 100)
        self.assertLess(report.packets_lost, _LOSS_ALLOWED, report)
        debug = (await bob.command("audio_debug"))["data"]
        self.assertIn("n_discard:0", debug)
        capture.stop()
        self.assertGapFree(sent_rtp(capture, leg.local_address[1]))
        self.assertEverySendCounted(leg, self.mark)
        path = await alice.wait_audio(call_id, heard + 1.5, timeout=10)
        self.assertTone(path, 1000, heard + 0.3, 1.0)
        await alice.hangup(call_id)
        await bob.wait_event("CALL_CLOSED")


class BaresipSRTPHoldTests(BaresipHoldTests):
    """
    The same with SDES-SRTP on the SIP leg (baresip srtp-mand, sip_srtp=mandatory): the
    stream is rewritten before it is protected, and the phone's reports come as SRTCP.
    """

    srtp = True
    settings_overrides = {**BaresipHoldTests.settings_overrides, "sip_srtp": "mandatory"}

    def phone(self):
        """
        Start bob with mediaenc=srtp-mand.
        """
        return test_srtp.SRTPCallTestCase.srtp_baresip(self, "bob", 1000)
