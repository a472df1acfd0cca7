"""
The REST API and the web pages attacked as a stranger would (issue 11, items 5 and 6): a known
password, a page of another site, password guessing, hostile bodies and paths.

Each test runs a whole server built by L{build_service} on 127.0.0.1 and attacks it over real
HTTP, except the one about a listener other hosts can reach: it must not bind a public address,
so it builds the same server on a memory reactor and talks to the very site it would serve.
Settings come from properties text so that the attacks also run (and fail) against a server
without these defences.
"""

from __future__ import annotations

import base64
import json
import os

from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet import defer, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tests.integration.loopback_server import start_loopback_server
from wcs_twisted.config import settings_from_text
from wcs_twisted.tap import Options, build_service


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


ADMIN = basic("admin", "admin")


class LoopbackServerTests(TestCase):
    """
    A server with its defaults, bound to 127.0.0.1, attacked over HTTP.
    """

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_loopback_server(self)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        port = self.server.service.getServiceNamed("http").port.getHost().port
        self.origin = f"http://127.0.0.1:{port}"

    @defer.inlineCallbacks
    def send(self, method, path, headers=None, data=None):
        response = yield self.http.request(method, self.origin + path, data=data,
                                           headers={k.encode(): [v] for k, v in
                                                    (headers or {}).items()})
        content = yield response.content()
        return response, content

    @defer.inlineCallbacks
    def test_index_page_prints_no_credentials(self):
        """
        The page anyone may load names the settings, never a user or password.
        """
        response, content = yield self.send("GET", "/")
        self.assertEqual(response.code, 200)
        self.assertIn(b"/rest-api/", content)
        self.assertNotIn(b"admin", content)

    @defer.inlineCallbacks
    def test_page_of_another_site_is_refused(self):
        """
        A page on another site that makes the browser send a request with the user's login
        (cross-site request forgery) gets 403, and no CORS header lets it read anything; the
        server's own pages and loopback pages are served, their errors readable.
        """
        response, _ = yield self.send("POST", "/rest-api/connection/find_all",
                                      {"Origin": "http://evil.test", "Authorization": ADMIN})
        self.assertEqual(response.code, 403)
        self.assertIsNone(response.headers.getRawHeaders("access-control-allow-origin"))
        self.assertIsNone(response.headers.getRawHeaders("access-control-allow-credentials"))
        for origin in (self.origin, "http://localhost:5173"):
            response, content = yield self.send("POST", "/rest-api/connection/find_all",
                                                {"Origin": origin, "Authorization": ADMIN})
            self.assertEqual(response.code, 404, origin)  # no connections, readable:
            self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                             [origin])
            response, _ = yield self.send("GET", "/rest-api/connection/find_all",
                                          {"Origin": origin})
            self.assertEqual(response.code, 401)
            self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                             [origin])

    @defer.inlineCallbacks
    def test_dns_rebinding_refused(self):
        """
        A web site whose name the attacker re-points at 127.0.0.1 is same-origin to itself and
        knows the published admin/admin: its requests (Host: its own name) are refused.
        """
        port = self.origin.rsplit(":", 1)[1]
        rebound = f"rebind.evil.test:{port}"
        response, _ = yield self.send("POST", "/rest-api/connection/find_all",
                                      {"Host": rebound, "Origin": f"http://{rebound}",
                                       "Authorization": ADMIN})
        self.assertEqual(response.code, 403)
        response, _ = yield self.send("POST", "/rest-api/connection/find_all",
                                      {"Host": f"localhost:{port}", "Authorization": ADMIN})
        self.assertEqual(response.code, 404)  # no connections: past the gate

    @defer.inlineCallbacks
    def test_password_guessing_is_throttled(self):
        """
        Guessing as fast as the connection allows: after 10 wrong passwords every answer is 429
        with Retry-After, the right password included (so a lucky guess teaches nothing).
        """
        codes = []
        for number in range(30):
            response, _ = yield self.send(
                "GET", "/rest-api/connection/find_all",
                {"Authorization": basic("admin", f"guess{number}")})
            codes.append(response.code)
        self.assertEqual(codes, [401] * 10 + [429] * 20)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["60"])
        response, content = yield self.send("GET", "/rest-api/connection/find_all",
                                            {"Authorization": ADMIN})
        self.assertEqual(response.code, 429)
        self.assertEqual(json.loads(content)["retryAfter"], 60)

    @defer.inlineCallbacks
    def test_hostile_bodies_get_json_400(self):
        """
        Deep nesting, a 5000-digit number and bytes that are not UTF-8, posted to /call/find
        and /call/startup, are each a JSON 400 naming the body.
        """
        for path in ("/rest-api/call/find", "/rest-api/call/startup"):
            for body in (b"[" * 1000, b"1" * 5000, b'{"callId": "\xff"}'):
                response, content = yield self.send(
                    "POST", path, {"Authorization": ADMIN, "Content-Type": "application/json"},
                    body)
                self.assertEqual(response.code, 400, (path, body[:8]))
                self.assertEqual(response.headers.getRawHeaders("content-type"),
                                 ["application/json; charset=utf-8"])
                self.assertEqual(json.loads(content)["field"], "body")

    @defer.inlineCallbacks
    def test_hostile_paths(self):
        """
        A NUL or bytes that are not UTF-8 in a path are a 404 page or a JSON 400, never 500.
        """
        for path in ("/phone.html%00.txt", "/%00", "/health%00", "/%ff%fe", "/phone.html/%00"):
            response, _ = yield self.send("GET", path)
            self.assertEqual(response.code, 404, path)
        for path in ("/rest-api/call/%00find", "/rest-api/%ff"):
            response, content = yield self.send("POST", path, {"Authorization": ADMIN})
            self.assertEqual(response.code, 400, path)
            self.assertIn("path", json.loads(content)["error"])
        self.assertEqual(self.flushLoggedErrors(), [])


class PublicListenerTests(SynchronousTestCase):
    """
    A server whose HTTP listener other hosts can reach never answers to a published password.
    """

    def setUp(self):
        self.state = os.path.abspath(self.mktemp())

    def site_for(self, text):
        """
        The site the server's HTTP listener would serve on 0.0.0.0 (bound on a memory reactor).
        """
        settings = settings_from_text(
            f"ip_local=0.0.0.0\nhttp.port=18081\nstate_dir={self.state}\n" + text).settings
        memory = MemoryReactorClock()
        server = build_service(settings, memory)
        server.service.getServiceNamed("http").startService()
        port, site, _, interface = memory.tcpServers[-1]
        self.assertEqual((port, interface), (18081, "0.0.0.0"))
        return StubTreq(site.resource)

    def code(self, http, authorization):
        response = self.successResultOf(http.get(
            "http://192.0.2.1:18081/rest-api/connection/find_all",
            headers={b"Authorization": [authorization]}))
        return response.code

    def test_default_install_refuses_admin(self):
        """
        With no rest_password, admin/admin is refused; the generated password, read from the
        file the log names, is accepted.
        """
        http = self.site_for("")
        self.assertEqual(self.code(http, ADMIN), 401)
        with open(os.path.join(self.state, "rest-password")) as handle:
            password = handle.read().strip()
        self.assertEqual(self.code(http, basic("admin", password)), 404)  # past auth

    def test_explicit_admin_refuses_to_start(self):
        """
        rest_password=admin with ip_local=0.0.0.0 stops `twistd wcs` with one line.
        """
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write("ip_local=0.0.0.0\nrest_password=admin\n")
        error = self.assertRaises(SystemExit, Options().parseOptions, ["--config", path])
        self.assertIn("rest_password=admin", str(error))
        self.assertNotIn("\n", str(error))
