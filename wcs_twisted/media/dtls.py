# -*- test-case-name: tests.media.test_dtls -*-
"""
DTLS-SRTP key agreement (RFC 5763, RFC 5764) without sockets or an event loop.

aiortc's C{RTCDtlsTransport} runs the handshake as an asyncio task reading an
aioice queue, and then pushes every SRTP packet through that task too; the
gateway instead feeds datagrams in from its own Twisted port and takes the two
libsrtp sessions out once the handshake is done, so media never crosses an
asyncio queue.  What is reused from aiortc: the certificate (one per process is
enough) and the SRTP profile table are written here with aiortc's values, on
the public APIs of cryptography, pyOpenSSL and pylibsrtp, so no private aiortc
name is needed; only the public C{RTCDtlsFingerprint} value is aiortc's.

Sans-I/O: L{DTLSSRTPEndpoint.receive} and L{DTLSSRTPEndpoint.handle_timeout}
return the datagrams to send; L{DTLSSRTPEndpoint.timeout} says when to call
the latter.  DTLS records are packed into datagrams of at most L{MTU} bytes on
record boundaries (OpenSSL's memory BIO is a byte stream).
"""

from __future__ import annotations

import datetime
import enum
import os
import struct
from dataclasses import dataclass
from typing import Optional

import pylibsrtp
from aiortc import RTCDtlsFingerprint
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from pylibsrtp import Policy, Session

__all__ = [
    "DTLSError",
    "DTLSSRTPEndpoint",
    "DTLSState",
    "MTU",
    "RTCCertificate",
    "SRTPProtectionProfile",
    "SRTP_PROFILES",
    "split_records",
]

#: Largest DTLS datagram sent (fits any path MTU used by browsers).
MTU = 1200

#: Fingerprint hashes we write and check (RFC 8122 names).
X509_DIGEST_ALGORITHMS = {
    "sha-256": hashes.SHA256(),
    "sha-384": hashes.SHA384(),
    "sha-512": hashes.SHA512(),
}

#: Ciphers offered in the handshake: ECDSA certificates, as browsers use.
_CIPHERS = (b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
            b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")


@dataclass(frozen=True)
class SRTPProtectionProfile:
    """
    One RFC 5764 use_srtp profile: its libsrtp and OpenSSL names and key sizes.
    """

    libsrtp_profile: int
    openssl_profile: bytes
    key_length: int
    salt_length: int

    def get_key_and_salt(self, material: bytes, index: int) -> bytes:
        """
        Key and salt of side C{index} (0 client, 1 server) from the exported keying material,
        laid out client key, server key, client salt, server salt (RFC 5764 section 4.2).
        """
        key_start = index * self.key_length
        salt_start = 2 * self.key_length + index * self.salt_length
        return (material[key_start:key_start + self.key_length]
                + material[salt_start:salt_start + self.salt_length])


def _available_profiles() -> list[SRTPProtectionProfile]:
    # AES-GCM may be missing, depending on how libsrtp2 was built.
    profiles = []
    for libsrtp_name, key_length, salt_length in (
        ("AEAD_AES_256_GCM", 32, 12),
        ("AEAD_AES_128_GCM", 16, 12),
        ("AES128_CM_SHA1_80", 16, 14),
    ):
        profile = SRTPProtectionProfile(getattr(Policy, "SRTP_PROFILE_" + libsrtp_name),
                                        ("SRTP_" + libsrtp_name).encode(), key_length, salt_length)
        try:
            Policy(srtp_profile=profile.libsrtp_profile)
        except pylibsrtp.Error:  # pragma: no cover
            continue
        profiles.append(profile)
    return profiles


#: The SRTP profiles this libsrtp supports, in our order of preference.
SRTP_PROFILES: list[SRTPProtectionProfile] = _available_profiles()


def certificate_digest(certificate: x509.Certificate, algorithm: str) -> str:
    """
    The RFC 8122 fingerprint of C{certificate}: upper-case hex pairs joined by colons.
    """
    text = certificate.fingerprint(X509_DIGEST_ALGORITHMS[algorithm]).hex().upper()
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


class RTCCertificate:
    """
    A self-signed ECDSA certificate and its key (the W3C C{RTCCertificate}: one per process
    is enough), and the DTLS context that presents it.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}

    @classmethod
    def generateCertificate(cls) -> "RTCCertificate":
        """
        A new P-256 key and a certificate for it, valid from yesterday for 30 days.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, os.urandom(16).hex())])
        now = datetime.datetime.now(tz=datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        """
        The certificate's fingerprint with each algorithm we support, for a=fingerprint.
        """
        return [RTCDtlsFingerprint(algorithm=algorithm,
                                   value=certificate_digest(self.cert, algorithm))
                for algorithm in X509_DIGEST_ALGORITHMS]

    def ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        """
        The DTLS context presenting this certificate, asking for the peer's (checked against
        the SDP fingerprint after the handshake, not against a CA) and offering use_srtp.

        One per certificate and profile list, shared by every connection: a context per call
        cost ~21 KiB of malloc churn, and the soak (bench/soak.py) showed that churn as RSS
        growth.  Sharing is safe because nothing per call lives in it: the session cache is
        off (it would keep every peer's session), and so are tickets.  Idle connections
        release their record buffers (~40 KiB each) for the rest of the call.
        """
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is not None:
            return context
        context = SSL.Context(SSL.DTLS_METHOD)
        context.set_options(SSL.OP_NO_TICKET)
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                           lambda *args: True)
        context.use_certificate(self.cert)
        context.use_privatekey(self.key)
        context.set_cipher_list(_CIPHERS)
        context.set_tlsext_use_srtp(b":".join(key))
        self._contexts[key] = context
        return context

_RECORD_HEADER = struct.Struct("!BHHIHH")  # type, version, epoch, seq(48), length


class DTLSState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


class DTLSError(Exception):
    """
    The handshake failed: a bad fingerprint is the peer's fault, and so is a
    handshake error; the call fails either way.
    """


def split_records(data: bytes, mtu: int = MTU) -> list[bytes]:
    """
    Pack the DTLS records in C{data} into datagrams of at most C{mtu} bytes,
    never splitting a record (a record larger than C{mtu} goes alone).
    """
    datagrams: list[bytes] = []
    start = offset = 0
    total = len(data)
    while offset < total:
        if total - offset < 13:
            offset = total
            break
        length = struct.unpack_from("!H", data, offset + 11)[0]
        end = offset + 13 + length
        if end - start > mtu and offset > start:
            datagrams.append(data[start:offset])
            start = offset
        offset = min(end, total)
    if start < total:
        datagrams.append(data[start:total])
    return datagrams


class DTLSSRTPEndpoint:
    """
    One side of a DTLS-SRTP association.

    @ivar role: C{"server"} (we answered a=setup:passive, or the peer chose
        active) or C{"client"}.
    @ivar tx_srtp: the libsrtp session protecting what we send, once connected.
    @ivar rx_srtp: the libsrtp session checking what we receive.
    """

    def __init__(
        self,
        certificate: RTCCertificate,
        role: str,
        remote_fingerprints: list[tuple[str, str]],
        srtp_profiles: Optional[list[SRTPProtectionProfile]] = None,
    ) -> None:
        """
        @param remote_fingerprints: (algorithm, value) pairs from the peer's
            a=fingerprint lines.
        """
        if role not in ("client", "server"):
            raise ValueError(f"DTLS role must be client or server, not {role!r}")
        if not any(alg.lower() in X509_DIGEST_ALGORITHMS for alg, _ in remote_fingerprints):
            raise DTLSError("no usable remote fingerprint")
        self.role = role
        self.state = DTLSState.NEW
        self.remote_fingerprints = remote_fingerprints
        self.profile: Optional[SRTPProtectionProfile] = None
        self.tx_srtp: Optional[Session] = None
        self.rx_srtp: Optional[Session] = None
        self.error: Optional[str] = None
        self._profiles = srtp_profiles or SRTP_PROFILES
        self._ssl = SSL.Connection(certificate.ssl_context(self._profiles))
        if role == "server":
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()
        self._ssl.set_ciphertext_mtu(MTU)

    def start(self) -> list[bytes]:
        """
        Begin the handshake; a client's first flight comes back.
        """
        if self.state is DTLSState.NEW:
            self.state = DTLSState.CONNECTING
            if self.role == "client":
                self._step()
        return self._pending()

    def receive(self, data: bytes) -> list[bytes]:
        """
        Feed one DTLS datagram; return the datagrams to send back.
        """
        if self.state in (DTLSState.CLOSED, DTLSState.FAILED):
            return []
        if self.state is DTLSState.NEW:
            self.state = DTLSState.CONNECTING
        self._ssl.bio_write(data)
        if self.state is DTLSState.CONNECTING:
            self._step()
        else:
            try:
                self._ssl.recv(1500)
            except SSL.ZeroReturnError:
                self.state = DTLSState.CLOSED
            except SSL.WantReadError:
                pass
            except SSL.Error:
                pass
        return self._pending()

    def timeout(self) -> Optional[float]:
        """
        Seconds until L{handle_timeout} should run, or C{None}.
        """
        if self.state is not DTLSState.CONNECTING:
            return None
        return self._ssl.DTLSv1_get_timeout()

    def handle_timeout(self) -> list[bytes]:
        """
        Retransmit the last flight when its timer expired.
        """
        if self.state is DTLSState.CONNECTING:
            self._ssl.DTLSv1_handle_timeout()
        return self._pending()

    def close(self) -> list[bytes]:
        """
        Send close_notify.
        """
        if self.state is DTLSState.CONNECTED:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass
        self.state = DTLSState.CLOSED
        return self._pending()

    # -- internals -------------------------------------------------------------------

    def _step(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as e:
            self._fail(f"DTLS handshake failed: {e}")
            return
        self._connected()

    def _connected(self) -> None:
        certificate = self._ssl.get_peer_certificate(as_cryptography=True)
        if certificate is None:
            self._fail("DTLS peer sent no certificate")
            return
        checked = 0
        for algorithm, value in self.remote_fingerprints:
            algorithm = algorithm.lower()
            if algorithm in X509_DIGEST_ALGORITHMS:
                if value.upper() != certificate_digest(certificate, algorithm):
                    self._fail("DTLS certificate does not match the SDP fingerprint")
                    return
                checked += 1
        if not checked:
            self._fail("no usable fingerprint")
            return
        selected = self._ssl.get_selected_srtp_profile()
        for profile in self._profiles:
            if profile.openssl_profile == selected:
                break
        else:
            self._fail("no SRTP profile negotiated")
            return
        material = self._ssl.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length)
        )
        # RFC 5764 section 4.2: client key, server key, client salt, server salt.
        ours, theirs = (1, 0) if self.role == "server" else (0, 1)
        tx_policy = Policy(
            key=profile.get_key_and_salt(material, ours),
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile.libsrtp_profile,
        )
        tx_policy.allow_repeat_tx = True
        tx_policy.window_size = 1024
        rx_policy = Policy(
            key=profile.get_key_and_salt(material, theirs),
            ssrc_type=Policy.SSRC_ANY_INBOUND,
            srtp_profile=profile.libsrtp_profile,
        )
        rx_policy.window_size = 1024
        self.profile = profile
        self.tx_srtp = Session(tx_policy)
        self.rx_srtp = Session(rx_policy)
        self.state = DTLSState.CONNECTED

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.state = DTLSState.FAILED

    def _pending(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                chunk = self._ssl.bio_read(65536)
            except SSL.WantReadError:
                break
            except SSL.Error:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return []
        return split_records(b"".join(chunks))

