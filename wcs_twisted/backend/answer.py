# -*- test-case-name: tests.backend.test_hooks -*-
"""
One backend answer: its body read under a size cap, and what it means (ok, down, refused why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

#: Largest backend answer read; a bigger one counts as a failed hook.
MAX_RESPONSE_BYTES = 1024 * 1024

#: Answers meaning "the application behind me is down" (a proxy speaking), not "no".
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})

_REASON_LIMIT = 200


class ResponseTooLarge(Exception):
    """
    A backend answer was longer than L{MAX_RESPONSE_BYTES}.
    """


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


class CappedBody(Protocol):
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


def describe_failure(error: BaseException, timeout: float) -> str:
    """
    One line saying why a request failed, for the log.
    """
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, ResponseFailed) and error.reasons:
        inner = error.reasons[0].value
        return f"{type(error).__name__} ({type(inner).__name__}: {inner})"
    return f"{type(error).__name__}: {error}".strip()
