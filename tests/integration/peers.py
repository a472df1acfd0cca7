# -*- test-case-name: tests.integration.test_peers -*-
"""
Real SIP peers on 127.0.0.1 for interop tests: Kamailio, baresip and SIPp, run from the reactor.

These tests share the reactor with the server under test (trial
C{--reactor=asyncio}), so nothing here blocks. Processes are started with
C{reactor.spawnProcess}. Every API returns a Deferred, and every wait has a
time limit. A wait that runs out fails with L{PeerTimeout}, which names the
peer and quotes the end of its log. A missing binary raises C{SkipTest}.
Stopping a peer signals only the PID the harness started (and, when it has to
force the stop, that process's own children).

Typical use inside a C{twisted.trial.unittest.TestCase}::

    @defer.inlineCallbacks
    def test_call(self):
        base = self.mktemp()
        proxy = Kamailio(base, users={"alice": "secret", "bob": "secret"})
        self.addCleanup(proxy.stop)
        yield proxy.start()
        alice = Baresip(base, "alice", registrar=proxy.address, password="secret",
                        tone_wav=write_tone_wav(...))
        self.addCleanup(alice.stop)
        yield alice.start()
        yield alice.dial(proxy.user_uri("bob"))
        yield alice.wait_event("CALL_ESTABLISHED")

What running the real programs taught us (Debian 12: kamailio 5.6.3, baresip
1.0.0, sipp 3.6.1):

Kamailio
  - C{-DD -E} keeps the main process in the foreground and logs to stderr.
    It still forks its workers (children=, tcp_children=); on SIGTERM the
    main process stops them and exits. C{-Y DIR} points the runtime
    directory at the test directory.
  - C{myself} compares ports. A URI without a port means port 5060. So
    C{sip:bob@127.0.0.1} is not local to a Kamailio on another port, and a
    request to it is relayed to 127.0.0.1:5060. Use L{Kamailio.user_uri}, which
    includes the port. An alias without a port (C{alias="127.0.0.1"}) would
    claim every loopback port, including the server under test, so the config
    only aliases C{domain:port}, plus C{domain} itself when it is not an IP
    address.
  - Digest without a database: the C{htable} module fills C{users} in
    C{event_route[htable:mod-init]}, C{pv_auth_check(realm, $sht(users=>$au),
    "0", "1")} checks the credentials (the last "1" also requires the
    authentication user to equal the To user for REGISTER and the From user
    otherwise), and C{auth_challenge(realm, "1")} sends 401 for REGISTER, 407
    otherwise, with qop=auth. The script answers a wrong password (-2), a user
    mismatch (-8) or an unknown user with 403, so a bad password fails at
    once rather than looping on challenges.
  - Requests other than REGISTER are challenged only when their From user is
    in C{users}. Anyone else (the gateway under test, sipp's C{sip:sipp@...})
    is relayed without credentials.
  - R-URI not local: relayed as it is (an open relay on loopback). Local with
    a user: C{lookup("location")} (404 when not registered). Initial requests
    are record-routed; in-dialog requests follow C{loose_route()}; an
    in-dialog request without our Route gets 404.

baresip 1.0.0
  - C{net_interface 127.0.0.1} (the name C{lo} fails). SIP also listens on TLS
    at C{sip_port + 1}, so agents need ports two apart (L{free_port} with
    C{span=2}). A port still held by an agent that is shutting down makes
    the new one exit with "Address already in use".
  - The commands (C{dial}, C{hangup}, C{accept}, C{reginfo}, C{sndcode},
    C{uanew}, ...) come from the C{menu} module. Without C{menu},
    C{ctrl_tcp} answers every command with "command not found". C{sndcode}
    is missing from C{/help} but works (RFC 4733 telephone-event).
  - ctrl_tcp is netstrings (C{<length>:<json>,}) over TCP, both ways.
    Command: C{{"command": "dial", "params": "sip:...", "token": "7"}}.
    Response: C{{"response": true, "ok": true|false, "data": "<text>",
    "token": "7"}}. C{ok} is false for unknown commands. C{data} holds the
    console text, ANSI colours included (reginfo shows C{OK}/C{ERR}/C{zzz}).
    Event: C{{"event": true, "type": "CALL_ESTABLISHED", "class": "call",
    "accountaor": "sip:alice@...", "direction": "incoming"|"outgoing",
    "peeruri": "...", "id": "<call id>", "param": "..."}}.
  - Events seen: REGISTERING, REGISTER_OK (param C{"200 OK"}),
    REGISTER_FAIL (param C{"403 Wrong password"}), CALL_INCOMING (manual
    answer mode only), CALL_RINGING, CALL_LOCAL_SDP / CALL_REMOTE_SDP
    (class "other", param offer/answer), CALL_ESTABLISHED, CALL_RTPESTAB,
    CALL_RTCP (with C{rtcp_stats}), CALL_DTMF_START (param = digit),
    CALL_DTMF_END, CALL_CLOSED (param = reason, e.g. "Connection reset by
    user" on the side that hung up, "Connection reset by peer" on the other,
    "486 Busy Here" for a refused call).
  - Events are not buffered before a ctrl_tcp client connects, and an account
    in the C{accounts} file registers at start-up, before we can connect. So
    the harness leaves C{accounts} empty and creates the UA with
    C{uanew <account line>} after connecting, which makes REGISTER_OK or
    REGISTER_FAIL arrive on our connection.
  - C{sndfile} (an audio filter) writes C{<snd_path>/dump-<YYYY-MM-DD-hh-mm-ss>-enc.wav}
    (what it sends, before encoding) and C{...-dec.wav} (what it receives,
    after decoding) for each call. The files are mono 16-bit at the codec
    rate (8000 Hz for G.711). The name has one-second resolution, so a second
    call that starts in the same second overwrites the first call's files.
    The RIFF and data sizes stay 0 until the call ends (read them with
    L{tests.integration.audio.read_wav}, which copes with that).
  - Paths in the config must be short: C{audio_source}'s device is kept in a
    128-byte buffer (a longer WAV path is cut and fails to open), and sndfile
    builds file names in a buffer of the same size ("sndfile: could not open: "
    with an empty name). trial's test directories are longer, so the config
    points at symlinks in a short C{/tmp/wcs-bs-*} directory that L{Baresip.stop}
    removes.
  - C{aufile} reads the whole WAV at call start and plays it once
    ("aufile: end of file" is logged at load time, not at the end). Make the
    tone longer than the call. The rate must match the codec unless a
    resampler is loaded, so write 8000 Hz files for G.711.
  - C{audio_player alsa,null} is ALSA's null device: headless playback with
    no sound card.
  - The call status line (C{[0:00:03] audio=64000/64000 (bit/s)}) is written
    to stdout many times a second during a call. It goes straight to the log
    file, not through the reactor.
  - SIGTERM: it unregisters and exits, within tens of milliseconds here.

sipp 3.6.1
  - The built-in C{-sn uac}/C{-sn uas} ignore Record-Route; the scenarios in
    C{tests/integration/sipp/} use C{rrs="true"}, C{[routes]},
    C{[next_url]} and C{[last_Record-Route:]}. A C{[last_X:]} keyword for a
    header the last message lacks drops the whole line.
  - Digest uses C{-au}/C{-ap} with C{auth="true"} on the C{recv} of the 401/407
    and C{[authentication]} in the next request. C{[last_cseq_number]} gives
    the number alone (for a 487 that answers an INVITE after a CANCEL).
  - Exit codes: 0 when every call succeeded, 1 when at least one failed,
    97 when stopped by a command, 99 when the run ended before any call was
    processed, 255 on fatal errors (e.g. the port is taken). With
    C{-timeout N -timeout_error} a run still going after N seconds exits 255
    (measured: a UAS nobody called).
  - C{-message_file}/C{-error_file} name the C{-trace_msg}/C{-trace_err}
    files, so they need no guessing from the PID.
"""

import collections
import glob
import json
import os
import random
import shlex
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass, field

from twisted.internet import defer, error, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols.basic import NetstringReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

from tests.integration import audio

LOOPBACK = "127.0.0.1"

#: The scenarios shipped with the suite (see L{sipp_scenario}).
SIPP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp")

#: How much of a peer's log a timeout error quotes.
LOG_TAIL_BYTES = 2500


class PeerError(Exception):
    """
    A real peer failed to start, exited, or refused what the test asked.
    """


class PeerTimeout(PeerError):
    """
    A bounded wait on a real peer ran out.
    """


class BaresipCommandError(PeerError):
    """
    baresip answered a ctrl_tcp command with C{"ok": false}.
    """


def _reactor(reactor):
    if reactor is None:
        from twisted.internet import reactor
    return reactor


def require_binary(name, package=None):
    """
    Return the path of executable C{name}, or raise C{SkipTest} naming the
    Debian package that provides it.
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        raise SkipTest(f"{name} is not installed (apt-get install {package or name})")
    return path


def tail(path, size=LOG_TAIL_BYTES):
    """
    Return the last C{size} bytes of the file at C{path} as text (ANSI colour
    codes and NULs removed), or a note that it does not exist.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            data = f.read()
    except OSError as e:
        return f"<no log: {e}>"
    text = data.replace(b"\x00", b"").decode("utf-8", "replace")
    for code in ("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[;m", "\x1b[0m"):
        text = text.replace(code, "")
    return text


def _describe(label, log_path):
    return f"--- last lines of {label}'s log ({log_path}) ---\n{tail(log_path)}"


def with_timeout(d, seconds, reactor, message):
    """
    Give C{d} a deadline: after C{seconds} it is cancelled and fails with
    L{PeerTimeout}(C{message()}). C{message} is called only on timeout, so it
    can quote a log as it is then.
    """

    def on_timeout(result, timeout):
        if isinstance(result, Failure) and result.check(defer.CancelledError):
            raise PeerTimeout(f"{message()}\n(waited {timeout:g}s)")
        return result

    return d.addTimeout(seconds, _reactor(reactor), onTimeoutCancel=on_timeout)


def poll(predicate, timeout, reactor=None, interval=0.1, message=None):
    """
    Call C{predicate()} every C{interval} seconds, at most C{timeout /
    interval} times, and fire with its first true result.

    C{predicate} may raise to stop early (say, when the peer exited). When
    the count runs out, fail with L{PeerTimeout}(C{message()}).
    """
    reactor = _reactor(reactor)
    attempts = max(1, int(round(timeout / interval)))

    @defer.inlineCallbacks
    def run():
        for attempt in range(attempts + 1):
            value = predicate()
            if value:
                return value
            if attempt < attempts:
                yield task.deferLater(reactor, interval, lambda: None)
        text = message() if message else "condition not met"
        raise PeerTimeout(f"{text}\n(waited {timeout:g}s)")

    return run()


# Ports ---------------------------------------------------------------------

#: Runs handed out lately, oldest first, and their ports.  Bounded: a run handed out thousands
#: of ports ago belongs to a test that has ended, and keeping every run of a long suite would
#: leave no room in the ephemeral range for a wide span.
_recent_runs = collections.deque()
_handed_out = set()
_HANDED_OUT_LIMIT = 6000


def free_port(span=1, host=LOOPBACK):
    """
    Return a port C{p} such that C{p .. p+span-1} are free for both UDP and TCP
    on C{host} right now, and do not overlap a range this function returned
    lately in this process.

    SIP needs UDP and TCP on the same number. baresip also takes TLS on
    C{p+1}, so give it C{span=2}. The kernel picks the candidate (bind to
    port 0). Another program can still take the port before the peer binds
    it, but on a test machine that is rare.
    """
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((host, 0))
            candidate = probe.getsockname()[1]
        finally:
            probe.close()
        numbers = set(range(candidate, candidate + span))
        if candidate + span > 65536 or numbers & _handed_out:
            continue
        if all(_bindable(host, n) for n in numbers):
            _remember(numbers)
            return candidate
    raise PeerError(f"no run of {span} free UDP+TCP port(s) on {host}")


def stable_port(host=LOOPBACK):
    """
    A free UDP+TCP port below the kernel's ephemeral range, for a server that a test polls
    or restarts while it is down.  A client connecting to a closed port in the ephemeral range
    can be given that same number as its source and connect to itself (TCP simultaneous
    open), and then holds the port the restarted server wanted.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        candidate = random.randrange(10000, max(low, 10001))
        if candidate in _handed_out or not _bindable(host, candidate):
            continue
        _remember({candidate})
        return candidate
    raise PeerError(f"no free port below {low} on {host}")


def _remember(numbers):
    _recent_runs.append(numbers)
    _handed_out.update(numbers)
    while len(_handed_out) > _HANDED_OUT_LIMIT and len(_recent_runs) > 1:
        _handed_out.difference_update(_recent_runs.popleft())


def _bindable(host, port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


# Processes -----------------------------------------------------------------

class PeerProcess(protocol.ProcessProtocol):
    """
    One child process whose stdout and stderr go straight into a log file.

    No pipes are involved: the child gets the log file as fds 1 and 2 and
    C{/dev/null} as fd 0. A chatty peer therefore costs the reactor nothing.
    Its workers, which share those fds, cannot keep the end of the process
    from being noticed either. L{stop} signals the PID the harness started.
    """

    def __init__(self, label, log_path, reactor=None):
        self.label = label
        self.log_path = log_path
        self._reactor = _reactor(reactor)
        self.transport = None
        self.ended = False
        self.exit_status = None
        self._end_waiters = []

    @property
    def pid(self):
        """
        The PID of the running process, or C{None} before start and after exit.
        """
        return None if self.transport is None else self.transport.pid

    def spawn(self, argv, cwd, env=None):
        """
        Start C{argv} (C{argv[0]} is an absolute path) in C{cwd}, with the
        log file appended to.
        """
        if self.transport is not None:
            raise PeerError(f"{self.label} already started")
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(shlex.quote(a) for a in argv)}\n".encode())
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        try:
            self._reactor.spawnProcess(
                self, argv[0], argv, env=dict(os.environ) if env is None else env, path=cwd,
                childFDs={0: null_fd, 1: log_fd, 2: log_fd},
            )
        finally:
            os.close(log_fd)
            os.close(null_fd)

    def processEnded(self, reason):
        self.ended = True
        self.exit_status = reason.value
        waiters, self._end_waiters = self._end_waiters, []
        for d in waiters:
            if not d.called:
                d.callback(reason.value)

    def describe(self):
        """
        Text for errors: who, its exit status if any, and the end of its log.
        """
        state = f"exited ({self.exit_status})" if self.ended else f"pid {self.pid}"
        return f"{self.label} [{state}]\n{_describe(self.label, self.log_path)}"

    def check_running(self):
        """
        Raise L{PeerError} if the process has exited; for use in L{poll} predicates.
        """
        if self.ended:
            raise PeerError(f"{self.label} exited early.\n{self.describe()}")

    def when_ended(self, timeout):
        """
        Fire with the exit reason once the process has exited; fail with
        L{PeerTimeout} after C{timeout} seconds.
        """
        if self.ended or self.transport is None:
            return defer.succeed(self.exit_status)
        d = defer.Deferred()
        self._end_waiters.append(d)
        return with_timeout(d, timeout, self._reactor,
                            lambda: f"{self.label} did not exit.\n{self.describe()}")

    def stop(self, grace=5.0):
        """
        SIGTERM the process and wait up to C{grace} seconds. If it is still
        running, SIGKILL it and its own children, and wait 5 more seconds.
        Safe to call more than once, and before start.
        """
        if self.transport is None or self.ended:
            return defer.succeed(self.exit_status)
        pid = self.pid
        children = _descendants(pid)
        self._signal("TERM")
        d = self.when_ended(grace)

        def force(failure):
            failure.trap(PeerTimeout)
            for child in _descendants(pid) | children:
                try:
                    os.kill(child, signal.SIGKILL)
                except OSError:
                    pass
            self._signal("KILL")
            return self.when_ended(5.0)

        return d.addErrback(force)

    def _signal(self, name):
        try:
            self.transport.signalProcess(name)
        except (error.ProcessExitedAlready, OSError):
            pass


def _descendants(pid):
    """
    Return the PIDs whose parent chain leads to C{pid} (read from /proc).
    """
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(b")") + 2:].split()
        parents[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# SIP OPTIONS probe ---------------------------------------------------------

class _OptionsProbe(protocol.DatagramProtocol):
    """
    Sends OPTIONS to one address and fires C{answered} with the first response.
    """

    def __init__(self, host, port):
        self.target = (host, port)
        self.answered = defer.Deferred()
        self._count = 0
        self._call_id = os.urandom(8).hex()

    def send_options(self):
        self._count += 1
        local_port = self.transport.getHost().port
        branch = os.urandom(6).hex()
        host, port = self.target
        message = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{LOOPBACK}:{local_port}>;tag={self._call_id[:8]}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {self._call_id}@{LOOPBACK}\r\n"
            f"CSeq: {self._count} OPTIONS\r\n"
            "Accept: application/sdp\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        self.transport.write(message.encode("ascii"), self.target)

    def datagramReceived(self, data, addr):
        if data.startswith(b"SIP/2.0 ") and not self.answered.called:
            self.answered.callback(data)


@defer.inlineCallbacks
def sip_options(host, port, timeout=5.0, interval=0.2, reactor=None, check=None, label=None):
    """
    Send OPTIONS over UDP to C{host:port} every C{interval} seconds until any
    response arrives. Fire with the raw response bytes, or fail with
    L{PeerTimeout} after C{timeout} seconds.

    C{check}, if given, is called before each send and may raise (e.g.
    L{PeerProcess.check_running}) to fail at once. The UDP port is closed
    before the result is delivered.
    """
    reactor = _reactor(reactor)
    probe = _OptionsProbe(host, port)
    listening = reactor.listenUDP(0, probe, interface=LOOPBACK)

    def send():
        if check is not None:
            check()
        probe.send_options()

    loop = task.LoopingCall(send)
    loop.clock = reactor
    loop.start(interval, now=True).addErrback(
        lambda f: None if probe.answered.called else probe.answered.errback(f))
    try:
        response = yield with_timeout(
            probe.answered, timeout, reactor,
            lambda: f"no answer to OPTIONS from {label or 'peer'} at {host}:{port}")
    finally:
        if loop.running:
            loop.stop()
        yield listening.stopListening()
    return response


# Kamailio ------------------------------------------------------------------

_KAMAILIO_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)

_KAMAILIO_MODULES = (
    "kex", "corex", "tm", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "sanity",
    "usrloc", "registrar", "htable", "auth", "xlog",
)

_KAMAILIO_CFG = """\
#!KAMAILIO
# Written by tests/integration/peers.py for one test; see its docstring.
debug={log_level}
log_stderror=yes
children={children}
tcp_children={children}
dns=no
rev_dns=no
use_dns_cache=no
auto_aliases=no
listen=udp:{host}:{port}
listen=tcp:{host}:{port}
{aliases}
server_header="Server: kamailio-wcs-test"
user_agent_header="User-Agent: kamailio-wcs-test"
mpath="{module_dir}/"
{loadmodules}
modparam("usrloc", "db_mode", 0)
modparam("htable", "htable", "users=>size=6;")
modparam("auth", "nonce_expire", 300)

event_route[htable:mod-init] {{
{user_lines}
}}

request_route {{
    xlog("L_INFO", "wcs-test: $rm $ru from $si:$sp ($pr)\\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check()) {{
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (!t_relay()) {{ sl_reply_error(); }}
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{ t_relay(); }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{ t_relay(); }}
        exit;
    }}
    if (is_method("OPTIONS") && uri==myself && $rU==$null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    t_check_trans();
    if (is_method("REGISTER")) {{
{register_auth}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
{invite_auth}
    remove_hf("Route");
    if (is_method("INVITE|SUBSCRIBE|REFER")) {{
        record_route();
    }}
    if (uri==myself) {{
        if ($rU==$null) {{
            sl_send_reply("484", "Address Incomplete");
            exit;
        }}
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
}}

route[AUTH] {{
    if (!is_present_hf("Authorization") && !is_present_hf("Proxy-Authorization")) {{
        auth_challenge("{realm}", "1");
        exit;
    }}
    if ($sht(users=>$au) == $null) {{
        sl_send_reply("403", "Unknown user");
        exit;
    }}
    pv_auth_check("{realm}", "$sht(users=>$au)", "0", "1");
    $var(rc) = $rc;
    if ($var(rc) == -2 || $var(rc) == -8) {{
        sl_send_reply("403", "Wrong password");
        exit;
    }}
    if ($var(rc) < 0) {{
        auth_challenge("{realm}", "1");
        exit;
    }}
    consume_credentials();
}}
"""


def _cfg_string(value, what):
    if not value or any(c in value for c in '"\\\n\r$') or not value.isprintable():
        raise ValueError(f"{what} {value!r} cannot go into kamailio.cfg")
    return value


class Kamailio:
    """
    A Kamailio registrar and record-routing proxy on C{127.0.0.1:port} (UDP and
    TCP), with digest users held in memory.

    @ivar directory: C{<tmpdir>/kamailio}: C{kamailio.cfg}, C{kamailio.log}.
    @ivar address: C{"127.0.0.1:port"}, as sipp and baresip's C{registrar}
        take it.
    """

    def __init__(self, tmpdir, port=None, users=None, domain=LOOPBACK, auth=True,
                 children=2, log_level=2, reactor=None):
        """
        @param users: C{{user: password}}; default C{{"alice": "secret"}}.
        @param domain: digest realm, and an alias of this proxy.
        @param auth: challenge REGISTER, and requests whose From user is in
            C{users}; C{False} lets everything through.
        @param children: UDP and TCP worker processes each (raise for load tests).
        @param log_level: Kamailio C{debug} level; 2 logs one line per request,
            1 keeps the log quiet under load.
        """
        self.executable = require_binary("kamailio")
        self.module_dir = next(
            (d for d in _KAMAILIO_MODULE_DIRS if os.path.exists(os.path.join(d, "htable.so"))),
            None)
        if self.module_dir is None:
            raise SkipTest("kamailio modules (htable.so, auth.so, ...) not found")
        self.directory = os.path.abspath(os.path.join(tmpdir, "kamailio"))
        self.host = LOOPBACK
        self.port = free_port() if port is None else port
        self.users = dict({"alice": "secret"} if users is None else users)
        self.domain = _cfg_string(domain, "domain")
        self.auth = auth
        self.children = children
        self.log_level = log_level
        self._reactor = _reactor(reactor)
        self.config_path = os.path.join(self.directory, "kamailio.cfg")
        self.log_path = os.path.join(self.directory, "kamailio.log")
        self.process = PeerProcess(f"kamailio :{self.port}", self.log_path, self._reactor)

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def user_uri(self, user):
        """
        The address-of-record of C{user} here, with the port (see the module
        docstring on C{myself}).
        """
        return f"sip:{user}@{self.host}:{self.port}"

    def config_text(self):
        """
        The kamailio.cfg this instance runs with.
        """
        aliases = [f'alias="{self.domain}:{self.port}"']
        if not _is_ip(self.domain):
            aliases.append(f'alias="{self.domain}"')
        user_lines = "\n".join(
            f'    $sht(users=>{_cfg_string(u, "user")}) = "{_cfg_string(p, "password")}";'
            for u, p in sorted(self.users.items())
        )
        if self.auth:
            register_auth = "        route(AUTH);"
            invite_auth = "    if ($sht(users=>$fU) != $null) {\n        route(AUTH);\n    }"
        else:
            register_auth = invite_auth = ""
        return _KAMAILIO_CFG.format(
            log_level=self.log_level, children=self.children, host=self.host, port=self.port,
            aliases="\n".join(aliases), module_dir=self.module_dir,
            loadmodules="\n".join(f'loadmodule "{m}.so"' for m in _KAMAILIO_MODULES),
            user_lines=user_lines or "    $var(none) = 0;", register_auth=register_auth,
            invite_auth=invite_auth, realm=self.domain,
        )

    def write_config(self):
        os.makedirs(self.directory, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(self.config_text())
        return self.config_path

    @defer.inlineCallbacks
    def start(self, timeout=10.0):
        """
        Write the config, start Kamailio, and fire with C{self} once it answers
        OPTIONS. If it exits or stays silent, stop it and fail with L{PeerError} /
        L{PeerTimeout}, quoting its log.
        """
        self.write_config()
        self.process.spawn(
            [self.executable, "-DD", "-E", "-f", self.config_path, "-Y", self.directory,
             "-w", self.directory],
            cwd=self.directory,
        )
        try:
            yield sip_options(self.host, self.port, timeout=timeout, reactor=self._reactor,
                              check=self.process.check_running, label=self.process.label)
        except Exception:
            yield self.process.stop()
            raise
        return self

    def options(self, timeout=5.0):
        """
        Send OPTIONS once more; fire with the raw response bytes.
        """
        return sip_options(self.host, self.port, timeout=timeout, reactor=self._reactor,
                           check=self.process.check_running, label=self.process.label)

    def stop(self, grace=5.0):
        """
        Stop Kamailio (SIGTERM, then SIGKILL after C{grace} seconds).
        """
        return self.process.stop(grace)

    def log_tail(self):
        return tail(self.log_path)


def _is_ip(text):
    try:
        socket.inet_aton(text)
    except OSError:
        return False
    return text.count(".") == 3


# baresip -------------------------------------------------------------------

BARESIP_MODULE_DIR = "/usr/lib/baresip/modules"
_BARESIP_MODULES = ("g711.so", "aufile.so", "alsa.so", "sndfile.so", "menu.so", "ctrl_tcp.so")

_BARESIP_CONFIG = """\
# Written by tests/integration/peers.py for one test; see its docstring.
poll_method		epoll
call_local_timeout	120
call_max_calls		4
sip_listen		{host}:{sip_port}
net_interface		{host}
audio_player		alsa,null
audio_source		aufile,{tone_wav}
audio_alert		alsa,null
audio_level		no
ausrc_format		s16
auplay_format		s16
auenc_format		s16
audec_format		s16
audio_buffer		20-160
rtp_ports		{rtp_low}-{rtp_high}
rtcp_mux		no
jitter_buffer_delay	5-10
module_path		{module_dir}
{codec_modules}
module			aufile.so
module			alsa.so
module			sndfile.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{host}:{ctrl_port}
snd_path		{recordings}
"""


class _BaresipControl(NetstringReceiver):
    """
    The ctrl_tcp connection: netstring-framed JSON both ways.
    """

    MAX_LENGTH = 1 << 20

    def __init__(self, agent):
        self.agent = agent
        self.closed = defer.Deferred()

    def stringReceived(self, string):
        try:
            message = json.loads(string)
        except ValueError:
            self.agent._bad_message(string)
            return
        self.agent._control_message(message)

    def connectionLost(self, reason):
        self.agent._control_lost(reason)
        self.closed.callback(None)


class Baresip:
    """
    A baresip user agent: registers (optionally), calls and answers, sends a
    WAV file as its audio, records what it receives, and reports events.

    @ivar directory: C{<tmpdir>/<name>}: C{config}, C{accounts} (a comment),
        C{baresip.log}, C{recordings/}.
    @ivar events: a C{DeferredQueue} of every ctrl_tcp event (dicts) in
        arrival order, for tests that want to consume them in sequence.
    @ivar history: every event received, in order (never consumed).
    """

    def __init__(self, tmpdir, name, sip_port=None, registrar=None, user=None, password=None,
                 tone_wav=None, answer="auto", transport="udp",
                 codecs=("PCMU/8000/1", "PCMA/8000/1"), regint=60, ctrl_port=None,
                 reactor=None):
        """
        @param registrar: C{"host:port"} to register at (the account's domain),
            or C{None} for a local account that does not register.
        @param user: SIP user; defaults to C{name}.
        @param password: digest password (C{auth_user} is C{user}).
        @param tone_wav: WAV file to send as audio (mono 16-bit at the codec's
            rate); C{None} sends 30 s of silence.
        @param answer: C{"auto"}, C{"manual"} (CALL_INCOMING, then L{accept})
            or C{"early"}.
        @param codecs: the account's C{audio_codecs}; an C{opus/...} entry
            loads the opus module too (aufile must then feed 48 kHz).
        """
        self.executable = require_binary("baresip")
        missing = [m for m in _BARESIP_MODULES
                   if not os.path.exists(os.path.join(BARESIP_MODULE_DIR, m))]
        if missing:
            raise SkipTest(f"baresip modules missing from {BARESIP_MODULE_DIR}: {missing}")
        if answer not in ("auto", "manual", "early"):
            raise ValueError(f"answer must be auto, manual or early, not {answer!r}")
        self.name = name
        self.directory = os.path.abspath(os.path.join(tmpdir, name))
        self.recordings = os.path.join(self.directory, "recordings")
        self.host = LOOPBACK
        self.sip_port = free_port(span=2) if sip_port is None else sip_port
        self.ctrl_port = free_port() if ctrl_port is None else ctrl_port
        self.registrar = registrar
        self.user = user or name
        self.password = password
        self.tone_wav = tone_wav
        self.answer = answer
        self.sip_transport = transport
        self.codecs = tuple(codecs)
        self.regint = regint
        self._reactor = _reactor(reactor)
        self.config_path = os.path.join(self.directory, "config")
        self.log_path = os.path.join(self.directory, "baresip.log")
        self.process = PeerProcess(f"baresip {name} :{self.sip_port}", self.log_path,
                                   self._reactor)
        self.events = defer.DeferredQueue()
        self.history = []
        self._claimed = set()
        self._event_waiters = []
        self._pending = {}
        self._tokens = 0
        self._control = None
        self._links = None

    # -- addresses --

    @property
    def aor(self):
        """
        The account's address-of-record.
        """
        domain = self.registrar or f"{self.host}:{self.sip_port}"
        return f"sip:{self.user}@{domain}"

    @property
    def contact_uri(self):
        """
        Where this agent can be reached directly (no proxy).
        """
        return f"sip:{self.user}@{self.host}:{self.sip_port}"

    def account_line(self):
        """
        The baresip account line that L{start} creates with C{uanew}.
        """
        params = [f"answermode={self.answer}", f"audio_codecs={','.join(self.codecs)}",
                  f"regint={self.regint if self.registrar else 0}"]
        if self.password is not None:
            params[:0] = [f"auth_user={self.user}", f"auth_pass={self.password}"]
        return f"<{self.aor};transport={self.sip_transport}>;" + ";".join(params)

    # -- lifecycle --

    def config_text(self):
        low = 10000 + (self.sip_port % 500) * 40
        modules = ["module\t\t\tg711.so"]
        if any(c.lower().startswith("opus") for c in self.codecs):
            modules.append("module\t\t\topus.so")
        return _BARESIP_CONFIG.format(
            host=self.host, sip_port=self.sip_port, tone_wav=self._short_path("tone.wav"),
            rtp_low=low, rtp_high=low + 39, module_dir=BARESIP_MODULE_DIR,
            codec_modules="\n".join(modules), ctrl_port=self.ctrl_port,
            recordings=self._short_path("rec"),
        )

    def _short_path(self, name):
        # baresip 1.0.0 keeps the audio_source device in a 128-byte buffer and
        # sndfile builds its file names in another, and trial's test
        # directories are longer than that: both are reached via symlinks in
        # a short directory under /tmp, removed by stop().
        if self._links is None:
            short_root = "/tmp" if os.path.isdir("/tmp") else None
            self._links = tempfile.mkdtemp(prefix="wcs-bs-", dir=short_root)
            os.symlink(self.recordings, os.path.join(self._links, "rec"))
            os.symlink(os.path.abspath(self.tone_wav), os.path.join(self._links, "tone.wav"))
        return os.path.join(self._links, name)

    def write_config(self):
        os.makedirs(self.recordings, exist_ok=True)
        if self.tone_wav is None:
            self.tone_wav = audio.write_tone_wav(
                os.path.join(self.directory, "silence.wav"), 0, 30)
        with open(self.config_path, "w") as f:
            f.write(self.config_text())
        with open(os.path.join(self.directory, "accounts"), "w") as f:
            f.write("# Empty on purpose: the harness sends this line with `uanew` once\n"
                    "# ctrl_tcp is connected, so the REGISTER events reach it:\n"
                    f"# {self.account_line()}\n")
        return self.config_path

    @defer.inlineCallbacks
    def start(self, timeout=10.0):
        """
        Start baresip, connect to ctrl_tcp, create the account and, when it
        registers, wait for REGISTER_OK. Fire with C{self}.

        REGISTER_FAIL fails with L{PeerError} carrying the status (e.g.
        C{"403 Wrong password"}), after stopping the agent.
        """
        self.write_config()
        self.process.spawn([self.executable, "-f", self.directory], cwd=self.directory)
        try:
            yield self._connect_control(timeout)
            yield self.command("uanew", self.account_line())
            if self.registrar:
                event = yield self.wait_event(("REGISTER_OK", "REGISTER_FAIL"), timeout)
                if event["type"] == "REGISTER_FAIL":
                    raise PeerError(
                        f"baresip {self.name}: REGISTER at {self.registrar} failed:"
                        f" {event.get('param')}")
        except Exception:
            yield self.stop()
            raise
        return self

    @defer.inlineCallbacks
    def _connect_control(self, timeout):
        endpoint = TCP4ClientEndpoint(self._reactor, self.host, self.ctrl_port, timeout=2)
        factory = protocol.Factory.forProtocol(lambda: _BaresipControl(self))
        attempts = max(1, int(timeout / 0.1))
        for attempt in range(attempts):
            self.process.check_running()
            try:
                self._control = yield endpoint.connect(factory)
                return
            except error.ConnectError:
                if attempt == attempts - 1:
                    raise PeerTimeout(
                        f"baresip {self.name}: ctrl_tcp {self.host}:{self.ctrl_port} never"
                        f" accepted a connection (waited {timeout:g}s)\n{self.process.describe()}")
                yield task.deferLater(self._reactor, 0.1, lambda: None)

    @defer.inlineCallbacks
    def stop(self, grace=5.0):
        """
        Stop baresip (SIGTERM: it unregisters and exits; SIGKILL after
        C{grace} seconds) and close the ctrl_tcp connection.
        """
        yield self.process.stop(grace)
        if self._links is not None:
            shutil.rmtree(self._links, ignore_errors=True)
            self._links = None
        control = self._control
        if control is not None and not control.closed.called:
            control.transport.loseConnection()
            yield with_timeout(control.closed, 5.0, self._reactor,
                               lambda: f"baresip {self.name}: ctrl_tcp did not close")

    def log_tail(self):
        return tail(self.log_path)

    # -- ctrl_tcp --

    def command(self, name, params=None, timeout=5.0):
        """
        Send a ctrl_tcp command; fire with the response dict (C{ok}, C{data}).
        C{"ok": false} fails with L{BaresipCommandError}.
        """
        if self._control is None or self._control.transport is None or self._control.closed.called:
            return defer.fail(PeerError(f"baresip {self.name}: ctrl_tcp is not connected"))
        self._tokens += 1
        token = str(self._tokens)
        message = {"command": name, "token": token}
        if params is not None:
            message["params"] = params
        d = defer.Deferred()
        self._pending[token] = d
        self._control.sendString(json.dumps(message).encode())

        def check(response):
            if not response.get("ok"):
                raise BaresipCommandError(
                    f"baresip {self.name}: {name} {params or ''} -> {response.get('data')!r}")
            return response

        def forget(result):
            self._pending.pop(token, None)
            return result

        d.addBoth(forget)
        with_timeout(d, timeout, self._reactor,
                     lambda: f"baresip {self.name}: no response to {name}\n"
                             f"{self.process.describe()}")
        return d.addCallback(check)

    def dial(self, uri):
        return self.command("dial", uri)

    def accept(self):
        return self.command("accept")

    def hangup(self):
        return self.command("hangup")

    def send_dtmf(self, digit):
        """
        Send one DTMF digit as RFC 4733 telephone-events (C{sndcode}).
        """
        if len(digit) != 1:
            raise ValueError("one digit at a time")
        return self.command("sndcode", digit)

    @defer.inlineCallbacks
    def reginfo(self):
        """
        Fire with the registration text (colour codes removed).
        """
        response = yield self.command("reginfo")
        text = response.get("data", "")
        for code in ("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[;m"):
            text = text.replace(code, "")
        return text

    def _control_message(self, message):
        if message.get("response"):
            d = self._pending.pop(str(message.get("token")), None)
            if d is not None and not d.called:
                d.callback(message)
        elif message.get("event"):
            self.history.append(message)
            self.events.put(message)
            self._match_waiters()

    def _bad_message(self, string):
        self.history.append({"type": "_UNPARSEABLE", "raw": string})

    def _control_lost(self, reason):
        pending, self._pending = self._pending, {}
        for d in pending.values():
            if not d.called:
                d.errback(PeerError(f"baresip {self.name}: ctrl_tcp closed ({reason.value})"))

    # -- events --

    def wait_event(self, types, timeout=10.0, match=None):
        """
        Fire with the oldest event of one of C{types} (a name or a tuple) not
        returned by an earlier C{wait_event}, received before or after this
        call, for which C{match(event)} is true (if given).

        Fails with L{PeerTimeout} listing the events seen so far and the end of
        the log.
        """
        types = (types,) if isinstance(types, str) else tuple(types)

        def find():
            for index, event in enumerate(self.history):
                if (index not in self._claimed and event.get("type") in types
                        and (match is None or match(event))):
                    self._claimed.add(index)
                    return event
            return None

        event = find()
        if event is not None:
            return defer.succeed(event)
        d = defer.Deferred()
        self._event_waiters.append((find, d))

        def message():
            seen = ", ".join(
                f"{e.get('type')}({e.get('param', '')})" for e in self.history
                if e.get("type") != "CALL_RTCP")
            return (f"baresip {self.name}: no {'/'.join(types)} event; events so far: [{seen}]"
                    f"\n{self.process.describe()}")

        return with_timeout(d, timeout, self._reactor, message)

    def _match_waiters(self):
        remaining = []
        for find, d in self._event_waiters:
            if d.called:
                continue
            event = find()
            if event is None:
                remaining.append((find, d))
            else:
                d.callback(event)
        self._event_waiters = remaining

    # -- recordings --

    def received_wavs(self):
        """
        Paths of the recordings of received audio (C{dump-*-dec.wav}), oldest first.
        """
        return sorted(glob.glob(os.path.join(self.recordings, "dump-*-dec.wav")))

    def sent_wavs(self):
        """
        Paths of the recordings of sent audio (C{dump-*-enc.wav}), oldest first.
        """
        return sorted(glob.glob(os.path.join(self.recordings, "dump-*-enc.wav")))

    def received_wav(self):
        """
        The newest recording of received audio; L{PeerError} if there is none.
        """
        paths = self.received_wavs()
        if not paths:
            raise PeerError(f"baresip {self.name}: nothing recorded in {self.recordings}")
        return paths[-1]

    def wait_for_received_audio(self, seconds, timeout=10.0):
        """
        Fire with the newest received-audio recording once it holds at least
        C{seconds} of audio (polled every 0.1 s, at most C{timeout} seconds).
        """

        def long_enough():
            self.process.check_running()
            paths = self.received_wavs()
            if paths and audio.wav_duration(paths[-1]) >= seconds:
                return paths[-1]
            return None

        return poll(long_enough, timeout, self._reactor, 0.1, message=lambda: (
            f"baresip {self.name}: received audio never reached {seconds}s"
            f" (recordings: {self.received_wavs()})\n{self.process.describe()}"))


# SIPp ----------------------------------------------------------------------

#: Scenario names sipp has built in (C{-sn}).
SIPP_BUILTINS = frozenset({
    "uac", "uas", "regexp", "branchc", "branchs", "uac_pcap", "3pcc-A", "3pcc-B", "3pcc-C-A",
    "3pcc-C-B",
})


@dataclass
class SippResult:
    """
    What one sipp run left behind.

    @ivar trace_files: C{{"messages": path, "errors": path}}; a file exists
        only if sipp wrote something to it.
    """

    exit_code: int
    stdout: str
    stderr: str
    trace_files: dict = field(default_factory=dict)
    args: list = field(default_factory=list)

    def messages(self):
        """
        The C{-trace_msg} log (every message sent and received) as text.
        """
        try:
            with open(self.trace_files["messages"], encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def status_lines(self):
        """
        The start lines of the responses sipp sent or received, in order
        (C{"SIP/2.0 200 OK"}, ...).
        """
        return [line.strip() for line in self.messages().splitlines()
                if line.startswith("SIP/2.0 ")]

    def describe(self):
        return (f"sipp {' '.join(self.args)} -> exit {self.exit_code}\n"
                f"--- stderr ---\n{self.stderr[-LOG_TAIL_BYTES:]}\n"
                f"--- stdout (end) ---\n{self.stdout[-LOG_TAIL_BYTES:]}\n"
                f"--- errors ---\n{tail(self.trace_files.get('errors', ''))}")


def sipp_scenario(name):
    """
    Path of a scenario shipped in C{tests/integration/sipp/} (C{name} with or
    without C{.xml}).
    """
    path = os.path.join(SIPP_DIR, name if name.endswith(".xml") else name + ".xml")
    if not os.path.exists(path):
        raise ValueError(f"no sipp scenario {name!r} in {SIPP_DIR}")
    return path


def write_scenario(directory, name, xml):
    """
    Write a custom scenario C{<directory>/<name>.xml} (for one test's needs)
    and return its path.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name if name.endswith(".xml") else name + ".xml")
    with open(path, "w", encoding="iso-8859-1") as f:
        f.write(xml)
    return path


class _SippProtocol(protocol.ProcessProtocol):
    def __init__(self):
        self.out, self.err = [], []
        self.done = defer.Deferred()

    def outReceived(self, data):
        self.out.append(data)

    def errReceived(self, data):
        self.err.append(data)

    def processEnded(self, reason):
        self.done.callback(reason.value)


def run_sipp(scenario, target=None, extra_args=(), timeout=20.0, workdir=None, local_port=None,
             calls=1, reactor=None):
    """
    Run sipp once and fire with a L{SippResult} when it exits.

    @param scenario: a path to an XML file, the name of a scenario in
        C{tests/integration/sipp/} (C{"register_auth"}), or a built-in (C{"uac"}).
    @param target: C{"host:port"} to send to; C{None} for a pure UAS.
    @param extra_args: more sipp arguments (C{["-s", "alice", "-au", "alice",
        "-ap", "secret"]}, C{["-t", "t1"]}, C{["-rsa", proxy]}, ...).
    @param timeout: sipp's own C{-timeout} (it then exits with an error). If
        it is still running 5 s later, it is killed and the Deferred fails with
        L{PeerTimeout}.
    @param workdir: where the trace files go; default a fresh directory
        below the current one (trial's C{_trial_temp}).
    @param local_port: the port sipp binds (UDP/TCP); default a free one.
        Set it for a UAS whose address the test hands to the caller.
    @param calls: C{-m}, unless C{extra_args} has its own.
    """
    reactor = _reactor(reactor)
    executable = require_binary("sipp", "sip-tester")
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="sipp-", dir=os.getcwd())
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)
    if scenario in SIPP_BUILTINS:
        stem, choice = scenario, ["-sn", scenario]
    else:
        path = scenario if os.path.sep in scenario else sipp_scenario(scenario)
        stem, choice = os.path.splitext(os.path.basename(path))[0], ["-sf", os.path.abspath(path)]
    port = free_port() if local_port is None else local_port
    trace = {"messages": os.path.join(workdir, f"{stem}-{port}-messages.log"),
             "errors": os.path.join(workdir, f"{stem}-{port}-errors.log")}
    args = ([target] if target else []) + choice + [
        "-i", LOOPBACK, "-p", str(port), "-nostdin",
        "-trace_msg", "-message_file", trace["messages"],
        "-trace_err", "-error_file", trace["errors"],
        "-timeout", str(max(1, int(timeout))), "-timeout_error",
    ]
    if "-m" not in extra_args:
        args += ["-m", str(calls)]
    args += list(extra_args)
    proto = _SippProtocol()
    reactor.spawnProcess(proto, executable, [executable] + args, env=dict(os.environ),
                         path=workdir)

    def result(status):
        code = getattr(status, "exitCode", None)
        if code is None:
            code = -(getattr(status, "signal", None) or 0)
        return SippResult(code, b"".join(proto.out).decode("utf-8", "replace"),
                          b"".join(proto.err).decode("utf-8", "replace"), trace, args)

    def kill_late(failure):
        failure.trap(PeerTimeout)
        try:
            proto.transport.signalProcess("KILL")
        except (error.ProcessExitedAlready, OSError):
            pass
        return proto.done.addCallback(lambda _: failure)

    d = defer.Deferred()
    proto.done.addCallback(lambda status: None if d.called else d.callback(status))
    with_timeout(d, timeout + 5.0, reactor, lambda: (
        f"sipp {' '.join(args)} still running\n--- stdout (end) ---\n"
        f"{b''.join(proto.out).decode('utf-8', 'replace')[-LOG_TAIL_BYTES:]}"))
    return d.addCallbacks(result, kill_late)
