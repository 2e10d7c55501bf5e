"""The etcd store as several controllers use it: concurrent allocation, the watch,
reconnecting, and a 3-member cluster losing members (real etcd-server processes)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import threading
from collections.abc import Callable
from typing import Any

import pytest

from daolinet.errors import SystemFailure
from daolinet.model.objects import Endpoint, Host
from daolinet.model.view import Change
from daolinet.store import EtcdStore, Store
from daolinet.testing.etcd import EtcdCluster
from daolinet.testing.etcd_fixtures import etcd_factory, etcd_server

pytestmark = pytest.mark.integration
__all__ = ["etcd_factory", "etcd_server"]  # fixtures, used by name

Factory = Callable[[int], EtcdCluster]
Opener = Callable[..., EtcdStore]  # a new store on one cluster and prefix (over TLS: cluster.open_store)
DEADLINE = 30.0  # seconds any one wait below may take before the test fails


def host(n: int, pool: str) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=pool)


def new_prefix() -> str:
    return "c" + secrets.token_hex(6)


def recorder(store: Store) -> list[Change]:
    seen: list[Change] = []
    store.subscribe(seen.append)
    return seen


def opener(cluster: EtcdCluster, prefix: str = "") -> Opener:
    return functools.partial(cluster.open_store, prefix)


async def prepare(open_store: Opener) -> int:
    """Network default/web (a /22: 1021 addresses), hosts h1 and h2 (a /23 pool each); its revision."""
    async with open_store() as store:
        await store.create_network("default", "web", "10.0.0.0/22")
        await store.register_host(host(1, "198.18.2.0/23"))
        await store.register_host(host(2, "198.18.4.0/23"))
        return (await store.snapshot())[0]


def assert_no_address_twice(made: list[Endpoint], listed: list[Endpoint]) -> None:
    for field in ("id", "ip", "pip", "mac", "name"):
        values = [getattr(e, field) for e in made]
        assert len(set(values)) == len(values), f"{field} handed out twice"
    assert sorted(made, key=lambda e: e.id) == listed  # the store holds exactly what was handed out
    for e in made:
        assert e.pip.startswith("198.18.2." if e.host == "h1" else "198.18.4.") or \
            e.pip.startswith("198.18.3." if e.host == "h1" else "198.18.5.")


async def allocate(open_store: Opener, who: str, count: int,
                   start: Callable[[], Any]) -> tuple[list[Endpoint], int]:
    async with open_store() as store:
        await store.list_hosts()  # connected before the start line
        await start()
        made = [await store.create_endpoint("default", "web", f"{who}{i}", f"h{1 + i % 2}")
                for i in range(count)]
        return made, store.conflicts


# -- allocation ------------------------------------------------------------------------------------


def test_two_stores_in_two_threads_allocate_1000_endpoints_without_sharing_an_address(
        etcd_server: EtcdCluster) -> None:
    new_store = opener(etcd_server, new_prefix())
    base = asyncio.run(prepare(new_store))
    barrier = threading.Barrier(2)
    results: dict[str, tuple[list[Endpoint], int]] = {}
    errors: list[BaseException] = []

    async def at_start() -> None:
        await asyncio.to_thread(barrier.wait, DEADLINE)

    def worker(who: str) -> None:
        try:
            results[who] = asyncio.run(allocate(new_store, who, 500, at_start))
        except BaseException as e:  # noqa: BLE001 -- re-raised by the test thread below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    made = results["x"][0] + results["y"][0]
    conflicts = results["x"][1] + results["y"][1]

    async def check() -> None:
        async with new_store() as store:
            assert_no_address_twice(made, await store.list_endpoints())
            log = await store.changes_since(base)
            assert [c.rev for c in log] == list(range(base + 1, base + 1001))  # one revision each, no gaps
            assert sorted((c.obj for c in log), key=lambda e: e.id) == sorted(made, key=lambda e: e.id)
    asyncio.run(check())
    print(f"1000 endpoints by two stores: {conflicts} writes lost a race and were run again")


async def test_two_stores_as_two_tasks_never_hand_out_an_address_twice(etcd_server: EtcdCluster) -> None:
    new_store = opener(etcd_server, new_prefix())
    await prepare(new_store)
    go = asyncio.Event()

    async def at_start() -> None:
        await go.wait()

    tasks = [asyncio.create_task(allocate(new_store, who, 150, at_start)) for who in ("x", "y")]
    go.set()
    (made_x, lost_x), (made_y, lost_y) = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE * 4)
    async with new_store() as store:
        assert_no_address_twice(made_x + made_y, await store.list_endpoints())
    assert lost_x + lost_y > 0  # they did race: the retry path ran


# -- the watch ----------------------------------------------------------------------------------------


async def follow(store: Store, from_rev: int, into: asyncio.Queue[Change]) -> None:
    async with contextlib.aclosing(store.watch_changes(from_rev)) as changes:
        async for change in changes:
            await into.put(change)


async def follow_resuming(store: Store, from_rev: int, into: asyncio.Queue[Change],
                          back: asyncio.Event) -> None:
    """follow(), as a controller would: after a store failure, wait until `back` and go on."""
    rev = from_rev
    while True:
        try:
            async with contextlib.aclosing(store.watch_changes(rev)) as changes:
                async for change in changes:
                    rev = change.rev
                    await into.put(change)
        except SystemFailure:
            await back.wait()


async def collect(queue: asyncio.Queue[Change], until_rev: int) -> list[Change]:
    got: list[Change] = []
    while not got or got[-1].rev < until_rev:
        got.append(await asyncio.wait_for(queue.get(), DEADLINE))
    return got


async def mixed_writes(a: Store, b: Store, first: int, n: int) -> None:
    for i in range(first, first + n):
        e = await a.create_endpoint("default", "web", f"w{i}", "h1")
        await b.heartbeat("h1", float(i))
        await a.update_endpoint(e.id, port=f"p{i}", ofport=i + 1)
        await b.set_pair_rule("default", f"w{i}", "other", "connect")
        if i % 3 == 0:
            await b.move_endpoint(e.id, "h2")
            await a.delete_endpoint(e.id)


async def test_a_watch_on_one_store_sees_every_writer_in_revision_order(etcd_server: EtcdCluster) -> None:
    new_store = opener(etcd_server, new_prefix())
    await prepare(new_store)
    a, b = new_store(), new_store()
    rev0, _ = await b.snapshot()
    live: asyncio.Queue[Change] = asyncio.Queue()
    watcher = asyncio.create_task(follow(b, rev0, live))
    by_a, by_b = recorder(a), recorder(b)
    await mixed_writes(a, b, 0, 6)
    mid, _ = await a.snapshot()
    late: asyncio.Queue[Change] = asyncio.Queue()
    catching_up = asyncio.create_task(follow(a, rev0, late))  # starts in the past: the log, then live
    caught = await collect(late, mid)
    await mixed_writes(a, b, 6, 4)
    end, _ = await a.snapshot()
    expected = sorted(by_a + by_b, key=lambda c: c.rev)
    assert [c.rev for c in expected] == list(range(rev0 + 1, end + 1))
    assert await collect(live, end) == expected  # every writer's Changes, in order, each once
    caught += await collect(late, end)
    old_beats = [c.rev for c in expected if isinstance(c.obj, Host) and c.rev <= mid][:-1]
    assert caught == [c for c in expected if c.rev not in old_beats]  # the log keeps a host's last beat
    for task in (watcher, catching_up):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert live.empty() and late.empty()
    await a.close()
    await b.close()


# -- failures -------------------------------------------------------------------------------------------


async def test_data_and_watches_survive_an_etcd_restart(etcd_factory: Factory) -> None:
    cluster = etcd_factory(1)
    new_store = opener(cluster, "site")
    await prepare(new_store)
    a, b = new_store(), new_store()
    before = await a.create_endpoint("default", "web", "before", "h1")
    rev0, _ = await b.snapshot()
    queue: asyncio.Queue[Change] = asyncio.Queue()
    back = asyncio.Event()
    watcher = asyncio.create_task(follow_resuming(b, rev0, queue, back))
    await a.update_endpoint(before.id, ofport=3)
    await collect(queue, rev0 + 1)
    cluster.kill(0)  # kill -9
    with pytest.raises(SystemFailure, match="no etcd member answers"):
        await a.create_endpoint("default", "web", "during", "h1")
    await asyncio.to_thread(cluster.start_member, 0)
    back.set()
    after = await a.create_endpoint("default", "web", "after", "h1")  # the same store object goes on
    assert after.id == before.id + 1
    assert [c.obj for c in await collect(queue, rev0 + 2)] == [after]
    c = new_store()
    assert await c.snapshot() == await a.snapshot()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    for store in (a, b, c):
        await store.close()


async def test_a_three_member_cluster_survives_losing_one_and_recovers_quorum(etcd_factory: Factory) -> None:
    cluster = etcd_factory(3)
    new_store = opener(cluster)
    await prepare(new_store)
    a, b = new_store(timeout=1.0), new_store(timeout=1.0)
    rev0, _ = await b.snapshot()
    queue: asyncio.Queue[Change] = asyncio.Queue()
    watcher = asyncio.create_task(follow(b, rev0, queue))
    made = [await a.create_endpoint("default", "web", f"e{i}", "h1") for i in range(5)]
    used = cluster.endpoints.index(a._kv.endpoint)
    cluster.kill(used)  # the member store a talks to
    made += [await a.create_endpoint("default", "web", f"e{i}", "h2") for i in range(5, 10)]
    assert a._kv.endpoint != cluster.endpoints[used]
    assert [c.obj for c in await collect(queue, rev0 + 10)] == made  # the watch moved on too
    other = next(i for i in range(3) if i != used and cluster.members[i].running)
    cluster.kill(other)  # quorum lost
    with pytest.raises(SystemFailure, match=r"timed out|no etcd member answers"):
        await a.create_endpoint("default", "web", "lost", "h1")
    await asyncio.to_thread(cluster.start_member, used)  # quorum back: the store recovers by itself
    made.append(await a.create_endpoint("default", "web", "back", "h1"))
    await asyncio.to_thread(cluster.start_member, other)
    async with new_store() as fresh:
        assert await fresh.list_endpoints() == sorted(made, key=lambda e: e.id)
        assert [c.obj for c in await fresh.changes_since(rev0)] == made
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError, SystemFailure):
        await watcher
    await a.close()
    await b.close()


def test_the_etcd_fixture_leaves_nothing_behind_even_when_a_test_fails(tmp_path: Any) -> None:
    from daolinet.system.procs import is_alive
    with pytest.raises(RuntimeError, match="a failing test"), EtcdCluster(tmp_path, size=3) as cluster:
        pids = [m.proc.pid for m in cluster.members if m.proc is not None]
        assert len(pids) == 3 and all(is_alive(p) for p in pids)
        raise RuntimeError("a failing test")
    assert not any(is_alive(p) for p in pids)
    assert not cluster.dir.exists() and list(tmp_path.iterdir()) == []
