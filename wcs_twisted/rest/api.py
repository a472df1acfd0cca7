# -*- test-case-name: tests.rest.test_api -*-
"""
The WCS REST API under /rest-api/: a Klein app bound to an instance.

Routes decode JSON, call the session/call layer and encode JSON; domain errors become HTTP codes in
one place (L{RestAPI.domain_error}).  Modules add their own methods (L{wcs_twisted.rest.routes}),
served here the same way.  L{wcs_twisted.rest.gate.RestGate} stands in front with what every
method shares (origin policy, throttling, auth).  Every answer is JSON, errors included: no input
reaches a traceback page.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from klein import Klein
from twisted.logger import Logger

from wcs_twisted.errors import Conflict, DomainError, InvalidField, NotFound
from wcs_twisted.rest.openapi import METHODS, openapi_document
from wcs_twisted.rest.routes import RouteTable
from wcs_twisted.gateway.sessions import SessionTable

#: HTTP status for each domain error class; the most specific class wins.
STATUS_BY_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidField, 400),
    (NotFound, 404),
    (Conflict, 409),
    (DomainError, 500),
)

_JSON = b"application/json; charset=utf-8"

#: /call/startup fields of the WCS API that a module carries out (the rtmp module: push the
#: call to RTMP); refused when no running module serves them, never silently ignored.
MODULE_CALL_FIELDS = ("rtmpUrl",)

#: The paths RestAPI serves itself (the OpenAPI table lists each; a test checks it).
CORE_PATHS = frozenset(METHODS)

#: Marks a request one cluster node relayed to another: it is answered here, never relayed on
#: (a client that sends it only loses the relaying).
RELAYED_HEADER = b"x-wcs-relayed"


def json_body(request, allowed: Iterable[str] | None) -> dict[str, Any]:
    """
    The request's JSON object, with every field checked against C{allowed} (None: the call
    layer checks the fields itself).

    An empty body is an empty object (jQuery sends none for some calls).
    """
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidField("body", "not valid JSON (nested too deeply)") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise InvalidField("body", f"not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise InvalidField("body", "expected a JSON object")
    if allowed is None:
        return body
    allowed = set(allowed)
    for name in body:
        if name not in allowed:
            raise InvalidField(name, f"unknown field; expected one of {', '.join(sorted(allowed))}")
    return body


def write_json(request, status: int, document: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", _JSON)
    return json.dumps(document).encode("utf-8")


def domain_error_answer(request, error: DomainError, log: Logger) -> bytes:
    """
    The JSON answer to a domain error: the status of L{STATUS_BY_ERROR}, the error's text and,
    for a refused field, its name.
    """
    status = next(code for cls, code in STATUS_BY_ERROR if isinstance(error, cls))
    log.info("REST {method} {path}: {status} {info}", method=request.method.decode(),
             path=request.path.decode("utf-8", "replace"), status=status, info=error.info)
    body = {"error": error.info}
    if isinstance(error, InvalidField):
        body["field"] = error.field
    return write_json(request, status, body)


def unexpected_error_answer(request, failure, log: Logger) -> bytes:
    """
    Routing errors (405) keep their status; anything else is a bug, logged with its traceback
    and answered 500 without it.
    """
    error = failure.value
    # Klein's router raises werkzeug's HTTPException (a code and a description); werkzeug is
    # Klein's dependency, not ours, so it is recognised by shape.
    if isinstance(getattr(error, "code", None), int) and hasattr(error, "get_response"):
        return write_json(request, error.code, {"error": error.description})
    log.failure("REST {method} {path} failed", failure, method=request.method.decode(
        "latin-1"), path=request.path.decode("utf-8", "replace"))
    return write_json(request, 500, {"error": "Internal server error"})


class RestAPI:
    """
    The REST methods; one instance per server.
    """

    app = Klein()
    log = Logger()

    def __init__(self, sessions: SessionTable, calls=None, streams=None,
                 services: dict | None = None, routes: RouteTable | None = None) -> None:
        self.sessions = sessions
        self.calls = calls
        self.streams = streams
        #: What modules offer the front-ends (ModuleContext.provide), shared with their contexts.
        self.services = services if services is not None else {}
        #: The methods and /call/startup hooks modules add (ModuleContext.route); the composition
        #: root gives the REST API and every module context the same table.
        self.routes = routes if routes is not None else RouteTable()
        self.routes.reserved = CORE_PATHS

    def require_calls(self):
        if self.calls is None:
            raise DomainError("Calls are not available on this server")
        return self.calls

    # --- /call ------------------------------------------------------------------------------

    def start_call(self, body: dict[str, Any]):
        """
        Start a server-originated call and run the modules' /call/startup hooks on it (the
        modern /call/startup and the legacy /RESTCall/call both come here).

        @return: the call.
        @raise DomainError: a field is refused, or a hook refused the call (it is hung up).
        """
        for name in MODULE_CALL_FIELDS:
            if body.get(name) and not self.routes.serves_call_field(name):
                raise NotFound(f"{name}: no running module serves it (is it disabled?)")
        call = self.require_calls().start_rest_call(body)
        try:
            self.routes.call_started(call, body)
        except DomainError:
            call.hang_up()
            raise
        return call

    @app.route("/call/startup", methods=["POST"])
    def call_startup(self, request):
        self.start_call(json_body(request, None))
        request.setResponseCode(200)
        return b""

    def cluster_for(self, request):
        """
        The other nodes (L{IClusterDirectory}, the service "cluster") when this server is one
        node of many and the request came from a client, not from another node.
        """
        if request.getHeader(RELAYED_HEADER) is not None:
            return None
        return self.services.get("cluster")

    def _found(self, request, found: list, remote: str, filters: dict, none: str):
        """
        Answer what this node found plus, in a cluster, what the other nodes hold (C{remote}
        names the L{IClusterDirectory} method); 404 with C{none} when nothing matches.
        """
        def answer(more):
            if not found and not more:
                raise NotFound(none)
            return write_json(request, 200, found + list(more))

        cluster = self.cluster_for(request)
        if cluster is None:
            return answer(())
        return getattr(cluster, remote)(filters).addCallback(answer)

    @app.route("/call/find", methods=["POST"])
    def call_find(self, request):
        filters = json_body(request, None)
        found = [call.to_wcs() for call in self.require_calls().find(filters)]
        return self._found(request, found, "remote_calls", filters, "No call matches")

    @app.route("/call/find_all", methods=["GET", "POST"])
    def call_find_all(self, request):
        json_body(request, ())
        found = [call.to_wcs() for call in self.require_calls().find({})]
        return self._found(request, found, "remote_calls", {}, "No calls")

    @app.route("/call/terminate", methods=["POST"])
    def call_terminate(self, request):
        self.require_calls().terminate(json_body(request, ("callId",)))
        request.setResponseCode(200)
        return b""

    @app.route("/call/send_dtmf", methods=["POST"])
    def call_send_dtmf(self, request):
        self.require_calls().rest_send_dtmf(json_body(request, ("callId", "dtmf", "type")))
        request.setResponseCode(200)
        return b""

    @app.route("/call/inject_stream", methods=["POST"])
    @app.route("/call/inject_stream/startup", methods=["POST"])
    def call_inject_stream(self, request):
        body = json_body(request, ("callId", "streamName"))
        self._streams().inject(body.get("callId"), body.get("streamName"))
        request.setResponseCode(200)
        return b""

    @app.route("/call/inject_stream/terminate", methods=["POST"])
    def call_inject_stream_terminate(self, request):
        body = json_body(request, ("callId", "streamName"))
        self._streams().stop_injection(body.get("callId"))
        request.setResponseCode(200)
        return b""

    # --- /stream ----------------------------------------------------------------------------

    def _streams(self):
        if self.streams is None:
            raise DomainError("Streams are not available on this server")
        return self.streams

    def _local_streams(self, filters: dict) -> list:
        try:
            return self._streams().find(filters)
        except NotFound:
            return []

    @app.route("/stream/find", methods=["POST"])
    def stream_find(self, request):
        filters = json_body(request, None)
        return self._found(request, self._local_streams(filters), "remote_streams", filters,
                           "No stream matches")

    @app.route("/stream/find_all", methods=["GET", "POST"])
    def stream_find_all(self, request):
        json_body(request, ())
        return self._found(request, self._local_streams({}), "remote_streams", {},
                           "No stream matches")

    @app.route("/stream/terminate", methods=["POST"])
    def stream_terminate(self, request):
        self._streams().terminate(json_body(request, None))
        request.setResponseCode(200)
        return b""

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request):
        return write_json(request, 200, openapi_document(self.routes))

    @app.handle_errors(DomainError)
    def domain_error(self, request, failure):
        cluster = self.cluster_for(request)
        path = request.path.decode("utf-8", "replace").partition("/rest-api")[2]
        if (cluster is not None and path and isinstance(failure.value, NotFound)
                and not path.endswith(("/find", "/find_all"))):
            return self.relay_to_owner(cluster, request, path, failure.value)
        return domain_error_answer(request, failure.value, self.log)

    def relay_to_owner(self, cluster, request, path: str, error: NotFound):
        """
        A method that acts on one call or stream found nothing here: the node that owns it
        carries it out and its answer is ours (L{IClusterDirectory.relay}).
        """
        if request.content is not None:
            request.content.seek(0)
        try:
            body = json_body(request, None)
        except DomainError:
            return domain_error_answer(request, error, self.log)
        authorization = request.getHeader(b"authorization")
        headers = {"Authorization": authorization.decode("latin-1")} if authorization else {}

        def answer(relayed):
            if relayed is None:
                return domain_error_answer(request, error, self.log)
            status, content_type, content = relayed
            request.setResponseCode(status)
            if content_type:
                request.setHeader(b"content-type", content_type)
            return content

        def failed(failure):
            failure.trap(DomainError)  # the owner is gone or silent: its text is the answer
            return domain_error_answer(request, failure.value, self.log)

        method = request.method.decode("ascii", "replace")
        return cluster.relay(method, path, body, headers).addCallbacks(answer, failed)

    @app.handle_errors(Exception)
    def unexpected_error(self, request, failure):
        return unexpected_error_answer(request, failure, self.log)

    # --- /connection ------------------------------------------------------------------------

    @app.route("/connection/find_all", methods=["GET", "POST"])
    def connection_find_all(self, request):
        json_body(request, ())
        found = [session.public_fields() for session in self.sessions]
        return self._found(request, found, "remote_connections", {}, "No connections")

    @app.route("/connection/find", methods=["POST"])
    def connection_find(self, request):
        body = json_body(request, ("sessionId", "appKey", "sipLogin", "clientVersion"))
        found = [
            fields for fields in (session.public_fields() for session in self.sessions)
            if all(fields.get(name) == value for name, value in body.items())
        ]
        return self._found(request, found, "remote_connections", body, "No connection matches")

    @app.route("/connection/terminate", methods=["POST"])
    def connection_terminate(self, request):
        body = json_body(request, ("sessionId",))
        session_id = body.get("sessionId")
        if not isinstance(session_id, str):
            raise InvalidField("sessionId", "required, as text")
        session = self.sessions.get(session_id)
        session.connection.close(1000, "Terminated by REST")
        # A keepAlive session whose socket is already gone has nothing to close: end it here.
        self.sessions.close(session, "Terminated by REST")
        request.setResponseCode(200)
        return b""

    @app.route("/", branch=True, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def module_method(self, request):
        """
        A method a module added (L{RouteTable}); any other path is 404.
        """
        path = "/" + "/".join(segment.decode("utf-8", "replace") for segment in request.postpath)
        route = self.routes.get(path)
        if route is None or request.method.decode("ascii", "replace") not in route.methods:
            raise NotFound(f"No REST method {path}")
        body = json_body(request, route.fields)
        document = route.handler(body)
        if document is None:
            request.setResponseCode(200)
            return b""
        return write_json(request, 200, document)
