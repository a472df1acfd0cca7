"""
Benchmark: Python CPU per REGISTER and per proxied call in the server's own SIP stack, in one
process, without sockets or other processes: what the code costs, apart from the machine.

The stack is built as the server builds it (C{tap.build_sip} from a local-mode configuration)
on a deterministic clock, and log events go to a text file observer writing to /dev/null, as
twistd's does (so a log call on the hot path costs what it costs in production).  Datagrams go
in through the real C{SIPDatagramProtocol}; what the stack sends is caught by a stand-in port.

  register  REGISTER without credentials, a different AOR each (C{user<n>}, 9,000 cycled), as
            sipp sends it.
  calls     INVITE, 200, ACK, BYE, 200 through the record-routing proxy to a registered callee,
            the callee's answers made from what the proxy forwarded (11 messages per call).
  refusals  a new INVITE that waited 1 s to be read (sip_max_queue_delay_ms=200): the stateless
            503 with Retry-After, and the ACK the client sends for it (2 datagrams in, 1 out).

The figures are CPU time per transaction (C{time.process_time}), best of C{--repeat} runs, and
with C{--profile} a cProfile listing of one run.  The garbage collector is tuned as the server
tunes it (L{wcs_twisted.gc_tuning}) unless C{--default-gc}.  bench/sip_proxy.py measures the
same scenarios over real sockets against sipp and Kamailio.

    .venv/bin/python bench/sip_inprocess.py
    .venv/bin/python bench/sip_inprocess.py --scenario register --count 5000 --profile 25
    .venv/bin/python bench/sip_inprocess.py --scenario calls --steady 40000 --count 4000
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from twisted.internet.task import Clock  # noqa: E402
from twisted.logger import globalLogBeginner, textFileLogObserver  # noqa: E402

from wcs_twisted.config import settings_from_text  # noqa: E402
from wcs_twisted.gc_tuning import GarbageCollectorTuning  # noqa: E402
from wcs_twisted.metrics import ServerMetrics  # noqa: E402
from wcs_twisted.tap import build_sip  # noqa: E402
from wcs_twisted.transport.udp import SIPDatagramProtocol  # noqa: E402

SERVER = ("127.0.0.1", 5060)
UAC = ("127.0.0.1", 5071)
UAS = ("127.0.0.1", 5072)
REG = ("127.0.0.1", 5073)


class Port:
    """
    Stands in for the UDP port: keeps what the stack sends.
    """

    maxPacketSize = 65537

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple]] = []

    def write(self, data: bytes, addr) -> None:
        self.sent.append((data, addr))


def register(n: int, user: str, source=REG) -> bytes:
    """
    REGISTER number C{n} (its branch, tag and Call-ID: every one a new transaction, as sipp's
    are) for C{user}.
    """
    host, port = SERVER
    return (
        f"REGISTER sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK-r{n};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{host}:{port}>;tag=r{n}\r\n"
        f"To: <sip:{user}@{host}:{port}>\r\n"
        f"Call-ID: reg-{n}@{source[0]}\r\n"
        f"CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{source[0]}:{source[1]};transport=UDP>\r\n"
        f"Expires: 300\r\n"
        f"Content-Length: 0\r\n\r\n").encode()


SDP = ("v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def invite(n: int, callee: str) -> bytes:
    host, port = SERVER
    return (
        f"INVITE sip:{callee}@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {UAC[0]}:{UAC[1]};branch=z9hG4bK-i{n}\r\n"
        f"From: sipp <sip:sipp@{UAC[0]}:{UAC[1]}>;tag=c{n}\r\n"
        f"To: <sip:{callee}@{host}:{port}>\r\n"
        f"Call-ID: call-{n}@{UAC[0]}\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: sip:sipp@{UAC[0]}:{UAC[1]}\r\n"
        f"Max-Forwards: 70\r\n"
        f"Subject: Performance Test\r\n"
        f"Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n{SDP}").encode()


def in_dialog(method: str, n: int, cseq: int, to_tag: str, routes: list[str],
              callee: str) -> bytes:
    """
    ACK or BYE from the UAC, along the route set the 200 carried (reversed Record-Route).
    """
    route = "".join(f"Route: {r}\r\n" for r in routes)
    return (
        f"{method} sip:{callee}@{UAS[0]}:{UAS[1]};transport=UDP SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {UAC[0]}:{UAC[1]};branch=z9hG4bK-{method[0].lower()}{n}\r\n"
        f"{route}"
        f"From: sipp <sip:sipp@{UAC[0]}:{UAC[1]}>;tag=c{n}\r\n"
        f"To: <sip:{callee}@{SERVER[0]}:{SERVER[1]}>;tag={to_tag}\r\n"
        f"Call-ID: call-{n}@{UAC[0]}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: sip:sipp@{UAC[0]}:{UAC[1]}\r\n"
        f"Max-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n").encode()


_HEADER = re.compile(rb"^(Via|From|To|Call-ID|CSeq|Record-Route): .*$", re.M | re.I)


def answer(request: bytes, status: str, to_tag: str | None, body: str = "") -> bytes:
    """
    A UAS response to a forwarded request: its Via, From, To (+ tag), Call-ID, CSeq and
    Record-Route copied, as sipp's [last_*] do.
    """
    lines = []
    for match in _HEADER.finditer(request.split(b"\r\n\r\n", 1)[0]):
        line = match.group(0).rstrip(b"\r").decode()
        if to_tag and line.lower().startswith("to:") and ";tag=" not in line:
            line += f";tag={to_tag}"
        lines.append(line)
    extra = "Content-Type: application/sdp\r\n" if body else ""
    return (f"SIP/2.0 {status}\r\n" + "\r\n".join(lines) + "\r\n"
            f"Contact: <sip:bob@{UAS[0]}:{UAS[1]};transport=UDP>\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


class Server:
    """
    The SIP stack of a local-mode server, fed datagrams by hand.
    """

    def __init__(self, extra_config: str = "") -> None:
        settings = settings_from_text(
            f"ip_local={SERVER[0]}\nsip_port={SERVER[1]}\nsip_transports=udp\n"
            "enable_local_videochat=true\n" + extra_config).settings
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.stack, self.core, self.location, self.proxy = build_sip(
            settings, self.clock, ServerMetrics())
        # After the registrar, as in tap.py (there the gateway's call table comes between).
        self.core.add_router(self.proxy)
        self.protocol = SIPDatagramProtocol(self.stack, settings.sip_max_message_size,
                                            receive_buffer_size=0)
        self.port = Port()
        self.protocol.transport = self.port
        self.stack.add_transport("udp", self.protocol, SERVER[1])
        self.protocol.startProtocol()

    def receive(self, data: bytes, source, waited: float = 0.0) -> list[tuple[bytes, tuple]]:
        del self.port.sent[:]
        self.protocol.timed_datagram_received(data, source, waited)
        return list(self.port.sent)


#: What one transaction of each scenario is.
UNITS = {"register": "REGISTER", "calls": "call (11 messages)",
         "refusals": "refused INVITE and its ACK"}

#: Distinct AORs, cycled (as bench/sip_proxy.py's users.csv; the registrar's default
#: sip_max_bindings is 10,000): past the first cycle a REGISTER refreshes a binding.
USERS = 9000


def run_register(server: Server, count: int, offset: int) -> None:
    for n in range(offset, offset + count):
        [(response, _)] = server.receive(register(n, f"user{1 + n % USERS}"), REG)
        assert response.startswith(b"SIP/2.0 200"), response[:80]
        if n % 100 == 0:
            server.clock.advance(0.1)


def run_calls(server: Server, count: int, offset: int, callee: str) -> None:
    for n in range(offset, offset + count):
        out = server.receive(invite(n, callee), UAC)
        forwarded = next(d for d, a in out if a == UAS)
        to_tag = f"s{n}"
        out = server.receive(answer(forwarded, "200 OK", to_tag, SDP), UAS)
        ok = next(d for d, a in out if a == UAC and d.startswith(b"SIP/2.0 200"))
        routes = [m.decode().split(": ", 1)[1] for m in
                  re.findall(rb"^Record-Route: [^\r]*", ok, re.M)][::-1]
        out = server.receive(in_dialog("ACK", n, 1, to_tag, routes, callee), UAC)
        assert any(a == UAS for _, a in out), "ACK not forwarded"
        out = server.receive(in_dialog("BYE", n, 2, to_tag, routes, callee), UAC)
        bye = next(d for d, a in out if a == UAS)
        out = server.receive(answer(bye, "200 OK", None), UAS)
        assert any(a == UAC and d.startswith(b"SIP/2.0 200") for d, a in out), "BYE 200"
        if n % 100 == 0:
            server.clock.advance(0.1)


def run_refusals(server: Server, count: int, offset: int, callee: str) -> None:
    for n in range(offset, offset + count):
        [(refusal, _)] = server.receive(invite(n, callee), UAC, waited=1.0)
        assert refusal.startswith(b"SIP/2.0 503"), refusal[:80]
        to = re.search(rb"^To: ([^\r]*)", refusal, re.M).group(1).decode()
        ack = (f"ACK sip:{callee}@{SERVER[0]}:{SERVER[1]} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {UAC[0]}:{UAC[1]};branch=z9hG4bK-i{n}\r\n"
               f"From: sipp <sip:sipp@{UAC[0]}:{UAC[1]}>;tag=c{n}\r\nTo: {to}\r\n"
               f"Call-ID: call-{n}@{UAC[0]}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
               f"Content-Length: 0\r\n\r\n").encode()
        assert not server.receive(ack, UAC, waited=1.0)
        if n % 100 == 0:
            server.clock.advance(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="register,calls")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steady", type=int, metavar="CALLS", default=0,
                        help="first run CALLS calls (at the scripts' pace of 1,000/s of clock "
                             "time, 40,000 = past every 32 s Timer J/L/M) so that the live "
                             "transactions are those of a server at that rate (~100,000), "
                             "with sip_max_transactions=0")
    parser.add_argument("--default-gc", action="store_true",
                        help="keep CPython's collector settings (the server tunes them)")
    parser.add_argument("--profile", type=int, metavar="LINES", default=0,
                        help="print the top LINES of a cProfile of one more run")
    args = parser.parse_args()
    devnull = open(os.devnull, "w")
    globalLogBeginner.beginLoggingTo([textFileLogObserver(devnull)], redirectStandardIO=False,
                                     discardBuffer=True)
    print(f"command: {' '.join([os.path.relpath(sys.executable, ROOT)] + sys.argv)}")
    for scenario in args.scenario.split(","):
        server = Server(("sip_max_queue_delay_ms=200\n" if scenario == "refusals" else "")
                        + ("sip_max_transactions=0\n" if args.steady else ""))
        if not args.default_gc:
            GarbageCollectorTuning().startService()  # as the server does once built
        callee = "bob"
        server.receive(register(0, callee, UAS), UAS)
        offset, best = 1, float("inf")

        def one_run():
            nonlocal offset
            if scenario == "register":
                run_register(server, args.count, offset)
            elif scenario == "refusals":
                run_refusals(server, args.count, offset, callee)
            else:
                run_calls(server, args.count, offset, callee)
            offset += args.count

        one_run()  # warm-up
        if args.steady:
            run_calls(server, args.steady, offset, callee)
            offset += args.steady
            print(f"  steady state: {len(server.stack.layer)} live transactions, "
                  f"{len(gc.get_objects())} objects tracked by the collector", flush=True)
        for _ in range(args.repeat):
            started = time.process_time()
            one_run()
            best = min(best, (time.process_time() - started) / args.count)
        print(f"{scenario}: {best * 1e6:.0f} us CPU per "
              f"{UNITS[scenario]} "
              f"(best of {args.repeat} x {args.count})", flush=True)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(one_run)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
