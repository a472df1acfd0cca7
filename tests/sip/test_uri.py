"""
Tests for L{wcs_twisted.sip.uri}.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.uri import AbsoluteURI, SIPURI, parse_uri


class SIPURIParseTests(SynchronousTestCase):
    """
    Parsing sip and sips URIs (RFC 3261 19.1.1, 25.1).
    """

    def test_full_uri(self):
        """
        Every component of a SIP URI is parsed into its field (RFC 3261 19.1.1).
        """
        uri = SIPURI.parse(
            "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=y"
        )
        self.assertEqual(uri.scheme, "sips")
        self.assertEqual(uri.user, "alice")
        self.assertEqual(uri.password, "secret")
        self.assertEqual(uri.host, "atlanta.example.com")
        self.assertEqual(uri.port, 5061)
        self.assertEqual(uri.params, (("transport", "tcp"), ("lr", None)))
        self.assertEqual(uri.headers, (("subject", "hi"), ("x", "y")))

    def test_host_only(self):
        """
        A URI without userinfo has no user and no password (RFC 3261 19.1.1).
        """
        uri = SIPURI.parse("sip:registrar.example.com")
        self.assertIsNone(uri.user)
        self.assertIsNone(uri.password)
        self.assertEqual(uri.host_port, ("registrar.example.com", None))

    def test_scheme_is_case_insensitive(self):
        """
        The scheme is lower-cased (RFC 3261 19.1.4: schemes compare case-insensitively).
        """
        self.assertEqual(SIPURI.parse("SIP:bob@example.com").scheme, "sip")

    def test_ipv4_and_ipv6_hosts(self):
        """
        IPv4 addresses and bracketed IPv6 references with ports are hosts (RFC 3261 25.1 hostport).
        """
        self.assertEqual(SIPURI.parse("sip:192.0.2.1:5070").host_port, ("192.0.2.1", 5070))
        uri = SIPURI.parse("sip:alice@[2001:db8::10]:5060;transport=udp")
        self.assertEqual(uri.host_port, ("[2001:db8::10]", 5060))
        self.assertEqual(str(uri), "sip:alice@[2001:db8::10]:5060;transport=udp")

    def test_escapes_are_decoded(self):
        """
        %HH escapes in user and parameters are decoded (RFC 3261 19.1.2, RFC 4475 3.1.1.3).
        """
        uri = SIPURI.parse("sip:%75se%72@example.com;n%61me=v%61lue%25%34%31")
        self.assertEqual(uri.user, "user")
        self.assertEqual(uri.param("name"), "value%41")

    def test_escaped_nul_survives(self):
        """
        An escaped NUL decodes to a NUL character and is re-escaped on output (RFC 4475 3.1.1.4).
        """
        uri = SIPURI.parse("sip:null-%00-null@example.com")
        self.assertEqual(uri.user, "null-\x00-null")
        self.assertEqual(str(uri), "sip:null-%00-null@example.com")

    def test_user_with_semicolons_and_question_mark(self):
        """
        The user part may contain ';', '?' and ',' before the '@' (RFC 3261 25.1 user-unreserved).
        """
        uri = SIPURI.parse("sip:user;par=u%40example.net@example.com")
        self.assertEqual(uri.user, "user;par=u@example.net")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.params, ())

    def test_telephone_subscriber_user(self):
        """
        A user=phone URI keeps its telephone number as user (RFC 3261 19.1.6).
        """
        uri = SIPURI.parse("sip:+16505552222@ss1.example.net;user=phone")
        self.assertEqual(uri.user, "+16505552222")
        self.assertEqual(uri.param("user"), "phone")

    def test_trailing_dot_host(self):
        """
        A fully qualified host may end with a dot (RFC 3261 25.1 hostname).
        """
        self.assertEqual(SIPURI.parse("sip:example.com.").host, "example.com.")

    def test_malformed_uris_are_400(self):
        """
        Text that is not a SIP URI is a Bad Request (RFC 3261 25.1, RFC 4475 3.1.2.7).
        """
        for text in [
            "<sip:user@example.com>",
            "sip:",
            "sip:user@",
            "sip:a@b@c",
            "sip:user@exa mple.com",
            "sip:user@example.com:port",
            "sip:user@example.com:70000",
            "sip:user@-bad-.example.com",
            "sip:user@example..com",
            "sip:user@[2001:db8::1",
            "sip:user@[zz::1]",
            "sip:user@256.1.1.1",
            "sip:us%4gr@example.com",
            "sip:user@example.com;;lr",
            "sip:user@example.com;a=",
            "sip:user@example.com?noequals",
            "sip:us<er@example.com",
            "sip:user@example.com:5060x",
            "nocolon",
            "1sip:user@example.com",
        ]:
            with self.assertRaises(RemoteProtocolError, msg=text) as caught:
                SIPURI.parse(text)
            self.assertEqual(caught.exception.status_hint, 400, text)

    def test_unsupported_scheme_is_416(self):
        """
        SIPURI.parse refuses well-formed URIs of other schemes with 416 (RFC 3261 8.2.2.1).
        """
        for text in ["http://www.example.com", "isbn:2983792873", "nobodyKnowsThisScheme:x"]:
            with self.assertRaises(RemoteProtocolError) as caught:
                SIPURI.parse(text)
            self.assertEqual(caught.exception.status_hint, 416)

    def test_overlong_uri_is_refused(self):
        """
        URIs beyond the size bound are refused before any parsing work (torture safety).
        """
        with self.assertRaises(RemoteProtocolError):
            SIPURI.parse("sip:" + "a" * 10000 + "@example.com")


class TelURITests(SynchronousTestCase):
    """
    tel URIs (RFC 3966).
    """

    def test_tel_uri(self):
        """
        A tel URI keeps its number in user and its parameters (RFC 3966 3).
        """
        uri = SIPURI.parse("tel:+1-201-555-0123;phone-context=example.com")
        self.assertEqual(uri.scheme, "tel")
        self.assertEqual(uri.user, "+1-201-555-0123")
        self.assertEqual(uri.host, "")
        self.assertEqual(uri.param("phone-context"), "example.com")
        self.assertEqual(str(uri), "tel:+1-201-555-0123;phone-context=example.com")

    def test_bad_tel_number(self):
        """
        A tel URI whose number has letters outside hex digits is a Bad Request (RFC 3966 3).
        """
        with self.assertRaises(RemoteProtocolError):
            SIPURI.parse("tel:call-me-maybe")


class AbsoluteURITests(SynchronousTestCase):
    """
    URIs of schemes the stack does not implement (RFC 3261 absoluteURI).
    """

    def test_parse_uri_returns_absolute_uri(self):
        """
        parse_uri keeps other schemes as opaque text, because parsers must accept them (RFC 4475
        3.3.2).
        """
        uri = parse_uri("soap.beep://192.0.2.103:3002")
        self.assertEqual(uri, AbsoluteURI("soap.beep", "//192.0.2.103:3002"))
        self.assertEqual(str(uri), "soap.beep://192.0.2.103:3002")
        self.assertFalse(uri.has_param("lr"))
        self.assertIsNone(uri.param("lr"))

    def test_absolute_uri_equivalence(self):
        """
        Opaque URIs are equivalent only to the same text (RFC 3261 19.1.4 does not apply).
        """
        self.assertTrue(parse_uri("isbn:1").is_equivalent(parse_uri("ISBN:1")))
        self.assertFalse(parse_uri("isbn:1").is_equivalent(parse_uri("isbn:2")))
        self.assertFalse(parse_uri("isbn:1").is_equivalent(SIPURI.parse("sip:isbn")))

    def test_malformed_absolute_uri(self):
        """
        Whitespace or brackets make an absoluteURI malformed (RFC 2396 3).
        """
        for text in ["foo:bar baz", "foo:", "foo:<x>"]:
            with self.assertRaises(RemoteProtocolError):
                parse_uri(text)


class SIPURIFormatTests(SynchronousTestCase):
    """
    Writing URIs back as text.
    """

    def test_round_trip(self):
        """
        Parsing and formatting canonical text gives the same text back.
        """
        for text in [
            "sip:alice@atlanta.example.com",
            "sips:alice:pw@atlanta.example.com:5061;transport=tcp;lr",
            "sip:biloxi.com;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "sip:[::1]:5060",
        ]:
            self.assertEqual(str(SIPURI.parse(text)), text)

    def test_unnecessary_escapes_are_removed(self):
        """
        Canonical text escapes only what the grammar requires (RFC 3261 19.1.2).
        """
        self.assertEqual(
            str(SIPURI.parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")),
            "sip:caller@host5.example.net;lr;name=value%2541",
        )

    def test_reserved_characters_are_escaped(self):
        """
        Characters outside a component's unreserved set are escaped when formatting (RFC 3261
        19.1.2).
        """
        uri = SIPURI("sip", "sips:user@example.com", "p@ss", "example.net", None, (("a b", "c d"),))
        self.assertEqual(str(uri), "sip:sips%3Auser%40example.com:p%40ss@example.net;a%20b=c%20d")
        self.assertEqual(SIPURI.parse(str(uri)), uri)

    def test_non_utf8_bytes_round_trip(self):
        """
        An escape of a non-UTF-8 octet decodes and re-encodes to the same octet.
        """
        uri = SIPURI.parse("sip:%FF%41@example.com")
        self.assertEqual(str(uri), "sip:%FFA@example.com")
        self.assertEqual(SIPURI.parse(str(uri)), uri)


class SIPURIParamsTests(SynchronousTestCase):
    """
    Parameter access and immutable updates.
    """

    def test_param_lookup_is_case_insensitive(self):
        """
        Parameter names match case-insensitively; flags have a None value (RFC 3261 19.1.4).
        """
        uri = SIPURI.parse("sip:a@b;Transport=TCP;LR")
        self.assertEqual(uri.param("transport"), "TCP")
        self.assertTrue(uri.has_param("lr"))
        self.assertIsNone(uri.param("lr"))
        self.assertFalse(uri.has_param("maddr"))
        self.assertEqual(uri.param("maddr", "x"), "x")

    def test_transport_defaults(self):
        """
        transport is lower case, defaulting to udp for sip and tls for sips (RFC 3263 4.1).
        """
        self.assertEqual(SIPURI.parse("sip:a@b;transport=TCP").transport, "tcp")
        self.assertEqual(SIPURI.parse("sip:a@b").transport, "udp")
        self.assertEqual(SIPURI.parse("sips:a@b").transport, "tls")

    def test_with_params_replaces_and_appends(self):
        """
        with_params replaces an existing parameter in place and appends new ones, leaving the
        original alone.
        """
        uri = SIPURI.parse("sip:a@b;transport=udp")
        changed = uri.with_params(transport="tcp", lr=None, ttl=5)
        self.assertEqual(str(changed), "sip:a@b;transport=tcp;lr;ttl=5")
        self.assertEqual(str(uri), "sip:a@b;transport=udp")
        self.assertEqual(str(uri.with_param_items([("x-id", "1")])), "sip:a@b;transport=udp;x-id=1")

    def test_with_params_rejects_false(self):
        """
        False is not a parameter value; removing is without_params's job.
        """
        with self.assertRaises(LocalProtocolError):
            SIPURI.parse("sip:a@b").with_params(lr=False)

    def test_without_params_and_headers(self):
        """
        without_params drops parameters by name (any case) and without_headers drops the ?headers
        part.
        """
        uri = SIPURI.parse("sip:a@b;method=INVITE;LR;x=1?h=v")
        self.assertEqual(str(uri.without_params("method", "lr").without_headers()), "sip:a@b;x=1")

    def test_uris_are_hashable_values(self):
        """
        Equal URIs hash alike, so they can key dictionaries.
        """
        self.assertEqual({SIPURI.parse("sip:%61@b"): 1}[SIPURI.parse("sip:a@b")], 1)


class SIPURIEquivalenceTests(SynchronousTestCase):
    """
    URI comparison, with the examples of RFC 3261 19.1.4.
    """

    def assertEquivalent(self, a, b):
        self.assertTrue(SIPURI.parse(a).is_equivalent(SIPURI.parse(b)), f"{a} vs {b}")
        self.assertTrue(SIPURI.parse(b).is_equivalent(SIPURI.parse(a)), f"{b} vs {a}")

    def assertNotEquivalent(self, a, b):
        self.assertFalse(SIPURI.parse(a).is_equivalent(SIPURI.parse(b)), f"{a} vs {b}")
        self.assertFalse(SIPURI.parse(b).is_equivalent(SIPURI.parse(a)), f"{b} vs {a}")

    def test_equivalent_examples(self):
        """
        The pairs RFC 3261 19.1.4 lists as equivalent compare equivalent.
        """
        self.assertEquivalent(
            "sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"
        )
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5")
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assertEquivalent(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        )
        self.assertEquivalent(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        )

    def test_not_equivalent_examples(self):
        """
        The pairs RFC 3261 19.1.4 lists as different compare different.
        """
        self.assertNotEquivalent(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"
        )
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060")
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp")
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp")
        self.assertNotEquivalent(
            "sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"
        )
        self.assertNotEquivalent("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4")

    def test_equivalence_is_not_transitive(self):
        """
        Parameters present on both sides must match, so security=on and off differ (RFC 3261
        19.1.4).
        """
        self.assertNotEquivalent(
            "sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"
        )

    def test_scheme_and_type_must_match(self):
        """
        sip and sips URIs are never equivalent, nor is a URI to a non-URI.
        """
        self.assertNotEquivalent("sip:a@b", "sips:a@b")
        self.assertFalse(SIPURI.parse("sip:a@b").is_equivalent("sip:a@b"))
