# -*- test-case-name: tests.modules_builtin.test_cluster -*-
"""
Streams across cluster nodes (WCS's origin/edge idea): a player on node B of a stream published
on node A gets it from a local copy on B, fed by one relay from A, however many players B has.

  - B (the edge) resolves a name it does not publish (L{IStreamResolver}) from the directory's
    cached view of the other nodes' streams: it opens a UDP port, publishes a local stream under
    the name (property C{originNodeId}) and asks A's REST C{/cluster/relay/startup} to send there.
  - A (the origin) attaches one sink per edge node to its stream, sending every packet as plain
    RTP (RFC 3550; payload type 96 audio, 97 video; the codecs are the stream's own, as the
    directory gives them): encoded payloads cross unchanged, as between a stream and its players.
  - The copy ends when the origin's stream leaves the directory (ended, or its node died), or
    when it has had no sink for two heartbeats; the relay ends with the origin's stream, on
    C{/cluster/relay/terminate}, or when the edge node dies.

Both ends' UDP ports come from the RTP range (C{media_port_from}..C{media_port_to}: the media
factory's own pool, which the server provides as the service C{"media_ports"}): firewalls open
for the range let relays through, and relays never take a port a call needs.

The origin sends only to a living node's address, asked by that node: the REST method cannot
aim a stream at anyone else.  The edge takes datagrams only from the origin's address.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import DeferredList
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.errors import InvalidField, NotFound
from wcs_twisted.interfaces import IStreamResolver, IStreamSink, IStreamSource
from wcs_twisted.modules_builtin.cluster_directory import RELAYED_HEADER
from wcs_twisted.toolkit.rtp import build_rtp, payload_bounds, peek_header

PAYLOAD_TYPES = {"audio": 96, "video": 97}
KINDS = {number: kind for kind, number in PAYLOAD_TYPES.items()}
#: The property that marks a local copy of another node's stream (never written to the directory).
ORIGIN = "originNodeId"
#: Heartbeats a copy may stay without a player before it is given up.
IDLE_BEATS = 2
STOPPED = "Stopped by publisher stop"


def host_of(rest_url: str) -> str:
    return urlsplit(rest_url).hostname or ""


class RtpPort:
    """
    A UDP port listening with C{protocol}: a pair of the server's RTP pool (the service
    C{"media_ports"}) when it has one, else any port; L{close} gives it back.
    """

    def __init__(self, context, protocol) -> None:
        interface = context.settings.bind_address
        pool = context.services.get("media_ports")
        self.reservation = None
        if pool is None:
            self.listening = context.reactor.listenUDP(0, protocol, interface=interface)
        else:
            self.reservation, self.listening = pool.bind(
                lambda pair: context.reactor.listenUDP(pair.rtp_port, protocol,
                                                       interface=interface))
        self.number = self.listening.getHost().port

    def write(self, data: bytes, address) -> None:
        self.listening.write(data, address)

    def close(self):
        d = self.listening.stopListening()
        if self.reservation is not None:
            self.reservation.release()
        return d


@implementer(IStreamSink)
class RelaySink:
    """
    On the origin: every packet of one stream to one edge node, as RTP.
    """

    kinds = ("audio", "video")

    def __init__(self, port, node: str, address: tuple[str, int], on_end) -> None:
        self.port = port
        self.node = node
        self.address = address
        self.on_end = on_end
        self.sent = 0
        self._sequence = {kind: int.from_bytes(os.urandom(2), "big") for kind in self.kinds}
        self._ssrc = {kind: int.from_bytes(os.urandom(4), "big") for kind in self.kinds}

    def packet_received(self, kind, payload, codec_name, timestamp, marker) -> None:
        sequence = self._sequence[kind] = (self._sequence[kind] + 1) & 0xFFFF
        self.port.write(build_rtp(PAYLOAD_TYPES[kind], sequence, timestamp, self._ssrc[kind],
                                  payload, marker), self.address)
        self.sent += 1

    def stream_ended(self, reason) -> None:
        self.on_end(self)


class OriginRelays:
    """
    On the origin: the relays of this node's streams to edge nodes, and their REST methods.
    """

    log = Logger()

    def __init__(self, context, directory, port) -> None:
        self.context = context
        self.directory = directory
        self.port = port
        self.relays: dict[tuple[str, str], tuple[Any, RelaySink]] = {}

    def routes(self) -> None:
        route = self.context.route
        text = ("string", "")
        route("POST", "/cluster/relay/startup", self.startup,
              fields={"streamName": text, "node": text, "host": text, "port": ("integer", "")},
              summary="Cluster: send a stream of this node to another node (RTP).")
        route("POST", "/cluster/relay/terminate", self.terminate,
              fields={"streamName": text, "node": text}, summary="Cluster: stop a relay.")
        route("POST", "/cluster/relay/keyframe", self.keyframe, fields={"streamName": text},
              summary="Cluster: a player on another node needs a video keyframe.")
        route(("GET", "POST"), "/cluster/relay/find_all", self.find_all, fields={},
              summary="Cluster: the relays this node sends.")

    def startup(self, body: dict[str, Any]) -> dict[str, Any]:
        name, node, host, port = (body.get(field) for field in ("streamName", "node", "host",
                                                                 "port"))
        rest = self.directory.living_nodes.get(node)
        if rest is None or host != host_of(rest):
            raise InvalidField("host", "not the address of a living node of this cluster")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidField("port", "a port number")
        stream = self.context.streams.get(name) if isinstance(name, str) else None
        if stream is None or ORIGIN in stream.properties:
            raise NotFound(f"Stream {name} is not published here")
        self._stop((name, node))
        sink = RelaySink(self.port, node, (host, port), lambda sink: self._ended(name, sink))
        self.relays[(name, node)] = (stream, sink)
        stream.attach(sink)
        self.log.info("cluster: stream {name} relayed to node {node} at {host}:{port}",
                      name=name, node=node, host=host, port=port)
        return {"streamName": name, "node": node}

    def terminate(self, body: dict[str, Any]) -> None:
        if not self._stop((body.get("streamName"), body.get("node"))):
            raise NotFound("No such relay")

    def keyframe(self, body: dict[str, Any]) -> None:
        stream = self.context.streams.get(body.get("streamName") or "")
        if stream is None:
            raise NotFound("Stream not found")
        stream.request_keyframe()

    def find_all(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"streamName": name, "node": node, "host": sink.address[0],
                 "port": sink.address[1], "packets": sink.sent}
                for (name, node), (_, sink) in sorted(self.relays.items())]

    def _ended(self, name: str, sink: RelaySink) -> None:
        if self.relays.get((name, sink.node), (None, None))[1] is sink:
            del self.relays[(name, sink.node)]

    def _stop(self, key) -> bool:
        entry = self.relays.pop(key, None)
        if entry is not None:
            entry[0].detach(entry[1])
        return entry is not None

    def beat(self) -> None:
        """
        Relays to nodes that died stop.
        """
        for key in [key for key in self.relays if key[1] not in self.directory.living_nodes]:
            self._stop(key)

    def close(self) -> None:
        for key in list(self.relays):
            self._stop(key)


@implementer(IStreamSource)
class EdgeSource:
    """
    On the edge: the source of a local copy, fed by the origin's RTP.
    """

    def __init__(self, audio_codec, video_codec, keyframe, ended) -> None:
        self.audio_codec = audio_codec
        self.video_codec = video_codec
        self._keyframe = keyframe
        self._ended = ended

    def request_keyframe(self) -> None:
        if self.video_codec:
            self._keyframe()

    def stream_ended(self, reason) -> None:
        self._ended(reason)


class EdgeReceiver(DatagramProtocol):
    """
    On the edge: the origin's RTP into the local copy; datagrams from anyone else are dropped.
    """

    def __init__(self, origin_host: str, codecs: dict[str, str | None]) -> None:
        self.origin_host = origin_host
        self.codecs = codecs
        self.stream = None
        self.received = 0

    def datagramReceived(self, data, address) -> None:
        if address[0] != self.origin_host or self.stream is None:
            return
        try:
            header = peek_header(data)
            start, end = payload_bounds(data)
        except (ValueError, struct.error):  # shorter than its header says
            return
        kind = KINDS.get(header.payload_type)
        codec = self.codecs.get(kind) if kind else None
        if codec is None:
            return
        self.received += 1
        self.stream.packet_received(kind, bytes(data[start:end]), codec, header.timestamp,
                                    header.marker)


@dataclass
class _Copy:
    """
    A local copy of another node's stream.
    """

    stream: Any
    listening: RtpPort
    node: str
    #: Whether the origin confirmed the relay; until then each heartbeat asks again.
    relayed: bool = False
    asking: bool = False
    attempts: int = 0
    #: Heartbeats in a row without a sink.
    idle: int = 0


@implementer(IStreamResolver)
class EdgeStreams:
    """
    On the edge: local copies of other nodes' streams, made when a player asks for one.
    """

    log = Logger()

    #: Relay requests an origin may refuse before the copy gives up: a node that joined a
    #: moment ago is not yet among the origin's living nodes, until its next heartbeat.
    ATTEMPTS = 3

    def __init__(self, context, directory, http) -> None:
        self.context = context
        self.directory = directory
        self.http = http
        #: Where origins send: this node's address as the other nodes know it (an IP address).
        self.address = host_of(directory.rest_url)
        self.copies: dict[str, _Copy] = {}
        self._requests: set = set()
        settings = context.settings
        credentials = f"{settings.rest_username}:{settings.rest_password}".encode()
        self.authorization = ("" if settings.disable_rest_auth
                              else "Basic " + base64.b64encode(credentials).decode())

    def _post(self, rest: str, path: str, body: dict[str, Any]):
        headers = {"Content-Type": ["application/json"], RELAYED_HEADER: [self.directory.node_id]}
        if self.authorization:
            headers["Authorization"] = [self.authorization]
        d = self.http.request("POST", rest + path, data=json.dumps(body).encode("utf-8"),
                              headers=headers)

        def checked(response):
            return response.content().addCallback(lambda content: (response.code, content))

        def settled(result):
            self._requests.discard(d)
            return result

        d.addCallback(checked).addTimeout(self.directory.timeout, self.context.clock)
        self._requests.add(d)
        return d.addBoth(settled)

    def requests_done(self):
        """
        Fires once the requests to origins under way have been answered (or timed out): a
        stopping node lets its last relay/terminate reach the origin.
        """
        return DeferredList(list(self._requests), consumeErrors=True)

    def resolve_stream(self, name: str):
        found = self.directory.remote_stream_cache.get(name)
        if found is None or name in self.copies:
            return None
        node, rest, description = found
        codecs = {"audio": description.get("audioCodec"), "video": description.get("videoCodec")}
        receiver = EdgeReceiver(host_of(rest), codecs)
        listening = RtpPort(self.context, receiver)
        properties = {key: value for key, value in description.items()
                      if key not in ("name", "audioCodec", "videoCodec", "createDate")}
        properties[ORIGIN] = node
        source = EdgeSource(codecs["audio"], codecs["video"],
                            lambda: self._post(rest, "/cluster/relay/keyframe",
                                               {"streamName": name}).addErrback(lambda _: None),
                            lambda reason: self._ended(name, reason))
        stream = self.context.streams.publish(name, source, properties)
        receiver.stream = stream
        copy = self.copies[name] = _Copy(stream, listening, node)
        self.log.info("cluster: stream {name} of node {node} copied here (RTP on {port})",
                      name=name, node=node, port=listening.number)
        self._ask(name, copy, rest)
        return stream

    def _ask(self, name: str, copy: _Copy, rest: str) -> None:
        """
        Ask the origin to relay the stream to this node; a refusal is asked again at the next
        heartbeat, at most L{ATTEMPTS} times in all.
        """
        copy.asking = True
        copy.attempts += 1
        request = {"streamName": name, "node": self.directory.node_id, "host": self.address,
                   "port": copy.listening.number}

        def answered(result):
            code, content = result
            if code != 200:
                raise ValueError(f"{code} {content[:200]!r}")
            copy.relayed = True

        def failed(failure):
            self.log.warn("cluster: node {node} did not relay stream {name} (attempt {n}): "
                          "{error}", node=copy.node, name=name, n=copy.attempts,
                          error=failure.getErrorMessage())
            if copy.attempts >= self.ATTEMPTS and not copy.stream.ended:
                copy.stream.end("Failed by error")

        def done(_):
            copy.asking = False

        self._post(rest, "/cluster/relay/startup", request).addCallbacks(
            answered, failed).addErrback(failed).addBoth(done)

    def _ended(self, name: str, reason: str) -> None:
        copy = self.copies.pop(name, None)
        if copy is None:
            return
        copy.listening.close()
        rest = self.directory.living_nodes.get(copy.node)
        if rest is not None and copy.relayed:
            self._post(rest, "/cluster/relay/terminate",
                       {"streamName": name, "node": self.directory.node_id}).addErrback(
                lambda _: None)

    def beat(self) -> None:
        """
        A copy whose origin is gone, or that nobody played for a while, ends; one whose relay
        was refused asks again.
        """
        for name, copy in list(self.copies.items()):
            origin = self.directory.remote_stream_cache.get(name)
            if origin is None or origin[0] != copy.node:
                copy.stream.end(STOPPED)
                continue
            copy.idle = copy.idle + 1 if not copy.stream.sinks else 0
            if copy.idle > IDLE_BEATS:
                copy.stream.end(STOPPED)
            elif not copy.relayed and not copy.asking:
                self._ask(name, copy, origin[1])

    def close(self) -> None:
        for copy in list(self.copies.values()):
            copy.stream.end(STOPPED)
