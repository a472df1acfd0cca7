# -*- test-case-name: tests.backend.test_hooks -*-
"""
Gateway observers that turn session and call events into status-event hooks.

The composition root subscribes them to the session and call tables; they only shape bodies
(WCS connection and call objects) and hand them to an L{IEventHooks}, which sends them.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet.defer import Deferred
from zope.interface import implementer

from wcs_twisted.backend.rules import DEFAULT_APP
from wcs_twisted.interfaces import ICallAdmission, ICallObserver, IEventHooks


def _client_config(session: Any) -> Any:
    fields = getattr(session, "fields", None)
    return fields.get("restClientConfig") if isinstance(fields, Mapping) else None


@implementer(ICallObserver, ICallAdmission)
class CallHookObserver:
    """
    A CallTable observer turning call events into CallStatusEvent / TransferStatusEvent hooks.
    """

    def __init__(self, hooks: IEventHooks) -> None:
        self.hooks = hooks

    def call_status_changed(self, call, info: str | None) -> None:
        body = call.to_wcs()
        if info is not None:
            body["info"] = info
        self.hooks.event(call.app_key, "CallStatusEvent", body, _client_config(call.session))

    def call_transfer_changed(self, call, status) -> None:
        body = call.to_wcs()
        body["status"] = getattr(status, "value", status)
        self.hooks.event(call.app_key, "TransferStatusEvent", body, _client_config(call.session))

    def call_offered(self, call) -> Deferred:
        """
        An incoming SIP call for a session, before its browser hears of it: the OnCallEvent
        incoming invocation.  Fires with the call object as the backend left it (restPolicy
        OVERWRITE), or fails with HookRefused (restOnError FAIL) to turn the caller away.
        """
        return self.hooks.invoke(call.app_key, "OnCallEvent", call.to_wcs(),
                                 _client_config(call.session))

    def transfer_requested(self, call, target) -> Deferred:
        """
        The SIP peer REFERs the call to C{target}: the OnTransferEvent incoming invocation with
        the transfer object (the call object, status PENDING, target; spec 5.4).  Fails with
        HookRefused (restOnError FAIL) to refuse the REFER.
        """
        body = call.to_wcs()
        body["status"] = "PENDING"
        body["target"] = str(target)
        return self.hooks.invoke(call.app_key, "OnTransferEvent", body,
                                 _client_config(call.session))

    def call_dtmf_received(self, call, digit: str, method: str) -> None:
        """
        WCS has no hook for DTMF received from the SIP side, so nothing is sent.
        """


class SessionHookObserver:
    """
    A SessionTable observer sending ConnectionStatusEvent (and, when told, RegistrationStatusEvent)
    hooks with the connection object.
    """

    def __init__(self, hooks: IEventHooks) -> None:
        self.hooks = hooks

    def _send(self, session, method: str, status: str, info: str | None) -> None:
        body = session.public_fields()
        body["status"] = status
        if info is not None:
            body["info"] = info
        self.hooks.event(session.app_key, method, body, _client_config(session))

    def session_opened(self, session) -> None:
        self._send(session, "ConnectionStatusEvent", "ESTABLISHED", None)

    def session_closed(self, session) -> None:
        self._send(session, "ConnectionStatusEvent", "DISCONNECTED", None)

    def session_registration_changed(self, session, status: str, info: str | None) -> None:
        """
        The SIP registration of a session changed (REGISTERED, UNREGISTERED, FAILED,
        AUTHENTICATION_FAIL).
        """
        self._send(session, "RegistrationStatusEvent", status, info)

    def session_refused(self, fields: Mapping[str, Any], info: str) -> None:
        """
        A connection that never became a session (connect refused): the short FAILED form.
        """
        app_key = str(fields.get("appKey") or DEFAULT_APP)
        body = {name: fields[name] for name in ("nodeId", "sessionId")
                if fields.get(name) is not None}
        body.update(status="FAILED", info=info, appKey=app_key)
        self.hooks.event(app_key, "ConnectionStatusEvent", body)


class StreamHookObserver:
    """
    A stream-table observer sending StreamStatusEvent hooks with the WCS stream object (spec
    5.3) on each status a client's stream reaches (PUBLISHING, PLAYING, UNPUBLISHED, STOPPED,
    FAILED).
    """

    def __init__(self, hooks: IEventHooks) -> None:
        self.hooks = hooks

    def stream_status_changed(self, stream) -> None:
        self.hooks.event(stream.session.app_key, "StreamStatusEvent", stream.to_wcs(),
                         _client_config(stream.session))
