"""
The JS client (wcs_twisted/web/wcs.js) in headless Chromium: what it puts on the wire and how it
reacts to the server, checked from both ends.
"""

from __future__ import annotations

import asyncio
import json

from tests.web.browser import BrowserTestCase, browser_test

#: Loads wcs.js into the page as window.wcs, and records what a session sends.
LOAD = """async () => {
  window.wcs = await import('/wcs.js');
  window.sent = [];
  window.connectAs = (url, sipOptions, extra) => new Promise((resolve) => {
    const s = wcs.createSession(Object.assign({ urlServer: url, sipOptions }, extra || {}));
    s.on('SENT', (name, payload) => sent.push([name, payload]));
    s.on('ESTABLISHED', () => resolve(s.status()));
    s.on('FAILED', (x, info) => resolve('FAILED ' + info));
    window.session = s;
  });
}"""


class ClientTests(BrowserTestCase):
    """
    wcs.js against the real server.
    """

    settings = {"keep_alive_interval_ms": 100, "keep_alive_probes": 3}

    async def client_page(self):
        page = await self.open_page("index.html")
        await page.evaluate(LOAD)
        return page

    @browser_test
    async def test_connection_object_matches_the_sdk(self):
        """
        The connection message carries the WebSDK 2.0 fields: appKey, mediaProviders, client
        version, and the SIP fields with sipPort as a string and sipRegisterRequired a boolean.
        """
        page = await self.client_page()
        status = await page.evaluate(
            "url => connectAs(url, {login: 'alice', authenticationName: 'a1', password: 'pw',"
            " domain: '127.0.0.1', outboundProxy: '127.0.0.1', port: 5060,"
            " registerRequired: false})", self.ws_url)
        self.assertEqual(status, "ESTABLISHED")
        [session] = list(self.server.sessions)
        fields = session.fields
        self.assertEqual(
            {key: fields[key] for key in ("appKey", "mediaProviders", "clientVersion", "sipLogin",
                                          "sipAuthenticationName", "sipPassword", "sipDomain",
                                          "sipOutboundProxy", "sipPort", "sipRegisterRequired")},
            {"appKey": "defaultApp", "mediaProviders": ["WebRTC"], "clientVersion": "2.0",
             "sipLogin": "alice", "sipAuthenticationName": "a1", "sipPassword": "pw",
             "sipDomain": "127.0.0.1", "sipOutboundProxy": "127.0.0.1", "sipPort": "5060",
             "sipRegisterRequired": False})
        user_data = await page.evaluate("session.getUserData()")
        self.assertEqual(user_data["sipLogin"], "alice")
        self.assertTrue(user_data["authToken"])

    @browser_test
    async def test_pings_are_answered_with_pong_null(self):
        """
        Every server ping gets {"message":"pong","data":[null]}, so the server (3 probes at
        100 ms here) keeps the session open.
        """
        page = await self.client_page()
        self.assertEqual(await page.evaluate("url => connectAs(url)", self.ws_url), "ESTABLISHED")
        await asyncio.sleep(1.0)
        self.assertEqual(await page.evaluate("session.status()"), "ESTABLISHED")
        pongs = await page.evaluate("sent.filter(([name]) => name === 'pong').map(([, p]) => p)")
        self.assertGreaterEqual(len(pongs), 5)
        self.assertEqual(set(map(json.dumps, pongs)), {"null"})
        self.assertEqual(len(self.server.sessions), 1)

    @browser_test
    async def test_offer_goes_out_before_ice_gathering(self):
        """
        The call's SDP offer is sent as createOffer returns it: no a=candidate lines, so the
        server has to learn the browser's address from its STUN checks.
        """
        page = await self.client_page()
        await page.evaluate("url => connectAs(url, {login: 'alice', domain: '127.0.0.1'})",
                            self.ws_url)
        await page.evaluate("""() => new Promise((resolve) => {
            const call = session.createCall({ callee: 'nobody' });
            session.on('SENT', (name) => { if (name === 'call') resolve(); });
            call.call();
        })""")
        call = await page.evaluate("sent.find(([name]) => name === 'call')[1]")
        self.assertEqual((call["callee"], call["caller"], call["status"], call["hasAudio"]),
                         ("nobody", "alice", "PENDING", True))
        self.assertIn("m=audio", call["sdp"])
        self.assertNotIn("a=candidate", call["sdp"])
        self.assertNotIn("a=end-of-candidates", call["sdp"])

    @browser_test
    async def test_calls_and_streams_need_an_established_session(self):
        """
        createCall and createStream throw while the session is still PENDING.
        """
        page = await self.client_page()
        errors = await page.evaluate("""url => {
            const s = new wcs.Session({ urlServer: url });
            const out = [];
            for (const f of [() => s.createCall({ callee: 'x' }), () => s.createStream({ name: 'x' })]) {
              try { f(); out.push('no error'); } catch (e) { out.push(e.message); }
            }
            return out;
        }""", self.ws_url)
        self.assertEqual(errors, ["Cannot create a call: the session is PENDING",
                                  "Cannot create a stream: the session is PENDING"])

    @browser_test
    async def test_strip_codecs(self):
        """
        stripCodecs removes a codec's payload type from the m= line and its rtpmap/fmtp lines.
        """
        page = await self.client_page()
        sdp = "\r\n".join([
            "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111 104 0", "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10", "a=rtpmap:104 SILK/16000", "a=fmtp:104 x=1",
            "a=rtpmap:0 PCMU/8000", ""])
        stripped = await page.evaluate("sdp => wcs.stripCodecs(sdp, ['silk'])", sdp)
        self.assertEqual(stripped.split("\r\n"), [
            "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10", "a=rtpmap:0 PCMU/8000", ""])

    @browser_test
    async def test_bad_url_fails_the_session(self):
        """
        A URL the browser cannot use fails the session with a message naming it.
        """
        page = await self.client_page()
        status = await page.evaluate("() => connectAs('not a url')")
        self.assertTrue(status.startswith("FAILED Bad server URL not a url"), status)
