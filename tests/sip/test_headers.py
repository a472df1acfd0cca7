"""
Tests for L{wcs_twisted.sip.header_fields} and L{wcs_twisted.sip.headers}.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.header_fields import Headers, canonical_name, split_list
from wcs_twisted.sip.headers import (
    CSeq,
    NameAddress,
    Via,
    format_auth_params,
    parse_auth_params,
    parse_params,
    quote_string,
    unquote_string,
)
from wcs_twisted.sip.uri import AbsoluteURI, SIPURI


class HeadersTests(SynchronousTestCase):
    """
    The ordered, case-insensitive header multimap.
    """

    def test_lookup_ignores_case(self):
        """
        Header names match case-insensitively (RFC 3261 7.3.1).
        """
        headers = Headers([("MaX-fOrWaRdS", "70")])
        self.assertEqual(headers.get("max-forwards"), "70")
        self.assertEqual(headers.get("MAX-FORWARDS"), "70")
        self.assertIn("Max-Forwards", headers)

    def test_compact_forms(self):
        """
        Compact and long forms are the same header (RFC 3261 7.3.3), in both directions.
        """
        headers = Headers(
            [
                ("v", "SIP/2.0/UDP a"),
                ("Via", "SIP/2.0/UDP b"),
                ("i", "abc"),
                ("l", "0"),
                ("k", "timer"),
            ]
        )
        self.assertEqual(headers.get_all("Via"), ["SIP/2.0/UDP a", "SIP/2.0/UDP b"])
        self.assertEqual(headers.get_all("v"), ["SIP/2.0/UDP a", "SIP/2.0/UDP b"])
        self.assertEqual(headers.get("Call-ID"), "abc")
        self.assertEqual(headers.get("Content-Length"), "0")
        self.assertEqual(headers.get("Supported"), "timer")
        for letter, name in [
            ("f", "From"),
            ("t", "To"),
            ("m", "Contact"),
            ("c", "Content-Type"),
            ("e", "Content-Encoding"),
            ("s", "Subject"),
            ("o", "Event"),
            ("r", "Refer-To"),
            ("b", "Referred-By"),
            ("u", "Allow-Events"),
            ("x", "Session-Expires"),
        ]:
            self.assertEqual(canonical_name(letter), canonical_name(name))

    def test_original_spelling_and_order_kept(self):
        """
        items() returns the lines in order with names as written, for forwarding unchanged.
        """
        items = [("TO", "a"), ("v", "b"), ("X-Custom", "c"), ("via", "d")]
        self.assertEqual(Headers(items).items(), items)

    def test_get_all_splits_list_headers(self):
        """
        Comma-separated elements of list headers are split, in order across lines (RFC 3261 7.3.1).
        """
        headers = Headers(
            [
                ("Contact", '"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>'),
                ("Contact", "sip:e@f"),
                ("Allow", "INVITE, ACK ,BYE"),
            ]
        )
        self.assertEqual(
            headers.get_all("Contact"), ['"Doe, John" <sip:a@b;x=1,2>', "<sip:c@d>", "sip:e@f"]
        )
        self.assertEqual(headers.get_all("Allow"), ["INVITE", "ACK", "BYE"])
        self.assertEqual(headers.get("Contact"), '"Doe, John" <sip:a@b;x=1,2>')

    def test_non_list_headers_are_not_split(self):
        """
        Commas in non-list and unknown headers stay put (Date syntax, RFC 4475 3.1.1.1's unknown
        header).
        """
        headers = Headers(
            [
                ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
                ("UnknownHeaderWithUnusualValue", ";;,,;;,;"),
            ]
        )
        self.assertEqual(headers.get_all("Date"), ["Sat, 13 Nov 2010 23:29:00 GMT"])
        self.assertEqual(headers.get("UnknownHeaderWithUnusualValue"), ";;,,;;,;")

    def test_missing_header(self):
        """
        Absent headers give the default, an empty list and a false membership test.
        """
        headers = Headers()
        self.assertIsNone(headers.get("To"))
        self.assertEqual(headers.get("To", "x"), "x")
        self.assertEqual(headers.get_all("Via"), [])
        self.assertNotIn("To", headers)
        self.assertNotIn(1, headers)
        self.assertEqual(headers.count("To"), 0)

    def test_add_prepend_set_remove(self):
        """
        add appends, prepend goes before the first line of its name, set replaces in place, remove
        deletes all.
        """
        headers = Headers([("From", "a"), ("Via", "v2"), ("To", "b")])
        headers.prepend("Via", "v1")
        headers.add("Via", "v3")
        headers.prepend("Record-Route", "<sip:p;lr>")
        self.assertEqual(
            headers.items(),
            [
                ("Record-Route", "<sip:p;lr>"),
                ("From", "a"),
                ("Via", "v1"),
                ("Via", "v2"),
                ("To", "b"),
                ("Via", "v3"),
            ],
        )
        headers.set("via", "only")
        self.assertEqual(
            headers.items(),
            [("Record-Route", "<sip:p;lr>"), ("From", "a"), ("via", "only"), ("To", "b")],
        )
        headers.set("Subject", "hi")
        self.assertEqual(headers.items()[-1], ("Subject", "hi"))
        headers.remove("record-route")
        headers.remove("Absent")
        self.assertEqual(
            headers.items(), [("From", "a"), ("via", "only"), ("To", "b"), ("Subject", "hi")]
        )
        self.assertEqual(len(headers), 4)

    def test_pop_first(self):
        """
        pop_first removes the first element of a list header, keeping the rest of its line (RFC 3261
        16.7).
        """
        headers = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("Via", "SIP/2.0/UDP c")])
        self.assertEqual(headers.pop_first("Via"), "SIP/2.0/UDP a")
        self.assertEqual(headers.get_all("Via"), ["SIP/2.0/UDP b", "SIP/2.0/UDP c"])
        self.assertEqual(headers.pop_first("Via"), "SIP/2.0/UDP b")
        self.assertEqual(headers.pop_first("Via"), "SIP/2.0/UDP c")
        self.assertIsNone(headers.pop_first("Via"))

    def test_copy_is_independent(self):
        """
        A copy does not see later changes to the original.
        """
        headers = Headers([("To", "a")])
        copy = headers.copy()
        headers.add("From", "b")
        self.assertEqual(copy.items(), [("To", "a")])
        self.assertNotEqual(copy, headers)
        self.assertEqual(copy, Headers([("To", "a")]))

    def test_values_are_stripped_and_checked(self):
        """
        Local values lose surrounding whitespace; CR or LF (header injection) is our bug.
        """
        headers = Headers()
        headers.add("Subject", "  hi  ")
        self.assertEqual(headers.get("Subject"), "hi")
        for bad in ["a\r\nVia: x", "a\nb"]:
            self.assertRaises(LocalProtocolError, headers.add, "Subject", bad)
        self.assertRaises(LocalProtocolError, headers.add, "Subject", 5)
        self.assertRaises(LocalProtocolError, headers.add, "Bad Name", "x")
        self.assertRaises(LocalProtocolError, headers.get, "Bad:Name")


class SplitListTests(SynchronousTestCase):
    """
    Splitting list header values.
    """

    def test_quotes_escapes_and_brackets(self):
        """
        Commas inside quoted strings (with escaped quotes) and <> do not split (RFC 3261 7.3.1).
        """
        self.assertEqual(
            split_list('"a\\",b" <sip:x;p=1,2>;q=1 , <sip:y>,,'),
            ['"a\\",b" <sip:x;p=1,2>;q=1', "<sip:y>"],
        )

    def test_empty_elements_dropped(self):
        """
        Empty list elements are ignored.
        """
        self.assertEqual(split_list(" , ,"), [])
        self.assertEqual(split_list(""), [])


class QuotedStringTests(SynchronousTestCase):
    """
    quoted-string helpers (RFC 3261 25.1).
    """

    def test_round_trip(self):
        """
        Quoting escapes backslash, DQUOTE and control characters; unquoting undoes it.
        """
        for text in ['J Rosenberg \\"', "BEL:\x07 NUL:\x00 DEL:\x7f", "plain", "", "tab\there"]:
            self.assertEqual(unquote_string(quote_string(text)), text)
        self.assertEqual(quote_string('a"b\\c'), '"a\\"b\\\\c"')

    def test_newlines_cannot_be_quoted(self):
        """
        CR and LF have no quoted-pair, so quoting them is a local error.
        """
        self.assertRaises(LocalProtocolError, quote_string, "a\r\nb")


class ParamsTests(SynchronousTestCase):
    """
    generic-param lists.
    """

    def test_whitespace_and_value_kinds(self):
        """
        SEMI and EQUAL allow whitespace; values may be tokens, hosts or quoted strings (RFC 3261
        25.1).
        """
        self.assertEqual(
            parse_params(' ; a = 1 ;b;c="x;y";d=[2001:db8::1] '),
            (("a", "1"), ("b", None), ("c", '"x;y"'), ("d", "[2001:db8::1]")),
        )

    def test_malformed(self):
        """
        Empty parameters, missing values and junk are Bad Requests (RFC 4475 3.1.2.1).
        """
        for text in [";;", ";", ";a=", "a", ";a b", ';a="unterminated', ";a=<x>"]:
            with self.assertRaises(RemoteProtocolError, msg=text) as caught:
                parse_params(text)
            self.assertEqual(caught.exception.status_hint, 400)


class ViaTests(SynchronousTestCase):
    """
    The Via header field (RFC 3261 20.42).
    """

    def test_parse_simple(self):
        """
        Transport, sent-by and parameters are parsed (RFC 3261 20.42).
        """
        via = Via.parse(
            "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport;received=192.0.2.1"
        )
        self.assertEqual(via.transport, "UDP")
        self.assertEqual(via.sent_by, ("pc33.atlanta.com", 5066))
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertEqual(via.received, "192.0.2.1")
        self.assertIs(via.rport, True)

    def test_whitespace_everywhere(self):
        """
        SWS around slashes, colon, semicolons and equals is allowed (RFC 4475 3.1.1.1).
        """
        via = Via.parse(
            "SIP  / 2.0  / tcp     spindle.example.com :  5070 ;  branch  =   z9hG4bK9ikj8  "
        )
        self.assertEqual(
            via, Via("TCP", "spindle.example.com", 5070, (("branch", "z9hG4bK9ikj8"),))
        )

    def test_ipv6_sent_by(self):
        """
        An IPv6 reference is a valid sent-by host (RFC 3261 25.1).
        """
        via = Via.parse("SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx")
        self.assertEqual(via.sent_by, ("[2001:db8::9]", 5061))

    def test_rport_values(self):
        """
        rport is None when absent, True as a flag, the port when filled in (RFC 3581).
        """
        self.assertIsNone(Via.parse("SIP/2.0/UDP h").rport)
        self.assertEqual(Via.parse("SIP/2.0/UDP h;rport=5061").rport, 5061)
        with self.assertRaises(RemoteProtocolError):
            Via.parse("SIP/2.0/UDP h;rport=abc").rport

    def test_str_round_trip(self):
        """
        str() writes the canonical form, which parses back to the same value.
        """
        via = Via.parse("SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport")
        self.assertEqual(str(via), "SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport")
        self.assertEqual(Via.parse(str(via)), via)

    def test_with_params(self):
        """
        with_params fills in received and rport as a server does (RFC 3261 18.2.1, RFC 3581 4).
        """
        via = Via.parse("SIP/2.0/UDP h;rport;branch=z9hG4bK1")
        updated = via.with_params(received="192.0.2.7", rport=5062)
        self.assertEqual(
            str(updated), "SIP/2.0/UDP h;rport=5062;branch=z9hG4bK1;received=192.0.2.7"
        )
        self.assertEqual(str(via.without_params("RPORT")), "SIP/2.0/UDP h;branch=z9hG4bK1")
        self.assertRaises(LocalProtocolError, via.with_params, branch="a b")
        self.assertEqual(str(via.with_params(received="[::1]")).split(";")[-1], "received=[::1]")

    def test_malformed(self):
        """
        Broken Via values are Bad Requests (RFC 4475 3.1.2.1).
        """
        for text in [
            "SIP/2.0/UDP 192.0.2.15;;",
            ";",
            "",
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/3.0/UDP host",
            "HTTP/2.0/UDP host",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP ho$t",
            "SIP/2.0/UDP host garbage",
        ]:
            with self.assertRaises(RemoteProtocolError, msg=text) as caught:
                Via.parse(text)
            self.assertEqual(caught.exception.status_hint, 400)


class NameAddressTests(SynchronousTestCase):
    """
    name-addr and addr-spec values (RFC 3261 20.10, 20.20, 20.39).
    """

    def test_quoted_display_name_with_escapes(self):
        """
        Quoted-pairs in the display name are resolved (RFC 4475 3.1.1.1).
        """
        address = NameAddress.parse(
            '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8'
        )
        self.assertEqual(address.display_name, 'J Rosenberg \\"')
        self.assertEqual(address.uri, SIPURI.parse("sip:jdrosen@example.com"))
        self.assertEqual(address.tag, "98asjd8")

    def test_token_display_name(self):
        """
        An unquoted display name is tokens separated by whitespace, LWS before '<' optional (RFC
        4475 3.1.1.6).
        """
        self.assertEqual(NameAddress.parse("caller<sip:caller@example.com>").display_name, "caller")
        self.assertEqual(NameAddress.parse("A. Bell <sip:a@b>").display_name, "A. Bell")
        self.assertIsNone(NameAddress.parse("<sip:a@b>").display_name)

    def test_addr_spec_params_belong_to_header(self):
        """
        Without <>, parameters after the URI are header parameters (RFC 3261 20.10, RFC 4475
        3.3.12).
        """
        address = NameAddress.parse("sip:+19725552222@gw1.example.net;unknownparam;tag=1")
        self.assertEqual(address.uri.params, ())
        self.assertEqual(address.params, (("unknownparam", None), ("tag", "1")))
        bracketed = NameAddress.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
        self.assertEqual(bracketed.uri.params, (("unknownparam", None),))
        self.assertEqual(bracketed.params, ())

    def test_other_schemes_parse(self):
        """
        Unknown URI schemes in From/To/Contact are not parse errors (RFC 4475 3.3.4).
        """
        self.assertEqual(
            NameAddress.parse("isbn:2983792873").uri, AbsoluteURI("isbn", "2983792873")
        )
        self.assertEqual(
            NameAddress.parse("<http://www.example.com>;tag=3234233").uri.scheme, "http"
        )

    def test_str_round_trip(self):
        """
        str() always brackets the URI and quotes the display name, and parses back equal.
        """
        for text, expected in [
            (
                '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n newvalue ; q = 0.33'.replace(
                    "\n", ""
                ),
                '"Quoted string \\"\\"" <sip:jdrosen@example.com>;newparam=newvalue;q=0.33',
            ),
            ("sip:a@b;tag=x", "<sip:a@b>;tag=x"),
            ('"" <sip:a@b>', '"" <sip:a@b>'),
            ("Bob <sips:bob@biloxi.example.com>", '"Bob" <sips:bob@biloxi.example.com>'),
        ]:
            address = NameAddress.parse(text)
            self.assertEqual(str(address), expected)
            self.assertEqual(NameAddress.parse(str(address)), address)

    def test_with_tag(self):
        """
        with_tag adds or replaces the tag parameter (RFC 3261 19.3).
        """
        address = NameAddress.parse("<sip:a@b>;x=1")
        self.assertEqual(str(address.with_tag("abc")), "<sip:a@b>;x=1;tag=abc")
        self.assertEqual(address.with_tag("abc").with_tag("d").tag, "d")
        self.assertEqual(str(address.with_tag("abc").without_params("tag")), "<sip:a@b>;x=1")
        self.assertIsNone(address.tag)
        self.assertEqual(address.param("x"), "1")

    def test_malformed(self):
        """
        The malformed forms of RFC 4475 3.1.2 are Bad Requests.
        """
        for text in [
            '"Mr. J. User <sip:j.user@example.com>',  # 3.1.2.6 unterminated quote
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # 3.1.2.13
            '"Watson, Thomas" < sip:t.watson@example.org >',  # 3.1.2.14
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # 3.1.2.15
            '"Joe" <sip:joe@example.org>;;;;',  # 3.1.2.1
            '"Joe" sip:joe@example.org',
            "<sip:a@b",
            "*",
            "",
        ]:
            with self.assertRaises(RemoteProtocolError, msg=text) as caught:
                NameAddress.parse(text)
            self.assertEqual(caught.exception.status_hint, 400, text)


class CSeqTests(SynchronousTestCase):
    """
    The CSeq header field (RFC 3261 20.16).
    """

    def test_parse(self):
        """
        Leading zeros and LWS between number and method are allowed (RFC 4475 3.1.1.1).
        """
        self.assertEqual(CSeq.parse("0009 \t INVITE"), CSeq(9, "INVITE"))
        self.assertEqual(str(CSeq(9, "INVITE")), "9 INVITE")

    def test_largest_value(self):
        """
        2**32-1 is the largest sequence number accepted (RFC 4475 3.1.2.4).
        """
        self.assertEqual(CSeq.parse("4294967295 OPTIONS").number, 2**32 - 1)
        for text in ["4294967296 OPTIONS", "36893488147419103232 REGISTER", "9" * 5000 + " A"]:
            with self.assertRaises(RemoteProtocolError) as caught:
                CSeq.parse(text)
            self.assertEqual(caught.exception.status_hint, 400)

    def test_malformed(self):
        """
        A CSeq without number, method or separating LWS is a Bad Request.
        """
        for text in ["INVITE", "1", "1INVITE", "-1 INVITE", "1 INV ITE", ""]:
            self.assertRaises(RemoteProtocolError, CSeq.parse, text)


class AuthParamsTests(SynchronousTestCase):
    """
    Challenge and credentials parameters (RFC 3261 25.1, RFC 2617).
    """

    def test_parse_digest(self):
        """
        Digest parameters are split, names lower-cased, quoted values unquoted (RFC 2617 3.2.2).
        """
        scheme, params = parse_auth_params(
            'Digest username="alice", Realm="atlanta.example.com", nonce="84a4cc6f", '
            'uri="sip:bob@biloxi.example.com", response="7587245234b3434cc3412213e5f113a5", '
            'algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b", opaque="a,b"'
        )
        self.assertEqual(scheme, "Digest")
        self.assertEqual(params["username"], "alice")
        self.assertEqual(params["realm"], "atlanta.example.com")
        self.assertEqual(params["algorithm"], "MD5")
        self.assertEqual(params["nc"], "00000001")
        self.assertEqual(params["opaque"], "a,b")

    def test_unknown_scheme(self):
        """
        An unknown scheme parses (RFC 4475 3.3.7); a bare token68 is kept under the empty key.
        """
        self.assertEqual(
            parse_auth_params("NoOneKnowsThisScheme opaque-data=here"),
            ("NoOneKnowsThisScheme", {"opaque-data": "here"}),
        )
        self.assertEqual(parse_auth_params("Bearer abc.def"), ("Bearer", {"": "abc.def"}))
        self.assertEqual(parse_auth_params("Basic"), ("Basic", {}))

    def test_malformed(self):
        """
        Broken parameters and unterminated quotes are Bad Requests.
        """
        for text in ['Digest realm="x', "Digest =x", "@@@ realm=x", "Digest a=1, b"]:
            self.assertRaises(RemoteProtocolError, parse_auth_params, text)

    def test_format_round_trip(self):
        """
        format_auth_params quotes the Digest parameters RFC 2617 quotes, and parses back.
        """
        params = {
            "username": "alice",
            "realm": 'at"lanta',
            "nonce": "n",
            "uri": "sip:b@c",
            "response": "r",
            "algorithm": "MD5",
            "qop": "auth",
            "nc": "00000001",
            "cnonce": "c",
        }
        text = format_auth_params("Digest", params)
        self.assertIn('realm="at\\"lanta"', text)
        self.assertIn("algorithm=MD5", text)
        self.assertIn("qop=auth", text)
        self.assertEqual(parse_auth_params(text), ("Digest", params))
        self.assertEqual(
            format_auth_params("Digest", {"realm": "r", "qop": "auth"}, quoted={"realm", "qop"}),
            'Digest realm="r", qop="auth"',
        )
