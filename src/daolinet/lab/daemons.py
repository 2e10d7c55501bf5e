"""The lab's daolinet processes: one controller (SQLite store, OpenFlow on a
unix socket every host's ovs-vswitchd can reach from its namespace, REST on
127.0.0.1 with a port picked by the kernel) and one agent per host.

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
from daolinet.system import procs

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class ControllerPaths:
    lab: str

    @property
    def dir(self) -> str:
        return os.path.join(plan.lab_dir(self.lab), "ctl")

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
        return os.path.join(self.dir, "admin.token")


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


def start_controller(lab: str, idle_timeout: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    p = ControllerPaths(lab)
    os.makedirs(p.dir, exist_ok=True)
    for stale in (p.ready,):
        if os.path.exists(stale):
            os.unlink(stale)
    proc = _spawn(["controller", f"--store=sqlite://{p.store}", f"--of-listen=unix:{p.of_sock}",
                   "--api-listen=127.0.0.1:0", f"--ready-file={p.ready}",
                   f"--admin-token-file={p.admin_token}",
                   f"--idle-timeout={idle_timeout}"], p.log)
    return proc, wait_ready(proc, p.ready, p.log)


def controller_link(host: plan.HostPlan, of_sock: str) -> str:
    """ovs-vswitchd only connects to unix sockets inside its own run dir (a
    guard against remote OVSDB clients); the lab links the controller's socket
    there."""
    link = os.path.join(host.rundir(), "controller.sock")
    if not os.path.islink(link):
        os.symlink(of_sock, link)
    return link


def agent_argv(host: plan.HostPlan, of_sock: str, api: str, ovsdb: str, gateway_mac: str) -> list[str]:
    return [
        "agent", f"--controller=unix:{controller_link(host, of_sock)}", f"--api={api}",
        f"--bridge={plan.BRIDGE}",
        f"--uplink={plan.UPLINK}", f"--name={host.name}", f"--ovsdb={ovsdb}", f"--netns={host.netns}",
        f"--pip-pool={host.pip_pool}", f"--datapath-id={host.index}", f"--listen={agent_sock(host)}",
        f"--ready-file={os.path.join(host.rundir(), 'agent.json')}", "--heartbeat=5",
        f"--token-file={ControllerPaths(host.lab).admin_token}",
        f"--underlay-gateway-mac={gateway_mac}",
        # The host's own dockerd, when a test starts one (lab/docker.py): never the machine's.
        f"--docker-plugin-dir={docker.DockerPaths(host).plugins}",
        f"--docker-host={docker.DockerPaths(host).url}", "--docker-sync=1",
    ]


def start_agent(host: plan.HostPlan, of_sock: str, api: str, ovsdb: str,
                gateway_mac: str = "") -> subprocess.Popen[bytes]:
    ready = os.path.join(host.rundir(), "agent.json")
    if os.path.exists(ready):
        os.unlink(ready)
    return _spawn(agent_argv(host, of_sock, api, ovsdb, gateway_mac),
                  os.path.join(host.rundir(), "agent.log"))


def wait_agent(host: plan.HostPlan, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    return wait_ready(proc, os.path.join(host.rundir(), "agent.json"),
                      os.path.join(host.rundir(), "agent.log"))


def stop(pid: int) -> None:
    procs.stop([pid])
