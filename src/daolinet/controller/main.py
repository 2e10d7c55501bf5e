"""`daolinet controller`: the process.  One asyncio loop runs the OpenFlow
listener(s) and the REST API; SIGTERM/SIGINT stop both cleanly.

`--ready-file` receives {"api": URL, "of": [targets], "pid": PID} once both
are listening: a launcher waits on it instead of sleeping, and learns the
API port when it asked for port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import ssl
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import CollectorRegistry

from daolinet import metrics_server
from daolinet.controller import ofserver
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import ensure_admin_token
from daolinet.controller.api.transport import PeerIdentityProtocol
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.liveness import watch_hosts
from daolinet.controller.peers import Peers
from daolinet.controller.record import own_record
from daolinet.errors import InvalidInput
from daolinet.quiet_server import QuietServer, tcp_listener
from daolinet.security.settings import Security
from daolinet.security.tls import server_context
from daolinet.store import open_store
from daolinet.system.notify import notify

if TYPE_CHECKING:  # an etcd client only with an etcd store
    from daolinet.controller.mastership_etcd import EtcdMastership

log = logging.getLogger("daolinet.controller")


def settle_gc() -> None:
    """Keep the collector off the hot path: what is alive at start-up (the view,
    imported modules) moves out of the generations the collector scans, and the
    young generation gets room for the short-lived objects of thousands of
    PacketIns, so full collections (tens of ms with a big view) come rarely."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"invalid --api-listen {value!r}: use HOST:PORT or unix:PATH")
    return host.strip("[]"), int(port)


def api_sockets(listens: list[str] | str) -> list[socket.socket]:
    """Listening sockets for the API, bound at once: a peer probing the port before
    uvicorn runs must not be refused.  The first TCP one is the API's advertised URL."""
    out: list[socket.socket] = []
    for value in [listens] if isinstance(listens, str) else listens:
        if value.startswith("unix:"):
            path = value[len("unix:"):]
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(128)
        else:
            sock = tcp_listener(*parse_listen(value), 128)
        out.append(sock)
    if not any(sock.family != socket.AF_UNIX for sock in out):
        raise InvalidInput("--api-listen needs one HOST:PORT (peers and agents use it)")
    return out


def api_url(socks: list[socket.socket], https: bool) -> str:
    host, port = next(sock for sock in socks if sock.family != socket.AF_UNIX).getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if https else 'http'}://{host}:{port}"


async def serve(store_url: str, of_listen: list[str], api_listen: list[str] | str, config: Config,
                ready_file: str | None = None, admin_token_file: str | None = None,
                controller_id: str | None = None, security: Security | None = None,
                advertise: tuple[str, ...] = (), metrics_listen: str | None = None) -> None:
    security = security or Security(tls=None, insecure=True)
    security.warn("controller")
    for target in of_listen:
        ofserver.parse_target(target)
    security.check_targets(of_listen, "--of-listen")
    of_tls = server_context(security.tls) if security.tls is not None else None
    socks = api_sockets(api_listen)
    registry = CollectorRegistry()
    metrics = metrics_server.MetricsServer(metrics_listen, registry) if metrics_listen else None
    store = open_store(store_url, host_ttl=config.host_ttl, etcd_tls=security.etcd)
    if admin_token_file is None:
        admin_token_file = default_token_file(store_url)
    secret = await ensure_admin_token(store, admin_token_file)
    listens = [api_listen] if isinstance(api_listen, str) else api_listen
    await store.record_controller(own_record(controller_id or socket.gethostname(), of_listen, listens,
                                             advertise, store_url))
    ctrl = Controller(store, config, registry)
    ctrl.ctx.agent_tls = security.tls  # its certificate calls the agents' trace listeners
    ctrl.store = ctrl.ctx.metrics.timed_store(store)  # store latency and heartbeats, in the metrics
    await ctrl.start()
    if metrics is not None:
        await metrics.start()
    url = api_url(socks, https=security.tls is not None)
    shared = Shared(store_url, controller_id or f"{socket.gethostname()}-{os.getpid()}", url, secret,
                    security)
    shared.attach(ctrl)
    liveness = asyncio.create_task(watch_hosts(store, ctrl.ctx.clock), name="host-liveness")
    of_servers = [await ofserver.listen(target, ctrl.on_session, of_tls, on_refused=ctrl.refused)
                  for target in of_listen]
    server = QuietServer(api_config(create_app(ctrl, tls=security.tls is not None), security))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api_task = asyncio.create_task(server.serve(sockets=socks))
    while not server.started and not api_task.done():
        await asyncio.sleep(0.01)  # uvicorn offers no readiness event; poll its flag
    if ready_file:
        _write_ready(ready_file, {"api": url, "of": of_listen, "pid": os.getpid(),
                                  "admin_token_file": admin_token_file,
                                  "metrics": metrics.address if metrics else None})
    settle_gc()
    notify("READY=1")
    log.info("controller ready: api %s, openflow %s", url, ", ".join(of_listen))
    await stop.wait()
    notify("STOPPING=1")
    server.should_exit = True
    ctrl.ctx.policy_log.close()  # its followers' streams end: the API's shutdown waits on none
    for of_server in of_servers:
        of_server.close()
    await api_task
    if metrics is not None:
        await metrics.stop()
    liveness.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await liveness
    await shared.close()
    await ctrl.stop()
    await store.close()


def api_config(app: Any, security: Security) -> uvicorn.Config:
    """uvicorn for the API: HTTPS with the controller's pair when it has one; a client
    certificate is asked for (hosts and controllers show theirs), not required (users
    may send tokens).  Its HTTP protocol hands each request the verified peer
    certificate's holder (controller/api/transport.py), which auth.py reads."""
    kwargs: dict[str, Any] = {}
    if security.tls is not None:
        kwargs = {"ssl_certfile": security.tls.cert, "ssl_keyfile": security.tls.key,
                  "ssl_ca_certs": security.tls.ca, "ssl_cert_reqs": ssl.CERT_OPTIONAL}
    return uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, log_config=None,
                          http=PeerIdentityProtocol, **kwargs)


class Shared:
    """With an etcd store, several controllers share the switches: mastership per
    switch through etcd, and FlowMods for another master's switch through it."""

    def __init__(self, store_url: str, me: str, api_url: str, secret: str, security: Security) -> None:
        self.mastership: EtcdMastership | None = None
        self.peers: Peers | None = None
        self._task: asyncio.Task[None] | None = None
        if store_url.startswith("etcd://"):
            from daolinet.controller.mastership_etcd import EtcdMastership

            self.mastership = EtcdMastership(store_url, me, api_url, etcd_tls=security.etcd)
            # With TLS a peer is known by its controller certificate: the admin token stays home.
            mastership = self.mastership
            self.peers = Peers(mastership.owner_url, secret if security.tls is None else None,
                               tls=security.tls, others=lambda: [url for c, url in mastership.peers.items()
                                                                 if c != mastership.me and url])

    def attach(self, ctrl: Controller) -> None:
        mastership, peers = self.mastership, self.peers
        if mastership is None or peers is None:
            return  # the only controller: master of every switch
        ctrl.held = {}
        ctrl.generation = lambda: mastership.last_rev
        ctrl.ctx.remote = peers.remote
        ctrl.ctx.peers = peers
        self._task = asyncio.create_task(mastership.run(lambda: list(ctrl.ctx.connected), ctrl.set_held))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.peers is not None:
            await self.peers.close()


def default_token_file(store_url: str) -> str:
    """Beside an SQLite store; else /etc/daolinet/admin.token."""
    if store_url.startswith("sqlite:///"):
        return os.path.join(os.path.dirname(store_url[len("sqlite://"):]), "admin.token")
    return "/etc/daolinet/admin.token"


def _write_ready(path: str, data: dict[str, object]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
