"""Several controllers on one etcd: mastership per switch, failover, views that follow every writer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.mastership_etcd import EtcdMastership, Held
from daolinet.errors import Conflict, DaoliError
from daolinet.lab import cluster, plan, state
from daolinet.pipeline import route_cookie
from daolinet.store import SqliteStore, open_store
from daolinet.store.migrate import migrate
from daolinet.system import procs
from daolinet.testing import labtools
from daolinet.testing.asynctools import until
from daolinet.testing.etcd import EtcdCluster
from daolinet.testing.etcd_fixtures import etcd_server
from daolinet.testing.populate import populate

pytestmark = pytest.mark.integration
__all__ = ["etcd_server"]  # a fixture, used by name
DEADLINE = 15.0
PING_STATS = re.compile(r"(\d+) packets transmitted, (\d+) received")


class Member:
    """One controller's mastership loop, recording what it holds."""

    def __init__(self, etcd: EtcdCluster, prefix: str, me: str, switches: Iterable[int],
                 api_url: str = "") -> None:
        self.m = EtcdMastership(etcd.url(prefix), me, api_url or f"http://{me}", etcd_tls=etcd.client_tls)
        self.switches = set(switches)
        self.held: Held = {}
        self.task = asyncio.create_task(self.m.run(lambda: self.switches, self._on_held))

    def _on_held(self, held: Held) -> None:
        self.held = held

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)  # a stop that hangs fails the test, not the run

    async def die(self) -> None:
        """Like kill -9: no revoke, the lease has to expire."""
        self.m._lease = None
        await self.stop()


async def test_switches_are_spread_and_a_dead_masters_switches_move(etcd_server: EtcdCluster) -> None:
    a, b = (Member(etcd_server, "ha-mastership", me, range(1, 5)) for me in "ab")
    await until(lambda: len(a.held) + len(b.held) == 4)
    await asyncio.sleep(1.0)  # settled: no switch changes hands
    assert len(a.held) == len(b.held) == 2 and not set(a.held) & set(b.held)
    old_gen = max(b.held.values())
    lost = set(b.held)
    await b.die()
    took = await until(lambda: set(a.held) == set(range(1, 5)))
    print(f"\nswitches of a dead master moved after {took:.2f} s")
    assert took < 2 * 2 + 1  # within the lease TTL (2 s) and a round, with margin
    assert all(a.held[d] > old_gen for d in lost)  # a newer generation id
    await a.stop()


async def test_a_controller_joining_later_gets_its_share(etcd_server: EtcdCluster) -> None:
    a = Member(etcd_server, "ha-join", "a", range(1, 7))
    await until(lambda: len(a.held) == 6)
    b = Member(etcd_server, "ha-join", "b", range(1, 7))
    took = await until(lambda: len(a.held) == len(b.held) == 3 and not set(a.held) & set(b.held))
    print(f"\na late controller got its share of the switches after {took:.2f} s")
    await asyncio.sleep(1.0)  # and it stays so: no switch goes round in circles
    assert len(a.held) == len(b.held) == 3 and set(a.held) | set(b.held) == set(range(1, 7))
    await a.stop()
    await b.stop()


async def test_a_crashed_masters_switches_move_before_its_lease_expires(etcd_server: EtcdCluster) -> None:
    """A dead process refuses connections on its API port: its peers revoke its lease
    at once instead of waiting out the TTL (a silent peer still waits: test above)."""
    apis = {me: socket.create_server(("127.0.0.1", 0)) for me in "ab"}
    a, b = (Member(etcd_server, "ha-crash", me, range(1, 5), f"http://127.0.0.1:{apis[me].getsockname()[1]}")
            for me in "ab")
    await until(lambda: len(a.held) + len(b.held) == 4)
    await asyncio.sleep(1.0)  # settled
    assert len(a.held) == len(b.held) == 2
    apis["b"].close()  # the process is gone: nothing listens on its port any more
    await b.die()
    took = await until(lambda: set(a.held) == set(range(1, 5)))
    print(f"\nswitches of a crashed master moved after {took:.2f} s")
    assert took < 1.5  # well inside the 2 s lease: two refused probes a round apart, then a claim
    await a.stop()
    apis["a"].close()


# -- the store: migrate, and controllers' views following each other ---------------------------


async def test_migrate_a_sqlite_installation_into_etcd(etcd_server: EtcdCluster, tmp_path: Path) -> None:
    src = SqliteStore.open(str(tmp_path / "a.db"))
    await populate(src)
    async with open_store(etcd_server.url("ha-migrate"), etcd_tls=etcd_server.client_tls) as dst:
        n = await migrate(src, dst, batch=7)
        (_, a), (_, b) = await src.snapshot(), await dst.snapshot()
        assert n == len(a) == len(b) > 10
        for x, y in zip(a, b, strict=True):
            assert type(x) is type(y) and vars(x) == vars(y), (x, y)  # field by field
        net = await dst.create_network("default", "new", "10.9.0.0/24")  # ids go on past the copy
        assert net.id > max(x.id for x in await src.list_networks())
        with pytest.raises(Conflict, match="not empty"):
            await migrate(src, dst)
    await src.close()


async def test_a_change_through_one_controller_reaches_anothers_view(etcd_server: EtcdCluster) -> None:
    url, tls = etcd_server.url("ha-follow"), etcd_server.client_tls
    a, b = (Controller(open_store(url, etcd_tls=tls), Config()) for _ in "ab")
    await a.start()
    await b.start()
    start = time.monotonic()
    await a.store.create_network("default", "web", "10.1.0.0/24")
    await until(lambda: ("default", "web") in b.view.networks)
    took = time.monotonic() - start  # the write through A included
    await b.store.create_network("default", "db", "10.2.0.0/24")
    await until(lambda: ("default", "db") in a.view.networks)
    assert a.view.rev == b.view.rev == 3  # tenant default, web, db: each applied once
    print(f"\nanother controller's change reached the view in {took * 1000:.0f} ms")
    for c in (a, b):
        await c.stop()
        await c.store.close()


# -- the lab: 3 etcd members, 3 controllers ------------------------------------------------------


@pytest.fixture
def ha_lab(lab_factory: Callable[..., cluster.Lab]) -> cluster.Lab:
    return lab_factory(hosts=3, controllers=3, store="etcd", insecure=False)  # etcd on TLS too


def masters(lab: cluster.Lab) -> dict[int, int]:
    """dpid -> index of the controller mastering it (the live ones)."""
    out: dict[int, int] = {}
    for i in range(len(lab.api_urls)):
        with contextlib.suppress(DaoliError), lab.api(index=i) as api:
            out.update({d: i for d in api.call("GET", "/health")["switches"]})
    return out


def test_concurrent_allocation_through_two_apis_gives_no_duplicates(ha_lab: cluster.Lab) -> None:
    lab, n = ha_lab, 1000
    with lab.api() as api:
        api.call("POST", "/networks", json={"name": "big", "subnet": "10.8.0.0/20"})
        # The lab's hosts have 254 PIPs each: allocate on two more, switchless, with bigger pools.
        for k in (1, 2):
            api.call("POST", "/hosts", json={"name": f"big{k}", "dpid": 100 + k,
                                             "underlay_ip": f"198.18.0.{100 + k}",
                                             "underlay_mac": f"02:00:00:00:01:{k:02x}",
                                             "pip_pool": f"198.18.{16 * k}.0/22"})

    def allocate(index: int) -> list[dict[str, Any]]:
        with lab.api(index=index) as api:
            return [api.call("POST", "/endpoints", json={"name": f"c{index}-{i}", "network": "big",
                                                         "host": f"big{1 + i % 2}"}) for i in range(n // 2)]
    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        made = [e for part in pool.map(allocate, (1, 2)) for e in part]
    took = time.monotonic() - start
    print(f"\n{n} containers through 2 APIs in {took:.1f} s")
    assert len(made) == n
    assert len({e["ip"] for e in made}) == n and len({e["pip"] for e in made}) == n
    with lab.api(index=0) as api:
        listed = api.call("GET", "/endpoints", params={"network": "big"})
    assert len({e["ip"] for e in listed}) == len({e["pip"] for e in listed}) == len(listed) == n


def host_mastered_by_other_than(lab: cluster.Lab, index: int) -> tuple[str, int]:
    """A host whose switch is mastered by a controller other than `index`, and that controller."""
    owner = labtools.wait_for(lambda: (m := masters(lab)) and len(m) == len(lab.hosts) and m,
                              what="every switch mastered")
    for h in lab.hosts:
        if owner[h.plan.index] != index:
            return h.name, owner[h.plan.index]
    raise AssertionError(f"controller {index} masters every switch: {owner}")


def container_ip(lab: cluster.Lab, name: str) -> str:
    ip = lab.container(name).ip
    assert ip is not None
    return ip


def test_killing_a_switchs_master_moves_the_switch_and_routes_go_on(ha_lab: cluster.Lab) -> None:
    lab = ha_lab
    with lab.api() as api:
        api.call("POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
    # The agents use controller 0's API: kill another one.
    src_host, victim = host_mastered_by_other_than(lab, 0)
    others = [h.name for h in lab.hosts if h.name != src_host]
    lab.add_container("src", host=src_host, network="n")
    lab.add_container("est", host=others[0], network="n")
    fresh = [f"d{i}" for i in range(24)]
    for i, name in enumerate(fresh):
        lab.add_container(name, host=others[i % 2], network="n")
    assert labtools.ping(lab, "src", container_ip(lab, "est")).returncode == 0
    steady = lab.popen("src", ["ping", "-n", "-i", "0.05", "-w", "8", container_ip(lab, "est")],
                       stdout=subprocess.PIPE)
    ok_at: list[float] = []
    killed_at = 0.0
    for i, name in enumerate(fresh):  # every ping opens a new route: a PacketIn to the master
        if i == 4:
            pid = lab.controller_pid(victim)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
        if labtools.ping(lab, "src", container_ip(lab, name), wait=0.3).returncode == 0:
            ok_at.append(time.monotonic())
        time.sleep(0.05)
    out, _ = steady.communicate(timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(ok_at)]
    after = [t for t in ok_at if t > killed_at]
    print(f"\nkilled controller c{victim}, master of {src_host}: longest gap in new connections "
          f"{max(gaps):.2f} s; first new connection {after[0] - killed_at:.2f} s after the kill; "
          f"{len(ok_at)}/{len(fresh)} fresh destinations reached")
    sent, got = (int(x) for x in PING_STATS.search(out).groups())  # type: ignore[union-attr]
    print(f"established route during the failover: {got}/{sent} pings answered")
    assert got >= sent - 1, out  # established routes never stop
    assert after and max(gaps) < 2.0  # the target
    assert masters(lab)[lab.host(src_host).plan.index] != victim
    with lab.api() as api:
        assert len(api.call("GET", "/endpoints", params={"network": "n"})) == 2 + len(fresh)  # nothing lost


def test_a_change_through_one_api_revokes_routes_on_another_masters_switch(ha_lab: cluster.Lab) -> None:
    lab = ha_lab
    x_host, b = host_mastered_by_other_than(lab, 0)
    a = next(i for i in range(3) if i not in (0, b))  # neither the agents' controller nor x's master
    with lab.api() as api:
        for net, subnet in (("n1", "10.6.1.0/24"), ("n2", "10.6.2.0/24")):
            api.call("POST", "/networks", json={"name": net, "subnet": subnet})
        api.call("POST", "/groups", json={"name": "g", "members": ["network:n1", "network:n2"]})
    y_host = next(h.name for h in lab.hosts if h.name != x_host)
    lab.add_container("x", host=x_host, network="n1")
    lab.add_container("y", host=y_host, network="n2")
    assert labtools.ping(lab, "x", container_ip(lab, "y")).returncode == 0
    ex, ey = lab.container("x").eid, lab.container("y").eid
    assert ex is not None and ey is not None
    cookie = f"cookie={route_cookie(ex, ey).value:#x}"

    def on_x() -> list[str]:
        return [f for f in labtools.route_flows(lab, x_host) if cookie in f]
    assert on_x()
    with lab.api(index=a) as api:
        start = time.monotonic()
        api.call("DELETE", "/groups/default/g/members", params={"member": "network:n2"})
        took = time.monotonic() - start
    assert on_x() == []  # one dump, no polling: the call answered once x's master confirmed
    print(f"\ngroup change through controller c{a} revoked the route on {x_host} (master c{b}) "
          f"in {took * 1000:.0f} ms (API call included)")
    assert took < 0.2
    assert labtools.ping(lab, "x", container_ip(lab, "y"), wait=0.5).returncode != 0


# -- the lab's etcd losing members: one (quorum kept), two (quorum lost), and back ---------------


def etcd_members(lab: cluster.Lab) -> list[tuple[int, list[str]]]:
    """(pid, argv) of each of the lab's etcd members, in name order (m0, m1, m2)."""
    st = state.load(lab.name)
    assert st is not None
    pids = [st.pids[k] for k in sorted(st.pids) if k.startswith("etcd/")]
    assert len(pids) == 3, st.pids
    out = []
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            out.append((pid, [a.decode() for a in f.read().split(b"\0") if a]))
    return out


def kill_member(pid: int) -> None:
    """kill -9 an etcd member the lab started (our child: reap it)."""
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    labtools.wait_for(lambda: not procs.is_alive(pid), timeout=5, what=f"etcd member {pid} gone")


def restart_member(lab: cluster.Lab, argv: list[str]) -> subprocess.Popen[bytes]:
    """The member again, on its ports and data dir (under the lab's run dir: `lab down` sweeps it),
    in the lab's control namespace (nsenter execs etcd: the pid is etcd's)."""
    data_dir = argv[argv.index("--data-dir") + 1]
    with open(f"{data_dir}.restart.log", "ab") as log:
        return subprocess.Popen(procs.in_netns(plan.control_netns(lab.name), argv), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def post_network(lab: cluster.Lab, name: str, subnet: str, index: int = 0) -> httpx.Response:
    with lab.api(index=index) as api:
        return api.http.post("/networks", json={"name": name, "subnet": subnet})


class QuorumLossNot503(AssertionError):
    """An API call without etcd quorum answered something else than 503."""


# Without quorum every API call must answer 503 with the store's message.  (A failover of the
# shared etcd client used to cancel other calls in flight and turn them into 500s; EtcdKV.call
# now treats that cancellation as an unavailable member.)
def test_losing_etcd_members_one_then_quorum_and_recovering(ha_lab: cluster.Lab) -> None:
    lab = ha_lab

    def reaches(name: str) -> bool:
        return labtools.ping(lab, "a", container_ip(lab, name), wait=0.5).returncode == 0
    with lab.api() as api:
        api.call("POST", "/networks", json={"name": "n", "subnet": "10.7.0.0/24"})
    names = [h.name for h in lab.hosts]
    lab.add_container("a", host=names[0], network="n")
    lab.add_container("b", host=names[1], network="n")
    fresh = [f"f{i}" for i in range(3)]
    for i, name in enumerate(fresh):
        lab.add_container(name, host=names[1 + i % 2], network="n")
    assert labtools.ping(lab, "a", container_ip(lab, "b")).returncode == 0  # the established route
    members = etcd_members(lab)
    for _, argv in members:  # etcd wants a certificate from clients and peers
        assert {"--client-cert-auth", "--peer-client-cert-auth"} <= set(argv), argv
    restarted: list[subprocess.Popen[bytes]] = []
    try:
        # One member of three gone (the first endpoint: every client fails over): all goes on.
        kill_member(members[0][0])
        start = time.monotonic()
        labtools.wait_for(lambda: reaches(fresh[0]), timeout=DEADLINE,
                          what="a new connection with one etcd member down")
        took = time.monotonic() - start
        for i in range(3):
            reply = post_network(lab, f"one-down{i}", f"10.7.{10 + i}.0/24", index=i)
            assert reply.status_code == 201, reply.text
        print(f"\none etcd member down: a new connection after {took:.2f} s; writes through every API")

        # A second member gone: no quorum.  The API says so; forwarding goes on.  (The route is kept
        # in use: the 503s take 15-30 s, and an unused route would idle out meanwhile, by design.)
        steady = lab.popen("a", ["ping", "-n", "-i", "0.2", container_ip(lab, "b")], stdout=subprocess.PIPE)
        kill_member(members[1][0])
        replies = [post_network(lab, f"no-quorum{i}", f"10.7.{20 + i}.0/24", index=i) for i in range(3)]
        steady.send_signal(signal.SIGINT)  # ping prints its statistics and exits
        out, _ = steady.communicate(timeout=10)
        sent, got = (int(x) for x in PING_STATS.search(out).groups())  # type: ignore[union-attr]
        print(f"established route without quorum: {got}/{sent} pings answered")
        assert got >= sent - 1, out
        assert labtools.ping(lab, "a", container_ip(lab, "b"), count=5, interval=0.1).returncode == 0

        # The members back: the API recovers by itself.
        start = time.monotonic()
        restarted = [restart_member(lab, argv) for _, argv in members[:2]]
        recovered = labtools.wait_for(
            lambda: post_network(lab, "back", "10.7.30.0/24").status_code in (201, 409),
            timeout=30, what="the API writing again after quorum came back")
        took = time.monotonic() - start
        assert recovered
        labtools.wait_for(lambda: len(masters(lab)) == len(lab.hosts), timeout=DEADLINE,
                          what="every switch mastered again")
        labtools.wait_for(lambda: reaches(fresh[1]), timeout=DEADLINE,
                          what="a new connection after quorum came back")
        print(f"quorum back: the API wrote again {took:.2f} s after the members restarted")
        with lab.api(index=2) as api:
            listed = {n["name"] for n in api.call("GET", "/networks")}
        assert {"n", "back", *(f"one-down{i}" for i in range(3))} <= listed
    finally:
        for proc in restarted:  # `lab down` stops them too; reap ours
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
    # Checked last, so that a known store bug (above) does not hide the recovery checks before it.
    print(f"quorum lost: the APIs answered {[r.status_code for r in replies]}")
    for reply in replies:
        if reply.status_code != 503:
            raise QuorumLossNot503(f"{reply.status_code}: {reply.text}")
        message = reply.json()["error"]
        assert "store" in message and ("quorum" in message or "no etcd member" in message), message
    print(f"quorum lost: {message!r}")
