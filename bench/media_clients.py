"""
Benchmark: server CPU and memory per call with real WebRTC clients (aiortc) calling a real SIP
UAS (sipp), for wcs-twisted and, in the same run, Janus's SIP plugin.

The clients run in a child process of this script (bench/media_clients_driver.py).

The method of issue 15, so that figures from different gateways compare:

  - one sipp UAS (C{sipp -sn uas -rtp_echo}) answers every INVITE with PCMU and echoes the
    RTP it gets back to its sender;
  - wcs: the server (C{twistd --reactor=asyncio -n wcs}, local mode) runs alone on CPU0
    (taskset); the UAS is registered as C{bob} at its built-in registrar; N WCS-protocol
    clients (tests/integration/wcs_client.py, aiortc as the browser) call C{bob}: a PCMU-only
    offer (relay) or an Opus-only offer (transcode);
  - janus: Debian's C{janus} with only janus.plugin.sip and the WebSocket transport, alone on
    CPU0; N clients speak its JSON API over WebSocket (create, attach, register as guest,
    call C{sip:bob@UAS} with aiortc's PCMU offer); the plugin relays (it cannot transcode);
  - clients and sipp run on CPU1;
  - a fresh server per N; after every call is up, a 3 s settle, then the server's utime+stime
    from /proc over a 20 s window and its VmRSS against the idle server; per-call cost is the
    least-squares slope over the N values (5, 10, 20 by default);
  - the server runs at nice -5 (as root; --nice) and in a group of its own, so that an iptables
    rule counts the datagrams it sends: its CPU per packet sent (each relayed or transcoded
    packet is sent once) x 100 packets/s is a call's cost whatever rate the clients, on a
    shared machine, managed to offer.

Optional: C{--profile DIR} runs C{py-spy record --native} on the wcs server during the window,
writes the collapsed stacks to DIR (one file per N) and prints their shares; py-spy pauses the
server to sample it, so the CPU figures of a profiled run are not the server's own.

    .venv/bin/python bench/media_clients.py --gateway wcs,janus --mode relay
    .venv/bin/python bench/media_clients.py --gateway wcs --mode transcode --calls 5,10,20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from sip_proxy import LOOPBACK, SIPP_DIR, cpu_seconds, free_port, machine, run_sipp  # noqa: E402
from sip_proxy import pinned, wait_for_options  # noqa: E402

SERVER_CPU = "0"
CLIENT_CPU = "1"
CALLEE = "bob"
JANUS_PLUGINS = "/usr/lib/x86_64-linux-gnu/janus/plugins"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def thread_cpu(pid: int) -> dict[str, float]:
    """
    CPU seconds so far of each thread of C{pid}, keyed "tid name".
    """
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.find(b"(") + 1:stat.rfind(b")")].decode(errors="replace")
        fields = stat[stat.rfind(b")") + 2:].split()
        found[f"{tid} {name}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


#: The server under test runs with this group id, so that iptables can count the datagrams it
#: sends (an owner match on OUTPUT): its CPU per packet then holds whatever the clients offered.
SERVER_GID = 47000 + os.getpid() % 1000 if os.geteuid() == 0 else None
#: The server's nice value (root may lower it): the machine is shared, and a server that waits
#: for its CPU drops packets at its sockets.  Set by --nice.
SERVER_NICE = [0]


def server_argv(argv: list[str]) -> list[str]:
    """
    C{argv} pinned to the server's CPU, at the server's nice value.
    """
    nice = SERVER_NICE[0]
    return (["nice", "-n", str(nice)] if nice else []) + pinned(SERVER_CPU, argv)


class SentDatagrams:
    """
    Counts the UDP datagrams that processes of group L{SERVER_GID} send, with one iptables
    rule (root only; L{count} is None without it).  A relayed or transcoded packet is sent
    once, so this is the media the server handled (plus a few RTCP and STUN packets).
    """

    def __init__(self) -> None:
        self.comment = f"wcs-media-clients-{os.getpid()}"
        self.rule = ["OUTPUT", "-p", "udp", "-m", "owner", "--gid-owner", str(SERVER_GID),
                     "-m", "comment", "--comment", self.comment]
        self.installed = SERVER_GID is not None and subprocess.run(
            ["iptables", "-I"] + self.rule, capture_output=True).returncode == 0

    def count(self) -> int | None:
        if not self.installed:
            return None
        listing = subprocess.run(["iptables", "-L", "OUTPUT", "-v", "-x", "-n"],
                                 capture_output=True, text=True).stdout
        for line in listing.splitlines():
            if self.comment in line:
                return int(line.split()[0])
        return None

    def close(self) -> None:
        if self.installed:
            subprocess.run(["iptables", "-D"] + self.rule, capture_output=True)
            self.installed = False


def stop(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """
    Stop one child this script started (by its own handle, never by name).
    """
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# -- gateways under test ---------------------------------------------------------------


class Gateway:
    """
    A gateway under test in a child process this script started.
    """

    label = ""
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


class WCS(Gateway):
    """
    C{twistd --reactor=asyncio -n wcs}, local mode, on CPU0; C{bob} registered at it.
    """

    label = "wcs"

    def __init__(self, workdir: str, root: str = ROOT) -> None:
        self.workdir = workdir
        self.root = root
        self.process: subprocess.Popen | None = None

    def start(self, n: int) -> None:
        self.sip_port, self.ws_port = free_port(), free_port()
        config = os.path.join(self.workdir, "wcs.properties")
        with open(config, "w") as f:
            f.write(f"ip_local={LOOPBACK}\nws.port={self.ws_port}\nhttp.port={free_port()}\n"
                    f"sip_port={self.sip_port}\nsip_transports=udp\n"
                    "enable_local_videochat=true\n")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        argv = [twistd, "--reactor=asyncio", "-n", "--pidfile=", "wcs", "--config", config]
        env = dict(os.environ, PYTHONPATH=self.root)
        self.log = open(os.path.join(self.workdir, f"wcs-{n}.log"), "wb")
        self.process = subprocess.Popen(server_argv(argv), cwd=self.workdir,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, group=SERVER_GID)
        wait_for_options(self.sip_port, 30, self.process)

    def attach_callee(self, uas_port: int) -> None:
        row = run_sipp([f"{LOOPBACK}:{self.sip_port}", "-sf",
                        os.path.join(SIPP_DIR, "register.xml"), "-s", CALLEE,
                        "-p", str(uas_port), "-m", "1"], self.workdir, 10)
        if row["_exit"] != 0:
            raise SystemExit(f"sipp could not register {CALLEE} (exit {row['_exit']})")

    def driver_args(self, uas_port: int) -> list[str]:
        return ["--url", f"ws://{LOOPBACK}:{self.ws_port}", "--callee", CALLEE]


class Janus(Gateway):
    """
    Debian's janus on CPU0 with janus.plugin.sip and the WebSocket transport only.
    """

    label = "janus"

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def _configs(self) -> str:
        folder = os.path.join(self.workdir, "janus-conf")
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        shutil.copytree("/etc/janus", folder)
        plugins = [name for name in os.listdir(JANUS_PLUGINS)
                   if name.endswith(".so") and name != "libjanus_sip.so"]
        transports = [name for name in os.listdir(os.path.join(JANUS_PLUGINS, "..",
                                                                "transports"))
                      if name.endswith(".so") and name != "libjanus_websockets.so"]
        text = open(os.path.join(folder, "janus.jcfg")).read()
        text = text.replace('#disable = "libjanus_voicemail.so,libjanus_recordplay.so"',
                            f'disable = "{",".join(plugins)}"')
        text = text.replace('#disable = "libjanus_rabbitmq.so"',
                            f'disable = "{",".join(transports)}"')
        text = text.replace('#disable = "libjanus_jsonlog.so"', 'disable = "libjanus_jsonlog.so"')
        text = text.replace("debug_level = 4", "debug_level = 3")
        with open(os.path.join(folder, "janus.jcfg"), "w") as f:
            f.write(text)
        ws = os.path.join(folder, "janus.transport.websockets.jcfg")
        text = open(ws).read().replace("ws_port = 8188", f"ws_port = {self.ws_port}")
        text = text.replace("admin_ws = true", "admin_ws = false")
        with open(ws, "w") as f:
            f.write(text)
        sip = os.path.join(folder, "janus.plugin.sip.jcfg")
        text = open(sip).read().replace("general: {", 'general: {\n\tlocal_ip = "127.0.0.1"'
                                        '\n\tsdp_ip = "127.0.0.1"', 1)
        with open(sip, "w") as f:
            f.write(text)
        return folder

    def start(self, n: int) -> None:
        self.ws_port = free_port()
        folder = self._configs()
        self.log = open(os.path.join(self.workdir, f"janus-{n}.log"), "wb")
        self.process = subprocess.Popen(
            server_argv(["janus", "-F", folder, "-C", os.path.join(folder, "janus.jcfg")]),
            cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, group=SERVER_GID)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"janus exited with {self.process.returncode}")
            with socket.socket() as s:
                if s.connect_ex((LOOPBACK, self.ws_port)) == 0:
                    return
            time.sleep(0.2)
        raise SystemExit("janus did not open its WebSocket port")

    def attach_callee(self, uas_port: int) -> None:
        pass

    def driver_args(self, uas_port: int) -> list[str]:
        return ["--url", f"ws://{LOOPBACK}:{self.ws_port}",
                "--callee", f"sip:{CALLEE}@{LOOPBACK}:{uas_port}"]


# -- one measurement ---------------------------------------------------------------------


def read_line(process: subprocess.Popen, timeout: float) -> dict:
    import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if not line:
                raise SystemExit(f"driver exited ({process.poll()})")
            try:
                return json.loads(line)
            except ValueError:
                continue
        elif process.poll() is not None:
            raise SystemExit(f"driver exited ({process.returncode})")
    raise SystemExit("driver did not answer in time")


def measure(gateway, n: int, args, workdir: str, counter: SentDatagrams) -> dict:
    uas_port, echo_port = free_port(), free_port() & ~1
    gateway.start(n)
    uas = driver = spy = None
    try:
        time.sleep(1.0)
        idle_rss = rss_kib(gateway.pid)
        gateway.attach_callee(uas_port)
        uas = subprocess.Popen(
            pinned(CLIENT_CPU, ["sipp", "-sn", "uas", "-i", LOOPBACK, "-p", str(uas_port),
                                "-rtp_echo", "-mp", str(echo_port), "-nostdin",
                                "-max_socket", "1000"]),
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        driver = subprocess.Popen(
            pinned(CLIENT_CPU, [sys.executable, os.path.abspath(__file__), "--driver",
                                gateway.label, "--mode", args.mode, "--calls", str(n)]
                   + gateway.driver_args(uas_port)),
            cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT))
        ready = read_line(driver, 60 + 6 * n)
        if not ready.get("ready"):
            raise SystemExit(f"driver: {ready}")
        time.sleep(args.settle)
        if args.profile and gateway.label == "wcs":
            spy = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--native",
                 "--format", "raw", "--rate", "250",
                 "--duration", str(int(args.seconds)), "--pid", str(gateway.pid),
                 "-o", os.path.join(args.profile, f"{gateway.label}-{args.mode}-{n}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        driver.stdin.write("stats\n")
        driver.stdin.flush()
        before = read_line(driver, 20)
        threads0 = thread_cpu(gateway.pid)
        sent0 = counter.count()
        cpu0, t0 = cpu_seconds(gateway.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(gateway.pid), time.monotonic()
        sent1 = counter.count()
        threads1 = thread_cpu(gateway.pid)
        rss = rss_kib(gateway.pid)
        driver.stdin.write("stats\n")
        driver.stdin.flush()
        after = read_line(driver, 20)
        if spy is not None:
            spy.wait(30)
            print(profile_summary(os.path.join(
                args.profile, f"{gateway.label}-{args.mode}-{n}.txt")), flush=True)
    finally:
        if driver is not None:
            try:
                driver.stdin.write("quit\n")
                driver.stdin.flush()
                driver.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                stop(driver)
        stop(uas)
        stop(spy)
        gateway.stop()
    wall = t1 - t0
    server_sent = None if sent0 is None or sent1 is None else sent1 - sent0
    sent = after["sent"] - before["sent"]
    received = after["received"] - before["received"]
    return {
        "gateway": gateway.label, "mode": args.mode, "calls": n,
        "cpu_percent": 100 * (cpu1 - cpu0) / wall,
        "rss_per_call_mib": (rss - idle_rss) / 1024 / max(n, 1),
        "sent_pps_per_call": sent / wall / max(n, 1),
        "received_pps_per_call": received / wall / max(n, 1),
        "established": after["established"],
        # What the server sent (= handled: each packet is relayed or transcoded once), and its
        # CPU per such packet; x 100 packets/s is the cost of a call whatever the load let the
        # clients offer.
        "server_sent_pps_per_call": None if server_sent is None
        else server_sent / wall / max(n, 1),
        "us_per_packet": None if not server_sent else 1e6 * (cpu1 - cpu0) / server_sent,
        # The threads that used more than 0.5 % of a core in the window (a thread of its own
        # that runs whether or not packets arrive shows up here).
        "threads": len(threads1),
        "busy_threads": {name: round(100 * (cpu - threads0.get(name, 0.0)) / wall, 1)
                         for name, cpu in threads1.items()
                         if cpu - threads0.get(name, 0.0) > 0.005 * wall},
    }


#: Stages of a media packet's path, by the frames a py-spy stack holds (the first that matches,
#: looking from the innermost frame out, names the stage of a sample).
STAGES = (
    ("idle (epoll_wait)", ("epoll_wait",)),
    ("recv (recvfrom)", ("recvfrom", "sock_recvfrom")),
    ("send (sendto)", ("sendto", "sock_sendto")),
    ("SRTP unprotect", ("srtp_unprotect", "Session.unprotect")),
    ("SRTP protect", ("srtp_protect", "Session.protect")),
    ("decode", ("opus_decode", "OpusDecoder.", "G711Codec.decode", "_Repeating.decode")),
    ("encode", ("opus_encode", "OpusEncoder.", "G711Codec.encode")),
    ("RTCP", ("_srtcp", "parse_compound", "_deliver_rtcp", "_send_report", "_build_report")),
    ("ICE consent (STUN)", ("ICELiteAgent", "_demultiplex")),
    ("depacketise + jitter buffer", ("payload_bounds", "JitterBuffer.")),
    ("packetise", ("_next_payload_packet", "build_rtp", "RTPRewriter.")),
    ("legs and transcoder (Python)", ("datagramReceived", "send_payload", "_send_datagram",
                                      "_write", "AudioTranscoder.", "dispatch", "send_packet",
                                      "relay")),
    ("timers", ("runUntilCurrent", "_onTimer")),
    ("reactor (wake-up, dispatch)", ("_run_once", "doRead", "_readOrWrite", "callWithLogger")),
)


def stage_split(path: str) -> str:
    """
    The busy samples of a py-spy raw profile by stage of the media path (L{STAGES}).
    """
    from collections import Counter

    shares: Counter = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            stage = "other"
            for frame in reversed(frames):
                found = next((name for name, keys in STAGES
                              if any(key in frame for key in keys)), None)
                if found is not None:
                    stage = found
                    break
            shares[stage] += int(count)
            total += int(count)
    busy = total - shares.pop("idle (epoll_wait)", 0)
    lines = [f"  by stage, of {busy} busy samples:"]
    lines += [f"    {100 * n / busy:5.1f} %  {name}" for name, n in shares.most_common()]
    return "\n".join(lines)


def profile_summary(path: str, top: int = 20) -> str:
    """
    The shares of a py-spy raw (collapsed) profile: by leaf frame (own time) and by frame
    anywhere on the stack (inclusive).
    """
    from collections import Counter

    total, own, inclusive = 0, Counter(), Counter()
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    lines = [f"{path}: {total} samples", "  own time:"]
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in inclusive.most_common(
        top + 20) if n < total * 0.97]
    return "\n".join(lines) + "\n" + stage_split(path)


def slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if not sxx:
        return float("nan"), my
    k = sum((x - mx) * (y - my) for x, y in points) / sxx
    return k, my - k * mx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="wcs", help="comma-separated: wcs, janus")
    parser.add_argument("--mode", default="relay", choices=("relay", "transcode"))
    parser.add_argument("--calls", default="5,10,20")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", metavar="DIR", help="py-spy --native raw stacks per N")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--nice", type=int, default=-5 if os.geteuid() == 0 else 0,
                        help="the server's nice value (default -5 as root)")
    parser.add_argument("--root", default=ROOT,
                        help="run the wcs server from this checkout (a before/after pair)")
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--callee", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        from media_clients_driver import run_driver

        run_driver(args)
        return
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    counts = [int(c) for c in args.calls.split(",")]
    workdir = tempfile.mkdtemp(prefix="wcs-media-clients-")
    SERVER_NICE[0] = args.nice
    counter = SentDatagrams()
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    print(f"command: {' '.join([os.path.relpath(sys.executable, ROOT)] + sys.argv)}",
          flush=True)
    try:
        for label in args.gateway.split(","):
            if label == "janus" and args.mode != "relay":
                print("janus: the SIP plugin only relays; skipped")
                continue
            gateway = WCS(workdir, os.path.abspath(args.root)) if label == "wcs" else Janus(workdir)
            results = []
            for n in counts:
                result = measure(gateway, n, args, workdir, counter)
                results.append(result)
                print(json.dumps(result), flush=True)
            k, c = slope([(r["calls"], r["cpu_percent"]) for r in results])
            mem = sum(r["rss_per_call_mib"] for r in results) / len(results)
            top = results[-1]
            per_packet = [r["us_per_packet"] for r in results if r["us_per_packet"]]
            print(f"{label} {args.mode}: {k:.3f} % of a core per call (slope; intercept "
                  f"{c:.1f} %), N={top['calls']} total {top['cpu_percent']:.1f} %, "
                  f"RSS {mem:.2f} MiB per call"
                  + (f"; per packet sent {min(per_packet):.1f}-{max(per_packet):.1f} us "
                     f"= {min(per_packet) / 100:.2f}-{max(per_packet) / 100:.2f} % per call "
                     f"at 100 packets/s" if per_packet else "")
                  + f"; load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        counter.close()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
