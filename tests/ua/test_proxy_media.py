"""
Tests for L{wcs_twisted.ua.proxy_media}: the proxy between phones of different address
families, in memory (the proxy and phones of L{tests.ua.test_proxy}).  alice's offer says
c=IN IP6 (an IPv6 phone), bob is registered on IPv4.  The real media anchor, with real phones
and tones, is exercised by tests.integration.test_sip_ipv6; here a recording anchor stands in
for it to check what the proxy rewrites, and when it lets go.
"""

from __future__ import annotations

from twisted.logger import capturedLogs

from tests.ua.test_proxy import DOMAIN, ProxyTestCase
from wcs_twisted.errors import MediaError
from wcs_twisted.sip.address import SIPAddress
from wcs_twisted.addresses import sdp_address
from wcs_twisted.ua.proxy_media import INCOMPATIBLE_ADDRESSES

OFFER6 = b"v=0\r\no=- 1 1 IN IP6 2001:db8::2\r\ns=-\r\nc=IN IP6 2001:db8::2\r\nt=0 0\r\n" \
         b"m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"
OFFER4 = OFFER6.replace(b"IP6 2001:db8::2", b"IP4 10.0.0.2")
ANSWER4 = OFFER6.replace(b"IP6 2001:db8::2", b"IP4 10.0.0.3")


class RecordingMedia:
    """
    Anchored media that names what it rewrote (the real one is L{AnchoredMedia}).
    """

    def __init__(self, peers, fail_offer=False):
        self.peers = peers
        self.calls = []
        self.closed = False
        self.offer_pending = False
        self.on_ended = None
        self._fail_offer = fail_offer

    def offer(self, side, sdp):
        if self._fail_offer:
            raise MediaError("No common codecs")
        self.calls.append(("offer", side, sdp))
        self.offer_pending = True
        return f"offer for side {1 - side}".encode()

    def answer(self, sdp):
        self.calls.append(("answer", sdp))
        self.offer_pending = False
        return b"answer for the offerer"

    def close(self):
        self.closed = True


class RecordingAnchor:
    def __init__(self, fail_offer=False):
        self.opened = []
        self.fail_offer = fail_offer

    def open(self, caller, callee):
        media = RecordingMedia((caller, callee), self.fail_offer)
        self.opened.append(media)
        return media


class ProxyMediaTests(ProxyTestCase):
    """
    An INVITE whose media family differs from its target's.
    """

    def invite(self, body: bytes, call_id: str = "x-1"):
        request = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", call_id)
        request.headers.add("Content-Type", "application/sdp")
        request.body = body
        return self.alice.send(request)

    def bob_answers(self, code: int, body: bytes = b"") -> None:
        event = self.bob.last("INVITE")
        response = event.request.create_response(code, to_tag=self.bob.tag,
                                                 record_route=code < 300)
        if code < 300:
            response.headers.add("Contact", self.bob.contact)
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.bob.core.respond(event.transaction_key, response)
        self.network.run()

    def test_sdp_address(self):
        """
        The first c= address, IPv4 or IPv6; None without one.
        """
        self.assertEqual(sdp_address(OFFER6), "2001:db8::2")
        self.assertEqual(sdp_address(OFFER4), "10.0.0.2")
        self.assertIsNone(sdp_address(b""))

    def test_refused_without_anchor(self):
        """
        No anchor configured: the IPv4 phone is not rung with an IPv6 offer it cannot use;
        the caller gets 488 with Warning 301, and a log line says why.
        """
        with capturedLogs() as events:
            exchange = self.invite(OFFER6)
            self.network.run()
        self.assertEqual(exchange.final.status_code, 488)
        self.assertIn(f'301 10.0.0.1 "{INCOMPATIBLE_ADDRESSES}"',
                      exchange.final.headers.get("Warning"))
        self.assertEqual(self.bob.requests, [])
        [line] = [event for event in events if "not forwarded" in event["log_format"]]
        self.assertIn("no media anchor", line["why"])
        self.assertEqual(self.proxy.media.refused, 1)

    def test_same_family_untouched(self):
        """
        An IPv4 offer to an IPv4 phone goes as it came, and no anchor is opened.
        """
        self.proxy.media.anchor = anchor = RecordingAnchor()
        self.invite(OFFER4)
        self.network.run()
        self.assertEqual(self.bob.last("INVITE").request.body, OFFER4)
        self.assertEqual(anchor.opened, [])

    def test_anchored_offer_answer_and_bye(self):
        """
        The anchor opens toward the caller's media address and bob's; bob gets the anchor's
        offer, alice the anchor's answer to it; the BYE releases the anchor.
        """
        self.proxy.media.anchor = anchor = RecordingAnchor()
        self.bob.script["BYE"] = [200]
        exchange = self.invite(OFFER6)
        self.network.run()
        [media] = anchor.opened
        self.assertEqual(media.peers, ("2001:db8::2", "10.0.0.3"))
        self.assertEqual(self.bob.last("INVITE").request.body, b"offer for side 1")
        self.bob_answers(200, ANSWER4)
        self.assertEqual(exchange.final.body, b"answer for the offerer")
        self.assertEqual(media.calls, [("offer", 0, OFFER6), ("answer", ANSWER4)])
        self.alice.ack(exchange, exchange.final)
        self.network.run()
        self.assertFalse(media.closed)
        self.alice.bye(exchange, exchange.final)
        self.network.run()
        self.assertTrue(media.closed)
        self.assertEqual(self.proxy.media._dialogs, {})

    def test_rejected_call_releases_anchor(self):
        """
        bob answers 486: the anchor is closed and nothing of it is kept.
        """
        self.proxy.media.anchor = anchor = RecordingAnchor()
        exchange = self.invite(OFFER6)
        self.network.run()
        self.bob_answers(486)
        self.assertEqual(exchange.final.status_code, 486)
        [media] = anchor.opened
        self.assertTrue(media.closed)
        self.assertEqual(len(self.proxy.media), 0)

    def test_call_refused_by_the_bounds_opens_no_anchor(self):
        """
        A call the proxy's bounds refuse (503, too many requests in progress) opens no
        anchor: no relay ports are held for a call that never left.
        """
        self.proxy.media.anchor = anchor = RecordingAnchor()
        self.proxy.bounds.max_pending = 0
        exchange = self.invite(OFFER6)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 503)
        self.assertEqual(anchor.opened, [])
        self.assertEqual(len(self.proxy.media), 0)

    def test_unanchorable_offer_refused(self):
        """
        An offer the anchor cannot take (nothing we carry) is answered 488 too.
        """
        self.proxy.media.anchor = anchor = RecordingAnchor(fail_offer=True)
        exchange = self.invite(OFFER6)
        self.network.run()
        self.assertEqual(exchange.final.status_code, 488)
        self.assertTrue(anchor.opened[0].closed)
        self.assertEqual(self.bob.requests, [])

    def in_dialog(self, method: str, exchange, body: bytes):
        """
        alice's C{method} in the call of C{exchange}, with C{body}, along its route set.
        """
        request = self.alice._in_dialog(method, exchange.request, exchange.final)
        request.headers.add("Content-Type", "application/sdp")
        request.body = body
        return self.alice.send(request, self.alice._first_hop(request))

    def test_reinvite_rewritten_both_ways(self):
        """
        In the anchored dialog alice's re-INVITE (hold) reaches bob with the anchor's offer,
        and bob's answer reaches her as the anchor's answer.
        """
        self.proxy.media.anchor = anchor = RecordingAnchor()
        exchange = self.invite(OFFER6)
        self.network.run()
        self.bob_answers(200, ANSWER4)
        [media] = anchor.opened
        held = OFFER6.replace(b"sendrecv", b"sendonly")
        reinvite = self.in_dialog("INVITE", exchange, held)
        self.network.run()
        self.assertEqual(len(self.bob.requests), 2)
        self.assertEqual(self.bob.last("INVITE").request.body, b"offer for side 1")
        self.bob_answers(200, ANSWER4.replace(b"sendrecv", b"recvonly"))
        self.assertEqual(reinvite.final.body, b"answer for the offerer")
        self.assertEqual(media.calls[2:], [("offer", 0, held),
                                           ("answer", ANSWER4.replace(b"sendrecv", b"recvonly"))])
        self.assertFalse(media.closed)

    def test_delayed_offer(self):
        """
        An INVITE without SDP from an IPv6 source to an IPv4 phone: the anchor opens toward
        the source; the 2xx's offer is the callee's (rewritten for side 0), the ACK's answer
        the caller's (rewritten for side 1).
        """
        media_of = self.proxy.media
        media_of.anchor = anchor = RecordingAnchor()
        invite = self.alice.build("INVITE", f"sip:bob@{DOMAIN}", f"<sip:bob@{DOMAIN}>", "d-1")
        bob = SIPAddress("udp", "10.0.0.3", 5060)
        targets, why = media_of.prepare(invite, "2001:db8::2", [(invite.uri, bob)],
                                        lambda destination: False)
        self.assertEqual((len(targets), why), (1, None))
        self.assertEqual(anchor.opened[0].peers, ("2001:db8::2", "10.0.0.3"))
        self.assertEqual(media_of.forwarded(invite, bob, "z9hG4bK-1"), b"")
        ok = invite.create_response(200, to_tag="b")
        ok.body = ANSWER4
        media_of.response("z9hG4bK-1", invite, ok)
        self.assertEqual(ok.body, b"offer for side 0")
        ack = self.alice.build("ACK", "sip:bob@10.0.0.3", ok.headers.get("To"), "d-1", 1)
        ack.body = OFFER6
        self.assertEqual(media_of.forwarded(ack, bob, ""), b"answer for the offerer")
        bye = self.alice.build("BYE", "sip:bob@10.0.0.3", ok.headers.get("To"), "d-1")
        media_of.forwarded(bye, bob, "z9hG4bK-2")
        self.assertTrue(anchor.opened[0].closed)
        self.assertEqual(len(media_of), 0)
