# -*- test-case-name: tests.test_modules -*-
"""
Pluggable modules: finding them, starting them with a context, stopping them.

Over 600 lines: discovery, the context (with the site folders it publishes) and the service
are one lifecycle.

Modules (recording, RTMP republishing, the call audit log, third-party ones) are
C{twisted.plugin} drop-ins providing L{IWcsModule}.  Built-in ones live in the C{wcs_plugins}
package (the top-level C{plugins/} folder); a third party drops one .py file into a folder named by
the C{plugin_dirs} setting, which is added to that package's path before discovery.  A drop-in
that cannot be imported, that is not a valid module, or whose C{start} fails is logged with its
name and skipped: one bad plugin never stops the server.

A module sees the server only through its L{ModuleContext}: it reads the configuration keys it
declares (C{config_keys}) with C{setting}, adds REST methods with C{route}, publishes folders
on the HTTP site with C{serve_directory} (L{SiteMounts}), and uses the public toolkit
(L{wcs_twisted.toolkit}) for media work.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any, Callable, Iterable, Optional, Sequence

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    maybeDeferred,
    succeed,
)
from twisted.logger import Logger, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.web.resource import ForbiddenResource, NoResource, Resource
from twisted.web.static import File
from zope.interface import implementer
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

import wcs_twisted
from wcs_twisted.config import KEYS_BY_NAME, PREFIX_KEYS, ModuleKey
from wcs_twisted.interfaces import ICallObserver, IModuleContext, IWcsModule
from wcs_twisted.rest.routes import RestRoute, RouteTable

__all__ = [
    "ModuleContext",
    "ModuleService",
    "PLUGIN_PACKAGE",
    "SiteMounts",
    "add_plugin_dirs",
    "config_keys",
    "declared_keys",
    "discover_modules",
    "plugin_package",
]

log = Logger()

#: The plugin package every module drop-in belongs to (setup.py installs plugins/ under it).
PLUGIN_PACKAGE = "wcs_plugins"

#: Seconds a module's stop() may take before shutdown goes on without it.
STOP_TIMEOUT = 10.0

_CALL_EVENTS = ("call_status_changed", "call_transfer_changed", "call_dtmf_received")


# --- discovery ------------------------------------------------------------------------------------


def plugin_package() -> types.ModuleType:
    """
    The C{wcs_plugins} package.

    Installed, it is a real package.  In a source checkout installed in editable "compat" mode only
    the checkout root is on C{sys.path}, where the folder is called C{plugins}; it is then loaded
    from there under its installed name, so discovery behaves the same either way.

    @raise ImportError: neither exists (a broken installation).
    """
    try:
        return importlib.import_module(PLUGIN_PACKAGE)
    except ModuleNotFoundError as error:
        if error.name != PLUGIN_PACKAGE:
            raise
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(wcs_twisted.__file__))),
                          "plugins")
    init = os.path.join(folder, "__init__.py")
    if not os.path.isfile(init):
        raise ImportError(f"the {PLUGIN_PACKAGE} plugin package is not installed "
                          f"(and {folder} does not exist)")
    spec = importlib.util.spec_from_file_location(PLUGIN_PACKAGE, init,
                                                  submodule_search_locations=[folder])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PLUGIN_PACKAGE] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[PLUGIN_PACKAGE]
        raise
    return package


def add_plugin_dirs(package: types.ModuleType, folders: Iterable[str],
                    report: bool = True) -> list[str]:
    """
    Make each folder part of C{package}'s path, so its .py files are drop-ins of that package.

    @return: the absolute folders now searched, in the order given; a folder that does not exist
        is left out (and logged if C{report}).
    """
    added = []
    for folder in folders:
        path = os.path.abspath(os.path.expanduser(folder))
        if not os.path.isdir(path):
            if report:
                    log.warn("plugin folder {folder} does not exist; no modules are loaded from "
                         "it", folder=path)
            continue
        if path not in package.__path__:
            package.__path__.append(path)
        added.append(path)
    return added


def _culprit(failure, folders: Sequence[str]) -> str:
    """
    The drop-in file a discovery failure came from: the innermost traceback frame that runs a file
    directly inside a plugin folder, else the file a SyntaxError names.
    """
    for frame in reversed(failure.frames):
        filename = os.path.abspath(frame[1])
        if os.path.dirname(filename) in folders:
            return filename
    filename = getattr(failure.value, "filename", None)
    if isinstance(filename, str) and filename:
        return os.path.abspath(filename)
    return "<unknown plugin file>"


def _load_plugins(package: types.ModuleType, report: bool = True) -> list[Any]:
    """
    C{getPlugins(IWcsModule, package)}, naming the file of every drop-in that fails to load
    (if C{report}).

    C{getPlugins} logs a failing drop-in as an anonymous traceback and goes on; the events it logs
    while it runs are watched here and each failure gets a log line with the file's name.
    """
    failures: list = []

    def watch(event: dict) -> None:
        # twisted.plugin reports through the legacy log.err(): "failure" with "isError".
        if event.get("isError") and event.get("failure") is not None:
            failures.append(event["failure"])

    # Files may have been added since the import system last listed these folders.
    importlib.invalidate_caches()
    globalLogPublisher.addObserver(watch)
    try:
        plugins = list(getPlugins(IWcsModule, package))
    finally:
        globalLogPublisher.removeObserver(watch)
    folders = [os.path.abspath(path) for path in package.__path__]
    for failure in failures if report else ():
        log.error("module plugin {file} failed to load and is skipped: {error}",
                  file=_culprit(failure, folders), error=failure.getErrorMessage())
    return plugins


def defining_module(plugin: Any) -> str:
    """
    The dotted name of the drop-in a module object comes from (a LazyModule says where it was
    made; any other object's class tells).
    """
    return getattr(plugin, "drop_in", None) or type(plugin).__module__


def _origin(plugin: Any) -> str:
    name = defining_module(plugin)
    return getattr(sys.modules.get(name), "__file__", None) or name


def config_keys(plugin: Any) -> tuple[ModuleKey, ...]:
    """
    The configuration keys a module declares (C{config_keys}, optional: none if absent).
    """
    return tuple(getattr(plugin, "config_keys", ()))


def _check(plugin: Any, key_owners: dict[str, str]) -> str:
    """
    The module's name, once it is known to really provide L{IWcsModule} with keys of its own.

    @raise Invalid: it does not, saying why.
    """
    verifyObject(IWcsModule, plugin)
    name = plugin.name
    if not isinstance(name, str) or not name:
        raise Invalid(f"its name is {name!r}, expected a non-empty string")
    for key in config_keys(plugin):
        if not isinstance(key, ModuleKey):
            raise Invalid(f"its config_keys hold {key!r}, expected ModuleKey objects")
        if key.name in KEYS_BY_NAME or any(key.name.startswith(p) for p in PREFIX_KEYS):
            raise Invalid(f"its config key {key.name} is a core key")
        if key_owners.get(key.name, name) != name:
            raise Invalid(f"its config key {key.name} is declared by module "
                          f"{key_owners[key.name]} too")
        try:
            key.type.convert(key.default)
        except ValueError:
            raise Invalid(f"the default {key.default!r} of its config key {key.name} is not "
                          f"{key.type.expected}") from None
    return name


def _valid_modules(package: types.ModuleType, report: bool) -> dict[str, Any]:
    """
    Every module of the package's drop-ins by name, the invalid and the second of a name left
    out (and logged if C{report}).
    """
    modules: dict[str, Any] = {}
    key_owners: dict[str, str] = {}
    for plugin in _load_plugins(package, report):
        try:
            name = _check(plugin, key_owners)
        except Invalid as error:
            if report:
                log.error("module plugin {plugin!r} from {file} is not a valid IWcsModule and "
                          "is skipped: {error}", plugin=plugin, file=_origin(plugin),
                          error=" ".join(str(error).split()))
            continue
        if name in modules:
            if report:
                log.error("module {module} from {file} is skipped: {other} already provides a "
                          "module of that name", module=name, file=_origin(plugin),
                          other=_origin(modules[name]))
            continue
        modules[name] = plugin
        key_owners.update((key.name, name) for key in config_keys(plugin))
    return modules


def declared_keys(plugin_dirs: Iterable[str] = (),
                  package: Optional[types.ModuleType] = None) -> list[ModuleKey]:
    """
    The configuration keys of every module found (built-in and in C{plugin_dirs}, disabled
    ones too: their keys are not typos), for the configuration loader.  Nothing is logged: the
    discovery that starts the modules reports the broken ones.
    """
    if package is None:
        package = plugin_package()
    add_plugin_dirs(package, plugin_dirs, report=False)
    modules = _valid_modules(package, report=False)
    return [key for name in sorted(modules) for key in config_keys(modules[name])]


def discover_modules(plugin_dirs: Iterable[str] = (), disabled: Iterable[str] = (),
                     package: Optional[types.ModuleType] = None) -> list[Any]:
    """
    Every usable module: the built-in drop-ins plus those in C{plugin_dirs}.

    Drop-ins that fail to import, objects that do not really provide L{IWcsModule}
    (C{verifyObject}) or declare config keys that are not theirs to declare, a second module
    with a name already taken, and the modules named in C{disabled} are logged and left out.

    @return: the modules, sorted by name (the start order).
    """
    if package is None:
        package = plugin_package()
    add_plugin_dirs(package, plugin_dirs)
    disabled = set(disabled)
    modules = _valid_modules(package, report=True)
    for name in sorted(disabled.intersection(modules)):
        log.info("module {module} is disabled (modules_disabled)", module=name)
    for name in sorted(disabled.difference(modules)):
        log.warn("modules_disabled names {module}, which no plugin provides", module=name)
    return [modules[name] for name in sorted(modules) if name not in disabled]


# --- folders on the HTTP site ----------------------------------------------------------------------


class _Folder(File):
    """
    One published folder: its files (with byte ranges, as C{twisted.web.static.File} serves
    them, so a <video> element seeks), never a listing of them.
    """

    def directoryListing(self):
        return ForbiddenResource("Listing is not allowed")

    def getChild(self, path: bytes, request):
        if b"\x00" in path:
            return self.childNotFound
        return super().getChild(path, request)


class SiteMounts(Resource):
    """
    The HTTP site's root with the folders modules publish in front of it
    (L{ModuleContext.serve_directory}): a request under a mounted path is served from the
    folder, anything else by C{root}, the site's own tree.  Mounts come and go with their
    modules, after the site is built; the composition root makes this the site's resource.
    """

    def __init__(self, root: Optional[Resource] = None) -> None:
        super().__init__()
        self.root = root
        self._folders: dict[tuple[bytes, ...], str] = {}

    @staticmethod
    def _segments(path: str) -> tuple[bytes, ...]:
        segments = tuple(part.encode("utf-8") for part in path.strip("/").split("/"))
        if not path.startswith("/") or not all(segments) or \
                any(part in (b".", b"..") for part in segments):
            raise ValueError(f"a site path is absolute and has no empty, . or .. part: {path!r}")
        return segments

    def add(self, path: str, folder: str) -> None:
        """
        Serve C{folder} (made if missing) under C{path}, e.g. C{"/client/records"}.

        @raise ValueError: a bad path, or one mounted already.
        """
        segments = self._segments(path)
        if segments in self._folders:
            raise ValueError(f"the site path {path} is served already")
        os.makedirs(folder, exist_ok=True)
        self._folders[segments] = os.path.abspath(folder)

    def remove(self, path: str) -> None:
        self._folders.pop(self._segments(path), None)

    def getChildWithDefault(self, name: bytes, request):
        for segments, folder in self._folders.items():
            rest = list(segments[1:])
            if segments[0] == name and request.postpath[:len(rest)] == rest:
                for _ in rest:
                    request.prepath.append(request.postpath.pop(0))
                return _Folder(folder)
        if self.root is None:
            return NoResource()
        return self.root.getChildWithDefault(name, request)

    def render(self, request):
        if self.root is None:
            return NoResource().render(request)
        return self.root.render(request)


# --- what a module sees ---------------------------------------------------------------------------


@implementer(ICallObserver)
class _GuardedCallObserver:
    """
    Puts a module's call observer on the call table: only the methods it has are called, and its
    exceptions are logged under the module's name instead of reaching the call layer.
    """

    def __init__(self, module: str, observer: Any, module_log: Logger) -> None:
        self._module = module
        self._observer = observer
        self._log = module_log
        self._methods = {name: getattr(observer, name, None) for name in _CALL_EVENTS}

    def _deliver(self, name: str, *args: Any) -> None:
        method = self._methods[name]
        if method is None:
            return
        try:
            method(*args)
        except Exception:
            self._log.failure("module {module}: {observer!r}.{method} failed",
                              module=self._module, observer=self._observer, method=name)

    def call_status_changed(self, call, info) -> None:
        self._deliver("call_status_changed", call, info)

    def call_transfer_changed(self, call, status) -> None:
        self._deliver("call_transfer_changed", call, status)

    def call_dtmf_received(self, call, digit, method) -> None:
        self._deliver("call_dtmf_received", call, digit, method)


@implementer(IModuleContext)
class ModuleContext:
    """
    What one module may reach (L{IModuleContext}).

    @param name: the module's name (for its log namespace and log lines).
    @param settings: the server's frozen L{wcs_twisted.config.Settings}.
    @param reactor: the reactor (connections, timers).
    @param calls: the call table: anything with an C{observers} list whose members get
        L{ICallObserver} calls (L{wcs_twisted.gateway.call_table.CallTable}); None when the server has
        none, and then observers get no events.
    @param streams: the L{IStreamRegistry}.
    @param clock: timers and time; the reactor unless given.
    @param services: shared by every module's context and the REST API: what modules offer the
        front-ends.
    @param routes: the L{RouteTable} the REST API serves module methods from (one per server);
        a context of its own when the server has no REST API.
    @param keys: the L{ModuleKey}s the module declares (L{ModuleService} sets them from the
        module's C{config_keys}).
    @param mounts: the HTTP site's L{SiteMounts} (one per server); one of its own when the
        server has no HTTP site.
    """

    def __init__(self, name: str, *, settings, reactor, calls, streams, clock=None,
                 services: dict[str, Any] | None = None,
                 routes: RouteTable | None = None,
                 keys: Iterable[ModuleKey] = (),
                 mounts: SiteMounts | None = None) -> None:
        self.name = name
        self.services = services if services is not None else {}
        self.routes = routes if routes is not None else RouteTable()
        self.mounts = mounts if mounts is not None else SiteMounts()
        self.keys: dict[str, ModuleKey] = {key.name: key for key in keys}
        self.settings = settings
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.streams = streams
        self.log = Logger(namespace=f"{PLUGIN_PACKAGE}.{name}")
        self._calls = calls
        self._observers: dict[Any, _GuardedCallObserver] = {}
        self._provided: list[str] = []
        self._routes: list[RestRoute] = []
        self._call_startup: list[Callable] = []
        self._mounted: list[str] = []

    def setting(self, name: str) -> Any:
        """
        The value of one of the module's own configuration keys: the file's, else the default.

        @raise KeyError: the module does not declare C{name}.
        """
        key = self.keys.get(name)
        if key is None:
            raise KeyError(f"module {self.name} declares no config key {name!r}")
        return key.value(self.settings)

    def route(self, methods, path: str, handler: Callable[[dict], Any],
              fields: Optional[dict[str, tuple[str, str]]] = None, summary: str = "",
              answers: Optional[dict[str, str]] = None) -> None:
        """
        Serve C{handler} at /rest-api/C{path} until the module stops (L{RestRoute}).

        @raise ValueError: the path is taken.
        """
        if isinstance(methods, str):
            methods = (methods,)
        route = RestRoute(tuple(method.upper() for method in methods), path, handler,
                          fields, summary, dict(answers or {"200": "Done"}), self.name)
        self.routes.add(route)
        self._routes.append(route)

    def serve_directory(self, path: str, folder: str) -> None:
        """
        Serve the files of C{folder} on the HTTP site under C{path} until the module stops
        (L{IModuleContext.serve_directory}).

        @raise ValueError: a bad path, or one served already.
        """
        self.mounts.add(path, folder)
        self._mounted.append(path)

    def extend_call_startup(self, hook: Callable[[Any, dict], None],
                            fields: Iterable[str] = ()) -> None:
        """
        Call C{hook(call, body)} for every call REST /call/startup starts, until the module
        stops; a L{wcs_twisted.errors.DomainError} it raises hangs the call up and is the answer.
        C{fields} are the /call/startup fields it serves (L{IModuleContext.extend_call_startup}).
        """
        self.routes.add_call_startup(self.name, hook, fields)
        self._call_startup.append(hook)

    def add_call_observer(self, observer) -> None:
        if observer in self._observers:
            return
        guard = _GuardedCallObserver(self.name, observer, self.log)
        self._observers[observer] = guard
        if self._calls is None:
            self.log.warn("module {module}: this server has no call table; the observer gets "
                          "no call events", module=self.name)
            return
        self._calls.observers.append(guard)

    def remove_call_observer(self, observer) -> None:
        guard = self._observers.pop(observer, None)
        if guard is not None and self._calls is not None and guard in self._calls.observers:
            self._calls.observers.remove(guard)

    def provide(self, name: str, service: Any) -> None:
        """
        Offer C{service} under C{name} to the front-ends until the module stops.
        """
        self.services[name] = service
        self._provided.append(name)

    def close(self) -> None:
        """
        Undo what the module registered through this context (its module has stopped).
        """
        for observer in list(self._observers):
            self.remove_call_observer(observer)
        for name in self._provided:
            self.services.pop(name, None)
        self._provided = []
        if self._routes or self._call_startup:
            for route in self._routes:
                self.routes.remove(route)
            for hook in self._call_startup:
                self.routes.remove_call_startup(hook)
        self._routes, self._call_startup = [], []
        for path in self._mounted:
            self.mounts.remove(path)
        self._mounted = []


# --- the service ----------------------------------------------------------------------------------


class _Running:
    """
    A module whose start() was called and did not fail (yet).
    """

    def __init__(self, module: Any, context: ModuleContext) -> None:
        self.module = module
        self.context = context
        self.starting: Optional[Deferred] = None
        self.cancelled = False


class ModuleService(Service):
    """
    Starts every module with its own context, and stops them in reverse order at shutdown.

    A module whose start() raises or fails is logged with its name and skipped; the others start
    anyway.  At shutdown each stop() is waited for (boundedly) before the previous module's; a stop
    that fails or hangs is logged and shutdown goes on.

    @param modules: L{IWcsModule} providers, in start order (from L{discover_modules}).
    @param context_factory: makes the context for a module name, e.g.
        C{lambda name: ModuleContext(name, settings=..., reactor=..., calls=..., streams=...)}.
    @param clock: for the stop timeout.
    """

    log = Logger()

    def __init__(self, modules: Iterable[Any], context_factory: Callable[[str], ModuleContext],
                 clock, stop_timeout: float = STOP_TIMEOUT) -> None:
        self.setName("modules")
        self.modules = list(modules)
        self._context_factory = context_factory
        self._clock = clock
        self._stop_timeout = stop_timeout
        self._running: list[_Running] = []

    @property
    def running_modules(self) -> tuple[str, ...]:
        """
        Names of the modules started (or still starting), in start order.
        """
        return tuple(entry.module.name for entry in self._running)

    def startService(self) -> None:
        super().startService()
        for module in self.modules:
            self._start(module)

    def _start(self, module: Any) -> None:
        name = module.name
        try:
            context = self._context_factory(name)
        except Exception:
            self.log.failure("module {module}: no context could be made for it; skipped",
                             module=name)
            return
        context.keys = {key.name: key for key in config_keys(module)}
        entry = _Running(module, context)
        self._running.append(entry)
        starting = maybeDeferred(module.start, context)
        entry.starting = starting

        def started(_: object) -> None:
            entry.starting = None
            self.log.info("module {module} started ({file})", module=name, file=_origin(module))

        def failed(failure) -> None:
            entry.starting = None
            if entry.cancelled and failure.check(CancelledError):
                self.log.info("module {module}: start cancelled by shutdown", module=name)
                return
            if entry in self._running:
                self._running.remove(entry)
            self.log.failure("module {module} ({file}) failed to start and is skipped",
                             failure, module=name, file=_origin(module))
            _close(context, name)

        starting.addCallbacks(started, failed)

    def stopService(self) -> Deferred:
        super().stopService()
        entries = list(reversed(self._running))
        self._running = []
        done: Deferred = succeed(None)
        for entry in entries:
            done.addCallback(lambda _, entry=entry: self._stop(entry))
        return done

    def _stop(self, entry: _Running) -> Deferred:
        name = entry.module.name
        if entry.starting is not None:
            entry.cancelled = True
            entry.starting.cancel()
        stopping = maybeDeferred(entry.module.stop)
        stopping.addTimeout(self._stop_timeout, self._clock)

        def stopped(_: object) -> None:
            self.log.info("module {module} stopped", module=name)

        def failed(failure) -> None:
            if failure.check(TimeoutError):
                self.log.error("module {module} did not stop within {timeout} s; shutdown goes "
                               "on without it", module=name, timeout=self._stop_timeout)
            else:
                self.log.failure("module {module} failed to stop", failure, module=name)

        stopping.addCallbacks(stopped, failed)
        stopping.addCallback(lambda _: _close(entry.context, name))
        return stopping


def _close(context: ModuleContext, name: str) -> None:
    try:
        context.close()
    except Exception:
        log.failure("module {module}: its context could not be closed", module=name)
