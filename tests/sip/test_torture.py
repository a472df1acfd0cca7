"""
The RFC 4475 torture messages against L{wcs_twisted.sip.message}.

The messages live in C{tests/data/rfc4475}, byte-exact from RFC 4475
Appendix A (see the README there).  Each test names the RFC 4475 section whose
verdict it checks.
"""

import base64
import hashlib
import io
import os
import tarfile

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.errors import RemoteProtocolError
from wcs_twisted.sip.headers import CSeq, parse_auth_params
from wcs_twisted.sip.message import (
    Request,
    Response,
    error_response,
    parse_message,
    unsupported_options,
    validate_request,
)
from wcs_twisted.sip.uri import AbsoluteURI, SIPURI

CORPUS = os.path.join(os.path.dirname(__file__), os.pardir, "data", "rfc4475")

#: RFC 4475 section of every message.
SECTIONS = {
    "wsinv": "3.1.1.1",
    "intmeth": "3.1.1.2",
    "esc01": "3.1.1.3",
    "escnull": "3.1.1.4",
    "esc02": "3.1.1.5",
    "lwsdisp": "3.1.1.6",
    "longreq": "3.1.1.7",
    "dblreq": "3.1.1.8",
    "semiuri": "3.1.1.9",
    "transports": "3.1.1.10",
    "mpart01": "3.1.1.11",
    "unreason": "3.1.1.12",
    "noreason": "3.1.1.13",
    "badinv01": "3.1.2.1",
    "clerr": "3.1.2.2",
    "ncl": "3.1.2.3",
    "scalar02": "3.1.2.4",
    "scalarlg": "3.1.2.5",
    "quotbal": "3.1.2.6",
    "ltgtruri": "3.1.2.7",
    "lwsruri": "3.1.2.8",
    "lwsstart": "3.1.2.9",
    "trws": "3.1.2.10",
    "escruri": "3.1.2.11",
    "baddate": "3.1.2.12",
    "regbadct": "3.1.2.13",
    "badaspec": "3.1.2.14",
    "baddn": "3.1.2.15",
    "badvers": "3.1.2.16",
    "mismatch01": "3.1.2.17",
    "mismatch02": "3.1.2.18",
    "bigcode": "3.1.2.19",
    "badbranch": "3.2.1",
    "insuf": "3.3.1",
    "unkscm": "3.3.2",
    "novelsc": "3.3.3",
    "unksm2": "3.3.4",
    "bext01": "3.3.5",
    "invut": "3.3.6",
    "regaut01": "3.3.7",
    "multi01": "3.3.8",
    "mcl01": "3.3.9",
    "bcast": "3.3.10",
    "zeromf": "3.3.11",
    "cparam01": "3.3.12",
    "cparam02": "3.3.13",
    "regescrt": "3.3.14",
    "sdp01": "3.3.15",
    "inv2543": "3.4.1",
}

#: Messages the parser itself must reject, with the status hint.
PARSER_REJECTS = {
    "badinv01": 400,  # 3.1.2.1 "should respond with a 400 Bad Request"
    "clerr": 400,  # 3.1.2.2 "When sent over UDP ... 400 Bad Request"
    "ncl": 400,  # 3.1.2.3 "should respond with an error"
    "scalar02": 400,  # 3.1.2.4 "400 Bad Request due to the CSeq error"
    "scalarlg": 400,  # 3.1.2.5 a response: "will simply discard it"
    "ltgtruri": 400,  # 3.1.2.7 "reject ... with a 400 Bad Request"
    "lwsruri": 400,  # 3.1.2.8 "should respond with a 400 Bad Request"
    "lwsstart": 400,  # 3.1.2.9 "acceptable to reject this request as malformed"
    "trws": 400,  # 3.1.2.10 idem
    "badvers": 505,  # 3.1.2.16 "505 Version Not Supported"
    "bigcode": 400,  # 3.1.2.19 a response: "should simply drop it"
    "mcl01": 400,  # 3.3.9 "equivalent to an invalid Content-Length value"
}

#: Messages that parse, with the status validate_request(request) returns
#: (None: nothing wrong at message level).  A UAS's view.
VALIDATION = {
    "wsinv": None,
    "intmeth": None,
    "esc01": None,
    "escnull": None,
    "esc02": None,
    "lwsdisp": None,
    "longreq": None,
    "dblreq": None,
    "semiuri": None,
    "transports": None,
    "mpart01": None,
    "quotbal": 400,  # 3.1.2.6
    "escruri": 400,  # 3.1.2.11
    "baddate": 400,  # 3.1.2.12
    "regbadct": 400,  # 3.1.2.13
    "badaspec": 400,  # 3.1.2.14
    "baddn": 400,  # 3.1.2.15
    "mismatch01": 400,  # 3.1.2.17 "Any element receiving this request will respond with a 400"
    "mismatch02": 501,  # 3.1.2.18 "should respond with a 501 Not Implemented"
    "badbranch": 400,  # 3.2.1 "could reject the request with a 400"
    "insuf": 400,  # 3.3.1 "Ideally, it will respond with a 400 Bad Request"
    "unkscm": 416,  # 3.3.2 "will reject it with a 416 Unsupported URI Scheme"
    "novelsc": 416,  # 3.3.3 "treat it as unknown and return a 416"
    "unksm2": 400,  # 3.3.4 "A registrar would reject this request with a 400"
    "bext01": None,  # 3.3.5 needs the supported option tags, see below
    "invut": None,  # 3.3.6 needs the accepted types, see below
    "regaut01": None,  # 3.3.7 the registrar's 401 is not a message-level matter
    "multi01": 400,  # 3.3.8 "would respond with a 400 Bad Request"
    "zeromf": None,  # 3.3.11 "An endpoint should process the request"
    "cparam01": None,
    "cparam02": None,
    "regescrt": None,  # 3.3.12-14 "should succeed"
    "sdp01": None,  # 3.3.15 406 or 400 is the UA's decision about Accept
    "inv2543": None,  # 3.4.1 "should be accepted by RFC 3261 elements"
}

RESPONSES = {"unreason", "noreason", "bcast"}


def load(name):
    with open(os.path.join(CORPUS, name + ".dat"), "rb") as handle:
        return handle.read()


def parse(name):
    return parse_message(load(name))


class CorpusTests(SynchronousTestCase):
    """
    The stored corpus is complete and byte-exact (RFC 4475 Appendix A).
    """

    def test_every_message_is_present_and_classified(self):
        """
        All 49 messages of RFC 4475 section 3 are stored, and each has an expected outcome here.
        """
        stored = sorted(name[:-4] for name in os.listdir(CORPUS) if name.endswith(".dat"))
        self.assertEqual(stored, sorted(SECTIONS))
        self.assertEqual(len(stored), 49)
        self.assertEqual(
            sorted(set(PARSER_REJECTS) | set(VALIDATION) | RESPONSES), sorted(SECTIONS)
        )
        self.assertFalse(set(PARSER_REJECTS) & set(VALIDATION))

    def test_hashes(self):
        """
        Every file matches SHA256SUMS, so no tool normalised line endings or octets.
        """
        with open(os.path.join(CORPUS, "SHA256SUMS")) as handle:
            sums = dict(reversed(line.split()) for line in handle if line.strip())
        self.assertEqual(len(sums), 49)
        for filename, digest in sums.items():
            with open(os.path.join(CORPUS, filename), "rb") as data:
                self.assertEqual(hashlib.sha256(data.read()).hexdigest(), digest, filename)

    def test_files_are_the_rfc_archive_members(self):
        """
        Each file is identical to its member of the archive encoded in RFC 4475 Appendix A.1.
        """
        with open(os.path.join(CORPUS, "appendix-a.b64"), "rb") as handle:
            archive = base64.b64decode(b"".join(handle.read().split()))
        self.assertEqual(
            hashlib.sha256(archive).hexdigest(),
            "4ce03214334379f350f0d1f7998ac03dbe1ce046676551adca2a5e8fb0f819dd",
        )
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = {member.name: tar.extractfile(member).read() for member in tar.getmembers()}
        self.assertEqual(len(members), 50)
        self.assertIn("test.dat", members)
        for name in SECTIONS:
            self.assertEqual(load(name), members[name + ".dat"], name)


class ParserVerdictTests(SynchronousTestCase):
    """
    The messages RFC 4475 calls syntactically broken are rejected with the right status.
    """

    def test_parser_rejections(self):
        """
        Each framing or start-line error raises RemoteProtocolError with its status (RFC 4475 3.1.2,
        3.3.9).
        """
        for name, hint in PARSER_REJECTS.items():
            with self.assertRaises(RemoteProtocolError, msg=name) as caught:
                parse(name)
            self.assertEqual(caught.exception.status_hint, hint, f"{name} ({SECTIONS[name]})")

    def test_rejected_requests_can_be_answered(self):
        """
        Rejected requests still yield a response copying their headers; rejected responses are
        dropped.
        """
        for name, hint in PARSER_REJECTS.items():
            with self.assertRaises(RemoteProtocolError) as caught:
                parse(name)
            response = error_response(caught.exception)
            if name in ("scalarlg", "bigcode"):
                self.assertIsNone(response, name)
                continue
            self.assertEqual(response.status_code, hint, name)
            # Even a broken Via or CSeq is copied verbatim into the answer.
            self.assertEqual(
                response.headers.get("CSeq"), caught.exception.headers.get("CSeq"), name
            )

    def test_validation_verdicts(self):
        """
        Each message that parses gets the status RFC 4475 names from validate_request.
        """
        for name, expected in VALIDATION.items():
            request = parse(name)
            self.assertIsInstance(request, Request, name)
            self.assertEqual(validate_request(request), expected, f"{name} ({SECTIONS[name]})")

    def test_round_trip(self):
        """
        Every message that parses serialises to bytes that parse to the same message (a fixed
        point).
        """
        for name in set(VALIDATION) | RESPONSES:
            message = parse(name)
            again = parse_message(message.serialize())
            self.assertEqual(parse_message(again.serialize()), again, name)
            if "Content-Length" in message.headers and name != "dblreq":
                self.assertEqual(again, message, name)


class ValidMessageTests(SynchronousTestCase):
    """
    Field checks on RFC 4475 3.1.1 messages.
    """

    def test_wsinv(self):
        """
        The short tortuous INVITE's folded, spaced and mixed-form fields parse to their values
        (3.1.1.1).
        """
        request = parse("wsinv")
        self.assertEqual(request.uri.params, (("unknownparam", None),))
        self.assertEqual(request.to.tag, "1918181833n")
        self.assertEqual(request.from_.display_name, 'J Rosenberg \\"')
        self.assertEqual(request.from_.tag, "98asjd8")
        self.assertEqual(request.max_forwards, 68)
        self.assertEqual(request.cseq, CSeq(9, "INVITE"))
        self.assertEqual(
            [(via.transport, via.host, via.branch) for via in request.vias],
            [
                ("UDP", "192.0.2.2", "390skdjuw"),
                ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
                ("UDP", "192.168.255.111", "z9hG4bK30239"),
            ],
        )
        self.assertEqual(request.headers.get("Subject"), "")
        self.assertEqual(
            request.headers.get("NewFangledHeader"), "newfangled value continued newfangled value"
        )
        self.assertEqual(request.headers.get("UnknownHeaderWithUnusualValue"), ";;,,;;,;")
        [contact] = request.contacts
        self.assertEqual(contact.display_name, 'Quoted string ""')
        self.assertEqual(
            contact.params, (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
        )
        self.assertTrue(request.routes[0].uri.has_param("unknown-no-value"))
        self.assertEqual(len(request.body), 150)

    def test_intmeth(self):
        """
        Unusual but legal characters in method, URI, branch, display names and Call-ID survive
        (3.1.1.2).
        """
        request = parse("intmeth")
        self.assertEqual(request.method, "!interesting-Method0123456789_*+`.%indeed'~")
        self.assertEqual(request.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(request.uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        self.assertEqual(request.top_via.branch, "z9hG4bK-.!%66*_+`'~")
        self.assertEqual(request.to.display_name, "BEL:\x07 NUL:\x00 DEL:\x7f")
        self.assertEqual(request.from_.display_name, "token1~` token2'+_ token3*%!.-")
        self.assertEqual(request.from_.tag, "_token~1'+`*%!-.")
        self.assertEqual(request.call_id, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        self.assertEqual(
            request.headers.get("extensionHeader-!.%*+_`'~"), "\ufeff\u5927\u505c\u96fb"
        )
        self.assertEqual(parse_message(request.serialize()), request)

    def test_escapes(self):
        """
        % escapes are decoded in URIs only, never in methods or display names (3.1.1.3-3.1.1.5).
        """
        esc01 = parse("esc01")
        self.assertEqual(esc01.uri.user, "sips:user@example.com")
        self.assertEqual(esc01.from_.uri.user, "I have spaces")
        self.assertEqual(esc01.to.uri.user, "user")
        self.assertTrue(esc01.contacts[0].uri.has_param("lr"))
        self.assertEqual(esc01.contacts[0].uri.param("name"), "value%41")
        escnull = parse("escnull")
        self.assertEqual(escnull.to.uri.user, "null-\x00-null")
        self.assertEqual([contact.uri.user for contact in escnull.contacts], ["\x00", "\x00\x00"])
        esc02 = parse("esc02")
        self.assertEqual(esc02.method, "RE%47IST%45R")
        self.assertEqual(esc02.to.display_name, "%Z%45")
        self.assertEqual(len(esc02.contacts), 2)
        self.assertEqual(esc02.headers.get("C%6Fntact"), "<sip:alias2@host2.example.com>")

    def test_lwsdisp_and_longreq(self):
        """
        No LWS before '<' and very long values and many Vias are fine (3.1.1.6, 3.1.1.7).
        """
        self.assertEqual(parse("lwsdisp").from_.display_name, "caller")
        longreq = parse("longreq")
        self.assertEqual(len(longreq.vias), 34)
        self.assertEqual(longreq.vias[0].host, "sip33.example.com")
        self.assertEqual(longreq.to.uri.port, 6000)
        self.assertTrue(longreq.to.display_name.startswith("I have a user name of extremeextreme"))
        self.assertEqual(len(longreq.top_via.transport), 3)

    def test_dblreq(self):
        """
        Octets after Content-Length in a datagram are ignored: this is a REGISTER (3.1.1.8).
        """
        request = parse("dblreq")
        self.assertEqual(request.method, "REGISTER")
        self.assertEqual(request.body, b"")

    def test_semiuri_and_transports(self):
        """
        Semicolons in the user part and unknown Via transports parse (3.1.1.9, 3.1.1.10).
        """
        semiuri = parse("semiuri")
        self.assertEqual(semiuri.uri.user, "user;par=u@example.net")
        self.assertEqual(semiuri.uri.host, "example.com")
        self.assertEqual(len(semiuri.headers.get_all("Accept")), 6)
        self.assertEqual(
            [via.transport for via in parse("transports").vias],
            ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"],
        )

    def test_mpart01(self):
        """
        A multipart body with binary octets and bare LFs is carried untouched (3.1.1.11).
        """
        request = parse("mpart01")
        self.assertEqual(len(request.body), 553)
        self.assertIn(b"\n", request.body.replace(b"\r\n", b""))
        self.assertEqual(request.media_type, "multipart/mixed")
        self.assertEqual(request.serialize(), load("mpart01"))

    def test_reason_phrases(self):
        """
        UTF-8 and empty reason phrases are accepted (3.1.1.12, 3.1.1.13).
        """
        unreason = parse("unreason")
        self.assertIsInstance(unreason, Response)
        self.assertEqual(unreason.status_code, 200)
        self.assertTrue(unreason.reason.startswith("= 2**3 * 5**2 \u043d\u043e"))
        self.assertEqual(unreason.serialize(), load("unreason"))
        self.assertEqual(parse("noreason").reason, "")


class InvalidMessageTests(SynchronousTestCase):
    """
    What exactly is wrong with the RFC 4475 3.1.2 messages that parse.
    """

    def assertFieldError(self, name, field):
        with self.assertRaises(RemoteProtocolError, msg=name) as caught:
            getattr(parse(name), field)
        self.assertEqual(caught.exception.status_hint, 400)

    def test_name_addr_errors(self):
        """
        The broken To, From and Contact fields raise when read (3.1.2.6, 3.1.2.13-15).
        """
        self.assertFieldError("quotbal", "to")
        self.assertFieldError("regbadct", "contacts")
        self.assertFieldError("badaspec", "to")
        self.assertFieldError("baddn", "from_")
        self.assertFieldError("baddn", "to")

    def test_escruri_and_baddate(self):
        """
        The Request-URI carries headers (3.1.2.11) and the Date is not GMT (3.1.2.12).
        """
        self.assertEqual(parse("escruri").uri.headers, (("Route", "<sip:example.com>"),))
        self.assertEqual(parse("baddate").headers.get("Date"), "Fri, 01 Jan 2010 16:00:00 EST")

    def test_scalar_errors(self):
        """
        The overlarge CSeq is the error named in the exception (3.1.2.4, 3.1.2.5).
        """
        for name in ("scalar02", "scalarlg"):
            with self.assertRaises(RemoteProtocolError) as caught:
                parse(name)
            self.assertIn("CSeq", str(caught.exception))


class SemanticsTests(SynchronousTestCase):
    """
    RFC 4475 3.2 to 3.4: messages that parse, whose handling is decided above the parser.
    """

    def test_badbranch(self):
        """
        A branch of only the magic cookie parses; validation then asks for a 400 (3.2.1).
        """
        self.assertEqual(parse("badbranch").top_via.branch, "z9hG4bK")

    def test_unknown_schemes(self):
        """
        Unknown schemes parse as AbsoluteURI in the Request-URI and in To/From/Contact
        (3.3.2-3.3.4).
        """
        self.assertEqual(
            parse("unkscm").uri, AbsoluteURI("nobodyknowsthisscheme", "totallyopaquecontent")
        )
        self.assertEqual(parse("novelsc").uri.scheme, "soap.beep")
        unksm2 = parse("unksm2")
        self.assertEqual(str(unksm2.to.uri), "isbn:2983792873")
        self.assertEqual(unksm2.from_.uri.scheme, "http")
        self.assertEqual(unksm2.contacts[0].uri.scheme, "name")
        # A proxy forwards it like any other request (3.3.4).
        self.assertIsNone(validate_request(unksm2, for_proxy=True))

    def test_bext01(self):
        """
        Unknown Require options give 420 at a UAS, unknown Proxy-Require ones at a proxy (3.3.5).
        """
        request = parse("bext01")
        self.assertEqual(validate_request(request, supported={"100rel", "timer"}), 420)
        self.assertEqual(
            unsupported_options(request, {"100rel"}),
            ["nothingSupportsThis", "nothingSupportsThisEither"],
        )
        self.assertEqual(validate_request(request, supported=set(), for_proxy=True), 420)
        self.assertEqual(
            unsupported_options(request, (), for_proxy=True),
            ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"],
        )

    def test_invut(self):
        """
        An endpoint accepting only SDP answers the unknown body type with 415 (3.3.6).
        """
        self.assertEqual(validate_request(parse("invut"), accept=["application/sdp"]), 415)

    def test_regaut01(self):
        """
        The unknown authorization scheme parses, to be challenged by the registrar (3.3.7).
        """
        request = parse("regaut01")
        self.assertEqual(
            parse_auth_params(request.headers.get("Authorization")),
            ("NoOneKnowsThisScheme", {"opaque-data": "here"}),
        )

    def test_bcast(self):
        """
        The broadcast sent-by in the second Via parses; dropping the response is the proxy's job
        (3.3.10).
        """
        self.assertEqual(parse("bcast").vias[1].host, "255.255.255.255")

    def test_zeromf(self):
        """
        Max-Forwards 0 is fine for an endpoint and a 483 for a proxy (3.3.11).
        """
        self.assertEqual(validate_request(parse("zeromf"), for_proxy=True), 483)

    def test_contact_parameters(self):
        """
        Contact parameters outside <> are header parameters, inside are URI parameters
        (3.3.12-3.3.14).
        """
        cparam01 = parse("cparam01").contacts[0]
        self.assertEqual((cparam01.params, cparam01.uri.params), ((("unknownparam", None),), ()))
        cparam02 = parse("cparam02").contacts[0]
        self.assertEqual((cparam02.params, cparam02.uri.params), ((), (("unknownparam", None),)))
        regescrt = parse("regescrt").contacts[0]
        self.assertEqual(regescrt.uri.headers, (("Route", "<sip:sip.example.com>"),))
        self.assertEqual(str(regescrt.uri), "sip:user@example.com?Route=%3Csip:sip.example.com%3E")

    def test_sdp01(self):
        """
        The Accept offering no SDP is visible to the UA deciding on 406 or 400 (3.3.15).
        """
        self.assertEqual(parse("sdp01").headers.get_all("Accept"), ["text/nobodyKnowsThis"])

    def test_inv2543(self):
        """
        An RFC 2543 INVITE without branch, From tag, Max-Forwards or Content-Length is accepted
        (3.4.1).
        """
        request = parse("inv2543")
        self.assertIsNone(request.top_via.branch)
        self.assertIsNone(request.from_.tag)
        self.assertIsNone(request.max_forwards)
        self.assertTrue(request.body.startswith(b"v=0\r\n"))
        self.assertTrue(request.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n"))
        self.assertEqual(request.to.uri, SIPURI.parse("sip:+16505552222@ss1.example.net"))
        self.assertEqual(request.to.params, (("user", "phone"),))
