# -*- test-case-name: tests.gateway.test_local_registration -*-
"""
Local-mode sessions registered at a registrar in front (C{sip_register_local_sessions}).

A session without C{sipRegisterRequired} is reachable through this server alone (WCS local
mode).  Behind a shared registrar - a cluster's Kamailio (docs/scaling.md) - its calls must
find the one server that holds its WebSocket: the server registers the session's login there,
without credentials (the registrar trusts its servers by address, and challenges logins that
have a password), with a Contact naming the session (C{;wcs=<contact id>}) so an INVITE for
the login lands on exactly that session.  The client hears nothing of it: a local-mode session
gets no registration events, in WCS as here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from twisted.logger import Logger

from wcs_twisted.gateway.call_table import CONTACT_PARAMETER
from wcs_twisted.ua.registration import RegistrationClient, RegistrationState

__all__ = ["local_registration_factory"]

log = Logger()

#: What the server asks for; a registrar in front grants less (the cluster's: 60 s).
EXPIRES = 3600


def local_registration_factory(core, clock, outbound_proxy: str) -> Callable[[Any], Any]:
    """
    The L{wcs_twisted.gateway.sessions.SessionTable} C{local_registration} hook: register a
    session's login at its sipDomain (through C{outbound_proxy} when the session names none).
    """

    def register(session) -> RegistrationClient:
        account = session.account
        if not account.outbound_proxy and outbound_proxy:
            account = replace(account, outbound_proxy=outbound_proxy)

        def changed(change) -> None:
            if change.state in (RegistrationState.FAILED, RegistrationState.AUTHENTICATION_FAIL):
                log.warn("session {session_id}: {login} not registered in front ({reason}); "
                         "calls for it do not reach it", session_id=session.session_id,
                         login=account.login, reason=change.reason)
            elif change.state is RegistrationState.REGISTERED:
                log.info("session {session_id}: {login} registered in front",
                         session_id=session.session_id, login=account.login)

        registration = RegistrationClient(core, clock, account, changed, expires=EXPIRES,
                                          contact_params={CONTACT_PARAMETER: session.contact_id})
        registration.start()
        return registration

    return register
