"""
Every demo page loads from the server's HTTP port without errors, looks right on a desktop and a
phone screen (screenshots saved as artifacts), and links to the others.
"""

from __future__ import annotations

from tests.web.browser import PHONE, PAGE_TIMEOUT_MS, BrowserTestCase, browser_test

PAGES = ("index.html", "phone.html", "player.html", "sip-as-stream.html")


class DemoPagesTests(BrowserTestCase):
    """
    The static pages under http://host:8081/.
    """

    @browser_test
    async def test_every_page_loads_and_is_screenshotted(self):
        """
        Each page answers 200, runs its script without an uncaught error or a failed request,
        and is saved as a desktop and a phone-sized screenshot.
        """
        failed_requests = []
        self.context.on("requestfailed", lambda request: failed_requests.append(request.url))
        self.context.on("response", lambda response: failed_requests.append(
            f"{response.status} {response.url}") if response.status >= 400 else None)
        phone_context = await self.browser.new_context(viewport=PHONE, device_scale_factor=2,
                                                       is_mobile=True, has_touch=True)
        phone_context.set_default_timeout(PAGE_TIMEOUT_MS)
        for name in PAGES:
            for context, size in ((self.context, "desktop"), (phone_context, "phone")):
                page = await self.open_page(name, f"{name} {size}", context=context,
                                            urlServer=self.ws_url)
                await page.wait_for_load_state("networkidle")
                # Scripts ran: the nav marks the current page.
                current = await page.get_attribute('.topbar nav a[aria-current="page"]', "href")
                self.assertEqual(current, name)
                await self.screenshot(page, f"{name.removesuffix('.html')}-{size}")
                if size == "phone":
                    width = await page.evaluate("document.documentElement.scrollWidth")
                    self.assertLessEqual(width, PHONE["width"], f"{name} scrolls sideways on a phone")
                await page.close()
        await phone_context.close()
        self.assertEqual(failed_requests, [])
        errors = [line for line in self.console if "error" in line.split(":")[0]]
        self.assertEqual(errors, [])

    @browser_test
    async def test_index_links_to_every_page(self):
        """
        The index links to the Phone, Player and SIP-as-stream pages, and each link works.
        """
        page = await self.open_page("index.html")
        links = await page.eval_on_selector_all(".tiles a", "els => els.map(e => e.getAttribute('href'))")
        self.assertEqual(links, ["phone.html", "player.html", "sip-as-stream.html"])
        shown = await page.inner_text("#ws")
        self.assertEqual(shown, "ws://127.0.0.1:8080")
        await page.click("text=Player")
        await page.wait_for_url("**/player.html")
        self.assertEqual(await page.title(), "Player · wcs-twisted")

    @browser_test
    async def test_defaults_come_from_the_page_host(self):
        """
        With no query string, the WCS URL is ws://<page host>:8080, the SIP domain and outbound
        proxy are the page host, and the REST URL is this origin's /rest-api with admin/admin.
        """
        page = await self.open_page("phone.html")
        self.assertEqual(await page.input_value("#urlServer"), "ws://127.0.0.1:8080")
        self.assertEqual(await page.input_value("#sipDomain"), "127.0.0.1")
        self.assertEqual(await page.input_value("#sipOutboundProxy"), "127.0.0.1")
        self.assertFalse(await page.is_checked("#sipRegisterRequired"))
        page = await self.open_page("sip-as-stream.html")
        self.assertEqual(await page.input_value("#restUrl"), f"{self.http_url}/rest-api")
        self.assertEqual(await page.input_value("#restUser"), "admin")
        self.assertEqual(await page.input_value("#restPassword"), "admin")
        self.assertEqual(await page.input_value("#rtmpUrl"), "rtmp://127.0.0.1:1935/live")
