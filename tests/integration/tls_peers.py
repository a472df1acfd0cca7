"""
Real SIP peers over TLS: Kamailio with its tls module (Debian kamailio-tls-modules) listening on
a TLS port beside its UDP/TCP one, with a certificate from the test CA.

What running it taught us (kamailio 5.6.3):
  - the tls module needs C{enable_tls=yes}, a C{listen=tls:...} and C{modparam("tls",
    "config", file)}; the file has one C{[server:default]} and one C{[client:default]} section.
  - As a client Kamailio checks the chain of the server certificate against C{ca_list}
    (C{verify_certificate = yes}) but not the name; as a server it asks for no client
    certificate (C{require_certificate = no}), as SIP phones have none.
  - A contact registered over TLS is reached by a new TLS connection to the contact's address
    (no C{fix_nated_register} here), so our Contact must name our TLS listening port.
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial.unittest import SkipTest

from tests.integration.certificates import server_certificate, write_pem
from tests.integration.peers import LOOPBACK, Baresip, Kamailio, free_port
from wcs_twisted.config import Settings
from wcs_twisted.tap import build_service

_TLS_CFG = """\
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {certificate}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = {ca}
"""


class KamailioTLS(Kamailio):
    """
    L{Kamailio} that also listens on C{tls_port} with C{certificate}/C{key}, and trusts C{ca}
    for the TLS connections it opens.
    """

    def __init__(self, tmpdir, certificate: str, key: str, ca: str, **kwargs) -> None:
        super().__init__(tmpdir, **kwargs)
        if not any(os.path.exists(os.path.join(d, "tls.so"))
                   for d in (self.module_dir,)):
            raise SkipTest("kamailio tls module missing (apt-get install kamailio-tls-modules)")
        self.tls_port = free_port()
        self.certificate, self.key, self.ca = certificate, key, ca
        self.tls_config_path = os.path.join(self.directory, "tls.cfg")

    @property
    def tls_address(self) -> str:
        return f"{self.host}:{self.tls_port}"

    def config_text(self) -> str:
        text = super().config_text()
        listen = f"listen=tcp:{self.host}:{self.port}\n"
        text = text.replace(listen, listen + f"listen=tls:{self.host}:{self.tls_port}\n"
                            "enable_tls=yes\n", 1)
        modules = 'loadmodule "kex.so"'
        return text.replace(modules, f'loadmodule "tls.so"\n{modules}', 1).replace(
            'modparam("usrloc", "db_mode", 0)',
            f'modparam("tls", "config", "{self.tls_config_path}")\n'
            'modparam("usrloc", "db_mode", 0)', 1)

    def write_config(self):
        path = super().write_config()
        with open(self.tls_config_path, "w") as f:
            f.write(_TLS_CFG.format(key=self.key, certificate=self.certificate, ca=self.ca))
        return path


class BaresipTLS(Baresip):
    """
    L{Baresip} whose account reaches its registrar over TLS, trusting C{ca} (C{sip_cafile}).

    Without C{certificate} (one PEM file with the certificate and its key) it cannot accept a
    TLS connection, so a proxy that opens one to its Contact (Kamailio without NAT handling)
    cannot reach it; our registrar uses its registration's connection instead.

    baresip 1.0.0 keeps config paths in short buffers: the files go through the same short
    /tmp symlink directory as its WAV and recordings.
    """

    def __init__(self, tmpdir, name, ca: str, certificate: str | None = None,
                 **kwargs) -> None:
        super().__init__(tmpdir, name, transport="tls", **kwargs)
        self.ca = os.path.abspath(ca)
        self.certificate = certificate and os.path.abspath(certificate)

    def _link(self, name: str, target: str) -> str:
        link = self._short_path(name)
        if not os.path.lexists(link):
            os.symlink(target, link)
        return link

    def config_text(self) -> str:
        text = super().config_text() + f"sip_cafile\t\t{self._link('ca.pem', self.ca)}\n"
        if self.certificate:
            text += f"sip_certificate\t\t{self._link('cert.pem', self.certificate)}\n"
        return text


def tls_settings(ca, pki: str, **values) -> Settings:
    """
    Settings of a loopback server with UDP, TCP and TLS on port 0 (SIP, HTTP, WebSocket), its
    certificate signed by the test C{ca} (written to C{pki}), trusting that CA for SIP TLS.
    """
    ca_path = write_pem(pki, "ca", ca)[0]
    certificate, key = write_pem(pki, "gateway", server_certificate(ca))
    defaults = dict(bind_address=LOOPBACK, sip_port=0, sip_tls_port=0, ws_port=0, http_port=0,
                    https_port=0, wss_port=0, sip_transports=("udp", "tcp", "tls"),
                    tls_certificate=certificate, tls_private_key=key,
                    sip_tls_ca_certificates=ca_path)
    return Settings(**{**defaults, **values})


@defer.inlineCallbacks
def start_server(test, settings: Settings, reactor):
    """
    Build and start the server for C{test} (stopped by a cleanup); fire with it once every
    listener is bound.
    """
    root = build_service(settings, reactor)
    root.service.startService()
    test.addCleanup(lambda: root.service.running and root.service.stopService())
    yield defer.gatherResults([listener.when_ready() for listener in root.listeners])
    return root
