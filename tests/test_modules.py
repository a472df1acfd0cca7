"""
Tests for L{wcs_twisted.modules}, the built-in drop-ins in plugins/ and the call_log module.
"""

import ast
import base64
import json
import os
import sys

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, fail, gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer
from zope.interface.verify import verifyObject

from wcs_twisted.config import Settings
from wcs_twisted.interfaces import ICallObserver, IModuleContext, IStreamSource, IWcsModule
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules import (
    STOP_TIMEOUT,
    defining_module,
    ModuleContext,
    ModuleService,
    SiteMounts,
    add_plugin_dirs,
    discover_modules,
    plugin_package,
)
from wcs_twisted.modules_builtin.call_log import CallLog
from tests.modules_builtin.contexts import module_context
from wcs_twisted.gateway.call import Call
from wcs_twisted.gateway.call_events import CallStatus, TransferStatus
from wcs_twisted.gateway.call_table import CallSettings, CallTable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGINS = os.path.join(ROOT, "plugins")

#: What a drop-in may import at module level (docs/plugins.md, anchors 7.2.9).
DROP_IN_IMPORTS = {"zope.interface", "twisted.plugin", "wcs_twisted.interfaces",
                   "wcs_twisted.plugin_proxy", "wcs_twisted.toolkit.config"}

#: A complete third-party drop-in, as docs/plugins.md shows one; NAME and BEHAVIOUR are filled in.
DROP_IN = '''
from twisted.plugin import IPlugin
from zope.interface import implementer

from wcs_twisted.interfaces import IWcsModule


@implementer(IPlugin, IWcsModule)
class Greeter:
    name = "NAME"

    def __init__(self):
        self.events = []

    def start(self, context):
        BEHAVIOUR
        self.events.append(("start", context.name, context.settings.ws_port))

    def stop(self):
        self.events.append(("stop",))


greeter = Greeter()
'''


def drop_in(name, behaviour="pass"):
    """
    The source of a drop-in module called C{name} whose start() first runs C{behaviour}.
    """
    return DROP_IN.replace("NAME", name).replace("BEHAVIOUR", behaviour)


class DropInFolder:
    """
    A temporary plugin folder for one test; the plugin package's path and sys.modules are put
    back afterwards (twisted/test/test_plugin.py does the same with its temporary packages).
    """

    def __init__(self, case):
        self.path = os.path.abspath(case.mktemp())
        os.makedirs(self.path)
        package = plugin_package()
        saved = list(package.__path__)
        self._names = []

        def restore():
            package.__path__[:] = saved
            for name in self._names:
                sys.modules.pop(f"{package.__name__}.{name}", None)

        case.addCleanup(restore)

    def write(self, module_name, source):
        """
        Write C{module_name}.py; returns its path.
        """
        self._names.append(module_name)
        path = os.path.join(self.path, module_name + ".py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        return path


def captured(case):
    """
    Every log event published while the test runs.
    """
    return EventLoggingObserver.createWithCleanup(case, globalLogPublisher)


def texts(events):
    return [formatEvent(event) for event in events]


def module_file(module):
    return os.path.abspath(sys.modules[defining_module(module)].__file__)


class FakeSessions:
    """
    The little of a SessionTable that CallTable's constructor reads.
    """

    node_id = "node-1"

    def __init__(self):
        self.observers = []


def call_table(clock):
    """
    A real CallTable (its observer dispatch is what modules rely on) without SIP or media.
    """
    return CallTable(None, clock, None, FakeSessions(), None, CallSettings(local_domains=()))


def new_call(table, call_id="call-1", incoming=False):
    call = Call(table, call_id, None, incoming,
                {"caller": "alice", "callee": "bob", "visibleName": "Alice"})
    table._add(call)
    return call


def context_factory(clock, calls=None, settings=None, streams=None):
    settings = Settings() if settings is None else settings
    streams = StreamRegistry(clock) if streams is None else streams
    return lambda name: ModuleContext(name, settings=settings, reactor=clock, calls=calls,
                                      streams=streams)


@implementer(IWcsModule)
class ScriptedModule:
    """
    A module whose start() and stop() results are given; it writes what happens to a journal.
    """

    def __init__(self, name, journal, start=None, stop=None):
        self.name = name
        self.journal = journal
        self._start = start
        self._stop = stop
        self.context = None

    def start(self, context):
        self.journal.append(("start", self.name))
        self.context = context
        return self._start() if callable(self._start) else self._start

    def stop(self):
        self.journal.append(("stop", self.name))
        return self._stop() if callable(self._stop) else self._stop


def raising(error):
    def run():
        raise error
    return run


class PluginPackageTests(SynchronousTestCase):
    """
    The wcs_plugins package, installed or in a source checkout.
    """

    def test_package_is_wcs_plugins_holding_plugins_folder(self):
        """
        plugin_package() is the package named wcs_plugins and searches the plugins/ folder.
        """
        package = plugin_package()
        self.assertEqual(package.__name__, "wcs_plugins")
        self.assertIn(os.path.realpath(PLUGINS),
                      [os.path.realpath(path) for path in package.__path__])
        self.assertIs(plugin_package(), package)

    def test_add_plugin_dirs(self):
        """
        Existing folders join the package path once each; a missing one is logged and left out.
        """
        folder = DropInFolder(self)
        events = captured(self)
        missing = os.path.abspath(self.mktemp())
        package = plugin_package()
        added = add_plugin_dirs(package, [folder.path, missing, folder.path])
        self.assertEqual(added, [folder.path, folder.path])
        self.assertEqual(package.__path__.count(folder.path), 1)
        self.assertNotIn(missing, package.__path__)
        self.assertIn(f"plugin folder {missing} does not exist; no modules are loaded from it",
                      texts(events))


class BuiltInModuleTests(SynchronousTestCase):
    """
    The drop-ins shipped in plugins/.
    """

    def built_in_files(self):
        return sorted(name for name in os.listdir(PLUGINS)
                      if name.endswith(".py") and name != "__init__.py")

    def test_every_built_in_drop_in_provides_a_valid_module(self):
        """
        Each file in plugins/ yields a module that passes verifyObject(IWcsModule) and IPlugin.
        """
        found = {}
        for module in getPlugins(IWcsModule, plugin_package()):
            verifyObject(IWcsModule, module)
            self.assertTrue(IPlugin.providedBy(module))
            found[defining_module(module).rsplit(".", 1)[-1] + ".py"] = module.name
        self.assertEqual(sorted(found), self.built_in_files())
        self.assertIn("call_log", found.values())

    def test_discovery_finds_the_built_ins(self):
        """
        discover_modules() with no extra folder returns the built-in modules, sorted by name.
        """
        names = [module.name for module in discover_modules()]
        self.assertIn("call_log", names)
        self.assertEqual(names, sorted(names))

    def test_drop_ins_stay_light(self):
        """
        Drop-in files import only zope.interface, twisted.plugin and wcs_twisted.interfaces at
        module level (the real code is imported when the module starts).
        """
        self.assertNotEqual(self.built_in_files(), [])
        for name in self.built_in_files():
            with open(os.path.join(PLUGINS, name), encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), name)
            imported = set()
            for node in tree.body:
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    imported.add(node.module)
            self.assertEqual(imported - DROP_IN_IMPORTS, set(), name)

    def test_package_init_is_the_two_lines(self):
        """
        plugins/__init__.py only extends __path__ with pluginPackagePaths and sets __all__.
        """
        with open(os.path.join(PLUGINS, "__init__.py"), encoding="utf-8") as handle:
            source = handle.read()
        self.assertIn("__path__.extend(pluginPackagePaths(__name__))", source)
        self.assertIn("__all__", source)


class DropInDiscoveryTests(SynchronousTestCase):
    """
    Third-party drop-ins in a folder named by plugin_dirs.
    """

    def test_drop_in_discovered_started_and_stopped(self):
        """
        A drop-in written into a plugin folder is found next to the built-ins, started with a
        context and stopped at shutdown.
        """
        folder = DropInFolder(self)
        path = folder.write("wcs_test_greeter", drop_in("greeter"))
        modules = discover_modules([folder.path])
        by_name = {module.name: module for module in modules}
        self.assertIn("call_log", by_name)
        greeter = by_name["greeter"]
        verifyObject(IWcsModule, greeter)
        self.assertEqual(module_file(greeter), path)

        clock = Clock()
        service = ModuleService([greeter], context_factory(clock, call_table(clock)), clock)
        service.startService()
        self.assertEqual(greeter.events, [("start", "greeter", 8080)])
        self.assertEqual(service.running_modules, ("greeter",))
        self.successResultOf(service.stopService())
        self.assertEqual(greeter.events[-1], ("stop",))
        self.assertEqual(service.running_modules, ())

    def test_broken_drop_ins_are_skipped_and_named(self):
        """
        Drop-ins with a syntax error, a failing import or an exception at import are each logged
        with their file name and skipped; the good ones are still found.
        """
        folder = DropInFolder(self)
        broken = {
            folder.write("wcs_test_syntax", "def broken(:\n"): "invalid syntax",
            folder.write("wcs_test_import",
                         "import wcs_no_such_library_at_all\n"): "wcs_no_such_library_at_all",
            folder.write("wcs_test_raise", "raise RuntimeError('import exploded')\n"):
                "import exploded",
        }
        folder.write("wcs_test_good", drop_in("good"))
        events = captured(self)
        names = [module.name for module in discover_modules([folder.path])]
        self.assertIn("good", names)
        self.assertIn("call_log", names)
        lines = [event for event in events if event.get("log_format", "").startswith(
            "module plugin {file} failed to load")]
        self.assertEqual(sorted(event["file"] for event in lines), sorted(broken))
        for event in lines:
            self.assertIn(broken[event["file"]], formatEvent(event))
            self.assertIn(event["file"], formatEvent(event))
        self.assertEqual(len(self.flushLoggedErrors(SyntaxError, ImportError, RuntimeError)), 3)

    def test_drop_in_that_is_not_a_valid_module_is_skipped(self):
        """
        An object claiming IWcsModule without a stop() method, or with an empty name, fails
        verifyObject and is logged with its file instead of started.
        """
        folder = DropInFolder(self)
        path = folder.write("wcs_test_invalid", drop_in("invalid").replace(
            "    def stop(self):", "    def stopped(self):"))
        nameless = folder.write("wcs_test_nameless", drop_in(""))
        events = captured(self)
        names = [module.name for module in discover_modules([folder.path])]
        self.assertNotIn("invalid", names)
        self.assertNotIn("", names)
        skipped = [formatEvent(event) for event in events
                   if "is not a valid IWcsModule" in formatEvent(event)]
        self.assertEqual(len(skipped), 2)
        self.assertTrue(any(path in text and "stop" in text for text in skipped), skipped)
        self.assertTrue(any(nameless in text and "name" in text for text in skipped), skipped)

    def test_second_module_of_a_name_is_skipped(self):
        """
        A drop-in reusing a built-in module's name is logged and the built-in one is kept.
        """
        folder = DropInFolder(self)
        path = folder.write("wcs_test_impostor", drop_in("call_log"))
        events = captured(self)
        modules = [module for module in discover_modules([folder.path])
                   if module.name == "call_log"]
        self.assertEqual(len(modules), 1)
        self.assertEqual(module_file(modules[0]), os.path.join(PLUGINS, "wcs_call_log.py"))
        self.assertTrue(any(path in text and "already provides" in text
                            for text in texts(events)))

    def test_disabled_modules_are_not_returned(self):
        """
        Modules named in modules_disabled are left out and logged; a disabled name that no
        plugin provides gets a warning.
        """
        folder = DropInFolder(self)
        folder.write("wcs_test_kept", drop_in("kept"))
        folder.write("wcs_test_off", drop_in("off"))
        events = captured(self)
        names = [module.name for module in discover_modules(
            [folder.path], disabled=["off", "call_log", "nonexistent"])]
        self.assertIn("kept", names)
        self.assertNotIn("off", names)
        self.assertNotIn("call_log", names)
        lines = texts(events)
        self.assertIn("module off is disabled (modules_disabled)", lines)
        self.assertIn("module call_log is disabled (modules_disabled)", lines)
        self.assertIn("modules_disabled names nonexistent, which no plugin provides", lines)

    def test_drop_in_whose_start_raises_is_skipped(self):
        """
        A drop-in whose start() raises is logged with its name and file; the other modules
        start and stop normally.
        """
        folder = DropInFolder(self)
        path = folder.write("wcs_test_bad_start",
                            drop_in("bad_start", "raise RuntimeError('start exploded')"))
        folder.write("wcs_test_after", drop_in("zz_after"))
        folder.write("wcs_test_before", drop_in("aa_before"))
        modules = [module for module in discover_modules([folder.path], disabled=["call_log", "cluster", "recording", "rtmp"])
                   if module.name in ("aa_before", "bad_start", "zz_after")]
        clock = Clock()
        events = captured(self)
        service = ModuleService(modules, context_factory(clock, call_table(clock)), clock)
        service.startService()
        self.assertEqual(service.running_modules, ("aa_before", "zz_after"))
        failures = [event for event in events if "failed to start" in formatEvent(event)]
        self.assertEqual(len(failures), 1)
        self.assertIn("bad_start", formatEvent(failures[0]))
        self.assertIn(path, formatEvent(failures[0]))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(service.stopService())
        by_name = {module.name: module for module in modules}
        self.assertEqual(by_name["bad_start"].events, [])
        self.assertEqual(by_name["aa_before"].events[-1], ("stop",))
        self.assertEqual(by_name["zz_after"].events[-1], ("stop",))


class ModuleServiceTests(SynchronousTestCase):
    """
    Starting and stopping modules, with failures.
    """

    def setUp(self):
        self.clock = Clock()
        self.journal = []
        self.events = captured(self)

    def service(self, *modules, **kwargs):
        return ModuleService(modules, context_factory(self.clock, call_table(self.clock)),
                             self.clock, **kwargs)

    def test_start_in_order_stop_in_reverse(self):
        """
        Modules start in the given order, each with its own context, and stop in reverse.
        """
        a, b = ScriptedModule("a", self.journal), ScriptedModule("b", self.journal)
        service = self.service(a, b)
        service.startService()
        self.assertEqual(self.journal, [("start", "a"), ("start", "b")])
        self.assertEqual((a.context.name, b.context.name), ("a", "b"))
        self.assertEqual(a.context.log.namespace, "wcs_plugins.a")
        self.successResultOf(service.stopService())
        self.assertEqual(self.journal[2:], [("stop", "b"), ("stop", "a")])

    def test_failed_starts_are_skipped(self):
        """
        A start() that raises or returns a failed Deferred is logged with the module's name;
        the other modules run, and a failed module is never stopped.
        """
        modules = (ScriptedModule("raises", self.journal, start=raising(ValueError("bad"))),
                   ScriptedModule("ok", self.journal),
                   ScriptedModule("fails", self.journal,
                                  start=lambda: fail(KeyError("missing"))))
        service = self.service(*modules)
        service.startService()
        self.assertEqual(service.running_modules, ("ok",))
        failed = [formatEvent(e) for e in self.events if "failed to start" in formatEvent(e)]
        self.assertEqual(len(failed), 2)
        self.assertTrue(failed[0].startswith("module raises "))
        self.assertTrue(failed[1].startswith("module fails "))
        self.flushLoggedErrors(ValueError, KeyError)
        self.successResultOf(service.stopService())
        self.assertEqual([entry for entry in self.journal if entry[0] == "stop"], [("stop", "ok")])

    def test_asynchronous_start(self):
        """
        A start() returning a Deferred counts as running meanwhile; if it fails later the
        module is dropped, logged, and not stopped.
        """
        slow, doomed = Deferred(), Deferred()
        service = self.service(ScriptedModule("slow", self.journal, start=slow),
                               ScriptedModule("doomed", self.journal, start=doomed))
        service.startService()
        self.assertEqual(service.running_modules, ("slow", "doomed"))
        slow.callback(None)
        self.assertIn("module slow started", texts(self.events)[-1])
        doomed.errback(RuntimeError("late"))
        self.assertEqual(service.running_modules, ("slow",))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(service.stopService())
        self.assertEqual(self.journal[-1], ("stop", "slow"))
        self.assertNotIn(("stop", "doomed"), self.journal)

    def test_coroutine_start(self):
        """
        start() may be an async def.
        """
        waiting = Deferred()

        @implementer(IWcsModule)
        class AsyncModule:
            name = "async"
            started = False

            async def start(self, context):
                await waiting
                self.started = True

            def stop(self):
                pass

        module = AsyncModule()
        service = self.service(module)
        service.startService()
        self.assertFalse(module.started)
        waiting.callback(None)
        self.assertTrue(module.started)
        self.assertEqual(service.running_modules, ("async",))

    def test_pending_start_is_cancelled_at_shutdown(self):
        """
        A start still pending at shutdown is cancelled, then the module is stopped anyway.
        """
        cancelled = []
        pending = Deferred(cancelled.append)
        service = self.service(ScriptedModule("pending", self.journal, start=pending))
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(cancelled, [pending])
        self.assertEqual(self.journal, [("start", "pending"), ("stop", "pending")])
        self.assertIn("module pending: start cancelled by shutdown", texts(self.events))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_each_stop_waits_for_the_one_after_it(self):
        """
        Stops are sequential: the earlier module stops only once the later one's Deferred fires.
        """
        later = Deferred()
        service = self.service(ScriptedModule("first", self.journal),
                               ScriptedModule("second", self.journal, stop=later))
        service.startService()
        done = service.stopService()
        self.assertNoResult(done)
        self.assertEqual(self.journal[-1], ("stop", "second"))
        later.callback(None)
        self.successResultOf(done)
        self.assertEqual(self.journal[-1], ("stop", "first"))

    def test_failing_and_hanging_stops_do_not_block_shutdown(self):
        """
        A stop() that raises is logged; one that never finishes is abandoned after the stop
        timeout; either way the remaining modules are stopped.
        """
        service = self.service(ScriptedModule("a", self.journal),
                               ScriptedModule("raises", self.journal,
                                              stop=raising(RuntimeError("stop exploded"))),
                               ScriptedModule("hangs", self.journal, stop=Deferred()))
        service.startService()
        done = service.stopService()
        self.assertEqual(self.journal[-1], ("stop", "hangs"))
        self.assertNoResult(done)
        self.clock.advance(STOP_TIMEOUT)
        self.successResultOf(done)
        self.assertEqual([entry for entry in self.journal if entry[0] == "stop"],
                         [("stop", "hangs"), ("stop", "raises"), ("stop", "a")])
        lines = texts(self.events)
        self.assertIn(f"module hangs did not stop within {STOP_TIMEOUT} s; shutdown goes on "
                      "without it", lines)
        self.assertIn("module raises failed to stop", lines)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_observers_left_registered_are_removed_at_stop(self):
        """
        Call observers a module forgot to remove are taken off the call table when it stops.
        """
        table = call_table(self.clock)
        module = ScriptedModule("forgetful", self.journal)
        service = ModuleService([module], context_factory(self.clock, table), self.clock)
        service.startService()
        module.context.add_call_observer(object())
        self.assertEqual(len(table.observers), 1)
        self.successResultOf(service.stopService())
        self.assertEqual(table.observers, [])


class RecordingObserver:
    """
    A call observer that only cares about status changes.
    """

    def __init__(self):
        self.seen = []

    def call_status_changed(self, call, info):
        self.seen.append((call.call_id, call.status.value, info))


class ModuleContextTests(SynchronousTestCase):
    """
    What a module reaches through its context.
    """

    def setUp(self):
        self.clock = Clock()
        self.table = call_table(self.clock)
        self.streams = StreamRegistry(self.clock)
        self.context = ModuleContext("audit", settings=Settings(), reactor=self.clock,
                                     calls=self.table, streams=self.streams)

    def test_provides_the_interface(self):
        """
        ModuleContext provides IModuleContext, and settings are read-only.
        """
        verifyObject(IModuleContext, self.context)
        self.assertIs(self.context.clock, self.clock)
        self.assertIs(self.context.streams, self.streams)
        self.assertEqual(self.context.log.namespace, "wcs_plugins.audit")
        self.assertRaises(Exception, setattr, self.context.settings, "ws_port", 1)

    def test_observer_gets_call_events_it_implements(self):
        """
        An observer with only call_status_changed hears status changes from the real call
        table; the events it lacks are skipped.
        """
        observer = RecordingObserver()
        self.context.add_call_observer(observer)
        self.context.add_call_observer(observer)
        self.assertEqual(len(self.table.observers), 1)
        verifyObject(ICallObserver, self.table.observers[0])
        call = new_call(self.table)
        self.table.transfer_changed(call, TransferStatus.ACCEPTED)
        self.table.dtmf_received(call, "5", "RFC2833")
        call.hang_up("Normal call clearing")
        self.assertEqual(observer.seen, [("call-1", "FINISH", "Normal call clearing")])

    def test_observer_exceptions_stay_in_the_module(self):
        """
        An observer that raises is logged with the module's name and the call goes on.
        """
        events = captured(self)

        class Broken:
            def call_status_changed(self, call, info):
                raise ZeroDivisionError()

        later = RecordingObserver()
        self.context.add_call_observer(Broken())
        self.context.add_call_observer(later)
        call = new_call(self.table)
        call.hang_up()
        self.assertEqual(call.status, CallStatus.FINISH)
        self.assertEqual(len(later.seen), 1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any(text.startswith("module audit: ") and "call_status_changed failed"
                            in text for text in texts(events)))

    def test_remove_and_close(self):
        """
        remove_call_observer takes one observer off; close() takes off the rest.
        """
        one, two = RecordingObserver(), RecordingObserver()
        self.context.add_call_observer(one)
        self.context.add_call_observer(two)
        self.context.remove_call_observer(one)
        self.context.remove_call_observer(object())
        new_call(self.table).hang_up()
        self.assertEqual((len(one.seen), len(two.seen)), (0, 1))
        self.context.close()
        self.assertEqual(self.table.observers, [])

    def test_no_call_table(self):
        """
        Without a call table, adding an observer is logged and harmless.
        """
        events = captured(self)
        context = ModuleContext("lonely", settings=Settings(), reactor=self.clock, calls=None,
                                streams=self.streams)
        context.add_call_observer(RecordingObserver())
        context.close()
        self.assertIn("module lonely: this server has no call table; the observer gets no call "
                      "events", texts(events))


class CallLogTests(SynchronousTestCase):
    """
    The built-in call_log module.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1700000000)
        self.table = call_table(self.clock)
        self.events = captured(self)

    def start(self, **values):
        module = CallLog()
        context = module_context("call_log", self.clock, values=values, calls=self.table)
        module.start(context)
        self.addCleanup(module.stop)
        return module

    def call_events(self):
        return [event for event in self.events if "call_log" in event]

    def test_provides_the_interfaces(self):
        """
        CallLog and its drop-in object are IWcsModules named call_log.
        """
        verifyObject(IWcsModule, CallLog())
        verifyObject(ICallObserver, CallLog())
        [plugin] = [module for module in getPlugins(IWcsModule, plugin_package())
                    if module.name == "call_log"]
        verifyObject(IWcsModule, plugin)

    def test_status_changes_are_logged_with_fields(self):
        """
        Each status change is one event with the call's fields as format fields, and the end
        of a call carries how long it was established.
        """
        self.start()
        call = new_call(self.table, incoming=True)
        call.status = CallStatus.ESTABLISHED
        self.table.status_changed(call, None)
        self.clock.advance(42.5)
        call.hang_up("Normal call clearing")
        established, finished = self.call_events()
        self.assertEqual(established["log_namespace"], "wcs_plugins.call_log")
        self.assertEqual((established["call_id"], established["status"]),
                         ("call-1", "ESTABLISHED"))
        self.assertEqual(formatEvent(finished),
                         "call call-1 FINISH (incoming alice -> bob) sip_status=None "
                         "info=Normal call clearing duration=42.5")
        self.assertEqual(finished["duration"], 42.5)
        self.assertEqual(finished["node_id"], "node-1")

    def test_json_lines_file(self):
        """
        With call_log_file, every record is appended as one JSON line, flushed at once.
        """
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write('{"earlier": true}\n')
        self.start(call_log_file=path)
        call = new_call(self.table)
        self.table.transfer_changed(call, TransferStatus.ACCEPTED)
        call.fail("Failed by error")
        with open(path, encoding="utf-8") as handle:
            lines = [json.loads(line) for line in handle]
        self.assertEqual(lines[0], {"earlier": True})
        self.assertEqual(lines[1]["event"], "transfer")
        self.assertEqual(lines[1]["status"], TransferStatus.ACCEPTED.value)
        self.assertEqual(lines[2], {
            "time": 1700000000.0, "event": "status", "callId": "call-1",
            "direction": "outgoing", "caller": "alice", "callee": "bob", "sessionId": None,
            "appKey": "defaultApp", "nodeId": "node-1", "status": "FAILED", "sipStatus": None,
            "info": "Failed by error", "duration": 0.0,
        })

    def test_dtmf_is_not_logged(self):
        """
        DTMF digits (often PINs) never reach the audit log.
        """
        self.start()
        call = new_call(self.table)
        self.table.dtmf_received(call, "7", "RFC2833")
        self.assertEqual(self.call_events(), [])

    def test_stop_detaches_and_closes(self):
        """
        After stop() nothing more is logged or written.
        """
        path = self.mktemp()
        module = self.start(call_log_file=path)
        module.stop()
        self.assertEqual(self.table.observers, [])
        new_call(self.table).hang_up()
        self.assertEqual(self.call_events(), [])
        with open(path, encoding="utf-8") as handle:
            self.assertEqual(handle.read(), "")

    def test_unwritable_file_fails_the_start(self):
        """
        A call_log_file that cannot be opened makes the module fail to start: the service logs
        it by name and the server goes on.
        """
        [plugin] = [module for module in discover_modules() if module.name == "call_log"]
        settings = Settings(module_values={
            "call_log_file": os.path.join(self.mktemp(), "missing", "calls.log")})
        service = ModuleService([plugin], context_factory(self.clock, self.table, settings),
                                self.clock)
        service.startService()
        self.assertEqual(service.running_modules, ())
        self.assertEqual(self.table.observers, [])
        self.assertTrue(any(text.startswith("module call_log (") and "failed to start" in text
                            for text in texts(self.events)))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.successResultOf(service.stopService())


def documented_drop_ins():
    """
    The complete drop-in files docs/plugins.md shows: {file name: source}.
    """
    with open(os.path.join(ROOT, "docs", "plugins.md"), encoding="utf-8") as handle:
        text = handle.read()
    files = {}
    for block in text.split("```python\n")[1:]:
        source = block.split("```", 1)[0]
        first = source.splitlines()[0]
        if first.startswith("# File: "):
            files[first[len("# File: "):].strip()] = source
    return files


class DocumentedDropInTests(SynchronousTestCase):
    """
    The drop-ins in docs/plugins.md work when copied into a plugin folder.
    """

    def setUp(self):
        self.clock = Clock()
        self.table = call_table(self.clock)
        self.streams = StreamRegistry(self.clock)
        self.events = captured(self)
        folder = DropInFolder(self)
        self.examples = documented_drop_ins()
        for name, source in self.examples.items():
            folder.write(name[:-3], source)
        modules = discover_modules([folder.path], disabled=["call_log", "cluster", "recording", "rtmp"])
        self.service = ModuleService(
            modules, context_factory(self.clock, self.table, streams=self.streams), self.clock)
        self.service.startService()

    def test_examples_are_light_drop_ins(self):
        """
        The page shows both examples, and they import only what a drop-in may.
        """
        self.assertEqual(sorted(self.examples), ["wcs_failed_call_alarm.py", "wcs_stream_meter.py"])
        for name, source in self.examples.items():
            tree = ast.parse(source, name)
            imported = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
            imported |= {alias.name for node in tree.body if isinstance(node, ast.Import)
                         for alias in node.names}
            self.assertEqual(imported - DROP_IN_IMPORTS, set(), name)
        self.assertEqual(set(self.service.running_modules), {"failed_call_alarm", "stream_meter"})

    def test_failed_call_alarm(self):
        """
        Five failed calls within a minute make the alarm module warn.
        """
        for number in range(5):
            new_call(self.table, f"call-{number}").fail("Failed by error")
            self.clock.advance(1)
        warnings = [formatEvent(event) for event in self.events
                    if event.get("log_namespace") == "wcs_plugins.failed_call_alarm"]
        self.assertEqual(warnings, ["5 calls failed in the last 60 s; the last was call-4 "
                                    "(Failed by error)"])
        self.successResultOf(self.service.stopService())
        self.assertEqual(self.table.observers, [])

    def test_stream_meter(self):
        """
        The meter attaches to each new stream and logs its audio totals when it ends.
        """
        @implementer(IStreamSource)
        class Source:
            audio_codec, video_codec = "PCMU/8000", None

            def request_keyframe(self):
                pass

            def stream_ended(self, reason):
                pass

        stream = self.streams.publish("call-stream", Source())
        self.assertEqual(len(stream.sinks), 1)
        for timestamp in range(0, 1600, 160):
            stream.packet_received("audio", b"\xff" * 160, "PCMU/8000", timestamp, False)
        stream.end("Stopped by publisher stop")
        lines = [formatEvent(event) for event in self.events
                 if event.get("log_namespace") == "wcs_plugins.stream_meter"]
        self.assertEqual(lines, ["stream call-stream: 10 audio packets, 1600 bytes "
                                 "(Stopped by publisher stop)"])
        other = self.streams.publish("other", Source())
        self.successResultOf(self.service.stopService())
        self.assertEqual(other.sinks, ())


#: A third-party drop-in that declares a config key and a REST method, as docs/plugins.md shows.
REST_DROP_IN = '''
from twisted.plugin import IPlugin
from zope.interface import implementer

from wcs_twisted.errors import InvalidField
from wcs_twisted.interfaces import IWcsModule
from wcs_twisted.toolkit.config import NON_EMPTY, ModuleKey


@implementer(IPlugin, IWcsModule)
class Greeter:
    name = "rest_greeter"
    config_keys = (ModuleKey("greeting_word", NON_EMPTY, "Hello", "What the greeter says."),)

    def start(self, context):
        word = context.setting("greeting_word")

        def greet(body):
            who = body.get("name")
            if not isinstance(who, str) or not who:
                raise InvalidField("name", "required, as text")
            return {"greeting": word + ", " + who}

        context.route("POST", "/greeter/greet", greet, fields={"name": ("string", "who")},
                      summary="Greet someone.", answers={"200": "{greeting}"})

    def stop(self):
        pass


greeter = Greeter()
'''


class ThirdPartyRestModuleTests(TestCase):
    """
    A drop-in in a temporary plugin folder adds a config key and a REST method to the whole
    server, as a built-in module does.
    """

    @inlineCallbacks
    def test_config_key_and_route_through_the_running_server(self):
        """
        The properties file names the folder and sets the drop-in's key; the running server's
        REST site answers the drop-in's method with that value, behind Basic auth, with a JSON
        error for a bad body, and lists the method in openapi.json.
        """
        from twisted.internet import reactor

        from wcs_twisted.config import load_settings
        from wcs_twisted.tap import build_service

        folder = DropInFolder(self)
        folder.write("wcs_test_rest_greeter", REST_DROP_IN)
        config = self.mktemp()
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(f"plugin_dirs={folder.path}\nip_local=127.0.0.1\nws.port=0\n"
                         "http.port=0\nsip_port=0\ngreeting_word=Bonjour\n")
        loaded = load_settings(config)
        self.assertEqual(loaded.warnings, ())
        server = build_service(loaded.settings, reactor)
        server.service.startService()
        self.addCleanup(lambda: server.service.running and server.service.stopService())
        yield gatherResults([listener.when_ready() for listener in server.listeners])
        self.assertIn("rest_greeter", server.modules.running_modules)
        port = server.service.getServiceNamed("http").port.getHost().port
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        base = f"http://127.0.0.1:{port}/rest-api"
        auth = {b"Authorization": [b"Basic " + base64.b64encode(b"admin:admin")],
                b"Content-Type": [b"application/json"]}

        def post(body, headers=auth):
            return http.post(base + "/greeter/greet", data=json.dumps(body).encode(),
                             headers=headers)

        response = yield post({"name": "Alice"})
        self.assertEqual((response.code, (yield response.json())),
                         (200, {"greeting": "Bonjour, Alice"}))
        response = yield post({"nom": "Alice"})
        self.assertEqual((response.code, (yield response.json())["field"]), (400, "nom"))
        response = yield post({"name": "Alice"}, headers={})
        self.assertEqual(response.code, 401)
        yield response.content()
        response = yield http.get(base + "/openapi.json", headers=auth)
        document = yield response.json()
        self.assertEqual(document["paths"]["/greeter/greet"]["post"]["summary"],
                         "Greet someone.")


class SiteMountsTests(TestCase):
    """
    Folders modules publish on the HTTP site (ModuleContext.serve_directory), over a real
    loopback site.
    """

    @inlineCallbacks
    def test_served_with_ranges_until_the_module_stops(self):
        """
        A published folder's file is served whole and by byte range (206, Content-Range), a
        listing of the folder is refused, other paths reach the site's own tree, a path taken
        twice is refused, and closing the context unpublishes the folder.
        """
        from twisted.internet import reactor
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.static import Data

        folder = os.path.abspath(self.mktemp())
        root = Resource()
        root.putChild(b"page", Data(b"own tree", "text/plain"))
        mounts = SiteMounts(root)
        context = ModuleContext("rec", settings=Settings(), reactor=Clock(), calls=None,
                                streams=None, mounts=mounts)
        context.serve_directory("/client/records", folder)
        self.assertRaises(ValueError, context.serve_directory, "/client/records", folder)
        self.assertRaises(ValueError, context.serve_directory, "relative", folder)
        content = bytes(range(256)) * 40
        with open(os.path.join(folder, "cam-1.webm"), "wb") as record:
            record.write(content)
        port = reactor.listenTCP(0, Site(mounts), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        base = f"http://127.0.0.1:{port.getHost().port}"

        response = yield http.get(base + "/client/records/cam-1.webm")
        self.assertEqual((response.code, (yield response.content())), (200, content))
        response = yield http.get(base + "/client/records/cam-1.webm",
                                  headers={b"Range": [b"bytes=1000-1999"]})
        self.assertEqual(response.code, 206)
        self.assertEqual(response.headers.getRawHeaders(b"content-range"),
                         [f"bytes 1000-1999/{len(content)}".encode()])
        self.assertEqual((yield response.content()), content[1000:2000])
        response = yield http.get(base + "/client/records/")
        self.assertEqual(response.code, 403)
        yield response.content()
        response = yield http.get(base + "/page")
        self.assertEqual((yield response.content()), b"own tree")

        context.close()
        response = yield http.get(base + "/client/records/cam-1.webm")
        self.assertEqual(response.code, 404)
        yield response.content()
