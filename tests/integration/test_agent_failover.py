"""Agents know every controller's API and fail over (agent/failover.py): losing the
controller an agent talks to must not let its heartbeats lapse."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

import pytest

from daolinet.errors import DaoliError
from daolinet.lab import cluster
from daolinet.system import procs
from daolinet.testing import labtools

pytestmark = pytest.mark.integration
TTL = 3  # seconds: the controllers' --host-ttl; agents heartbeat every second
WATCH = 2.5 * TTL  # how long no host may go down after a kill: longer than two TTLs
SWITCHED = "now using"  # what an agent logs when it leaves a controller for another


def kill_controller(lab: cluster.Lab, index: int) -> None:
    """kill -9 controller `index`, by the pid the lab recorded (our child: reap it)."""
    pid = lab.controller_pid(index)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    labtools.wait_for(lambda: not procs.is_alive(pid), timeout=5, what=f"controller {pid} gone")


def reaches(lab: cluster.Lab, src: str, dst: str, timeout: float = 15) -> None:
    ip = lab.container(dst).ip or ""
    labtools.wait_for(lambda: labtools.ping(lab, src, ip, wait=0.5).returncode == 0, timeout=timeout,
                      what=f"{src} reaching {dst}")


def agent_log(lab: cluster.Lab, host: str) -> str:
    return os.path.join(lab.host(host).plan.rundir(), "agent.log")


def hosts_alive(lab: cluster.Lab, index: int) -> dict[str, bool]:
    with lab.api(index=index) as api:
        return {h["name"]: h["alive"] for h in api.call("GET", "/hosts")}


def watch_no_host_goes_down(lab: cluster.Lab, via: int, killed: float) -> dict[str, float]:
    """Poll for WATCH seconds after `killed`: every host stays alive (through controller
    `via`); returns when each agent logged its switch to another controller."""
    names = [h.name for h in lab.hosts]
    offsets = {n: os.path.getsize(agent_log(lab, n)) for n in names}
    switched: dict[str, float] = {}
    down: list[tuple[float, str]] = []
    while time.monotonic() - killed < WATCH or len(switched) < len(names):
        now = time.monotonic() - killed
        assert now < WATCH + 10, f"agents never switched: only {sorted(switched)}"
        with contextlib.suppress(DaoliError):  # a poll the API could not answer proves nothing
            down += [(now, n) for n, alive in hosts_alive(lab, via).items() if not alive]
        for n in names:
            with open(agent_log(lab, n)) as f:
                f.seek(offsets[n])
                if n not in switched and SWITCHED in f.read():
                    switched[n] = now
        time.sleep(0.05)  # the polling period
    assert not down, f"hosts marked down after the kill: {down}"
    assert hosts_alive(lab, via) == dict.fromkeys(names, True)
    return switched


def test_agents_fail_over_when_their_controller_dies_or_moves(
        lab_factory: Callable[..., cluster.Lab]) -> None:
    lab = lab_factory(hosts=3, controllers=3, store="etcd", host_ttl=TTL)
    with lab.api() as api:
        api.call("POST", "/networks", json={"name": "n", "subnet": "10.9.0.0/24"})
    for name, host in (("a", "h1"), ("b", "h2"), ("c", "h3")):
        lab.add_container(name, host=host, network="n")
    ips = {n: lab.container(n).ip or "" for n in "abc"}
    for peer in "bc":
        assert labtools.ping(lab, "a", ips[peer]).returncode == 0

    # Every agent uses the first controller's API: kill it.
    killed = time.monotonic()
    kill_controller(lab, 0)
    switched = watch_no_host_goes_down(lab, via=1, killed=killed)
    print(f"\ncontroller 0 killed, host TTL {TTL} s: agents switched after "
          + ", ".join(f"{n} {t:.2f} s" for n, t in sorted(switched.items()))
          + f"; no host down in {time.monotonic() - killed:.1f} s")
    lab.add_container("d", host="h2", network="n")  # an attach through the agent's new controller
    for peer in ("b", "c", "d"):
        reaches(lab, "a", peer)

    # Controller 0 comes back on another port (the lab rewrites its URL file); the others die:
    # the agents can only find it through the file.
    lab.start_controller(0)
    new_url = lab.api_urls[0]
    killed = time.monotonic()
    for index in (1, 2):
        kill_controller(lab, index)
    switched = watch_no_host_goes_down(lab, via=0, killed=killed)
    print(f"controllers 1 and 2 killed, 0 restarted at {new_url}: agents switched after "
          + ", ".join(f"{n} {t:.2f} s" for n, t in sorted(switched.items())))
    lab.add_container("e", host="h3", network="n")
    for peer in ("b", "c", "d", "e"):
        reaches(lab, "a", peer)
