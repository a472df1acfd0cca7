"""
The layering rules of docs/architecture.md, enforced by reading every module's imports.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "wcs_twisted")

IO_MODULES = ("twisted.internet", "twisted.web", "autobahn", "klein", "aiortc", "av", "asyncio",
              "socket", "time", "random", "treq", "select", "selectors", "threading")

# (package, forbidden import prefixes, why)
RULES = (
    ("wcs_twisted.sip", IO_MODULES + ("wcs_twisted.transport", "wcs_twisted.ua",
                                      "wcs_twisted.gateway", "wcs_twisted.backend",
                                      "wcs_twisted.media", "wcs_twisted.rest",
                                      "wcs_twisted.signalling"),
     "sip/ is sans-I/O: stdlib, zope.interface and sdp/ only"),
    ("wcs_twisted.sdp", IO_MODULES + ("wcs_twisted.sip", "wcs_twisted.transport", "wcs_twisted.ua",
                                      "wcs_twisted.gateway", "wcs_twisted.backend",
                                      "wcs_twisted.media", "wcs_twisted.rest",
                                      "wcs_twisted.signalling"),
     "sdp/ is sans-I/O and knows nothing of SIP"),
    ("wcs_twisted.transport", ("wcs_twisted.ua", "wcs_twisted.gateway", "wcs_twisted.backend",
                               "wcs_twisted.media", "wcs_twisted.rest",
                               "wcs_twisted.signalling", "aiortc", "av", "autobahn", "klein"),
     "transport/ sits under the UA layer"),
    ("wcs_twisted.ua", ("aiortc", "av", "asyncio", "autobahn", "klein", "treq",
                        "wcs_twisted.media", "wcs_twisted.rest", "wcs_twisted.signalling",
                        "wcs_twisted.transport", "wcs_twisted.gateway", "wcs_twisted.backend",
                        "twisted.internet.reactor"),
     "ua/ is the SIP user agent: it knows nothing of WCS, media or transports"),
    ("wcs_twisted.gateway", ("aiortc", "av", "asyncio", "autobahn", "klein", "treq",
                             "wcs_twisted.media", "wcs_twisted.rest", "wcs_twisted.signalling",
                             "wcs_twisted.transport", "wcs_twisted.backend",
                             "twisted.internet.reactor"),
     "gateway/ reaches clients, transports and media only through interfaces"),
    ("wcs_twisted.backend", ("wcs_twisted.sip", "wcs_twisted.transport", "wcs_twisted.media",
                             "wcs_twisted.ua", "wcs_twisted.gateway", "wcs_twisted.rest",
                             "wcs_twisted.signalling", "aiortc", "av", "autobahn", "klein"),
     "backend/ is an outbound HTTP client fed through interfaces"),
    ("wcs_twisted.media", ("wcs_twisted.sip", "wcs_twisted.ua", "wcs_twisted.gateway",
                           "wcs_twisted.backend", "wcs_twisted.rest",
                           "wcs_twisted.signalling", "wcs_twisted.transport"),
     "media/ does not know SIP exists"),
    ("wcs_twisted.signalling", ("wcs_twisted.sip", "wcs_twisted.transport", "wcs_twisted.media",
                                "wcs_twisted.rest", "aiortc", "av", "klein"),
     "signalling/ is a thin front-end"),
    ("wcs_twisted.rest", ("wcs_twisted.sip", "wcs_twisted.transport", "wcs_twisted.media",
                          "wcs_twisted.signalling", "aiortc", "av", "autobahn"),
     "rest/ is a thin front-end"),
)

# aiortc/av/asyncio belong to media/ only (testing/ may fake them).
MEDIA_ONLY = ("aiortc", "av", "asyncio")

# Modules reach the system only through their context and the public toolkit (rule 6):
# (package, the only wcs_twisted imports allowed, why).  plugins/ is the wcs_plugins package.
MODULE_RULES = (
    ("wcs_twisted.modules_builtin", ("wcs_twisted.interfaces", "wcs_twisted.errors",
                                     "wcs_twisted.toolkit", "wcs_twisted.modules_builtin"),
     "modules use only interfaces, errors and the toolkit"),
    ("plugins", ("wcs_twisted.interfaces", "wcs_twisted.errors", "wcs_twisted.toolkit",
                 "wcs_twisted.plugin_proxy"),
     "drop-ins use only interfaces, errors, the toolkit and plugin_proxy"),
)

# A forbidden import for each rule, written into a probe file by the self-test.
PROBES = {
    "wcs_twisted.sip": "wcs_twisted.transport",
    "wcs_twisted.sdp": "wcs_twisted.sip",
    "wcs_twisted.transport": "wcs_twisted.ua",
    "wcs_twisted.ua": "wcs_twisted.gateway",
    "wcs_twisted.gateway": "wcs_twisted.media",
    "wcs_twisted.backend": "wcs_twisted.rest",
    "wcs_twisted.media": "wcs_twisted.sip",
    "wcs_twisted.signalling": "wcs_twisted.media",
    "wcs_twisted.rest": "wcs_twisted.signalling",
    "wcs_twisted.modules_builtin": "wcs_twisted.media",
    "plugins": "wcs_twisted.modules",
}


def imports_of(path, root=ROOT):
    """
    Every module name imported by a file (absolute names; relative imports resolved).
    """
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module[:-9]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def python_files(top):
    for directory, _, files in os.walk(top):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def matches(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


class LayeringTests(SynchronousTestCase):
    """
    Forbidden imports fail the build.
    """

    def violations(self, root=ROOT):
        found = []
        paths = [*python_files(os.path.join(root, "wcs_twisted")),
                 *python_files(os.path.join(root, "plugins"))]
        for path in paths:
            module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
            for lineno, name in imports_of(path, root):
                for package, forbidden, why in RULES:
                    if matches(module, package) and any(matches(name, f) for f in forbidden):
                        found.append(f"{module}:{lineno} imports {name} ({why})")
                for package, allowed, why in MODULE_RULES:
                    if (matches(module, package) and matches(name, "wcs_twisted")
                            and not any(matches(name, a) for a in allowed)):
                        found.append(f"{module}:{lineno} imports {name} ({why})")
                if (any(matches(name, m) for m in MEDIA_ONLY)
                        and not matches(module, "wcs_twisted.media")
                        and not matches(module, "wcs_twisted.testing")):
                    found.append(f"{module}:{lineno} imports {name} (aiortc/av/asyncio: media/ only)")
                if (matches(name, "twisted.internet.reactor") and module != "wcs_twisted.tap"):
                    found.append(f"{module}:{lineno} imports the global reactor (tap.py only)")
                if matches(name, "wcs_twisted.testing") and not matches(module, "wcs_twisted.testing"):
                    found.append(f"{module}:{lineno} imports test fakes")
        return sorted(set(found))

    def test_no_forbidden_imports(self):
        """
        No module breaks a layering rule.
        """
        self.assertEqual(self.violations(), [])

    def test_rules_catch_a_violation(self):
        """
        The checker sees a forbidden import (guards against a checker that cannot fail).
        """
        root = self.mktemp()
        os.makedirs(os.path.join(root, "wcs_twisted", "sip"))
        with open(os.path.join(root, "wcs_twisted", "sip", "_layering_probe.py"), "w",
                  encoding="utf-8") as handle:
            handle.write("from twisted.internet import reactor\nimport aiortc\n")
        found = self.violations(root)
        self.assertIn("wcs_twisted.sip._layering_probe:1 imports twisted.internet "
                      "(sip/ is sans-I/O: stdlib, zope.interface and sdp/ only)", found)
        self.assertIn("wcs_twisted.sip._layering_probe:1 imports the global reactor (tap.py only)",
                      found)
        self.assertIn("wcs_twisted.sip._layering_probe:2 imports aiortc "
                      "(aiortc/av/asyncio: media/ only)", found)

    def test_every_rule_catches_a_violation(self):
        """
        Each rule, the module rules included, reports a forbidden import in its package.
        """
        rules = [(package, why) for package, _, why in RULES + MODULE_RULES]
        self.assertEqual(sorted(PROBES), sorted(package for package, _ in rules))
        root = self.mktemp()
        for package, _ in rules:
            folder = os.path.join(root, *package.split("."))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "_layering_probe.py"), "w",
                      encoding="utf-8") as handle:
                handle.write(f"import {PROBES[package]}\n")
        found = self.violations(root)
        for package, why in rules:
            self.assertIn(f"{package}._layering_probe:1 imports {PROBES[package]} ({why})", found)

    def test_modules_may_use_the_toolkit(self):
        """
        The module rules let interfaces, errors and the toolkit through, and a module's
        siblings; plugin_proxy only to drop-ins.
        """
        root = self.mktemp()
        os.makedirs(os.path.join(root, "wcs_twisted", "modules_builtin"))
        os.makedirs(os.path.join(root, "plugins"))
        allowed = ("import wcs_twisted.interfaces\nimport wcs_twisted.errors\n"
                   "from wcs_twisted.toolkit.aac import AacEncoder\n")
        with open(os.path.join(root, "wcs_twisted", "modules_builtin", "m.py"), "w",
                  encoding="utf-8") as handle:
            handle.write(allowed + "from wcs_twisted.modules_builtin.x import y\n"
                         "from wcs_twisted.plugin_proxy import LazyModule\n")
        with open(os.path.join(root, "plugins", "p.py"), "w", encoding="utf-8") as handle:
            handle.write(allowed + "from wcs_twisted.plugin_proxy import LazyModule\n")
        self.assertEqual(self.violations(root), [
            "wcs_twisted.modules_builtin.m:5 imports wcs_twisted.plugin_proxy (modules use only "
            "interfaces, errors and the toolkit)",
            "wcs_twisted.modules_builtin.m:5 imports wcs_twisted.plugin_proxy.LazyModule "
            "(modules use only interfaces, errors and the toolkit)"])

    def test_drop_ins_stay_light(self):
        """
        twisted/plugins/wcs_plugin.py imports only ServiceMaker.
        """
        names = {name for _, name in imports_of(os.path.join(ROOT, "twisted", "plugins",
                                                             "wcs_plugin.py"))}
        self.assertEqual(names, {"twisted.application.service",
                                 "twisted.application.service.ServiceMaker"})
