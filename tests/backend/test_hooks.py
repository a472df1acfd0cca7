"""
Tests for L{wcs_twisted.backend.hooks}: REST hooks sent to a real HTTP backend on loopback.

The backend is a twisted.web Site on 127.0.0.1, port 0, that records every request and checks
signatures itself with the shared secret (the formats of docs/rest-hooks.md, recomputed here, not
borrowed from the module under test).  Run with the asyncio reactor:
C{python -m twisted.trial --reactor=asyncio tests.backend.test_hooks}.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, globalLogPublisher
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface.verify import verifyObject

from tests.gateway.test_sessions import SilentConnection
from wcs_twisted.config import Settings, settings_from_text
from wcs_twisted.interfaces import IEventHooks
from wcs_twisted.backend.hooks import HookRefused, HookUnavailable, RestHooks
from wcs_twisted.backend.observers import (
    CallHookObserver,
    SessionHookObserver,
    StreamHookObserver,
)
from wcs_twisted.gateway.call_events import TransferStatus
from wcs_twisted.gateway.sessions import ClientSession

SECRET = "s3cret-for-tests"
CONNECTION = {
    "appKey": "phone",
    "sessionId": "/127.0.0.1:50000/127.0.0.1:8080",
    "sipLogin": "alice",
    "sipPassword": "pw",
    "sipDomain": "example.org",
    "custom": {"tenant": 7},
}


@dataclass
class Recorded:
    """
    One request the backend received.
    """

    method: str
    path: str
    headers: dict
    body: bytes
    signature_ok: bool | None
    user: bytes
    password: bytes

    @property
    def json(self):
        return json.loads(self.body)


def expected_hmac_sha256(secret: str, timestamp: str, method: str, body: bytes) -> str:
    """
    docs/rest-hooks.md: sha256= hex HMAC-SHA256(secret, "<timestamp>.<method>." + body).
    """
    message = f"{timestamp}.{method}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Backend(Resource):
    """
    The application backend: records requests, answers as each method is told to.
    """

    isLeaf = True

    def __init__(self, signature: str | None = None):
        super().__init__()
        self.signature = signature
        self.requests: list[Recorded] = []
        self.answers: dict[str, list] = {}
        self.held: list = []
        self._waiters: list[tuple[int, Deferred]] = []

    def answer(self, method, *answers):
        """
        Answer C{method} with these (status, body) pairs in turn (the last one repeats);
        "hold" never answers.
        """
        self.answers[method] = list(answers)

    def wait_for(self, count: int) -> Deferred:
        """
        Fires once C{count} requests have arrived.
        """
        waiter = Deferred()
        self._waiters.append((count, waiter))
        self._notify()
        return waiter

    def _notify(self):
        ready = [(count, waiter) for count, waiter in self._waiters if len(self.requests) >= count]
        for item in ready:
            self._waiters.remove(item)
            item[1].callback(len(self.requests))

    def _verify(self, request, method, body):
        if self.signature == "hmac-sha256":
            timestamp = request.getHeader("X-WCS-Timestamp")
            signature = request.getHeader("X-WCS-Signature")
            if timestamp is None or signature is None or abs(time.time() - int(timestamp)) > 300:
                return False
            return hmac.compare_digest(
                signature, expected_hmac_sha256(SECRET, timestamp, method, body))
        if self.signature == "wcs-md5":
            expected = "WCS " + hmac.new(SECRET.encode(), body, hashlib.md5).hexdigest()
            return hmac.compare_digest(request.getHeader("Authorization") or "", expected)
        return None

    def render_POST(self, request):
        path = request.path.decode()
        method = path.rsplit("/", 1)[-1]
        body = request.content.read()
        signature_ok = self._verify(request, method, body)
        self.requests.append(Recorded(
            method=method, path=path,
            headers={name.decode().lower(): values[0].decode()
                     for name, values in request.requestHeaders.getAllRawHeaders()},
            body=body, signature_ok=signature_ok,
            user=request.getUser(), password=request.getPassword()))
        content = self._respond(request, method, body, signature_ok)
        self._notify()
        return content

    def _respond(self, request, method, body, signature_ok):
        if signature_ok is False:
            request.setResponseCode(401)
            return b"bad signature"
        answers = self.answers.get(method)
        if not answers:
            request.setHeader(b"content-type", b"application/json")
            return body
        status, content = answers.pop(0) if len(answers) > 1 else answers[0]
        if status == "hold":
            self.held.append(request)
            return NOT_DONE_YET
        request.setResponseCode(status)
        if isinstance(content, (dict, list)):
            request.setHeader(b"content-type", b"application/json")
            content = json.dumps(content).encode()
        return content


class _TrackingFactory(WrappingFactory):
    """
    Wraps the backend Site to know its open connections, so a test can wait for them to close.
    """

    def __init__(self, factory):
        super().__init__(factory)
        self._waiters: list[Deferred] = []

    def unregisterProtocol(self, protocol):
        super().unregisterProtocol(protocol)
        if not self.protocols:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def all_closed(self) -> Deferred:
        """
        Fires once no connection is open (after one more reactor turn, so the client side of a
        connection the server closed has gone too).
        """
        if not self.protocols:
            return deferLater(reactor, 0, lambda: None)
        waiter = Deferred()
        self._waiters.append(waiter)
        return waiter.addCallback(lambda _: self.all_closed())


class HookTestMixin:
    """
    A live backend and a RestHooks aimed at it.
    """

    def start_backend(self, signature=None) -> Backend:
        self.backend = Backend(signature)
        self.site = _TrackingFactory(Site(self.backend))
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}/hooks"

        @inlineCallbacks
        def stop():
            for request in self.backend.held:
                if not request.finished and not request._disconnected:
                    request.finish()
            for protocol in list(self.site.protocols):
                protocol.transport.loseConnection()
            yield self.site.all_closed()
            yield self.port.stopListening()

        self.addCleanup(stop)
        return self.backend

    def make_hooks(self, **changes) -> RestHooks:
        values = dict(
            rest_hook_urls={"phone": self.base},
            rest_hook_secrets={},
            rest_hook_timeout_ms=2000,
            rest_hook_retry_delay_ms=10,
        )
        values.update(changes)
        hooks = RestHooks(replace(Settings(), **values), reactor, node_id="node-1@127.0.0.1")
        self.addCleanup(hooks.close)
        return hooks


class RestHooksTests(HookTestMixin, TestCase):
    """
    connect, direct invocations and events against a real backend.
    """

    def test_provides_interface(self):
        """
        RestHooks provides IEventHooks.
        """
        verifyObject(IEventHooks, RestHooks(Settings(), reactor, "n"))

    @inlineCallbacks
    def test_connect_posts_the_connection_object(self):
        """
        connect POSTs the connection object plus nodeId to <url>/connect as JSON; a 200 keeps
        the fields (NOTIFY) and adds the restClientConfig the backend returned.
        """
        backend = self.start_backend()
        config = {"hangup": {"restOnError": "FAIL"}}
        backend.answer("connect", (200, dict(CONNECTION, sipLogin="bob",
                                             restClientConfig=config)))
        hooks = self.make_hooks()
        result = yield hooks.connect(CONNECTION)
        [request] = backend.requests
        self.assertEqual(request.path, "/hooks/connect")
        self.assertEqual(request.headers["content-type"], "application/json")
        self.assertEqual(request.json, dict(CONNECTION, nodeId="node-1@127.0.0.1"))
        self.assertEqual(result, dict(CONNECTION, restClientConfig=config))

    @inlineCallbacks
    def test_connect_overwrite(self):
        """
        A restClientConfig.connect OVERWRITE applies the listed fields of the same answer, but
        never the server's own fields (sessionId, nodeId, appKey, authToken).
        """
        backend = self.start_backend()
        config = {"connect": {"restPolicy": "OVERWRITE",
                              "restOverwrite": "sipLogin,custom,sessionId"}}
        backend.answer("connect", (200, dict(CONNECTION, sipLogin="bob", custom={"vip": True},
                                             sipDomain="other.org", sessionId="forged",
                                             restClientConfig=config)))
        result = yield self.make_hooks().connect(CONNECTION)
        self.assertEqual(result, dict(CONNECTION, sipLogin="bob", custom={"vip": True},
                                      restClientConfig=config))

    @inlineCallbacks
    def test_connect_refused_with_reason(self):
        """
        A 403 from the backend fails connect with HookRefused carrying the backend's text.
        """
        backend = self.start_backend()
        backend.answer("connect", (403, b"User alice is blocked\n"))
        error = yield self.assertFailure(self.make_hooks().connect(CONNECTION), HookRefused)
        self.assertEqual((error.info, error.status), ("User alice is blocked", 403))
        self.assertNotIsInstance(error, HookUnavailable)

    @inlineCallbacks
    def test_connect_refused_reason_from_json(self):
        """
        A JSON refusal gives its info field as the reason; no reason at all gives the phrase.
        """
        backend = self.start_backend()
        backend.answer("connect", (401, {"info": "Bad token"}), (403, b""))
        hooks = self.make_hooks()
        error = yield self.assertFailure(hooks.connect(CONNECTION), HookRefused)
        self.assertEqual(error.info, "Bad token")
        error = yield self.assertFailure(hooks.connect(CONNECTION), HookRefused)
        self.assertEqual(error.info, "Forbidden")

    @inlineCallbacks
    def test_hmac_sha256_signature(self):
        """
        Hooks carry X-WCS-Timestamp and X-WCS-Signature that the backend verifies with the
        shared secret over timestamp, method and the exact body.
        """
        backend = self.start_backend(signature="hmac-sha256")
        hooks = self.make_hooks(rest_hook_secrets={"phone": SECRET})
        yield hooks.connect(CONNECTION)
        delivered = yield hooks.event("phone", "CallStatusEvent", {"callId": "c1"})
        self.assertTrue(delivered)
        self.assertEqual([r.signature_ok for r in backend.requests], [True, True])
        request = backend.requests[0]
        self.assertRegex(request.headers["x-wcs-signature"], r"^sha256=[0-9a-f]{64}$")
        self.assertNotEqual(
            request.headers["x-wcs-signature"],
            expected_hmac_sha256(SECRET, str(int(request.headers["x-wcs-timestamp"]) + 1),
                                 "connect", request.body))

    @inlineCallbacks
    def test_wrong_secret_is_rejected_by_backend(self):
        """
        A hook signed with another secret fails the backend's check (the check can fail).
        """
        backend = self.start_backend(signature="hmac-sha256")
        hooks = self.make_hooks(rest_hook_secrets={"phone": "not-the-secret"})
        yield self.assertFailure(hooks.connect(CONNECTION), HookRefused)
        self.assertEqual([r.signature_ok for r in backend.requests], [False])

    @inlineCallbacks
    def test_wcs_md5_signature(self):
        """
        In wcs-md5 mode the Authorization header is 'WCS ' + hex HMAC-MD5 of the body.
        """
        backend = self.start_backend(signature="wcs-md5")
        hooks = self.make_hooks(rest_hook_secrets={"phone": SECRET},
                                rest_hook_signature="wcs-md5")
        yield hooks.connect(CONNECTION)
        [request] = backend.requests
        self.assertTrue(request.signature_ok)
        self.assertRegex(request.headers["authorization"], r"^WCS [0-9a-f]{32}$")
        self.assertNotIn("x-wcs-signature", request.headers)

    @inlineCallbacks
    def test_basic_auth(self):
        """
        restUsername/restPassword are sent as HTTP Basic credentials.
        """
        backend = self.start_backend()
        hooks = self.make_hooks(rest_hook_usernames={"phone": "wcs"},
                                rest_hook_passwords={"phone": "pä55"})
        yield hooks.connect(CONNECTION)
        [request] = backend.requests
        self.assertEqual((request.user, request.password), (b"wcs", "pä55".encode()))

    @inlineCallbacks
    def test_backend_down_refuses_connect(self):
        """
        With the default policy a backend refusing TCP connections fails connect with
        HookUnavailable, whose info does not reveal the backend.
        """
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        dead = f"http://127.0.0.1:{port.getHost().port}/hooks"
        yield port.stopListening()
        hooks = RestHooks(replace(Settings(), rest_hook_urls={"phone": dead}), reactor, "n")
        error = yield self.assertFailure(hooks.connect(CONNECTION), HookUnavailable)
        self.assertEqual(error.info, "Application backend unavailable")

    @inlineCallbacks
    def test_backend_down_allows_connect_by_policy(self):
        """
        rest_hook_unavailable_policy=allow lets the connection in unchanged when the backend
        is down or answers 503.
        """
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        dead = f"http://127.0.0.1:{port.getHost().port}/hooks"
        yield port.stopListening()
        hooks = RestHooks(replace(Settings(), rest_hook_urls={"phone": dead},
                                  rest_hook_unavailable_policy="allow"), reactor, "n")
        result = yield hooks.connect(CONNECTION)
        self.assertEqual(result, CONNECTION)
        backend = self.start_backend()
        backend.answer("connect", (503, b"down for maintenance"))
        result = yield self.make_hooks(rest_hook_unavailable_policy="allow").connect(CONNECTION)
        self.assertEqual(result, CONNECTION)
        self.assertEqual(len(backend.requests), 1)

    @inlineCallbacks
    def test_slow_backend_times_out_without_blocking_others(self):
        """
        A backend that never answers fails its hook at the timeout, while another hook sent
        meanwhile completes.
        """
        backend = self.start_backend()
        backend.answer("connect", ("hold", None))
        hooks = self.make_hooks(rest_hook_timeout_ms=400)
        slow = hooks.connect(CONNECTION)
        slow_results = []

        def seen(result):
            slow_results.append(result)
            return result

        slow.addBoth(seen)
        yield backend.wait_for(1)
        delivered = yield hooks.event("phone", "CallStatusEvent", {"callId": "c1"})
        self.assertTrue(delivered)
        self.assertEqual(slow_results, [])
        self.assertEqual([r.method for r in backend.requests], ["connect", "CallStatusEvent"])
        error = yield self.assertFailure(slow, HookUnavailable)
        self.assertEqual(error.method, "connect")
        yield self.site.all_closed()
        self.assertTrue(backend.held[0]._disconnected)

    @inlineCallbacks
    def test_concurrency_is_bounded(self):
        """
        With rest_max_connections=1 a second hook waits until the first one is answered.
        """
        backend = self.start_backend()
        backend.answer("connect", ("hold", None))
        hooks = self.make_hooks(rest_max_connections=1)
        first = hooks.connect(CONNECTION)
        yield backend.wait_for(1)
        second = hooks.event("phone", "CallStatusEvent", {"callId": "c1"})
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(backend.requests), 1)
        held = backend.held[0]
        held.write(b"{}")
        held.finish()
        yield first
        delivered = yield second
        self.assertTrue(delivered)
        self.assertEqual([r.method for r in backend.requests], ["connect", "CallStatusEvent"])

    @inlineCallbacks
    def test_events_dropped_when_queue_full(self):
        """
        Once rest_max_connections hooks are waiting for a slot, a further event is dropped.
        """
        backend = self.start_backend()
        backend.answer("connect", ("hold", None))
        hooks = self.make_hooks(rest_max_connections=1)
        first = hooks.connect(CONNECTION)
        yield backend.wait_for(1)
        queued = hooks.event("phone", "CallStatusEvent", {"callId": "c1"})
        dropped = hooks.event("phone", "CallStatusEvent", {"callId": "c2"})
        self.assertEqual(self.successResultOf(dropped), False)
        backend.held[0].finish()
        yield first
        self.assertTrue((yield queued))
        self.assertEqual([r.json.get("callId") for r in backend.requests], [None, "c1"])

    @inlineCallbacks
    def test_event_retries_are_bounded(self):
        """
        An event answered 503 every time is sent 1 + rest_hook_retries times, then given up.
        """
        backend = self.start_backend()
        backend.answer("CallStatusEvent", (503, b"busy"))
        delivered = yield self.make_hooks(rest_hook_retries=2).event(
            "phone", "CallStatusEvent", {"callId": "c1"})
        self.assertFalse(delivered)
        self.assertEqual(len(backend.requests), 3)
        self.assertEqual({r.body for r in backend.requests}, {backend.requests[0].body})

    @inlineCallbacks
    def test_failures_logged_once(self):
        """
        A failing hook is logged once, not per attempt or per event, until one succeeds.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        backend = self.start_backend()
        backend.answer("CallStatusEvent", (503, b"busy"))
        hooks = self.make_hooks(rest_hook_retries=1, rest_hook_secrets={"phone": SECRET})
        for call_id in ("c1", "c2"):
            self.assertFalse((yield hooks.event("phone", "CallStatusEvent", {"callId": call_id})))
        backend.answer("CallStatusEvent", (200, b"{}"))
        self.assertTrue((yield hooks.event("phone", "CallStatusEvent", {"callId": "c3"})))
        self.assertEqual(len(backend.requests), 5)
        mine = [event for event in events
                if event.get("log_namespace", "").startswith("wcs_twisted.backend.hooks")
                and event["log_level"] in (LogLevel.warn, LogLevel.info)]
        self.assertEqual([(e["log_level"], e.get("count")) for e in mine],
                         [(LogLevel.warn, None), (LogLevel.info, 2)])

    @inlineCallbacks
    def test_event_retry_then_success(self):
        """
        A retried event that then gets a 200 is delivered, with no more attempts.
        """
        backend = self.start_backend()
        backend.answer("CallStatusEvent", (500, b"oops"), (200, b"{}"))
        delivered = yield self.make_hooks().event("phone", "CallStatusEvent", {"callId": "c1"})
        self.assertTrue(delivered)
        self.assertEqual(len(backend.requests), 2)

    @inlineCallbacks
    def test_event_not_retried_after_4xx(self):
        """
        A 4xx is the backend's answer, not an outage: the event is not retried.
        """
        backend = self.start_backend()
        backend.answer("TransferStatusEvent", (404, b"no such method"))
        delivered = yield self.make_hooks().event("phone", "TransferStatusEvent", {"callId": "c"})
        self.assertFalse(delivered)
        self.assertEqual(len(backend.requests), 1)

    @inlineCallbacks
    def test_event_to_dead_backend_gives_up(self):
        """
        An event whose backend refuses connections is tried 1 + retries times and never fails.
        """
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        dead = f"http://127.0.0.1:{port.getHost().port}/hooks"
        yield port.stopListening()
        hooks = RestHooks(replace(Settings(), rest_hook_urls={"phone": dead},
                                  rest_hook_retry_delay_ms=5), reactor, "n")
        delivered = yield hooks.event("phone", "ConnectionStatusEvent", {"status": "ESTABLISHED"})
        self.assertFalse(delivered)

    @inlineCallbacks
    def test_disable_rest_requests_sends_nothing(self):
        """
        disable_rest_requests=true: every hook answers at once and nothing reaches the backend.
        """
        backend = self.start_backend()
        hooks = self.make_hooks(disable_rest_requests=True)
        self.assertEqual(self.successResultOf(hooks.connect(CONNECTION)), CONNECTION)
        self.assertEqual(self.successResultOf(hooks.invoke(
            "phone", "hangup", {"callId": "c"}, {"hangup": {"restOnError": "FAIL"}})),
            {"callId": "c"})
        self.assertFalse(self.successResultOf(hooks.event("phone", "CallStatusEvent", {})))
        yield self.make_hooks().event("phone", "CallStatusEvent", {"callId": "probe"})
        self.assertEqual([r.json["callId"] for r in backend.requests], ["probe"])

    @inlineCallbacks
    def test_app_key_routing(self):
        """
        An appKey without a backend uses defaultApp's when configured; otherwise no hook.
        """
        backend = self.start_backend()
        only_phone = self.make_hooks()
        self.assertEqual(
            self.successResultOf(only_phone.connect(dict(CONNECTION, appKey="other"))),
            dict(CONNECTION, appKey="other"))
        with_default = self.make_hooks(rest_hook_urls={"defaultApp": self.base + "/default"})
        yield with_default.connect(dict(CONNECTION, appKey="other"))
        yield with_default.connect({k: v for k, v in CONNECTION.items() if k != "appKey"})
        self.assertEqual([r.path for r in backend.requests],
                         ["/hooks/default/connect", "/hooks/default/connect"])
        self.assertEqual([r.json["appKey"] for r in backend.requests], ["other", "defaultApp"])

    @inlineCallbacks
    def test_methods_filter(self):
        """
        rest_hook_methods.<appKey> limits the methods called; others answer at once.
        """
        backend = self.start_backend()
        hooks = self.make_hooks(rest_hook_methods={"phone": ("CallStatusEvent",)})
        self.assertEqual(self.successResultOf(hooks.connect(CONNECTION)), CONNECTION)
        yield hooks.event("phone", "CallStatusEvent", {"callId": "c1"})
        self.assertEqual([r.method for r in backend.requests], ["CallStatusEvent"])

    @inlineCallbacks
    def test_invoke_log_never_blocks(self):
        """
        By default (restOnError LOG, NOTIFY) invoke answers at once with the body; the hook is
        still sent, and its 500 changes nothing.
        """
        backend = self.start_backend()
        backend.answer("call", (500, b"broken"))
        body = {"callId": "c1", "callee": "1002", "sdp": "v=0"}
        result = self.successResultOf(self.make_hooks().invoke("phone", "call", body))
        self.assertEqual(result, body)
        yield backend.wait_for(1)
        [request] = backend.requests
        self.assertEqual(request.path, "/hooks/call")
        self.assertEqual(request.json, dict(body, nodeId="node-1@127.0.0.1", appKey="phone"))

    @inlineCallbacks
    def test_invoke_fail_refuses_action(self):
        """
        With restOnError FAIL a 403 fails the invocation with the backend's reason, and an
        unreachable backend fails it as unavailable.
        """
        backend = self.start_backend()
        backend.answer("hangup", (403, {"reason": "Not your call"}))
        config = {"hangup": {"restOnError": "FAIL"}}
        hooks = self.make_hooks()
        error = yield self.assertFailure(
            hooks.invoke("phone", "hangup", {"callId": "c1"}, config), HookRefused)
        self.assertEqual((error.info, error.method, error.status), ("Not your call", "hangup", 403))
        backend.answer("hangup", (200, b""))
        result = yield hooks.invoke("phone", "hangup", {"callId": "c1"}, config)
        self.assertEqual(result, {"callId": "c1"})
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        dead = f"http://127.0.0.1:{port.getHost().port}/hooks"
        yield port.stopListening()
        hooks = RestHooks(replace(Settings(), rest_hook_urls={"phone": dead}), reactor, "n")
        yield self.assertFailure(hooks.invoke("phone", "hangup", {"callId": "c1"}, config),
                                 HookUnavailable)

    @inlineCallbacks
    def test_invoke_overwrite_exclude_disable(self):
        """
        OVERWRITE takes the listed fields from the answer, restExclude keeps fields from the
        backend, DISABLE sends nothing.
        """
        backend = self.start_backend()
        backend.answer("call", (200, {"callee": "2000", "visibleName": "ignored"}))
        config = {
            "call": {"restPolicy": "OVERWRITE", "restOverwrite": "callee",
                     "restExclude": ["sdp"]},
            "hold": {"restPolicy": "DISABLE"},
        }
        hooks = self.make_hooks()
        body = {"callId": "c1", "callee": "1002", "visibleName": "A", "sdp": "v=0"}
        result = yield hooks.invoke("phone", "call", body, config)
        self.assertEqual(result, dict(body, callee="2000"))
        self.assertNotIn("sdp", backend.requests[0].json)
        self.assertEqual(self.successResultOf(hooks.invoke("phone", "hold", {"callId": "c1"},
                                                           config)), {"callId": "c1"})
        yield hooks.event("phone", "CallStatusEvent", {"callId": "probe"})
        self.assertEqual([r.method for r in backend.requests], ["call", "CallStatusEvent"])

    @inlineCallbacks
    def test_oversized_answer_is_a_failure(self):
        """
        An answer above 1 MiB is dropped, so connect is treated as backend unavailable.
        """
        backend = self.start_backend()
        backend.answer("connect", (200, b" " * (1024 * 1024 + 10)))
        yield self.assertFailure(self.make_hooks().connect(CONNECTION), HookUnavailable)

    @inlineCallbacks
    def test_close_cancels_retries(self):
        """
        close() ends an event waiting to retry: it reports not delivered and sends no more.
        """
        backend = self.start_backend()
        backend.answer("CallStatusEvent", (503, b"busy"))
        hooks = self.make_hooks(rest_hook_retry_delay_ms=60000)
        pending = hooks.event("phone", "CallStatusEvent", {"callId": "c1"})
        yield backend.wait_for(1)
        yield deferLater(reactor, 0.05, lambda: None)
        yield hooks.close()
        self.assertFalse(self.successResultOf(pending))
        self.assertEqual(len(backend.requests), 1)
        self.assertFalse(self.successResultOf(hooks.event("phone", "CallStatusEvent", {})))


class Call:
    """
    The part of L{wcs_twisted.gateway.call.Call} the observer reads.
    """

    def __init__(self, session, status="ESTABLISHED"):
        self.session = session
        self.app_key = session.app_key
        self.status = status

    def to_wcs(self):
        return {"callId": "c1", "appKey": self.app_key, "status": self.status,
                "sessionId": self.session.session_id, "caller": "alice", "callee": "1002"}


class ObserverTests(HookTestMixin, TestCase):
    """
    The session and call observers send the WCS event bodies.
    """

    def session(self, fields=None):
        return ClientSession(
            session_id="/127.0.0.1:50000/127.0.0.1:8080", auth_token="tok", app_key="phone",
            node_id="node-1@127.0.0.1", connection=SilentConnection(),
            fields=fields or {"sipLogin": "alice", "sipPassword": "pw"}, account=None)

    @inlineCallbacks
    def test_session_events(self):
        """
        session_opened/closed send ConnectionStatusEvent ESTABLISHED/DISCONNECTED with the
        public connection object (no sipPassword); a registration change and a refused connect
        send their bodies too.
        """
        backend = self.start_backend()
        observer = SessionHookObserver(self.make_hooks())
        session = self.session()
        observer.session_opened(session)
        observer.session_registration_changed(session, "REGISTERED", None)
        observer.session_closed(session)
        observer.session_refused(dict(CONNECTION, nodeId="node-1@127.0.0.1"), "Blocked")
        yield backend.wait_for(4)
        by_status = {r.json["status"]: r for r in backend.requests}
        public = session.public_fields()
        self.assertEqual(by_status["ESTABLISHED"].json, dict(public, status="ESTABLISHED"))
        self.assertEqual(by_status["DISCONNECTED"].json, dict(public, status="DISCONNECTED"))
        self.assertEqual(by_status["REGISTERED"].method, "RegistrationStatusEvent")
        self.assertNotIn("sipPassword", by_status["ESTABLISHED"].json)
        self.assertEqual(by_status["FAILED"].json, {
            "status": "FAILED", "info": "Blocked", "nodeId": "node-1@127.0.0.1",
            "sessionId": CONNECTION["sessionId"], "appKey": "phone"})

    @inlineCallbacks
    def test_call_events(self):
        """
        Call status changes become CallStatusEvent (call object + info) and transfer progress
        TransferStatusEvent (call object with the transfer status); received DTMF sends nothing.
        """
        backend = self.start_backend()
        observer = CallHookObserver(self.make_hooks())
        call = Call(self.session())
        observer.call_dtmf_received(call, "5", "RFC2833")
        observer.call_status_changed(call, "Normal call clearing")
        yield backend.wait_for(1)
        observer.call_transfer_changed(call, TransferStatus.ACCEPTED)
        yield backend.wait_for(2)
        status, transfer = backend.requests
        self.assertEqual((status.method, status.json),
                         ("CallStatusEvent", dict(call.to_wcs(), info="Normal call clearing",
                                                  nodeId="node-1@127.0.0.1")))
        self.assertEqual((transfer.method, transfer.json),
                         ("TransferStatusEvent", dict(call.to_wcs(), status="ACCEPTED",
                                                      nodeId="node-1@127.0.0.1")))

    @inlineCallbacks
    def test_incoming_invocations(self):
        """
        call_offered sends OnCallEvent with the call object and fires with the backend's
        answer; transfer_requested sends OnTransferEvent with status PENDING and the target,
        and a refusal under restOnError FAIL fails it with HookRefused.
        """
        backend = self.start_backend()
        observer = CallHookObserver(self.make_hooks())
        session = self.session({"restClientConfig": {"OnTransferEvent": {"restOnError":
                                                                          "FAIL"}}})
        yield observer.call_offered(Call(session))
        backend.answer("OnTransferEvent", (403, b"No transfers\n"))
        refused = observer.transfer_requested(Call(session), "sip:carol@127.0.0.1")
        yield self.assertFailure(refused, HookRefused)
        # Without restOnError FAIL nothing waits for OnCallEvent: it may arrive second.
        yield backend.wait_for(2)
        offered, transfer = sorted(backend.requests, key=lambda request: request.method)
        self.assertEqual((offered.method, offered.json["callId"]), ("OnCallEvent", "c1"))
        self.assertEqual((transfer.method, transfer.json["status"], transfer.json["target"]),
                         ("OnTransferEvent", "PENDING", "sip:carol@127.0.0.1"))

    @inlineCallbacks
    def test_stream_status_event(self):
        """
        A stream's status change sends StreamStatusEvent with the stream object.
        """
        backend = self.start_backend()
        session = self.session()

        class Stream:
            def to_wcs(self):
                return {"mediaSessionId": "m1", "name": "s", "status": "PUBLISHING"}

        stream = Stream()
        stream.session = session
        StreamHookObserver(self.make_hooks()).stream_status_changed(stream)
        yield backend.wait_for(1)
        [event] = backend.requests
        self.assertEqual((event.method, event.json["status"], event.json["appKey"]),
                         ("StreamStatusEvent", "PUBLISHING", "phone"))

    @inlineCallbacks
    def test_session_rest_client_config_applies_to_events(self):
        """
        A session whose restClientConfig disables CallStatusEvent sends none.
        """
        backend = self.start_backend()
        hooks = self.make_hooks()
        session = self.session({"restClientConfig": {"CallStatusEvent": {"restPolicy":
                                                                          "DISABLE"}}})
        CallHookObserver(hooks).call_status_changed(Call(session), None)
        yield hooks.event("phone", "ConnectionStatusEvent", {"status": "probe"})
        self.assertEqual([r.method for r in backend.requests], ["ConnectionStatusEvent"])


class HookSettingsTests(TestCase):
    """
    The rest_hook keys of the properties file drive RestHooks.
    """

    def test_apps_from_properties(self):
        """
        Per-appKey URL, secret, Basic credentials and methods are read into one HookApp each.
        """
        settings = settings_from_text(
            "rest_hook.phone=http://127.0.0.1:9091/EchoApp/\n"
            "rest_hook_secret.phone=abc\n"
            "rest_hook_username.phone=wcs\nrest_hook_password.phone=pw\n"
            "rest_hook_methods.phone=connect,CallStatusEvent\n").settings
        hooks = RestHooks(settings, reactor, "n")
        app = hooks.apps["phone"]
        self.assertEqual((app.url, app.secret, app.username, app.password, app.methods),
                         ("http://127.0.0.1:9091/EchoApp", b"abc", "wcs", "pw",
                          frozenset({"connect", "CallStatusEvent"})))
        self.assertIsNone(hooks.app_for("phone", "hangup"))
        self.assertIs(hooks.app_for("phone", "connect"), app)
