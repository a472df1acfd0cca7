"""
Tests for L{wcs_twisted.sip.transaction_layer}.

Like aioquic's connection tests, time is stepped by hand and messages are
moved between layers explicitly, so loss is just a message not delivered.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from tests.sip.test_transaction import BRANCH, TO_TAG, make_ack, make_request, make_response
from wcs_twisted.sip.errors import LocalProtocolError
from wcs_twisted.sip.events import (
    AckReceived,
    CancelReceived,
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from wcs_twisted.sip.message import parse_message
from wcs_twisted.sip.timers import TimerValues
from wcs_twisted.sip.transaction import (
    MAGIC_COOKIE,
    TransactionKey,
    TransactionState,
    create_cancel,
)
from wcs_twisted.sip.transaction_layer import TransactionLayer, generate_branch

CLIENT = ("192.0.2.1", 5060)
SERVER = ("192.0.2.2", 5060)


def events(layer: TransactionLayer) -> list:
    """Drain every pending event of the layer."""
    result = []
    while True:
        event = layer.next_event()
        if event is None:
            return result
        result.append(event)


def sent(layer: TransactionLayer) -> list:
    """Drain the layer's output as (parsed message, destination) pairs."""
    return [(parse_message(data), destination) for data, destination in layer.messages_to_send()]


def deliver(sender: TransactionLayer, receiver: TransactionLayer, source, now: float,
            drop: int = 0) -> int:
    """
    Move every message the sender wants to send to the receiver, dropping
    the first C{drop} of them; return how many were delivered.
    """
    delivered = 0
    for index, (data, _) in enumerate(sender.messages_to_send()):
        if index < drop:
            continue
        receiver.datagram_received(data, source, False, now)
        delivered += 1
    return delivered


class ServerSideTests(SynchronousTestCase):
    """
    Tests for incoming requests (RFC 3261 17.2.3, 9.2).
    """

    def setUp(self) -> None:
        self.layer = TransactionLayer(TimerValues())

    def test_new_request(self) -> None:
        """
        A request matching no transaction creates a server transaction and is
        handed to the TU (RFC 3261 17.2.3).
        """
        request = make_request("OPTIONS")
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.assertIsInstance(event, RequestReceived)
        self.assertIs(event.request, request)
        self.assertEqual(event.source, CLIENT)
        self.assertFalse(event.reliable)
        self.assertEqual(
            event.transaction_key,
            TransactionKey(True, BRANCH, "pc33.atlanta.example.com:5060", "OPTIONS"),
        )
        self.assertEqual(len(self.layer), 1)
        self.assertEqual(self.layer.messages_to_send(), [])

    def test_response_goes_to_source_and_absorbs_retransmissions(self) -> None:
        """
        The TU's response is sent to the request's source; a retransmitted
        request gets it again without reaching the TU, until Timer J ends the
        transaction (RFC 3261 17.2.2, 18.2.2).
        """
        request = make_request("OPTIONS")
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.layer.respond(event.transaction_key, make_response(request, 200), now=0.1)
        [(response, destination)] = sent(self.layer)
        self.assertEqual((response.status_code, destination), (200, CLIENT))
        self.layer.message_received(make_request("OPTIONS"), CLIENT, False, now=0.6)
        self.assertEqual(events(self.layer), [])
        self.assertEqual([(m.status_code, d) for m, d in sent(self.layer)], [(200, CLIENT)])
        self.assertAlmostEqual(self.layer.get_timer(), 32.1)
        self.layer.handle_timer(now=self.layer.get_timer())
        self.assertEqual(events(self.layer),
                         [TransactionTerminated(transaction_key=event.transaction_key)])
        self.assertEqual(len(self.layer), 0)
        self.assertIsNone(self.layer.get_timer())

    def test_respond_by_request(self) -> None:
        """
        The TU may name the server transaction by its request.
        """
        request = make_request("MESSAGE")
        self.layer.message_received(request, CLIENT, True, now=0.0)
        self.layer.respond(request, make_response(request, 202), now=0.0)
        self.assertEqual([m.status_code for m, _ in sent(self.layer)], [202])
        # Reliable transport: Timer J is zero and the transaction is gone.
        self.assertEqual(len(self.layer), 0)

    def test_respond_unknown_raises(self) -> None:
        """
        Responding without a live server transaction is the TU's mistake.
        """
        request = make_request("OPTIONS")
        self.assertRaises(LocalProtocolError, self.layer.respond, request,
                          make_response(request, 200), 0.0)

    def test_invite_trying_and_error_ack(self) -> None:
        """
        An INVITE gets 100 Trying at once; after a 486 the ACK (same branch)
        matches the INVITE server transaction and is not passed to the TU,
        and Timer G stops (RFC 3261 17.2.1, 17.2.3).
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.assertEqual([(m.status_code, d) for m, d in sent(self.layer)], [(100, CLIENT)])
        self.layer.respond(event.transaction_key, make_response(request, 486), now=1.0)
        self.assertEqual([m.status_code for m, _ in sent(self.layer)], [486])
        self.assertEqual(self.layer.get_timer(), 1.5)
        self.layer.handle_timer(now=1.5)
        self.assertEqual([m.status_code for m, _ in sent(self.layer)], [486])
        self.assertEqual(self.layer.get_timer(), 2.5)
        self.layer.message_received(make_ack(request), CLIENT, False, now=2.0)
        self.assertEqual(events(self.layer), [])
        transaction = self.layer.get_transaction(event.transaction_key)
        self.assertIs(transaction.state, TransactionState.CONFIRMED)
        self.assertEqual(self.layer.get_timer(), 7.0)
        self.layer.handle_timer(now=7.0)
        self.assertEqual(events(self.layer),
                         [TransactionTerminated(transaction_key=event.transaction_key)])
        self.assertEqual(self.layer.messages_to_send(), [])

    def test_send_trying_disabled(self) -> None:
        """
        With send_trying=False the layer does not send 100 Trying by itself.
        """
        layer = TransactionLayer(send_trying=False)
        layer.message_received(make_request(), CLIENT, False, now=0.0)
        self.assertEqual(layer.messages_to_send(), [])

    def test_ack_for_2xx_passed_to_tu(self) -> None:
        """
        The ACK for a 2xx has a new branch, matches no transaction and is
        passed to the TU (RFC 3261 17.2.3, RFC 6026 8.7); it creates no
        transaction.
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.layer.respond(event.transaction_key, make_response(request, 200), now=0.5)
        ack = make_request("ACK", branch="z9hG4bKnewack", to_tag=TO_TAG)
        self.layer.message_received(ack, CLIENT, False, now=0.6)
        self.assertEqual(events(self.layer), [AckReceived(request=ack, source=CLIENT)])
        self.assertEqual(len(self.layer), 1)

    def test_ack_matching_accepted_transaction(self) -> None:
        """
        An ACK matching an INVITE server transaction in Accepted is passed to
        the TU with that transaction's key (RFC 6026 8.7).
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.layer.respond(event.transaction_key, make_response(request, 200), now=0.5)
        ack = make_ack(request)
        self.layer.message_received(ack, CLIENT, False, now=0.6)
        self.assertEqual(
            events(self.layer),
            [AckReceived(request=ack, source=CLIENT, transaction_key=event.transaction_key)],
        )

    def test_2xx_retransmitted_invite_absorbed(self) -> None:
        """
        After a 2xx, a retransmitted INVITE is absorbed: neither resent nor
        passed to the TU (RFC 6026 8.7).
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.layer.respond(event.transaction_key, make_response(request, 200), now=0.5)
        self.layer.messages_to_send()
        self.layer.message_received(make_request(), CLIENT, False, now=0.6)
        self.assertEqual(self.layer.messages_to_send(), [])
        self.assertEqual(events(self.layer), [])

    def test_cancel_matching_invite(self) -> None:
        """
        A CANCEL matching a pending INVITE is answered 200 by the layer and
        reported to the TU, which then answers the INVITE with 487
        (RFC 3261 9.2).
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [invite_event] = events(self.layer)
        self.layer.respond(invite_event.transaction_key, make_response(request, 180), now=0.1)
        self.layer.messages_to_send()
        cancel = create_cancel(request)
        self.layer.message_received(cancel, CLIENT, False, now=1.0)
        [(response, destination)] = sent(self.layer)
        self.assertEqual((response.status_code, response.cseq.method, destination),
                         (200, "CANCEL", CLIENT))
        # The CANCEL's 200 reuses the To tag the INVITE's responses carry.
        self.assertEqual(response.to.tag, TO_TAG)
        [event] = events(self.layer)
        self.assertIsInstance(event, CancelReceived)
        self.assertEqual(event.invite_key, invite_event.transaction_key)
        self.assertIs(event.request, cancel)
        self.layer.respond(event.invite_key, make_response(request, 487), now=1.1)
        self.assertEqual([m.status_code for m, _ in sent(self.layer)], [487])

    def test_cancel_for_invite_with_malformed_to(self) -> None:
        """
        A CANCEL matching an INVITE whose To is malformed (its 400 copied that To) gets 200
        like any other; reading the INVITE's last response for its tag must not raise.
        """
        text = (b"INVITE sip:bob@192.0.2.2 SIP/2.0\r\n"
                b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=" + BRANCH.encode() + b"\r\n"
                b"From: <sip:alice@192.0.2.1>;tag=a\r\n"
                b"To: <sip:bob@192.0.2.2\r\n"
                b"Call-ID: broken-to\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        self.layer.datagram_received(text, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.layer.respond(event.transaction_key,
                           event.request.create_response(400, to_tag="t"), now=0.0)
        self.layer.messages_to_send()
        cancel = text.replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
        self.layer.datagram_received(cancel, CLIENT, False, now=0.1)
        self.assertEqual([(m.status_code, m.cseq.method) for m, _ in sent(self.layer)],
                         [(200, "CANCEL")])

    def test_cancel_retransmission(self) -> None:
        """
        A retransmitted CANCEL gets the same 200 from the CANCEL's server
        transaction and is reported only once (RFC 3261 17.2.2).
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        events(self.layer)
        self.layer.messages_to_send()
        self.layer.message_received(create_cancel(request), CLIENT, False, now=1.0)
        first = self.layer.messages_to_send()
        self.assertEqual(len(events(self.layer)), 1)
        self.layer.message_received(create_cancel(request), CLIENT, False, now=1.5)
        self.assertEqual(self.layer.messages_to_send(), first)
        self.assertEqual(events(self.layer), [])

    def test_cancel_without_invite(self) -> None:
        """
        A CANCEL matching no INVITE is answered 481 and not passed to the TU
        (RFC 3261 9.2).
        """
        self.layer.message_received(create_cancel(make_request()), CLIENT, False, now=0.0)
        self.assertEqual([(m.status_code, d) for m, d in sent(self.layer)], [(481, CLIENT)])
        self.assertEqual(events(self.layer), [])

    def test_cancel_after_final(self) -> None:
        """
        A CANCEL for an INVITE already answered with a final response gets 200
        but has no effect (RFC 3261 9.2).
        """
        request = make_request()
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.layer.respond(event.transaction_key, make_response(request, 486), now=0.1)
        self.layer.messages_to_send()
        self.layer.message_received(create_cancel(request), CLIENT, False, now=0.2)
        self.assertEqual([m.status_code for m, _ in sent(self.layer)], [200])
        self.assertEqual(events(self.layer), [])

    def test_same_branch_other_sent_by(self) -> None:
        """
        The same branch from another sent-by is a new transaction
        (RFC 3261 17.2.3).
        """
        self.layer.message_received(make_request("OPTIONS"), CLIENT, False, now=0.0)
        self.layer.message_received(make_request("OPTIONS", via_host="other.example.com"),
                                    CLIENT, False, now=0.0)
        self.assertEqual(len(events(self.layer)), 2)
        self.assertEqual(len(self.layer), 2)

    def test_legacy_matching(self) -> None:
        """
        Requests without the magic cookie are matched with the RFC 2543 rules:
        the retransmission and the ACK find the INVITE's transaction
        (RFC 3261 17.2.3).
        """
        request = make_request(branch="")
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.assertFalse(event.transaction_key.branch.startswith(MAGIC_COOKIE))
        self.layer.respond(event.transaction_key, make_response(request, 404), now=0.1)
        self.layer.messages_to_send()
        self.layer.message_received(make_request(branch=""), CLIENT, False, now=0.2)
        self.assertEqual([m.status_code for m, _ in sent(self.layer)], [404])
        self.layer.message_received(make_ack(request), CLIENT, False, now=0.3)
        self.assertEqual(events(self.layer), [])
        self.assertIs(self.layer.get_transaction(event.transaction_key).state,
                      TransactionState.CONFIRMED)

    def test_unparseable_datagram(self) -> None:
        """
        A datagram that is not a SIP message is dropped, counted and
        reported.
        """
        self.layer.datagram_received(b"\x00\x01garbage\r\n\r\n", CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.assertIsInstance(event, MessageDiscarded)
        self.assertIsNone(event.message)
        self.assertEqual(self.layer.malformed_messages, 1)
        self.assertEqual(len(self.layer), 0)

    def test_unparseable_request_answered(self) -> None:
        """
        A request the parser rejects after reading its headers is answered
        statelessly with the parser's status hint (RFC 3261 8.2.6.2).
        """
        data = make_request("OPTIONS").serialize().replace(b"Content-Length: 0", b"Content-Length: 50")
        self.layer.datagram_received(data, CLIENT, False, now=0.0)
        [(response, destination)] = sent(self.layer)
        self.assertEqual((response.status_code, destination), (400, CLIENT))
        self.assertEqual(response.top_via.branch, BRANCH)
        self.assertEqual(len(self.layer), 0)
        self.assertIsInstance(events(self.layer)[0], MessageDiscarded)

    def test_request_without_via(self) -> None:
        """
        A request without a Via cannot be matched or answered: it is dropped,
        counted and reported (RFC 3261 8.1.1.7, 17.2.3).
        """
        request = make_request("OPTIONS")
        request.headers.remove("Via")
        self.layer.message_received(request, CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.assertIsInstance(event, MessageDiscarded)
        self.assertIs(event.message, request)
        self.assertEqual(self.layer.malformed_messages, 1)
        self.assertEqual(self.layer.messages_to_send(), [])
        self.assertEqual(len(self.layer), 0)

    def test_datagram_parsed(self) -> None:
        """
        A datagram is parsed and handled as a message.
        """
        self.layer.datagram_received(make_request("OPTIONS").serialize(), CLIENT, False, now=0.0)
        [event] = events(self.layer)
        self.assertIsInstance(event, RequestReceived)
        self.assertEqual(event.request.method, "OPTIONS")


class ClientSideTests(SynchronousTestCase):
    """
    Tests for outgoing requests (RFC 3261 17.1.3, 9.1).
    """

    def setUp(self) -> None:
        self.layer = TransactionLayer(TimerValues())

    def test_send_request_and_match_response(self) -> None:
        """
        A request is sent to its destination; a response with the same branch
        and CSeq method is passed to the TU with the transaction's key
        (RFC 3261 17.1.3).
        """
        request = make_request("OPTIONS")
        key = self.layer.send_request(request, SERVER, False, now=0.0)
        self.assertEqual(self.layer.messages_to_send(), [(request.serialize(), SERVER)])
        response = make_response(request, 200)
        self.layer.message_received(response, SERVER, False, now=0.1)
        self.assertEqual(events(self.layer),
                         [ResponseReceived(response=response, transaction_key=key)])
        self.assertEqual(self.layer.get_timer(), 5.1)

    def test_stray_response(self) -> None:
        """
        A response matching no client transaction is dropped and counted
        (RFC 3261 18.1.2).
        """
        request = make_request("OPTIONS")
        self.layer.send_request(request, SERVER, False, now=0.0)
        stray = make_response(make_request("OPTIONS", branch="z9hG4bKother"), 200)
        self.layer.message_received(stray, SERVER, False, now=0.1)
        [event] = events(self.layer)
        self.assertIsInstance(event, MessageDiscarded)
        self.assertIs(event.message, stray)
        self.assertEqual(self.layer.stray_responses, 1)
        # Same branch, other method: also stray (RFC 3261 17.1.3).
        other = make_response(make_request("INFO"), 200)
        self.layer.message_received(other, SERVER, False, now=0.1)
        self.assertEqual(self.layer.stray_responses, 2)

    def test_branch_reuse(self) -> None:
        """
        Two live client transactions cannot share a branch and method.
        """
        self.layer.send_request(make_request("OPTIONS"), SERVER, False, now=0.0)
        self.assertRaises(LocalProtocolError, self.layer.send_request,
                          make_request("OPTIONS"), SERVER, False, 0.0)

    def test_ack_not_a_transaction(self) -> None:
        """
        An ACK cannot be sent through send_request; send_message sends it
        statelessly (RFC 3261 17.1.1.3).
        """
        ack = make_request("ACK", to_tag=TO_TAG)
        self.assertRaises(LocalProtocolError, self.layer.send_request, ack, SERVER, False, 0.0)
        self.layer.send_message(ack, SERVER)
        self.assertEqual(self.layer.messages_to_send(), [(ack.serialize(), SERVER)])
        self.assertEqual(len(self.layer), 0)

    def test_invite_timers_through_layer(self) -> None:
        """
        Stepping the layer's single timer retransmits an unanswered INVITE at
        0.5, 1.5, 3.5, 7.5, 15.5 and 31.5, then times it out with Timer B at
        32 (RFC 3261 17.1.1.2).
        """
        request = make_request()
        key = self.layer.send_request(request, SERVER, False, now=0.0)
        self.layer.messages_to_send()
        for deadline in [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]:
            self.assertEqual(self.layer.get_timer(), deadline)
            self.layer.handle_timer(now=deadline)
            self.assertEqual(self.layer.messages_to_send(), [(request.serialize(), SERVER)])
        self.assertEqual(self.layer.get_timer(), 32.0)
        self.layer.handle_timer(now=32.0)
        self.assertEqual(
            events(self.layer),
            [
                TransactionTimedOut(transaction_key=key, request=request, timer="B"),
                TransactionTerminated(transaction_key=key),
            ],
        )
        self.assertIsNone(self.layer.get_timer())
        self.assertEqual(len(self.layer), 0)

    def test_timer_order_across_transactions(self) -> None:
        """
        The layer's timer is the earliest deadline of all transactions, and
        handle_timer fires only the due ones.
        """
        first = make_request("OPTIONS", branch="z9hG4bKfirst")
        second = make_request("OPTIONS", branch="z9hG4bKsecond")
        self.layer.send_request(first, SERVER, False, now=0.0)
        self.layer.send_request(second, SERVER, False, now=0.2)
        self.layer.messages_to_send()
        self.assertEqual(self.layer.get_timer(), 0.5)
        self.layer.handle_timer(now=0.5)
        self.assertEqual(self.layer.messages_to_send(), [(first.serialize(), SERVER)])
        self.assertEqual(self.layer.get_timer(), 0.7)
        self.layer.handle_timer(now=0.7)
        self.assertEqual(self.layer.messages_to_send(), [(second.serialize(), SERVER)])
        self.assertEqual(self.layer.get_timer(), 1.5)

    def test_replaced_deadline_ignored(self) -> None:
        """
        A deadline that a response cancelled no longer shows in get_timer.
        """
        request = make_request()
        self.layer.send_request(request, SERVER, False, now=0.0)
        self.layer.messages_to_send()
        self.layer.message_received(make_response(request, 180), SERVER, False, now=0.1)
        self.assertIsNone(self.layer.get_timer())
        self.layer.handle_timer(now=40.0)
        self.assertEqual(self.layer.messages_to_send(), [])
        self.assertEqual(len(self.layer), 1)

    def test_error_response_acked_to_destination(self) -> None:
        """
        The ACK for a 486 goes to the INVITE's destination (RFC 3261 17.1.1.3).
        """
        request = make_request()
        self.layer.send_request(request, SERVER, False, now=0.0)
        self.layer.messages_to_send()
        self.layer.message_received(make_response(request, 486), SERVER, False, now=0.1)
        [(ack, destination)] = sent(self.layer)
        self.assertEqual((ack.method, destination), ("ACK", SERVER))

    def test_cancel_in_proceeding(self) -> None:
        """
        cancel() after a provisional response sends the CANCEL at once to
        the INVITE's destination (RFC 3261 9.1).
        """
        request = make_request()
        key = self.layer.send_request(request, SERVER, False, now=0.0)
        self.layer.messages_to_send()
        self.layer.message_received(make_response(request, 180), SERVER, False, now=0.1)
        events(self.layer)
        cancel_key = self.layer.cancel(key, now=1.0)
        self.assertEqual(cancel_key, TransactionKey(False, BRANCH, "", "CANCEL"))
        [(cancel, destination)] = sent(self.layer)
        self.assertEqual((cancel.method, destination), ("CANCEL", SERVER))
        self.assertEqual(cancel.top_via.branch, BRANCH)
        self.assertEqual(self.layer.cancel(key, now=1.1), cancel_key)
        self.assertEqual(self.layer.messages_to_send(), [])

    def test_cancel_waits_for_provisional(self) -> None:
        """
        cancel() before any provisional response sends nothing until one
        arrives (RFC 3261 9.1).
        """
        request = make_request()
        key = self.layer.send_request(request, SERVER, False, now=0.0)
        self.layer.messages_to_send()
        cancel_key = self.layer.cancel(key, now=0.1)
        self.assertEqual(self.layer.messages_to_send(), [])
        self.assertEqual(self.layer.cancel(key, now=0.2), cancel_key)
        ringing = make_response(request, 180)
        self.layer.message_received(ringing, SERVER, False, now=0.3)
        self.assertEqual([m.method for m, _ in sent(self.layer)], ["CANCEL"])
        self.assertEqual(events(self.layer),
                         [ResponseReceived(response=ringing, transaction_key=key)])
        self.assertIsNotNone(self.layer.get_transaction(cancel_key))

    def test_cancel_too_late(self) -> None:
        """
        cancel() after a final response returns None and sends nothing.
        """
        request = make_request()
        key = self.layer.send_request(request, SERVER, False, now=0.0)
        self.layer.message_received(make_response(request, 486), SERVER, False, now=0.1)
        self.layer.messages_to_send()
        self.assertIsNone(self.layer.cancel(key, now=0.2))
        self.assertEqual(self.layer.messages_to_send(), [])

    def test_cancel_non_invite_raises(self) -> None:
        """
        Only INVITE client transactions can be cancelled.
        """
        key = self.layer.send_request(make_request("OPTIONS"), SERVER, False, now=0.0)
        self.assertRaises(LocalProtocolError, self.layer.cancel, key, 0.0)

    def test_transport_error(self) -> None:
        """
        A transport error towards a destination fails the transactions
        sending there, and only those (RFC 3261 17.1.4).
        """
        request = make_request("OPTIONS")
        key = self.layer.send_request(request, SERVER, True, now=0.0)
        self.layer.send_request(make_request("OPTIONS", branch="z9hG4bKelse"),
                                ("192.0.2.9", 5060), True, now=0.0)
        self.layer.transport_error(SERVER, now=0.1)
        self.assertEqual(
            events(self.layer),
            [
                TransportErrorOccurred(transaction_key=key, request=request, destination=SERVER),
                TransactionTerminated(transaction_key=key),
            ],
        )
        self.assertEqual(len(self.layer), 1)


class TwoLayerTests(SynchronousTestCase):
    """
    A UAC layer and a UAS layer joined in memory, with message loss.
    """

    def test_invite_rejected_with_loss(self) -> None:
        """
        The lost INVITE is recovered by Timer A, the lost 486 by Timer G, and
        the ACK ends both sides cleanly (RFC 3261 17.1.1, 17.2.1).
        """
        uac = TransactionLayer()
        uas = TransactionLayer()
        request = make_request()
        key = uac.send_request(request, SERVER, False, now=0.0)
        self.assertEqual(deliver(uac, uas, CLIENT, now=0.0, drop=1), 0)
        uac.handle_timer(now=uac.get_timer())
        self.assertEqual(deliver(uac, uas, CLIENT, now=0.5), 1)
        [incoming] = events(uas)
        deliver(uas, uac, SERVER, now=0.5)  # 100 Trying
        self.assertEqual(events(uac)[0].response.status_code, 100)
        uas.respond(incoming.transaction_key, make_response(incoming.request, 486), now=1.0)
        deliver(uas, uac, SERVER, now=1.0, drop=1)
        self.assertEqual(uas.get_timer(), 1.5)
        uas.handle_timer(now=1.5)
        deliver(uas, uac, SERVER, now=1.5)
        [final] = events(uac)
        self.assertEqual(final.response.status_code, 486)
        self.assertEqual(final.transaction_key, key)
        deliver(uac, uas, CLIENT, now=1.5)  # the ACK
        self.assertIs(uas.get_transaction(incoming.transaction_key).state,
                      TransactionState.CONFIRMED)
        uas.handle_timer(now=uas.get_timer())
        uac.handle_timer(now=uac.get_timer())
        self.assertEqual((len(uac), len(uas)), (0, 0))


class GenerateBranchTests(SynchronousTestCase):
    """
    Tests for L{generate_branch}.
    """

    def test_random_object(self) -> None:
        """
        Branches start with the magic cookie and come from the injected
        random source (RFC 3261 8.1.1.7).
        """
        first = generate_branch(random.Random(1))
        self.assertTrue(first.startswith(MAGIC_COOKIE))
        self.assertEqual(first, generate_branch(random.Random(1)))
        source = random.Random(1)
        self.assertNotEqual(generate_branch(source), generate_branch(source))

    def test_bytes_callable(self) -> None:
        """
        A callable returning random bytes also works.
        """
        self.assertEqual(generate_branch(lambda n: b"\xab" * n), MAGIC_COOKIE + "ab" * 8)
