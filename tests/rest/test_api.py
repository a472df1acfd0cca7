"""
Tests for L{wcs_twisted.rest.api}: routes, error mapping, auth and CORS, in memory with StubTreq.
"""

import base64
import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IClientConnection
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.web import build_site
from wcs_twisted.gateway.sessions import SessionTable

BASE = "http://wcs.test:8081/rest-api"
ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()}


@implementer(IClientConnection)
class ClosableConnection:
    """
    A signalling connection that records being closed.
    """

    peer = "127.0.0.1:50000"

    def __init__(self):
        self.closed = None

    def send_message(self, name, data):
        pass

    def close(self, code, reason):
        self.closed = (code, reason)


class RestTestMixin:
    """
    A site with one session, reached through StubTreq.
    """

    credentials = ("admin", "admin")
    cors_origins = ("http://pages.test",)

    def setUp(self):
        self.sessions = SessionTable("node@127.0.0.1", token_factory=lambda: "tok")
        self.connection = ClosableConnection()
        self.sessions.open(self.connection, "/127.0.0.1:50000/127.0.0.1:8080",
                           {"sipLogin": "alice", "sipPassword": "pw", "appKey": "defaultApp"})
        site = build_site(RestAPI(self.sessions), self.credentials, self.cors_origins,
                          ServerMetrics(), [])
        self.http = StubTreq(site.resource)

    def call(self, method, path, body=None, headers=ADMIN, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        response = self.successResultOf(self.http.request(
            method, BASE + path, data=data,
            headers={**headers, "Content-Type": "application/json"}))
        content = self.successResultOf(self.http.content(response))
        return response, (json.loads(content) if content else None)


class ConnectionMethodsTests(RestTestMixin, SynchronousTestCase):
    """
    /connection/find_all, /connection/find, /connection/terminate.
    """

    def test_find_all(self):
        """
        GET and POST both list sessions, without secrets.
        """
        for method in ("GET", "POST"):
            response, body = self.call(method, "/connection/find_all")
            self.assertEqual(response.code, 200)
            self.assertEqual(body[0]["sipLogin"], "alice")
            self.assertNotIn("sipPassword", body[0])

    def test_find_filters(self):
        """
        find matches every given field; no match is 404.
        """
        response, body = self.call("POST", "/connection/find", {"sipLogin": "alice"})
        self.assertEqual((response.code, len(body)), (200, 1))
        response, body = self.call("POST", "/connection/find", {"sipLogin": "bob"})
        self.assertEqual(response.code, 404)

    def test_terminate(self):
        """
        terminate closes the session's connection; an unknown id is 404.
        """
        response, _ = self.call("POST", "/connection/terminate",
                                {"sessionId": "/127.0.0.1:50000/127.0.0.1:8080"})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.connection.closed, (1000, "Terminated by REST"))
        response, body = self.call("POST", "/connection/terminate", {"sessionId": "/nope"})
        self.assertEqual(response.code, 404)
        self.assertIn("does not exist", body["error"])

    def test_bad_input(self):
        """
        Bad JSON, a non-object, an unknown field and a mistyped field are 400 naming the field.
        """
        response, body = self.call("POST", "/connection/find", raw=b"{bad")
        self.assertEqual((response.code, body["field"]), (400, "body"))
        response, body = self.call("POST", "/connection/find", [1])
        self.assertEqual(response.code, 400)
        response, body = self.call("POST", "/connection/find", {"bogus": 1})
        self.assertEqual((response.code, body["field"]), (400, "bogus"))
        response, body = self.call("POST", "/connection/terminate", {"sessionId": 5})
        self.assertEqual((response.code, body["field"]), (400, "sessionId"))

    def test_hostile_bodies(self):
        """
        Bodies that break a naive JSON decoder (deep nesting, a huge integer, bytes that are not
        UTF-8) are a JSON 400 naming the body, never a 500 page.
        """
        for raw in (b"[" * 1000, b"{\"a\":" * 5000, b"1" * 5000, b"\xff\xfe{}", b"\x00"):
            response, body = self.call("POST", "/connection/find", raw=raw)
            self.assertEqual((response.code, body["field"]), (400, "body"), raw[:10])

    def test_unexpected_error_is_json(self):
        """
        A bug in a method is a JSON 500 without its traceback; the traceback is logged.
        """
        self.sessions.get = lambda session_id: 1 / 0
        response, body = self.call("POST", "/connection/terminate", {"sessionId": "x"})
        self.assertEqual((response.code, body), (500, {"error": "Internal server error"}))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_unrouted_http_method_is_json(self):
        """
        An HTTP method no route takes (TRACE) is a JSON 405, not the router's HTML page.
        """
        response, body = self.call("TRACE", "/call/find")
        self.assertEqual(response.code, 405)
        self.assertIn("not allowed", body["error"])

    def test_path_not_text(self):
        """
        A path segment with NUL or bytes that are not UTF-8 is a JSON 400.
        """
        for path in ("/call/%00find", "/call/%ff"):
            response, body = self.call("POST", path, {})
            self.assertEqual(response.code, 400, path)
            self.assertIn("path", body["error"])

    def test_unknown_method(self):
        """
        An unknown REST path is a JSON 404.
        """
        response, body = self.call("POST", "/no/such/method", {})
        self.assertEqual(response.code, 404)
        self.assertEqual(body["error"], "No REST method /no/such/method")


class AuthTests(RestTestMixin, SynchronousTestCase):
    """
    Production mode: HTTP Basic auth on every REST method.
    """

    def test_no_credentials(self):
        """
        Without credentials: 401 with a Basic challenge and a JSON body.
        """
        response, body = self.call("GET", "/connection/find_all", headers={})
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"),
                         ['Basic realm="wcs", charset="UTF-8"'])
        self.assertEqual(body, {"error": "Authentication required"})

    def test_wrong_password_and_garbage(self):
        """
        A wrong password, another scheme or broken base64 are all 401.
        """
        for header in ("Basic " + base64.b64encode(b"admin:wrong").decode(),
                       "Bearer abc", "Basic !!!notbase64", "Basic " +
                       base64.b64encode(b"nocolon").decode()):
            response, _ = self.call("GET", "/connection/find_all",
                                    headers={"Authorization": header})
            self.assertEqual(response.code, 401, header)

    def test_unknown_path_needs_auth_too(self):
        """
        Even unknown methods do not reveal themselves without credentials.
        """
        response, _ = self.call("POST", "/call/whatever", {}, headers={})
        self.assertEqual(response.code, 401)

    def test_cors_preflight(self):
        """
        OPTIONS is answered without credentials, echoing the origin and allowing JSON POSTs.
        """
        response = self.successResultOf(self.http.request(
            "OPTIONS", BASE + "/call/startup",
            headers={"Origin": "http://pages.test", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"}))
        self.assertEqual(response.code, 204)
        headers = response.headers
        self.assertEqual(headers.getRawHeaders("access-control-allow-origin"),
                         ["http://pages.test"])
        self.assertIn("POST", headers.getRawHeaders("access-control-allow-methods")[0])
        self.assertEqual(headers.getRawHeaders("access-control-allow-headers"), ["content-type"])

    def test_cors_on_answers(self):
        """
        Real answers carry the CORS origin header too, so the page can read them.
        """
        response, _ = self.call("GET", "/connection/find_all",
                                headers={**ADMIN, "Origin": "http://pages.test"})
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                         ["http://pages.test"])


class AuthDisabledTests(RestTestMixin, SynchronousTestCase):
    """
    disable_rest_auth=true serves REST without credentials.
    """

    credentials = None

    def test_open(self):
        """
        No credentials needed.
        """
        response, body = self.call("GET", "/connection/find_all", headers={})
        self.assertEqual(response.code, 200)
