"""
What SDES-SRTP adds per packet to the SIP leg (docs/media.md, "SRTP on the SIP leg").

One L{RTPSession} on a fake UDP reactor (no sockets, so only Python and libsrtp are
measured) receives 50 000 PCMU packets from its latched peer and relays 50 000 out, first
as plain RTP, then with an AES_CM_128_HMAC_SHA1_80 context; prints microseconds per packet
each way.  Run: .venv/bin/python -m bench.srtp_leg
"""

import random
import time

from tests.media.fakes import FakeUDPReactor
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.rtp import RTPSession
from wcs_twisted.media.rtp_packet import build_rtp
from wcs_twisted.media.sdes import SRTPContext

PACKETS = 50000
SUITE = "AES_CM_128_HMAC_SHA1_80"
PEER = ("127.0.0.1", 4000)


def measure(srtp: bool) -> tuple[float, float]:
    """
    Microseconds per received and per sent packet.
    """
    reactor = FakeUDPReactor(sockets=True)
    leg = RTPSession(reactor, "127.0.0.1", PortPool(31000, 31009), rng=random.Random(1))
    leg.start()
    leg.set_remote(*PEER)
    leg.packet_received = lambda data: None
    incoming = [build_rtp(0, i & 0xFFFF, i * 160, 0xBEEF, b"\xff" * 160)
                for i in range(1, PACKETS + 1)]
    if srtp:
        leg.set_srtp(SRTPContext(SUITE, bytes(30), bytes(range(30))))
        peer = SRTPContext(SUITE, bytes(range(30)), bytes(30))
        incoming = [peer.tx.protect(packet) for packet in incoming]
    start = time.perf_counter()
    for packet in incoming:
        leg.datagramReceived(packet, PEER)
    received = time.perf_counter() - start
    outgoing = [bytearray(build_rtp(0, i & 0xFFFF, i * 160, 0xAAAA, b"\xff" * 160))
                for i in range(PACKETS)]
    start = time.perf_counter()
    for buf in outgoing:
        leg.send_packet(buf)
    sent = time.perf_counter() - start
    leg.stop()
    return received / PACKETS * 1e6, sent / PACKETS * 1e6


def main() -> None:
    for srtp in (False, True):
        received, sent = measure(srtp)
        print(f"{'srtp ' if srtp else 'plain'}  receive {received:.2f} us  send {sent:.2f} us")


if __name__ == "__main__":
    main()
