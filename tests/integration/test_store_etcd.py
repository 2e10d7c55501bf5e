"""The store test-suites of SQLite, run again on the etcd backend (a real etcd-server).

Every test of tests/unit/test_store_sqlite.py and test_store_policy.py that
speaks only the `Store` interface runs here against an `EtcdStore` with a key
prefix of its own on one etcd member per module: same results, same errors,
same messages, same Changes and revisions.  The few that poke at SQLite itself
(files, its transaction class, its connection count) are listed in SQLITE_ONLY
and have etcd counterparts below.
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from daolinet.errors import Conflict, DaoliError, InvalidInput, SystemFailure
from daolinet.model.objects import Endpoint, Tenant
from daolinet.model.view import View
from daolinet.store import ChangesPruned, EtcdStore, SqliteStore, Store, open_store
from daolinet.store.etcd_tx import EtcdTx
from daolinet.testing.etcd import EtcdCluster
from daolinet.testing.etcd_fixtures import etcd_server

pytestmark = pytest.mark.integration
__all__ = ["etcd_server"]  # a fixture, used by name

SQLITE_ONLY = {  # test -> why it cannot run on etcd as written (its etcd counterpart is below)
    "test_revisions_and_the_log_survive_reopening_a_file": "reopens a SQLite file",
    "test_the_log_is_trimmed_and_says_so": "SqliteStore.open(keep_changes=...)",
    "test_open_store_understands_sqlite_urls_only": "SQLite URLs",
    "test_a_failure_mid_transaction_undoes_what_was_written": "patches SQLite's Tx",
    "test_unique_constraints_are_the_last_line_of_defence": "SQLite's UNIQUE constraints",
    "test_random_creates_and_deletes_never_hand_out_an_address_twice": "opens SQLite stores",
    "test_two_connections_on_one_file_never_share_an_address": "two SQLite connections",
    "test_a_failed_tenant_delete_keeps_its_policy": "patches SQLite's Tx",
    "test_policy_survives_reopening_a_file_and_replays_from_the_log": "reopens a SQLite file",
}


def _load(name: str) -> ModuleType:
    """A private copy of a unit test module (its own name, so pytest's copy is left alone)."""
    path = Path(__file__).resolve().parents[1] / "unit" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_etcd_suite_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sqlite_suite = _load("test_store_sqlite")
policy_suite = _load("test_store_policy")
host, recorder, sha, populate, fields = (sqlite_suite.host, sqlite_suite.recorder, policy_suite.sha,
                                          policy_suite.populate, policy_suite.fields)
for _suite in (sqlite_suite, policy_suite):
    for _name, _obj in vars(_suite).items():
        if _name.startswith("test_") and callable(_obj) and _name not in SQLITE_ONLY:
            globals()[_name] = _obj
web, acme = sqlite_suite.web, policy_suite.acme  # fixtures: they build on `store` below


def new_prefix() -> str:
    return "t" + secrets.token_hex(6)


@pytest.fixture
async def store(etcd_server: EtcdCluster) -> AsyncIterator[EtcdStore]:
    """An etcd store with a key prefix nobody else uses."""
    s = etcd_server.open_store(new_prefix())
    yield s
    await s.close()


def test_every_shared_test_is_collected() -> None:
    shared = {n for s in (sqlite_suite, policy_suite) for n in vars(s) if n.startswith("test_")}
    assert SQLITE_ONLY.keys() <= shared, SQLITE_ONLY.keys() - shared
    assert all(n in globals() for n in shared - SQLITE_ONLY.keys())
    assert len(shared - SQLITE_ONLY.keys()) >= 30  # a guard against silently running nothing


# -- etcd counterparts of the SQLite-only tests ---------------------------------------------------


def test_open_store_understands_etcd_urls() -> None:
    store = open_store("etcd://127.0.0.1:2379,[::1]:2380,etcd.example/site-b/x")
    assert isinstance(store, EtcdStore)
    assert store._kv.endpoints == [("127.0.0.1", 2379), ("::1", 2380), ("etcd.example", 2379)]
    assert store._keys.prefix == "/site-b/x/"
    assert open_store("etcd://h1")._keys.prefix == "/daolinet/"  # type: ignore[attr-defined]
    for url in ("etcd://", "etcd://h1:0", "etcd://h1:99999", "etcd://h1,/x", "etcd://h1/a b", "etcd://h_1"):
        with pytest.raises(InvalidInput, match="unsupported store URL"):
            open_store(url)


async def test_the_log_is_trimmed_and_says_so(etcd_server: EtcdCluster) -> None:
    store = etcd_server.open_store(new_prefix(), keep_changes=5)
    store.PRUNE_EVERY = 4
    await store.register_host(host(1))
    for t in range(12):
        await store.create_tenant(f"t{t}")
    with pytest.raises(ChangesPruned, match="take a snapshot"):
        await store.changes_since(0)
    rev, _ = await store.snapshot()
    assert [c.rev for c in await store.changes_since(rev - 5)] == list(range(rev - 4, rev + 1))  # keeps 5
    with pytest.raises(ChangesPruned, match="take a snapshot"):
        async for _ in store.watch_changes(0):
            pass
    await store.close()


async def test_a_failure_mid_transaction_undoes_what_was_written(store: EtcdStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen = recorder(store)
    real = EtcdTx.record

    def fail_on_network(tx: EtcdTx, obj: Any, *a: Any, **kw: Any) -> None:
        if type(obj).__name__ == "Network":
            raise RuntimeError("disk on fire")
        real(tx, obj, *a, **kw)

    monkeypatch.setattr(EtcdTx, "record", fail_on_network)
    with pytest.raises(RuntimeError):
        await store.create_network("default", "web", "10.1.0.0/24")  # the implicit tenant came first
    assert await store.snapshot() == (0, []) and seen == []


async def test_a_failed_tenant_delete_keeps_its_policy(acme: EtcdStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    await populate(acme, "acme")
    for e in await acme.list_endpoints("acme"):
        await acme.delete_endpoint(e.id)
    await acme.delete_network("acme", "web")
    await acme.delete_network("acme", "db")
    real = EtcdTx.record

    def fail_on_tenant(tx: EtcdTx, obj: Any, *a: Any, **kw: Any) -> None:
        if isinstance(obj, Tenant):
            raise RuntimeError("disk on fire")
        real(tx, obj, *a, **kw)

    monkeypatch.setattr(EtcdTx, "record", fail_on_tenant)
    async with policy_suite.nothing_changes(acme):  # the rules, groups and token went first, and came back
        with pytest.raises(RuntimeError):
            await acme.delete_tenant("acme")


async def test_claims_are_the_last_line_of_defence(web: EtcdStore, monkeypatch: pytest.MonkeyPatch) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    before = await web.snapshot()

    async def same_pip(self: EtcdStore, r: object, h: object) -> IPv4Address:
        return IPv4Address(a.pip)

    monkeypatch.setattr(EtcdStore, "_free_pip", same_pip)
    with pytest.raises(Conflict, match=r"refused the change: /t\w+/claim/pip/c6120101 is already claimed by "
                                       r"/t\w+/endpoint/00000001"):
        await web.create_endpoint("default", "web", "b", "h1")
    assert await web.snapshot() == before


async def test_ids_survive_deleting_everything(store: EtcdStore) -> None:
    """Network, group, rule and token ids are never reused, as with AUTOINCREMENT."""
    await store.create_tenant("acme")
    n1 = await store.create_network("acme", "web", "10.1.0.0/24")
    g1 = await store.create_group("acme", "g")
    r1 = await store.set_pair_rule("acme", "a", "b", "connect")
    t1 = await store.create_token("ci", "acme", sha("x"), 1.0)
    await store.delete_network("acme", "web")
    await store.delete_tenant("acme")
    await store.create_tenant("acme")
    assert (await store.create_network("acme", "web", "10.1.0.0/24")).id == n1.id + 1
    assert (await store.create_group("acme", "g")).id == g1.id + 1
    assert (await store.set_pair_rule("acme", "a", "b", "connect")).id == r1.id + 1
    assert (await store.create_token("ci", "acme", sha("x"), 1.0)).id == t1.id + 1


async def test_a_big_tenant_is_deleted_in_one_transaction(store: EtcdStore) -> None:
    """Tenant-scoped keys go by prefix: etcd's limit of 128 operations per transaction is not hit."""
    await store.create_tenant("big")
    for i in range(60):
        await store.create_group("big", f"g{i}")
        await store.set_pair_rule("big", f"a{i}", f"b{i}", "connect")
    for i in range(20):
        await store.create_token(f"t{i}", "big", sha(f"big{i}"), 1.0)
    rev, _ = await store.snapshot()
    seen = recorder(store)
    await store.delete_tenant("big")
    assert len(seen) == 60 + 60 + 20 + 1 and [c.rev for c in seen] == list(range(rev + 1, rev + 142))
    assert await store.snapshot() == (rev + 141, [])
    assert await store.find_token(sha("big3")) is None


async def test_clearing_many_pair_rules_is_one_transaction(store: EtcdStore) -> None:
    await store.create_tenant("big")
    await store.create_group("big", "g")
    l4 = await store.create_l4_rule("big", "g", "g", "icmp")
    pairs = [await store.set_pair_rule("big", f"a{i}", f"b{i}", "connect") for i in range(100)]
    seen = recorder(store)
    assert await store.clear_pair_rules("big") == pairs
    assert [c.obj for c in seen] == pairs and len({c.rev for c in seen}) == 100
    assert await store.list_rules("big") == [l4] and await store.get_rule("big", l4.id) == l4
    again = await store.set_pair_rule("big", "a1", "b1", "disconnect")  # the claims went too
    assert again.id == pairs[-1].id + 1


async def test_a_write_over_etcds_operation_limit_is_refused_whole(store: EtcdStore) -> None:
    """Deviation from SQLite: one write may touch at most --max-txn-ops keys (128 by default);
    clearing 70 pair rules of one container touches 140 and is refused, nothing changed."""
    await store.create_tenant("big")
    for i in range(70):
        await store.set_pair_rule("big", "db", f"b{i}", "connect")
    async with policy_suite.nothing_changes(store):
        with pytest.raises(SystemFailure, match="too many operations .*--max-txn-ops"):
            await store.clear_pair_rules("big", "db")


# -- persistence -----------------------------------------------------------------------------------


async def fill(store: EtcdStore) -> None:
    await store.create_tenant("acme")
    await store.register_host(host(1))
    await store.create_network("acme", "web", "10.1.0.0/24", isolated=True)
    await store.create_endpoint("acme", "web", "a", "h1", labels={"tier": "web"})
    await populate(store, "acme")
    await store.add_group_member("acme", "back", "label:tier=cache")
    await store.set_pair_rule("acme", "a", "b", "connect")
    gone = await store.create_token("old", None, sha("old"), 2.0)
    await store.delete_token(gone.id)
    await store.create_token("root", None, sha("root"), 3.0)
    await store.heartbeat("h1", 7.5)


async def test_data_survives_reconnecting(etcd_server: EtcdCluster) -> None:
    url, tls = etcd_server.url(new_prefix()), etcd_server.client_tls
    first = open_store(url, etcd_tls=tls)
    seen = recorder(first)
    await fill(first)  # type: ignore[arg-type]
    before = await first.snapshot()
    await first.close()

    second = open_store(url, etcd_tls=tls)
    rev, objs = await second.snapshot()
    assert (rev, objs) == before
    assert [fields(o) for o in objs] == [fields(o) for o in before[1]]  # field types too (float, tuple, dict)
    replay = await second.changes_since(0)
    assert replay == seen and [fields(c.obj) for c in replay] == [fields(c.obj) for c in seen]
    from_snapshot, from_log = View(), View()
    from_snapshot.load(objs, rev)
    for change in replay:
        from_log.apply(change)
    assert (from_log.groups, from_log.rules, from_log.tokens) == (from_snapshot.groups, from_snapshot.rules,
                                                                  from_snapshot.tokens)
    later = recorder(second)
    again = await second.create_token("old", None, sha("old"), 4.0)
    assert again.id == 4 and later[0].rev == rev + 1  # ids and revisions go on from the cluster
    await second.close()


# -- random operations ------------------------------------------------------------------------------


async def run_ops_on(cluster: EtcdCluster, ops: list[Any]) -> None:
    async with cluster.open_store(new_prefix()) as store:
        for name, subnet in sqlite_suite.NETS.items():
            await store.create_network("default", name, str(subnet))
        for n, pool in enumerate(sqlite_suite.POOLS.values(), start=1):
            await store.register_host(host(n, str(pool)))
        for i, op in enumerate(ops):
            live = await store.list_endpoints()
            if op[0] == "create":
                await sqlite_suite.create_as_expected(store, live, op, f"e{i}")
            elif live:
                await store.delete_endpoint(live[op[1] % len(live)].id)
            sqlite_suite.check_invariants(await store.list_endpoints())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(sqlite_suite.OPS)
def test_random_creates_and_deletes_never_hand_out_an_address_twice(etcd_server: EtcdCluster,
                                                                     ops: list[Any]) -> None:
    asyncio.run(run_ops_on(etcd_server, ops))


def test_endpoint_objects_round_trip_every_field(etcd_server: EtcdCluster) -> None:
    async def run() -> Endpoint:
        async with etcd_server.open_store(new_prefix()) as store:
            await store.register_host(host(1))
            await store.create_network("default", "web", "10.1.0.0/24")
            made = await store.create_endpoint("default", "web", "a", "h1", labels={"k": "v"})
            await store.update_endpoint(made.id, port="p1", ofport=9)
            return await store.get_endpoint(made.id)
    got = asyncio.run(run())
    assert (got.port, got.ofport, got.labels) == ("p1", 9, {"k": "v"})


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
