"""
REST-originated calls are not silent: /call/startup to baresip, which nothing feeds, sends
silence in the negotiated codec until a stream is injected, and again once the injection
ends, so baresip (rtp_timeout 2 s) keeps the call up; with the filler stopped, the same
baresip hangs up on its RTP timeout, which shows the timeout is real.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_silence
"""

from __future__ import annotations

import asyncio
import os

from twisted.internet import defer

from tests.integration import audio
from tests.integration.peers import Baresip, require_binary
from tests.integration.test_streams import StreamTestCase

#: baresip's rtp_timeout in these tests, in seconds.  baresip also counts RTCP as a sign of
#: life (its rtcp_handler updates ts_last), and our legs report every 2.5-7.5 s (RFC 3550
#: 6.3.1 around 5 s): under 2.5 s only RTP can keep the call up.
RTP_TIMEOUT = 2


class TimeoutBaresip(Baresip):
    """
    baresip with an RTP timeout (it ends a call after this many seconds without RTP, once
    RTP has been received).
    """

    def config_text(self):
        return super().config_text() + f"\nrtp_timeout\t\t{RTP_TIMEOUT}\n"


def sleep(seconds):
    return defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.sleep(seconds)))


class RestCallSilenceTests(StreamTestCase):
    """
    /call/startup to baresip with nothing bridged to it.
    """

    timeout = 90

    async def start_call(self, call_id):
        require_binary("baresip")
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 60)
        bob = TimeoutBaresip(self.base, "bob", registrar=f"127.0.0.1:{self.sip_port}",
                             password="x", tone_wav=wav)
        self.addCleanup(bob.stop)
        await bob.start()
        code, _ = await self.rest("/call/startup", {"callId": call_id, "callee": "bob",
                                                    "sipLogin": "rest", "sipDomain": "127.0.0.1",
                                                    "sipPort": "0"})
        self.assertEqual(code, 200)
        await bob.wait_event("CALL_ESTABLISHED", timeout=10)
        return bob, self.server.calls.get(call_id).rtp

    async def status(self, call_id):
        code, calls = await self.rest("/call/find", {"callId": call_id})
        return calls[0]["status"] if code == 200 else code

    async def inject_tone(self, call_id, bob):
        """
        Inject a 700 Hz publish into the call, check bob hears it, stop the injection.
        """
        publisher = await self.connect_player("publisher")
        published = await publisher.publish_stream("inj", tone_hz=700)
        await publisher.wait_stream_status(published, "PUBLISHING", timeout=10)
        code, _ = await self.rest("/call/inject_stream/startup",
                                  {"callId": call_id, "streamName": "inj"})
        self.assertEqual(code, 200)
        # The injected tone reaches bob within a few seconds (later on a loaded machine):
        # check the last second of what he received, a second more each time, up to 10 s.
        heard = None
        for _ in range(10):
            path = await bob.wait_for_received_audio(audio.wav_duration(bob.received_wav()) + 1)
            end = audio.wav_duration(path)
            heard = audio.dominant_frequency(path, start=end - 1, seconds=1)
            if abs(heard - 700) < 10:
                break
        self.assertLess(abs(heard - 700), 10, f"bob heard {heard:.0f} Hz, not the injected 700")
        code, _ = await self.rest("/call/inject_stream/terminate", {"callId": call_id})
        self.assertEqual(code, 200)
        return publisher

    async def test_silence_keeps_the_call_up(self):
        """
        baresip receives audio from the start (silence: it records it), the filler stands
        aside while a stream is injected, and after the injection the call outlives
        baresip's RTP timeout; the filler's timer ends with the call.
        """
        bob, leg = await self.start_call("s1")
        path = await bob.wait_for_received_audio(1.5)
        samples, _ = audio.read_wav(path)
        self.assertLess(abs(samples).max(), 0.01)  # silence, but received
        self.assertTrue(leg.silence.filling)
        await self.inject_tone("s1", bob)
        filled = leg.silence.filled
        await sleep(3 * RTP_TIMEOUT)
        self.assertGreater(leg.silence.filled, filled + 50 * 2 * RTP_TIMEOUT)
        self.assertEqual(await self.status("s1"), "ESTABLISHED")
        self.assertNotIn("CALL_CLOSED", [e.get("type") for e in bob.history])
        code, _ = await self.rest("/call/terminate", {"callId": "s1"})
        self.assertEqual(code, 200)
        await bob.wait_event("CALL_CLOSED")
        self.assertFalse(leg.silence.running)

    async def test_without_silence_baresip_hangs_up(self):
        """
        The control: with the filler stopped after the injection, baresip ends the call on
        its RTP timeout.
        """
        bob, leg = await self.start_call("s2")
        await bob.wait_for_received_audio(0.5)
        await self.inject_tone("s2", bob)
        leg.silence.stop()
        event = await bob.wait_event("CALL_CLOSED", timeout=RTP_TIMEOUT + 5)
        self.assertIn("CALL_CLOSED", event["type"])
