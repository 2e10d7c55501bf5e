"""Endpoints' DNS aliases in the store, on both backends (store_backends: SQLite and a real
etcd): set, read back, replaced, refused whole when one is bad, kept across a move, shared
between endpoints; left out of JSON while empty.  What only SQLite has: a schema-2 file
(before aliases) is upgraded in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from store_backends import backend, etcd_server, open_new, opener, store

from daolinet.errors import InvalidInput
from daolinet.model.names import MAX_ALIASES, check_aliases, check_dns_label
from daolinet.model.objects import Endpoint, Host
from daolinet.model.view import Change
from daolinet.store import SqliteStore, Store
from daolinet.store.codec import obj_from_json, obj_to_json

__all__ = ["backend", "etcd_server", "open_new", "opener", "store"]  # fixtures, used by name


def host(n: int) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=f"198.18.{n}.0/24")


@pytest.fixture
async def web(store: Store) -> Store:
    """default/web (10.1.0.0/24), hosts h1 and h2."""
    await store.create_network("default", "web", "10.1.0.0/24")
    for n in (1, 2):
        await store.register_host(host(n))
    return store


async def test_aliases_are_set_lower_cased_once_each_and_read_back(web: Store) -> None:
    e = await web.create_endpoint("default", "web", "dl-1a2b", "h1")
    assert e.aliases == () and "aliases" not in e.to_json()  # as before aliases existed
    got = await web.update_endpoint(e.id, aliases=["Web", "www", "web", "WWW-1"])
    assert got.aliases == ("web", "www", "www-1")
    assert (await web.get_endpoint(e.id)).aliases == ("web", "www", "www-1")
    assert (await web.list_endpoints())[0].aliases == ("web", "www", "www-1")
    assert got.to_json()["aliases"] == ["web", "www", "www-1"]
    assert (await web.update_endpoint(e.id, ofport=4)).aliases == got.aliases  # untouched unless given
    assert (await web.update_endpoint(e.id, aliases=[])).aliases == ()


async def test_an_endpoint_is_created_with_aliases_or_not_at_all(web: Store) -> None:
    e = await web.create_endpoint("default", "web", "a", "h1", aliases=["Svc", "svc", "api"])
    assert e.aliases == ("svc", "api") and await web.get_endpoint(e.id) == e
    with pytest.raises(InvalidInput, match="alias of endpoint b 'bad_one' is not a DNS label"):
        await web.create_endpoint("default", "web", "b", "h1", aliases=["bad_one"])
    assert [x.name for x in await web.list_endpoints()] == ["a"]


async def test_setting_aliases_is_one_change_and_setting_the_same_again_none(web: Store) -> None:
    e = await web.create_endpoint("default", "web", "a", "h1")
    seen: list[Change] = []
    web.subscribe(seen.append)
    await web.update_endpoint(e.id, aliases=["x"])
    await web.update_endpoint(e.id, aliases=["X"])
    assert [c.obj.aliases for c in seen if isinstance(c.obj, Endpoint)] == [("x",)]


@pytest.mark.parametrize(("aliases", "why"), [
    (["ok", "-web"], "alias of endpoint 1 '-web' is not a DNS label"),
    (["web-"], "is not a DNS label"),
    (["we_b"], "is not a DNS label"),
    (["web.net1"], "is not a DNS label"),
    ([""], "is not a DNS label"),
    (["x" * 64], "is not a DNS label: 1 to 63 letters"),
    (["\u212aelvin"], "is not a DNS label"),  # KELVIN SIGN: lower() would make it ASCII "k"
    (["web\n"], "is not a DNS label"),
    ([7], "alias of endpoint 1 7 must be a string"),
    ("web", "must be a list of names"),
    ([f"a{i}" for i in range(MAX_ALIASES + 1)], f"endpoint 1 has 17 aliases: at most {MAX_ALIASES}"),
])
async def test_bad_aliases_are_refused_and_nothing_changes(web: Store, aliases: object, why: str) -> None:
    made = await web.create_endpoint("default", "web", "a", "h1")
    e = await web.update_endpoint(made.id, aliases=["keep"])
    with pytest.raises(InvalidInput, match=why):
        await web.update_endpoint(e.id, port="changed", aliases=aliases)  # type: ignore[arg-type]
    assert await web.get_endpoint(e.id) == e and (await web.get_endpoint(e.id)).port == ""


async def test_sixteen_aliases_and_63_characters_are_allowed(web: Store) -> None:
    e = await web.create_endpoint("default", "web", "a", "h1")
    many = [f"a{i}" for i in range(MAX_ALIASES - 1)] + ["x" * 63, "a0"]  # a duplicate does not count
    assert len((await web.update_endpoint(e.id, aliases=many)).aliases) == MAX_ALIASES


async def test_aliases_are_shared_and_may_equal_another_endpoints_name(web: Store) -> None:
    a = await web.create_endpoint("default", "web", "a", "h1")
    b = await web.create_endpoint("default", "web", "b", "h2")
    await web.update_endpoint(a.id, aliases=["svc", "b"])
    await web.update_endpoint(b.id, aliases=["svc"])
    assert {e.name: e.aliases for e in await web.list_endpoints()} == {"a": ("svc", "b"), "b": ("svc",)}


async def test_aliases_survive_a_move(web: Store) -> None:
    e = await web.create_endpoint("default", "web", "a", "h1")
    await web.update_endpoint(e.id, aliases=["svc"], port="p", ofport=3)
    moved = await web.move_endpoint(e.id, "h2")
    assert (moved.host, moved.aliases) == ("h2", ("svc",))
    assert (await web.get_endpoint(e.id)).aliases == ("svc",)


@given(st.lists(st.text(alphabet="abcXYZ019-_.\u212a", max_size=6), max_size=5))
def test_check_aliases_gives_labels_or_refuses(aliases: list[str]) -> None:
    try:
        out = check_aliases(aliases)
    except InvalidInput:
        assert any(a.strip("-") != a or not a or set(a) & set("_.\u212a") for a in aliases)
        return
    assert list(out) == list(dict.fromkeys(a.lower() for a in aliases))
    assert all(check_dns_label(a) == a for a in out)


def test_endpoints_without_aliases_load_and_serialise_as_before() -> None:
    old = {"id": 1, "name": "a", "tenant": "t", "network": "web", "ip": "10.1.0.2",
           "mac": "02:d1:00:00:00:01", "host": "h1", "pip": "198.18.1.1", "port": "", "ofport": None,
           "labels": {}}
    assert obj_to_json(obj_from_json("endpoint", old)) == old
    e = obj_from_json("endpoint", {**old, "aliases": ["svc"]})
    assert isinstance(e, Endpoint) and e.aliases == ("svc",) and hash(e)
    assert obj_to_json(e) == {**old, "aliases": ["svc"]}


async def test_a_schema_2_file_is_upgraded_to_aliases(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with SqliteStore.open(str(path)) as s:
        await s.create_network("default", "web", "10.1.0.0/24")
        await s.register_host(host(1))
        before = await s.create_endpoint("default", "web", "a", "h1")
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE endpoints DROP COLUMN aliases")
    db.execute("UPDATE meta SET value = 2 WHERE key = 'schema'")
    db.commit()
    db.close()
    async with SqliteStore.open(str(path)) as s:
        assert await s.get_endpoint(before.id) == before
        after = await s.update_endpoint(before.id, aliases=["svc"])
    async with SqliteStore.open(str(path)) as s:  # once upgraded, opening again changes nothing
        assert await s.get_endpoint(before.id) == after
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (3,)
    assert db.execute("SELECT aliases FROM endpoints").fetchone() == ('["svc"]',)
    db.close()
