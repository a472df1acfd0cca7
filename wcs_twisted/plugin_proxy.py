# -*- test-case-name: tests.test_modules -*-
"""
The module object of a built-in drop-in file, whose real code is imported only when it starts.

Every discovery (each server start, each C{twistd --help}) imports every drop-in, so a drop-in
holds one L{LazyModule} naming its implementation class instead of importing PyAV and friends.
This module imports only what a drop-in itself may.
"""

from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import implementer

from wcs_twisted.interfaces import IWcsModule


@implementer(IPlugin, IWcsModule)
class LazyModule:
    """
    Starts a new instance of the class named by C{implementation} (a dotted name), stops it.

    @param drop_in: the C{__name__} of the drop-in file, so logs name that file.
    @param config_keys: the module's configuration keys (C{ModuleKey}s), known without importing
        the implementation: the configuration is checked before any module starts.
    """

    def __init__(self, name: str, implementation: str, drop_in: str,
                 config_keys: tuple = ()) -> None:
        self.name = name
        self.implementation = implementation
        self.drop_in = drop_in
        self.config_keys = tuple(config_keys)
        self._running = None

    def start(self, context):
        running = namedAny(self.implementation)()
        self._running = running
        return running.start(context)

    def stop(self):
        running, self._running = self._running, None
        if running is not None:
            return running.stop()
        return None
