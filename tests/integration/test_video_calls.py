"""
Video calls end to end: two WCS test clients (aiortc as the browser) in local mode call each
other through the real server with audio and video; both sides must receive video RTP while the
audio still carries each other's tone.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_video_calls
"""

from __future__ import annotations

from tests.integration.test_calls import CallTestCase


def video_codecs(sdp):
    """
    Return the codec names (upper-case, rtx left out) of the first C{m=video} section of C{sdp},
    or C{None} when it has no usable (non-zero port) video section.
    """
    names, in_video = [], False
    for line in sdp.splitlines():
        if line.startswith("m="):
            if in_video:
                break
            parts = line.split()
            in_video = parts[0] == "m=video" and parts[1] != "0"
        elif in_video and line.startswith("a=rtpmap:"):
            name = line.split(" ", 1)[1].split("/")[0].upper()
            if name != "RTX":
                names.append(name)
    return names if names else None


class BrowserToBrowserVideoTests(CallTestCase):
    """
    Two clients in local mode, SIP inside, audio plus video.
    """

    async def assertVideoCall(self, codec):
        """
        alice calls bob with audio and C{codec} video, bob answers with video; the offer bob
        gets and the answer alice gets carry C{codec}; each side receives video RTP and hears
        the other's tone; hangup ends both.
        """
        alice = await self.connect_local("alice")
        bob = await self.connect_local("bob")
        call_id = await alice.call("bob", video=True, video_codecs=[codec], tone_hz=440)
        incoming = await bob.wait_incoming_call(timeout=10)
        await bob.answer(incoming, video=True, tone_hz=1000)
        await alice.wait_status(call_id, "ESTABLISHED", timeout=10)
        await bob.wait_status(incoming, "ESTABLISHED", timeout=10)
        self.assertGreaterEqual(
            await alice.wait_packets(call_id, 30, kind="video", timeout=15), 30)
        self.assertGreaterEqual(
            await bob.wait_packets(incoming, 30, kind="video", timeout=15), 30)
        self.assertIn(codec, video_codecs(bob.calls[incoming].remote_sdp) or [])
        self.assertEqual(video_codecs(alice.calls[call_id].remote_sdp)[0], codec)
        self.assertFrequency(await alice.wait_audio(call_id, seconds=1.5, timeout=10), 1000)
        self.assertFrequency(await bob.wait_audio(incoming, seconds=1.5, timeout=10), 440)
        await alice.hangup(call_id)
        await bob.wait_status(incoming, "FINISH", timeout=5)
        self.assertEqual(alice.violations + bob.violations, [])

    async def test_vp8_video_call(self):
        """
        A VP8 video call between two browsers carries video and audio both ways.
        """
        await self.assertVideoCall("VP8")

    async def test_h264_video_call(self):
        """
        An H.264 video call between two browsers carries video and audio both ways.
        """
        await self.assertVideoCall("H264")
