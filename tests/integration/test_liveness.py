"""Host liveness on real parts: etcd leases (a real etcd-server), and the lab with a killed agent.

An agent's heartbeat keeps its host alive (etcd: a lease on alive/<host>; SQLite: the last
heartbeat's time).  kill -9 an agent: within the host TTL its host and containers are marked
down (the API says so), the routes of its containers are revoked on the other hosts' switches,
routes elsewhere live on, and no new route is plugged to them; the agent back, they are up
and reachable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from daolinet.lab import cluster, state
from daolinet.pipeline import route_cookie
from daolinet.store import open_store
from daolinet.system import procs
from daolinet.testing import labtools
from daolinet.testing.etcd import EtcdCluster
from daolinet.testing.etcd_fixtures import etcd_server
from daolinet.testing.factories import make_host

pytestmark = pytest.mark.integration
__all__ = ["etcd_server"]  # a fixture, used by name
TTL = 2  # seconds: the store test (etcd's shortest lease here is 1 s)
LAB_TTL = 3  # seconds: the lab (agents heartbeat every second)
DEADLINE = 15.0


async def until(cond: Callable[[], Any], timeout: float = DEADLINE) -> float:
    """Poll an async condition until true; the seconds it took."""
    start = time.monotonic()
    while not await cond():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


# -- the etcd store: leases ---------------------------------------------------------------------


async def test_a_hosts_lease_lapses_without_heartbeats_and_one_controller_marks_it_down(
        etcd_server: EtcdCluster) -> None:
    url, tls = etcd_server.url("liveness-lease"), etcd_server.client_tls
    a, b = (open_store(url, host_ttl=TTL, etcd_tls=tls) for _ in "ab")  # two controllers' stores
    try:
        await a.register_host(make_host(1))
        await a.register_host(make_host(2))
        # Heartbeats keep h1's lease alive (through either store: the lease id is read from etcd)
        # while h2, silent, lapses once etcd expires its lease.
        start = time.monotonic()

        async def h2_lapsed() -> bool:
            await (a if int(time.monotonic() - start) % 2 else b).heartbeat("h1", time.time())
            return await b.lapsed_hosts(time.time()) == ["h2"]
        took = await until(h2_lapsed)
        print(f"\nh2's lease lapsed {took:.2f} s after its registration (TTL {TTL} s)")
        assert took >= TTL - 0.5
        assert await a.mark_host_down("h1", time.time()) is None  # alive: never marked down
        marked = await asyncio.gather(a.mark_host_down("h2", 0.0), b.mark_host_down("h2", 0.0))
        assert sorted(m is not None for m in marked) == [False, True]  # one controller wins
        assert not (await a.get_host("h2")).alive and (await b.get_host("h1")).alive
        assert await a.lapsed_hosts(time.time()) == []

        back = await b.heartbeat("h2", time.time())  # a new lease
        assert back.alive and await a.lapsed_hosts(time.time()) == []
        assert await a.mark_host_down("h2", 0.0) is None
    finally:
        await a.close()
        await b.close()


async def test_the_liveness_watch_wakes_when_a_lease_expires(etcd_server: EtcdCluster) -> None:
    store = open_store(etcd_server.url("liveness-watch"), host_ttl=TTL, etcd_tls=etcd_server.client_tls)
    try:
        store.LIVENESS_POLL = 60.0  # type: ignore[attr-defined]  # only the watch can wake it in time
        await store.register_host(make_host(1))
        ticks = store.liveness_ticks()
        await anext(ticks)  # the first look, at once
        start = time.monotonic()
        await asyncio.wait_for(anext(ticks), TTL + 3)  # etcd deleted alive/h1
        took = time.monotonic() - start
        print(f"\nthe watch saw h1's lease expire {took:.2f} s after its registration")
        assert await store.lapsed_hosts(time.time()) == ["h1"]
        await ticks.aclose()
    finally:
        await store.close()


# -- the lab: kill an agent -------------------------------------------------------------------------


def agent_pid(lab: cluster.Lab, host: str) -> int:
    st = state.load(lab.name)
    assert st is not None
    return st.pids[f"{host}/agent"]


def kill_agent(lab: cluster.Lab, host: str) -> None:
    """kill -9 the host's agent, by the pid the lab recorded (our child: reap it)."""
    pid = agent_pid(lab, host)
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    labtools.wait_for(lambda: not procs.is_alive(pid), timeout=5, what=f"agent {pid} gone")


def container_ip(lab: cluster.Lab, name: str) -> str:
    ip = lab.container(name).ip
    assert ip is not None
    return ip


@pytest.mark.parametrize(("store", "controllers"), [("sqlite", 1), ("etcd", 2)])
def test_a_killed_agents_containers_go_down_and_their_routes_are_revoked(
        lab_factory: Callable[..., cluster.Lab], store: str, controllers: int) -> None:
    lab = lab_factory(hosts=3, controllers=controllers, store=store, host_ttl=LAB_TTL)
    with lab.api() as api:
        api.call("POST", "/networks", json={"name": "n", "subnet": "10.4.0.0/24"})
    for name, host in (("a", "h1"), ("b", "h2"), ("c", "h3")):
        lab.add_container(name, host=host, network="n")
    for peer in ("b", "c"):
        assert labtools.ping(lab, "a", container_ip(lab, peer)).returncode == 0
    ea, eb, ec = (lab.container(n).eid for n in "abc")
    assert ea is not None and eb is not None and ec is not None
    ab, ac = (f"cookie={route_cookie(ea, e).value:#x}" for e in (eb, ec))

    def on_h1(cookie: str) -> list[str]:
        return [f for f in labtools.route_flows(lab, "h1") if cookie in f]

    def alive() -> dict[str, bool]:
        with lab.api(index=controllers - 1) as api:  # any controller answers the same
            return {e["name"]: e["alive"] for e in api.call("GET", "/endpoints")}
    assert on_h1(ab) and on_h1(ac) and alive() == {"a": True, "b": True, "c": True}

    kill_agent(lab, "h2")
    killed = time.monotonic()
    seen: dict[str, float] = {}

    def down_and_revoked() -> bool:
        now = time.monotonic() - killed
        if "down" not in seen and alive() == {"a": True, "b": False, "c": True}:
            seen["down"] = now
        if "revoked" not in seen and not on_h1(ab):
            seen["revoked"] = now
        return len(seen) == 2
    labtools.wait_for(down_and_revoked, timeout=LAB_TTL + 10, what="b down and its route revoked")
    print(f"\n{store}, {controllers} controller(s), host TTL {LAB_TTL} s: h2's agent killed; "
          f"b down in the API after {seen['down']:.2f} s, route a-b revoked on h1 after "
          f"{seen['revoked']:.2f} s")
    assert seen["revoked"] > LAB_TTL - 1.5  # not before its lease/heartbeats could lapse
    with lab.api() as api:
        hosts = {h["name"]: h["alive"] for h in api.call("GET", "/hosts")}
    assert hosts == {"h1": True, "h2": False, "h3": True}
    assert on_h1(ac) and labtools.ping(lab, "a", container_ip(lab, "c")).returncode == 0  # a-c lives on
    assert labtools.ping(lab, "a", container_ip(lab, "b"), wait=0.5).returncode != 0  # not plugged again
    assert not on_h1(ab)

    start = time.monotonic()
    lab.start_agents(["h2"])  # registers again: alive
    labtools.wait_for(lambda: alive() == {"a": True, "b": True, "c": True}, timeout=DEADLINE,
                      what="b alive again")
    labtools.wait_for(lambda: labtools.ping(lab, "a", container_ip(lab, "b"), wait=0.5).returncode == 0,
                      timeout=DEADLINE, what="a reaching b again")
    print(f"agent back: a reaches b again {time.monotonic() - start:.2f} s after the restart began")
    assert on_h1(ab)
