"""
Tests for L{wcs_twisted.sip.message} (and the errors it raises).
"""

import os
import random

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError, SIPError
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.headers import CSeq, NameAddress, Via
from wcs_twisted.sip.message import (
    MAGIC_COOKIE,
    REASON_PHRASES,
    Request,
    Response,
    error_response,
    initial_cseq,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    unsupported_options,
    validate_request,
)
from wcs_twisted.sip.uri import AbsoluteURI, SIPURI

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def invite(body=SDP, extra=b"", content_length=True):
    """
    A typical INVITE (RFC 3665 3.1 style), optionally without Content-Length.
    """
    length = b"Content-Length: %d\r\n" % len(body) if content_length else b""
    return (
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n"
        b"Content-Type: application/sdp\r\n" + extra + length + b"\r\n" + body
    )


RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:bob@client.biloxi.example.com>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def options(*lines, request_line=b"OPTIONS sip:carol@chicago.example.com SIP/2.0"):
    """
    An OPTIONS request with the given extra header lines and no body.
    """
    return (
        request_line + b"\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: <sip:carol@chicago.example.com>\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 63104 OPTIONS\r\n"
        + b"".join(line + b"\r\n" for line in lines)
        + b"Content-Length: 0\r\n\r\n"
    )


class ErrorsTests(SynchronousTestCase):
    """
    The error classes say whose fault a failure is.
    """

    def test_hierarchy_and_hint(self):
        """
        Both errors are SIPErrors; the remote one carries a status hint defaulting to 400.
        """
        error = RemoteProtocolError("bad")
        self.assertIsInstance(error, SIPError)
        self.assertIsInstance(LocalProtocolError("oops"), SIPError)
        self.assertEqual(error.status_hint, 400)
        self.assertEqual(RemoteProtocolError("x", status_hint=420).status_hint, 420)
        self.assertIsNone(error.headers)
        self.assertIsNone(error.request_method)


class ParseRequestTests(SynchronousTestCase):
    """
    Parsing requests from datagrams (RFC 3261 7.1, 7.3, 18.3).
    """

    def test_invite(self):
        """
        Start line, headers and body of an INVITE are parsed and typed fields read (RFC 3261 7.1).
        """
        request = parse_message(invite())
        self.assertIsInstance(request, Request)
        self.assertEqual(request.method, "INVITE")
        self.assertEqual(request.uri, SIPURI.parse("sip:bob@biloxi.example.com"))
        self.assertEqual(request.version, "SIP/2.0")
        self.assertEqual(request.body, SDP)
        self.assertEqual(request.call_id, "3848276298220188511@atlanta.example.com")
        self.assertEqual(request.cseq, CSeq(1, "INVITE"))
        self.assertEqual(request.top_via.branch, "z9hG4bK74bf9")
        self.assertEqual(len(request.vias), 1)
        self.assertEqual(request.from_.tag, "9fxced76sl")
        self.assertEqual(request.from_.display_name, "Alice")
        self.assertIsNone(request.to.tag)
        self.assertEqual(request.contacts[0].uri.transport, "udp")
        self.assertEqual(request.content_type, "application/sdp")
        self.assertEqual(request.media_type, "application/sdp")
        self.assertEqual(request.max_forwards, 70)
        self.assertEqual(request.routes, [])
        self.assertEqual(request.record_routes, [])

    def test_leading_crlf_ignored(self):
        """
        CRLFs before the start line are skipped (RFC 3261 7.5).
        """
        self.assertEqual(parse_message(b"\r\n\r\n" + invite()), parse_message(invite()))

    def test_line_folding(self):
        """
        A header continued on lines starting with whitespace is one value, folds as single SPs (RFC
        3261 7.3.1).
        """
        request = parse_message(
            options(b"Subject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!")
        )
        self.assertEqual(
            request.headers.get("Subject"), "I know you're there, pick up the phone and talk to me!"
        )

    def test_folded_via_and_cseq(self):
        """
        Folding inside structured values such as Via and CSeq is allowed (RFC 4475 3.1.1.1).
        """
        data = (
            options()
            .replace(b"CSeq: 63104 OPTIONS", b"CSeq: 63104\r\n  OPTIONS")
            .replace(b"Via: SIP/2.0/UDP", b"Via: SIP  /   2.0\r\n /UDP\r\n   ")
        )
        request = parse_message(data)
        self.assertEqual(request.cseq, CSeq(63104, "OPTIONS"))
        self.assertEqual(request.top_via.sent_by, ("pc33.atlanta.example.com", None))

    def test_compact_and_mixed_case_names(self):
        """
        Compact forms and any name case are understood, and kept as written (RFC 3261 7.3.3).
        """
        data = (
            b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nt: <sip:a@b>\r\n"
            b"f: <sip:c@d>;tag=1\r\ni: cid\r\nCSEQ: 1 OPTIONS\r\nl: 0\r\n\r\n"
        )
        request = parse_message(data)
        self.assertEqual(request.call_id, "cid")
        self.assertEqual(request.from_.tag, "1")
        self.assertEqual(
            [name for name, _ in request.headers.items()], ["v", "t", "f", "i", "CSEQ", "l"]
        )
        self.assertIsNone(validate_request(request))

    def test_multiple_values_in_one_and_several_headers(self):
        """
        Values split across comma lists and repeated lines combine in order (RFC 3261 7.3.1).
        """
        data = options(
            b"Via: SIP/2.0/TCP b.example.com;branch=z9hG4bK2, SIP/2.0/UDP c.example.com;branch=z9hG4bK3"
        )
        request = parse_message(data)
        self.assertEqual(
            [via.host for via in request.vias],
            ["pc33.atlanta.example.com", "b.example.com", "c.example.com"],
        )

    def test_no_content_length_on_udp(self):
        """
        Without Content-Length the body is the rest of the datagram (RFC 3261 18.3, RFC 4475 3.4.1).
        """
        request = parse_message(invite(content_length=False))
        self.assertEqual(request.body, SDP)
        self.assertNotIn("Content-Length", request.headers)

    def test_extra_octets_discarded(self):
        """
        Octets past Content-Length are discarded (RFC 3261 18.3, RFC 4475 3.1.1.8).
        """
        request = parse_message(invite() + b"garbage")
        self.assertEqual(request.body, SDP)

    def test_missing_final_empty_line(self):
        """
        A datagram ending right after its last header line is read as having no body.
        """
        request = parse_message(options()[:-2])
        self.assertEqual(request.body, b"")
        self.assertEqual(request.method, "OPTIONS")

    def test_header_value_with_any_octet(self):
        """
        Non-UTF-8 octets in header values survive parsing and serialising unchanged.
        """
        data = options(b"X-Binary: \xff\xfe ok \xd1\x80")
        request = parse_message(data)
        self.assertEqual(request.serialize(), data)

    def test_unknown_scheme_request_uri_parses(self):
        """
        A Request-URI with an unknown scheme parses as an AbsoluteURI (RFC 4475 3.3.2).
        """
        request = parse_message(options(request_line=b"OPTIONS urn:service:sos SIP/2.0"))
        self.assertEqual(request.uri, AbsoluteURI("urn", "service:sos"))
        self.assertEqual(validate_request(request), 416)


class ParseResponseTests(SynchronousTestCase):
    """
    Parsing responses (RFC 3261 7.2).
    """

    def test_ringing(self):
        """
        Status line, headers and typed fields of a response are parsed (RFC 3261 7.2).
        """
        response = parse_message(RINGING)
        self.assertIsInstance(response, Response)
        self.assertEqual((response.status_code, response.reason), (180, "Ringing"))
        self.assertTrue(response.is_provisional)
        self.assertFalse(response.is_success)
        self.assertEqual(response.to.tag, "8321234356")
        self.assertEqual(response.top_via.received, "192.0.2.101")
        self.assertEqual(response.body, b"")

    def test_reason_phrases(self):
        """
        Reason phrases may be empty, contain UTF-8, or be missing with their SP (RFC 3261 25.1, RFC
        4475 3.1.1.13).
        """
        for line, reason in [
            (b"SIP/2.0 200 OK", "OK"),
            (b"SIP/2.0 100 ", ""),
            (b"SIP/2.0 100", ""),
            (b"SIP/2.0 200 \xd0\xbe\xd0\xba \tfine", "\u043e\u043a \tfine"),
            (b"sip/2.0 486 Busy Here", "Busy Here"),
        ]:
            response = parse_message(RINGING.replace(b"SIP/2.0 180 Ringing", line, 1))
            self.assertEqual(response.reason, reason)
            self.assertEqual(response.version, "SIP/2.0")

    def test_bad_status_lines(self):
        """
        Malformed status lines are rejected; another SIP version gets the 505 hint (RFC 3261 8.2.4
        spirit).
        """
        for line, hint in [
            (b"SIP/2.0 4294967301 better not break the receiver", 400),
            (b"SIP/2.0 99 Too Low", 400),
            (b"SIP/2.0 700 Too High", 400),
            (b"SIP/2.0 20 OK", 400),
            (b"SIP/2.0  200 OK", 400),
            (b"SIP/2.0 200 O\x01K", 400),
            (b"SIP/3.0 200 OK", 505),
            (b"SIP/2.0x 200 OK", 400),
        ]:
            with self.assertRaises(RemoteProtocolError, msg=line) as caught:
                parse_message(RINGING.replace(b"SIP/2.0 180 Ringing", line, 1))
            self.assertEqual(caught.exception.status_hint, hint, line)
            self.assertIsNone(caught.exception.request_method)
            self.assertIsNone(error_response(caught.exception))


class MalformedMessageTests(SynchronousTestCase):
    """
    Bad input raises RemoteProtocolError with the status to answer.
    """

    def assertRejected(self, data, hint=400):
        with self.assertRaises(RemoteProtocolError) as caught:
            parse_message(data)
        self.assertEqual(caught.exception.status_hint, hint, data[:60])
        return caught.exception

    def test_bad_request_lines(self):
        """
        Extra or missing SP, LWS in the URI, <> around it and junk are 400 (RFC 4475 3.1.2.7-10).
        """
        for line in [
            b"INVITE  sip:a@b SIP/2.0",
            b"INVITE sip:a@b SIP/2.0 ",
            b"INVITE sip:a@b; lr SIP/2.0",
            b"INVITE <sip:a@b> SIP/2.0",
            b"INVITE sip:a@b",
            b"INVITE sip:a@b HTTP/1.1",
            b"INV(ITE sip:a@b SIP/2.0",
            b"",
        ]:
            self.assertRejected(options(request_line=line))

    def test_unsupported_version(self):
        """
        A request for another SIP version is answered 505 (RFC 3261 8.2.4 ... 21.5.17, RFC 4475
        3.1.2.16).
        """
        error = self.assertRejected(options(request_line=b"OPTIONS sip:a@b SIP/7.0"), 505)
        self.assertEqual(error.request_method, "OPTIONS")
        response = error_response(error, to_tag="t1")
        self.assertEqual(response.status_code, 505)
        self.assertEqual(response.to.tag, "t1")

    def test_content_length_errors(self):
        """
        A negative, non-numeric, oversized or conflicting Content-Length is 400 (RFC 4475 3.1.2.2,
        3.1.2.3, 3.3.9).
        """
        self.assertRejected(invite(extra=b"Content-Length: 9999\r\n", content_length=False))
        self.assertRejected(invite(extra=b"Content-Length: -5\r\n", content_length=False))
        self.assertRejected(invite(extra=b"Content-Length: five\r\n", content_length=False))
        self.assertRejected(invite(extra=b"Content-Length: 5\r\n"))
        self.assertRejected(invite(extra=b"l: " + b"9" * 5000 + b"\r\n", content_length=False))

    def test_identical_repeated_content_length_is_accepted(self):
        """
        Repeating the same Content-Length is not a framing conflict, only conflicting values are.
        """
        request = parse_message(invite(extra=b"Content-Length: %d\r\n" % len(SDP)))
        self.assertEqual(request.body, SDP)
        self.assertEqual(validate_request(request), 400)

    def test_header_section_errors(self):
        """
        Lines without a colon, bad names, bare CR/LF and a leading continuation are 400 (RFC 3261
        7.3).
        """
        self.assertRejected(options(b"Foobar roobar"))
        self.assertRejected(options(b"Bad Name: x"))
        self.assertRejected(options(b"X-A: a\nX-B: b"))
        self.assertRejected(options(b"X-A: a\rb"))
        self.assertRejected(b"OPTIONS sip:a@b SIP/2.0\r\n continued: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
        self.assertRejected(b"OPTIONS sip:a@b SIP/2.0")

    def test_bad_via_and_cseq(self):
        """
        Via and CSeq are checked at parse time since the transaction layer matches on them (RFC 3261
        17.2.3).
        """
        error = self.assertRejected(options(b"Via: SIP/2.0/UDP 192.0.2.15;;,;,,"))
        self.assertEqual(error.request_method, "OPTIONS")
        self.assertEqual(error.headers.get("Call-ID"), "a84b4c76e66710")
        self.assertRejected(options().replace(b"CSeq: 63104 OPTIONS", b"CSeq: 1x OPTIONS"))
        self.assertRejected(options().replace(b"CSeq: 63104", b"CSeq: 4294967296"))

    def test_oversized_datagram(self):
        """
        Messages beyond max_size are refused with 413 before any parsing.
        """
        self.assertRejected(options(b"X-Pad: " + b"a" * 70000), 413)
        with self.assertRaises(RemoteProtocolError) as caught:
            parse_message(options(), max_size=100)
        self.assertEqual(caught.exception.status_hint, 413)

    def test_pathological_inputs_complete(self):
        """
        Inputs shaped to trigger regex backtracking are rejected promptly (a blow-up would hang this
        test).
        """
        self.assertRejected(options(b"Via: SIP/2.0/UDP h" + b";a" * 20000 + b";"))
        self.assertRejected(options(request_line=b"OPTIONS sip:" + b"a" * 60000 + b"%"))
        self.assertRejected(options(b"X: y\r\n" + b" \r\n" * 20000 + b"Bad Line"))
        request = parse_message(
            options().replace(
                b"To: <sip:carol@chicago.example.com>", b'To: "' + b"\\a" * 20000 + b"<sip:c@d>"
            )
        )
        self.assertEqual(validate_request(request), 400)


class SerializeTests(SynchronousTestCase):
    """
    Writing messages to bytes.
    """

    def test_round_trip_is_exact_for_canonical_input(self):
        """
        A canonically written message serialises to the same bytes it was parsed from.
        """
        for data in [invite(), RINGING, options()]:
            self.assertEqual(parse_message(data).serialize(), data)
            self.assertEqual(bytes(parse_message(data)), data)

    def test_round_trip_is_structural(self):
        """
        parse(bytes(msg)) == msg, keeping header order and original spellings (folding and spacing
        normalised).
        """
        data = options(b"SUBJECT :  folded\r\n  subject", b"v : SIP/2.0/TCP x;branch=z9hG4bK9")
        message = parse_message(data)
        again = parse_message(message.serialize())
        self.assertEqual(again, message)
        self.assertEqual(
            [name for name, _ in again.headers.items()][-3:], ["SUBJECT", "v", "Content-Length"]
        )
        self.assertIn(b"SUBJECT: folded subject\r\n", message.serialize())

    def test_content_length_follows_body(self):
        """
        Content-Length is always written from the body, in place, or appended when absent (RFC 3261
        20.14).
        """
        request = parse_message(invite())
        request.body = b"v=0\r\n"
        self.assertIn(b"Content-Length: 5\r\n\r\nv=0\r\n", request.serialize())
        request = parse_message(invite(content_length=False))
        self.assertTrue(
            request.serialize().endswith(b"Content-Length: %d\r\n\r\n" % len(SDP) + SDP)
        )
        built = Request("OPTIONS", SIPURI.parse("sip:a@b"), Headers([("l", "99"), ("l", "3")]))
        self.assertEqual(built.serialize(), b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n")

    def test_build_response(self):
        """
        A response built in code serialises with its status line.
        """
        response = Response(486, "Busy Here", Headers([("Call-ID", "x")]), b"")
        self.assertEqual(
            response.serialize(),
            b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n",
        )


class CreateResponseTests(SynchronousTestCase):
    """
    Request.create_response (RFC 3261 8.2.6).
    """

    def test_copies_mandatory_headers(self):
        """
        Via (all, in order), From, To, Call-ID and CSeq are copied; nothing else (RFC 3261 8.2.6.2).
        """
        request = parse_message(
            invite(extra=b"Via: SIP/2.0/UDP second.example.com;branch=z9hG4bK2\r\n")
        )
        response = request.create_response(180)
        self.assertEqual(response.reason, "Ringing")
        self.assertEqual([via.host for via in response.vias], [via.host for via in request.vias])
        self.assertEqual(response.call_id, request.call_id)
        self.assertEqual(response.cseq, request.cseq)
        self.assertEqual(response.from_, request.from_)
        self.assertEqual(response.to, request.to)
        self.assertEqual(
            sorted({name for name, _ in response.headers.items()}),
            ["CSeq", "Call-ID", "Content-Length", "From", "To", "Via"],
        )
        self.assertEqual(response.body, b"")
        self.assertEqual(parse_message(bytes(response)), response)

    def test_to_tag(self):
        """
        to_tag is added to a To without tag and an existing tag is kept (RFC 3261 8.2.6.2).
        """
        request = parse_message(invite())
        self.assertEqual(request.create_response(200, to_tag="abc").to.tag, "abc")
        tagged = parse_message(
            invite().replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:b@c>;tag=old")
        )
        self.assertEqual(tagged.create_response(200, to_tag="new").to.tag, "old")

    def test_trying_copies_timestamp(self):
        """
        A 100 Trying copies Timestamp; other responses do not (RFC 3261 8.2.6.1).
        """
        request = parse_message(invite(extra=b"Timestamp: 54\r\n"))
        self.assertEqual(request.create_response(100).headers.get("Timestamp"), "54")
        self.assertNotIn("Timestamp", request.create_response(180).headers)

    def test_record_route_copy(self):
        """
        record_route=True copies Record-Route for dialog-creating responses (RFC 3261 12.1.1).
        """
        request = parse_message(invite(extra=b"Record-Route: <sip:p1.example.com;lr>\r\n"))
        self.assertEqual(len(request.create_response(200, record_route=True).record_routes), 1)
        self.assertEqual(request.create_response(200).record_routes, [])

    def test_reason_defaults(self):
        """
        The reason defaults to the registered phrase, then to the class name.
        """
        request = parse_message(invite())
        self.assertEqual(request.create_response(487).reason, REASON_PHRASES[487])
        self.assertEqual(request.create_response(499).reason, "Client Error")
        self.assertEqual(request.create_response(200, "Fine").reason, "Fine")

    def test_local_misuse(self):
        """
        Status codes out of range and answering an ACK are our own bugs (RFC 3261 17.1.1.3).
        """
        request = parse_message(invite())
        self.assertRaises(LocalProtocolError, request.create_response, 700)
        ack = parse_message(
            options(request_line=b"ACK sip:a@b SIP/2.0").replace(b"63104 OPTIONS", b"1 ACK")
        )
        self.assertRaises(LocalProtocolError, ack.create_response, 200)


class ValidateRequestTests(SynchronousTestCase):
    """
    validate_request applies RFC 3261 8.2 and 16.3 rules above the parser.
    """

    def test_valid(self):
        """
        A well-formed request needs no error response.
        """
        self.assertIsNone(validate_request(parse_message(invite())))
        self.assertIsNone(validate_request(parse_message(options())))

    def test_missing_mandatory_header(self):
        """
        Missing To, From, Call-ID, CSeq or Via is a 400 (RFC 3261 8.1.1).
        """
        for name in [b"To: ", b"From: ", b"Call-ID: ", b"CSeq: ", b"Via: "]:
            lines = [line for line in options().split(b"\r\n") if not line.startswith(name)]
            self.assertEqual(validate_request(parse_message(b"\r\n".join(lines))), 400, name)

    def test_malformed_call_id(self):
        """
        An empty or malformed Call-ID is a 400 (RFC 3261 25.1 callid).
        """
        for value in [b"Call-ID: ", b"Call-ID: a b", b"Call-ID: a@b@c"]:
            data = options().replace(b"Call-ID: a84b4c76e66710", value)
            self.assertEqual(validate_request(parse_message(data)), 400, value)

    def test_max_forwards(self):
        """
        Max-Forwards above 255 is 400; zero is fine for a UAS and 483 for a proxy (RFC 3261 16.3).
        """
        self.assertEqual(
            validate_request(
                parse_message(options().replace(b"Max-Forwards: 70", b"Max-Forwards: 256"))
            ),
            400,
        )
        self.assertEqual(
            validate_request(
                parse_message(options().replace(b"Max-Forwards: 70", b"Max-Forwards: x"))
            ),
            400,
        )
        zero = parse_message(options().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
        self.assertIsNone(validate_request(zero))
        self.assertEqual(validate_request(zero, for_proxy=True), 483)

    def test_require_and_proxy_require(self):
        """
        Unsupported Require options give 420 for a UAS, Proxy-Require ones for a proxy (RFC 3261
        8.2.2.3, 16.3).
        """
        request = parse_message(options(b"Require: 100rel, foo", b"Proxy-Require: bar"))
        self.assertIsNone(validate_request(request))
        self.assertEqual(validate_request(request, supported={"100rel"}), 420)
        self.assertEqual(unsupported_options(request, ["100REL"]), ["foo"])
        self.assertIsNone(validate_request(request, supported={"100rel", "foo"}))
        self.assertEqual(
            validate_request(request, supported={"100rel", "foo"}, for_proxy=True), 420
        )
        self.assertEqual(unsupported_options(request, [], for_proxy=True), ["bar"])

    def test_ack_ignores_require(self):
        """
        A UAS does not check Require on ACK or CANCEL (RFC 3261 8.2.2.3).
        """
        ack = parse_message(
            options(b"Require: foo", request_line=b"ACK sip:a@b SIP/2.0").replace(
                b"63104 OPTIONS", b"1 ACK"
            )
        )
        self.assertIsNone(validate_request(ack, supported=()))

    def test_unsupported_media_type(self):
        """
        With accept given, a body of another type is 415 (RFC 3261 8.2.3).
        """
        request = parse_message(invite())
        self.assertIsNone(validate_request(request, accept=["Application/SDP"]))
        self.assertEqual(validate_request(request, accept=["text/plain"]), 415)

    def test_body_without_content_type(self):
        """
        A body without Content-Type is a 400 (RFC 3261 7.4.1).
        """
        data = invite().replace(b"Content-Type: application/sdp\r\n", b"")
        self.assertEqual(validate_request(parse_message(data)), 400)

    def test_contact_wildcard(self):
        """
        Contact '*' is only valid alone in a REGISTER (RFC 3261 10.2.2).
        """
        register = options(
            b"Contact: *", b"Expires: 0", request_line=b"REGISTER sip:chicago.example.com SIP/2.0"
        )
        register = register.replace(b"63104 OPTIONS", b"1 REGISTER")
        self.assertIsNone(validate_request(parse_message(register)))
        self.assertEqual(validate_request(parse_message(options(b"Contact: *"))), 400)
        self.assertEqual(
            validate_request(
                parse_message(register.replace(b"Contact: *", b"Contact: *, <sip:a@b>"))
            ),
            400,
        )

    def test_uri_schemes(self):
        """
        The schemes accepted in the Request-URI can be narrowed, others get 416 (RFC 3261 8.2.2.1).
        """
        request = parse_message(options(request_line=b"OPTIONS tel:+15551234 SIP/2.0"))
        self.assertIsNone(validate_request(request))
        self.assertEqual(validate_request(request, schemes={"sip", "sips"}), 416)


class ErrorResponseTests(SynchronousTestCase):
    """
    error_response answers requests the parser rejected.
    """

    def test_from_parse_error(self):
        """
        The response copies the headers read before the failure and carries the hint (RFC 3261
        8.2.6).
        """
        with self.assertRaises(RemoteProtocolError) as caught:
            parse_message(invite(extra=b"Content-Length: -1\r\n", content_length=False))
        response = error_response(caught.exception)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.call_id, "3848276298220188511@atlanta.example.com")
        self.assertEqual(response.top_via.branch, "z9hG4bK74bf9")
        self.assertIn("Content-Length", response.reason)
        self.assertEqual(error_response(caught.exception, reason="Bad CL").reason, "Bad CL")

    def test_no_response_possible(self):
        """
        No response is built for ACK, for errors without headers, or without the mandatory headers.
        """
        self.assertIsNone(error_response(RemoteProtocolError("x")))
        with self.assertRaises(RemoteProtocolError) as caught:
            parse_message(options(request_line=b"ACK sip:a@b SIP/7.0"))
        self.assertIsNone(error_response(caught.exception))
        with self.assertRaises(RemoteProtocolError) as caught:
            parse_message(b"OPTIONS sip:a@b SIP/7.0\r\nCall-ID: x\r\n\r\n")
        self.assertIsNone(error_response(caught.exception))


class IdentifierTests(SynchronousTestCase):
    """
    Branch, tag, Call-ID and CSeq generation from an injected random source.
    """

    def test_branch(self):
        """
        Branches start with the magic cookie and are reproducible from a seeded source (RFC 3261
        8.1.1.7).
        """
        branch = new_branch(random.Random(1))
        self.assertTrue(branch.startswith(MAGIC_COOKIE))
        self.assertEqual(len(branch), len(MAGIC_COOKIE) + 16)
        self.assertEqual(branch, new_branch(random.Random(1)))
        self.assertNotEqual(branch, new_branch(random.Random(2)))
        Via.parse(f"SIP/2.0/UDP h;branch={branch}")

    def test_byte_callable_source(self):
        """
        A callable returning random bytes (os.urandom-like) also works.
        """
        self.assertEqual(new_tag(lambda n: b"\x01" * n), "0101010101010101")
        self.assertEqual(len(new_tag(os.urandom)), 16)
        self.assertRaises(LocalProtocolError, new_tag, object())

    def test_call_id_and_cseq(self):
        """
        Call-IDs are valid callid values; initial CSeq numbers are positive and below 2**31 (RFC
        3261 8.1.1.4-5).
        """
        call_id = new_call_id(random.Random(3), "atlanta.example.com")
        self.assertTrue(call_id.endswith("@atlanta.example.com"))
        self.assertEqual(len(new_call_id(random.Random(3))), 24)
        for seed in range(20):
            self.assertTrue(0 < initial_cseq(random.Random(seed)) < 2**31)
        self.assertEqual(initial_cseq(lambda n: b"\x00" * n), 1)
        NameAddress.parse(f"<sip:a@b>;tag={new_tag(random.Random(4))}")
