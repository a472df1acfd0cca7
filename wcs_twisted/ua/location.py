# -*- test-case-name: tests.ua.test_registrar -*-
"""
The in-memory location service (RFC 3261 10.2): address of record -> registered contacts.

Written by the built-in L{wcs_twisted.ua.registrar.Registrar}, read by the proxy (where to
fork a request) and by the gateway (is a local user registered).  Kept apart from the
registrar because three parties use the table and only one answers REGISTER.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from wcs_twisted.sip.headers import NameAddress

__all__ = ["Binding", "LocationService", "address_of_record"]

#: AORs remembered as known (the default of L{LocationService}'s C{max_known}).
MAX_KNOWN = 10000


def address_of_record(uri) -> str:
    """
    The canonical AOR of a URI: scheme, user and host, lower-cased host, no port or parameters
    (RFC 3261 10.3 step 5).
    """
    user = f"{uri.user}@" if getattr(uri, "user", None) else ""
    return f"sip:{user}{uri.host.lower()}"


@dataclass(frozen=True)
class Binding:
    """
    One contact registered for an address of record.
    """

    aor: str
    contact: NameAddress
    expires_at: float
    call_id: str
    cseq: int
    source: Any  # the transport address the REGISTER came from
    q: float = 1.0
    #: Requests for this contact go back over the flow its REGISTER came on (C{source}): the
    #: registrar saw NAT, a connection or RFC 5626 outbound.  Otherwise they go to the Contact
    #: itself, so a REGISTER sent on a phone's behalf (third-party) reaches the phone.
    flow: bool = False

    @property
    def contact_key(self) -> str:
        return str(self.contact.uri)

    def expires_in(self, now: float) -> int:
        return max(0, int(round(self.expires_at - now)))


class LocationService:
    """
    AOR -> bindings, with expiry evaluated against the C{now} each call is given.

    Besides the table the proxy needs (L{lookup}), it remembers which AORs ever registered (a
    user who is away gets 480, an unknown one 404) and indexes live bindings by the host and
    port of their contact, so an in-dialog request whose Request-URI is a registered contact
    behind NAT is sent where that contact's REGISTER came from.
    """

    def __init__(self, on_change: Callable[[int], None] = lambda count: None,
                 max_known: int = MAX_KNOWN) -> None:
        """
        @param max_known: how many AORs that once registered are remembered (for 480 rather
            than 404); the oldest is forgotten first, so a client registering ever new names
            cannot grow the table.
        """
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._count = 0
        self._known: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._max_known = max_known
        self._by_address: dict[tuple[str, int | None], Binding] = {}
        self._on_change = on_change

    def __len__(self) -> int:
        return self._count

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """
        Live bindings of C{aor}, highest q first (RFC 3261 16.6 target ordering).
        """
        contacts = self._bindings.get(aor)
        if not contacts:
            return []
        expired = [key for key, binding in contacts.items() if binding.expires_at <= now]
        if expired:
            for key in expired:
                self._forget(contacts.pop(key))
            if not contacts:
                del self._bindings[aor]
            self._on_change(self._count)
        if len(contacts) == 1:
            return list(contacts.values())
        return sorted(contacts.values(), key=lambda binding: -binding.q)

    def find(self, aor: str, contact_key: str) -> Binding | None:
        return self._bindings.get(aor, {}).get(contact_key)

    def known(self, aor: str) -> bool:
        """
        Whether C{aor} ever had a binding (its user exists but may be away).
        """
        return aor in self._known

    def binding_at(self, host: str, port: int | None, now: float) -> Binding | None:
        """
        A live binding whose contact URI is C{host:port}, or None.
        """
        binding = self._by_address.get((host.lower(), port))
        if binding is None or binding.expires_at > now:
            return binding
        self.lookup(binding.aor, now)  # drops it (and its AOR's other expired bindings)
        return None

    def update(self, binding: Binding) -> None:
        contacts = self._bindings.setdefault(binding.aor, {})
        previous = contacts.get(binding.contact_key)
        if previous is not None:
            self._forget(previous)
        contacts[binding.contact_key] = binding
        self._count += 1
        known = self._known
        if binding.aor in known:
            del known[binding.aor]  # refreshed: now the newest
        elif len(known) >= self._max_known:
            del known[next(iter(known))]
        known[binding.aor] = None
        uri = binding.contact.uri
        host = getattr(uri, "host", None)
        if host:
            self._by_address[(host.lower(), getattr(uri, "port", None))] = binding
        self._on_change(self._count)

    def remove(self, aor: str, contact_key: str | None = None) -> None:
        contacts = self._bindings.get(aor)
        if contacts is None:
            return
        if contact_key is None:
            for binding in contacts.values():
                self._forget(binding)
            del self._bindings[aor]
        else:
            binding = contacts.pop(contact_key, None)
            if binding is not None:
                self._forget(binding)
            if not contacts:
                del self._bindings[aor]
        self._on_change(self._count)

    def purge(self, now: float) -> None:
        for aor in list(self._bindings):
            self.lookup(aor, now)

    def _forget(self, binding: Binding) -> None:
        self._count -= 1
        uri = binding.contact.uri
        key = (getattr(uri, "host", "").lower(), getattr(uri, "port", None))
        if self._by_address.get(key) is binding:
            del self._by_address[key]
