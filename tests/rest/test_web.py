"""
Tests for L{wcs_twisted.rest.web}: /health, /metrics and the static pages.
"""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from wcs_twisted.interfaces import IListener
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.web import build_site
from wcs_twisted.gateway.sessions import SessionTable


@implementer(IListener)
class StaticListener:
    """
    A listener whose readiness the test sets.
    """

    def __init__(self, name, ready):
        self.name = name
        self.ready = ready
        self.address = "127.0.0.1:1" if ready else None
        self.errors = 0


class OperationsTests(SynchronousTestCase):
    """
    The operations endpoints.
    """

    def setUp(self):
        self.listeners = [StaticListener("ws", True), StaticListener("http", False)]
        self.metrics = ServerMetrics()
        site = build_site(RestAPI(SessionTable("n")), ("admin", "admin"), ("*",), self.metrics,
                          self.listeners)
        self.http = StubTreq(site.resource)

    def get(self, path):
        requested = self.http.get("http://wcs.test" + path)
        self.http.flush()
        response = self.successResultOf(requested)
        content = self.http.content(response)
        self.http.flush()
        return response, self.successResultOf(content)

    def test_health_follows_listeners(self):
        """
        503 until every listener is ready, then 200.
        """
        response, body = self.get("/health")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["listeners"]["http"], {"ready": False, "address": None})
        self.listeners[1].ready = True
        response, body = self.get("/health")
        self.assertEqual((response.code, json.loads(body)["status"]), (200, "ready"))

    def test_metrics_exposition(self):
        """
        /metrics is Prometheus text with the server's gauges.
        """
        self.metrics.sessions.set(3)
        self.metrics.listener_errors.labels(listener="ws").inc()
        response, body = self.get("/metrics")
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/plain"))
        text = body.decode()
        self.assertIn("wcs_sessions 3.0", text)
        self.assertIn('wcs_listener_errors_total{listener="ws"} 1.0', text)
