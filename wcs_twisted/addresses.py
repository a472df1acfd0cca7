# -*- test-case-name: tests.test_addresses -*-
"""
Which of our addresses a peer is told (SDP c=, candidates, Via sent-by, Contact, Record-Route).

Behind a 1:1 NAT (a cloud VM) we own two addresses: the private one we bind and the public
one the router maps to it.  A peer across the NAT can only reach the public one; a peer on the
private side often cannot (routers that do not hairpin), and must not be told the public one.
So the address we write depends on whom we write it to: an L{AddressPlan} answers that from
the peer's IP address, the only thing known for sure when a message or an SDP is built (the
source of what the peer sent, or the IP literal we send to).  A peer known only by a host
name counts as outside: names are how providers across the Internet are reached.

Rules (docs/operations.md "Behind NAT"):
  - no public address configured, or the same as the local one: always the local one;
  - a peer in C{local_networks} (default: RFC 1918, RFC 4193, loopback and link-local)
    gets the local address; any other peer gets the public one;
  - we ourselves (a call between two browsers on this node loops through our SIP side) get
    the local address too: our public one may not hairpin;
  - with an IPv6 address configured, IPv6 peers get it (IPv6 is not NATed), and so do peers
    known by a name the SIP resolver found an IPv6 address for first (C{names});
  - the local address is the bind address, or when we bind a wildcard, the source address
    the kernel would pick to reach that peer (a connected UDP socket sends nothing).

Media and signalling may be published at different public addresses (a media relay box, or
a second elastic IP): a process has one plan for each.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from typing import Callable, Iterable, Optional, Sequence

__all__ = ["AddressPlan", "DEFAULT_LOCAL_NETWORKS", "family", "offered_ipv6", "parse_networks",
           "sdp_address"]

#: Where a peer sits on our side of any NAT (private, unique-local, loopback, link-local).
DEFAULT_LOCAL_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                          "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Peers whose route source address is remembered (bounded: peers come from the network).
_MAX_ROUTE_CACHE = 4096


def parse_networks(texts: Iterable[str]) -> tuple[_Network, ...]:
    """
    CIDR texts as networks (host bits allowed: C{10.0.0.10/16} means C{10.0.0.0/16}).

    @raise ValueError: for text that is not a network.
    """
    return tuple(ipaddress.ip_network(text.strip(), strict=False) for text in texts
                 if text.strip())


_CONNECTION = re.compile(rb"(?m)^c=IN IP[46] ([0-9A-Fa-f:.]+)\s*$")


def sdp_address(sdp: Optional[bytes]) -> Optional[str]:
    """
    The address of an SDP's first c= line, or None (no SDP, or a name).
    """
    match = _CONNECTION.search(sdp or b"")
    return match.group(1).decode("ascii") if match else None


def offered_ipv6(sdp: Optional[bytes]) -> Optional[str]:
    """
    The IPv6 address of an SDP's first c= line, or None: a phone on IPv6 whose call reaches
    us over IPv4 (through our own proxy) must be answered with our IPv6 media address.
    """
    address = sdp_address(sdp)
    return address if address is not None and _ipv6_peer(address) else None


def family(host: str) -> int:
    """
    6 or 4: the family C{host} is reached in (an IPv4-mapped address and a name count as 4).
    """
    return 6 if _ipv6_peer(host) else 4


@functools.lru_cache(maxsize=4096)
def _ip(text: Optional[str]):
    # Asked several times per message (toward, own); hosts come from what peers write.
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _ipv6_peer(peer: Optional[str]) -> bool:
    address = _ip(peer)
    return address is not None and address.version == 6 and address.ipv4_mapped is None


def route_source(peer: str) -> Optional[str]:
    """
    The source address the kernel picks to reach C{peer} (no packet is sent), or None.
    """
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((peer, 9))
            return probe.getsockname()[0]
        except OSError:
            return None


class AddressPlan:
    """
    The address to advertise toward each peer, and the way back to ourselves.

    @ivar public: what peers across the NAT reach us at (may equal C{local}).
    @ivar local: what we bind; a wildcard means "whatever the route to the peer uses".
    """

    def __init__(self, public: str, local: str,
                 local_networks: Sequence[str] = DEFAULT_LOCAL_NETWORKS, ipv6: str = "") -> None:
        """
        @param ipv6: our IPv6 address (bound and advertised as is) for IPv6 peers; empty when
            they are given the IPv4 addresses.
        """
        self.ipv6 = ipv6
        self.local = local or "0.0.0.0"
        local_ip = _ip(self.local)
        self._wildcard = local_ip is None or local_ip.is_unspecified
        if not public:
            public = "127.0.0.1" if self._wildcard else self.local
        self.public = public
        self.networks = parse_networks(local_networks or DEFAULT_LOCAL_NETWORKS)
        self.split = self._wildcard or _ip(public) != local_ip
        self._routes: dict[str, Optional[str]] = {}
        #: The address a host name was resolved to, when known (the SIP stack's resolver).
        self.names: Optional[Callable[[str], Optional[str]]] = None

    def is_local_peer(self, peer: Optional[str]) -> bool:
        """
        Whether C{peer} (an IP literal; anything else counts as outside) is on our side.
        """
        address = _ip(peer)
        if address is None:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks
                   if network.version == address.version)

    def toward(self, peer: Optional[str]) -> str:
        """
        The address to write in what C{peer} reads (None: a peer not known yet, or by name).
        """
        if self._ipv6(peer):
            return self.ipv6
        if not self.split or not (self.is_local_peer(peer) or self.own(peer or "")):
            return self.public
        if self.own(peer or ""):
            return self.way_home(peer)  # type: ignore[arg-type]
        if not self._wildcard:
            return self.local
        return self._route_source(peer.strip("[]")) or self.public  # type: ignore[union-attr]

    def bind_toward(self, peer: Optional[str], default: str) -> str:
        """
        The address to bind a socket for C{peer} on: ours of its family.
        """
        return self.ipv6 if self._ipv6(peer) else default

    def _ipv6(self, peer: Optional[str]) -> bool:
        """
        Whether C{peer} is reached over IPv6 (and we have an IPv6 address): an IPv6 literal,
        or a name resolved to one.
        """
        if not self.ipv6 or not peer:
            return False
        if _ip(peer) is None and self.names is not None:
            peer = self.names(peer) or peer
        return _ipv6_peer(peer)

    def own(self, host: str) -> bool:
        """
        Whether C{host} is the public address, which only peers across the NAT can use.
        """
        return self.split and _ip(host) is not None and _ip(host) == _ip(self.public)

    def way_home(self, host: str) -> str:
        """
        Where to send what is addressed to C{host}: our public address is reached through the
        bind address (the cloud router need not hairpin it back); any other host is itself.
        """
        if not self.own(host):
            return host
        return "127.0.0.1" if self._wildcard else self.local

    def _route_source(self, peer: str) -> Optional[str]:
        if peer not in self._routes:
            if len(self._routes) >= _MAX_ROUTE_CACHE:
                self._routes.clear()
            self._routes[peer] = route_source(peer)
        return self._routes[peer]
