"""
The SIP-as-stream page in headless Chromium against the real server: REST calls with toStream,
DTMF and terminate over REST, and the messages a user sees when the REST API refuses.
"""

from __future__ import annotations


from tests.web.browser import PhoneTestCase, browser_test


class SIPAsStreamTests(PhoneTestCase):
    """
    The page drives /rest-api/call/* and /rest-api/push/* with Basic auth.
    """

    async def page(self, **query):
        query.setdefault("urlServer", self.ws_url)
        return await self.open_page("sip-as-stream.html", **query)

    async def start(self, page, callee: str, login: str = "alice"):
        await page.fill("#sipLogin", login)
        await page.fill("#sipPort", "0")
        await page.fill("#callee", callee)
        await page.fill("#streamName", f"call_{callee}")
        await page.click("#startBtn")

    @browser_test
    async def test_wrong_rest_password_is_explained(self):
        """
        A wrong REST password: /call/startup gets 401 and the page says the REST user or
        password is wrong, and what the defaults are.
        """
        page = await self.page(restPassword="guess")
        await self.start(page, "bob")
        await self.wait_status(page, "#callStatus", "FAILED")
        message = await page.inner_text("#callMessage")
        self.assertIn("the REST user or password is wrong (HTTP 401)", message)
        self.assertIn("admin / admin only on a loopback-only server", message)
        self.assertIn("var/rest-password", message)
        self.assertTrue(await page.is_enabled("#startBtn"))
        await self.screenshot(page, "sip-as-stream-rest-401")

    @browser_test
    async def test_missing_fields_are_named(self):
        """
        Start with no callee names the missing fields and sends nothing.
        """
        page = await self.page()
        await page.fill("#sipLogin", "")
        await page.fill("#callee", "")
        await page.click("#startBtn")
        self.assertEqual(await page.inner_text("#callMessage"),
                         "Please fill in: SIP login, callee.")

    @browser_test
    async def test_call_to_unknown_user_is_explained(self):
        """
        A REST call to a user nobody is: the call is refused on the SIP side and the page says
        it ended without being answered.
        """
        page = await self.page()
        await self.start(page, "nobody")
        await self.wait_status(page, "#callStatus", "FAILED")
        message = await page.inner_text("#callMessage")
        self.assertRegex(message, r"failed|without being answered")
        self.assertTrue(await page.is_enabled("#startBtn"))

    @browser_test
    async def test_push_failure_is_explained(self):
        """
        A push to RTMP the server cannot do is shown as a failure with the server's reason.
        """
        page = await self.page(rtmpUrl="rtmp://127.0.0.1:1/live", streamName="nothing_here")
        await page.click("#pushBtn")
        await self.wait_status(page, "#pushStatus", "FAILED")
        self.assertRegex(await page.inner_text("#pushMessage"),
                         r"^Cannot push to RTMP: /push/startup failed: HTTP \d{3} \S")

    @browser_test
    async def test_rest_call_to_a_phone_tab_with_dtmf_and_terminate(self):
        """
        /call/startup to bob's Phone tab (local mode): bob answers, the page shows ESTABLISHED
        from /call/find, sends DTMF over REST, and Terminate ends the call on bob's tab too.
        """
        bob = await self.phone("bob")
        await self.connect(bob, "bob")
        await self.wait_status(bob, "#sessionStatus", "ESTABLISHED")
        page = await self.page()
        await self.start(page, "bob")
        await bob.wait_for_selector("#incomingAlert.visible")
        await bob.click("#answerBtn")
        await self.wait_status(bob, "#callStatus", "ESTABLISHED", 20000)
        await self.wait_status(page, "#callStatus", "ESTABLISHED", 20000)
        self.assertIn('streaming as "call_bob"', await page.inner_text("#callMessage"))
        await page.click('#keypad button[data-digit="5"]')
        await page.wait_for_function("document.getElementById('dtmfSent').textContent === '5'")
        # ... and it really crossed: bob's tab shows the digit its SIP leg received.
        await bob.wait_for_function(
            "document.getElementById('dtmfReceived').textContent === '5'", timeout=10000)
        await self.screenshot(page, "sip-as-stream-established")
        await page.click("#terminateBtn")
        await self.wait_status(bob, "#callStatus", "FINISH")
        await page.wait_for_selector("#startBtn:enabled")
        self.assertEqual(len(self.server.signalling.calls), 0)
