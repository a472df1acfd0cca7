"""
Tests for the /call/* REST methods over an in-memory SIP network (StubTreq, no sockets).
"""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from tests.rest.test_api import ADMIN, BASE
from tests.gateway.test_call import PEER_ANSWER, CallTestMixin
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.modules_builtin.rtmp import push_call
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.routes import RouteTable
from wcs_twisted.rest.openapi import METHODS
from wcs_twisted.rest.web import build_site

STARTUP = {"callId": "r1", "callee": "bob@10.0.0.2", "sipLogin": "1001", "sipDomain": "10.0.0.1",
           "sipPassword": "pw", "sipPort": "5060", "hasAudio": "true", "hasVideo": "false",
           "sipRegisterRequired": "false"}


class RecordingPushes:
    """
    Stands in for the RTMP module's service: records what /call/startup asks of it.
    """

    def __init__(self):
        self.started = []
        self.terminated = []
        self.on_status = None

    def startup(self, stream, url, rtmp_stream=None, options=None, *, full_url=False,
                wait_for_stream=False, on_status=None):
        self.started.append((stream, url, rtmp_stream, wait_for_stream))
        self.on_status = on_status
        return {"mediaSessionId": "push-1", "streamName": f"rtmp_{stream}"}

    def terminate(self, media_session_id):
        self.terminated.append(media_session_id)
        return {}

    @staticmethod
    def rtmp_name(name):
        return "rtmp_" + name


class RestCallTests(CallTestMixin, SynchronousTestCase):
    """
    The WCS REST call methods (seed 004).
    """

    def setUp(self):
        super().setUp()
        self.pushes = RecordingPushes()
        self.routes = routes = RouteTable()
        site = build_site(RestAPI(self.sessions, self.calls, routes=routes),
                          ("admin", "admin"), ("*",), ServerMetrics(), [])
        # What the rtmp module registers when it starts, over the stand-in service.
        self.push_hook = lambda call, body: push_call(self.pushes, call, body)
        routes.add_call_startup("rtmp", self.push_hook, ("rtmpUrl", "rtmpStream"))
        self.http = StubTreq(site.resource)

    def post(self, path, body):
        response = self.successResultOf(self.http.post(
            BASE + path, data=json.dumps(body).encode(),
            headers={**ADMIN, "Content-Type": "application/json"}))
        content = self.successResultOf(self.http.content(response))
        self.network.run()
        return response.code, (json.loads(content) if content else None)

    def test_startup_find_dtmf_terminate(self):
        """
        startup answers 200 with an empty body; find follows the call; terminate ends it; then 404.
        """
        code, body = self.post("/call/startup", STARTUP)
        self.assertEqual((code, body), (200, None))
        code, found = self.post("/call/find", {"callId": "r1"})
        self.assertEqual((code, found[0]["status"]), (200, "TRYING"))
        self.assertEqual(set(found[0]), {
            "custom", "nodeId", "appKey", "sessionId", "callId", "parentCallId", "incoming",
            "status", "sipStatus", "rtmpUrl", "rtmpStream", "streamName", "rtmpStreamStatus",
            "caller", "callee", "hasAudio", "hasVideo", "sdp", "visibleName", "inviteParameters",
            "mediaProvider", "sipMessageRaw", "isMsrp", "target", "holdForTransfer"})
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        code, found = self.post("/call/find", {"callId": "r1"})
        self.assertEqual((found[0]["status"], found[0]["sipStatus"]), ("ESTABLISHED", 200))
        code, _ = self.post("/call/send_dtmf", {"callId": "r1", "dtmf": "5", "type": "INFO"})
        self.assertEqual(code, 200)
        self.assertIn(("info", b"Signal=5\r\nDuration=160\r\n"), self.phone.observer.events)
        code, all_calls = self.post("/call/find_all", {})
        self.assertEqual(len(all_calls), 1)
        code, _ = self.post("/call/terminate", {"callId": "r1"})
        self.assertEqual(code, 200)
        self.assertEqual(self.phone.observer.events[-1][0], "terminated")
        self.assertEqual(self.post("/call/find", {"callId": "r1"})[0], 404)
        self.assertEqual(self.post("/call/find_all", {})[0], 404)

    def test_recvonly_when_no_audio(self):
        """
        hasAudio "false" offers the SIP side recvonly.
        """
        self.post("/call/startup", {**STARTUP, "hasAudio": "false"})
        self.assertIn(b"a=recvonly", self.phone.sessions[0].remote_sdp)

    def test_conflicts_and_bad_input(self):
        """
        A used callId is 409; bad logins, unknown fields and missing callee are 400.
        """
        self.assertEqual(self.post("/call/startup", STARTUP)[0], 200)
        self.assertEqual(self.post("/call/startup", STARTUP)[0], 409)
        code, body = self.post("/call/startup", {**STARTUP, "callId": "r2",
                                                 "sipLogin": "bad login"})
        self.assertEqual((code, body["field"]), (400, "sipLogin"))
        code, body = self.post("/call/startup", {**STARTUP, "callId": "r3", "bogus": 1})
        self.assertEqual((code, body["field"]), (400, "bogus"))
        code, body = self.post("/call/startup", {k: v for k, v in STARTUP.items()
                                                 if k != "callee"})
        self.assertEqual((code, body["field"]), (400, "callee"))
        self.assertEqual(self.post("/call/terminate", {"callId": "nope"})[0], 404)
        self.assertEqual(self.post("/call/send_dtmf", {"callId": "nope", "dtmf": "1"})[0], 404)
        self.assertEqual(self.post("/call/find", {"noSuchField": 1})[0], 400)

    def test_rtmp_without_the_module_is_refused(self):
        """
        With no running module serving rtmpUrl (the rtmp module disabled), /call/startup with it
        answers 404 naming the field and starts no call, instead of ignoring the field.
        """
        self.routes.remove_call_startup(self.push_hook)
        rtmp = {"rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "s1"}
        code, body = self.post("/call/startup", {**STARTUP, **rtmp})
        self.assertEqual(code, 404)
        self.assertIn("rtmpUrl", json.dumps(body))
        self.assertEqual(self.post("/call/find_all", {})[0], 404)
        self.assertEqual(self.post("/call/startup", STARTUP)[0], 200)

    def test_rtmp_pair_conflict(self):
        """
        The same rtmpUrl + rtmpStream twice is 409.
        """
        rtmp = {"rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "s1"}
        self.assertEqual(self.post("/call/startup", {**STARTUP, **rtmp})[0], 200)
        self.assertEqual(self.post("/call/startup", {**STARTUP, **rtmp, "callId": "r9"})[0], 409)

    def test_rtmp_push_follows_the_call(self):
        """
        rtmpUrl pushes the call's stream (waiting for it) as the prefixed rtmpStream, the name
        the official pages print; the push ends with the call.
        """
        rtmp = {"rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "s1"}
        self.post("/call/startup", {**STARTUP, **rtmp})
        self.assertEqual(self.pushes.started, [("call_r1", "rtmp://127.0.0.1/live", "rtmp_s1", True)])
        self.pushes.on_status("RTMP_STREAM_WAIT")
        code, found = self.post("/call/find", {"callId": "r1"})
        self.assertEqual(found[0]["rtmpStreamStatus"], "RTMP_STREAM_WAIT")
        self.post("/call/terminate", {"callId": "r1"})
        self.assertEqual(self.pushes.terminated, ["push-1"])


class OpenAPITests(SynchronousTestCase):
    """
    The OpenAPI document stays true to the routes.
    """

    def test_every_route_documented(self):
        """
        Every Klein route of RestAPI is a path of the OpenAPI table, and vice versa.
        """
        routes = {rule.rule for rule in RestAPI.app.url_map.iter_rules()} - {"/", "/<path:__rest__>"}
        self.assertEqual(routes, set(METHODS))
