"""
Browser tests' harness: the real server in this process, and headless Chromium driven by
Playwright's async API on the asyncio loop that trial's asyncio reactor runs.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.web

Why this shape:
  - Playwright's sync API would block the reactor that serves the pages, so the tests use its
    async API.  A test body is an asyncio coroutine wrapped by L{browser_test}, which hands trial a
    Deferred (C{Deferred.fromFuture}); inside, Twisted Deferreds are awaited with L{wait_for}.
  - Chromium is Debian's C{/usr/bin/chromium} (C{executable_path}); Playwright never downloads a
    browser here.  The flags are those of ../shared/design/peers.md plus
    C{--autoplay-policy=no-user-gesture-required} so remote audio plays; Playwright's C{launch}
    gives every browser a fresh temporary profile (its own C{--user-data-dir}).
  - The server binds 127.0.0.1 with every port 0; pages get their ws URL in the query string
    (C{?urlServer=ws://127.0.0.1:N}), as the pages support for any field.
  - Screenshots go to C{artifacts/web/} under trial's working directory (C{_trial_temp}), or to
    C{$WCS_TEST_ARTIFACTS/web} when that is set (CI uploads it).

Missing pieces skip with the reason: Chromium (C{apt-get install chromium}), the C{playwright}
Python package, or a reactor other than asyncio.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from typing import Any, Awaitable, Callable

from twisted.internet import defer
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration.peers import LOOPBACK, require_binary
from wcs_twisted.config import Settings
from wcs_twisted.tap import build_service

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)

#: Playwright's wait for any one condition on a page (ms).
PAGE_TIMEOUT_MS = 15000

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def artifacts_dir() -> str:
    """
    Where screenshots go (created on first use).
    """
    base = os.environ.get("WCS_TEST_ARTIFACTS") or os.path.abspath("artifacts")
    path = os.path.join(base, "web")
    os.makedirs(path, exist_ok=True)
    return path


def event_loop() -> asyncio.AbstractEventLoop:
    """
    The asyncio loop under the running reactor; skip when the reactor is not asyncio's.
    """
    from twisted.internet import reactor

    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is None:
        raise SkipTest("browser tests need trial --reactor=asyncio (Playwright runs on asyncio)")
    return loop


def wait_for(d: defer.Deferred) -> asyncio.Future:
    """
    A Twisted Deferred as something an asyncio coroutine can await.
    """
    return d.asFuture(event_loop())


async def wait_until_true(page, expression: str, timeout_ms: float = 20000,
                          interval: float = 0.1) -> Any:
    """
    Poll C{page.evaluate(expression)} until its value is truthy and return it; a promise is
    awaited first.  (Playwright's C{wait_for_function} counts a promise as truthy and returns
    at once, so a check like C{inboundAudioPackets().then(n => n > 20)} could never fail.)

    @raise TimeoutError: not true within C{timeout_ms}.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"never true in {timeout_ms / 1000:g} s: {expression}")
        await asyncio.sleep(interval)


def browser_test(method: Callable[..., Awaitable[Any]]):
    """
    Run an async test method (or setUp) as an asyncio task; trial gets a Deferred.
    """

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        loop = event_loop()
        return defer.Deferred.fromFuture(asyncio.ensure_future(method(self, *args, **kwargs),
                                                               loop=loop))

    return run


def closed_port() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on (for "server unreachable").
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind((LOOPBACK, 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class BrowserTestCase(TestCase):
    """
    One server and one Chromium per test.

    Subclasses get C{self.server}, C{self.ws_url}, C{self.http_url}, C{self.browser} and
    C{self.context}, and L{open_page}, L{screenshot}, L{wait_status}.
    """

    timeout = 90
    #: Settings for the server under test (merged over the loopback defaults).
    settings: dict[str, Any] = {}
    #: Chromium flags on top of L{CHROMIUM_FLAGS} (set before async_set_up runs).
    extra_flags: tuple[str, ...] = ()

    def setUp(self):
        require_binary("chromium")
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            raise SkipTest("the playwright Python package is not installed "
                           "(pip install playwright; never `playwright install`)")
        event_loop()
        return self._run_set_up()

    @browser_test
    async def _run_set_up(self):
        await self.async_set_up()

    async def async_set_up(self):
        """
        Start the server and Chromium; subclasses extend it (await super().async_set_up()).
        """
        from twisted.internet import reactor
        from playwright.async_api import async_playwright

        values = dict(bind_address=LOOPBACK, ws_port=0, http_port=0, sip_port=0)
        values.update(self.settings)
        self.server = build_service(Settings(**values), reactor)
        self.server.service.startService()
        self.addCleanup(self._stop_server)
        await wait_for(defer.gatherResults([l.when_ready() for l in self.server.listeners]))
        self.ws_port = self.server.service.getServiceNamed("ws").port.getHost().port
        self.http_port = self.server.service.getServiceNamed("http").port.getHost().port
        self.sip_port = self.server.sip_stack.ports.get("udp")
        self.ws_url = f"ws://{LOOPBACK}:{self.ws_port}"
        self.http_url = f"http://{LOOPBACK}:{self.http_port}"
        self.console: list[str] = []
        self.addCleanup(self._save_console)
        self._playwright = await async_playwright().start()
        self.addCleanup(self._stop_browser)
        self.browser = await self._playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=[*CHROMIUM_FLAGS, *self.extra_flags])
        self.context = await self.browser.new_context(viewport=DESKTOP)
        self.context.set_default_timeout(PAGE_TIMEOUT_MS)

    def _save_console(self):
        """
        Keep every page's console as an artifact next to the screenshots.
        """
        if self.console:
            name = self.id().rsplit(".", 2)[-2:]
            with open(os.path.join(artifacts_dir(), ".".join(name) + ".console.txt"), "w") as out:
                out.write("\n".join(self.console) + "\n")

    def _stop_server(self):
        if self.server.service.running:
            return self.server.service.stopService()

    @browser_test
    async def _stop_browser(self):
        try:
            if getattr(self, "browser", None) is not None:
                await self.browser.close()
        finally:
            await self._playwright.stop()

    async def open_page(self, name: str, label: str | None = None, context=None, **query):
        """
        Open one of the demo pages with C{query} in its URL; console errors are collected
        (C{self.console}) and any uncaught page exception fails the test at cleanup.
        """
        from urllib.parse import urlencode

        page = await (context or self.context).new_page()
        label = label or name
        page.on("console", lambda message: self.console.append(
            f"[{label}] {message.type}: {message.text}"))
        errors = []
        page.on("pageerror", lambda error: errors.append(f"[{label}] {error}"))
        self.addCleanup(lambda: self.assertEqual(errors, [], "uncaught errors in the page"))
        url = f"{self.http_url}/{name}"
        if query:
            url += "?" + urlencode(query)
        response = await page.goto(url)
        self.assertEqual(response.status, 200, url)
        return page

    async def screenshot(self, page, name: str, full_page: bool = True) -> str:
        path = os.path.join(artifacts_dir(), f"{name}.png")
        await page.screenshot(path=path, full_page=full_page)
        return path

    async def wait_status(self, page, selector: str, status: str, timeout_ms: int = PAGE_TIMEOUT_MS):
        """
        Wait until the badge at C{selector} shows C{status}; on timeout say what it shows and
        quote the page's event log.
        """
        try:
            await page.wait_for_selector(f'{selector}[data-status="{status}"]',
                                         timeout=timeout_ms, state="attached")
        except Exception:
            shown = await page.get_attribute(selector, "data-status")
            log = await page.evaluate(
                "() => (document.getElementById('log') || {}).innerText || ''")
            messages = await page.evaluate(
                "() => Array.from(document.querySelectorAll('.message')).map(e => e.innerText)"
                ".filter(Boolean).join(' | ')")
            self.fail(f"{selector} never showed {status} (shows {shown!r}); messages: "
                      f"{messages}\n--- page log ---\n{log}\n--- console ---\n"
                      + "\n".join(self.console[-30:]))


#: Inbound audio packets each side must have before we call the media flowing (20 ms each).
PACKETS_FLOWING = 25


class PhoneTestCase(BrowserTestCase):
    """
    Helpers to drive the Phone page.
    """

    async def phone(self, label: str, **query):
        query.setdefault("urlServer", self.ws_url)
        return await self.open_page("phone.html", label, **query)

    async def connect(self, page, login: str, register: bool = False, password: str = "",
                      port: str = "0"):
        """
        Fill the connection form as a user does and press Connect.
        """
        await page.fill("#sipLogin", login)
        await page.fill("#sipAuthenticationName", "")
        await page.fill("#sipPassword", password)
        await page.fill("#sipDomain", "127.0.0.1")
        await page.fill("#sipOutboundProxy", "127.0.0.1")
        await page.fill("#sipPort", port)
        await page.set_checked("#sipRegisterRequired", register)
        await page.click("#connectBtn")

    async def packets_received(self, page) -> int:
        return await page.evaluate(
            "async () => { const c = window.phone.call; if (!c) return -1;"
            " const s = await c.getStats(); return s ? s.audio.packetsReceived : -1; }")

    async def wait_packets(self, page, above: int, label: str, timeout: float = 10.0) -> int:
        """
        Wait until the tab's call has received more than C{above} audio packets.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        count = await self.packets_received(page)
        while count <= above:
            if asyncio.get_running_loop().time() > deadline:
                stats = await page.evaluate(
                    "async () => { const c = window.phone.call; if (!c) return null;"
                    " const s = await c.getStats(); const pc = c.getPeerConnection();"
                    " return {audio: s.audio, ice: pc.iceConnectionState,"
                    " conn: pc.connectionState}; }")
                self.fail(f"{label} received {count} audio packets, wanted more than {above}: {stats}")
            await asyncio.sleep(0.25)
            count = await self.packets_received(page)
        return count


