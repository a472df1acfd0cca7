"""
Tests for the REST methods modules add (L{wcs_twisted.rest.routes}), served by L{RestAPI}
in memory with StubTreq: the built-in /push/* and /recorder/*, and the rules of the table.
"""

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.modules_builtin.contexts import module_context
from tests.rest.test_api import ADMIN, BASE
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.modules_builtin.recorder import RecordingModule
from wcs_twisted.modules_builtin.rtmp import RtmpModule
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.routes import RestRoute, RouteTable
from wcs_twisted.rest.web import build_site


class ModuleRouteTests(SynchronousTestCase):
    """
    The rtmp and recording modules' methods, as a REST client sees them.
    """

    def setUp(self):
        self.clock = Clock()
        self.services = {}
        self.routes = RouteTable()
        site = build_site(RestAPI([], None, None, self.services, self.routes), ("admin", "admin"), ("*",),
                          ServerMetrics(), [])
        self.http = StubTreq(site.resource)
        self.modules = []
        for module, values in ((RtmpModule(), {}),
                               (RecordingModule(), {"record_dir": self.mktemp()})):
            context = module_context(module.name, self.clock, values=values,
                                     services=self.services, routes=self.routes)
            module.start(context)
            self.modules.append((module, context))

    def tearDown(self):
        for module, context in self.modules:
            self.successResultOf(module.stop())
            context.close()

    def request(self, method, path, body=None, headers=ADMIN):
        data = None if body is None else json.dumps(body).encode()
        response = self.successResultOf(getattr(self.http, method)(
            BASE + path, data=data, headers={**headers, "Content-Type": "application/json"}))
        content = self.successResultOf(self.http.content(response))
        return response.code, (json.loads(content) if content else None)

    def test_answers_of_the_built_in_methods(self):
        """
        Field checks, domain errors and empty lists answer as the core methods do.
        """
        self.assertEqual(self.request("post", "/push/find_all"), (404, {"error": "No pushes"}))
        self.assertEqual(self.request("get", "/recorder/find_all"),
                         (404, {"error": "No recordings"}))
        self.assertEqual(self.request("post", "/push/startup", {"rtmpUrl": "rtmp://h/app"}),
                         (400, {"error": "streamName: required, as text",
                                "field": "streamName"}))
        self.assertEqual(self.request("post", "/push/startup",
                                      {"streamName": "s", "rtmpUrl": "rtmp://h/app"}),
                         (404, {"error": "stream s not found"}))
        self.assertEqual(self.request("post", "/push/mute", {"mediaSessionId": "x", "y": 1})[0],
                         400)
        self.assertEqual(self.request("post", "/recorder/terminate", {"streamName": "s"}),
                         (404, {"error": "no recording s"}))

    def test_same_auth_and_unknown_method(self):
        """
        Module methods need Basic auth; a method they do not take is "No REST method".
        """
        self.assertEqual(self.request("post", "/push/find_all", headers={})[0], 401)
        self.assertEqual(self.request("get", "/push/startup"),
                         (404, {"error": "No REST method /push/startup"}))

    def test_listed_in_openapi(self):
        """
        openapi.json lists the modules' methods with their fields.
        """
        code, document = self.request("get", "/openapi.json")
        self.assertEqual(code, 200)
        push = document["paths"]["/push/find_all"]
        self.assertEqual(sorted(push), ["get", "post"])
        fields = document["paths"]["/recorder/startup"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["properties"]
        self.assertEqual(sorted(fields), ["config", "mediaSessionId", "streamName"])

    def test_gone_when_the_module_stops(self):
        """
        A stopped module's methods are no longer served.
        """
        module, context = self.modules.pop(0)
        self.successResultOf(module.stop())
        context.close()
        self.assertEqual(self.request("post", "/push/find_all"),
                         (404, {"error": "No REST method /push/find_all"}))


class RouteTableTests(SynchronousTestCase):
    """
    Who may take a path.
    """

    def route(self, path, module="m"):
        return RestRoute(("POST",), path, lambda body: None, None, "", {}, module)

    def test_core_and_taken_paths_are_refused(self):
        """
        A core path, another module's path and a malformed path are refused with ValueError.
        """
        table = RestAPI([], None, None).routes
        self.assertRaises(ValueError, table.add, self.route("/call/startup"))
        table.add(self.route("/a/b"))
        error = self.assertRaises(ValueError, table.add, self.route("/a/b", "other"))
        self.assertIn("module m", str(error))
        self.assertRaises(ValueError, table.add, self.route("a/b"))

    def test_one_table_shared(self):
        """
        The REST API serves the table it is given, with the core paths reserved.
        """
        table = RouteTable()
        self.assertIs(RestAPI([], None, None, {}, table).routes, table)
        self.assertIn("/call/startup", table.reserved)
