"""
Tests for L{wcs_twisted.sip.auth}.
"""

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.auth import (
    DigestAuthenticator,
    DigestChallenge,
    DigestCredentials,
    DigestResult,
    build_authorization,
    compute_digest_response,
    select_challenge,
)
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.uri import SIPURI

SECRET = b"0123456789abcdef0123456789abcdef"
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class KnownAnswerTests(SynchronousTestCase):
    """
    Known-answer vectors from the RFCs.
    """

    def test_rfc2617_example(self) -> None:
        """
        The RFC 2617 section 3.5 example (Mufasa, MD5, qop=auth) gives the
        published response.
        """
        response = compute_digest_response(
            "MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
            "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth", nc="00000001", cnonce="0a4f113b",
        )
        self.assertEqual(response, "6629fae49393a05397450978507c4ef1")

    def test_rfc2617_example_through_challenge(self) -> None:
        """
        Answering the RFC 2617 section 3.5 challenge text gives credentials
        carrying the published response, opaque and qop=auth.
        """
        challenge = DigestChallenge.parse(
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
            'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        )
        self.assertEqual(challenge.qop, ("auth", "auth-int"))
        self.assertEqual(challenge.algorithm, "MD5")
        value = build_authorization(
            challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b", 1
        )
        credentials = DigestCredentials.parse(value)
        self.assertEqual(credentials.response, "6629fae49393a05397450978507c4ef1")
        self.assertEqual(credentials.opaque, "5ccc069c403ebaf9f0171e9517f40e41")
        self.assertEqual(credentials.qop, "auth")
        self.assertEqual(credentials.nc, "00000001")
        self.assertEqual(credentials.cnonce, "0a4f113b")
        self.assertEqual(credentials.username, "Mufasa")
        self.assertIn("nc=00000001", value)
        self.assertIn("qop=auth", value)

    def test_rfc7616_md5_example(self) -> None:
        """
        The RFC 7616 section 3.9.1 example with MD5 gives the published
        response.
        """
        response = compute_digest_response(
            "MD5", "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
            "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop="auth", nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        self.assertEqual(response, "8ca523f5e9506fed4657c9700eebdbec")

    def test_rfc7616_sha256_example(self) -> None:
        """
        The RFC 7616 section 3.9.1 example with SHA-256 gives the published
        response.
        """
        challenge = DigestChallenge.parse(
            'Digest realm="http-auth@example.org", qop="auth, auth-int", '
            "algorithm=SHA-256, "
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
        )
        value = build_authorization(
            challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", 1,
        )
        credentials = DigestCredentials.parse(value)
        self.assertEqual(
            credentials.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        )
        self.assertEqual(credentials.algorithm, "SHA-256")


class ComputeDigestResponseTests(SynchronousTestCase):
    """
    Tests for L{compute_digest_response} variants (RFC 7616 3.4.1-3.4.3).
    """

    def test_without_qop(self) -> None:
        """
        Without qop the response is H(HA1:nonce:HA2), the RFC 2069 form
        (RFC 2617 3.2.2.1).
        """
        ha1 = md5_hex("Mufasa:testrealm@host.com:CircleOfLife")
        ha2 = md5_hex("GET:/dir/index.html")
        expected = md5_hex(f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}")
        self.assertEqual(
            compute_digest_response(
                "MD5", "Mufasa", "testrealm@host.com", "CircleOfLife", "GET",
                "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            ),
            expected,
        )

    def test_session_variant(self) -> None:
        """
        A -sess algorithm uses HA1 = H(H(user:realm:pass):nonce:cnonce)
        (RFC 7616 3.4.2).
        """
        inner = hashlib.sha256(b"u:r:p").hexdigest()
        ha1 = hashlib.sha256(f"{inner}:n:c".encode()).hexdigest()
        ha2 = hashlib.sha256(b"REGISTER:sip:r").hexdigest()
        expected = hashlib.sha256(f"{ha1}:n:00000002:c:auth:{ha2}".encode()).hexdigest()
        self.assertEqual(
            compute_digest_response(
                "SHA-256-sess", "u", "r", "p", "REGISTER", "sip:r", "n", "auth", "00000002", "c"
            ),
            expected,
        )

    def test_auth_int_covers_body(self) -> None:
        """
        qop=auth-int adds H(body) to A2 (RFC 7616 3.4.3).
        """
        body = b"v=0\r\n"
        ha1 = md5_hex("u:r:p")
        ha2 = md5_hex(f"INVITE:sip:b:{hashlib.md5(body).hexdigest()}")
        expected = md5_hex(f"{ha1}:n:00000001:c:auth-int:{ha2}")
        self.assertEqual(
            compute_digest_response("MD5", "u", "r", "p", "INVITE", "sip:b", "n",
                                    "auth-int", "00000001", "c", body),
            expected,
        )

    def test_algorithm_case_insensitive(self) -> None:
        """
        Algorithm names are matched case-insensitively (RFC 7616 3.3).
        """
        self.assertEqual(
            compute_digest_response("md5", "u", "r", "p", "GET", "/", "n"),
            compute_digest_response("MD5", "u", "r", "p", "GET", "/", "n"),
        )

    def test_unsupported(self) -> None:
        """
        Unknown algorithms and qop values are refused.
        """
        self.assertRaises(
            LocalProtocolError, compute_digest_response, "SHA-1", "u", "r", "p", "GET", "/", "n"
        )
        self.assertRaises(
            LocalProtocolError, compute_digest_response, "MD5", "u", "r", "p", "GET", "/", "n",
            "auth-conf", "00000001", "c",
        )


class DigestChallengeTests(SynchronousTestCase):
    """
    Tests for L{DigestChallenge} and L{select_challenge}.
    """

    def test_parse_and_format(self) -> None:
        """
        A challenge parses into its parameters and formats back to an
        equivalent challenge (RFC 7616 3.3).
        """
        challenge = DigestChallenge.parse(
            'Digest realm="atlanta.com", nonce="abc", algorithm=SHA-256, qop="auth", stale=TRUE'
        )
        self.assertEqual(challenge.realm, "atlanta.com")
        self.assertEqual(challenge.nonce, "abc")
        self.assertEqual(challenge.algorithm, "SHA-256")
        self.assertTrue(challenge.stale)
        self.assertEqual(DigestChallenge.parse(str(challenge)), challenge)

    def test_parse_errors(self) -> None:
        """
        Non-Digest schemes and challenges without realm or nonce are the
        peer's fault.
        """
        self.assertRaises(RemoteProtocolError, DigestChallenge.parse, 'Basic realm="x"')
        self.assertRaises(RemoteProtocolError, DigestChallenge.parse, 'Digest realm="x"')

    def test_select_prefers_sha256(self) -> None:
        """
        Among several challenges the strongest supported algorithm is chosen
        and unsupported ones are skipped (RFC 7616 3.7, RFC 8760 2.4).
        """
        chosen = select_challenge(
            [
                'Digest realm="r", nonce="1", algorithm=SHA-512-256, qop="auth"',
                'Digest realm="r", nonce="2", algorithm=MD5, qop="auth"',
                'Basic realm="r"',
                'Digest realm="r", nonce="3", algorithm=SHA-256, qop="auth"',
            ]
        )
        self.assertEqual(chosen.nonce, "3")
        self.assertIsNone(select_challenge(['Digest realm="r", nonce="1", algorithm=SHA-1']))

    def test_build_without_qop(self) -> None:
        """
        A challenge without qop is answered in the RFC 2069 form, without
        nc, cnonce or qop.
        """
        challenge = DigestChallenge.parse('Digest realm="r", nonce="n"')
        credentials = DigestCredentials.parse(
            build_authorization(challenge, "REGISTER", "sip:r", "u", "p", "cn", 1)
        )
        self.assertIsNone(credentials.qop)
        self.assertIsNone(credentials.nc)
        self.assertIsNone(credentials.cnonce)
        self.assertEqual(
            credentials.response,
            compute_digest_response("MD5", "u", "r", "p", "REGISTER", "sip:r", "n"),
        )

    def test_build_refuses_unsupported(self) -> None:
        """
        A challenge with an unknown algorithm cannot be answered.
        """
        challenge = DigestChallenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1')
        self.assertRaises(
            LocalProtocolError, build_authorization, challenge, "GET", "/", "u", "p", "c", 1
        )

    def test_quoting(self) -> None:
        """
        Quotes and backslashes in values are escaped in quoted-strings.
        """
        challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth"')
        value = build_authorization(challenge, "GET", "/", 'a"b\\c', "p", "c", 1)
        self.assertIn('username="a\\"b\\\\c"', value)


class DigestAuthenticatorTests(SynchronousTestCase):
    """
    Tests for L{DigestAuthenticator} (RFC 7616 3.3-3.5, RFC 3261 22.4).
    """

    def setUp(self) -> None:
        self.authenticator = DigestAuthenticator("atlanta.com", SECRET, nonce_lifetime=300.0)

    def answer(self, now=0.0, username="alice", password="wonderland", nc=1, index=0,
               method="REGISTER", challenge=None):
        if challenge is None:
            challenge = DigestChallenge.parse(self.authenticator.challenge(now)[index])
        return build_authorization(challenge, method, "sip:atlanta.com", username, password,
                                   "0a4f113b", nc)

    def verify(self, value, now=0.0, method="REGISTER"):
        return self.authenticator.verify(value, method, PASSWORDS.get, now)

    def test_challenge_one_per_algorithm(self) -> None:
        """
        A challenge lists SHA-256 then MD5, with qop=auth and one shared
        nonce (RFC 8760 2.4, RFC 7616 3.7).
        """
        values = self.authenticator.challenge(now=10.0)
        challenges = [DigestChallenge.parse(value) for value in values]
        self.assertEqual([c.algorithm for c in challenges], ["SHA-256", "MD5"])
        self.assertEqual({c.nonce for c in challenges}, {challenges[0].nonce})
        self.assertEqual([c.qop for c in challenges], [("auth",), ("auth",)])
        self.assertEqual([c.realm for c in challenges], ["atlanta.com"] * 2)
        self.assertFalse(challenges[0].stale)

    def test_stale_challenge(self) -> None:
        """
        challenge(stale=True) sets stale=true (RFC 7616 3.3).
        """
        for value in self.authenticator.challenge(now=0.0, stale=True):
            self.assertTrue(DigestChallenge.parse(value).stale)

    def test_nonces_unique(self) -> None:
        """
        Two challenges issued at the same instant get different nonces.
        """
        first = DigestChallenge.parse(self.authenticator.challenge(1.0)[0]).nonce
        second = DigestChallenge.parse(self.authenticator.challenge(1.0)[0]).nonce
        self.assertNotEqual(first, second)

    def test_non_utf8_parameter_malformed(self) -> None:
        """
        A parameter holding bytes that were not UTF-8 (kept as surrogates by the parser) is
        MALFORMED: the digest cannot be computed over it, and it must not raise.
        """
        value = self.answer().replace('uri="sip:atlanta.com"', 'uri="sip:atlanta.com\udcff"')
        self.assertIs(self.verify(value), DigestResult.MALFORMED)
        with self.assertRaises(RemoteProtocolError):
            DigestCredentials.parse(value)

    def test_uri_must_name_the_request_uri(self) -> None:
        """
        RFC 2617 3.2.2.5: given the Request-URI, credentials for another URI are
        URI_MISMATCH; an equivalent URI (RFC 3261 19.1.4) passes.
        """
        value = self.answer()
        result = self.authenticator.verify(value, "REGISTER", PASSWORDS.get, 0.0,
                                           request_uri=SIPURI.parse("sip:biloxi.com"))
        self.assertIs(result, DigestResult.URI_MISMATCH)
        result = self.authenticator.verify(value, "REGISTER", PASSWORDS.get, 0.0,
                                           request_uri=SIPURI.parse("sip:ATLANTA.com"))
        self.assertIs(result, DigestResult.OK)

    def test_valid_credentials(self) -> None:
        """
        Credentials answering our challenge with either algorithm verify.
        """
        self.assertIs(self.verify(self.answer(index=0)), DigestResult.OK)
        self.assertIs(self.verify(self.answer(index=1)), DigestResult.OK)

    def test_wrong_password(self) -> None:
        """
        A wrong password is bad credentials, not stale.
        """
        self.assertIs(self.verify(self.answer(password="nope")), DigestResult.BAD_CREDENTIALS)

    def test_unknown_user(self) -> None:
        """
        An unknown user is bad credentials.
        """
        self.assertIs(self.verify(self.answer(username="mallory")), DigestResult.BAD_CREDENTIALS)

    def test_method_covered(self) -> None:
        """
        Credentials computed for another method do not verify (RFC 7616 3.4.3).
        """
        value = self.answer(method="INVITE")
        self.assertIs(self.verify(value, method="REGISTER"), DigestResult.BAD_CREDENTIALS)

    def test_other_realm(self) -> None:
        """
        Credentials for another realm are bad credentials.
        """
        challenge = DigestChallenge.parse(self.authenticator.challenge(0.0)[0])
        other = DigestChallenge(realm="biloxi.com", nonce=challenge.nonce,
                                algorithm="SHA-256", qop=("auth",))
        self.assertIs(self.verify(self.answer(challenge=other)), DigestResult.BAD_CREDENTIALS)

    def test_algorithm_not_offered(self) -> None:
        """
        Credentials using an algorithm the authenticator does not offer are
        refused.
        """
        authenticator = DigestAuthenticator("atlanta.com", SECRET, algorithms=("SHA-256",))
        challenge = DigestChallenge.parse(authenticator.challenge(0.0)[0])
        md5 = DigestChallenge(realm="atlanta.com", nonce=challenge.nonce, algorithm="MD5",
                              qop=("auth",))
        value = self.answer(challenge=md5)
        self.assertIs(authenticator.verify(value, "REGISTER", PASSWORDS.get, 0.0),
                      DigestResult.BAD_CREDENTIALS)

    def test_expired_nonce_is_stale(self) -> None:
        """
        A correct digest over an expired nonce is stale, so the client can
        retry without prompting (RFC 7616 3.3 "stale").
        """
        value = self.answer(now=0.0)
        self.assertIs(self.verify(value, now=300.0), DigestResult.OK)
        value = self.answer(now=0.0, nc=2)
        self.assertIs(self.verify(value, now=300.5), DigestResult.STALE)

    def test_expired_nonce_wrong_password(self) -> None:
        """
        A wrong digest over an expired nonce is bad credentials, not stale.
        """
        value = self.answer(now=0.0, password="nope")
        self.assertIs(self.verify(value, now=1000.0), DigestResult.BAD_CREDENTIALS)

    def test_foreign_nonce_is_stale(self) -> None:
        """
        A correct digest over a nonce we did not issue (another secret) is
        stale: the client is re-challenged with a fresh nonce.
        """
        other = DigestAuthenticator("atlanta.com", b"another secret, sixteen+ bytes")
        challenge = DigestChallenge.parse(other.challenge(0.0)[0])
        self.assertIs(self.verify(self.answer(challenge=challenge)), DigestResult.STALE)
        forged = DigestChallenge(realm="atlanta.com", nonce="not-a-nonce", algorithm="MD5",
                                 qop=("auth",))
        self.assertIs(self.verify(self.answer(challenge=forged)), DigestResult.STALE)

    def test_replay(self) -> None:
        """
        Reusing a nonce-count is a replay; a higher one is accepted
        (RFC 7616 3.4 "nc").
        """
        challenge = DigestChallenge.parse(self.authenticator.challenge(0.0)[0])
        first = self.answer(challenge=challenge, nc=1)
        self.assertIs(self.verify(first, now=1.0), DigestResult.OK)
        self.assertIs(self.verify(first, now=2.0), DigestResult.REPLAY)
        self.assertIs(self.verify(self.answer(challenge=challenge, nc=3), now=3.0), DigestResult.OK)
        self.assertIs(self.verify(self.answer(challenge=challenge, nc=2), now=4.0),
                      DigestResult.REPLAY)

    def test_no_qop_single_use(self) -> None:
        """
        Credentials without qop (RFC 2069 form) are accepted once per nonce.
        """
        nonce = DigestChallenge.parse(self.authenticator.challenge(0.0)[0]).nonce
        challenge = DigestChallenge(realm="atlanta.com", nonce=nonce, algorithm="MD5")
        value = self.answer(challenge=challenge)
        self.assertNotIn("nc=", value)
        self.assertIs(self.verify(value), DigestResult.OK)
        self.assertIs(self.verify(value), DigestResult.REPLAY)

    def test_malformed(self) -> None:
        """
        Values that are not valid Digest credentials are malformed.
        """
        for value in [
            'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==',
            'Digest username="alice", realm="atlanta.com"',
            'Digest username="alice", realm="atlanta.com", nonce="n", uri="sip:a", '
            'response="0", qop=auth',
            'Digest username="alice", realm="atlanta.com", nonce="n", uri="sip:a", '
            'response="0", qop=auth, nc=zz, cnonce="c"',
            'Digest username="alice", realm="atlanta.com", nonce="n", uri="sip:a", '
            'response="0", qop=auth-conf, nc=00000001, cnonce="c"',
        ]:
            self.assertIs(self.verify(value), DigestResult.MALFORMED, value)

    def test_tracking_bounded(self) -> None:
        """
        The nonce-count table never exceeds its bound, and a nonce that was
        pushed out of it is answered as stale rather than accepted again.
        """
        authenticator = DigestAuthenticator("atlanta.com", SECRET, max_tracked_nonces=2)
        challenges = [DigestChallenge.parse(authenticator.challenge(float(i))[0]) for i in range(3)]
        for challenge in challenges:
            value = self.answer(challenge=challenge)
            self.assertIs(authenticator.verify(value, "REGISTER", PASSWORDS.get, 5.0),
                          DigestResult.OK)
            self.assertLessEqual(authenticator.tracked_nonces, 2)
        replay = self.answer(challenge=challenges[0], nc=1)
        self.assertIs(authenticator.verify(replay, "REGISTER", PASSWORDS.get, 6.0),
                      DigestResult.STALE)
        fresh = DigestChallenge.parse(authenticator.challenge(7.0)[0])
        self.assertIs(authenticator.verify(self.answer(challenge=fresh), "REGISTER",
                                           PASSWORDS.get, 7.0), DigestResult.OK)

    def test_constructor_validation(self) -> None:
        """
        A short secret, no algorithm or an unknown algorithm are refused.
        """
        self.assertRaises(ValueError, DigestAuthenticator, "r", b"short")
        self.assertRaises(ValueError, DigestAuthenticator, "r", SECRET, algorithms=())
        self.assertRaises(ValueError, DigestAuthenticator, "r", SECRET, algorithms=("SHA-1",))
