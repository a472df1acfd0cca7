"""
Benchmark: the gateway's CPU and memory per extra player of one named stream.

The gateway runs in a child process on the asyncio reactor (as in production) and builds the
stream the way the stream layer does, through the public media API: a SIP leg
(C{MediaFactory.create_session("rtp")}, offer/answer with the "phone") published with
C{stream_source} into a C{StreamRegistry}, then N players, each a WebRTC leg answering a
browser's recvonly offer with the stream's codec and a C{stream_sink} attached to the stream.
This process is the load generator and plays:

  - the "phone": one plain RTP packet every 20 ms to the SIP leg (PCMU, or Opus frames of a
    440 Hz tone encoded once);
  - N "browsers": one ICE check with USE-CANDIDATE, a DTLS client handshake
    (wcs_twisted.media.dtls, no aiortc), consent checks every 5 s; they count the SRTP packets
    they receive and send nothing else.

Each player count runs in a fresh gateway, and the marginal cost of a player is the slope
against the run with no player (the source alone):

    % of a core per extra player = (gateway % of a core with N - with 0) / N
    us per player packet         = (gateway CPU with N - with 0) / packets sent to players
    RSS per player               = (VmRSS growth with N - with 0) / N

Modes:
  relay      phone PCMU -> RTP leg -> stream -> N x (relay -> WebRTC leg) -> browsers (PCMU)
  transcode  phone Opus -> RTP leg -> stream -> N x (Opus -> PCMU transcoder -> WebRTC leg)

    .venv/bin/python bench/stream_sinks.py --mode relay --players 0,100,200 --seconds 15
    .venv/bin/python bench/stream_sinks.py --mode all
    .venv/bin/python bench/stream_sinks.py --mode micro    (Python work only, sockets stubbed)

Not a test; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import time

from _common import (
    CONSENT_INTERVAL,
    GEN_PWD,
    GEN_UFRAG,
    LOOPBACK,
    PTIME,
    ROOT,
    cpu_seconds,
    ice_check,
    opus_frames,
    rss_kib,
    send_command,
    serve_control,
)


def player_offer(fingerprint: str) -> str:
    """
    A browser's recvonly offer, PCMU only (so an Opus stream has to be transcoded for it).
    """
    return "\r\n".join([
        "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
        "a=group:BUNDLE 0", "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 0 126", "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{GEN_UFRAG}", f"a=ice-pwd:{GEN_PWD}",
        "a=ice-options:trickle", f"a=fingerprint:sha-256 {fingerprint}", "a=setup:actpass",
        "a=mid:0", "a=recvonly", "a=rtcp-mux", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:126 telephone-event/8000", "",
    ])


def phone_answer(port: int, codec: str, direction: str = "sendonly") -> str:
    if codec == "opus":
        fmt, maps = "111", ["a=rtpmap:111 opus/48000/2"]
    else:
        fmt, maps = "0", ["a=rtpmap:0 PCMU/8000"]
    return "\r\n".join([
        "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP {fmt}", *maps, "a=ptime:20", f"a={direction}", "",
    ])


# -- gateway (child process) --------------------------------------------------------------


def gateway_main(args: argparse.Namespace) -> None:
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import reactor

    from wcs_twisted.media.factory import MediaFactory, process_certificate
    from wcs_twisted.media.ports import PortPool
    from wcs_twisted.media.streams import StreamRegistry

    process_certificate()
    codec = "opus" if args.mode == "transcode" else "pcmu"
    factory = MediaFactory(reactor, LOOPBACK, LOOPBACK,
                           PortPool(args.port_low, args.port_low + 4 * args.players + 64))
    registry = StreamRegistry(reactor)
    baseline_rss = rss_kib()

    phone_leg = factory.create_session("rtp")
    phone_leg.create_offer(["opus/48000/2" if codec == "opus" else "PCMU/8000"], [], "recvonly")
    phone_leg.set_remote_answer(phone_answer(args.phone, codec))
    source = factory.stream_source(phone_leg)
    stream = registry.publish("bench", source)
    source.start(stream)

    players, sinks, descriptions = [], [], []
    for _ in range(args.players):
        player = factory.create_session("webrtc")
        player.create_answer(player_offer(args.gen_fingerprint), [source.audio_codec], None,
                             "sendonly")
        sink = factory.stream_sink(player)
        sink.play(stream)
        params = player.transport.local_parameters
        players.append(player)
        sinks.append(sink)
        descriptions.append({"port": params.candidate_port, "ufrag": params.ice_ufrag,
                             "pwd": params.ice_pwd, "fingerprints": list(params.fingerprints)})
    sys.stdout.write(json.dumps({"source": phone_leg.local_address[1], "players": descriptions,
                                 "stream_codec": source.audio_codec,
                                 "player_codec": players[0].audio_codec if players else None})
                     + "\n")
    sys.stdout.flush()

    def totals():
        return (phone_leg.audio_rtp.packets_received,
                sum(p.transport.packets_sent for p in players))

    def report(mark: dict) -> dict:
        received, sent = totals()
        return {
            "cpu": cpu_seconds() - mark["cpu"],
            "wall": time.monotonic() - mark["wall"],
            "received": received - mark["totals"][0],
            "sent": sent - mark["totals"][1],
            "rss_growth_kib": rss_kib() - baseline_rss,
            "connected": sum(1 for p in players if p.transport.state == "connected"),
            "transcoders": sum(len(s.transcoders) for s in sinks),
        }

    serve_control(reactor, totals, report)


# -- load generator (this process) -------------------------------------------------------


def run_one(args: argparse.Namespace, players: int) -> dict:
    """
    One gateway with C{players} players, measured over C{args.seconds}.
    """
    from aioice import stun
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol
    from twisted.internet.task import LoopingCall

    from wcs_twisted.media.dtls import DTLSSRTPEndpoint, DTLSState, RTCCertificate

    certificate = RTCCertificate.generateCertificate()
    fingerprint = next(f.value for f in certificate.getFingerprints() if f.algorithm == "sha-256")
    header = struct.Struct("!BBHII")
    opus = opus_frames() if args.mode == "transcode" else None
    pcmu = [bytes([0xFF]) * 160]

    class Phone(DatagramProtocol):
        def __init__(self):
            self.dest = None
            self.seq = 0
            self.sent = 0

        def send(self, now):
            if self.dest is None:
                return
            self.seq = (self.seq + 1) & 0xFFFF
            if opus is not None:
                packet = header.pack(0x80, 111, self.seq, self.seq * 960, 0x1234) + opus[
                    self.seq % len(opus)]
            else:
                packet = header.pack(0x80, 0, self.seq, self.seq * 160, 0x1234) + pcmu[0]
            self.transport.write(packet, self.dest)
            self.sent += 1

    class Browser(DatagramProtocol):
        def __init__(self, description):
            self.description = description
            self.dest = (LOOPBACK, description["port"])
            self.dtls = DTLSSRTPEndpoint(
                certificate, "client", [tuple(f) for f in description["fingerprints"]])
            self.ready = False
            self.received = 0
            self.last_check = 0.0

        def startProtocol(self):
            self.check()

        def check(self):
            self.last_check = time.monotonic()
            self.transport.write(
                ice_check(self.description["ufrag"], self.description["pwd"]), self.dest)
            if not self.ready:
                reactor.callLater(0.2, self.check)

        def datagramReceived(self, data, addr):
            first = data[0]
            if first > 127:
                if not 191 < data[1] < 224:
                    self.received += 1
            elif first < 4:
                message = stun.parse_message(data)
                if (message.message_class == stun.Class.RESPONSE
                        and self.dtls.state is DTLSState.NEW):
                    for d in self.dtls.start():
                        self.transport.write(d, self.dest)
            elif 19 < first < 64:
                for d in self.dtls.receive(data):
                    self.transport.write(d, self.dest)
                if self.dtls.state is DTLSState.CONNECTED:
                    self.ready = True

        def tick(self, now):
            if now - self.last_check > CONSENT_INTERVAL:
                self.check()

    phone = Phone()
    reactor.listenUDP(0, phone, interface=LOOPBACK)
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", "gateway", "--mode", args.mode,
         "--players", str(players), "--port-low", str(args.port_low),
         "--gen-fingerprint", fingerprint, "--phone", str(phone.transport.getHost().port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )
    assert child.stdout is not None and child.stdin is not None
    setup = json.loads(child.stdout.readline())
    phone.dest = (LOOPBACK, setup["source"])
    browsers = []
    for description in setup["players"]:
        browser = Browser(description)
        reactor.listenUDP(0, browser, interface=LOOPBACK)
        browsers.append(browser)
    result: dict = {"players": players, "stream_codec": setup["stream_codec"],
                    "player_codec": setup["player_codec"]}
    done: list = []

    def tick(count):
        now = time.monotonic()
        for _ in range(min(count, 5)):
            phone.send(now)
        for browser in browsers:
            browser.tick(now)

    def command(text):
        send_command(child, text)

    def begin():
        result["ready"] = f"{sum(b.ready for b in browsers)}/{len(browsers)}"
        for browser in browsers:
            browser.received = 0
        phone.sent = 0
        result["gen_cpu0"] = cpu_seconds()
        command("mark")
        reactor.callLater(args.seconds, finish)

    def finish():
        command("report")
        result.update(json.loads(child.stdout.readline()))
        result["gen_received"] = sum(b.received for b in browsers)
        result["gen_sent"] = phone.sent
        result["gen_cpu"] = cpu_seconds() - result.pop("gen_cpu0")
        command("quit")
        sender.stop()
        for port in ports:
            port.stopListening()
        done.append(True)
        reactor.stop()

    ports = [phone.transport] + [b.transport for b in browsers]
    sender = LoopingCall.withCount(tick)
    sender.start(PTIME, now=False)
    reactor.callLater(args.warmup, begin)
    reactor.run()
    child.wait(timeout=10)
    return result


def generator_main(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.players.split(",")]
    if 0 not in counts:
        counts.insert(0, 0)
    results = []
    for count in counts:
        # A reactor cannot be restarted: one generator run per count.
        output = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--role", "one", "--mode", args.mode,
             "--players", str(count), "--seconds", str(args.seconds), "--warmup",
             str(args.warmup), "--port-low", str(args.port_low)],
            check=True, capture_output=True, text=True, cwd=ROOT)
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    base = results[0]
    base_core = base["cpu"] / base["wall"] * 100
    print(f"{args.mode}: stream {base['stream_codec']}; source alone "
          f"{base_core:.3f}% of a core, RSS +{base['rss_growth_kib']} KiB", flush=True)
    for r in results[1:]:
        core = r["cpu"] / r["wall"] * 100
        extra = (core - base_core) / r["players"]
        extra_cpu = r["cpu"] / r["wall"] - base["cpu"] / base["wall"]
        per_packet = extra_cpu * r["wall"] / max(1, r["sent"]) * 1e6
        delivered = r["gen_received"] / max(1, r["gen_sent"] * r["players"])
        print(f"{args.mode:9s} players={r['players']:4d} ({r['player_codec']}): "
              f"{core:6.2f}% core total, {extra:6.4f}% core per extra player "
              f"({100 / max(extra, 1e-9):5.0f} players/core), "
              f"{per_packet:5.1f} us per player packet, "
              f"RSS {(r['rss_growth_kib'] - base['rss_growth_kib']) / r['players']:6.1f} "
              f"KiB/player; players got {delivered:6.1%}"
              f" of the phone's packets, connected {r['connected']}/{r['players']}, "
              f"transcoders {r['transcoders']}, generator cpu "
              f"{r['gen_cpu'] / r['wall']:.0%}", flush=True)
        if args.json:
            print(json.dumps(r), flush=True)


def micro_main(args: argparse.Namespace) -> None:
    """
    Python cost per packet with the sockets stubbed: a SIP leg's receive path without a stream,
    with a stream tap and no sink, and per relayed (or transcoded) player.
    """
    import timeit

    from twisted.internet.task import Clock

    from wcs_twisted.media.ports import PortPool
    from wcs_twisted.media.rtp_packet import build_rtp
    from wcs_twisted.media.session import RTPMediaSession
    from wcs_twisted.media.stream_endpoints import SessionSink, SessionSource
    from wcs_twisted.media.streams import StreamRegistry

    class Port:
        def __init__(self, number, protocol):
            self.number, self.protocol = number, protocol

        def write(self, data, addr=None):
            pass

        def getHost(self):
            from twisted.internet.address import IPv4Address

            return IPv4Address("UDP", LOOPBACK, self.number)

        def stopListening(self):
            return None

    class Reactor(Clock):
        def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
            bound = Port(port, protocol)
            protocol.makeConnection(bound)
            return bound

    reactor = Reactor()
    pool = PortPool(40000, 40999)
    phone = ("127.0.0.2", 5004)

    def leg(codec="PCMU/8000"):
        session = RTPMediaSession(reactor, LOOPBACK, LOOPBACK, pool).start()
        session.create_offer([codec], [], "sendrecv")
        session.set_remote_answer(phone_answer(phone[1], "opus" if "opus" in codec else "pcmu",
                                               "sendrecv"))
        assert session.audio.direction.sends
        return session

    registry = StreamRegistry(reactor)
    source_leg = leg()
    packet = build_rtp(0, 1, 160, 0x1234, b"\xff" * 160)
    receive = source_leg.audio_rtp.datagramReceived
    receive(packet, phone)  # latch
    number = 200000

    def per_packet():
        return min(timeit.repeat(lambda: receive(packet, phone), number=number,
                                 repeat=3)) / number * 1e6

    plain = per_packet()
    source = SessionSource(source_leg)
    stream = registry.publish("micro", source)
    source.start(stream)
    tapped = per_packet()
    players = [leg() for _ in range(10)]
    for player in players:
        SessionSink(player).play(stream)
    relayed = per_packet()
    print(f"micro: SIP leg receive {plain:.2f} us/packet; with a stream tap and no sink "
          f"{tapped:.2f} us (+{tapped - plain:.2f}); per relayed player "
          f"{(relayed - tapped) / len(players):.2f} us (RTP players, sockets stubbed)",
          flush=True)

    opus_registry = StreamRegistry(reactor)
    opus_leg = leg("opus/48000/2")
    opus_source = SessionSource(opus_leg)
    opus_stream = opus_registry.publish("opus", opus_source)
    opus_source.start(opus_stream)
    frames = opus_frames(50)
    transcoded = SessionSink(leg())
    transcoded.play(opus_stream)
    count = 2000
    elapsed = min(timeit.repeat(
        lambda: [opus_stream.packet_received("audio", frame, "opus/48000/2", 960 * i, False)
                 for i, frame in enumerate(frames * (count // len(frames)))],
        number=1, repeat=3))
    print(f"micro: per transcoded player (Opus -> PCMU) {elapsed / count * 1e6:.1f} us/packet",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="all",
                        choices=["relay", "transcode", "micro", "all"])
    parser.add_argument("--players", default="0,100,200",
                        help="comma-separated player counts (0, the source alone, is added)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--port-low", type=int, default=47000)
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    parser.add_argument("--role", default="generator", choices=["generator", "one", "gateway"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--gen-fingerprint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--phone", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "gateway":
        args.players = int(args.players)
        gateway_main(args)
        return
    if args.role == "one":
        from twisted.internet import epollreactor

        epollreactor.install()
        print(json.dumps(run_one(args, int(args.players))), flush=True)
        return
    if args.mode == "micro":
        micro_main(args)
        return
    modes = ["relay", "transcode"] if args.mode == "all" else [args.mode]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}", flush=True)
    for mode in modes:
        args.mode = mode
        generator_main(args)


if __name__ == "__main__":
    main()
