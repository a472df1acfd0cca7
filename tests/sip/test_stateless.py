"""
Tests for L{wcs_twisted.sip.stateless}: reading what a stateless refusal needs from a request's
raw bytes, the 503 written from them, and recognising the ACK that answers it.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.stateless import StatelessAnswers, read_request
from wcs_twisted.sip.transaction import server_key

INVITE = (
    b"INVITE sip:bob@10.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKraw1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bKfar, SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKx\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice\" <sip:alice@10.0.0.9>;tag=f1\r\n"
    b"To: <sip:bob@10.0.0.1>\r\n"
    b"Call-ID: raw-1@test\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.9:5070>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)


def ack_for(response: bytes, request: bytes = INVITE) -> bytes:
    """
    The ACK a client sends for a non-2xx final response (RFC 3261 17.1.1.3): the INVITE's top
    Via, From, Call-ID and CSeq number, the response's To.
    """
    parsed = parse_message(response)
    invite = parse_message(request)
    return (
        f"ACK {invite.uri} SIP/2.0\r\n"
        f"Via: {invite.headers.get('Via')}\r\n"
        f"From: {invite.headers.get('From')}\r\n"
        f"To: {parsed.headers.get('To')}\r\n"
        f"Call-ID: {invite.call_id}\r\n"
        f"CSeq: {invite.cseq.number} ACK\r\n"
        "Content-Length: 0\r\n\r\n").encode()


class ReadRequestTests(SynchronousTestCase):
    """
    L{read_request} takes what a stateless answer needs, or gives up.
    """

    def test_fields(self):
        """
        The method, every Via line then From, To, Call-ID and CSeq as written, the top branch
        and sent-by, and no To tag; its server key is the one the full parse gives.
        """
        raw = read_request(INVITE)
        self.assertEqual(raw.method, b"INVITE")
        self.assertEqual([line.split(b":")[0] for line in raw.lines],
                         [b"Via", b"Via", b"From", b"To", b"Call-ID", b"CSeq"])
        self.assertEqual(raw.branch, "z9hG4bKraw1")
        self.assertIsNone(raw.to_tag)
        self.assertEqual(raw.server_key, server_key(parse_message(INVITE)))

    def test_compact_forms(self):
        """
        Compact header names (v, f, t, i) are read as their long forms.
        """
        data = (b"REGISTER sip:10.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKc\r\n"
                b"f: <sip:a@10.0.0.1>;tag=1\r\nt: <sip:a@10.0.0.1>;TAG = x7\r\ni: c@h\r\n"
                b"CSeq: 2 REGISTER\r\nl: 0\r\n\r\n")
        raw = read_request(data)
        self.assertEqual(raw.to_tag, b"x7")
        self.assertEqual(raw.server_key, server_key(parse_message(data)))

    def test_left_to_the_full_parse(self):
        """
        A response, a folded line, a missing or repeated single header, a CSeq of another
        method, a branch without the magic cookie, a malformed Via or no end of the header
        section: None.
        """
        cases = [
            b"SIP/2.0 200 OK\r\n" + INVITE.split(b"\r\n", 1)[1],
            INVITE.replace(b"Call-ID: raw-1@test\r\n", b"Call-ID:\r\n raw-1@test\r\n"),
            INVITE.replace(b"Call-ID: raw-1@test\r\n", b""),
            INVITE.replace(b"To: <sip:bob@10.0.0.1>\r\n",
                           b"To: <sip:bob@10.0.0.1>\r\nt: <sip:eve@10.0.0.1>\r\n"),
            INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
            INVITE.replace(b"branch=z9hG4bKraw1", b"branch=old1"),
            INVITE.replace(b"SIP/2.0/UDP 10.0.0.9:5070", b"SIP/2.0/UDP 10.0.0.9:99999"),
            INVITE.split(b"\r\n\r\n")[0],
        ]
        for data in cases:
            self.assertIsNone(read_request(data), data[:60])


class StatelessAnswersTests(SynchronousTestCase):
    """
    The 503 written from raw lines, and its ACK.
    """

    def setUp(self):
        self.answers = StatelessAnswers(b"k" * 16)

    def test_unavailable(self):
        """
        The 503 parses as the full path would write it: every Via in order, From, Call-ID,
        CSeq copied, To with our tag, Retry-After, no body.
        """
        response = parse_message(self.answers.unavailable(read_request(INVITE), 7))
        request = parse_message(INVITE)
        self.assertEqual((response.status_code, response.reason), (503, "Service Unavailable"))
        self.assertEqual(response.headers.get_all("Via"), request.headers.get_all("Via"))
        self.assertEqual((response.from_, response.call_id, response.cseq),
                         (request.from_, request.call_id, request.cseq))
        self.assertEqual(response.to.uri, request.to.uri)
        self.assertEqual(response.to.tag, self.answers.tag_for("z9hG4bKraw1").decode())
        self.assertEqual(response.headers.get("Retry-After"), "7")
        self.assertEqual(response.body, b"")

    def test_ack_of_our_refusal(self):
        """
        The ACK of our 503 is recognised; an ACK with another tag, or of a refusal under
        another secret (another process), is not.
        """
        refusal = self.answers.unavailable(read_request(INVITE), 5)
        self.assertTrue(self.answers.answers(read_request(ack_for(refusal))))
        forged = ack_for(refusal).replace(b";tag=", b";tag=0")
        self.assertFalse(self.answers.answers(read_request(forged)))
        other = StatelessAnswers(b"j" * 16)
        self.assertFalse(other.answers(read_request(ack_for(refusal))))
        self.assertFalse(self.answers.answers(read_request(INVITE)))

    def test_tags_differ_per_branch(self):
        """
        Two requests get two tags: a tag says nothing of another refusal.
        """
        self.assertNotEqual(self.answers.tag_for("z9hG4bKa"), self.answers.tag_for("z9hG4bKb"))
        self.assertEqual(len(self.answers.tag_for("z9hG4bKa")), 16)
