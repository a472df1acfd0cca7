"""
A whole server as build_service wires it, with its defaults, on 127.0.0.1 and ports from the
kernel, for the integration tests that attack or probe it.
"""

import os

from twisted.internet import defer, reactor

from tests.integration.peers import free_port
from wcs_twisted.config import Settings, settings_from_text
from wcs_twisted.tap import build_service

LOOPBACK_PROPERTIES = "ip_local=127.0.0.1\nws.port=0\nhttp.port=0\nsip_port=0\n"


@defer.inlineCallbacks
def start_loopback_server(test, properties: str = ""):
    """
    Build and start the server for C{test} (stopped by a cleanup); fires with the
    L{wcs_twisted.tap.Server} once every listener is bound.

    @param properties: more lines of the properties file, after the loopback defaults.
    """
    state = os.path.abspath(test.mktemp())
    settings = settings_from_text(
        f"{LOOPBACK_PROPERTIES}state_dir={state}\n{properties}").settings
    server = build_service(settings, reactor)
    server.service.startService()
    test.addCleanup(lambda: server.service.running and server.service.stopService())
    yield defer.gatherResults([listener.when_ready() for listener in server.listeners])
    return server


@defer.inlineCallbacks
def start_media_server(test, media_ports: int = 100, host: str = "127.0.0.1", **settings):
    """
    Build and start a server from L{Settings} for C{test} (stopped by a cleanup): on C{host}
    (127.0.0.1, or an address of a namespace the test made), kernel-chosen WebSocket/HTTP/SIP
    ports and an RTP range of C{media_ports} free ports of its own; C{settings} are more
    fields.  Fires with the L{wcs_twisted.tap.Server} once every listener is bound.
    """
    low = free_port(span=media_ports, host=host)
    server = build_service(Settings(
        bind_address=host, ws_port=0, http_port=0, sip_port=0,
        media_port_from=low, media_port_to=low + media_ports - 1, **settings), reactor)
    server.service.startService()
    test.addCleanup(lambda: server.service.running and server.service.stopService())
    yield defer.gatherResults([listener.when_ready() for listener in server.listeners])
    return server


def bound_port(server, name: str) -> int:
    """
    The port the server's service C{name} (C{"ws"}, C{"http"}, C{"sip-udp"}, ...) bound.
    """
    return server.service.getServiceNamed(name).port.getHost().port
