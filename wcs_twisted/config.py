# -*- test-case-name: tests.test_config -*-
# Over 600 lines as one piece: every core key declared once (KEYS), its types, and the one Settings.
"""
Typed, frozen settings read from a Java-properties file (WCS's flashphoner.properties syntax).

Every core key is declared once in L{KEYS} with its type, default and a one-line description;
modules declare theirs as L{ModuleKey}s (C{IWcsModule.config_keys}), read from the same file and
checked the same way.  docs/configuration.md and etc/wcs.properties are checked against both by a
test.  A user mistake is a L{ConfigError} whose text is one line naming the key, the value and what
was expected, so the command line can print it without a traceback.  Unknown keys are returned as
warnings, not errors, so that a flashphoner.properties copied from WCS still starts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from wcs_twisted.properties import parse_properties


class ConfigError(Exception):
    """
    A configuration value is wrong; the message is one line meant for the operator.
    """


#: REST hook methods the server calls (exact WCS spelling), for rest_hook_methods.<appKey>.
HOOK_METHODS: tuple[str, ...] = (
    "connect", "call", "answer", "hangup", "hold", "unhold", "transfer", "sendDtmf",
    "ConnectionStatusEvent", "RegistrationStatusEvent", "CallStatusEvent", "TransferStatusEvent",
)


#: Passwords anyone can look up (the former default, the WCS examples'); refused for REST on a
#: listener other hosts can reach.
PUBLISHED_PASSWORDS = frozenset({"admin"})


# --- value types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueType:
    """
    How to read one kind of value, and how to say what was expected when it cannot be read.
    """

    expected: str
    convert: Callable[[str], Any]


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(text)


def _port(text: str) -> int:
    value = int(text.strip())
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def _positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError(text)
    return value


def _at_least_90(text: str) -> int:
    value = int(text.strip())
    if value < 90:
        raise ValueError(text)  # RFC 4028 4: Min-SE MUST NOT be less than 90 seconds
    return value


def _non_negative_int(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError(text)
    return value


def _address(text: str) -> str:
    text = text.strip()
    if text:
        ipaddress.ip_address(text)
    return text


def _host(text: str) -> str:
    text = text.strip()
    if text and not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", text):
        raise ValueError(text)
    return text


def _string(text: str) -> str:
    return text.strip()


def _word_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _networks(text: str) -> tuple[str, ...]:
    """
    IP addresses or networks (address/prefix), kept as text; a bad one is refused at start.
    """
    items = _word_list(text)
    for item in items:
        ipaddress.ip_network(item, strict=False)  # ValueError for anything else
    return items


def _transports(text: str) -> tuple[str, ...]:
    names = tuple(part.lower() for part in _word_list(text))
    if not names or any(name not in ("udp", "tcp", "tls") for name in names):
        raise ValueError(text)
    return names


def _digest_algorithms(text: str) -> tuple[str, ...]:
    names = tuple(part.upper() for part in _word_list(text))
    if not names or any(name not in ("MD5", "SHA-256") for name in names):
        raise ValueError(text)
    return names


def _choice(*names: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = text.strip().lower()
        if value not in names:
            raise ValueError(text)
        return value

    return convert


def _http_url(text: str) -> str:
    """
    An absolute http(s) URL with a host, without a trailing slash (hook paths are appended).
    """
    text = text.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or any(char.isspace() for char in text):
        raise ValueError(text)
    if parts.port == 0:  # .port itself raises ValueError for a non-number or out of range
        raise ValueError(text)
    return text.rstrip("/")


def _origins(text: str) -> tuple[str, ...]:
    """
    C{*} alone, or origins as a browser sends them (C{scheme://host[:port]}, no path).
    """
    origins = tuple(origin.lower() for origin in _word_list(text))
    if origins == ("*",):
        return origins
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path \
                or parts.query or parts.fragment or parts.username is not None:
            raise ValueError(text)
        parts.port  # raises ValueError for a non-number or out of range
    return origins


def _non_empty(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError(text)
    return text


def _hook_methods(text: str) -> tuple[str, ...]:
    names = _word_list(text)
    if not names or any(name not in HOOK_METHODS for name in names):
        raise ValueError(text)
    return names


def _activity(text: str) -> tuple[bool, int]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) == 1:
        return _boolean(parts[0]), 60
    if len(parts) == 2:
        return _boolean(parts[0]), _positive_int(parts[1])
    raise ValueError(text)


BOOLEAN = ValueType("true or false", _boolean)
PORT = ValueType("a port number from 0 to 65535", _port)
POSITIVE_INT = ValueType("a whole number above 0", _positive_int)
NON_NEGATIVE_INT = ValueType("a whole number, 0 or above", _non_negative_int)
ADDRESS = ValueType("an IPv4 or IPv6 address, or empty", _address)
HOST = ValueType("a host name or IP address, or empty", _host)
STRING = ValueType("text", _string)
WORDS = ValueType("a comma-separated list", _word_list)
NETWORKS = ValueType("a comma-separated list of IP addresses or networks (address/prefix)",
                     _networks)
TRANSPORTS = ValueType("a comma-separated list of udp, tcp, tls", _transports)
DIGEST_ALGORITHMS = ValueType("a comma-separated list of MD5, SHA-256", _digest_algorithms)
ACTIVITY = ValueType("true or false, optionally followed by ,SECONDS (e.g. true,60)", _activity)
HOOK_SIGNATURE = ValueType("hmac-sha256 or wcs-md5", _choice("hmac-sha256", "wcs-md5"))
HOOK_UNAVAILABLE = ValueType("refuse or allow", _choice("refuse", "allow"))
SESSION_SECONDS = ValueType("a whole number, 90 or above", _at_least_90)
RELIABLE_PROVISIONAL = ValueType("supported, required or off",
                                 _choice("supported", "required", "off"))
CALL_ANONYMOUS = ValueType("auto, any, local or none", _choice("auto", "any", "local", "none"))
SRTP_MODE = ValueType("off, answer, optional or mandatory",
                      _choice("off", "answer", "optional", "mandatory"))
HTTP_URL = ValueType("an http:// or https:// URL with a host and no query", _http_url)
NON_EMPTY = ValueType("non-empty text", _non_empty)
ORIGINS = ValueType("* alone, or a comma-separated list of origins like https://app.example.com",
                    _origins)
HOOK_METHODS_LIST = ValueType(
    "a comma-separated list of hook methods (connect, call, answer, hangup, hold, unhold, "
    "transfer, sendDtmf, ConnectionStatusEvent, RegistrationStatusEvent, CallStatusEvent, "
    "TransferStatusEvent)", _hook_methods)


@dataclass(frozen=True)
class Key:
    """
    One configuration key: its name in the file, the L{Settings} field it fills, its type,
    default (as it would be written in the file) and description.
    """

    name: str
    attribute: str
    type: ValueType
    default: str
    description: str


@dataclass(frozen=True)
class ModuleKey:
    """
    A configuration key a module declares (C{IWcsModule.config_keys}): in the same file as the
    core keys, checked when it is loaded, read by the module with C{IModuleContext.setting}.
    """

    name: str
    type: ValueType
    default: str
    description: str

    def value(self, settings: "Settings") -> Any:
        """
        This key's value in C{settings}: the one the file gave, else the converted default.
        """
        if self.name in settings.module_values:
            return settings.module_values[self.name]
        return self.type.convert(self.default)


# The order here is the order of docs/configuration.md.
KEYS: tuple[Key, ...] = (
    Key("ip", "public_address", ADDRESS, "",
        "Public address written into SDP c= lines and SIP Contact/Via for peers outside "
        "local_networks (behind a 1:1 NAT; peers inside get ip_local); empty means the first "
        "of ip_local that is not a wildcard, else 127.0.0.1."),
    Key("ip_local", "bind_address", ADDRESS, "0.0.0.0",
        "Address every listener (WebSocket, HTTP, SIP, RTP) binds to."),
    Key("sip_public_address", "sip_public_address", ADDRESS, "",
        "Address written in Via, Contact and Record-Route for SIP peers outside local_networks; "
        "empty means ip (docs/operations.md, Behind NAT)."),
    Key("media_public_address", "media_public_address", ADDRESS, "",
        "Address written in SDP c= and ICE candidates for peers outside local_networks; "
        "empty means ip."),
    Key("ip6", "ipv6_address", ADDRESS, "",
        "IPv6 address that the WebSocket, HTTP and SIP listeners also bind, and that "
        "signalling and media toward IPv6 peers advertise; IPv6 is not NATed. "
        "Empty: IPv4 only."),
    Key("local_networks", "local_networks", NETWORKS, "",
        "Networks on this side of the NAT, whose peers are given ip_local (or the address the "
        "route to them uses) instead of the public one; empty means RFC 1918, RFC 4193, "
        "loopback and link-local."),
    Key("node_id", "node_id", STRING, "",
        "Name of this node in REST objects and hooks (nodeId); empty means <random>@<ip>."),
    Key("ws.port", "ws_port", PORT, "8080", "Plain WebSocket (ws://) port for the WCS protocol."),
    Key("wss.port", "wss_port", PORT, "8443",
        "WebSocket over TLS (wss://) port; used only when a certificate is configured."),
    Key("http.port", "http_port", PORT, "8081",
        "HTTP port for /rest-api/, /health, /metrics and the demo pages."),
    Key("https.port", "https_port", PORT, "8444",
        "HTTPS port for the same; used only when a certificate is configured."),
    Key("tls_certificate", "tls_certificate", STRING, "",
        "PEM file with the server certificate chain; enables wss.port and https.port."),
    Key("tls_private_key", "tls_private_key", STRING, "",
        "PEM file with the private key for tls_certificate (may be the same file)."),
    Key("disable_rest_auth", "disable_rest_auth", BOOLEAN, "false",
        "Serve /rest-api/ without HTTP Basic authentication (development only)."),
    Key("rest_username", "rest_username", STRING, "admin", "User name for REST Basic auth."),
    Key("rest_password", "rest_password", STRING, "",
        "Password for REST Basic auth. Empty: admin while the HTTP listener binds a loopback "
        "address only, else one generated at first start into <state_dir>/rest-password. "
        "admin on a non-loopback address is refused at start."),
    Key("rest_cors_origins", "rest_cors_origins", ORIGINS, "",
        "Origins of other sites whose pages may call the REST API (CORS, with credentials), "
        "besides same-origin and loopback pages; requests from any other page are refused "
        "(403). * lets any page call, without credentials, and refuses none."),
    Key("rest_auth_max_failures", "rest_auth_max_failures", NON_NEGATIVE_INT, "10",
        "Failed REST logins one client address (an IPv6 /64) may make within "
        "rest_auth_failure_window; after that it is answered 429 for that window. 0: no limit."),
    Key("rest_auth_failure_window", "rest_auth_failure_window_s", POSITIVE_INT, "60",
        "Seconds over which failed REST logins are counted, and how long a client address "
        "that made too many is answered 429."),
    Key("state_dir", "state_dir", STRING, "var",
        "Directory for files the server writes itself (rest-password); created with mode 0700."),
    Key("disable_rest_requests", "disable_rest_requests", BOOLEAN, "false",
        "Send no REST hooks to any backend, whatever rest_hook.<appKey> says (WCS key)."),
    Key("rest_max_connections", "rest_max_connections", POSITIVE_INT, "200",
        "Most REST hook requests in flight at once; more wait their turn, and status events "
        "are dropped (logged) once as many again are waiting (WCS key)."),
    Key("rest_hook_timeout", "rest_hook_timeout_ms", POSITIVE_INT, "5000",
        "Milliseconds a REST hook may take, waiting for a free connection included, before it "
        "counts as failed."),
    Key("rest_hook_retries", "rest_hook_retries", NON_NEGATIVE_INT, "2",
        "Extra attempts for a status event hook whose backend is unreachable, times out or "
        "answers 5xx (never for connect or client actions, never after a 4xx)."),
    Key("rest_hook_retry_delay", "rest_hook_retry_delay_ms", POSITIVE_INT, "500",
        "Milliseconds before the first event retry; each further retry waits twice as long."),
    Key("rest_hook_signature", "rest_hook_signature", HOOK_SIGNATURE, "hmac-sha256",
        "How hooks are signed with rest_hook_secret.<appKey>: hmac-sha256 (X-WCS-Signature and "
        "X-WCS-Timestamp headers) or wcs-md5 (Authorization: WCS <hmac-md5>); see "
        "docs/rest-hooks.md."),
    Key("rest_hook_unavailable_policy", "rest_hook_unavailable_policy", HOOK_UNAVAILABLE,
        "refuse",
        "What a connect does when its backend is unreachable, times out or answers 502/503/504: "
        "refuse the session, or allow it unchanged."),
    Key("keep_alive.server_interval", "keep_alive_interval_ms", POSITIVE_INT, "5000",
        "Milliseconds between the server's WebSocket ping messages."),
    Key("keep_alive.probes", "keep_alive_probes", POSITIVE_INT, "10",
        "Consecutive unanswered pings after which the WebSocket is closed."),
    Key("keep_alive.grace", "keep_alive_grace_s", NON_NEGATIVE_INT, "60",
        "Seconds a session that connected with keepAlive keeps its registration and calls after "
        "its WebSocket closes, waiting for a reconnect with its authToken; 0 turns this off."),
    Key("ws_max_message_size", "ws_max_message_size", POSITIVE_INT, "1048576",
        "Largest WebSocket message accepted, in bytes."),
    Key("sip_port", "sip_port", PORT, "5060",
        "Port of the SIP stack (built-in registrar/proxy and outgoing calls)."),
    Key("sip_tls_port", "sip_tls_port", PORT, "5061",
        "SIP over TLS port; used only when a certificate is configured and tls is in sip_transports."),
    Key("sip_transports", "sip_transports", TRANSPORTS, "udp,tcp",
        "SIP transports to listen on."),
    Key("sip_t1", "sip_t1_ms", POSITIVE_INT, "500", "SIP timer T1 in milliseconds (RFC 3261 17)."),
    Key("sip_t2", "sip_t2_ms", POSITIVE_INT, "4000", "SIP timer T2 in milliseconds."),
    Key("sip_t4", "sip_t4_ms", POSITIVE_INT, "5000", "SIP timer T4 in milliseconds."),
    Key("sip_max_message_size", "sip_max_message_size", POSITIVE_INT, "65536",
        "Largest SIP message accepted on any transport, in bytes."),
    Key("sip_max_tcp_connections", "sip_max_tcp_connections", POSITIVE_INT, "1024",
        "Most simultaneous inbound SIP TCP/TLS connections."),
    Key("sip_rate_limit", "sip_rate_limit", NON_NEGATIVE_INT, "100",
        "SIP requests per second one source IP may send (token bucket); beyond it UDP requests are dropped, TCP/TLS ones get 503; 0 turns the limit off."),
    Key("sip_rate_limit_burst", "sip_rate_limit_burst", POSITIVE_INT, "200",
        "SIP requests a source may send at once before sip_rate_limit applies."),
    Key("sip_rate_limit_exempt", "sip_rate_limit_exempt", WORDS, "127.0.0.0/8,::1/128",
        "Networks (address/prefix) never rate limited, comma-separated: e.g. a SIP proxy in front that sends everyone's traffic."),
    Key("sip_max_transactions", "sip_max_transactions", NON_NEGATIVE_INT, "50000",
        "Live SIP transactions over which new INVITEs and REGISTERs are answered 503 statelessly; 0: no bound."),
    Key("sip_max_reactor_lag_ms", "sip_max_reactor_lag_ms", NON_NEGATIVE_INT, "300",
        "Reactor lag (two ticks in a row) over which new INVITEs and REGISTERs are answered 503; 0: off."),
    Key("sip_overload_retry_after", "sip_overload_retry_after", POSITIVE_INT, "5",
        "Retry-After seconds of the 503s sent when shedding load or rate limiting."),
    Key("sip_max_queue_delay_ms", "sip_max_queue_delay_ms", NON_NEGATIVE_INT, "0",
        "How long a SIP datagram may wait in the UDP receive buffer (kernel receive timestamp) before a new INVITE or REGISTER in it is answered 503 statelessly; 0 (the default): off; the 503 is now written from the raw request before any parse, but on a host whose CPU is shared the wait also grows in the neighbours' bursts and refuses calls the server would have completed (bench/README.md, overload)."),
    Key("sip_max_tcp_connections_per_source", "sip_max_tcp_connections_per_source", POSITIVE_INT, "64",
        "Inbound SIP TCP/TLS connections one IP address may hold."),
    Key("sip_tcp_first_message_timeout", "sip_tcp_first_message_timeout", NON_NEGATIVE_INT, "10",
        "Seconds a new inbound SIP TCP/TLS connection (handshake included) has to send a whole SIP message; 0: no limit."),
    Key("sip_tcp_idle_timeout", "sip_tcp_idle_timeout", NON_NEGATIVE_INT, "3600",
        "Seconds a SIP TCP/TLS connection may receive nothing (keep-alives count) before it is closed; 0: no limit."),
    Key("sip_digest_algorithms", "sip_digest_algorithms", DIGEST_ALGORITHMS, "MD5,SHA-256",
        "Digest algorithms the built-in registrar offers, one challenge each, in this order "
        "(many phones and sipp answer only the first one they see)."),
    Key("sip_domain", "sip_domain", HOST, "",
        "Domain of the built-in registrar; empty means the public address."),
    Key("sip_local_domains", "sip_local_domains", WORDS, "",
        "Extra domains the built-in registrar/proxy serves; requests for other domains are "
        "refused (no open relay)."),
    Key("sip_outbound_proxy", "sip_outbound_proxy", HOST, "",
        "External SIP server for calls whose session gives no sipOutboundProxy; when set, local "
        "mode is off unless enable_local_videochat is set explicitly."),
    Key("sip_dns_servers", "sip_dns_servers", WORDS, "",
        "DNS servers (host or host:port, comma-separated) for RFC 3263 lookups of SIP destinations; empty: those of /etc/resolv.conf (the hosts file is read first)."),
    Key("sip_dns_down_s", "sip_dns_down_s", NON_NEGATIVE_INT, "30",
        "Seconds a SIP target that failed (transport error or silence) is skipped in favour of the next SRV target."),
    Key("sip_dns_silence_ms", "sip_dns_silence_ms", NON_NEGATIVE_INT, "4000",
        "Silence from an SRV target before the next one is tried: after a request, its retransmission goes there (UDP); a connect plus TLS handshake not done by then fails (TCP/TLS); 0: only transport errors fail over (connects then time out after 10 s)."),
    Key("enable_local_videochat", "enable_local_videochat", BOOLEAN, "true",
        "Local mode: the built-in registrar/proxy connects calls between local users, so no "
        "external SIP server is needed (WCS key)."),
    Key("call_allowed_destinations", "call_allowed_destinations", WORDS, "",
        "Hosts or host:port patterns (* and ? wildcards) that sessions' calls may reach besides this server, comma-separated; when set, every session stays inside it (docs/security.md)."),
    Key("call_anonymous", "call_anonymous", CALL_ANONYMOUS, "auto",
        "What sessions that no connect hook approved and that proved no credentials may call: any, local (local users only) or none; auto is any when every listener is on loopback, local otherwise."),
    Key("max_calls_per_session", "max_calls_per_session", NON_NEGATIVE_INT, "10",
        "Concurrent calls per WebSocket session; 0 means no cap."),
    Key("max_calls_per_address", "max_calls_per_address", NON_NEGATIVE_INT, "50",
        "Concurrent session calls per client IP address; 0 means no cap (raise it behind a reverse proxy, where clients share one address)."),
    Key("sip_ring_timeout", "sip_ring_timeout_s", NON_NEGATIVE_INT, "60",
        "Seconds a call may ring unanswered before it is given up (CANCEL, or 480 to the caller); 0: no bound."),
    Key("sip_trusted_peers", "sip_trusted_peers", NETWORKS, "127.0.0.0/8,::1/128",
        "Addresses or networks whose P-Asserted-Identity / Remote-Party-ID name the caller (RFC 3325 trust domain: your trunks and PBXs); from anyone else they are ignored; empty: trust nobody."),
    Key("sip_add_contact_id", "sip_add_contact_id", BOOLEAN, "false",
        "Add a contact id parameter to the Contact of REGISTER and INVITE (WCS key)."),
    Key("sip_single_route_only", "sip_single_route_only", BOOLEAN, "false",
        "Send media of a SIP call stream over one route only (WCS key)."),
    Key("sip_record_stream", "sip_record_stream", BOOLEAN, "false",
        "Record every SIP call stream (WCS key)."),
    Key("rtp_session_init_always", "rtp_session_init_always", BOOLEAN, "false",
        "Set up the RTP session of a SIP call as soon as an SDP arrives, even before answer "
        "(WCS key)."),
    Key("rtp_activity_detecting", "rtp_activity_detecting", ACTIVITY, "true,60",
        "End a call with 'Failed by RTP activity' after this many seconds without RTP (WCS key)."),
    Key("media_port_from", "media_port_from", PORT, "31001", "First port of the RTP port range."),
    Key("media_port_to", "media_port_to", PORT, "32000", "Last port of the RTP port range."),
    Key("rtp_learning_window_ms", "rtp_learning_window_ms", NON_NEGATIVE_INT, "3000",
        "Milliseconds after a SIP leg's first RTP packet during which its source may still move with the same stream (SSRC); then it is locked (docs/security.md)."),
    Key("rtp_probation_packets", "rtp_probation_packets", NON_NEGATIVE_INT, "4",
        "In-sequence RTP packets of one stream after which a SIP leg whose SDP address is private learns a source that is neither that address nor the signalling's (a phone behind a home NAT, registered through a proxy); 0 refuses such sources (docs/security.md)."),
    Key("sip_srtp", "sip_srtp", SRTP_MODE, "answer",
        "SDES-SRTP on SIP legs (docs/media.md): off refuses RTP/SAVP; answer takes SRTP when the peer offers keys, offers plain RTP; optional also offers keys in RTP/AVP; mandatory offers RTP/SAVP and refuses offers without keys."),
    Key("sip_max_contacts_per_aor", "sip_max_contacts_per_aor", POSITIVE_INT, "16",
        "Live contacts one address of record may register at the built-in registrar; a REGISTER adding more gets 503."),
    Key("sip_max_bindings", "sip_max_bindings", POSITIVE_INT, "10000",
        "Live registrations in total at the built-in registrar; a REGISTER adding one beyond gets 503."),
    Key("sip_max_known_aors", "sip_max_known_aors", POSITIVE_INT, "10000",
        "Addresses of record remembered as once registered (480 rather than 404); the oldest are forgotten first."),
    Key("sip_proxy_max_pending", "sip_proxy_max_pending", POSITIVE_INT, "10000",
        "Requests the built-in proxy forwards at once; beyond, 503 with Retry-After."),
    Key("sip_proxy_max_unanswered", "sip_proxy_max_unanswered", POSITIVE_INT, "32",
        "Requests the built-in proxy has forwarded to one destination without any response yet; beyond, 503 (bounds the retransmissions a silent contact gets)."),
    Key("sip_tls_ca_certificates", "sip_tls_ca_certificates", STRING, "",
        "PEM file of the CA certificates a SIP server reached over TLS must chain to (RFC 5922); empty means the system's CA store."),
    Key("sip_session_expires", "sip_session_expires", SESSION_SECONDS, "1800",
        "Session-Expires (RFC 4028) our INVITEs ask for, in seconds; the refresher refreshes at half of it."),
    Key("sip_min_se", "sip_min_se", SESSION_SECONDS, "90",
        "Smallest session interval accepted, in seconds (RFC 4028 Min-SE, at least 90): a request asking less gets 422; also the Min-SE our INVITEs carry."),
    Key("sip_100rel", "sip_100rel", RELIABLE_PROVISIONAL, "supported",
        "RFC 3262 reliable provisional responses: supported (offered; our 1xx reliable when the caller requires it), required (our INVITEs say Require: 100rel; our 1xx reliable whenever the caller supports it) or off (not offered)."),
    Key("sip_register_local_sessions", "sip_register_local_sessions", BOOLEAN, "false",
        "Register each session that connects without sipRegisterRequired (local mode) at its sipDomain's server (sip_outbound_proxy when it gives none), with no credentials and a Contact naming the session: a registrar in front of several servers (a cluster's Kamailio, docs/scaling.md) then reaches it by its login."),
    Key("log_json_file", "log_json_file", STRING, "",
        "Also write every log event as one JSON object per line to this file (for log "
        "collectors); empty means off."),
    Key("plugin_dirs", "plugin_dirs", WORDS, "",
        "Extra folders of module drop-ins (one .py file per module, no __init__.py), "
        "comma-separated; see docs/plugins.md."),
    Key("modules_disabled", "modules_disabled", WORDS, "",
        "Names of modules not to start, comma-separated (built-in or drop-in)."),
)

KEYS_BY_NAME: Mapping[str, Key] = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class PrefixKey:
    """
    A family of keys named by a prefix and a user-chosen part (C{sip_user.alice=secret}); the
    L{Settings} field it fills maps the part to the converted value.
    """

    prefix: str
    attribute: str
    type: ValueType
    description: str


PREFIX_KEY_SPECS: tuple[PrefixKey, ...] = (
    PrefixKey("sip_user.", "sip_users", STRING,
              "Digest users of the built-in registrar: sip_user.<login>=<password>."),
    PrefixKey("rest_hook.", "rest_hook_urls", HTTP_URL,
              "Backend of the application <name> (an appKey): rest_hook.<appKey>=<base URL>; "
              "hooks are POSTed to <base URL>/<method>. An appKey with no entry uses the "
              "defaultApp entry if there is one, else sends no hooks."),
    PrefixKey("rest_hook_secret.", "rest_hook_secrets", NON_EMPTY,
              "Shared secret signing the hooks of appKey <name> (see rest_hook_signature); "
              "without one its hooks are unsigned."),
    PrefixKey("rest_hook_username.", "rest_hook_usernames", STRING,
              "HTTP Basic user for the backend of appKey <name> (WCS restUsername)."),
    PrefixKey("rest_hook_password.", "rest_hook_passwords", STRING,
              "HTTP Basic password for the backend of appKey <name> (WCS restPassword)."),
    PrefixKey("rest_hook_methods.", "rest_hook_methods", HOOK_METHODS_LIST,
              "The only hook methods called for appKey <name>, comma-separated; absent means "
              "all of them."),
)

#: Keys whose name is a prefix followed by a user-chosen part, e.g. C{sip_user.alice=secret}.
PREFIX_KEYS: Mapping[str, str] = {spec.prefix: spec.description for spec in PREFIX_KEY_SPECS}


def _defaults() -> dict[str, Any]:
    return {key.attribute: key.type.convert(key.default) for key in KEYS}


@dataclass(frozen=True)
class Settings:
    """
    The whole configuration, read once at start-up and never changed.
    """

    public_address: str = ""
    bind_address: str = "0.0.0.0"
    sip_public_address: str = ""
    media_public_address: str = ""
    ipv6_address: str = ""
    local_networks: tuple[str, ...] = ()
    node_id: str = ""
    ws_port: int = 8080
    wss_port: int = 8443
    http_port: int = 8081
    https_port: int = 8444
    tls_certificate: str = ""
    tls_private_key: str = ""
    disable_rest_auth: bool = False
    rest_username: str = "admin"
    rest_password: str = ""
    rest_cors_origins: tuple[str, ...] = ()
    rest_auth_max_failures: int = 10
    rest_auth_failure_window_s: int = 60
    state_dir: str = "var"
    disable_rest_requests: bool = False
    rest_max_connections: int = 200
    rest_hook_timeout_ms: int = 5000
    rest_hook_retries: int = 2
    rest_hook_retry_delay_ms: int = 500
    rest_hook_signature: str = "hmac-sha256"
    rest_hook_unavailable_policy: str = "refuse"
    keep_alive_interval_ms: int = 5000
    keep_alive_probes: int = 10
    keep_alive_grace_s: int = 60
    ws_max_message_size: int = 1048576
    sip_port: int = 5060
    sip_tls_port: int = 5061
    sip_transports: tuple[str, ...] = ("udp", "tcp")
    sip_t1_ms: int = 500
    sip_t2_ms: int = 4000
    sip_t4_ms: int = 5000
    sip_max_message_size: int = 65536
    sip_max_tcp_connections: int = 1024
    sip_rate_limit: int = 100
    sip_rate_limit_burst: int = 200
    sip_rate_limit_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    sip_max_transactions: int = 50000
    sip_max_reactor_lag_ms: int = 300
    sip_overload_retry_after: int = 5
    sip_max_queue_delay_ms: int = 0
    sip_max_tcp_connections_per_source: int = 64
    sip_tcp_first_message_timeout: int = 10
    sip_tcp_idle_timeout: int = 3600
    sip_digest_algorithms: tuple[str, ...] = ("MD5", "SHA-256")
    sip_domain: str = ""
    sip_local_domains: tuple[str, ...] = ()
    sip_outbound_proxy: str = ""
    sip_dns_servers: tuple[str, ...] = ()
    sip_dns_down_s: int = 30
    sip_dns_silence_ms: int = 4000
    enable_local_videochat: bool = True
    call_allowed_destinations: tuple[str, ...] = ()
    call_anonymous: str = "auto"
    max_calls_per_session: int = 10
    max_calls_per_address: int = 50
    sip_ring_timeout_s: int = 60
    sip_trusted_peers: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    sip_add_contact_id: bool = False
    sip_single_route_only: bool = False
    sip_record_stream: bool = False
    rtp_session_init_always: bool = False
    rtp_activity_detecting: tuple[bool, int] = (True, 60)
    media_port_from: int = 31001
    media_port_to: int = 32000
    rtp_learning_window_ms: int = 3000
    rtp_probation_packets: int = 4
    sip_srtp: str = "answer"
    sip_max_contacts_per_aor: int = 16
    sip_max_bindings: int = 10000
    sip_max_known_aors: int = 10000
    sip_proxy_max_pending: int = 10000
    sip_proxy_max_unanswered: int = 32
    sip_tls_ca_certificates: str = ""
    sip_session_expires: int = 1800
    sip_min_se: int = 90
    sip_100rel: str = "supported"
    sip_register_local_sessions: bool = False
    log_json_file: str = ""
    plugin_dirs: tuple[str, ...] = ()
    modules_disabled: tuple[str, ...] = ()
    sip_users: Mapping[str, str] = field(default_factory=dict)
    rest_hook_urls: Mapping[str, str] = field(default_factory=dict)
    rest_hook_secrets: Mapping[str, str] = field(default_factory=dict)
    rest_hook_usernames: Mapping[str, str] = field(default_factory=dict)
    rest_hook_passwords: Mapping[str, str] = field(default_factory=dict)
    rest_hook_methods: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Typed values of the module keys (L{ModuleKey}) the file sets, by key name.
    module_values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tls_enabled(self) -> bool:
        """
        Whether the TLS listeners (wss, https, SIP TLS) are configured.
        """
        return bool(self.tls_certificate)

    @property
    def advertised_address(self) -> str:
        """
        The address peers should send to: C{ip}, else a concrete C{ip_local}, else loopback.
        """
        if self.public_address:
            return self.public_address
        if self.bind_address and not ipaddress.ip_address(self.bind_address).is_unspecified:
            return self.bind_address
        return "127.0.0.1"

    @property
    def loopback_only(self) -> bool:
        """
        Whether every listener binds a loopback address, so only this host can reach them.
        """
        return bool(self.bind_address) and ipaddress.ip_address(self.bind_address).is_loopback

    def replace(self, **changes: Any) -> "Settings":
        """
        A copy with some fields changed (command-line overrides), checked again.
        """
        updated = dataclasses.replace(self, **changes)
        updated.check()
        return updated

    def check(self) -> None:
        """
        Cross-key rules that no single value can break alone.
        """
        if self.media_port_from > self.media_port_to:
            raise ConfigError(
                f"media_port_from={self.media_port_from} is above "
                f"media_port_to={self.media_port_to}: expected a range low to high"
            )
        if self.media_port_to - self.media_port_from < 1:
            raise ConfigError(
                f"media_port_from..media_port_to ({self.media_port_from}..{self.media_port_to}) "
                "holds no RTP/RTCP port pair: expected at least two ports"
            )
        if self.sip_t1_ms > self.sip_t2_ms:
            raise ConfigError(
                f"sip_t1={self.sip_t1_ms} is above sip_t2={self.sip_t2_ms}: expected T1 <= T2"
            )
        for prefix, per_app in (("rest_hook_secret", self.rest_hook_secrets),
                                ("rest_hook_username", self.rest_hook_usernames),
                                ("rest_hook_password", self.rest_hook_passwords),
                                ("rest_hook_methods", self.rest_hook_methods)):
            for app_key in per_app:
                if app_key not in self.rest_hook_urls:
                    raise ConfigError(
                        f"{prefix}.{app_key} is set but rest_hook.{app_key} is not: expected "
                        f"a backend URL for appKey {app_key!r}"
                    )
        for app_key in self.rest_hook_passwords:
            if app_key not in self.rest_hook_usernames:
                raise ConfigError(
                    f"rest_hook_password.{app_key} is set but rest_hook_username.{app_key} is "
                    "not: expected both, or neither"
                )
        if self.rest_hook_signature == "wcs-md5" and self.rest_hook_usernames:
            app_key = next(iter(self.rest_hook_usernames))
            raise ConfigError(
                f"rest_hook_username.{app_key} is set with rest_hook_signature=wcs-md5, which "
                "takes the Authorization header itself: expected hmac-sha256, or no Basic auth"
            )
        if self.rest_password in PUBLISHED_PASSWORDS and not self.disable_rest_auth \
                and not self.loopback_only:
            raise ConfigError(
                f"rest_password={self.rest_password} is a published default and ip_local="
                f"{self.bind_address or '(any)'} is reachable from other hosts: expected another "
                "password, or none to have one generated in state_dir"
            )
        if bool(self.tls_private_key) and not self.tls_certificate:
            raise ConfigError(
                f"tls_private_key={self.tls_private_key} is set but tls_certificate is empty: "
                "expected both, or neither"
            )


@dataclass(frozen=True)
class LoadResult:
    """
    Settings plus the warnings to log once logging is running (unknown keys, duplicates).
    """

    settings: Settings
    warnings: tuple[str, ...]


def _convert(where: str, name: str, raw: str, value_type: ValueType) -> Any:
    try:
        return value_type.convert(raw)
    except ValueError:
        raise ConfigError(
            f"{where}: {name}={raw!r} is not valid: expected {value_type.expected}"
        ) from None


def settings_from_text(text: str, source: str = "<config>",
                       module_keys: Iterable[ModuleKey] = ()) -> LoadResult:
    """
    Read properties text into L{Settings}.

    @param module_keys: the keys modules declare; any other key that is not a core key is
        unknown (a warning).
    @raise ConfigError: a value cannot be read, naming source, line, key, value and expectation.
    """
    values = _defaults()
    families: dict[str, dict[str, Any]] = {spec.attribute: {} for spec in PREFIX_KEY_SPECS}
    declared = {key.name: key for key in module_keys}
    module_values: dict[str, Any] = {}
    warnings: list[str] = []
    seen: dict[str, int] = {}
    try:
        entries = parse_properties(text)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    for number, name, raw in entries:
        where = f"{source}:{number}"
        if name in seen:
            warnings.append(f"{where}: key {name!r} repeats line {seen[name]}; the last one wins")
        seen[name] = number
        spec = next((p for p in PREFIX_KEY_SPECS if name.startswith(p.prefix)), None)
        if spec is not None:
            part = name[len(spec.prefix):]
            if not part:
                raise ConfigError(f"{where}: key {name!r} needs a name after {spec.prefix!r}")
            families[spec.attribute][part] = _convert(where, name, raw, spec.type)
        elif name in KEYS_BY_NAME:
            key = KEYS_BY_NAME[name]
            values[key.attribute] = _convert(where, name, raw, key.type)
        elif name in declared:
            module_values[name] = _convert(where, name, raw, declared[name].type)
        else:
            warnings.append(f"{where}: unknown key {name!r} ignored")
    settings = Settings(**values, **families, module_values=module_values)
    settings.check()
    return LoadResult(settings, tuple(warnings))


def load_settings(path: str,
                  module_keys: Iterable[ModuleKey] | None = None) -> LoadResult:
    """
    Read a properties file.

    @param module_keys: the keys modules declare; None means those declared by every module
        found (built-in, and in the file's C{plugin_dirs}, disabled ones included).
    @raise ConfigError: the file cannot be read or holds a bad value.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read configuration {path}: expected UTF-8 text") from None
    if module_keys is None:
        # Which modules exist depends on plugin_dirs, a core key of this very file.  Imported
        # here because the module host reads these settings and so imports this file.
        from wcs_twisted.modules import declared_keys

        core = settings_from_text(text, path).settings
        module_keys = declared_keys(core.plugin_dirs)
    return settings_from_text(text, path, module_keys)
