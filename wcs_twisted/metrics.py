# -*- test-case-name: tests.rest.test_web -*-
"""
Prometheus metrics of one server instance.

Each server owns its own L{CollectorRegistry} instead of the process-global one, so that tests
(and several instances in one process) never see each other's counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class ServerMetrics:
    """
    The gauges and counters operators watch: sessions, calls, registrations, listener errors.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sessions = Gauge(
            "wcs_sessions", "Open WCS client sessions (WebSocket connections).",
            registry=self.registry,
        )
        self.calls = Gauge(
            "wcs_calls", "Calls in progress (any status before FINISH/FAILED/BUSY).",
            registry=self.registry,
        )
        self.registrations = Gauge(
            "wcs_registrations", "SIP registrations: bindings held by the built-in registrar "
            "plus accounts registered upstream.", ["kind"], registry=self.registry,
        )
        self.listener_errors = Counter(
            "wcs_listener_errors", "Errors per listener (bad input, bind failures).",
            ["listener"], registry=self.registry,
        )
        self.messages = Counter(
            "wcs_signalling_messages", "WCS WebSocket messages, by direction and name.",
            ["direction", "message"], registry=self.registry,
        )
        self.registrations.labels(kind="local")
        self.registrations.labels(kind="upstream")

    def render(self) -> bytes:
        """
        The text exposition format of every metric.
        """
        return generate_latest(self.registry)
