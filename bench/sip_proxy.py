"""
Benchmark: the SIP path of the server (built-in registrar and proxy) against real sipp.

(One file over 600 lines: the server child, the sipp scenarios and the ladder are one experiment.)

The server runs as it is deployed, C{twistd --reactor=asyncio -n wcs --config FILE}, in a child
process (SIP over UDP on 127.0.0.1, local mode on, its log written to a file).  For each scenario
sipp offers a fixed rate for a fixed time (C{-r RATE -m SECONDS*RATE}); the rate goes up step by
step until a step fails (more than 0.1% failed transactions, or less than 90% of the offered rate
achieved).  For every step the script reads the server's CPU time from /proc/<pid>/stat before
and after, so it prints CPU per transaction as well as throughput.

Scenarios:
  register  REGISTER without credentials, a different user for each (1..10000, cycling).
  options   OPTIONS to the server itself (the UA core answers 200): the floor of the SIP path.
  calls     INVITE..ACK..BYE through the built-in proxy with record-route, from a sipp UAC
            (tests/integration/sipp/uac_invite_bye.xml) to a sipp UAS registered as bob<rate>
            that answers 200 at once: 11 messages through the proxy per call.

With C{--kamailio} (the default when kamailio is installed) the same scenarios run against a
Kamailio (registrar + record-routing proxy, no auth, the config of tests/integration/peers.py)
started by the script, and the ratio is printed.  sipp and the server share this machine's
cores; sipp itself tops out at some rate, which then bounds both sides.  Not a test: nothing
here asserts on timing.

    .venv/bin/python bench/sip_proxy.py                       # everything, default steps
    .venv/bin/python bench/sip_proxy.py --scenarios register,options --rates 500,1000,2000
    .venv/bin/python bench/sip_proxy.py --seconds 5 --no-kamailio
    .venv/bin/python bench/sip_proxy.py --seconds 8 --root /tmp/before --no-kamailio

By default the server (wcs or Kamailio, all its processes) runs on CPU0 and every sipp on CPU1
(C{--pin 0:1}); the two servers are measured one after the other in the same run.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOOPBACK = "127.0.0.1"
SIPP_DIR = os.path.join(ROOT, "tests", "integration", "sipp")
DEFAULT_RATES = (250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000)
MAX_FAILED = 0.001
MIN_ACHIEVED = 0.90
USERS = 10000

#: CPUs for the server and for sipp (taskset lists), or None to let the scheduler choose;
#: set from --pin.  The server alone on one core, sipp on the other.
PIN: dict[str, str | None] = {"server": None, "sipp": None}

REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench register">
  <send retrans="500">
    <![CDATA[

      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""

#: The callee of the calls scenario: 200 at once (tests/integration/sipp/uas_answer_200.xml
#: without its 180, which a multi-process proxy such as Kamailio may deliver after the 200).
UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uas">
  <recv request="INVITE" crlf="true"/>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]uas[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

OPTIONS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench options">
  <send retrans="500">
    <![CDATA[

      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: <sip:probe@[local_ip]:[local_port]>;tag=[pid]o[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


# -- processes ------------------------------------------------------------------


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    """
    C{argv} run on the CPUs C{cpu} (a taskset list), or as it is when C{cpu} is None.
    """
    return argv if cpu is None else ["taskset", "-c", cpu] + argv


def free_port() -> int:
    """
    A port free for both UDP and TCP on loopback right now.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((LOOPBACK, port))
        except OSError:
            continue
        return port


def cpu_seconds(pid: int) -> float:
    """
    User + system CPU of process C{pid} so far (it does not fork), from /proc.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_options(port: int, timeout: float, process: subprocess.Popen) -> None:
    """
    Send OPTIONS over UDP until the server at C{port} answers (or fail after C{timeout}).
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(0.2)
        local = sock.getsockname()[1]
        count = 0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}")
            count += 1
            sock.sendto((
                f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{local};branch=z9hG4bKbench{count};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:probe@{LOOPBACK}>;tag=b{count}\r\n"
                f"To: <sip:{LOOPBACK}:{port}>\r\nCall-ID: bench-probe-{count}\r\n"
                f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), (LOOPBACK, port))
            try:
                data, _ = sock.recvfrom(65536)
            except socket.timeout:
                continue
            if data.startswith(b"SIP/2.0 "):
                return
    raise SystemExit(f"no answer to OPTIONS on {LOOPBACK}:{port} within {timeout}s")


class Server:
    """
    A SIP server under test in a child process: its pid, SIP address and how to stop it.
    """

    label = "server"

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        """
        CPU seconds of the server (its worker processes included, for Kamailio).
        """
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class WCSServer(Server):
    """
    C{twistd --reactor=asyncio -n wcs} with a temporary configuration.
    """

    label = "wcs-twisted"
    #: More wcs.properties lines (bench/overload.py turns load shedding off with them).
    extra_config = ""
    #: The transaction bound lifted (see start); bench/overload.py keeps the default.
    transaction_bound = "sip_max_transactions=0\n"

    def __init__(self, workdir: str, root: str | None = None) -> None:
        super().__init__(workdir)
        self.root = root or ROOT  # read late: bench/overload.py sets ROOT

    def start(self) -> None:
        config = os.path.join(self.workdir, "wcs.properties")
        with open(config, "w") as f:
            f.write(f"ip_local={LOOPBACK}\nws.port={free_port()}\nhttp.port={free_port()}\n"
                    f"sip_port={self.port}\nsip_transports=udp\n"
                    "enable_local_videochat=true\n"
                    # Kamailio's location table has no bound; ours refuses new bindings past
                    # 10,000 by default, which every REGISTER step from a new sipp port adds.
                    "sip_max_bindings=1000000\n"
                    # Every REGISTER holds a transaction 32 s (Timer J) and a call 101
                    # transaction-seconds (L, M, J: 32 s; K: 5 s), so the default bound of
                    # 50,000 sheds past ~1,560 REGISTER/s or ~495 calls/s sustained, and a
                    # ladder's earlier steps count against its later ones; Kamailio has none.
                    + self.transaction_bound + self.extra_config)
        self.log_path = os.path.join(self.workdir, "wcs.log")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                pinned(PIN["server"], [twistd, "--reactor=asyncio", "-n", "--pidfile=", "wcs",
                                       "--config", config]),
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=self.root))
        wait_for_options(self.port, 20, self.process)


class KamailioServer(Server):
    """
    Kamailio as registrar + record-routing proxy without auth (tests/integration/peers.py's
    configuration, quiet log).
    """

    label = "kamailio"

    def __init__(self, workdir: str, children: int) -> None:
        super().__init__(workdir)
        self.children = children

    def start(self) -> None:
        from tests.integration.peers import Kamailio

        peer = Kamailio(self.workdir, port=self.port, users={}, auth=False,
                        children=self.children, log_level=1)
        peer.write_config()
        self.log_path = peer.log_path
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                # Shared memory for tens of thousands of transactions in their wait state
                # (the 64 MB default ends in "500 server error" near 2,000 calls/s).
                pinned(PIN["server"], [peer.executable, "-DD", "-E", "-m", "512", "-M", "16",
                                       "-f", peer.config_path, "-Y", peer.directory,
                                       "-w", peer.directory]), cwd=peer.directory, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_options(self.port, 20, self.process)

    def cpu(self) -> float:
        total = cpu_seconds(self.pid)
        for child in descendants(self.pid):
            try:
                total += cpu_seconds(child)
            except OSError:
                pass
        return total


def descendants(pid: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rfind(b")") + 2:].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# -- sipp -----------------------------------------------------------------------


@dataclass
class Step:
    """
    One rate step: what sipp offered and achieved, and what it cost the server.
    """

    rate: int
    offered: int
    successful: int
    failed: int
    retransmissions: int
    seconds: float
    cpu: float

    @property
    def achieved(self) -> float:
        """
        Transactions completed per second, up to the moment all but 0.1% of them had ended.
        """
        done = self.offered - int(self.offered * MAX_FAILED)
        return min(self.successful, done) / self.seconds if self.seconds else 0.0

    @property
    def passed(self) -> bool:
        return (self.failed <= MAX_FAILED * self.offered
                and self.achieved >= MIN_ACHIEVED * self.rate)

    @property
    def cpu_per_transaction_ms(self) -> float:
        return 1000.0 * self.cpu / self.successful if self.successful else float("nan")

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return (f"  rate {self.rate:>6}/s: {self.successful:>7} ok {self.failed:>5} failed "
                f"{self.retransmissions:>6} retrans, achieved {self.achieved:8.1f}/s, "
                f"server CPU {self.cpu_per_transaction_ms:6.3f} ms each "
                f"({100 * self.cpu / self.seconds:5.1f}% of a core)  {verdict}  "
                f"(load average {os.getloadavg()[0]:.1f})")


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise SystemExit("sipp is not installed (apt-get install sip-tester)")
    return path


def run_sipp(args: list[str], workdir: str, timeout: float) -> dict:
    """
    Run sipp to the end; return the last row of its statistics (C{-trace_stat}) and the wall
    time the run took.
    """
    stat_path = os.path.join(workdir, f"stat-{time.monotonic_ns()}.csv")
    argv = pinned(PIN["sipp"], [sipp_binary()]) + args + [
        "-i", LOOPBACK, "-nostdin", "-trace_stat", "-stf", stat_path, "-fd", "1",
        "-timeout", str(int(timeout)), "-timeout_error", "-trace_err", "-error_file",
        stat_path[:-4] + "-errors.log"]
    started = time.monotonic()
    result = subprocess.run(argv, cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, timeout=timeout + 30)
    wall = time.monotonic() - started
    rows = []
    if os.path.exists(stat_path):
        with open(stat_path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    if not rows:
        raise SystemExit(f"sipp {' '.join(args)} wrote no statistics (exit "
                         f"{result.returncode}): {result.stderr.decode(errors='replace')[-800:]}")
    row = rows[-1]
    row["_wall"] = wall
    row["_exit"] = result.returncode
    row["_rows"] = rows
    return row


def completion_seconds(rows: list[dict], needed: int) -> float | None:
    """
    When (seconds after the start, interpolated between sipp's one-second statistics rows)
    C{needed} calls had ended, successfully or not; None if they never did.  A few calls stuck
    until sipp's time-out thus count as failures, not as a run that lasted until the time-out.
    """
    def epoch(text: str) -> float:
        return float(text.split()[-1])

    start = epoch(rows[0]["StartTime"])
    previous_time, previous_done = start, 0
    for row in rows:
        now = epoch(row["CurrentTime"])
        done = int(row.get("SuccessfulCall(C)") or 0) + int(row.get("FailedCall(C)") or 0)
        if done >= needed:
            if done == previous_done:
                return now - start
            share = (needed - previous_done) / (done - previous_done)
            return previous_time - start + share * (now - previous_time)
        previous_time, previous_done = now, done
    return None


def step_from(row: dict, rate: int, offered: int, cpu: float) -> Step:
    def number(name: str) -> int:
        return int(row.get(name) or 0)

    needed = offered - int(offered * MAX_FAILED)
    seconds = completion_seconds(row["_rows"], needed) or row["_wall"]
    return Step(rate, offered, number("SuccessfulCall(C)"), number("FailedCall(C)"),
                number("Retransmissions(C)"), seconds, cpu)


def write_file(workdir: str, name: str, text: str) -> str:
    path = os.path.join(workdir, name)
    with open(path, "w", encoding="iso-8859-1") as f:
        f.write(text)
    return path


def measure_simple(server: Server, scenario: str, rate: int, seconds: float,
                   files: str) -> Step:
    """
    One step of a one-transaction scenario (REGISTER or OPTIONS) at C{rate}; the scenario and
    user files are in C{files}.
    """
    offered = int(rate * seconds)
    args = [server.address, "-sf", os.path.join(files, f"{scenario}.xml"), "-p",
            str(free_port()), "-r", str(rate), "-m", str(offered)]
    if scenario == "register":
        args += ["-inf", os.path.join(files, "users.csv")]
    before = server.cpu()
    row = run_sipp(args, server.workdir, seconds * 3 + 20)
    return step_from(row, rate, offered, server.cpu() - before)


def measure_calls(server: Server, rate: int, seconds: float, files: str) -> Step:
    """
    One step of calls through the proxy: register bob at a fresh port, start the UAS there,
    run the UAC at C{rate}; the server's CPU covers the calls only.
    """
    offered = int(rate * seconds)
    workdir = server.workdir
    uas_port = free_port()
    # A callee of its own per step: the binding of the last step's (gone) UAS would otherwise
    # add a dead branch to every call.
    callee = f"bob{rate}"
    for _ in range(5):  # a server still shedding the last step's load answers 503 for a while
        row = run_sipp([server.address, "-sf", os.path.join(SIPP_DIR, "register.xml"), "-s",
                        callee, "-p", str(uas_port), "-m", "1"], workdir, 10)
        if row["_exit"] == 0:
            break
        time.sleep(2.0)
    else:
        print(f"  {server.label}: {callee} could not register (sipp exit {row['_exit']})")
        return Step(rate, offered, 0, offered, 0, seconds, 0.0)
    stat_path = os.path.join(workdir, f"uas-{uas_port}.csv")
    uas = subprocess.Popen(
        pinned(PIN["sipp"], [sipp_binary()]) + [
            "-sf", os.path.join(files, "uas.xml"), "-s", callee,
            "-i", LOOPBACK, "-p", str(uas_port), "-m", str(offered), "-nostdin",
            "-trace_stat", "-stf", stat_path, "-fd", "1", "-trace_err", "-error_file",
            stat_path[:-4] + "-errors.log"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # let the UAS bind
        before = server.cpu()
        row = run_sipp([server.address, "-sf", os.path.join(SIPP_DIR, "uac_invite_bye.xml"),
                        "-s", callee, "-p", str(free_port()), "-r", str(rate), "-m",
                        str(offered)], workdir, seconds * 3 + 20)
        cpu = server.cpu() - before
    finally:
        try:
            uas.wait(5)
        except subprocess.TimeoutExpired:
            uas.terminate()
            try:
                uas.wait(5)
            except subprocess.TimeoutExpired:
                uas.kill()
                uas.wait()
    return step_from(row, rate, offered, cpu)


def ramp(server: Server, scenario: str, rates, seconds: float, files: str) -> Step | None:
    """
    Offer each rate in turn until a step fails; return the best passing step.
    """
    print(f"{server.label} {scenario}:", flush=True)
    best = None
    for rate in rates:
        if scenario == "calls":
            step = measure_calls(server, rate, seconds, files)
        else:
            step = measure_simple(server, scenario, rate, seconds, files)
        print(step.line(), flush=True)
        if not step.passed:
            break
        best = step
        time.sleep(1.0)  # let timers of the last step (Timer J/K, 32 s max) not pile up much
    return best


def raise_priority(nice: int) -> None:
    """
    Run this process and its children (server, sipp) at niceness C{nice} (negative: ahead of
    other load; needs root).  With autogroup scheduling, niceness only ranks the tasks of one
    session against each other; the session's own weight is its autogroup's, set here too
    (start the bench under C{setsid} so that it has a session of its own).
    """
    if not nice:
        return
    os.nice(nice)
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:
        pass


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPU(s) {model}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="register,options,calls",
                        help="comma-separated: register, options, calls")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)),
                        help="comma-separated offered rates per second, tried in order")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each step (sipp -m = rate * seconds)")
    parser.add_argument("--kamailio", dest="kamailio", action="store_true", default=None,
                        help="also run the scenarios against Kamailio (default: if installed)")
    parser.add_argument("--no-kamailio", dest="kamailio", action="store_false")
    parser.add_argument("--kamailio-only", action="store_true",
                        help="run the scenarios against Kamailio alone")
    parser.add_argument("--kamailio-children", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--pin", default="0:1", metavar="SERVER:SIPP",
                        help="taskset CPU lists for the server and for sipp ('' for none)")
    parser.add_argument("--root", default=ROOT,
                        help="run the wcs server from this checkout (a before/after pair)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the servers and sipp (negative: ahead of other load; "
                             "needs root; start under setsid)")
    args = parser.parse_args()
    raise_priority(args.nice)
    if args.pin:
        PIN["server"], PIN["sipp"] = args.pin.split(":")
    scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    rates = [int(rate) for rate in args.rates.split(",")]
    if args.kamailio is None:
        args.kamailio = bool(shutil.which("kamailio") or shutil.which("kamailio",
                                                                      path="/usr/sbin"))
    sipp_binary()
    workdir = tempfile.mkdtemp(prefix="wcs-sip-bench-")
    write_file(workdir, "register.xml", REGISTER_XML)
    write_file(workdir, "options.xml", OPTIONS_XML)
    write_file(workdir, "uas.xml", UAS_XML)
    write_file(workdir, "users.csv",
               "SEQUENTIAL\n" + "".join(f"user{n}\n" for n in range(1, USERS + 1)))
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start, "
          f"nice {os.nice(0)}")
    print(f"command: {' '.join([os.path.relpath(sys.executable, ROOT)] + sys.argv)}")
    print(f"steps of {args.seconds:g} s; a step passes with <= {100 * MAX_FAILED:g}% failed "
          f"and >= {100 * MIN_ACHIEVED:g}% of the offered rate achieved\n", flush=True)
    results: dict[tuple[str, str], Step | None] = {}
    servers: list[Server] = []
    if not args.kamailio_only:
        servers.append(WCSServer(os.path.join(workdir, "wcs"), os.path.abspath(args.root)))
    if args.kamailio or args.kamailio_only:
        servers.append(KamailioServer(os.path.join(workdir, "kamailio"),
                                      args.kamailio_children))
    try:
        for server in servers:
            os.makedirs(server.workdir, exist_ok=True)
            server.start()
            try:
                for scenario in scenarios:
                    results[(server.label, scenario)] = ramp(server, scenario, rates,
                                                             args.seconds, workdir)
            finally:
                server.stop()
            print(flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print("summary (best passing step):")
    for scenario in scenarios:
        line = f"  {scenario:>8}:"
        figures = {}
        for server in servers:
            step = results.get((server.label, scenario))
            figures[server.label] = step
            if step is None:
                line += f"  {server.label} no step passed;"
            else:
                line += (f"  {server.label} {step.achieved:8.1f}/s "
                         f"({step.cpu_per_transaction_ms:.3f} ms CPU each);")
        ours, theirs = figures.get("wcs-twisted"), figures.get("kamailio")
        if ours is not None and theirs is not None:
            line += f"  ratio {ours.achieved / theirs.achieved:.2f}"
        print(line.rstrip(";"))


if __name__ == "__main__":
    main()
