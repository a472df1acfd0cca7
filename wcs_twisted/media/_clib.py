"""
Loading a system codec library by ctypes, with its function prototypes declared in one table,
for the codecs FFmpeg cannot encode (L{wcs_twisted.media.speex}, L{wcs_twisted.media.g729}).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Optional

__all__ = ["load_library"]


def load_library(name: str, soname: str,
                 prototypes: dict[str, tuple[Any, list[Any]]]) -> Optional[ctypes.CDLL]:
    """
    The library C{name} (found by ctypes, else C{soname}) with C{prototypes} (function name
    -> (restype, argtypes)) applied, or None when it is not installed.
    """
    try:
        lib = ctypes.CDLL(ctypes.util.find_library(name) or soname)
    except OSError:
        return None
    for function, (restype, argtypes) in prototypes.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib
