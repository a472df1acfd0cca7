# -*- test-case-name: tests.transport.test_dns -*-
"""
RFC 3263 client resolution: where a SIP destination given by host name really is.

A name with no port is looked up as NAPTR (to find the SRV name for our transport, RFC 3263 4.1),
then SRV (4.2: C{_sip._udp}, C{_sip._tcp}, C{_sips._tcp}), then A/AAAA of each SRV target; a name
with no SRV records, or with an explicit port, is looked up as A/AAAA only.  The transport is the
one the UA chose (the URI's C{transport=} parameter, UDP by default): the request's Via already
names it, so NAPTR only says which SRV name serves it.

The answer is an ordered list of IP targets (RFC 2782: SRV priority, then a weighted random order
within a priority), cached until the smallest TTL of the records used (a bounded cache; a step
that found nothing counts with C{negative_ttl}).  Lookups go through any Twisted Names
L{IResolver} (L{build_resolver}: /etc/hosts, then the configured DNS servers).
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from typing import Any, Iterable, NamedTuple

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.names import client, dns, hosts, resolve

from wcs_twisted.sip.address import DEFAULT_PORTS, SIPAddress

#: NAPTR services (RFC 3263 4.1) and SRV prefixes (4.2) per transport.
NAPTR_SERVICES = {"udp": "SIP+D2U", "tcp": "SIP+D2T", "tls": "SIPS+D2T"}
SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}

#: Seconds a DNS query may take, per try (Twisted Names retries with each value in turn).
DEFAULT_QUERY_TIMEOUT = (1, 2)


class Resolution(NamedTuple):
    """
    The targets for one destination, in the order to try them, and when they expire.
    """

    targets: tuple[SIPAddress, ...]
    expires: float


def build_resolver(servers: Iterable[tuple[str, int]] = (), hosts_file: str = "/etc/hosts",
                   timeout: tuple[int, ...] = DEFAULT_QUERY_TIMEOUT, reactor=None):
    """
    A Twisted Names resolver: the hosts file first (so "localhost" and local names work without
    a DNS server), then C{servers}, or the system's resolv.conf when none are given.
    """
    servers = list(servers) or system_servers()
    dns_client = client.Resolver(servers=servers, timeout=timeout, reactor=reactor)
    return resolve.ResolverChain([hosts.Resolver(file=hosts_file.encode()), dns_client])


def system_servers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """
    The name servers of resolv.conf, read once (Twisted's own reading of it re-reads the file
    every minute on a timer that outlives the stack).
    """
    servers = []
    try:
        with open(path) as lines:
            for line in lines:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    servers.append((words[1].split("%")[0], 53))
    except OSError:
        pass
    return servers or [("127.0.0.1", 53)]


def address_text(answer) -> str:
    """
    The IP literal of an A or AAAA record.
    """
    if answer.type == dns.A:
        return answer.payload.dottedQuad()
    return socket.inet_ntop(socket.AF_INET6, answer.payload.address)


def srv_order(records: list[Any], random: Any) -> list[Any]:
    """
    RFC 2782 order: lowest priority first; within a priority, a weighted random pick after
    another (weight 0 records are picked last, as the RFC's running-sum rule makes likely).
    """
    ordered = []
    for priority in sorted({record.priority for record in records}):
        group = [record for record in records if record.priority == priority]
        group.sort(key=lambda record: record.weight == 0)
        while group:
            total = sum(record.weight for record in group)
            if total == 0:
                ordered.extend(group)
                break
            pick = random.random() * total
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running > pick:
                    break
            ordered.append(group.pop(index))
    return ordered


class SIPResolver:
    """
    RFC 3263 resolution of a destination to IP targets, with a TTL-bound, size-bound cache.

    @ivar queries: DNS queries sent (for tests and metrics).
    """

    log = Logger()

    def __init__(self, resolver, clock, random, *, max_entries: int = 1024,
                 negative_ttl: float = 30.0, max_ttl: float = 3600.0) -> None:
        """
        @param resolver: a Twisted Names L{IResolver}.
        @param negative_ttl: seconds a lookup step that found nothing (no NAPTR, no SRV) counts.
        @param max_ttl: longest a resolution is kept, whatever its records say.
        """
        self.resolver = resolver
        self.clock = clock
        self.random = random
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self.queries = 0
        self._cache: OrderedDict[tuple[str, str, int], Resolution] = OrderedDict()
        #: The latest resolution per name, whatever its transport and port (L{cached_host}:
        #: asked for every message toward a peer known by name when IPv6 is configured).
        self._by_name: dict[str, Resolution] = {}
        self._running: dict[tuple[str, str, int], list[Deferred]] = {}

    def cached(self, destination: SIPAddress) -> Resolution | None:
        """
        The unexpired resolution of C{destination}, if any (no lookup).
        """
        key = self._key(destination)
        found = self._cache.get(key)
        if found is not None and found.expires <= self.clock.seconds():
            del self._cache[key]
            return None
        return found

    def cached_host(self, host: str) -> str | None:
        """
        The first target address of an unexpired resolution of C{host} (any transport and
        port), or None: the family a peer known by name is reached in.
        """
        found = self._by_name.get(host.lower())
        if found is None or found.expires <= self.clock.seconds() or not found.targets:
            return None
        return found.targets[0].host

    def resolve(self, destination: SIPAddress) -> Deferred:
        """
        Fire with the L{Resolution} of C{destination} (a host name; port 0: not given, so SRV);
        one lookup at a time per destination.
        """
        found = self.cached(destination)
        if found is not None:
            return succeed(found)
        key = self._key(destination)
        waiting = self._running.get(key)
        result: Deferred = Deferred()
        if waiting is not None:
            waiting.append(result)
            return result
        self._running[key] = [result]
        self._lookup(destination).addBoth(self._finished, key)
        return result

    def _key(self, destination: SIPAddress) -> tuple[str, str, int]:
        return destination.transport, destination.host.lower(), destination.port

    def _finished(self, outcome, key) -> None:
        waiting = self._running.pop(key, [])
        if isinstance(outcome, Resolution):
            if outcome.expires > self.clock.seconds():
                self._cache[key] = outcome
                self._cache.move_to_end(key)
                if len(self._by_name) >= self.max_entries:
                    self._by_name.clear()  # bounded as the cache is; entries expire anyway
                self._by_name[key[1]] = outcome
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        for deferred in waiting:
            if isinstance(outcome, Resolution):
                deferred.callback(outcome)
            else:
                deferred.errback(outcome)

    @inlineCallbacks
    def _lookup(self, destination: SIPAddress):
        now = self.clock.seconds()
        transport, host = destination.transport, destination.host.rstrip(".")
        if destination.port:
            targets, ttl = yield self._addresses(host)
            return self._resolution(transport, [(ip, destination.port) for ip in targets], ttl,
                                    now)
        srv_name, ttl = yield self._naptr(host, transport)
        records, additional, srv_ttl = yield self._srv(srv_name)
        ttl = min(ttl, srv_ttl)
        if not records:
            targets, address_ttl = yield self._addresses(host)
            return self._resolution(transport, [(ip, DEFAULT_PORTS[transport]) for ip in targets],
                                    min(ttl, address_ttl), now)
        pairs = []
        for record in srv_order(records, self.random):
            target = record.target.name.decode().rstrip(".")
            if target in ("", "."):
                continue  # "." : the service is decidedly not available (RFC 2782)
            known = additional.get(target.lower())
            if known:
                addresses, address_ttl = known
            else:
                addresses, address_ttl = yield self._addresses(target)
            ttl = min(ttl, address_ttl)
            pairs.extend((ip, record.port) for ip in addresses)
        return self._resolution(transport, pairs, ttl, now)

    def _resolution(self, transport: str, pairs, ttl: float, now: float) -> Resolution:
        targets: list[SIPAddress] = []
        for ip, port in pairs:
            target = SIPAddress(transport, ip, port)
            if target not in targets:
                targets.append(target)
        return Resolution(tuple(targets), now + max(0.0, min(ttl, self.max_ttl)))

    def _query(self, method, name: str):
        self.queries += 1
        return getattr(self.resolver, method)(name)

    @inlineCallbacks
    def _naptr(self, host: str, transport: str):
        """
        The SRV name NAPTR gives for our transport (RFC 3263 4.1), else the default one.
        """
        default = SRV_PREFIXES[transport] + host
        try:
            answers, _, _ = yield self._query("lookupNamingAuthorityPointer", host)
        except Exception:
            return default, self.negative_ttl
        service = NAPTR_SERVICES[transport].encode()
        matching = [answer for answer in answers if answer.type == dns.NAPTR
                    and answer.payload.flags.string.lower() == b"s"
                    and answer.payload.service.string.upper() == service]
        if not matching:
            return default, min([a.ttl for a in answers] or [self.negative_ttl])
        best = min(matching, key=lambda a: (a.payload.order, a.payload.preference))
        return best.payload.replacement.name.decode().rstrip("."), best.ttl

    @inlineCallbacks
    def _srv(self, name: str):
        """
        SRV records of C{name}, the addresses the additional section gave for their targets,
        and the TTL.
        """
        try:
            answers, _, extra = yield self._query("lookupService", name)
        except Exception:
            return [], {}, self.negative_ttl
        records = [answer.payload for answer in answers if answer.type == dns.SRV]
        if not records:
            return [], {}, self.negative_ttl
        additional: dict[str, tuple[list[str], float]] = {}
        for answer in extra:
            if answer.type in (dns.A, dns.AAAA):
                name = answer.name.name.decode().rstrip(".").lower()
                addresses, ttl = additional.get(name, ([], answer.ttl))
                additional[name] = (addresses + [address_text(answer)], min(ttl, answer.ttl))
        ttl = min(answer.ttl for answer in answers if answer.type == dns.SRV)
        return records, additional, ttl

    @inlineCallbacks
    def _addresses(self, host: str):
        """
        A then AAAA addresses of C{host} and their smallest TTL (IPv4 first: our listeners
        are IPv4 unless configured otherwise).
        """
        addresses: list[str] = []
        ttls: list[float] = []
        for method, kind in (("lookupAddress", dns.A), ("lookupIPV6Address", dns.AAAA)):
            try:
                answers, _, _ = yield self._query(method, host)
            except Exception:
                continue
            for answer in answers:
                if answer.type == kind:
                    addresses.append(address_text(answer))
                    ttls.append(answer.ttl)
        if not addresses:
            self.log.info("DNS: no address for {host}", host=host)
        return addresses, min(ttls) if ttls else self.negative_ttl
