"""
Tests for L{wcs_twisted.signalling.messages}.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.signalling.messages import ClientMessage, MessageError, decode, encode, fail


class DecodeTests(SynchronousTestCase):
    """
    The client envelope C{{"message": name, "data": [obj]}}.
    """

    def test_envelope(self):
        """
        data[0] is the payload; pong's null payload is None.
        """
        self.assertEqual(decode(b'{"message":"hangup","data":[{"callId":"a"}]}'),
                         ClientMessage("hangup", {"callId": "a"}))
        self.assertEqual(decode(b'{"message":"pong","data":[null]}'), ClientMessage("pong", None))

    def test_missing_data_is_tolerated(self):
        """
        A message without data (as some old clients send ping) has no payload.
        """
        self.assertEqual(decode(b'{"message":"ping"}'), ClientMessage("ping", None))

    def test_malformed(self):
        """
        Each malformed shape raises MessageError with a reason, naming the method when known.
        """
        cases = [
            (b"{nope", "Malformed JSON"),
            (b"\xff\xfe", "not UTF-8"),
            (b"[1,2]", "expected a JSON object"),
            (b'{"data":[]}', "'message' must be a non-empty string"),
            (b'{"message":"call","data":{}}', "'data' must be an array"),
            (b'{"message":"call","data":["x"]}', "data[0] must be an object"),
        ]
        for raw, reason in cases:
            error = self.assertRaises(MessageError, decode, raw)
            self.assertIn(reason, error.info)
        self.assertEqual(self.assertRaises(MessageError, decode,
                                           b'{"message":"call","data":5}').api_method, "call")


class EncodeTests(SynchronousTestCase):
    """
    Server messages always carry a data array.
    """

    def test_encode(self):
        """
        The name and the data array are both present.
        """
        self.assertEqual(json.loads(encode("ping", [])), {"message": "ping", "data": []})

    def test_fail_body(self):
        """
        A fail carries status FAILED, info and apiMethod.
        """
        self.assertEqual(fail("Session not ready", "call"),
                         ("fail", [{"status": "FAILED", "info": "Session not ready",
                                    "apiMethod": "call"}]))
