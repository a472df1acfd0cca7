# -*- test-case-name: tests.backend.test_hooks -*-
"""
Which backend hears a hook and what a session's C{restClientConfig} says about it (WCS spec 12).

Plain values, no I/O: the configured applications (C{rest_hook*.<appKey>} keys) and the
per-method rules a backend hands back from C{connect}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_APP = "defaultApp"

DIRECT_METHODS = ("call", "answer", "hangup", "hold", "unhold", "transfer", "sendDtmf")
EVENT_METHODS = ("ConnectionStatusEvent", "RegistrationStatusEvent", "CallStatusEvent",
                 "TransferStatusEvent")

#: Fields the server owns: no backend answer overwrites them.
SERVER_FIELDS = frozenset({"nodeId", "appKey", "sessionId", "authToken"})


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
