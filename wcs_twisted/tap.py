# -*- test-case-name: tests.test_tap -*-
"""
C{twistd wcs}: command-line options and the one composition root of the server.

L{build_service} reads the settings, builds every object with its dependencies and returns the
L{Server}: the service tree plus a typed handle on the parts tests look into.  It starts nothing.
This is the only module that touches the global reactor (in L{makeService}).

Any reactor runs the server: nothing in it uses asyncio (C{media/} takes aiortc's certificate,
SRTP profiles and aioice's STUN codec, never their asyncio tasks).  C{make run} and the test
suite use C{--reactor=asyncio} because the suite's peers (aiortc's RTCPeerConnection,
Playwright) need it, which makes it the reactor the server is tested on.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
from dataclasses import dataclass

from twisted.application.service import IService
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.ssl import Certificate, trustRootFromCertificates
from twisted.logger import Logger, globalLogPublisher
from twisted.python import usage

from wcs_twisted.addresses import AddressPlan
from wcs_twisted.backend.hooks import RestHooks
from wcs_twisted.backend.observers import (
    CallHookObserver,
    SessionHookObserver,
    StreamHookObserver,
)
from wcs_twisted.config import ConfigError, Settings, load_settings
from wcs_twisted.gateway.call_policy import CallPolicy
from wcs_twisted.gateway.caller_identity import TrustedPeers
from wcs_twisted.gateway.call_table import CallSettings, CallTable
from wcs_twisted.gateway.local_registration import local_registration_factory
from wcs_twisted.gateway.sessions import SessionTable
from wcs_twisted.gateway.stream_table import StreamTable
from wcs_twisted.gc_tuning import GarbageCollectorTuning
from wcs_twisted.listeners import ListenerService
from wcs_twisted.logs import JSONLogFileService
from wcs_twisted.media.anchor import MediaAnchor
from wcs_twisted.media.factory import MediaFactory
from wcs_twisted.media.ports import PortPool
from wcs_twisted.media.streams import StreamRegistry
from wcs_twisted.metrics import ServerMetrics
from wcs_twisted.modules import ModuleContext, ModuleService, SiteMounts, discover_modules
from wcs_twisted.rest.api import RestAPI
from wcs_twisted.rest.credentials import published_login, rest_credentials
from wcs_twisted.rest.routes import RouteTable
from wcs_twisted.rest.throttle import FailureThrottle
from wcs_twisted.rest.web import build_site
from wcs_twisted.services import (
    HooksService,
    OrderedMultiService,
    SessionShutdownService,
    SIPStackService,
)
from wcs_twisted.signalling.protocol import Signalling, WCSServerFactory
from wcs_twisted.tls import ServerTLS
from wcs_twisted.sip.auth import DigestAuthenticator
from wcs_twisted.sip.timers import TimerValues
from wcs_twisted.sip.transaction_layer import TransactionLayer
from wcs_twisted.transport.dns import SIPResolver, build_resolver
from wcs_twisted.transport.failover import TargetFailover
from wcs_twisted.transport.stack import SIPStack
from wcs_twisted.transport.stream import SIPStreamTransport
from wcs_twisted.transport.trace import MessageTrace
from wcs_twisted.transport.udp import DatagramFamilies, SIPDatagramProtocol
from wcs_twisted.transport.udp import listen_udp as listen_sip_udp
from wcs_twisted.ua.core import UserAgentCore
from wcs_twisted.ua.proxy import Proxy
from wcs_twisted.ua.location import LocationService
from wcs_twisted.ua.outbound import split_host_port
from wcs_twisted.ua.registrar import Registrar
from wcs_twisted.ua.registration import RegistrationClient
from wcs_twisted.ua.trunk_options import TrunkOptions

log = Logger()

DEFAULT_CONFIG = os.path.join("etc", "wcs.properties")


def _port_option(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


_port_option.coerceDoc = "A TCP/UDP port number, 0-65535."  # type: ignore[attr-defined]


class Options(usage.Options):
    """
    C{twistd wcs} options: a configuration file, and overrides for the listen ports.
    """

    synopsis = "[--config PATH] [--ws-port N] [--http-port N] [--sip-port N]"
    longdesc = ("WebRTC <-> SIP gateway speaking the Flashphoner WCS protocol. "
                "Settings come from a Java-properties file; see docs/configuration.md.")

    optParameters = [
        ["config", "c", DEFAULT_CONFIG,
         "Configuration file (Java properties). A missing default file means built-in defaults."],
        ["ws-port", None, None, "Override ws.port (WebSocket).", _port_option],
        ["wss-port", None, None, "Override wss.port (WebSocket over TLS).", _port_option],
        ["http-port", None, None, "Override http.port (REST, health, metrics, pages).",
         _port_option],
        ["https-port", None, None, "Override https.port.", _port_option],
        ["sip-port", None, None, "Override sip_port.", _port_option],
        ["bind", None, None, "Override ip_local (the address every listener binds to)."],
    ]

    _overrides = {
        "ws-port": "ws_port",
        "wss-port": "wss_port",
        "http-port": "http_port",
        "https-port": "https_port",
        "sip-port": "sip_port",
        "bind": "bind_address",
    }

    def postOptions(self) -> None:
        self["warnings"] = ()
        try:
            if self["config"] == DEFAULT_CONFIG and not os.path.exists(DEFAULT_CONFIG):
                settings = Settings()
            else:
                loaded = load_settings(self["config"])
                settings, self["warnings"] = loaded.settings, loaded.warnings
            changes = {
                attribute: self[option]
                for option, attribute in self._overrides.items()
                if self[option] is not None
            }
            if changes:
                settings = settings.replace(**changes)
        except ConfigError as error:
            # One clear line for a user mistake, never a traceback or the whole usage text.
            raise SystemExit(f"wcs: {error}") from None
        self["settings"] = settings


def _server_tls(settings: Settings) -> ServerTLS:
    """
    The TLS side of our listeners, loaded when the server is built so a bad file stops it.
    """
    try:
        # Ours, not Twisted's ssl: endpoint: a client offering ALPN we do not speak still
        # connects (wcs_twisted/tls.py).
        return ServerTLS.from_files(settings.tls_certificate,
                                    settings.tls_private_key or settings.tls_certificate)
    except Exception as error:  # OSError, or OpenSSL's own errors for a bad PEM
        raise ConfigError(
            f"tls_certificate={settings.tls_certificate!r} / tls_private_key="
            f"{settings.tls_private_key!r} cannot be loaded ({error}): expected PEM files "
            "holding a certificate and its private key") from None


def _stream_endpoint(reactor, settings: Settings, port: int, tls: bool | ServerTLS,
                     interface: str = ""):
    """
    A TCP or TLS (C{tls}: True, or the L{ServerTLS} to use) server endpoint.
    """
    interface = interface or settings.bind_address
    if not tls:
        return TCP4ServerEndpoint(reactor, port, interface=interface)
    creator = tls if isinstance(tls, ServerTLS) else _server_tls(settings)
    return SSL4ServerEndpoint(reactor, port, creator, interface=interface)


def call_policy(settings: Settings) -> CallPolicy:
    """
    Who may call where (docs/security.md): the server counts as exposed unless it binds loopback.
    """
    return CallPolicy(
        allowed_destinations=settings.call_allowed_destinations,
        anonymous_calls=settings.call_anonymous,
        exposed=not ipaddress.ip_address(settings.bind_address or "0.0.0.0").is_loopback,
        local_users=settings.sip_users,
        max_calls_per_session=settings.max_calls_per_session,
        max_calls_per_address=settings.max_calls_per_address)


def dns_servers(settings: Settings) -> list[tuple[str, int]]:
    """
    The configured DNS servers as (host, port); empty means the system's.
    """
    servers = []
    for entry in settings.sip_dns_servers:
        host, port = split_host_port(entry)
        servers.append((host, port or 53))
    return servers


def local_domains(settings: Settings) -> list[str]:
    """
    The domains the built-in registrar/proxy serves, the primary one (the digest realm) first.
    """
    domains = [settings.sip_domain or settings.advertised_address, settings.advertised_address,
               *settings.sip_local_domains, "localhost", "127.0.0.1", settings.sip_public_address]
    if settings.bind_address not in ("", "0.0.0.0", "::"):
        domains.append(settings.bind_address)
    if settings.ipv6_address:
        domains.append(f"[{settings.ipv6_address}]")  # a host in a URI is bracketed
    return list(dict.fromkeys(domain.lower() for domain in domains if domain))


def build_media(settings: Settings, reactor) -> MediaFactory:
    """
    The media factory: RTP ports from the configured range, SDP addresses, RTP inactivity.
    """
    detect, seconds = settings.rtp_activity_detecting
    addresses = address_plan(settings, settings.media_public_address, settings.ipv6_address)
    return MediaFactory(reactor, addresses.public, settings.bind_address,
                        PortPool(settings.media_port_from, settings.media_port_to),
                        inactivity_timeout=seconds if detect else None,
                        rtp_learning_window=settings.rtp_learning_window_ms / 1000.0,
                        rtp_probation_packets=settings.rtp_probation_packets,
                        sip_srtp=settings.sip_srtp, addresses=addresses)


def address_plan(settings: Settings, public: str, ipv6: str = "") -> AddressPlan:
    """
    Which address each peer is told (docs/operations.md, Behind NAT): C{public} (or C{ip})
    across the NAT, the bind address toward C{local_networks}, C{ipv6} to IPv6 peers.
    """
    return AddressPlan(public or settings.public_address, settings.bind_address,
                       settings.local_networks, ipv6)


def build_sip(settings: Settings, reactor, metrics: ServerMetrics):
    """
    The SIP stack, its UA core, and (in local mode) the built-in registrar.
    """
    rng = random.SystemRandom()
    timers = TimerValues(t1=settings.sip_t1_ms / 1000.0, t2=settings.sip_t2_ms / 1000.0,
                         t4=settings.sip_t4_ms / 1000.0)
    # SIP listens on ip6 too (sip_listeners): IPv6 peers are told that address.
    addresses = address_plan(settings, settings.sip_public_address, settings.ipv6_address)
    stack = SIPStack(
        TransactionLayer(timers),
        reactor, rng, advertised_host=addresses.public, trace=MessageTrace(),
        addresses=addresses,
        resolver=SIPResolver(build_resolver(dns_servers(settings), reactor=reactor), reactor, rng),
        failover=TargetFailover(down_for=settings.sip_dns_down_s,
                                silence_timeout=settings.sip_dns_silence_ms / 1000.0),
        on_bad_message=lambda transport: metrics.listener_errors.labels(
            listener=f"sip-{transport}").inc(),
        source_rate=settings.sip_rate_limit, source_burst=settings.sip_rate_limit_burst,
        source_exempt=settings.sip_rate_limit_exempt,
        max_transactions=settings.sip_max_transactions,
        max_lag=settings.sip_max_reactor_lag_ms / 1000.0,
        retry_after=settings.sip_overload_retry_after,
        max_queue_delay=settings.sip_max_queue_delay_ms / 1000.0,
    )
    # A peer known by a name that resolved to IPv6 is told our IPv6 address (docs/operations.md).
    addresses.names = lambda host: stack.resolver and stack.resolver.cached_host(host)
    core = UserAgentCore(stack, rng, timers)
    stack.attach(core)
    core.trunk_options = TrunkOptions(max(settings.sip_session_expires, settings.sip_min_se),
                                      settings.sip_min_se, settings.sip_100rel)
    location = LocationService(on_change=metrics.registrations.labels(kind="local").set,
                               max_known=settings.sip_max_known_aors)
    proxy = None
    if settings.enable_local_videochat:
        domains = local_domains(settings)
        registrar = Registrar(
            core, location, reactor, domains, users=settings.sip_users,
            authenticator=DigestAuthenticator(domains[0], os.urandom(32),
                                              algorithms=settings.sip_digest_algorithms),
            max_contacts=settings.sip_max_contacts_per_aor,
            max_bindings=settings.sip_max_bindings,
        )
        core.add_router(registrar)
        proxy = Proxy(core, location, reactor, registrar.serves, users=settings.sip_users,
                      timers=timers, aliases=tuple(a for a in (
                          settings.bind_address, settings.public_address,
                          settings.sip_public_address, settings.ipv6_address) if a),
                      # One realm and nonce table for REGISTER and proxied requests.
                      authenticator=registrar.authenticator,
                      max_pending=settings.sip_proxy_max_pending,
                      max_unanswered=settings.sip_proxy_max_unanswered,
                      trusted=TrustedPeers(settings.sip_trusted_peers))
    return stack, core, location, proxy


def sip_trust_root(settings: Settings):
    """
    The CAs SIP servers reached over TLS must chain to: sip_tls_ca_certificates, else the
    system's store (None).
    """
    if not settings.sip_tls_ca_certificates:
        return None
    with open(settings.sip_tls_ca_certificates, "rb") as pem:
        return trustRootFromCertificates(
            [Certificate.loadPEM(block) for block in pem_blocks(pem.read())])


def pem_blocks(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [block + marker for block in data.split(marker) if b"-----BEGIN" in block]


def sip_listeners(settings: Settings, reactor, stack: SIPStack, metrics: ServerMetrics,
                  on_bind_failure) -> tuple[list[ListenerService], list[SIPStreamTransport]]:
    """
    One listener per configured SIP transport; each tells the stack its bound port.
    """
    listeners: list[ListenerService] = []
    streams: list[SIPStreamTransport] = []
    # SIP over IPv6 (RFC 5118): each transport also listens on ip6, on the port its IPv4
    # listener got, so one port number is advertised to both families.
    interfaces = [("", settings.bind_address)]
    # A bind address of "::" already takes IPv6 (a dual-stack socket).
    if settings.ipv6_address and settings.bind_address not in (settings.ipv6_address, "::"):
        interfaces.append(("6", settings.ipv6_address))

    def port_for(name: str, configured: int, family: str) -> int:
        return stack.ports.get(name, configured) if family else configured

    def add(name: str, listen) -> None:
        listeners.append(ListenerService(
            name, listen, on_error=metrics.listener_errors.labels(listener=name).inc,
            on_bind_failure=on_bind_failure))

    if "udp" in settings.sip_transports:
        datagrams = DatagramFamilies(*(
            SIPDatagramProtocol(stack, settings.sip_max_message_size) for _ in interfaces))
        for (family, interface), protocol in zip(interfaces, (datagrams.ipv4, datagrams.ipv6)):
            def listen_udp(protocol=protocol, interface=interface, family=family):
                # A port that reads ICMP errors: a dead destination fails at once (RFC 3261 18.4).
                port = listen_sip_udp(reactor, port_for("udp", settings.sip_port, family),
                                      protocol, interface=interface,
                                      maxPacketSize=settings.sip_max_message_size + 1)
                stack.add_transport("udp", datagrams, port.getHost().port)
                return port

            add(f"sip-udp{family}", listen_udp)
    for name in ("tcp", "tls"):
        if name not in settings.sip_transports or (name == "tls" and not settings.tls_enabled):
            continue
        transports = SIPStreamTransport(
            stack, reactor, name, settings.sip_max_tcp_connections, settings.sip_max_message_size,
            max_connections_per_source=settings.sip_max_tcp_connections_per_source,
            first_message_timeout=settings.sip_tcp_first_message_timeout,
            idle_timeout=settings.sip_tcp_idle_timeout,
            # A silent SRV target fails over as fast over TCP/TLS as over UDP (docs/sip.md).
            connect_timeout=settings.sip_dns_silence_ms / 1000.0,
            trust_root=sip_trust_root(settings) if name == "tls" else None)
        streams.append(transports)
        configured = settings.sip_port if name == "tcp" else settings.sip_tls_port
        tls = _server_tls(settings) if name == "tls" else False
        for family, interface in interfaces:
            def listen_stream(transports=transports, name=name, family=family,
                              interface=interface, configured=configured, tls=tls):
                def bound(port):
                    stack.add_transport(name, transports, port.getHost().port)
                    return port
                endpoint = _stream_endpoint(reactor, settings, port_for(name, configured, family),
                                            tls=tls, interface=interface)
                return endpoint.listen(transports).addCallback(bound)

            add(f"sip-{name}{family}", listen_stream)
    return listeners, streams


@dataclass(frozen=True)
class Server:
    """
    What L{build_service} built: the service tree to run, and the parts tests look into.
    """

    service: OrderedMultiService
    listeners: list[ListenerService]
    metrics: ServerMetrics
    sip_stack: SIPStack
    sip_core: UserAgentCore
    location: LocationService
    sip_proxy: Proxy | None
    sessions: SessionTable
    calls: CallTable
    streams: StreamRegistry
    stream_table: StreamTable
    signalling: Signalling
    modules: ModuleService
    #: What modules provide to the REST API (ModuleContext.provide), e.g. "recorder", "rtmp".
    module_services: dict


def build_service(settings: Settings, reactor, warnings=()) -> Server:
    """
    The whole server for C{settings}, on C{reactor}; nothing is started.
    """
    for warning in warnings:
        log.warn("configuration: {warning}", warning=warning)
    root = OrderedMultiService()
    metrics = ServerMetrics()
    node_id = settings.node_id or f"{secrets.token_hex(4)}@{settings.advertised_address}"
    stack, core, location, proxy = build_sip(settings, reactor, metrics)
    contact_params = {"wcs": secrets.token_hex(4)} if settings.sip_add_contact_id else None

    def registration_factory(account, on_change) -> RegistrationClient:
        return RegistrationClient(core, reactor, account, on_change, contact_params=contact_params)

    sessions = SessionTable(
        node_id, default_sip_port=lambda: stack.local_address("udp")[1],
        on_change=metrics.sessions.set,
        registration_factory=registration_factory,
        on_registrations=metrics.registrations.labels(kind="upstream").set,
        clock=reactor, keep_alive_grace=settings.keep_alive_grace_s,
        local_registration=(local_registration_factory(core, reactor, settings.sip_outbound_proxy)
                            if settings.sip_register_local_sessions else None),
    )
    calls = CallTable(
        core, reactor, build_media(settings, reactor), sessions, location,
        CallSettings(local_domains=tuple(local_domains(settings)),
                     local_mode=settings.enable_local_videochat,
                     outbound_proxy=settings.sip_outbound_proxy,
                     policy=call_policy(settings),
                     ring_timeout=settings.sip_ring_timeout_s,
                     trusted_peers=TrustedPeers(settings.sip_trusted_peers),
                     ipv6=bool(settings.ipv6_address)),
        on_count=metrics.calls.set, registration_factory=registration_factory)
    # Incoming INVITEs for sessions come before the proxy (routers are tried in order); the
    # proxy checks their senders' credentials as it would (issue 11).
    calls.proxy = proxy
    if proxy is not None and settings.ipv6_address:
        proxy.media.anchor = MediaAnchor(calls.media)  # IPv4 <-> IPv6 phones (ua/proxy_media.py)
    core.add_router(calls)
    stream_registry = StreamRegistry(reactor)
    # Browser publish/play, SIP calls as streams (toStream, sip_record_stream), /stream/*.
    stream_table = StreamTable(stream_registry, calls.media, sessions, calls, clock=reactor,
                               record_sip_calls=settings.sip_record_stream)
    module_services: dict = {}
    # The RTP range's pool: modules' own RTP ports (the cluster's stream relays) come from it too.
    module_services["media_ports"] = calls.media.port_pool
    # The sessions: the cluster module lists them in its directory (/connection/* cluster-wide).
    module_services["sessions"] = sessions
    module_routes = RouteTable()
    hooks = RestHooks(settings, reactor, node_id)
    sessions.observers.append(SessionHookObserver(hooks))
    calls.observers.append(CallHookObserver(hooks))
    stream_table.observers.append(StreamHookObserver(hooks))
    signalling = Signalling(
        sessions, reactor, metrics,
        server_address=lambda: f"{settings.advertised_address}:{bound_port('ws')}",
        ping_interval=settings.keep_alive_interval_ms / 1000.0,
        max_missed_pongs=settings.keep_alive_probes,
        calls=calls,
        hooks=hooks,
        streams=stream_table,
    )
    ws_factory = WCSServerFactory(signalling, reactor, settings.ws_max_message_size)
    listeners: list[ListenerService] = []

    def bound_port(name: str) -> int:
        """
        The port a listener really got (port 0 in the configuration means any).
        """
        for service in listeners:
            if service.name == name and service.port is not None:
                return service.port.getHost().port
        return getattr(settings, f"{name}_port")

    def stop_on_bind_failure(message: str) -> None:
        log.critical("{message}; stopping", message=message)
        if reactor.running:
            reactor.stop()

    def listener(name: str, port: int, factory, tls: bool = False, interface: str = "") -> None:
        endpoint = _stream_endpoint(reactor, settings, port, tls, interface)
        counter = metrics.listener_errors.labels(listener=name)
        listeners.append(ListenerService(name, lambda: endpoint.listen(factory),
                                         on_error=counter.inc,
                                         on_bind_failure=stop_on_bind_failure))

    site = build_site(RestAPI(sessions, calls, stream_table, module_services, module_routes),
                      rest_credentials(settings), settings.rest_cors_origins, metrics, listeners,
                      FailureThrottle(reactor, settings.rest_auth_max_failures,
                                      settings.rest_auth_failure_window_s),
                      loopback_hosts_only=settings.loopback_only and published_login(settings))
    # Folders modules publish (the recorder's /client/records) in front of the site's tree.
    site_mounts = SiteMounts(site.resource)
    site.resource = site_mounts
    listener("ws", settings.ws_port, ws_factory)
    listener("http", settings.http_port, site)
    if settings.tls_enabled:
        listener("wss", settings.wss_port, ws_factory, tls=True)
        listener("https", settings.https_port, site, tls=True)
    if settings.ipv6_address:
        # Browsers over IPv6 (docs/operations.md): the same ports on our IPv6 address.
        listener("ws6", settings.ws_port, ws_factory, interface=settings.ipv6_address)
        listener("http6", settings.http_port, site, interface=settings.ipv6_address)
        if settings.tls_enabled:
            listener("wss6", settings.wss_port, ws_factory, tls=True,
                     interface=settings.ipv6_address)
            listener("https6", settings.https_port, site, tls=True,
                     interface=settings.ipv6_address)
    sip, streams = sip_listeners(settings, reactor, stack, metrics, stop_on_bind_failure)
    listeners.extend(sip)

    if settings.log_json_file:
        JSONLogFileService(settings.log_json_file, globalLogPublisher).setServiceParent(root)
    for service in listeners:
        service.setServiceParent(root)
    if proxy is not None:
        # After the call table's router (incoming calls for sessions) comes the proxy.
        core.add_router(proxy)
    SIPStackService(stack, streams, proxy).setServiceParent(root)
    HooksService(hooks).setServiceParent(root)
    modules = ModuleService(
        discover_modules(settings.plugin_dirs, settings.modules_disabled),
        lambda name: ModuleContext(name, settings=settings, reactor=reactor, calls=calls,
                                   streams=stream_registry, services=module_services,
                                   routes=module_routes, mounts=site_mounts),
        reactor)
    # Started after the network, stopped before it: modules see the last calls end.
    modules.setServiceParent(root)
    GarbageCollectorTuning().setServiceParent(root)  # started once everything is built
    # Added last, so it is stopped first: clients hear "going away" and SIP accounts unregister
    # while the stack and the listeners still run (OrderedMultiService waits for each).
    SessionShutdownService(signalling, reactor).setServiceParent(root)
    return Server(service=root, listeners=listeners, metrics=metrics, sip_stack=stack,
                  sip_core=core, location=location, sip_proxy=proxy, sessions=sessions,
                  calls=calls, streams=stream_registry, stream_table=stream_table,
                  signalling=signalling, modules=modules, module_services=module_services)


def makeService(options: Options) -> IService:
    """
    Build the server from parsed L{Options}.
    """
    from twisted.internet import reactor

    try:
        return build_service(options["settings"], reactor, options["warnings"]).service
    except ConfigError as error:
        raise SystemExit(f"wcs: {error}") from None
