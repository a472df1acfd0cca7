"""
Headless Firefox ESR (Debian's C{firefox-esr}) driven over WebDriver BiDi from the test's own
asyncio loop, for the browser tests that need a second engine.

Why this shape:
  - Playwright drives only its own patched Firefox build, and Debian ships no geckodriver, so
    the tests speak WebDriver BiDi (the W3C protocol Firefox's Remote Agent serves on
    C{--remote-debugging-port}) over a WebSocket with the C{websockets} package: a handful of
    commands (session.new, browsingContext.create/navigate, script.evaluate) are all a test
    needs, without a Node bridge or a browser download.
  - L{FirefoxTab} answers C{evaluate} and C{wait_for_function} as a Playwright page does, so
    helpers written for Chromium pages (C{wait_js}) drive a Firefox tab unchanged.  Values cross
    as JSON text (the page stringifies, Python parses), which keeps BiDi's typed remote values
    out of the tests.
  - Every run gets a fresh profile directory whose C{user.js} turns on fake media devices
    without a permission prompt (C{media.navigator.streams.fake},
    C{media.navigator.permission.disabled}) and allows ICE on loopback.  The server offers
    only 127.0.0.1 and Firefox pairs a loopback remote candidate only with a loopback local
    one, which it gathers only with C{media.peerconnection.ice.loopback} AND when the page is
    not limited to the default route: a page without a stored camera/microphone permission
    is, whatever the fake-device prefs say, so C{permissions.default.microphone/camera} grant
    it (without them ICE fails with "no streams with non-empty check lists").  Host
    addresses are shown rather than mDNS names, and audio plays without a gesture.
  - Firefox runs as root (the CI machine) with a profile it owns: no sandbox switch or
    C{MOZ_DISABLE_CONTENT_SANDBOX} is needed.
  - The process is a L{PeerProcess} (stdout/stderr in C{firefox.log}); the Remote Agent prints
    the WebSocket URL there, which is how the port chosen by the kernel (port 0) is learnt.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
from typing import Any, Callable

from twisted.internet import defer

from tests.integration.peers import PeerProcess, poll, require_binary
from tests.web.browser import wait_until_true

#: The tone Firefox's fake microphone plays (set in the profile, so the tests state it).
FAKE_TONE_HZ = 1000

PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.navigator.audio.fake_frequency": FAKE_TONE_HZ,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "permissions.default.microphone": 1,
    "permissions.default.camera": 1,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.autoplay.block-webaudio": False,
    "network.proxy.type": 0,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
}

#: Seconds Firefox may take to start its Remote Agent, and any one BiDi command to answer.
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0

_LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")


class BiDiError(Exception):
    """
    A BiDi command answered with an error, or a script threw.
    """


class Firefox:
    """
    One headless Firefox with its own profile and one BiDi session.

    @ivar console: C{(context, kind, text)} of every log entry of every tab, in order
        (C{kind} is the console level, or C{"javascript"} for an uncaught error).
    """

    def __init__(self, directory: str, executable: str = "firefox-esr"):
        self.executable = require_binary(executable, "firefox-esr")
        self.directory = os.path.abspath(directory)
        self.profile = os.path.join(self.directory, "profile")
        self.process = PeerProcess("firefox", os.path.join(self.directory, "firefox.log"))
        self.console: list[tuple[str, str, str]] = []
        self.listeners: list[Callable[[str, str, str], None]] = []
        self._socket = None
        self._reader = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)

    async def start(self) -> "Firefox":
        """
        Start Firefox, connect to its Remote Agent and open a BiDi session.
        """
        import websockets

        os.makedirs(self.profile, exist_ok=True)
        with open(os.path.join(self.profile, "user.js"), "w") as prefs:
            for name, value in PREFS.items():
                prefs.write(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n")
        env = dict(os.environ, MOZ_CRASHREPORTER_DISABLE="1", MOZ_HEADLESS="1")
        self.process.spawn([self.executable, "--headless", "--no-remote", "--profile",
                            self.profile, "--remote-debugging-port=0", "about:blank"],
                           cwd=self.directory, env=env)
        url = await _wait(poll(self._agent_url, START_TIMEOUT, message=lambda: (
            f"firefox never announced WebDriver BiDi\n{self.process.describe()}")))
        self._socket = await asyncio.wait_for(
            websockets.connect(f"{url}/session", max_size=None, open_timeout=None),
            COMMAND_TIMEOUT)
        self._reader = asyncio.ensure_future(self._read())
        await self.command("session.new", {"capabilities": {}})
        await self.command("session.subscribe", {"events": ["log.entryAdded"]})
        return self

    def _agent_url(self):
        self.process.check_running()
        try:
            with open(self.process.log_path, encoding="utf-8", errors="replace") as log:
                found = _LISTENING.search(log.read())
        except OSError:
            return None
        return found.group(1) if found else None

    async def _read(self):
        try:
            async for text in self._socket:
                message = json.loads(text)
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("method") == "log.entryAdded":
                    self._log(message["params"])
        finally:
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(BiDiError("the BiDi connection closed"))

    def _log(self, entry: dict):
        context = (entry.get("source") or {}).get("context", "")
        kind = "javascript" if entry.get("type") == "javascript" else entry.get("level", "")
        text = entry.get("text") or ""
        self.console.append((context, kind, text))
        for listener in self.listeners:
            listener(context, kind, text)

    async def command(self, method: str, params: dict, timeout: float = COMMAND_TIMEOUT) -> dict:
        """
        Send one BiDi command; return its result, or raise L{BiDiError} with its error.
        """
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        try:
            answer = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise BiDiError(f"firefox did not answer {method} in {timeout:g}s") from None
        finally:
            self._pending.pop(ident, None)
        if answer.get("type") == "error":
            raise BiDiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        return answer.get("result", {})

    async def new_tab(self, url: str) -> "FirefoxTab":
        """
        A new tab, navigated to C{url} (returns once the page has loaded).
        """
        created = await self.command("browsingContext.create", {"type": "tab"})
        tab = FirefoxTab(self, created["context"])
        await self.command("browsingContext.navigate",
                           {"context": tab.context, "url": url, "wait": "complete"})
        return tab

    async def stop(self):
        """
        Close the browser (browser.close), then make sure the process is gone.
        """
        try:
            if self._socket is not None:
                try:
                    await self.command("browser.close", {}, timeout=5.0)
                except Exception:
                    pass
                await self._socket.close()
                if self._reader is not None:
                    await asyncio.wait_for(self._reader, 5.0)
        finally:
            await _wait(self.process.stop(grace=10.0))


class FirefoxTab:
    """
    One browsing context, answering as much of Playwright's Page as the SDK tests use.
    """

    def __init__(self, browser: Firefox, context: str):
        self.browser = browser
        self.context = context

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        """
        As Playwright's C{page.evaluate}: an expression's value, or a function's result when
        called with C{arg}; promises are awaited and the value comes back through JSON.
        """
        script = ("(async () => { let value = (" + expression + ");"
                  " if (typeof value === 'function') value = value(" + json.dumps(arg) + ");"
                  " value = await value;"
                  " return value === undefined ? 'null' : JSON.stringify(value); })()")
        result = await self.browser.command("script.evaluate", {
            "expression": script, "target": {"context": self.context}, "awaitPromise": True,
            "resultOwnership": "none"})
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BiDiError(f"{expression}: {details.get('text')}")
        return json.loads(result["result"]["value"])

    async def wait_for_function(self, expression: str, timeout: float = 15000,
                                interval: float = 0.1) -> Any:
        """
        As Playwright's C{page.wait_for_function} (C{timeout} in ms): poll until the expression
        (awaited when it is a promise) is truthy; raise L{BiDiError} on timeout.
        """
        try:
            return await wait_until_true(self, expression, timeout, interval)
        except TimeoutError as error:
            raise BiDiError(str(error)) from None

    async def close(self):
        await self.browser.command("browsingContext.close", {"context": self.context})


def _wait(d: defer.Deferred):
    """
    A Deferred as an asyncio future on the running loop.
    """
    return d.asFuture(asyncio.get_running_loop())
