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

    def _status(self, request) -> str:
        call_id = json_body(request, ("callId",)).get("callId")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidField("callId", "required, as text")
        found = self.rest.require_calls().find({"callId": call_id})
        if not found:
            raise NotFound(f"Call {call_id} not found")
        return found[0].to_wcs()["status"]

    @app.route("/call", methods=["POST"])
    def call(self, request):
        call = self.rest.start_call(flatten_call(json_body(request, None)))
        return _text(request, 200, call.to_wcs()["status"])

    @app.route("/getStatus", methods=["POST"])
    def get_status(self, request):
        return _text(request, 200, self._status(request))

    @app.route("/sendDTMF", methods=["POST"])
    def send_dtmf(self, request):
        self.rest.require_calls().rest_send_dtmf(json_body(request, ("callId", "dtmf", "type")))
        request.setResponseCode(200)
        return b""

    @app.route("/getCalls", methods=["GET", "POST"])
    def get_calls(self, request):
        json_body(request, ())
        return write_json(request, 200, [call.to_wcs() for call in self.rest.require_calls().find({})])

    @app.route("/hangup", methods=["POST"])
    def hangup(self, request):
        self.rest.require_calls().terminate(json_body(request, ("callId",)))
        request.setResponseCode(200)
        return b""

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
