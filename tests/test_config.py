"""
Tests for L{wcs_twisted.config}.
"""

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.config import (
    KEYS,
    NON_EMPTY,
    PREFIX_KEYS,
    ConfigError,
    ModuleKey,
    Settings,
    load_settings,
    settings_from_text,
)
from wcs_twisted.modules import declared_keys
from wcs_twisted.properties import parse_properties

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PropertiesSyntaxTests(SynchronousTestCase):
    """
    Java-properties syntax as WCS's flashphoner.properties uses it.
    """

    def test_separators_comments_and_continuations(self):
        """
        '=', ':' and whitespace separate; '#'/'!' lines are comments; a trailing backslash joins.
        """
        text = "# comment\n! also\na=1\nb : 2\nc 3\nd=one \\\n   two\ne=\\u0041\\tB\n\n"
        self.assertEqual(
            [(key, value) for _, key, value in parse_properties(text)],
            [("a", "1"), ("b", "2"), ("c", "3"), ("d", "one two"), ("e", "A\tB")],
        )

    def test_line_numbers(self):
        """
        Each entry carries the line it starts on, for error messages.
        """
        entries = parse_properties("\n\nx=1\ny=2 \\\n 3\nz=4\n")
        self.assertEqual([(n, k) for n, k, _ in entries], [(3, "x"), (4, "y"), (6, "z")])


class SettingsTests(SynchronousTestCase):
    """
    Typed settings, defaults, and the errors a user sees.
    """

    def test_empty_file_is_the_defaults(self):
        """
        The L{Settings} dataclass defaults agree with the documented defaults of every key.
        """
        self.assertEqual(settings_from_text("").settings, Settings())

    def test_values_are_typed(self):
        """
        Ports become ints, booleans accept true/false, lists split on commas.
        """
        loaded = settings_from_text(
            "ws.port=9080\ndisable_rest_auth=TRUE\nsip_transports=udp, TCP\n"
            "rtp_activity_detecting=false,30\nsip_user.alice=secret\n")
        self.assertEqual(loaded.settings.ws_port, 9080)
        self.assertTrue(loaded.settings.disable_rest_auth)
        self.assertEqual(loaded.settings.sip_transports, ("udp", "tcp"))
        self.assertEqual(loaded.settings.rtp_activity_detecting, (False, 30))
        self.assertEqual(loaded.settings.sip_users, {"alice": "secret"})
        self.assertEqual(loaded.warnings, ())

    def test_unknown_key_is_a_warning_naming_it(self):
        """
        A key we do not know (e.g. from a WCS file) is reported, not fatal.
        """
        loaded = settings_from_text("ws.port=8080\nwebrtc_cc2_enabled=true\n", source="f")
        self.assertEqual(loaded.warnings, ("f:2: unknown key 'webrtc_cc2_enabled' ignored",))

    def test_repeated_key_warns(self):
        """
        A repeated key is reported, and the last value wins.
        """
        loaded = settings_from_text("ws.port=1\nws.port=2\n", source="f")
        self.assertEqual(loaded.settings.ws_port, 2)
        self.assertIn("repeats line 1", loaded.warnings[0])

    def test_bad_value_is_one_clear_line(self):
        """
        A bad value names the place, key, value and what is expected, on one line.
        """
        error = self.assertRaises(ConfigError, settings_from_text, "\nws.port=80a\n", "wcs.properties")
        self.assertEqual(
            str(error),
            "wcs.properties:2: ws.port='80a' is not valid: expected a port number from 0 to 65535",
        )
        self.assertNotIn("\n", str(error))

    def test_bad_values_of_each_type(self):
        """
        Every value type refuses nonsense.
        """
        for line in ("disable_rest_auth=maybe", "ip=not-an-ip", "keep_alive.probes=0",
                     "sip_transports=udp,sctp", "rtp_activity_detecting=true,x",
                     "http.port=70000", "sip_domain=bad domain",
                     "rest_cors_origins=*,http://a.test", "rest_cors_origins=http://a.test/path",
                     "rest_cors_origins=a.test", "rest_cors_origins=http://a.test:99999"):
            self.assertRaises(ConfigError, settings_from_text, line)

    def test_origins(self):
        """
        rest_cors_origins is * alone or origins as browsers send them, lower-cased.
        """
        self.assertEqual(settings_from_text("rest_cors_origins=*").settings.rest_cors_origins,
                         ("*",))
        self.assertEqual(settings_from_text(
            "rest_cors_origins=https://App.example.com, http://x.test:8080"
        ).settings.rest_cors_origins, ("https://app.example.com", "http://x.test:8080"))

    def test_published_password_refused_off_loopback(self):
        """
        rest_password=admin is refused when other hosts can reach the server (one line naming
        both keys), and allowed on loopback or with auth disabled.
        """
        error = self.assertRaises(ConfigError, settings_from_text,
                                  "ip_local=0.0.0.0\nrest_password=admin\n")
        self.assertIn("rest_password=admin", str(error))
        self.assertIn("ip_local=0.0.0.0", str(error))
        self.assertRaises(ConfigError, settings_from_text, "ip_local=\nrest_password=admin\n")
        for text in ("ip_local=127.0.0.1\nrest_password=admin\n",
                     "ip_local=::1\nrest_password=admin\n",
                     "rest_password=admin\ndisable_rest_auth=true\n"):
            settings_from_text(text)
        self.assertRaises(ConfigError, Settings(bind_address="127.0.0.1",
                                                rest_password="admin").replace,
                          bind_address="0.0.0.0")

    def test_cross_key_rules(self):
        """
        A reversed media port range or T1 above T2 is refused with both keys named.
        """
        error = self.assertRaises(
            ConfigError, settings_from_text, "media_port_from=40000\nmedia_port_to=30000\n")
        self.assertIn("media_port_from=40000", str(error))
        self.assertIn("media_port_to=30000", str(error))
        self.assertRaises(ConfigError, settings_from_text, "sip_t1=5000\nsip_t2=4000\n")

    def test_missing_file(self):
        """
        A file that cannot be read is a one-line error naming it.
        """
        error = self.assertRaises(ConfigError, load_settings, "/nonexistent/wcs.properties")
        self.assertIn("/nonexistent/wcs.properties", str(error))

    def test_advertised_address(self):
        """
        ip wins; else a concrete ip_local; else loopback.
        """
        self.assertEqual(Settings().advertised_address, "127.0.0.1")
        self.assertEqual(Settings(bind_address="10.0.0.5").advertised_address, "10.0.0.5")
        self.assertEqual(Settings(public_address="192.0.2.1").advertised_address, "192.0.2.1")


class ModuleKeyTests(SynchronousTestCase):
    """
    Keys that modules declare are read, checked and warned about like core keys.
    """

    KEY = ModuleKey("greeting_text", NON_EMPTY, "hello", "What the greeter says.")

    def test_declared_key_is_typed_and_kept(self):
        """
        A declared key's value lands in module_values; the default applies when it is absent.
        """
        loaded = settings_from_text("greeting_text= hi \n", module_keys=[self.KEY])
        self.assertEqual(loaded.warnings, ())
        self.assertEqual(loaded.settings.module_values, {"greeting_text": "hi"})
        self.assertEqual(self.KEY.value(loaded.settings), "hi")
        self.assertEqual(self.KEY.value(Settings()), "hello")

    def test_bad_module_value_is_one_clear_line(self):
        """
        A bad value of a module key is refused like a core one.
        """
        error = self.assertRaises(ConfigError, settings_from_text, "greeting_text=\n", "f",
                                  [self.KEY])
        self.assertEqual(str(error), "f:1: greeting_text='' is not valid: expected non-empty text")

    def test_undeclared_key_still_warns(self):
        """
        A key no module declares is unknown, whatever modules declare.
        """
        loaded = settings_from_text("greeting_txt=hi\n", "f", [self.KEY])
        self.assertEqual(loaded.warnings, ("f:1: unknown key 'greeting_txt' ignored",))

    def test_load_settings_knows_the_built_in_module_keys(self):
        """
        load_settings checks the keys of the modules it finds: record_dir is no unknown key,
        and a bad value of it is an error.
        """
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("record_dir=/tmp/records\n")
        loaded = load_settings(path)
        self.assertEqual((loaded.warnings, loaded.settings.module_values),
                         ((), {"record_dir": "/tmp/records"}))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("record_dir=\n")
        self.assertRaises(ConfigError, load_settings, path)


class ShippedFilesTests(SynchronousTestCase):
    """
    etc/wcs.properties and docs/configuration.md stay true to L{KEYS} and to the keys the
    built-in modules declare.
    """

    def test_shipped_properties_load_cleanly(self):
        """
        The shipped file has no unknown keys, equals the embedded core defaults, and sets every
        built-in module key to its default.
        """
        loaded = load_settings(os.path.join(ROOT, "etc", "wcs.properties"))
        self.assertEqual(loaded.warnings, ())
        module_defaults = {key.name: key.type.convert(key.default) for key in declared_keys()}
        self.assertEqual(loaded.settings, Settings(module_values=module_defaults))

    def test_every_key_documented_with_its_default(self):
        """
        docs/configuration.md has a row for every key giving its default.
        """
        with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as handle:
            doc = handle.read()
        for key in KEYS + tuple(declared_keys()):
            default = f"`{key.default}`" if key.default else "(empty)"
            self.assertIsNotNone(
                re.search(rf"^\| `{re.escape(key.name)}` \| {re.escape(default)} \|", doc, re.M),
                f"{key.name} is not documented with default {default}")
        for prefix in PREFIX_KEYS:
            self.assertIn(f"`{prefix}<name>`", doc)
