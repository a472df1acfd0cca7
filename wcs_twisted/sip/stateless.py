# -*- test-case-name: tests.sip.test_stateless -*-
"""
Stateless refusals written from a request's raw bytes, before (and instead of) its full parse.

A server that refuses new work while overloaded (503, RFC 3261 21.5.4) must refuse for much
less than serving costs, or refusing is what saturates it.  A response needs only the start
line and the Via, From, To, Call-ID and CSeq lines (RFC 3261 8.2.6.2), which are copied here as
received.  The To tag added is derived from the request's branch with a keyed hash, so the ACK
that answers the 503 (same branch and To tag, RFC 3261 17.1.1.3) is recognised from its bytes
alone and absorbed, with no state kept per refusal.

Anything unusual (folded lines, compact forms mixed with repeats, a missing or repeated header,
a branch without the magic cookie, a To that already has a tag) gives None, and the caller takes
the full path, which answers the same request the same way after parsing it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Dict, List, NamedTuple, Optional

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.header_fields import split_list
from wcs_twisted.sip.headers import Via
from wcs_twisted.sip.message import MAGIC_COOKIE
from wcs_twisted.sip.transaction import TransactionKey

__all__ = ["RawRequest", "read_request", "StatelessAnswers"]

#: The header names a stateless response copies, long and compact (RFC 3261 7.3.3).
_COPIED = {
    b"via": b"via", b"v": b"via",
    b"from": b"from", b"f": b"from",
    b"to": b"to", b"t": b"to",
    b"call-id": b"call-id", b"i": b"call-id",
    b"cseq": b"cseq",
}

#: A tag parameter in a To value (conservative: one inside a URI's <...> also counts, which
#: only sends that request down the full path).
_TAG = re.compile(rb";[ \t]*tag[ \t]*=[ \t]*([^ \t;,>]+)", re.I)

#: Longest head read here; a longer one takes the full path.
MAX_HEAD = 8192


class RawRequest(NamedTuple):
    """
    What a stateless answer needs from a request, as received.

    @ivar method: the request method (bytes, as written).
    @ivar lines: the Via lines (all, in order), then the From, To, Call-ID and CSeq lines.
    @ivar branch: the top Via's branch (with the magic cookie).
    @ivar sent_by: the top Via's sent-by, lower case, as the transaction key spells it.
    @ivar to_tag: the To tag, or None.
    """

    method: bytes
    lines: List[bytes]
    branch: str
    sent_by: str
    to_tag: Optional[bytes]

    @property
    def server_key(self) -> TransactionKey:
        """
        The key of the server transaction this request belongs to (an ACK: its INVITE's), as
        L{wcs_twisted.sip.transaction.server_key} gives it for an RFC 3261 branch.
        """
        method = self.method.decode("ascii", "replace")
        return TransactionKey(True, self.branch, self.sent_by,
                              "INVITE" if method == "ACK" else method)


def read_request(data: bytes) -> Optional[RawRequest]:
    """
    Read the start line and the five copied headers of the request C{data}; None when it is a
    response or anything a full parse should judge.
    """
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
    if end <= 0 or data.startswith(b"SIP/"):
        return None
    lines = data[:end].split(b"\r\n")
    method, space, _ = lines[0].partition(b" ")
    if not space or not method:
        return None
    found: Dict[bytes, List[bytes]] = {}
    for line in lines[1:]:
        if not line or line[0] in b" \t":
            return None  # folded: the full parser unfolds
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        key = _COPIED.get(name.rstrip(b" \t").lower())
        if key is not None:
            found.setdefault(key, []).append(line)
    vias = found.get(b"via")
    singles = [found.get(key) for key in (b"from", b"to", b"call-id", b"cseq")]
    if not vias or any(single is None or len(single) != 1 for single in singles):
        return None
    cseq = singles[3][0].partition(b":")[2].split()
    if len(cseq) != 2 or cseq[1] != method:
        return None
    try:
        top = split_list(vias[0].partition(b":")[2].decode("utf-8", "surrogateescape"))[0]
        via = Via.parse(top)
    except (RemoteProtocolError, IndexError):
        return None
    branch = via.branch
    if not branch or not branch.startswith(MAGIC_COOKIE) or len(branch) > 256:
        return None
    host = via.host.lower()
    sent_by = host if via.port is None else f"{host}:{via.port}"
    tag = _TAG.search(singles[1][0], singles[1][0].index(b":"))
    return RawRequest(method, vias + [single[0] for single in singles], branch, sent_by,
                      tag.group(1) if tag else None)


class StatelessAnswers:
    """
    Builds stateless 503s from raw requests and recognises the ACKs that answer them.

    @param secret: key of the To tags (random per process: a peer cannot forge an ACK for
        another's refusal, and a tag says nothing of the branch it came from).
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def tag_for(self, branch: str) -> bytes:
        """
        The To tag of a stateless answer to the request with C{branch}.
        """
        return hashlib.blake2s(branch.encode("utf-8", "surrogateescape"), key=self._secret,
                               digest_size=8).hexdigest().encode()

    def unavailable(self, request: RawRequest, retry_after: int) -> bytes:
        """
        The 503 with Retry-After for C{request} (which has no To tag).
        """
        lines = list(request.lines)
        to_index = len(lines) - 3  # Vias..., From, To, Call-ID, CSeq
        lines[to_index] = lines[to_index] + b";tag=" + self.tag_for(request.branch)
        return (b"SIP/2.0 503 Service Unavailable\r\n" + b"\r\n".join(lines)
                + b"\r\nRetry-After: %d\r\nContent-Length: 0\r\n\r\n" % retry_after)

    def answers(self, ack: RawRequest) -> bool:
        """
        Whether C{ack} acknowledges one of our stateless answers (its To tag is ours).
        """
        return ack.to_tag is not None and ack.to_tag == self.tag_for(ack.branch)
