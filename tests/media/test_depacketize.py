"""
Tests for L{wcs_twisted.media.depacketize}: RTP payloads to frames and times.
"""

from fractions import Fraction

import av
from twisted.trial.unittest import SynchronousTestCase

from tests.modules_builtin.synthetic import (
    h264_access_units,
    packetize_h264,
    split_annex_b,
    vp8_frames,
    vp8_packets,
)
from wcs_twisted.media.depacketize import (
    VP8Depacketizer,
    MAX_CLOCK_SKEW,
    H264Depacketizer,
    MediaTimeline,
    RtpClock,
    alaw_to_s16le,
    annex_b,
    avc_decoder_configuration,
    avcc,
    codec_of,
    opus_packet_samples,
    parse_sps,
    ulaw_to_s16le,
)

SPS = b"\x67\x42\xc0\x1e\xda\x02\x80\xf6\x84\x00\x00\x03\x00\x04\x00\x00\x03\x00\xc8\x3c\x58\xba\x80"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33\xff"
SLICE = b"\x41\x9a\x21\x6c\x41\x7f"


def fu_a(nal, size):
    """
    FU-A fragments of C{nal}, C{size} bytes of its body each (RFC 6184 5.8).
    """
    indicator, kind, body = (nal[0] & 0xE0) | 28, nal[0] & 0x1F, nal[1:]
    pieces = []
    for offset in range(0, len(body), size):
        header = kind | (0x80 if offset == 0 else 0) | (0x40 if offset + size >= len(body) else 0)
        pieces.append(bytes((indicator, header)) + body[offset:offset + size])
    return pieces


def stap_a(*nals):
    return bytes((0x78,)) + b"".join(len(nal).to_bytes(2, "big") + nal for nal in nals)


class CodecNameTests(SynchronousTestCase):
    """
    rtpmap-style codec names.
    """

    def test_codec_of(self):
        """
        The encoding name comes lower case with the clock rate; nothing gives ("", 0).
        """
        self.assertEqual(codec_of("opus/48000/2"), ("opus", 48000))
        self.assertEqual(codec_of("PCMU/8000"), ("pcmu", 8000))
        self.assertEqual(codec_of("H264"), ("h264", 0))
        self.assertEqual(codec_of(None), ("", 0))
        self.assertEqual(codec_of("x/y"), ("x", 0))


class G711Tests(SynchronousTestCase):
    """
    G.711 expansion (ITU-T G.711) agrees with FFmpeg's decoders for every code.
    """

    def decoded_by_ffmpeg(self, name):
        decoder = av.CodecContext.create(name, "r")
        decoder.sample_rate = 8000
        decoder.layout = "mono"
        frames = decoder.decode(av.Packet(bytes(range(256))))
        return b"".join(bytes(frame.planes[0])[:frame.samples * 2] for frame in frames)

    def test_ulaw(self):
        """
        All 256 PCMU codes expand to the samples FFmpeg's pcm_mulaw gives.
        """
        self.assertEqual(ulaw_to_s16le(bytes(range(256))), self.decoded_by_ffmpeg("pcm_mulaw"))

    def test_alaw(self):
        """
        All 256 PCMA codes expand to the samples FFmpeg's pcm_alaw gives.
        """
        self.assertEqual(alaw_to_s16le(bytes(range(256))), self.decoded_by_ffmpeg("pcm_alaw"))

    def test_empty(self):
        """
        An empty payload gives no samples.
        """
        self.assertEqual(ulaw_to_s16le(b""), b"")


class OpusDurationTests(SynchronousTestCase):
    """
    Opus packet durations from the TOC byte (RFC 6716 3.1).
    """

    def test_one_frame(self):
        """
        Code 0: one frame of the configuration's size (SILK 10 ms, hybrid 20 ms, CELT 2.5/20 ms).
        """
        self.assertEqual(opus_packet_samples(bytes((0 << 3,))), 480)
        self.assertEqual(opus_packet_samples(bytes((3 << 3,))), 2880)
        self.assertEqual(opus_packet_samples(bytes((15 << 3, 0xAA))), 960)
        self.assertEqual(opus_packet_samples(bytes((16 << 3,))), 120)
        self.assertEqual(opus_packet_samples(bytes((31 << 3,))), 960)

    def test_two_and_arbitrary_frames(self):
        """
        Codes 1 and 2 carry two frames; code 3 says how many in its second byte.
        """
        self.assertEqual(opus_packet_samples(bytes(((31 << 3) | 1, 0))), 1920)
        self.assertEqual(opus_packet_samples(bytes(((31 << 3) | 2, 0))), 1920)
        self.assertEqual(opus_packet_samples(bytes(((16 << 3) | 3, 6))), 720)

    def test_malformed(self):
        """
        Empty packets, a code 3 packet without its count, and more than 120 ms give 0.
        """
        self.assertEqual(opus_packet_samples(b""), 0)
        self.assertEqual(opus_packet_samples(bytes(((31 << 3) | 3,))), 0)
        self.assertEqual(opus_packet_samples(bytes(((3 << 3) | 3, 3))), 0)


class H264DepacketizerTests(SynchronousTestCase):
    """
    Access units from RFC 6184 payloads.
    """

    def test_single_nal_units(self):
        """
        Single NAL unit packets (5.6) gather until the marker bit ends the access unit.
        """
        depacketizer = H264Depacketizer()
        self.assertEqual(depacketizer.feed(SLICE, 1000, False), [])
        [unit] = depacketizer.feed(SLICE[:3], 1000, True)
        self.assertEqual(unit.nal_units, (SLICE, SLICE[:3]))
        self.assertEqual(unit.timestamp, 1000)
        self.assertFalse(unit.keyframe)
        self.assertFalse(unit.decodable_start)

    def test_stap_a_and_fu_a_keyframe(self):
        """
        STAP-A (5.7.1) parameter sets and an FU-A (5.8) IDR make a decodable keyframe; the NAL
        header is rebuilt from the FU indicator and header.
        """
        depacketizer = H264Depacketizer()
        pieces = fu_a(IDR + bytes(range(200)), 50)
        self.assertEqual(depacketizer.feed(stap_a(SPS, PPS), 5, False), [])
        units = []
        for index, piece in enumerate(pieces):
            units += depacketizer.feed(piece, 5, index == len(pieces) - 1)
        [unit] = units
        self.assertEqual(unit.nal_units, (SPS, PPS, IDR + bytes(range(200))))
        self.assertTrue(unit.keyframe)
        self.assertTrue(unit.decodable_start)
        self.assertEqual((unit.sps, unit.pps), (SPS, PPS))
        self.assertEqual(depacketizer.lost, 0)

    def test_lost_start_fragment(self):
        """
        An FU-A whose start fragment is missing makes the access unit count as lost.
        """
        depacketizer = H264Depacketizer()
        pieces = fu_a(IDR + bytes(100), 40)
        units = []
        for index, piece in enumerate(pieces[1:]):
            units += depacketizer.feed(piece, 9, index == len(pieces) - 2)
        self.assertEqual((units, depacketizer.lost), ([], 1))
        [unit] = depacketizer.feed(SLICE, 10, True)
        self.assertEqual(unit.nal_units, (SLICE,))

    def test_lost_end_fragment(self):
        """
        An FU-A that never gets its end fragment (the next unit starts) is lost with its access
        unit.
        """
        depacketizer = H264Depacketizer()
        pieces = fu_a(IDR + bytes(100), 40)
        depacketizer.feed(pieces[0], 9, False)
        depacketizer.feed(pieces[1], 9, False)
        self.assertEqual(depacketizer.feed(SLICE, 9, True), [])
        self.assertEqual(depacketizer.lost, 1)

    def test_timestamp_change_ends_unit(self):
        """
        A packet with a new timestamp ends the previous access unit even without a marker.
        """
        depacketizer = H264Depacketizer()
        depacketizer.feed(SLICE, 1, False)
        [unit] = depacketizer.feed(SLICE, 2, False)
        self.assertEqual(unit.timestamp, 1)
        [unit] = depacketizer.flush()
        self.assertEqual(unit.timestamp, 2)

    def test_parameter_sets_alone_and_delimiters(self):
        """
        Parameter sets without a picture give no access unit but are kept; access unit
        delimiters are left out.
        """
        depacketizer = H264Depacketizer()
        self.assertEqual(depacketizer.feed(stap_a(SPS, PPS), 1, True), [])
        [unit] = depacketizer.feed(stap_a(b"\x09\xf0", IDR), 2, True)
        self.assertEqual(unit.nal_units, (IDR,))
        self.assertTrue(unit.decodable_start)
        self.assertEqual(unit.with_parameter_sets(), (SPS, PPS, IDR))

    def test_unsupported_and_truncated_packets(self):
        """
        Interleaved-mode packets (FU-B type 29) and a STAP-A whose size runs past its end
        corrupt the access unit.
        """
        depacketizer = H264Depacketizer()
        self.assertEqual(depacketizer.feed(b"\x7d\x85\x00", 1, True), [])
        self.assertEqual(depacketizer.feed(b"\x78\x00\x09\x67", 2, True), [])
        self.assertEqual(depacketizer.lost, 2)

    def test_real_encoder_round_trip(self):
        """
        libx264's access units, packetized and depacketized, come back NAL unit for NAL unit.
        """
        units = h264_access_units(30)
        depacketizer = H264Depacketizer()
        got = []
        for number, (data, _) in enumerate(units):
            for payload, marker in packetize_h264(data, mtu=300):
                got += depacketizer.feed(payload, number * 3600, marker)
        self.assertEqual(len(got), 30)
        for (data, keyframe), unit in zip(units, got):
            self.assertEqual(list(unit.nal_units), [nal for nal in split_annex_b(data)
                                                    if nal[0] & 0x1F != 9])
            self.assertEqual(unit.keyframe, keyframe)
        self.assertTrue(got[0].decodable_start)

    def test_formats(self):
        """
        Annex B puts a start code before each NAL unit; AVCC a 4-byte length.
        """
        self.assertEqual(annex_b([PPS, IDR]), b"\0\0\0\1" + PPS + b"\0\0\0\1" + IDR)
        self.assertEqual(avcc([PPS]), b"\0\0\0\4" + PPS)


class VP8DepacketizerTests(SynchronousTestCase):
    """
    RFC 7741 payloads back to VP8 frames.
    """

    def test_real_encoder_round_trip(self):
        """
        libvpx frames split over several packets come back whole, keyframes sized, and
        libvpx decodes every one.
        """
        frames = vp8_frames(30, width=320, height=240)
        depacketizer = VP8Depacketizer()
        rebuilt = []
        for index, (frame, _) in enumerate(frames):
            for payload, marker in vp8_packets(frame, index, mtu=200):
                rebuilt += depacketizer.feed(payload, 1000 + index * 3600, marker)
        self.assertEqual([f.data for f in rebuilt], [f for f, _ in frames])
        self.assertEqual([f.keyframe for f in rebuilt], [k for _, k in frames])
        self.assertEqual((rebuilt[0].width, rebuilt[0].height), (320, 240))
        self.assertTrue(rebuilt[0].decodable_start)
        self.assertFalse(rebuilt[1].decodable_start)
        decoder = av.CodecContext.create("libvpx", "r")
        decoded = sum(len(decoder.decode(av.Packet(f.data))) for f in rebuilt)
        self.assertEqual(decoded, 30)
        self.assertEqual(depacketizer.lost, 0)

    def test_short_descriptors(self):
        """
        A one-byte descriptor (no extension) works; a descriptor with no payload is loss.
        """
        depacketizer = VP8Depacketizer()
        [frame] = depacketizer.feed(b"\x10" + b"\x01\x02\x03", 5, True)
        self.assertEqual((frame.data, frame.keyframe), (b"\x01\x02\x03", False))
        self.assertEqual(depacketizer.feed(b"\x90\x80", 6, True), [])
        self.assertEqual(depacketizer.lost, 1)

    def test_loss(self):
        """
        A frame whose first packet is lost, or whose last (marker) packet is lost, is dropped
        and counted; the next whole frame comes through.
        """
        frames = vp8_frames(3)
        depacketizer = VP8Depacketizer()
        first = vp8_packets(frames[0][0], 0, mtu=100)
        second = vp8_packets(frames[1][0], 1, mtu=100)
        third = vp8_packets(frames[2][0], 2, mtu=100)
        out = []
        for payload, marker in first[1:]:
            out += depacketizer.feed(payload, 0, marker)
        for payload, marker in second[:-1]:
            out += depacketizer.feed(payload, 3600, marker)
        for payload, marker in third:
            out += depacketizer.feed(payload, 7200, marker)
        self.assertEqual([f.data for f in out], [frames[2][0]])
        self.assertEqual(depacketizer.lost, 2)


class SequenceParameterSetTests(SynchronousTestCase):
    """
    Picture size and profile from an SPS (H.264 7.3.2.1.1).
    """

    def encoder_sps(self, width, height, profile):
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = Fraction(1, 25)
        encoder.options = {"preset": "fast" if profile == "high" else "ultrafast", "profile": profile}
        encoder.open()
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.pts = 0
        packets = list(encoder.encode(frame)) + list(encoder.encode(None))
        return next(nal for nal in split_annex_b(bytes(packets[0])) if nal[0] & 0x1F == 7)

    def test_baseline_with_cropping(self):
        """
        A size that is not a multiple of 16 comes back through the frame cropping fields.
        """
        info = parse_sps(self.encoder_sps(636, 358, "baseline"))
        self.assertEqual((info.width, info.height, info.profile_idc), (636, 358, 66))

    def test_high_profile(self):
        """
        High profile SPSs carry chroma format and bit depths before the size.
        """
        info = parse_sps(self.encoder_sps(1280, 720, "high"))
        self.assertEqual((info.width, info.height, info.profile_idc), (1280, 720, 100))
        self.assertEqual((info.chroma_format_idc, info.bit_depth_luma), (1, 8))

    def test_emulation_prevention(self):
        """
        An SPS with emulation prevention bytes (00 00 03) parses to the right size.
        """
        info = parse_sps(SPS)
        self.assertEqual((info.width, info.height), (640, 480))

    def test_not_an_sps(self):
        """
        Other NAL units and truncated SPSs raise ValueError.
        """
        self.assertRaises(ValueError, parse_sps, PPS)
        self.assertRaises(ValueError, parse_sps, SPS[:6])

    def test_decoder_configuration_matches_ffmpeg(self):
        """
        The AVCDecoderConfigurationRecord is what FFmpeg itself writes as avcC for the same
        parameter sets (libx264 with global headers).
        """
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = 320, 240
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = Fraction(1, 25)
        encoder.options = {"preset": "fast", "profile": "high"}
        encoder.flags |= av.codec.context.Flags.global_header
        encoder.open()
        frame = av.VideoFrame(320, 240, "yuv420p")
        frame.pts = 0
        list(encoder.encode(frame)) + list(encoder.encode(None))
        nals = split_annex_b(encoder.extradata)
        sps = next(nal for nal in nals if nal[0] & 0x1F == 7)
        pps = next(nal for nal in nals if nal[0] & 0x1F == 8)
        output = av.open(self.mktemp() + ".mp4", "w")
        stream = output.add_mux_stream("h264", width=320, height=240)
        packet = av.Packet(b"\0\0\1" + sps + b"\0\0\1" + pps + b"\0\0\1" + IDR)
        packet.stream, packet.pts, packet.dts, packet.time_base = stream, 0, 0, Fraction(1, 25)
        output.mux(packet)
        output.close()
        with av.open(output.name) as mp4:
            avcc_record = mp4.streams.video[0].codec_context.extradata
        self.assertEqual(avc_decoder_configuration(sps, pps), avcc_record)


class RtpClockTests(SynchronousTestCase):
    """
    RTP timestamps on one timeline per stream.
    """

    def test_time_from_first_packet(self):
        """
        The first packet of any kind is time 0; later ones advance by their RTP timestamps.
        """
        timeline = MediaTimeline()
        audio = RtpClock(8000, timeline)
        video = RtpClock(90000, timeline)
        self.assertEqual(audio.seconds(123456, 100.0), 0.0)
        self.assertEqual(audio.seconds(123456 + 8000, 101.01), 1.0)
        self.assertAlmostEqual(video.seconds(777, 100.5), 0.5)
        self.assertAlmostEqual(video.seconds(777 + 45000, 101.02), 1.0)

    def test_wrap_around(self):
        """
        Timestamps wrap at 2**32 without a jump in time (RFC 3550 5.1).
        """
        clock = RtpClock(8000, MediaTimeline())
        clock.seconds(0xFFFFFF00, 0.0)
        self.assertAlmostEqual(clock.seconds(0x00000100, 0.064), 0x200 / 8000)
        self.assertEqual(clock.jumps, 0)

    def test_jump_reanchors_at_arrival(self):
        """
        A timestamp far from what the arrival time allows re-anchors the clock there.
        """
        clock = RtpClock(8000, MediaTimeline())
        clock.seconds(1000, 0.0)
        self.assertEqual(clock.seconds(1000 + 8000 * 3600, 1.0), 1.0)
        self.assertEqual(clock.jumps, 1)
        self.assertAlmostEqual(clock.seconds(1000 + 8000 * 3601, 2.0), 2.0)

    def test_never_goes_back(self):
        """
        A jump backwards re-anchors no earlier than the latest time already returned.
        """
        clock = RtpClock(8000, MediaTimeline(), max_skew=MAX_CLOCK_SKEW)
        clock.seconds(80000, 0.0)
        clock.seconds(80000 + 8000 * 2, 0.5)  # 2 s of media arrived in 0.5 s
        self.assertEqual(clock.seconds(0, 0.6), 2.0)
