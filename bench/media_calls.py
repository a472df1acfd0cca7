"""
Benchmark: the gateway's CPU and memory per concurrent bridged call, relayed
and transcoded.

The gateway runs in a child process on the asyncio reactor (as in
production) and builds every call the way the call layer does, through the
public media API: C{MediaFactory.create_session("webrtc")} and C{("rtp")},
the browser's SDP offer answered by the WebRTC leg, an SDP offer from the
SIP leg answered by the phone, and C{MediaFactory.bridge}.  This process is
the load generator and plays both ends of every call:

  - a "browser": one ICE check with USE-CANDIDATE, a DTLS client handshake
    (wcs_twisted.media.dtls, no aiortc), consent checks every 5 s, then one
    SRTP packet every 20 ms (PCMU, or Opus frames of a 440 Hz tone encoded
    once up front) carrying the one-byte header extensions a browser sends
    when they are negotiated (sdes:mid, ssrc-audio-level: RFC 8285, 8 bytes),
    and an SRTCP SR + SDES about every second, as aiortc's RTCRtpSender does;
  - a "phone": one plain RTP PCMU packet every 20 ms (symmetric RTP).

Every end keeps its own phase within the 20 ms (one of 20 slots of 1 ms,
chosen at random), as independent clients do, so the gateway sees datagrams
spread over time.  C{--burst} sends every end's packet in one burst per 20 ms
instead (the old generator): the gateway then drains hundreds of datagrams
per event-loop wake-up, which is what made this bench report ~1/10 of the
per-packet cost real clients cause at a few dozen calls (bench/README.md,
"Media with real clients").

The child measures its own getrusage() CPU over a window after a warm-up and
its RSS growth from before the first call was made, so the figures are the
gateway's alone:

    % of a core per call = gateway CPU seconds / wall seconds / calls * 100
    us/packet            = gateway CPU / packets the gateway received
    RSS per call         = (VmRSS after warm-up - VmRSS before the calls) / calls

Modes:
  relay      browser PCMU <-> WebRTC leg <-> bridge (RELAY) <-> RTP leg <-> phone PCMU
  transcode  browser Opus <-> WebRTC leg <-> bridge (TRANSCODE) <-> RTP leg <-> phone PCMU
  rtp        phone PCMU <-> RTP leg <-> bridge (RELAY) <-> RTP leg <-> phone PCMU

With --stream each call's SIP leg also feeds a named stream (what sip_record_stream does),
with no sink attached: the cost of the stream tap on a bridged call.

    .venv/bin/python bench/media_calls.py --mode relay --calls 100 --seconds 15
    .venv/bin/python bench/media_calls.py --mode all --calls 50

Not a test; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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


#: Phases within one packet interval: every end sends in one of them.
SLOTS = 20


# -- SDP the generator's endpoints would send ------------------------------------------


def browser_offer(codec: str, fingerprint: str) -> str:
    if codec == "opus":
        fmt, maps = "111 126", ["a=rtpmap:111 opus/48000/2",
                                "a=fmtp:111 minptime=10;useinbandfec=1",
                                "a=rtpmap:126 telephone-event/8000"]
    else:
        fmt, maps = "0 126", ["a=rtpmap:0 PCMU/8000", "a=rtpmap:126 telephone-event/8000"]
    return "\r\n".join([
        "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
        "a=group:BUNDLE 0", "a=msid-semantic: WMS",
        f"m=audio 9 UDP/TLS/RTP/SAVPF {fmt}", "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{GEN_UFRAG}", f"a=ice-pwd:{GEN_PWD}",
        "a=ice-options:trickle", f"a=fingerprint:sha-256 {fingerprint}", "a=setup:actpass",
        "a=mid:0", "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "a=sendrecv",
        "a=rtcp-mux", *maps, "",
    ])


def phone_answer(port: int) -> str:
    return "\r\n".join([
        "v=0", "o=phone 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv", "",
    ])


# -- gateway (child process) --------------------------------------------------------------


def gateway_main(args: argparse.Namespace) -> None:
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import reactor

    from wcs_twisted.media.factory import MediaFactory, process_certificate
    from wcs_twisted.media.ports import PortPool

    process_certificate()  # made once per process, before the baseline
    phones = json.loads(args.phones)
    factory = MediaFactory(reactor, LOOPBACK, LOOPBACK,
                           PortPool(args.port_low, args.port_low + 8 * args.calls + 64))
    from wcs_twisted.media.streams import StreamRegistry

    registry = StreamRegistry(reactor)
    baseline_rss = rss_kib()
    legs: list = []
    calls: list[dict] = []
    bridges: list = []

    for i in range(args.calls):
        if args.mode == "rtp":
            a, b = factory.create_session("rtp"), factory.create_session("rtp")
            for session, phone in ((a, phones[2 * i]), (b, phones[2 * i + 1])):
                session.create_offer(["PCMU/8000"], [], "sendrecv")
                session.set_remote_answer(phone_answer(phone))
            legs += [a.audio_rtp, b.audio_rtp]
            calls.append({"a": a.local_address[1], "b": b.local_address[1]})
        else:
            a, b = factory.create_session("webrtc"), factory.create_session("rtp")
            offer = browser_offer("opus" if args.mode == "transcode" else "pcmu",
                                  args.gen_fingerprint)
            audio, video = a.offered_codecs(offer)
            b.create_offer(audio, video, "sendrecv")
            b.set_remote_answer(phone_answer(phones[i]))
            a.create_answer(offer, [b.audio_codec], [], "sendrecv")
            params = a.transport.local_parameters
            legs += [a.transport, b.audio_rtp]
            calls.append({
                "webrtc": params.candidate_port, "ufrag": params.ice_ufrag,
                "pwd": params.ice_pwd, "fingerprints": list(params.fingerprints),
                "rtp": b.local_address[1],
            })
        bridge = factory.bridge(a, b)
        bridges.append(bridge)
        if args.stream:
            # The SIP leg also feeds a named stream (sip_record_stream), with no sink.
            source = factory.stream_source(b)
            source.start(registry.publish(f"call_{i}", source))
    modes = sorted({b.mode for b in bridges})
    sys.stdout.write(json.dumps({"calls": calls, "bridge_modes": modes}) + "\n")
    sys.stdout.flush()

    def totals():
        return (sum(leg.packets_received for leg in legs),
                sum(leg.packets_sent for leg in legs),
                sum(leg.packets_dropped for leg in legs))

    def report(mark: dict) -> dict:
        received, sent, dropped = totals()
        r0, s0, d0 = mark["totals"]
        connected = sum(1 for leg in legs if getattr(leg, "state", "connected")
                        == "connected")
        return {
            "cpu": cpu_seconds() - mark["cpu"],
            "wall": time.monotonic() - mark["wall"],
            "received": received - r0,
            "sent": sent - s0,
            "dropped": dropped - d0,
            "rss_growth_kib": rss_kib() - baseline_rss,
            "baseline_rss_kib": baseline_rss,
            "connected_legs": f"{connected}/{len(legs)}",
            "transcoder_errors": sum(t.errors for b in bridges
                                     for t in b.transcoders.values()),
        }

    serve_control(reactor, totals, report)


# -- load generator (this process) -------------------------------------------------------


def pcmu_frames(count: int = 50) -> list[bytes]:
    import numpy

    frames = []
    for i in range(count):
        t = (numpy.arange(160) + 160 * i) / 8000
        x = (0.5 * 32767 * numpy.sin(2 * numpy.pi * 1000 * t)).astype(numpy.int32)
        sign = numpy.where(x < 0, 0x80, 0)
        magnitude = numpy.minimum(numpy.abs(x), 32635) + 0x84
        exponent = numpy.clip(numpy.floor(numpy.log2(magnitude)).astype(int) - 7, 0, 7)
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        frames.append((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(numpy.uint8).tobytes())
    return frames


def generator_main(args: argparse.Namespace) -> dict:
    from twisted.internet import epollreactor

    epollreactor.install()
    from aioice import stun
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol
    from twisted.internet.task import LoopingCall

    from wcs_twisted.media.dtls import DTLSSRTPEndpoint, DTLSState, RTCCertificate

    certificate = RTCCertificate.generateCertificate()
    fingerprint = next(f.value for f in certificate.getFingerprints() if f.algorithm == "sha-256")
    header = struct.Struct("!BBHII")
    # RFC 8285 one-byte header extensions as a browser sends them for audio when negotiated:
    # 0xBEDE, 2 words: mid "0" (id 1), ssrc-audio-level (id 2, voice bit + level), padding.
    extensions = b"\xbe\xde\x00\x02" + b"\x10\x30" + b"\x20\xaa" + b"\x00\x00\x00\x00"
    from wcs_twisted.media import rtcp
    pcmu = pcmu_frames()
    opus = opus_frames() if args.mode == "transcode" else None

    class Endpoint(DatagramProtocol):
        """
        One end of one call: plain RTP (a phone), or ICE + DTLS + SRTP.
        """

        def __init__(self, ssrc, webrtc=False):
            self.ssrc = ssrc
            self.webrtc = webrtc
            self.dest = None
            self.call = None
            self.seq = 0
            self.received = 0
            self.sent = 0
            self.dtls = None
            self.tx = None
            self.ready = not webrtc
            self.last_check = 0.0
            self.next_report = 0.0

        def attach(self, port, call=None):
            self.dest = (LOOPBACK, port)
            self.call = call
            if self.webrtc:
                self.dtls = DTLSSRTPEndpoint(
                    certificate, "client", [tuple(f) for f in call["fingerprints"]])
                self.check()

        def check(self):
            self.last_check = time.monotonic()
            self.transport.write(ice_check(self.call["ufrag"], self.call["pwd"]), self.dest)
            if not self.ready:
                reactor.callLater(0.2, self.check)

        def datagramReceived(self, data, addr):
            first = data[0]
            if first > 127:
                if self.tx is None or not 191 < data[1] < 224:  # count RTP, not RTCP
                    self.received += 1
                return
            if first < 4:
                message = stun.parse_message(data)
                if (message.message_class == stun.Class.RESPONSE
                        and self.dtls.state is DTLSState.NEW):
                    for d in self.dtls.start():
                        self.transport.write(d, self.dest)
                return
            if 19 < first < 64 and self.dtls is not None:
                for d in self.dtls.receive(data):
                    self.transport.write(d, self.dest)
                if self.dtls.state is DTLSState.CONNECTED and not self.ready:
                    self.tx = self.dtls.tx_srtp
                    self.ready = True

        def send(self, now):
            if self.dest is None:
                return
            if self.webrtc and now - self.last_check > CONSENT_INTERVAL:
                self.check()
            if not self.ready:
                return
            self.seq = (self.seq + 1) & 0xFFFF
            first = 0x90 if self.webrtc and args.extensions else 0x80
            ext = extensions if first == 0x90 else b""
            if opus is not None and self.webrtc:
                packet = header.pack(first, 111, self.seq, self.seq * 960, self.ssrc) + ext + opus[
                    self.seq % len(opus)]
            else:
                packet = header.pack(first, 0, self.seq, self.seq * 160, self.ssrc) + ext + pcmu[
                    self.seq % len(pcmu)]
            if self.tx is not None:
                packet = self.tx.protect(packet)
            self.transport.write(packet, self.dest)
            self.sent += 1
            if self.tx is not None and args.rtcp and now >= self.next_report:
                # aiortc's RTCRtpSender: SR + SDES, then sleep 0.5-1.5 s.
                self.next_report = now + 0.5 + random.random()
                report = rtcp.build_sr(self.ssrc, rtcp.ntp_timestamp(time.time()),
                                       self.seq * 160, self.sent, self.sent * 160, ())
                report += rtcp.build_sdes(self.ssrc, b"generator")
                self.transport.write(self.tx.protect_rtcp(report), self.dest)

    phones = []
    browsers = []
    phone_count = 2 * args.calls if args.mode == "rtp" else args.calls
    for i in range(phone_count):
        endpoint = Endpoint(0x10000 + i)
        reactor.listenUDP(0, endpoint, interface=LOOPBACK)
        phones.append(endpoint)
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", "gateway", "--mode", args.mode,
         "--calls", str(args.calls), "--port-low", str(args.port_low),
         "--gen-fingerprint", fingerprint, *(["--stream"] if args.stream else []),
         "--phones", json.dumps([p.transport.getHost().port for p in phones])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )
    assert child.stdout is not None and child.stdin is not None
    setup = json.loads(child.stdout.readline())
    for i, call in enumerate(setup["calls"]):
        if args.mode == "rtp":
            phones[2 * i].attach(call["a"])
            phones[2 * i + 1].attach(call["b"])
        else:
            browser = Endpoint(0x20000 + i, webrtc=True)
            reactor.listenUDP(0, browser, interface=LOOPBACK)
            browser.attach(call["webrtc"], call)
            browsers.append(browser)
            phones[i].attach(call["rtp"])
    endpoints = phones + browsers

    slot_count = 1 if args.burst else SLOTS
    slots: list[list] = [[] for _ in range(slot_count)]
    for endpoint in endpoints:
        slots[random.randrange(slot_count)].append(endpoint)
    position = [0]

    def tick(count):
        # One slot per tick (PTIME / slot_count); a late tick sends the slots it
        # missed, so each end offers exactly 50 packets/s.
        now = time.monotonic()
        for _ in range(min(count, 5 * slot_count)):
            for endpoint in slots[position[0]]:
                endpoint.send(now)
            position[0] = (position[0] + 1) % slot_count

    result: dict = {"bridge_modes": setup["bridge_modes"]}

    def command(text):
        send_command(child, text)

    def begin():
        result["endpoints_ready"] = f"{sum(e.ready for e in endpoints)}/{len(endpoints)}"
        for endpoint in endpoints:
            endpoint.received = endpoint.sent = 0
        result["gen_cpu0"] = cpu_seconds()
        result["gen_wall0"] = time.monotonic()
        command("mark")
        reactor.callLater(args.seconds, finish)

    def finish():
        command("report")
        result.update(json.loads(child.stdout.readline()))
        result["gen_received"] = sum(e.received for e in endpoints)
        result["gen_sent"] = sum(e.sent for e in endpoints)
        result["gen_sent_by_end"] = {
            "phones": sum(e.sent for e in phones), "browsers": sum(e.sent for e in browsers),
        }
        result["gen_received_by_end"] = {
            "phones": sum(e.received for e in phones),
            "browsers": sum(e.received for e in browsers),
        }
        result["gen_cpu"] = cpu_seconds() - result.pop("gen_cpu0")
        result["gen_wall"] = time.monotonic() - result.pop("gen_wall0")
        command("quit")
        sender.stop()
        reactor.stop()

    sender = LoopingCall.withCount(tick)
    sender.start(PTIME / slot_count, now=False)
    reactor.callLater(args.warmup, begin)
    reactor.run()
    child.wait(timeout=10)
    return result


def summarize(mode: str, calls: int, r: dict) -> str:
    packets = max(1, r["received"])
    core_per_call = r["cpu"] / r["wall"] / calls * 100
    expected = 100 * calls * r["wall"]  # 50 packets/s into each of two legs
    return (
        f"{mode:9s} calls={calls:4d} bridge={','.join(map(str, r['bridge_modes']))}: "
        f"{core_per_call:5.3f}% core/call ({100 / max(core_per_call, 1e-9):5.0f} calls/core), "
        f"{r['cpu'] / packets * 1e6:6.1f} us/packet in, "
        f"RSS {r['rss_growth_kib'] / calls:6.1f} KiB/call "
        f"(baseline {r['baseline_rss_kib'] / 1024:.0f} MiB); "
        f"gateway got {r['received'] / expected:5.1%} of 50 pkt/s/end, "
        f"ends got {r['gen_received'] / max(1, r['gen_sent']):5.1%} of what ends sent, "
        f"dropped={r['dropped']}, "
        f"legs up={r['connected_legs']}, ends ready={r['endpoints_ready']}, "
        f"generator cpu={r['gen_cpu'] / r['gen_wall']:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="all", choices=["relay", "transcode", "rtp", "all"])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--port-low", type=int, default=46000)
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    parser.add_argument("--stream", action="store_true",
                        help="also publish each call's SIP leg as a named stream (no sinks)")
    parser.add_argument("--burst", action="store_true",
                        help="every end sends at the same instant (the old generator)")
    parser.add_argument("--no-extensions", dest="extensions", action="store_false",
                        help="bare 12-byte RTP headers from the browser")
    parser.add_argument("--no-rtcp", dest="rtcp", action="store_false",
                        help="no SRTCP sender reports from the browser")
    parser.add_argument("--role", default="generator", choices=["generator", "gateway"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--gen-fingerprint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--phones", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "gateway":
        gateway_main(args)
        return
    modes = ["relay", "transcode", "rtp"] if args.mode == "all" else [args.mode]
    if len(modes) > 1:
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}", flush=True)
        for mode in modes:
            # one generator process per mode: a reactor cannot be restarted
            subprocess.run([sys.executable, os.path.abspath(__file__), "--mode", mode,
                            "--calls", str(args.calls), "--seconds", str(args.seconds),
                            "--warmup", str(args.warmup), "--port-low", str(args.port_low)]
                           + (["--json"] if args.json else [])
                           + (["--burst"] if args.burst else [])
                           + ([] if args.extensions else ["--no-extensions"])
                           + ([] if args.rtcp else ["--no-rtcp"])
                           + (["--stream"] if args.stream else []), check=False)
        return
    result = generator_main(args)
    print(summarize(args.mode, args.calls, result), flush=True)
    if args.json:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
