# -*- test-case-name: tests.rest.test_legacy -*-
"""
The legacy WCS call API under /RESTCall/, which the official "SIP as RTMP" (v1) demo page still
uses: C{call}, C{getStatus}, C{sendDTMF}, C{getCalls} and C{hangup}, mapped onto the calls of
L{wcs_twisted.rest.api.RestAPI} (C{/call/startup} with its module hooks, C{/call/find},
C{/call/send_dtmf}, C{/call/terminate}).

Why its answers look as they do: the page shows any successful answer that is I{not} JSON as the
call's status and turns its button into Hangup, ignores JSON answers, and reads every error as
"FINISHED" (its polling stops).  So C{call} and C{getStatus} answer the call's status as plain
text, C{hangup} and C{sendDTMF} an empty 200 (the next C{getStatus} is the 404 that ends the
page's call), and C{getCalls} a JSON array, empty included.  Errors are the JSON answers of the
modern API; L{wcs_twisted.rest.gate.RestGate} stands in front with the same origin policy, CORS
headers and auth.

In a cluster (docs/scaling.md) the legacy methods see the whole cluster as the modern ones do:
C{getCalls} lists every node's calls, C{getStatus} finds a call of another node, and
C{sendDTMF}/C{hangup} for such a call are carried out by its owner.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.logger import Logger

from wcs_twisted.errors import DomainError, InvalidField, NotFound
from wcs_twisted.rest.api import (
    RestAPI, domain_error_answer, json_body, unexpected_error_answer, write_json,
)

__all__ = ["LegacyCallAPI"]

#: The legacy C{/RESTCall/call} body: the account's fields sit in a C{connection} object.
CONNECTION_FIELD = "connection"


def flatten_call(body: dict[str, Any]) -> dict[str, Any]:
    """
    A legacy C{/RESTCall/call} body as a C{/call/startup} one: the C{connection} object's
    fields (sipLogin, sipPassword, ...) beside the call's.

    @raise InvalidField: C{connection} is not an object, or names a call field too.
    """
    fields = dict(body)
    connection = fields.pop(CONNECTION_FIELD, None) or {}
    if not isinstance(connection, dict):
        raise InvalidField(CONNECTION_FIELD, "expected an object of the SIP account's fields")
    for name, value in connection.items():
        if name in fields:
            raise InvalidField(name, "given both in the body and in connection")
        fields[name] = value
    return fields


def _text(request, status: int, text: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode("utf-8")


class LegacyCallAPI:
    """
    /RESTCall/*: one instance per server, over the server's L{RestAPI}.
    """

    app = Klein()
    log = Logger()

    def __init__(self, rest: RestAPI) -> None:
        self.rest = rest

    def _status(self, request):
        """
        The status of the body's call, here or (in a cluster) on the node that owns it.
        """
        call_id = json_body(request, ("callId",)).get("callId")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidField("callId", "required, as text")
        found = [call.to_wcs() for call in self.rest.require_calls().find({"callId": call_id})]
        cluster = self.rest.cluster_for(request)

        def status(found):
            if not found:
                raise NotFound(f"Call {call_id} not found")
            return _text(request, 200, found[0]["status"])

        if found or cluster is None:
            return status(found)
        return cluster.remote_calls({"callId": call_id}).addCallback(status)

    def _here_or_owner(self, request, act, path: str):
        """
        Carry out C{act} on a call of this node; a call this node does not have is carried
        out by its owner in a cluster as the modern method C{path} (same body, same
        credentials).  Either answers an empty 200.
        """
        try:
            act()
        except NotFound as error:
            cluster = self.rest.cluster_for(request)
            if cluster is None:
                raise
            return self.rest.relay_to_owner(cluster, request, path, error)
        request.setResponseCode(200)
        return b""

    @app.route("/call", methods=["POST"])
    def call(self, request):
        call = self.rest.start_call(flatten_call(json_body(request, None)))
        return _text(request, 200, call.to_wcs()["status"])

    @app.route("/getStatus", methods=["POST"])
    def get_status(self, request):
        return self._status(request)

    @app.route("/sendDTMF", methods=["POST"])
    def send_dtmf(self, request):
        body = json_body(request, ("callId", "dtmf", "type"))
        return self._here_or_owner(
            request, lambda: self.rest.require_calls().rest_send_dtmf(body), "/call/send_dtmf")

    @app.route("/getCalls", methods=["GET", "POST"])
    def get_calls(self, request):
        json_body(request, ())
        found = [call.to_wcs() for call in self.rest.require_calls().find({})]
        cluster = self.rest.cluster_for(request)
        if cluster is None:
            return write_json(request, 200, found)
        return cluster.remote_calls({}).addCallback(
            lambda more: write_json(request, 200, found + list(more)))

    @app.route("/hangup", methods=["POST"])
    def hangup(self, request):
        body = json_body(request, ("callId",))
        return self._here_or_owner(
            request, lambda: self.rest.require_calls().terminate(body), "/call/terminate")

    @app.route("/", branch=True, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def unknown(self, request):
        path = "/" + "/".join(segment.decode("utf-8", "replace") for segment in request.postpath)
        raise NotFound(f"No legacy REST method /RESTCall{path}")

    @app.handle_errors(DomainError)
    def domain_error(self, request, failure):
        return domain_error_answer(request, failure.value, self.log)

    @app.handle_errors(Exception)
    def unexpected_error(self, request, failure):
        return unexpected_error_answer(request, failure, self.log)
