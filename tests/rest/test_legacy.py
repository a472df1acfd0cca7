"""
Tests for L{wcs_twisted.rest.legacy}: the /RESTCall/ API of the official "SIP as RTMP" (v1)
page, over the in-memory SIP network (StubTreq, no sockets), with the answers that page reads.
"""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_call import PEER_ANSWER, CallTestMixin
from tests.rest.test_api import ADMIN
from tests.rest.test_calls import RecordingPushes
from wcs_twisted.errors import InvalidField
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.modules_builtin.rtmp import push_call
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.legacy import flatten_call
from wcs_twisted.rest.routes import RouteTable
from wcs_twisted.rest.web import build_site

LEGACY = "http://wcs.test:8081/RESTCall"
#: The page's origin: served by WCS's web server on another port than REST's, so allowed by
#: rest_cors_origins.
PAGE = {"Origin": "http://wcs.test:9091"}

#: What the v1 page posts to /call (sip-as-rtmp.js startCall): the account in "connection",
#: every value a string.
CALL = {"rtmpStream": "s1", "hasAudio": "true", "hasVideo": "false", "callId": "L1",
        "rtmpUrl": "rtmp://127.0.0.1:1935/live",
        "connection": {"sipLogin": "1001", "sipAuthenticationName": "1001", "sipPassword": "pw",
                       "sipPort": "5060", "sipDomain": "10.0.0.1",
                       "sipOutboundProxy": "10.0.0.1", "appKey": "defaultApp",
                       "sipRegisterRequired": "false"},
        "callee": "bob@10.0.0.2"}


class FlattenTests(SynchronousTestCase):
    """
    The legacy body becomes a /call/startup one.
    """

    def test_connection_fields_join_the_call(self):
        """
        The connection object's fields sit beside the call's; no connection is no fields.
        """
        fields = flatten_call(CALL)
        self.assertNotIn("connection", fields)
        self.assertEqual((fields["sipLogin"], fields["callee"], fields["rtmpStream"]),
                         ("1001", "bob@10.0.0.2", "s1"))
        self.assertEqual(flatten_call({"callee": "x"}), {"callee": "x"})

    def test_bad_connection_refused(self):
        """
        A connection that is not an object, or repeats a call field, is a 400 naming it.
        """
        with self.assertRaises(InvalidField) as raised:
            flatten_call({"connection": "1001"})
        self.assertEqual(raised.exception.field, "connection")
        with self.assertRaises(InvalidField) as raised:
            flatten_call({"callee": "a", "connection": {"callee": "b"}})
        self.assertEqual(raised.exception.field, "callee")


class LegacyCallTests(CallTestMixin, SynchronousTestCase):
    """
    /RESTCall/* as the v1 page uses it, with the rtmp module's /call/startup hook.
    """

    credentials = ("admin", "admin")

    def setUp(self):
        super().setUp()
        self.pushes = RecordingPushes()
        routes = RouteTable()
        routes.add_call_startup("rtmp", lambda call, body: push_call(self.pushes, call, body),
                                ("rtmpUrl", "rtmpStream"))
        site = build_site(RestAPI(self.sessions, self.calls, routes=routes), self.credentials,
                          (PAGE["Origin"],), ServerMetrics(), [])
        self.http = StubTreq(site.resource)

    def post(self, path, body, headers=None, method="POST", login=True):
        """
        POST as the page's jQuery does (JSON, from the page's origin); the answer and its text.
        """
        headers = {**PAGE, **(ADMIN if login else {}), "Content-Type": "application/json",
                   **(headers or {})}
        response = self.successResultOf(self.http.request(
            method, LEGACY + path, data=json.dumps(body).encode() if body is not None else None,
            headers=headers))
        content = self.successResultOf(self.http.content(response))
        self.network.run()
        return response, content.decode("utf-8")

    def test_call_status_dtmf_hangup(self):
        """
        /call answers the call's status as text and pushes the prefixed rtmpStream; getStatus
        follows the call; sendDTMF reaches the phone; getCalls is a JSON array; hangup ends the
        call and getStatus is then 404 (the page's FINISHED).
        """
        response, text = self.post("/call", CALL)
        self.assertEqual((response.code, text), (200, "TRYING"))
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/plain; charset=utf-8"])
        self.assertEqual(self.pushes.started,
                         [("call_L1", "rtmp://127.0.0.1:1935/live", "rtmp_s1", True)])
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.assertEqual(self.post("/getStatus", {"callId": "L1"})[1], "ESTABLISHED")
        response, text = self.post("/sendDTMF", {"callId": "L1", "dtmf": "5", "type": "INFO"})
        self.assertEqual((response.code, text), (200, ""))
        self.assertIn(("info", b"Signal=5\r\nDuration=160\r\n"), self.phone.observer.events)
        response, text = self.post("/getCalls", {})
        self.assertEqual([call["callId"] for call in json.loads(text)], ["L1"])
        response, text = self.post("/hangup", {"callId": "L1"})
        self.assertEqual((response.code, text), (200, ""))
        self.assertEqual(self.phone.observer.events[-1][0], "terminated")
        self.assertEqual(self.pushes.terminated, ["push-1"])
        response, text = self.post("/getStatus", {"callId": "L1"})
        self.assertEqual(response.code, 404)
        self.assertIn("L1", json.loads(text)["error"])
        self.assertEqual(json.loads(self.post("/getCalls", {})[1]), [])

    def test_errors_are_json_with_cors(self):
        """
        A used callId is 409, a missing callee 400 naming it, an unknown call or method 404:
        each a JSON error the page's origin may read.
        """
        self.assertEqual(self.post("/call", CALL)[0].code, 200)
        for path, body, code in (("/call", CALL, 409),
                                 ("/call", {**CALL, "callId": "L2", "callee": ""}, 400),
                                 ("/getStatus", {}, 400),
                                 ("/hangup", {"callId": "nope"}, 404),
                                 ("/sendDTMF", {"callId": "nope", "dtmf": "1"}, 404),
                                 ("/getStatus", {"callId": "L1", "x": 1}, 400),
                                 ("/noSuchMethod", {}, 404)):
            response, text = self.post(path, body)
            self.assertEqual(response.code, code, path)
            self.assertIn("error", json.loads(text), path)
            self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                             [PAGE["Origin"]], path)

    def test_preflight_and_401_carry_cors(self):
        """
        The page's preflight (it posts application/json) is 204 with the CORS headers and no
        login; a request without the login is 401 with them too, so the page can read it.
        """
        response, _ = self.post("/call", None, method="OPTIONS", login=False,
                                headers={"Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type"})
        self.assertEqual(response.code, 204)
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                         [PAGE["Origin"]])
        self.assertIn("POST", response.headers.getRawHeaders("access-control-allow-methods")[0])
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-headers"),
                         ["content-type"])
        response = self.successResultOf(self.http.post(
            LEGACY + "/getStatus", data=b'{"callId": "L1"}', headers=PAGE))
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers.getRawHeaders("access-control-allow-origin"),
                         [PAGE["Origin"]])
        self.assertEqual(self.calls.find({}), [])

    def test_foreign_origin_refused(self):
        """
        A page of another site may not start calls through the legacy path either (403).
        """
        response, _ = self.post("/call", CALL, headers={"Origin": "http://evil.test"})
        self.assertEqual(response.code, 403)
        self.assertEqual(self.calls.find({}), [])


class LegacyWithoutAuthTests(LegacyCallTests):
    """
    The same with disable_rest_auth (WCS's default, and how the page is used: it sends no
    login).
    """

    credentials = None

    def test_preflight_and_401_carry_cors(self):
        """
        Without auth there is no 401; the preflight is still answered.
        """
        response, _ = self.post("/call", None, method="OPTIONS", login=False)
        self.assertEqual(response.code, 204)
