"""
The SIP-only codecs against a real phone: linphonec (liblinphone/mediastreamer2, Debian's
linphone-cli; its Speex comes from libspeex, its G.729 from libbcg729, its G.722 from
mediastreamer2) speaking Speex 8 and 16 kHz, G.729 and G.722, the WCS test client (aiortc)
speaking Opus, and the server transcoding in between.  Each test checks the tone's
frequency at both ends.  One test runs with 5 % loss and 30 ms jitter on the SIP leg (netem
on a veth pair in a network namespace this test creates).

baresip 1.0.0 as packaged has no Speex or G.729 module (its G.722 is tested in
test_calls.py), which is why linphonec is the peer here.

Run: .venv/bin/python -m twisted.trial --reactor=asyncio tests.integration.test_codecs
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

import numpy

from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest

from tests.integration import audio
from tests.integration.loopback_server import bound_port, start_media_server
from tests.integration.peers import PeerError, PeerProcess, free_port, poll, require_binary
from tests.integration.test_calls import CallTestCase
from tests.integration.wcs_client import WCSClient

_LINPHONERC = """\
[sip]
sip_port={sip_port}
sip_tcp_port=0
sip_tls_port=0
[rtp]
audio_rtp_port={rtp_port}
audio_jitt_comp=60
[sound]
echocancellation=0
[net]
mtu=1300
"""


class _StdinProcess(PeerProcess):
    """
    A peer process whose stdin is a pipe we write commands into (linphonec's console).
    """

    def spawn(self, argv, cwd, env=None):
        read, self.stdin = os.pipe()
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._reactor.spawnProcess(
                self, argv[0], argv, env=dict(os.environ) if env is None else env, path=cwd,
                childFDs={0: read, 1: log_fd, 2: log_fd},
            )
        finally:
            os.close(log_fd)
            os.close(read)

    def processEnded(self, reason):
        if getattr(self, "stdin", None) is not None:
            os.close(self.stdin)
            self.stdin = None
        super().processEnded(reason)


class Linphone:
    """
    linphonec in file mode: registers at the server, answers automatically, plays a WAV
    file as its audio and records what it receives, with only one codec enabled.
    """

    def __init__(self, tmpdir, name, registrar_port, codec, tone_wav, host="127.0.0.1",
                 netns=None):
        """
        @param codec: (mime, rate) of the only codec to enable, e.g. C{("speex", 16000)}.
        @param host: the server's address.
        @param netns: a network namespace to run in (L{NetemLink}), or None.
        """
        self.netns = netns
        self.executable = require_binary("linphonec", "linphone-cli")
        self.name = name
        self.directory = os.path.abspath(os.path.join(tmpdir, name))
        os.makedirs(self.directory, exist_ok=True)
        self.host = host
        self.sip_port = free_port()
        self.rtp_port = free_port(span=2)
        self.registrar_port = registrar_port
        self.codec = codec
        self.tone_wav = os.path.abspath(tone_wav)
        self.record_wav = os.path.join(self.directory, "received.wav")
        self.log_path = os.path.join(self.directory, "linphonec.log")
        self.process = _StdinProcess(f"linphonec {name} :{self.sip_port}", self.log_path)

    def command(self, line):
        os.write(self.process.stdin, line.encode() + b"\n")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10.0, start=0):
        """
        Fire with the first match of C{pattern} in the log after offset C{start}.
        """
        def check():
            self.process.check_running()
            return re.search(pattern, self.log()[start:])

        return poll(check, timeout, message=lambda: f"{pattern!r} not in {self.log_path}:\n"
                    f"{self.log()[-3000:]}")

    @defer.inlineCallbacks
    def start(self):
        rc = os.path.join(self.directory, "linphonerc")
        with open(rc, "w") as f:
            f.write(_LINPHONERC.format(sip_port=self.sip_port, rtp_port=self.rtp_port,
                                       user=self.name))
        # Without a writable database directory liblinphone never brings its core up.
        os.makedirs(os.path.join(self.directory, ".local", "share", "linphone"), exist_ok=True)
        env = dict(os.environ, HOME=self.directory)
        # Line-buffered, so state messages reach the log while it runs.
        argv = [shutil.which("stdbuf") or "/usr/bin/stdbuf", "-oL", self.executable,
                "-c", rc, "-a", "-S", "-d", "0"]
        if self.netns is not None:
            argv = [shutil.which("ip"), "netns", "exec", self.netns] + argv
        self.process.spawn(argv, self.directory, env)
        self.command("soundcard use files")
        self.command("codec list")
        yield self.wait_log(r"linphonec> codec list\n(( *\d+: .*\n)+)")
        listing = re.search(r"codec list\n((?: *\d+: .*\n)+)", self.log()).group(1)
        wanted = None
        for index, mime, rate in re.findall(r" *(\d+): (\S+) \((\d+)\)", listing):
            if (mime.lower(), int(rate)) == (self.codec[0].lower(), self.codec[1]):
                wanted = index
            else:
                self.command(f"codec disable {index}")
        if wanted is None:
            raise SkipTest(f"linphonec has no {self.codec}: {listing}")
        self.command(f"codec enable {wanted}")
        self.command(f"play {self.tone_wav}")
        self.command(f"record {self.record_wav}")
        mark = len(self.log())
        self.command(f"register sip:{self.name}@{self.host}:{self.registrar_port} "
                     f"sip:{self.host}:{self.registrar_port} x")
        for _ in range(50):
            self.command("status register")
            yield task.deferLater(reactor, 0.2, lambda: None)
            if re.search(r"\bregistered[,=]", self.log()[mark:]):
                return self
        raise PeerError(f"linphonec {self.name} did not register:\n{self.log()[-2000:]}")

    def wait_received(self, size, timeout=10.0):
        """
        Fire once the recording of received audio holds C{size} bytes.
        """
        return poll(lambda: os.path.exists(self.record_wav)
                    and os.path.getsize(self.record_wav) >= size, timeout,
                    message=lambda: f"linphonec {self.name} recorded too little")

    @defer.inlineCallbacks
    def wait_recording(self, timeout=10.0):
        """
        Fire with the recording's path once the call ended and the WAV header is written
        (mediastreamer2 writes it when the recording is closed).
        """
        def complete():
            with open(self.record_wav, "rb") as f:
                return f.read(4) == b"RIFF"

        yield poll(complete, timeout, message=lambda: f"{self.record_wav} never completed")
        return self.record_wav

    def stop(self):
        if self.process.transport is not None and not self.process.ended:
            try:
                self.command("quit")
            except OSError:
                pass
        return self.process.stop()


class LinphoneCodecTests(CallTestCase):
    """
    WCS client (Opus) -> server -> linphonec (one SIP-only codec).
    """

    timeout = 60

    async def linphone(self, codec, tone_hz):
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), tone_hz, 30,
                                   rate=codec[1] if codec[1] != 8000 else 8000)
        bob = Linphone(self.base, "bob", self.sip_port, codec, wav)
        self.addCleanup(bob.stop)
        await bob.start()
        return bob

    async def call_and_check(self, codec, expected_name):
        bob = await self.linphone(codec, 1000)
        alice = await self.connect_local("alice")
        call_id = await alice.call("bob", tone_hz=440, codecs=["opus"])
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        [call] = self.server.calls
        self.assertEqual((call.rtp.audio_codec, call.bridge.mode), (expected_name, "transcode"))
        received = await alice.wait_audio(call_id, seconds=2, timeout=10)
        self.assertFrequency(received, 1000)
        await bob.wait_received(2 * 2 * codec[1] * 2)
        await alice.hangup(call_id)
        self.assertFrequency(await bob.wait_recording(), 440)
        return call

    async def test_speex_16000(self):
        """
        Wide-band Speex on the SIP leg, Opus on the WebRTC leg: 1000 Hz and 440 Hz arrive.
        """
        await self.call_and_check(("speex", 16000), "speex/16000")

    async def test_speex_8000(self):
        """
        Narrow-band Speex on the SIP leg.
        """
        await self.call_and_check(("speex", 8000), "speex/8000")

    async def test_g729(self):
        """
        G.729 on the SIP leg (bcg729 at both ends).
        """
        await self.call_and_check(("G729", 8000), "G729/8000")

    async def test_g722(self):
        """
        G.722 on the SIP leg.
        """
        await self.call_and_check(("G722", 8000), "G722/8000")


class NetemLink:
    """
    A network namespace joined to this one by a veth pair (addresses only on the pair),
    with netem on both ends: what linphonec sends and what it receives is delayed, jittered
    and lost.  Needs root (CI runs as root); L{remove} deletes everything.
    """

    def __init__(self, netem=("delay", "40ms", "30ms", "loss", "5%")):
        tag = f"{os.getpid() % 100000}"
        self.name = f"wcsjb{tag}"
        self.outer, self.inner = f"wjb{tag}a", f"wjb{tag}b"
        self.host, self.peer = "10.213.0.1", "10.213.0.2"
        self.netem = list(netem)

    def _ip(self, *args, inside=False):
        argv = (["ip", "netns", "exec", self.name] if inside else []) + list(args)
        subprocess.run(argv, check=True, capture_output=True)

    def create(self):
        if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
            raise SkipTest("needs root, ip and tc (iproute2) for a network namespace")
        self.remove()
        try:
            self._ip("ip", "netns", "add", self.name)
        except subprocess.CalledProcessError as e:
            raise SkipTest(f"cannot create a network namespace: {e.stderr!r}")
        self._ip("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        self._ip("ip", "link", "set", self.inner, "netns", self.name)
        self._ip("ip", "addr", "add", f"{self.host}/30", "dev", self.outer)
        self._ip("ip", "link", "set", self.outer, "up")
        self._ip("ip", "addr", "add", f"{self.peer}/30", "dev", self.inner, inside=True)
        self._ip("ip", "link", "set", self.inner, "up", inside=True)
        self._ip("ip", "link", "set", "lo", "up", inside=True)
        self._ip("ip", "route", "add", "default", "via", self.host, inside=True)
        try:
            self._ip("tc", "qdisc", "add", "dev", self.outer, "root", "netem", *self.netem)
            self._ip("tc", "qdisc", "add", "dev", self.inner, "root", "netem", *self.netem,
                     inside=True)
        except subprocess.CalledProcessError as e:
            self.remove()
            raise SkipTest(f"netem is not available: {e.stderr!r}")

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True)


def impair(leg, rng, loss=0.05, delay=0.040, jitter=0.030):
    """
    netem's job done in-process, for kernels without sch_netem: every datagram the SIP leg
    C{leg} receives is lost with probability C{loss} or handed on after C{delay} +-
    C{jitter} seconds (uniform, so packets overtake each other as under netem).
    """
    receive = leg.datagramReceived

    def impaired(data, addr):
        if rng.random() >= loss:
            reactor.callLater(max(0.0, rng.uniform(delay - jitter, delay + jitter)),
                              receive, data, addr)

    leg.datagramReceived = impaired


class LossyLinkTests(CallTestCase):
    """
    The SIP leg with 5 % loss and 40 +- 30 ms delay: the jitter buffer reorders and
    conceals, and the tone still measures right at both ends.

    netem on a veth pair into a network namespace (both directions) when the kernel has
    sch_netem; otherwise the same impairment is applied in-process to what the SIP leg
    receives (the direction our jitter buffer serves), on loopback.
    """

    timeout = 60
    log = Logger()

    async def setUp(self):
        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise SkipTest("needs --reactor=asyncio (aiortc)")
        self.link = NetemLink()
        try:
            self.link.create()
        except SkipTest as reason:
            self.link = None
            self.host = "127.0.0.1"
            self.impairment = f"in-process ({reason})"
        else:
            self.addCleanup(self.link.remove)
            self.host = self.link.host
            self.impairment = "netem"
        self.server = await start_media_server(self, media_ports=200, host=self.host,
                                               keep_alive_interval_ms=1000)
        self.ws_url = f"ws://{self.host}:{bound_port(self.server, 'ws')}"
        self.sip_port = bound_port(self.server, "sip-udp")
        self.base = self.mktemp()
        os.makedirs(self.base)

    async def lossy_call(self, codec):
        wav = audio.write_tone_wav(os.path.join(self.base, "bob.wav"), 1000, 30, rate=codec[1])
        bob = Linphone(self.base, "bob", self.sip_port, codec, wav, host=self.host,
                       netns=None if self.link is None else self.link.name)
        self.addCleanup(bob.stop)
        await bob.start()
        alice = WCSClient(self.ws_url, reactor, directory=os.path.join(self.base, "alice"))
        self.addCleanup(alice.close)
        await alice.connect(sipLogin="alice", sipAuthenticationName="alice", sipPassword="x",
                            sipDomain=self.host, sipOutboundProxy=self.host,
                            sipPort="0", sipRegisterRequired=False)
        call_id = await alice.call("bob", tone_hz=440, codecs=["opus"])
        if self.link is None:
            await poll(lambda: list(self.server.calls) and list(self.server.calls)[0].rtp, 10)
            impair(list(self.server.calls)[0].rtp.audio_rtp, random.Random(12))
        await alice.wait_status(call_id, "ESTABLISHED", timeout=15)
        [call] = self.server.calls
        received = await alice.wait_audio(call_id, seconds=6, timeout=15)
        await bob.wait_received(6 * 2 * codec[1])
        [from_phone] = [t for t in call.bridge.transcoders.values()
                        if t.source.encoding == codec[0].lower()]
        jitter = from_phone.jitter
        figures = {"impairment": self.impairment, "codec": call.rtp.audio_codec, "packets": from_phone.packets_in,
                   "lost": jitter.lost, "late": jitter.late, "recovered": jitter.recovered,
                   "browser_hz": audio.dominant_frequency(received),
                   "browser_purity": purity(received, 1000)}
        await alice.hangup(call_id)
        recording = await bob.wait_recording()
        figures.update(phone_hz=audio.dominant_frequency(recording),
                       phone_purity=purity(recording, 440))
        self.log.info("netem figures: {figures}", figures=figures)
        self.assertLess(abs(figures["browser_hz"] - 1000), 10, figures)
        self.assertLess(abs(figures["phone_hz"] - 440), 10, figures)
        self.assertGreater(jitter.lost, 0, figures)
        return figures

    async def test_speex_16000_with_loss_and_jitter(self):
        """
        Speex 16 kHz: losses concealed by libspeex's PLC, the tone right at both ends.
        """
        figures = await self.lossy_call(("speex", 16000))
        # No purity bound on what the browser hears (decoded from lossy Speex): after any lost
        # frame a CELP decoder's pitch memory is off, and on a pure tone that error decays
        # slowly, the same with the frame left out entirely (docs/media.md, "Jitter buffer").
        # What linphonec hears comes from our encoder and must stay pure.
        self.assertGreater(figures["phone_purity"], 0.9, figures)

    async def test_pcmu_with_loss_and_jitter(self):
        """
        PCMU: losses concealed by a fading repeat of the last frame.
        """
        figures = await self.lossy_call(("PCMU", 8000))
        self.assertGreater(figures["browser_purity"], 0.95, figures)


def purity(path, freq, start=0.5):
    """
    The share of C{path}'s power (from C{start} s) within 50 Hz of C{freq}.
    """
    samples, rate = audio.read_wav(path)
    x = samples[int(start * rate):]
    spectrum = numpy.abs(numpy.fft.rfft(x * numpy.hanning(len(x)))) ** 2
    hz = numpy.fft.rfftfreq(len(x), 1.0 / rate)
    return float(spectrum[numpy.abs(hz - freq) <= 50].sum() / spectrum.sum())
