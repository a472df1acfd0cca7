"""
The official demo pages of the npm package C{@flashphoner/websdk} (C{examples/demo/}, served
unchanged from the package installed at test time) in headless Chromium against our server,
with baresip as the phone and a real nginx-rtmp as the RTMP server.

The pages are served by a static server of the test on another loopback port than our REST
API, as WCS serves them on its web port: every REST call is a cross-origin request with a
preflight (the pages post C{application/json}), allowed because loopback origins are.  The pages
send no login, as with WCS's default; the server runs with C{disable_rest_auth}.
"""

from __future__ import annotations

import os

from twisted.web.server import Site
from twisted.web.static import File

from tests.integration import audio
from tests.integration.peers import LOOPBACK, Baresip, free_port, poll, require_binary
from tests.integration.test_rtmp import NginxRtmp, decode_audio, ffprobe
from tests.web.browser import browser_test, wait_for
from tests.web.test_official_sdk import OfficialSDKTestCase

#: The phone's tone, found again in what nginx recorded.
TONE_HZ = 1000
#: Seconds of call media to let reach nginx before hanging up.
MEDIA_SECONDS = 3.0


class SIPAsRTMPDemoTests(OfficialSDKTestCase):
    """
    "SIP as RTMP" (v1, the legacy /RESTCall/ API) and "SIP as RTMP 3" (/rest-api/call/startup
    with rtmpUrl + rtmpStream): the page calls baresip, shows ESTABLISHED, and the call arrives
    at nginx-rtmp under the name the page prints as the URL to play.
    """

    timeout = 240

    def setUp(self):
        require_binary("baresip")
        require_binary("ffprobe", "ffmpeg")
        return super().setUp()

    async def async_set_up(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.nginx = NginxRtmp(os.path.join(self.base, "nginx"))
        low = free_port(span=100)
        self.settings = {"disable_rest_auth": True, "media_port_from": low,
                         "media_port_to": low + 99,
                         "module_values": {"record_dir": os.path.join(self.base, "records")}}
        await super().async_set_up()
        from twisted.internet import reactor

        package = os.path.abspath(os.path.join("websdk", "node_modules", "@flashphoner",
                                               "websdk"))
        site = Site(File(package))
        site.displayTracebacks = False
        self.demos = reactor.listenTCP(0, site, interface=LOOPBACK)
        self.addCleanup(self.demos.stopListening)
        self.demos_url = f"http://{LOOPBACK}:{self.demos.getHost().port}/examples/demo"
        await wait_for(self.nginx.start())
        self.addCleanup(self.nginx.stop)
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), TONE_HZ, 30)
        self.bob = Baresip(self.base, "bob", registrar=f"{LOOPBACK}:{self.sip_port}",
                           password="x", tone_wav=wav)
        self.addCleanup(self.bob.stop)
        await wait_for(self.bob.start())

    async def demo(self, page_path: str):
        """
        Open an official demo page; uncaught page errors fail the test.
        """
        page = await self.context.new_page()
        page.on("console", lambda message: self.console.append(
            f"[demo] {message.type}: {message.text}"))
        page.on("requestfailed", lambda request: self.console.append(
            f"[demo] request failed: {request.method} {request.url} {request.failure}"))
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        self.addCleanup(lambda: self.assertEqual(errors, [], "uncaught errors in the page"))
        response = await page.goto(f"{self.demos_url}/{page_path}")
        self.assertEqual(response.status, 200, page_path)
        return page

    async def wait_text(self, page, selector: str, text: str, timeout_ms: int = 30000):
        try:
            await page.wait_for_function(
                "([s, t]) => document.querySelector(s).textContent.trim() === t",
                arg=[selector, text], timeout=timeout_ms)
        except Exception:
            shown = await page.inner_text(selector)
            self.fail(f"{selector} never showed {text!r} (shows {shown!r})\n--- console ---\n"
                      + "\n".join(self.console[-30:]))

    async def call_through(self, page_path: str, rest_path: str, stream: str):
        """
        Fill the page's form as a user does, call bob, check the status, the printed URL and
        what nginx got, hang up.
        """
        page = await self.demo(page_path)
        fields = {"#restUrl": self.http_url + rest_path, "#sipLogin": "rest",
                  "#sipAuthenticationName": "rest", "#sipPassword": "x",
                  "#sipDomain": LOOPBACK, "#sipOutboundProxy": LOOPBACK, "#sipPort": "0",
                  "#appKey": "defaultApp", "#rtmpUrl": self.nginx.url, "#rtmpStream": stream,
                  "#callee": "bob"}
        for selector, value in fields.items():
            await page.fill(selector, value)
        await page.click("#hasAudio")  # the page's checkboxes send "true" once clicked
        await page.click("#callBtn")
        await self.wait_text(page, "#callStatus", "ESTABLISHED")
        printed = await page.inner_text("#player")
        self.assertEqual(printed, f"{self.nginx.url}/rtmp_{stream}")
        await self.wait_text(page, "#callBtn", "Hangup")
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        await wait_for(deferLater(reactor, MEDIA_SECONDS, lambda: None))
        await self.screenshot(page, page_path.rsplit("/", 1)[-1].replace(".html", ""))
        await page.click("#callBtn")
        await self.wait_text(page, "#callStatus", "FINISHED")
        await self.wait_text(page, "#callBtn", "Call")
        await wait_for(poll(lambda: self.nginx.finished_publishes() >= 1, 10.0, reactor,
                            message=lambda: "nginx never saw the publish end"))
        [flv] = self.nginx.recordings()
        # nginx names a recording <stream>-<time>.flv: the stream the page told the user to play.
        self.assertTrue(os.path.basename(flv).startswith(f"rtmp_{stream}-"), flv)
        info = await wait_for(ffprobe(flv))
        self.assertIn("aac", info["codecs"])
        decoded = os.path.join(self.base, "decoded.wav")
        await wait_for(decode_audio(flv, decoded))
        self.assertLess(abs(audio.dominant_frequency(decoded) - TONE_HZ), 15)
        self.assertEqual(len(self.server.signalling.calls), 0)

    @browser_test
    async def test_sip_as_rtmp_v1(self):
        """
        The v1 page over /RESTCall/call and /RESTCall/getStatus (cross-origin, preflighted).
        """
        await self.call_through("sip/sip-as-rtmp/sip-as-rtmp.html", "/RESTCall", "v1call")

    @browser_test
    async def test_sip_as_rtmp_3(self):
        """
        The SIP as RTMP 3 page over /rest-api/call/startup with rtmpUrl + rtmpStream.
        """
        await self.call_through("sip/sip-as-rtmp-3/sip-as-rtmp-3.html", "/rest-api", "v3call")
