"""
Benchmark: one gateway process against several on the same box (docs/scaling.md), with relayed
WebRTC <-> SIP calls carrying media, by the method of bench/media_calls.py.

A cluster node's media never touches another node: a box running N nodes is N gateways side by
side.  This script runs bench/media_calls.py (relay mode: browser PCMU over SRTP <-> WebRTC leg
<-> bridge <-> RTP leg <-> phone PCMU) once with one gateway, then with N gateways at the same
time (each its own load generator and port range, all started together), and reports for each
gateway its own getrusage CPU per call and how much of the offered media it got.  The cost is
taken per packet the gateway got, so a run whose generators could not offer all their media (a
busy box) still gives the gateway's cost per call.

    % of a core per call   = gateway CPU per packet it got x 100 packets/s (two ends x 50)
    capacity of a gateway  = 100 / (% of a core per call)      (calls one core can carry)
    capacity of the box    = sum over its gateways, each on its own core
    scaling efficiency     = box capacity with N gateways / (N x capacity with one)

With one process per core the efficiency stays near 1 while the cores are not shared with
anything else; the generators (one per gateway, ~15 % of a core each) share the same cores, as in
bench/media_calls.py.

    .venv/bin/python bench/cluster_media.py --calls 100 --processes 2 --seconds 15

Not a test; nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
#: Ports each gateway's run may use (media_calls.py --port-low): far apart, never overlapping.
PORT_SPAN = 4000


def run(processes: int, calls: int, seconds: float, port_low: int) -> list[dict]:
    """
    N media_calls.py relay runs started together; the JSON figures of each.
    """
    children = [subprocess.Popen(
        [sys.executable, os.path.join(HERE, "media_calls.py"), "--mode", "relay",
         "--calls", str(calls), "--seconds", str(seconds), "--json",
         "--port-low", str(port_low + index * PORT_SPAN)],
        stdout=subprocess.PIPE, text=True) for index in range(processes)]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=seconds * 10 + 120)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            raise SystemExit(f"media_calls.py failed ({child.returncode}):\n{out}")
        results.append(json.loads(lines[-1]))
    return results


def per_call(result: dict) -> float:
    """
    % of a core per call, from the CPU per packet received (100 packets/s into a call).
    """
    return result["cpu"] / max(1, result["received"]) * 100 * 100


def delivered(result: dict, calls: int) -> float:
    return result["received"] / (100 * calls * result["wall"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per gateway")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--port-low", type=int, default=40000)
    args = parser.parse_args()
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"# {os.cpu_count()} CPUs, load average before: {' '.join(load)}", flush=True)
    capacity = {}
    for processes in (1, args.processes):
        results = run(processes, args.calls, args.seconds, args.port_low)
        for index, result in enumerate(results):
            print(f"{processes} gateway(s), #{index + 1}: {args.calls} calls, "
                  f"{per_call(result):.3f} % core/call "
                  f"({100 / per_call(result):.0f} calls/core), "
                  f"gateway got {delivered(result, args.calls):.1%} of the media, "
                  f"generator {result['gen_cpu'] / result['gen_wall']:.0%} of a core",
                  flush=True)
        capacity[processes] = sum(100 / per_call(result) for result in results)
        print(f"{processes} gateway(s): box capacity {capacity[processes]:.0f} calls "
              f"({processes * args.calls} running)", flush=True)
    efficiency = capacity[args.processes] / (args.processes * capacity[1])
    print(f"scaling efficiency with {args.processes} processes: {efficiency:.0%}", flush=True)


if __name__ == "__main__":
    main()
