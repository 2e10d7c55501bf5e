"""The lab's daolinet processes: one controller (SQLite store, OpenFlow on a
unix socket every host's ovs-vswitchd can reach from its namespace, REST on
127.0.0.1 with a port picked by the kernel) and one agent per host.  With an
etcd store (lab/ha.py), several controllers, each with its own dir, socket and
API port, sharing one admin token; every agent lists every controller.

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
    def of_sock(self) -> str:
        return os.path.join(self.dir, "of.sock")

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


def _spawn(argv: list[str], log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "daolinet.cli.main", *argv],
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


def start_controller(lab: str, idle_timeout: int, index: int = 0, store: str | None = None,
                     host_ttl: int = DEFAULT_HOST_TTL) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Controller `index` of the lab, on `store` (default: the lab's SQLite file)."""
    p = ControllerPaths(lab, index)
    os.makedirs(p.dir, exist_ok=True)
    os.makedirs(os.path.dirname(p.admin_token), exist_ok=True)
    for stale in (p.ready,):
        if os.path.exists(stale):
            os.unlink(stale)
    proc = _spawn(["controller", f"--store={store or 'sqlite://' + p.store}", f"--of-listen=unix:{p.of_sock}",
                   "--api-listen=127.0.0.1:0", f"--ready-file={p.ready}",
                   f"--admin-token-file={p.admin_token}", f"--id=c{index}",
                   f"--idle-timeout={idle_timeout}", f"--host-ttl={host_ttl}", "--insecure"], p.log)
    return proc, wait_ready(proc, p.ready, p.log)


def controller_link(host: plan.HostPlan, of_sock: str, index: int = 0) -> str:
    """ovs-vswitchd only connects to unix sockets inside its own run dir (a
    guard against remote OVSDB clients); the lab links each controller's socket
    there."""
    name = "controller.sock" if index == 0 else f"controller{index}.sock"
    link = os.path.join(host.rundir(), name)
    if not os.path.islink(link):
        os.symlink(of_sock, link)
    return link


def agent_argv(host: plan.HostPlan, of_socks: list[str], apis: list[str], ovsdb: str, gateway_mac: str,
               host_ttl: int = DEFAULT_HOST_TTL) -> list[str]:
    targets = [f"--controller=unix:{controller_link(host, sock, i)}" for i, sock in enumerate(of_socks)]
    return [
        "agent", *targets, *(f"--api={api}" for api in apis), f"--api-file={api_file(host.lab)}",
        f"--bridge={plan.BRIDGE}",
        f"--uplink={plan.UPLINK}", f"--name={host.name}", f"--ovsdb={ovsdb}", f"--netns={host.netns}",
        f"--pip-pool={host.pip_pool}", f"--datapath-id={host.index}", f"--listen={agent_sock(host)}",
        f"--ready-file={os.path.join(host.rundir(), 'agent.json')}",
        f"--heartbeat={heartbeat_interval(host_ttl):g}",
        f"--token-file={ControllerPaths(host.lab).admin_token}", "--insecure",
        f"--underlay-gateway-mac={gateway_mac}",
        # The host's own dockerd, when a test starts one (lab/docker.py): never the machine's.
        f"--docker-plugin-dir={docker.DockerPaths(host).plugins}",
        f"--docker-host={docker.DockerPaths(host).url}", "--docker-sync=1",
    ]


def start_agent(host: plan.HostPlan, of_socks: list[str], apis: list[str], ovsdb: str,
                gateway_mac: str = "", host_ttl: int = DEFAULT_HOST_TTL) -> subprocess.Popen[bytes]:
    """HOST's agent, knowing every controller's OpenFlow socket and API (`apis`, and the
    lab's API file for controllers restarted later)."""
    ready = os.path.join(host.rundir(), "agent.json")
    if os.path.exists(ready):
        os.unlink(ready)
    return _spawn(agent_argv(host, of_socks, apis, ovsdb, gateway_mac, host_ttl),
                  os.path.join(host.rundir(), "agent.log"))


def wait_agent(host: plan.HostPlan, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    return wait_ready(proc, os.path.join(host.rundir(), "agent.json"),
                      os.path.join(host.rundir(), "agent.log"))


def stop(pid: int) -> None:
    procs.stop([pid])
