# -*- test-case-name: tests.gateway.test_fields -*-
"""
Reading WCS fields (of a connection, a call or stream message, a REST body) once, at the edge.

The demo pages send booleans and ports as text, and WCS takes C{sipLogin} and
C{sipAuthenticationName} verbatim: a space or an angle bracket there produces an invalid
From/Authorization header and a call stuck in PENDING.  We refuse such values up front with a
message naming the field (RFC 3261 section 25.1, user = unreserved / escaped / user-unreserved).

The WCS SDK has no transport field: the SIP server's transport is written where the server is,
as a URI would say it - C{sipOutboundProxy} or C{sipDomain} "sips:host" (TLS) or
"host;transport=tcp" - or in an optional C{sipTransport} (UDP, TCP, TLS).  Without C{sipPort} a
server given by name is found by DNS (RFC 3263 NAPTR/SRV): the account's port is then 0.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from wcs_twisted.errors import InvalidField
from wcs_twisted.sip.address import DEFAULT_PORTS, is_ip_literal
from wcs_twisted.ua.account import SIPAccount

# RFC 3261 25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# A host, IPv4, or bracketed IPv6, optionally with :port (sipDomain, sipOutboundProxy).
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")

# "sip:"/"sips:" before, ";transport=x" (or other URI parameters) after host[:port].
_SERVER = re.compile(r"(?:(?P<scheme>sips?):)?(?P<host>[^;]*)(?P<params>(?:;.*)?)", re.I)
TRANSPORTS = ("udp", "tcp", "tls")

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


def read_server(fields: Mapping[str, Any], name: str) -> tuple[str, str | None]:
    """
    C{host[:port]} of a server field, and the transport its "sips:" or ";transport=" names.
    """
    text = (read_text(fields, name, "") or "").strip()
    match = _SERVER.fullmatch(text)
    host, transport = match.group("host"), None
    for param in match.group("params").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "transport":
            transport = value.strip().lower()
            if transport not in TRANSPORTS:
                raise InvalidField(name, f"transport {value!r} is not one of udp, tcp, tls")
    if match.group("scheme") and match.group("scheme").lower() == "sips":
        transport = "tls"
    _check_host(name, host)
    return host, transport


def read_transport(fields: Mapping[str, Any]) -> str | None:
    value = read_text(fields, "sipTransport")
    if not value:
        return None
    if value.strip().lower() not in TRANSPORTS:
        raise InvalidField("sipTransport", f"expected UDP, TCP or TLS, got {value!r}")
    return value.strip().lower()


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
    domain, domain_transport = read_server(fields, "sipDomain")
    proxy, proxy_transport = read_server(
        fields, "sipOutboundProxy" if read_text(fields, "sipOutboundProxy") else "sipProxy")
    transport = proxy_transport or domain_transport or read_transport(fields) or "udp"
    server = proxy or domain
    port = read_port(fields, "sipPort", default_port)
    if (read_text(fields, "sipPort") in (None, "") and server and ":" not in server
            and not server.startswith("[") and not is_ip_literal(server)):
        port = 0  # a name without a port: NAPTR/SRV say where (RFC 3263 4.2)
    elif transport == "tls" and read_text(fields, "sipPort") in (None, ""):
        port = DEFAULT_PORTS["tls"]
    password = read_text(fields, "sipPassword", "") or ""
    if any(ord(char) < 32 for char in password):
        raise InvalidField("sipPassword", "control characters are not allowed")
    return SIPAccount(
        login=login,
        authentication_name=auth_name,
        password=password,
        domain=domain,
        outbound_proxy=proxy,
        port=port,
        register_required=read_boolean(fields, "sipRegisterRequired", False),
        visible_name=read_text(fields, "visibleName") or read_text(fields, "sipVisibleName"),
        transport=transport,
        # RFC 5630: "sips:" keeps the scheme end to end; ";transport=tls" is one hop's TLS.
        scheme="sips" if (read_text(fields, "sipDomain") or read_text(fields, "sipOutboundProxy")
                          or "").strip().lower().startswith("sips:") else "sip",
    )
