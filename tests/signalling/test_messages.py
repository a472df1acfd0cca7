"""
Tests for L{wcs_twisted.signalling.messages}.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.gateway.call_events import TransferStatus
from wcs_twisted.signalling import messages
from wcs_twisted.signalling.messages import ClientMessage, MessageError, decode, encode, fail
from wcs_twisted.ua.registration import RegistrationState


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

    def test_nesting_bomb(self):
        """
        "[" * 1000 (RecursionError inside json) is a malformed message like any other.
        """
        for raw in (b"[" * 1000, b'{"message": "x", "data": [' + b"[" * 5000 + b"]"):
            error = self.assertRaises(MessageError, decode, raw)
            self.assertIn("nested too deeply", error.info)

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


class _Call:
    """
    A call object as the encoder sees one: only to_wcs().
    """

    def __init__(self, status):
        self.status = status

    def to_wcs(self):
        return {"callId": "c1", "status": self.status, "sipStatus": 200}


class ServerMessageTests(SynchronousTestCase):
    """
    The gateway's typed events become the WCS messages the Web SDK reads.
    """

    def test_call_status_message_per_status(self):
        """
        Each call status goes in its message (spec 6.2), with the info when there is one.
        """
        expected = {"TRYING": "notifyTryingResponse", "RING": "ring", "RING_MEDIA": "ring",
                    "SESSION_PROGRESS": "ring", "ESTABLISHED": "talk", "HOLD": "hold",
                    "BUSY": "finish", "FINISH": "finish", "FAILED": "finish"}
        for status, name in expected.items():
            self.assertEqual(messages.call_status(_Call(status), None)[0], name)
        self.assertEqual(messages.call_status(_Call("FINISH"), "Normal call clearing"),
                         ("finish", [{"callId": "c1", "status": "FINISH", "sipStatus": 200,
                                      "info": "Normal call clearing"}]))

    def test_positional_and_event_messages(self):
        """
        setRemoteSDP is positional; notifyDtmfEvent and notifyIncomingCall carry one object.
        """
        self.assertEqual(messages.remote_sdp("c1", "v=0", False),
                         ("setRemoteSDP", ["c1", "v=0", False]))
        self.assertEqual(messages.dtmf("c1", "5", "INFO"),
                         ("notifyDtmfEvent", [{"callId": "c1", "dtmf": "5", "type": "INFO"}]))
        self.assertEqual(messages.incoming_call(_Call("RING"))[0], "notifyIncomingCall")

    def test_transfer_status_overrides_status(self):
        """
        notifyTransferEvent is the call object with the transfer's status (and refusing SIP
        status).
        """
        name, data = messages.transfer_status(_Call("ESTABLISHED"), TransferStatus.FAILED, 403)
        self.assertEqual((name, data[0]["status"], data[0]["sipStatus"]),
                         ("notifyTransferEvent", "FAILED", 403))

    def test_registration_status(self):
        """
        REGISTERED is 'registered'; a failure is a fail naming RegistrationStatusEvent.
        """
        self.assertEqual(messages.registration_status(RegistrationState.REGISTERED, None),
                         ("registered", []))
        self.assertEqual(
            messages.registration_status(RegistrationState.AUTHENTICATION_FAIL, "401"),
            ("fail", [{"apiMethod": "RegistrationStatusEvent", "status": "AUTHENTICATION_FAIL",
                       "info": "401"}]))
