"""
Tests for the C{cluster} module (wcs_twisted/modules_builtin/cluster.py, cluster_directory.py)
against a real redis-server on 127.0.0.1: two module instances are two nodes sharing it.

Heartbeats run on a L{Clock}; a node's death is its Redis key expiring, done here by deleting
the key (what the TTL does, without waiting for it).  Skipped when redis-server is missing.
"""

from __future__ import annotations

import json

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.integration.cluster_peers import RedisServer
from tests.modules_builtin.contexts import built_in_keys
from tests.test_modules import call_table, new_call
from wcs_twisted.config import Settings
from wcs_twisted.errors import DomainError
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.routes import RouteTable
from wcs_twisted.rest.web import build_site
from wcs_twisted.gateway.call_events import CallStatus
from tests.integration.peers import poll
from tests.gateway.test_sessions import SilentConnection
from tests.media.test_stream_resolvers import Source
from wcs_twisted.interfaces import IClusterDirectory, IStreamSink
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules import ModuleContext
from wcs_twisted.modules_builtin.cluster import STREAM_NAME_IN_USE, ClusterModule, redis_address
from wcs_twisted.media.ports import PortPool
from wcs_twisted.modules_builtin.cluster_directory import calls_key, name_key, node_key


class Recorder(Resource):
    """
    A node's REST as another node's relay sees it: records each request, answers 200.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def render(self, request):
        self.requests.append((request.method, request.path, dict(
            (name.lower(), values[0]) for name, values in request.requestHeaders.getAllRawHeaders()),
            json.loads(request.content.read())))
        request.setHeader(b"content-type", b"application/json")
        return b'{"done": true}'


class RedisAddressTests(TestCase):
    def test_url(self):
        """
        redis://host[:port][/db] with an optional password; anything else is refused.
        """
        self.assertEqual(redis_address("redis://10.0.0.1"), ("10.0.0.1", 6379, 0, None))
        self.assertEqual(redis_address("redis://:pw@r.example:7000/3"), ("r.example", 7000, 3, "pw"))
        for bad in ("http://r", "redis://", "redis://r/x"):
            self.assertRaises(ValueError, redis_address, bad)


class ClusterNodes:
    """
    Nodes' cluster modules sharing one real Redis.
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.redis = RedisServer(self.mktemp())
        self.addCleanup(self.redis.stop)
        yield self.redis.start()
        self.clock = Clock()
        self.nodes = {}

    @defer.inlineCallbacks
    def start_node(self, node_id, rest_url="", serve_rest=False, media_ports=None, **values):
        """
        Node C{node_id}'s cluster module; with C{serve_rest}, the node's real REST front
        (RestAPI behind its gate, admin/pw) on 127.0.0.1 serves the module's methods;
        C{media_ports} is the server's RTP pool (the service "media_ports").
        """
        routes = RouteTable()
        sessions = SessionTable(node_id)
        services = {"sessions": sessions}
        if media_ports is not None:
            services["media_ports"] = media_ports
        table = call_table(self.clock)
        if serve_rest:
            api = RestAPI(sessions, table, services=services, routes=routes)
            site = build_site(api, ("admin", "pw"), (), ServerMetrics(), [])
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            rest_url = f"http://127.0.0.1:{port.getHost().port}/rest-api"
        values.setdefault("cluster_redis_url", self.redis.url)
        values["cluster_node_url"] = rest_url or f"http://127.0.0.1:1/{node_id}"
        streams = StreamRegistry(self.clock)
        settings = Settings(node_id=node_id, rest_password="pw", bind_address="127.0.0.1",
                            module_values=values)
        context = ModuleContext("cluster", settings=settings, reactor=reactor, clock=self.clock,
                                calls=table, streams=streams, services=services, routes=routes,
                                keys=built_in_keys("cluster"))
        module = ClusterModule()
        module.start(context)
        self.addCleanup(self.stop_node, module, context)
        if module.directory is not None:
            yield module.directory.redis.ping()  # join is done
        self.nodes[node_id] = (module, table, streams, services)
        return module

    @defer.inlineCallbacks
    def stop_node(self, module, context):
        if module._context is not None:
            yield module.stop()
        context.close()

    def written(self, module):
        """
        Fires once every command the node sent before has been carried out (one connection,
        commands in order), and those they sent when answered (a claim, then the write).
        """
        redis = module.directory.redis
        return redis.ping().addCallback(lambda _: redis.ping())


class ClusterModuleTests(ClusterNodes, TestCase):
    """
    Two nodes' modules sharing one Redis.
    """

    @defer.inlineCallbacks
    def test_off_without_redis_url(self):
        """
        With no cluster_redis_url the module provides nothing and touches no Redis.
        """
        module = yield self.start_node("solo", cluster_redis_url="")
        self.assertIsNone(module.directory)
        self.assertNotIn("cluster", self.nodes["solo"][3])
        self.assertEqual(self.nodes["solo"][3]["sessions"].observers, [])
        self.assertIsNone(module.stop())

    @defer.inlineCallbacks
    def test_node_id_required(self):
        """
        Cluster mode without node_id refuses to start: a restart must find its own entries.
        """
        with self.assertRaises(ValueError) as caught:
            yield self.start_node("")
        self.assertIn("node_id", str(caught.exception))

    @defer.inlineCallbacks
    def test_calls_across_nodes(self):
        """
        A call of node a is seen from node b while it lives, filtered like /call/find, and
        leaves the directory when it ends.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        verifyObject(IClusterDirectory, b.directory)
        self.assertIs(self.nodes["b"][3]["cluster"], b.directory)
        call = new_call(self.nodes["a"][1], "call-a")
        call._set_status(CallStatus.ESTABLISHED, 200)
        yield self.written(a)
        found = yield b.directory.remote_calls({})
        self.assertEqual([(c["callId"], c["status"]) for c in found],
                         [("call-a", "ESTABLISHED")])
        self.assertEqual((yield b.directory.remote_calls({"caller": "alice"}))[0]["callId"],
                         "call-a")
        self.assertEqual((yield b.directory.remote_calls({"caller": "carol"})), [])
        self.assertEqual((yield a.directory.remote_calls({})), [])  # its own are not remote
        call._set_status(CallStatus.FINISH, 200)
        yield self.written(a)
        self.assertEqual((yield b.directory.remote_calls({})), [])

    @defer.inlineCallbacks
    def test_streams_across_nodes(self):
        """
        A stream published on node a is seen from node b until it ends.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        stream = self.nodes["a"][2].publish("s1", Source(), {"mediaSessionId": "m1"})
        yield self.written(a)
        found = yield b.directory.remote_streams({"name": "s1"})
        self.assertEqual([(s["name"], s["mediaSessionId"]) for s in found], [("s1", "m1")])
        stream.end("Stopped by publisher stop")
        yield self.written(a)
        self.assertEqual((yield b.directory.remote_streams({})), [])

    @defer.inlineCallbacks
    def test_connections_across_nodes(self):
        """
        A session of node a is seen from node b (/connection/find objects) until it closes,
        and a request naming it by sessionId is relayed to a; the module stops watching the
        sessions when it stops.
        """
        recorder = Recorder()
        port = reactor.listenTCP(0, Site(recorder), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        a = yield self.start_node("a", rest_url=f"http://127.0.0.1:{port.getHost().port}/r")
        b = yield self.start_node("b")
        sessions = self.nodes["a"][3]["sessions"]
        session = sessions.open(SilentConnection(), "/s1", {"sipLogin": "dave"})
        yield self.written(a)
        found = yield b.directory.remote_connections({"sipLogin": "dave"})
        self.assertEqual([(c["sessionId"], c["nodeId"]) for c in found], [("/s1", "a")])
        self.assertEqual((yield b.directory.remote_connections({"sipLogin": "erin"})), [])
        answer = yield b.directory.relay("POST", "/connection/terminate", {"sessionId": "/s1"},
                                         {})
        self.assertEqual((answer[0], recorder.requests[0][1]), (200, b"/r/connection/terminate"))
        sessions.close(session, "bye")
        yield self.written(a)
        self.assertEqual((yield b.directory.remote_connections({})), [])
        yield a.stop()
        self.assertEqual(sessions.observers, [])

    @defer.inlineCallbacks
    def test_dead_node_is_forgotten(self):
        """
        A node whose key expired (killed: no renewal) is no longer read, and the first reader
        removes its entries.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        new_call(self.nodes["a"][1], "call-a")._set_status(CallStatus.ESTABLISHED, 200)
        yield self.written(a)
        self.assertEqual(len((yield b.directory.remote_calls({}))), 1)
        yield b.directory.redis.delete(node_key("a"))  # what the TTL does to a silent node
        self.assertEqual((yield b.directory.remote_calls({})), [])
        self.assertFalse((yield b.directory.redis.exists(calls_key("a"))))
        self.assertNotIn("a", (yield b.directory.redis.smembers("wcs:nodes")))

    @defer.inlineCallbacks
    def test_heartbeat_keeps_a_node_alive(self):
        """
        Each heartbeat renews the node's key with the TTL.
        """
        a = yield self.start_node("a", cluster_node_ttl_ms=3000)
        redis = a.directory.redis
        yield redis.execute_command("PEXPIRE", node_key("a"), 100)
        self.clock.advance(1.0)  # one heartbeat
        yield self.written(a)
        ttl = yield redis.execute_command("PTTL", node_key("a"))
        self.assertGreater(int(ttl), 2000)

    @defer.inlineCallbacks
    def test_restart_clears_the_previous_life(self):
        """
        A node that comes back under its node_id (after kill -9) starts with no stale calls.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        yield a.directory.redis.hset(calls_key("a"), "stale", json.dumps({"callId": "stale"}))
        yield self.start_node("a")
        self.assertEqual((yield b.directory.remote_calls({})), [])

    @defer.inlineCallbacks
    def test_stop_leaves_the_directory(self):
        """
        A node stopped cleanly removes its key and entries at once.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        new_call(self.nodes["a"][1], "call-a")._set_status(CallStatus.ESTABLISHED, 200)
        yield self.written(a)
        yield a.stop()
        self.assertEqual((yield b.directory.living()), {})
        self.assertEqual((yield b.directory.remote_calls({})), [])

    @defer.inlineCallbacks
    def test_relay_to_the_owner(self):
        """
        A request naming a call of node a, relayed from node b, reaches a's REST with the same
        method, body and credentials, marked as relayed; a's answer is the answer.
        """
        recorder = Recorder()
        port = reactor.listenTCP(0, Site(recorder), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        rest = f"http://127.0.0.1:{port.getHost().port}/rest-api"
        a = yield self.start_node("a", rest_url=rest)
        b = yield self.start_node("b")
        new_call(self.nodes["a"][1], "call-a")._set_status(CallStatus.ESTABLISHED, 200)
        yield self.written(a)
        answer = yield b.directory.relay("POST", "/call/terminate", {"callId": "call-a"},
                                         {"Authorization": "Basic YWRtaW46eA=="})
        self.assertEqual(answer, (200, b"application/json", b'{"done": true}'))
        [(method, path, headers, body)] = recorder.requests
        self.assertEqual((method, path, body),
                         (b"POST", b"/rest-api/call/terminate", {"callId": "call-a"}))
        self.assertEqual((headers[b"authorization"], headers[b"x-wcs-relayed"]),
                         (b"Basic YWRtaW46eA==", b"b"))
        self.assertIsNone((yield b.directory.relay("POST", "/call/terminate",
                                                   {"callId": "nobody"}, {})))
        self.assertIsNone((yield b.directory.relay("POST", "/call/terminate", {}, {})))


@implementer(IStreamSink)
class Collector:
    kinds = ("audio", "video")

    def __init__(self):
        self.packets = []

    def packet_received(self, kind, payload, codec_name, timestamp, marker):
        self.packets.append((kind, payload, codec_name, timestamp, marker))

    def stream_ended(self, reason):
        pass


class StreamsAcrossNodesTests(ClusterNodes, TestCase):
    """
    A stream of node a played on node b: one copy on b, fed by one RTP relay from a.
    """

    @defer.inlineCallbacks
    def two_nodes_and_a_stream(self):
        a = yield self.start_node("a", serve_rest=True)
        b = yield self.start_node("b", serve_rest=True)
        origin = self.nodes["a"][2].publish("s1", Source(), {"mediaSessionId": "m1"})
        yield self.written(a)
        yield a.directory.refresh()
        yield b.directory.refresh()
        return a, b, origin

    @defer.inlineCallbacks
    def test_copy_relays_packets_once_per_node(self):
        """
        b resolves a's stream into one local copy (marked with its origin, not written to the
        directory); packets arrive as they were sent; a second player needs no second relay.
        """
        a, b, origin = yield self.two_nodes_and_a_stream()
        registry = self.nodes["b"][2]
        self.assertIsNone(registry.get("s1"))
        copy = registry.resolve("s1")
        self.assertEqual((copy.source.audio_codec, copy.properties["originNodeId"],
                          copy.properties["mediaSessionId"]), ("PCMU/8000", "a", "m1"))
        collector = Collector()
        copy.attach(collector)
        yield poll(lambda: a.origin.relays, 5.0)
        self.assertIs(registry.resolve("s1"), copy)
        for number in range(5):
            origin.packet_received("audio", bytes([number]) * 160, "PCMU/8000", 160 * number,
                                   number == 0)
        yield poll(lambda: len(collector.packets) == 5, 5.0)
        self.assertEqual(collector.packets[0], ("audio", b"\x00" * 160, "PCMU/8000", 0, True))
        self.assertEqual(collector.packets[4][1:4], (b"\x04" * 160, "PCMU/8000", 640))
        self.assertEqual(list(a.origin.relays), [("s1", "b")])
        yield self.written(b)
        self.assertEqual([s["name"] for s in (yield a.directory.remote_streams({}))], [])

    @defer.inlineCallbacks
    def test_copy_ends_with_its_origin_and_relay_with_its_stream(self):
        """
        The origin's stream ends: the relay goes, and b's copy ends at its next heartbeat.
        """
        a, b, origin = yield self.two_nodes_and_a_stream()
        copy = self.nodes["b"][2].resolve("s1")
        copy.attach(Collector())
        yield poll(lambda: a.origin.relays, 5.0)
        origin.end("Stopped by publisher stop")
        self.assertEqual(a.origin.relays, {})
        yield self.written(a)
        yield b.directory.refresh()
        b.edges.beat()
        self.assertEqual(copy.ended, "Stopped by publisher stop")
        self.assertIsNone(self.nodes["b"][2].get("s1"))

    @defer.inlineCallbacks
    def test_unplayed_copy_is_given_up(self):
        """
        A copy without a player for more than two heartbeats ends and its relay stops.
        """
        a, b, origin = yield self.two_nodes_and_a_stream()
        copy = self.nodes["b"][2].resolve("s1")
        yield poll(lambda: a.origin.relays, 5.0)
        for _ in range(3):
            b.edges.beat()
        self.assertEqual(copy.ended, "Stopped by publisher stop")
        yield poll(lambda: not a.origin.relays, 5.0)

    @defer.inlineCallbacks
    def test_relay_only_to_a_living_node_asking_for_itself(self):
        """
        The attack: REST /cluster/relay/startup aiming a node's stream at another address (or
        naming a node that does not exist) is refused; nothing is sent.
        """
        a, b, origin = yield self.two_nodes_and_a_stream()
        for body in ({"streamName": "s1", "node": "b", "host": "10.1.2.3", "port": 4000},
                     {"streamName": "s1", "node": "mallory", "host": "127.0.0.1", "port": 4000}):
            code, _ = yield b.edges._post(a.directory.rest_url, "/cluster/relay/startup", body)
            self.assertEqual(code, 400)
        self.assertEqual(a.origin.relays, {})

    @defer.inlineCallbacks
    def test_relay_ports_come_from_the_rtp_range(self):
        """
        The origin's sending port and an edge copy's receiving port are pairs of the server's
        RTP pool (not ephemeral ports), given back when they close.
        """
        pools = {name: PortPool(41000 + 200 * index, 41199 + 200 * index)
                 for index, name in enumerate("ab")}
        a = yield self.start_node("a", serve_rest=True, media_ports=pools["a"])
        b = yield self.start_node("b", serve_rest=True, media_ports=pools["b"])
        self.assertTrue(41000 <= a.origin.port.number <= 41199, a.origin.port.number)
        self.assertEqual((pools["a"].in_use, pools["b"].in_use), (1, 1))
        self.nodes["a"][2].publish("s1", Source())
        yield self.written(a)
        yield b.directory.refresh()
        copy = self.nodes["b"][2].resolve("s1")
        port = b.edges.copies["s1"].listening.number
        self.assertTrue(41200 <= port <= 41399, port)
        self.assertEqual(pools["b"].in_use, 2)
        copy.end("Stopped by publisher stop")
        self.assertEqual(pools["b"].in_use, 1)
        yield b.stop()
        self.assertEqual(pools["b"].in_use, 0)


class StreamNamesTests(ClusterNodes, TestCase):
    """
    A stream name is published by one node of the cluster at a time.
    """

    @defer.inlineCallbacks
    def test_name_published_elsewhere_is_taken(self):
        """
        Once b has heard (a heartbeat) of a's stream, its name is taken on b too: a publisher
        there gets "Stream name is already in use"; when it ends, the name is free again.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        stream = self.nodes["a"][2].publish("s1", Source())
        yield self.written(a)
        yield b.directory.refresh()
        self.assertEqual((self.nodes["b"][2].taken("s1"), self.nodes["b"][2].taken("s2")),
                         (True, False))
        stream.end("Stopped by publisher stop")
        yield self.written(a)
        yield b.directory.refresh()
        self.assertFalse(self.nodes["b"][2].taken("s1"))
        self.assertIsNone((yield a.directory.redis.get(name_key("s1"))))

    @defer.inlineCallbacks
    def test_simultaneous_publishes_one_wins(self):
        """
        a and b publish one name within a heartbeat (neither knows of the other's yet): the
        claim in Redis lets exactly one keep it, the other ends "Stream name is already in
        use"; the winner's stream ended, the other node can have the name.
        """
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        first = self.nodes["a"][2].publish("s1", Source())
        second = self.nodes["b"][2].publish("s1", Source())
        yield self.written(a)
        yield self.written(b)
        winner = yield a.directory.redis.get(name_key("s1"))
        loser = "b" if winner == "a" else "a"
        streams = {"a": first, "b": second}
        self.assertEqual((streams[winner].ended, streams[loser].ended),
                         (None, STREAM_NAME_IN_USE))
        found = yield self.nodes[loser][0].directory.remote_streams({})
        self.assertEqual([s["name"] for s in found], ["s1"])  # the winner's, listed once
        self.assertEqual((yield self.nodes[winner][0].directory.remote_streams({})), [])
        streams[winner].end("Stopped by publisher stop")
        yield self.written(self.nodes[winner][0])
        again = self.nodes[loser][2].publish("s1", Source())
        yield self.written(self.nodes[loser][0])
        self.assertIsNone(again.ended)
        self.assertEqual((yield a.directory.redis.get(name_key("s1"))), loser)

    @defer.inlineCallbacks
    def test_claim_renewed_and_left(self):
        """
        A node's claims live as long as the node (renewed with its heartbeat) and go when it
        leaves; a restarted node's old claim is its own.
        """
        a = yield self.start_node("a", cluster_node_ttl_ms=600000)
        b = yield self.start_node("b")
        self.nodes["a"][2].publish("s1", Source())
        yield self.written(a)
        redis = a.directory.redis
        yield redis.execute_command("PEXPIRE", name_key("s1"), 1000)
        yield a.directory.renew()
        self.assertGreater((yield redis.execute_command("PTTL", name_key("s1"))), 1000)
        a.directory.claimed.clear()  # a previous life's claim
        self.assertTrue((yield a.directory.claim("s1")))
        yield a.stop()
        self.assertIsNone((yield b.directory.redis.get(name_key("s1"))))


class RedisDownTests(ClusterNodes, TestCase):
    """
    Redis stops answering: the node serves on with what it has.
    """

    @defer.inlineCallbacks
    def test_find_without_redis_is_this_node_alone(self):
        """
        With Redis gone, reading the other nodes gives nothing after the request timeout
        (logged), and relaying fails with the reason instead of hanging.
        """
        b = yield self.start_node("b", cluster_request_timeout_ms=500)
        yield self.redis.stop()
        found = b.directory.remote_calls({})
        self.clock.advance(0.5)
        self.assertEqual((yield found), [])
        relayed = b.directory.relay("POST", "/call/terminate", {"callId": "x"}, {})
        self.clock.advance(0.5)
        with self.assertRaises(DomainError) as caught:
            yield relayed
        self.assertIn("relaying /call/terminate", caught.exception.info)
        stopped = b.stop()  # leaving is bounded too
        self.clock.advance(0.5)
        yield stopped

    @defer.inlineCallbacks
    def test_refused_relay_is_asked_again_at_the_next_heartbeat(self):
        """
        A node that joined after the origin's last heartbeat is refused at first (not yet
        among the origin's living nodes); its next heartbeat asks again and gets the relay.
        """
        a = yield self.start_node("a", serve_rest=True)
        self.nodes["a"][2].publish("s1", Source())
        yield self.written(a)
        yield a.directory.refresh()  # a knows no other node
        b = yield self.start_node("b", serve_rest=True)
        yield b.directory.refresh()
        copy = self.nodes["b"][2].resolve("s1")
        copy.attach(Collector())
        record = b.edges.copies["s1"]
        yield poll(lambda: record.attempts == 1 and not record.asking, 5.0)
        self.assertEqual((record.relayed, a.origin.relays, copy.ended), (False, {}, None))
        yield a.directory.refresh()
        b.edges.beat()
        yield poll(lambda: record.relayed, 5.0)
        self.assertEqual(list(a.origin.relays), [("s1", "b")])
