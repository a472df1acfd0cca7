# -*- test-case-name: tests.signalling.test_messages -*-
"""
The WCS WebSocket envelope, decoded and encoded without any I/O.

Clients send C{{"message": name, "data": [obj]}}; the server answers in the same shape and must
always include a C{data} array, because the Web SDK indexes C{data[0]} of every message before it
dispatches (spec section 1.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


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


def fail(info: str, api_method: str | None = None, **extra: Any) -> list[dict[str, Any]]:
    """
    The C{data} array of a C{fail} message.
    """
    body: dict[str, Any] = {"status": "FAILED", "info": info}
    if api_method is not None:
        body["apiMethod"] = api_method
    body.update(extra)
    return [body]
