"""
The official WCS streaming demo pages (npm C{@flashphoner/websdk} 2.0.276,
C{examples/demo/streaming/stream_recording} and C{two_way_streaming}), served unchanged by our
own HTTP port under C{/client2/} as WCS serves them, driven in headless Chromium.

The Stream Recording page downloads the record from C{<page origin>/client/records/<name>}, so
the pages must come from the server's own origin; the package is installed at test time
(L{tests.web.test_official_sdk}) and never committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from urllib.request import Request, urlopen

from twisted.trial.unittest import SkipTest
from twisted.web.static import File

from tests.integration.peers import require_binary
from tests.web.browser import browser_test, wait_for
from tests.web.test_official_sdk import OfficialSDKTestCase
from wcs_twisted.modules import SiteMounts

DEMO = "client2/examples/demo/streaming"


class StreamingDemoTestCase(OfficialSDKTestCase):
    """
    The SDK package's examples mounted at /client2/ on the server under test.
    """

    async def async_set_up(self):
        await super().async_set_up()
        package = os.path.abspath(os.path.join("websdk", "node_modules", "@flashphoner",
                                               "websdk"))
        self.site = self.server.service.getServiceNamed("http").port.factory
        tree = self.site.resource
        if isinstance(tree, SiteMounts):
            tree = tree.root
        tree.putChild(b"client2", File(package))

    async def demo(self, page_path: str, label: str):
        """
        Open a demo page from the server's origin; uncaught page errors fail the test.
        """
        page = await self.context.new_page()
        page.on("console", lambda message: self.console.append(
            f"[{label}] {message.type}: {message.text}"))
        errors = []
        page.on("pageerror", lambda error: errors.append(f"[{label}] {error}"))
        self.addCleanup(lambda: self.assertEqual(errors, [], "uncaught errors in the demo"))
        response = await page.goto(f"{self.http_url}/{DEMO}/{page_path}")
        self.assertEqual(response.status, 200)
        return page

    async def wait_text(self, page, selector: str, text: str, timeout_ms: int = 20000):
        """
        Wait until the element shows C{text}; on timeout say what it shows.
        """
        try:
            await page.wait_for_function(
                "([s, t]) => (document.querySelector(s) || {}).innerText === t",
                arg=[selector, text], timeout=timeout_ms)
        except Exception:
            shown = await page.evaluate("s => (document.querySelector(s) || {}).innerText", selector)
            self.fail(f"{selector} never showed {text!r} (shows {shown!r})\n--- console ---\n"
                      + "\n".join(self.console[-30:]))

    def recorder(self):
        service = self.server.module_services.get("recorder")
        if service is None:
            raise SkipTest("the recording module is not running")
        return service


class StreamRecordingPageTests(StreamingDemoTestCase):
    """
    The Stream Recording page: publish with record:true, stop, and the record it links to.
    """

    timeout = 240

    async def record(self, name: str):
        """
        Publish C{name} from the page for a few seconds of media and stop; return the page, the
        link the page shows and the recording's completed path.
        """
        require_binary("ffprobe")
        service = self.recorder()
        page = await self.demo("stream_recording/recording.html", "recording")
        await page.fill("#url", f"{self.ws_url}/{name}")
        await page.click("#publishBtn")
        await self.wait_text(page, "#status", "PUBLISHING")
        recording = service.get(name)
        self.assertIsNotNone(recording, "publishStream{record:true} started no recording")
        self.assertEqual([r["streamName"] for r in service.find_all()], [name])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        # Media time, not wall time: wait until the file holds a few seconds of video.
        while recording._last_video_pts < 3 * 90000:
            self.assertLess(loop.time(), deadline, "no video recorded")
            await asyncio.sleep(0.2)
        await page.click("#publishBtn")
        await self.wait_text(page, "#status", "UNPUBLISHED")
        path = await wait_for(recording.closed)
        link = await page.get_attribute("#link", "href")
        return page, link, path

    @browser_test
    async def test_publish_record_unpublished_record_name(self):
        """
        The page's publishStream{record:true} is recorded (VP8 and Opus, as Chrome sends
        them, in WebM), the recorder lists it while publishing, UNPUBLISHED names the file
        (the page's download link is <origin>/client/records/<recordName>), and the file
        decodes from end to end.
        """
        page, link, path = await self.record("rec1")
        name = os.path.basename(path)
        self.assertTrue(name.startswith("rec1-") and name.endswith(".webm"), name)
        self.assertEqual(link, f"{self.http_url}/client/records/{name}")
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration",
             "-of", "json", path], capture_output=True, check=True, text=True).stdout)
        codecs = sorted(stream["codec_name"] for stream in probe["streams"])
        self.assertEqual(codecs, ["opus", "vp8"])
        self.assertGreater(float(probe["format"]["duration"]), 2.5)
        # Every frame decodes. A browser's frame rate varies, so the frames keep their own
        # times in their own time base (passthrough, -enc_time_base -1): a guessed constant
        # rate would complain about two frames in one tick, which says nothing about the file.
        decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-fps_mode", "passthrough",
                                  "-enc_time_base", "-1", "-f", "null", "-"],
                                 capture_output=True, text=True)
        self.assertEqual((decoded.returncode, decoded.stderr), (0, ""))

    @browser_test
    async def test_download_link_serves_ranges(self):
        """
        The page's link serves the file with byte ranges (206 and Content-Range), so the
        page's <video> element loads it and knows its duration.
        """
        if not isinstance(self.site.resource, SiteMounts):
            raise SkipTest("the composition root does not mount module folders on the site "
                           "(SiteMounts) yet")
        page, link, path = await self.record("rec2")
        size = os.path.getsize(path)

        def fetch():
            with urlopen(Request(link, headers={"Range": "bytes=100-199"})) as answer:
                return answer.status, answer.headers.get("Content-Range"), answer.read()

        status, content_range, body = await asyncio.get_running_loop().run_in_executor(
            None, fetch)
        self.assertEqual((status, content_range), (206, f"bytes 100-199/{size}"))
        with open(path, "rb") as record:
            record.seek(100)
            self.assertEqual(body, record.read(100))
        await page.evaluate("() => document.getElementById('recVideo').load()")
        await page.wait_for_function(
            "() => { const v = document.getElementById('recVideo');"
            " return v.readyState >= 1 && v.duration > 2; }", timeout=20000)


class TwoWayStreamingPageTests(StreamingDemoTestCase):
    """
    The Two Way Streaming page in two tabs: a publisher and a player.
    """

    timeout = 180

    async def connected(self, label: str):
        page = await self.demo("two_way_streaming/two_way_streaming.html", label)
        await page.fill("#urlServer", self.ws_url)
        await page.click("#connectBtn")
        await self.wait_text(page, "#connectStatus", "ESTABLISHED")
        return page

    @browser_test
    async def test_available_and_send_payload(self):
        """
        Available answers UNAVAILABLE ("Stream not found") before the publish and AVAILABLE
        after it; the publisher's "Send payload as object" reaches the player's received data
        (sendStreamEvent relayed as notifyStreamEvent); no fail message on either side.
        """
        publisher = await self.connected("publisher")
        player = await self.connected("player")
        for page in (publisher, player):
            await page.fill("#publishStream" if page is publisher else "#playStream", "two1")

        await player.click("#availableBtn")
        await self.wait_text(player, "#availableStatus", "UNAVAILABLE")
        self.assertEqual(await player.inner_text("#availableInfo"), "Stream not found")

        await publisher.click("#publishBtn")
        await self.wait_text(publisher, "#publishStatus", "PUBLISHING")
        await player.click("#availableBtn")
        await self.wait_text(player, "#availableStatus", "AVAILABLE")

        await player.click("#playBtn")
        await self.wait_text(player, "#playStatus", "PLAYING")
        await publisher.fill("#streamData", '{"count": 42, "text": "hi"}')
        await publisher.click("#sendDataBtn")
        await player.wait_for_function(
            "() => document.getElementById('receivedData').innerText"
            ".includes('{\"count\":42,\"text\":\"hi\"}')", timeout=10000)
        self.assertFalse([line for line in self.console if "Unknown message" in line
                          or "fail" in line.lower() and "apiMethod" in line], self.console)
