# -*- test-case-name: tests.signalling.test_protocol -*-
"""
The WCS WebSocket front door: Autobahn plumbing around a table of message handlers.

The Autobahn protocol class only forwards its callbacks; L{Signalling} owns the per-connection
state (L{Channel}: keep-alive pings, the session) and a dispatch table keyed by message name.
What goes on the wire is built in L{wcs_twisted.signalling.messages}; a L{Channel} is the
gateway's L{wcs_twisted.interfaces.IClientConnection} by encoding there.
Every failure to understand a client becomes a C{fail} message and a log line, never a dropped
connection or a traceback.
"""

from __future__ import annotations

from typing import Any, Callable

from autobahn.exception import Disconnected
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolNegotiationFactory, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.signalling import messages
from wcs_twisted.errors import DomainError
from wcs_twisted.gateway.sessions import ClientSession, SessionTable
from wcs_twisted.ua.registration import RegistrationState

#: WebSocket close codes used here. Autobahn lets an application send only 1000 or 3000-4999,
#: so the reason text says why (the SDK shows DISCONNECTED for any clean close).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1000
CLOSE_KEEP_ALIVE = 4008


class Channel(messages.ClientConnection):
    """
    One WebSocket connection's state: who it is, its keep-alive, its session once connected.
    """

    def __init__(self, protocol: "WCSServerProtocol", peer: str) -> None:
        self.protocol = protocol
        self.peer = peer
        self.session: ClientSession | None = None
        self.missed_pongs = 0
        self.keep_alive: LoopingCall | None = None
        self.closing = False
        self.connecting = False

    def send_message(self, name: str, data: list[Any]) -> None:
        if self.closing:
            return
        try:
            self.protocol.sendMessage(messages.encode(name, data), isBinary=False)
        except Disconnected:
            # The TCP connection went away and Autobahn has not called onClose yet (a ping
            # timer or a call event got here first): nothing to say to anyone.
            self.closing = True

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.protocol.sendClose(code=code, reason=reason)


class Signalling:
    """
    Decodes client messages, calls the session/call layer, encodes the answers.
    """

    log = Logger()

    def __init__(
        self,
        sessions: SessionTable,
        clock: IReactorTime,
        metrics: ServerMetrics,
        server_address: Callable[[], str],
        ping_interval: float = 5.0,
        max_missed_pongs: int = 10,
        calls=None,
        hooks=None,
        streams=None,
    ) -> None:
        self.sessions = sessions
        self.calls = calls
        self.streams = streams
        self.hooks = hooks
        self.clock = clock
        self.metrics = metrics
        self._server_address = server_address
        self.ping_interval = ping_interval
        self.max_missed_pongs = max_missed_pongs
        self.channels: set[Channel] = set()
        self._handlers: dict[str, Callable[[Channel, dict[str, Any] | None], None]] = {
            "connection": self._on_connection,
            "pong": self._on_pong,
            "ping": self._on_client_ping,
        }
        if calls is not None:
            self._handlers.update({
                "call": self._call_method("call", calls.start_call),
                "answer": self._call_method("answer", calls.answer),
                "hangup": self._call_method("hangup", calls.hang_up),
                "hold": self._call_method("hold", calls.hold),
                "unhold": self._call_method("unhold", calls.unhold),
                "sendDtmf": self._call_method("sendDtmf", calls.send_dtmf),
                "transfer": self._call_method("transfer", calls.transfer),
            })
        if streams is not None:
            # Stream actions are direct invocations too (spec 12), like the call ones.
            self._handlers.update({
                "publishStream": self._call_method("publishStream", streams.publish),
                "unPublishStream": self._call_method("unPublishStream", streams.unpublish),
                "playStream": self._call_method("playStream", streams.play),
                "stopStream": self._call_method("stopStream", streams.stop),
                "sendStreamEvent": self._call_method("sendStreamEvent", streams.send_event),
                "availableStream": self._on_available_stream,
            })

    # --- connection lifecycle -----------------------------------------------------------------

    def channel_opened(self, protocol: "WCSServerProtocol", peer: str) -> Channel:
        channel = Channel(protocol, peer)
        self.channels.add(channel)
        loop = LoopingCall(self._ping, channel)
        loop.clock = self.clock
        channel.keep_alive = loop
        loop.start(self.ping_interval, now=False)
        self.log.debug("websocket {peer} opened", peer=peer)
        return channel

    def channel_closed(self, channel: Channel, reason: str) -> None:
        self.channels.discard(channel)
        channel.closing = True
        if channel.keep_alive is not None and channel.keep_alive.running:
            channel.keep_alive.stop()
        if channel.session is not None:
            self.sessions.detach(channel.session, reason)
            channel.session = None
        self.log.debug("websocket {peer} closed: {reason}", peer=channel.peer, reason=reason)

    def close_all(self, reason: str = "Server shutting down") -> None:
        """
        Tell every client we are going away (graceful shutdown).
        """
        for channel in list(self.channels):
            channel.close(CLOSE_GOING_AWAY, reason)

    def _ping(self, channel: Channel) -> None:
        if channel.missed_pongs >= self.max_missed_pongs:
            self.log.info("websocket {peer}: {count} pings unanswered, closing",
                          peer=channel.peer, count=channel.missed_pongs)
            channel.keep_alive.stop()
            channel.close(CLOSE_KEEP_ALIVE, "Terminated by keep-alive")
            return
        channel.missed_pongs += 1
        self._send(channel, *messages.PING)

    # --- messages -----------------------------------------------------------------------------

    def message_received(self, channel: Channel, raw: bytes, is_binary: bool) -> None:
        if is_binary:
            self._fail(channel, "Binary messages are not part of the WCS protocol")
            return
        try:
            message = messages.decode(raw)
        except messages.MessageError as error:
            self._fail(channel, error.info, error.api_method)
            return
        handler = self._handlers.get(message.name)
        self.metrics.messages.labels(
            direction="in", message=message.name if handler else "unknown").inc()
        channel.missed_pongs = 0
        if handler is None:
            self._fail(channel, f"Unknown message {message.name!r}", message.name)
            return
        try:
            result = handler(channel, message.payload)
        except DomainError as error:
            self._fail(channel, error.info, message.name)
        except Exception:
            self.log.failure("handling {name} from {peer}", name=message.name, peer=channel.peer)
            self._fail(channel, "Failed by error", message.name)
        else:
            if isinstance(result, Deferred):
                result.addErrback(self._handler_failed, channel, message.name)

    def _handler_failed(self, failure, channel: Channel, name: str) -> None:
        """
        A handler that waited (on a REST hook) failed later: same answers as a synchronous one.
        """
        if failure.check(DomainError):
            self._fail(channel, failure.value.info, name)
        else:
            self.log.failure("handling {name} from {peer}", failure, name=name,
                             peer=channel.peer)
            self._fail(channel, "Failed by error", name)

    def _send(self, channel: Channel, name: str, data: list[Any]) -> None:
        self.metrics.messages.labels(direction="out", message=name).inc()
        channel.send_message(name, data)

    def _fail(self, channel: Channel, info: str, api_method: str | None = None) -> None:
        self.log.warn("websocket {peer}: {api_method} refused: {info}",
                      peer=channel.peer, api_method=api_method, info=info)
        self._send(channel, *messages.fail(info, api_method))

    def _on_pong(self, channel: Channel, payload: dict[str, Any] | None) -> None:
        """
        The reset of C{missed_pongs} in L{message_received} is all a pong needs.
        """

    def _on_client_ping(self, channel: Channel, payload: dict[str, Any] | None) -> None:
        """
        SDK pings (pingInterval > 0) need no answer (spec section 3).
        """

    def _call_method(self, name: str, method):
        """
        A handler for a call action: the backend hears it first (WCS direct invocation; with
        the default restOnError=LOG it does not wait), then the call table acts on it.
        """

        def handle(channel: Channel, payload: dict[str, Any] | None):
            session = channel.session
            if session is None:
                raise DomainError("Session not ready")
            fields = payload or {}
            if self.hooks is None:
                return method(session, fields)
            approved = self.hooks.invoke(session.app_key, name, fields,
                                         session.fields.get("restClientConfig"))
            return approved.addCallback(lambda body: method(session, dict(body)))

        return handle

    def _on_available_stream(self, channel: Channel, payload: dict[str, Any] | None) -> None:
        """
        C{availableStream} is a question: its answer is a message of the same name.
        """
        if channel.session is None:
            raise DomainError("Session not ready")
        self._send(channel, *messages.available_stream(
            *self.streams.available(channel.session, payload or {})))

    def _on_connection(self, channel: Channel, payload: dict[str, Any] | None) -> None:
        if channel.session is not None:
            raise DomainError("Session already established")
        token = (payload or {}).get("authToken")
        if isinstance(token, str) and token:
            session = self.sessions.reattach(token, channel)
            if session is not None:
                channel.session = session
                self._send(channel, *messages.user_data(session.public_fields()))
                if session.registered:
                    self._send(channel, *messages.registration_status(
                        RegistrationState.REGISTERED, None))
                return
        session_id = f"/{channel.peer}/{self._server_address()}"
        fields = payload or {}
        self.sessions.check_fields(fields)
        if self.hooks is None:
            self._open_session(channel, session_id, fields)
            return None
        if channel.connecting:
            raise DomainError("Connection already in progress")
        channel.connecting = True
        app_key = fields.get("appKey") or "defaultApp"
        # Whether a backend decides (and so vouches for the session's calls: WCS's gate).
        gated = self.hooks.app_for(app_key, "connect") is not None
        asked = self.hooks.connect(dict(
            fields, sessionId=session_id, nodeId=self.sessions.node_id, appKey=app_key))

        def allowed(result) -> None:
            channel.connecting = False
            if not channel.closing:
                self._open_session(channel, session_id, dict(result), approved=gated)

        def refused(failure) -> None:
            channel.connecting = False
            failure.trap(DomainError)
            info = failure.value.info
            self.log.info("connection from {peer} refused by the backend: {info}",
                          peer=channel.peer, info=info)
            self._send(channel, *messages.fail(info, messages.CONNECTION_STATUS_EVENT))
            for observer in self.sessions.observers:
                if hasattr(observer, "session_refused"):
                    observer.session_refused(fields, info)
            channel.close(CLOSE_NORMAL, info)

        return asked.addCallbacks(allowed, refused)

    def _open_session(self, channel: Channel, session_id: str, fields: dict[str, Any],
                      approved: bool = False) -> None:
        session = self.sessions.open(channel, session_id, fields, approved_by_backend=approved)
        channel.session = session
        self._send(channel, *messages.user_data(session.public_fields()))


class WCSServerProtocol(WebSocketServerProtocol):
    """
    Autobahn callbacks forwarded to L{Signalling}; nothing else lives here.
    """

    channel: Channel | None = None

    def onConnect(self, request):
        # Any path, no subprotocol: the SDK uses the URL as given (spec 1.1).
        return None

    def onOpen(self) -> None:
        peer = self.transport.getPeer()
        self.channel = self.factory.signalling.channel_opened(self, f"{peer.host}:{peer.port}")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.channel is not None:
            self.factory.signalling.message_received(self.channel, payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.channel is not None:
            self.factory.signalling.channel_closed(
                self.channel, reason or ("closed" if wasClean else "connection lost"))
            self.channel = None


class _Timeout:
    """
    A cancellable timeout on our injected clock, as Autobahn's timer users expect it.
    """

    def __init__(self, call) -> None:
        self._call = call

    def cancel(self) -> None:
        if self._call.active():
            self._call.cancel()


class _ClockTimer:
    """
    Autobahn's handshake/close timeouts on the injected clock.

    Autobahn batches timers into shared buckets that outlive cancelled calls; plain per-connection
    calls cost little at our connection counts and leave nothing behind once cancelled, which keeps
    shutdown and tests clean.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock

    def call_later(self, delay: float, function, *args, **kwargs) -> _Timeout:
        return _Timeout(self._clock.callLater(delay, function, *args, **kwargs))


@implementer(IProtocolNegotiationFactory)
class WCSServerFactory(WebSocketServerFactory):
    """
    Builds L{WCSServerProtocol}s that share one L{Signalling}.
    """

    protocol = WCSServerProtocol

    def acceptableProtocols(self) -> list[bytes]:
        """
        ALPN over wss: browsers offer h2 and http/1.1, and a WebSocket upgrade needs
        http/1.1 (our TLS listeners answer from this list, wcs_twisted/tls.py).
        """
        return [b"http/1.1"]

    def __init__(self, signalling: Signalling, reactor, max_message_size: int) -> None:
        super().__init__(reactor=reactor)
        self._batched_timer = _ClockTimer(reactor)
        self.signalling = signalling
        self.setProtocolOptions(
            maxMessagePayloadSize=max_message_size,
            maxFramePayloadSize=max_message_size,
        )
