"""
Benchmark: CPU per relayed media packet in the gateway.

(One file over 600 lines: the server child, the load generator and the report are one experiment.)

The gateway runs in a child process with N calls set up; a load generator in
this process plays both ends of every call (a "browser" and a "phone"), sending
one 20 ms audio packet (160 bytes of PCMU payload) per direction per call every
20 ms, i.e. 100 packets/s into the gateway and 100 out per call.  The child
reports its own getrusage() CPU and packet counters over a measured window
after a warm-up, so the figure is the gateway's cost only:

    us/packet = gateway CPU seconds / packets it received (each is relayed once)

which covers, per packet: receive syscall, reactor dispatch, SRTP unprotect or
protect (WebRTC side), header rewrite, send syscall.  The budget in
performance.md is <= ~30 us/packet (150 relayed calls per core).

Modes (gateway side):
  rtp          RTP <-> RTP: two RTPSession legs bridged (plain SIP-to-SIP relay).
  webrtc       WebRTCTransport (ICE-lite, DTLS-SRTP, SRTP on a Twisted port)
               <-> RTPSession: the design proposed in docs/media.md.
  aiortc-hook  aiortc's own RTCIceTransport + RTCDtlsTransport with the RTP
               parse replaced by a hook (subclassed _handle_rtp_data) that
               forwards raw packets; sending bypasses its coroutines.  The
               cheapest way to keep aiortc's asyncio transports.
  micro        per-operation costs (timeit), and one relayed packet through
               the real leg objects with the sockets stubbed out.

--reactor epoll runs the gateway on epoll for comparison; --udp asyncio binds
the rtp/webrtc legs on asyncio's datagram transport instead of Twisted's.

    .venv/bin/python bench/media_relay.py --mode webrtc --calls 50 --seconds 10
    .venv/bin/python bench/media_relay.py --mode all --calls 50
    .venv/bin/python bench/media_relay.py --mode micro

The generator performs a real handshake with the gateway: one ICE check with
USE-CANDIDATE (it answers the gateway's checks too, for aiortc-hook), a DTLS
client handshake, then SRTP with the negotiated keys.  Not a test; no timing
assertions anywhere in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOOPBACK = "127.0.0.1"
GEN_UFRAG = "genu"
GEN_PWD = "generatorpassword0123456"
PAYLOAD = b"\xff" * 160
PTIME = 0.02


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- gateway (child process) ----------------------------------------------------


def gateway_main(args: argparse.Namespace) -> None:
    if args.reactor == "asyncio":
        from twisted.internet import asyncioreactor

        asyncioreactor.install()
    else:
        from twisted.internet import epollreactor

        epollreactor.install()
    from twisted.internet import defer, reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from wcs_twisted.media.ports import PortPool
    from wcs_twisted.media.rtp import RTPSession

    pool = PortPool(args.port_low, args.port_low + 8 * args.calls + 64)
    udp = reactor
    if args.udp == "asyncio":
        udp = AsyncioUDP(reactor)
    legs: list = []  # objects with packets_received / packets_sent
    calls: list[dict] = []
    gen_fingerprints = json.loads(args.gen_fingerprints) if args.gen_fingerprints else []

    def bridge(a, b) -> None:
        send_b = b.send_packet
        send_a = a.send_packet
        a.packet_received = lambda data: send_b(bytearray(data))
        b.packet_received = lambda data: send_a(bytearray(data))

    def rtp_leg():
        leg = RTPSession(udp, LOOPBACK, pool, clock=reactor, rtcp_interval=5.0)
        leg.start()
        legs.append(leg)
        return leg

    async def setup() -> None:
        if args.mode == "rtp":
            for _ in range(args.calls):
                a, b = rtp_leg(), rtp_leg()
                bridge(a, b)
                calls.append({"a": a.local_address[1], "b": b.local_address[1]})
        elif args.mode == "webrtc":
            from wcs_twisted.media.webrtc import RTCCertificate, WebRTCTransport

            certificate = RTCCertificate.generateCertificate()
            for _ in range(args.calls):
                w = WebRTCTransport(udp, LOOPBACK, certificate, pool, clock=reactor,
                                    clock_rate=8000)
                w.start()
                w.set_remote(GEN_UFRAG, [tuple(f) for f in gen_fingerprints], "server")
                legs.append(w)
                r = rtp_leg()
                bridge(w, r)
                p = w.local_parameters
                calls.append({
                    "webrtc": w.local_address[1], "ufrag": p.ice_ufrag, "pwd": p.ice_pwd,
                    "fingerprints": list(p.fingerprints), "rtp": r.local_address[1],
                })
        elif args.mode == "aiortc-hook":
            for _ in range(args.calls):
                hook = await AiortcHookLeg.create(gen_fingerprints)
                legs.append(hook)
                r = rtp_leg()
                bridge(hook, r)
                calls.append({
                    "webrtc": hook.port, "ufrag": hook.ufrag, "pwd": hook.pwd,
                    "fingerprints": hook.fingerprints, "rtp": r.local_address[1],
                })
        sys.stdout.write(json.dumps({"calls": calls}) + "\n")
        sys.stdout.flush()

    mark: dict = {}

    def totals():
        return (
            sum(leg.packets_received for leg in legs),
            sum(leg.packets_sent for leg in legs),
            sum(leg.packets_dropped for leg in legs),
        )

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            command = line.decode().strip()
            if command == "mark":
                mark.update(cpu=cpu_seconds(), wall=time.monotonic(), totals=totals())
            elif command == "report":
                received, sent, dropped = totals()
                r0, s0, d0 = mark["totals"]
                report = {
                    "cpu": cpu_seconds() - mark["cpu"],
                    "wall": time.monotonic() - mark["wall"],
                    "received": received - r0,
                    "sent": sent - s0,
                    "dropped": dropped - d0,
                    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                }
                if args.mode in ("webrtc", "aiortc-hook"):
                    report["connected"] = sum(
                        1 for leg in legs if getattr(leg, "state", "connected") == "connected"
                    )
                self.sendLine(json.dumps(report).encode())
            elif command == "quit":
                reactor.stop()

        def connectionLost(self, reason=None) -> None:
            if reactor.running:
                reactor.stop()

    def start() -> None:
        if args.reactor == "asyncio":
            # aiortc awaits asyncio futures: run the setup as an asyncio task.
            import asyncio

            d = defer.Deferred.fromFuture(asyncio.ensure_future(setup()))
        else:
            d = defer.Deferred.fromCoroutine(setup())

        def failed(f):
            f.printTraceback(file=sys.stderr)
            reactor.stop()

        d.addCallbacks(lambda _: stdio.StandardIO(Control()), failed)

    reactor.callWhenRunning(start)
    reactor.run()


class AsyncioUDP:
    """
    listenUDP on asyncio's own datagram transport instead of Twisted's
    udp.Port (experiment: same DatagramProtocol, another socket layer).
    """

    def __init__(self, reactor):
        self.reactor = reactor

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        import asyncio

        from twisted.internet.address import IPv4Address
        from twisted.internet.error import CannotListenError

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((interface, port))
        except OSError as e:
            sock.close()
            raise CannotListenError(interface, port, e)
        sock.setblocking(False)
        bound = sock.getsockname()

        class Port:
            def __init__(self):
                self.protocol = protocol

            def getHost(self):
                return IPv4Address("UDP", *bound)

            def stopListening(self):
                self.transport.close()

        port_object = Port()

        class Adapter(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                port_object.transport = transport
                port_object.write = lambda data, addr=None: transport.sendto(data, addr)
                protocol.makeConnection(port_object)

            def datagram_received(self, data, addr):
                protocol.datagramReceived(data, addr)

            def connection_lost(self, exc):
                protocol.doStop()

        loop = asyncio.get_event_loop()
        # Private but synchronous: create_datagram_endpoint would need an await.
        loop._make_datagram_transport(sock, Adapter())
        return port_object


class AiortcHookLeg:
    """
    A WebRTC leg on aiortc's RTCIceTransport/RTCDtlsTransport, hooked so RTP
    is neither parsed nor decoded (bench only).
    """

    @classmethod
    async def create(cls, gen_fingerprints):
        from unittest import mock

        from aiortc.rtcdtlstransport import (
            RTCCertificate,
            RTCDtlsFingerprint,
            RTCDtlsParameters,
            RTCDtlsTransport,
        )
        from aiortc.rtcicetransport import RTCIceGatherer, RTCIceParameters, RTCIceTransport

        from wcs_twisted.media.rtp_packet import RTPRewriter

        self = cls()
        if not hasattr(cls, "_certificate"):
            cls._certificate = RTCCertificate.generateCertificate()
        leg = self

        class HookedDtls(RTCDtlsTransport):
            async def _handle_rtp_data(self, data, arrival_time_ms):
                leg.packets_received += 1
                callback = leg.packet_received
                if callback is not None:
                    callback(data)

        # aioice leaves 127.0.0.1 out of its host candidates: put it back.
        with mock.patch("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: [LOOPBACK]):
            gatherer = RTCIceGatherer(iceServers=[])
            await gatherer.gather()
        self.ice = RTCIceTransport(gatherer)
        self.dtls = HookedDtls(self.ice, [cls._certificate])
        self.dtls._set_role("server")
        candidate = gatherer.getLocalCandidates()[0]
        self.port = candidate.port
        params = gatherer.getLocalParameters()
        self.ufrag, self.pwd = params.usernameFragment, params.password
        self.fingerprints = [
            (f.algorithm, f.value) for f in self.dtls.getLocalParameters().fingerprints
        ]
        self.rewriter = RTPRewriter(0x5EED)
        self.packets_received = self.packets_sent = self.packets_dropped = 0
        self.packet_received = None
        self.state = "new"

        async def run():
            await self.ice.start(RTCIceParameters(usernameFragment=GEN_UFRAG, password=GEN_PWD))
            await self.dtls.start(RTCDtlsParameters(
                fingerprints=[RTCDtlsFingerprint(a, v) for a, v in gen_fingerprints]))
            pair = self.ice._connection._nominated[1]
            self._sendto = pair.protocol.transport.sendto
            self._remote = pair.remote_addr
            self.state = "connected"

        import asyncio

        asyncio.ensure_future(run())
        return self

    def send_packet(self, buf: bytearray) -> None:
        if self.state != "connected":
            return
        self.rewriter.rewrite(buf)
        self._sendto(self.dtls._tx_srtp.protect(bytes(buf)), self._remote)
        self.packets_sent += 1


# -- load generator (this process) -----------------------------------------------


def generator_main(args: argparse.Namespace) -> dict:
    from twisted.internet import epollreactor

    epollreactor.install()
    from aioice import stun
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol
    from twisted.internet.task import LoopingCall

    from wcs_twisted.media.dtls import DTLSSRTPEndpoint, DTLSState, RTCCertificate

    certificate = RTCCertificate.generateCertificate()
    fingerprints = [(f.algorithm, f.value) for f in certificate.getFingerprints()]
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", "gateway", "--mode", args.mode,
         "--calls", str(args.calls), "--reactor", args.reactor, "--port-low", str(args.port_low),
         "--udp", args.udp,
         "--gen-fingerprints", json.dumps(fingerprints)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )
    assert child.stdout is not None and child.stdin is not None
    setup = json.loads(child.stdout.readline())
    gateway = (LOOPBACK,)

    header = struct.Struct("!BBHII")

    class Endpoint(DatagramProtocol):
        """
        One end of one call: plain RTP, or ICE + DTLS + SRTP.
        """

        def __init__(self, port, ssrc, webrtc=None):
            self.dest = (LOOPBACK, port)
            self.ssrc = ssrc
            self.seq = 0
            self.received = 0
            self.webrtc = webrtc
            self.dtls = None
            self.tx = None
            self.ready = webrtc is None

        def startProtocol(self):
            if self.webrtc is not None:
                self.dtls = DTLSSRTPEndpoint(
                    certificate, "client", [tuple(f) for f in self.webrtc["fingerprints"]])
                self.check()

        def check(self):
            if self.ready:
                return
            request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            request.attributes["USERNAME"] = f"{self.webrtc['ufrag']}:{GEN_UFRAG}"
            request.attributes["PRIORITY"] = 1853824767
            request.attributes["ICE-CONTROLLING"] = 12345
            request.attributes["USE-CANDIDATE"] = None
            request.add_message_integrity(self.webrtc["pwd"].encode())
            self.transport.write(bytes(request), self.dest)
            reactor.callLater(0.1, self.check)

        def datagramReceived(self, data, addr):
            first = data[0]
            if first > 127:
                self.received += 1
                return
            if first < 4:
                message = stun.parse_message(data)
                if message.message_class == stun.Class.REQUEST:
                    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE,
                                            transaction_id=message.transaction_id)
                    response.attributes["XOR-MAPPED-ADDRESS"] = addr
                    response.add_message_integrity(GEN_PWD.encode())
                    self.transport.write(bytes(response), addr)
                elif message.message_class == stun.Class.RESPONSE and self.dtls.state is DTLSState.NEW:
                    for d in self.dtls.start():
                        self.transport.write(d, self.dest)
                return
            if 19 < first < 64 and self.dtls is not None:
                for d in self.dtls.receive(data):
                    self.transport.write(d, self.dest)
                if self.dtls.state is DTLSState.CONNECTED and not self.ready:
                    self.tx = self.dtls.tx_srtp
                    self.ready = True

        def send(self):
            if not self.ready:
                return
            self.seq = (self.seq + 1) & 0xFFFF
            packet = header.pack(0x80, 0, self.seq, self.seq * 160, self.ssrc) + PAYLOAD
            if self.tx is not None:
                packet = self.tx.protect(packet)
            self.transport.write(packet, self.dest)

    endpoints = []
    for i, call in enumerate(setup["calls"]):
        if args.mode == "rtp":
            pair = [Endpoint(call["a"], 2 * i + 1), Endpoint(call["b"], 2 * i + 2)]
        else:
            pair = [Endpoint(call["webrtc"], 2 * i + 1, webrtc=call), Endpoint(call["rtp"], 2 * i + 2)]
        for e in pair:
            reactor.listenUDP(0, e, interface=LOOPBACK)
            endpoints.append(e)

    def tick():
        for e in endpoints:
            e.send()

    sender = LoopingCall(tick)
    result: dict = {}

    def command(text):
        child.stdin.write(text.encode() + b"\n")
        child.stdin.flush()

    def begin():
        ready = sum(e.ready for e in endpoints)
        result["endpoints_ready"] = f"{ready}/{len(endpoints)}"
        for e in endpoints:
            e.received = 0
        result["gen_cpu0"] = cpu_seconds()
        command("mark")
        reactor.callLater(args.seconds, finish)

    def finish():
        command("report")
        report = json.loads(child.stdout.readline())
        result.update(report)
        result["gen_received"] = sum(e.received for e in endpoints)
        result["gen_cpu"] = cpu_seconds() - result.pop("gen_cpu0")
        command("quit")
        sender.stop()
        reactor.stop()

    sender.start(PTIME, now=False)
    reactor.callLater(args.warmup, begin)
    reactor.run()
    child.wait(timeout=10)
    return result


def summarize(mode: str, calls: int, r: dict) -> str:
    packets = max(1, r["received"])
    us = r["cpu"] / packets * 1e6
    core_per_call = r["cpu"] / r["wall"] / calls * 100
    expected = 100 * calls * r["wall"]
    return (
        f"{mode:12s} calls={calls:4d} gateway: {us:6.2f} us/packet, "
        f"{core_per_call:5.3f}% core/call ({100 / max(core_per_call, 1e-9):5.0f} calls/core), "
        f"in={r['received']} out={r['sent']} ({r['received'] / expected:5.1%} of offered) "
        f"dropped={r['dropped']} rss={r['maxrss_kib'] / 1024:.0f} MiB "
        f"ready={r.get('endpoints_ready')} gen_cpu={r['gen_cpu'] / r['wall']:.0%}"
    )


# -- micro benchmarks ---------------------------------------------------------------


def micro_main() -> None:
    from aiortc.rtp import RtpPacket
    from twisted.internet import abstract

    from wcs_twisted.media.dtls import DTLSSRTPEndpoint, RTCCertificate
    from wcs_twisted.media.rtp_packet import RTPRewriter, build_rtp, is_rtcp, peek_header

    a_cert, b_cert = RTCCertificate.generateCertificate(), RTCCertificate.generateCertificate()
    server = DTLSSRTPEndpoint(a_cert, "server", [(f.algorithm, f.value) for f in b_cert.getFingerprints()])
    client = DTLSSRTPEndpoint(b_cert, "client", [(f.algorithm, f.value) for f in a_cert.getFingerprints()])
    out = client.start()
    server.start()
    while out:
        back = [x for d in out for x in server.receive(d)]
        out = [x for d in back for x in client.receive(d)]
    packet = build_rtp(0, 1, 160, 3, PAYLOAD)
    rewriter = RTPRewriter(99)
    parsed = RtpPacket.parse(packet)
    n = 200_000

    def show(label, stmt, **names):
        seconds = min(timeit.repeat(stmt, globals=dict(globals(), **names), number=n, repeat=3))
        print(f"  {label:44s} {seconds / n * 1e6:7.3f} us")

    print(f"micro ({server.profile.openssl_profile.decode()}, 172-byte packets):")
    show("peek_header (unpack_from)", "peek_header(p)", peek_header=peek_header, p=packet)
    show("is_rtcp", "is_rtcp(p)", is_rtcp=is_rtcp, p=packet)
    show("bytearray(datagram) copy", "bytearray(p)", p=packet)
    show("RTPRewriter.rewrite (in place)", "r.rewrite(b)", r=rewriter, b=bytearray(packet))
    show("SRTP protect", "s.protect(p)", s=server.tx_srtp, p=packet)
    protected = []
    for seq in range(n):
        protected.append(client.tx_srtp.protect(build_rtp(0, seq & 0xFFFF, seq, 5, PAYLOAD)))
    start = time.perf_counter()
    unprotect = server.rx_srtp.unprotect
    for p in protected:
        unprotect(p)
    print(f"  {'SRTP unprotect':44s} {(time.perf_counter() - start) / n * 1e6:7.3f} us")
    show("aiortc RtpPacket.parse (avoided)", "parse(p)", parse=RtpPacket.parse, p=packet)
    show("aiortc RtpPacket.serialize (avoided)", "q.serialize()", q=parsed)
    show("Twisted udp.Port.write address checks", "a(h); v(h)",
         a=abstract.isIPAddress, v=abstract.isIPv6Address, h=LOOPBACK)
    relay_paths(server, client)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((LOOPBACK, 0))
    sink.setblocking(False)
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = sink.getsockname()

    def send_and_drain():
        src.sendto(packet, addr)
        sink.recv(2048)

    count = 50_000
    seconds = min(timeit.repeat(send_and_drain, number=count, repeat=3))
    print(f"  {'sendto + recv syscalls (loopback)':44s} {seconds / count * 1e6:7.3f} us")


def relay_paths(server, client) -> None:
    """
    The Python work of one relayed packet through the real leg objects, with
    the sockets replaced by a no-op write: what our code costs per packet,
    excluding syscalls and the reactor.
    """
    from twisted.internet.task import Clock

    from wcs_twisted.media.dtls import RTCCertificate
    from wcs_twisted.media.rtp import RTPSession
    from wcs_twisted.media.rtp_packet import build_rtp
    from wcs_twisted.media.webrtc import WebRTCTransport

    class NullPort:
        def write(self, data, addr=None):
            pass

    clock = Clock()
    rtp = RTPSession(None, LOOPBACK, clock=clock)
    webrtc = WebRTCTransport(None, LOOPBACK, RTCCertificate.generateCertificate(), clock=clock)
    for leg in (rtp, webrtc):
        leg.makeConnection(NullPort())
    phone, browser = ("192.0.2.1", 4000), ("192.0.2.2", 5000)
    rtp.set_remote(*phone)
    rtp._source_addr = phone
    webrtc._selected, webrtc._rx, webrtc._tx = browser, server.rx_srtp, server.tx_srtp
    rtp.packet_received = lambda data: webrtc.send_packet(bytearray(data))
    webrtc.packet_received = lambda data: rtp.send_packet(bytearray(data))

    n = 100_000
    plain = [build_rtp(0, i & 0xFFFF, i * 160, 7, PAYLOAD) for i in range(n)]
    start = time.perf_counter()
    receive = rtp.datagramReceived
    for packet in plain:
        receive(packet, phone)
    print(f"  {'relay RTP->SRTP, sockets stubbed':44s} "
          f"{(time.perf_counter() - start) / n * 1e6:7.3f} us")
    protected = [client.tx_srtp.protect(build_rtp(0, (i + 7) & 0xFFFF, i * 160, 9, PAYLOAD))
                 for i in range(n)]
    start = time.perf_counter()
    receive = webrtc.datagramReceived
    for packet in protected:
        receive(packet, browser)
    print(f"  {'relay SRTP->RTP, sockets stubbed':44s} "
          f"{(time.perf_counter() - start) / n * 1e6:7.3f} us")
    assert rtp.packets_sent == n and webrtc.packets_sent == n, (rtp.packets_sent, webrtc.packets_sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="all",
                        choices=["rtp", "webrtc", "aiortc-hook", "micro", "all"])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--reactor", default="asyncio", choices=["asyncio", "epoll"],
                        help="gateway reactor (production uses asyncio)")
    parser.add_argument("--port-low", type=int, default=44000)
    parser.add_argument("--udp", default="twisted", choices=["twisted", "asyncio"],
                        help="gateway socket layer for rtp/webrtc legs (asyncio needs "
                             "the asyncio reactor)")
    parser.add_argument("--role", default="generator", choices=["generator", "gateway"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--gen-fingerprints", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "gateway":
        gateway_main(args)
        return
    if args.mode in ("micro", "all"):
        micro_main()
        if args.mode == "micro":
            return
    modes = ["rtp", "webrtc", "aiortc-hook"] if args.mode == "all" else [args.mode]
    for mode in modes:
        if len(modes) > 1:
            # one generator process per mode: a reactor cannot be restarted
            subprocess.run([sys.executable, os.path.abspath(__file__), "--mode", mode,
                            "--calls", str(args.calls), "--seconds", str(args.seconds),
                            "--warmup", str(args.warmup), "--reactor", args.reactor,
                            "--port-low", str(args.port_low), "--udp", args.udp], check=False)
            continue
        if mode == "aiortc-hook" and args.reactor != "asyncio":
            print("aiortc-hook needs the asyncio reactor")
            continue
        args.mode = mode
        result = generator_main(args)
        print(summarize(mode, args.calls, result), flush=True)


if __name__ == "__main__":
    main()
