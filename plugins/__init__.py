"""
Plugin package for WCS modules (installed as C{wcs_plugins}); drop-in modules live here.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # type: ignore[name-defined]
__all__: list[str] = []
