# -*- test-case-name: tests.modules_builtin.test_rtmp_protocol -*-
# Over 600 lines: one concept, the publishing side of RTMP (URL, AMF0, chunks, protocol, FLV tags).
"""
An RTMP publishing client on Twisted: handshake, chunk streams, AMF0 commands, FLV media tags.

The RTMP pusher could let FFmpeg's own RTMP output do the network part, but FFmpeg connects and
handshakes inside calls that hold the GIL and have no timeout when PyAV opens them, so a server
that accepts TCP and then stays silent would freeze the whole process.  Publishing is a small
part of RTMP (Adobe RTMP 1.0 specification, Dec 2012: sections 5.2 handshake, 5.3 chunking,
5.4 control messages, 7.2 commands; AMF0 specification; FLV 10.1 tag formats), so it is done here
as an ordinary non-blocking protocol: connection state is exact (published, lost, refused), and
media is dropped rather than queued without bound when the server reads too slowly.

L{RtmpPublisher} is the protocol; the pusher (L{wcs_twisted.modules_builtin.rtmp}) feeds it
H.264 and AAC frames with millisecond timestamps.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

__all__ = [
    "AmfDecodeError",
    "ChunkReader",
    "RtmpError",
    "RtmpPublisher",
    "RtmpTarget",
    "amf0_decode",
    "amf0_encode",
    "chunk_message",
    "parse_rtmp_url",
]

DEFAULT_PORT = 1935
HANDSHAKE_SIZE = 1536
#: Chunk size we announce and send with (the protocol default is 128).
OUT_CHUNK_SIZE = 4096
#: Largest chunk size or message we accept from the server.
MAX_IN_CHUNK_SIZE = 1 << 20
MAX_IN_MESSAGE = 1 << 20

# Message type ids (RTMP 5.4, 7.1).
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF0 = 18
COMMAND_AMF0 = 20

# Chunk stream ids we send on.
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_AUDIO = 4
CSID_DATA = 5
CSID_VIDEO = 6

# FLV tag bodies (FLV 10.1 E.4.2.1, E.4.3.1).
FLV_AAC = 0xAF  # AAC, "44 kHz", 16-bit, "stereo": what the format requires for AAC
FLV_AVC_KEYFRAME = 0x17
FLV_AVC_INTER = 0x27


class RtmpError(Exception):
    """
    The RTMP server refused or broke the session; the text says what it answered.
    """


class AmfDecodeError(RtmpError):
    """
    Bytes that are not valid AMF0.
    """


# --- URLs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RtmpTarget:
    """
    Where to publish: TCP address, application, C{tcUrl} and stream name.
    """

    host: str
    port: int
    app: str
    tc_url: str
    stream: str


def parse_rtmp_url(url: str, stream: Optional[str] = None) -> RtmpTarget:
    """
    Split an C{rtmp://host[:port]/app[/instance][?query]} URL.

    @param stream: the stream name; None means the URL is a full one whose last path segment
        (with the query, as FFmpeg does) is the stream name.
    @raise ValueError: not an rtmp:// URL with a host and an application.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "rtmp" or not parts.hostname:
        raise ValueError(f"{url!r} is not an rtmp:// URL with a host")
    port = parts.port or DEFAULT_PORT
    path = parts.path.strip("/")
    query = ("?" + parts.query) if parts.query else ""
    if stream is None:
        if "/" not in path:
            raise ValueError(f"{url!r} names no stream after the application")
        path, stream = path.rsplit("/", 1)
        stream += query
        query = ""
    if not path:
        raise ValueError(f"{url!r} names no application")
    if not stream:
        raise ValueError("an RTMP stream name is required")
    app = path + query
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return RtmpTarget(parts.hostname, port, app, f"rtmp://{host}:{port}/{app}", stream)


# --- AMF0 ---------------------------------------------------------------------------------------


class _EcmaArray(dict):
    """
    A dict encoded as an AMF0 ECMA array (what onMetaData carries) instead of an object.
    """


def ecma_array(values: dict) -> dict:
    return _EcmaArray(values)


def _amf0_value(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0x05)
    elif isinstance(value, bool):
        out += bytes((0x01, 1 if value else 0))
    elif isinstance(value, (int, float)):
        out.append(0x00)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) > 0xFFFF:
            out.append(0x0C)
            out += struct.pack(">I", len(data)) + data
        else:
            out.append(0x02)
            out += struct.pack(">H", len(data)) + data
    elif isinstance(value, dict):
        if isinstance(value, _EcmaArray):
            out.append(0x08)
            out += struct.pack(">I", len(value))
        else:
            out.append(0x03)
        for key, item in value.items():
            name = str(key).encode("utf-8")
            out += struct.pack(">H", len(name)) + name
            _amf0_value(item, out)
        out += b"\x00\x00\x09"
    elif isinstance(value, (list, tuple)):
        out.append(0x0A)
        out += struct.pack(">I", len(value))
        for item in value:
            _amf0_value(item, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def amf0_encode(*values: Any) -> bytes:
    """
    AMF0 encoding of C{values} in order (None, bool, number, str, dict as object, list).
    """
    out = bytearray()
    for value in values:
        _amf0_value(value, out)
    return bytes(out)


def _need(data: bytes, offset: int, size: int) -> None:
    if offset + size > len(data):
        raise AmfDecodeError("AMF0 data ends early")


def _amf0_read(data: bytes, offset: int, depth: int = 0) -> tuple[Any, int]:
    if depth > 32:
        raise AmfDecodeError("AMF0 nesting too deep")
    _need(data, offset, 1)
    marker = data[offset]
    offset += 1
    if marker == 0x00:
        _need(data, offset, 8)
        return struct.unpack_from(">d", data, offset)[0], offset + 8
    if marker == 0x01:
        _need(data, offset, 1)
        return data[offset] != 0, offset + 1
    if marker in (0x02, 0x0C):
        width = 2 if marker == 0x02 else 4
        _need(data, offset, width)
        size = int.from_bytes(data[offset:offset + width], "big")
        offset += width
        _need(data, offset, size)
        return data[offset:offset + size].decode("utf-8", "replace"), offset + size
    if marker in (0x03, 0x08):
        if marker == 0x08:
            _need(data, offset, 4)
            offset += 4  # the count is a hint; the end marker ends it
        result: dict = {}
        while True:
            _need(data, offset, 3)
            size = int.from_bytes(data[offset:offset + 2], "big")
            if size == 0 and data[offset + 2] == 0x09:
                return result, offset + 3
            offset += 2
            _need(data, offset, size)
            key = data[offset:offset + size].decode("utf-8", "replace")
            offset += size
            result[key], offset = _amf0_read(data, offset, depth + 1)
    if marker in (0x05, 0x06):  # null, undefined
        return None, offset
    if marker == 0x0A:
        _need(data, offset, 4)
        count = int.from_bytes(data[offset:offset + 4], "big")
        offset += 4
        items = []
        for _ in range(count):
            item, offset = _amf0_read(data, offset, depth + 1)
            items.append(item)
        return items, offset
    raise AmfDecodeError(f"unsupported AMF0 type marker 0x{marker:02x}")


def amf0_decode(data: bytes) -> list:
    """
    Every AMF0 value in C{data}, in order.

    @raise AmfDecodeError: malformed or unsupported data.
    """
    values, offset = [], 0
    while offset < len(data):
        value, offset = _amf0_read(data, offset)
        values.append(value)
    return values


# --- chunks -------------------------------------------------------------------------------------


def chunk_message(csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes,
                  chunk_size: int) -> bytes:
    """
    One message as chunks: a type 0 chunk, then type 3 continuations (RTMP 5.3.1).
    Timestamps of 2**24 - 1 ms and over go in the extended timestamp field of every chunk.
    """
    timestamp &= 0xFFFFFFFF
    extended = timestamp >= 0xFFFFFF
    basic = _basic_header(0, csid)
    header = basic + (0xFFFFFF if extended else timestamp).to_bytes(3, "big") \
        + len(payload).to_bytes(3, "big") + bytes((type_id,)) + struct.pack("<I", stream_id)
    extra = timestamp.to_bytes(4, "big") if extended else b""
    if len(payload) <= chunk_size:
        return header + extra + payload
    continuation = _basic_header(3, csid) + extra
    pieces = [header, extra, payload[:chunk_size]]
    for offset in range(chunk_size, len(payload), chunk_size):
        pieces.append(continuation)
        pieces.append(payload[offset:offset + chunk_size])
    return b"".join(pieces)


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 64 <= csid <= 65599:
        return bytes(((fmt << 6) | 1,)) + (csid - 64).to_bytes(2, "little")
    raise ValueError(f"chunk stream id {csid} out of range")


class _ChunkStream:
    __slots__ = ("timestamp", "delta", "length", "type_id", "stream_id", "buffer", "extended")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.buffer = bytearray()
        self.extended = False


class ChunkReader:
    """
    Reassembles the messages of an incoming chunk stream (RTMP 5.3.1): basic headers of 1-3
    bytes, message headers of types 0-3, extended timestamps, the peer's chunk size.

    L{feed} returns complete messages as C{(type_id, stream_id, timestamp, payload)}.
    """

    def __init__(self) -> None:
        self.chunk_size = 128
        self._buffer = bytearray()
        self._streams: dict[int, _ChunkStream] = {}

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        self._buffer += data
        messages = []
        while True:
            message = self._one_chunk()
            if message is None:
                break
            if message is not _PARTIAL:
                messages.append(message)
        return messages

    def _one_chunk(self):
        """
        Take one chunk off the buffer: None if it is not all there yet, L{_PARTIAL} if it did
        not end a message, else the message.  Nothing changes until the whole chunk is there.
        """
        buffer = self._buffer
        if not buffer:
            return None
        fmt, csid, offset = buffer[0] >> 6, buffer[0] & 0x3F, 1
        if csid == 0:
            if len(buffer) < 2:
                return None
            csid, offset = buffer[1] + 64, 2
        elif csid == 1:
            if len(buffer) < 3:
                return None
            csid, offset = buffer[1] + buffer[2] * 256 + 64, 3
        header_size = (11, 7, 3, 0)[fmt]
        if len(buffer) < offset + header_size:
            return None
        state = self._streams.get(csid)
        if state is None and fmt != 0:
            raise RtmpError(f"chunk stream {csid} starts without a type 0 header")
        if fmt < 3:
            field = int.from_bytes(buffer[offset:offset + 3], "big")
            extended = field == 0xFFFFFF
        else:
            # Type 3 chunks carry the extended timestamp when the header they repeat did.
            field, extended = 0, state.extended
        end = offset + header_size + (4 if extended else 0)
        if len(buffer) < end:
            return None
        length = state.length if state is not None else 0
        if fmt <= 1:
            length = int.from_bytes(buffer[offset + 3:offset + 6], "big")
            if length > MAX_IN_MESSAGE:
                raise RtmpError(f"message of {length} bytes is too large")
        gathered = len(state.buffer) if state is not None else 0
        needed = min(self.chunk_size, length - gathered)
        if len(buffer) < end + needed:
            return None
        # The whole chunk is here: apply it.
        if state is None:
            state = self._streams[csid] = _ChunkStream()
        value = int.from_bytes(buffer[end - 4:end], "big") if extended else field
        if fmt < 3:
            state.extended = extended
        if fmt <= 1:
            state.length = length
            state.type_id = buffer[offset + 6]
        if fmt == 0:
            state.stream_id = struct.unpack_from("<I", buffer, offset + 7)[0]
        if not state.buffer:  # the first chunk of a message sets its timestamp
            if fmt == 0:
                state.timestamp, state.delta = value, 0
            elif fmt in (1, 2):
                state.delta = value
                state.timestamp = (state.timestamp + value) & 0xFFFFFFFF
            else:
                state.timestamp = (state.timestamp + state.delta) & 0xFFFFFFFF
        state.buffer += buffer[end:end + needed]
        del buffer[:end + needed]
        if len(state.buffer) < state.length:
            return _PARTIAL
        payload, state.buffer = bytes(state.buffer), bytearray()
        if state.type_id == SET_CHUNK_SIZE and len(payload) >= 4:
            size = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if not 1 <= size <= MAX_IN_CHUNK_SIZE:
                raise RtmpError(f"chunk size {size} refused")
            self.chunk_size = size
        return state.type_id, state.stream_id, state.timestamp, payload


_PARTIAL = object()


# --- the protocol -------------------------------------------------------------------------------


@implementer(IPushProducer)
class RtmpPublisher(Protocol):
    """
    Publishes one stream: C{connect}, C{createStream}, C{publish}, then media messages.

    The owner gets C{published(publisher)} once the server answered NetStream.Publish.Start,
    C{refused(publisher, reason)} if it refused (the connection is then closed) and
    C{lost(publisher, reason)} when the connection ends, whatever the cause.  While the socket's
    send buffer is full the transport pauses us and media is dropped (L{congested}); the owner
    asks its source for a keyframe when that happens.

    @param target: what to publish to.
    @param owner: the object told about progress (see above).
    @param flash_version: the C{flashVer} to announce.
    """

    log = Logger()

    def __init__(self, target: RtmpTarget, owner: Any,
                 flash_version: str = "FMLE/3.0 (compatible; wcs-twisted)") -> None:
        self.target = target
        self.owner = owner
        self.flash_version = flash_version
        self.state = "handshake"
        self._handshake = bytearray()
        self._c1 = b""
        self._reader = ChunkReader()
        self._transactions: dict[int, Callable[[str, list], None]] = {}
        self._next_transaction = 1
        self.stream_id: Optional[int] = None
        self._window = 2500000
        self._received = 0
        self._acknowledged = 0
        self.congested = False
        self.lost_reason: Optional[str] = None
        self.bytes_sent = 0

    # --- connection -------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        # C0 + C1: version 3, time 0, zero version field (the plain handshake, RTMP 5.2).
        self._c1 = bytes(8) + os.urandom(HANDSHAKE_SIZE - 8)
        self._write(b"\x03" + self._c1)

    def dataReceived(self, data: bytes) -> None:
        self._received += len(data)
        try:
            if self.state == "handshake":
                self._handshake += data
                needed = 1 + 2 * HANDSHAKE_SIZE
                if len(self._handshake) < needed:
                    return
                if self._handshake[0] != 3:
                    raise RtmpError(f"server speaks RTMP version {self._handshake[0]}")
                s1 = bytes(self._handshake[1:1 + HANDSHAKE_SIZE])
                rest = bytes(self._handshake[needed:])
                self._handshake = bytearray()
                self._write(s1)  # C2 echoes S1
                self.state = "connecting"
                self._send_control(SET_CHUNK_SIZE, OUT_CHUNK_SIZE.to_bytes(4, "big"))
                self._command("connect", {
                    "app": self.target.app,
                    "type": "nonprivate",
                    "flashVer": self.flash_version,
                    "tcUrl": self.target.tc_url,
                }, callback=self._connected)
                data = rest
                if not data:
                    return
            for message in self._reader.feed(data):
                self._message(*message)
            self._acknowledge()
        except RtmpError as error:
            self._refuse(str(error))

    def connectionLost(self, reason) -> None:
        previous, self.state = self.state, "closed"
        if self.lost_reason is None:
            self.lost_reason = reason.getErrorMessage()
        self.owner.lost(self, self.lost_reason, previous == "publishing")

    def close(self, reason: str = "closed by us") -> None:
        """
        End the session (FCUnpublish + deleteStream when publishing) and close the connection.
        """
        if self.transport is None or self.state == "closed":
            return
        if self.lost_reason is None:
            self.lost_reason = reason
        if self.state == "publishing":
            self._command("FCUnpublish", None, self.target.stream)
            self._command("deleteStream", None, float(self.stream_id or 0))
        self.transport.loseConnection()

    def abort(self, reason: str) -> None:
        """
        Drop the connection at once (a timeout): no goodbye messages.
        """
        if self.transport is None or self.state == "closed":
            return
        if self.lost_reason is None:
            self.lost_reason = reason
        self.transport.abortConnection()

    def _refuse(self, reason: str) -> None:
        self.lost_reason = reason
        if self.state != "publishing":
            self.owner.refused(self, reason)
        if self.transport is not None:
            self.transport.loseConnection()

    # --- IPushProducer ----------------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self.congested = True

    def resumeProducing(self) -> None:
        self.congested = False

    def stopProducing(self) -> None:
        self.congested = True

    # --- incoming ---------------------------------------------------------------------------------

    def _message(self, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> None:
        if type_id == COMMAND_AMF0:
            self._command_received(amf0_decode(payload))
        elif type_id == WINDOW_ACK_SIZE and len(payload) >= 4:
            self._window = max(1, int.from_bytes(payload[:4], "big"))
        elif type_id == USER_CONTROL and len(payload) >= 6:
            event = int.from_bytes(payload[:2], "big")
            if event == 6:  # PingRequest: answer with PingResponse and the same timestamp
                self._send_control(USER_CONTROL, b"\x00\x07" + payload[2:6])
        # Set Chunk Size is applied by the reader; Abort, Acknowledgement, Set Peer Bandwidth
        # and data messages need nothing from a publisher.

    def _acknowledge(self) -> None:
        if self.state != "closed" and self._received - self._acknowledged >= self._window:
            self._acknowledged = self._received
            self._send_control(ACKNOWLEDGEMENT, (self._received & 0xFFFFFFFF).to_bytes(4, "big"))

    def _command_received(self, values: list) -> None:
        if not values or not isinstance(values[0], str):
            return
        name = values[0]
        if name in ("_result", "_error") and len(values) > 1:
            callback = self._transactions.pop(int(values[1] or 0), None)
            if callback is not None:
                callback(name, values[2:])
        elif name == "onStatus":
            info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
            self._on_status(info)
        elif name == "close":
            self._refuse("the server closed the session")

    def _connected(self, outcome: str, values: list) -> None:
        info = values[1] if len(values) > 1 and isinstance(values[1], dict) else {}
        if outcome != "_result":
            self._refuse(f"connect refused: {info.get('code')} {info.get('description', '')}"
                         .strip())
            return
        self.state = "creating"
        self._command("releaseStream", None, self.target.stream)
        self._command("FCPublish", None, self.target.stream)
        self._command("createStream", None, callback=self._stream_created)

    def _stream_created(self, outcome: str, values: list) -> None:
        if outcome != "_result" or len(values) < 2 or not isinstance(values[1], float):
            self._refuse("createStream refused")
            return
        self.stream_id = int(values[1])
        self.state = "publishing_requested"
        self._command("publish", None, self.target.stream, "live", stream_id=self.stream_id,
                      csid=CSID_DATA)

    def _on_status(self, info: dict) -> None:
        code = str(info.get("code", ""))
        level = str(info.get("level", ""))
        if code == "NetStream.Publish.Start" and self.state == "publishing_requested":
            self.state = "publishing"
            self.owner.published(self)
        elif level == "error" or code in ("NetStream.Publish.BadName",
                                          "NetStream.Publish.Denied"):
            self._refuse(f"{code} {info.get('description', '')}".strip())

    # --- outgoing ---------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        self.transport.write(data)

    def _send(self, csid: int, type_id: int, stream_id: int, timestamp: int,
              payload: bytes) -> None:
        self._write(chunk_message(csid, type_id, stream_id, timestamp, payload, OUT_CHUNK_SIZE))

    def _send_control(self, type_id: int, payload: bytes) -> None:
        self._send(CSID_CONTROL, type_id, 0, 0, payload)

    def _command(self, name: str, *arguments: Any,
                 callback: Optional[Callable[[str, list], None]] = None, stream_id: int = 0,
                 csid: int = CSID_COMMAND) -> None:
        transaction = self._next_transaction
        self._next_transaction += 1
        if callback is not None:
            self._transactions[transaction] = callback
        self._send(csid, COMMAND_AMF0, stream_id, 0,
                   amf0_encode(name, float(transaction), *arguments))

    @property
    def ready(self) -> bool:
        """
        Publishing and the socket is keeping up: media may be sent.
        """
        return self.state == "publishing" and not self.congested

    def send_metadata(self, metadata: dict) -> None:
        """
        C{@setDataFrame onMetaData} (what FLV recorders store as the file's metadata).
        """
        if self.state == "publishing":
            self._send(CSID_DATA, DATA_AMF0, self.stream_id, 0,
                       amf0_encode("@setDataFrame", "onMetaData", ecma_array(metadata)))

    def send_audio(self, timestamp: int, body: bytes) -> None:
        """
        An FLV audio tag body (e.g. C{0xAF 0x01 <raw AAC frame>}) at C{timestamp} ms.
        """
        if self.state == "publishing":
            self._send(CSID_AUDIO, AUDIO, self.stream_id, timestamp, body)

    def send_video(self, timestamp: int, body: bytes) -> None:
        """
        An FLV video tag body (C{0x17/0x27}, AVC packet type, composition time, data).
        """
        if self.state == "publishing":
            self._send(CSID_VIDEO, VIDEO, self.stream_id, timestamp, body)


def aac_sequence_header(audio_specific_config: bytes) -> bytes:
    return bytes((FLV_AAC, 0)) + audio_specific_config


def aac_frame(frame: bytes) -> bytes:
    return bytes((FLV_AAC, 1)) + frame


def avc_sequence_header(configuration_record: bytes) -> bytes:
    return bytes((FLV_AVC_KEYFRAME, 0, 0, 0, 0)) + configuration_record


def avc_frame(length_prefixed: bytes, keyframe: bool) -> bytes:
    return bytes((FLV_AVC_KEYFRAME if keyframe else FLV_AVC_INTER, 1, 0, 0, 0)) + length_prefixed
