"""
Tests for L{wcs_twisted.ua.proxy}: the local-mode stateful proxy between user agents, in memory.

Every test runs a proxy stack (10.0.0.1, domain example.test, with the registrar) and small
user agents (alice 10.0.0.2, bob 10.0.0.3, a second bob device 10.0.0.4) on one
L{MemoryNetwork}; time moves only with the network's Clock.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from wcs_twisted.interfaces import IClientTransactionOwner, IRequestRouter
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.sip.header_fields import Headers
from wcs_twisted.sip.message import Request, parse_message
from wcs_twisted.sip.timers import TimerValues
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.testing.network import MemoryNetwork, build_memory_stack
from wcs_twisted.ua.proxy import Proxy, ProxyBranch, ResponseContext
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.registrar import Registrar

DOMAIN = "example.test"
PROXY = SIPAddress("udp", "10.0.0.1", 5060)
RECORD_ROUTE = "<sip:10.0.0.1:5060;transport=udp;lr>"


@implementer(IClientTransactionOwner)
class Exchange:
    """
    One request a test UA sent, and what came back for it.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.key = None
        self.responses = []
        self.failures = []

    def response_received(self, response):
        self.responses.append(response)

    def transaction_failed(self, reason):
        self.failures.append(reason)

    @property
    def codes(self):
        return [response.status_code for response in self.responses]

    @property
    def final(self):
        finals = [response for response in self.responses if response.status_code >= 200]
        return finals[0] if finals else None


@implementer(IRequestRouter)
class Phone:
    """
    A tiny user agent on its own memory stack: sends requests by hand, records what it
    receives, answers requests with the status codes scripted per method, 487 on CANCEL.
    """

    def __init__(self, network: MemoryNetwork, host: str, user: str, seed: int) -> None:
        self.network = network
        self.stack, self.core = build_memory_stack(network, host, seed=seed)
        self.core.add_router(self)
        self.host = host
        self.user = user
        self.address = SIPAddress("udp", host, 5060)
        self.contact = f"<sip:{user}@{host}:5060>"
        self.tag = self.core.new_tag()
        self.requests = []
        self.acks = []
        self.cancels = []
        self.script: dict[str, list[int]] = {}
        self.cseq = 1

    # --- receiving ---------------------------------------------------------------------------

    def accept_request(self, event):
        self.requests.append(event)
        if event.request.method == "INVITE":
            self.core.own_server(event.transaction_key, self)
        for code in self.script.get(event.request.method, ()):
            self.answer(event, code)
        return True

    def accept_ack(self, event):
        self.acks.append(event.request)
        return True

    def cancel_received(self, event):
        self.cancels.append(event.request)
        for invite in self.requests:
            if invite.transaction_key == event.invite_key:
                self.answer(invite, 487)

    def answer(self, event, code: int) -> None:
        request = event.request
        response = request.create_response(
            code, to_tag=self.tag, record_route=request.method == "INVITE" and 100 < code < 300)
        if request.method == "INVITE" and 200 <= code < 300:
            response.headers.add("Contact", self.contact)
        self.core.respond(event.transaction_key, response)

    def last(self, method: str):
        return [event for event in self.requests if event.request.method == method][-1]

    # --- sending -----------------------------------------------------------------------------

    def build(self, method: str, uri: str, to: str, call_id: str, cseq: int | None = None,
              routes=(), from_value: str | None = None) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        headers = Headers([
            ("Via", f"SIP/2.0/UDP {self.host}:5060;branch={self.stack.generate_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", from_value or f"<sip:{self.user}@{DOMAIN}>;tag={self.tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
        ])
        for route in routes:
            headers.add("Route", route)
        if method in ("INVITE", "REGISTER", "SUBSCRIBE"):
            headers.add("Contact", self.contact)
        return Request(method, SIPURI.parse(uri), headers)

    def send(self, request: Request, destination: SIPAddress = PROXY) -> Exchange:
        exchange = Exchange(request)
        exchange.key = self.core.send_request(request, destination, exchange)
        return exchange

    def register(self, expires: int = 3600) -> Exchange:
        request = self.build("REGISTER", f"sip:{DOMAIN}", f"<sip:{self.user}@{DOMAIN}>",
                             f"reg-{self.host}")
        request.headers.add("Expires", str(expires))
        return self.send(request)

    def invite(self, callee: str = "bob", call_id: str = "call-1") -> Exchange:
        return self.send(self.build("INVITE", f"sip:{callee}@{DOMAIN}",
                                    f"<sip:{callee}@{DOMAIN}>", call_id))

    def ack(self, invite: Exchange, response) -> Request:
        """
        RFC 3261 13.2.2.4: the ACK for a 2xx, along the route set of the response.
        """
        request = self._in_dialog("ACK", invite.request, response, invite.request.cseq.number)
        self.stack.send_message(request, self._first_hop(request))
        return request

    def bye(self, invite: Exchange, response) -> Exchange:
        request = self._in_dialog("BYE", invite.request, response)
        return self.send(request, self._first_hop(request))

    def _in_dialog(self, method, invite: Request, response, cseq=None) -> Request:
        routes = list(reversed(response.headers.get_all("Record-Route")))
        target = str(response.contacts[0].uri)
        return self.build(method, target, response.headers.get("To"), invite.call_id, cseq,
                          routes)

    def bye_as_callee(self, event) -> Exchange:
        """
        RFC 3261 12.1.1 and 12.2.1.1: the UAS ends the call along the INVITE's Record-Route.
        """
        invite = event.request
        routes = invite.headers.get_all("Record-Route")
        from_value = str(invite.to.with_tag(self.tag))
        request = self.build("BYE", str(invite.contacts[0].uri), invite.headers.get("From"),
                             invite.call_id, routes=routes, from_value=from_value)
        return self.send(request, self._first_hop(request))

    def _first_hop(self, request: Request) -> SIPAddress:
        routes = request.routes
        uri = routes[0].uri if routes else request.uri
        return SIPAddress("udp", uri.host, uri.port or 5060)


class ProxyTestCase(SynchronousTestCase):
    """
    A proxy with registrar at 10.0.0.1 for example.test, alice and bob registered.
    """

    timers = TimerValues()

    def setUp(self):
        self.network = MemoryNetwork()
        self.clock = self.network.clock
        self.stack, self.core = build_memory_stack(self.network, "10.0.0.1", seed=1,
                                                   timers=self.timers)
        self.location = LocationService()
        self.registrar = Registrar(self.core, self.location, self.clock, [DOMAIN],
                                   min_expires=10)
        self.proxy = Proxy(self.core, self.location, self.clock, self.registrar.serves,
                           users={"carol"}, timers=self.timers)
        self.core.add_router(self.registrar)
        self.core.add_router(self.proxy)
        self.alice = Phone(self.network, "10.0.0.2", "alice", 2)
        self.bob = Phone(self.network, "10.0.0.3", "bob", 3)
        for phone in (self.alice, self.bob):
            exchange = phone.register()
            self.network.run()
            self.assertEqual(exchange.codes, [200])

    def sent(self, source: SIPAddress, destination: SIPAddress):
        """
        The messages that went from C{source} to C{destination}, parsed.
        """
        return [parse_message(data) for src, dst, data in self.network.delivered
                if src == source and dst == destination]

    def requests_sent(self, source, destination, method):
        return [message for message in self.sent(source, destination)
                if isinstance(message, Request) and message.method == method]


class ProxyInterfaceTests(ProxyTestCase):
    """
    The proxy and its branches provide the interfaces the UA core relies on.
    """

    def test_interfaces(self):
        """
        Proxy is an IRequestRouter and ProxyBranch an IClientTransactionOwner.
        """
        self.assertTrue(verifyObject(IRequestRouter, self.proxy))
        request = self.alice.build("INVITE", "sip:x@10.0.0.9", "<sip:x@10.0.0.9>", "c")
        event = SimpleNamespace(request=request, transaction_key=None)
        branch = ProxyBranch(ResponseContext(self.proxy, event), request, PROXY)
        self.assertTrue(verifyObject(IClientTransactionOwner, branch))
        self.assertTrue(verifyObject(IRequestRouter, self.alice))
        self.assertTrue(verifyObject(IClientTransactionOwner, Exchange(request)))


class ForwardingTests(ProxyTestCase):
    """
    RFC 3261 16.5-16.7: a request for a registered user reaches its contact and the answers
    come back.
    """

    def test_invite_forwarded_with_record_route_and_via(self):
        """
        16.6: the INVITE goes to the binding with Request-URI = contact, our Via on top,
        Record-Route with lr, and Max-Forwards decremented.
        """
        self.alice.invite()
        self.network.run()
        self.assertEqual(len(self.bob.requests), 1)
        invite = self.bob.requests[0].request
        self.assertEqual(str(invite.uri), "sip:bob@10.0.0.3:5060")
        vias = invite.vias
        self.assertEqual([(via.host, via.port) for via in vias],
                         [("10.0.0.1", 5060), ("10.0.0.2", 5060)])
        self.assertTrue(vias[0].branch.startswith("z9hG4bK"))
        self.assertEqual((vias[1].received, vias[1].rport), ("10.0.0.2", 5060))
        self.assertEqual(invite.headers.get_all("Record-Route"), [RECORD_ROUTE])
        self.assertEqual(invite.max_forwards, 69)
        self.assertEqual(self.bob.requests[0].source, PROXY)
        self.assertEqual(self.proxy.forwarded, 1)

    def test_preloaded_route_to_us(self):
        """
        16.4: an initial request with our URI as pre-loaded Route (an outbound proxy setting)
        loses that Route and is proxied to the user's binding like any other.
        """
        request = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "pre",
                                   routes=["<sip:10.0.0.1;lr>"])
        self.alice.send(request)
        self.network.run()
        invite = self.bob.last("INVITE").request
        self.assertEqual(str(invite.uri), "sip:bob@10.0.0.3:5060")
        self.assertEqual(invite.headers.get_all("Route"), [])
        self.assertEqual(invite.headers.get_all("Record-Route"), [RECORD_ROUTE])

    def test_max_forwards_added_when_absent(self):
        """
        16.6 step 3: a request without Max-Forwards leaves with Max-Forwards: 70.
        """
        request = self.alice.build("MESSAGE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "m1")
        request.headers.remove("Max-Forwards")
        self.alice.send(request)
        self.network.run()
        self.assertEqual(self.bob.last("MESSAGE").request.max_forwards, 70)

    def test_provisional_and_final_relayed(self):
        """
        16.7: 180 and 200 reach the caller without our Via, with the Record-Route; the proxy's
        own 100 Trying stops the caller's retransmissions and the callee's 100 is not relayed.
        """
        self.bob.script["INVITE"] = [180, 200]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 200])
        final = invite.final
        self.assertEqual([(via.host, via.port) for via in final.vias], [("10.0.0.2", 5060)])
        self.assertEqual(final.headers.get_all("Record-Route"), [RECORD_ROUTE])
        self.assertEqual(str(final.contacts[0].uri), "sip:bob@10.0.0.3:5060")
        trying = [m for m in self.sent(PROXY, self.alice.address)
                  if not isinstance(m, Request) and m.status_code == 100]
        self.assertEqual(len(trying), 1)
        self.assertEqual(self.proxy.relayed_responses, 2)

    def test_ack_and_bye_routed_through_proxy(self):
        """
        16.4, 16.11: the ACK for the 2xx and the BYE carry our Route, which we remove before
        forwarding; the ACK is forwarded statelessly, the BYE statefully, both ways.
        """
        self.bob.script["INVITE"] = [200]
        self.bob.script["BYE"] = [200]
        invite = self.alice.invite()
        self.network.run()
        ack = self.alice.ack(invite, invite.final)
        self.assertEqual(ack.headers.get_all("Route"), [RECORD_ROUTE])
        self.network.run()
        self.assertEqual(len(self.bob.acks), 1)
        received = self.bob.acks[0]
        self.assertEqual(received.headers.get_all("Route"), [])
        self.assertEqual([via.host for via in received.vias], ["10.0.0.1", "10.0.0.2"])
        self.assertEqual(received.max_forwards, 69)
        self.assertEqual(len(self.requests_sent(self.alice.address, self.bob.address, "ACK")), 0)

        bye = self.alice.bye(invite, invite.final)
        self.network.run()
        self.assertEqual(bye.codes, [200])
        self.assertEqual(self.bob.last("BYE").source, PROXY)
        self.assertEqual(self.bob.last("BYE").request.headers.get_all("Route"), [])

    def test_bye_from_callee_routed_to_caller(self):
        """
        12.2.1.1: the callee's BYE follows the INVITE's Record-Route through us to the caller.
        """
        self.bob.script["INVITE"] = [200]
        self.alice.script["BYE"] = [200]
        invite = self.alice.invite()
        self.network.run()
        self.alice.ack(invite, invite.final)
        self.network.run()
        bye = self.bob.bye_as_callee(self.bob.last("INVITE"))
        self.network.run()
        self.assertEqual(bye.codes, [200])
        self.assertEqual(self.alice.last("BYE").source, PROXY)
        self.assertEqual(str(self.alice.last("BYE").request.uri), "sip:alice@10.0.0.2:5060")

    def test_retransmitted_ack_keeps_its_branch(self):
        """
        16.11: a stateless forward of the same ACK twice uses the same branch.
        """
        self.bob.script["INVITE"] = [200]
        invite = self.alice.invite()
        self.network.run()
        ack = self.alice.ack(invite, invite.final)
        self.network.run()
        self.alice.stack.send_message(ack, PROXY)
        self.network.run()
        self.assertEqual(len(self.bob.acks), 2)
        self.assertEqual(self.bob.acks[0].top_via.branch, self.bob.acks[1].top_via.branch)

    def test_busy_relayed(self):
        """
        16.7: a lone 486 is the best response and reaches the caller; we ACK it downstream.
        """
        self.bob.script["INVITE"] = [486]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [100, 486])
        acks = self.requests_sent(PROXY, self.bob.address, "ACK")
        self.assertEqual(len(acks), 1)
        self.assertEqual(len(self.proxy), 0)

    def test_non_invite_forwarded(self):
        """
        A MESSAGE is forwarded statefully without Record-Route and its 200 relayed.
        """
        self.bob.script["MESSAGE"] = [200]
        exchange = self.alice.send(self.alice.build("MESSAGE", f"sip:bob@{DOMAIN}",
                                                    f"<sip:bob@{DOMAIN}>", "m2"))
        self.network.run()
        self.assertEqual(exchange.codes, [200])
        self.assertEqual(self.bob.last("MESSAGE").request.headers.get_all("Record-Route"), [])
        self.assertEqual(len(self.proxy), 0)

    def test_lost_messages_recovered(self):
        """
        17.1.1.2 / 17.2.1 on both sides of the proxy: alice's first INVITE, our first copy to
        bob and bob's first 486 are lost; Timer A (alice), Timer A (proxy) and Timer G (bob)
        retransmit each at T1 and the call still fails cleanly with 486.
        """
        dropped = []
        lose = {(self.alice.address, b"INVITE sip:bob@example.test SIP/2.0"),
                (PROXY, b"INVITE sip:bob@10.0.0.3:5060 SIP/2.0"),
                (self.bob.address, b"SIP/2.0 486 Busy Here")}

        def lose_first(data, source, destination):
            key = (source, data.split(b"\r\n", 1)[0])
            if key in lose:
                lose.discard(key)
                dropped.append(key)
                return True
            return False

        self.network.drop = lose_first
        self.bob.script["INVITE"] = [486]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [])
        self.clock.advance(0.5)  # alice's Timer A: the proxy gets it and forwards (lost)
        self.network.run()
        self.assertEqual(invite.codes, [100])
        self.assertEqual(self.bob.requests, [])
        self.clock.advance(0.5)  # the proxy's Timer A: bob gets it and answers (lost)
        self.network.run()
        self.assertEqual(len(self.bob.requests), 1)
        self.assertEqual(invite.codes, [100])
        self.clock.advance(0.5)  # bob's Timer G: the 486 again, relayed
        self.network.run()
        self.assertEqual(invite.codes, [100, 486])
        self.assertEqual(len(dropped), 3)
        self.assertEqual(len(self.requests_sent(PROXY, self.bob.address, "ACK")), 1)
        self.assertEqual(len(self.proxy), 0)

    def test_no_answer_at_all_times_out(self):
        """
        17.1.1.2 / 16.7: a contact that never answers fails its branch at Timer B, as 408.
        """
        self.network.drop = lambda data, source, destination: destination == self.bob.address
        invite = self.alice.invite()
        self.network.run()
        self.clock.pump([0.5] * 63)
        self.assertEqual(invite.codes, [100])
        self.clock.pump([0.5] * 2)
        self.assertEqual(invite.codes, [100, 408])
        self.assertEqual(len(self.proxy), 0)


class CancelTests(ProxyTestCase):
    """
    RFC 3261 16.10: CANCEL from upstream ends the pending branches.
    """

    def test_cancel_before_answer(self):
        """
        The caller's CANCEL is answered 200, a CANCEL goes to the ringing callee, and the
        callee's 487 answers the INVITE.
        """
        self.bob.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [100, 180])
        self.alice.stack.cancel(invite.key)
        self.network.run()
        cancel_answers = [m.status_code for m in self.sent(PROXY, self.alice.address)
                          if not isinstance(m, Request) and m.cseq.method == "CANCEL"]
        self.assertEqual(cancel_answers, [200])
        self.assertEqual([cancel.method for cancel in self.bob.cancels], ["CANCEL"])
        self.assertEqual(self.bob.cancels[0].top_via.host, "10.0.0.1")
        self.assertEqual(invite.codes, [100, 180, 487])
        self.assertEqual(len(self.proxy), 0)

    def test_487_built_from_the_cancel(self):
        """
        A callee whose 487 copies the CANCEL's single Via (ours) still gets its 487 to the
        caller, with the INVITE's Vias.
        """
        def sloppy_cancel(event):
            response = event.request.create_response(487, to_tag=self.bob.tag)
            response.headers.set("CSeq", f"{event.request.cseq.number} INVITE")
            self.bob.core.respond(event.invite_key, response)

        self.bob.script["INVITE"] = [180]
        self.bob.cancel_received = sloppy_cancel
        invite = self.alice.invite()
        self.network.run()
        self.alice.stack.cancel(invite.key)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 487])
        self.assertEqual([via.host for via in invite.final.vias], ["10.0.0.2"])
        self.assertEqual(len(self.proxy), 0)

    def test_cancel_before_any_provisional(self):
        """
        A branch that has not answered yet (its 100 Trying was lost) is given up at once: the
        caller gets 487, and the CANCEL follows when the callee's 100 gets through
        (RFC 3261 9.1).
        """
        self.network.drop = lambda data, source, destination: source == self.bob.address
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(len(self.bob.requests), 1)
        self.alice.stack.cancel(invite.key)
        self.network.run()
        self.assertEqual(invite.codes, [100, 487])
        self.assertEqual(self.bob.cancels, [])
        self.network.drop = lambda data, source, destination: False
        self.clock.advance(0.5)  # Timer A: the INVITE again, bob's 100 again, now delivered
        self.network.run()
        self.assertEqual(len(self.bob.cancels), 1)
        self.assertEqual(invite.codes, [100, 487])

    def test_cancel_without_callee_answer_times_out_as_487(self):
        """
        A ringing callee that never answers our CANCEL is given 64*T1, then the caller gets 487.
        """
        self.bob.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.bob.cancel_received = lambda event: None  # a callee that ignores CANCEL
        self.alice.stack.cancel(invite.key)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180])
        self.clock.advance(self.timers.timer_b)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 487])


class ForkingTests(ProxyTestCase):
    """
    RFC 3261 16.6-16.7: parallel forking to every binding of an AOR.
    """

    def setUp(self):
        super().setUp()
        self.bob2 = Phone(self.network, "10.0.0.4", "bob", 4)
        exchange = self.bob2.register()
        self.network.run()
        self.assertEqual(exchange.codes, [200])

    def test_forked_to_every_contact(self):
        """
        16.6: both contacts of bob get the INVITE, each with its own branch.
        """
        self.alice.invite()
        self.network.run()
        first = self.bob.requests[0].request
        second = self.bob2.requests[0].request
        self.assertEqual(str(second.uri), "sip:bob@10.0.0.4:5060")
        self.assertNotEqual(first.top_via.branch, second.top_via.branch)
        self.assertEqual(self.proxy.forwarded, 2)

    def test_first_200_wins_other_branch_cancelled(self):
        """
        16.7 step 10: the first 2xx is relayed and the other ringing branch is CANCELled; its
        487 does not reach the caller.
        """
        self.bob.script["INVITE"] = [180]
        self.bob2.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 180])
        self.bob2.answer(self.bob2.last("INVITE"), 200)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 180, 200])
        self.assertEqual(str(invite.final.contacts[0].uri), "sip:bob@10.0.0.4:5060")
        self.assertEqual(len(self.bob.cancels), 1)
        self.assertEqual(self.bob2.cancels, [])
        self.assertEqual(len(self.requests_sent(PROXY, self.bob.address, "ACK")), 1)
        self.assertEqual(len(self.proxy), 0)

    def test_best_response_lowest_class(self):
        """
        16.7 step 6: with 503 and 486 the caller gets the 4xx.
        """
        self.bob.script["INVITE"] = [503]
        self.bob2.script["INVITE"] = [486]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [100, 486])

    def test_503_becomes_500(self):
        """
        16.7 step 6: when the only answers are 503, the caller gets 500 instead.
        """
        self.bob.script["INVITE"] = [503]
        self.bob2.script["INVITE"] = [503]
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.codes, [100, 500])

    def test_6xx_stops_forking(self):
        """
        16.7 step 5: a 603 cancels the other branch and is the response the caller gets.
        """
        self.bob2.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.bob.answer(self.bob.last("INVITE"), 603)
        self.network.run()
        self.assertEqual(len(self.bob2.cancels), 1)
        self.assertEqual(invite.codes, [100, 180, 603])

    def test_challenges_merged(self):
        """
        16.7 step 7: a 401 from one branch and a 407 from the other reach the caller as one
        response carrying both challenges.
        """
        def challenge(phone, code, header, realm):
            def answer(event):
                phone.requests.append(event)
                response = event.request.create_response(code, to_tag=phone.tag)
                response.headers.add(header, f'Digest realm="{realm}", nonce="n"')
                phone.core.respond(event.transaction_key, response)
                return True
            phone.accept_request = answer

        challenge(self.bob, 401, "WWW-Authenticate", "one")
        challenge(self.bob2, 407, "Proxy-Authenticate", "two")
        invite = self.alice.invite()
        self.network.run()
        final = invite.final
        self.assertEqual(final.status_code, 401)
        self.assertEqual(len(final.headers.get_all("WWW-Authenticate")), 1)
        self.assertEqual(len(final.headers.get_all("Proxy-Authenticate")), 1)


class TimerCTests(ProxyTestCase):
    """
    RFC 3261 16.8: Timer C ends INVITE branches that ring for ever.
    """

    timers = TimerValues(tc=20.0)

    def test_timer_c_cancels_and_answers_408(self):
        """
        A branch ringing for Timer C is CANCELled and the caller gets 408.
        """
        self.bob.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.clock.advance(19)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180])
        self.clock.advance(1)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 408])
        self.assertEqual(len(self.bob.cancels), 1)

    def test_provisional_resets_timer_c(self):
        """
        16.7 step 2: a new provisional response restarts Timer C.
        """
        self.bob.script["INVITE"] = [180]
        invite = self.alice.invite()
        self.network.run()
        self.clock.advance(15)
        self.bob.answer(self.bob.last("INVITE"), 183)
        self.network.run()
        self.clock.advance(15)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 183])
        self.clock.advance(5)
        self.network.run()
        self.assertEqual(invite.codes, [100, 180, 183, 408])


class RefusalTests(ProxyTestCase):
    """
    RFC 3261 16.3 checks, unknown targets, and no open relay.
    """

    def test_max_forwards_zero(self):
        """
        16.3 step 3: Max-Forwards 0 gets 483 and nothing is forwarded.
        """
        request = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "c")
        request.headers.set("Max-Forwards", "0")
        exchange = self.alice.send(request)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 483)
        self.assertEqual(self.bob.requests, [])
        self.assertEqual(self.proxy.refused, 1)

    def test_foreign_domain_refused_and_logged_once(self):
        """
        Not an open relay: two requests for another domain get 403, logged once.
        """
        with capturedLogs() as events:
            for call_id in ("f1", "f2"):
                exchange = self.alice.send(self.alice.build(
                    "INVITE", "sip:someone@elsewhere.example", "<sip:someone@elsewhere.example>",
                    call_id))
                self.network.run()
                self.assertEqual(exchange.final.status_code, 403)
                self.assertEqual(exchange.final.reason, "Relaying denied")
        logged = [event for event in events if "elsewhere.example" in str(event.get("domain"))]
        self.assertEqual(len(logged), 1)
        self.assertEqual(logged[0]["log_level"], LogLevel.info)
        self.assertEqual(self.proxy.relay_denied, 2)

    def test_foreign_ip_refused(self):
        """
        A request addressed to another host's IP, without our Route, is refused too.
        """
        exchange = self.alice.send(self.alice.build("MESSAGE", "sip:bob@10.0.0.3:5060",
                                                    "<sip:bob@10.0.0.3>", "f3"))
        self.network.run()
        self.assertEqual(exchange.final.status_code, 403)
        self.assertEqual(self.bob.requests, [])

    def test_unknown_user(self):
        """
        16.5: an AOR that never registered gets 404.
        """
        exchange = self.alice.invite("nobody")
        self.network.run()
        self.assertEqual(exchange.codes, [100, 404])

    def test_registered_user_away(self):
        """
        An AOR whose bindings expired gets 480 Temporarily Unavailable.
        """
        exchange = self.bob.register(expires=20)
        self.network.run()
        self.assertEqual(exchange.codes, [200])
        self.clock.advance(21)
        invite = self.alice.invite()
        self.network.run()
        self.assertEqual(invite.final.status_code, 480)

    def test_configured_user_never_registered(self):
        """
        A configured user without a binding is away (480), not unknown.
        """
        invite = self.alice.invite("carol")
        self.network.run()
        self.assertEqual(invite.final.status_code, 480)

    def test_proxy_require(self):
        """
        16.3 step 5: an unsupported Proxy-Require gets 420 with Unsupported.
        """
        request = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "c")
        request.headers.add("Proxy-Require", "foo")
        exchange = self.alice.send(request)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 420)
        self.assertEqual(exchange.final.headers.get("Unsupported"), "foo")

    def test_loop_detected(self):
        """
        16.3 step 4: the same request coming back to us unchanged is answered 482.
        """
        def bounce(event):
            bob.requests.append(event)
            request = event.request
            request.headers.prepend(
                "Via", f"SIP/2.0/UDP 10.0.0.3:5060;branch={bob.stack.generate_branch()}")
            bob.stack.send_message(request, PROXY)
            return True

        bob = self.bob
        # bob's contact is the AOR itself, so the bounced request is identical.
        request = bob.build("REGISTER", f"sip:{DOMAIN}", f"<sip:bob@{DOMAIN}>", "reg-10.0.0.3")
        request.headers.set("Contact", f"<sip:bob@{DOMAIN}>")
        request.headers.set("CSeq", "100 REGISTER")
        bob.send(request)
        self.network.run()
        bob.accept_request = bounce
        self.location.remove(f"sip:bob@{DOMAIN}", "sip:bob@10.0.0.3:5060")
        self.alice.send(self.alice.build("MESSAGE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>",
                                         "loop"))
        self.network.run()
        answers = [m.status_code for m in self.sent(PROXY, self.bob.address)
                   if not isinstance(m, Request) and m.cseq.method == "MESSAGE"]
        self.assertEqual(answers, [482])

    def test_in_dialog_without_our_route(self):
        """
        A request with a To tag that is neither ours nor routed through us gets 481 from the
        UA core: the proxy does not take it.
        """
        request = self.alice.build("BYE", "sip:bob@10.0.0.3:5060", "<sip:bob@10.0.0.3>;tag=x",
                                   "nodialog")
        exchange = self.alice.send(request)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 481)
        self.assertEqual(self.proxy.refused, 0)

    def test_unresolvable_next_hop(self):
        """
        A routed request whose next hop is a host name (we resolve no DNS) gets 503.
        """
        request = self.alice.build("BYE", "sip:bob@phone.example", "<sip:bob@x>;tag=x",
                                   "dns", routes=[RECORD_ROUTE])
        exchange = self.alice.send(request)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 503)

    def test_options_to_the_domain_left_to_the_core(self):
        """
        An OPTIONS for the domain itself (no user) is answered by the UA core, not refused.
        """
        exchange = self.alice.send(self.alice.build("OPTIONS", f"sip:{DOMAIN}",
                                                    f"<sip:{DOMAIN}>", "ping"))
        self.network.run()
        self.assertEqual(exchange.final.status_code, 200)
        self.assertIsNotNone(exchange.final.headers.get("Allow"))

    def test_binding_on_this_stack_left_to_next_router(self):
        """
        A user registered with a contact on this very stack is served by the next router.
        """
        taken = []

        @implementer(IRequestRouter)
        class LocalUsers:
            def accept_request(self, event):
                taken.append(event)
                self_core.respond(event.transaction_key,
                                  event.request.create_response(200, to_tag="t"))
                return True

        self_core = self.core
        self.core.add_router(LocalUsers())
        request = self.alice.build("REGISTER", f"sip:{DOMAIN}", f"<sip:dave@{DOMAIN}>", "d")
        request.headers.set("Contact", "<sip:dave@10.0.0.1:5060>")
        self.alice.send(request)
        self.network.run()
        exchange = self.alice.send(self.alice.build("MESSAGE", f"sip:dave@{DOMAIN}",
                                                    f"<sip:dave@{DOMAIN}>", "d2"))
        self.network.run()
        self.assertEqual(exchange.final.status_code, 200)
        self.assertEqual(len(taken), 1)


class DoubleRecordRouteTests(SynchronousTestCase):
    """
    RFC 5658: a request entering over UDP and leaving over TCP is record-routed twice.
    """

    def test_two_record_routes_and_both_removed(self):
        """
        The callee sees our TCP then our UDP Record-Route; the caller's ACK, carrying both as
        Route, reaches the callee (found through its binding) with neither.
        """
        network = MemoryNetwork()
        stack, core = build_memory_stack(network, "10.0.0.1", seed=1)
        network.attach(stack, "10.0.0.1", 5060, "tcp")
        location = LocationService()
        registrar = Registrar(core, location, network.clock, [DOMAIN])
        core.add_router(registrar)
        core.add_router(Proxy(core, location, network.clock, registrar.serves))
        alice = Phone(network, "10.0.0.2", "alice", 2)
        bob = Phone(network, "10.0.0.3", "bob", 3)
        network.attach(bob.stack, "10.0.0.3", 5060, "tcp")
        bob.contact = "<sip:bob@10.0.0.3:5060;transport=tcp>"
        register = bob.build("REGISTER", f"sip:{DOMAIN}", f"<sip:bob@{DOMAIN}>", "regtcp")
        register.headers.set("Via", f"SIP/2.0/TCP 10.0.0.3:5060;branch="
                             f"{bob.stack.generate_branch()}")
        self.assertEqual(bob.send(register, SIPAddress("tcp", "10.0.0.1", 5060)).codes, [])
        network.run()
        bob.script["INVITE"] = [200]
        invite = alice.invite()
        network.run()
        received = bob.last("INVITE")
        self.assertEqual(received.source, SIPAddress("tcp", "10.0.0.1", 5060))
        self.assertEqual(received.request.headers.get_all("Record-Route"), [
            "<sip:10.0.0.1:5060;transport=tcp;lr>", RECORD_ROUTE])
        self.assertEqual(received.request.top_via.transport, "TCP")
        self.assertEqual(invite.final.status_code, 200)
        alice.ack(invite, invite.final)
        network.run()
        self.assertEqual(len(bob.acks), 1)
        self.assertEqual(bob.acks[0].headers.get_all("Route"), [])


class AssertedIdentityTests(ProxyTestCase):
    """
    RFC 3325 5: an asserted identity is forwarded only when it came from the trust domain.
    """

    def setUp(self):
        super().setUp()
        self.proxy.trusted = {"10.0.0.3"}  # bob's host, say a PBX; alice is a stranger

    def call(self, caller, callee, identity):
        request = caller.build("INVITE", f"sip:{callee.user}@{DOMAIN}",
                               f"<sip:{callee.user}@{DOMAIN}>", f"pai-{caller.user}")
        request.headers.add("P-Asserted-Identity", identity)
        request.headers.add("Remote-Party-ID", f"{identity};party=calling")
        caller.send(request)
        self.network.run()
        return callee.last("INVITE").request

    def test_stranger_cannot_name_the_caller(self):
        """
        alice (untrusted) writes P-Asserted-Identity and Remote-Party-ID "the bank": bob's
        phone gets neither, and the From she wrote is all it sees.
        """
        invite = self.call(self.alice, self.bob, '"Bank" <sip:bank@example.test>')
        self.assertEqual(invite.headers.get_all("P-Asserted-Identity"), [])
        self.assertEqual(invite.headers.get_all("Remote-Party-ID"), [])
        self.assertIn("alice", invite.headers.get("From"))

    def test_trusted_peer_keeps_its_assertion(self):
        """
        bob's host is trusted: what it asserts reaches alice unchanged.
        """
        invite = self.call(self.bob, self.alice, "<sip:+15551234@example.test>")
        self.assertEqual(invite.headers.get_all("P-Asserted-Identity"),
                         ["<sip:+15551234@example.test>"])
        self.assertEqual(len(invite.headers.get_all("Remote-Party-ID")), 1)
