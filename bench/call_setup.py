"""
Call set-up latency: from the WebSocket `call` leaving the client to the INVITE reaching the SIP
peer, through the real server (signalling, call table, media sessions, SIP stack).

The server runs in a child process (`twistd --reactor=asyncio -n wcs` with a temporary config),
so its work is measured apart from the load generator.  This process is the WCS client (a raw
WebSocket speaking the protocol, with a real Chrome offer) and the SIP peer (a UDP socket that
answers every INVITE with 486, so each call ends at once and frees its ports).  Calls are
sequential; the figure is the time between sending `call` and receiving the INVITE datagram.

    .venv/bin/python bench/call_setup.py --calls 300
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFER = open(os.path.join(ROOT, "tests", "data", "sdp", "chrome-156-offer-audio.sdp")).read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workdir: str) -> tuple[subprocess.Popen, int]:
    ws_port, http_port, sip_port = free_port(), free_port(), free_port()
    config = os.path.join(workdir, "wcs.properties")
    with open(config, "w") as handle:
        handle.write(f"ip_local=127.0.0.1\nws.port={ws_port}\nhttp.port={http_port}\n"
                     f"sip_port={sip_port}\nmedia_port_from=45000\nmedia_port_to=46999\n")
    server = subprocess.Popen(
        [os.path.join(ROOT, ".venv", "bin", "twistd"), "--reactor=asyncio", "-n",
         "--pidfile=", "-l", os.path.join(workdir, "server.log"), "wcs", "--config", config],
        cwd=workdir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", ws_port), timeout=0.2).close()
            return server, ws_port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("server did not start; see " + os.path.join(workdir, "server.log"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    from websockets.sync.client import connect  # noqa: PLC0415 (bench-only dependency)

    workdir = tempfile.mkdtemp(prefix="wcs-bench-")
    server, ws_port = start_server(workdir)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    peer_port = peer.getsockname()[1]
    latencies = []
    try:
        ws = connect(f"ws://127.0.0.1:{ws_port}/", max_size=None).__enter__()
        ws.send(json.dumps({"message": "connection", "data": [{
            "appKey": "defaultApp", "sipLogin": "bench", "sipDomain": "127.0.0.1",
            "sipOutboundProxy": "127.0.0.1", "sipPort": "0", "sipRegisterRequired": False}]}))
        while json.loads(ws.recv())["message"] != "getUserData":
            pass
        cpu_before = cpu_seconds(server.pid)
        for number in range(args.calls):
            sent = time.perf_counter()
            ws.send(json.dumps({"message": "call", "data": [{
                "callId": f"bench-{number}", "callee": f"peer@127.0.0.1:{peer_port}",
                "sdp": OFFER, "hasAudio": True, "hasVideo": False}]}))
            while True:
                data, source = peer.recvfrom(65535)
                if data.startswith(b"INVITE "):
                    break
            latencies.append(time.perf_counter() - sent)
            head = data.split(b"\r\n\r\n", 1)[0].decode()
            keep = [line for line in head.split("\r\n")[1:]
                    if re.match(r"(?i)(via|from|to|call-id|cseq):", line)]
            busy = "SIP/2.0 486 Busy Here\r\n" + "\r\n".join(
                line + (";tag=bench" if line.lower().startswith("to:") else "")
                for line in keep) + "\r\nContent-Length: 0\r\n\r\n"
            peer.sendto(busy.encode(), source)
            while True:  # wait for finish{BUSY} so calls stay sequential
                message = json.loads(ws.recv())
                if message["message"] == "finish":
                    break
        cpu = cpu_seconds(server.pid) - cpu_before
        ws.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(f"calls: {len(latencies)}")
    print(f"WS call -> INVITE out: p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {latencies[-1]*1000:.2f} ms")
    print(f"server CPU per call (set-up + 486 + release): {cpu / len(latencies) * 1000:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
