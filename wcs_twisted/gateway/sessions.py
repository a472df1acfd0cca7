# -*- test-case-name: tests.gateway.test_sessions -*-
"""
WCS client sessions: one per signalling connection that has sent C{connection}.

A session is what the WCS protocol calls a connection object: the client's fields (appKey, SIP
account, custom), the server-given C{authToken} and C{sessionId}, and the channel to talk back on.
The REST API (C{/connection/...}), the metrics and, later, calls and registrations all find
sessions here, so the table is the single owner of their lifetime.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IClientConnection
from wcs_twisted.ua.registration import RegistrationState
from wcs_twisted.gateway.fields import account_from_fields, read_boolean, read_text
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.errors import DomainError, InvalidField, NotFound

#: Fields of the connection object never echoed back or shown over REST.
SECRET_FIELDS = frozenset({"sipPassword"})


def client_address(peer: str) -> str:
    """
    The IP address in a connection's C{host:port} peer text.
    """
    host, colon, port = peer.rpartition(":")
    return host.strip("[]") if colon and port.isdigit() else peer


@implementer(IClientConnection)
class DetachedConnection:
    """
    Where a keep-alive session's messages go while its WebSocket is gone: nowhere.

    The Web SDK keeps no call state across a reconnect, so nothing is queued.
    """

    peer = "detached"

    def call_status(self, call, info) -> None:
        pass

    def incoming_call(self, call) -> None:
        pass

    def remote_sdp(self, media_id, sdp, is_answer) -> None:
        pass

    def stream_status(self, stream) -> None:
        pass

    def dtmf(self, call_id, digit, method) -> None:
        pass

    def transfer_status(self, call, status, sip_status) -> None:
        pass

    def registration_status(self, state, info) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass


@dataclass
class ClientSession:
    """
    One connected client.
    """

    session_id: str
    auth_token: str
    app_key: str
    node_id: str
    connection: IClientConnection
    fields: Mapping[str, Any]
    account: SIPAccount | None
    keep_alive: bool = False
    custom: Any = field(default_factory=dict)
    registration: Any = None
    registered: bool = False
    #: Names this session in our SIP contacts (URI parameter "wcs"), so INVITEs find it.
    contact_id: str = field(default_factory=lambda: secrets.token_hex(6))
    local_binding: Any = None
    grace_timer: Any = None
    #: The client's IP address (per-address call caps).
    address: str = ""
    #: The application backend's C{connect} hook approved this session (WCS's gate).
    approved_by_backend: bool = False
    #: The session gave the password of a local login that has credentials.
    credentials_proven: bool = False

    @property
    def detached(self) -> bool:
        """
        Whether the session waits, in its keep-alive grace, for its client to reconnect.
        """
        return isinstance(self.connection, DetachedConnection)

    def public_fields(self) -> dict[str, Any]:
        """
        The connection object as WCS shows it (getUserData, REST, hooks): the client's fields
        without secrets, plus the server-given ones.
        """
        shown = {k: v for k, v in self.fields.items() if k not in SECRET_FIELDS}
        shown.update(
            appKey=self.app_key,
            sessionId=self.session_id,
            nodeId=self.node_id,
            authToken=self.auth_token,
        )
        if self.account is not None:
            shown.setdefault("sipLogin", self.account.login)
        return shown


class SessionTable:
    """
    All open sessions, by sessionId and by authToken.
    """

    log = Logger()

    def __init__(
        self,
        node_id: str,
        default_sip_port: int | Callable[[], int] = 5060,
        token_factory: Callable[[], str] = lambda: secrets.token_hex(16),
        on_change: Callable[[int], None] = lambda count: None,
        registration_factory: Callable[..., Any] | None = None,
        on_registrations: Callable[[int], None] = lambda count: None,
        clock=None,
        keep_alive_grace: float = 0.0,
        local_registration: Callable[[ClientSession], Any] | None = None,
    ) -> None:
        self.clock = clock
        #: Registers a local-mode session at a registrar in front (sip_register_local_sessions):
        #: C{local_registration(session)} returns the started registration (stopped on close).
        self.local_registration = local_registration
        self.keep_alive_grace = keep_alive_grace
        self.node_id = node_id
        #: The port "sipPort 0" stands for: an int, or a callable giving the bound SIP port.
        self._default_sip_port = default_sip_port
        self._token_factory = token_factory
        self._on_change = on_change
        self._registration_factory = registration_factory
        self._on_registrations = on_registrations
        self._by_id: dict[str, ClientSession] = {}
        self._by_token: dict[str, ClientSession] = {}
        #: Told session_opened(session) / session_closed(session) (the call table).
        self.observers: list[Any] = []
        #: Unregistrations under way (shutdown waits for them, boundedly).
        self.unregistering: set = set()

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ClientSession]:
        return iter(list(self._by_id.values()))

    def _sip_port(self) -> int:
        port = self._default_sip_port
        return port() if callable(port) else port

    def check_fields(self, fields: Mapping[str, Any]) -> None:
        """
        Validate a connection object before anyone (a REST hook backend) sees it.

        @raise InvalidField: naming the first bad field.
        """
        read_text(fields, "appKey")
        account_from_fields(fields, self._sip_port())
        read_boolean(fields, "keepAlive", False)

    def open(self, connection: IClientConnection, session_id: str,
             fields: Mapping[str, Any], approved_by_backend: bool = False) -> ClientSession:
        """
        Create the session for a C{connection} message.

        Observers with C{login_proven(account)} (the call table) first check a SIP login that
        will be bound locally; one that refuses raises and no session is made.

        @param approved_by_backend: a backend's C{connect} hook approved the fields.
        @raise InvalidField: a field of the connection object is wrong.
        @raise DomainError: the login has credentials the session did not prove.
        """
        app_key = read_text(fields, "appKey", "defaultApp") or "defaultApp"
        account = account_from_fields(fields, self._sip_port())
        keep_alive = read_boolean(fields, "keepAlive", False)
        if session_id in self._by_id:
            raise InvalidField("sessionId", f"session {session_id} already exists")
        proven = False
        if account is not None:
            for observer in self.observers:
                check = getattr(observer, "login_proven", None)
                if check is not None and check(account):
                    proven = True
        session = ClientSession(
            session_id=session_id,
            auth_token=self._token_factory(),
            app_key=app_key,
            node_id=self.node_id,
            connection=connection,
            fields=dict(fields),
            account=account,
            keep_alive=keep_alive,
            custom=fields.get("custom") or {},
            address=client_address(connection.peer),
            approved_by_backend=approved_by_backend,
            credentials_proven=proven,
        )
        self._by_id[session_id] = session
        self._by_token[session.auth_token] = session
        self.log.info(
            "session {session_id} opened (appKey={app_key}, sipLogin={sip_login})",
            session_id=session_id, app_key=app_key,
            sip_login=account.login if account else None,
        )
        self._on_change(len(self._by_id))
        for observer in self.observers:
            observer.session_opened(session)
        if account is not None and account.register_required:
            self._register(session)
        elif account is not None and self.local_registration is not None:
            session.registration = self.local_registration(session)
        return session

    def _register(self, session: ClientSession) -> None:
        """
        Register the session's SIP account upstream (WCS sipRegisterRequired).

        The client hears REGISTERED only once registration succeeded (never otherwise: the SDK
        refuses to create streams in REGISTERED state).  Observers with
        C{check_registration(session)} (the call table's policy) may refuse the registrar.  A failure is told, then the socket is
        closed, the only way WebSDK 2.0 can show it.
        """
        if self._registration_factory is None:
            session.connection.registration_status(
                RegistrationState.FAILED, "SIP registration is not available on this server")
            return
        try:
            for observer in self.observers:
                check = getattr(observer, "check_registration", None)
                if check is not None:
                    check(session)
        except DomainError as refusal:
            # Refused before any REGISTER is sent; told and closed as a failed registration.
            session.connection.registration_status(RegistrationState.FAILED, refusal.info)
            session.connection.close(1000, f"SIP registration refused: {refusal.info}")
            return

        def changed(change) -> None:
            state = change.state
            for observer in self.observers:
                if hasattr(observer, "session_registration_changed"):
                    observer.session_registration_changed(session, state.value, change.reason)
            if state is RegistrationState.REGISTERED:
                if not session.registered:
                    session.registered = True
                    self._registrations_changed()
                    session.connection.registration_status(state, None)
            elif state in (RegistrationState.FAILED, RegistrationState.AUTHENTICATION_FAIL):
                if session.registered:
                    session.registered = False
                    self._registrations_changed()
                if session.session_id in self._by_id:
                    session.connection.registration_status(state, change.reason)
                    session.connection.close(1000, f"SIP registration failed: {change.reason}")

        session.registration = self._registration_factory(session.account, changed)
        session.registration.start()

    def _registrations_changed(self) -> None:
        self._on_registrations(sum(1 for s in self._by_id.values() if s.registered))

    def close(self, session: ClientSession, reason: str) -> None:
        """
        Forget a session, unregistering its SIP account; closing twice is harmless.
        """
        if self._by_id.pop(session.session_id, None) is None:
            return
        self._by_token.pop(session.auth_token, None)
        if session.grace_timer is not None and session.grace_timer.active():
            session.grace_timer.cancel()
        session.grace_timer = None
        for observer in self.observers:
            observer.session_closed(session)
        if session.registration is not None:
            stopping = session.registration.stop()
            if not stopping.called:
                self.unregistering.add(stopping)
                stopping.addBoth(lambda result: self.unregistering.discard(stopping))
            if session.registered:
                session.registered = False
                self._registrations_changed()
        self.log.info("session {session_id} closed: {reason}",
                      session_id=session.session_id, reason=reason)
        self._on_change(len(self._by_id))

    def detach(self, session: ClientSession, reason: str) -> bool:
        """
        The session's WebSocket closed.  A C{keepAlive} session keeps its registration and calls
        for the grace period, waiting for a C{connection} with its authToken (the Phone demo's
        "Connect with token"); any other session is closed.

        @return: True if the session was kept.
        """
        if self._by_id.get(session.session_id) is not session:
            return False
        if not session.keep_alive or self.keep_alive_grace <= 0 or self.clock is None:
            self.close(session, reason)
            return False
        session.connection = DetachedConnection()
        session.grace_timer = self.clock.callLater(
            self.keep_alive_grace, self.close, session, f"{reason}; keep-alive grace expired")
        self.log.info("session {session_id} detached ({reason}); kept {grace}s for reconnect",
                      session_id=session.session_id, reason=reason, grace=self.keep_alive_grace)
        return True

    def reattach(self, token: str, connection: IClientConnection) -> ClientSession | None:
        """
        A new WebSocket presents the authToken of a detached session: it gets the session back.
        """
        session = self._by_token.get(token)
        if session is None or not isinstance(session.connection, DetachedConnection):
            return None
        timer = session.grace_timer
        if timer is not None and timer.active():
            timer.cancel()
        session.grace_timer = None
        session.connection = connection
        self.log.info("session {session_id} reattached", session_id=session.session_id)
        for observer in self.observers:
            reattached = getattr(observer, "session_reattached", None)
            if reattached is not None:
                reattached(session)
        return session

    def get(self, session_id: str) -> ClientSession:
        """
        @raise NotFound: no such session.
        """
        try:
            return self._by_id[session_id]
        except KeyError:
            raise NotFound(f"Session {session_id} does not exist") from None

    def by_token(self, token: str) -> ClientSession | None:
        """
        The session holding an authToken, if any.
        """
        return self._by_token.get(token)
