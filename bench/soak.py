"""
Soak: does the server's memory stay flat, and do its fds and media ports come back, after hours
of calls with media?

The server runs as deployed (C{twistd --reactor=asyncio -n wcs --config FILE}) in a child
process, through a small wrapper of this script (C{serve} mode) so that the bench can ask it for
a C{tracemalloc} snapshot and a count of live objects by type (SIGUSR1; see C{--tracemalloc}).
The callee is sipp's built-in UAS with C{-rtp_echo}: it answers every INVITE and echoes the RTP
it gets.  This process runs C{--concurrency} workers; each loops: a new WCS WebSocket session
with aiortc as the browser (tests/integration/wcs_client.py), a PCMU (or Opus) call to the echo
UA, C{--hold} seconds of audio both ways (the browser must receive its own tone back), hangup,
close.  Every C{--interval} seconds it samples the server: VmRSS, open fds, UDP ports bound in the
media range, and the C{wcs_sessions} / C{wcs_calls} gauges of C{/metrics}.  At the end, after
the last call, it waits for the server to settle and prints a table and a summary: RSS after
warm-up vs end, the slope after warm-up (least squares, MB/min), fds and ports against the
baseline taken before the first call.

Bounded: it stops after C{--minutes} or C{--max-calls}; it only ever stops the two processes it
started (by PID).  Not a test: nothing here asserts.

    .venv/bin/python bench/soak.py --minutes 10 --tracemalloc 8     # find what grows
    .venv/bin/python bench/soak.py --minutes 60 --concurrency 4 --hold 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOOPBACK = "127.0.0.1"
MEDIA_SPAN = 2000


# -- server side (the child process) ------------------------------------------------------


def serve(argv: list[str]) -> None:
    """
    Run twistd in this process after installing a SIGUSR1 handler that writes, into the
    directory C{argv[0]}, a tracemalloc snapshot (when tracing) and a JSON count of live
    objects by type, after a full collection.  Numbered 0, 1, 2, ... in the order asked.
    """
    import collections
    import gc
    import tracemalloc

    directory, twistd_args = argv[0], argv[1:]
    taken = [0]

    def dump(signum, frame) -> None:
        gc.collect()
        number = taken[0]
        taken[0] += 1
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(os.path.join(directory, f"snapshot-{number}.bin"))
        objects = gc.get_objects()
        counts = collections.Counter(type(o).__qualname__ for o in objects)
        wanted = os.environ.get("SOAK_REFERRERS", "").split(",")
        if wanted != [""]:
            with open(os.path.join(directory, f"referrers-{number}.txt"), "w") as handle:
                for name in wanted:
                    found = [o for o in objects if type(o).__qualname__ == name][-3:]
                    for target in found:
                        handle.write(f"== {name} {str(target)[:120]}\n")
                        _write_referrers(handle, target, objects, 4, "  ")
        del objects
        with open(os.path.join(directory, f"types-{number}.json"), "w") as handle:
            json.dump(dict(counts.most_common(400)), handle)
        os.replace(os.path.join(directory, f"types-{number}.json"),
                   os.path.join(directory, f"types-{number}.done.json"))

    def trim(signum, frame) -> None:
        import ctypes

        gc.collect()
        before = _own_rss_mb()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open(os.path.join(directory, "trim.json.tmp"), "w") as handle:
            json.dump({"before": before, "after": _own_rss_mb()}, handle)
        os.replace(os.path.join(directory, "trim.json.tmp"), os.path.join(directory, "trim.json"))

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)
    from twisted.scripts.twistd import run

    sys.argv = ["twistd"] + twistd_args
    run()


def _own_rss_mb() -> float:
    return rss_mb(os.getpid())


def _write_referrers(handle, target, objects, depth: int, indent: str) -> None:
    """
    Write who holds C{target}, C{depth} levels up (diagnosis of what grows; bench only).
    """
    import gc

    if depth == 0:
        return
    for holder in gc.get_referrers(target):
        if holder is objects or type(holder).__name__ == "frame":
            continue
        label = type(holder).__qualname__
        if isinstance(holder, dict):
            keys = [k for k, v in holder.items() if v is target][:3]
            label += f" keys={keys!r:.80} len={len(holder)}"
        elif isinstance(holder, (list, tuple, set)):
            label += f" len={len(holder)}"
        handle.write(f"{indent}{label}\n")
        _write_referrers(handle, holder, objects, depth - 1, indent + "  ")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def free_range(span: int) -> int:
    """
    The first port of C{span} consecutive UDP ports that are free right now (from 30000 up).
    """
    low = 30000
    while low + span < 60000:
        for port in range(low, low + span, 97):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((LOOPBACK, port))
            except OSError:
                break
        else:
            return low
        low += span
    raise SystemExit("no free media range")


def wait_tcp(port: int, process: subprocess.Popen, what: str, log: str) -> None:
    deadline = time.monotonic() + 120  # tracemalloc slows the start-up several times
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}; see {log}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start; see {log}")


class Processes:
    """
    The server and sipp children, started here and stopped here by PID.
    """

    def __init__(self, workdir: str, tracemalloc_frames: int, media_from: int = 0) -> None:
        self.workdir = workdir
        self.media_from = media_from or free_range(MEDIA_SPAN + 10)
        self.media_to = self.media_from + MEDIA_SPAN - 1
        ports: list[int] = []
        while len(ports) < 4:  # outside the media range, so the port count is media only
            port = free_port(socket.SOCK_STREAM if len(ports) < 2 else socket.SOCK_DGRAM)
            if not self.media_from <= port <= self.media_to + 10 and port not in ports:
                ports.append(port)
        self.ws_port, self.http_port, self.sip_port, self.uas_port = ports
        self.echo_port = self.media_to + 4
        self.snapshots = os.path.join(workdir, "snapshots")
        os.makedirs(self.snapshots)
        self.server_log = os.path.join(workdir, "server.log")
        config = os.path.join(workdir, "wcs.properties")
        with open(config, "w") as handle:
            handle.write(f"ip_local={LOOPBACK}\nws.port={self.ws_port}\n"
                         f"http.port={self.http_port}\nsip_port={self.sip_port}\n"
                         f"media_port_from={self.media_from}\nmedia_port_to={self.media_to}\n")
        python = [sys.executable] + ([f"-X", f"tracemalloc={tracemalloc_frames}"]
                                     if tracemalloc_frames else [])
        self.server = subprocess.Popen(
            python + [os.path.abspath(__file__), "serve", self.snapshots, "--reactor=asyncio",
                      "-n", "--pidfile=", "-l", self.server_log, "wcs", "--config", config],
            cwd=workdir, stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(workdir, "server.out"), "wb"), stderr=subprocess.STDOUT)
        self.sipp_log = os.path.join(workdir, "sipp.log")
        self.sipp = subprocess.Popen(
            ["sipp", "-sn", "uas", "-rtp_echo", "-i", LOOPBACK, "-p", str(self.uas_port),
             "-mp", str(self.echo_port), "-nostdin", "-trace_err",
             "-error_file", os.path.join(workdir, "sipp-errors.log")],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=open(self.sipp_log, "wb"),
            stderr=subprocess.STDOUT)
        try:
            wait_tcp(self.ws_port, self.server, "the server", self.server_log)
            wait_tcp(self.http_port, self.server, "the server", self.server_log)
            if self.sipp.poll() is not None:
                raise SystemExit(f"sipp exited; see {self.sipp_log}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for child in (self.sipp, self.server):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


# -- sampling -----------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def heap_split_mb(pid: int) -> tuple[float, float]:
    """
    Resident MB of the glibc main heap ([heap]) and of anonymous maps (Python's arenas, large
    mallocs, library buffers), from /proc/PID/smaps: which allocator holds the growth.
    """
    heap = anon = 0
    current = ""
    with open(f"/proc/{pid}/smaps") as handle:
        for line in handle:
            if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                fields = line.split()
                current = fields[5] if len(fields) > 5 else ""
            elif line.startswith("Rss:"):
                if current == "[heap]":
                    heap += int(line.split()[1])
                elif current == "":
                    anon += int(line.split()[1])
    return heap / 1024, anon / 1024


def socket_inodes(pid: int) -> tuple[int, set[str]]:
    """
    The number of open fds of C{pid} and the inodes of its sockets.
    """
    fd_dir = f"/proc/{pid}/fd"
    inodes, count = set(), 0
    for name in os.listdir(fd_dir):
        count += 1
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return count, inodes


def media_ports(pid: int, low: int, high: int) -> int:
    """
    UDP ports in [low, high] bound by a socket of C{pid} (from /proc/net/udp).
    """
    _, inodes = socket_inodes(pid)
    ports = set()
    with open("/proc/net/udp") as handle:
        next(handle)
        for line in handle:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if low <= port <= high and fields[9] in inodes:
                ports.add(port)
    return len(ports)


def gauges(http_port: int) -> dict:
    """
    The C{wcs_sessions} and C{wcs_calls} gauges of C{/metrics} (-1 when it does not answer).
    """
    values = {"wcs_sessions": -1, "wcs_calls": -1}
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{http_port}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in values:
                    values[name] = int(float(value))
    except OSError:
        pass
    return values


def sample(processes: Processes, started: float, calls: dict) -> dict:
    pid = processes.server.pid
    fds, _ = socket_inodes(pid)
    heap, anon = heap_split_mb(pid)
    row = {"t": time.monotonic() - started, "rss": rss_mb(pid), "heap": heap, "anon": anon,
           "fds": fds,
           "ports": media_ports(pid, processes.media_from, processes.media_to),
           "done": calls["ok"], "failed": calls["failed"]}
    row.update(gauges(processes.http_port))
    return row


def print_row(row: dict) -> None:
    print(f"{row['t'] / 60:7.2f} {row['rss']:8.1f} {row['heap']:6.1f} {row['anon']:6.1f} "
          f"{row['fds']:5d} {row['ports']:6d} "
          f"{row['wcs_sessions']:8d} {row['wcs_calls']:6d} {row['done']:7d} {row['failed']:6d}",
          flush=True)


def slope(rows: list[dict]) -> float:
    """
    Least-squares slope of RSS over time, MB per minute.
    """
    if len(rows) < 2:
        return 0.0
    xs = [r["t"] / 60 for r in rows]
    ys = [r["rss"] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


# -- snapshots ----------------------------------------------------------------------------


def ask_snapshot(processes: Processes, number: int, timeout: float = 120) -> None:
    os.kill(processes.server.pid, signal.SIGUSR1)
    path = os.path.join(processes.snapshots, f"types-{number}.done.json")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)


def ask_trim(processes: Processes, timeout: float = 60) -> str:
    path = os.path.join(processes.snapshots, "trim.json")
    os.kill(processes.server.pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    with open(path) as handle:
        trim = json.load(handle)
    os.remove(path)
    return f"{trim['before']:.1f} -> {trim['after']:.1f} MB"


def compare_snapshots(directory: str, first: int, last: int, top: int) -> None:
    """
    Print what grew between snapshots C{first} and C{last}: object counts by type and, when
    traced, the allocation sites (tracemalloc, grouped by traceback).
    """
    with open(os.path.join(directory, f"types-{first}.done.json")) as handle:
        before = json.load(handle)
    with open(os.path.join(directory, f"types-{last}.done.json")) as handle:
        after = json.load(handle)
    grown = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in set(before) | set(after)),
                   reverse=True)
    print(f"\nlive objects by type, snapshot {first} -> {last} (after gc):")
    for delta, name in grown[:top]:
        if delta > 0:
            print(f"  {delta:+8d}  {name} ({after.get(name, 0)})")
    path_a = os.path.join(directory, f"snapshot-{first}.bin")
    path_b = os.path.join(directory, f"snapshot-{last}.bin")
    if not (os.path.exists(path_a) and os.path.exists(path_b)):
        return
    import tracemalloc

    old, new = tracemalloc.Snapshot.load(path_a), tracemalloc.Snapshot.load(path_b)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    old, new = old.filter_traces(keep), new.filter_traces(keep)
    print(f"\ntracemalloc, snapshot {first} -> {last}, top {top} by size growth (traceback):")
    for stat in new.compare_to(old, "traceback")[:top]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
        for line in stat.traceback.format(limit=8, most_recent_first=True):
            print("      " + line)


# -- load ---------------------------------------------------------------------------------


async def worker(number: int, reactor, processes: Processes, args, calls: dict,
                 stop_at: float) -> None:
    """
    Call the echo UA again and again, one WebSocket session per call, until C{stop_at}.
    """
    from twisted.internet import task

    from tests.integration.wcs_client import WCSClient

    def sleep(seconds: float):
        return task.deferLater(reactor, seconds, lambda: None)

    ws_url = f"ws://{LOOPBACK}:{processes.ws_port}/"
    callee = f"echo@{LOOPBACK}:{processes.uas_port}"
    await sleep(number * (args.hold + 1) / args.concurrency)  # spread the starts
    while time.monotonic() < stop_at and calls["ok"] + calls["failed"] < args.max_calls:
        client = WCSClient(ws_url, reactor)
        try:
            await client.connect(sipLogin=f"soak{number}", sipAuthenticationName=f"soak{number}",
                                 sipPassword="x", sipDomain=LOOPBACK, sipOutboundProxy=LOOPBACK,
                                 sipPort="0", sipRegisterRequired=False)
            call_id = await client.call(callee, codecs=[args.codec])
            await client.wait_status(call_id, "ESTABLISHED", timeout=15)
            await sleep(args.hold)
            received = await client.packets_received(call_id)
            if received < args.hold * 25:  # 50 packets/s; half of them at least
                raise RuntimeError(f"only {received} packets echoed in {args.hold} s")
            await client.hangup(call_id)
            await client.wait_status(call_id, "FINISH", timeout=10)
            calls["ok"] += 1
        except Exception as e:  # noqa: BLE001 (a bench counts failures and goes on)
            calls["failed"] += 1
            calls["errors"].append(f"{type(e).__name__}: {e}"[:300])
            await sleep(1)
        finally:
            await client.close()


def run_load(processes: Processes, args) -> list[dict]:
    """
    Run the workers and the sampler on the asyncio reactor; return the samples.
    """
    from twisted.internet import asyncioreactor

    asyncioreactor.install()
    from twisted.internet import defer, reactor, task, threads

    calls = {"ok": 0, "failed": 0, "errors": []}
    rows: list[dict] = []
    started = time.monotonic()
    stop_at = started + args.minutes * 60
    print(" minutes  RSS(MB)   heap   anon   fds  ports sessions  calls   calls  failed\n"
          "                                                                 done", flush=True)

    def take() -> defer.Deferred:
        d = threads.deferToThread(sample, processes, started, calls)
        d.addCallback(lambda row: (rows.append(row), print_row(row)))
        return d

    async def main() -> None:
        await take()
        sampler = task.LoopingCall(take)
        sampler.start(args.interval, now=False)
        def snap() -> defer.Deferred:
            return threads.deferToThread(ask_snapshot, processes,
                                         len(processes_snapshots_taken(processes)))

        snapshots = task.LoopingCall(snap)
        if args.snapshot_every:
            snapshots.start(args.snapshot_every * 60, now=False)
        elif args.warmup < args.minutes:
            reactor.callLater(args.warmup * 60, snap)
        await defer.gatherResults([
            defer.ensureDeferred(worker(i, reactor, processes, args, calls, stop_at))
            for i in range(args.concurrency)])
        if snapshots.running:
            snapshots.stop()
        # settle: consent timers, SIP transaction timers (64*T1) and the like run out
        await task.deferLater(reactor, args.settle, lambda: None)
        sampler.stop()
        await take()

    def finished(result):
        reactor.stop()
        return result

    d = defer.ensureDeferred(main())
    d.addBoth(finished)
    d.addErrback(lambda failure: print(failure.getTraceback(), flush=True))
    reactor.run()
    print(f"\ncalls: {calls['ok']} completed, {calls['failed']} failed")
    for error in calls["errors"][:10]:
        print("  " + error)
    return rows


def processes_snapshots_taken(processes: Processes) -> list[str]:
    return [n for n in os.listdir(processes.snapshots) if n.endswith(".done.json")]


def summary(rows: list[dict], warmup_minutes: float) -> None:
    base, end = rows[0], rows[-1]
    after = [r for r in rows[1:-1] if r["t"] >= warmup_minutes * 60] or rows[1:]
    print(f"\nbaseline (before the first call): RSS {base['rss']:.1f} MB, {base['fds']} fds, "
          f"{base['ports']} media ports")
    print(f"after warm-up ({warmup_minutes:g} min): RSS {after[0]['rss']:.1f} MB; "
          f"last sample under load: {after[-1]['rss']:.1f} MB; peak {max(r['rss'] for r in rows):.1f} MB")
    print(f"RSS slope after warm-up: {slope(after):+.3f} MB/min over {len(after)} samples "
          f"({(after[-1]['t'] - after[0]['t']) / 60:.1f} min)")
    print(f"after the last call: RSS {end['rss']:.1f} MB, fds {end['fds']} (baseline "
          f"{base['fds']}), media ports {end['ports']} (baseline {base['ports']}), sessions "
          f"{end['wcs_sessions']}, calls {end['wcs_calls']}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return serve(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--max-calls", type=int, default=100000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--hold", type=float, default=5, help="seconds of media per call")
    parser.add_argument("--codec", default="PCMU", choices=("PCMU", "opus"))
    parser.add_argument("--interval", type=float, default=30, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5, help="minutes left out of the slope")
    parser.add_argument("--settle", type=float, default=40,
                        help="seconds to wait after the last call before the final sample")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="run the server under -X tracemalloc=FRAMES (slow) and compare "
                             "the snapshots")
    parser.add_argument("--snapshot-every", type=float, default=0, metavar="MINUTES",
                        help="ask the server for a snapshot every MINUTES (0: only after "
                             "warm-up and at the end)")
    parser.add_argument("--trim", action="store_true",
                        help="at the end, ask the server to malloc_trim(0) and print its RSS "
                             "before and after (is the growth freed memory glibc keeps?)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--media-from", type=int, default=0,
                        help="first media port (2000 are used; default: a free range from 30000)")
    parser.add_argument("--workdir", help="where logs and snapshots go (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="wcs-soak-")
    os.makedirs(workdir, exist_ok=True)
    print(f"workdir {workdir}; nproc {os.cpu_count()}", flush=True)
    processes = Processes(workdir, args.tracemalloc, args.media_from)
    try:
        print(f"server pid {processes.server.pid}, sipp pid {processes.sipp.pid}, media ports "
              f"{processes.media_from}-{processes.media_to}", flush=True)
        rows = run_load(processes, args)
        ask_snapshot(processes, len(processes_snapshots_taken(processes)))
        if args.trim:
            print(f"\nmalloc_trim(0) after gc: RSS {ask_trim(processes)}", flush=True)
        if rows:
            summary(rows, args.warmup)
        taken = len(processes_snapshots_taken(processes))
        if taken >= 2:
            compare_snapshots(processes.snapshots, 0, taken - 1, args.top)
    finally:
        processes.stop()


if __name__ == "__main__":
    sys.exit(main())
