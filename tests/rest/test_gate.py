"""
Tests for L{wcs_twisted.rest.gate}: the origin policy, CORS on every answer, and login
throttling in front of the REST methods (in memory, with StubTreq and a Clock).
"""

import base64
import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.gate import OriginPolicy
from wcs_twisted.rest.throttle import FailureThrottle
from wcs_twisted.rest.web import build_site

BASE = "http://gw.example.com:8081/rest-api"


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class OriginPolicyTests(SynchronousTestCase):
    """
    Which pages may call by default, with a list, and with *.
    """

    def test_default_same_origin_and_loopback(self):
        """
        The default allows the page's own origin and loopback pages, nothing else.
        """
        policy = OriginPolicy(())
        self.assertTrue(policy.allows("http://gw.example.com:8081", "gw.example.com:8081"))
        self.assertTrue(policy.allows("http://localhost:3000", "gw.example.com:8081"))
        self.assertTrue(policy.allows("http://127.0.0.1:9", "gw.example.com:8081"))
        self.assertTrue(policy.allows("http://[::1]:9", "gw.example.com:8081"))
        for origin in ("http://evil.test", "http://gw.example.com:8082", "null",
                       "http://gw.example.com:8081.evil.test", "http://x:bad", "file://",
                       "http://[::1", "http://a.test/path"):
            self.assertFalse(policy.allows(origin, "gw.example.com:8081"), origin)
        self.assertFalse(policy.allows("http://evil.test", None))

    def test_listed(self):
        """
        Listed origins are allowed, case-insensitively, with credentials.
        """
        policy = OriginPolicy(("https://app.example.com",))
        self.assertTrue(policy.allows("https://APP.example.com", "gw:8081"))
        self.assertFalse(policy.allows("http://app.example.com", "gw:8081"))
        self.assertIn((b"access-control-allow-credentials", b"true"),
                      policy.headers(b"https://app.example.com"))

    def test_any_without_credentials(self):
        """
        * allows every page but never with credentials (the Fetch standard forbids the pair).
        """
        policy = OriginPolicy(("*",))
        self.assertTrue(policy.allows("http://evil.test", "gw:8081"))
        headers = dict(policy.headers(b"http://evil.test"))
        self.assertEqual(headers[b"access-control-allow-origin"], b"*")
        self.assertNotIn(b"access-control-allow-credentials", headers)


class GateTests(SynchronousTestCase):
    """
    The gate in a site: refusals are JSON and carry CORS headers for allowed pages.
    """

    def setUp(self):
        self.clock = Clock()
        self.throttle = FailureThrottle(self.clock, max_failures=3, window=60)
        site = build_site(RestAPI(SessionTable("n")), ("admin", "s3cret"), (), ServerMetrics(),
                          [], self.throttle)
        self.http = StubTreq(site.resource)

    def request(self, method, path, headers, data=None):
        response = self.successResultOf(self.http.request(method, BASE + path, headers=headers,
                                                          data=data))
        content = self.successResultOf(self.http.content(response))
        return response, (json.loads(content) if content else None)

    def test_foreign_origin_refused_before_anything_runs(self):
        """
        A request from a page of another site is 403, even with the right password, and its
        answer names no origin (the page cannot read it).
        """
        response, body = self.request("POST", "/connection/terminate",
                                      {"Origin": "http://evil.test",
                                       "Authorization": basic("admin", "s3cret")},
                                      data=b'{"sessionId": "x"}')
        self.assertEqual(response.code, 403)
        self.assertIn("origin", body["error"])
        self.assertIsNone(response.headers.getRawHeaders("access-control-allow-origin"))

    def test_cors_on_every_answer(self):
        """
        401, 404, 400 and 204 (preflight) all carry the CORS headers for a same-origin page.
        """
        page = {"Origin": "http://gw.example.com:8081"}
        auth = {**page, "Authorization": basic("admin", "s3cret")}
        for method, path, headers, code in (
                ("GET", "/connection/find_all", page, 401),
                ("POST", "/no/such", auth, 404),
                ("POST", "/%00", auth, 400),
                ("OPTIONS", "/call/startup", page, 204)):
            response, _ = self.request(method, path, headers)
            self.assertEqual(response.code, code, path)
            self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                             ["http://gw.example.com:8081"], path)

    def test_guessing_is_throttled(self):
        """
        The third wrong password answers 401 and blocks the address: then even the right one
        is 429 with Retry-After (readable by the page), until the window has passed.
        """
        page = {"Origin": "http://localhost:3000"}
        for _ in range(3):
            response, _ = self.request("GET", "/connection/find_all",
                                       {**page, "Authorization": basic("admin", "guess")})
            self.assertEqual(response.code, 401)
        response, body = self.request("GET", "/connection/find_all",
                                      {**page, "Authorization": basic("admin", "s3cret")})
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["60"])
        self.assertEqual(body["retryAfter"], 60)
        self.assertIn("retry-after",
                      response.headers.getRawHeaders("access-control-expose-headers")[0])
        self.clock.advance(60)
        response, _ = self.request("GET", "/connection/find_all",
                                   {"Authorization": basic("admin", "s3cret")})
        self.assertEqual(response.code, 404)  # no connections: past the gate

    def test_no_login_is_not_a_guess(self):
        """
        Requests without an Authorization header (a browser before its prompt) never block.
        """
        for _ in range(10):
            response, _ = self.request("GET", "/connection/find_all", {})
            self.assertEqual(response.code, 401)
        self.assertEqual(len(self.throttle), 0)


class LoopbackHostsTests(SynchronousTestCase):
    """
    A loopback server with a published login answers only to loopback host names.
    """

    def test_rebound_name_refused(self):
        """
        A request for a name that is not loopback (a DNS-rebinding page, same-origin to
        itself) is 403; loopback names and a request without Host are served.
        """
        site = build_site(RestAPI(SessionTable("n")), ("admin", "admin"), (), ServerMetrics(),
                          [], None, loopback_hosts_only=True)
        http = StubTreq(site.resource)
        auth = basic("admin", "admin")
        for host, code in (("rebind.evil.test:8081", 403), ("[::1", 403), ("localhost:8081", 404),
                           ("127.0.0.1:8081", 404), ("[::1]:8081", 404)):
            headers = {"Host": host, "Origin": f"http://{host}", "Authorization": auth}
            response = self.successResultOf(http.get(
                "http://127.0.0.1:8081/rest-api/connection/find_all", headers=headers))
            self.assertEqual(response.code, code, host)
