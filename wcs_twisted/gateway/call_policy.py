# -*- test-case-name: tests.gateway.test_call_policy -*-
"""
Who may call where, how many at once, and who may take a local login: the gateway's admission
rules, apart from the call machinery so that one page says the whole policy.

A gateway's address is trusted by the PBXs and carriers behind it, so a WebSocket client that
makes it send an INVITE anywhere commits toll fraud in the operator's name.  A call is therefore
checked before any port is taken: every SIP destination it would reach (the first hop and the
Request-URI's host) must be this server, on the operator's allow-list, or vouched for by the
application backend (its C{connect} hook approved the session: WCS's model).  A session nobody
vouched for and that proved no credentials is I{anonymous}; what it may do is its own setting.
Registering upstream vouches for a session only at a registrar the same rules allow: anyone can
run a registrar that accepts everybody and relays their INVITEs.

The defaults keep a loopback install as open as before (only local users can reach it) and make
an exposed one (any non-loopback listener) refuse foreign destinations unless configured.
"""

from __future__ import annotations

import fnmatch
import hmac
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from wcs_twisted.errors import DomainError
from wcs_twisted.ua.outbound import split_host_port

#: What anonymous sessions may call (C{call_anonymous}); "auto" is "any" on a loopback-only
#: server and "local" on an exposed one.
ANONYMOUS_POLICIES = ("auto", "any", "local", "none")


class CallRefused(DomainError):
    """
    The policy does not let this session start this call; C{info} says which rule and setting.
    """

    info = "Call not allowed"


class LoginRefused(DomainError):
    """
    A local login with credentials whose password the session did not prove.
    """

    info = "SIP login refused"


@dataclass(frozen=True)
class Destination:
    """
    One SIP hop a call would reach: C{host} lower-cased, C{port} None when not given.
    """

    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> "Destination":
        host, port = split_host_port(text)
        return cls(host.strip("[]").lower(), port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host


def matches(patterns: Iterable[str], destination: Destination) -> bool:
    """
    Whether an allow-list names C{destination}: a pattern is C{host} (any port) or
    C{host:port}, either may use shell wildcards (C{*.example.com}, C{10.0.0.*:5060}).
    """
    for pattern in patterns:
        wanted = Destination.parse(pattern.strip())
        if not fnmatch.fnmatchcase(destination.host, wanted.host):
            continue
        if wanted.port is None or wanted.port == (destination.port or 5060):
            return True
    return False


@dataclass(frozen=True)
class CallPolicy:
    """
    The operator's admission settings (see docs/security.md, "Who may call where").

    @ivar allowed_destinations: host / host:port patterns every foreign hop of a session's
        call must match; empty means "not configured".
    @ivar anonymous_calls: one of L{ANONYMOUS_POLICIES}.
    @ivar exposed: some listener is on a non-loopback address (computed by the composition root).
    @ivar local_users: the built-in registrar's digest users (login -> password).
    @ivar max_calls_per_session: concurrent calls one session may hold (0: no cap).
    @ivar max_calls_per_address: concurrent session calls from one client IP (0: no cap).
    """

    allowed_destinations: tuple[str, ...] = ()
    anonymous_calls: str = "auto"
    exposed: bool = False
    local_users: Mapping[str, str] | None = None
    max_calls_per_session: int = 10
    max_calls_per_address: int = 50

    def __post_init__(self) -> None:
        if self.anonymous_calls not in ANONYMOUS_POLICIES:
            raise ValueError(f"anonymous_calls must be one of {', '.join(ANONYMOUS_POLICIES)}, "
                             f"not {self.anonymous_calls!r}")

    @property
    def anonymous(self) -> str:
        """
        The effective anonymous policy ("auto" resolved).
        """
        if self.anonymous_calls != "auto":
            return self.anonymous_calls
        return "local" if self.exposed else "any"

    # --- logins --------------------------------------------------------------------------------

    def login_proven(self, login: str, authentication_name: str, password: str) -> bool:
        """
        Whether a session proved a local login: True when it gave the login's password, False
        when the login has no credentials here (nothing to prove; as at the registrar, such a
        binding takes nobody's place); raise L{LoginRefused} when it has credentials the
        session did not prove, so that it is never bound.
        """
        users = self.local_users or {}
        if login not in users:
            return False
        expected = users[login]
        if authentication_name == login and hmac.compare_digest(
                password.encode("utf-8"), expected.encode("utf-8")):
            return True
        raise LoginRefused(f"SIP login {login} has credentials on this server: "
                           "connect with its sipPassword")

    # --- calls ---------------------------------------------------------------------------------

    def _check_hops(self, session, hops: list[Destination], action: str, otherwise: str,
                    trusted_route: bool) -> None:
        """
        The rules on foreign hops that calls and registrations share: all on the allow-list
        when there is one; else any on a loopback-only server, and on an exposed one only for
        a backend-approved session or a C{trusted_route}.
        """
        if self.allowed_destinations:
            for destination in hops:
                if not matches(self.allowed_destinations, destination):
                    raise CallRefused(f"{action} {destination} is not allowed on this server "
                                      "(call_allowed_destinations)")
            return
        if not self.exposed or session.approved_by_backend or trusted_route:
            return
        raise CallRefused(f"{action} {hops[0]} is not allowed on this server: {otherwise}, "
                          "unless call_allowed_destinations or a connect hook allows it")

    def check_registration(self, session, registrar: list[Destination]) -> None:
        """
        Refuse a session's upstream registration (C{sipRegisterRequired}) at a registrar the
        policy does not allow, before any REGISTER is sent.

        A registrar is a relay: whoever runs it can route the session's INVITEs anywhere, and
        a session registered there counts as vouched for.  So registering is allowed where
        calling would be for a vouched-for session: the hops must match
        C{call_allowed_destinations} when it is set; without it, anywhere on a loopback-only
        server, and on an exposed one only for backend-approved sessions.

        @param registrar: the registration's foreign hops (its first hop and the registrar's
            domain); empty when it registers at this server, whose registrar checks itself.
        @raise CallRefused: naming the setting that decides.
        """
        if registrar:
            self._check_hops(session, registrar, "Registering at", "only at this server", False)

    def registration_vouches(self, session, registrar: list[Destination] | None) -> bool:
        """
        Whether the session's upstream registration vouches for it: it registered, at a
        registrar this policy allows (a registrar anyone may run proves nothing).
        """
        if not session.registered or registrar is None:
            return False
        try:
            self.check_registration(session, registrar)
        except CallRefused:
            return False
        return True

    def check_call(self, session, foreign: list[Destination], via_account_server: bool,
                   registrar: list[Destination] | None = None) -> None:
        """
        Refuse a session's call whose foreign hops (C{foreign}: every hop that is not this
        server) the policy does not allow.

        @param via_account_server: the call goes first to the account's own SIP server, at
            which the session registered (that server authenticates the call itself).
        @param registrar: the foreign hops of the session's upstream registration (see
            L{check_registration}); None when unknown, and then registering vouches for nothing.
        @raise CallRefused: naming the rule and the setting that decides it.
        """
        registered = self.registration_vouches(session, registrar)
        anonymous = not (session.approved_by_backend or session.credentials_proven
                         or registered)
        if anonymous and self.anonymous == "none":
            raise CallRefused("Anonymous sessions may not call on this server (call_anonymous)")
        if not foreign:
            return
        if anonymous and self.anonymous == "local":
            raise CallRefused(f"Anonymous sessions may only call local users, not "
                              f"{foreign[0]} (call_anonymous)")
        self._check_hops(session, foreign, "Calling", "only local users",
                         via_account_server and registered)

    def check_count(self, session, calls: Iterable[Any]) -> None:
        """
        Refuse a new call when the session, or its client address, holds its cap of calls.
        """
        own = same_address = 0
        for call in calls:
            other = call.session
            if other is None or call.status.released:
                continue
            if other is session:
                own += 1
            if session.address and other.address == session.address:
                same_address += 1
        if self.max_calls_per_session and own >= self.max_calls_per_session:
            raise CallRefused(f"Too many calls: at most {self.max_calls_per_session} per "
                              "session (max_calls_per_session)")
        if self.max_calls_per_address and same_address >= self.max_calls_per_address:
            raise CallRefused(f"Too many calls from {session.address}: at most "
                              f"{self.max_calls_per_address} per address "
                              "(max_calls_per_address)")
