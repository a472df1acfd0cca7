"""
The gateway as deployed on a cloud VM: `twistd wcs` on a private address behind a 1:1 NAT that
does not hairpin, a phone on the Internet, a phone on the private LAN, and browsers (the aiortc
WCS client) behind a masquerading home NAT - each in a network namespace the test creates.

    home (192.168.1.2) -- homenat (MASQUERADE, 198.51.100.2) -- inet (198.51.100.1,
    203.0.113.20: the Internet phone) -- cloud (203.0.113.1; 203.0.113.10 DNAT/SNAT to
    10.0.0.10) -- gw (10.0.0.10: the gateway);  cloud (10.0.1.1) -- lan (10.0.1.20: LAN phone)

What each peer receives is captured (sipp's message trace, the client's SDP) and checked: the
public address toward the Internet, the private one toward the LAN, and never the other.

    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_topology_nat
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.integration import audio
from tests.integration.netns import Topology, renew_default_executor, require_netns
from tests.integration.peers import PeerProcess, poll, require_binary, sipp_scenario
from tests.integration.test_local_mode import first_message
from tests.integration.wcs_client import WCSClient

PUBLIC, PRIVATE = "203.0.113.10", "10.0.0.10"
CLOUD_WAN, INTERNET_PHONE = "203.0.113.1", "203.0.113.20"
INET_HOME_SIDE, HOME_WAN = "198.51.100.1", "198.51.100.2"
CLOUD_LAN, LAN_ROUTER, LAN_PHONE = "10.0.0.1", "10.0.1.1", "10.0.1.20"
HOME_ROUTER, BROWSER = "192.168.1.1", "192.168.1.2"
INET_PROVIDER_SIDE = "192.0.2.1"
WS_PORT, SIP_PORT = 8080, 5060

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gateway_config(workdir: str, extra: str = "") -> str:
    """
    What an operator writes for a cloud VM (docs/operations.md, Behind NAT), plus C{extra}.
    """
    path = os.path.join(workdir, "wcs.properties")
    with open(path, "w") as handle:
        handle.write(f"ip={PUBLIC}\nip_local={PRIVATE}\nws.port={WS_PORT}\nhttp.port=8081\n"
                     f"sip_port={SIP_PORT}\nsip_transports=udp\nmedia_port_from=31000\n"
                     "media_port_to=31100\ncall_anonymous=any\n"
                     f"call_allowed_destinations={INTERNET_PHONE},{LAN_PHONE}\n"
                     f"state_dir={os.path.join(workdir, 'var')}\n{extra}")
    return path


def tcp_open(host: str, port: int) -> bool:
    """
    Whether a TCP connection to C{host:port} is accepted (from this thread's namespace).
    """
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class CloudTopologyTestCase(TestCase):
    """
    The namespaces, the gateway process, and this thread moved into the home network (so
    the WCS clients it runs sit behind the home NAT).
    """

    timeout = 90

    def setUp(self):
        require_netns()
        require_binary("sipp", "sip-tester")
        from twisted.internet import reactor

        self.reactor = reactor
        # First registered, so it runs last, once this thread has left the home namespace.
        self.addCleanup(renew_default_executor, reactor)
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        net = self.topology = Topology("wtn")
        self.addCleanup(net.destroy)
        self.inet, self.cloud = net.namespace("inet"), net.namespace("cloud")
        self.gw, self.lan = net.namespace("gw"), net.namespace("lan")
        self.homenat, self.home = net.namespace("hnat"), net.namespace("home")
        #: The interface names of each link, by the namespace it serves.
        self.links = {
            "cloud": net.link(self.cloud, f"{CLOUD_WAN}/24", self.inet, f"{INTERNET_PHONE}/24"),
            "home": net.link(self.homenat, f"{HOME_WAN}/24", self.inet, f"{INET_HOME_SIDE}/24"),
            "gw": net.link(self.gw, f"{PRIVATE}/24", self.cloud, f"{CLOUD_LAN}/24"),
            "lan": net.link(self.lan, f"{LAN_PHONE}/24", self.cloud, f"{LAN_ROUTER}/24"),
            "browser": net.link(self.home, f"{BROWSER}/24", self.homenat, f"{HOME_ROUTER}/24"),
        }
        cloud_wan, home_wan = self.links["cloud"][0], self.links["home"][0]
        net.forward(self.inet)
        net.route(self.cloud, "default", INTERNET_PHONE)
        net.route(self.homenat, "default", INET_HOME_SIDE)
        net.route(self.gw, "default", CLOUD_LAN)
        net.route(self.lan, "default", LAN_ROUTER)
        net.route(self.home, "default", HOME_ROUTER)
        net.one_to_one_nat(self.cloud, cloud_wan, PUBLIC, PRIVATE)
        net.masquerade(self.homenat, home_wan)
        return self.start_gateway()

    @defer.inlineCallbacks
    def start_gateway(self):
        gateway = PeerProcess("twistd wcs", os.path.join(self.workdir, "gateway.log"),
                              self.reactor)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        gateway.spawn(self.topology.command(self.gw, [
            twistd, "-n", "--reactor=asyncio", "--pidfile=", "-l",
            os.path.join(self.workdir, "twistd.log"), "wcs", "--config",
            gateway_config(self.workdir, self.gateway_settings())]), cwd=ROOT)
        self.addCleanup(gateway.stop)
        self.addCleanup(self.topology.enter(self.home))
        yield poll(lambda: tcp_open(PUBLIC, WS_PORT), 40, self.reactor, 0.2,
                   message=lambda: "the gateway never listened on ws through the NAT: "
                   + gateway.describe() + self.twistd_log())
        self.gateway = gateway

    def gateway_settings(self) -> str:
        """
        More configuration lines for the gateway (subclasses).
        """
        return ""

    def start_inside(self, namespace: str, peer, **options):
        """
        C{peer.start(**options)} with the processes and sockets it opens inside C{namespace};
        C{peer} is stopped at cleanup.
        """
        self.addCleanup(peer.stop)
        with self.topology.inside(namespace):
            return peer.start(**options)

    def provider_network(self, addresses: tuple[str, ...]) -> tuple[str, str]:
        """
        A provider's network on the Internet: namespace C{prov} on 192.0.2.0/24 behind inet's
        192.0.2.1, holding C{addresses} (the first is the one its packets leave from).  Returns
        the namespace and its end of the link.
        """
        net = self.topology
        provider = net.namespace("prov")
        _, link = net.link(self.inet, f"{INET_PROVIDER_SIDE}/24", provider,
                           f"{addresses[0]}/24")
        for address in addresses[1:]:
            net.address(provider, link, f"{address}/24")
        net.route(provider, "default", INET_PROVIDER_SIDE)
        return provider, link

    def twistd_log(self, tail: int | None = 3000) -> str:
        """
        The gateway's log (its last C{tail} characters; None: all of it), "" before it exists.
        """
        try:
            with open(os.path.join(self.workdir, "twistd.log")) as handle:
                text = handle.read()
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def assertTone(self, path: str, expected: int) -> None:
        measured = audio.dominant_frequency(path)
        self.assertLess(abs(measured - expected), 10, f"{path}: {measured} Hz, not {expected}")

    def client(self, name: str) -> WCSClient:
        client = WCSClient(f"ws://{PUBLIC}:{WS_PORT}", self.reactor, loopback=False,
                           directory=os.path.join(self.workdir, name))
        self.addCleanup(client.close)
        return client

    async def connect_local(self, name: str) -> WCSClient:
        """
        A Phone page in local mode: domain and outbound proxy are the gateway's public address.
        """
        client = self.client(name)
        await client.connect(sipLogin=name, sipAuthenticationName=name, sipPassword="x",
                             sipDomain=PUBLIC, sipOutboundProxy=PUBLIC, sipPort="0",
                             sipRegisterRequired=False)
        return client

    def sipp(self, namespace: str, host: str, user: str, scenario: str = "uas_answer_200",
             target: str | None = None, extra: tuple[str, ...] = (), echo: bool = True,
             label: str | None = None) -> tuple[PeerProcess, str]:
        """
        One sipp call as C{user} on C{host}:5060 inside C{namespace} (a UAS unless C{target}
        is given), echoing RTP back to where it comes from unless not C{echo}; returns it and
        its message trace (named by C{label}, default C{user}).
        """
        label = label or user
        trace = os.path.join(self.workdir, f"{label}-messages.log")
        peer = PeerProcess(f"sipp {label}", os.path.join(self.workdir, f"{label}.log"),
                           self.reactor)
        peer.spawn(self.topology.command(namespace, [
            require_binary("sipp", "sip-tester"), *([target] if target else []),
            "-sf", sipp_scenario(scenario), "-i", host, "-p", str(SIP_PORT), "-s", user,
            "-m", "1", "-nostdin", *(["-rtp_echo"] if echo else []), "-trace_msg",
            "-message_file", trace,
            "-timeout", "40", "-timeout_error", *extra]), cwd=self.workdir)
        self.addCleanup(peer.stop)
        return peer, trace

    async def sipp_uas(self, namespace: str, host: str, user: str,
                       **options) -> tuple[PeerProcess, str]:
        """
        L{sipp} as a UAS (C{options} as L{sipp}'s), once its SIP port is bound (a call before
        would be refused).
        """
        uas, trace = self.sipp(namespace, host, user, **options)

        def bound() -> bool:
            listing = subprocess.run(self.topology.command(namespace, ["ss", "-Huln"]),
                                     capture_output=True, text=True, timeout=10).stdout
            return f"{host}:{SIP_PORT} " in listing

        await poll(bound, 10, self.reactor, 0.1,
                   message=lambda: f"sipp {user} never bound {host}:{SIP_PORT}: "
                   + uas.describe())
        return uas, trace

    def received(self, trace: str) -> str:
        """
        Every message sipp received (its trace also holds what it sent).
        """
        with open(trace) as handle:
            entries = re.split(r"(?m)^-{20,}.*$", handle.read())
        return "\n".join(entry for entry in entries if "message received" in entry)

    async def call_phone(self, namespace: str, host: str, user: str) -> tuple[str, str]:
        """
        A browser behind the home NAT calls C{user}@C{host}; the tone comes back (sipp
        echoes it).  Returns what the phone received and the SDP the browser got.
        """
        uas, trace = await self.sipp_uas(namespace, host, user)
        browser = await self.connect_local("alice")
        call_id = await browser.call(f"{user}@{host}", tone_hz=440, codecs=["PCMU"])
        await browser.wait_status(call_id, "ESTABLISHED", timeout=20)
        heard = await browser.wait_audio(call_id, seconds=1.0, timeout=15)
        measured = audio.dominant_frequency(heard)
        self.assertLess(abs(measured - 440), 10, f"{heard}: {measured} Hz echoed, not 440")
        await browser.hangup(call_id)
        await browser.wait_status(call_id, "FINISH", timeout=10)
        ended = await uas.when_ended(15)
        self.assertFalse(getattr(ended, "exitCode", 0), uas.describe())
        return self.received(trace), browser.calls[call_id].remote_sdp

    def assertAdvertises(self, text: str, present: str, absent: str, what: str) -> None:
        self.assertIn(present, text, what)
        self.assertNotIn(absent, text, f"{what} leaks {absent}:\n{text}")


class AddressPerDirectionTests(CloudTopologyTestCase):
    """
    RFC 3261 18.2.1 / RFC 3581 give a peer our address in Via and Contact, SDP gives it our
    media address: each peer must be given one it can reach.
    """

    async def test_internet_phone_gets_only_the_public_address(self):
        """
        The phone across the 1:1 NAT sees 203.0.113.10 in Via, Contact, o= and c=, never the
        private address; the browser behind its home NAT gets the public candidate too, and
        the tone crosses both NATs and back.
        """
        received, browser_sdp = await self.call_phone(self.inet, INTERNET_PHONE, "bob")
        invite = first_message(received, "INVITE ")
        self.assertRegex(invite, rf"(?m)^Via: SIP/2.0/UDP {PUBLIC}:{SIP_PORT};")
        self.assertRegex(invite, rf"(?m)^Contact: <sip:[^@>]+@{PUBLIC}:{SIP_PORT}>")
        self.assertEqual(set(re.findall(r"(?m)^[oc]=.* IN IP4 (\S+)$", received)), {PUBLIC})
        self.assertAdvertises(received, PUBLIC, "10.0.0.", "what the Internet phone received")
        self.assertAdvertises(browser_sdp, f"candidate:", "10.0.0.", "the browser's SDP")
        self.assertRegex(browser_sdp, rf"a=candidate:\S+ 1 udp \d+ {PUBLIC} ")

    async def test_lan_phone_gets_only_the_private_address(self):
        """
        The phone on the private LAN (10.0.1.20) sees 10.0.0.10 in Via, Contact and c=, never
        the public address - which it could not reach: the cloud router does not hairpin.  The
        call completes (its ACK and BYE reached our Contact) and the tone is echoed back.
        """
        received, browser_sdp = await self.call_phone(self.lan, LAN_PHONE, "carol")
        invite = first_message(received, "INVITE ")
        self.assertRegex(invite, rf"(?m)^Via: SIP/2.0/UDP {PRIVATE}:{SIP_PORT};")
        self.assertRegex(invite, rf"(?m)^Contact: <sip:[^@>]+@{PRIVATE}:{SIP_PORT}>")
        self.assertEqual(set(re.findall(r"(?m)^[oc]=.* IN IP4 (\S+)$", received)), {PRIVATE})
        # Only the From/To identities (alice@ the account's domain) may name the public address.
        addresses = "\n".join(line for line in received.splitlines()
                              if not line.startswith(("From:", "To:")))
        self.assertAdvertises(addresses, PRIVATE, PUBLIC, "what the LAN phone received")
        self.assertAdvertises(browser_sdp, PUBLIC, PRIVATE, "the browser's SDP")


    async def test_lan_phone_calls_browser(self):
        """
        The other direction: a LAN phone calls alice's browser (behind the home NAT).  The
        phone's 200 names only 10.0.0.10 (Contact, o=, c=), the browser's offer only
        203.0.113.10, and the browser hears its own tone echoed by the phone.
        """
        browser = await self.connect_local("alice")
        # The phone dials alice in her domain (the public address) through its proxy, which
        # on the LAN is the gateway's private address.
        caller, trace = self.sipp(self.lan, LAN_PHONE, "alice", "uac_invite_bye",
                                  target=f"{PUBLIC}:{SIP_PORT}",
                                  extra=("-rsa", f"{PRIVATE}:{SIP_PORT}", "-d", "4000"))
        call_id = await browser.wait_incoming_call(timeout=20)
        await browser.answer(call_id, tone_hz=440)
        heard = await browser.wait_audio(call_id, seconds=1.0, timeout=15)
        measured = audio.dominant_frequency(heard)
        self.assertLess(abs(measured - 440), 10, f"{heard}: {measured} Hz echoed, not 440")
        ended = await caller.when_ended(20)
        self.assertFalse(getattr(ended, "exitCode", 0), caller.describe())
        received = self.received(trace)
        ok = first_message(received, "SIP/2.0 200")
        self.assertRegex(ok, rf"(?m)^Contact: <sip:[^@>]*@?{PRIVATE}:{SIP_PORT}")
        self.assertEqual(set(re.findall(r"(?m)^[oc]=.* IN IP4 (\S+)$", received)), {PRIVATE})
        addresses = "\n".join(line for line in received.splitlines()
                              if not line.startswith(("From:", "To:")))
        self.assertAdvertises(addresses, PRIVATE, PUBLIC, "what the LAN phone received")
        self.assertAdvertises(browser.calls[call_id].remote_sdp, PUBLIC, PRIVATE,
                              "the browser's offer")


class NoHairpinTests(CloudTopologyTestCase):
    """
    Two browsers on the same node in local mode: the call loops through our own SIP side, and
    must not go out toward our public address.
    """

    def test_router_does_not_hairpin(self):
        """
        The premise: from the gateway's own namespace, a SIP OPTIONS to its public address gets
        no answer (the cloud router keeps it), while the private address answers.
        """
        probe = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                 "s.settimeout(1.5)\nhost=sys.argv[1]\n"
                 "s.sendto(('OPTIONS sip:%s SIP/2.0\\r\\nVia: SIP/2.0/UDP %s:5099;branch="
                 "z9hG4bKprobe\\r\\nMax-Forwards: 70\\r\\nFrom: <sip:p@%s>;tag=1\\r\\n"
                 "To: <sip:%s>\\r\\nCall-ID: probe\\r\\nCSeq: 1 OPTIONS\\r\\n"
                 "Content-Length: 0\\r\\n\\r\\n' % (host, '" + PRIVATE + "', host, host))"
                 ".encode(),(host,5060))\n"
                 "try:\n print(s.recv(2000)[:12].decode())\nexcept OSError:\n print('none')\n")

        def ask(host: str) -> str:
            return subprocess.run(self.topology.command(self.gw, [sys.executable, "-c", probe,
                                                                  host]),
                                  capture_output=True, text=True, timeout=10).stdout.strip()

        self.assertEqual(ask(PRIVATE), "SIP/2.0 200")
        self.assertEqual(ask(PUBLIC), "none")

    async def test_browser_calls_browser_on_the_same_node(self):
        """
        alice calls bob, both browsers behind the home NAT and bound on this node: the INVITE
        our gateway sends itself goes to its private address, the call is established and each
        browser hears the other's tone.
        """
        alice = await self.connect_local("alice")
        bob = await self.connect_local("bob")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        incoming = await bob.wait_incoming_call(timeout=20)
        await bob.answer(incoming, tone_hz=1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=20)
        for client, session, tone in ((alice, call_id, 1000), (bob, incoming, 440)):
            heard = await client.wait_audio(session, seconds=1.0, timeout=15)
            measured = audio.dominant_frequency(heard)
            self.assertLess(abs(measured - tone), 10, f"{heard}: {measured} Hz, not {tone}")
        await alice.hangup(call_id)
        await bob.wait_status(incoming, "FINISH", timeout=10)
