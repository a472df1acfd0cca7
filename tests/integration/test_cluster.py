"""
A cluster on one machine (docs/scaling.md), from the files in deploy/cluster/: Redis, two wcs
nodes as `twistd wcs` processes (each its own ports and RTP range), Kamailio (registrar and
dispatcher) in front for SIP, nginx in front for WebSocket and REST, all on 127.0.0.1.

Browsers are the WCS test client (aiortc) and the SIP phone is baresip; media is checked by the
tones that arrive.  Skipped (with the reason) when redis-server, Kamailio, nginx or baresip is
missing; `make test` installs them.
Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_cluster
"""

from __future__ import annotations

import base64
import json
import os
import re

import treq
from twisted.internet import defer, reactor, utils
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import audio
from tests.integration.cluster_peers import ClusterKamailio, Nginx, Node, RedisServer
from tests.integration.peers import Baresip, free_port, poll, require_binary
from tests.integration.wcs_client import WCSClient

#: Digest users of Kamailio: the browsers' logins and the phone's.
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
AUTHORIZATION = "Basic " + base64.b64encode(
    f"admin:{Node.REST_PASSWORD}".encode()).decode()


async def rest(base: str, path: str, body=None):
    """
    POST C{body} to C{base + path} with the cluster's REST credentials: C{(status, document)}.
    """
    response = await treq.post(base + path, data=json.dumps(body or {}).encode(),
                               headers={"Authorization": [AUTHORIZATION],
                                        "Content-Type": ["application/json"]},
                               reactor=reactor, persistent=False)
    content = await response.content()
    return response.code, (json.loads(content) if content.strip() else None)


class ClusterTestCase(TestCase):
    """
    A whole cluster per test: Redis, nodes a and b, Kamailio, nginx.
    """

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        for binary in ("redis-server", "kamailio", "nginx"):
            require_binary(binary)
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.redis = RedisServer(os.path.join(self.base, "redis"))
        self.addCleanup(self.redis.stop)
        yield self.redis.start()
        kamailio_port = free_port()
        self.nodes = {}
        for name in ("a", "b"):
            low = free_port(span=100)
            node = Node(os.path.join(self.base, name), name, self.redis.url,
                        f"127.0.0.1:{kamailio_port}", (low, low + 99))
            self.addCleanup(node.stop)
            self.nodes[name] = node
        self.kamailio = ClusterKamailio(os.path.join(self.base, "kamailio"),
                                        list(self.nodes.values()), USERS, kamailio_port)
        self.addCleanup(self.kamailio.stop)
        self.nginx = Nginx(os.path.join(self.base, "nginx"), list(self.nodes.values()))
        self.addCleanup(self.nginx.stop)
        yield defer.gatherResults([node.start() for node in self.nodes.values()]
                                  + [self.kamailio.start(), self.nginx.start()],
                                  consumeErrors=True)

    def client(self, name, url):
        client = WCSClient(url, reactor, directory=os.path.join(self.base, "clients", name))
        self.addCleanup(client.close)
        return client

    async def browser(self, login, url):
        """
        A browser whose session registers at Kamailio through the node it reached.
        """
        client = self.client(login, url)
        await client.connect_registered(login, USERS[login], self.kamailio.port, timeout=15)
        return client

    async def phone(self, login, tone_hz):
        require_binary("baresip")
        wav = audio.write_tone_wav(os.path.join(self.base, f"{login}.wav"), tone_hz, 60)
        agent = Baresip(self.base, login, registrar=self.kamailio.address,
                        password=USERS[login], tone_wav=wav)
        self.addCleanup(agent.stop)
        await agent.start()
        return agent

    def assertFrequency(self, path, expected):
        measured = audio.dominant_frequency(path)
        self.assertLess(abs(measured - expected), 10, f"{path}: {measured} Hz, not {expected}")

    async def bindings(self, user):
        """
        The contacts (without parameters) Kamailio's usrloc holds for C{user}, from kamcmd.
        """
        output = await utils.getProcessOutput(require_binary("kamcmd"), (
            "-s", self.kamailio.control, "ul.dump"), errortoo=True)
        text = output.decode()
        return sorted(contact.split(";")[0] for aor, contacts in re.findall(
            r"AoR: (\S+)(.*?)(?=AoR: |\Z)", text, re.S) if aor.split("@")[0] == user
            for contact in re.findall(r"Address: (\S+)", contacts))

    async def bindings_are(self, user, contacts):
        return await self.bindings(user) == contacts

    async def calls_seen(self, base):
        """
        C{{callId: nodeId}} of /call/find_all asked at C{base}.
        """
        status, found = await rest(base, "/call/find_all")
        if status == 404:
            return {}
        self.assertEqual(status, 200, found)
        return {call["callId"]: call["nodeId"] for call in found}

    async def browsers_in_call(self, alice=None):
        """
        alice on node a (connected now unless given) calls bob on node b through Kamailio;
        both hear the other's tone.
        """
        a, b = self.nodes["a"], self.nodes["b"]
        alice = alice or await self.browser("alice", a.ws_url)
        bob = await self.browser("bob", b.ws_url)
        outgoing, incoming = await self.talk(alice, bob, "bob")
        return alice, outgoing, bob, incoming

    async def talk(self, caller, callee, login):
        """
        C{caller} calls C{login} (C{callee}'s), who answers: each hears the other's tone.
        """
        outgoing = await caller.call(login, tone_hz=440, codecs=["PCMU"])
        incoming = await callee.wait_incoming_call(timeout=15)
        await callee.answer(incoming, tone_hz=1000, codecs=["PCMU"])
        await caller.wait_status(outgoing, "ESTABLISHED", timeout=15)
        self.assertFrequency(await caller.wait_audio(outgoing, seconds=1.5, timeout=15), 1000)
        self.assertFrequency(await callee.wait_audio(incoming, seconds=1.5, timeout=15), 440)
        return outgoing, incoming

    async def until(self, check, what, tries=100):
        """
        Await C{check()} every 0.2 s until it is true, at most C{tries} times.
        """
        for _ in range(tries):
            if await check():
                return
            await poll(lambda: False, 0.2).addErrback(lambda _: None)
        self.fail(f"never: {what}")


class BrowsersAcrossNodesTests(ClusterTestCase):
    async def test_call_find_dtmf_terminate_from_the_wrong_node(self):
        """
        A browser on node a calls a browser on node b (tones both ways); every node and nginx
        list both calls and both connections; DTMF and terminate for a call of the other node are
        carried out by its owner and answered 200 where they were asked, by the modern and the
        legacy (/RESTCall/) API.
        """
        a, b = self.nodes["a"], self.nodes["b"]
        alice, outgoing, bob, incoming = await self.browsers_in_call()
        both = {outgoing: "a", incoming: "b"}
        self.assertEqual(await self.calls_seen(a.rest_url), both)
        self.assertEqual(await self.calls_seen(b.rest_url), both)
        self.assertEqual(await self.calls_seen(self.nginx.rest_url), both)
        status, found = await rest(a.rest_url, "/call/find", {"callee": "bob", "incoming": True})
        self.assertEqual((status, [call["callId"] for call in found]), (200, [incoming]))
        status, found = await rest(a.rest_url, "/connection/find", {"sipLogin": "bob"})
        self.assertEqual((status, [c["nodeId"] for c in found]), (200, ["b"]))
        status, found = await rest(self.nginx.rest_url, "/connection/find_all")
        self.assertEqual(sorted(c["sipLogin"] for c in found), ["alice", "bob"])

        # bob's call lives on b; a relays, b sends the digit over SIP, alice's node hears it.
        since = len(alice.messages)
        status, _ = await rest(a.rest_url, "/call/send_dtmf",
                               {"callId": incoming, "dtmf": "7", "type": "RFC2833"})
        self.assertEqual(status, 200)
        message = await alice.wait_message("notifyDtmfEvent", since=since, timeout=10)
        self.assertEqual(message["data"][0]["dtmf"], "7")
        # The legacy /RESTCall/ API sees the cluster too: b's call's status asked at a, and
        # its DTMF carried out by b.
        legacy = a.rest_url.replace("/rest-api", "/RESTCall")
        response = await treq.post(legacy + "/getStatus", data=json.dumps(
            {"callId": incoming}).encode(), headers={"Authorization": [AUTHORIZATION]},
            reactor=reactor, persistent=False)
        self.assertEqual((response.code, await response.text()), (200, "ESTABLISHED"))
        since = len(alice.messages)
        status, _ = await rest(legacy, "/sendDTMF",
                               {"callId": incoming, "dtmf": "8", "type": "RFC2833"})
        self.assertEqual(status, 200)
        message = await alice.wait_message("notifyDtmfEvent", since=since, timeout=10)
        self.assertEqual(message["data"][0]["dtmf"], "8")

        # alice's call lives on a; terminate asked at b.
        status, _ = await rest(b.rest_url, "/call/terminate", {"callId": outgoing})
        self.assertEqual(status, 200)
        await alice.wait_status(outgoing, "FINISH", timeout=10)
        await bob.wait_status(incoming, "FINISH", timeout=10)
        await poll(lambda: True, 0.1)
        status, _ = await rest(b.rest_url, "/call/terminate", {"callId": outgoing})
        self.assertEqual(status, 404)
        self.assertEqual(alice.violations + bob.violations, [])


class LocalModeAcrossNodesTests(ClusterTestCase):
    async def local_browser(self, login, node):
        """
        A browser in local mode (no sipRegisterRequired, no password) on C{node}: its node
        registers it at Kamailio by itself.
        """
        client = self.client(login, node.ws_url)
        await client.connect(sipLogin=login, sipDomain="127.0.0.1",
                             sipOutboundProxy="127.0.0.1", sipPort=str(self.kamailio.port))
        return client

    def wait_binding(self, login, node):
        return self.until(lambda: self.bindings_are(login, [f"sip:{login}@{node.sip_address}"]),
                          f"{login} registered through node {node.name}")

    async def test_local_mode_browsers_call_across_nodes(self):
        """
        dave (local mode, node a) calls erin (local mode, node b) by her login: both nodes
        registered their sessions at Kamailio, the call crosses it, tones both ways; erin's
        binding goes when her session closes.
        """
        a, b = self.nodes["a"], self.nodes["b"]
        dave = await self.local_browser("dave", a)
        erin = await self.local_browser("erin", b)
        await self.wait_binding("dave", a)
        await self.wait_binding("erin", b)
        outgoing, incoming = await self.talk(dave, erin, "erin")
        await dave.hangup(outgoing)
        await erin.wait_status(incoming, "FINISH", timeout=10)
        self.assertEqual(dave.violations + erin.violations, [])
        await erin.close()
        await self.until(lambda: self.bindings_are("erin", []), "erin unregistered")

    async def test_local_mode_cannot_take_a_login_with_a_password(self):
        """
        The attack: a local-mode session claims alice, a user with a password at Kamailio.
        Kamailio challenges its node's REGISTER, which has no password to answer: alice's
        calls never reach the impostor, and the real alice registers as before.
        """
        b = self.nodes["b"]
        await self.local_browser("alice", b)
        log_path = os.path.join(b.directory, "wcs.log")

        def refused():
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                return "alice not registered in front" in handle.read()

        await poll(refused, 15.0, message=lambda: "node b never gave up registering alice")
        self.assertEqual(await self.bindings("alice"), [])
        await self.browser("alice", self.nodes["a"].ws_url)
        self.assertEqual(await self.bindings("alice"),
                         [f"sip:alice@{self.nodes['a'].sip_address}"])


class PhoneThroughKamailioTests(ClusterTestCase):
    async def test_browser_and_phone_both_ways(self):
        """
        A browser on node a calls baresip registered at Kamailio, then baresip calls a browser
        that reached the cluster through nginx; tones cross every time.
        """
        carol = await self.phone("carol", 1000)
        alice = await self.browser("alice", self.nodes["a"].ws_url)
        call_id = await alice.call("carol", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=15), 1000)
        await carol.wait_for_received_audio(1.5)
        self.assertFrequency(carol.received_wav(), 440)
        await alice.hangup(call_id)
        await carol.wait_event("CALL_CLOSED")

        bob = await self.browser("bob", self.nginx.ws_url)
        await carol.dial(f"sip:bob@{self.kamailio.address}")
        incoming = await bob.wait_incoming_call(timeout=15)
        await bob.answer(incoming, tone_hz=440, codecs=["PCMU"])
        await bob.wait_status(incoming, "ESTABLISHED", timeout=15)
        self.assertFrequency(await bob.wait_audio(incoming, seconds=1.5, timeout=15), 1000)
        # Whichever node nginx chose, the other one ends the call.
        owner = (await self.calls_seen(self.nodes["a"].rest_url))[incoming]
        other = self.nodes["b" if owner == "a" else "a"]
        status, _ = await rest(other.rest_url, "/call/terminate", {"callId": incoming})
        self.assertEqual(status, 200)
        await bob.wait_status(incoming, "FINISH", timeout=10)
        await carol.wait_event("CALL_CLOSED")
        self.assertEqual(alice.violations + bob.violations, [])


class DispatcherTests(ClusterTestCase):
    def dispatched(self):
        """
        The node each INVITE went to, in order, as Kamailio's log says.
        """
        with open(os.path.join(self.kamailio.directory, "kamailio.log"), encoding="utf-8",
                  errors="replace") as handle:
            text = handle.read()
        by_address = {f"sip:{node.sip_address}": name for name, node in self.nodes.items()}
        return [by_address.get(target, target)
                for target in re.findall(r"wcs-cluster: dispatched INVITE \S+ to (\S+)", text)]

    async def node_states(self):
        """
        C{{node name: dispatcher flags}} from Kamailio itself (kamcmd dispatcher.list): "AP"
        active, "IP" inactive (probing).
        """
        output = await utils.getProcessOutput(require_binary("kamcmd"), (
            "-s", self.kamailio.control, "dispatcher.list"), errortoo=True)
        found = dict(re.findall(r"URI: sip:(\S+)\s+FLAGS: (\S+)", output.decode()))
        return {name: found.get(node.sip_address) for name, node in self.nodes.items()}

    def wait_states(self, wanted):
        """
        Until each node's flags start with C{wanted[name]} ("A" or "I"): the pings go every
        2 s, an unanswered one gives up after 3 s.
        """
        async def reached():
            states = await self.node_states()
            return all((states[name] or "").startswith(flag) for name, flag in wanted.items())

        return self.until(reached, f"dispatcher states {wanted}")

    async def call_nobody(self, phone, number):
        """
        The phone calls a user nobody registered: Kamailio's dispatcher hands the INVITE to a
        node, which has no such user (404).
        """
        await phone.dial(f"sip:nobody{number}@{self.kamailio.address}")
        closed = await phone.wait_event("CALL_CLOSED", timeout=15)
        self.assertIn("404", closed.get("param", ""), closed)

    async def test_calls_spread_and_a_dead_node_is_skipped(self):
        """
        Calls from a phone for users nobody registered go round robin over both nodes; node b
        killed, the dispatcher's OPTIONS ping marks it inactive and every call goes to node a
        without trying b; b restarted is active again.
        """
        await self.wait_states({"a": "A", "b": "A"})  # pings sent before a node bound fail
        carol = await self.phone("carol", 1000)
        for number in range(4):
            await self.call_nobody(carol, number)
        spread = self.dispatched()
        self.assertEqual(sorted(spread), ["a", "a", "b", "b"], spread)
        self.assertNotEqual(spread[0], spread[1])  # round robin, not two in a row

        b = self.nodes["b"]
        await b.kill()
        await self.wait_states({"a": "A", "b": "I"})
        before = len(self.dispatched())
        for number in range(4, 8):
            await self.call_nobody(carol, number)
        self.assertEqual(self.dispatched()[before:], ["a"] * 4)

        await b.restart()
        await self.wait_states({"a": "A", "b": "A"})


class NodeFailureTests(ClusterTestCase):
    async def test_node_killed_mid_call(self):
        """
        Node b is killed -9 while alice (node a) talks to bob (node b): alice's call FAILS
        within seconds (no RTP from b), node a's directory forgets b's call, Kamailio's
        keepalives remove bob's registration (alice's stays); a new session
        through nginx lands on a; b restarted rejoins and takes calls again.
        """
        a, b = self.nodes["a"], self.nodes["b"]
        alice, outgoing, bob, incoming = await self.browsers_in_call()
        self.assertEqual(await self.calls_seen(a.rest_url), {outgoing: "a", incoming: "b"})
        self.assertEqual(await self.bindings("bob"), [f"sip:bob@{b.sip_address}"])
        started = reactor.seconds()
        await b.kill()
        await alice.wait_status(outgoing, "FAILED", timeout=15)
        failed_after = reactor.seconds() - started
        self.assertLess(failed_after, 12, "rtp_activity_detecting=true,5 plus its check")
        seen = []

        async def forgotten():
            seen.append(await self.calls_seen(a.rest_url))
            return seen[-1] == {}

        for _ in range(50):  # bounded: the TTL is 3 s
            if await forgotten():
                break
            await poll(lambda: False, 0.2).addErrback(lambda _: None)
        self.assertEqual(seen[-1], {}, seen)
        # Kamailio's keepalives find b's registrations dead and remove them: a call for bob
        # fails at once instead of going to a dead node until the binding expires (60 s).
        # OPTIONS every 2 s, removed after 4 s without an answer.
        await self.until(lambda: self.bindings_are("bob", []), "bob's binding removed")
        self.assertLess(reactor.seconds() - started, 20)
        # A living node answers the keepalives for its sessions: alice's binding stays.
        self.assertEqual(await self.bindings("alice"), [f"sip:alice@{a.sip_address}"])

        # New sessions land on the living node; b restarted rejoins with no manual step.
        carol = self.client("carol", self.nginx.ws_url)
        await carol.connect()
        status, found = await rest(a.rest_url, "/connection/find_all")
        self.assertEqual((status, len(found)), (200, 2))  # alice and carol
        await b.restart()
        _, outgoing, bob, incoming = await self.browsers_in_call(alice)
        self.assertEqual(await self.calls_seen(a.rest_url), {outgoing: "a", incoming: "b"})
        self.assertEqual(alice.violations + bob.violations, [])


class StreamAcrossNodesTests(ClusterTestCase):
    async def test_stream_played_on_another_node(self):
        """
        alice publishes a 440 Hz stream on node a; two viewers on node b play it: both hear
        the tone, through one relay from a to b (to a port of b's RTP range); /stream/find on
        b lists it; a publisher on b of the same name fails "Stream name is already in use".
        """
        a, b = self.nodes["a"], self.nodes["b"]
        alice = self.client("alice", a.ws_url)
        await alice.connect()
        published = await alice.publish_stream("tone440", tone_hz=440, codecs=["opus"])
        await alice.wait_stream_status(published, "PUBLISHING", timeout=15)
        status, found = await rest(b.rest_url, "/stream/find", {"name": "tone440"})
        self.assertEqual((status, [s["nodeId"] for s in found]), (200, ["a"]))
        viewers = []
        for name in ("viewer1", "viewer2"):
            viewer = self.client(name, b.ws_url)
            await viewer.connect()
            for _ in range(30):  # b's view of the other nodes is renewed every heartbeat (1 s)
                played = await viewer.play_stream("tone440", video=False)
                try:
                    await viewer.wait_stream_status(played, "PLAYING", timeout=5)
                    break
                except Exception:
                    await poll(lambda: False, 0.2).addErrback(lambda _: None)
            viewers.append((viewer, played))
        for viewer, played in viewers:
            self.assertFrequency(await viewer.wait_audio(played, seconds=1.5, timeout=15), 440)
        status, relays = await rest(a.rest_url, "/cluster/relay/find_all")
        self.assertEqual((status, [(r["streamName"], r["node"]) for r in relays]),
                         (200, [("tone440", "b")]))
        low, high = b.media_ports
        self.assertTrue(low <= relays[0]["port"] <= high, (relays[0]["port"], b.media_ports))

        # The name is the cluster's: publishing it again on b fails as on one node.
        mallory = self.client("mallory", b.ws_url)
        await mallory.connect()
        duplicate = await mallory.publish_stream("tone440", tone_hz=880, codecs=["opus"])
        await mallory.wait_stream_status(duplicate, "FAILED", timeout=15)
        self.assertEqual(mallory.streams[duplicate].info, "Stream name is already in use")

        await alice.stop_stream(published)
        for viewer, played in viewers:
            await viewer.wait_stream_status(played, "STOPPED", timeout=10)
        self.assertEqual(sum((client.violations for client, _ in viewers),
                             alice.violations + mallory.violations), [])
