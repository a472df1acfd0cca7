"""
A small Internet inside a test: network namespaces joined by veth pairs, with addresses, routes
and an iptables MASQUERADE router, all removed again by L{Topology.destroy}.

Every address lives only inside the namespaces the test creates; nothing is configured in the
host's own namespace, so nothing can leave the machine.  Peers run inside a namespace with
L{Topology.command} (C{ip netns exec}); this process opens sockets inside one with
L{Topology.inside} (setns(2) on the calling thread, which Twisted's listenUDP/connectTCP use
synchronously); L{Capture} records what crosses an interface there.  Needs root, iproute2
and iptables: L{require_netns} says precisely which is missing so a test can skip with that
reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import struct
import subprocess
from typing import Iterator, NamedTuple

from twisted.internet import task
from twisted.trial.unittest import SkipTest

CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/var/run/netns"
_ETH_P_ALL, _PACKET_OUTGOING = 0x0003, 4
_PROTOCOLS = {socket.IPPROTO_UDP: "udp", socket.IPPROTO_TCP: "tcp"}


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def require_netns() -> None:
    """
    Skip (L{SkipTest}) unless this process can build a NAT topology: root, C{ip}, C{iptables}
    and a kernel with the nat table (probed in a throw-away namespace).
    """
    if os.geteuid() != 0:
        raise SkipTest("network namespaces need root (CI runs the suite as root)")
    for binary, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(binary) is None:
            raise SkipTest(f"{binary} not found (apt-get install {package})")
    probe = f"wcsprobe{os.getpid()}"
    made = _run(["ip", "netns", "add", probe])
    if made.returncode:
        raise SkipTest(f"ip netns add failed: {made.stderr.strip()}")
    try:
        nat = _run(["ip", "netns", "exec", probe, "iptables", "-t", "nat", "-A", "POSTROUTING",
                    "-o", "lo", "-j", "MASQUERADE"])
        if nat.returncode:
            raise SkipTest("the kernel has no iptables nat table/MASQUERADE target "
                           f"(nf_nat / nft_masq): {nat.stderr.strip()}")
    finally:
        _run(["ip", "netns", "del", probe])


class Topology:
    """
    Namespaces and links made for one test; L{destroy} removes them (deleting a namespace
    deletes its veth ends, and so their peers).

    @ivar prefix: the start of every namespace and interface name, unique per process and
        topology so parallel runs never meet (interface names stay within 15 bytes).
    """

    _serial = 0

    def __init__(self, prefix: str = "wcs") -> None:
        Topology._serial += 1
        self.prefix = f"{prefix}{os.getpid() % 100000}{Topology._serial}"
        self.namespaces: list[str] = []
        self._links = 0

    def namespace(self, name: str) -> str:
        """
        Create namespace C{<prefix>-<name>} with its loopback up; return its full name.
        """
        full = f"{self.prefix}-{name}"
        self._check(["ip", "netns", "add", full])
        self.namespaces.append(full)
        self._check(["ip", "-n", full, "link", "set", "lo", "up"])
        return full

    def link(self, a: str, address_a: str, b: str, address_b: str) -> tuple[str, str]:
        """
        A veth pair between namespaces C{a} and C{b}, addressed C{address_a} / C{address_b}
        (CIDR, e.g. C{"192.168.77.1/24"}), both up; return the two interface names.
        """
        self._links += 1
        end_a, end_b = f"v{self.prefix[-8:]}{self._links}a", f"v{self.prefix[-8:]}{self._links}b"
        self._check(["ip", "link", "add", end_a, "netns", a, "type", "veth",
                     "peer", "name", end_b, "netns", b])
        for namespace, end, address in ((a, end_a, address_a), (b, end_b, address_b)):
            self._check(["ip", "-n", namespace, "addr", "add", address, "dev", end])
            self._check(["ip", "-n", namespace, "link", "set", end, "up"])
        return end_a, end_b

    def route(self, namespace: str, destination: str, via: str) -> None:
        """
        C{ip route add destination via via} in C{namespace} (C{"default"} for the default).
        """
        self._check(["ip", "-n", namespace, "route", "add", destination, "via", via])

    def masquerade(self, router: str, outside: str) -> None:
        """
        Make C{router} a home NAT: forward, and rewrite what leaves by interface C{outside}
        to that interface's address (iptables MASQUERADE).
        """
        self._check(self.command(router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        self._check(self.command(router, ["iptables", "-t", "nat", "-A", "POSTROUTING",
                                          "-o", outside, "-j", "MASQUERADE"]))

    def forward(self, router: str, ipv6: bool = False) -> None:
        """
        Make C{router} route between its links (no NAT), in IPv6 too when C{ipv6}.
        """
        self._check(self.command(router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        if ipv6:
            self._check(self.command(router, ["sysctl", "-q", "-w",
                                              "net.ipv6.conf.all.forwarding=1"]))

    def address(self, namespace: str, interface: str, address: str) -> None:
        """
        One more address (CIDR) on C{interface}; IPv6 ones skip duplicate address detection,
        so they are usable at once.
        """
        extra = ["nodad"] if ":" in address else []
        self._check(["ip", "-n", namespace, "addr", "add", address, "dev", interface, *extra])

    def one_to_one_nat(self, router: str, outside: str, public: str, private: str) -> None:
        """
        Make C{router} a cloud 1:1 NAT: C{public} (added to interface C{outside}) maps to
        C{private} both ways (DNAT in, SNAT out).  Only what arrives by C{outside} is mapped,
        so the router does NOT hairpin: a packet for C{public} from the private side ends at
        the router itself, as at many cloud providers.
        """
        self.forward(router)
        self._check(["ip", "-n", router, "addr", "add", f"{public}/32", "dev", outside])
        self._check(self.command(router, ["iptables", "-t", "nat", "-A", "PREROUTING",
                                          "-i", outside, "-d", public,
                                          "-j", "DNAT", "--to-destination", private]))
        self._check(self.command(router, ["iptables", "-t", "nat", "-A", "POSTROUTING",
                                          "-o", outside, "-s", private,
                                          "-j", "SNAT", "--to-source", public]))

    def drop(self, namespace: str, interface: str, address: str) -> None:
        """
        C{namespace} silently drops every packet for C{address} arriving by C{interface}
        (a host that is down, seen from that side: no answer, no ICMP).
        """
        self._check(self.command(namespace, ["iptables", "-A", "INPUT", "-i", interface,
                                             "-d", address, "-j", "DROP"]))

    def enter(self, namespace: str):
        """
        Move this thread into C{namespace} until the returned function is called: every
        socket opened meanwhile, at once or later by the reactor, lives there.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        home = open("/proc/thread-self/ns/net")
        with open(os.path.join(_NETNS_DIR, namespace)) as target:
            if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                home.close()
                raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")

        def leave() -> None:
            try:
                if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back home failed")
            finally:
                home.close()
        return leave

    def nat_table(self, router: str) -> str:
        """
        C{iptables -t nat -L -n -v} in C{router}: its rules with their packet counters.
        """
        return self._check(self.command(router, ["iptables", "-t", "nat", "-L", "-n", "-v"]))

    def command(self, namespace: str, argv: list[str]) -> list[str]:
        """
        C{argv} run inside C{namespace}.
        """
        return ["ip", "netns", "exec", namespace, *argv]

    @contextlib.contextmanager
    def inside(self, namespace: str) -> Iterator[None]:
        """
        Sockets this thread opens within the block live in C{namespace} (setns(2)); the
        thread is back in its own namespace afterwards, even on error.
        """
        leave = self.enter(namespace)
        try:
            yield
        finally:
            leave()

    def destroy(self) -> None:
        """
        Delete every namespace made (and with them their links, routes and NAT rules).
        """
        while self.namespaces:
            _run(["ip", "netns", "del", self.namespaces.pop()])

    def _check(self, argv: list[str]) -> str:
        result = _run(argv)
        if result.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                               f"{result.stderr.strip()}")
        return result.stdout


class Packet(NamedTuple):
    """
    One captured IPv4 UDP or TCP packet (C{protocol} is C{"udp"} or C{"tcp"}).
    """

    protocol: str
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


class Capture:
    """
    Every IPv4 UDP and TCP packet crossing one interface of a namespace, read from an
    AF_PACKET socket (opened there) that the reactor drains every 20 ms until L{stop}: the
    wire as a peer in that namespace sees it, after any NAT on the way.
    """

    def __init__(self, topology: Topology, namespace: str, interface: str, reactor) -> None:
        with topology.inside(namespace):
            self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                         socket.htons(_ETH_P_ALL))
            self._socket.bind((interface, 0))
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self._socket.setblocking(False)
        # lo shows each packet twice, once leaving and once arriving: keep the arriving one.
        self._skip_outgoing = interface == "lo"
        self.packets: list[Packet] = []
        self._loop = task.LoopingCall(self._drain)
        self._loop.clock = reactor
        self._loop.start(0.02)

    def _drain(self) -> None:
        for _ in range(10000):
            try:
                frame, address = self._socket.recvfrom(65535)
            except BlockingIOError:
                return
            if self._skip_outgoing and address[2] == _PACKET_OUTGOING:
                continue
            packet = _parse_ipv4(frame[14:])
            if packet is not None:
                self.packets.append(packet)

    def stop(self) -> None:
        """
        Drain what is queued and close the socket (safe to call twice).
        """
        if self._loop.running:
            self._drain()
            self._loop.stop()
            self._socket.close()

    def between(self, protocol: str, a: str, b: str) -> list[Packet]:
        """
        The C{protocol} packets exchanged between hosts C{a} and C{b}, either way.
        """
        return [packet for packet in self.packets if packet.protocol == protocol
                and {packet.source[0], packet.destination[0]} == {a, b}]


def _parse_ipv4(ip: bytes) -> Packet | None:
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] not in _PROTOCOLS:
        return None
    header, total = (ip[0] & 0x0F) * 4, int.from_bytes(ip[2:4], "big")
    source, destination = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    ports = struct.unpack_from("!HH", ip, header)
    body = header + (8 if ip[9] == socket.IPPROTO_UDP else (ip[header + 12] >> 4) * 4)
    return Packet(_PROTOCOLS[ip[9]], (source, ports[0]), (destination, ports[1]),
                  bytes(ip[body:total]))


# -- impairment: loss, jitter and reordering on a router's path (issue 13, "Bad networks") --

_DELAYER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nfqueue_delay.py")


def require_netem() -> None:
    """
    L{SkipTest} with the kernel's answer unless C{tc qdisc ... netem} works (probed on the
    loopback of a throw-away namespace).
    """
    probe = f"wcsnetem{os.getpid()}"
    made = _run(["ip", "netns", "add", probe])
    if made.returncode:
        raise SkipTest(f"ip netns add failed: {made.stderr.strip()}")
    try:
        netem(Topology(), probe, "lo", "delay", "1ms")
    finally:
        _run(["ip", "netns", "del", probe])


def netem(topology: Topology, namespace: str, interface: str, *arguments: str) -> None:
    """
    C{tc qdisc add dev interface root netem arguments} in C{namespace}; L{SkipTest} with the
    kernel's answer when it has no sch_netem (L{Impairment} does the same job without it).
    """
    result = _run(topology.command(namespace, ["tc", "qdisc", "add", "dev", interface, "root",
                                               "netem", *arguments]))
    if result.returncode:
        raise SkipTest(f"tc netem is not available: {result.stderr.strip()}")


class Impairment:
    """
    A bad link inside the kernel's forwarding path of router namespace C{router}, for kernels
    without sch_netem: every forwarded UDP packet (both directions) is dropped with probability
    C{loss} (iptables C{statistic --mode random}), and the rest go through NFQUEUE to
    L{tests.integration.nfqueue_delay}, which accepts each after uniform(C{delay_ms} -
    C{jitter_ms}, C{delay_ms} + C{jitter_ms}) ms, so packets overtake each other as under netem.

    L{start} before the traffic, L{stop} (idempotent) to remove the rules and collect
    L{figures}: what was dropped, held and reordered - proof that the path really was impaired.
    """

    _queues = 0

    def __init__(self, topology: Topology, router: str, loss: float = 0.05,
                 delay_ms: float = 30.0, jitter_ms: float = 30.0, seed: int = 13) -> None:
        Impairment._queues += 1
        self.topology, self.router = topology, router
        self.loss, self.delay_ms, self.jitter_ms, self.seed = loss, delay_ms, jitter_ms, seed
        self.queue = 1000 + (os.getpid() % 1000) * 10 + Impairment._queues % 10
        self.figures: dict = {}
        self._process: subprocess.Popen | None = None
        self._rules: list[list[str]] = []
        self._path = f"/tmp/wcs-impair-{os.getpid()}-{self.queue}.json"

    def start(self) -> None:
        """
        Bind the queue, then insert the rules (DROP first, then NFQUEUE).
        """
        import sys  # here, not at the top: this block is appended for easy merging
        self._process = subprocess.Popen(
            self.topology.command(self.router, [
                sys.executable, _DELAYER, str(self.queue), str(self.delay_ms),
                str(self.jitter_ms), str(self.seed), self._path]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = self._process.stdout.readline().strip()
        if ready != "ready":
            self._process.wait(timeout=5)
            raise RuntimeError(f"the NFQUEUE delayer did not start: {ready} "
                               f"{self._process.stderr.read().strip()}")
        self._rules = [
            ["FORWARD", "-p", "udp", "-m", "statistic", "--mode", "random", "--probability",
             str(self.loss), "-j", "DROP"],
            ["FORWARD", "-p", "udp", "-j", "NFQUEUE", "--queue-num", str(self.queue)],
        ]
        for rule in self._rules:
            self.topology._check(self.topology.command(self.router, ["iptables", "-A", *rule]))

    def counters(self) -> dict[str, int]:
        """
        Packets the rules matched so far: C{dropped} (loss) and C{queued} (delayed).
        """
        listing = self.topology._check(self.topology.command(
            self.router, ["iptables", "-L", "FORWARD", "-n", "-v", "-x"]))
        counts = {"dropped": 0, "queued": 0}
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "DROP" and "statistic" in line:
                counts["dropped"] += int(fields[0])
            elif len(fields) > 2 and fields[2] == "NFQUEUE":
                counts["queued"] += int(fields[0])
        return counts

    def stop(self) -> dict:
        """
        Remove the rules, stop the delayer (it releases what it holds) and return L{figures}.
        """
        if self._process is None:
            return self.figures
        self.figures.update(self.counters())
        for rule in self._rules:
            _run(self.topology.command(self.router, ["iptables", "-D", *rule]))
        process, self._process = self._process, None
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        try:
            import json
            with open(self._path) as handle:
                self.figures.update(json.load(handle))
            os.unlink(self._path)
        except OSError:
            pass
        return self.figures


def renew_default_executor(reactor) -> None:
    """
    Give the reactor's asyncio loop a new default thread pool, and let the old one's threads
    end.  A thread inherits the network namespace of the thread that starts it, so pool
    threads started while this thread was inside a namespace (aiortc encodes in the pool)
    would serve later tests from there - a namespace that no longer exists ("Connection
    refused" to 127.0.0.1).  Call it once this thread is back home.
    """
    from concurrent.futures import ThreadPoolExecutor

    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is None:
        return
    old = getattr(loop, "_default_executor", None)
    loop.set_default_executor(ThreadPoolExecutor())
    if old is not None:
        old.shutdown(wait=False)
