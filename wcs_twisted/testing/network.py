# -*- test-case-name: tests.transport.test_stack -*-
"""
An in-memory datagram network joining SIP stacks on one Clock, with optional loss.

Test-only (production code never imports wcs_twisted.testing).  Delivery is scheduled with
C{callLater(0)}, so a test moves messages with C{clock.advance(0)} (or L{MemoryNetwork.run}) and
nothing re-enters a stack while it is sending.
"""

from __future__ import annotations

import random as _random
from typing import Callable

from twisted.internet.task import Clock

from wcs_twisted.sip.timers import TimerValues
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.trace import MessageTrace
from wcs_twisted.ua.core import UserAgentCore


class MemorySender:
    """
    The MessageSender of one stack attached to a L{MemoryNetwork}.
    """

    def __init__(self, network: "MemoryNetwork", local: SIPAddress) -> None:
        self.network = network
        self.local = local
        self.sent: list[tuple[bytes, SIPAddress]] = []

    def send(self, data: bytes, address: SIPAddress) -> None:
        self.sent.append((data, address))
        self.network.deliver(self.local, data, address)


class MemoryNetwork:
    """
    Hosts (transport, host, port) -> stack; C{drop} decides per datagram whether it is lost.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.stacks: dict[SIPAddress, SIPStack] = {}
        self.drop: Callable[[bytes, SIPAddress, SIPAddress], bool] = lambda data, src, dst: False
        self.delivered: list[tuple[SIPAddress, SIPAddress, bytes]] = []

    def attach(self, stack: SIPStack, host: str, port: int, transport: str = "udp") -> SIPAddress:
        local = SIPAddress(transport, host, port)
        stack.add_transport(transport, MemorySender(self, local), port)
        self.stacks[local] = stack
        return local

    def deliver(self, source: SIPAddress, data: bytes, destination: SIPAddress) -> None:
        if self.drop(data, source, destination):
            return
        target = self.stacks.get(destination)
        if target is None:
            return
        self.delivered.append((source, destination, data))
        self.clock.callLater(0, target.data_received, data, source)

    def run(self, rounds: int = 50) -> None:
        """
        Deliver everything in flight (messages that cause messages included), without time passing.
        """
        for _ in range(rounds):
            if not any(call.getTime() <= self.clock.seconds() for call in self.clock.getDelayedCalls()):
                return
            self.clock.advance(0)


def build_memory_stack(network: MemoryNetwork, host: str, port: int = 5060, seed: int = 0,
                       timers: TimerValues | None = None,
                       source_rate: float = 0.0) -> tuple[SIPStack, UserAgentCore]:
    """
    A SIP stack + UA core attached to C{network} at udp:host:port, deterministic randomness.

    @param source_rate: the stack's per-source request rate limit; off by default, since the
        hosts of a memory network are the test's own parties (tests of the limit set it).
    """
    rng = _random.Random(seed)
    layer = TransactionLayer(timers) if timers is not None else TransactionLayer()
    stack = SIPStack(layer, network.clock, rng, advertised_host=host,
                     trace=MessageTrace(log_messages=False), source_rate=source_rate)
    network.attach(stack, host, port)
    core = UserAgentCore(stack, rng, layer.timers)
    stack.attach(core)
    return stack, core
