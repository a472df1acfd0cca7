"""
The real-peer harness (L{tests.integration.peers}) against the real programs.

These tests prove the harness the rest of the suite relies on: Kamailio,
baresip and sipp on 127.0.0.1, driven from the reactor. Each test skips
when its binary is missing. Run them under the asyncio reactor, as the server
runs:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_peers
"""

import os

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.integration import audio
from tests.integration.peers import (
    Baresip, Kamailio, PeerError, free_port, run_sipp,
)


def assert_within(testcase, value, expected, tolerance, what):
    """
    Fail unless C{value} is within C{tolerance} of C{expected}. (trial's
    C{assertAlmostEqual} ignores C{delta}.)
    """
    if abs(value - expected) > tolerance:
        testcase.fail(f"{what}: {value!r} is not within {tolerance} of {expected}")


class AudioHelperTests(SynchronousTestCase):
    """
    The WAV helpers measure what they are meant to, on generated files.
    """

    def test_tone_frequency_and_level(self):
        """
        A written 0.5-amplitude tone reads back at its frequency and at RMS 0.5/sqrt(2).
        """
        path = audio.write_tone_wav(self.mktemp(), 1000, 2.0)
        assert_within(self, audio.dominant_frequency(path), 1000, 0.5, "frequency")
        assert_within(self, audio.rms(path), 0.5 / 2 ** 0.5, 0.001, "RMS")
        self.assertEqual(audio.wav_duration(path), 2.0)

    def test_unfinished_recording(self):
        """
        A WAV whose RIFF and data sizes are still 0 (baresip mid-call) is read to the end of file.
        """
        path = audio.write_tone_wav(self.mktemp(), 440, 1.0)
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(b"\x08\x00\x00\x00")
            f.seek(40)
            f.write(b"\x00\x00\x00\x00")
        samples, rate = audio.read_wav(path)
        self.assertEqual((len(samples), rate), (8000, 8000))

    def test_dtmf_digits(self):
        """
        In-band DTMF digits are found in order, and a plain tone holds none.
        """
        digits = audio.write_dtmf_wav(self.mktemp(), "159#*0D")
        self.assertEqual(audio.detect_dtmf_digits(digits), "159#*0D")
        tone = audio.write_tone_wav(self.mktemp(), 941, 1.0)
        self.assertEqual(audio.detect_dtmf_digits(tone), "")


class KamailioTests(TestCase):
    """
    Kamailio as the external registrar and proxy.
    """

    timeout = 20

    @defer.inlineCallbacks
    def test_answers_options(self):
        """
        A started Kamailio answers OPTIONS for itself with 200.
        """
        proxy = Kamailio(self.mktemp())
        self.addCleanup(proxy.stop)
        yield proxy.start()
        response = yield proxy.options()
        self.assertTrue(response.startswith(b"SIP/2.0 200 "), response[:80])
        self.assertIn(b"kamailio-wcs-test", response)

    @defer.inlineCallbacks
    def test_sipp_register_with_digest(self):
        """
        sipp answers Kamailio's 401 challenge with -au/-ap and gets 200 (exit code 0).
        """
        base = self.mktemp()
        proxy = Kamailio(base, users={"alice": "secret"})
        self.addCleanup(proxy.stop)
        yield proxy.start()
        result = yield run_sipp("register_auth", proxy.address,
                                ["-s", "alice", "-au", "alice", "-ap", "secret"],
                                timeout=10, workdir=os.path.join(base, "sipp"))
        self.assertEqual(result.exit_code, 0, result.describe())
        self.assertEqual(result.status_lines(), ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"])

    @defer.inlineCallbacks
    def test_wrong_password_refused(self):
        """
        A wrong digest password gets 403 from Kamailio: sipp fails (exit 1) and
        baresip reports REGISTER_FAIL.
        """
        base = self.mktemp()
        proxy = Kamailio(base, users={"alice": "secret"})
        self.addCleanup(proxy.stop)
        yield proxy.start()
        result = yield run_sipp("register_auth", proxy.address,
                                ["-s", "alice", "-au", "alice", "-ap", "wrong"],
                                timeout=10, workdir=os.path.join(base, "sipp"))
        self.assertEqual(result.exit_code, 1, result.describe())
        self.assertIn("SIP/2.0 403 Wrong password", result.status_lines())

        agent = Baresip(base, "alice", registrar=proxy.address, password="wrong")
        self.addCleanup(agent.stop)
        failure = yield self.assertFailure(agent.start(), PeerError)
        self.assertIn("403 Wrong password", str(failure))
        self.assertTrue(agent.process.ended)

    @defer.inlineCallbacks
    def test_sipp_calls_through_proxy(self):
        """
        sipp's UAC/UAS scenarios complete through the record-routing proxy:
        INVITE..BYE with the BYE sent along the route set, a 486 refusal, and
        a CANCEL after 180.
        """
        base = self.mktemp()
        proxy = Kamailio(base, users={})
        self.addCleanup(proxy.stop)
        yield proxy.start()

        def call(uas, uac, uac_args=()):
            port = free_port()
            workdir = os.path.join(base, f"{uas}-{uac}")
            callee = run_sipp(uas, None, ["-s", "bob"], timeout=10, workdir=workdir,
                              local_port=port)
            caller = run_sipp(uac, f"127.0.0.1:{port}",
                              ["-s", "bob", "-rsa", proxy.address, *uac_args],
                              timeout=10, workdir=workdir)
            return defer.gatherResults([callee, caller])

        callee, caller = yield call("uas_answer_200", "uac_invite_bye")
        self.assertEqual((callee.exit_code, caller.exit_code), (0, 0),
                         callee.describe() + caller.describe())
        self.assertIn("Record-Route:", callee.messages())
        bye = caller.messages().split("BYE sip:", 1)[1].replace("\r\n", "\n").split("\n\n")[0]
        self.assertIn(f"Route: <sip:127.0.0.1:{proxy.port};lr", bye)

        callee, caller = yield call("uas_busy_486", "uac_invite_bye")
        self.assertEqual(callee.exit_code, 0, callee.describe())
        self.assertEqual(caller.exit_code, 1, caller.describe())
        self.assertIn("SIP/2.0 486 Busy Here", caller.status_lines())

        callee, caller = yield call("uas_ring_cancel", "uac_cancel_after_180")
        self.assertEqual((callee.exit_code, caller.exit_code), (0, 0),
                         callee.describe() + caller.describe())
        self.assertIn("SIP/2.0 487 Request Terminated", caller.status_lines())


class BaresipCallTests(TestCase):
    """
    Two baresip agents registered at Kamailio call each other.
    """

    timeout = 25

    @defer.inlineCallbacks
    def test_call_with_media_and_dtmf(self):
        """
        alice calls bob through Kamailio with digest auth: both see
        CALL_ESTABLISHED, each records the other's tone, a DTMF digit arrives as
        an event, and the hangup closes both sides.
        """
        base = self.mktemp()
        os.makedirs(base)
        proxy = Kamailio(base, users={"alice": "secret", "bob": "secret"})
        self.addCleanup(proxy.stop)
        yield proxy.start()
        alice = Baresip(base, "alice", registrar=proxy.address, password="secret",
                        tone_wav=audio.write_tone_wav(os.path.join(base, "440.wav"), 440, 20))
        bob = Baresip(base, "bob", registrar=proxy.address, password="secret",
                      tone_wav=audio.write_tone_wav(os.path.join(base, "1000.wav"), 1000, 20))
        self.addCleanup(alice.stop)
        self.addCleanup(bob.stop)
        yield defer.gatherResults([alice.start(), bob.start()])

        yield alice.dial(proxy.user_uri("bob"))
        established = yield defer.gatherResults([
            alice.wait_event("CALL_ESTABLISHED"), bob.wait_event("CALL_ESTABLISHED")])
        self.assertEqual([e["direction"] for e in established], ["outgoing", "incoming"])
        self.assertEqual(established[0]["id"], established[1]["id"])

        yield alice.send_dtmf("5")
        dtmf = yield bob.wait_event("CALL_DTMF_START")
        self.assertEqual(dtmf["param"], "5")

        # 1.5 s of audio: 0.5 s to skip (start-up) and a second to measure.
        yield defer.gatherResults([
            alice.wait_for_received_audio(1.5), bob.wait_for_received_audio(1.5)])
        yield alice.hangup()
        closed = yield defer.gatherResults([
            alice.wait_event("CALL_CLOSED"), bob.wait_event("CALL_CLOSED")])
        self.assertEqual(closed[1]["param"], "Connection reset by peer")

        assert_within(self, audio.dominant_frequency(bob.received_wav()), 440, 10,
                      "frequency bob received")
        assert_within(self, audio.dominant_frequency(alice.received_wav()), 1000, 10,
                      "frequency alice received")
        assert_within(self, audio.rms(bob.received_wav(), start=0.5, seconds=1.0), 0.354, 0.05,
                      "RMS bob received")
