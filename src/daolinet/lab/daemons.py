"""The lab's daolinet processes, run as they would run on their own machines: the
controllers (SQLite store, or the lab's etcd cluster with several) in the lab's
control namespace on the underlay, OpenFlow on ssl:IP:6653 and the REST API on
https://IP:8650 there (plus a unix socket, so the CLI and tests in the root
namespace reach the API without an address of theirs on the underlay); an agent per
host inside the host's namespace, reaching the controllers over the underlay with
its host certificate.  `--insecure` labs run the same topology in plaintext
(tcp:, http://) with host tokens instead of certificates.

They run detached from the CLI that started them (the lab outlives it),
log into the lab's run dir, and announce readiness through a ready file:
we poll for it with a deadline, and fail with the log's last lines if the
process dies first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from daolinet.errors import SystemFailure
from daolinet.lab import docker, plan
from daolinet.security.tls import TlsFiles
from daolinet.store.liveness import DEFAULT_HOST_TTL, heartbeat_interval
from daolinet.system import procs

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class ControllerPaths:
    lab: str
    index: int = 0  # the lab's controllers: ctl, ctl1, ctl2, ...

    @property
    def dir(self) -> str:
        return os.path.join(plan.lab_dir(self.lab), "ctl" if self.index == 0 else f"ctl{self.index}")

    @property
    def api_sock(self) -> str:
        """The API on a unix socket: how the root namespace (CLI, tests) reaches it."""
        return os.path.join(self.dir, "api.sock")

    @property
    def ip(self) -> str:
        return str(plan.controller_ip(self.index))

    def of_target(self, tls: bool) -> str:
        return f"{'ssl' if tls else 'tcp'}:{self.ip}:{plan.OF_PORT}"

    def api_url(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.ip}:{plan.API_PORT}"

    @property
    def metrics(self) -> str:
        """Its token-less /metrics listener, in the control namespace."""
        return f"{self.ip}:{plan.METRICS_PORT}"

    @property
    def store(self) -> str:
        return os.path.join(self.dir, "store.db")

    @property
    def ready(self) -> str:
        return os.path.join(self.dir, "ready.json")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "controller.log")

    @property
    def admin_token(self) -> str:
        """One for all controllers (the first one's)."""
        return os.path.join(plan.lab_dir(self.lab), "ctl", "admin.token")


def api_file(lab: str) -> str:
    """Every controller's API URL, one a line: agents read it again when a controller
    fails (a restarted controller listens on a new port)."""
    return os.path.join(plan.lab_dir(lab), "api-urls")


def write_api_file(lab: str, urls: list[str]) -> None:
    path = api_file(lab)
    with open(path + ".tmp", "w") as f:
        f.write("".join(f"{url}\n" for url in urls))
    os.replace(path + ".tmp", path)  # agents never read half a list


def agent_sock(host: plan.HostPlan) -> str:
    return os.path.join(host.rundir(), "agent.sock")


def agent_metrics(host: plan.HostPlan) -> str:
    """HOST's agent's token-less /metrics listener, in the host's namespace."""
    return f"{host.underlay_ip}:{plan.AGENT_METRICS_PORT}"


def daemon_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a lab daemon: without $DAOLINET_* settings (its flags say everything)
    and without $NOTIFY_SOCKET (a lab daemon is no service of whoever started the lab)."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items()
            if k == "DAOLINET_DEBUG" or not (k.startswith("DAOLINET_") or k == "NOTIFY_SOCKET")}


def _spawn(argv: list[str], log_path: str, netns: str | None = None) -> subprocess.Popen[bytes]:
    """`daolinet ARGV --config=` detached, inside `netns` (nsenter execs it: its pid is
    daolinet's).  No settings file and no $DAOLINET_* settings: a stray
    /etc/daolinet/*.toml or a variable of the caller's never changes a lab daemon."""
    cmd = [sys.executable, "-m", "daolinet.cli.main", *argv, "--config="]
    with open(log_path, "ab") as log:
        return subprocess.Popen(procs.in_netns(netns, cmd) if netns else cmd, env=daemon_env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_ready(proc: subprocess.Popen[bytes], ready: str, log_path: str,
               timeout: float = START_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            with open(ready) as f:
                return dict(json.load(f))
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    tail = _tail(log_path)
    raise SystemFailure(f"{os.path.basename(log_path)} did not become ready: {tail}")


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _tls_args(tls: TlsFiles | None, prefix: str = "tls") -> list[str]:
    if tls is None:
        return ["--insecure"] if prefix == "tls" else []
    return [f"--{prefix}-cert={tls.cert}", f"--{prefix}-key={tls.key}", f"--{prefix}-ca={tls.ca}"]


def start_controller(lab: str, idle_timeout: int, index: int = 0, store: str | None = None,
                     host_ttl: int = DEFAULT_HOST_TTL, tls: TlsFiles | None = None,
                     etcd_tls: TlsFiles | None = None,
                     log_format: str = "text") -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Controller `index` of the lab in the control namespace, on `store` (default: the
    lab's SQLite file); TLS with its pair `tls` (None: an --insecure lab)."""
    p = ControllerPaths(lab, index)
    os.makedirs(p.dir, exist_ok=True)
    os.makedirs(os.path.dirname(p.admin_token), exist_ok=True)
    for stale in (p.ready,):
        if os.path.exists(stale):
            os.unlink(stale)
    argv = ["controller", f"--store={store or 'sqlite://' + p.store}",
            f"--of-listen={p.of_target(tls is not None)}", f"--api-listen={p.ip}:{plan.API_PORT}",
            f"--api-listen=unix:{p.api_sock}", f"--ready-file={p.ready}",
            f"--admin-token-file={p.admin_token}", f"--id=c{index}", f"--idle-timeout={idle_timeout}",
            f"--host-ttl={host_ttl}", f"--metrics-listen={p.metrics}", f"--log-format={log_format}",
            *_tls_args(tls), *_etcd_args(etcd_tls)]
    proc = _spawn(argv, p.log, netns=plan.control_netns(lab))
    return proc, wait_ready(proc, p.ready, p.log)


def _etcd_args(etcd_tls: TlsFiles | None) -> list[str]:
    if etcd_tls is None:
        return []
    return [f"--etcd-ca={etcd_tls.ca}", f"--etcd-cert={etcd_tls.cert}", f"--etcd-key={etcd_tls.key}"]


def agent_argv(host: plan.HostPlan, controllers: list[ControllerPaths], ovsdb: str, gateway_mac: str,
               host_ttl: int = DEFAULT_HOST_TTL, tls: TlsFiles | None = None,
               token_file: str | None = None, log_format: str = "text", ipv6: bool = False) -> list[str]:
    """HOST's agent: every controller's OpenFlow target and API, its host pair (or, in an
    --insecure lab, a host token); with `ipv6` (a dual-stack underlay) its IPv6 PIP pool."""
    secure = tls is not None
    credential = _tls_args(tls) + ([] if secure or token_file is None else [f"--token-file={token_file}"])
    return [
        "agent", *(f"--controller={c.of_target(secure)}" for c in controllers),
        *(f"--api={c.api_url(secure)}" for c in controllers), f"--api-file={api_file(host.lab)}",
        f"--bridge={plan.BRIDGE}",
        f"--uplink={plan.UPLINK}", f"--name={host.name}", f"--ovsdb={ovsdb}", f"--netns={host.netns}",
        f"--pip-pool={host.pip_pool}", *([f"--pip-pool6={host.pip_pool6}"] if ipv6 else []),
        f"--datapath-id={host.index}", f"--listen={agent_sock(host)}",
        "--datapath=netdev",  # the lab's ovs-vswitchd runs with --disable-system (lab/ovs.py)
        f"--ready-file={os.path.join(host.rundir(), 'agent.json')}",
        f"--heartbeat={heartbeat_interval(host_ttl):g}",
        f"--metrics-listen={agent_metrics(host)}", f"--log-format={log_format}",
        *credential,
        f"--underlay-gateway-mac={gateway_mac}",
        # The host's own dockerd, when a test starts one (lab/docker.py): never the machine's.
        f"--docker-plugin-dir={docker.DockerPaths(host).plugins}",
        f"--docker-host={docker.DockerPaths(host).url}", "--docker-sync=1",
        f"--docker-state={os.path.join(host.rundir(), 'docker-networks.json')}",
        # The outside world's resolver (none runs there unless a test starts one): names that are
        # not a container's go there, never to the machine's own resolvers (docs/names.md).
        f"--dns-upstream={plan.OUTSIDE_IP}",
    ]


def start_agent(host: plan.HostPlan, controllers: list[ControllerPaths], ovsdb: str,
                gateway_mac: str = "", host_ttl: int = DEFAULT_HOST_TTL, tls: TlsFiles | None = None,
                token_file: str | None = None, log_format: str = "text",
                ipv6: bool = False) -> subprocess.Popen[bytes]:
    """HOST's agent in the host's namespace, knowing every controller (and the lab's API
    file, for controllers started later)."""
    ready = os.path.join(host.rundir(), "agent.json")
    if os.path.exists(ready):
        os.unlink(ready)
    return _spawn(agent_argv(host, controllers, ovsdb, gateway_mac, host_ttl, tls, token_file, log_format,
                             ipv6),
                  os.path.join(host.rundir(), "agent.log"), netns=host.netns)


def wait_agent(host: plan.HostPlan, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    return wait_ready(proc, os.path.join(host.rundir(), "agent.json"),
                      os.path.join(host.rundir(), "agent.log"))


def stop(pid: int) -> None:
    procs.stop([pid])
