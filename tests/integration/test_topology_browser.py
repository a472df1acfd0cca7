"""
A real browser behind a home NAT: headless Chromium in the home namespace of the cloud topology
(L{tests.integration.test_topology_nat}) loads the official WebSDK over https from the gateway's
PUBLIC address, with a certificate from a CA this test makes and Chromium trusts for real (an
NSS database in a temporary HOME, filled with certutil - no --ignore-certificate-errors), opens
wss to the gateway there and calls a baresip phone on the Internet; the tone is checked at the
phone.  Off localhost a browser gives the microphone only to such a secure context.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_topology_browser
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import shutil
import subprocess

from twisted.internet import defer, ssl
from twisted.web.server import Site
from twisted.web.static import File

from tests.integration import audio
from tests.integration.peers import require_binary
from tests.integration.test_nat_registrar import NamespacedBaresip
from tests.integration.test_topology_nat import (
    INTERNET_PHONE, PUBLIC, PRIVATE, CloudTopologyTestCase, tcp_open,
)
from tests.web.browser import (
    CHROMIUM_FLAGS, PACKETS_FLOWING, browser_test, event_loop, wait_for, wait_until_true,
)
from tests.web.test_official_sdk import PAGE, OfficialSDKTestCase

WSS_PORT, PAGE_PORT = 8443, 8445


def make_certificates(directory: str, address: str = PUBLIC) -> tuple[str, str, str]:
    """
    A test CA and a server certificate for the IP C{address} signed by it (PEM paths: CA,
    server certificate, server key).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    # RSA for the server: the gateway's TLS endpoints fail the handshake with an EC key.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wcs-twisted test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(directory, name) for name in ("ca.pem", "server.pem", "key.pem"))
    with open(paths[0], "wb") as out:
        out.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as out:
        out.write(server.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return paths  # type: ignore[return-value]


def trusting_home(directory: str, ca: str) -> str:
    """
    A HOME whose NSS database (where Chromium on Linux looks for local roots) trusts C{ca}.
    """
    home = os.path.join(directory, "home")
    nssdb = os.path.join(home, ".pki", "nssdb")
    os.makedirs(nssdb)
    for argv in (["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
                 ["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "wcs-test-ca", "-t", "C,,",
                  "-i", ca]):
        subprocess.run(argv, check=True, capture_output=True, timeout=20)
    return home


def install_sdk(test) -> defer.Deferred:
    """
    Skip C{test} unless Chromium, certutil, npm and playwright are here; install the SDK
    (C{test._sdk_dir}).  Call before the thread enters the home namespace: npm reaches its
    registry from the host's.
    """
    require_binary("chromium")
    require_binary("certutil", "libnss3-tools")
    require_binary("npm")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        from twisted.trial.unittest import SkipTest
        raise SkipTest("the playwright Python package is not installed")
    return defer.Deferred.fromFuture(asyncio.ensure_future(
        OfficialSDKTestCase._install_sdk(test), loop=event_loop()))


async def open_sdk_page(test, playwright, tone_hz: int):
    """
    Chromium (trusting C{test.ca}, its microphone the tone) on the SDK page served by
    L{HomeBrowserTests.serve_sdk_page}; returns the browser, the page and its console lines.
    """
    home = trusting_home(test.workdir, test.ca)
    test.addCleanup(shutil.rmtree, home, ignore_errors=True)
    tone = audio.write_tone_wav(os.path.join(test.workdir, "mic.wav"), tone_hz, 30)
    browser = await playwright.chromium.launch(
        executable_path="/usr/bin/chromium", headless=True,
        args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={tone}"],
        env={**os.environ, "HOME": home})
    page = await browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    response = await page.goto(f"https://{PUBLIC}:{PAGE_PORT}/nat.html")
    test.assertEqual(response.status, 200)
    test.assertTrue(await page.evaluate("window.isSecureContext"))
    return browser, page, console


class HomeBrowserTestCase(CloudTopologyTestCase):
    """
    Chromium behind the home NAT, the official SDK over https/wss from the public address
    (the set-up; the tests are in subclasses).
    """

    timeout = 150

    def setUp(self):
        require_binary("baresip")
        return install_sdk(self).addCallback(lambda _: super(HomeBrowserTestCase, self).setUp())

    def gateway_settings(self) -> str:
        self.ca, certificate, key = make_certificates(self.workdir)
        return (f"tls_certificate={certificate}\ntls_private_key={key}\nwss.port={WSS_PORT}\n"
                "https.port=8444\n")

    def serve_sdk_page(self, site_dir: str) -> None:
        """
        The SDK and our page around it over https on the gateway's node (a static server in
        its namespace, reached through the 1:1 NAT at the public address).
        """
        with open(os.path.join(site_dir, "nat.html"), "w") as page:
            page.write(PAGE.replace('"127.0.0.1"', f'"{PUBLIC}"'))
        with open(os.path.join(self.workdir, "server.pem"), "rb") as cert, \
                open(os.path.join(self.workdir, "key.pem"), "rb") as key:
            options = ssl.PrivateCertificate.loadPEM(cert.read() + key.read()).options()
        with self.topology.inside(self.gw):
            port = self.reactor.listenSSL(PAGE_PORT, Site(File(site_dir)), options,
                                          interface=PRIVATE)
        self.addCleanup(port.stopListening)

    async def sdk_call(self, playwright, callee: str, tone_hz: int = 440):
        """
        Chromium on the SDK page connects as alice over wss and calls C{callee}; returns the
        browser and the page once the call is ESTABLISHED.
        """
        browser, page, console = await open_sdk_page(self, playwright, tone_hz)
        status = await page.evaluate("url => connect(url, 'alice')",
                                     f"wss://{PUBLIC}:{WSS_PORT}")
        self.assertEqual(status, "ESTABLISHED", console)
        await page.evaluate("callee => makeCall(callee)", callee)
        await page.wait_for_function("callStatuses.includes('ESTABLISHED')", timeout=30000)
        return browser, page


class HomeBrowserTests(HomeBrowserTestCase):
    """
    The SDK Phone page behind the home NAT calls a phone on the Internet.
    """

    @browser_test
    async def test_sdk_phone_page_calls_internet_phone(self):
        """
        The page's origin is https://203.0.113.10 with a certificate Chromium verifies; the
        SDK connects over wss, calls bob (a baresip on the Internet registered with the
        gateway), bob hears the fake microphone's tone, the browser receives audio.
        """
        from playwright.async_api import async_playwright

        self.serve_sdk_page(self._sdk_dir)
        self.assertTrue(tcp_open(PUBLIC, WSS_PORT), "no wss through the NAT")
        bob = NamespacedBaresip(self.topology, self.inet, INTERNET_PHONE, self.workdir, "bob",
                                self.reactor, registrar=f"{PUBLIC}:5060")
        self.addCleanup(bob.stop)
        await wait_for(bob.start(timeout=15))

        playwright = await async_playwright().start()
        try:
            browser, page = await self.sdk_call(playwright, "bob")
            await wait_until_true(page, f"inboundAudioPackets().then(n => n > {PACKETS_FLOWING})")
            heard = await wait_for(bob.wait_for_received_audio(1.5, timeout=15))
            measured = audio.dominant_frequency(heard)
            self.assertLess(abs(measured - 440), 10, f"{heard}: {measured} Hz, not 440")
            await page.evaluate("call.hangup()")
            await page.wait_for_function("callStatuses.includes('FINISH')", timeout=10000)
            await browser.close()
        finally:
            await playwright.stop()
