"""
Tests for L{wcs_twisted.tap}: options, the service tree, and twistd discovery.
"""

import os
import subprocess
import sys
from importlib import metadata

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

import twisted.test

from tests.test_layering import ROOT, imports_of, python_files
from wcs_twisted.config import ConfigError, Settings
from wcs_twisted.listeners import ListenerService
from wcs_twisted.services import SessionShutdownService
from wcs_twisted.tap import Options, build_service

CERTIFICATE = os.path.join(os.path.dirname(twisted.test.__file__), "server.pem")


class OptionsTests(SynchronousTestCase):
    """
    C{twistd wcs} command-line options.
    """

    def write_config(self, text):
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def test_defaults_without_a_file(self):
        """
        With no file at the default path, the embedded defaults are used.
        """
        cwd = os.getcwd()
        empty = self.mktemp()
        os.mkdir(empty)
        os.chdir(empty)
        self.addCleanup(os.chdir, cwd)
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["settings"], Settings())

    def test_config_file_and_overrides(self):
        """
        Port options override the file's values.
        """
        path = self.write_config("ws.port=9000\nhttp.port=9001\n")
        options = Options()
        options.parseOptions(["--config", path, "--http-port", "9100", "--sip-port", "5070"])
        settings = options["settings"]
        self.assertEqual((settings.ws_port, settings.http_port, settings.sip_port),
                         (9000, 9100, 5070))

    def test_bad_port_option(self):
        """
        A non-numeric port option is a usage error.
        """
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--ws-port", "x"])

    def test_bad_config_value_is_one_line(self):
        """
        A bad value exits with one line naming the key, without usage text or traceback.
        """
        path = self.write_config("keep_alive.probes=-1\n")
        error = self.assertRaises(SystemExit, Options().parseOptions, ["--config", path])
        self.assertEqual(
            str(error.code),
            f"wcs: {path}:1: keep_alive.probes='-1' is not valid: expected a whole number above 0")

    def test_explicit_missing_config(self):
        """
        A config file named on the command line must exist.
        """
        error = self.assertRaises(SystemExit, Options().parseOptions, ["--config", "/no/such"])
        self.assertIn("cannot read configuration /no/such", str(error.code))

    def test_unknown_keys_are_carried_as_warnings(self):
        """
        Unknown keys reach makeService as warnings to log.
        """
        path = self.write_config("no_such_key=1\n")
        options = Options()
        options.parseOptions(["--config", path])
        self.assertEqual(options["warnings"], (f"{path}:1: unknown key 'no_such_key' ignored",))


class ServiceTreeTests(SynchronousTestCase):
    """
    makeService builds the whole tree and starts nothing.
    """

    def test_plain_listeners(self):
        """
        Without a certificate: ws and http listeners, then the session shutdown service.
        """
        server = build_service(Settings(), Clock())
        names = [service.name for service in server.service]
        self.assertEqual(names, ["ws", "http", "sip-udp", "sip-tcp", "sip-stack", "rest-hooks",
                                 "modules", "gc-tuning",
                                 "session-shutdown"])
        self.assertFalse(server.service.running)
        for service in server.listeners:
            self.assertIsInstance(service, ListenerService)
            self.assertFalse(service.ready)
        self.assertIsInstance(server.service.getServiceNamed("session-shutdown"),
                              SessionShutdownService)

    def test_parts_are_wired(self):
        """
        The handle's parts are the ones in the tree: the stack delivers to the UA core, and
        the modules service is the tree's.
        """
        server = build_service(Settings(), Clock())
        self.assertIs(server.sip_stack.user, server.sip_core)
        self.assertIs(server.service.getServiceNamed("modules"), server.modules)
        self.assertIs(server.signalling.calls, server.calls)

    def test_tls_listeners(self):
        """
        A certificate adds wss and https listeners.
        """
        settings = Settings(tls_certificate=CERTIFICATE)
        server = build_service(settings, Clock())
        self.assertEqual([listener.name for listener in server.listeners],
                         ["ws", "http", "wss", "https", "sip-udp", "sip-tcp"])
        settings = Settings(tls_certificate=CERTIFICATE, sip_transports=("udp", "tcp", "tls"))
        self.assertEqual([listener.name for listener in build_service(settings, Clock()).listeners],
                         ["ws", "http", "wss", "https", "sip-udp", "sip-tcp", "sip-tls"])

    def test_unreadable_certificate(self):
        """
        A certificate that cannot be loaded is a configuration error naming the key.
        """
        error = self.assertRaises(
            ConfigError, build_service, Settings(tls_certificate="/no/cert.pem"), Clock())
        self.assertIn("tls_certificate='/no/cert.pem'", str(error))

    def test_json_log_file_service(self):
        """
        log_json_file adds the JSON log service first.
        """
        server = build_service(Settings(log_json_file=self.mktemp()), Clock())
        self.assertEqual(list(server.service)[0].name, "json-log")


class PluginDiscoveryTests(SynchronousTestCase):
    """
    twistd finds the C{wcs} subcommand.
    """

    def test_wcs_service_maker(self):
        """
        getPlugins(IServiceMaker) yields a maker with tapname 'wcs' naming our tap module.
        """
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("wcs", makers)
        self.assertIs(makers["wcs"].options, Options)


class PackagingTests(SynchronousTestCase):
    """
    What C{pip install -e .} leaves behind: every import declared, C{twistd wcs} known anywhere.
    """

    def test_third_party_imports_are_declared(self):
        """
        Every third-party package imported by wcs_twisted/ or plugins/ is a declared requirement
        of the installed distribution (setup.py install_requires).
        """
        imported = {name.split(".")[0]
                    for folder in ("wcs_twisted", "plugins")
                    for path in python_files(os.path.join(ROOT, folder))
                    for _, name in imports_of(path)}
        third_party = imported - set(sys.stdlib_module_names) - {"wcs_twisted", "wcs_plugins"}
        owners = metadata.packages_distributions()
        declared = {requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0]
                    .split("<")[0].strip().lower().replace("_", "-")
                    for requirement in metadata.requires("wcs-twisted") or ()
                    if "extra ==" not in requirement}
        undeclared = {module: owners.get(module) for module in third_party
                      if not {dist.lower().replace("_", "-") for dist in owners.get(module, ())
                              if dist != "wcs-twisted"} & declared}
        self.assertEqual(undeclared, {})

    def test_twistd_knows_wcs_outside_the_checkout(self):
        """
        C{twistd wcs --help} run from an unrelated directory finds the drop-in: the editable
        install puts the project root on sys.path, where Twisted looks for twisted/plugins.
        """
        elsewhere = self.mktemp()
        os.mkdir(elsewhere)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        result = subprocess.run([twistd, "wcs", "--help"], cwd=elsewhere, capture_output=True,
                                text=True, timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("--config", result.stdout)


class DNSServerTests(SynchronousTestCase):
    """
    sip_dns_servers entries become (host, port) pairs for Twisted Names.
    """

    def test_forms(self):
        """
        A host alone gets port 53; host:port and [v6]:port keep theirs.
        """
        from wcs_twisted.tap import dns_servers
        settings = Settings(sip_dns_servers=("10.0.0.53", "127.0.0.1:5353", "[::1]:5300", "::1"))
        self.assertEqual(dns_servers(settings), [("10.0.0.53", 53), ("127.0.0.1", 5353),
                                                 ("::1", 5300), ("::1", 53)])

