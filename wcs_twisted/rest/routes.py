# -*- test-case-name: tests.rest.test_module_routes -*-
"""
The REST methods modules add under /rest-api/ (C{IModuleContext.route}), and their hooks into
/call/startup (C{IModuleContext.extend_call_startup}).

A module declares a route with its fields and answers; L{wcs_twisted.rest.api.RestAPI} serves it
behind the same auth, CORS, JSON decoding, field checks and error mapping as its own methods, and
lists it in /rest-api/openapi.json.  A handler never sees HTTP: it gets the request's JSON object
and returns what to answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

__all__ = ["RestRoute", "RouteTable"]


@dataclass(frozen=True)
class RestRoute:
    """
    One REST method a module adds.

    @ivar methods: HTTP methods, upper case (C{("GET", "POST")}).
    @ivar path: below /rest-api/, starting with C{/} (C{"/push/startup"}).
    @ivar handler: C{handler(body)} with the request's JSON object (C{{}} for an empty body);
        returns the JSON document answered with 200, or None for an empty 200; raises a
        L{wcs_twisted.errors.DomainError} for 400/404/409/500.
    @ivar fields: the fields a body may hold, C{{name: (json type, description)}}; others are
        refused with 400.  None: the handler checks the fields itself.
    @ivar summary: one line for the OpenAPI document.
    @ivar answers: C{{"200": "what it returns", "404": "when"}} for the OpenAPI document.
    @ivar module: the name of the module that added it.
    """

    methods: tuple[str, ...]
    path: str
    handler: Callable[[dict[str, Any]], Any]
    fields: Optional[Mapping[str, tuple[str, str]]]
    summary: str
    answers: Mapping[str, str]
    module: str


class RouteTable:
    """
    The module routes and /call/startup hooks of one server.

    @ivar reserved: paths the REST API serves itself; a module cannot take them.
    """

    def __init__(self) -> None:
        self.reserved: frozenset[str] = frozenset()
        self._routes: dict[str, RestRoute] = {}
        self._call_startup: list[tuple[str, Callable[[Any, dict[str, Any]], None]]] = []
        self._served_fields: list[tuple[Callable[..., None], frozenset[str]]] = []

    def add(self, route: RestRoute) -> None:
        """
        @raise ValueError: the path is not absolute, is a core path, or another module's.
        """
        if not route.path.startswith("/") or route.path.endswith("/") or "//" in route.path:
            raise ValueError(f"REST path {route.path!r} must start with / and not end with /")
        if route.path in self.reserved:
            raise ValueError(f"REST path {route.path} is served by the server itself")
        taken = self._routes.get(route.path)
        if taken is not None:
            raise ValueError(f"REST path {route.path} is already served by module {taken.module}")
        self._routes[route.path] = route

    def remove(self, route: RestRoute) -> None:
        if self._routes.get(route.path) is route:
            del self._routes[route.path]

    def get(self, path: str) -> Optional[RestRoute]:
        return self._routes.get(path)

    def __iter__(self):
        return iter(sorted(self._routes.values(), key=lambda route: route.path))

    def add_call_startup(self, module: str, hook: Callable[[Any, dict[str, Any]], None],
                         fields: Iterable[str] = ()) -> None:
        self._call_startup.append((module, hook))
        self._served_fields.append((hook, frozenset(fields)))

    def remove_call_startup(self, hook: Callable[[Any, dict[str, Any]], None]) -> None:
        self._call_startup = [entry for entry in self._call_startup if entry[1] is not hook]
        self._served_fields = [entry for entry in self._served_fields if entry[0] is not hook]

    def serves_call_field(self, name: str) -> bool:
        """
        Whether a running module's /call/startup hook serves the field C{name}.
        """
        return any(name in fields for _, fields in self._served_fields)

    def call_started(self, call, body: dict[str, Any]) -> None:
        """
        Run every /call/startup hook for a call REST just started, in registration order.

        @raise wcs_twisted.errors.DomainError: a hook refused the call (the caller hangs it up).
        """
        for _, hook in list(self._call_startup):
            hook(call, body)
