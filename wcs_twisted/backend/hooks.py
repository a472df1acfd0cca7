# -*- test-case-name: tests.backend.test_hooks -*-
"""
REST hooks: the HTTP calls the server makes to an application's backend (WCS spec section 12).

An application (an appKey) may have a backend URL; hooks are JSON POSTs to C{<url>/<method>}.
C{connect} lets the backend refuse or amend a new session, direct invocations (C{call},
C{hangup}, ...) tell it about client actions and may be refused when the session's
C{restClientConfig} says so, and status events are fire-and-forget with a bounded retry.

Everything here is asynchronous and bounded: one semaphore caps requests in flight
(C{rest_max_connections}), every request has a deadline that includes its wait for the semaphore,
response bodies are size-capped, and event retries are few and spaced out, so a slow or dead
backend costs timers and memory, never the reactor or other sessions.  Requests are signed
(HMAC-SHA256 with a timestamp by default, or WCS's C{Authorization: WCS <hmac-md5>}); the formats
are specified in docs/rest-hooks.md.

This module is the client (policy, deadlines, retries); beside it: C{rules} (which backend, what
restClientConfig says), C{signing} (the request headers), C{answer} (reading an answer) and
C{observers} (gateway events turned into status-event hooks).
"""

from __future__ import annotations

import json
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Mapping

from treq.client import HTTPClient
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
    succeed,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer

from wcs_twisted.backend.answer import MAX_RESPONSE_BYTES, Answer, CappedBody, describe_failure
from wcs_twisted.backend.rules import DEFAULT_APP, HookApp, HookRule
from wcs_twisted.backend.signing import request_headers
from wcs_twisted.config import Settings
from wcs_twisted.errors import DomainError
from wcs_twisted.interfaces import IEventHooks


class HookRefused(DomainError):
    """
    The backend said no: a non-2xx answer to C{connect}, or to a direct invocation whose
    C{restOnError} is FAIL.  C{info} is the backend's reason, for the client's C{fail}.
    """

    info = "Refused by the application backend"

    def __init__(self, method: str, info: str | None = None, status: int | None = None) -> None:
        super().__init__(info)
        self.method = method
        self.status = status


class HookUnavailable(HookRefused):
    """
    The backend could not be asked (unreachable, too slow, 502/503/504) and the policy refuses.
    The reason goes to the log only: the client is not told backend addresses.
    """

    info = "Application backend unavailable"


class HooksClosed(Exception):
    """
    L{RestHooks.close} was called; no more requests are made.
    """


@implementer(IEventHooks)
class RestHooks:
    """
    REST hooks for every configured application.

    @param settings: the server configuration (C{rest_hook*} keys, C{disable_rest_requests},
        C{rest_max_connections}).
    @param reactor: provides IReactorTCP, IReactorTime (and IReactorSSL for https backends).
    @param node_id: this node's C{nodeId}, added to bodies that lack one.
    @param pool: an C{HTTPConnectionPool}; by default a non-persistent one (one connection per
        hook, so a backend restart never leaves a stale keep-alive connection to fail on).
    """

    log = Logger()

    def __init__(self, settings: Settings, reactor, node_id: str,
                 pool: HTTPConnectionPool | None = None) -> None:
        self._clock = reactor
        self._node_id = node_id
        self._disabled = settings.disable_rest_requests
        self._timeout = settings.rest_hook_timeout_ms / 1000.0
        self._retries = settings.rest_hook_retries
        self._retry_delay = settings.rest_hook_retry_delay_ms / 1000.0
        self._signature = settings.rest_hook_signature
        self._allow_when_unavailable = settings.rest_hook_unavailable_policy == "allow"
        self._max_waiting = settings.rest_max_connections
        self._semaphore = DeferredSemaphore(settings.rest_max_connections)
        self._pool = pool if pool is not None else HTTPConnectionPool(reactor, persistent=False)
        # No cookies: a backend must not be able to tie one session's hooks to another's.
        self._http = HTTPClient(Agent(reactor, pool=self._pool),
                                cookiejar=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
        self.apps: dict[str, HookApp] = {}
        for app_key, url in settings.rest_hook_urls.items():
            secret = settings.rest_hook_secrets.get(app_key)
            methods = settings.rest_hook_methods.get(app_key)
            self.apps[app_key] = HookApp(
                app_key=app_key, url=url,
                secret=secret.encode("utf-8") if secret else None,
                username=settings.rest_hook_usernames.get(app_key),
                password=settings.rest_hook_passwords.get(app_key, ""),
                methods=frozenset(methods) if methods is not None else None,
            )
            if not self._disabled and secret is None:
                self.log.warn("REST hooks of appKey {app_key} are not signed: set "
                              "rest_hook_secret.{app_key}", app_key=app_key)
        #: Hooks under way, each with a Deferred fired when it ends (for close).
        self._operations: dict[Deferred, Deferred] = {}
        self._failing: dict[tuple[str, str], int] = {}
        self._closed = False

    # --- which backend -------------------------------------------------------------------------

    def app_for(self, app_key: str | None, method: str) -> HookApp | None:
        """
        The backend that hears C{method} for C{app_key}: its own, else defaultApp's, else none.
        """
        if self._disabled:
            return None
        app = self.apps.get(app_key or DEFAULT_APP) or self.apps.get(DEFAULT_APP)
        if app is None or not app.calls(method):
            return None
        return app

    # --- IEventHooks -----------------------------------------------------------------------------

    def connect(self, fields: Mapping[str, Any]) -> Deferred:
        app_key = str(fields.get("appKey") or DEFAULT_APP)
        app = self.app_for(app_key, "connect")
        if app is None:
            return succeed(dict(fields))
        body = dict(fields)
        body["appKey"] = app_key
        body.setdefault("nodeId", self._node_id)
        payload = self._encode(body)
        return self._track(Deferred.fromCoroutine(self._connect(app, app_key, fields, payload)))

    def invoke(self, app_key: str, method: str, body: Mapping[str, Any],
               client_config: Any = None) -> Deferred:
        rule = HookRule.for_method(client_config, method)
        app = self.app_for(app_key, method)
        if app is None or rule.policy == "DISABLE":
            return succeed(dict(body))
        payload = self._encode(self._outgoing(app_key, body, rule))
        running = self._track(Deferred.fromCoroutine(
            self._invoke(app, method, body, payload, rule)))
        if rule.blocks:
            return running
        running.addErrback(self._unexpected, method)
        return succeed(dict(body))

    def event(self, app_key: str, method: str, body: Mapping[str, Any],
              client_config: Any = None) -> Deferred:
        rule = HookRule.for_method(client_config, method)
        app = self.app_for(app_key, method)
        if app is None or rule.policy == "DISABLE" or self._closed:
            return succeed(False)
        if len(self._semaphore.waiting) >= self._max_waiting:
            self._failed(app, method, f"dropped: {len(self._semaphore.waiting)} hooks are "
                                      "already waiting for a connection")
            return succeed(False)
        payload = self._encode(self._outgoing(app_key, body, rule))
        delivering = Deferred.fromCoroutine(self._deliver(app, app_key, method, payload))
        return self._track(delivering).addErrback(self._unexpected, method)

    def close(self) -> Deferred:
        self._closed = True
        operations = list(self._operations.items())
        for operation, _ in operations:
            operation.cancel()
        waiting = DeferredList([finished for _, finished in operations])
        return waiting.addCallback(lambda _: self._pool.closeCachedConnections())

    # --- the three kinds -------------------------------------------------------------------------

    async def _connect(self, app: HookApp, app_key: str, fields: Mapping[str, Any],
                       payload: bytes) -> dict[str, Any]:
        try:
            answer = await self._attempt(app, "connect", payload)
        except Exception as error:
            return self._connect_unavailable(app, fields, describe_failure(error, self._timeout))
        if answer.unavailable:
            return self._connect_unavailable(app, fields, f"HTTP {answer.status} {answer.phrase}")
        if not answer.ok:
            reason = answer.reason()
            self.log.info("REST hook connect of appKey {app_key} refused by the backend: "
                          "{status} {reason}", app_key=app_key, status=answer.status,
                          reason=reason)
            raise HookRefused("connect", reason, answer.status)
        self._succeeded(app, "connect")
        result = dict(fields)
        document = answer.document()
        if isinstance(document, Mapping):
            client_config = document.get("restClientConfig")
            if isinstance(client_config, Mapping):
                result["restClientConfig"] = dict(client_config)
                HookRule.for_method(client_config, "connect").apply(result, document)
        return result

    def _connect_unavailable(self, app: HookApp, fields: Mapping[str, Any],
                             problem: str) -> dict[str, Any]:
        self._failed(app, "connect", problem)
        if self._allow_when_unavailable:
            return dict(fields)
        raise HookUnavailable("connect")

    async def _invoke(self, app: HookApp, method: str, body: Mapping[str, Any],
                      payload: bytes, rule: HookRule) -> dict[str, Any]:
        result = dict(body)
        try:
            answer = await self._attempt(app, method, payload)
        except Exception as error:
            self._failed(app, method, describe_failure(error, self._timeout))
            if rule.on_error == "FAIL":
                raise HookUnavailable(method) from None
            return result
        if not answer.ok:
            reason = answer.reason()
            self._failed(app, method, f"HTTP {answer.status} {reason}")
            if rule.on_error == "FAIL":
                if answer.unavailable:
                    raise HookUnavailable(method)
                raise HookRefused(method, reason, answer.status)
            return result
        self._succeeded(app, method)
        rule.apply(result, answer.document())
        return result

    async def _deliver(self, app: HookApp, app_key: str, method: str, payload: bytes) -> bool:
        delay = self._retry_delay
        problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                self.log.debug("REST hook {method} of appKey {app_key}: retry {attempt} in "
                               "{delay} s after {problem}", method=method, app_key=app_key,
                               attempt=attempt, delay=delay, problem=problem)
                await deferLater(self._clock, delay, lambda: None)
                delay *= 2
            try:
                answer = await self._attempt(app, method, payload)
            except (CancelledError, HooksClosed):
                return False
            except Exception as error:
                if self._closed:
                    return False
                problem = describe_failure(error, self._timeout)
                continue
            if answer.ok:
                self._succeeded(app, method)
                return True
            problem = f"HTTP {answer.status} {answer.reason()}"
            if answer.status < 500:
                break
        self._failed(app, method, problem)
        return False

    # --- plumbing --------------------------------------------------------------------------------

    def _outgoing(self, app_key: str, body: Mapping[str, Any], rule: HookRule) -> dict[str, Any]:
        """
        The body as sent: WCS's nodeId/appKey added when missing, restExclude fields removed.
        """
        outgoing = {name: value for name, value in body.items() if name not in rule.exclude}
        if "nodeId" not in rule.exclude:
            outgoing.setdefault("nodeId", self._node_id)
        if "appKey" not in rule.exclude:
            outgoing.setdefault("appKey", app_key)
        return outgoing

    @staticmethod
    def _encode(body: Mapping[str, Any]) -> bytes:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                          default=str).encode("utf-8")

    def _attempt(self, app: HookApp, method: str, payload: bytes) -> Deferred:
        """
        One POST, with the deadline covering the wait for a connection slot and the whole answer.
        """
        if self._closed:
            raise HooksClosed()
        exchange = Deferred.fromCoroutine(self._exchange(app, method, payload))
        return exchange.addTimeout(self._timeout, self._clock)

    async def _exchange(self, app: HookApp, method: str, payload: bytes) -> Answer:
        await self._semaphore.acquire()
        try:
            response = await self._http.post(
                f"{app.url}/{method}", data=payload,
                headers=request_headers(app, method, payload, self._signature,
                                        self._clock.seconds()),
                allow_redirects=False, unbuffered=True)
            body = CappedBody(MAX_RESPONSE_BYTES)
            response.deliverBody(body)
            content = await body.finished
            phrase = response.phrase
            if isinstance(phrase, bytes):
                phrase = phrase.decode("latin-1")
            return Answer(response.code, phrase or "", content)
        finally:
            self._semaphore.release()

    def _track(self, operation: Deferred) -> Deferred:
        finished: Deferred = Deferred()
        self._operations[operation] = finished

        def done(result):
            del self._operations[operation]
            finished.callback(None)
            return result

        return operation.addBoth(done)

    def _failed(self, app: HookApp, method: str, problem: str) -> None:
        """
        Log the first failure of a method of a backend; later ones are counted until one
        succeeds (keyed by the configured app, so client-chosen appKeys cannot grow the table).
        """
        key = (app.app_key, method)
        count = self._failing.get(key, 0)
        self._failing[key] = count + 1
        if count == 0:
            self.log.warn("REST hook {method} of appKey {app_key} failed: {problem}; further "
                          "failures of it are counted, not logged, until one succeeds",
                          method=method, app_key=app.app_key, problem=problem)

    def _succeeded(self, app: HookApp, method: str) -> None:
        count = self._failing.pop((app.app_key, method), 0)
        if count > 1:
            self.log.info("REST hook {method} of appKey {app_key} works again after {count} "
                          "failures", method=method, app_key=app.app_key, count=count)

    def _unexpected(self, failure, method: str) -> bool:
        """
        A background hook failed in a way it cannot (a bug): log it, and report not delivered.
        """
        if not failure.check(CancelledError, HooksClosed):
            self.log.failure("REST hook {method} failed unexpectedly", failure, method=method)
        return False
