"""
Tests for L{wcs_twisted.sip.dialog}.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.dialog import Dialog, DialogID, DialogState
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress, Via
from wcs_twisted.sip.message import MAGIC_COOKIE, Request, parse_message
from wcs_twisted.sip.uri import SIPURI

ALICE_CONTACT = NameAddress.parse("<sip:alice@192.0.2.101:5060>")
BOB_CONTACT = NameAddress.parse("<sip:bob@192.0.2.4:5062>")


def invite(uri=b"sip:bob@biloxi.example.com", record_route=b"", cseq=314159):
    """
    Alice's initial INVITE as it reaches Bob through two record-routing proxies (RFC 3665 3.2
    style).
    """
    return parse_message(
        b"INVITE " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP ss2.biloxi.example.com;branch=z9hG4bK721e4.1\r\n"
        b"Via: SIP/2.0/UDP ss1.atlanta.example.com;branch=z9hG4bK2d4790.1\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9\r\n"
        b"Max-Forwards: 68\r\n"
        + record_route
        + b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        b"CSeq: %d INVITE\r\n"
        b"Contact: <sip:alice@192.0.2.101:5060>\r\n"
        b"Content-Length: 0\r\n\r\n" % cseq
    )


RECORD_ROUTE = (
    b"Record-Route: <sip:ss2.biloxi.example.com;lr>\r\n"
    b"Record-Route: <sip:ss1.atlanta.example.com;lr>\r\n"
)


def answer(
    request, status=200, to_tag="314159", contact=b"<sip:bob@192.0.2.4:5062>", record_route=True
):
    """
    Bob's response to C{request}, with his Contact and the copied Record-Route (RFC 3261 12.1.1).
    """
    response = request.create_response(status, to_tag=to_tag, record_route=record_route)
    if contact is not None:
        response.headers.add("Contact", contact.decode())
    return response


def uac_dialog(status=200, record_route=RECORD_ROUTE, **kwargs):
    request = invite(record_route=record_route)
    return Dialog.create_uac(request, answer(request, status), rng=random.Random(7), **kwargs)


def uas_dialog(record_route=RECORD_ROUTE):
    return Dialog.create_uas(
        invite(record_route=record_route), "314159", BOB_CONTACT, rng=random.Random(9)
    )


def in_dialog_request(
    method,
    cseq,
    from_tag=b"9fxced76sl",
    to_tag=b"314159",
    contact=None,
    call_id=b"3848276298220188511@atlanta.example.com",
):
    """
    A request Alice sends inside the dialog, as Bob receives it.
    """
    contact_line = b"Contact: " + contact + b"\r\n" if contact else b""
    return parse_message(
        b"%s sip:bob@192.0.2.4:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bKnashds7\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=%s\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=%s\r\n"
        b"Call-ID: %s\r\n"
        b"CSeq: %d %s\r\n" % (method, from_tag, to_tag, call_id, cseq, method)
        + contact_line
        + b"Content-Length: 0\r\n\r\n"
    )


class DialogCreationTests(SynchronousTestCase):
    """
    Creating dialogs (RFC 3261 12.1).
    """

    def test_uac_from_2xx(self):
        """
        A UAC's dialog takes the reversed Record-Route, the Contact, the CSeq and both tags (RFC
        3261 12.1.2).
        """
        dialog = uac_dialog()
        self.assertIs(dialog.state, DialogState.CONFIRMED)
        self.assertEqual(
            dialog.id, DialogID("3848276298220188511@atlanta.example.com", "9fxced76sl", "314159")
        )
        self.assertEqual(
            [route.uri.host for route in dialog.route_set],
            ["ss1.atlanta.example.com", "ss2.biloxi.example.com"],
        )
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:bob@192.0.2.4:5062"))
        self.assertEqual(dialog.local_seq, 314159)
        self.assertIsNone(dialog.remote_seq)
        self.assertEqual(str(dialog.local_uri), '"Alice" <sip:alice@atlanta.example.com>')
        self.assertEqual(str(dialog.remote_uri), '"Bob" <sip:bob@biloxi.example.com>')
        self.assertEqual(dialog.local_contact, ALICE_CONTACT)
        self.assertFalse(dialog.secure)
        self.assertTrue(dialog.is_uac)

    def test_uac_early_from_provisional(self):
        """
        A 1xx with a To tag creates an early dialog (RFC 3261 12.1.2).
        """
        self.assertIs(uac_dialog(180).state, DialogState.EARLY)

    def test_uac_secure_for_sips(self):
        """
        The secure flag follows a sips Request-URI unless given (RFC 3261 12.1.2).
        """
        request = invite(uri=b"sips:bob@biloxi.example.com")
        self.assertTrue(Dialog.create_uac(request, answer(request)).secure)
        self.assertFalse(Dialog.create_uac(request, answer(request), secure=False).secure)

    def test_uac_refuses_non_dialog_responses(self):
        """
        100, 3xx-6xx, tagless 1xx and unrelated responses create no dialog (RFC 3261 12.1).
        """
        request = invite()
        for status, tag in [(100, "t"), (180, None), (486, "t")]:
            self.assertRaises(
                LocalProtocolError, Dialog.create_uac, request, answer(request, status, tag)
            )
        other = answer(invite(cseq=1))
        self.assertRaises(LocalProtocolError, Dialog.create_uac, request, other)

    def test_uac_needs_remote_contact(self):
        """
        A dialog-creating response without Contact leaves no remote target: the peer's error (RFC
        3261 12.1.1).
        """
        request = invite()
        with self.assertRaises(RemoteProtocolError):
            Dialog.create_uac(request, answer(request, contact=None))

    def test_uas(self):
        """
        A UAS's dialog takes Record-Route in order, the request's Contact and CSeq (RFC 3261
        12.1.1).
        """
        dialog = uas_dialog()
        self.assertIs(dialog.state, DialogState.EARLY)
        self.assertEqual(
            dialog.id, DialogID("3848276298220188511@atlanta.example.com", "314159", "9fxced76sl")
        )
        self.assertEqual(
            [route.uri.host for route in dialog.route_set],
            ["ss2.biloxi.example.com", "ss1.atlanta.example.com"],
        )
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:alice@192.0.2.101:5060"))
        self.assertEqual(dialog.remote_seq, 314159)
        self.assertIsNone(dialog.local_seq)
        self.assertEqual(str(dialog.local_uri), '"Bob" <sip:bob@biloxi.example.com>')
        self.assertFalse(dialog.is_uac)

    def test_uas_refuses_bad_input(self):
        """
        A UAS dialog needs a local tag and an out-of-dialog request (RFC 3261 12.1.1).
        """
        self.assertRaises(LocalProtocolError, Dialog.create_uas, invite(), "", BOB_CONTACT)
        tagged = in_dialog_request(b"INVITE", 2, contact=b"<sip:a@b>")
        self.assertRaises(LocalProtocolError, Dialog.create_uas, tagged, "x", BOB_CONTACT)

    def test_dialog_ids(self):
        """
        DialogID reads our tag from To for requests we receive and from From for responses (RFC 3261
        12).
        """
        request = in_dialog_request(b"BYE", 2)
        self.assertEqual(DialogID.for_uas(request), uas_dialog().id)
        self.assertEqual(DialogID.for_uac(answer(invite())), uac_dialog().id)
        self.assertEqual(DialogID.for_uas_response(answer(invite())), uas_dialog().id)


class CreateRequestTests(SynchronousTestCase):
    """
    Building requests inside a dialog (RFC 3261 12.2.1.1).
    """

    def test_bye_with_loose_routes(self):
        """
        With a loose-routing route set, the Request-URI is the remote target and Route the route
        set.
        """
        dialog = uac_dialog()
        bye = dialog.create_request("BYE")
        self.assertIsInstance(bye, Request)
        self.assertEqual(bye.uri, SIPURI.parse("sip:bob@192.0.2.4:5062"))
        self.assertEqual(
            bye.headers.get_all("Route"),
            ["<sip:ss1.atlanta.example.com;lr>", "<sip:ss2.biloxi.example.com;lr>"],
        )
        self.assertEqual(bye.from_.tag, "9fxced76sl")
        self.assertEqual(bye.to.tag, "314159")
        self.assertEqual(bye.call_id, dialog.call_id)
        self.assertEqual(str(bye.cseq), "314160 BYE")
        self.assertEqual(bye.max_forwards, 70)
        self.assertNotIn("Contact", bye.headers)
        self.assertIs(dialog.state, DialogState.TERMINATED)
        self.assertEqual(parse_message(bytes(bye)), bye)

    def test_no_route_set(self):
        """
        Without a route set the request goes straight to the remote target with no Route.
        """
        dialog = uac_dialog(record_route=b"")
        request = dialog.create_request("INFO", body=b"x", content_type="text/plain")
        self.assertEqual(request.uri, dialog.remote_target)
        self.assertNotIn("Route", request.headers)
        self.assertEqual(request.body, b"x")
        self.assertEqual(request.content_type, "text/plain")

    def test_strict_route(self):
        """
        A strict first route becomes the Request-URI (minus method param and headers) and the remote
        target the last Route.
        """
        dialog = uac_dialog(
            record_route=b"Record-Route: <sip:p2.example.com;lr>\r\n"
            b"Record-Route: <sip:p1.example.com;method=INVITE?h=v>\r\n"
        )
        request = dialog.create_request("INFO")
        self.assertEqual(request.uri, SIPURI.parse("sip:p1.example.com"))
        self.assertEqual(
            request.headers.get_all("Route"),
            ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4:5062>"],
        )

    def test_cseq_sequence_and_ack(self):
        """
        CSeq grows by one per request; ACK reuses the INVITE's number (RFC 3261 12.2.1.1, 13.2.2.4).
        """
        dialog = uac_dialog()
        self.assertEqual(dialog.create_request("ACK").cseq.number, 314159)
        self.assertEqual(dialog.create_request("INFO").cseq.number, 314160)
        reinvite = dialog.create_request("INVITE")
        self.assertEqual(reinvite.cseq.number, 314161)
        self.assertEqual(dialog.create_request("ACK").cseq.number, 314161)
        self.assertEqual(dialog.create_request("ACK", cseq=314160).cseq.number, 314160)
        self.assertEqual(dialog.create_request("UPDATE", cseq=400000).cseq.number, 400000)
        self.assertRaises(LocalProtocolError, dialog.create_request, "INFO", cseq=400000)

    def test_target_refresh_carries_contact(self):
        """
        Target refresh requests carry our Contact; others do not (RFC 3261 12.2.1.1).
        """
        dialog = uac_dialog()
        self.assertEqual(dialog.create_request("INVITE").contacts, [ALICE_CONTACT])
        self.assertEqual(dialog.create_request("UPDATE").contacts, [ALICE_CONTACT])
        self.assertNotIn("Contact", dialog.create_request("INFO").headers)

    def test_uas_first_request_picks_random_cseq(self):
        """
        The first request of a UAS starts from a random CSeq drawn from the injected source (RFC
        3261 8.1.1.5).
        """
        first = uas_dialog()
        first.state = DialogState.CONFIRMED
        second = uas_dialog()
        second.state = DialogState.CONFIRMED
        a = first.create_request("BYE")
        b = second.create_request("BYE")
        self.assertEqual(a.cseq, b.cseq)
        self.assertTrue(0 < a.cseq.number < 2**31)
        self.assertEqual(a.from_.tag, "314159")
        self.assertEqual(a.to.tag, "9fxced76sl")
        self.assertEqual(a.uri, SIPURI.parse("sip:alice@192.0.2.101:5060"))
        self.assertEqual(
            a.headers.get_all("Route"),
            ["<sip:ss2.biloxi.example.com;lr>", "<sip:ss1.atlanta.example.com;lr>"],
        )

    def test_missing_random_source(self):
        """
        Without an injected random source, needing one is a local error.
        """
        dialog = Dialog.create_uas(invite(), "314159", BOB_CONTACT)
        dialog.state = DialogState.CONFIRMED
        self.assertRaises(LocalProtocolError, dialog.create_request, "BYE")
        self.assertEqual(dialog.create_request("BYE", rng=random.Random(1)).method, "BYE")

    def test_via_branch(self):
        """
        A Via given without branch gets a fresh RFC 3261 branch from the random source (RFC 3261
        8.1.1.7).
        """
        dialog = uac_dialog()
        request = dialog.create_request("INFO", via=Via.parse("SIP/2.0/UDP 192.0.2.101:5060;rport"))
        self.assertTrue(request.top_via.branch.startswith(MAGIC_COOKIE))
        self.assertTrue(request.top_via.has_param("rport"))
        kept = dialog.create_request("INFO", via=Via.parse("SIP/2.0/UDP h;branch=z9hG4bKmine"))
        self.assertEqual(kept.top_via.branch, "z9hG4bKmine")
        self.assertNotIn("Via", dialog.create_request("INFO").headers)

    def test_extra_headers(self):
        """
        Extra headers are appended in order.
        """
        request = uac_dialog().create_request(
            "INFO", headers=[("Info-Package", "dtmf"), ("X-A", "1")]
        )
        self.assertEqual(
            request.headers.items()[-3:],
            [("Info-Package", "dtmf"), ("X-A", "1"), ("Content-Length", "0")],
        )

    def test_local_misuse(self):
        """
        CANCEL, a body without type, a UAS BYE on an early dialog and any request after termination
        are refused.
        """
        dialog = uac_dialog()
        self.assertRaises(LocalProtocolError, dialog.create_request, "CANCEL")
        self.assertRaises(LocalProtocolError, dialog.create_request, "INFO", body=b"x")
        self.assertRaises(LocalProtocolError, uas_dialog().create_request, "BYE")
        dialog.terminate()
        self.assertRaises(LocalProtocolError, dialog.create_request, "INFO")
        # The caller may BYE an early dialog (RFC 3261 15).
        early = Dialog.create_uac(invite(), answer(invite(), 180))
        self.assertEqual(early.create_request("BYE").method, "BYE")

    def test_remote_tag_missing(self):
        """
        With an RFC 2543 peer that sent no tag, To carries no tag (RFC 3261 12.1.1).
        """
        dialog = uac_dialog()
        dialog.remote_tag = ""
        self.assertIsNone(dialog.create_request("INFO").to.tag)


class ReceiveRequestTests(SynchronousTestCase):
    """
    Requests the peer sends inside the dialog (RFC 3261 12.2.2).
    """

    def test_in_order(self):
        """
        A higher CSeq is accepted and remembered.
        """
        dialog = uas_dialog()
        dialog.receive_request(in_dialog_request(b"INFO", 314160))
        self.assertEqual(dialog.remote_seq, 314160)
        dialog.receive_request(in_dialog_request(b"INFO", 314160))
        self.assertEqual(dialog.remote_seq, 314160)

    def test_lower_cseq_is_500(self):
        """
        A lower CSeq is out of order and rejected with 500 (RFC 3261 12.2.2).
        """
        dialog = uas_dialog()
        with self.assertRaises(RemoteProtocolError) as caught:
            dialog.receive_request(in_dialog_request(b"INFO", 314158))
        self.assertEqual(caught.exception.status_hint, 500)
        self.assertEqual(dialog.remote_seq, 314159)

    def test_ack_and_cancel_not_sequenced(self):
        """
        ACK and CANCEL reuse the INVITE's number and do not move the remote sequence.
        """
        dialog = uas_dialog()
        dialog.receive_request(in_dialog_request(b"INFO", 314165))
        dialog.receive_request(in_dialog_request(b"ACK", 314159))
        self.assertEqual(dialog.remote_seq, 314165)

    def test_first_request_sets_remote_seq(self):
        """
        An empty remote sequence number takes the first request's CSeq (RFC 3261 12.2.2).
        """
        dialog = uac_dialog()
        dialog.receive_request(
            in_dialog_request(b"INFO", 5, from_tag=b"314159", to_tag=b"9fxced76sl")
        )
        self.assertEqual(dialog.remote_seq, 5)

    def test_wrong_dialog_is_481(self):
        """
        A request with other tags or Call-ID, or to a terminated dialog, is 481 (RFC 3261 12.2.2).
        """
        dialog = uas_dialog()
        for request in [
            in_dialog_request(b"INFO", 314160, from_tag=b"other"),
            in_dialog_request(b"INFO", 314160, to_tag=b"other"),
            in_dialog_request(b"INFO", 314160, call_id=b"other"),
        ]:
            with self.assertRaises(RemoteProtocolError) as caught:
                dialog.receive_request(request)
            self.assertEqual(caught.exception.status_hint, 481)
        dialog.terminate()
        with self.assertRaises(RemoteProtocolError) as caught:
            dialog.receive_request(in_dialog_request(b"INFO", 314160))
        self.assertEqual(caught.exception.status_hint, 481)

    def test_target_refresh(self):
        """
        A re-INVITE or UPDATE with Contact replaces the remote target; other methods do not (RFC
        3261 12.2.2).
        """
        dialog = uas_dialog()
        dialog.receive_request(in_dialog_request(b"INFO", 314160, contact=b"<sip:ignored@x>"))
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:alice@192.0.2.101:5060"))
        dialog.receive_request(
            in_dialog_request(b"INVITE", 314161, contact=b"<sip:alice@192.0.2.200>")
        )
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:alice@192.0.2.200"))
        dialog.receive_request(
            in_dialog_request(b"UPDATE", 314162, contact=b"<sip:alice@192.0.2.201>")
        )
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:alice@192.0.2.201"))

    def test_bye_terminates(self):
        """
        BYE ends the dialog (RFC 3261 15.1.2).
        """
        dialog = uas_dialog()
        dialog.receive_request(in_dialog_request(b"BYE", 314160))
        self.assertIs(dialog.state, DialogState.TERMINATED)


class UpdateFromResponseTests(SynchronousTestCase):
    """
    Following responses within a dialog (RFC 3261 12.1.2, 12.2.1.2, 13.2.2.4).
    """

    def test_early_confirmed_by_2xx(self):
        """
        The 2xx confirms an early dialog, recomputes the route set and takes its Contact (RFC 3261
        13.2.2.4).
        """
        request = invite(record_route=RECORD_ROUTE)
        dialog = Dialog.create_uac(request, answer(request, 183, record_route=False))
        self.assertEqual(dialog.route_set, ())
        final = answer(request, 200, contact=b"<sip:bob@192.0.2.9>")
        dialog.update_from_response(final)
        self.assertIs(dialog.state, DialogState.CONFIRMED)
        self.assertEqual(len(dialog.route_set), 2)
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:bob@192.0.2.9"))

    def test_provisional_updates_early_target(self):
        """
        A later provisional in the early dialog updates the remote target.
        """
        request = invite()
        dialog = Dialog.create_uac(request, answer(request, 180))
        dialog.update_from_response(answer(request, 183, contact=b"<sip:bob@192.0.2.8>"))
        self.assertIs(dialog.state, DialogState.EARLY)
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:bob@192.0.2.8"))

    def test_error_terminates_early_dialog(self):
        """
        A non-2xx final response to the creating INVITE ends the early dialog (RFC 3261 12.3).
        """
        request = invite()
        dialog = Dialog.create_uac(request, answer(request, 180))
        dialog.update_from_response(answer(request, 486))
        self.assertIs(dialog.state, DialogState.TERMINATED)

    def test_481_and_408_terminate(self):
        """
        A 481 or 408 to an in-dialog request ends the dialog; other errors do not (RFC 3261
        12.2.1.2).
        """
        for status, state in [
            (481, DialogState.TERMINATED),
            (408, DialogState.TERMINATED),
            (491, DialogState.CONFIRMED),
        ]:
            dialog = uac_dialog()
            info = dialog.create_request("INFO", via=Via.parse("SIP/2.0/UDP h;branch=z9hG4bK1"))
            dialog.update_from_response(info.create_response(status, to_tag="ignored"))
            self.assertIs(dialog.state, state, status)

    def test_reinvite_2xx_refreshes_target(self):
        """
        The Contact of a 2xx to a re-INVITE becomes the remote target (RFC 3261 12.2.1.2).
        """
        dialog = uac_dialog()
        reinvite = dialog.create_request("INVITE", via=Via.parse("SIP/2.0/UDP h;branch=z9hG4bK2"))
        ok = reinvite.create_response(200)
        ok.headers.add("Contact", "<sip:bob@192.0.2.77>")
        dialog.update_from_response(ok)
        self.assertEqual(dialog.remote_target, SIPURI.parse("sip:bob@192.0.2.77"))
        self.assertEqual(len(dialog.route_set), 2)

    def test_other_dialog_is_refused(self):
        """
        A response from another fork (other To tag) belongs to another dialog.
        """
        request = invite()
        dialog = Dialog.create_uac(request, answer(request, 180, to_tag="fork1"))
        self.assertRaises(
            LocalProtocolError, dialog.update_from_response, answer(request, 200, to_tag="fork2")
        )

    def test_uas_sent_responses(self):
        """
        A UAS's dialog is confirmed by the 2xx it sends and ended by a final error (RFC 3261 12.1.1,
        12.3).
        """
        dialog = uas_dialog()
        dialog.update_from_response(answer(invite(), 200))
        self.assertIs(dialog.state, DialogState.CONFIRMED)
        dialog = uas_dialog()
        dialog.update_from_response(answer(invite(), 603))
        self.assertIs(dialog.state, DialogState.TERMINATED)
        self.assertRaises(
            LocalProtocolError, uas_dialog().update_from_response, answer(invite(), 200, to_tag="x")
        )

    def test_ignored_after_termination(self):
        """
        Responses after the dialog ended (for example the 200 to our BYE) change nothing.
        """
        dialog = uac_dialog()
        bye = dialog.create_request("BYE", via=Via.parse("SIP/2.0/UDP h;branch=z9hG4bK3"))
        dialog.update_from_response(bye.create_response(200))
        self.assertIs(dialog.state, DialogState.TERMINATED)
        self.assertIn("TERMINATED", repr(dialog))
