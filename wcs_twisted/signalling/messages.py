# -*- test-case-name: tests.signalling.test_messages -*-
"""
The whole WCS WebSocket wire format, without any I/O: the envelope both ways, and every server
message the gateway's typed events become (L{ClientConnection}).

Clients send C{{"message": name, "data": [obj]}}; the server answers in the same shape and must
always include a C{data} array, because the Web SDK indexes C{data[0]} of every message before it
dispatches (spec section 1.2).  The client messages' names are dispatched in
L{wcs_twisted.signalling.protocol}; their fields are WCS field names shared with the REST API and
read by the gateway's call and stream tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from wcs_twisted.interfaces import IClientConnection, IStreamEventRecipient


class MessageError(Exception):
    """
    A client message cannot be used; C{info} is sent back in a C{fail}.
    """

    def __init__(self, info: str, api_method: str | None = None) -> None:
        super().__init__(info)
        self.info = info
        self.api_method = api_method


@dataclass(frozen=True)
class ClientMessage:
    """
    One decoded client message: its name and C{data[0]} (None for ping/pong).
    """

    name: str
    payload: dict[str, Any] | None


def decode(raw: bytes) -> ClientMessage:
    """
    Decode one text frame.

    @raise MessageError: not UTF-8, not JSON, or not the WCS envelope.
    """
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise MessageError("Malformed message: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise MessageError(f"Malformed JSON: {error.msg} at position {error.pos}") from None
    except RecursionError:
        # "[" * 1000 and the like: refused like any malformed text, the connection stays.
        raise MessageError("Malformed JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise MessageError("Malformed message: expected a JSON object")
    name = document.get("message")
    if not isinstance(name, str) or not name:
        raise MessageError("Malformed message: 'message' must be a non-empty string")
    data = document.get("data", [None])
    if not isinstance(data, list):
        raise MessageError("Malformed message: 'data' must be an array", api_method=name)
    payload = data[0] if data else None
    if payload is not None and not isinstance(payload, dict):
        raise MessageError("Malformed message: data[0] must be an object or null",
                           api_method=name)
    return ClientMessage(name, payload)


def encode(name: str, data: list[Any]) -> bytes:
    """
    Encode one server message; C{data} is always present.
    """
    return json.dumps({"message": name, "data": data}, separators=(",", ":")).encode("utf-8")


def fail(info: str, api_method: str | None = None) -> tuple[str, list[Any]]:
    """
    C{fail}: a client message refused, naming the message (apiMethod) when known.
    """
    body: dict[str, Any] = {"status": "FAILED", "info": info}
    if api_method is not None:
        body["apiMethod"] = api_method
    return "fail", [body]


# --- server messages: the gateway's typed events on the wire ----------------------------------

#: The message that carries each call status (the SDK reads only obj.status; spec 6.2).
MESSAGE_FOR_CALL_STATUS = {
    "TRYING": "notifyTryingResponse",
    "RING": "ring",
    "RING_MEDIA": "ring",
    "SESSION_PROGRESS": "ring",
    "ESTABLISHED": "talk",
    "HOLD": "hold",
    "BUSY": "finish",
    "FINISH": "finish",
    "FAILED": "finish",
}

#: The apiMethod of a registration failure's C{fail} (WebSDK 2.0 shows it, then the close).
REGISTRATION_STATUS_EVENT = "RegistrationStatusEvent"
#: The apiMethod of a refused C{connection}.
CONNECTION_STATUS_EVENT = "ConnectionStatusEvent"


def call_status(call, info: str | None) -> tuple[str, list[Any]]:
    """
    C{notifyTryingResponse}/C{ring}/C{talk}/C{hold}/C{finish}: the call object, plus its info.
    """
    body = call.to_wcs()
    if info is not None:
        body["info"] = info
    return MESSAGE_FOR_CALL_STATUS[body["status"]], [body]


def incoming_call(call) -> tuple[str, list[Any]]:
    """
    C{notifyIncomingCall}: the call object (status RING).
    """
    return "notifyIncomingCall", [call.to_wcs()]


def remote_sdp(media_id: str, sdp: str, is_answer: bool) -> tuple[str, list[Any]]:
    """
    C{setRemoteSDP[id, sdp, isAnswer]} for a call or a stream.
    """
    return "setRemoteSDP", [media_id, sdp, is_answer]


def stream_status(stream) -> tuple[str, list[Any]]:
    """
    C{notifyStreamStatusEvent}: the stream object.
    """
    return "notifyStreamStatusEvent", [stream.to_wcs()]


def stream_event(media_session_id: str, event_type: str, payload: Any) -> tuple[str, list[Any]]:
    """
    C{notifyStreamEvent}: a publisher's event relayed to one player (the SDK fires
    STREAM_EVENT on the stream with that mediaSessionId; spec 4).
    """
    return "notifyStreamEvent", [{"mediaSessionId": media_session_id, "type": event_type,
                                  "payload": payload}]


def available_stream(media_session_id: str, available: bool,
                     info: str | None) -> tuple[str, list[Any]]:
    """
    C{availableStream}: the answer to the client message of that name.  C{status} is the text
    C{"true"} or C{"false"}: the SDK resolves C{available()} only on C{status == "true"}, which
    a JSON boolean never equals (spec 4).
    """
    body: dict[str, Any] = {"id": media_session_id, "status": "true" if available else "false"}
    if info is not None:
        body["info"] = info
    return "availableStream", [body]


def dtmf(call_id: str, digit: str, method: str) -> tuple[str, list[Any]]:
    """
    C{notifyDtmfEvent}: a digit from the SIP side (the 2.0 SDK ignores it harmlessly).
    """
    return "notifyDtmfEvent", [{"callId": call_id, "dtmf": digit, "type": method}]


def transfer_status(call, status, sip_status: int | None) -> tuple[str, list[Any]]:
    """
    C{notifyTransferEvent}: the call object with the transfer's status (spec 5.4).
    """
    body = call.to_wcs()
    body["status"] = status.value
    if sip_status is not None:
        body["sipStatus"] = sip_status
    return "notifyTransferEvent", [body]


def registration_status(state, info: str | None) -> tuple[str, list[Any]]:
    """
    C{registered} on success; a failure is a C{fail} with apiMethod RegistrationStatusEvent.
    """
    if state.value == "REGISTERED":
        return "registered", []
    return "fail", [{"apiMethod": REGISTRATION_STATUS_EVENT, "status": state.value,
                     "info": info}]


def user_data(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """
    C{getUserData}: the connection object, answering C{connection}.
    """
    return "getUserData", [fields]


PING = ("ping", [])


@implementer(IClientConnection, IStreamEventRecipient)
class ClientConnection:
    """
    L{IClientConnection} by encoding: each typed event becomes its message, handed to
    L{send_message}, which a subclass implements (the WebSocket channel, a test recorder).
    """

    peer = "unknown"

    def send_message(self, name: str, data: list[Any]) -> None:
        raise NotImplementedError()

    def close(self, code: int, reason: str) -> None:
        raise NotImplementedError()

    def call_status(self, call, info):
        self.send_message(*call_status(call, info))

    def incoming_call(self, call):
        self.send_message(*incoming_call(call))

    def remote_sdp(self, media_id, sdp, is_answer):
        self.send_message(*remote_sdp(media_id, sdp, is_answer))

    def stream_status(self, stream):
        self.send_message(*stream_status(stream))

    def stream_event(self, media_session_id, event_type, payload):
        self.send_message(*stream_event(media_session_id, event_type, payload))

    def dtmf(self, call_id, digit, method):
        self.send_message(*dtmf(call_id, digit, method))

    def transfer_status(self, call, status, sip_status):
        self.send_message(*transfer_status(call, status, sip_status))

    def registration_status(self, state, info):
        self.send_message(*registration_status(state, info))
