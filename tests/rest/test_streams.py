"""
Tests for the /stream/* and /call/inject_stream* REST methods (StubTreq, no sockets) over a StreamTable with fake media.
"""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from tests.rest.test_api import ADMIN, BASE
from tests.gateway.test_call import CallTestMixin
from tests.gateway.test_stream_table import InjectionMixin, StreamTableMixin, stream_events
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.openapi import openapi_document
from wcs_twisted.rest.web import build_site


class RestStreamTests(StreamTableMixin, SynchronousTestCase):
    """
    /stream/find, /stream/find_all and /stream/terminate with the spec's codes (section 11).
    """

    def setUp(self):
        super().setUp()
        site = build_site(RestAPI(self.sessions, None, self.table), ("admin", "admin"), ("*",),
                          ServerMetrics(), [])
        self.http = StubTreq(site.resource)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        response = self.successResultOf(self.http.request(
            method, BASE + path, data=data,
            headers={**ADMIN, "Content-Type": "application/json"}))
        content = self.successResultOf(self.http.content(response))
        return response.code, (json.loads(content) if content else None)

    def test_find_and_find_all(self):
        """
        find filters stream objects (200 with an array), 404 when nothing matches, 500 for bad
        parameters; find_all answers GET (the REST helper's way) and POST.
        """
        self.assertEqual(self.request("GET", "/stream/find_all")[0], 404)
        self.publish_source("s1")
        connection, session = self.connect("/v")
        self.play(session, "v1", "s1")
        code, found = self.request("POST", "/stream/find", {"name": "s1", "published": "true"})
        self.assertEqual((code, [s["mediaSessionId"] for s in found]), (200, ["src-s1"]))
        self.assertEqual(self.request("POST", "/stream/find", {"name": "other"})[0], 404)
        code, body = self.request("POST", "/stream/find", {"nam": "s1"})
        self.assertEqual(code, 500)
        self.assertIn("nam", body["error"])
        for method in ("GET", "POST"):
            code, found = self.request(method, "/stream/find_all")
            self.assertEqual((code, len(found)), (200, 2))

    def test_terminate(self):
        """
        terminate stops what matches (200, empty body; players told "Stopped by rest
        /terminate"), 404 when nothing matches.
        """
        stream = self.publish_source("s1")
        connection, session = self.connect("/v")
        self.play(session, "v1", "s1")
        self.assertEqual(self.request("POST", "/stream/terminate", {"mediaSessionId": "x"})[0],
                         404)
        self.assertEqual(self.request("POST", "/stream/terminate", {"name": "s1"}), (200, None))
        self.assertEqual(stream.ended, "Stopped by rest /terminate")
        self.assertEqual(stream_events(connection)[-1], ("STOPPED", "Stopped by rest /terminate"))
        self.assertEqual(self.request("POST", "/stream/terminate", {})[0], 404)

    def test_streams_not_wired(self):
        """
        A server without a stream table answers 500 with a reason.
        """
        site = build_site(RestAPI(self.sessions), ("admin", "admin"), ("*",), ServerMetrics(), [])
        self.http = StubTreq(site.resource)
        code, body = self.request("POST", "/stream/find", {})
        self.assertEqual(code, 500)
        self.assertIn("Streams are not available", body["error"])

    def test_openapi_lists_stream_methods(self):
        """
        The OpenAPI document describes the three methods; array fields name their items.
        """
        paths = openapi_document()["paths"]
        self.assertEqual(set(paths["/stream/find_all"]), {"get", "post"})
        schema = paths["/stream/terminate"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]
        self.assertEqual(schema["properties"]["mediaSessionIds"]["items"], {"type": "string"})


class RestInjectionTests(InjectionMixin, CallTestMixin, SynchronousTestCase):
    """
    /call/inject_stream (older), /call/inject_stream/startup and /terminate (spec 11).
    """

    def setUp(self):
        super().setUp()
        site = build_site(RestAPI(self.sessions, self.calls, self.table), ("admin", "admin"),
                          ("*",), ServerMetrics(), [])
        self.http = StubTreq(site.resource)

    request = RestStreamTests.request

    def test_startup_and_terminate(self):
        """
        startup and the older path inject (200, empty body), terminate restores (200); 404 for
        an unknown call or stream and for terminate without an injection, 400 for a missing
        field; the methods are in the OpenAPI document.
        """
        call = self.browser_call()
        self.inj_stream()
        for path in ("/call/inject_stream/startup", "/call/inject_stream"):
            self.assertEqual(self.request("POST", path, {"callId": "c1", "streamName": "inj"}),
                             (200, None))
            self.assertEqual(call.bridge.paused_into, [call.rtp])
            self.assertEqual(self.request("POST", "/call/inject_stream/terminate",
                                          {"callId": "c1"}), (200, None))
            self.assertEqual(call.bridge.paused_into, [])
        self.assertEqual(self.request("POST", "/call/inject_stream/terminate",
                                      {"callId": "c1"})[0], 404)
        self.assertEqual(self.request("POST", "/call/inject_stream/startup",
                                      {"callId": "c9", "streamName": "inj"})[0], 404)
        self.assertEqual(self.request("POST", "/call/inject_stream/startup",
                                      {"callId": "c1", "streamName": "none"})[0], 404)
        self.assertEqual(self.request("POST", "/call/inject_stream/startup",
                                      {"callId": "c1"})[0], 400)
        paths = openapi_document()["paths"]
        for path in ("/call/inject_stream", "/call/inject_stream/startup",
                     "/call/inject_stream/terminate"):
            self.assertIn("post", paths[path])
