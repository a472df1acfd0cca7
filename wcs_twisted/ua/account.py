# -*- test-case-name: tests.ua.test_registration -*-
"""
A SIP account: who a registration or a call is on the SIP side, and where its SIP server is.

The UA registers it; the gateway reads it from WCS fields (L{wcs_twisted.gateway.fields}).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SIPAccount:
    """
    Credentials and server of one SIP identity (C{port} is the server's SIP port; 0 when the
    server is a host name found by DNS, RFC 3263; C{transport} is how to reach it).

    C{scheme} is "sips" when the domain was given as a sips: URI: then the address of record,
    the Request-URIs, To, From and our Contact are sips: URIs (RFC 5630: TLS on every hop to
    the target), where a "sip:...;transport=tls" server only asks for TLS to the first hop.
    """

    login: str
    authentication_name: str
    password: str
    domain: str
    outbound_proxy: str
    port: int
    register_required: bool
    visible_name: str | None = None
    transport: str = "udp"
    scheme: str = "sip"
