# -*- test-case-name: tests.ua.test_registration -*-
"""
The REGISTER client of one SIP account (RFC 3261 10.2), as WCS does for a session with
C{sipRegisterRequired}.

It answers digest challenges (401/407, once per nonce unless the server says stale), follows
423 Min-Expires, refreshes before the binding expires, retries with backoff after a failure, and
unregisters (Expires: 0) on stop.  Every state change is reported to one callback, which the
session layer turns into C{registered} / C{fail} messages and RegistrationStatusEvent hooks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wcs_twisted.interfaces import IClientTransactionOwner
from wcs_twisted.sip.auth import build_authorization, select_challenge
from wcs_twisted.sip.errors import LocalProtocolError, RemoteProtocolError
from wcs_twisted.sip.headers import NameAddress
from wcs_twisted.sip.message import Response, new_call_id, new_tag
from wcs_twisted.sip.uri import SIPURI
from wcs_twisted.ua.account import SIPAccount
from wcs_twisted.ua.outbound import (
    build_request,
    cnonce,
    contact_uri,
    next_hop,
    split_host_port,
)


class RegistrationState(enum.Enum):
    """
    Where one account's registration stands (WCS RegistrationStatusEvent names where they exist).
    """

    UNREGISTERED = "UNREGISTERED"
    REGISTERING = "REGISTERING"
    REGISTERED = "REGISTERED"
    AUTHENTICATION_FAIL = "AUTHENTICATION_FAIL"
    FAILED = "FAILED"


@dataclass(frozen=True)
class RegistrationChanged:
    """
    A registration state change, with the SIP status and reason that caused it.
    """

    state: RegistrationState
    status: int | None
    reason: str


@implementer(IClientTransactionOwner)
class RegistrationClient:
    """
    Keeps one account registered.
    """

    log = Logger()

    #: Refresh when this share of the granted time has passed.
    REFRESH_AT = 0.8
    #: Delays before retrying after a failure, then the last one repeats.
    RETRY_DELAYS = (5.0, 15.0, 30.0, 60.0)

    def __init__(
        self,
        core,
        clock,
        account: SIPAccount,
        on_change: Callable[[RegistrationChanged], None],
        expires: int = 3600,
        protocol: str | None = None,
        contact_params: dict[str, str] | None = None,
        retry: bool = True,
    ) -> None:
        self.core = core
        self.clock = clock
        self.account = account
        self.on_change = on_change
        self.expires = expires
        # The account's transport (sipOutboundProxy "...;transport=tls", "sips:..."), else UDP.
        protocol = self.protocol = ("tls" if account.scheme == "sips" else
                                    protocol or account.transport or "udp")
        self.retry = retry
        self.state = RegistrationState.UNREGISTERED
        # sipDomain may carry a port ("host:5070"); it then names where the registrar listens.
        domain, domain_port = split_host_port(account.domain or account.outbound_proxy)
        # A sips: account registers a sips: address of record and Contact (RFC 5630 3.1.1).
        secure = account.scheme == "sips"
        self.registrar_uri = SIPURI(account.scheme, None, None, domain, domain_port)
        self.aor = SIPURI(account.scheme, account.login, None, domain, domain_port)
        hop = SIPURI(account.scheme, None, None, domain, domain_port or account.port or None,
                     (("transport", protocol),) if protocol != "udp" and not secure else ())
        self.destination = next_hop(hop, account.outbound_proxy, account.port or None)
        self.contact = contact_uri(core.transport, protocol, account.login,
                                   toward=self.destination.host, secure=secure,
                                   **(contact_params or {}))
        self.call_id = new_call_id(core.random, self.contact.host)
        self.from_tag = new_tag(core.random)
        self.cseq = 0
        self.granted: int | None = None
        self._nonce_uses: dict[str, int] = {}
        self._answered_nonce: str | None = None
        self._timer = None
        self._failures = 0
        self._unregistering: Deferred | None = None
        self._stopped = False

    # --- commands ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stopped = False
        self._send(self.expires, authorization=None)

    def stop(self) -> Deferred:
        """
        Unregister (Expires: 0) if registered; fires when done, failed or abandoned.
        """
        self._stopped = True
        self._cancel_timer()
        if self.state is not RegistrationState.REGISTERED:
            self._set(RegistrationState.UNREGISTERED, None, "Stopped")
            return succeed(None)
        self._unregistering = Deferred()
        self._send(0, authorization=None)
        return self._unregistering

    # --- REGISTER -----------------------------------------------------------------------------

    def _send(self, expires: int, authorization: tuple[str, str] | None) -> None:
        self.cseq += 1
        self._last_expires = expires
        self._sent_credentials = authorization is not None
        extra = [("Expires", str(expires))]
        if authorization is not None:
            extra.append(authorization)
        request = build_request(
            self.core.transport, "REGISTER", self.registrar_uri,
            from_value=NameAddress(None, self.aor).with_tag(self.from_tag),
            to_value=NameAddress(None, self.aor),
            call_id=self.call_id, cseq=self.cseq, protocol=self.protocol,
            contact=NameAddress(None, self.contact), extra_headers=tuple(extra),
            toward=self.destination.host)
        if expires and self.state is not RegistrationState.REGISTERED:
            self._set(RegistrationState.REGISTERING, None, "Registering")
        self.core.send_request(request, self.destination, self)

    def response_received(self, response: Response) -> None:
        status = response.status_code
        if status < 200:
            return
        if status in (401, 407):
            self._challenged(response)
        elif status == 423 and self._last_expires:
            minimum = response.headers.get("Min-Expires")
            if minimum and minimum.isdigit() and int(minimum) > self._last_expires:
                self.expires = int(minimum)
                self._send(self.expires, authorization=None)
            else:
                self._failed(status, response.reason)
        elif 200 <= status < 300:
            self._succeeded(response)
        elif status == 403 and self._sent_credentials:
            self._authentication_failed(response)
        else:
            self._failed(status, response.reason)

    def transaction_failed(self, reason: str) -> None:
        self._failed(408 if reason == "timeout" else 503,
                     "Request timeout" if reason == "timeout" else "Transport failure")

    def _challenged(self, response: Response) -> None:
        header = "WWW-Authenticate" if response.status_code == 401 else "Proxy-Authenticate"
        challenge = select_challenge(response.headers.get_all(header))
        if challenge is None:
            self._failed(response.status_code, "Unsupported authentication challenge")
            return
        if self._sent_credentials and not challenge.stale:
            # The server refused our answer to this very nonce: the password is wrong.
            self._authentication_failed(response)
            return
        uses = self._nonce_uses.get(challenge.nonce, 0) + 1
        self._nonce_uses = {challenge.nonce: uses}
        try:
            value = build_authorization(
                challenge, "REGISTER", str(self.registrar_uri),
                self.account.authentication_name, self.account.password,
                cnonce(self.core.random), nc=uses)
        except LocalProtocolError as error:
            self._failed(response.status_code, str(error))
            return
        self._answered_nonce = challenge.nonce
        name = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
        self._send(self._last_expires, authorization=(name, value))

    def _authentication_failed(self, response: Response) -> None:
        self._answered_nonce = None
        self.log.info("REGISTER {aor}: credentials refused ({status})", aor=str(self.aor),
                      status=response.status_code)
        self._set(RegistrationState.AUTHENTICATION_FAIL, response.status_code,
                  f"{response.status_code} {response.reason}")
        self._finish_unregister()
        self._schedule_retry()

    def _succeeded(self, response: Response) -> None:
        self._answered_nonce = None
        self._failures = 0
        if self._last_expires == 0:
            self._set(RegistrationState.UNREGISTERED, response.status_code, "Unregistered")
            self._finish_unregister()
            return
        self.granted = self._granted_expiry(response)
        self._set(RegistrationState.REGISTERED, response.status_code,
                  f"{response.status_code} {response.reason}")
        self._cancel_timer()
        if not self._stopped:
            self._timer = self.clock.callLater(max(1.0, self.granted * self.REFRESH_AT),
                                               self._refresh)

    def _granted_expiry(self, response: Response) -> int:
        """
        RFC 3261 10.2.4: our Contact's expires parameter, else Expires, else what we asked for.
        """
        try:
            for contact in response.contacts:
                uri = contact.uri
                if (getattr(uri, "user", None) == self.contact.user
                        and getattr(uri, "host", None) == self.contact.host
                        and getattr(uri, "port", None) == self.contact.port):
                    value = contact.param("expires")
                    if value and value.isdigit():
                        return int(value)
        except RemoteProtocolError:
            pass
        header = response.headers.get("Expires")
        if header and header.strip().isdigit():
            return int(header.strip())
        return self._last_expires

    def _failed(self, status: int, reason: str) -> None:
        self.log.info("REGISTER {aor} failed: {status} {reason}", aor=str(self.aor),
                      status=status, reason=reason)
        self._answered_nonce = None
        self._set(RegistrationState.FAILED, status, f"{status} {reason}")
        self._finish_unregister()
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._cancel_timer()
        if self._stopped or not self.retry:
            return
        delay = self.RETRY_DELAYS[min(self._failures, len(self.RETRY_DELAYS) - 1)]
        self._failures += 1
        self._timer = self.clock.callLater(delay, self._refresh)

    def _refresh(self) -> None:
        self._timer = None
        if not self._stopped:
            self._send(self.expires, authorization=None)

    def _finish_unregister(self) -> None:
        # Called after the state is set: whoever waits on stop() sees where it ended.
        if self._unregistering is not None:
            done, self._unregistering = self._unregistering, None
            done.callback(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _set(self, state: RegistrationState, status: int | None, reason: str) -> None:
        changed = state is not self.state
        self.state = state
        if changed or state in (RegistrationState.FAILED, RegistrationState.AUTHENTICATION_FAIL):
            self.on_change(RegistrationChanged(state, status, reason))
