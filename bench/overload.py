"""
Benchmark: goodput under overload - offered vs. completed calls/s through the built-in proxy.

The server runs as deployed (C{twistd --reactor=asyncio -n wcs}, SIP over UDP on 127.0.0.1,
local mode), exactly as in C{bench/sip_proxy.py}, whose pieces this reuses: for each offered rate
a sipp UAC calls a sipp UAS registered at our registrar (INVITE..ACK..BYE, record-routed, 11
messages through the proxy per call) for C{--seconds}.  Unlike sip_proxy.py it does not stop at
the first failing step: it offers every rate and prints, per step, the calls offered per second,
the calls completed per second (successful calls / the time it took to offer them), the failed
calls and sipp's retransmissions.  A server that sheds load (503 + Retry-After to new INVITEs when
its reactor lags) keeps completing calls near its best rate while the offered rate doubles; one
that does not collapses into retransmissions.

C{--root PATH} runs the server from another checkout (e.g. the main branch, to compare with the
code before load shedding).  Not a test: nothing here asserts on timing.

    .venv/bin/python bench/overload.py --rates 250,500,750,1000,1500 --seconds 8
    .venv/bin/python bench/overload.py --root /work/main --rates 500,1000,1500
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import sip_proxy
from sip_proxy import UAS_XML, WCSServer, machine, measure_calls, sipp_binary, write_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="250,500,750,1000,1500",
                        help="comma-separated offered call rates per second, tried in order")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    parser.add_argument("--root", default=sip_proxy.ROOT,
                        help="checkout whose server to run (default: this one)")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    sipp_binary()
    sip_proxy.ROOT = os.path.abspath(args.root)  # WCSServer puts it on the child's PYTHONPATH
    workdir = tempfile.mkdtemp(prefix="wcs-overload-")
    write_file(workdir, "uas.xml", UAS_XML)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([os.path.relpath(sys.executable, os.getcwd())] + sys.argv)}")
    print(f"server from {sip_proxy.ROOT}; steps of {args.seconds:g} s\n", flush=True)
    print(f"{'offered/s':>10} {'completed/s':>12} {'ok':>7} {'failed':>7} {'retrans':>8} "
          f"{'server CPU':>11}")
    server = WCSServer(os.path.join(workdir, "wcs"))
    os.makedirs(server.workdir, exist_ok=True)
    server.start()
    try:
        for rate in rates:
            step = measure_calls(server, rate, args.seconds, workdir)
            offering = step.offered / rate
            print(f"{rate:>10} {step.successful / offering:>12.1f} {step.successful:>7} "
                  f"{step.failed:>7} {step.retransmissions:>8} "
                  f"{100 * step.cpu / max(step.seconds, offering):>10.0f}%", flush=True)
            time.sleep(2.0)  # let the last step's transactions end (Timer J/K/L)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
