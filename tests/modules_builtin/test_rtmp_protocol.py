"""
Tests for L{wcs_twisted.modules_builtin.rtmp_protocol}: the RTMP publishing client.

The server side is played by L{ScriptedServer}, which parses what the client wrote with the
module's own L{ChunkReader} (itself tested against hand-made chunks) and answers like
nginx-rtmp does.
"""

import struct

from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone
from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.modules_builtin.rtmp_protocol import (
    AUDIO,
    COMMAND_AMF0,
    DATA_AMF0,
    HANDSHAKE_SIZE,
    OUT_CHUNK_SIZE,
    SET_CHUNK_SIZE,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ACKNOWLEDGEMENT,
    AmfDecodeError,
    ChunkReader,
    RtmpError,
    RtmpPublisher,
    amf0_decode,
    amf0_encode,
    chunk_message,
    ecma_array,
    parse_rtmp_url,
)


class UrlTests(SynchronousTestCase):
    """
    rtmp:// URLs split into host, port, application and stream.
    """

    def test_base_url_and_stream(self):
        """
        The path is the application; the port defaults to 1935.
        """
        target = parse_rtmp_url("rtmp://example.com/live/", "rtmp_s1")
        self.assertEqual((target.host, target.port, target.app, target.tc_url, target.stream),
                         ("example.com", 1935, "live", "rtmp://example.com:1935/live",
                          "rtmp_s1"))

    def test_instance_and_query(self):
        """
        An instance and a query string stay part of the application (WCS's _definst_ form).
        """
        target = parse_rtmp_url("rtmp://10.0.0.1:1936/live/_definst_?a=1&b=2", "s")
        self.assertEqual((target.port, target.app), (1936, "live/_definst_?a=1&b=2"))

    def test_full_url(self):
        """
        Without a stream name the last path segment (with the query) is the stream.
        """
        target = parse_rtmp_url("rtmp://h/app/inst/name?key=k")
        self.assertEqual((target.app, target.stream), ("app/inst", "name?key=k"))

    def test_bad_urls(self):
        """
        Other schemes, no host, no application, or no stream raise ValueError.
        """
        for url, stream in (("http://h/live", "s"), ("rtmp:///live", "s"), ("rtmp://h/", "s"),
                            ("rtmp://h/live", None), ("rtmp://h/live", "")):
            self.assertRaises(ValueError, parse_rtmp_url, url, stream)


class Amf0Tests(SynchronousTestCase):
    """
    AMF0 values (AMF0 specification 2.2-2.12).
    """

    def test_known_encodings(self):
        """
        Numbers are big-endian doubles, strings length-prefixed, objects end with 00 00 09.
        """
        self.assertEqual(amf0_encode(1.0), b"\x00" + struct.pack(">d", 1.0))
        self.assertEqual(amf0_encode("ab"), b"\x02\x00\x02ab")
        self.assertEqual(amf0_encode(True, None), b"\x01\x01\x05")
        self.assertEqual(amf0_encode({"a": 1}), b"\x03\x00\x01a\x00" + struct.pack(">d", 1)
                         + b"\x00\x00\x09")
        self.assertEqual(amf0_encode(ecma_array({})), b"\x08\x00\x00\x00\x00\x00\x00\x09")

    def test_round_trip(self):
        """
        Everything encoded decodes to the same values (ints come back as floats).
        """
        values = ["connect", 1.0, {"app": "live", "nested": {"x": [1.0, "y", None]}}, None,
                  False, "é" * 70000]
        self.assertEqual(amf0_decode(amf0_encode(*values)), values)
        self.assertEqual(amf0_decode(amf0_encode(ecma_array({"w": 2.0}))), [{"w": 2.0}])

    def test_malformed(self):
        """
        Truncated data and unknown markers raise AmfDecodeError.
        """
        for data in (b"\x00\x01", b"\x02\x00\x05ab", b"\x03\x00\x01a", b"\x11", b"\x0a\x00"):
            self.assertRaises(AmfDecodeError, amf0_decode, data)
        self.assertRaises(TypeError, amf0_encode, object())


class ChunkTests(SynchronousTestCase):
    """
    Messages to chunks and back (RTMP 5.3).
    """

    def read_all(self, data, byte_by_byte=False):
        reader = ChunkReader()
        reader.chunk_size = 128
        messages = []
        if byte_by_byte:
            for index in range(len(data)):
                messages += reader.feed(data[index:index + 1])
        else:
            messages += reader.feed(data)
        return messages

    def test_split_into_chunks(self):
        """
        A message longer than the chunk size is a type 0 chunk then type 3 continuations.
        """
        payload = bytes(range(256)) * 2
        data = chunk_message(6, VIDEO, 1, 1000, payload, 128)
        self.assertEqual(data[:12], b"\x06" + (1000).to_bytes(3, "big") + (512).to_bytes(3, "big")
                         + b"\x09\x01\x00\x00\x00")
        self.assertEqual(data[12 + 128], 0xC6)
        self.assertEqual(len(data), 12 + 512 + 3)

    def test_read_back_whole_and_byte_by_byte(self):
        """
        The reader reassembles messages fed whole, byte by byte, and followed by more data.
        """
        payload = bytes(range(256)) * 3
        data = chunk_message(6, VIDEO, 1, 1000, payload, 128) \
            + chunk_message(4, AUDIO, 1, 1020, b"aac", 128)
        expected = [(VIDEO, 1, 1000, payload), (AUDIO, 1, 1020, b"aac")]
        self.assertEqual(self.read_all(data), expected)
        self.assertEqual(self.read_all(data, byte_by_byte=True), expected)

    def test_extended_timestamp(self):
        """
        Timestamps from 0xFFFFFF up go in the extended field, repeated in continuations.
        """
        payload = bytes(300)
        data = chunk_message(6, VIDEO, 1, 0x12345678, payload, 128)
        self.assertEqual(data[1:4], b"\xff\xff\xff")
        self.assertEqual(data[12:16], b"\x12\x34\x56\x78")
        self.assertEqual(self.read_all(data), [(VIDEO, 1, 0x12345678, payload)])

    def test_compressed_headers(self):
        """
        Type 1, 2 and 3 headers take the stream id, length and type from before and add their
        timestamp delta (5.3.1.2).
        """
        data = chunk_message(5, AUDIO, 1, 100, b"abcd", 128)
        data += b"\x45" + (20).to_bytes(3, "big") + (2).to_bytes(3, "big") + bytes((AUDIO,)) + b"xy"
        data += b"\x85" + (30).to_bytes(3, "big") + b"zw"
        data += b"\xc5" + b"uv"
        self.assertEqual(self.read_all(data), [(AUDIO, 1, 100, b"abcd"), (AUDIO, 1, 120, b"xy"),
                                               (AUDIO, 1, 150, b"zw"), (AUDIO, 1, 180, b"uv")])

    def test_long_chunk_stream_ids_and_chunk_size(self):
        """
        Two- and three-byte basic headers work, and Set Chunk Size applies to later chunks.
        """
        data = chunk_message(2, SET_CHUNK_SIZE, 0, 0, (4096).to_bytes(4, "big"), 128)
        data += chunk_message(100, COMMAND_AMF0, 0, 0, bytes(1000), 4096)
        data += chunk_message(400, DATA_AMF0, 0, 0, b"x", 4096)
        reader = ChunkReader()
        messages = reader.feed(data)
        self.assertEqual([m[0] for m in messages], [SET_CHUNK_SIZE, COMMAND_AMF0, DATA_AMF0])
        self.assertEqual(reader.chunk_size, 4096)

    def test_protocol_errors(self):
        """
        A chunk stream starting without a type 0 header, or a huge message, is an RtmpError.
        """
        self.assertRaises(RtmpError, ChunkReader().feed, b"\xc3abc")
        huge = b"\x03" + bytes(3) + (1 << 22).to_bytes(3, "big") + b"\x14" + bytes(4)
        self.assertRaises(RtmpError, ChunkReader().feed, huge)


class Owner:
    """
    Records what the publisher tells its owner.
    """

    def __init__(self):
        self.events = []

    def published(self, publisher):
        self.events.append("published")

    def refused(self, publisher, reason):
        self.events.append(("refused", reason))

    def lost(self, publisher, reason, was_publishing):
        self.events.append(("lost", reason, was_publishing))


class ScriptedServer:
    """
    The server end: reads what the client wrote, answers like nginx-rtmp.
    """

    def __init__(self, publisher, transport):
        self.publisher = publisher
        self.transport = transport
        self.reader = ChunkReader()
        self.handshake_done = False
        self.messages = []

    def receive(self):
        """
        Parse what the client wrote since the last call; return the new messages.
        """
        data = self.transport.value()
        self.transport.clear()
        if not self.handshake_done:
            if len(data) < 1 + HANDSHAKE_SIZE:
                raise AssertionError("no C0+C1")
            assert data[0] == 3
            self.c1 = data[1:1 + HANDSHAKE_SIZE]
            self.s1 = bytes(HANDSHAKE_SIZE)
            self.publisher.dataReceived(b"\x03" + self.s1 + self.c1)
            data = data[1 + HANDSHAKE_SIZE:] + self.transport.value()
            self.transport.clear()
            assert data[:HANDSHAKE_SIZE] == self.s1, "C2 echoes S1"
            data = data[HANDSHAKE_SIZE:]
            self.handshake_done = True
        new = []
        for message in self.reader.feed(data):
            type_id, stream_id, timestamp, payload = message
            if type_id in (COMMAND_AMF0, DATA_AMF0):
                payload = amf0_decode(payload)
            new.append((type_id, stream_id, timestamp, payload))
        self.messages += new
        return new

    def send(self, csid, type_id, stream_id, payload):
        self.publisher.dataReceived(chunk_message(csid, type_id, stream_id, 0, payload, 128))

    def command(self, *values, stream_id=0):
        self.send(3, COMMAND_AMF0, stream_id, amf0_encode(*values))


class RtmpPublisherTests(SynchronousTestCase):
    """
    The publishing session: handshake, connect, createStream, publish, media (RTMP 7.2).
    """

    def setUp(self):
        self.owner = Owner()
        self.publisher = RtmpPublisher(parse_rtmp_url("rtmp://127.0.0.1/live", "s1"),
                                       self.owner)
        self.transport = StringTransport()
        self.publisher.makeConnection(self.transport)
        self.server = ScriptedServer(self.publisher, self.transport)

    def publish(self):
        """
        Run the session up to NetStream.Publish.Start.
        """
        self.server.receive()
        self.server.send(2, WINDOW_ACK_SIZE, 0, (5000000).to_bytes(4, "big"))
        self.server.command("_result", 1.0, {"fmsVer": "FMS/3,0,1,123"},
                            {"level": "status", "code": "NetConnection.Connect.Success"})
        commands = [m[3][0] for m in self.server.receive() if m[0] == COMMAND_AMF0]
        self.assertEqual(commands, ["releaseStream", "FCPublish", "createStream"])
        self.server.command("_result", 4.0, None, 1.0)
        [publish] = self.server.receive()
        self.assertEqual((publish[1], publish[3]), (1, ["publish", 5.0, None, "s1", "live"]))
        self.server.command("onStatus", 0.0, None,
                            {"level": "status", "code": "NetStream.Publish.Start"}, stream_id=1)

    def test_handshake_and_connect(self):
        """
        The client sends C0+C1 at once, echoes S1 as C2, announces its chunk size and sends
        connect with the application and tcUrl.
        """
        self.assertEqual(len(self.transport.value()), 1 + HANDSHAKE_SIZE)
        self.assertEqual(self.transport.value()[1:9], bytes(8))
        messages = self.server.receive()
        self.assertEqual(messages[0][:3], (SET_CHUNK_SIZE, 0, 0))
        self.assertEqual(int.from_bytes(messages[0][3], "big"), OUT_CHUNK_SIZE)
        name, transaction, properties = messages[1][3]
        self.assertEqual((name, transaction), ("connect", 1.0))
        self.assertEqual((properties["app"], properties["tcUrl"], properties["type"]),
                         ("live", "rtmp://127.0.0.1:1935/live", "nonprivate"))

    def test_published(self):
        """
        NetStream.Publish.Start makes the owner hear "published" and media flows on the
        stream's id.
        """
        self.publish()
        self.assertEqual(self.owner.events, ["published"])
        self.assertTrue(self.publisher.ready)
        self.publisher.send_metadata({"width": 320.0})
        self.publisher.send_audio(20, b"\xaf\x01aac")
        self.publisher.send_video(40, b"\x27\x01\x00\x00\x00avc")
        messages = self.server.receive()
        self.assertEqual([m[:3] for m in messages], [(DATA_AMF0, 1, 0), (AUDIO, 1, 20),
                                                     (VIDEO, 1, 40)])
        self.assertEqual(messages[0][3], ["@setDataFrame", "onMetaData", {"width": 320.0}])
        self.assertEqual(messages[2][3], b"\x27\x01\x00\x00\x00avc")

    def test_media_before_publishing_is_dropped(self):
        """
        Media sent before the publish is accepted is not written.
        """
        self.server.receive()
        self.publisher.send_audio(0, b"x")
        self.assertEqual(self.server.receive(), [])

    def test_connect_refused(self):
        """
        An _error answer to connect is a refusal and the connection is closed.
        """
        self.server.receive()
        self.server.command("_error", 1.0, None,
                            {"level": "error", "code": "NetConnection.Connect.Rejected",
                             "description": "no such app"})
        self.assertEqual(self.owner.events,
                         [("refused", "connect refused: NetConnection.Connect.Rejected no such "
                                      "app")])
        self.assertTrue(self.transport.disconnecting)

    def test_publish_refused(self):
        """
        An error onStatus for the publish (a name in use) is a refusal.
        """
        self.server.receive()
        self.server.command("_result", 1.0, None, {"code": "NetConnection.Connect.Success"})
        self.server.receive()
        self.server.command("_result", 4.0, None, 1.0)
        self.server.receive()
        self.server.command("onStatus", 0.0, None,
                            {"level": "error", "code": "NetStream.Publish.BadName",
                             "description": "Already publishing"}, stream_id=1)
        self.assertEqual(self.owner.events,
                         [("refused", "NetStream.Publish.BadName Already publishing")])

    def test_garbage_is_a_refusal(self):
        """
        A server that breaks the chunk protocol is dropped as a refusal.
        """
        self.server.receive()
        self.publisher.dataReceived(b"\xc9garbage")
        self.assertEqual(self.owner.events[0][0], "refused")
        self.assertTrue(self.transport.disconnecting)

    def test_ping_and_acknowledgement(self):
        """
        A PingRequest is answered with a PingResponse carrying its timestamp, and received
        bytes are acknowledged once per window.
        """
        self.server.receive()
        self.server.send(2, WINDOW_ACK_SIZE, 0, (100).to_bytes(4, "big"))
        self.server.send(2, USER_CONTROL, 0, b"\x00\x06\x00\x00\x12\x34")
        messages = self.server.receive()
        self.assertIn((USER_CONTROL, 0, 0, b"\x00\x07\x00\x00\x12\x34"), messages)
        self.assertEqual([m[0] for m in messages].count(ACKNOWLEDGEMENT), 1)

    def test_lost_while_publishing(self):
        """
        The end of the connection is reported with whether it was publishing.
        """
        self.publish()
        self.publisher.connectionLost(Failure(ConnectionDone("bye")))
        event, reason, was_publishing = self.owner.events[-1]
        self.assertEqual((event, was_publishing), ("lost", True))
        self.assertIn("bye", reason)

    def test_close_says_goodbye(self):
        """
        close() sends FCUnpublish and deleteStream, then closes the connection.
        """
        self.publish()
        self.server.receive()
        self.publisher.close()
        names = [m[3][0] for m in self.server.receive() if m[0] == COMMAND_AMF0]
        self.assertEqual(names, ["FCUnpublish", "deleteStream"])
        self.assertTrue(self.transport.disconnecting)

    def test_congestion(self):
        """
        While the transport pauses us the publisher is not ready for media.
        """
        self.publish()
        self.publisher.pauseProducing()
        self.assertFalse(self.publisher.ready)
        self.publisher.resumeProducing()
        self.assertTrue(self.publisher.ready)
