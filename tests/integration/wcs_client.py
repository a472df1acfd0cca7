# -*- test-case-name: tests.integration.test_wcs_client -*-
"""
A test client that behaves like the official WCS Web SDK (2.0) in a browser,
with aiortc as the media engine, for end-to-end tests of the gateway.

The wire behaviour follows docs/protocol.md and the compatibility
specification (sections 1-9 and 14), not our server: where the SDK is
fussy, so is this client, and it writes down in C{violations} every server
message the real SDK would choke on (a message without a C{data} array, a
C{setRemoteSDP} after C{notifyIncomingCall}, a second C{setRemoteSDP}, ...).

What it does like the SDK:
  - C{connection} right after the WebSocket opens, with appKey
    C{"defaultApp"}, mediaProviders C{["WebRTC"]}, clientVersion C{"2.0"} and
    the SIP fields given (C{sipPort} as a string, as the demo pages send it);
  - a C{pong} with C{data: [null]} for every server C{ping};
  - offers and answers sent *without* ICE candidates: the SDP goes out with
    every C{a=candidate} and C{a=end-of-candidates} line removed, C{m=} port 9
    and C{c=IN IP4 0.0.0.0}, as Chrome's SDP looks before gathering, so the
    server has to learn our address from the STUN checks we send it;
  - C{setRemoteSDP [id, sdp, isInitiator]} is an answer when we hold a local
    offer, and is cached (the SDK's C{remoteSdpCache}) when it names no known
    call or stream: that is how an incoming call's offer arrives, and it must
    come *before* C{notifyIncomingCall};
  - call status comes from C{data[0].status} of notifyTryingResponse, ring,
    talk, hold and finish; the call is released on FINISH, FAILED or BUSY;
    C{hangup} is not sent for a call that is still NEW, nor for an outgoing
    call still PENDING (the SDK only fails it locally).

Media: the local audio is a generated sine (L{ToneTrack}, 440 Hz by default)
or a WAV file through aiortc's C{MediaPlayer}; the received audio of every
call or stream is written to a mono 16-bit WAV (L{WAVRecorder}) that
L{tests.integration.audio.dominant_frequency} can analyse. RTP counters come
from C{RTCPeerConnection.getStats()} (inbound-rtp C{packetsReceived},
outbound-rtp C{packetsSent}).

Twisted and asyncio: the client runs under trial's asyncio reactor. The
WebSocket is Autobahn's Twisted client; the media work is asyncio
coroutines (aiortc), which await Twisted Deferreds with C{asFuture}. Every
public method returns a Deferred (C{Deferred.fromFuture} at the edge), and
every wait has a time limit that fails with L{WCSTimeout}, naming what was
awaited and the last messages received.

Loopback (test-only hack): aioice leaves 127.0.0.1 out of its host
candidates (C{aioice.ice.get_host_addresses}, aioice 0.13). While one of our
peer connections gathers candidates (C{setLocalDescription}), that module
global is replaced with a function returning C{["127.0.0.1"]}
(L{loopback_host_addresses}; reference-counted, so overlapping gatherings
restore the original exactly once). It is process-wide while it lasts, which
is acceptable in a test process and must never be done in the server. Pass
C{loopback=False} to leave aioice alone.

Typical use inside a C{twisted.trial.unittest.TestCase}::

    client = WCSClient("ws://127.0.0.1:%d" % port, reactor, directory=self.mktemp())
    self.addCleanup(client.close)
    user = await client.connect(sipLogin="alice", sipPassword="secret",
                                sipDomain="127.0.0.1", sipPort=5060,
                                sipRegisterRequired=True)
    await client.wait_registered()
    call_id = await client.call("bob", codecs=["PCMU"])
    await client.wait_status(call_id, "ESTABLISHED")
    path = await client.wait_audio(call_id, 1.5)
    audio.dominant_frequency(path)            # the far end's tone
    await client.hangup(call_id)
    await client.wait_status(call_id, "FINISH")
    assert client.violations == []
"""

import asyncio
import contextlib
import fractions
import json
import os
import shutil
import struct
import tempfile
import uuid

import aioice.ice
import av
import numpy
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.util import parse_url
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS

LOOPBACK = "127.0.0.1"

CALL_STATUS_MESSAGES = frozenset(["notifyTryingResponse", "ring", "talk", "hold", "finish"])
CALL_FINAL_STATUSES = frozenset(["FINISH", "FAILED", "BUSY"])
STREAM_FINAL_STATUSES = frozenset(["FAILED", "STOPPED", "UNPUBLISHED"])
# Stream statuses the SDK ignores (replaced by notifyStreamEvent).
DEPRECATED_STREAM_STATUSES = frozenset(["RESIZE", "SNAPSHOT_COMPLETE", "NOT_ENOUGH_BANDWIDTH"])
DTMF_TYPES = ("RFC2833", "INFO", "INFO_RELAY")
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) wcs-twisted test client (aiortc)"

_PENDING = object()


class WCSClientError(Exception):
    """
    Base class of the test client's errors.
    """


class WCSTimeout(WCSClientError):
    """
    A wait ran out of time.
    """


class WCSConnectionClosed(WCSClientError):
    """
    The WebSocket closed (or never opened) while something was awaited.
    """


class WCSProtocolError(WCSClientError):
    """
    The server did something the Web SDK cannot cope with (the server's
    fault), so the client cannot go on the way a browser would.
    """


class WCSUsageError(WCSClientError):
    """
    The test used the client wrongly (the test's fault).
    """


class WCSSessionEnded(WCSClientError):
    """
    A call or stream reached a final status other than the one awaited.
    """


class WCSRequestFailed(WCSClientError):
    """
    The server answered with C{fail}; C{.obj} is its C{data[0]}.
    """

    def __init__(self, message, obj):
        super().__init__(message)
        self.obj = obj


# -- loopback gathering -------------------------------------------------------

_loopback_users = 0
_saved_get_host_addresses = None


def _loopback_only(use_ipv4=True, use_ipv6=False):
    return [LOOPBACK]


@contextlib.contextmanager
def loopback_host_addresses():
    """
    While the block runs, make aioice gather 127.0.0.1 only (see the module
    docstring). Nested and overlapping uses are counted; the original
    function comes back when the last one ends.
    """
    global _loopback_users, _saved_get_host_addresses
    if not hasattr(aioice.ice, "get_host_addresses"):
        raise WCSUsageError("this aioice has no aioice.ice.get_host_addresses; update the patch")
    if _loopback_users == 0:
        _saved_get_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _loopback_only
    _loopback_users += 1
    try:
        yield
    finally:
        _loopback_users -= 1
        if _loopback_users == 0:
            aioice.ice.get_host_addresses = _saved_get_host_addresses
            _saved_get_host_addresses = None


async def close_peer_connection(pc):
    """
    Close an aiortc peer connection and make sure aioice left no task behind.

    aioice 0.13 race: when the connection is closed while ICE is still
    connecting, and the check list has just completed, C{connect()} wakes
    up after C{close()} and starts the consent-freshness task, which nobody
    cancels. So wait for each ICE transport's start to finish (aiortc's
    private C{__start} event) and cancel that task if it appeared.
    """
    transports = []
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        if ice not in transports:
            transports.append(ice)
    await pc.close()
    for ice in transports:
        started = getattr(ice, "_RTCIceTransport__start", None)
        if started is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(started.wait(), 2.0)
        task = getattr(ice._connection, "_query_consent_task", None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def sdk_sdp(sdp):
    """
    Return C{sdp} as the Web SDK sends it: no C{a=candidate} and no
    C{a=end-of-candidates} lines, and the placeholder address Chrome puts in
    an SDP before gathering (C{m=} port 9, C{c=IN IP4 0.0.0.0}). Rejected
    media (port 0) keep their port.
    """
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") or line == "a=end-of-candidates" or not line:
            continue
        if line.startswith("m="):
            parts = line.split(" ")
            if parts[1] != "0":
                parts[1] = "9"
            line = " ".join(parts)
        elif line.startswith("c="):
            line = "c=IN IP4 0.0.0.0"
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def payload_types(sdp, kind="audio"):
    """
    Return the payload-type numbers of the first C{m=<kind>} line of C{sdp}.
    """
    for line in sdp.splitlines():
        if line.startswith(f"m={kind} "):
            return [int(pt) for pt in line.split()[3:]]
    return []


# -- media sources and sinks ----------------------------------------------------

class ToneTrack(MediaStreamTrack):
    """
    An audio track playing a continuous sine of C{frequency} Hz (0 is
    silence), paced in real time in 20 ms frames of mono 16-bit samples.
    """

    kind = "audio"

    def __init__(self, frequency=440.0, amplitude=0.5, sample_rate=48000, ptime=0.02):
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.sample_rate = sample_rate
        self.samples_per_frame = int(sample_rate * ptime)
        self._index = 0
        self._start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            wait = self._start + self._index / self.sample_rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        n = self.samples_per_frame
        t = (numpy.arange(n) + self._index) / self.sample_rate
        wave = self.amplitude * 32767.0 * numpy.sin(2.0 * numpy.pi * self.frequency * t)
        frame = av.AudioFrame.from_ndarray(
            wave.round().astype("<i2").reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._index
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        self._index += n
        return frame


class WAVRecorder:
    """
    Writes the frames of a received audio track to a mono 16-bit PCM WAV
    file at C{rate} Hz, as they arrive.

    The header's sizes stay 0 until L{stop} (L{tests.integration.audio.read_wav}
    reads such a file to its end), and the file is flushed after every
    frame, so a test can analyse it while the call goes on. C{on_progress}
    is called after each frame.
    """

    def __init__(self, path, rate=8000, on_progress=None):
        self.path = path
        self.rate = rate
        self.on_progress = on_progress
        self.frames = 0
        self.samples = 0
        self._file = None
        self._task = None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    @property
    def duration(self):
        """
        Seconds of audio written so far.
        """
        return self.samples / self.rate

    @property
    def running(self):
        return self._task is not None and not self._task.done()

    def start(self, track):
        """
        Start pulling C{track} (an aiortc audio track).
        """
        if self._file is not None:
            raise WCSUsageError(f"{self.path} is already recording")
        self._file = open(self.path, "wb")
        self._file.write(self._header(0))
        self._file.flush()
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            for out in self._resampler.resample(frame):
                self._file.write(out.to_ndarray().astype("<i2").tobytes())
                self.samples += out.samples
            self._file.flush()
            if self.on_progress is not None:
                self.on_progress()

    async def wait_duration(self, seconds):
        """
        Return once at least C{seconds} of audio have been written (callers
        bound this with a timeout).
        """
        while self.duration < seconds:
            if self._task is not None and self._task.done():
                raise WCSClientError(
                    f"{self.path}: the track ended after {self.duration:.2f}s of audio")
            await asyncio.sleep(0.02)
        return self.path

    async def stop(self):
        """
        Stop recording and write the final sizes into the header.
        """
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._file is not None and not self._file.closed:
            size = self.samples * 2
            self._file.seek(0)
            self._file.write(self._header(size))
            self._file.close()

    def _header(self, size):
        riff = 36 + size if size else 0
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF", riff, b"WAVE", b"fmt ", 16, 1, 1, self.rate, self.rate * 2, 2, 16,
            b"data", size,
        )


# -- sessions -------------------------------------------------------------------

class MediaSession:
    """
    What the client knows about one call or stream: its peer connection,
    the statuses the server reported (in order, with the objects), the
    recording of the received audio, and any local failure.
    """

    final_statuses = frozenset()
    label = "session"

    def __init__(self, session_id):
        self.id = session_id
        self.status = "NEW"
        self.statuses = []
        self.events = []
        self.info = None
        self.pc = None
        self.local_sdp = None
        self.remote_sdp = None
        self.local_tracks = []
        self.players = []
        self.recorder = None
        self.video_frames_received = 0
        self.final_stats = None
        self.error = None
        self.released = False
        self.mark = 0
        self._consumers = []
        self._media_closed = None

    @property
    def ended(self):
        return self.status in self.final_statuses

    @property
    def media_closed(self):
        """
        Whether the peer connection and the recording have been closed.
        """
        return self._media_closed is not None and self._media_closed.done()

    def _record(self, obj):
        status = obj.get("status")
        self.statuses.append(status)
        self.events.append(obj)
        self.status = status
        if "info" in obj:
            self.info = obj["info"]

    def __repr__(self):
        return f"<{type(self).__name__} {self.id} {self.status}>"


class WCSCall(MediaSession):
    """
    A call, outgoing (C{call()}) or incoming (C{notifyIncomingCall}).
    """

    final_statuses = CALL_FINAL_STATUSES
    label = "call"

    def __init__(self, call_id, incoming, caller=None, callee=None, visible_name=None,
                 custom=None):
        super().__init__(call_id)
        self.incoming = incoming
        self.caller = caller
        self.callee = callee
        self.visible_name = visible_name
        self.custom = custom
        self.incoming_object = None
        self.transfer_statuses = []
        self.transfer_events = []


class WCSStream(MediaSession):
    """
    A played (C{playStream}) or published (C{publishStream}) stream.
    """

    final_statuses = STREAM_FINAL_STATUSES
    label = "stream"

    def __init__(self, media_session_id, name, published):
        super().__init__(media_session_id)
        self.name = name
        self.published = published
        self.record_name = None

    def _record(self, obj):
        super()._record(obj)
        if obj.get("recordName"):
            self.record_name = obj["recordName"]


# -- the WebSocket --------------------------------------------------------------

class _WCSClientProtocol(WebSocketClientProtocol):
    """
    The Autobahn side of L{WCSClient}: hands everything to the client.
    """

    def onOpen(self):
        self.factory.client._socket_opened(self)

    def onMessage(self, payload, isBinary):
        self.factory.client._message_received(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        self.factory.client._socket_closed(wasClean, code, reason)


class _Waiter:
    def __init__(self, description, check, deferred):
        self.description = description
        self.check = check
        self.deferred = deferred
        self.timer = None


class WCSClient:
    """
    One browser tab running the WCS Web SDK: one WebSocket session, its
    calls and its streams.

    Public state for assertions: C{messages} (every server message, parsed,
    in order), C{sent} (every message we sent), C{status} (the SDK's
    SESSION_STATUS), C{user_data} (the getUserData object), C{calls} and
    C{streams} (by id), C{violations} (server behaviour that breaks the real
    SDK), C{errors} (local media failures) and C{warnings} (C{fail} objects).
    """

    def __init__(self, url, reactor, directory=None, loopback=True, tls_options=None,
                 record_rate=8000):
        if not hasattr(reactor, "_asyncioEventloop"):
            raise WCSUsageError("WCSClient needs the asyncio reactor (trial --reactor=asyncio)")
        self.url = url
        self.reactor = reactor
        self.loopback = loopback
        self.tls_options = tls_options
        self.record_rate = record_rate
        if directory is None:
            self.directory = tempfile.mkdtemp(prefix="wcs-client-")
            self._own_directory = True
        else:
            os.makedirs(directory, exist_ok=True)
            self.directory = directory
            self._own_directory = False
        self.status = "PENDING"
        self.connection = None
        self.user_data = None
        self.messages = []
        self.sent = []
        self.violations = []
        self.errors = []
        self.warnings = []
        self.calls = {}
        self.streams = {}
        self.remote_sdp_cache = {}
        self.close_code = None
        self.close_reason = None
        self._protocol = None
        self._connected_protocol = None
        self._opened = False
        self._closed = False
        self._closing = None
        self._waiters = []
        self._tasks = set()
        self._incoming_order = []
        self._claimed_incoming = set()
        self._handlers = {
            "ping": self._handle_ping,
            "getUserData": self._handle_user_data,
            "registered": self._handle_registered,
            "fail": self._handle_fail,
            "setRemoteSDP": self._handle_remote_sdp,
            "notifyIncomingCall": self._handle_incoming_call,
            "notifyTryingResponse": self._handle_call_status,
            "ring": self._handle_call_status,
            "talk": self._handle_call_status,
            "hold": self._handle_call_status,
            "finish": self._handle_call_status,
            "notifyTransferEvent": self._handle_transfer_event,
            "notifyStreamStatusEvent": self._handle_stream_status,
            "notifyVideoFormat": self._handle_video_format,
        }

    # -- session ------------------------------------------------------------

    def connect(self, timeout=10.0, **connection_fields):
        """
        Open the WebSocket and send C{connection} like C{createSession()}:
        appKey C{"defaultApp"}, mediaProviders C{["WebRTC"]}, clientVersion
        C{"2.0"} plus C{connection_fields} (C{sipLogin}, C{sipPassword},
        C{sipDomain}, C{sipPort} (sent as a string), C{sipRegisterRequired},
        C{keepAlive}, C{authToken}, ...; a field given as None is left out,
        like an undefined one). Fires with the getUserData object.
        """
        return self._run(self._connect(timeout, connection_fields))

    async def connect_registered(self, login, password, registrar_port, host="127.0.0.1",
                                 timeout=10.0):
        """
        Connect with the account C{login}/C{password} at the registrar on C{host}:
        C{registrar_port} (also the outbound proxy) and wait until it is registered there.
        """
        user = await self.connect(sipLogin=login, sipAuthenticationName=login,
                                  sipPassword=password, sipDomain=host, sipOutboundProxy=host,
                                  sipPort=str(registrar_port), sipRegisterRequired=True)
        await self.wait_registered(timeout=timeout)
        return user

    async def _connect(self, timeout, fields):
        if self._protocol is not None or self._closed:
            raise WCSUsageError("connect() may be called once per WCSClient")
        is_secure, host, port, _, _, _ = parse_url(self.url)
        factory = WebSocketClientFactory(self.url, reactor=self.reactor)
        factory.protocol = _WCSClientProtocol
        factory.client = self
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=timeout)
        else:
            endpoint = HostnameEndpoint(self.reactor, host, port, timeout=timeout)
        if is_secure:
            endpoint = wrapClientTLS(self.tls_options or optionsForClientTLS(host), endpoint)
        try:
            self._connected_protocol = await self._await(endpoint.connect(factory))
        except Exception as e:
            self._closed = True
            self.status = "FAILED"
            raise WCSConnectionClosed(f"cannot connect to {self.url}: {e}") from e
        await self._await(self._wait(f"the WebSocket handshake with {self.url}",
                                     self._check_opened, timeout))
        connection = {
            "appKey": "defaultApp",
            "mediaProviders": ["WebRTC"],
            "clientVersion": "2.0",
            "clientOSVersion": "5.0 (X11)",
            "clientBrowserVersion": USER_AGENT,
            "msePacketizationVersion": 2,
            "clientInfo": {"mobile": False, "platform": "Linux",
                           "brands": [{"brand": "aiortc", "version": "1"}]},
        }
        for name, value in fields.items():
            if value is None:
                connection.pop(name, None)
            elif name == "sipPort":
                connection[name] = str(value)
            else:
                connection[name] = value
        self.connection = connection
        self._send("connection", connection)
        message = await self._await(self.wait_message("getUserData", timeout=timeout))
        return message["data"][0]

    def _check_opened(self):
        if self._opened:
            return True
        if self._closed:
            raise WCSConnectionClosed(
                f"{self.url} closed during the handshake ({self.close_code} {self.close_reason})")
        return _PENDING

    def wait_registered(self, timeout=10.0):
        """
        Fire with the C{registered} message; fail with L{WCSRequestFailed} on
        a C{fail} about registration, or when the socket closes first.
        """
        position = [0]

        def check():
            while position[0] < len(self.messages):
                message = self.messages[position[0]]
                position[0] += 1
                name = message.get("message")
                if name == "registered":
                    return message
                obj = _first(message)
                if name == "fail" and isinstance(obj, dict) and \
                        obj.get("apiMethod") == "RegistrationStatusEvent":
                    raise WCSRequestFailed(f"registration failed: {obj}", obj)
            self._raise_if_closed("registered")
            return _PENDING
        return self._wait("registered", check, timeout)

    def wait_message(self, name, predicate=None, timeout=10.0, since=0):
        """
        Fire with the first server message called C{name} at index C{since}
        or later of C{messages} for which C{predicate(message)} holds (the
        whole message dict, C{{"message": ..., "data": [...]}}; a predicate
        that raises LookupError, TypeError or AttributeError does not match).
        The default C{since=0} also finds messages that arrived earlier; pass
        C{since=len(client.messages)} to wait for a new one.
        """
        position = [since]

        def check():
            while position[0] < len(self.messages):
                message = self.messages[position[0]]
                position[0] += 1
                if message.get("message") == name and _matches(predicate, message):
                    return message
            self._raise_if_closed(name)
            return _PENDING
        return self._wait(f"server message {name!r}", check, timeout)

    def close(self, timeout=5.0):
        """
        Close the WebSocket (cleanly, or abort after C{timeout}), close every
        peer connection and recording, and wait for the client's asyncio
        tasks. Safe to call more than once, and after the server closed.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(timeout))
        return defer.Deferred.fromFuture(asyncio.ensure_future(asyncio.shield(self._closing)))

    async def _close(self, timeout):
        protocol = self._protocol
        if protocol is not None and not self._closed:
            protocol.sendClose(1000)
            try:
                await self._await(self._wait("the WebSocket close", self._check_closed, timeout))
            except WCSTimeout:
                protocol.dropConnection(abort=True)
                await self._await(self._wait("the aborted WebSocket", self._check_closed, 1.0))
        elif self._connected_protocol is not None and not self._closed:
            # TCP is up but the WebSocket handshake has not finished.
            self._connected_protocol.dropConnection(abort=True)
            await self._await(self._wait("the aborted WebSocket", self._check_closed, 1.0))
        self._closed = True
        for session in list(self.calls.values()) + list(self.streams.values()):
            session.released = True
            await self._close_media(session)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and t is not self._closing]
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._poke()
        for waiter in list(self._waiters):
            self._finish(waiter, WCSConnectionClosed(f"client closed while waiting for "
                                                     f"{waiter.description}"))
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _check_closed(self):
        return True if self._closed else _PENDING

    # -- calls --------------------------------------------------------------

    def call(self, callee, audio=True, video=False, codecs=None, video_codecs=None,
             tone_hz=440.0, wav=None, visible_name=None, custom=None, sip_sdp=None,
             sip_headers=None):
        """
        Place a call like C{session.createCall({callee, ...}).call()}: a peer
        connection with a C{tone_hz} sine (or C{wav}, looped) and optional
        video, codecs restricted to C{codecs} (names such as C{"opus"},
        C{"PCMU"}, in order of preference) with setCodecPreferences, and a
        C{call} message carrying the offer without candidates. Fires with the
        callId (a uuid1) once the message is sent.  C{sip_headers}: the
        call's C{sipHeaders} (X- headers for the INVITE).
        """
        return self._run(self._call(callee, audio, video, codecs, video_codecs, tone_hz, wav,
                                    visible_name, custom, sip_sdp, sip_headers))

    async def _call(self, callee, audio, video, codecs, video_codecs, tone_hz, wav,
                    visible_name, custom, sip_sdp, sip_headers=None):
        self._require_session(("ESTABLISHED", "REGISTERED"), "call()")
        login = self.user_data.get("sipLogin") or ""
        call = WCSCall(str(uuid.uuid1()), incoming=False, caller=login, callee=callee,
                       visible_name=visible_name or login, custom=custom)
        self.calls[call.id] = call
        pc = self._new_pc(call)
        if audio:
            transceiver = pc.addTransceiver(self._audio_source(call, tone_hz, wav),
                                            direction="sendrecv")
        else:
            transceiver = pc.addTransceiver("audio", direction="recvonly")
        _prefer_codecs(transceiver, "audio", codecs)
        if video:
            track = VideoStreamTrack()
            call.local_tracks.append(track)
            _prefer_codecs(pc.addTransceiver(track, direction="sendrecv"), "video", video_codecs)
        call.status = "PENDING"
        call.local_sdp = await self._local_description(pc, offer=True)
        payload = {
            "callId": call.id,
            "incoming": False,
            "hasVideo": bool(video),
            "hasAudio": bool(audio),
            "status": "PENDING",
            "mediaProvider": "WebRTC",
            "sdp": call.local_sdp,
            "sipSDP": sip_sdp,
            "caller": login,
            "callee": callee,
            "custom": custom,
            "sipHeaders": sip_headers,
            "visibleName": call.visible_name,
            "localMediaInfo": _local_media_info(call),
        }
        call.mark = len(call.statuses)
        self._send("call", {k: v for k, v in payload.items() if v is not None})
        return call.id

    def wait_incoming_call(self, timeout=10.0):
        """
        Fire with the callId of the next C{notifyIncomingCall} that this
        method has not returned before.
        """
        def check():
            for call_id in self._incoming_order:
                if call_id not in self._claimed_incoming:
                    self._claimed_incoming.add(call_id)
                    return call_id
            self._raise_if_closed("notifyIncomingCall")
            return _PENDING
        return self._wait("an incoming call", check, timeout)

    def answer(self, call_id, audio=True, video=False, codecs=None, tone_hz=440.0, wav=None):
        """
        Answer an incoming call like C{call.answer()}: apply the cached
        server offer, add our tone (or C{wav}), and send C{answer} with the
        answer SDP (no candidates). Fails with L{WCSProtocolError} when no
        C{setRemoteSDP} for the call arrived before its C{notifyIncomingCall}
        (the SDK then throws "No remote sdp available"). Fires with the callId.
        """
        call = self.calls.get(call_id)
        if call is None or not call.incoming:
            return defer.fail(WCSUsageError(f"{call_id} is not an incoming call"))
        if call.pc is not None:
            return defer.fail(WCSUsageError(f"{call_id} was already answered"))
        if call.status not in ("NEW", "RING"):
            return defer.fail(WCSUsageError(
                f"answer() needs call status NEW or RING (as in the SDK); {call_id} is "
                f"{call.status}"))
        sdp = self.remote_sdp_cache.pop(call_id, None)
        if sdp is None:
            return defer.fail(WCSProtocolError(
                f"No remote sdp available for incoming call {call_id}: the server must send "
                f"setRemoteSDP [callId, offer, false] BEFORE notifyIncomingCall; the Web SDK "
                f"only caches an offer for a call it does not know yet. Messages: "
                f"{self._message_summary(call_id)}"))
        return self._run(self._answer(call, sdp, audio, video, codecs, tone_hz, wav))

    async def _answer(self, call, sdp, audio, video, codecs, tone_hz, wav):
        pc = self._new_pc(call)
        call.remote_sdp = sdp
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                if audio and transceiver.sender.track is None:
                    pc.addTrack(self._audio_source(call, tone_hz, wav))
                _prefer_codecs(transceiver, "audio", codecs)
            elif transceiver.kind == "video" and video and transceiver.sender.track is None:
                track = VideoStreamTrack()
                call.local_tracks.append(track)
                pc.addTrack(track)
        call.local_sdp = await self._local_description(pc, offer=False)
        payload = {
            "callId": call.id,
            "incoming": True,
            "hasVideo": True,
            "hasAudio": True,
            "status": "PENDING",
            "mediaProvider": "WebRTC",
            "sdp": call.local_sdp,
            "callee": call.callee,
            "custom": call.custom,
            "localMediaInfo": _local_media_info(call),
        }
        call.mark = len(call.statuses)
        self._send("answer", {k: v for k, v in payload.items() if v is not None})
        return call.id

    def hangup(self, call_id):
        """
        Hang up like C{call.hangup()}: a call still NEW, or an outgoing call
        still PENDING, is only failed locally and nothing is sent; otherwise
        C{hangup} is sent and the peer connection closed (the call waits for
        C{finish}). Fires once the media is closed.
        """
        call = self._call_for(call_id)
        if call.released or call.ended:
            return defer.succeed(None)
        if call.status == "NEW" or (not call.incoming and call.status == "PENDING"):
            call.status = "FAILED"
            call.info = "hangup before any server status (nothing sent, as in the SDK)"
            call.released = True
        else:
            try:
                self._send("hangup", {"callId": call_id})
            except WCSConnectionClosed as e:
                return defer.fail(e)
            call.mark = len(call.statuses)
        return self._run(self._close_media(call))

    def hold(self, call_id):
        """
        Send C{hold}; the server should answer C{hold{HOLD}}.
        """
        return self._call_command("hold", call_id, {"callId": call_id})

    def hold_for_transfer(self, call_id):
        """
        Send C{hold} with C{holdForTransfer: true} (Phone-UI before a transfer).
        """
        return self._call_command("hold", call_id, {"callId": call_id, "holdForTransfer": True})

    def unhold(self, call_id):
        """
        Send C{unhold}; the server should answer C{talk{ESTABLISHED}}.
        """
        return self._call_command("unhold", call_id, {"callId": call_id})

    def send_dtmf(self, call_id, digit, type="RFC2833"):
        """
        Send C{sendDtmf} with C{dtmf} (a digit string) and C{type}
        (C{"RFC2833"}, C{"INFO"} or C{"INFO_RELAY"}); no reply is expected.
        """
        if type not in DTMF_TYPES:
            return defer.fail(WCSUsageError(f"DTMF type {type!r} is not one of {DTMF_TYPES}"))
        return self._call_command("sendDtmf", call_id,
                                  {"callId": call_id, "dtmf": str(digit), "type": type},
                                  mark=False)

    def transfer(self, call_id, target):
        """
        Send C{transfer} with C{target} (a SIP user or URI).
        """
        return self._call_command("transfer", call_id, {"callId": call_id, "target": target})

    def wait_status(self, session_id, status, timeout=10.0, since=None):
        """
        Fire with the server object that set call or stream C{session_id} to
        C{status}, looking at statuses reported since our last command for
        it (C{call}, C{answer}, C{hold}, C{unhold}, C{hangup}, C{transfer},
        C{playStream}, ...), or since index C{since} of its C{statuses}.
        Fails fast with L{WCSSessionEnded} when a different final status
        comes first.
        """
        session = self._session_for(session_id)
        start = session.mark if since is None else since

        def check():
            for index in range(start, len(session.statuses)):
                reported = session.statuses[index]
                if reported == status:
                    return session.events[index]
                if reported in session.final_statuses:
                    raise WCSSessionEnded(
                        f"{session.label} {session_id} ended with {reported} "
                        f"(info {session.events[index].get('info')!r}) while waiting for "
                        f"{status}; statuses {session.statuses}")
            if session.error is not None:
                raise WCSClientError(f"{session.label} {session_id} failed locally: "
                                     f"{session.error!r}")
            self._raise_if_closed(f"status {status}")
            return _PENDING
        return self._wait(f"{session.label} {session_id} status {status}", check, timeout)

    def wait_transfer_status(self, call_id, status, timeout=10.0):
        """
        Fire with the C{notifyTransferEvent} object that reports C{status}.
        """
        call = self._call_for(call_id)

        def check():
            for obj in call.transfer_events:
                if obj.get("status") == status:
                    return obj
            self._raise_if_closed(f"transfer status {status}")
            return _PENDING
        return self._wait(f"call {call_id} transfer status {status}", check, timeout)

    # -- streams ------------------------------------------------------------

    def play_stream(self, name, video=True, custom=None):
        """
        Play stream C{name} like C{session.createStream({name}).play()}: a
        recvonly offer (audio, and video unless C{video=False}) in
        C{playStream}. Fires with the mediaSessionId (a uuid1).
        """
        return self._run(self._open_stream(name, False, True, video, None, None, 440.0, None,
                                           False, custom))

    def publish_stream(self, name, audio=True, video=False, codecs=None, tone_hz=440.0,
                       wav=None, record=False, custom=None):
        """
        Publish stream C{name} like C{stream.publish()}: a sendonly offer
        with our tone (or C{wav}) in C{publishStream}. Fires with the
        mediaSessionId.
        """
        return self._run(self._open_stream(name, True, audio, video, codecs, None, tone_hz,
                                           wav, record, custom))

    async def _open_stream(self, name, published, audio, video, codecs, video_codecs,
                           tone_hz, wav, record, custom):
        self._require_session(("ESTABLISHED",), "createStream()")
        stream = WCSStream(str(uuid.uuid1()), name, published)
        self.streams[stream.id] = stream
        pc = self._new_pc(stream)
        if published:
            if audio:
                _prefer_codecs(pc.addTransceiver(self._audio_source(stream, tone_hz, wav),
                                                 direction="sendonly"), "audio", codecs)
            if video:
                track = VideoStreamTrack()
                stream.local_tracks.append(track)
                _prefer_codecs(pc.addTransceiver(track, direction="sendonly"), "video",
                               video_codecs)
        else:
            pc.addTransceiver("audio", direction="recvonly")
            if video:
                pc.addTransceiver("video", direction="recvonly")
        stream.status = "PENDING"
        stream.local_sdp = await self._local_description(pc, offer=True)
        constraints = {"audio": bool(audio), "video": bool(video)}
        if published:
            message = "publishStream"
            payload = {
                "mediaSessionId": stream.id, "name": name, "published": True,
                "hasVideo": bool(video), "hasAudio": bool(audio), "status": "PENDING",
                "record": bool(record), "mediaProvider": "WebRTC", "sdp": stream.local_sdp,
                "custom": custom, "bitrate": 0, "minBitrate": 0, "maxBitrate": 0,
                "constraints": constraints, "localMediaInfo": _local_media_info(stream),
            }
        else:
            message = "playStream"
            payload = {
                "mediaSessionId": stream.id, "name": name, "published": False,
                "hasVideo": True, "hasAudio": True, "status": "PENDING", "record": False,
                "width": 0, "height": 0, "mediaProvider": "WebRTC", "sdp": stream.local_sdp,
                "custom": custom, "bitrate": 0, "minBitrate": 0, "maxBitrate": 0,
                "quality": 0, "constraints": constraints,
            }
        stream.mark = len(stream.statuses)
        self._send(message, {k: v for k, v in payload.items() if v is not None})
        return stream.id

    def stop_stream(self, media_session_id, timeout=10.0):
        """
        Stop a stream like C{stream.stop()}: while it is still PENDING, wait
        (the SDK retries every 200 ms), then send C{unPublishStream} or
        C{stopStream}. The server should answer UNPUBLISHED or STOPPED.
        """
        return self._run(self._stop_stream(self._stream_for(media_session_id), timeout))

    async def _stop_stream(self, stream, timeout):
        waited = 0.0
        while stream.status == "PENDING":
            if waited >= timeout:
                raise WCSTimeout(f"stream {stream.id} stayed PENDING for {timeout}s; the SDK "
                                 f"would retry stop() every 200 ms forever")
            self._raise_if_closed("a stream status")
            await asyncio.sleep(0.2)
            waited += 0.2
        if stream.ended:
            return
        payload = {"mediaSessionId": stream.id, "name": stream.name,
                   "published": stream.published, "hasVideo": True, "hasAudio": True,
                   "status": stream.status, "record": False}
        stream.mark = len(stream.statuses)
        self._send("unPublishStream" if stream.published else "stopStream", payload)

    def wait_stream_status(self, media_session_id, status, timeout=10.0, since=None):
        """
        L{wait_status} for a stream.
        """
        self._stream_for(media_session_id)
        return self.wait_status(media_session_id, status, timeout, since)

    # -- media checks -------------------------------------------------------

    def recording_path(self, session_id):
        """
        The WAV file the received audio of C{session_id} is written to.
        """
        session = self._session_for(session_id)
        return os.path.join(self.directory, f"{session.label}-{session.id}-received.wav")

    def wait_audio(self, session_id, seconds=1.5, timeout=10.0):
        """
        Fire with the path of the recording of C{session_id}'s received
        audio once it holds at least C{seconds} of audio (it goes on
        growing until the call ends).
        """
        session = self._session_for(session_id)

        def check():
            recorder = session.recorder
            if recorder is not None and recorder.duration >= seconds:
                return recorder.path
            if session.error is not None:
                raise WCSClientError(f"{session.label} {session_id} failed locally: "
                                     f"{session.error!r}")
            if session.media_closed and (recorder is None or not recorder.running):
                have = 0.0 if recorder is None else recorder.duration
                raise WCSSessionEnded(f"{session.label} {session_id} was released with "
                                      f"{have:.2f}s of received audio (statuses "
                                      f"{session.statuses}, info {session.info!r})")
            return _PENDING
        return self._wait(f"{seconds}s of audio from {session.label} {session_id}", check,
                          timeout)

    def get_stats(self, session_id):
        """
        Fire with RTP counters from C{getStats()}:
        C{{"audio": {"packetsReceived", "packetsSent", "bytesSent"}, "video": {...}}}.
        After the session's media closed, the counters taken just before.
        """
        return self._run(self._stats(self._session_for(session_id)))

    def packets_received(self, session_id, kind="audio"):
        """
        Fire with the inbound-rtp C{packetsReceived} of C{kind}.
        """
        d = self.get_stats(session_id)
        d.addCallback(lambda stats: stats[kind]["packetsReceived"])
        return d

    def wait_packets(self, session_id, count, kind="audio", timeout=10.0):
        """
        Fire with C{packetsReceived} of C{kind} once it reaches C{count}.
        """
        session = self._session_for(session_id)

        async def poll():
            while True:
                stats = await self._stats(session)
                if stats[kind]["packetsReceived"] >= count:
                    return stats[kind]["packetsReceived"]
                if session.media_closed:
                    raise WCSSessionEnded(
                        f"{session.label} {session_id} released after "
                        f"{stats[kind]['packetsReceived']} {kind} packets (wanted {count})")
                await asyncio.sleep(0.05)

        d = self._run(poll())
        return d.addTimeout(timeout, self.reactor, onTimeoutCancel=lambda r, t: _raise(WCSTimeout(
            f"{count} {kind} packets on {session.label} {session_id} within {timeout}s")))

    # -- media internals ----------------------------------------------------

    def _new_pc(self, session):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session.pc = pc

        @pc.on("track")
        def on_track(track):
            if track.kind == "audio" and session.recorder is None:
                session.recorder = WAVRecorder(self.recording_path(session.id),
                                               self.record_rate, on_progress=self._poke)
                session.recorder.start(track)
            else:
                session._consumers.append(asyncio.ensure_future(_drain(session, track)))
        return pc

    def _audio_source(self, session, tone_hz, wav):
        if wav is not None:
            player = MediaPlayer(wav, loop=True)
            session.players.append(player)
            track = player.audio
            if track is None:
                raise WCSUsageError(f"{wav} has no audio")
        else:
            track = ToneTrack(tone_hz)
        session.local_tracks.append(track)
        return track

    async def _local_description(self, pc, offer):
        description = await (pc.createOffer() if offer else pc.createAnswer())
        with (loopback_host_addresses() if self.loopback else contextlib.nullcontext()):
            await pc.setLocalDescription(description)
        return sdk_sdp(pc.localDescription.sdp)

    async def _apply_remote_sdp(self, session, sdp):
        pc = session.pc
        if pc.signalingState != "have-local-offer":
            self._violation(
                f"setRemoteSDP for {session.label} {session.id} while its peer connection is "
                f"{pc.signalingState}: the SDK would apply it as a new offer and never answer "
                f"(send exactly one setRemoteSDP per call or stream)")
            return
        session.remote_sdp = sdp
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def _stats(self, session):
        if session.final_stats is not None or session.pc is None:
            return session.final_stats or _empty_stats()
        if session._media_closed is not None:
            await asyncio.shield(session._media_closed)
            return session.final_stats or _empty_stats()
        return await _collect_stats(session.pc)

    def _release(self, session):
        if session.released:
            return
        session.released = True
        self._spawn(session, self._close_media(session), "release")

    def _close_media(self, session):
        if session._media_closed is None:
            session._media_closed = asyncio.ensure_future(self._do_close_media(session))
            self._tasks.add(session._media_closed)
            session._media_closed.add_done_callback(self._task_done)
        return asyncio.shield(session._media_closed)

    async def _do_close_media(self, session):
        pc = session.pc
        if pc is not None and pc.connectionState != "closed":
            try:
                session.final_stats = await _collect_stats(pc)
            except Exception:
                session.final_stats = _empty_stats()
            await close_peer_connection(pc)
        for track in session.local_tracks:
            track.stop()
        if session.recorder is not None:
            await session.recorder.stop()
        for task in session._consumers:
            task.cancel()
        if session._consumers:
            await asyncio.gather(*session._consumers, return_exceptions=True)
        if session.final_stats is None:
            session.final_stats = _empty_stats()
        self._poke()

    # -- plumbing -----------------------------------------------------------

    def _run(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return defer.Deferred.fromFuture(task)

    def _spawn(self, session, coroutine, what):
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def done(task):
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                session.error = task.exception()
                self.errors.append(f"{session.label} {session.id} {what}: {session.error!r}")
            self._poke()
        task.add_done_callback(done)

    def _task_done(self, task):
        self._tasks.discard(task)

    async def _await(self, d):
        return await d.asFuture(asyncio.get_running_loop())

    def _wait(self, description, check, timeout):
        waiter = _Waiter(description, check, None)

        def cancel(d):
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.timer is not None and waiter.timer.active():
                waiter.timer.cancel()
        waiter.deferred = defer.Deferred(cancel)
        if not self._try(waiter):
            self._waiters.append(waiter)
            waiter.timer = self.reactor.callLater(timeout, self._time_out, waiter, timeout)
        return waiter.deferred

    def _try(self, waiter):
        try:
            result = waiter.check()
        except Exception as e:
            self._finish(waiter, e)
            return True
        if result is _PENDING:
            return False
        self._finish(waiter, result)
        return True

    def _finish(self, waiter, result):
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        if waiter.deferred.called:
            return
        if isinstance(result, Exception):
            waiter.deferred.errback(result)
        else:
            waiter.deferred.callback(result)

    def _time_out(self, waiter, timeout):
        waiter.timer = None
        warnings = f"; fail messages: {self.warnings[-3:]}" if self.warnings else ""
        self._finish(waiter, WCSTimeout(
            f"no {waiter.description} within {timeout}s; last server messages (pings left "
            f"out): {self._message_summary()}{warnings}"))

    def _poke(self):
        for waiter in list(self._waiters):
            if waiter in self._waiters:
                self._try(waiter)

    def _raise_if_closed(self, what):
        if self._closed:
            raise WCSConnectionClosed(
                f"the WebSocket closed ({self.close_code} {self.close_reason!r}) before {what}")

    def _message_summary(self, session_id=None, count=8):
        names = []
        for message in self.messages:
            if message.get("message") == "ping":
                continue
            obj = _first(message)
            if session_id is not None:
                ids = [obj] if isinstance(obj, str) else []
                if isinstance(obj, dict):
                    ids = [obj.get("callId"), obj.get("mediaSessionId")]
                if session_id not in ids:
                    continue
            status = obj.get("status") if isinstance(obj, dict) else None
            names.append(f"{message.get('message')}{{{status}}}" if status
                         else str(message.get("message")))
        return ", ".join(names[-count:]) or "(none)"

    def _send(self, name, payload):
        if self._protocol is None or self._closed:
            raise WCSConnectionClosed(f"cannot send {name}: the WebSocket is not open")
        message = {"message": name, "data": [payload]}
        self.sent.append(message)
        self._protocol.sendMessage(json.dumps(message).encode("utf-8"))

    def _violation(self, text):
        self.violations.append(text)

    def _require_session(self, statuses, what):
        if self.status not in statuses:
            raise WCSUsageError(f"{what} needs session status {' or '.join(statuses)} "
                                f"(as in the SDK); the session is {self.status}")

    def _session_for(self, session_id):
        session = self.calls.get(session_id) or self.streams.get(session_id)
        if session is None:
            raise WCSUsageError(f"no call or stream {session_id!r}")
        return session

    def _call_for(self, call_id):
        call = self.calls.get(call_id)
        if call is None:
            raise WCSUsageError(f"no call {call_id!r}")
        return call

    def _stream_for(self, media_session_id):
        stream = self.streams.get(media_session_id)
        if stream is None:
            raise WCSUsageError(f"no stream {media_session_id!r}")
        return stream

    def _call_command(self, name, call_id, payload, mark=True):
        try:
            call = self._call_for(call_id)
            self._send(name, payload)
        except WCSClientError as e:
            return defer.fail(e)
        if mark:
            call.mark = len(call.statuses)
        return defer.succeed(None)

    # -- the WebSocket callbacks -----------------------------------------------

    def _socket_opened(self, protocol):
        self._protocol = protocol
        self._opened = True
        self.status = "CONNECTED"
        self._poke()

    def _socket_closed(self, was_clean, code, reason):
        self._closed = True
        self.close_code, self.close_reason = code, reason
        if self.status != "FAILED":
            self.status = "DISCONNECTED" if self._opened and was_clean else "FAILED"
        # The SDK fails every stream locally; calls are not released.
        for stream in self.streams.values():
            if not stream.ended and not stream.released:
                stream.status = "FAILED"
                stream.info = "session closed"
                self._release(stream)
        self._poke()

    def _message_received(self, payload, is_binary):
        if is_binary:
            self._violation("a binary frame on the signalling socket (the SDK ignores it)")
            return
        try:
            message = json.loads(payload.decode("utf-8"))
        except ValueError:
            self._violation(f"a text frame that is not JSON: {payload[:80]!r}")
            return
        if not isinstance(message, dict) or not isinstance(message.get("message"), str):
            self._violation(f"a JSON frame without a message name: {payload[:80]!r}")
            return
        self.messages.append(message)
        name = message["message"]
        data = message.get("data")
        if not isinstance(data, list):
            self._violation(
                f"{name} without a data array: the SDK reads data[0] of every message and "
                f"throws a TypeError before dispatching (a ping like this is never answered)")
        else:
            handler = self._handlers.get(name)
            if handler is not None:
                handler(name, data)
        self._poke()

    # -- server messages ----------------------------------------------------

    def _handle_ping(self, name, data):
        # A ping can arrive after this side began its closing handshake (onClose not yet run):
        # the SDK does not answer then either, and Autobahn would raise Disconnected.
        if not self._closed and self._protocol is not None and \
                self._protocol.state == self._protocol.STATE_OPEN:
            self._send("pong", None)

    def _handle_user_data(self, name, data):
        obj = data[0] if data else None
        if not isinstance(obj, dict):
            self._violation(f"getUserData without an object: {data!r}")
            obj = {}
        self.user_data = obj
        if self.connection and self.connection.get("sipLogin") and not obj.get("sipLogin"):
            self._violation("getUserData without sipLogin: the SDK replaces its config with "
                            "this object and later calls read sipLogin from it")
        if "webRTCMetricsServerDescription" in obj:
            self._violation("getUserData with webRTCMetricsServerDescription makes the SDK "
                            "send metrics messages")
        self.status = "ESTABLISHED"

    def _handle_registered(self, name, data):
        requested = (self.connection or {}).get("sipRegisterRequired")
        if requested not in (True, "true"):
            self._violation("registered sent to a session that did not ask for SIP "
                            "registration: createStream() then throws 'Invalid session state "
                            "REGISTERED'")
        self.status = "REGISTERED"

    def _handle_fail(self, name, data):
        obj = data[0] if data else None
        self.warnings.append(obj)
        if isinstance(obj, dict) and obj.get("apiMethod") == "StreamStatusEvent":
            stream = self.streams.get(obj.get("id"))
            if stream is not None:
                self._stream_update(stream, obj)

    def _handle_remote_sdp(self, name, data):
        if len(data) < 2 or not isinstance(data[0], str) or not isinstance(data[1], str):
            self._violation(f"setRemoteSDP must be positional [id, sdp, isInitiator]: {data!r}")
            return
        session_id, sdp = data[0], data[1]
        session = self.streams.get(session_id) or self.calls.get(session_id)
        if session is None:
            self.remote_sdp_cache[session_id] = sdp
            return
        if session.released or session._media_closed is not None:
            return  # we hung up or stopped first; a late answer is not the server's fault
        if session.pc is None:
            self._violation(
                f"setRemoteSDP for {session.label} {session_id} after notifyIncomingCall: the "
                f"SDK applies it to a peer connection that does not exist yet (TypeError) and "
                f"answer() has no remote SDP")
            return
        self._spawn(session, self._apply_remote_sdp(session, sdp), "setRemoteSDP")

    def _handle_incoming_call(self, name, data):
        obj = data[0] if data else None
        if not isinstance(obj, dict) or not obj.get("callId"):
            self._violation(f"notifyIncomingCall without a call object: {data!r}")
            return
        call_id = obj["callId"]
        if call_id in self.calls:
            self._violation(f"notifyIncomingCall for {call_id}, which already exists")
            return
        if obj.get("mediaProvider") not in (None, "WebRTC"):
            self._violation(f"notifyIncomingCall with mediaProvider {obj['mediaProvider']!r}: "
                            f"answer() fails unless it is WebRTC or absent")
        if call_id not in self.remote_sdp_cache:
            self._violation(
                f"notifyIncomingCall for {call_id} before its setRemoteSDP: the SDK has no "
                f"cached offer, so answer() throws 'No remote sdp available'")
        call = WCSCall(call_id, incoming=True, caller=obj.get("caller"),
                       callee=obj.get("callee"), visible_name=obj.get("visibleName"),
                       custom=obj.get("custom"))
        call.incoming_object = obj
        self.calls[call_id] = call
        self._incoming_order.append(call_id)

    def _handle_call_status(self, name, data):
        obj = data[0] if data else None
        if not isinstance(obj, dict):
            self._violation(f"{name} without a call object: {data!r}")
            return
        call = self.calls.get(obj.get("callId"))
        if call is None:
            return  # the SDK ignores statuses for calls it does not know
        if not obj.get("status"):
            self._violation(f"{name} for {call.id} without a status: the SDK sets the call "
                            f"status from data[0].status, not from the message name")
            return
        if call.released:
            return  # the SDK has dropped the call: later statuses go nowhere
        call._record(obj)
        if call.ended:
            self._release(call)

    def _handle_transfer_event(self, name, data):
        obj = data[0] if data else None
        call = self.calls.get(obj.get("callId")) if isinstance(obj, dict) else None
        if call is None:
            self._violation(f"notifyTransferEvent for an unknown call (the SDK calls its "
                            f"handler without checking and throws): {obj!r}")
            return
        call.transfer_statuses.append(obj.get("status"))
        call.transfer_events.append(obj)

    def _handle_stream_status(self, name, data):
        obj = data[0] if data else None
        stream = self.streams.get(obj.get("mediaSessionId")) if isinstance(obj, dict) else None
        if stream is None:
            return
        self._stream_update(stream, obj)

    def _stream_update(self, stream, obj):
        if obj.get("status") in DEPRECATED_STREAM_STATUSES:
            return
        if not obj.get("status"):
            self._violation(f"stream status for {stream.id} without a status: {obj!r}")
            return
        stream._record(obj)
        if stream.ended:
            self._release(stream)

    def _handle_video_format(self, name, data):
        self._violation("notifyVideoFormat is handled like notifyStreamStatusEvent and "
                        "corrupts the stream status; do not send it")


# -- helpers ----------------------------------------------------------------------

def _matches(predicate, message):
    if predicate is None:
        return True
    try:
        return predicate(message)
    except (LookupError, TypeError, AttributeError):
        return False  # a predicate written for another shape of the message


def _first(message):
    data = message.get("data")
    return data[0] if isinstance(data, list) and data else None


def _raise(exception):
    raise exception


def _empty_stats():
    return {kind: {"packetsReceived": 0, "packetsSent": 0, "bytesSent": 0}
            for kind in ("audio", "video")}


async def _collect_stats(pc):
    stats = _empty_stats()
    report = await pc.getStats()
    for entry in report.values():
        counters = stats.get(getattr(entry, "kind", None))
        if counters is None:
            continue
        if entry.type == "inbound-rtp":
            counters["packetsReceived"] += entry.packetsReceived
        elif entry.type == "outbound-rtp":
            counters["packetsSent"] += entry.packetsSent
            counters["bytesSent"] += entry.bytesSent
    return stats


async def _drain(session, track):
    """
    Consume a received track we do not record (video), counting its frames.
    """
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
        if track.kind == "video":
            session.video_frames_received += 1


def _prefer_codecs(transceiver, kind, names):
    if not names:
        return
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    chosen = []
    for name in names:
        matches = [c for c in capabilities if c.mimeType.split("/")[1].lower() == name.lower()]
        if not matches:
            available = sorted({c.mimeType.split("/")[1] for c in capabilities})
            raise WCSUsageError(f"aiortc has no {kind} codec {name!r} (it has {available})")
        chosen.extend(m for m in matches if m not in chosen)
    if kind == "video":
        chosen.extend(c for c in capabilities if c.mimeType.lower() == "video/rtx")
    transceiver.setCodecPreferences(chosen)


def _local_media_info(session):
    info = {"devices": {"video": [], "audio": []}, "tracks": {"video": [], "audio": []}}
    for track in session.local_tracks:
        device = {"id": f"{track.kind}-source", "label": f"aiortc%20{track.kind}",
                  "type": "mic" if track.kind == "audio" else "camera"}
        info["devices"][track.kind].append(device)
        info["tracks"][track.kind].append({"trackId": track.id, "device": device["id"]})
    return info
