"""
Contexts for built-in modules in tests: with the config keys their drop-ins declare.
"""

from wcs_twisted.config import Settings
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules import ModuleContext, config_keys, plugin_package


def built_in_keys(name):
    """
    The config keys the built-in drop-in of module C{name} declares.
    """
    from twisted.plugin import getPlugins

    from wcs_twisted.interfaces import IWcsModule

    [plugin] = [module for module in getPlugins(IWcsModule, plugin_package())
                if module.name == name]
    return config_keys(plugin)


def module_context(name, clock, *, values=None, calls=None, streams=None, services=None,
                   routes=None, **settings):
    """
    A L{ModuleContext} for the built-in module C{name}: its module keys set to C{values}, core
    settings to C{settings}.
    """
    return ModuleContext(name, settings=Settings(module_values=dict(values or {}), **settings),
                         reactor=clock, calls=calls,
                         streams=streams if streams is not None else StreamRegistry(clock),
                         services=services, routes=routes, keys=built_in_keys(name))
