"""
Tests for L{wcs_twisted.sip.transaction}.

The timer tests step time by hand, as aioquic's C{test_connect_with_loss_*}
do: each one starts at C{now = 0.0}, asserts the exact next deadline from
C{get_timer()}, calls C{handle_timer(now=deadline)} and checks what was sent.
"""

from twisted.trial.unittest import SynchronousTestCase

from wcs_twisted.sip.errors import LocalProtocolError
from wcs_twisted.sip.events import (
    AckReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from wcs_twisted.sip.message import Request, Response, parse_message
from wcs_twisted.sip.timers import TimerValues
from wcs_twisted.sip.transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TransactionKey,
    TransactionState,
    build_ack,
    client_key,
    create_cancel,
    response_key,
    server_key,
)

TIMERS = TimerValues()

BRANCH = "z9hG4bK776asdhds"
TO_TAG = "a6c85cf"


def make_request(
    method: str = "INVITE",
    branch: str = BRANCH,
    cseq: int = 314159,
    to_tag: str = "",
    via_host: str = "pc33.atlanta.example.com",
    via_port: str = ":5060",
    cseq_method: str = "",
    extra: str = "",
) -> Request:
    """
    Build a request like RFC 3261 section 24's INVITE, with a configurable
    top Via branch and method.
    """
    branch_param = f";branch={branch}" if branch else ""
    to_param = f";tag={to_tag}" if to_tag else ""
    data = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}{via_port}{branch_param}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: Bob <sip:bob@biloxi.example.com>{to_param}\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode("ascii")
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def make_response(request: Request, status_code: int, to_tag: str = TO_TAG) -> Response:
    """Build the response a UAS would send (RFC 3261 8.2.6)."""
    return request.create_response(status_code, to_tag=to_tag if status_code > 100 else None)


def make_ack(request: Request, to_tag: str = TO_TAG) -> Request:
    """Build the ACK a client transaction sends for a non-2xx response."""
    return build_ack(request, make_response(request, 486, to_tag))


def events(transaction) -> list:
    """Drain every pending event of a transaction."""
    result = []
    while True:
        event = transaction.next_event()
        if event is None:
            return result
        result.append(event)


def sent(transaction) -> list:
    """Drain and parse every message a transaction wants to send."""
    return [parse_message(data) for data in transaction.messages_to_send()]


class ClientInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ClientInviteTransaction} (RFC 3261 17.1.1, RFC 6026 8.4).
    """

    def test_sends_request(self) -> None:
        """
        Creating the transaction sends the INVITE once and enters Calling
        (RFC 3261 17.1.1.2).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        self.assertIs(tx.state, TransactionState.CALLING)
        data = tx.messages_to_send()
        self.assertEqual(data, [request.serialize()])
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(tx.key, TransactionKey(False, BRANCH, "", "INVITE"))

    def test_timer_a_then_timer_b(self) -> None:
        """
        Over an unreliable transport Timer A retransmits at T1, doubling each
        time (0.5, 1.5, 3.5, 7.5, 15.5, 31.5), and Timer B times the
        transaction out at 64*T1 (RFC 3261 17.1.1.2).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        first = tx.messages_to_send()
        for deadline in [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]:
            self.assertEqual(tx.get_timer(), deadline)
            tx.handle_timer(now=deadline)
            self.assertEqual(tx.messages_to_send(), first)
            self.assertEqual(events(tx), [])
        self.assertEqual(tx.get_timer(), 32.0)
        tx.handle_timer(now=32.0)
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(
            events(tx),
            [
                TransactionTimedOut(transaction_key=tx.key, request=request, timer="B"),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )
        self.assertIs(tx.state, TransactionState.TERMINATED)
        self.assertIsNone(tx.get_timer())

    def test_reliable_has_no_timer_a(self) -> None:
        """
        Over a reliable transport the INVITE is never retransmitted; only
        Timer B runs (RFC 3261 17.1.1.2).
        """
        tx = ClientInviteTransaction(make_request(), True, TIMERS, now=0.0)
        tx.messages_to_send()
        self.assertEqual(tx.get_timer(), 32.0)
        tx.handle_timer(now=32.0)
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(type(events(tx)[0]), TransactionTimedOut)

    def test_early_timer_call_does_nothing(self) -> None:
        """
        Calling handle_timer before the deadline changes nothing.
        """
        tx = ClientInviteTransaction(make_request(), False, TIMERS, now=0.0)
        tx.messages_to_send()
        tx.handle_timer(now=0.4)
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(tx.get_timer(), 0.5)

    def test_late_timer_call_restarts_from_now(self) -> None:
        """
        A late Timer A firing is reset relative to when it fired (RFC 3261
        17.1.1.2: "the timer is reset with a value of 2*T1").
        """
        tx = ClientInviteTransaction(make_request(), False, TIMERS, now=0.0)
        tx.handle_timer(now=0.7)
        self.assertEqual(tx.get_timer(), 1.7)

    def test_provisional_response(self) -> None:
        """
        A 1xx moves Calling to Proceeding, is passed to the TU and stops
        Timers A and B (RFC 3261 17.1.1.2).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        ringing = make_response(request, 180)
        tx.receive_response(ringing, now=0.2)
        self.assertIs(tx.state, TransactionState.PROCEEDING)
        self.assertEqual(events(tx), [ResponseReceived(response=ringing, transaction_key=tx.key)])
        self.assertIsNone(tx.get_timer())
        tx.receive_response(ringing, now=0.3)
        self.assertEqual(len(events(tx)), 1)

    def test_error_response_sends_ack(self) -> None:
        """
        A 300-699 response is passed to the TU and answered with an ACK built
        by the transaction; Completed lasts Timer D (RFC 3261 17.1.1.2-3).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        busy = make_response(request, 486)
        tx.receive_response(busy, now=0.2)
        self.assertIs(tx.state, TransactionState.COMPLETED)
        self.assertEqual(events(tx), [ResponseReceived(response=busy, transaction_key=tx.key)])
        [ack] = sent(tx)
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.top_via.branch, BRANCH)
        self.assertEqual(ack.cseq.number, 314159)
        self.assertEqual(ack.cseq.method, "ACK")
        self.assertEqual(ack.to.tag, TO_TAG)
        self.assertEqual(tx.ack.method, "ACK")
        self.assertEqual(tx.get_timer(), 32.2)

    def test_error_response_retransmission_resends_ack(self) -> None:
        """
        In Completed a retransmitted final response is answered with the
        same ACK and not passed to the TU (RFC 3261 17.1.1.2).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        busy = make_response(request, 486)
        tx.receive_response(busy, now=0.2)
        ack_data = tx.messages_to_send()
        events(tx)
        tx.receive_response(busy, now=1.0)
        self.assertEqual(tx.messages_to_send(), ack_data)
        self.assertEqual(events(tx), [])
        tx.receive_response(make_response(request, 180), now=1.1)
        self.assertEqual(tx.messages_to_send(), [])

    def test_timer_d(self) -> None:
        """
        Timer D ends the Completed state without reporting a failure
        (RFC 3261 17.1.1.2).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.receive_response(make_response(request, 404), now=1.0)
        events(tx)
        self.assertEqual(tx.get_timer(), 33.0)
        tx.handle_timer(now=33.0)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])
        self.assertIs(tx.state, TransactionState.TERMINATED)

    def test_error_response_over_reliable_transport(self) -> None:
        """
        Over a reliable transport Timer D is zero: the ACK is sent and the
        transaction terminates at once (RFC 3261 17.1.1.2).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, True, TIMERS, now=0.0)
        tx.messages_to_send()
        busy = make_response(request, 486)
        tx.receive_response(busy, now=0.2)
        self.assertEqual([m.method for m in sent(tx)], ["ACK"])
        self.assertEqual(
            events(tx),
            [
                ResponseReceived(response=busy, transaction_key=tx.key),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )
        self.assertIsNone(tx.get_timer())

    def test_2xx_enters_accepted(self) -> None:
        """
        A 2xx moves the transaction to Accepted, is passed to the TU and is
        not ACKed by the transaction; Timer M is started (RFC 6026 8.4).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        ok = make_response(request, 200)
        tx.receive_response(ok, now=0.3)
        self.assertIs(tx.state, TransactionState.ACCEPTED)
        self.assertEqual(events(tx), [ResponseReceived(response=ok, transaction_key=tx.key)])
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(tx.get_timer(), 32.3)

    def test_2xx_retransmissions_passed_to_tu(self) -> None:
        """
        In Accepted every 2xx (a retransmission or another fork's answer) is
        passed to the TU, while other responses are dropped (RFC 6026 8.4).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.receive_response(make_response(request, 200), now=0.3)
        events(tx)
        fork = make_response(request, 200, to_tag="other")
        tx.receive_response(fork, now=0.5)
        self.assertEqual(events(tx), [ResponseReceived(response=fork, transaction_key=tx.key)])
        tx.receive_response(make_response(request, 180), now=0.6)
        tx.receive_response(make_response(request, 486), now=0.7)
        self.assertEqual(events(tx), [])
        self.assertEqual(tx.messages_to_send()[1:], [])

    def test_timer_m(self) -> None:
        """
        Timer M ends the Accepted state without reporting a failure
        (RFC 6026 8.4).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, True, TIMERS, now=0.0)
        tx.receive_response(make_response(request, 200), now=1.0)
        events(tx)
        tx.handle_timer(now=33.0)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])

    def test_2xx_after_provisional(self) -> None:
        """
        A 2xx received in Proceeding also leads to Accepted (RFC 6026 8.4).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0)
        tx.receive_response(make_response(request, 183), now=0.1)
        tx.receive_response(make_response(request, 200), now=5.0)
        self.assertIs(tx.state, TransactionState.ACCEPTED)
        self.assertEqual(tx.get_timer(), 37.0)

    def test_responses_ignored_when_terminated(self) -> None:
        """
        A terminated transaction ignores further responses.
        """
        request = make_request()
        tx = ClientInviteTransaction(request, True, TIMERS, now=0.0)
        tx.receive_response(make_response(request, 486), now=0.1)
        tx.messages_to_send()
        events(tx)
        tx.receive_response(make_response(request, 486), now=0.2)
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(events(tx), [])

    def test_transport_error(self) -> None:
        """
        A transport error terminates the transaction and is reported to the
        TU (RFC 3261 17.1.4).
        """
        request = make_request()
        tx = ClientInviteTransaction(request, False, TIMERS, now=0.0, destination="dest")
        tx.transport_error(now=0.1)
        self.assertEqual(
            events(tx),
            [
                TransportErrorOccurred(transaction_key=tx.key, request=request, destination="dest"),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )
        self.assertIsNone(tx.get_timer())
        tx.transport_error(now=0.2)
        self.assertEqual(events(tx), [])

    def test_rejects_other_methods(self) -> None:
        """
        Only INVITE requests can create an INVITE client transaction.
        """
        self.assertRaises(
            LocalProtocolError,
            ClientInviteTransaction,
            make_request("OPTIONS"),
            False,
            TIMERS,
            0.0,
        )

    def test_requires_magic_cookie(self) -> None:
        """
        A client transaction needs an RFC 3261 branch (RFC 3261 8.1.1.7).
        """
        self.assertRaises(
            LocalProtocolError,
            ClientInviteTransaction,
            make_request(branch="oldstyle1"),
            False,
            TIMERS,
            0.0,
        )


class ClientNonInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ClientNonInviteTransaction} (RFC 3261 17.1.2).
    """

    def test_timer_e_capped_then_timer_f(self) -> None:
        """
        Timer E doubles from T1 up to T2 (0.5, 1.5, 3.5, 7.5, 11.5, ...) and
        Timer F times the transaction out at 64*T1 (RFC 3261 17.1.2.2).
        """
        request = make_request("OPTIONS")
        tx = ClientNonInviteTransaction(request, False, TIMERS, now=0.0)
        self.assertIs(tx.state, TransactionState.TRYING)
        first = tx.messages_to_send()
        self.assertEqual(first, [request.serialize()])
        for deadline in [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]:
            self.assertEqual(tx.get_timer(), deadline)
            tx.handle_timer(now=deadline)
            self.assertEqual(tx.messages_to_send(), first)
        self.assertEqual(tx.get_timer(), 32.0)
        tx.handle_timer(now=32.0)
        self.assertEqual(
            events(tx),
            [
                TransactionTimedOut(transaction_key=tx.key, request=request, timer="F"),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )

    def test_reliable_has_no_timer_e(self) -> None:
        """
        Over a reliable transport the request is never retransmitted; only
        Timer F runs (RFC 3261 17.1.2.2).
        """
        tx = ClientNonInviteTransaction(make_request("REGISTER"), True, TIMERS, now=0.0)
        tx.messages_to_send()
        self.assertEqual(tx.get_timer(), 32.0)

    def test_timer_e_in_proceeding_is_t2(self) -> None:
        """
        Once a provisional response arrived, Timer E restarts at T2 each time
        it fires (RFC 3261 17.1.2.2).
        """
        request = make_request("OPTIONS")
        tx = ClientNonInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        tx.handle_timer(now=0.5)
        trying = make_response(request, 100)
        tx.receive_response(trying, now=0.6)
        self.assertIs(tx.state, TransactionState.PROCEEDING)
        self.assertEqual(events(tx), [ResponseReceived(response=trying, transaction_key=tx.key)])
        self.assertEqual(tx.get_timer(), 1.5)
        tx.handle_timer(now=1.5)
        self.assertEqual(len(tx.messages_to_send()), 2)
        self.assertEqual(tx.get_timer(), 5.5)
        tx.handle_timer(now=5.5)
        self.assertEqual(tx.get_timer(), 9.5)

    def test_final_response_and_timer_k(self) -> None:
        """
        A final response is passed to the TU, stops Timers E and F, and
        Timer K (T4) absorbs its retransmissions (RFC 3261 17.1.2.2).
        """
        request = make_request("OPTIONS")
        tx = ClientNonInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        ok = make_response(request, 200)
        tx.receive_response(ok, now=1.0)
        self.assertIs(tx.state, TransactionState.COMPLETED)
        self.assertEqual(events(tx), [ResponseReceived(response=ok, transaction_key=tx.key)])
        self.assertEqual(tx.get_timer(), 6.0)
        tx.receive_response(ok, now=2.0)
        self.assertEqual(events(tx), [])
        self.assertEqual(tx.messages_to_send(), [])
        tx.handle_timer(now=6.0)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])

    def test_final_response_over_reliable_transport(self) -> None:
        """
        Over a reliable transport Timer K is zero: a final response
        terminates the transaction at once (RFC 3261 17.1.2.2).
        """
        request = make_request("BYE", to_tag=TO_TAG)
        tx = ClientNonInviteTransaction(request, True, TIMERS, now=0.0)
        ok = make_response(request, 200)
        tx.receive_response(ok, now=1.0)
        self.assertEqual(
            events(tx),
            [
                ResponseReceived(response=ok, transaction_key=tx.key),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )

    def test_rejects_invite_and_ack(self) -> None:
        """
        INVITE and ACK cannot create a non-INVITE client transaction.
        """
        for method in ["INVITE", "ACK"]:
            self.assertRaises(
                LocalProtocolError,
                ClientNonInviteTransaction,
                make_request(method),
                False,
                TIMERS,
                0.0,
            )


class ServerInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ServerInviteTransaction} (RFC 3261 17.2.1, RFC 6026 8.5-8.7).
    """

    def test_sends_100_trying(self) -> None:
        """
        The transaction starts in Proceeding and sends 100 Trying at once
        (RFC 3261 17.2.1).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0)
        self.assertIs(tx.state, TransactionState.PROCEEDING)
        [trying] = sent(tx)
        self.assertEqual(trying.status_code, 100)
        self.assertEqual(trying.top_via.branch, BRANCH)
        self.assertIsNone(tx.get_timer())
        self.assertEqual(
            tx.key, TransactionKey(True, BRANCH, "pc33.atlanta.example.com:5060", "INVITE")
        )

    def test_no_trying_when_disabled(self) -> None:
        """
        With send_trying=False nothing is sent until the TU responds.
        """
        tx = ServerInviteTransaction(make_request(), False, TIMERS, now=0.0, send_trying=False)
        self.assertEqual(tx.messages_to_send(), [])

    def test_retransmitted_invite_resends_provisional(self) -> None:
        """
        In Proceeding a retransmitted INVITE is answered with the most recent
        provisional response (RFC 3261 17.2.1).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        tx.respond(make_response(request, 180), now=0.1)
        ringing = tx.messages_to_send()
        tx.receive_request(request, now=0.5)
        self.assertEqual(tx.messages_to_send(), ringing)
        self.assertEqual(events(tx), [])

    def test_retransmitted_invite_without_provisional(self) -> None:
        """
        Without any response sent yet, a retransmitted INVITE is absorbed.
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        tx.receive_request(request, now=0.5)
        self.assertEqual(tx.messages_to_send(), [])

    def test_timer_g_until_ack_then_timer_i(self) -> None:
        """
        A 300-699 response is retransmitted by Timer G, doubling up to T2,
        until the ACK arrives; Confirmed then lasts Timer I (T4) and absorbs
        retransmitted ACKs (RFC 3261 17.2.1).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        tx.respond(make_response(request, 486), now=0.0)
        self.assertIs(tx.state, TransactionState.COMPLETED)
        final = tx.messages_to_send()
        self.assertEqual(parse_message(final[0]).status_code, 486)
        for deadline in [0.5, 1.5, 3.5, 7.5, 11.5]:
            self.assertEqual(tx.get_timer(), deadline)
            tx.handle_timer(now=deadline)
            self.assertEqual(tx.messages_to_send(), final)
        ack = make_ack(request)
        tx.receive_request(ack, now=12.0)
        self.assertIs(tx.state, TransactionState.CONFIRMED)
        self.assertEqual(events(tx), [])
        self.assertEqual(tx.get_timer(), 17.0)
        tx.receive_request(ack, now=13.0)
        tx.receive_request(request, now=13.0)
        self.assertEqual(tx.messages_to_send(), [])
        tx.handle_timer(now=17.0)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])

    def test_retransmitted_invite_resends_final(self) -> None:
        """
        In Completed a retransmitted INVITE is answered with the final
        response (RFC 3261 17.2.1).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        tx.respond(make_response(request, 603), now=0.0)
        final = tx.messages_to_send()
        tx.receive_request(request, now=0.2)
        self.assertEqual(tx.messages_to_send(), final)

    def test_timer_h(self) -> None:
        """
        Without an ACK, Timer H (64*T1) terminates the transaction and reports
        the failure (RFC 3261 17.2.1).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        tx.respond(make_response(request, 486), now=0.0)
        retransmissions = 0
        while tx.get_timer() != 32.0:
            tx.handle_timer(now=tx.get_timer())
            retransmissions += 1
        self.assertEqual(retransmissions, 10)
        tx.handle_timer(now=32.0)
        self.assertEqual(
            events(tx),
            [
                TransactionTimedOut(transaction_key=tx.key, request=request, timer="H"),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )

    def test_reliable_error_response(self) -> None:
        """
        Over a reliable transport there is no Timer G but Timer H still runs,
        and Timer I is zero so the ACK terminates the transaction
        (RFC 3261 17.2.1).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, True, TIMERS, now=0.0, send_trying=False)
        tx.respond(make_response(request, 486), now=1.0)
        tx.messages_to_send()
        self.assertEqual(tx.get_timer(), 33.0)
        tx.receive_request(make_ack(request), now=2.0)
        self.assertIs(tx.state, TransactionState.TERMINATED)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])

    def test_2xx_enters_accepted(self) -> None:
        """
        A 2xx from the TU moves the transaction to Accepted with Timer L; the
        transaction does not retransmit it and absorbs INVITE retransmissions
        (RFC 6026 8.5-8.7).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        tx.respond(make_response(request, 200), now=1.0)
        self.assertIs(tx.state, TransactionState.ACCEPTED)
        self.assertEqual(len(tx.messages_to_send()), 1)
        self.assertEqual(tx.get_timer(), 33.0)
        tx.receive_request(request, now=1.5)
        self.assertEqual(tx.messages_to_send(), [])

    def test_accepted_passes_2xx_from_tu(self) -> None:
        """
        In Accepted, further 2xx responses from the TU (its retransmissions,
        or other forks' answers at a proxy) are sent (RFC 6026 8.7).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        ok = make_response(request, 200)
        tx.respond(ok, now=1.0)
        tx.respond(ok, now=1.5)
        self.assertEqual(len(tx.messages_to_send()), 2)
        self.assertRaises(LocalProtocolError, tx.respond, make_response(request, 486), 2.0)
        self.assertRaises(LocalProtocolError, tx.respond, make_response(request, 180), 2.0)

    def test_accepted_passes_ack_to_tu(self) -> None:
        """
        An ACK matching the transaction in Accepted is passed to the TU
        (RFC 6026 8.7).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        tx.respond(make_response(request, 200), now=1.0)
        ack = make_ack(request)
        tx.receive_request(ack, now=1.2, source="peer")
        self.assertEqual(
            events(tx), [AckReceived(request=ack, source="peer", transaction_key=tx.key)]
        )
        self.assertIs(tx.state, TransactionState.ACCEPTED)

    def test_timer_l(self) -> None:
        """
        Timer L ends the Accepted state without reporting a failure
        (RFC 6026 8.7).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, send_trying=False)
        tx.respond(make_response(request, 200), now=1.0)
        tx.handle_timer(now=33.0)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])

    def test_transport_error(self) -> None:
        """
        A transport error in Proceeding or Completed terminates the
        transaction and informs the TU (RFC 3261 17.2.4).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, destination="peer")
        tx.respond(make_response(request, 486), now=0.1)
        tx.transport_error(now=0.2)
        self.assertEqual(
            events(tx),
            [
                TransportErrorOccurred(transaction_key=tx.key, request=request, destination="peer"),
                TransactionTerminated(transaction_key=tx.key),
            ],
        )

    def test_transport_error_in_accepted(self) -> None:
        """
        A transport error in Accepted informs the TU but the transaction stays
        until Timer L (RFC 6026 figure 5).
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0, destination="peer")
        tx.respond(make_response(request, 200), now=0.1)
        tx.transport_error(now=0.2)
        self.assertEqual(
            events(tx),
            [TransportErrorOccurred(transaction_key=tx.key, request=request, destination="peer")],
        )
        self.assertIs(tx.state, TransactionState.ACCEPTED)
        self.assertEqual(tx.get_timer(), 32.1)

    def test_respond_after_final_raises(self) -> None:
        """
        Once a 300-699 response was sent the TU cannot send another response.
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0)
        tx.respond(make_response(request, 486), now=1.0)
        self.assertRaises(LocalProtocolError, tx.respond, make_response(request, 200), 2.0)

    def test_ack_in_proceeding_ignored(self) -> None:
        """
        An ACK before any final response changes nothing.
        """
        request = make_request()
        tx = ServerInviteTransaction(request, False, TIMERS, now=0.0)
        tx.messages_to_send()
        tx.receive_request(make_ack(request), now=1.0)
        self.assertIs(tx.state, TransactionState.PROCEEDING)
        self.assertEqual(tx.messages_to_send(), [])
        self.assertEqual(events(tx), [])

    def test_rejects_other_methods(self) -> None:
        """
        Only INVITE requests can create an INVITE server transaction.
        """
        self.assertRaises(
            LocalProtocolError, ServerInviteTransaction, make_request("BYE"), False, TIMERS, 0.0
        )


class ServerNonInviteTransactionTests(SynchronousTestCase):
    """
    Tests for L{ServerNonInviteTransaction} (RFC 3261 17.2.2).
    """

    def test_trying_absorbs_retransmissions(self) -> None:
        """
        In Trying retransmissions are absorbed and nothing is sent
        (RFC 3261 17.2.2).
        """
        request = make_request("REGISTER")
        tx = ServerNonInviteTransaction(request, False, TIMERS, now=0.0)
        self.assertIs(tx.state, TransactionState.TRYING)
        tx.receive_request(request, now=0.5)
        self.assertEqual(tx.messages_to_send(), [])
        self.assertIsNone(tx.get_timer())

    def test_proceeding_resends_provisional(self) -> None:
        """
        In Proceeding a retransmission is answered with the last provisional
        response (RFC 3261 17.2.2).
        """
        request = make_request("REGISTER")
        tx = ServerNonInviteTransaction(request, False, TIMERS, now=0.0)
        tx.respond(make_response(request, 100), now=0.1)
        self.assertIs(tx.state, TransactionState.PROCEEDING)
        trying = tx.messages_to_send()
        tx.receive_request(request, now=0.5)
        self.assertEqual(tx.messages_to_send(), trying)

    def test_completed_until_timer_j(self) -> None:
        """
        A final response moves to Completed, retransmissions are answered
        with it, and Timer J (64*T1) terminates (RFC 3261 17.2.2).
        """
        request = make_request("REGISTER")
        tx = ServerNonInviteTransaction(request, False, TIMERS, now=0.0)
        tx.respond(make_response(request, 200), now=0.0)
        self.assertIs(tx.state, TransactionState.COMPLETED)
        final = tx.messages_to_send()
        self.assertEqual(tx.get_timer(), 32.0)
        tx.receive_request(request, now=2.0)
        self.assertEqual(tx.messages_to_send(), final)
        tx.handle_timer(now=32.0)
        self.assertEqual(events(tx), [TransactionTerminated(transaction_key=tx.key)])

    def test_reliable_terminates_at_once(self) -> None:
        """
        Over a reliable transport Timer J is zero (RFC 3261 17.2.2).
        """
        request = make_request("REGISTER")
        tx = ServerNonInviteTransaction(request, True, TIMERS, now=0.0)
        tx.respond(make_response(request, 200), now=0.0)
        self.assertEqual(len(tx.messages_to_send()), 1)
        self.assertIs(tx.state, TransactionState.TERMINATED)

    def test_second_final_response_raises(self) -> None:
        """
        Only one final response can be sent (RFC 3261 17.2.2).
        """
        request = make_request("REGISTER")
        tx = ServerNonInviteTransaction(request, False, TIMERS, now=0.0)
        tx.respond(make_response(request, 200), now=0.0)
        self.assertRaises(LocalProtocolError, tx.respond, make_response(request, 500), 0.1)


class KeyTests(SynchronousTestCase):
    """
    Tests for the matching keys (RFC 3261 17.1.3, 17.2.3).
    """

    def test_client_key_matches_response(self) -> None:
        """
        A response matches the client transaction by top Via branch and CSeq
        method (RFC 3261 17.1.3).
        """
        request = make_request()
        self.assertEqual(response_key(make_response(request, 180)), client_key(request))
        cancel = create_cancel(request)
        self.assertNotEqual(response_key(make_response(cancel, 200)), client_key(request))

    def test_server_key_ack_matches_invite(self) -> None:
        """
        An ACK with the INVITE's branch and sent-by matches the INVITE server
        transaction (RFC 3261 17.2.3).
        """
        request = make_request()
        self.assertEqual(server_key(make_ack(request)), server_key(request))

    def test_server_key_uses_sent_by(self) -> None:
        """
        The same branch from a different sent-by is another transaction
        (RFC 3261 17.2.3).
        """
        self.assertNotEqual(
            server_key(make_request(via_host="a.example.com")),
            server_key(make_request(via_host="b.example.com")),
        )
        self.assertNotEqual(
            server_key(make_request(via_port=":5060")),
            server_key(make_request(via_port="")),
        )

    def test_server_key_sent_by_case_insensitive(self) -> None:
        """
        Host names in sent-by compare case-insensitively (RFC 3261 19.1.4).
        """
        self.assertEqual(
            server_key(make_request(via_host="PC33.atlanta.example.com")),
            server_key(make_request()),
        )

    def test_server_key_cancel_targets_invite(self) -> None:
        """
        A CANCEL has its own key, and its INVITE's key with method INVITE
        (RFC 3261 9.2).
        """
        request = make_request()
        cancel = create_cancel(request)
        self.assertNotEqual(server_key(cancel), server_key(request))
        self.assertEqual(server_key(cancel, "INVITE"), server_key(request))

    def test_legacy_keys(self) -> None:
        """
        Without the magic cookie, matching falls back to Request-URI, Call-ID,
        From tag, CSeq number and top Via (RFC 3261 17.2.3, RFC 2543).
        """
        request = make_request(branch="")
        key = server_key(request)
        self.assertFalse(key.branch.startswith(MAGIC_COOKIE))
        self.assertEqual(server_key(make_request(branch="")), key)
        self.assertEqual(server_key(make_ack(request)), key)
        self.assertEqual(server_key(create_cancel(request), "INVITE"), key)
        self.assertNotEqual(server_key(make_request(branch="", cseq=2)), key)
        self.assertNotEqual(server_key(make_request(branch="legacy1")), key)


class BuildAckTests(SynchronousTestCase):
    """
    Tests for L{build_ack} (RFC 3261 17.1.1.3).
    """

    def test_fields(self) -> None:
        """
        The ACK copies Request-URI, Call-ID, From, CSeq number, top Via and
        Route from the INVITE and To from the response (RFC 3261 17.1.1.3).
        """
        request = make_request(extra="Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n")
        response = make_response(request, 486)
        ack = parse_message(build_ack(request, response).serialize())
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(str(ack.uri), str(request.uri))
        self.assertEqual(ack.call_id, request.call_id)
        self.assertEqual(ack.from_.tag, "1928301774")
        self.assertEqual(ack.to.tag, TO_TAG)
        self.assertEqual(str(ack.cseq), "314159 ACK")
        self.assertEqual(len(ack.vias), 1)
        self.assertEqual(ack.top_via.branch, BRANCH)
        self.assertEqual(
            ack.headers.get_all("Route"), ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        )
        self.assertEqual(ack.body, b"")


class CreateCancelTests(SynchronousTestCase):
    """
    Tests for L{create_cancel} (RFC 3261 9.1).
    """

    def test_fields(self) -> None:
        """
        The CANCEL has the request's Request-URI, Call-ID, From, To, CSeq
        number, a single Via equal to its top Via, and its Route set
        (RFC 3261 9.1).
        """
        request = make_request(
            to_tag="abc",
            extra="Route: <sip:p1.example.com;lr>\r\n",
        )
        request.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy")
        cancel = parse_message(create_cancel(request).serialize())
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(str(cancel.uri), str(request.uri))
        self.assertEqual(cancel.call_id, request.call_id)
        self.assertEqual(cancel.to.tag, "abc")
        self.assertEqual(cancel.from_.tag, "1928301774")
        self.assertEqual(str(cancel.cseq), "314159 CANCEL")
        self.assertEqual([via.branch for via in cancel.vias], ["z9hG4bKproxy"])
        self.assertEqual(cancel.headers.get_all("Route"), ["<sip:p1.example.com;lr>"])

    def test_ack_cannot_be_cancelled(self) -> None:
        """
        An ACK cannot be cancelled (RFC 3261 9.1).
        """
        self.assertRaises(LocalProtocolError, create_cancel, make_request("ACK"))
