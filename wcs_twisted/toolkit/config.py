"""
Declaring a module's configuration keys: C{config_keys = (ModuleKey(name, type, default, doc),
...)} on the module object; the module reads them with C{context.setting(name)}.
"""

from wcs_twisted.config import (
    BOOLEAN,
    HTTP_URL,
    NON_EMPTY,
    NON_NEGATIVE_INT,
    PORT,
    POSITIVE_INT,
    STRING,
    WORDS,
    ModuleKey,
    ValueType,
)

__all__ = ["BOOLEAN", "HTTP_URL", "NON_EMPTY", "NON_NEGATIVE_INT", "PORT", "POSITIVE_INT",
           "STRING", "WORDS", "ModuleKey", "ValueType"]
