"""
Synthetic stream sources for the module tests: real media as RTP payloads.

A 440 Hz tone encoded as PCMU or Opus, and H.264 encoded by libx264 (through PyAV) from a moving
test picture, packetized as RFC 6184 single NAL units, STAP-A and FU-A.  L{SyntheticFeed} pushes
them into a stream in media-time order, driven by a C{task.Clock} in unit tests or by the real
reactor in integration tests, with random RTP timestamp bases as a real sender has.
"""

import math
import random
from fractions import Fraction

import av
from twisted.internet import task
from zope.interface import implementer

from wcs_twisted.interfaces import IStreamSource

AUDIO_PTIME = 0.02


def tone_samples(seconds, frequency=440.0, amplitude=0.5, rate=8000):
    """
    Signed 16-bit little-endian samples of a sine tone.
    """
    count = int(round(seconds * rate))
    peak = amplitude * 32767
    return b"".join(int(round(peak * math.sin(2 * math.pi * frequency * n / rate)))
                    .to_bytes(2, "little", signed=True) for n in range(count))


def pcmu_tone(seconds, frequency=440.0, amplitude=0.5):
    """
    20 ms PCMU payloads (160 bytes each) of a tone.
    """
    encoder = av.CodecContext.create("pcm_mulaw", "w")
    encoder.sample_rate = 8000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    samples = tone_samples(seconds, frequency, amplitude, 8000)
    payloads = []
    for offset in range(0, len(samples) - 319, 320):
        frame = av.AudioFrame(format="s16", layout="mono", samples=160)
        frame.planes[0].update(samples[offset:offset + 320])
        frame.sample_rate = 8000
        payloads.extend(bytes(packet) for packet in encoder.encode(frame))
    return payloads


def opus_tone(seconds, frequency=440.0, amplitude=0.5):
    """
    20 ms Opus packets (48 kHz, stereo signalled, mono content) of a tone.
    """
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 32000
    encoder.open()
    samples = tone_samples(seconds, frequency, amplitude, 48000)
    payloads = []
    for index, offset in enumerate(range(0, len(samples) - 1919, 1920)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(samples[offset:offset + 1920])
        frame.sample_rate = 48000
        frame.pts = index * 960
        frame.time_base = Fraction(1, 48000)
        payloads.extend(bytes(packet) for packet in encoder.encode(frame))
    return payloads


def h264_access_units(count, fps=25, width=320, height=240, gop=25):
    """
    Annex B access units from libx264 (constrained baseline, no B-frames): a gradient moving by
    a few pixels per frame, a keyframe with SPS and PPS every C{gop} frames.

    @return: a list of (annex_b_bytes, keyframe).
    """
    encoder = _video_encoder("libx264", fps, width, height, gop)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                       "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1"}
    return _encode_moving_picture(encoder, count, fps, width, height)


def _video_encoder(name, fps, width, height, gop):
    encoder = av.CodecContext.create(name, "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = fps
    encoder.gop_size = gop
    return encoder


def _encode_moving_picture(encoder, count, fps, width, height):
    """
    C{count} frames of a gradient moving by a few pixels per frame through C{encoder}
    (options set, not opened): a list of (frame_bytes, keyframe).
    """
    encoder.open()
    units = []
    row = bytes(range(0, 256, 256 // width or 1))[:width].ljust(width, b"\x80")
    for index in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        shift = (index * 4) % width
        luma = (row[shift:] + row[:shift]) * height
        frame.planes[0].update(_fit(luma, frame.planes[0]))
        frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([(index * 3) % 256]) * frame.planes[2].buffer_size)
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        for packet in encoder.encode(frame):
            units.append((bytes(packet), packet.is_keyframe))
    for packet in encoder.encode(None):
        units.append((bytes(packet), packet.is_keyframe))
    return units[:count]


def _fit(data, plane):
    """
    Lay rows of C{data} out in a plane whose line size may be padded.
    """
    width = plane.width
    stride = plane.line_size
    if stride == width:
        return data[:plane.buffer_size]
    rows = [data[y * width:(y + 1) * width].ljust(stride, b"\x00")
            for y in range(plane.height)]
    return b"".join(rows)


def split_annex_b(data):
    """
    The NAL units of an Annex B byte stream.
    """
    nals, index = [], 0
    starts = []
    while True:
        found = data.find(b"\x00\x00\x01", index)
        if found < 0:
            break
        starts.append(found + 3)
        index = found + 3
    for number, start in enumerate(starts):
        end = starts[number + 1] - 3 if number + 1 < len(starts) else len(data)
        nal = data[start:end]
        if number + 1 < len(starts) and nal.endswith(b"\x00"):
            nal = nal[:-1]  # the 4-byte start code's leading zero
        if nal:
            nals.append(nal)
    return nals


def packetize_h264(annex_b_data, mtu=1200):
    """
    RTP payloads for one access unit (RFC 6184): SPS and PPS aggregated in a STAP-A, NAL units
    up to C{mtu} as single NAL unit packets, bigger ones as FU-A fragments.

    @return: a list of (payload, marker); the marker is set on the last.
    """
    nals = split_annex_b(annex_b_data)
    payloads = []
    parameter_sets = [nal for nal in nals if nal[0] & 0x1F in (7, 8)]
    if parameter_sets:
        stap = bytearray(((parameter_sets[0][0] & 0xE0) | 24,))
        for nal in parameter_sets:
            stap += len(nal).to_bytes(2, "big") + nal
        payloads.append(bytes(stap))
    for nal in nals:
        if nal[0] & 0x1F in (7, 8):
            continue
        if len(nal) <= mtu:
            payloads.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | 28
        kind = nal[0] & 0x1F
        body = nal[1:]
        for offset in range(0, len(body), mtu):
            header = kind
            if offset == 0:
                header |= 0x80
            if offset + mtu >= len(body):
                header |= 0x40
            payloads.append(bytes((indicator, header)) + body[offset:offset + mtu])
    return [(payload, index == len(payloads) - 1) for index, payload in enumerate(payloads)]


@implementer(IStreamSource)
class SyntheticSource:
    """
    An L{IStreamSource} that records what the stream asks of it.
    """

    def __init__(self, audio_codec="PCMU/8000", video_codec=None):
        self.audio_codec = audio_codec
        self.video_codec = video_codec
        self.keyframe_requests = 0
        self.ended = None

    def request_keyframe(self):
        self.keyframe_requests += 1

    def stream_ended(self, reason):
        self.ended = reason


class SyntheticFeed:
    """
    Pushes audio and video packets into a stream when their media time comes.

    @param audio: payloads, one per 20 ms (or None).
    @param audio_codec: their codec name ("PCMU/8000", "opus/48000/2").
    @param video: (annex_b, keyframe) access units at C{fps} (or None), or VP8 frames when
        C{video_codec} is "VP8/90000".
    """

    def __init__(self, stream, audio=None, audio_codec="PCMU/8000", video=None, fps=25,
                 seed=7, video_codec="H264/90000"):
        chance = random.Random(seed)
        self.stream = stream
        self.events = []  # (media time, kind, payload, codec, timestamp, marker)
        if audio:
            rate = int(audio_codec.split("/")[1])
            base = chance.randrange(1 << 32)
            for index, payload in enumerate(audio):
                timestamp = (base + index * int(rate * AUDIO_PTIME)) & 0xFFFFFFFF
                self.events.append((index * AUDIO_PTIME, 0, "audio", payload, audio_codec,
                                    timestamp, index == 0))
        if video:
            base = chance.randrange(1 << 32)
            for index, (unit, _) in enumerate(video):
                timestamp = (base + index * 90000 // fps) & 0xFFFFFFFF
                packets = (vp8_packets(unit, index) if video_codec.startswith("VP8")
                           else packetize_h264(unit))
                for payload, marker in packets:
                    self.events.append((index / fps, 1, "video", payload, video_codec,
                                        timestamp, marker))
        self.events.sort(key=lambda event: (event[0], event[1]))
        self.position = 0
        #: Media seconds fed so far.
        self.elapsed = 0.0
        self.duration = max((event[0] for event in self.events), default=0.0) + AUDIO_PTIME

    @property
    def done(self):
        return self.position >= len(self.events)

    def feed_until(self, media_time):
        """
        Push every packet whose media time is at most C{media_time}.
        """
        while self.position < len(self.events) and self.events[self.position][0] <= media_time:
            _, _, kind, payload, codec, timestamp, marker = self.events[self.position]
            self.position += 1
            if self.stream.ended is None:
                self.stream.packet_received(kind, payload, codec, timestamp, marker)

    def run_with_clock(self, clock, seconds=None, step=0.01):
        """
        Feed C{seconds} more of media (all that is left by default) in step with a
        C{task.Clock}, advancing it.
        """
        end = self.duration if seconds is None else self.elapsed + seconds
        while self.elapsed <= end + 1e-9:
            self.feed_until(self.elapsed)
            clock.advance(step)
            self.elapsed += step

    def run_in_real_time(self, reactor, seconds=None, step=0.01):
        """
        Feed C{seconds} more of media (all that is left by default) as the reactor's clock
        advances; fires with this feed when done.
        """
        start_media = self.elapsed
        end = self.duration if seconds is None else self.elapsed + seconds
        start = reactor.seconds()

        def tick():
            self.elapsed = min(start_media + reactor.seconds() - start, end)
            self.feed_until(self.elapsed)
            if self.elapsed >= end or self.done:
                loop.stop()

        loop = task.LoopingCall(tick)
        loop.clock = reactor
        return loop.start(step, now=True).addCallback(lambda _: self)


def vp8_frames(count, fps=25, width=320, height=240, gop=25):
    """
    VP8 frames from libvpx of the same moving picture, a keyframe every C{gop} frames.

    @return: a list of (frame_bytes, keyframe).
    """
    encoder = _video_encoder("libvpx", fps, width, height, gop)
    encoder.bit_rate = 300000
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                       "auto-alt-ref": "0"}
    return _encode_moving_picture(encoder, count, fps, width, height)


def vp8_packets(frame, picture_id, mtu=400):
    """
    One VP8 frame as RFC 7741 payloads: an extended descriptor with a 15-bit PictureID, the
    S bit on the first; returns (payload, marker) pairs.
    """
    chunks = [frame[offset:offset + mtu] for offset in range(0, len(frame), mtu)] or [b""]
    packets = []
    for number, chunk in enumerate(chunks):
        descriptor = bytes((0x90 if number == 0 else 0x80, 0x80,
                            0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF))
        packets.append((descriptor + chunk, number == len(chunks) - 1))
    return packets
