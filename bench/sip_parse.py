"""
Benchmark: parse and serialise a typical ~700-byte INVITE.

Prints microseconds per operation for parse_message alone, serialize alone,
a parse + serialize round trip, and the same with the typed fields a proxy
reads (Via, CSeq, From, To, Call-ID, Contact).  Every iteration parses a
different message (fresh branch, tag and Call-ID), so the per-value caches of
the header parsers do not flatter the figures; a retransmission, which hits
them, is measured separately.  Not a test: there are no timing assertions
anywhere in the suite (performance.md budgets "well under 100 us" for this
message).

    .venv/bin/python bench/sip_parse.py [iterations]
"""

from __future__ import annotations

import sys
import time
import timeit

from wcs_twisted.sip.message import parse_message

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK%(n)08d;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=%(n)08d\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: %(n)08d@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: %(length)d\r\n"
    b"\r\n"
) + SDP


def invite(n: int) -> bytes:
    return INVITE % {b"n": n, b"length": len(SDP)}


def main(iterations: int = 20000) -> None:
    first = invite(0)
    message = parse_message(first)
    assert parse_message(bytes(message)) == message
    print(f"message size: {len(first)} bytes, {iterations} distinct messages per run")

    def measure(label, function):
        # Best of 5 runs over fresh messages, to read through scheduler noise.
        runs = []
        for run in range(5):
            batch = [invite(run * iterations + i) for i in range(iterations)]
            started = time.perf_counter()
            for data in batch:
                function(data)
            runs.append(time.perf_counter() - started)
        print(f"{label:>30}: {min(runs) / iterations * 1e6:7.2f} us/op")

    def typed(data):
        parsed = parse_message(data)
        parsed.vias, parsed.cseq, parsed.from_, parsed.to, parsed.call_id, parsed.contacts
        return parsed.serialize()

    measure("parse", parse_message)
    measure("parse + serialize", lambda data: parse_message(data).serialize())
    measure("parse + fields + serialize", typed)
    serialize_runs = timeit.repeat(message.serialize, number=iterations, repeat=5)
    print(f"{'serialize':>30}: {min(serialize_runs) / iterations * 1e6:7.2f} us/op")
    retransmit_runs = timeit.repeat(lambda: typed(first), number=iterations, repeat=5)
    print(f"{'retransmission (cached)':>30}: {min(retransmit_runs) / iterations * 1e6:7.2f} us/op")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
