# -*- test-case-name: tests.gateway.test_fields -*-
"""
Reading WCS fields (of a connection, a call or stream message, a REST body) once, at the edge.

The demo pages send booleans and ports as text, and WCS takes C{sipLogin} and
C{sipAuthenticationName} verbatim: a space or an angle bracket there produces an invalid
From/Authorization header and a call stuck in PENDING.  We refuse such values up front with a
message naming the field (RFC 3261 section 25.1, user = unreserved / escaped / user-unreserved).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from wcs_twisted.errors import InvalidField
from wcs_twisted.ua.account import SIPAccount

# RFC 3261 25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# A host, IPv4, or bracketed IPv6, optionally with :port (sipDomain, sipOutboundProxy).
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


def read_boolean(fields: Mapping[str, Any], name: str, default: bool) -> bool:
    """
    A boolean field that the demo pages may send as the strings "true"/"false".
    """
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidField(name, f"expected true or false, got {value!r}")


def read_text(fields: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    """
    A text field; numbers are accepted and turned into text, anything else is refused.
    """
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidField(name, f"expected text, got {type(value).__name__}")
    return str(value)


def read_port(fields: Mapping[str, Any], name: str, default: int) -> int:
    """
    A port field that may arrive as a number or as a string such as "5060".
    """
    value = fields.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidField(name, f"expected a port number, got {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidField(name, f"expected a port number, got {value!r}") from None
    if port == 0:
        return default  # WCS local mode: "set SIP Port to 0" means the server's own port
    if not 1 <= port <= 65535:
        raise InvalidField(name, f"expected a port number from 0 to 65535, got {port}")
    return port


def _check_user(name: str, value: str | None) -> None:
    if value and not _USER.fullmatch(value):
        raise InvalidField(
            name,
            f"{value!r} holds characters that SIP does not allow in a user name (spaces, "
            "angle brackets, quotes, @, ...); use letters, digits and -_.!~*'()&=+$,;?/ "
            "or %-escapes",
        )


def _check_host(name: str, value: str | None) -> None:
    if value and not _HOST_PORT.fullmatch(value):
        raise InvalidField(name, f"{value!r} is not a host name or address (with optional :port)")


def account_from_fields(fields: Mapping[str, Any], default_port: int = 5060) -> SIPAccount | None:
    """
    Read the WCS C{sip*} fields; L{None} when the message carries no C{sipLogin}.

    @raise InvalidField: a field is of the wrong type or not valid in SIP.
    """
    login = read_text(fields, "sipLogin")
    if not login:
        return None
    auth_name = read_text(fields, "sipAuthenticationName") or login
    _check_user("sipLogin", login)
    _check_user("sipAuthenticationName", auth_name)
    domain = read_text(fields, "sipDomain", "") or ""
    proxy = read_text(fields, "sipOutboundProxy", "") or read_text(fields, "sipProxy", "") or ""
    _check_host("sipDomain", domain)
    _check_host("sipOutboundProxy", proxy)
    password = read_text(fields, "sipPassword", "") or ""
    if any(ord(char) < 32 for char in password):
        raise InvalidField("sipPassword", "control characters are not allowed")
    return SIPAccount(
        login=login,
        authentication_name=auth_name,
        password=password,
        domain=domain,
        outbound_proxy=proxy,
        port=read_port(fields, "sipPort", default_port),
        register_required=read_boolean(fields, "sipRegisterRequired", False),
        visible_name=read_text(fields, "visibleName") or read_text(fields, "sipVisibleName"),
    )
