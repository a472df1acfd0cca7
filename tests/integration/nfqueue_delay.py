"""
netem's delay and reordering for kernels without sch_netem, in the kernel's own forwarding path:
iptables hands each packet of a router namespace to NFQUEUE, and this process (run inside that
namespace) gives the verdict ACCEPT only after a random delay, so later packets overtake earlier
ones exactly as on a jittery link.  It speaks nfnetlink_queue (NETLINK_NETFILTER) with the socket
module; the packets themselves never reach user space (copy mode META: ids only).

    ip netns exec ROUTER python nfqueue_delay.py QUEUE DELAY_MS JITTER_MS SEED FIGURES_PATH

Each packet waits uniform(DELAY - JITTER, DELAY + JITTER) ms.  On SIGTERM it unbinds, accepts
what it still holds and writes its figures (packets held, reordered, delay range) as JSON to
FIGURES_PATH; it writes "ready" to stdout once bound, so the caller knows rules can go in.
"""

from __future__ import annotations

import heapq
import json
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2

_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")


def _attribute(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


class Queue:
    """
    One bound nfnetlink queue: L{packets} yields packet ids, L{accept} releases one.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.socket.bind((0, 0))
        self._seq = 0
        command = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)
        self._request(NFQNL_MSG_CONFIG, _attribute(NFQA_CFG_CMD, command), ack=True)
        params = struct.pack("!IB", 0, NFQNL_COPY_META)
        self._request(NFQNL_MSG_CONFIG, _attribute(NFQA_CFG_PARAMS, params), ack=True)

    def _request(self, message: int, attributes: bytes, ack: bool = False) -> None:
        self._seq += 1
        body = _NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(self.number)) + attributes
        flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
        header = _NLMSG.pack(_NLMSG.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | message,
                             flags, self._seq, 0)
        self.socket.send(header + body)
        if ack:
            reply = self.socket.recv(65536)
            _, kind, _, _, _ = _NLMSG.unpack_from(reply)
            error = struct.unpack_from("=i", reply, _NLMSG.size)[0]
            if kind == NLMSG_ERROR and error:
                raise OSError(-error, f"nfqueue config message {message} refused")

    def packets(self) -> list[int]:
        """
        The ids of the packets queued now (non-blocking; empty when none).
        """
        ids = []
        try:
            data = self.socket.recv(1 << 20, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return ids
        except OSError:  # ENOBUFS: the kernel dropped queue messages; carry on
            return ids
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
            if length < _NLMSG.size:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                position = offset + _NLMSG.size + _NFGEN.size
                while position + 4 <= offset + length:
                    size, attr = struct.unpack_from("=HH", data, position)
                    if size < 4:
                        break
                    if attr & 0x3FFF == NFQA_PACKET_HDR:
                        ids.append(struct.unpack_from("!I", data, position + 4)[0])
                    position += (size + 3) & ~3
            offset += (length + 3) & ~3
        return ids

    def accept(self, packet_id: int) -> None:
        self._request(NFQNL_MSG_VERDICT,
                      _attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))

    def close(self) -> None:
        command = struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_INET)
        try:
            self._request(NFQNL_MSG_CONFIG, _attribute(NFQA_CFG_CMD, command))
        finally:
            self.socket.close()


def main(argv: list[str]) -> None:
    number, delay_ms, jitter_ms, seed, figures_path = argv
    low = max(0.0, (float(delay_ms) - float(jitter_ms)) / 1000)
    high = (float(delay_ms) + float(jitter_ms)) / 1000
    rng = random.Random(int(seed))
    queue = Queue(int(number))
    held: list[tuple[float, int, int]] = []  # (due, arrival order, packet id)
    figures = {"held": 0, "reordered": 0, "min_ms": None, "max_ms": None}
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    arrivals = 0
    released_order = -1
    print("ready", flush=True)
    while running[0]:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        try:
            readable, _, _ = select.select([queue.socket], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        if readable:
            for packet_id in queue.packets():
                wait = rng.uniform(low, high)
                heapq.heappush(held, (now + wait, arrivals, packet_id))
                arrivals += 1
                figures["held"] += 1
                ms = wait * 1000
                figures["min_ms"] = ms if figures["min_ms"] is None else min(figures["min_ms"], ms)
                figures["max_ms"] = ms if figures["max_ms"] is None else max(figures["max_ms"], ms)
        while held and held[0][0] <= now:
            _, order, packet_id = heapq.heappop(held)
            if order < released_order:
                figures["reordered"] += 1
            released_order = max(released_order, order)
            queue.accept(packet_id)
    while held:
        queue.accept(heapq.heappop(held)[2])
    queue.close()
    with open(figures_path, "w") as handle:
        json.dump(figures, handle)


if __name__ == "__main__":
    main(sys.argv[1:])
