"""`daolinet agent`: join the cluster and serve the local API.

Start-up: choose the datapath (the kernel's where the openvswitch module is,
else userspace: system/datapath.py), converge the bridge through OVSDB (that
datapath, fail_mode secure, OpenFlow 1.3, the controller target, the uplink's
MTU on its LOCAL interface), add the uplink, read the host's underlay address
from the bridge's LOCAL interface, give the host a path to its controllers
through the bridge (agent/bootstrap.py), register
(plug-and-play: nothing else in the cluster changes), reconcile, then serve
the local API and the Docker plugin, heartbeat, keep Docker's networks in
step with daolinet's, and answer the containers' DNS questions (agent/dns_link.py,
from the replica of agent/resolver_view.py).

What only some hosts use loads only there: the Docker plugin (with a plugin directory),
the trace listener (with TLS), the /metrics listener (with --metrics-listen).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn

from daolinet.agent import bootstrap
from daolinet.agent.api import create_app
from daolinet.agent.client import ControllerClient
from daolinet.agent.failover import parse_urls
from daolinet.agent.plumbing import Plumber
from daolinet.agent.service import AgentService, HostInfo
from daolinet.api_common import AGENT_TRACE_PORT
from daolinet.errors import InvalidInput, SystemFailure
from daolinet.model.addresses import check_subnet6
from daolinet.quiet_server import QuietServer
from daolinet.security.settings import Security
from daolinet.store.liveness import DEFAULT_HOST_TTL, heartbeat_interval
from daolinet.system import datapath, links
from daolinet.system.notify import notify
from daolinet.system.ovsdb import BridgeConfig, Ovsdb

if TYPE_CHECKING:
    from daolinet.agent.docker_client import DockerClient
    from daolinet.agent.docker_plugin import DockerPlugin
    from daolinet.metrics_server import MetricsServer

log = logging.getLogger("daolinet.agent")


@dataclass(frozen=True)
class AgentConfig:
    name: str
    controllers: tuple[str, ...]  # OVS controller targets (every controller): tcp:IP:PORT or unix:PATH
    api: tuple[str, ...]  # every controller's REST API URL (the agent fails over between them)
    bridge: str
    uplink: str
    pip_pool: str
    ovsdb: str = "unix:/var/run/openvswitch/db.sock"
    pip_pool6: str = ""  # IPv6 PIPs, inside the bridge's global IPv6 address's subnet ("" : none)
    netns: str | None = None
    datapath_id: int | None = None
    listen: str = "/run/daolinet/agent.sock"
    heartbeat: float = heartbeat_interval(DEFAULT_HOST_TTL)  # seconds; at most the host TTL / 3
    ready_file: str | None = None
    token_file: str | None = None  # a host token: the credential with --insecure (else the host certificate)
    underlay_gateway_mac: str = ""  # the underlay router's MAC: next hop to other segments
    docker_plugin_dir: str = "/run/docker/plugins"  # serve <dir>/daolinet.sock there ("": no plugin)
    docker_host: str = "unix:///run/docker.sock"  # this host's dockerd ("": no network sync)
    docker_sync: float = 5.0  # seconds between syncs of Docker networks with daolinet's
    docker_state: str = ""  # the Docker networks' bindings, kept across restarts ("": memory only)
    api_file: str | None = None  # API URLs, one a line (wins over `api`), read again when a controller fails
    security: Security = field(default_factory=lambda: Security(tls=None, insecure=True))  # the CLI's: TLS
    datapath: str = "auto"  # auto, system (the kernel's) or netdev (userspace): system/datapath.py
    trace_port: int = AGENT_TRACE_PORT  # HTTPS on the underlay address, for controllers (0: off)
    metrics_listen: str | None = None  # HOST:PORT of the token-less /metrics listener (None: none)
    dns_upstream: tuple[str, ...] = ()  # resolvers for names not the tenant's (): /etc/resolv.conf's


def read_token(path: str) -> str:
    try:
        with open(path) as f:
            token = f.read().strip()
    except OSError as e:
        raise InvalidInput(f"cannot read the API token from {path}: {e.strerror}") from e
    if not token:
        raise InvalidInput(f"{path} holds no token")
    return token


def check(cfg: AgentConfig) -> None:
    if not cfg.controllers:
        raise InvalidInput("no --controller: give every controller's OpenFlow target")
    for target in cfg.controllers:
        if target.partition(":")[0] not in ("tcp", "unix", "ssl"):
            raise InvalidInput(f"invalid --controller {target!r}: use tcp:IP:PORT or unix:PATH")
    if not parse_urls(cfg.api) and not cfg.api_file:
        raise InvalidInput("no --api: give every controller's REST API URL (or --api-file)")
    if cfg.pip_pool6:
        check_subnet6(cfg.pip_pool6, "--pip-pool6")
    if cfg.datapath not in datapath.CHOICES:
        raise InvalidInput(f"invalid --datapath {cfg.datapath!r}: use auto, system or netdev")
    if cfg.security.tls is None and not cfg.token_file:
        raise InvalidInput("no credential: give the host certificate (--tls-cert, --tls-key, --tls-ca) or, "
                           "with --insecure, a host token (--token-file)")


@dataclass(frozen=True)
class Underlay:
    """What the host's bridge was built with: every container follows it."""

    datapath: datapath.Decision
    mtu: int  # the uplink's: no encapsulation, so containers get all of it


def prepare_bridge(cfg: AgentConfig, ovsdb: Ovsdb, decision: datapath.Decision) -> tuple[HostInfo, Underlay]:
    mtu = links.mtu_of(cfg.netns, cfg.uplink)
    ovsdb.ensure_bridge(BridgeConfig(name=cfg.bridge, datapath_type=decision.datapath,
                                     controllers=cfg.controllers, datapath_id=cfg.datapath_id,
                                     tls=cfg.security.tls, mtu=mtu))
    uplink_ofport = ovsdb.add_port(cfg.bridge, cfg.uplink)
    found = links.address_of(cfg.netns, cfg.bridge)
    if found is None:
        raise SystemFailure(f"bridge interface {cfg.bridge} has no IPv4 address: give the host its "
                            "underlay address on the bridge")
    ip, prefix, mac = found
    v6 = underlay6(cfg.pip_pool6, links.address6_of(cfg.netns, cfg.bridge), cfg.bridge)
    host = HostInfo(name=cfg.name, dpid=ovsdb.datapath_id(cfg.bridge), underlay_ip=ip,
                    underlay_prefix=prefix, underlay_mac=mac, pip_pool=cfg.pip_pool,
                    uplink_ofport=uplink_ofport, underlay_gateway_mac=cfg.underlay_gateway_mac, **v6)
    return host, Underlay(decision, mtu)


def underlay6(pool6: str, found: tuple[str, int] | None, bridge: str) -> dict[str, Any]:
    """The host's IPv6 fields (HostInfo): its underlay address if the bridge has a global IPv6
    one, and `pool6` (canonical, as the store keeps it: the bootstrap compares flows) when it
    lies in that address's subnet.  A pool6 without such an address, or outside it, is refused:
    its PIPs would be unreachable."""
    if found is None:
        if pool6:
            raise InvalidInput(f"--pip-pool6 {pool6} needs an IPv6 underlay: bridge interface {bridge} "
                               "has no global IPv6 address")
        return {}
    ip6, prefix6 = found
    out: dict[str, Any] = {"underlay_ip6": ip6, "underlay_prefix6": prefix6}
    if not pool6:
        return out
    net6 = check_subnet6(pool6, "--pip-pool6")
    segment = ipaddress.IPv6Network(f"{ip6}/{prefix6}", strict=False)
    if not net6.subnet_of(segment):
        raise InvalidInput(f"--pip-pool6 {net6} is not inside the IPv6 underlay subnet {segment} "
                           f"(bridge interface {bridge})")
    return {**out, "pip_pool6": str(net6)}


async def run(cfg: AgentConfig) -> None:
    check(cfg)
    exporter: MetricsServer | None = None
    if cfg.metrics_listen:
        from prometheus_client import CollectorRegistry

        from daolinet.metrics_server import MetricsServer

        exporter = MetricsServer(cfg.metrics_listen, CollectorRegistry())
    ovsdb = await asyncio.to_thread(Ovsdb, cfg.ovsdb)
    cfg.security.warn("agent")
    token = read_token(cfg.token_file) if cfg.token_file else None
    client = ControllerClient(cfg.api, token=token, api_file=cfg.api_file, tls=cfg.security.tls)
    try:
        decision = await asyncio.to_thread(datapath.resolve, cfg.datapath)
        host, underlay = await asyncio.to_thread(prepare_bridge, cfg, ovsdb, decision)
        log.info("bridge %s: %s datapath, MTU %d (uplink %s's)", cfg.bridge, decision.datapath,
                 underlay.mtu, cfg.uplink)
        plumber = Plumber(ovsdb, cfg.bridge, cfg.netns, userspace=decision.userspace)
        service = AgentService(host, client, plumber, mtu=underlay.mtu)
        await bootstrap.start(cfg.ovsdb, cfg.bridge, host)  # a path to the controllers, kept
        await bootstrap.register(service)  # again, while the bootstrapped path settles
        await service.reconcile()
        if exporter is not None:
            from daolinet.agent.metrics import AgentMetrics

            metrics = AgentMetrics(service, ovsdb, bootstrap.mgmt_socket(cfg.ovsdb, cfg.bridge), cfg.uplink,
                                   exporter.registry)
            exporter.refresh = metrics.refresh
            await exporter.start()
        await _serve(cfg, service, underlay, _names(cfg, service, exporter))
    finally:
        if exporter is not None:
            await exporter.stop()
        await client.close()
        ovsdb.close()


def _names(cfg: AgentConfig, service: AgentService, exporter: MetricsServer | None) -> list[Any]:
    """The agent's resolver (agent/dns_link.py): its replica of the view, and its link to
    the bridge that hands it the containers' DNS questions.  Coroutines, run until the end."""
    from daolinet.agent.dns_link import DnsLink, upstreams_from
    from daolinet.agent.resolver_view import ResolverView

    replica = ResolverView.for_agent(service.client, service.host.name)
    link = DnsLink(bootstrap.mgmt_socket(cfg.ovsdb, cfg.bridge), replica, upstreams_from(cfg.dns_upstream),
                   exporter.registry if exporter is not None else None)
    return [replica.run(), link.run_forever()]


def _unix_server(app: Any, path: str) -> uvicorn.Server:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    return QuietServer(uvicorn.Config(app, uds=path, log_level="warning", lifespan="off",
                                      access_log=False, log_config=None))


async def _serve(cfg: AgentConfig, service: AgentService, underlay: Underlay, extra: list[Any]) -> None:
    sockets = {cfg.listen: _unix_server(create_app(service), cfg.listen)}
    tracing = _trace_server(cfg, service)
    docker: DockerClient | None = None
    plugin: DockerPlugin | None = None
    if cfg.docker_plugin_dir:
        from daolinet.agent.docker_api import PLUGIN_NAME
        from daolinet.agent.docker_client import DockerClient
        from daolinet.agent.docker_plugin import DockerPlugin
        from daolinet.agent.docker_plugin import create_app as create_plugin_app

        docker = DockerClient(cfg.docker_host) if cfg.docker_host else None
        plugin = DockerPlugin(service, service.client, docker, cfg.docker_sync, cfg.docker_state or None)
        path = os.path.join(cfg.docker_plugin_dir, f"{PLUGIN_NAME}.sock")
        sockets[path] = _unix_server(create_plugin_app(plugin.handlers()), path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = [asyncio.create_task(server.serve()) for server in sockets.values()]
    background = [asyncio.create_task(service.heartbeat_forever(cfg.heartbeat)),
                  *[asyncio.create_task(job) for job in extra],
                  *([asyncio.create_task(_serve_traces(tracing, cfg.trace_port))] if tracing else [])]
    for server, task in zip(sockets.values(), serving, strict=True):
        while not server.started and not task.done():
            await asyncio.sleep(0.01)  # uvicorn offers no readiness event; poll its flag
    for path in sockets:
        os.chmod(path, 0o600)
    if plugin is not None:
        background += [asyncio.create_task(job) for job in plugin.jobs()]
    _write_ready(cfg, service, list(sockets), underlay)
    notify("READY=1")
    log.info("agent %s ready on %s", cfg.name, ", ".join(sockets))
    await asyncio.wait([asyncio.ensure_future(stop.wait()), *serving], return_when=asyncio.FIRST_COMPLETED)
    notify("STOPPING=1")
    for task in background:
        task.cancel()
    for server in sockets.values():
        server.should_exit = True
    await asyncio.gather(*serving, return_exceptions=True)
    if docker is not None:
        await docker.close()


def _trace_server(cfg: AgentConfig, service: AgentService) -> uvicorn.Server | None:
    """The controllers' read-only traces of this bridge (agent/trace.py): HTTPS with the host's
    certificate, a controller's or operator's certificate required; none with --insecure."""
    if not cfg.trace_port or cfg.security.tls is None:
        log.info("no trace listener (%s)", "--trace-port 0" if not cfg.trace_port else "--insecure")
        return None
    from daolinet.agent import trace as agent_trace

    tracer = agent_trace.BridgeTracer.of(cfg.ovsdb, cfg.bridge)
    app = agent_trace.create_app(tracer, service.host.name)
    return QuietServer(agent_trace.server_config(app, cfg.security.tls, host=service.host.underlay_ip,
                                                 port=cfg.trace_port))


async def _serve_traces(server: uvicorn.Server, port: int) -> None:
    """The trace listener is optional: its failure (the port taken, say) is logged, never fatal."""
    try:
        await server.serve()
    except (OSError, SystemExit) as e:  # uvicorn exits when it cannot bind
        log.warning("trace listener on port %d stopped: %s", port, e)


def _write_ready(cfg: AgentConfig, service: AgentService, sockets: list[str], underlay: Underlay) -> None:
    if not cfg.ready_file:
        return
    tmp = cfg.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"listen": cfg.listen, "sockets": sockets, "host": service.host.to_json(),
                   "datapath": underlay.datapath.datapath, "mtu": underlay.mtu, "pid": os.getpid(),
                   "metrics": cfg.metrics_listen}, f)
    os.replace(tmp, cfg.ready_file)
