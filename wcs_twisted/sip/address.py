# -*- test-case-name: tests.sip.test_address -*-
"""
Where a SIP message comes from or goes to: transport name, host, port.

The transaction layer treats addresses as opaque keys; this one type is shared by every transport
adapter so that a response goes back over the same transport and connection the request came on.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

#: RFC 3263 default ports per transport.
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls"})


#: Answers of L{is_ip_literal} (bounded: hosts come from what peers write in Via and Contact).
_literals: dict = {}
_MAX_LITERALS = 4096


def is_ip_literal(host: str) -> bool:
    """
    Whether C{host} is an IPv4 or IPv6 address (no brackets), not a name to resolve.

    Remembered: C{ipaddress} costs microseconds per call, and the proxy asks for every
    request it forwards.
    """
    literal = _literals.get(host)
    if literal is not None:
        return literal
    try:
        ipaddress.ip_address(host)
    except ValueError:
        literal = False
    else:
        literal = True
    if len(_literals) >= _MAX_LITERALS:
        _literals.clear()
    _literals[host] = literal
    return literal


def same_host(written: str, address: str) -> bool:
    """
    Whether a host as written in a message (an IPv6 reference in brackets, any spelling of
    it, RFC 5118 4.1) is the IP C{address} a message came from.
    """
    if written == address:
        return True
    if not written.startswith("[") or ":" not in address:
        return False
    try:
        return ipaddress.ip_address(written[1:-1]) == ipaddress.ip_address(address)
    except ValueError:
        return False


class SIPAddress(NamedTuple):
    """
    A transport address, e.g. C{SIPAddress("udp", "127.0.0.1", 5060)}.
    """

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
