"""The store, on both backends (store_backends: SQLite and a real etcd): validation,
allocation, the change feed and atomicity; and what only SQLite has: a file that
survives reopening, URLs, and two processes' worth of connections sharing one file
(etcd's own: tests/integration/test_store_etcd*.py)."""

from __future__ import annotations

import asyncio
import threading
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_backends import Opener, backend, etcd_server, fail_recording, open_new, opener, store

from daolinet.errors import Conflict, DaoliError, InvalidInput, NotFound
from daolinet.model.objects import Endpoint, Host
from daolinet.model.view import Change
from daolinet.store import ChangesPruned, SqliteStore, Store, open_store, rules

__all__ = ["backend", "etcd_server", "open_new", "opener", "store"]  # fixtures, used by name


def host(n: int, pool: str | None = None, **kw: object) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=pool or f"198.18.{n}.0/24", **kw)  # type: ignore[arg-type]


@pytest.fixture
async def web(store: Store) -> Store:
    """A store with network default/web (10.1.0.0/24) and hosts h1, h2."""
    await store.create_network("default", "web", "10.1.0.0/24")
    await store.register_host(host(1))
    await store.register_host(host(2))
    return store


def recorder(store: Store) -> list[Change]:
    seen: list[Change] = []
    store.subscribe(seen.append)
    return seen


# -- tenants and networks ----------------------------------------------------------------


async def test_tenants_are_unique_named_and_kept_while_they_have_networks(store: Store) -> None:
    await store.create_tenant("acme")
    with pytest.raises(Conflict, match="tenant acme already exists"):
        await store.create_tenant("acme")
    with pytest.raises(InvalidInput, match="invalid tenant name 'Acme!'"):
        await store.create_tenant("Acme!")
    await store.create_network("acme", "web", "10.1.0.0/24")
    with pytest.raises(Conflict, match="tenant acme still has networks: web"):
        await store.delete_tenant("acme")
    await store.delete_network("acme", "web")
    assert await store.delete_tenant("acme") == await store.create_tenant("acme")


async def test_default_tenant_is_implicit_others_are_not(store: Store) -> None:
    net = await store.create_network("default", "web", "10.1.0.0/24")
    assert [t.name for t in await store.list_tenants()] == ["default"]
    assert (net.gateway, net.id) == ("10.1.0.1", 1)
    with pytest.raises(NotFound, match="tenant acme not found"):
        await store.create_network("acme", "web", "10.1.0.0/24")


@pytest.mark.parametrize(("subnet", "gateway", "why"), [
    ("10.1.0.0/33", None, "is not a network"), ("10.1.0.1/24", None, "host bits set"),
    ("10.1.0.0/31", None, "between /8 and /30"), ("10.1.0.0/24", "10.1.1.1", "outside subnet"),
    ("10.1.0.0/24", "10.1.0.255", "broadcast"), ("10.1.0.0/24", "10.1.0.0", "network address"),
])
async def test_bad_subnets_and_gateways_are_refused(store: Store, subnet: str, gateway: str | None,
                                                    why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        await store.create_network("default", "web", subnet, gateway)
    assert await store.snapshot() == (0, [])


async def test_subnets_overlap_across_tenants_never_within_one(store: Store) -> None:
    await store.create_tenant("acme")
    await store.create_network("default", "web", "10.1.0.0/24")
    assert (await store.create_network("acme", "web", "10.1.0.0/24")).subnet == "10.1.0.0/24"
    overlap = r"subnet 10\.0\.0\.0/8 overlaps network web \(10\.1\.0\.0/24\) of tenant acme"
    with pytest.raises(Conflict, match=overlap):
        await store.create_network("acme", "big", "10.0.0.0/8")
    with pytest.raises(Conflict, match="network web of tenant acme already exists"):
        await store.create_network("acme", "web", "10.2.0.0/24")
    assert [n.name for n in await store.list_networks("acme")] == ["web"]


# -- endpoints: addresses ------------------------------------------------------------------


async def test_auto_addresses_skip_network_and_gateway(store: Store) -> None:
    await store.register_host(host(1, "198.18.1.0/29"))
    await store.create_network("default", "web", "10.1.0.0/29", gateway="10.1.0.2")
    ips = [(await store.create_endpoint("default", "web", f"e{i}", "h1")).ip for i in range(4)]
    assert ips == ["10.1.0.1", "10.1.0.3", "10.1.0.4", "10.1.0.5"]


async def test_explicit_ip_is_honoured_and_a_taken_one_refused(web: Store) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1", ip="10.1.0.50")
    assert a.ip == "10.1.0.50"
    with pytest.raises(Conflict, match=r"ip 10\.1\.0\.50 of network web of tenant default is already used "
                                       r"by endpoint a \(id 1\)"):
        await web.create_endpoint("default", "web", "b", "h1", ip="10.1.0.50")
    for bad, why in [("10.1.0.1", "gateway"), ("10.1.0.255", "broadcast"), ("10.2.0.9", "outside"),
                     ("10.1.0.0", "network address"), ("nope", "not an IPv4 address")]:
        with pytest.raises(InvalidInput, match=why):
            await web.create_endpoint("default", "web", "b", "h1", ip=bad)


async def test_a_slash_30_holds_one_endpoint(store: Store) -> None:
    await store.register_host(host(1))
    await store.create_network("default", "p2p", "10.9.0.0/30")
    assert (await store.create_endpoint("default", "p2p", "a", "h1")).ip == "10.9.0.2"
    with pytest.raises(Conflict, match="network p2p of tenant default has no free addresses"):
        await store.create_endpoint("default", "p2p", "b", "h1")


async def test_pips_come_from_the_host_pool(store: Store) -> None:
    await store.create_network("default", "web", "10.1.0.0/24")
    await store.register_host(host(1, "198.18.0.0/29"))  # holds its own underlay ip 198.18.0.1
    pips = [(await store.create_endpoint("default", "web", f"e{i}", "h1")).pip for i in range(5)]
    assert pips == [f"198.18.0.{n}" for n in range(2, 7)]
    with pytest.raises(Conflict, match=r"host h1 has no free addresses in its pip_pool 198.18.0.0/29"):
        await store.create_endpoint("default", "web", "e5", "h1")


async def test_delete_releases_id_ip_and_pip_for_reuse(web: Store) -> None:
    made = [await web.create_endpoint("default", "web", f"e{i}", "h1") for i in range(3)]
    gone = await web.delete_endpoint(made[1].id)
    assert gone == made[1]
    again = await web.create_endpoint("default", "web", "new", "h1")
    assert (again.id, again.ip, again.pip, again.mac) == (gone.id, gone.ip, gone.pip, gone.mac)
    with pytest.raises(NotFound, match=f"endpoint {made[1].id + 10} not found"):
        await web.delete_endpoint(made[1].id + 10)


async def test_macs_are_derived_from_ids_or_checked(web: Store) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    assert a.mac == "02:d1:00:00:00:01"
    b = await web.create_endpoint("default", "web", "b", "h1", mac="0A:00:00:00:00:0B")
    assert b.mac == "0a:00:00:00:00:0b"
    with pytest.raises(InvalidInput, match="multicast"):
        await web.create_endpoint("default", "web", "c", "h1", mac="01:00:00:00:00:01")


async def test_names_are_unique_per_tenant_and_unknowns_are_not_found(web: Store) -> None:
    await web.create_tenant("acme")
    await web.create_network("acme", "web", "10.1.0.0/24")
    a = await web.create_endpoint("default", "web", "a", "h1", labels={"app": "shop"})
    b = await web.create_endpoint("acme", "web", "a", "h1")
    assert (a.ip, b.ip) == ("10.1.0.2", "10.1.0.2") and a.labels == {"app": "shop"}
    with pytest.raises(Conflict, match="endpoint a of tenant acme already exists"):
        await web.create_endpoint("acme", "web", "a", "h2")
    assert await web.find_endpoint("acme", "a") == b
    for args, what in [(("nope", "web", "x", "h1"), "tenant nope not found"),
                       (("acme", "db", "x", "h1"), "network db of tenant acme not found"),
                       (("acme", "web", "x", "h9"), "host h9 not found")]:
        with pytest.raises(NotFound, match=what):
            await web.create_endpoint(*args)


async def test_update_sets_only_what_is_given(web: Store) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    assert (a.port, a.ofport) == ("", None)
    a = await web.update_endpoint(a.id, port="dl1a")
    a = await web.update_endpoint(a.id, ofport=7)
    assert (await web.get_endpoint(a.id)).port == "dl1a" and a.ofport == 7
    with pytest.raises(InvalidInput, match="ofport"):
        await web.update_endpoint(a.id, ofport=0)


async def test_move_keeps_ip_and_mac_and_swaps_the_pip(web: Store) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    await web.update_endpoint(a.id, port="p", ofport=3)
    moved = await web.move_endpoint(a.id, "h2")
    assert (moved.ip, moved.mac, moved.host, moved.pip) == (a.ip, a.mac, "h2", "198.18.2.1")
    assert (moved.port, moved.ofport) == ("", None)
    assert (await web.create_endpoint("default", "web", "b", "h1")).pip == a.pip  # old PIP released
    assert [e.name for e in await web.list_endpoints(host="h2")] == ["a"]


async def test_a_move_already_plugged_there_is_one_revision(web: Store) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    await web.update_endpoint(a.id, port="p", ofport=3)
    seen = recorder(web)
    moved = await web.move_endpoint(a.id, "h2", "q", 9)
    assert (moved.host, moved.port, moved.ofport, moved.ip, moved.mac) == ("h2", "q", 9, a.ip, a.mac)
    assert [c.obj for c in seen] == [moved]  # the controller sees old and new places at once


# -- hosts -----------------------------------------------------------------------------------


async def test_register_host_is_an_idempotent_upsert(store: Store) -> None:
    seen = recorder(store)
    await store.register_host(host(1))
    await store.register_host(host(1))
    assert len(seen) == 1
    moved = await store.register_host(host(1, uplink_ofport=2))
    assert (await store.get_host("h1")) == moved and len(seen) == 2


@pytest.mark.parametrize(("other", "why"), [
    (Host("h2", 1, "198.18.0.2", "02:00:00:00:00:02", "198.18.2.0/24"), "dpid 0x0000000000000001"),
    (Host("h2", 2, "198.18.0.1", "02:00:00:00:00:02", "198.18.2.0/24"), "underlay_ip 198.18.0.1"),
    (Host("h2", 2, "198.18.0.2", "02:00:00:00:00:02", "198.18.1.128/25"), "overlaps the pool 198.18.1.0/24"),
])
async def test_hosts_do_not_share_dpid_underlay_ip_or_pool(store: Store, other: Host, why: str) -> None:
    await store.register_host(host(1))
    with pytest.raises(Conflict, match=why):
        await store.register_host(other)
    assert [h.name for h in await store.list_hosts()] == ["h1"]


async def test_a_host_keeps_its_endpoints_and_their_pips(web: Store) -> None:
    await web.create_endpoint("default", "web", "a", "h1")
    with pytest.raises(Conflict, match="host h1 still has endpoints: a"):
        await web.delete_host("h1")
    with pytest.raises(Conflict, match=r"does not hold the PIP 198.18.1.1"):
        await web.register_host(host(1, "198.18.9.0/24"))
    with pytest.raises(Conflict, match="network web of tenant default is still used by endpoints: a"):
        await web.delete_network("default", "web")


async def test_heartbeats_reach_subscribers_but_only_the_last_stays_logged(web: Store) -> None:
    seen = recorder(web)
    rev, _ = await web.snapshot()
    for t in (10.0, 11.0, 12.0):
        await web.heartbeat("h1", t)
    assert [c.obj.last_seen for c in seen] == [10.0, 11.0, 12.0]  # type: ignore[union-attr]
    assert await web.changes_since(rev) == seen[-1:]
    assert (await web.get_host("h1")).last_seen == 12.0
    assert (await web.register_host(host(1))).last_seen == 12.0  # re-registering keeps the clock
    with pytest.raises(NotFound, match="host h7 not found"):
        await web.heartbeat("h7", 1.0)


# -- the change feed -------------------------------------------------------------------------


async def test_changes_come_in_order_and_match_the_log(web: Store) -> None:
    rev, _ = await web.snapshot()
    seen = recorder(web)
    a = await web.create_endpoint("default", "web", "a", "h1")
    a2 = await web.update_endpoint(a.id, ofport=5)
    await web.delete_endpoint(a.id)
    assert [(c.obj, c.deleted) for c in seen] == [(a, False), (a2, False), (a2, True)]
    assert [c.rev for c in seen] == [rev + 1, rev + 2, rev + 3]
    assert await web.changes_since(rev) == seen
    with pytest.raises(InvalidInput, match="ahead of store"):
        await web.changes_since(rev + 4)


async def test_revisions_and_the_log_survive_reopening_a_file(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    first = SqliteStore.open(path)
    seen = recorder(first)
    await first.register_host(host(1))
    await first.create_network("default", "web", "10.1.0.0/24")
    await first.create_endpoint("default", "web", "a", "h1")
    before = await first.snapshot()
    await first.close()
    second = open_store(f"sqlite://{path}")
    assert await second.snapshot() == before
    assert await second.changes_since(0) == seen
    later = recorder(second)
    await second.create_tenant("acme")
    assert later[0].rev == seen[-1].rev + 1
    await second.close()


async def test_the_log_is_trimmed_and_says_so(open_new: Opener) -> None:
    store = open_new(keep_changes=5, prune_every=4)
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


def test_open_store_understands_sqlite_urls_only(tmp_path: Path) -> None:
    for good in ("sqlite://:memory:", f"sqlite://{tmp_path}/x.db"):
        store = open_store(good)
        assert isinstance(store, SqliteStore)
        asyncio.run(store.close())
    assert (tmp_path / "x.db").exists()
    for url in ("etcd://", "etcd://h1:port", "sqlite://relative.db", "sqlite:///", "/tmp/x.db"):
        with pytest.raises(InvalidInput, match="unsupported store URL"):
            open_store(url)


# -- atomicity -------------------------------------------------------------------------------


async def test_a_failed_create_leaves_no_row_and_no_change(store: Store) -> None:
    await store.create_network("default", "web", "10.1.0.0/24")
    await store.register_host(host(1, "198.18.1.0/30"))
    await store.create_endpoint("default", "web", "a", "h1")
    await store.create_endpoint("default", "web", "b", "h1")
    before = await store.snapshot()
    seen = recorder(store)
    with pytest.raises(Conflict, match="no free addresses in its pip_pool"):  # fails after the IP was chosen
        await store.create_endpoint("default", "web", "c", "h1", ip="10.1.0.9")
    assert await store.snapshot() == before and seen == []
    assert await store.list_endpoints(network="web") == [e for e in before[1] if isinstance(e, Endpoint)]


async def test_a_failure_mid_transaction_undoes_what_was_written(store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen = recorder(store)
    fail_recording(monkeypatch, lambda obj: type(obj).__name__ == "Network")
    with pytest.raises(RuntimeError):
        await store.create_network("default", "web", "10.1.0.0/24")  # the implicit tenant came first
    assert await store.snapshot() == (0, []) and seen == []


LAST_LINE = {  # backend -> what refuses a PIP the rules let through twice
    "sqlite": "refused the change: UNIQUE constraint failed: endpoints.pip",
    "etcd": r"refused the change: /t\w+/claim/pip/c6120101 is already claimed by /t\w+/endpoint/00000001",
}


async def test_unique_constraints_are_the_last_line_of_defence(web: Store, backend: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    before = await web.snapshot()
    monkeypatch.setattr(rules, "free_pip", lambda host, used: IPv4Address(a.pip))
    with pytest.raises(Conflict, match=LAST_LINE[backend]):
        await web.create_endpoint("default", "web", "b", "h1")
    assert await web.snapshot() == before


# -- properties and concurrency ---------------------------------------------------------------

NETS = {"a": IPv4Network("10.1.0.0/30"), "b": IPv4Network("10.2.0.0/28")}  # small: they run out
POOLS = {"h1": IPv4Network("198.18.1.0/28"), "h2": IPv4Network("198.18.2.0/30")}
IP_OFFSET = st.one_of(st.none(), st.none(), st.none(), st.integers(0, 16))  # mostly automatic
CREATE = st.tuples(st.just("create"), st.sampled_from(sorted(NETS)), st.sampled_from(sorted(POOLS)),
                   IP_OFFSET)
DELETE = st.tuples(st.just("delete"), st.integers(0, 30))
Op = tuple[Any, ...]
OPS = st.lists(st.one_of(CREATE, CREATE, DELETE), min_size=12, max_size=40)


def expected_error(live: list[Endpoint], net: str, host: str, ip: str | None) -> type[DaoliError] | None:
    """What a correct store answers to this create, worked out the slow, obvious way."""
    subnet = NETS[net]
    unusable = (subnet.network_address, subnet.network_address + 1, subnet.broadcast_address)
    if ip is not None and (IPv4Address(ip) not in subnet or IPv4Address(ip) in unusable):
        return InvalidInput
    if ip is not None and any(e.network == net and e.ip == ip for e in live):
        return Conflict
    if ip is None and sum(e.network == net for e in live) >= subnet.num_addresses - 3:
        return Conflict
    if sum(e.host == host for e in live) >= POOLS[host].num_addresses - 2:
        return Conflict
    return None


def check_invariants(endpoints: list[Endpoint]) -> None:
    ids = [e.id for e in endpoints]
    assert len(set(ids)) == len(ids) and all(1 <= i < 2**24 for i in ids)
    assert len({(e.tenant, e.ip) for e in endpoints}) == len(endpoints)
    assert len({e.pip for e in endpoints}) == len(endpoints)
    for e in endpoints:
        net, ip = NETS[e.network], IPv4Address(e.ip)
        assert ip in net and ip not in (net.network_address, net.broadcast_address, net.network_address + 1)
        assert IPv4Address(e.pip) in POOLS[e.host]


async def create_as_expected(store: Store, live: list[Endpoint], op: Op, name: str) -> None:
    _, net, on, offset = op
    ip = None if offset is None else str(NETS[net].network_address + offset)
    want = expected_error(live, net, on, ip)
    try:
        made = await store.create_endpoint("default", net, name, on, ip=ip)
    except DaoliError as e:
        assert type(e) is want, f"{op}: got {e!r}, expected {want}"
        return
    assert want is None, f"{op}: created {made}, expected {want}"
    assert made.id == min(set(range(1, len(live) + 2)) - {e.id for e in live})  # smallest free id


async def run_ops(opener: Opener, ops: list[Op]) -> None:
    async with opener() as store:
        for name, subnet in NETS.items():
            await store.create_network("default", name, str(subnet))
        for n, pool in enumerate(POOLS.values(), start=1):
            await store.register_host(host(n, str(pool)))
        for i, op in enumerate(ops):
            live = await store.list_endpoints()
            if op[0] == "create":
                await create_as_expected(store, live, op, f"e{i}")
            elif live:
                await store.delete_endpoint(live[op[1] % len(live)].id)
            check_invariants(await store.list_endpoints())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(OPS)
def test_random_creates_and_deletes_never_hand_out_an_address_twice(opener: Opener, ops: list[Op]) -> None:
    asyncio.run(run_ops(opener, ops))


def test_two_connections_on_one_file_never_share_an_address(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    setup = SqliteStore.open(path)
    asyncio.run(setup.create_network("default", "web", "10.1.0.0/24"))
    asyncio.run(setup.register_host(host(1)))
    asyncio.run(setup.close())
    start = threading.Barrier(2)
    made: dict[str, list[Endpoint]] = {}
    errors: list[BaseException] = []

    async def allocate(who: str) -> None:
        store = SqliteStore.open(path)
        start.wait()
        made[who] = [await store.create_endpoint("default", "web", f"{who}{i}", "h1") for i in range(60)]
        await store.close()

    def worker(who: str) -> None:
        try:
            asyncio.run(allocate(who))
        except BaseException as e:  # noqa: BLE001 -- re-raised in the test thread below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    everyone = made["x"] + made["y"]
    for field in ("ip", "pip", "id", "mac"):
        assert len({getattr(e, field) for e in everyone}) == 120, field
    assert len(asyncio.run(list_all(path))) == 120  # the file agrees with what was handed out


async def list_all(path: str) -> list[Endpoint]:
    async with SqliteStore.open(path) as store:
        return await store.list_endpoints()


async def test_endpoint_objects_round_trip_every_field(web: Store) -> None:
    made = await web.create_endpoint("default", "web", "a", "h1", labels={"k": "v"})
    await web.update_endpoint(made.id, port="p1", ofport=9)
    got = await web.get_endpoint(made.id)
    assert (got.port, got.ofport, got.labels) == ("p1", 9, {"k": "v"})
