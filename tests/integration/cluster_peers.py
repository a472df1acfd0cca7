"""
The engines of a cluster for tests (docs/scaling.md): Redis, nginx and Kamailio from the files in
deploy/cluster/, and wcs nodes as `twistd wcs` processes, all on 127.0.0.1 with free ports.

The deploy files are templates with C{${NAME}} placeholders (operators fill them in with envsubst
given the names, or by hand); L{render} fills them in the same way for a test.
"""

from __future__ import annotations

import os
import re
import socket
import sys

from twisted.internet import defer

from tests.integration.peers import (
    _KAMAILIO_MODULE_DIRS,
    LOOPBACK,
    PeerError,
    PeerProcess,
    free_port,
    poll,
    require_binary,
    sip_options,
    stable_port,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy", "cluster")

def render(template: str, target: str, **values) -> str:
    """
    Write deploy/cluster/C{template} to C{target} with its C{${NAME}} placeholders filled in.
    """
    with open(os.path.join(DEPLOY, template), encoding="utf-8") as handle:
        # Only ${UPPER_CASE}: Kamailio's and nginx's own $variables stay as they are.
        text = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda match: str(values[match.group(1)]),
                      handle.read())
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(text)
    return target


def _tcp_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((LOOPBACK, port)) == 0


def _wait_tcp(process: PeerProcess, port: int, timeout: float):
    def ready():
        process.check_running()
        return _tcp_open(port)

    return poll(ready, timeout, message=lambda: f"{process.label} does not listen on {port}\n"
                                                f"{process.describe()}")


class _Engine:
    """
    One engine's process on a free port of 127.0.0.1, with its folder and its log
    (C{<binary>.log} there).
    """

    binary = ""

    def __init__(self, directory: str, port: int | None = None) -> None:
        self.executable = require_binary(self.binary)
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.port = free_port() if port is None else port
        self.process = PeerProcess(f"{self.binary} :{self.port}",
                                   os.path.join(self.directory, f"{self.binary}.log"))

    def stop(self):
        return self.process.stop()


class _WebFront:
    """
    The URLs of something serving the WCS WebSocket on C{ws_port} and REST on C{http_port}.
    """

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}/rest-api"


class RedisServer(_Engine):
    """
    redis-server on 127.0.0.1, in memory only (no RDB, no AOF).
    """

    binary = "redis-server"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self):
        self.process.spawn([self.executable, "--bind", LOOPBACK, "--port", str(self.port),
                            "--save", "", "--appendonly", "no", "--dir", self.directory],
                           cwd=self.directory)
        return _wait_tcp(self.process, self.port, 10.0)


class Node(_WebFront):
    """
    One wcs node: `twistd -n --reactor=asyncio wcs` with deploy/cluster/node.properties.
    """

    #: The REST password of every node (the user is admin).
    REST_PASSWORD = "cluster-secret"

    def __init__(self, directory: str, name: str, redis_url: str, kamailio: str,
                 media_ports: tuple[int, int], **extra) -> None:
        self.name = name
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.ws_port, self.http_port, self.sip_port = stable_port(), stable_port(), stable_port()
        self.media_ports = media_ports
        self.config_path = render(
            "node.properties", os.path.join(self.directory, "wcs.properties"),
            NODE_ID=name, NODE_ADDRESS=LOOPBACK, WS_PORT=self.ws_port,
            HTTP_PORT=self.http_port, SIP_PORT=self.sip_port, MEDIA_PORT_FROM=media_ports[0],
            MEDIA_PORT_TO=media_ports[1], REDIS_URL=redis_url, KAMAILIO=kamailio,
            REST_PASSWORD=self.REST_PASSWORD)
        if extra:
            with open(self.config_path, "a", encoding="utf-8") as handle:
                handle.writelines(f"{key}={value}\n" for key, value in extra.items())
        self.process = PeerProcess(f"wcs node {name}", os.path.join(self.directory, "wcs.log"))

    @property
    def sip_address(self) -> str:
        return f"{LOOPBACK}:{self.sip_port}"

    def start(self):
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        self.process.spawn([twistd, "--reactor=asyncio", "--nodaemon", "--pidfile=", "wcs",
                            "--config", self.config_path], cwd=self.directory)
        return _wait_tcp(self.process, self.http_port, 30.0)

    def restart(self):
        """
        Start again under the same node_id and ports (after L{kill}).
        """
        self.process = PeerProcess(f"wcs node {self.name}", self.process.log_path)
        return self.start()

    def kill(self):
        """
        SIGKILL: no BYE, no unregister, no goodbye to Redis.
        """
        self.process.transport.signalProcess("KILL")
        return self.process.when_ended(5.0)

    def stop(self):
        return self.process.stop()

    def log_tail(self) -> str:
        return self.process.describe()


class ClusterKamailio(_Engine):
    """
    Kamailio from deploy/cluster/kamailio.cfg: registrar (usrloc in memory) and dispatcher.
    """

    binary = "kamailio"

    def __init__(self, directory: str, nodes: list[Node], users: dict[str, str],
                 port: int | None = None) -> None:
        super().__init__(directory, port)
        self.users = users
        self.module_dir = next((d for d in _KAMAILIO_MODULE_DIRS
                                if os.path.exists(os.path.join(d, "dispatcher.so"))), None)
        if self.module_dir is None:
            from twisted.trial.unittest import SkipTest

            raise SkipTest("kamailio's dispatcher module is not installed")
        self.nodes = nodes
        #: kamcmd's way in (ctl module): a loopback TCP port, as unix socket paths are short.
        self.control = f"tcp:{LOOPBACK}:{free_port()}"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self):
        render("dispatcher.list", os.path.join(self.directory, "dispatcher.list"),
               **{f"NODE{i + 1}": node.sip_address for i, node in enumerate(self.nodes)})
        config = render("kamailio.cfg", os.path.join(self.directory, "kamailio.cfg"),
                        LISTEN=self.address, SIP_DOMAIN=self.address, MODULE_DIR=self.module_dir,
                        CONTROL=self.control,
                        DISPATCHER_LIST=os.path.join(self.directory, "dispatcher.list"),
                        USERS="\n".join(f'    $sht(users=>{user}) = "{password}";'
                                        for user, password in sorted(self.users.items())))
        self.process.spawn([self.executable, "-DD", "-E", "-f", config, "-Y", self.directory,
                            "-w", self.directory], cwd=self.directory)
        return sip_options(LOOPBACK, self.port, timeout=10.0, check=self.process.check_running,
                           label=self.process.label)


class Nginx(_Engine, _WebFront):
    """
    nginx from deploy/cluster/nginx.conf: WebSocket and REST spread over the nodes.
    """

    binary = "nginx"

    def __init__(self, directory: str, nodes: list[Node]) -> None:
        super().__init__(directory)
        os.makedirs(os.path.join(self.directory, "logs"), exist_ok=True)
        self.ws_port, self.http_port = self.port, free_port()
        self.nodes = nodes

    @defer.inlineCallbacks
    def start(self):
        config = render(
            "nginx.conf", os.path.join(self.directory, "nginx.conf"),
            PREFIX=self.directory, WS_LISTEN=f"{LOOPBACK}:{self.ws_port}",
            HTTP_LISTEN=f"{LOOPBACK}:{self.http_port}",
            WS_NODES="\n".join(f"        server {LOOPBACK}:{n.ws_port};" for n in self.nodes),
            HTTP_NODES="\n".join(f"        server {LOOPBACK}:{n.http_port};" for n in self.nodes))
        self.process.spawn([self.executable, "-p", self.directory, "-c", config, "-g",
                            "daemon off; master_process off;"], cwd=self.directory)
        yield _wait_tcp(self.process, self.ws_port, 10.0)
        yield _wait_tcp(self.process, self.http_port, 10.0)


__all__ = ["ClusterKamailio", "Nginx", "Node", "PeerError", "RedisServer", "render"]
