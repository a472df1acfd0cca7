"""
The RTMP module against a real nginx with the RTMP module (libnginx-mod-rtmp) on 127.0.0.1:
pushes of a synthetic stream (a 440 Hz PCMU tone and libx264 H.264, fed in real time) recorded
by nginx and read back with ffprobe and ffmpeg; nginx killed mid-push and restarted.

Run under the asyncio reactor, as the server does:
    .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_rtmp

nginx runs in the foreground as one process (C{daemon off; master_process off;}), with its
prefix, configuration, logs and pid file in the test's directory; stopping it signals only that
PID.  C{record all} with C{record_unique on} writes one .flv per publish, closed when the publish
ends.
"""

import glob
import json
import os
import re
import socket

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import audio
from tests.integration.peers import PeerProcess, free_port, poll, require_binary
from tests.modules_builtin.synthetic import (
    SyntheticFeed,
    SyntheticSource,
    h264_access_units,
    opus_tone,
    pcmu_tone,
)
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.modules_builtin.rtmp import RtmpService
from wcs_twisted.modules_builtin.rtmp_push import RtmpStreamStatus

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
DURATION_TOLERANCE = 0.05

CONFIG = """\
load_module {module};
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record all;
            record_path {records};
            record_unique on;
        }}
    }}
}}
"""


class NginxRtmp:
    """
    nginx with the RTMP module, started and stopped by the test.
    """

    def __init__(self, directory, port=None):
        self.binary = require_binary("nginx", "nginx")
        if not os.path.exists(RTMP_MODULE):
            raise SkipTest(f"{RTMP_MODULE} is missing (apt-get install libnginx-mod-rtmp)")
        self.prefix = os.path.abspath(directory)
        self.records = os.path.join(self.prefix, "records")
        os.makedirs(self.records, exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w", encoding="utf-8") as handle:
            handle.write(CONFIG.format(module=RTMP_MODULE, prefix=self.prefix, port=self.port,
                                       records=self.records))
        self.process = None
        self.runs = 0

    @property
    def url(self):
        return f"rtmp://127.0.0.1:{self.port}/live"

    def start(self):
        self.runs += 1
        self.process = PeerProcess(f"nginx-rtmp#{self.runs}",
                                   os.path.join(self.prefix, f"nginx-{self.runs}.log"))
        self.process.spawn([self.binary, "-p", self.prefix + "/", "-c", self.conf,
                            "-e", os.path.join(self.prefix, "error.log")], cwd=self.prefix)

        def listening():
            self.process.check_running()
            probe = socket.socket()
            try:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0
            finally:
                probe.close()

        return poll(listening, 10.0, reactor, message=self.process.describe)

    def kill(self):
        self.process.transport.signalProcess("KILL")
        return self.process.when_ended(5.0)

    def stop(self):
        return self.process.stop() if self.process is not None else defer.succeed(None)

    def finished_publishes(self):
        """
        How many publishes the current nginx has seen end (its recording is then closed).
        """
        publishing, finished = set(), 0
        with open(os.path.join(self.prefix, "error.log"), encoding="utf-8",
                  errors="replace") as handle:
            for line in handle:
                match = re.search(r" (\d+)#\d+: \*(\d+) (publish|disconnect)", line)
                if match is None or int(match.group(1)) != self.process.pid:
                    continue
                client = match.group(2)
                if match.group(3) == "publish":
                    publishing.add(client)
                elif client in publishing:
                    publishing.discard(client)
                    finished += 1
        return finished

    def recordings(self):
        return sorted(glob.glob(os.path.join(self.records, "*.flv")), key=os.path.getmtime)


def run(executable, *arguments):
    return getProcessOutputAndValue(executable, arguments, env=dict(os.environ))


@defer.inlineCallbacks
def ffprobe(path):
    """
    {"codecs": [...], "duration": seconds} as ffprobe reads an .flv.
    """
    out, err, code = yield run(require_binary("ffprobe", "ffmpeg"), "-v", "error",
                               "-show_entries", "format=duration:stream=codec_name",
                               "-of", "json", path)
    if code != 0:
        raise AssertionError(f"ffprobe failed on {path}: {err.decode(errors='replace')}")
    info = json.loads(out)
    return {"codecs": sorted(stream["codec_name"] for stream in info.get("streams", [])),
            "duration": float(info["format"]["duration"])}


@defer.inlineCallbacks
def decode_audio(path, wav):
    out, err, code = yield run(require_binary("ffmpeg", "ffmpeg"), "-nostdin", "-v", "error",
                               "-y", "-i", path, "-map", "0:a", "-ac", "1", "-ar", "8000", wav)
    if code != 0:
        raise AssertionError(f"ffmpeg could not decode {path}: {err.decode(errors='replace')}")


class RtmpPushTests(TestCase):
    """
    Pushes to nginx-rtmp.
    """

    timeout = 40

    def setUp(self):
        require_binary("ffprobe", "ffmpeg")
        require_binary("ffmpeg", "ffmpeg")
        self.nginx = NginxRtmp(self.mktemp() + "-nginx")
        self.addCleanup(self.nginx.stop)
        self.streams = StreamRegistry(reactor)
        self.service = RtmpService(self.streams, reactor, reconnect_delay=0.25,
                                   max_reconnect_delay=1.0)
        self.addCleanup(self.service.stop)
        self.statuses = []

    def status_is(self, status):
        return lambda: self.statuses and self.statuses[-1] is status

    @defer.inlineCallbacks
    def push(self, audio_codec, payloads, video, seconds):
        """
        Publish a stream, push it to nginx, feed C{seconds} once ACTIVE, terminate.
        """
        stream = self.streams.publish("call1", SyntheticSource(audio_codec, "H264/90000"), {})
        self.service.startup("call1", self.nginx.url, on_status=self.statuses.append)
        yield poll(self.status_is(RtmpStreamStatus.RTMP_STREAM_ACTIVE), 10.0, reactor)
        feed = SyntheticFeed(stream, audio=payloads, audio_codec=audio_codec, video=video)
        yield feed.run_in_real_time(reactor, seconds)
        self.service.terminate(self.service.find_all()[0]["mediaSessionId"])
        stream.end("Stopped by publisher stop")
        return feed

    def assert_duration(self, measured, expected):
        if abs(measured - expected) > DURATION_TOLERANCE * expected:
            self.fail(f"duration {measured} s is not within 5% of the {expected} s pushed")

    @defer.inlineCallbacks
    def recorded(self, files=1):
        """
        The .flv files nginx wrote, once the current nginx has closed the last one (it closes
        a recording when its publish ends).
        """
        def closed():
            found = self.nginx.recordings()
            return found if len(found) >= files and self.nginx.finished_publishes() >= 1 \
                else None

        found = yield poll(closed, 10.0, reactor, message=self.nginx.process.describe)
        return found

    @defer.inlineCallbacks
    def test_pcmu_and_h264_recorded_by_nginx(self):
        """
        nginx records the push as H.264 + AAC for as long as it was fed (within 5 %), and the
        AAC decodes to the 440 Hz tone.
        """
        yield self.nginx.start()
        feed = yield self.push("PCMU/8000", pcmu_tone(5.0), h264_access_units(125), 4.0)
        [flv] = yield self.recorded()
        info = yield ffprobe(flv)
        self.assertEqual(info["codecs"], ["aac", "h264"])
        self.assert_duration(info["duration"], feed.elapsed)
        wav = flv[:-4] + ".wav"
        yield decode_audio(flv, wav)
        self.assertApproximates(audio.dominant_frequency(wav), 440.0, 2.0)
        self.assertEqual(self.statuses, [RtmpStreamStatus.RTMP_STREAM_ACTIVE])

    @defer.inlineCallbacks
    def test_opus_transcoded(self):
        """
        An Opus stream arrives at nginx as AAC.
        """
        yield self.nginx.start()
        feed = yield self.push("opus/48000/2", opus_tone(3.0), h264_access_units(75), 2.5)
        [flv] = yield self.recorded()
        info = yield ffprobe(flv)
        self.assertEqual(info["codecs"], ["aac", "h264"])
        self.assert_duration(info["duration"], feed.elapsed)
        wav = os.path.join(self.mktemp() + "-opus.wav")
        yield decode_audio(flv, wav)
        self.assertApproximates(audio.dominant_frequency(wav), 440.0, 2.0)

    @defer.inlineCallbacks
    def test_nginx_killed_and_restarted(self):
        """
        Killing nginx mid-push gives RTMP_CONNECTION_LOST; once it is back the push reconnects
        by itself (RTMP_STREAM_ACTIVE) and the new session is recorded with both tracks.
        """
        yield self.nginx.start()
        stream = self.streams.publish("call1", SyntheticSource("PCMU/8000", "H264/90000"), {})
        self.service.startup("call1", self.nginx.url, on_status=self.statuses.append)
        yield poll(self.status_is(RtmpStreamStatus.RTMP_STREAM_ACTIVE), 10.0, reactor)
        feed = SyntheticFeed(stream, audio=pcmu_tone(8.0), video=h264_access_units(200))
        yield feed.run_in_real_time(reactor, 1.5)
        yield self.nginx.kill()
        yield poll(self.status_is(RtmpStreamStatus.RTMP_CONNECTION_LOST), 5.0, reactor)
        self.assertEqual(self.service.find_all()[0]["status"], "RTMP_CONNECTION_LOST")
        yield feed.run_in_real_time(reactor, 1.0)  # reconnect attempts are refused meanwhile
        yield self.nginx.start()
        yield poll(self.status_is(RtmpStreamStatus.RTMP_STREAM_ACTIVE), 10.0, reactor)
        resumed_at = feed.elapsed
        yield feed.run_in_real_time(reactor, 3.0)
        self.service.terminate(self.service.find_all()[0]["mediaSessionId"])
        self.assertEqual(self.statuses, [RtmpStreamStatus.RTMP_STREAM_ACTIVE,
                                         RtmpStreamStatus.RTMP_CONNECTION_LOST,
                                         RtmpStreamStatus.RTMP_STREAM_ACTIVE])
        files = yield self.recorded(2)  # the first, left unfinished by the kill, and the new
        info = yield ffprobe(files[-1])
        self.assertEqual(info["codecs"], ["aac", "h264"])
        # Video resumes at the next keyframe (one a second), audio at once.
        self.assertApproximates(info["duration"], feed.elapsed - resumed_at, 0.3)

    @defer.inlineCallbacks
    def test_nobody_listening_fails(self):
        """
        A push to a port where nothing listens is RTMP_CONNECTION_FAILED and, after its
        attempts, removed.
        """
        self.streams.publish("call1", SyntheticSource("PCMU/8000"), {})
        service = RtmpService(self.streams, reactor, reconnect_delay=0.1, max_failed_attempts=2)
        self.addCleanup(service.stop)
        service.startup("call1", f"rtmp://127.0.0.1:{free_port()}/live",
                        on_status=self.statuses.append)
        yield poll(lambda: not service.find_all(), 5.0, reactor)
        self.assertEqual(self.statuses, [RtmpStreamStatus.RTMP_CONNECTION_FAILED])
