# -*- test-case-name: tests.rest.test_api -*-
"""
The OpenAPI 3 description of /rest-api/, served at /rest-api/openapi.json.

One table (L{METHODS}) lists every core REST method with its request fields and answers; a test
checks that every Klein route of RestAPI appears here, so the document cannot fall behind the code.
The methods modules add describe themselves (L{wcs_twisted.rest.routes.RestRoute}) and are listed
with them.
"""

from __future__ import annotations

from typing import Any, Iterable

from wcs_twisted.rest.routes import RestRoute

#: path -> (HTTP methods, summary, request fields {name: (json type, description)}, answers)
METHODS: dict[str, tuple[tuple[str, ...], str, dict[str, tuple[str, str]], dict[str, str]]] = {
    "/connection/find_all": (("get", "post"), "List connected sessions.", {},
                             {"200": "Array of connection objects", "404": "None"}),
    "/connection/find": (("post",), "Find sessions by field.", {
        "sessionId": ("string", ""), "appKey": ("string", ""), "sipLogin": ("string", ""),
        "clientVersion": ("string", "")}, {"200": "Array of connection objects",
                                            "404": "No match"}),
    "/connection/terminate": (("post",), "Close a session's WebSocket.",
                              {"sessionId": ("string", "required")},
                              {"200": "Closed", "404": "Unknown session"}),
    "/call/startup": (("post",), "Start a server-originated SIP call (no browser).", {
        "callId": ("string", "generated when absent"), "callee": ("string", "required"),
        "visibleName": ("string", ""), "hasAudio": ("boolean", "or \"true\"/\"false\""),
        "hasVideo": ("boolean", "or \"true\"/\"false\""),
        "toStream": ("string", "publish the call's media as this stream"),
        "rtmpUrl": ("string", "republish to RTMP"),
        "rtmpStream": ("string", "RTMP name, after rtmp_transponder_stream_name_prefix"),
        "sipLogin": ("string", "required"), "sipAuthenticationName": ("string", ""),
        "sipPassword": ("string", ""), "sipDomain": ("string", ""),
        "sipOutboundProxy": ("string", ""), "sipPort": ("string", "number or string"),
        "sipRegisterRequired": ("boolean", ""), "appKey": ("string", ""),
        "custom": ("object", ""), "sipHeaders": ("object", "X- headers for the INVITE")},
        {"200": "Accepted (empty body)", "400": "Invalid field", "409": "callId or RTMP in use"}),
    "/call/find": (("post",), "Find calls by call-object field.", {
        "callId": ("string", ""), "callee": ("string", ""), "caller": ("string", ""),
        "status": ("string", ""), "rtmpUrl": ("string", "")},
        {"200": "Array of call objects", "404": "No match (including ended calls)"}),
    "/call/find_all": (("get", "post"), "List calls.", {},
                       {"200": "Array of call objects", "404": "None"}),
    "/call/terminate": (("post",), "Hang up a call.", {"callId": ("string", "required")},
                        {"200": "Terminated", "404": "Unknown call"}),
    "/call/send_dtmf": (("post",), "Send DTMF to the SIP side.", {
        "callId": ("string", "required"), "dtmf": ("string", "digits 0-9 * # A-D"),
        "type": ("string", "RFC2833 (default), INFO or INFO_RELAY")},
        {"200": "Sent", "400": "Invalid digits or type", "404": "Unknown call"}),
    "/call/inject_stream/startup": (("post",), "Play a stream's audio to the SIP side instead of "
                                    "the browser's.", {
        "callId": ("string", "required"), "streamName": ("string", "required")},
        {"200": "Injected (a call with a stream injected switches to this one)",
         "400": "Missing field", "404": "Unknown call or stream",
         "500": "The call has no SIP audio yet"}),
    "/call/inject_stream": (("post",), "Older name of /call/inject_stream/startup.", {
        "callId": ("string", "required"), "streamName": ("string", "required")},
        {"200": "Injected", "400": "Missing field", "404": "Unknown call or stream",
         "500": "The call has no SIP audio yet"}),
    "/call/inject_stream/terminate": (("post",), "The SIP side hears the browser again.", {
        "callId": ("string", "required"), "streamName": ("string", "ignored")},
        {"200": "Stopped", "404": "Unknown call, or no stream injected"}),
    "/stream/find": (("post",), "Find streams (published, and played over the WebSocket).", {
        "mediaSessionId": ("string", ""), "name": ("string", ""),
        "published": ("boolean", "or \"true\"/\"false\""), "status": ("string", ""),
        "sessionId": ("string", ""), "appKey": ("string", ""),
        "mediaType": ("string", "publish or play"), "mediaProvider": ("string", ""),
        "audioCodec": ("string", ""), "videoCodec": ("string", ""),
        "display": ("array", "accepted; [\"metrics\"] adds nothing yet")},
        {"200": "Array of stream objects", "404": "No match", "500": "Bad parameters"}),
    "/stream/find_all": (("get", "post"), "List streams.", {},
                         {"200": "Array of stream objects", "404": "None"}),
    "/stream/terminate": (("post",), "Stop players and end published streams "
                                     "(\"Stopped by rest /terminate\"); {} stops all.", {
        "mediaSessionId": ("string", ""), "mediaSessionIds": ("array", "any of these ids"),
        "name": ("string", ""), "published": ("boolean", "or \"true\"/\"false\""),
        "status": ("string", ""), "sessionId": ("string", ""), "appKey": ("string", ""),
        "mediaType": ("string", ""), "mediaProvider": ("string", ""),
        "audioCodec": ("string", ""), "videoCodec": ("string", "")},
        {"200": "Stopped", "404": "No match", "500": "Bad parameters"}),
    "/openapi.json": (("get",), "This document.", {}, {"200": "OpenAPI 3 document"}),
}


def _schema(kind: str, text: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind, "description": text}
    if kind == "array":
        schema["items"] = {"type": "string"}
    return schema


def openapi_document(module_routes: Iterable[RestRoute] = ()) -> dict[str, Any]:
    """
    The document: the core methods, then those modules added.
    """
    described = dict(METHODS)
    for route in module_routes:
        described[route.path] = (tuple(method.lower() for method in route.methods),
                                 route.summary, dict(route.fields or {}), dict(route.answers))
    paths: dict[str, Any] = {}
    for path, (methods, summary, fields, answers) in described.items():
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {code: {"description": text} for code, text in answers.items()},
        }
        if fields:
            operation["requestBody"] = {"content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "properties": {name: _schema(kind, text)
                               for name, (kind, text) in fields.items()}}}}}
        paths[path] = {method: operation for method in methods}
    return {
        "openapi": "3.0.3",
        "info": {"title": "wcs-twisted REST API", "version": "0.1.0",
                 "description": "WCS-compatible call and session methods."},
        "servers": [{"url": "/rest-api"}],
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"basic": []}],
        "paths": paths,
    }
