"""
Stream injection end to end: a WCS client (aiortc) calls baresip through the real server, a
second client publishes a stream, and REST /call/inject_stream/startup makes baresip hear that
stream instead of the caller; /terminate gives it the caller back.  Media is checked by the tone
in the last second of baresip's received-audio recording after each switch.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_injection
"""

from __future__ import annotations

from twisted.internet import reactor

from tests.integration import audio
from tests.integration.test_streams import StreamTestCase


class InjectionTests(StreamTestCase):
    """
    /call/inject_stream/startup and /terminate on a browser call to baresip (spec 11).
    """

    timeout = 60

    async def heard_next(self, bob, seconds=2.0):
        """
        What bob receives in the last second once his recording has grown by C{seconds}:
        (dominant frequency, share of the 440 + 700 Hz power that is at 440 Hz).
        """
        path = bob.received_wav()
        grown = audio.wav_duration(path) + seconds
        path = await bob.wait_for_received_audio(grown, timeout=10)
        end = audio.wav_duration(path)
        samples, rate = audio.read_wav(path)
        window = samples[-rate:]
        at_440 = audio.goertzel_power(window, 440, rate)
        at_700 = audio.goertzel_power(window, 700, rate)
        return (audio.dominant_frequency(path, start=end - 1.0, seconds=1.0),
                at_440 / (at_440 + at_700 + 1e-12))

    def sent_by_sip_leg(self, call_id):
        """
        (RTP packets the call's SIP leg has sent to baresip, now).
        """
        return (self.server.calls.get(call_id).rtp.audio_rtp.packets_sent, reactor.seconds())

    def assertOneStreamRate(self, before, after):
        """
        Between C{before} and C{after} (L{sent_by_sip_leg}) the SIP leg sent one 20 ms
        stream (about 50 packets a second), not the caller's and the injected interleaved
        (about 100): a receiver may hide the interleaving, the packet count does not.  The
        lower bound only shows the stream flows: on a loaded machine the sources (aiortc, the
        publisher) send late and the rate drops, but two sources never fall to one's rate.
        """
        rate = (after[0] - before[0]) / (after[1] - before[1])
        self.assertTrue(15 < rate < 70, f"{rate:.1f} packets/s to the SIP peer")

    def assertHeard(self, heard, expected):
        """
        Only C{expected} (440 or 700 Hz) is heard: it dominates, and the other tone has under
        5% of their power (the two sources are not interleaved).
        """
        measured, share_440 = heard
        self.assertLess(abs(measured - expected), 10, f"{measured} Hz, not {expected}")
        if expected == 440:
            self.assertGreater(share_440, 0.95)
        else:
            self.assertLess(share_440, 0.05)

    async def test_injected_stream_replaces_the_caller_and_back(self):
        """
        bob hears alice's 440 Hz, then the injected 700 Hz publish (Opus transcoded to his
        PCMU), then 440 Hz again after terminate; the call stays up throughout.
        """
        bob = await self.baresip("bob", 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["PCMU"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        await bob.wait_event("CALL_ESTABLISHED")
        await bob.wait_for_received_audio(1.5)
        self.assertHeard(await self.heard_next(bob, 0.5), 440)

        publisher = await self.connect_player("publisher")
        published = await publisher.publish_stream("inj", tone_hz=700)
        await publisher.wait_stream_status(published, "PUBLISHING", timeout=10)
        code, _ = await self.rest("/call/inject_stream/startup",
                                  {"callId": call_id, "streamName": "inj"})
        self.assertEqual(code, 200)
        before = self.sent_by_sip_leg(call_id)
        self.assertHeard(await self.heard_next(bob), 700)
        self.assertOneStreamRate(before, self.sent_by_sip_leg(call_id))
        self.assertEqual(self.server.stream_table.injected_stream(call_id), "inj")

        code, _ = await self.rest("/call/inject_stream/terminate", {"callId": call_id})
        self.assertEqual(code, 200)
        self.assertHeard(await self.heard_next(bob), 440)
        self.assertEqual((await self.rest("/call/inject_stream/terminate",
                                          {"callId": call_id}))[0], 404)
        self.assertEqual((await self.rest("/call/inject_stream/startup",
                                          {"callId": call_id, "streamName": "nope"}))[0], 404)
        code, calls = await self.rest("/call/find", {"callId": call_id})
        self.assertEqual((code, calls[0]["status"]), (200, "ESTABLISHED"))
        await alice.hangup(call_id)
        self.assertEqual(alice.violations + publisher.violations, [])
