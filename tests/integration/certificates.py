"""
Certificates made by the tests: a test CA and the server certificates it signs, as objects and
as PEM files for real peers (Kamailio's tls module, baresip, our own listeners).
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet import ssl


def make_certificate(subject: str, issuer=None, sans=()):
    """
    (certificate, key) for C{subject}, signed by C{issuer} (a (certificate, key) pair) or by
    itself as a CA.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                              critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def trust_root(certificate) -> ssl.IOpenSSLTrustRoot:
    return ssl.trustRootFromCertificates(
        [ssl.Certificate(crypto.X509.from_cryptography(certificate))])


def server_certificate(ca, names=("localhost",), addresses=("127.0.0.1",)):
    """
    A certificate signed by C{ca} for the DNS C{names} and IP C{addresses}.
    """
    sans = [x509.DNSName(name) for name in names]
    sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    return make_certificate(names[0] if names else addresses[0], issuer=ca, sans=sans)


def write_pem(directory: str, stem: str, pair) -> tuple[str, str]:
    """
    Write C{pair} (certificate, key) as C{<stem>.crt} and C{<stem>.key}; return both paths.
    """
    os.makedirs(directory, exist_ok=True)
    certificate, key = pair
    crt = os.path.join(os.path.abspath(directory), f"{stem}.crt")
    pem_key = os.path.join(os.path.abspath(directory), f"{stem}.key")
    with open(crt, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(pem_key, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return crt, pem_key


def write_combined_pem(directory: str, stem: str, pair) -> str:
    """
    C{<stem>.pem}: the certificate then its key in one file (as baresip's sip_certificate).
    """
    paths = write_pem(directory, stem, pair)
    combined = os.path.join(os.path.abspath(directory), f"{stem}.pem")
    with open(combined, "wb") as out:
        for path in paths:
            with open(path, "rb") as part:
                out.write(part.read())
    return combined
