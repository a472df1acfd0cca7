"""
The Player page in headless Chromium against the real server.
"""

from __future__ import annotations


from tests.web.browser import (
    BrowserTestCase, PhoneTestCase, browser_test, closed_port, wait_until_true,
)


class PlayerTests(BrowserTestCase):
    """
    Playing a stream by name, and the messages a user sees when it cannot be played.
    """

    @browser_test
    async def test_unknown_stream_fails_clearly(self):
        """
        Playing a name nobody publishes ends in FAILED with a message naming the stream and the
        server's reason, and the page is ready to try again.
        """
        page = await self.open_page("player.html", urlServer=self.ws_url)
        await page.fill("#streamName", "no_such_stream")
        await page.click("#playBtn")
        await self.wait_status(page, "#streamStatus", "FAILED")
        message = await page.inner_text("#playerMessage")
        self.assertRegex(message, r'^Cannot play "no_such_stream": \S.+\.$')
        self.assertIn("bad", await page.get_attribute("#playerMessage", "class"))
        self.assertTrue(await page.is_enabled("#playBtn"))
        self.assertTrue(await page.is_disabled("#stopBtn"))
        await self.screenshot(page, "player-unknown-stream")

    @browser_test
    async def test_unreachable_server_is_explained(self):
        """
        A WCS URL where nothing listens: FAILED and a message naming the URL.
        """
        url = f"ws://127.0.0.1:{closed_port()}"
        page = await self.open_page("player.html", urlServer=url, streamName="anything")
        await page.click("#playBtn")
        await self.wait_status(page, "#streamStatus", "FAILED")
        self.assertIn(f"Cannot reach the server at {url}", await page.inner_text("#playerMessage"))
        self.assertTrue(await page.is_enabled("#playBtn"))

    @browser_test
    async def test_bad_url_is_refused_before_connecting(self):
        """
        A WCS URL that is not ws:// or wss:// is refused with an example of a good one.
        """
        page = await self.open_page("player.html", urlServer="http://127.0.0.1:8080",
                                    streamName="s")
        await page.click("#playBtn")
        self.assertIn("must start with ws:// or wss://", await page.inner_text("#playerMessage"))
        self.assertEqual(len(self.server.sessions), 0)


class PlayerSIPStreamTests(PhoneTestCase):
    """
    The Player plays the stream of a SIP call started from the SIP-as-stream page.
    """

    timeout = 120

    @browser_test
    async def test_play_a_sip_call_stream(self):
        """
        /call/startup with toStream=call_bob to bob's Phone tab; once bob answers, the Player
        plays "call_bob" (PLAYING) and receives its audio.
        """
        bob = await self.phone("bob")
        await self.connect(bob, "bob")
        await self.wait_status(bob, "#sessionStatus", "ESTABLISHED")
        starter = await self.open_page("sip-as-stream.html", urlServer=self.ws_url)
        await starter.fill("#sipLogin", "alice")
        await starter.fill("#sipPort", "0")
        await starter.fill("#callee", "bob")
        await starter.fill("#streamName", "call_bob")
        await starter.click("#startBtn")
        await bob.wait_for_selector("#incomingAlert.visible")
        await bob.click("#answerBtn")
        await self.wait_status(starter, "#callStatus", "ESTABLISHED", 20000)

        player = await self.open_page("player.html", urlServer=self.ws_url, streamName="call_bob")
        await player.click("#playBtn")
        await self.wait_status(player, "#streamStatus", "PLAYING", 20000)
        await wait_until_true(
            player, "async () => { const s = window.player.stream; if (!s) return false;"
            " const st = await s.getStats(); return st && st.audio.packetsReceived > 25; }")
        await self.screenshot(player, "player-sip-call")
        await player.click("#stopBtn")
        await self.wait_status(player, "#streamStatus", "STOPPED")
