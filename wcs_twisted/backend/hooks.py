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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Mapping

from treq.client import HTTPClient
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
    TimeoutError,
    succeed,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseDone,
    ResponseFailed,
)
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from wcs_twisted.config import Settings
from wcs_twisted.interfaces import IEventHooks
from wcs_twisted.errors import DomainError

DEFAULT_APP = "defaultApp"
SIGNATURE_HEADER = "X-WCS-Signature"
TIMESTAMP_HEADER = "X-WCS-Timestamp"
USER_AGENT = "wcs-twisted"

#: Largest backend answer read; a bigger one counts as a failed hook.
MAX_RESPONSE_BYTES = 1024 * 1024

DIRECT_METHODS = ("call", "answer", "hangup", "hold", "unhold", "transfer", "sendDtmf")
EVENT_METHODS = ("ConnectionStatusEvent", "RegistrationStatusEvent", "CallStatusEvent",
                 "TransferStatusEvent")

#: Fields the server owns: no backend answer overwrites them.
SERVER_FIELDS = frozenset({"nodeId", "appKey", "sessionId", "authToken"})

#: Answers meaning "the application behind me is down" (a proxy speaking), not "no".
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})

_REASON_LIMIT = 200


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


class ResponseTooLarge(Exception):
    """
    A backend answer was longer than L{MAX_RESPONSE_BYTES}.
    """


# --- signatures ----------------------------------------------------------------------------------


def hmac_sha256_signature(secret: bytes, timestamp: str, method: str, body: bytes) -> str:
    """
    The C{X-WCS-Signature} value: C{sha256=} and the hex HMAC-SHA256, keyed with the app's
    secret, of C{<timestamp>.<method>.<body>} (timestamp as sent in C{X-WCS-Timestamp}, method
    as in the URL, body the exact bytes sent).
    """
    message = timestamp.encode("ascii") + b"." + method.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def wcs_md5_authorization(secret: bytes, body: bytes) -> str:
    """
    The C{Authorization} value of the WCS compatibility form: C{WCS } and the lower-case hex
    HMAC-MD5, keyed with the app's secret, of the exact body bytes.
    """
    return "WCS " + hmac.new(secret, body, hashlib.md5).hexdigest()


def basic_authorization(username: str, password: str) -> str:
    """
    An HTTP Basic C{Authorization} value (RFC 7617, UTF-8).
    """
    token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookApp:
    """
    One application's backend, from C{rest_hook*.<appKey>} keys.
    """

    app_key: str
    url: str
    secret: bytes | None = None
    username: str | None = None
    password: str = ""
    methods: frozenset[str] | None = None

    def calls(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def _names(value: Any) -> tuple[str, ...]:
    """
    A restClientConfig field list: "a,b" or ["a", "b"].
    """
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(part).strip() for part in value if str(part).strip())
    return ()


@dataclass(frozen=True)
class HookRule:
    """
    What a session's C{restClientConfig} says about one method (spec section 12).
    """

    policy: str = "NOTIFY"
    on_error: str = "LOG"
    exclude: frozenset[str] = frozenset()
    overwrite: tuple[str, ...] = ()

    @classmethod
    def for_method(cls, client_config: Any, method: str) -> "HookRule":
        entry = client_config.get(method) if isinstance(client_config, Mapping) else None
        if not isinstance(entry, Mapping):
            return cls()
        policy = str(entry.get("restPolicy") or "NOTIFY").upper()
        on_error = str(entry.get("restOnError") or "LOG").upper()
        return cls(
            policy=policy if policy in ("NOTIFY", "OVERWRITE", "DISABLE") else "NOTIFY",
            on_error="FAIL" if on_error == "FAIL" else "LOG",
            exclude=frozenset(_names(entry.get("restExclude"))),
            overwrite=_names(entry.get("restOverwrite")),
        )

    @property
    def blocks(self) -> bool:
        """
        Whether the action must wait for the backend (its answer can change or stop it).
        """
        return self.on_error == "FAIL" or self.policy == "OVERWRITE"

    def apply(self, target: dict[str, Any], answer: Any) -> None:
        """
        Copy the backend's values of the C{restOverwrite} fields into C{target} (OVERWRITE only).
        """
        if self.policy != "OVERWRITE" or not isinstance(answer, Mapping):
            return
        for name in self.overwrite:
            if name in answer and name not in SERVER_FIELDS:
                target[name] = answer[name]


# --- one HTTP exchange ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """
    A backend's HTTP answer.
    """

    status: int
    phrase: str
    content: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def unavailable(self) -> bool:
        return self.status in UNAVAILABLE_STATUSES

    def document(self) -> Any:
        """
        The JSON answer, or None for an empty or unreadable body.
        """
        if not self.content.strip():
            return None
        try:
            return json.loads(self.content)
        except (UnicodeDecodeError, ValueError):
            return None

    def reason(self) -> str:
        """
        The backend's reason for a refusal, one line: a JSON C{info}/C{reason}/C{message}/
        C{error} string, else a plain-text body, else the HTTP reason phrase.
        """
        text = None
        document = self.document()
        if isinstance(document, Mapping):
            text = next((document[name] for name in ("info", "reason", "message", "error")
                         if isinstance(document.get(name), str) and document[name].strip()), None)
        elif isinstance(document, str):
            text = document
        elif document is None:
            raw = self.content.decode("utf-8", "replace").strip()
            if raw and not raw.startswith("<"):
                text = raw
        if not text:
            text = self.phrase or f"HTTP {self.status}"
        text = " ".join(text.split())
        return text[:_REASON_LIMIT]


class _CappedBody(Protocol):
    """
    Collects a response body up to a limit; past it, drops the connection.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, finished: Deferred) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.finished.errback(ResponseTooLarge(f"answer longer than {self._limit} bytes"))
            self.transport.stopProducing()
            return
        self._chunks.append(data)

    def connectionLost(self, reason) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._chunks))
        else:
            self.finished.errback(reason)


def _describe(error: BaseException, timeout: float) -> str:
    """
    One line saying why a request failed, for the log.
    """
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, ResponseFailed) and error.reasons:
        inner = error.reasons[0].value
        return f"{type(error).__name__} ({type(inner).__name__}: {inner})"
    return f"{type(error).__name__}: {error}".strip()


# --- the hooks -----------------------------------------------------------------------------------


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
            return self._connect_unavailable(app, fields, _describe(error, self._timeout))
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
            self._failed(app, method, _describe(error, self._timeout))
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
                problem = _describe(error, self._timeout)
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

    def _headers(self, app: HookApp, method: str, payload: bytes) -> dict[str, list[str]]:
        headers = {
            "Content-Type": ["application/json"],
            "Accept": ["application/json"],
            "User-Agent": [USER_AGENT],
        }
        if app.secret is not None:
            if self._signature == "wcs-md5":
                headers["Authorization"] = [wcs_md5_authorization(app.secret, payload)]
            else:
                timestamp = str(int(self._clock.seconds()))
                headers[TIMESTAMP_HEADER] = [timestamp]
                headers[SIGNATURE_HEADER] = [
                    hmac_sha256_signature(app.secret, timestamp, method, payload)]
        if app.username is not None:
            headers["Authorization"] = [basic_authorization(app.username, app.password)]
        return headers

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
                headers=self._headers(app, method, payload),
                allow_redirects=False, unbuffered=True)
            body = _CappedBody(MAX_RESPONSE_BYTES)
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


# --- observers the composition root registers ----------------------------------------------------


def _client_config(session: Any) -> Any:
    fields = getattr(session, "fields", None)
    return fields.get("restClientConfig") if isinstance(fields, Mapping) else None


class CallHookObserver:
    """
    A CallTable observer turning call events into CallStatusEvent / TransferStatusEvent hooks.
    """

    def __init__(self, hooks: IEventHooks) -> None:
        self.hooks = hooks

    def call_status_changed(self, call, info: str | None) -> None:
        body = call.to_wcs()
        if info is not None:
            body["info"] = info
        self.hooks.event(call.app_key, "CallStatusEvent", body, _client_config(call.session))

    def call_transfer_changed(self, call, status) -> None:
        body = call.to_wcs()
        body["status"] = getattr(status, "value", status)
        self.hooks.event(call.app_key, "TransferStatusEvent", body, _client_config(call.session))

    def call_dtmf_received(self, call, digit: str, method: str) -> None:
        """
        WCS has no hook for DTMF received from the SIP side, so nothing is sent.
        """


class SessionHookObserver:
    """
    A SessionTable observer sending ConnectionStatusEvent (and, when told, RegistrationStatusEvent)
    hooks with the connection object.
    """

    def __init__(self, hooks: IEventHooks) -> None:
        self.hooks = hooks

    def _send(self, session, method: str, status: str, info: str | None) -> None:
        body = session.public_fields()
        body["status"] = status
        if info is not None:
            body["info"] = info
        self.hooks.event(session.app_key, method, body, _client_config(session))

    def session_opened(self, session) -> None:
        self._send(session, "ConnectionStatusEvent", "ESTABLISHED", None)

    def session_closed(self, session) -> None:
        self._send(session, "ConnectionStatusEvent", "DISCONNECTED", None)

    def session_registration_changed(self, session, status: str, info: str | None) -> None:
        """
        The SIP registration of a session changed (REGISTERED, UNREGISTERED, FAILED,
        AUTHENTICATION_FAIL).
        """
        self._send(session, "RegistrationStatusEvent", status, info)

    def session_refused(self, fields: Mapping[str, Any], info: str) -> None:
        """
        A connection that never became a session (connect refused): the short FAILED form.
        """
        app_key = str(fields.get("appKey") or DEFAULT_APP)
        body = {name: fields[name] for name in ("nodeId", "sessionId")
                if fields.get(name) is not None}
        body.update(status="FAILED", info=info, appKey=app_key)
        self.hooks.event(app_key, "ConnectionStatusEvent", body)
