"""
What the two-process media benchmarks (media_calls.py, stream_sinks.py)
share: the gateway child's measurement and stdin control loop, and the load
generator's browser pieces (ICE check, Opus frames).

Imported as C{_common} by scripts run from this folder (the folder is on
C{sys.path} then); putting the repository root on C{sys.path} here lets
them import C{wcs_twisted} when run from anywhere.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOOPBACK = "127.0.0.1"
GEN_UFRAG = "genu"
GEN_PWD = "generatorpassword0123456"
PTIME = 0.02
CONSENT_INTERVAL = 5.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    """
    The current resident set size (not the peak), from /proc.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- gateway (child process) --------------------------------------------------------------


def serve_control(reactor, totals: Callable[[], tuple], report: Callable[[dict], dict]) -> None:
    """
    Run the gateway's reactor, driven by lines on stdin: C{mark} notes CPU,
    wall time and C{totals()}; C{report} writes C{report(mark)} as one JSON
    line; C{quit} (or stdin closing) stops.  C{mark} holds C{cpu}, C{wall}
    and C{totals}.
    """
    from twisted.internet import stdio
    from twisted.protocols.basic import LineReceiver

    mark: dict = {}

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            command = line.decode().strip()
            if command == "mark":
                mark.update(cpu=cpu_seconds(), wall=time.monotonic(), totals=totals())
            elif command == "report":
                self.sendLine(json.dumps(report(mark)).encode())
            elif command == "quit":
                reactor.stop()

        def connectionLost(self, reason=None) -> None:
            if reactor.running:
                reactor.stop()

    reactor.callWhenRunning(lambda: stdio.StandardIO(Control()))
    reactor.run()


# -- load generator (this process) -------------------------------------------------------


def send_command(child, text: str) -> None:
    """
    Send one control line to the gateway child.
    """
    child.stdin.write(text.encode() + b"\n")
    child.stdin.flush()


def ice_check(remote_ufrag: str, remote_pwd: str) -> bytes:
    """
    A browser's ICE connectivity check (controlling, nominating).
    """
    from aioice import stun

    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{remote_ufrag}:{GEN_UFRAG}"
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING"] = 12345
    request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(remote_pwd.encode())
    return bytes(request)


def opus_frames(count: int = 50) -> list[bytes]:
    """
    20 ms Opus frames of a 440 Hz tone, encoded once.
    """
    import fractions

    import av
    import numpy

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base = fractions.Fraction(1, 48000)
    encoder.bit_rate = 32000
    frames = []
    for i in range(count + 2):
        t = (numpy.arange(960) + 960 * i) / 48000
        pcm = (0.5 * 32767 * numpy.sin(2 * numpy.pi * 440 * t)).astype(numpy.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = 960 * i
        frames.extend(bytes(p) for p in encoder.encode(frame))
    return frames[:count]
