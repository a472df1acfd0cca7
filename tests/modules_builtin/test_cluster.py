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
from wcs_twisted.gateway.call_events import CallStatus
from wcs_twisted.interfaces import IClusterDirectory, IStreamSource
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules import ModuleContext
from wcs_twisted.modules_builtin.cluster import ClusterModule, redis_address
from wcs_twisted.modules_builtin.cluster_directory import calls_key, node_key


@implementer(IStreamSource)
class Source:
    audio_codec, video_codec = "PCMU/8000", None

    def request_keyframe(self):
        pass

    def stream_ended(self, reason):
        pass


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


class ClusterModuleTests(TestCase):
    """
    Two nodes' modules sharing one Redis.
    """

    @defer.inlineCallbacks
    def setUp(self):
        self.redis = RedisServer(self.mktemp())
        self.addCleanup(self.redis.stop)
        yield self.redis.start()
        self.clock = Clock()
        self.nodes = {}

    @defer.inlineCallbacks
    def start_node(self, node_id, rest_url="", **values):
        values.setdefault("cluster_redis_url", self.redis.url)
        values["cluster_node_url"] = rest_url or f"http://127.0.0.1:1/{node_id}"
        table = call_table(self.clock)
        streams = StreamRegistry(self.clock)
        services = {}
        context = ModuleContext("cluster", settings=Settings(node_id=node_id,
                                                             module_values=values),
                                reactor=reactor, clock=self.clock, calls=table, streams=streams,
                                services=services, keys=built_in_keys("cluster"))
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
        commands in order).
        """
        return module.directory.redis.ping()

    @defer.inlineCallbacks
    def test_off_without_redis_url(self):
        """
        With no cluster_redis_url the module provides nothing and touches no Redis.
        """
        module = yield self.start_node("solo", cluster_redis_url="")
        self.assertIsNone(module.directory)
        self.assertEqual(self.nodes["solo"][3], {})
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
