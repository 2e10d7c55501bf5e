"""`daolinet controller` and `daolinet agent`: the long-running processes.

The commands only collect the flags actually given (every option defaults to None):
types, defaults, ranges and help live in daolinet.daemon_settings, which layers the
flags over $DAOLINET_* over the TOML file."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer

from daolinet import logformat
from daolinet.daemon_settings import AgentSettings, ControllerSettings, DaemonSettings, load
from daolinet.security.settings import Security

C, A = ControllerSettings, AgentSettings


def _opt(model: type[DaemonSettings], key: str, *names: str) -> Any:
    return typer.Option(*names, help=model.help(key), show_default=False)


def _config_opt(model: type[DaemonSettings]) -> Any:
    return typer.Option("--config", show_default=False, help=(
        f"TOML file of settings (keys: the long option names with '_' for '-'); flags and "
        f"$DAOLINET_<KEY> override it. (default: {model.default_file}, if present; '' : none)"))


def _logging(s: DaemonSettings) -> None:
    logformat.setup(s.log_level, s.log_format)


def _untouched_tls(s: DaemonSettings, model: type[DaemonSettings]) -> bool:
    """--insecure alone: the default certificate path, absent, means no TLS at all."""
    default = model.model_fields["tls_cert"].default
    return s.insecure and s.tls_cert == default and not os.path.exists(default)


def controller(
    store: Annotated[str | None, _opt(C, "store")] = None,
    of_listen: Annotated[list[str] | None, _opt(C, "of_listen")] = None,
    api_listen: Annotated[list[str] | None, _opt(C, "api_listen")] = None,
    advertise: Annotated[list[str] | None, _opt(C, "advertise")] = None,
    idle_timeout: Annotated[int | None, _opt(C, "idle_timeout")] = None,
    drop_timeout: Annotated[int | None, _opt(C, "drop_timeout")] = None,
    host_ttl: Annotated[int | None, _opt(C, "host_ttl")] = None,
    ready_file: Annotated[str | None, _opt(C, "ready_file")] = None,
    admin_token_file: Annotated[str | None, _opt(C, "admin_token_file")] = None,
    id: Annotated[str | None, _opt(C, "id", "--id")] = None,
    tls_cert: Annotated[str | None, _opt(C, "tls_cert")] = None,
    tls_key: Annotated[str | None, _opt(C, "tls_key")] = None,
    tls_ca: Annotated[str | None, _opt(C, "tls_ca")] = None,
    etcd_ca: Annotated[str | None, _opt(C, "etcd_ca")] = None,
    etcd_cert: Annotated[str | None, _opt(C, "etcd_cert")] = None,
    etcd_key: Annotated[str | None, _opt(C, "etcd_key")] = None,
    insecure: Annotated[bool | None, _opt(C, "insecure", "--insecure")] = None,
    log_level: Annotated[str | None, _opt(C, "log_level")] = None,
    log_format: Annotated[str | None, _opt(C, "log_format")] = None,
    metrics_listen: Annotated[str | None, _opt(C, "metrics_listen")] = None,
    config: Annotated[str | None, _config_opt(C)] = None,
) -> None:
    """Run the OpenFlow controller and its REST API."""
    flags = dict(locals())  # every parameter: the flags given, None for the others
    del flags["config"]
    from daolinet.controller.context import Config
    from daolinet.controller.main import serve

    s = load(ControllerSettings, flags, config)
    _logging(s)
    tls = (None, None, None) if _untouched_tls(s, C) else (s.tls_cert, s.tls_key, s.tls_ca)
    security = Security.from_options(cert=tls[0], key=tls[1], ca=tls[2], insecure=s.insecure,
                                     etcd_ca=s.etcd_ca, etcd_cert=s.etcd_cert, etcd_key=s.etcd_key)
    security.check_targets(s.of_listen, "--of-listen")
    cfg = Config(idle_timeout=s.idle_timeout, drop_timeout=s.drop_timeout, host_ttl=s.host_ttl)
    asyncio.run(serve(s.store, list(s.of_listen), list(s.api_listen), cfg, s.ready_file, s.admin_token_file,
                      s.id, security, s.advertise, s.metrics_listen))


def agent(
    controller: Annotated[list[str] | None, _opt(A, "controller")] = None,
    pip_pool: Annotated[str | None, _opt(A, "pip_pool")] = None,
    pip_pool6: Annotated[str | None, _opt(A, "pip_pool6")] = None,
    bridge: Annotated[str | None, _opt(A, "bridge")] = None,
    uplink: Annotated[str | None, _opt(A, "uplink")] = None,
    datapath: Annotated[str | None, _opt(A, "datapath")] = None,
    name: Annotated[str | None, _opt(A, "name")] = None,
    ovsdb: Annotated[str | None, _opt(A, "ovsdb")] = None,
    netns: Annotated[str | None, _opt(A, "netns")] = None,
    datapath_id: Annotated[int | None, _opt(A, "datapath_id")] = None,
    listen: Annotated[str | None, _opt(A, "listen")] = None,
    trace_port: Annotated[int | None, _opt(A, "trace_port")] = None,
    heartbeat: Annotated[float | None, _opt(A, "heartbeat")] = None,
    ready_file: Annotated[str | None, _opt(A, "ready_file")] = None,
    token_file: Annotated[str | None, _opt(A, "token_file")] = None,
    tls_cert: Annotated[str | None, _opt(A, "tls_cert")] = None,
    tls_key: Annotated[str | None, _opt(A, "tls_key")] = None,
    tls_ca: Annotated[str | None, _opt(A, "tls_ca")] = None,
    insecure: Annotated[bool | None, _opt(A, "insecure", "--insecure")] = None,
    underlay_gateway_mac: Annotated[str | None, _opt(A, "underlay_gateway_mac")] = None,
    docker_plugin_dir: Annotated[str | None, _opt(A, "docker_plugin_dir")] = None,
    docker_host: Annotated[str | None, _opt(A, "docker_host")] = None,
    docker_sync: Annotated[float | None, _opt(A, "docker_sync")] = None,
    docker_state: Annotated[str | None, _opt(A, "docker_state")] = None,
    api: Annotated[list[str] | None, _opt(A, "api")] = None,
    api_file: Annotated[str | None, _opt(A, "api_file")] = None,
    dns_upstream: Annotated[list[str] | None, _opt(A, "dns_upstream")] = None,
    log_level: Annotated[str | None, _opt(A, "log_level")] = None,
    log_format: Annotated[str | None, _opt(A, "log_format")] = None,
    metrics_listen: Annotated[str | None, _opt(A, "metrics_listen")] = None,
    config: Annotated[str | None, _config_opt(A)] = None,
) -> None:
    """Run the host agent: own the bridge, join the cluster, attach containers."""
    flags = dict(locals())  # every parameter: the flags given, None for the others
    del flags["config"]
    import socket

    from daolinet.agent.main import AgentConfig, run

    s = load(AgentSettings, flags, config)
    _logging(s)
    tls = (None, None, None) if _untouched_tls(s, A) else (s.tls_cert, s.tls_key, s.tls_ca)
    security = Security.from_options(cert=tls[0], key=tls[1], ca=tls[2], insecure=s.insecure)
    security.check_targets(s.controller, "--controller")
    cfg = AgentConfig(name=s.name or socket.gethostname(), controllers=s.controller, api=s.api,
                      bridge=s.bridge, uplink=s.uplink, pip_pool=s.pip_pool, ovsdb=s.ovsdb, netns=s.netns,
                      pip_pool6=s.pip_pool6,
                      datapath_id=s.datapath_id, listen=s.listen, heartbeat=s.heartbeat,
                      ready_file=s.ready_file, token_file=s.token_file,
                      underlay_gateway_mac=s.underlay_gateway_mac, docker_plugin_dir=s.docker_plugin_dir,
                      docker_host=s.docker_host, docker_sync=s.docker_sync, docker_state=s.docker_state,
                      api_file=s.api_file,
                      security=security, datapath=s.datapath, trace_port=s.trace_port,
                      metrics_listen=s.metrics_listen, dns_upstream=s.dns_upstream)
    asyncio.run(run(cfg))
