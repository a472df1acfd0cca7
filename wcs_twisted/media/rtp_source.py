# -*- test-case-name: tests.media.test_rtp -*-
"""
Where a plain RTP leg may learn its peer's media source from: the policy of
docs/security.md, "RTP source learning", kept free of I/O so it reads (and
is tested) on its own.

The peer's SDP names the address it receives on; symmetric peers send from
it too.  Behind NAT they send from the NAT's public side instead, which the
SDP cannot name but the signalling source usually is.  Any other host is
someone else, however early its packets arrive - except when the SDP
address is unroutable for us and the phone's NAT is not where its
signalling comes from (a phone behind a home NAT, registered through a
proxy): then a source off the expected hosts is put on probation
(L{Probation}) and learnt only once it proves to carry one stream.
"""

from __future__ import annotations

import ipaddress
from typing import Optional, Union

__all__ = [
    "LEARNING_WINDOW",
    "PROBATION_CANDIDATES",
    "PROBATION_PACKETS",
    "Probation",
    "REFUSAL_LOG_INTERVAL",
    "canonical_host",
    "expected_hosts",
    "nat_suspected",
]

#: Seconds after the peer's first packet during which its stream may still
#: move to another port of the expected hosts; then the source is locked.
LEARNING_WINDOW = 3.0

#: At most one log line per this many seconds about refused datagrams.
REFUSAL_LOG_INTERVAL = 10.0

#: Consecutive in-sequence RTP packets of one SSRC a source off the expected
#: hosts must send before it is learnt (Asterisk's strictrtp probation is 4):
#: a random datagram continues a run with odds of 2**-48 (SSRC and sequence).
PROBATION_PACKETS = 4

#: Hosts followed on probation at once; a flood from more hosts evicts the
#: oldest (it can delay learning, never decide it).
PROBATION_CANDIDATES = 16


def _ip(host: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def canonical_host(host: str) -> str:
    """
    One spelling per address (IPv4-mapped IPv6 as IPv4), so hosts compare
    equal however a socket or an SDP wrote them; names are left as they are.
    """
    ip = _ip(host)
    return host if ip is None else str(ip)


def nat_suspected(sdp_host: str, local_host: str) -> bool:
    """
    Whether the SDP address may not be where the peer's packets come from:
    it is private, link-local, unspecified or a name - anything but a
    global address, or a loopback address while we listen on loopback
    (the peer is on this host then).
    """
    ip = _ip(sdp_host)
    if ip is None or ip.is_unspecified:
        return True
    if ip.is_loopback:
        local = _ip(local_host)
        return local is None or not local.is_loopback
    return not ip.is_global


def expected_hosts(
    sdp_host: str, signalling_source: Optional[str], local_host: str
) -> Optional[frozenset[str]]:
    """
    The hosts the peer's media may come from, or C{None} when they cannot
    be known (learn from any source, as plain symmetric RTP does).

    The SDP host always; NAT is detected when the SDP address differs from
    the signalling source or is unroutable (L{nat_suspected}), and then the
    signalling source's host is expected too, being the NAT's public side.
    Suspected NAT with no signalling source known leaves nothing to check
    against: C{None}.
    """
    sdp_host = canonical_host(sdp_host)
    if signalling_source is not None:
        return frozenset((sdp_host, canonical_host(signalling_source)))
    if nat_suspected(sdp_host, local_host):
        return None
    return frozenset((sdp_host,))


class Probation:
    """
    Sources off the expected hosts that may still be learnt, for a leg whose
    SDP address is unroutable (L{nat_suspected}): the first to send
    C{packets} consecutive in-sequence RTP packets of one SSRC from one
    address, all within C{window} seconds of the first of them, passes.
    Each host is judged on its own packets only, so random datagrams from
    another host (from any number of its ports) neither pass nor reset the
    phone's run.  Free of I/O: the caller gives the time.
    """

    def __init__(
        self,
        packets: int = PROBATION_PACKETS,
        window: float = LEARNING_WINDOW,
        capacity: int = PROBATION_CANDIDATES,
    ) -> None:
        self.packets = packets
        self.window = window
        self.capacity = capacity
        # host -> [port, ssrc, last sequence number, count, time of the first]
        self._candidates: dict[str, list] = {}

    def passes(self, source: tuple[str, int], ssrc: int, sequence: int, now: float) -> bool:
        """
        Count one RTP packet from C{source}; whether that source has now
        proved itself (probation then ends for every host).
        """
        candidates = self._candidates
        host, port = source
        state = candidates.get(host)
        if (
            state is None
            or state[0] != port
            or state[1] != ssrc
            or sequence != (state[2] + 1) & 0xFFFF
            or now - state[4] > self.window
        ):
            if state is None and len(candidates) >= self.capacity:
                del candidates[next(iter(candidates))]
            candidates[host] = [port, ssrc, sequence, 1, now]
            return self.packets <= 1
        state[2] = sequence
        state[3] += 1
        if state[3] < self.packets:
            return False
        candidates.clear()
        return True
