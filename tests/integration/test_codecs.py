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
import re
import shutil

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SkipTest

from tests.integration import audio
from tests.integration.peers import PeerError, PeerProcess, free_port, poll, require_binary
from tests.integration.test_calls import CallTestCase

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

    def __init__(self, tmpdir, name, registrar_port, codec, tone_wav, host="127.0.0.1"):
        """
        @param codec: (mime, rate) of the only codec to enable, e.g. C{("speex", 16000)}.
        """
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
        self.process.spawn([shutil.which("stdbuf") or "/usr/bin/stdbuf", "-oL", self.executable,
                            "-c", rc, "-a", "-S", "-d", "0"], self.directory, env)
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
