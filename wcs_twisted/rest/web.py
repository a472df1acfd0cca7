# -*- test-case-name: tests.rest.test_web -*-
"""
The HTTP site on http.port: /rest-api/ and the legacy /RESTCall/ (both guarded), /health,
/metrics and the static web pages.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from wcs_twisted.interfaces import IListener
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.gate import OriginPolicy, RestGate
from wcs_twisted.rest.legacy import LegacyCallAPI
from wcs_twisted.rest.throttle import FailureThrottle

WEB_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web")


class HealthResource(Resource):
    """
    200 when every listener is bound, 503 otherwise; the body lists each listener.
    """

    isLeaf = True

    def __init__(self, listeners: Sequence[IListener]) -> None:
        super().__init__()
        self._listeners = listeners

    def render_GET(self, request):
        states = {
            listener.name: {"ready": listener.ready, "address": listener.address}
            for listener in self._listeners
        }
        ready = all(state["ready"] for state in states.values())
        request.setResponseCode(200 if ready else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"status": "ready" if ready else "starting",
                           "listeners": states}).encode("utf-8")


class MetricsResource(Resource):
    """
    Prometheus text exposition of the server's own registry.
    """

    isLeaf = True

    def __init__(self, metrics: ServerMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request):
        request.setHeader(b"content-type", self._metrics.content_type.encode("ascii"))
        return self._metrics.render()


class StaticFiles(File):
    """
    The web pages; a path that cannot name a file (NUL, not UTF-8) is 404, not a traceback.
    """

    def getChild(self, path: bytes, request):
        if b"\x00" in path:
            return self.childNotFound
        try:
            path.decode("utf-8")
        except UnicodeDecodeError:
            return self.childNotFound
        return super().getChild(path, request)


def build_site(rest: RestAPI, credentials: tuple[str, str] | None,
               cors_origins: tuple[str, ...], metrics: ServerMetrics,
               listeners: Sequence[IListener], throttle: FailureThrottle | None = None,
               loopback_hosts_only: bool = False) -> Site:
    """
    Assemble the resource tree of the HTTP port.

    @param throttle: failed-login throttling for /rest-api/; None: none.
    @param loopback_hosts_only: see L{RestGate}.
    """
    root = StaticFiles(WEB_ROOT)
    origins = OriginPolicy(cors_origins)
    # The legacy API shares the gate's policy, login and throttle: it starts the same calls.
    for path, resource in ((b"rest-api", rest.app.resource()),
                           (b"RESTCall", LegacyCallAPI(rest).app.resource())):
        root.putChild(path, RestGate(resource, credentials, origins, throttle,
                                     loopback_hosts_only))
    root.putChild(b"health", HealthResource(listeners))
    root.putChild(b"metrics", MetricsResource(metrics))
    site = Site(root)
    site.displayTracebacks = False
    return site
