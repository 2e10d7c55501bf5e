"""Dual-stack networks in the store, on both backends (store_backends: SQLite and a real etcd):
an endpoint of a network with a subnet6 gets both addresses and both PIPs in one transaction,
IPv6 subnets and pools overlap nothing they must not, and IPv4-only objects stay as they were.
What only SQLite has: a file made before IPv6 is upgraded in place."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_backends import Opener, backend, etcd_server, open_new, opener, store

from daolinet.errors import Conflict, InvalidInput
from daolinet.model.objects import Endpoint, Host, Network
from daolinet.store import SqliteStore, Store
from daolinet.store.codec import obj_from_json, obj_to_json
from daolinet.store.migrate import migrate

__all__ = ["backend", "etcd_server", "open_new", "opener", "store"]  # fixtures, used by name


def host(n: int, pool6: str | None = None, **kw: object) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=f"198.18.{n}.0/24", pip_pool6=f"2001:db8:0:{n}::/112" if pool6 is None else pool6,
                **kw)  # type: ignore[arg-type]


@pytest.fixture
async def dual(store: Store) -> Store:
    """default/web: 10.1.0.0/24 and fd00:1::/64; hosts h1, h2 with IPv6 PIP pools, h3 without."""
    await store.create_network("default", "web", "10.1.0.0/24", subnet6="fd00:1::/64")
    for n in (1, 2):
        await store.register_host(host(n))
    await store.register_host(host(3, pool6=""))
    return store


# -- networks ------------------------------------------------------------------------------------


async def test_a_dual_stack_network_has_gateway_1_of_both_subnets(store: Store) -> None:
    net = await store.create_network("default", "web", "10.1.0.0/24", subnet6="fd00:0001:0::/64")
    assert (net.subnet, net.gateway, net.subnet6, net.gateway6) == ("10.1.0.0/24", "10.1.0.1", "fd00:1::/64",
                                                                    "fd00:1::1")
    other = await store.create_network("default", "db", "10.2.0.0/24", subnet6="fd00:2::/64",
                                       gateway6="fd00:2::fe")
    assert other.gateway6 == "fd00:2::fe"
    assert await store.list_networks() == [other, net]


async def test_an_ipv4_network_has_no_ipv6_and_serialises_as_before(store: Store) -> None:
    net = await store.create_network("default", "web", "10.1.0.0/24")
    assert (net.subnet6, net.gateway6) == ("", "")
    assert net.to_json() == {"id": 1, "name": "web", "tenant": "default", "subnet": "10.1.0.0/24",
                             "gateway": "10.1.0.1", "isolated": False, "external": False}


@pytest.mark.parametrize(("subnet6", "gateway6", "why"), [
    ("fd00:1::", None, "must be in CIDR form, like fd00:1::/64"),
    ("10.9.0.0/24", None, "must be an IPv6 network"),
    ("fd00:1::/40", None, "must have a prefix between /48 and /120"),
    ("fd00:1::/124", None, "must have a prefix between /48 and /120"),
    ("fd00:1::5/64", None, "has host bits set"),
    ("fe80::/64", None, "is not a unicast network"),
    ("ff05::/64", None, "is not a unicast network"),
    ("fd00:da01::/64", None, "holds the resolver address fd00:da01::53"),
    ("fd00:1::/64", "fd00:2::1", "gateway6 fd00:2::1 is outside subnet fd00:1::/64"),
    ("fd00:1::/64", "fd00:1::", "subnet-router anycast address"),
    ("fd00:1::/64", "10.1.0.1", "is not an IPv6 address"),
    (None, "fd00:1::1", "gateway6 'fd00:1::1' of network web needs a subnet6"),
])
async def test_bad_ipv6_subnets_and_gateways_are_refused(store: Store, subnet6: str | None,
                                                         gateway6: str | None, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        await store.create_network("default", "web", "10.1.0.0/24", subnet6=subnet6, gateway6=gateway6)
    assert await store.snapshot() == (0, [])


async def test_ipv6_subnets_overlap_across_tenants_never_within_one(store: Store) -> None:
    await store.create_network("default", "web", "10.1.0.0/24", subnet6="fd00:1::/64")
    with pytest.raises(Conflict, match=r"subnet6 fd00:1::/96 overlaps network web \(fd00:1::/64\) "
                                       "of tenant default"):
        await store.create_network("default", "db", "10.2.0.0/24", subnet6="fd00:1::/96")
    await store.create_network("default", "db", "10.2.0.0/24", subnet6="fd00:2::/64")
    await store.create_tenant("acme")
    await store.create_network("acme", "web", "10.1.0.0/24", subnet6="fd00:1::/64")


# -- endpoints -----------------------------------------------------------------------------------


async def test_a_dual_stack_endpoint_gets_both_addresses_and_both_pips(dual: Store) -> None:
    a = await dual.create_endpoint("default", "web", "a", "h1")
    b = await dual.create_endpoint("default", "web", "b", "h1")
    assert (a.ip, a.ip6, a.pip, a.pip6) == ("10.1.0.2", "fd00:1::2", "198.18.1.1", "2001:db8:0:1::1")
    assert (b.ip6, b.pip6) == ("fd00:1::3", "2001:db8:0:1::2")
    assert await dual.get_endpoint(a.id) == a and await dual.find_endpoint("default", "b") == b
    _, objs = await dual.snapshot()
    assert [e for e in objs if isinstance(e, Endpoint)] == [a, b]


async def test_an_ipv4_endpoint_has_no_ipv6(dual: Store) -> None:
    await dual.create_network("default", "old", "10.2.0.0/24")
    e = await dual.create_endpoint("default", "old", "a", "h1")
    assert (e.ip, e.ip6, e.pip6) == ("10.2.0.2", "", "")
    assert "ip6" not in e.to_json() and "pip6" not in e.to_json()
    with pytest.raises(InvalidInput, match="ip6 'fd00:1::9': network old of tenant default has no subnet6"):
        await dual.create_endpoint("default", "old", "b", "h1", ip6="fd00:1::9")


async def test_a_requested_ip6_is_honoured_if_inside_the_subnet_and_free(dual: Store) -> None:
    a = await dual.create_endpoint("default", "web", "a", "h1", ip6="fd00:1:0:0::abcd")
    assert a.ip6 == "fd00:1::abcd"
    with pytest.raises(Conflict, match=r"ip6 fd00:1::abcd of network web of tenant default is already used "
                                       r"by endpoint a \(id 1\)"):
        await dual.create_endpoint("default", "web", "b", "h2", ip6="fd00:1::abcd")
    for bad, why in (("fd00:1::1", "ip6 fd00:1::1 is the gateway of network web"),
                     ("fd00:2::5", "ip6 fd00:2::5 is outside subnet fd00:1::/64"),
                     ("fd00:1::", "subnet-router anycast"), ("10.1.0.9", "is not an IPv6 address")):
        with pytest.raises((InvalidInput, Conflict), match=why):
            await dual.create_endpoint("default", "web", "b", "h2", ip6=bad)
    assert [e.name for e in await dual.list_endpoints()] == ["a"]


async def test_a_host_without_an_ipv6_pool_takes_no_dual_stack_endpoint(dual: Store) -> None:
    rev, _ = await dual.snapshot()
    with pytest.raises(Conflict, match="host h3 has no pip_pool6: it cannot hold endpoints of dual-stack "
                                       "network web of tenant default"):
        await dual.create_endpoint("default", "web", "a", "h3")
    assert (await dual.snapshot())[0] == rev and await dual.list_endpoints() == []


async def test_ipv6_exhaustion_refuses_the_endpoint_and_takes_nothing(store: Store) -> None:
    await store.create_network("default", "web", "10.1.0.0/23", subnet6="fd00:1::/120")
    await store.register_host(dataclasses.replace(host(1), pip_pool="198.18.2.0/23"))
    for i in range(254):  # 256 addresses, less the subnet-router anycast one and the gateway
        await store.create_endpoint("default", "web", f"e{i}", "h1")
    with pytest.raises(Conflict, match="network web of tenant default has no free IPv6 addresses"):
        await store.create_endpoint("default", "web", "last", "h1")
    assert len(await store.list_endpoints()) == 254
    await store.delete_endpoint((await store.find_endpoint("default", "e0")).id)
    last = await store.create_endpoint("default", "web", "last", "h1")  # the failed try held nothing
    assert (last.ip, last.ip6, last.pip) == ("10.1.0.2", "fd00:1::2", "198.18.2.1")


async def test_delete_frees_ip6_and_pip6_for_reuse(dual: Store) -> None:
    a = await dual.create_endpoint("default", "web", "a", "h1")
    await dual.create_endpoint("default", "web", "b", "h1")
    await dual.delete_endpoint(a.id)
    again = await dual.create_endpoint("default", "web", "c", "h1")
    assert (again.ip6, again.pip6) == (a.ip6, a.pip6)


async def test_a_move_keeps_both_addresses_and_swaps_both_pips(dual: Store) -> None:
    a = await dual.create_endpoint("default", "web", "a", "h1")
    moved = await dual.move_endpoint(a.id, "h2")
    assert (moved.ip, moved.ip6, moved.mac) == (a.ip, a.ip6, a.mac)
    assert (moved.host, moved.pip, moved.pip6) == ("h2", "198.18.2.1", "2001:db8:0:2::1")
    b = await dual.create_endpoint("default", "web", "b", "h1")
    assert b.pip6 == a.pip6  # the old PIP6 was freed by the move
    with pytest.raises(Conflict, match="host h3 has no pip_pool6"):
        await dual.move_endpoint(a.id, "h3")
    assert await dual.get_endpoint(a.id) == moved


SUBNET6 = IPv6Network("fd00:1::/120")
POOLS6 = {"h1": IPv6Network("2001:db8:0:1::/120"), "h2": IPv6Network("2001:db8:0:2::/120")}
DualOp = tuple[str, int]  # ("create" | "delete" | "move", which)
DUAL_OPS = st.lists(st.tuples(st.sampled_from(["create", "create", "delete", "move"]), st.integers(0, 50)),
                    max_size=25)


def check_dual_invariants(endpoints: list[Endpoint]) -> None:
    """Both families: unique logical addresses and PIPs, each PIP6 in its host's pool6."""
    assert len({e.ip6 for e in endpoints}) == len({e.pip6 for e in endpoints}) == len(endpoints)
    for e in endpoints:
        ip6 = IPv6Address(e.ip6)
        assert ip6 in SUBNET6 and ip6 not in (SUBNET6.network_address, SUBNET6.network_address + 1)
        assert IPv6Address(e.pip6) in POOLS6[e.host] and e.ip and e.pip


async def run_dual_ops(opener: Opener, ops: list[DualOp]) -> None:
    async with opener() as s:
        await s.create_network("default", "web", "10.1.0.0/24", subnet6=str(SUBNET6))
        for n, pool6 in enumerate(POOLS6.values(), start=1):
            await s.register_host(host(n, pool6=str(pool6)))
        for i, (kind, which) in enumerate(ops):
            live = await s.list_endpoints()
            if kind == "create":
                await s.create_endpoint("default", "web", f"e{i}", f"h{which % 2 + 1}")
            elif live and kind == "delete":
                await s.delete_endpoint(live[which % len(live)].id)
            elif live:
                e = live[which % len(live)]
                await s.move_endpoint(e.id, "h2" if e.host == "h1" else "h1")
            check_dual_invariants(await s.list_endpoints())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(DUAL_OPS)
def test_random_creates_deletes_and_moves_never_hand_out_an_ipv6_address_twice(opener: Opener,
                                                                               ops: list[DualOp]) -> None:
    asyncio.run(run_dual_ops(opener, ops))


async def test_a_dual_stack_store_migrates_with_its_ipv6_claims(dual: Store, open_new: Opener,
                                                                 tmp_path: Path) -> None:
    for name, on in (("a", "h1"), ("b", "h2"), ("c", "h1")):
        await dual.create_endpoint("default", "web", name, on)
    copy = SqliteStore.open(str(tmp_path / "copy.db"))
    dst = open_new()
    await migrate(dual, copy, batch=3)
    await migrate(copy, dst, batch=3)  # and into this backend
    assert (await dst.snapshot())[1] == (await dual.snapshot())[1]
    with pytest.raises(Conflict, match="ip6 fd00:1::3 of network web of tenant default is already used"):
        await dst.create_endpoint("default", "web", "d", "h2", ip6="fd00:1::3")
    d = await dst.create_endpoint("default", "web", "d", "h2")
    assert (d.ip6, d.pip6) == ("fd00:1::5", "2001:db8:0:2::2")
    await copy.close()


# -- hosts ---------------------------------------------------------------------------------------


async def test_hosts_do_not_share_ipv6_pools_or_underlay_addresses(store: Store) -> None:
    await store.register_host(host(1, underlay_ip6="2001:db8::1"))
    with pytest.raises(Conflict, match="pip_pool6 2001:db8:0:1::/120 of host h2 overlaps the pool6 "
                                       "2001:db8:0:1::/112 of host h1"):
        await store.register_host(host(2, pool6="2001:db8:0:1::/120"))
    with pytest.raises(Conflict, match="underlay_ip6 2001:db8::1 of host h2 is already used by host h1"):
        await store.register_host(host(2, underlay_ip6="2001:db8:0:0::1"))
    with pytest.raises(InvalidInput, match="pip_pool6 of host h2 '2001:db8::/40' must have a prefix"):
        await store.register_host(host(2, pool6="2001:db8::/40"))
    h2 = await store.register_host(host(2, underlay_ip6="2001:DB8::2"))
    assert (h2.underlay_ip6, await store.get_host("h2")) == ("2001:db8::2", h2)


async def test_a_host_keeps_the_ipv6_pips_of_its_endpoints(dual: Store) -> None:
    await dual.create_endpoint("default", "web", "a", "h1")
    for pool6, why in (("2001:db8:0:9::/112", "2001:db8:0:9::/112"), ("", r"\(none\)")):
        with pytest.raises(Conflict, match=f"pip_pool6 {why} of host h1 does not hold the PIP "
                                           "2001:db8:0:1::1 of its endpoint a"):
            await dual.register_host(host(1, pool6=pool6))
    wider = await dual.register_host(host(1, pool6="2001:db8:0:1::/64"))
    assert (await dual.get_host("h1")).pip_pool6 == wider.pip_pool6 == "2001:db8:0:1::/64"


# -- serialisation and the SQLite upgrade --------------------------------------------------------


def test_objects_without_the_ipv6_fields_load_as_before() -> None:
    old = {"id": 1, "name": "a", "tenant": "t", "network": "web", "ip": "10.1.0.2",
           "mac": "02:d1:00:00:00:01", "host": "h1", "pip": "198.18.1.1", "port": "", "ofport": None,
           "labels": {}}
    e = obj_from_json("endpoint", old)
    assert (e.ip6, e.pip6) == ("", "") and obj_to_json(e) == old
    net = Network(id=1, name="web", tenant="t", subnet="10.1.0.0/24", gateway="10.1.0.1",
                  subnet6="fd00:1::/64", gateway6="fd00:1::1")
    assert obj_from_json("network", obj_to_json(net)) == net


async def test_a_store_made_before_ipv6_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with SqliteStore.open(str(path)) as s:
        await s.create_network("default", "web", "10.1.0.0/24")
        await s.register_host(host(1, pool6=""))
        before = await s.create_endpoint("default", "web", "a", "h1")
    _make_schema_1(path)
    async with SqliteStore.open(str(path)) as s:
        assert await s.get_endpoint(before.id) == before
        await s.register_host(host(1))
        await s.create_network("default", "db", "10.2.0.0/24", subnet6="fd00:2::/64")
        e = await s.create_endpoint("default", "db", "b", "h1")
        assert (e.ip6, e.pip6) == ("fd00:2::2", "2001:db8:0:1::1")
    async with SqliteStore.open(str(path)) as s:  # once upgraded, opening again changes nothing
        assert await s.get_endpoint(e.id) == e
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (3,)  # and on to 3
    db.close()


def _make_schema_1(path: Path) -> None:
    """Turn the file into what daolinet made before IPv6: schema 1, without the IPv6 columns."""
    db = sqlite3.connect(path)
    db.executescript("DROP INDEX endpoints_by_ip6; DROP INDEX endpoints_by_pip6;")
    for table, columns in (("networks", ("subnet6", "gateway6")), ("endpoints", ("ip6", "pip6", "aliases")),
                           ("hosts", ("pip_pool6", "underlay_ip6", "underlay_prefix6"))):
        for column in columns:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = 1 WHERE key = 'schema'")
    db.commit()
    assert "ip6" not in {row[1] for row in db.execute("PRAGMA table_info(endpoints)")}
    db.close()
