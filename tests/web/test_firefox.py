"""
The official Flashphoner Web SDK (npm C{@flashphoner/websdk}, unmodified) in headless Firefox
ESR against our server: the Phone flow to and from baresip, and a call with a Chromium tab.

Firefox is Debian's C{firefox-esr}, driven over WebDriver BiDi (L{tests.web.firefox}) with
fake media devices; its fake microphone plays L{FAKE_TONE_HZ}.  The SDK and the harness page
around it are those of L{tests.web.test_official_sdk}, installed and served the same way.
Skips when Firefox, npm, baresip or Chromium is missing.
"""

from __future__ import annotations

import os

from tests.integration import audio
from tests.integration.peers import Baresip
from tests.web import test_official_sdk as official
from tests.web.browser import PACKETS_FLOWING, browser_test, wait_for
from tests.web.firefox import FAKE_TONE_HZ, Firefox

#: How close a measured tone must come to the one sent (Hz).
TONE_TOLERANCE_HZ = 15
#: The tone baresip sends (amplitude 0.5), and the least getStats audioLevel that is not silence.
BARESIP_TONE_HZ = 440
MIN_AUDIO_LEVEL = 0.1

#: The call's inbound audio record from getStats (as the SDK reports it).
INBOUND_AUDIO = """() => new Promise((resolve) => call.getStats((stats) => resolve(
  (stats["inbound-rtp"] || []).find((r) => r.kind === "audio") || null), true))"""


class FirefoxSDKTestCase(official.OfficialSDKTestCase):
    """
    The official SDK's server and page, plus one headless Firefox per test.
    """

    timeout = 180

    async def async_set_up(self):
        await super().async_set_up()
        self.firefox = Firefox(self.mktemp())
        self.addCleanup(self._stop_firefox)
        self._tab_labels: dict[str, str] = {}
        self.firefox.listeners.append(self._firefox_console)
        await self.firefox.start()

    @browser_test
    async def _stop_firefox(self):
        await self.firefox.stop()

    def _firefox_console(self, context: str, kind: str, text: str):
        self.console.append(f"[{self._tab_labels.get(context, 'firefox')}] {kind}: {text}")

    async def firefox_tab(self, label: str):
        """
        A Firefox tab on the SDK page; an uncaught error in it fails the test at cleanup.
        """
        tab = await self.firefox.new_tab(self.sdk_url)
        self._tab_labels[tab.context] = label
        self.addCleanup(lambda: self.assertEqual(
            [text for context, kind, text in self.firefox.console
             if context == tab.context and kind == "javascript"], [],
            f"uncaught errors in {label}'s page"))
        return tab

    async def connect(self, page, login: str):
        """
        Connect the tab's SDK session in local mode (SIP fields as the Phone demo sends them).
        """
        self.assertEqual(await page.evaluate(f"url => connect(url, '{login}')", self.ws_url),
                         "ESTABLISHED", f"{login}'s session")

    async def wait_flowing(self, page, label: str):
        """
        Wait until the tab's call has received L{PACKETS_FLOWING} audio packets and then more.
        """
        await self.wait_js(page, f"inboundAudioPackets().then(n => n > {PACKETS_FLOWING})",
                           f"{label} receives audio")
        before = await self.inbound_packets(page)
        await self.wait_js(page, f"inboundAudioPackets().then(n => n > {before})",
                           f"{label} keeps receiving audio")

    async def assert_hears(self, page, label: str):
        """
        The tab's received audio is baresip's tone, not silence: getStats' audioLevel
        (0..1) is near the tone's 0.5 amplitude.  (Its frequency cannot be measured in the
        page: headless Firefox has no audio output, so an AudioContext stays suspended.)
        """
        record = await page.evaluate(INBOUND_AUDIO)
        self.assertIsNotNone(record, f"{label}: no inbound audio in getStats")
        self.assertGreater(record.get("audioLevel", 0), MIN_AUDIO_LEVEL, f"{label}: {record}")
        self.assertGreater(record.get("totalAudioEnergy", 0), 0, f"{label}: {record}")

    def assert_recorded(self, recording: str, frequency: float):
        measured = audio.dominant_frequency(recording, start=1.0)
        self.assertLessEqual(abs(measured - frequency), TONE_TOLERANCE_HZ,
                             f"baresip heard {measured:.1f} Hz in {recording}")
        # The frequency above proves the tone; the level only has to rule out near-silence
        # (under load a few lost packets lower the average: 0.03 was seen, silence is ~0).
        self.assertGreater(audio.rms(recording, start=1.0), 0.01,
                           f"baresip's recording {recording} is near-silent")

    async def baresip(self, name: str, **kwargs) -> Baresip:
        phone = Baresip(self.mktemp(), name, tone_wav=audio.write_tone_wav(
            os.path.abspath(f"{name}.wav"), BARESIP_TONE_HZ, 30), **kwargs)
        self.addCleanup(phone.stop)
        await wait_for(phone.start())
        return phone


class FirefoxSDKTests(FirefoxSDKTestCase):
    """
    The SDK's Phone flow in Firefox ESR with a SIP phone and with Chromium at the far end.
    """

    @browser_test
    async def test_call_baresip_tone_and_dtmf(self):
        """
        Firefox's SDK tab calls bob (baresip registered at the built-in registrar,
        auto-answer): ESTABLISHED; baresip records Firefox's fake-microphone tone and Firefox
        receives baresip's audio; an RFC 2833 digit arrives at baresip as an RFC 4733 event;
        Firefox's hangup gives FINISH and closes baresip's call.
        """
        bob = await self.baresip("bob", registrar=f"127.0.0.1:{self.sip_port}")
        alice = await self.firefox_tab("alice")
        await self.connect(alice, "alice")
        await alice.evaluate("makeCall('bob')")
        await self.wait_js(alice, "callStatuses.includes('ESTABLISHED')", "alice ESTABLISHED")
        await wait_for(bob.wait_event("CALL_ESTABLISHED"))
        await self.wait_flowing(alice, "alice (from baresip)")
        self.assert_recorded(await wait_for(bob.wait_for_received_audio(2.5)), FAKE_TONE_HZ)

        await alice.evaluate("call.sendDTMF('7', 'RFC2833')")
        event = await wait_for(bob.wait_event("CALL_DTMF_START"))
        self.assertEqual(event.get("param"), "7")

        await alice.evaluate("call.hangup()")
        await self.wait_js(alice, "callStatuses.includes('FINISH')", "alice FINISH")
        await wait_for(bob.wait_event("CALL_CLOSED"))
        self.assertEqual(await alice.evaluate("warnings"), [])
        self.assertEqual(len(self.server.signalling.calls), 0)

    @browser_test
    async def test_baresip_calls_firefox(self):
        """
        baresip dials the Firefox session's login in local mode: the SDK tab rings with
        baresip as the caller, answers, both sides ESTABLISHED; baresip records Firefox's tone
        and Firefox receives baresip's at the tone's level; baresip's hangup gives FINISH in the tab.
        """
        alice = await self.firefox_tab("alice")
        await self.connect(alice, "alice")
        bob = await self.baresip("bob")
        await wait_for(bob.dial(f"sip:alice@127.0.0.1:{self.sip_port}"))
        await self.wait_js(alice, "callStatuses.includes('RING')", "alice's incoming call rings")
        self.assertEqual(await alice.evaluate("call.callee()"), "alice")
        await alice.evaluate("answer()")
        await self.wait_js(alice, "callStatuses.includes('ESTABLISHED')", "alice ESTABLISHED")
        await wait_for(bob.wait_event("CALL_ESTABLISHED"))
        await self.wait_flowing(alice, "alice (from baresip)")
        await self.assert_hears(alice, "alice")
        self.assert_recorded(await wait_for(bob.wait_for_received_audio(2.5)), FAKE_TONE_HZ)

        await wait_for(bob.hangup())
        await self.wait_js(alice, "callStatuses.includes('FINISH')", "alice FINISH")
        self.assertEqual(await alice.evaluate("warnings"), [])
        self.assertEqual(len(self.server.signalling.calls), 0)

    @browser_test
    async def test_firefox_calls_chromium(self):
        """
        A Firefox SDK tab calls a Chromium SDK tab in local mode: Chromium rings with Firefox
        as the caller and answers, both ESTABLISHED, inbound audio packets grow on both sides
        (getStats), and Firefox's hangup gives FINISH on both.
        """
        alice = await self.firefox_tab("alice (firefox)")
        bob = await self.sdk_tab("bob (chromium)")
        await self.connect(alice, "alice")
        await self.connect(bob, "bob")
        await alice.evaluate("makeCall('bob')")
        await self.wait_js(bob, "callStatuses.includes('RING')", "bob's incoming call rings")
        self.assertEqual(await bob.evaluate("[call.caller(), call.callee()]"), ["alice", "bob"])
        await bob.evaluate("answer()")
        for page, label in ((alice, "alice"), (bob, "bob")):
            await self.wait_js(page, "callStatuses.includes('ESTABLISHED')", f"{label} ESTABLISHED")
        await self.wait_flowing(alice, "alice (firefox)")
        await self.wait_flowing(bob, "bob (chromium)")

        await alice.evaluate("call.hangup()")
        await self.wait_js(alice, "callStatuses.includes('FINISH')", "alice FINISH")
        await self.wait_js(bob, "callStatuses.includes('FINISH')", "bob FINISH")
        for page, label in ((alice, "alice"), (bob, "bob")):
            self.assertEqual(await page.evaluate("warnings"), [], f"{label} got server warnings")
        self.assertEqual(len(self.server.signalling.calls), 0)
