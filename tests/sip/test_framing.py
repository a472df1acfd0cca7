"""
Tests for L{wcs_twisted.sip.framing}.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.framing import PING, PONG, StreamFramer
from wcs_twisted.sip.message import Request, error_response, parse_message

from tests.sip.test_message import RINGING, invite, options

CORPUS = os.path.join(os.path.dirname(__file__), os.pardir, "data", "rfc4475")


def drain(framer):
    """
    Return every message the framer can produce now.
    """
    messages = []
    while True:
        message = framer.next_message()
        if message is None:
            return messages
        messages.append(message)


def feed_whole(data, **kwargs):
    framer = StreamFramer(**kwargs)
    framer.receive_data(data)
    return framer, drain(framer)


def feed_bytewise(data, **kwargs):
    framer = StreamFramer(**kwargs)
    messages = []
    for index in range(len(data)):
        framer.receive_data(data[index : index + 1])
        messages.extend(drain(framer))
    return framer, messages


class StreamFramerTests(SynchronousTestCase):
    """
    Framing SIP messages on stream transports (RFC 3261 18.3).
    """

    def tr(self, data, expected):
        """
        Feed C{data} whole, byte by byte, and followed by a second message
        (h11's C{tr()}), and check each way yields the C{expected} messages
        and leaves nothing buffered.
        """
        for feed in (feed_whole, feed_bytewise):
            framer, messages = feed(data)
            self.assertEqual(messages, expected, feed.__name__)
            self.assertEqual(framer.buffered, 0, feed.__name__)
        trailing = options()
        framer, messages = feed_whole(data + trailing)
        self.assertEqual(messages, expected + [parse_message(trailing)])
        framer, messages = feed_bytewise(data + trailing)
        self.assertEqual(messages, expected + [parse_message(trailing)])

    def test_request_with_body(self):
        """
        An INVITE and its body are framed by Content-Length (RFC 3261 18.3).
        """
        self.tr(invite(), [parse_message(invite())])

    def test_response_without_body(self):
        """
        A response with Content-Length 0 ends at the empty line.
        """
        self.tr(RINGING, [parse_message(RINGING)])

    def test_several_messages_in_one_read(self):
        """
        Back-to-back messages in one read are all returned, in order.
        """
        data = invite() + RINGING + options()
        self.tr(data, [parse_message(invite()), parse_message(RINGING), parse_message(options())])

    def test_body_arrives_later(self):
        """
        next_message returns None until the whole body is buffered, without re-parsing the head.
        """
        framer = StreamFramer()
        data = invite()
        framer.receive_data(data[:-10])
        self.assertIsNone(framer.next_message())
        self.assertIsNone(framer.next_message())
        framer.receive_data(data[-10:])
        self.assertEqual(framer.next_message(), parse_message(data))
        self.assertIsNone(framer.next_message())

    def test_body_with_crlfcrlf_inside(self):
        """
        An empty line inside the body does not end the message early: only Content-Length counts.
        """
        body = b"--b\r\n\r\npart\r\n\r\n--b--\r\n"
        data = invite(body=body)
        self.tr(data, [parse_message(data)])
        self.assertEqual(feed_whole(data)[1][0].body, body)

    def test_content_length_is_mandatory(self):
        """
        A message without Content-Length cannot be framed on a stream and is a 400 (RFC 3261 18.3).
        """
        framer = StreamFramer()
        framer.receive_data(invite(content_length=False))
        with self.assertRaises(RemoteProtocolError) as caught:
            framer.next_message()
        self.assertEqual(caught.exception.status_hint, 400)
        self.assertIn("Content-Length", str(caught.exception))
        self.assertEqual(error_response(caught.exception).status_code, 400)

    def test_header_size_cap(self):
        """
        A header section longer than max_header_size is a 400 as soon as the buffer proves it.
        """
        framer = StreamFramer(max_header_size=1024)
        framer.receive_data(b"INVITE sip:a@b SIP/2.0\r\nX-Pad: " + b"a" * 1100)
        with self.assertRaises(RemoteProtocolError) as caught:
            framer.next_message()
        self.assertEqual(caught.exception.status_hint, 400)
        framer = StreamFramer(max_header_size=200)
        framer.receive_data(invite())
        self.assertRaises(RemoteProtocolError, framer.next_message)

    def test_message_size_cap(self):
        """
        A Content-Length taking the message past max_message_size is a 413 before the body arrives.
        """
        framer = StreamFramer(max_message_size=4096, max_header_size=1024)
        framer.receive_data(invite(body=b"x" * 5000)[:600])
        with self.assertRaises(RemoteProtocolError) as caught:
            framer.next_message()
        self.assertEqual(caught.exception.status_hint, 413)
        self.assertEqual(caught.exception.request_method, "INVITE")

    def test_caps_are_consistent(self):
        """
        The header cap never exceeds the message cap, and limits must be positive.
        """
        self.assertEqual(StreamFramer(max_message_size=4096).max_header_size, 4096)
        self.assertEqual(StreamFramer().max_header_size, 16384)
        self.assertRaises(LocalProtocolError, StreamFramer, max_message_size=0)

    def test_errors_are_sticky(self):
        """
        After a framing error every call raises it again: the stream cannot resynchronise (RFC 4475
        3.1.2.3).
        """
        framer = StreamFramer()
        framer.receive_data(
            invite(extra=b"Content-Length: -999\r\n", content_length=False) + options()
        )
        with self.assertRaises(RemoteProtocolError) as first:
            framer.next_message()
        with self.assertRaises(RemoteProtocolError) as second:
            framer.next_message()
        self.assertIs(first.exception, second.exception)

    def test_malformed_message(self):
        """
        Parse errors inside a framed message propagate with their status hint.
        """
        framer = StreamFramer()
        framer.receive_data(options(request_line=b"OPTIONS sip:a@b SIP/3.0"))
        with self.assertRaises(RemoteProtocolError) as caught:
            framer.next_message()
        self.assertEqual(caught.exception.status_hint, 505)

    def test_keepalive_ping_and_pong(self):
        """
        A double CRLF between messages is a ping, a single CRLF a pong; neither reaches the parser
        (RFC 5626 4.4.1).
        """
        framer = StreamFramer()
        framer.receive_data(PING)
        self.assertIsNone(framer.next_message())
        self.assertEqual((framer.pings_received, framer.pongs_received), (1, 0))
        framer.receive_data(PONG)
        self.assertIsNone(framer.next_message())
        self.assertEqual((framer.pings_received, framer.pongs_received), (1, 1))
        framer.receive_data(PING + PING + options() + PONG + RINGING)
        self.assertEqual(drain(framer), [parse_message(options()), parse_message(RINGING)])
        self.assertEqual((framer.pings_received, framer.pongs_received), (3, 2))
        self.assertEqual(framer.buffered, 0)

    def test_partial_ping_waits(self):
        """
        Three bytes of a ping are held until the fourth tells ping from pong-then-message.
        """
        framer = StreamFramer()
        framer.receive_data(b"\r\n\r")
        self.assertIsNone(framer.next_message())
        self.assertEqual((framer.pings_received, framer.pongs_received), (0, 0))
        framer.receive_data(b"\n")
        self.assertIsNone(framer.next_message())
        self.assertEqual(framer.pings_received, 1)

    def test_end_of_stream(self):
        """
        Closing between messages is clean; closing inside one is a 400; data after close is our bug.
        """
        framer = StreamFramer()
        framer.receive_data(options())
        framer.receive_data(b"")
        self.assertTrue(framer.closed)
        self.assertIsInstance(framer.next_message(), Request)
        self.assertIsNone(framer.next_message())
        framer.receive_data(b"")
        self.assertRaises(LocalProtocolError, framer.receive_data, b"x")

        framer = StreamFramer()
        framer.receive_data(invite()[:-1])
        framer.receive_data(b"")
        with self.assertRaises(RemoteProtocolError):
            framer.next_message()

    def test_torture_corpus_on_a_stream(self):
        """
        Every RFC 4475 message that parses as a datagram and has a Content-Length frames the same on
        a stream.
        """
        names = sorted(name for name in os.listdir(CORPUS) if name.endswith(".dat"))
        framed = 0
        for name in names:
            with open(os.path.join(CORPUS, name), "rb") as handle:
                data = handle.read()
            try:
                expected = parse_message(data)
            except RemoteProtocolError:
                continue
            if "Content-Length" not in expected.headers or b"\r\n\r\n" not in data:
                # Framing needs both; RFC 4475 3.1.2.15's message has no empty line.
                continue
            if name == "dblreq.dat":
                # The datagram's trailing octets are a second message on a stream.
                continue
            framer, messages = feed_whole(expected.serialize())
            self.assertEqual(messages, [expected], name)
            framer, messages = feed_bytewise(data)
            self.assertEqual(messages[:1], [expected], name)
            framed += 1
        self.assertGreater(framed, 30)

    def test_trailing_octets_become_the_next_message(self):
        """
        On a stream, RFC 4475 3.1.1.8's extra octets are a CRLF keep-alive, a second request framed
        by its
        Content-Length (150, five octets short of its SDP), then garbage that breaks the stream (RFC
        3261 18.3).
        """
        with open(os.path.join(CORPUS, "dblreq.dat"), "rb") as handle:
            data = handle.read()
        framer = StreamFramer()
        framer.receive_data(data)
        register = framer.next_message()
        second = framer.next_message()
        self.assertEqual((register.method, second.method), ("REGISTER", "INVITE"))
        self.assertEqual(len(second.body), 150)
        self.assertEqual(framer.pongs_received, 1)
        with self.assertRaises(RemoteProtocolError) as caught:
            framer.next_message()
        self.assertEqual(caught.exception.status_hint, 400)
