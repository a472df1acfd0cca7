"""
Benchmark: goodput under overload - offered vs. completed calls/s through the built-in proxy,
with load shedding and without it.

The server runs as deployed (C{twistd --reactor=asyncio -n wcs}, SIP over UDP on 127.0.0.1,
local mode), as in C{bench/sip_proxy.py}, whose pieces this reuses: for each offered rate sipp
UACs call sipp UASes registered at our registrar (INVITE..ACK..BYE, record-routed, 11 messages
through the proxy per call) for C{--seconds}.  Every rate is offered (no stop at the first
failing step) and each step prints the calls offered per second, the calls completed per second
(successful calls / the time until the last of them ended, at least the time it took to offer
them: calls stuck until sipp's time-out do not count), that time, the failed calls and how many
of them were refused with an error response (503) rather than timed out, the retransmissions of
all sipp processes, and how busy each CPU was.

Why the pinning: on a 2-core machine where sipp shares the cores with the server, sipp saturates
first and the server's collapse never shows.  The server is pinned to C{--server-cpu} and every
sipp to C{--sipp-cpus} (CPU affinity, as C{taskset -c}, inherited by the child processes), and the
offered rate is split over C{--pairs} UAC/UAS pairs (each pair its own callee) so that no single
sipp process is the bottleneck.

C{--nice -10} runs the server and sipp ahead of other load on a shared machine (root only; with
autogroup scheduling start the bench with C{setsid}, so that the weight goes to its own session).

C{--compare} starts two servers of the same code, one with the default shedding (503 +
Retry-After to new INVITEs when their datagram waited too long to be read, the reactor lags or
the transaction table is full) and one with it turned off (C{sip_max_queue_delay_ms=0},
C{sip_max_reactor_lag_ms=0}, C{sip_max_transactions=0}), and runs each rate on
both back to back, so both see the same background load.  C{--root PATH} runs the server of
another checkout.  Not a test: nothing here asserts on timing.

    .venv/bin/python bench/overload.py --compare --rates 500,1000,1500,2000,3000 --seconds 8
    .venv/bin/python bench/overload.py --root /work/main --rates 500,1000,1500
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import sip_proxy
from sip_proxy import (
    LOOPBACK,
    SIPP_DIR,
    UAS_XML,
    Step,
    WCSServer,
    free_port,
    machine,
    raise_priority,
    run_sipp,
    sipp_binary,
    step_from,
    write_file,
)

#: wcs.properties lines that turn load shedding off (docs/security.md, "Overload").
NO_SHEDDING = "sip_max_queue_delay_ms=0\nsip_max_reactor_lag_ms=0\nsip_max_transactions=0\n"

#: Both servers: the proxy's bound on unanswered requests per destination (32, against silent
#: contacts) would answer 503 "Destination not answering" to new INVITEs for a UAS that is
#: merely slow at a thousand calls/s (BYEs pass it); it is not the load shedding measured here.
FAN_OUT = "sip_proxy_max_unanswered={}\n"


def cpu_times() -> dict[int, tuple[int, int]]:
    """
    Busy and total jiffies of every CPU (from /proc/stat).
    """
    times = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(value) for value in fields]
                idle = values[3] + values[4]  # idle + iowait
                times[int(name[3:])] = (sum(values) - idle, sum(values))
    return times


def busy_percent(before: dict, after: dict) -> str:
    """
    "cpu0 97% cpu1 64%": how busy each CPU was between two L{cpu_times} (all processes).
    """
    parts = []
    for cpu in sorted(after):
        busy = after[cpu][0] - before[cpu][0]
        total = after[cpu][1] - before[cpu][1]
        parts.append(f"cpu{cpu} {100 * busy / total if total else 0:3.0f}%")
    return " ".join(parts)


def last_row(path: str) -> dict:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    except OSError:
        return {}
    return rows[-1] if rows else {}


def success_seconds(rows: list[dict]) -> float:
    """
    Seconds from a sipp run's start until its successful calls had all ended (sipp's one-second
    statistics rows): calls stuck until sipp's time-out do not stretch the goodput's time.
    """
    def epoch(text: str) -> float:
        return float(text.split()[-1])

    final = int(rows[-1].get("SuccessfulCall(C)") or 0)
    start = epoch(rows[0]["StartTime"])
    for row in rows:
        if int(row.get("SuccessfulCall(C)") or 0) >= final:
            return epoch(row["CurrentTime"]) - start
    return epoch(rows[-1]["CurrentTime"]) - start


def split(rate: int, pairs: int) -> list[int]:
    """
    C{rate} shared over C{pairs} sipp UACs as whole calls per second.
    """
    share, extra = divmod(rate, pairs)
    return [share + (1 if index < extra else 0) for index in range(pairs) if share or index < extra]


def stop(process: subprocess.Popen, grace: float) -> None:
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(server: WCSServer, rate: int, seconds: float, files: str, pairs: int,
            tag: str) -> tuple[Step, int, str]:
    """
    One step: C{pairs} UAC/UAS pairs offering C{rate} calls/s in all through C{server}.

    @return: the combined step (UAC figures, the server's CPU), the calls refused (answered
        with an error rather than timed out), the UASes' retransmissions, and how busy each CPU
        was.
    """
    workdir = server.workdir
    uases, uacs = [], []
    for index, share in enumerate(split(rate, pairs)):
        offered = int(share * seconds)
        uas_port = free_port()
        # A callee of its own per step and pair: a dead binding of an earlier step's UAS would
        # add a branch to every call.
        callee = f"b{tag}{rate}x{index}"
        row = run_sipp([server.address, "-sf", os.path.join(SIPP_DIR, "register.xml"), "-s",
                        callee, "-p", str(uas_port), "-m", "1"], workdir, 10)
        if row["_exit"] != 0:
            raise SystemExit(f"{callee} could not register (sipp exit {row['_exit']})")
        stat_path = os.path.join(workdir, f"uas-{uas_port}.csv")
        uases.append((stat_path, subprocess.Popen(
            [sipp_binary(), "-sf", os.path.join(files, "uas.xml"), "-s", callee,
             "-i", LOOPBACK, "-p", str(uas_port), "-m", str(offered), "-nostdin",
             "-trace_stat", "-stf", stat_path, "-fd", "1"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        uacs.append((share, offered, [
            server.address, "-sf", os.path.join(SIPP_DIR, "uac_invite_bye.xml"), "-s", callee,
            "-p", str(free_port()), "-r", str(share), "-m", str(offered)]))
    try:
        time.sleep(0.5)  # let the UASes bind
        cpus = cpu_times()
        before = server.cpu()
        with ThreadPoolExecutor(len(uacs)) as pool:
            rows = list(pool.map(lambda uac: run_sipp(uac[2], workdir, seconds * 3 + 20), uacs))
        cpu = server.cpu() - before
        busy = busy_percent(cpus, cpu_times())
    finally:
        for _, process in uases:
            stop(process, 5)
    uas_retransmissions = sum(int(last_row(stat_path).get("Retransmissions(C)") or 0)
                              for stat_path, _ in uases)
    steps = [step_from(row, share, offered, 0.0) for (share, offered, _), row in zip(uacs, rows)]
    step = Step(rate, sum(s.offered for s in steps), sum(s.successful for s in steps),
                sum(s.failed for s in steps), sum(s.retransmissions for s in steps),
                max(success_seconds(row["_rows"]) for row in rows), cpu)
    # A 503 (shed, or a proxy bound) is an unexpected message to the UAC scenario; the other
    # failures are calls that timed out.
    refused = sum(int(row.get("FailedUnexpectedMessage(C)") or 0) for row in rows)
    return step, refused, uas_retransmissions, busy


def start_server(workdir: str, name: str, extra_config: str, server_cpus: set[int],
                 sipp_cpus: set[int]) -> WCSServer:
    """
    A server pinned to C{server_cpus} (this process passes its affinity on while spawning it,
    then moves to C{sipp_cpus}, which the sipp processes it spawns later inherit).
    """
    server = WCSServer(os.path.join(workdir, name))
    server.extra_config = extra_config
    server.transaction_bound = ""  # the defaults' shedding is what is measured here
    os.makedirs(server.workdir, exist_ok=True)
    os.sched_setaffinity(0, server_cpus)
    try:
        server.start()
    finally:
        os.sched_setaffinity(0, sipp_cpus)
    return server


def cpu_set(text: str) -> set[int]:
    return {int(cpu) for cpu in text.split(",") if cpu.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,1000,1500,2000,3000",
                        help="comma-separated offered call rates per second, tried in order")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    parser.add_argument("--root", default=sip_proxy.ROOT,
                        help="checkout whose server to run (default: this one)")
    parser.add_argument("--compare", action="store_true",
                        help="run every rate with shedding and without it, back to back")
    parser.add_argument("--no-shedding", action="store_true",
                        help="only the server with load shedding turned off")
    parser.add_argument("--config", action="append", default=[],
                        help="a wcs.properties line for the server with shedding (repeatable), "
                             "e.g. sip_max_reactor_lag_ms=100")
    parser.add_argument("--server-cpu", default="0", help="CPUs of the server (taskset -c)")
    parser.add_argument("--sipp-cpus", default="1", help="CPUs of every sipp process")
    parser.add_argument("--pairs", type=int, default=2,
                        help="sipp UAC/UAS pairs the offered rate is split over")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds between steps (the last step's transactions end)")
    parser.add_argument("--max-unanswered", type=int, default=100000,
                        help="sip_proxy_max_unanswered of both servers (the server's default "
                             "is 32)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (sipp statistics and error logs)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the server and sipp (negative: ahead of other load; "
                             "needs root)")
    args = parser.parse_args()
    raise_priority(args.nice)  # inherited by the server and every sipp
    rates = [int(rate) for rate in args.rates.split(",")]
    sipp_binary()
    sip_proxy.ROOT = os.path.abspath(args.root)  # WCSServer puts it on the child's PYTHONPATH
    server_cpus, sipp_cpus = cpu_set(args.server_cpu), cpu_set(args.sipp_cpus)
    workdir = tempfile.mkdtemp(prefix="wcs-overload-")
    write_file(workdir, "uas.xml", UAS_XML)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"command: {' '.join([os.path.relpath(sys.executable, os.getcwd())] + sys.argv)}")
    print(f"server from {sip_proxy.ROOT} on CPU {args.server_cpu}, {args.pairs} sipp pair(s) "
          f"on CPU {args.sipp_cpus}, nice {os.nice(0)}; steps of {args.seconds:g} s\n",
          flush=True)
    print(f"{'server':>12} {'offered/s':>10} {'completed/s':>12} {'took s':>6} {'ok':>7} "
          f"{'failed':>7} "
          f"{'refused':>8} {'retrans':>8} {'server CPU':>11}  CPUs busy (all processes)")
    kinds = []
    common = FAN_OUT.format(args.max_unanswered)
    if args.compare or not args.no_shedding:
        kinds.append(("shedding", common + "".join(f"{line}\n" for line in args.config)))
    if args.compare or args.no_shedding:
        kinds.append(("no shedding", common + NO_SHEDDING))
    servers = []
    try:
        for index, (label, config) in enumerate(kinds):
            servers.append((label, start_server(workdir, f"wcs{index}", config, server_cpus,
                                                sipp_cpus)))
        for rate in rates:
            for index, (label, server) in enumerate(servers):
                step, refused, uas_retransmissions, busy = measure(
                    server, rate, args.seconds, workdir, args.pairs, str(index))
                # Goodput over the time the successful calls really took: a server that falls
                # behind completes its calls long after they were offered.
                took = max(step.seconds, step.offered / rate)
                print(f"{label:>12} {rate:>10} {step.successful / took:>12.1f} {took:>6.1f} "
                      f"{step.successful:>7} {step.failed:>7} {refused:>8} "
                      f"{step.retransmissions + uas_retransmissions:>8} "
                      f"{100 * step.cpu / took:>10.0f}%  {busy}", flush=True)
                time.sleep(args.pause)
    finally:
        for _, server in servers:
            server.stop()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
