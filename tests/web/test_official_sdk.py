"""
The official Flashphoner Web SDK (npm C{@flashphoner/websdk}, unmodified) in headless Chromium
against our server: a Phone flow between two tabs and a Player flow.

The SDK is installed with npm into a temporary directory when the tests run (never committed
or vendored) and its C{flashphoner.js} bundle is served, next to a small page of our own, by a
static HTTP server inside the test.  Skips when npm is missing or the registry cannot be
reached.  The version is pinned to the one the protocol spec was checked against.
"""

from __future__ import annotations

import os
import shutil

from twisted.internet import utils
from twisted.trial.unittest import SkipTest
from twisted.web.server import Site
from twisted.web.static import File

from tests.integration.peers import LOOPBACK, require_binary
from tests.web.browser import (
    PACKETS_FLOWING, BrowserTestCase, browser_test, wait_for, wait_until_true,
)

SDK_PACKAGE = "@flashphoner/websdk@2.0.276"
NPM_TIMEOUT = 180

#: Our page around the SDK: one session per tab, every status and warning recorded.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>WebSDK harness</title>
<script src="flashphoner.js"></script></head>
<body>
<div id="localDisplay"></div><div id="remoteDisplay"></div><div id="streamDisplay"></div>
<script>
Flashphoner.init({});
const C = Flashphoner.constants;
window.warnings = [];
window.sessionStatuses = [];
window.callStatuses = [];
window.streamStatuses = [];
window.call = null;

function track(call) {
  window.call = call;
  for (const status of Object.values(C.CALL_STATUS)) {
    call.on(status, () => callStatuses.push(status));
  }
}

function displays() {
  return { localVideoDisplay: document.getElementById("localDisplay"),
           remoteVideoDisplay: document.getElementById("remoteDisplay") };
}

// As the Phone demo connects: every SIP field a string, keepAlive on; options replace fields.
window.connect = (url, login, options) => new Promise((resolve) => {
  const session = Flashphoner.createSession({
    urlServer: url, keepAlive: true,
    sipOptions: Object.assign({ login, authenticationName: login, password: "unused",
                                domain: "127.0.0.1", outboundProxy: "127.0.0.1", port: "0",
                                registerRequired: false }, options),
  });
  window.session = session;
  for (const status of [C.SESSION_STATUS.ESTABLISHED, C.SESSION_STATUS.FAILED,
                        C.SESSION_STATUS.DISCONNECTED, C.SESSION_STATUS.REGISTERED]) {
    session.on(status, () => { sessionStatuses.push(status); resolve(status); });
  }
  session.on(C.SESSION_STATUS.WARN, (obj) => warnings.push(obj));
  session.on(C.SESSION_STATUS.INCOMING_CALL, track);
});

window.makeCall = (callee) => {
  const call = session.createCall(Object.assign({
    callee, constraints: { audio: true, video: false }, receiveVideo: false, stripCodecs: "SILK",
  }, displays()));
  track(call);
  call.call();
};

window.answer = () => call.answer(Object.assign({
  constraints: { audio: true, video: false }, receiveVideo: false, stripCodecs: "SILK",
}, displays()));

window.inboundAudioPackets = () => new Promise((resolve) => {
  call.getStats((stats) => {
    const audio = (stats["inbound-rtp"] || []).find((r) => r.kind === "audio");
    resolve(audio ? audio.packetsReceived : 0);
  }, true);
});

window.play = (name) => {
  const stream = session.createStream({ name, display: document.getElementById("streamDisplay") });
  window.stream = stream;
  for (const status of Object.values(C.STREAM_STATUS)) {
    stream.on(status, () => streamStatuses.push([status, stream.getInfo()]));
  }
  stream.play();
};
</script></body></html>
"""


class OfficialSDKTestCase(BrowserTestCase):
    """
    Installs and serves the SDK; tabs with our harness page around it.
    """

    timeout = 180

    def setUp(self):
        require_binary("npm")
        return super().setUp()

    async def async_set_up(self):
        await super().async_set_up()
        await self._install_sdk()
        from twisted.internet import reactor

        site = Site(File(self._sdk_dir))
        site.displayTracebacks = False
        self.static = reactor.listenTCP(0, site, interface=LOOPBACK)
        self.addCleanup(self.static.stopListening)
        self.sdk_url = f"http://{LOOPBACK}:{self.static.getHost().port}/index.html"

    async def _install_sdk(self):
        """
        npm install the SDK once per test run (into trial's temporary directory) and copy the
        bundle next to our page.
        """
        base = os.path.abspath("websdk")
        bundle = os.path.join(base, "node_modules", "@flashphoner", "websdk", "flashphoner.js")
        if not os.path.exists(bundle):
            os.makedirs(base, exist_ok=True)
            npm = shutil.which("npm")
            out, err, code = await wait_for(utils.getProcessOutputAndValue(
                npm, ["install", "--prefix", base, "--no-audit", "--no-fund", "--ignore-scripts",
                      "--no-save", "--loglevel=error", SDK_PACKAGE],
                env=dict(os.environ), path=base).addTimeout(NPM_TIMEOUT, _reactor()))
            if code != 0 or not os.path.exists(bundle):
                raise SkipTest(f"npm could not install {SDK_PACKAGE} (exit {code}): "
                               f"{err.decode(errors='replace')[-500:]}")
        site_dir = os.path.join(base, "site")
        os.makedirs(site_dir, exist_ok=True)
        shutil.copy(bundle, os.path.join(site_dir, "flashphoner.js"))
        with open(os.path.join(site_dir, "index.html"), "w") as page:
            page.write(PAGE)
        self._sdk_dir = site_dir

    async def sdk_tab(self, label: str):
        page = await self.context.new_page()
        page.on("console", lambda message: self.console.append(
            f"[{label}] {message.type}: {message.text}"))
        errors = []
        page.on("pageerror", lambda error: errors.append(f"[{label}] {error}"))
        page.on("response", lambda response: self.console.append(
            f"[{label}] http {response.status} {response.url}") if response.status >= 400 else None)
        self.addCleanup(lambda: self.assertEqual(errors, [], "uncaught errors in the SDK page"))
        await page.goto(self.sdk_url)
        return page

    async def wait_js(self, page, expression: str, what: str, timeout_ms: int = 20000):
        try:
            await wait_until_true(page, expression, timeout_ms)
        except Exception:
            state = await page.evaluate(
                "() => JSON.stringify({session: sessionStatuses, call: callStatuses,"
                " stream: streamStatuses, warnings})")
            self.fail(f"{what}: never true: {expression}\nstate: {state}\n--- console ---\n"
                      + "\n".join(self.console[-40:]))

    async def inbound_packets(self, page) -> int:
        return await page.evaluate("inboundAudioPackets()")



class OfficialSDKTests(OfficialSDKTestCase):
    """
    Flows of the unmodified WebSDK 2.0.276 against our server.
    """

    @browser_test
    async def test_phone_flow(self):
        """
        Two SDK tabs as the Phone demo uses them: connect with SIP fields, call, answer (both
        ESTABLISHED, audio received), hold and unhold, DTMF, hangup (FINISH on both), and no
        warning from the server at any step.
        """
        alice = await self.sdk_tab("alice")
        bob = await self.sdk_tab("bob")
        self.assertEqual(await alice.evaluate("url => connect(url, 'alice')", self.ws_url),
                         "ESTABLISHED")
        self.assertEqual(await bob.evaluate("url => connect(url, 'bob')", self.ws_url),
                         "ESTABLISHED")

        await alice.evaluate("makeCall('bob')")
        await self.wait_js(bob, "callStatuses.includes('RING')", "bob's incoming call rings")
        self.assertEqual(await bob.evaluate("[call.caller(), call.callee()]"), ["alice", "bob"])
        await bob.evaluate("answer()")
        await self.wait_js(alice, "callStatuses.includes('ESTABLISHED')", "alice ESTABLISHED")
        await self.wait_js(bob, "callStatuses.includes('ESTABLISHED')", "bob ESTABLISHED")
        for page, label in ((alice, "alice"), (bob, "bob")):
            await self.wait_js(page, f"inboundAudioPackets().then(n => n > {PACKETS_FLOWING})",
                               f"{label} receives audio")

        await alice.evaluate("call.hold()")
        await self.wait_js(alice, "callStatuses.includes('HOLD')", "alice HOLD")
        await alice.evaluate("call.unhold()")
        await self.wait_js(alice, "callStatuses.filter(s => s === 'ESTABLISHED').length === 2",
                           "alice ESTABLISHED after unhold")
        await alice.evaluate("call.sendDTMF('5', 'RFC2833')")
        await alice.evaluate("call.sendDTMF('#', 'INFO')")
        # A round trip after the DTMF: the server would have answered a bad one with fail.
        before = await self.inbound_packets(bob)
        await self.wait_js(bob, f"inboundAudioPackets().then(n => n > {before})",
                           "bob still receives audio after unhold")

        await alice.evaluate("call.hangup()")
        await self.wait_js(alice, "callStatuses.includes('FINISH')", "alice FINISH")
        await self.wait_js(bob, "callStatuses.includes('FINISH')", "bob FINISH")
        for page, label in ((alice, "alice"), (bob, "bob")):
            self.assertEqual(await page.evaluate("warnings"), [], f"{label} got server warnings")
            self.assertEqual(await page.evaluate("sessionStatuses"), ["ESTABLISHED"])
        self.assertEqual(len(self.server.signalling.calls), 0)

    @browser_test
    async def test_decline_releases_both_calls(self):
        """
        bob's SDK hangs up while ringing (the SDK sends hangup in RING): bob's call ends with
        FINISH and alice's SDK releases its call (BUSY, FAILED or FINISH).
        """
        alice = await self.sdk_tab("alice")
        bob = await self.sdk_tab("bob")
        await alice.evaluate("url => connect(url, 'alice')", self.ws_url)
        await bob.evaluate("url => connect(url, 'bob')", self.ws_url)
        await alice.evaluate("makeCall('bob')")
        await self.wait_js(bob, "callStatuses.includes('RING')", "bob's incoming call rings")
        await bob.evaluate("call.hangup()")
        await self.wait_js(bob, "callStatuses.includes('FINISH')", "bob FINISH")
        await self.wait_js(alice, "['BUSY', 'FAILED', 'FINISH'].some(s => callStatuses.includes(s))",
                           "alice's call released")
        self.assertEqual(len(self.server.signalling.calls), 0)

    @browser_test
    async def test_connect_with_token(self):
        """
        The Phone demo's "Connect with token": a keepAlive session's authToken, presented on a
        new connection without SIP fields, gets the original session back (same authToken,
        sessionId and sipLogin).
        """
        page = await self.sdk_tab("token")
        first, second = await page.evaluate("""url => new Promise((resolve, reject) => {
          const S = Flashphoner.constants.SESSION_STATUS;
          const s = Flashphoner.createSession({urlServer: url, keepAlive: true,
            sipOptions: {login: 'dave', authenticationName: 'dave', password: 'x',
                         domain: '127.0.0.1', outboundProxy: '127.0.0.1', port: '0',
                         registerRequired: false}});
          s.on(S.ESTABLISHED, (session, first) => {
            s.on(S.DISCONNECTED, () => {
              const t = Flashphoner.createSession({urlServer: url, keepAlive: true,
                                                   authToken: first.authToken});
              t.on(S.ESTABLISHED, (again, second) => resolve([first, second]));
              t.on(S.FAILED, () => reject(new Error('reconnect FAILED')));
              t.on(S.DISCONNECTED, () => reject(new Error('reconnect DISCONNECTED')));
            });
            s.disconnect();
          });
        })""", self.ws_url)
        for key in ("authToken", "sessionId", "sipLogin"):
            self.assertEqual(second[key], first[key], key)
        self.assertEqual(second["sipLogin"], "dave")

    @browser_test
    async def test_player_flow_unknown_stream(self):
        """
        The Player demo's flow for a name nobody publishes: the SDK's stream ends FAILED with
        the server's reason (only notifyStreamStatusEvent can tell it; a fail message only
        makes a session WARN and leaves the stream PENDING for ever).
        """
        page = await self.sdk_tab("player")
        self.assertEqual(await page.evaluate(
            "url => new Promise((resolve) => {"
            " const s = Flashphoner.createSession({urlServer: url});"
            " window.session = s;"
            " s.on('ESTABLISHED', () => resolve('ESTABLISHED'));"
            " s.on('FAILED', () => resolve('FAILED'));"
            " s.on('WARN', (o) => warnings.push(o)); })", self.ws_url), "ESTABLISHED")
        await page.evaluate("play('no_such_stream')")
        await self.wait_js(page, "streamStatuses.some(([s]) => s === 'FAILED')",
                           "the stream fails")
        [(status, info)] = [entry for entry in await page.evaluate("streamStatuses")
                            if entry[0] == "FAILED"]
        self.assertTrue(info, "FAILED without an info text")


def _reactor():
    from twisted.internet import reactor

    return reactor



class OfficialSDKRegistrationTests(OfficialSDKTestCase):
    """
    The SDK with SIP registration at the built-in registrar.
    """

    settings = {"sip_users": {"carol": "secret"}}

    @browser_test
    async def test_registration(self):
        """
        registerRequired with the right password: CONNECTED, ESTABLISHED, then REGISTERED;
        a wrong password: a WARN naming RegistrationStatusEvent, then DISCONNECTED.
        """
        page = await self.sdk_tab("carol")
        script = """([url, password, port]) => new Promise((resolve) => {
          const S = Flashphoner.constants.SESSION_STATUS; const seen = [];
          const s = Flashphoner.createSession({urlServer: url, sipOptions: {login: 'carol',
            authenticationName: 'carol', password, domain: '127.0.0.1',
            outboundProxy: '127.0.0.1', port, registerRequired: true}});
          for (const status of Object.values(S)) {
            s.on(status, (x, obj) => {
              seen.push(status === S.WARN ? [status, x.apiMethod, x.status] : status);
              if (status === S.REGISTERED || status === S.DISCONNECTED || status === S.FAILED) {
                resolve(seen);
              }
            });
          }
        })"""
        port = str(self.sip_port)
        self.assertEqual(await page.evaluate(script, [self.ws_url, "secret", port]),
                         ["CONNECTED", "ESTABLISHED", "REGISTERED"])
        self.assertEqual(await page.evaluate(script, [self.ws_url, "wrong", port]),
                         ["CONNECTED", "ESTABLISHED",
                          ["WARN", "RegistrationStatusEvent", "AUTHENTICATION_FAIL"],
                          "DISCONNECTED"])
