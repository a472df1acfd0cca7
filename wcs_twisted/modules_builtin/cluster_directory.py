# -*- test-case-name: tests.modules_builtin.test_cluster -*-
"""
The cluster's call and stream directory in Redis, and relaying REST requests to the node that
owns what they name (L{IClusterDirectory}).

Layout (every key under C{wcs:}):

  - C{wcs:nodes}: the set of node ids that ever joined;
  - C{wcs:node:<id>}: the node's REST base (JSON), renewed every heartbeat with a TTL: a node
    whose key expired is dead, and the first reader that notices removes it and its entries;
  - C{wcs:calls:<id>} / C{wcs:streams:<id>} / C{wcs:sessions:<id>}: hashes of the node's WCS
    call objects by callId, of its published streams by name and of its connections (the
    /connection/find objects) by sessionId, written as they change, with the same TTL;
  - C{wcs:name:<stream name>}: the node publishing that name, set only if absent (SET NX), with
    the same TTL: the atomic claim that makes stream names unique across the cluster.

Redis, not a home-made store: operators run it already, and a key's TTL is exactly the
"forget a node that stopped renewing" the failure case needs.  The client is txredisapi, a
Twisted protocol: no asyncio bridging (asyncio stays in media/), Deferreds with cancellation,
reconnection built in.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from twisted.internet.defer import DeferredList, inlineCallbacks, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import DomainError
from wcs_twisted.interfaces import IClusterDirectory

PREFIX = "wcs:"
NODES = PREFIX + "nodes"

#: The request header that marks a relayed request (rest/api.py RELAYED_HEADER).
RELAYED_HEADER = "X-WCS-Relayed"

#: Fields of a REST body that name a stream, in the order they are looked up.
STREAM_FIELDS = ("streamName", "name")


def node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"


def calls_key(node_id: str) -> str:
    return f"{PREFIX}calls:{node_id}"


def streams_key(node_id: str) -> str:
    return f"{PREFIX}streams:{node_id}"


def sessions_key(node_id: str) -> str:
    return f"{PREFIX}sessions:{node_id}"


#: The hashes each node keeps of what it holds (they live and die with the node).
NODE_HASHES = (calls_key, streams_key, sessions_key)


def name_key(stream_name: str) -> str:
    return f"{PREFIX}name:{stream_name}"


def matches(document: dict[str, Any], filters: dict[str, Any]) -> bool:
    """
    Whether every filter field equals the document's (what a node's own /find does).
    """
    return all(document.get(name) == value for name, value in filters.items())


def encode(document: dict[str, Any]) -> str:
    # Stream properties may hold values JSON does not know; they are shown, never parsed back.
    return json.dumps(document, default=str, separators=(",", ":"))


@implementer(IClusterDirectory)
class ClusterDirectory:
    """
    One node's view of the cluster: what it writes about itself, what it reads of the others.

    @ivar redis: a txredisapi connection (lazy: commands wait for it to connect).
    @ivar http: a treq C{HTTPClient} for relayed requests.
    """

    log = Logger()

    def __init__(self, redis, http, node_id: str, rest_url: str, clock, ttl: float,
                 timeout: float) -> None:
        self.redis = redis
        self.http = http
        self.node_id = node_id
        self.rest_url = rest_url.rstrip("/")
        self.clock = clock
        self.ttl_ms = int(ttl * 1000)
        self.timeout = timeout
        #: The other living nodes ({id: REST base}) and their streams ({name: (node, REST base,
        #: stream object)}) as of the last heartbeat: what synchronous callers (a player asking
        #: for a stream, a relay request to check) read.
        self.living_nodes: dict[str, str] = {}
        self.remote_stream_cache: dict[str, tuple[str, str, dict[str, Any]]] = {}
        #: The stream names this node claimed (L{claim}), renewed with its heartbeat.
        self.claimed: set[str] = set()

    def _bounded(self, d, what: str):
        """
        C{d} failed with a L{DomainError} after C{timeout} s: Redis or a node being slow never
        holds a REST answer for long.
        """
        def failed(failure):
            self.log.warn("cluster: {what} failed: {error}", what=what,
                          error=failure.getErrorMessage() or failure.type.__name__)
            raise DomainError(f"Cluster: {what} failed ({failure.type.__name__})")

        return d.addTimeout(self.timeout, self.clock).addErrback(failed)

    # --- this node ------------------------------------------------------------------------

    def join(self):
        """
        Forget what a previous life of this node left (a restart after kill -9), then renew.
        """
        d = self.redis.delete([key(self.node_id) for key in NODE_HASHES])
        return d.addCallback(lambda _: self.renew())

    def renew(self):
        """
        The heartbeat: this node is alive for one more TTL, and so are its entries.
        """
        return DeferredList([
            self.redis.set(node_key(self.node_id), encode({"rest": self.rest_url}),
                           pexpire=self.ttl_ms),
            self.redis.sadd(NODES, self.node_id),
        ] + [self.redis.execute_command("PEXPIRE", key, self.ttl_ms)
             for key in [of(self.node_id) for of in NODE_HASHES]
             + [name_key(name) for name in sorted(self.claimed)]],
            fireOnOneErrback=True, consumeErrors=True)

    def leave(self):
        claims, self.claimed = [name_key(name) for name in sorted(self.claimed)], set()
        return DeferredList([
            self.redis.delete([node_key(self.node_id)]
                              + [key(self.node_id) for key in NODE_HASHES] + claims),
            self.redis.srem(NODES, self.node_id),
        ], consumeErrors=True)

    def call_changed(self, call_id: str, wcs: dict[str, Any], released: bool):
        return self._changed(calls_key(self.node_id), call_id, None if released else wcs)

    def stream_changed(self, name: str, description: dict[str, Any] | None):
        return self._changed(streams_key(self.node_id), name, description)

    def session_changed(self, session_id: str, fields: dict[str, Any] | None):
        return self._changed(sessions_key(self.node_id), session_id, fields)

    def _changed(self, key: str, name: str, document: dict[str, Any] | None):
        """
        Write (or, for None, remove) one entry of this node's hash C{key}.
        """
        if document is None:
            return self.redis.hdel(key, name)
        return self.redis.hset(key, name, encode(document)).addCallback(
            lambda _: self.redis.execute_command("PEXPIRE", key, self.ttl_ms))

    @inlineCallbacks
    def claim(self, stream_name: str):
        """
        Take C{stream_name} for this node across the cluster: True unless another node holds
        it (two nodes publishing one name at once: exactly one wins).  A claim left by this
        node's previous life is its own.
        """
        key = name_key(stream_name)
        won = yield self.redis.set(key, self.node_id, pexpire=self.ttl_ms, only_if_not_exists=True)
        if not won and (yield self.redis.get(key)) != self.node_id:
            return False
        if not won:
            yield self.redis.execute_command("PEXPIRE", key, self.ttl_ms)
        self.claimed.add(stream_name)
        return True

    def release(self, stream_name: str):
        """
        Give back a name this node claimed (its stream ended); others' claims stay.
        """
        if stream_name not in self.claimed:
            return succeed(None)
        self.claimed.discard(stream_name)
        return self.redis.delete([name_key(stream_name)])

    def published_elsewhere(self, stream_name: str) -> bool:
        """
        Whether another living node publishes C{stream_name}, as of the last heartbeat (a
        publisher's synchronous name check; L{claim} settles publishes closer than that).
        """
        return stream_name in self.remote_stream_cache

    # --- the other nodes ------------------------------------------------------------------

    @inlineCallbacks
    def living(self):
        """
        The other living nodes, C{{id: REST base}}; the dead ones found on the way are removed
        with their entries (the directory forgets them).
        """
        members = sorted(set((yield self.redis.smembers(NODES))) - {self.node_id})
        if not members:
            return {}
        values = yield self.redis.mget([node_key(node) for node in members])
        alive, dead = {}, []
        for node, value in zip(members, values):
            if value is None:
                dead.append(node)
            else:
                alive[node] = json.loads(value)["rest"]
        if dead:
            self.log.info("cluster: nodes {nodes} stopped renewing: forgotten", nodes=dead)
            yield self.redis.srem(NODES, dead)
            yield self.redis.delete([key(node) for node in dead for key in NODE_HASHES])
        return alive

    @inlineCallbacks
    def _entries(self, key_of, nodes: Iterable[str]):
        """
        C{[(node, document)]} of one hash per node.
        """
        found = []
        for node in nodes:
            entries = yield self.redis.hgetall(key_of(node))
            found.extend((node, json.loads(value)) for value in (entries or {}).values())
        return found

    def _remote(self, key_of, filters: dict[str, Any], what: str):
        """
        The other nodes' matching objects; none (logged) while Redis does not answer: a node
        then answers /find with its own objects rather than not at all.
        """
        d = self.living().addCallback(lambda alive: self._entries(key_of, sorted(alive)))
        d.addCallback(lambda entries: [doc for _, doc in entries if matches(doc, filters)])
        return self._bounded(d, what).addErrback(lambda failure: failure.trap(DomainError)
                                                 and [])

    @inlineCallbacks
    def refresh(self):
        """
        Renew the cached view of the other nodes (every heartbeat).
        """
        alive = yield self.living()
        entries = yield self._entries(streams_key, sorted(alive))
        self.living_nodes = alive
        self.remote_stream_cache = {doc["name"]: (node, alive[node], doc)
                                    for node, doc in entries if "name" in doc}

    def remote_calls(self, filters: dict[str, Any]):
        return self._remote(calls_key, filters, "reading the calls of other nodes")

    def remote_streams(self, filters: dict[str, Any]):
        return self._remote(streams_key, filters, "reading the streams of other nodes")

    def remote_connections(self, filters: dict[str, Any]):
        return self._remote(sessions_key, filters, "reading the connections of other nodes")

    @inlineCallbacks
    def owner(self, body: dict[str, Any]):
        """
        The REST base of the living node that owns the call, stream or connection C{body}
        names, or None.
        """
        alive = yield self.living()
        call_id = body.get("callId")
        stream = next((body[name] for name in STREAM_FIELDS if isinstance(body.get(name), str)),
                      None)
        media_session_id = body.get("mediaSessionId")
        session_id = body.get("sessionId")
        for node in sorted(alive):
            if isinstance(call_id, str) and (yield self.redis.hexists(calls_key(node), call_id)):
                return alive[node]
            if isinstance(session_id, str) and (
                    yield self.redis.hexists(sessions_key(node), session_id)):
                return alive[node]
            if stream is not None and (yield self.redis.hexists(streams_key(node), stream)):
                return alive[node]
            if isinstance(media_session_id, str):
                entries = yield self._entries(streams_key, [node])
                if any(doc.get("mediaSessionId") == media_session_id for _, doc in entries):
                    return alive[node]
        return None

    def relay(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]):
        """
        Send the request to its owner as it came (same method, body and credentials) and
        answer what the owner answers; None when no other node owns what it names.
        """
        if not any(name in body for name in ("callId", "mediaSessionId", "sessionId")
                   + STREAM_FIELDS):
            return succeed(None)

        def send(rest):
            if rest is None:
                return None
            self.log.info("cluster: {method} {path} relayed to {rest}", method=method,
                          path=path, rest=rest)
            request_headers = {name: [value] for name, value in headers.items()}
            request_headers[RELAYED_HEADER] = [self.node_id]
            request_headers["Content-Type"] = ["application/json"]
            d = self.http.request(method, rest + path, data=json.dumps(body).encode("utf-8"),
                                  headers=request_headers)
            return d.addCallback(read)

        def read(response):
            content_type = response.headers.getRawHeaders(b"content-type", [None])[0]
            return response.content().addCallback(
                lambda content: (response.code, content_type, content))

        return self._bounded(self.owner(body).addCallback(send), f"relaying {path}")
