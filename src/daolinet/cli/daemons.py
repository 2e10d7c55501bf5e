"""`daolinet controller` and `daolinet agent`: the long-running processes."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated

import typer

from daolinet.controller.context import Config
from daolinet.security.settings import Security
from daolinet.store.liveness import DEFAULT_HOST_TTL, MAX_HOST_TTL, heartbeat_interval

DEFAULT_CERT = "/etc/daolinet/pki/controller.crt"
DEFAULT_HOST_CERT = "/etc/daolinet/pki/host.crt"


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")


def controller(
    store: Annotated[str, typer.Option(help="sqlite:///PATH (default) or etcd://H:P,...")] =
        "sqlite:///var/lib/daolinet/daolinet.db",
    of_listen: Annotated[list[str], typer.Option(
        help="ssl:HOST:PORT (repeatable; tcp:HOST:PORT and unix:PATH only with --insecure).")] =
        ["ssl:0.0.0.0:6653"],  # noqa: B006
    api_listen: Annotated[list[str], typer.Option(
        help="HOST:PORT of the REST API (HTTPS with --tls-*), repeatable; unix:PATH serves it on a "
             "local socket too. The first HOST:PORT is the URL peers and agents are told.")] =
        ["127.0.0.1:8650"],  # noqa: B006
    advertise: Annotated[list[str] | None, typer.Option(
        help="An IPv4 address of this controller that containers must not reach, beside its listeners' "
             "(repeatable; needed with wildcard listeners such as 0.0.0.0).")] = None,
    idle_timeout: Annotated[int, typer.Option(help="Seconds before an unused route idles out.")] = 30,
    drop_timeout: Annotated[int, typer.Option(help="Seconds a denied destination is dropped.")] = 3,
    host_ttl: Annotated[int, typer.Option(
        help="Seconds without a heartbeat before a host and its containers are marked down "
             "(agents heartbeat every TTL/3 s or faster).")] = DEFAULT_HOST_TTL,
    ready_file: Annotated[str | None, typer.Option(help="Write {api, of, pid} here once listening.")] =
        None,
    admin_token_file: Annotated[str | None, typer.Option(
        help="Admin API token (created, mode 600, if missing). Default: beside the SQLite store.")] = None,
    id: Annotated[str | None, typer.Option(
        "--id", help="This controller's name among several (etcd store). Default: HOST-PID.")] = None,
    tls_cert: Annotated[str | None, typer.Option(
        help="This controller's certificate (pki issue controller).")] =
        "/etc/daolinet/pki/controller.crt",
    tls_key: Annotated[str | None, typer.Option(help="Its key.")] = "/etc/daolinet/pki/controller.key",
    tls_ca: Annotated[str | None, typer.Option(help="The installation's CA certificate.")] =
        "/etc/daolinet/pki/ca.crt",
    etcd_ca: Annotated[str | None, typer.Option(help="CA of the etcd cluster (etcd over TLS).")] = None,
    etcd_cert: Annotated[str | None, typer.Option(help="Client certificate for etcd.")] = None,
    etcd_key: Annotated[str | None, typer.Option(help="Its key.")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Plaintext OpenFlow and HTTP, no certificates: only for trials.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run the OpenFlow controller and its REST API."""
    from daolinet.controller.main import serve

    if not 1 <= idle_timeout <= 65535:
        raise typer.BadParameter("--idle-timeout must be 1..65535 seconds")
    if not 1 <= host_ttl <= MAX_HOST_TTL:
        raise typer.BadParameter(f"--host-ttl must be 1..{MAX_HOST_TTL} seconds")
    _logging(log_level)
    if insecure and tls_cert == DEFAULT_CERT and not os.path.exists(tls_cert):
        tls_cert = tls_key = tls_ca = None  # --insecure alone: no TLS at all
    security = Security.from_options(cert=tls_cert, key=tls_key, ca=tls_ca, insecure=insecure,
                                     etcd_ca=etcd_ca, etcd_cert=etcd_cert, etcd_key=etcd_key)
    security.check_targets(of_listen, "--of-listen")
    config = Config(idle_timeout=idle_timeout, drop_timeout=drop_timeout, host_ttl=host_ttl)
    asyncio.run(serve(store, of_listen, api_listen, config, ready_file, admin_token_file, id, security,
                      tuple(advertise or ())))


def agent(
    controller: Annotated[list[str], typer.Option(
        help="OpenFlow controller target: ssl:IP:PORT (repeatable: every controller; tcp:IP:PORT or "
             "unix:PATH only with --insecure).")],
    pip_pool: Annotated[str, typer.Option(help="This host's PIP pool (part of its underlay subnet).")],
    bridge: Annotated[str, typer.Option(help="OVS bridge to own.")] = "daolinet",
    uplink: Annotated[str, typer.Option(help="Underlay interface to add to the bridge.")] = "eth0",
    name: Annotated[str | None, typer.Option(help="Host name (default: this machine's).")] = None,
    ovsdb: Annotated[str, typer.Option(help="OVSDB endpoint.")] = "unix:/var/run/openvswitch/db.sock",
    netns: Annotated[str | None, typer.Option(help="Host network namespace (lab).")] = None,
    datapath_id: Annotated[int | None, typer.Option(help="Force the bridge's datapath id.")] = None,
    datapath: Annotated[str, typer.Option(
        help="OVS datapath: system (the kernel's openvswitch module, loaded if need be), netdev "
             "(userspace, slow: for hosts without the module), or auto (system where the module is "
             "loaded or loadable, else netdev with a warning).")] = "auto",
    listen: Annotated[str, typer.Option(help="Unix socket of the local API.")] = "/run/daolinet/agent.sock",
    heartbeat: Annotated[float, typer.Option(
        help="Seconds between heartbeats: at most the controllers' --host-ttl / 3.")] =
        heartbeat_interval(DEFAULT_HOST_TTL),
    ready_file: Annotated[str | None, typer.Option(help="Write {listen, host, pid} here when ready.")] =
        None,
    token_file: Annotated[str | None, typer.Option(
        help="File holding a host token (only with --insecure: with TLS the host certificate is the "
             "agent's credential).")] = None,
    tls_cert: Annotated[str | None, typer.Option(help="This host's certificate (pki issue host NAME).")] =
        DEFAULT_HOST_CERT,
    tls_key: Annotated[str | None, typer.Option(help="Its key.")] = "/etc/daolinet/pki/host.key",
    tls_ca: Annotated[str | None, typer.Option(help="The installation's CA certificate.")] =
        "/etc/daolinet/pki/ca.crt",
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Plaintext OpenFlow and HTTP with a host token: only for trials.")] = False,
    underlay_gateway_mac: Annotated[str, typer.Option(
        help="MAC of the underlay router: next hop towards hosts on other segments.")] = "",
    docker_plugin_dir: Annotated[str, typer.Option(
        help="Serve Docker's network and IPAM plugin as DIR/daolinet.sock ('' : no plugin).")] =
        "/run/docker/plugins",
    docker_host: Annotated[str, typer.Option(
        help="This host's dockerd, to keep its networks in step ('' : no sync).")] = "unix:///run/docker.sock",
    docker_sync: Annotated[float, typer.Option(help="Seconds between syncs of Docker networks.")] = 5.0,
    api: Annotated[list[str] | None, typer.Option(
        help="Controller REST API URL, e.g. http://10.0.0.1:8650 (repeatable or comma-separated: every "
             "controller; the agent fails over between them).")] = None,
    api_file: Annotated[str | None, typer.Option(
        help="File of controller REST API URLs, one a line (while readable, it wins over --api); "
             "read again whenever a controller fails.")] =
        None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run the host agent: own the bridge, join the cluster, attach containers."""
    import socket

    from daolinet.agent.main import AgentConfig, run

    _logging(log_level)
    if insecure and tls_cert == DEFAULT_HOST_CERT and not os.path.exists(tls_cert):
        tls_cert = tls_key = tls_ca = None  # --insecure alone: no TLS at all
    security = Security.from_options(cert=tls_cert, key=tls_key, ca=tls_ca, insecure=insecure)
    security.check_targets(controller, "--controller")
    cfg = AgentConfig(name=name or socket.gethostname(), controllers=tuple(controller),
                      api=tuple(api or ()),
                      bridge=bridge, uplink=uplink, pip_pool=pip_pool, ovsdb=ovsdb, netns=netns,
                      datapath_id=datapath_id, listen=listen, heartbeat=heartbeat, ready_file=ready_file,
                      token_file=token_file, underlay_gateway_mac=underlay_gateway_mac,
                      docker_plugin_dir=docker_plugin_dir, docker_host=docker_host, docker_sync=docker_sync,
                      api_file=api_file, security=security, datapath=datapath)
    asyncio.run(run(cfg))
