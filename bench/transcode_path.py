"""
Benchmark: where one transcoded packet's CPU goes, in-process, per stage.

A figure that does not depend on how busy the machine is: every stage is timed on this
thread's CPU clock (C{time.thread_time}, so time spent preempted by other processes is not
counted), the best of several repeats.  The stages follow one packet each way through the
real objects of a transcoded call (browser Opus <-> WebRTC leg <-> bridge TRANSCODE <-> RTP
leg <-> phone PCMU), as C{bench/media_clients.py} runs them:

  - recv: the C{recvfrom} syscall of one 172-byte datagram waiting on a loopback socket;
  - reactor: Twisted's asyncio reactor waking for one datagram on a real UDP port and
    handing it to the protocol (one loop iteration, C{epoll_wait} included), minus recv;
  - SRTP unprotect / protect: pylibsrtp with the profile our DTLS endpoint negotiates;
  - depacketise: RTP payload bounds and the jitter buffer (in order);
  - decode / encode: Opus (aiortc's stream: 48 kHz stereo, 96 kb/s) to 8 kHz PCM, PCM to
    PCMU; PCMU to PCM, PCM to Opus;
  - packetise: the RTP header of the leg's next packet;
  - send: the C{sendto} syscall of one datagram to a loopback socket;
  - whole path: the leg's C{datagramReceived} to the other leg's send, sockets stubbed
    (our Python and the codecs, no syscalls, no reactor).

    .venv/bin/python bench/transcode_path.py [--root CHECKOUT]

Not a test; no timing assertion anywhere in the suite.
"""

from __future__ import annotations

import fractions
import math
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: The checkout whose code is measured (--root another one for a before/after pair).
ROOT = (sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv
        else os.path.dirname(HERE))
sys.path.insert(0, os.path.abspath(ROOT))

LOOPBACK = "127.0.0.1"
PACKETS = 3000
REPEATS = 5


def cpu_us(run, items, repeats: int = REPEATS, chunk: int = 250) -> float:
    """
    Thread CPU microseconds of C{run(item)} per item: the best chunk of C{chunk} items over
    C{repeats} passes (short chunks, so that a burst of other work on the machine - cache
    and frequency effects the thread clock still sees - spoils only some of them).
    """
    best = float("inf")
    for _ in range(repeats):
        for first in range(0, len(items) - chunk + 1, chunk):
            part = items[first:first + chunk]
            start = time.thread_time()
            for item in part:
                run(item)
            best = min(best, time.thread_time() - start)
    return best / chunk * 1e6


def aiortc_opus_payloads(count: int) -> list[bytes]:
    """
    Opus payloads of a 440 Hz tone as aiortc's encoder makes them (what the bench's browsers
    send): 48 kHz stereo, 96 kb/s, 20 ms.
    """
    import av
    from aiortc.codecs.opus import OpusEncoder

    encoder = OpusEncoder()
    payloads: list[bytes] = []
    k = 0
    while len(payloads) < count:
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        samples = bytearray()
        for i in range(960):
            value = int(8000 * math.sin(2 * math.pi * 440 * (k * 960 + i) / 48000))
            samples += value.to_bytes(2, "little", signed=True) * 2
        frame.planes[0].update(bytes(samples))
        frame.sample_rate, frame.pts = 48000, k * 960
        frame.time_base = fractions.Fraction(1, 48000)
        payloads += encoder.encode(frame)[0]
        k += 1
    return payloads[:count]


def srtp_pair():
    """
    The two ends' libsrtp sessions after a real DTLS handshake: (gateway, browser).
    """
    from wcs_twisted.media.dtls import DTLSSRTPEndpoint, RTCCertificate

    a, b = RTCCertificate.generateCertificate(), RTCCertificate.generateCertificate()
    server = DTLSSRTPEndpoint(a, "server", [(f.algorithm, f.value) for f in b.getFingerprints()])
    client = DTLSSRTPEndpoint(b, "client", [(f.algorithm, f.value) for f in a.getFingerprints()])
    server.start()
    out = client.start()
    while out:
        back = [x for d in out for x in server.receive(d)]
        out = [x for d in back for x in client.receive(d)]
    return server, client


def syscalls() -> tuple[float, float]:
    """
    (recvfrom, sendto) of one 172-byte datagram on loopback.
    """
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sink.bind((LOOPBACK, 0))
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = sink.getsockname()
    data = bytes(172)
    batch = range(1000)
    send_best = recv_best = float("inf")
    for _ in range(REPEATS):
        start = time.thread_time()
        for _ in batch:
            src.sendto(data, addr)
        send_best = min(send_best, time.thread_time() - start)
        start = time.thread_time()
        for _ in batch:
            sink.recvfrom(2048)
        recv_best = min(recv_best, time.thread_time() - start)
    sink.close()
    src.close()
    return recv_best / len(batch) * 1e6, send_best / len(batch) * 1e6


def reactor_dispatch(tuned: bool = True) -> float:
    """
    CPU per datagram of the asyncio reactor waking for one datagram on a Twisted UDP port
    and handing it to a protocol that does nothing (syscalls included); C{tuned}: as the
    legs read (L{read_one_datagram_per_wakeup}), else as Twisted reads any UDP port.
    """
    import asyncio

    from twisted.internet import asyncioreactor
    from twisted.internet.protocol import DatagramProtocol

    loop = asyncio.new_event_loop()
    reactor = asyncioreactor.AsyncioSelectorReactor(loop)

    class Sink(DatagramProtocol):
        count = 0

        def datagramReceived(self, data, addr):
            self.count += 1

    sink = Sink()
    port = reactor.listenUDP(0, sink, interface=LOOPBACK)
    if tuned:
        try:
            from wcs_twisted.media.datagram_reading import read_one_datagram_per_wakeup
        except ImportError:  # a checkout from before it
            pass
        else:
            read_one_datagram_per_wakeup(reactor, port)
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = (LOOPBACK, port.getHost().port)
    data = bytes(172)
    run_once = loop._run_once  # one iteration: epoll_wait, then the ready callbacks
    best = float("inf")
    for _ in range(REPEATS):
        spent = 0.0
        for _ in range(1000):
            src.sendto(data, addr)
            start = time.thread_time()
            run_once()
            spent += time.thread_time() - start
        best = min(best, spent)
    assert sink.count == 1000 * REPEATS, sink.count
    port.stopListening()
    src.close()
    loop.close()
    return best / 1000 * 1e6


def main() -> None:
    from twisted.internet.task import Clock

    from wcs_twisted.media.dtls import RTCCertificate
    from wcs_twisted.media.g711 import ULAW
    from wcs_twisted.media.jitter import JitterBuffer
    from wcs_twisted.media.opus import OpusDecoder, OpusEncoder
    from wcs_twisted.media.rtp import RTPSession
    from wcs_twisted.media.rtp_packet import build_rtp, payload_bounds
    from wcs_twisted.media.session import dispatcher
    from wcs_twisted.media.transcode import OPUS_BIT_RATE, AudioTranscoder
    from wcs_twisted.media.webrtc import WebRTCTransport
    from wcs_twisted.sdp.codecs import Codec

    opus_codec, pcmu_codec = Codec(111, "opus", 48000, 2), Codec(0, "PCMU", 8000)
    server, client = srtp_pair()
    opus = aiortc_opus_payloads(50)
    pcm = OpusDecoder(8000).decode(opus[10])
    pcmu = ULAW.encode(pcm)
    opus_rtp = [build_rtp(111, i & 0xFFFF, i * 960, 5, opus[i % 50]) for i in range(PACKETS)]
    pcmu_rtp = [build_rtp(0, i & 0xFFFF, i * 160, 7, pcmu) for i in range(PACKETS)]
    split: dict[str, float] = {}

    recv, send = syscalls()
    split["recv (recvfrom)"] = recv
    split["reactor (asyncio wake-up, Port.doRead)"] = reactor_dispatch() - recv
    untuned = reactor_dispatch(tuned=False) - recv
    # SRTP: a fresh pair per direction so the replay window sees every index once.
    protected = [client.tx_srtp.protect(p) for p in opus_rtp]
    for _ in range(REPEATS - 1):
        server, client = srtp_pair()
        protected = [client.tx_srtp.protect(p) for p in opus_rtp]
    split["SRTP unprotect"] = cpu_us(server.rx_srtp.unprotect, protected, repeats=1)
    split["SRTP protect"] = cpu_us(server.tx_srtp.protect, opus_rtp[:1000])

    jitter = JitterBuffer(lambda payload: None, lambda: None)
    sequence = iter(range(10 ** 9))

    def depacketise(data):
        start, end = payload_bounds(data)
        jitter.push(next(sequence) & 0xFFFF, data[start:end])

    split["depacketise (bounds + jitter)"] = cpu_us(depacketise, pcmu_rtp)
    decoder = OpusDecoder(8000)
    split["decode Opus -> 8 kHz PCM"] = cpu_us(decoder.decode, opus * 20)
    split["encode PCM -> PCMU"] = cpu_us(ULAW.encode, [pcm] * 1000)
    split["decode PCMU -> PCM"] = cpu_us(ULAW.decode, [pcmu] * 1000)
    encoder = OpusEncoder(8000, OPUS_BIT_RATE)
    split["encode PCM -> Opus"] = cpu_us(encoder.encode, [pcm] * 1000)
    leg = RTPSession(None, LOOPBACK, clock=Clock())
    split["packetise (next RTP header)"] = cpu_us(
        lambda payload: leg._next_payload_packet(payload, 0, False), [pcmu] * 1000)
    split["send (sendto)"] = send

    # The whole path through the legs and the transcoders, sockets stubbed.
    class NullPort:
        def write(self, data, addr=None):
            pass

    def null_sendto(data, addr):
        pass

    clock = Clock()
    rtp = RTPSession(None, LOOPBACK, clock=clock)
    webrtc = WebRTCTransport(None, LOOPBACK, RTCCertificate.generateCertificate(), clock=clock)
    for each in (rtp, webrtc):
        each.makeConnection(NullPort())
        each._sendto = null_sendto
    phone, browser = ("192.0.2.1", 4000), ("192.0.2.2", 5000)
    rtp.set_remote(*phone)
    rtp._source_addr = phone
    webrtc._selected = browser
    down = AudioTranscoder(opus_codec, pcmu_codec, rtp.send_payload)
    up = AudioTranscoder(pcmu_codec, opus_codec, webrtc.send_payload)
    webrtc.packet_received = dispatcher({111: down.packet})
    rtp.packet_received = dispatcher({0: up.packet})
    server, client = srtp_pair()
    webrtc._rx, webrtc._tx = server.rx_srtp, server.tx_srtp
    protected = [client.tx_srtp.protect(p) for p in opus_rtp]
    whole_down = cpu_us(lambda data: webrtc.datagramReceived(data, browser), protected, 1)
    whole_up = cpu_us(lambda data: rtp.datagramReceived(data, phone), pcmu_rtp, 1)
    assert down.packets_out == len(protected) and up.packets_out == len(pcmu_rtp), (
        down.packets_out, up.packets_out)

    import wcs_twisted

    print(f"{os.path.dirname(os.path.dirname(wcs_twisted.__file__))}: per-packet split, "
          f"thread CPU, best of {REPEATS} "
          f"(SRTP {server.profile.openssl_profile.decode()}):")
    for name, value in split.items():
        print(f"  {name:42s} {value:7.2f} us")
    print(f"  {'(reactor as Twisted reads any UDP port)':42s} {untuned:7.2f} us")
    print(f"  {'browser -> phone, whole path, no syscalls':42s} {whole_down:7.2f} us")
    print(f"  {'phone -> browser, whole path, no syscalls':42s} {whole_up:7.2f} us")
    per_pair = (whole_down + whole_up
                + 2 * (split["recv (recvfrom)"] + split["reactor (asyncio wake-up, Port.doRead)"]
                       + split["send (sendto)"]))
    print(f"  {'one packet each way, all in':42s} {per_pair:7.2f} us"
          f"  = {per_pair * 50 / 1e4:.2f} % of a core per call at 50 packets/s each way")


if __name__ == "__main__":
    main()
