"""What only the etcd store has (a real etcd-server): its URLs, its operation limit,
and port mappings answered as SQLite answers them, call for call.  Everything
both backends share runs on both in tests/unit/test_store.py and
test_store_policy.py (store_backends); clusters and TLS are in
test_store_etcd_cluster.py and test_store_etcd_tls.py."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from daolinet.errors import Conflict, DaoliError, InvalidInput, SystemFailure
from daolinet.model.objects import Host
from daolinet.store import EtcdStore, SqliteStore, Store, open_store
from daolinet.testing.etcd import EtcdCluster
from daolinet.testing.etcd_fixtures import etcd_server

pytestmark = pytest.mark.integration
__all__ = ["etcd_server"]  # a fixture, used by name


def host(n: int) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=f"198.18.{n}.0/24")


@pytest.fixture
async def store(etcd_server: EtcdCluster) -> AsyncIterator[EtcdStore]:
    """An etcd store with a key prefix nobody else uses."""
    s = etcd_server.open_store("t" + secrets.token_hex(6))
    yield s
    await s.close()


# -- URLs and limits -----------------------------------------------------------------------------


def test_open_store_understands_etcd_urls() -> None:
    store = open_store("etcd://127.0.0.1:2379,[::1]:2380,etcd.example/site-b/x")
    assert isinstance(store, EtcdStore)
    assert store._kv.endpoints == [("127.0.0.1", 2379), ("::1", 2380), ("etcd.example", 2379)]
    assert store._keys.prefix == "/site-b/x/"
    assert open_store("etcd://h1")._keys.prefix == "/daolinet/"  # type: ignore[attr-defined]
    for url in ("etcd://", "etcd://h1:0", "etcd://h1:99999", "etcd://h1,/x", "etcd://h1/a b", "etcd://h_1"):
        with pytest.raises(InvalidInput, match="unsupported store URL"):
            open_store(url)


async def test_a_write_over_etcds_operation_limit_is_refused_whole(store: EtcdStore) -> None:
    """Deviation from SQLite: one write may touch at most --max-txn-ops keys (128 by default);
    clearing 70 pair rules of one container touches 140 and is refused, nothing changed."""
    await store.create_tenant("big")
    for i in range(70):
        await store.set_pair_rule("big", "db", f"b{i}", "connect")
    before = await store.snapshot()
    with pytest.raises(SystemFailure, match=r"too many operations .*--max-txn-ops"):
        await store.clear_pair_rules("big", "db")
    assert await store.snapshot() == before


# -- port mappings: the same calls on both backends give the same answers --------------------------


async def portmap_transcript(store: Store) -> list[Any]:
    """What every call of a port-mapping scenario answered: a value, or (error type, message)."""
    await store.register_host(host(1))
    await store.register_host(host(2))
    await store.create_network("default", "web", "10.1.0.0/24")
    await store.create_endpoint("default", "web", "a", "h1")
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.create_portmap("default", "web80", "a", "tcp", 8080, 80),
        lambda: store.create_portmap("default", "web80", "a", "tcp", 8081, 80),
        lambda: store.create_portmap("default", "other", "a", "tcp", 8080, 81),
        lambda: store.create_portmap("default", "dns", "a", "udp", 8080, 53),
        lambda: store.create_portmap("default", "far", "a", "tcp", 8080, 80, host="h2"),
        lambda: store.create_portmap("default", "x", "a", "sctp", 1, 1),
        lambda: store.create_portmap("default", "x", "a", "tcp", 0, 1),
        lambda: store.create_portmap("default", "x", "a", "tcp", 1, 65536),
        lambda: store.create_portmap("default", "X!", "a", "tcp", 1, 1),
        lambda: store.create_portmap("default", "x", "ghost", "tcp", 1, 1),
        lambda: store.create_portmap("default", "x", "a", "tcp", 1, 1, host="h9"),
        lambda: store.list_portmaps(),
        lambda: store.list_portmaps(host="h1"),
        lambda: store.list_portmaps("nobody"),
        lambda: store.get_portmap("default", "dns"),
        lambda: store.get_portmap("default", "nope"),
        lambda: store.delete_portmap("default", "dns"),
        lambda: store.delete_portmap("default", "dns"),
        lambda: store.snapshot(),
    ]
    out: list[Any] = []
    for call in calls:
        try:
            out.append(await call())
        except DaoliError as e:
            out.append((type(e), str(e)))
    try:
        await store.delete_host("h2")  # a mapping names it: kept (SQLite: a foreign key)
    except Conflict as e:
        out.append(Conflict)
        assert "refused the change" in str(e)
    return out


async def test_port_mappings_behave_as_on_sqlite(store: EtcdStore) -> None:
    async with SqliteStore.open(":memory:") as sqlite:
        expected = await portmap_transcript(sqlite)
    assert await portmap_transcript(store) == expected
    assert any(isinstance(o, tuple) and o[0] is Conflict for o in expected)
