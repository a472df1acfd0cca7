"""
The Phone page in headless Chromium against the real server: connecting, the failures a user
must understand, and a call between two tabs in local mode with real WebRTC media.
"""

from __future__ import annotations

import os


from tests.integration import audio
from tests.integration.peers import Baresip
from tests.web.browser import (
    PACKETS_FLOWING, PhoneTestCase, browser_test, closed_port, wait_for,
)

class PhoneConnectionTests(PhoneTestCase):
    """
    Connecting and the messages a user sees when it does not work.
    """

    settings = {"sip_users": {"carol": "secret"}}

    @browser_test
    async def test_connect_in_local_mode_and_disconnect(self):
        """
        Connect with Register unticked: ESTABLISHED, a local-mode note, the Call button enabled;
        Disconnect: DISCONNECTED and the fields editable again.
        """
        page = await self.phone("alice")
        await self.connect(page, "alice")
        await self.wait_status(page, "#sessionStatus", "ESTABLISHED")
        self.assertIn("without SIP registration", await page.inner_text("#connectionMessage"))
        self.assertTrue(await page.is_enabled("#callBtn"))
        self.assertTrue(await page.is_disabled("#sipLogin"))
        self.assertEqual([session.account.login for session in self.server.sessions], ["alice"])
        await self.screenshot(page, "phone-connected")
        await page.click("#connectBtn")
        await self.wait_status(page, "#sessionStatus", "DISCONNECTED")
        self.assertEqual(await page.inner_text("#connectionMessage"), "Disconnected.")
        self.assertTrue(await page.is_enabled("#sipLogin"))
        self.assertTrue(await page.is_disabled("#callBtn"))

    @browser_test
    async def test_unreachable_server_is_explained(self):
        """
        A WCS URL where nothing listens gives FAILED and a message naming the URL.
        """
        url = f"ws://127.0.0.1:{closed_port()}"
        page = await self.phone("alice", urlServer=url)
        await self.connect(page, "alice")
        await self.wait_status(page, "#sessionStatus", "FAILED")
        message = await page.inner_text("#connectionMessage")
        self.assertIn(f"Cannot reach the server at {url}", message)
        self.assertIn("bad", await page.get_attribute("#connectionMessage", "class"))
        self.assertTrue(await page.is_enabled("#sipLogin"))
        await self.screenshot(page, "phone-unreachable")

    @browser_test
    async def test_missing_fields_are_named(self):
        """
        Connect with an empty SIP login names the field and opens no connection.
        """
        page = await self.phone("nobody")
        await page.fill("#sipLogin", "")
        await page.click("#connectBtn")
        self.assertEqual(await page.inner_text("#connectionMessage"), "Please fill in: SIP login.")
        self.assertEqual(len(self.server.sessions), 0)

    @browser_test
    async def test_refused_registration_is_explained(self):
        """
        Register required with a wrong password at the built-in registrar: the page says the SIP
        registration failed, with the server's reason, and shows the session closed.
        """
        page = await self.phone("carol")
        await self.connect(page, "carol", register=True, password="wrong",
                           port=str(self.sip_port))
        await self.wait_status(page, "#sessionStatus", "DISCONNECTED")
        message = await page.inner_text("#connectionMessage")
        self.assertIn("SIP registration failed:", message)
        self.assertTrue(await page.is_disabled("#callBtn"))
        await self.screenshot(page, "phone-registration-refused")

    @browser_test
    async def test_registration_succeeds(self):
        """
        Register required with the right password: REGISTERED, and the Call button enabled.
        """
        page = await self.phone("carol")
        await self.connect(page, "carol", register=True, password="secret",
                           port=str(self.sip_port))
        await self.wait_status(page, "#sessionStatus", "REGISTERED")
        self.assertIn("Registered as carol@127.0.0.1", await page.inner_text("#connectionMessage"))
        self.assertTrue(await page.is_enabled("#callBtn"))


class PhoneCallTests(PhoneTestCase):
    """
    Two Phone tabs call each other through the server in local mode.
    """

    timeout = 120

    @browser_test
    async def test_two_tabs_call_hold_unhold_hangup(self):
        """
        alice calls bob, bob answers: both ESTABLISHED and both receive audio (getStats
        inbound-rtp); DTMF from alice's keypad (RFC 2833 and INFO) shows on bob's tab; hold and
        unhold reach HOLD and ESTABLISHED with media flowing again; alice's hangup gives FINISH
        on both tabs.
        """
        alice = await self.phone("alice")
        bob = await self.phone("bob")
        await self.connect(alice, "alice")
        await self.connect(bob, "bob")
        await self.wait_status(alice, "#sessionStatus", "ESTABLISHED")
        await self.wait_status(bob, "#sessionStatus", "ESTABLISHED")

        await alice.fill("#callee", "bob")
        await alice.click("#callBtn")
        await bob.wait_for_selector("#incomingAlert.visible")
        self.assertIn("Incoming call from alice", await bob.inner_text("#incomingText"))
        await self.screenshot(bob, "phone-incoming")
        await bob.click("#answerBtn")
        await self.wait_status(alice, "#callStatus", "ESTABLISHED", 20000)
        await self.wait_status(bob, "#callStatus", "ESTABLISHED", 20000)

        alice_count = await self.wait_packets(alice, PACKETS_FLOWING, "alice")
        bob_count = await self.wait_packets(bob, PACKETS_FLOWING, "bob")
        # Still growing: media flows, it did not just start and stop.
        await self.wait_packets(alice, alice_count, "alice")
        await self.wait_packets(bob, bob_count, "bob")
        await alice.wait_for_function(
            "Number(document.getElementById('statPacketsReceived').textContent) > 0")
        self.assertRegex(await alice.inner_text("#statCodec"), r"^\w+/\d+")
        await self.screenshot(alice, "phone-established")

        # DTMF from the keypad, in RTP and as SIP INFO, arrives at the other tab.
        await alice.click('#keypad button[data-digit="1"]')
        await alice.select_option("#dtmfType", "INFO")
        await alice.click('#keypad button[data-digit="#"]')
        self.assertEqual(await alice.inner_text("#dtmfSent"), "1#")
        await bob.wait_for_function("document.getElementById('dtmfReceived').textContent === '1#'")

        await alice.click("#holdBtn")
        await self.wait_status(alice, "#callStatus", "HOLD")
        self.assertEqual(await alice.inner_text("#holdBtn"), "Unhold")
        await self.screenshot(alice, "phone-hold")
        await alice.click("#holdBtn")
        await self.wait_status(alice, "#callStatus", "ESTABLISHED")
        self.assertEqual(await alice.inner_text("#holdBtn"), "Hold")
        after_unhold = await self.packets_received(bob)
        await self.wait_packets(bob, after_unhold + 10, "bob after unhold")

        await alice.click("#hangupBtn")
        await self.wait_status(alice, "#callStatus", "FINISH")
        await self.wait_status(bob, "#callStatus", "FINISH")
        self.assertIn("ended", await bob.inner_text("#callStatusText"))
        self.assertTrue(await alice.is_enabled("#callBtn"))
        await self.screenshot(bob, "phone-finished")


class PhoneCallEndingTests(PhoneTestCase):
    """
    The other ways a call ends: declined, cancelled while ringing, the far tab going away.
    """

    timeout = 120

    async def ringing(self):
        alice = await self.phone("alice")
        bob = await self.phone("bob")
        await self.connect(alice, "alice")
        await self.connect(bob, "bob")
        await self.wait_status(alice, "#sessionStatus", "ESTABLISHED")
        await self.wait_status(bob, "#sessionStatus", "ESTABLISHED")
        await alice.fill("#callee", "bob")
        await alice.click("#callBtn")
        await bob.wait_for_selector("#incomingAlert.visible")
        await self.wait_status(alice, "#callStatus", "RING")
        return alice, bob

    @browser_test
    async def test_decline(self):
        """
        bob declines: bob's call is over (FINISH) and alice's page says bob is busy or the call
        failed, with the SIP status.
        """
        alice, bob = await self.ringing()
        await bob.click("#declineAlertBtn")
        await self.wait_status(bob, "#callStatus", "FINISH")
        await alice.wait_for_selector('#callStatus:is([data-status="BUSY"], [data-status="FAILED"])',
                                      state="attached")
        message = await alice.inner_text("#callMessage")
        self.assertRegex(message, r"bob (is busy|failed).*\(SIP [4-6]\d\d\)")
        self.assertTrue(await alice.is_enabled("#callBtn"))
        await self.screenshot(alice, "phone-declined")

    @browser_test
    async def test_caller_cancels_while_ringing(self):
        """
        alice hangs up while bob's tab rings: the incoming alert goes away and both show FINISH.
        """
        alice, bob = await self.ringing()
        await alice.click("#hangupBtn")
        await self.wait_status(alice, "#callStatus", "FINISH")
        await self.wait_status(bob, "#callStatus", "FINISH")
        self.assertFalse(await bob.is_visible("#incomingAlert"))
        self.assertEqual(len(self.server.signalling.calls), 0)

    @browser_test
    async def test_far_tab_closing_ends_the_call(self):
        """
        bob answers and then closes his tab: alice's call ends with FINISH.
        """
        alice, bob = await self.ringing()
        await bob.click("#answerBtn")
        await self.wait_status(alice, "#callStatus", "ESTABLISHED", 20000)
        await bob.close()
        await self.wait_status(alice, "#callStatus", "FINISH")
        self.assertEqual(len(self.server.signalling.calls), 0)


class PhoneToSIPPhoneTests(PhoneTestCase):
    """
    A Phone tab calls baresip (a real SIP softphone) registered at the built-in registrar.
    """

    timeout = 120
    #: The tone Chromium's fake microphone plays (a WAV it loops), and how close baresip's
    #: recording must come to it.
    TONE_HZ = 440
    TONE_TOLERANCE_HZ = 15

    async def async_set_up(self):
        self.tone = audio.write_tone_wav(os.path.abspath("chromium-tone.wav"), self.TONE_HZ, 10,
                                         rate=48000, amplitude=0.5)
        self.extra_flags = (f"--use-file-for-fake-audio-capture={self.tone}",)
        await super().async_set_up()

    @browser_test
    async def test_call_baresip_tone_and_dtmf(self):
        """
        alice's tab calls bob (baresip, auto-answer): baresip records Chromium's fake-microphone
        tone, alice receives baresip's audio, a keypad digit arrives at baresip as an RFC 4733
        event, and alice's hangup closes baresip's call.
        """
        bob = Baresip(self.mktemp(), "bob", registrar=f"127.0.0.1:{self.sip_port}",
                      tone_wav=audio.write_tone_wav(os.path.abspath("bob.wav"), 1000, 30))
        self.addCleanup(bob.stop)
        await wait_for(bob.start())
        alice = await self.phone("alice")
        await self.connect(alice, "alice")
        await self.wait_status(alice, "#sessionStatus", "ESTABLISHED")
        await alice.fill("#callee", "bob")
        await alice.click("#callBtn")
        await self.wait_status(alice, "#callStatus", "ESTABLISHED", 20000)
        await wait_for(bob.wait_event("CALL_ESTABLISHED"))
        await self.wait_packets(alice, PACKETS_FLOWING, "alice (from baresip)")

        recording = await wait_for(bob.wait_for_received_audio(2.5))
        frequency = audio.dominant_frequency(recording, start=1.0)
        self.assertLessEqual(abs(frequency - self.TONE_HZ), self.TONE_TOLERANCE_HZ,
                             f"baresip heard {frequency:.1f} Hz in {recording}")
        self.assertGreater(audio.rms(recording, start=1.0), 0.05)

        await alice.click('#keypad button[data-digit="7"]')
        event = await wait_for(bob.wait_event("CALL_DTMF_START"))
        self.assertEqual(event.get("param"), "7")
        await self.screenshot(alice, "phone-baresip")

        await alice.click("#hangupBtn")
        await self.wait_status(alice, "#callStatus", "FINISH")
        await wait_for(bob.wait_event("CALL_CLOSED"))
