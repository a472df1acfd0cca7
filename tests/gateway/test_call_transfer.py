"""
Tests for transfers in L{wcs_twisted.gateway.call}: the order of transfer events, attended
transfer (REFER with Replaces, RFC 3891 / RFC 5589) both ways, over the in-memory SIP network.
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.gateway.test_call import BROWSER_OFFER, PEER_ANSWER, CallTestMixin
from wcs_twisted.errors import DomainError
from wcs_twisted.gateway.call_transfer import parse_replaces
from wcs_twisted.sip.headers import NameAddress


class EarlyNotifyObserver:
    """
    A transferee that sends its first NOTIFY before answering the REFER (RFC 3515 2.4.4).
    """

    def __init__(self, observer, sipfrags, status=202):
        self.observer = observer
        self.sipfrags = sipfrags
        self.status = status

    def __getattr__(self, name):
        return getattr(self.observer, name)

    def refer_received(self, session, request, refer_to):
        self.observer.refer_received(session, request, refer_to)
        for sipfrag in self.sipfrags:
            session.request("NOTIFY", sipfrag, "message/sipfrag;version=2.0",
                            headers=(("Event", "refer"),
                                     ("Subscription-State", "active;expires=60")))
        return self.status


class TransferOrderTests(CallTestMixin, SynchronousTestCase):
    """
    notifyTransferEvent comes out ACCEPTED first whatever order the 202 and NOTIFYs arrive in.
    """

    def transfer_events(self, connection):
        return [data[0]["status"] for name, data in connection.messages
                if name == "notifyTransferEvent"]

    def established(self, sipfrags, status=202):
        connection, session = self.place_call()
        phone_leg = self.phone.sessions[0]
        phone_leg.observer = EarlyNotifyObserver(self.phone.observer, sipfrags, status)
        phone_leg.accept(PEER_ANSWER)
        self.network.run()
        return connection, session

    def test_notify_before_202_waits(self):
        """
        A NOTIFY "100 Trying" that overtakes the 202 is reported after ACCEPTED.
        """
        connection, session = self.established([b"SIP/2.0 100 Trying"])
        self.calls.transfer(session, {"callId": "c1", "target": "carol@10.0.0.3"})
        self.network.run()
        self.assertEqual(self.transfer_events(connection), ["ACCEPTED", "TRYING"])

    def test_completed_before_202(self):
        """
        Even a final "200 OK" NOTIFY before the 202 gives ACCEPTED, TRYING, COMPLETED, and
        then the transferor's call ends (RFC 5589 6.1).
        """
        connection, session = self.established([b"SIP/2.0 100 Trying", b"SIP/2.0 200 OK"])
        self.calls.transfer(session, {"callId": "c1", "target": "carol@10.0.0.3"})
        self.network.run()
        self.assertEqual(self.transfer_events(connection), ["ACCEPTED", "TRYING", "COMPLETED"])
        self.assertEqual(self.statuses(connection)[-1], ("finish", "FINISH"))

    def test_refused_refer_drops_early_statuses(self):
        """
        A REFER refused after an early NOTIFY reports only FAILED.
        """
        connection, session = self.established([b"SIP/2.0 100 Trying"], status=603)
        self.calls.transfer(session, {"callId": "c1", "target": "carol@10.0.0.3"})
        self.network.run()
        self.assertEqual(self.transfer_events(connection), ["FAILED"])


class AttendedTransferTests(CallTestMixin, SynchronousTestCase):
    """
    transfer{target: <callId>} of the same session REFERs with Replaces (RFC 5589 7).
    """

    def test_refer_to_names_the_other_dialog(self):
        """
        The Refer-To is the other call's remote target with a Replaces header naming that
        dialog as the target sees it: to-tag is the target's tag, from-tag ours (RFC 3891 3).
        """
        connection, session = self.place_call()
        self.calls.start_call(session, {"callId": "c2", "callee": "carol@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        for leg in self.phone.sessions:
            leg.accept(PEER_ANSWER)
        self.network.run()
        self.calls.transfer(session, {"callId": "c1", "target": "c2"})
        self.network.run()
        [refer_to] = [event[1] for event in self.phone.observer.events if event[0] == "refer"]
        uri = NameAddress.parse(refer_to).uri
        dialog = self.calls.get("c2").sip.dialog
        self.assertEqual(parse_replaces(dict(uri.headers)["Replaces"]),
                         (dialog.call_id, dialog.remote_tag, dialog.local_tag))
        self.assertEqual(uri.without_headers(), dialog.remote_target)

    def test_target_call_must_be_established(self):
        """
        A target call still ringing cannot be replaced: the transfer is refused at once.
        """
        connection, session = self.place_call()
        self.calls.start_call(session, {"callId": "c2", "callee": "carol@10.0.0.2",
                                        "sdp": BROWSER_OFFER})
        self.network.run()
        self.phone.sessions[0].accept(PEER_ANSWER)
        self.network.run()
        self.assertRaises(DomainError, self.calls.transfer, session,
                          {"callId": "c1", "target": "c2"})


class ParseReplacesTests(SynchronousTestCase):
    """
    L{parse_replaces} reads RFC 3891 6.1 values.
    """

    def test_values(self):
        """
        call-id and both tags are required; parameter names ignore case.
        """
        self.assertEqual(parse_replaces("a@b;To-Tag=1;from-tag=2"), ("a@b", "1", "2"))
        self.assertIsNone(parse_replaces("a@b;to-tag=1"))
        self.assertIsNone(parse_replaces(";to-tag=1;from-tag=2"))
