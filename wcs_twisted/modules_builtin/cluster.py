# -*- test-case-name: tests.modules_builtin.test_cluster -*-
"""
The C{cluster} module: this server as one node of many behind Kamailio and nginx, sharing a
call and stream directory in Redis (docs/scaling.md).

Off unless C{cluster_redis_url} is set.  When on, it writes this node's calls (every status
change) and published streams to the directory, renews the node's entry every heartbeat, and
provides the service C{"cluster"} (L{IClusterDirectory}) through which the REST front-end
answers /call/find, /stream/find, /connection/find with the whole cluster and relays a method that names a call
or stream of another node to that node.  SIP needs nothing of it: nodes register their sessions
at Kamailio like at any external SIP server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.internet.task import LoopingCall
from zope.interface import implementer

from wcs_twisted.interfaces import ICallObserver, IStreamObserver, IWcsModule
from wcs_twisted.modules_builtin.cluster_directory import ClusterDirectory
from wcs_twisted.modules_builtin.cluster_streams import (ORIGIN, EdgeStreams, OriginRelays,
                                                         RtpPort)

__all__ = ["ClusterModule", "redis_address"]

#: The WCS info text of a publish under a name in use (spec STREAM_STATUS_INFO).
STREAM_NAME_IN_USE = "Stream name is already in use"

#: WCS statuses that end a call: it leaves the directory.
_RELEASED = frozenset({"FINISH", "FAILED", "BUSY"})


def redis_address(url: str) -> tuple[str, int, int, str | None]:
    """
    C{(host, port, database, password)} of a C{redis://[:password@]host[:port][/db]} URL.

    @raise ValueError: not such a URL (the module's start fails with this text).
    """
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"cluster_redis_url {url!r} is not redis://host[:port][/db]")
    database = parts.path.strip("/") or "0"
    if not database.isdigit():
        raise ValueError(f"cluster_redis_url {url!r}: the database is a number")
    return parts.hostname, parts.port or 6379, int(database), parts.password


@implementer(IWcsModule, ICallObserver, IStreamObserver)
class ClusterModule:
    """
    Keeps this node's part of the directory true; see the module docstring.
    """

    name = "cluster"

    def __init__(self) -> None:
        self._context: Any = None
        self.directory: ClusterDirectory | None = None
        self._heartbeat: LoopingCall | None = None
        self._failing = False
        self.origin: OriginRelays | None = None
        self.edges: EdgeStreams | None = None
        self._sessions: Any = None

    def start(self, context) -> None:
        url = context.setting("cluster_redis_url")
        if not url:
            context.log.info("cluster mode off (cluster_redis_url is empty)")
            return
        host, port, database, password = redis_address(url)
        node_id = context.settings.node_id
        if not node_id:
            raise ValueError("cluster mode needs node_id: a name for this node that stays the "
                             "same across restarts")
        if not (context.settings.rest_password or context.settings.disable_rest_auth):
            raise ValueError("cluster mode needs rest_password, the same on every node: nodes "
                             "call each other's REST")
        timeout = context.setting("cluster_request_timeout_ms") / 1000.0
        rest_url = context.setting("cluster_node_url") or (
            f"http://{context.settings.advertised_address}:{context.settings.http_port}/rest-api")
        import txredisapi
        from treq.client import HTTPClient
        from twisted.internet.protocol import DatagramProtocol
        from twisted.web.client import Agent, HTTPConnectionPool

        redis = txredisapi.lazyConnection(host, port, database, reconnect=True,
                                          password=password, convertNumbers=False,
                                          connectTimeout=timeout, replyTimeout=timeout)
        pool = HTTPConnectionPool(context.reactor, persistent=False)
        http = HTTPClient(Agent(context.reactor, connectTimeout=timeout, pool=pool))
        self.directory = ClusterDirectory(
            redis, http, node_id, rest_url, context.clock,
            ttl=context.setting("cluster_node_ttl_ms") / 1000.0, timeout=timeout)
        self._context = context
        context.add_call_observer(self)
        context.streams.add_observer(self)
        context.provide("cluster", self.directory)
        sending = RtpPort(context, DatagramProtocol())
        self.origin = OriginRelays(context, self.directory, sending)
        self.origin.routes()
        self.edges = EdgeStreams(context, self.directory, http)
        context.streams.add_resolver(self.edges)
        context.streams.add_name_check(self.directory.published_elsewhere)
        # The server's sessions (the service "sessions"), for /connection/* across the cluster.
        self._sessions = context.services.get("sessions")
        if self._sessions is not None:
            self._sessions.observers.append(self)
        self._watch(self.directory.join(), "joining")
        self._heartbeat = LoopingCall(self._renew)
        self._heartbeat.clock = context.clock
        self._heartbeat.start(context.setting("cluster_heartbeat_ms") / 1000.0, now=False)
        context.log.info("cluster node {node} joined through {redis} (REST relayed to {rest})",
                         node=node_id, redis=f"{host}:{port}/{database}", rest=rest_url)

    def stop(self):
        if self._context is None:
            return None
        context, directory = self._context, self.directory
        self._context = None
        self._heartbeat.stop()
        context.remove_call_observer(self)
        context.streams.remove_resolver(self.edges)
        context.streams.remove_name_check(directory.published_elsewhere)
        if self._sessions is not None and self in self._sessions.observers:
            self._sessions.observers.remove(self)
        self.edges.close()
        self.origin.close()
        self.origin.port.close()
        context.streams.remove_observer(self)
        requests = self.edges.requests_done()  # the terminates close() just sent
        d = directory.leave().addTimeout(directory.timeout, context.clock)
        d.addBoth(lambda result: requests.addCallback(lambda _: result))
        d.addBoth(lambda _: directory.redis.disconnect())
        d.addErrback(lambda failure: context.log.warn(
            "cluster: leaving the directory failed: {error}", error=failure.getErrorMessage()))
        return d

    def _watch(self, d, what: str):
        """
        Log a failed directory write once per run of failures (Redis down: one line, not one a
        second); the node serves on from its own tables meanwhile.
        """
        def done(result):
            if self._failing and self._context is not None:
                self._context.log.info("cluster: the directory answers again")
            self._failing = False
            return result

        def failed(failure):
            if not self._failing and self._context is not None:
                self._context.log.warn("cluster: {what} failed: {error}", what=what,
                                       error=failure.getErrorMessage() or failure.type.__name__)
            self._failing = True

        return d.addCallbacks(done, failed)

    def _renew(self):
        directory = self.directory
        d = directory.renew().addCallback(lambda _: directory.refresh())
        d.addCallback(lambda _: (self.origin.beat(), self.edges.beat()))
        # Bounded, so a silent Redis never stops the heartbeat's loop.
        return self._watch(d.addTimeout(directory.timeout, self._context.clock),
                           "renewing this node")

    # --- ICallObserver, IStreamObserver, the session table's observers --------------------

    def session_opened(self, session) -> None:
        self._watch(self.directory.session_changed(session.session_id, session.public_fields()),
                    "writing a connection")

    def session_closed(self, session) -> None:
        self._watch(self.directory.session_changed(session.session_id, None),
                    "removing a connection")

    def call_status_changed(self, call, info) -> None:
        wcs = call.to_wcs()
        self._watch(self.directory.call_changed(call.call_id, wcs, wcs["status"] in _RELEASED),
                    "writing a call")

    def stream_published(self, stream) -> None:
        """
        Claim the name cluster-wide, then list the stream; a name another node claimed first
        (both published within a heartbeat) ends the stream here: "Stream name is already in
        use", as a second publisher on one node gets.
        """
        if ORIGIN in stream.properties:  # a copy of another node's stream is not ours
            return
        directory = self.directory

        def claimed(won):
            if not won:
                if stream.ended is None:
                    stream.end(STREAM_NAME_IN_USE)
                return None
            if stream.ended is not None:  # ended while the claim was on its way
                return directory.release(stream.name)
            return directory.stream_changed(stream.name, stream.describe())

        self._watch(directory.claim(stream.name).addCallback(claimed), "writing a stream")

    def stream_unpublished(self, stream, reason) -> None:
        if ORIGIN not in stream.properties and stream.name in self.directory.claimed:
            streams, directory = self._context.streams, self.directory

            def removed(_):
                if streams.get(stream.name) in (None, stream):  # not published here again
                    return directory.release(stream.name)
                return None

            self._watch(directory.stream_changed(stream.name, None).addCallback(removed),
                        "removing a stream")
