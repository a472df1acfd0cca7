# -*- test-case-name: tests.ua.test_registration -*-
"""
Building out-of-dialog requests (RFC 3261 8.1.1) and choosing where to send them.

Every request the UA starts outside a dialog (REGISTER, INVITE, OPTIONS, MESSAGE) is made here,
so the mandatory header set, the Via with its branch and rport, and the Contact are written in
one place.
"""

from __future__ import annotations

from typing import Any

from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.headers import CSeq, NameAddress, Via
from wcs_twisted.sip.message import Request
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.sip.address import DEFAULT_PORTS, SIPAddress, is_ip_literal

USER_AGENT = "wcs-twisted/0.1"


def host_text(host: str) -> str:
    """
    C{host} as written in a Via or URI: an IPv6 literal goes in brackets (RFC 3261 25.1).
    """
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def via_value(transport, protocol: str, branch: str, toward: str | None = None) -> Via:
    """
    Our Via for a request: sent-by from the stack, a fresh branch, and rport (RFC 3581);
    C{toward} is the next hop's host (the address it can answer to, behind NAT).
    """
    host, port = transport.local_address(protocol, toward)
    return Via(protocol.upper(), host_text(host), port, (("branch", branch), ("rport", None)))


def contact_uri(transport, protocol: str, user: str | None, toward: str | None = None,
                secure: bool = False, **params: str) -> SIPURI:
    """
    Our Contact URI on C{protocol}, with C{transport=} for anything but UDP, at the address
    the peer C{toward} can reach.

    C{secure}: a sips: URI at our TLS port, without the C{transport=tls} that RFC 5630 3.1.3
    deprecates (RFC 3261 8.1.1.8: a request to a sips: URI gives a sips: Contact).
    """
    if secure:
        protocol = "tls"
    host, port = transport.local_address(protocol, toward)
    extra = tuple((name, value) for name, value in params.items())
    if protocol != "udp" and not secure:
        extra = (("transport", protocol),) + extra
    return SIPURI("sips" if secure else "sip", user, None, host_text(host), port, extra)


def build_request(
    transport,
    method: str,
    request_uri: SIPURI,
    from_value: NameAddress,
    to_value: NameAddress,
    call_id: str,
    cseq: int,
    protocol: str = "udp",
    contact: NameAddress | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    content_type: str | None = None,
    toward: str | None = None,
) -> Request:
    """
    A complete out-of-dialog request with its own branch; C{toward} is the next hop's host.

    From, To and Contact are typed values, written once here, so a display name is always a
    valid quoted-string (RFC 3261 25.1).
    """
    headers = Headers([
        ("Via", str(via_value(transport, protocol, transport.generate_branch(), toward))),
        ("Max-Forwards", "70"),
        ("From", str(from_value)),
        ("To", str(to_value)),
        ("Call-ID", call_id),
        ("CSeq", str(CSeq(cseq, method))),
    ])
    if contact is not None:
        headers.add("Contact", str(contact))
    headers.add("User-Agent", USER_AGENT)
    for name, value in extra_headers:
        headers.add(name, value)
    if content_type is not None:
        headers.add("Content-Type", content_type)
    return Request(method, request_uri, headers, body)


def next_hop(uri: SIPURI, outbound_proxy: str = "", default_port: int | None = None) -> SIPAddress:
    """
    Where to send a request for C{uri}: the outbound proxy when one is set, else the URI's host.

    A host name with no port (and no C{default_port}) gets port 0: the stack finds the port, and
    the addresses, by RFC 3263 (NAPTR, SRV, then A/AAAA); an IP literal gets the default port.

    @param outbound_proxy: "host", "host:port" or "[v6]:port".
    """
    transport = (uri.param("transport") or "udp").lower() if hasattr(uri, "param") else "udp"
    if transport not in DEFAULT_PORTS:
        transport = "udp"
    if getattr(uri, "scheme", "sip") == "sips":
        transport = "tls"  # RFC 3261 26.2.2: sips means TLS on every hop
    if outbound_proxy:
        host, port = split_host_port(outbound_proxy)
    else:
        host, port = uri.host.strip("[]"), uri.port
    port = port or default_port
    if not port:
        port = DEFAULT_PORTS[transport] if is_ip_literal(host) else 0
    return SIPAddress(transport, host, port)


def split_host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and ":" not in host:
        return host, int(port)
    return text, None


def cnonce(random: Any) -> str:
    """
    A client nonce for digest (RFC 7616 3.4), from the injected random source.
    """
    getrandbits = getattr(random, "getrandbits", None)
    if getrandbits is not None:
        return f"{getrandbits(64):016x}"
    return random(8).hex()
