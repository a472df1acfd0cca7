# -*- test-case-name: tests.media.test_dtls -*-
"""
DTLS-SRTP key agreement (RFC 5763, RFC 5764) without sockets or an event loop.

aiortc's C{RTCDtlsTransport} runs the handshake as an asyncio task reading an
aioice queue, and then pushes every SRTP packet through that task too; the
gateway instead feeds datagrams in from its own Twisted port and takes the two
libsrtp sessions out once the handshake is done, so media never crosses an
asyncio queue.  What is reused from aiortc: the certificate (one per process is
enough), its OpenSSL context with the use_srtp extension, the SRTP profile
table and the key/salt split of the exported keying material.

Sans-I/O: L{DTLSSRTPEndpoint.receive} and L{DTLSSRTPEndpoint.handle_timeout}
return the datagrams to send; L{DTLSSRTPEndpoint.timeout} says when to call
the latter.  DTLS records are packed into datagrams of at most L{MTU} bytes on
record boundaries (OpenSSL's memory BIO is a byte stream).
"""

from __future__ import annotations

import enum
import struct
from typing import Optional

from aiortc.rtcdtlstransport import (
    SRTP_PROFILES,
    X509_DIGEST_ALGORITHMS,
    RTCCertificate,
    SRTPProtectionProfile,
    certificate_digest,
)
from OpenSSL import SSL
from pylibsrtp import Policy, Session

__all__ = ["DTLSError", "DTLSSRTPEndpoint", "DTLSState", "MTU", "RTCCertificate", "split_records"]

#: Largest DTLS datagram sent (fits any path MTU used by browsers).
MTU = 1200

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
        self._ssl = SSL.Connection(certificate._create_ssl_context(srtp_profiles=self._profiles))
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

