"""
Tests for L{wcs_twisted.tap}: options, the service tree, and twistd discovery.
"""

import os

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

import twisted.test

from wcs_twisted.config import ConfigError, Settings
from wcs_twisted.listeners import ListenerService
from wcs_twisted.tap import Options, SessionShutdownService, build_service, ensure_asyncio_reactor

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


class ReactorCheckTests(SynchronousTestCase):
    """
    aiortc needs asyncio: any other installed reactor is refused with a hint.
    """

    def test_other_reactor_refused(self):
        """
        A non-asyncio reactor gives a one-line message saying how to run the server.
        """
        error = self.assertRaises(
            SystemExit, ensure_asyncio_reactor, {"twisted.internet.reactor": Clock()})
        self.assertIn("twistd --reactor=asyncio -n wcs", str(error.code))
        self.assertNotIn("\n", str(error.code))

    def test_asyncio_reactor_accepted(self):
        """
        The asyncio reactor the tests run on passes the check.
        """
        ensure_asyncio_reactor()


class ServiceTreeTests(SynchronousTestCase):
    """
    makeService builds the whole tree and starts nothing.
    """

    def test_plain_listeners(self):
        """
        Without a certificate: ws and http listeners, then the session shutdown service.
        """
        root = build_service(Settings(), Clock())
        names = [service.name for service in root]
        self.assertEqual(names, ["ws", "http", "sip-udp", "sip-tcp", "sip-stack", "rest-hooks",
                                 "modules",
                                 "session-shutdown"])
        self.assertFalse(root.running)
        for service in root.listeners:
            self.assertIsInstance(service, ListenerService)
            self.assertFalse(service.ready)
        self.assertIsInstance(root.getServiceNamed("session-shutdown"), SessionShutdownService)

    def test_tls_listeners(self):
        """
        A certificate adds wss and https listeners.
        """
        settings = Settings(tls_certificate=CERTIFICATE)
        root = build_service(settings, Clock())
        self.assertEqual([listener.name for listener in root.listeners],
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
        root = build_service(Settings(log_json_file=self.mktemp()), Clock())
        self.assertEqual(list(root)[0].name, "json-log")


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
