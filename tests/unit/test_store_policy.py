"""The store's policy objects: groups, rules and tokens — validation, upserts,
cascades, atomicity and the change feed, on both backends (store_backends), and
across reopening a SQLite file."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from store_backends import backend, etcd_server, fail_recording, open_new, opener, store, store_url

from daolinet.errors import Conflict, DaoliError, InvalidInput, NotFound
from daolinet.model.objects import Group, Host, Rule, Tenant, Token
from daolinet.model.view import Change, View
from daolinet.security.tls import TlsFiles
from daolinet.store import Store, open_store

__all__ = ["backend", "etcd_server", "open_new", "opener", "store", "store_url"]  # fixtures, used by name


def host(n: int) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=f"198.18.{n}.0/24")


def sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def recorder(store: Store) -> list[Change]:
    seen: list[Change] = []
    store.subscribe(seen.append)
    return seen


@asynccontextmanager
async def nothing_changes(store: Store) -> AsyncIterator[None]:
    """The block must leave the snapshot as it was and emit no Change."""
    before = await store.snapshot()
    seen = recorder(store)
    yield
    assert await store.snapshot() == before
    assert seen == []


async def refused(store: Store, error: type[DaoliError], match: str,
                  call: Callable[[], Awaitable[object]]) -> None:
    async with nothing_changes(store):
        with pytest.raises(error, match=match):
            await call()


@pytest.fixture
async def acme(store: Store) -> Store:
    """Tenant acme with networks web and db, host h1, and container a on web."""
    await store.create_tenant("acme")
    await store.create_network("acme", "web", "10.1.0.0/24")
    await store.create_network("acme", "db", "10.2.0.0/24")
    await store.register_host(host(1))
    await store.create_endpoint("acme", "web", "a", "h1")
    return store


# -- groups ------------------------------------------------------------------------------------


async def test_groups_keep_members_sorted_and_unique(acme: Store) -> None:
    seen = recorder(acme)
    g = await acme.create_group("acme", "front", ["network:web", "label:env=prod", "container:a",
                                                  "network:web"])
    assert g == Group(id=g.id, tenant="acme", name="front",
                      members=("container:a", "label:env=prod", "network:web"))
    assert [(c.obj, c.deleted) for c in seen] == [(g, False)]
    assert await acme.get_group("acme", "front") == g
    empty = await acme.create_group("acme", "back")
    assert empty.members == () and empty.id > g.id
    assert await acme.list_groups("acme") == [empty, g]
    assert await acme.list_groups() == [empty, g]
    assert await acme.list_groups("default") == []


FORM = "must be network:NAME, container:NAME or label:KEY=VALUE"


@pytest.mark.parametrize(("name", "members", "error", "match"), [
    ("Front!", [], InvalidInput, r"invalid group name 'Front!'"),
    ("front", ["web"], InvalidInput, rf"invalid group member 'web': {FORM}"),
    ("front", ["host:h1"], InvalidInput, rf"invalid group member 'host:h1': {FORM}"),
    ("front", [":web"], InvalidInput, rf"invalid group member ':web': {FORM}"),
    ("front", ["network:Web!"], InvalidInput, r"invalid group member 'network:Web!': invalid network name"),
    ("front", ["network:"], InvalidInput, r"invalid group member 'network:': invalid network name"),
    ("front", ["container:-a"], InvalidInput, r"invalid group member 'container:-a': invalid container name"),
    ("front", ["label:env"], InvalidInput, r"invalid group member 'label:env': must be label:KEY=VALUE"),
    ("front", ["label:=prod"], InvalidInput, r"'label:=prod': must be label:KEY=VALUE"),
    ("front", ["label:env="], InvalidInput, r"'label:env=': must be label:KEY=VALUE"),
    ("front", ["label:env=a=b"], InvalidInput, r"'label:env=a=b': must be label:KEY=VALUE"),
    ("front", ["label:e nv=x"], InvalidInput, r"'label:e nv=x': must be label:KEY=VALUE"),
    ("front", [f"label:{'k' * 64}=v"], InvalidInput, r"must be label:KEY=VALUE"),
    ("front", "network:web", InvalidInput, r"group members 'network:web' must be a list of strings"),
    ("front", [3], InvalidInput, r"group member 3 must be a string"),
    ("front", ["network:nope"], NotFound, r"network nope of tenant acme not found"),
    ("front", ["container:ghost"], NotFound, r"container ghost of tenant acme not found"),
])
async def test_bad_groups_are_refused_and_change_nothing(acme: Store, name: str, members: Any,
                                                         error: type[DaoliError], match: str) -> None:
    await refused(acme, error, match, lambda: acme.create_group("acme", name, members))


async def test_groups_need_their_tenant_and_a_free_name(acme: Store) -> None:
    await acme.create_network("default", "lan", "10.9.0.0/24")
    await acme.create_group("acme", "front")
    await refused(acme, NotFound, "tenant nobody not found", lambda: acme.create_group("nobody", "front"))
    await refused(acme, Conflict, "group front of tenant acme already exists",
                  lambda: acme.create_group("acme", "front"))
    await refused(acme, NotFound, "network lan of tenant acme not found",  # members stay in the tenant
                  lambda: acme.create_group("acme", "other", ["network:lan"]))
    await refused(acme, NotFound, "group nope of tenant acme not found",
                  lambda: acme.get_group("acme", "nope"))
    await refused(acme, NotFound, "tenant nobody not found", lambda: acme.get_group("nobody", "front"))


async def test_adding_a_member_twice_changes_nothing(acme: Store) -> None:
    g = await acme.create_group("acme", "front", ["network:web"])
    seen = recorder(acme)
    g2 = await acme.add_group_member("acme", "front", "container:a")
    assert g2 == dataclasses.replace(g, members=("container:a", "network:web"))
    assert [(c.obj, c.deleted) for c in seen] == [(g2, False)]
    async with nothing_changes(acme):
        assert await acme.add_group_member("acme", "front", "container:a") == g2
        assert await acme.add_group_member("acme", "front", "network:web") == g2
    g3 = await acme.remove_group_member("acme", "front", "network:web")
    assert g3 == dataclasses.replace(g, members=("container:a",))
    assert seen[-1] == Change(rev=seen[0].rev + 1, obj=g3)


async def test_member_changes_are_checked_like_creates(acme: Store) -> None:
    await acme.create_group("acme", "front", ["network:web"])
    cases: list[tuple[type[DaoliError], str, Callable[[], Awaitable[object]]]] = [
        (InvalidInput, rf"invalid group member 'web': {FORM}",
         lambda: acme.add_group_member("acme", "front", "web")),
        (InvalidInput, "must be label:KEY=VALUE", lambda: acme.add_group_member("acme", "front", "label:x")),
        (NotFound, "container ghost of tenant acme not found",
         lambda: acme.add_group_member("acme", "front", "container:ghost")),
        (NotFound, "network nope of tenant acme not found",
         lambda: acme.add_group_member("acme", "front", "network:nope")),
        (NotFound, "group back of tenant acme not found",
         lambda: acme.add_group_member("acme", "back", "network:web")),
        (NotFound, "network:db is not a member of group front of tenant acme",
         lambda: acme.remove_group_member("acme", "front", "network:db")),
        (InvalidInput, "invalid group member 'db'", lambda: acme.remove_group_member("acme", "front", "db")),
        (NotFound, "group back of tenant acme not found",
         lambda: acme.remove_group_member("acme", "back", "network:web")),
    ]
    for error, match, call in cases:
        await refused(acme, error, match, call)


async def test_deleting_members_does_not_touch_groups(acme: Store) -> None:
    g = await acme.create_group("acme", "front", ["container:a", "network:db"])
    a = await acme.find_endpoint("acme", "a")
    await acme.delete_endpoint(a.id)
    await acme.delete_network("acme", "db")
    assert await acme.get_group("acme", "front") == g
    assert await acme.remove_group_member("acme", "front", "network:db") != g  # still removable
    await acme.create_network("acme", "db", "10.2.0.0/24")
    assert (await acme.add_group_member("acme", "front", "network:db")).members == g.members


async def test_a_group_is_kept_while_l4_rules_use_it(acme: Store) -> None:
    await acme.create_group("acme", "front")
    await acme.create_group("acme", "back")
    r1 = await acme.create_l4_rule("acme", "front", "back", "tcp", "5432")
    r2 = await acme.create_l4_rule("acme", "back", "front", "icmp")
    await acme.set_pair_rule("acme", "front", "other", "connect")  # a container named like the group
    await refused(acme, Conflict, rf"group front of tenant acme is still used by l4 rules: {r1.id}, {r2.id}",
                  lambda: acme.delete_group("acme", "front"))
    await acme.delete_rule("acme", r1.id)
    await refused(acme, Conflict, rf"used by l4 rules: {r2.id}$", lambda: acme.delete_group("acme", "back"))
    await acme.delete_rule("acme", r2.id)
    seen = recorder(acme)
    g = await acme.delete_group("acme", "front")
    assert seen == [Change(rev=seen[0].rev, obj=g, deleted=True)]
    await refused(acme, NotFound, "group front of tenant acme not found",
                  lambda: acme.delete_group("acme", "front"))


# -- pair rules ---------------------------------------------------------------------------------


async def test_pair_rules_are_an_upsert_on_the_sorted_pair(acme: Store) -> None:
    seen = recorder(acme)
    r = await acme.set_pair_rule("acme", "zed", "amy", "connect")  # containers need not exist
    assert r == Rule(id=r.id, tenant="acme", kind="pair", action="connect", a="amy", b="zed")
    async with nothing_changes(acme):
        assert await acme.set_pair_rule("acme", "amy", "zed", "connect") == r
    r2 = await acme.set_pair_rule("acme", "amy", "zed", "disconnect")
    assert r2 == dataclasses.replace(r, action="disconnect")
    assert [(c.obj, c.deleted) for c in seen] == [(r, False), (r2, False)]
    assert seen[1].rev == seen[0].rev + 1
    assert await acme.list_rules("acme") == [r2]


@pytest.mark.parametrize(("tenant", "a", "b", "action", "error", "match"), [
    ("acme", "a", "b", "allow", InvalidInput, r"action 'allow' must be one of: connect, disconnect"),
    ("acme", "a", "b", "CONNECT", InvalidInput, r"action 'CONNECT' must be one of"),
    ("acme", "a", "a", "connect", InvalidInput, r"a pair rule needs two different containers, got a twice"),
    ("acme", "a", "-b", "connect", InvalidInput, r"invalid container name '-b'"),
    ("acme", "", "b", "connect", InvalidInput, r"invalid container name ''"),
    ("nobody", "a", "b", "connect", NotFound, r"tenant nobody not found"),
])
async def test_bad_pair_rules_are_refused(acme: Store, tenant: str, a: str, b: str, action: str,
                                          error: type[DaoliError], match: str) -> None:
    await acme.set_pair_rule("acme", "x", "y", "connect")
    await refused(acme, error, match, lambda: acme.set_pair_rule(tenant, a, b, action))


async def test_pair_rules_are_deleted_one_by_one_or_cleared(acme: Store) -> None:
    ab = await acme.set_pair_rule("acme", "a", "b", "connect")
    ac = await acme.set_pair_rule("acme", "a", "c", "disconnect")
    bc = await acme.set_pair_rule("acme", "b", "c", "connect")
    await acme.create_group("acme", "g")
    l4 = await acme.create_l4_rule("acme", "g", "g", "udp", "53")
    await refused(acme, NotFound, "no pair rule between a and d in tenant acme",
                  lambda: acme.delete_pair_rule("acme", "d", "a"))
    await refused(acme, NotFound, "tenant nobody not found",
                  lambda: acme.delete_pair_rule("nobody", "a", "b"))
    seen = recorder(acme)
    assert await acme.delete_pair_rule("acme", "b", "a") == ab
    assert await acme.clear_pair_rules("acme", "c", "b") == [bc]
    async with nothing_changes(acme):
        assert await acme.clear_pair_rules("acme", "b", "c") == []
        assert await acme.clear_pair_rules("acme", "x") == []
    ab2 = await acme.set_pair_rule("acme", "a", "b", "connect")
    assert ab2.id > ab.id  # a new rule
    assert await acme.clear_pair_rules("acme") == [ac, ab2]
    assert [(c.obj, c.deleted) for c in seen] == [(ab, True), (bc, True), (ab2, False), (ac, True),
                                                   (ab2, True)]
    async with nothing_changes(acme):
        assert await acme.clear_pair_rules("acme") == []
    assert await acme.list_rules("acme") == [l4]  # l4 rules are not pair rules
    await refused(acme, NotFound, "tenant nobody not found", lambda: acme.clear_pair_rules("nobody"))


async def test_clear_with_one_container_takes_its_pairs(acme: Store) -> None:
    ab = await acme.set_pair_rule("acme", "a", "b", "connect")
    bc = await acme.set_pair_rule("acme", "b", "c", "connect")
    ac = await acme.set_pair_rule("acme", "a", "c", "connect")
    assert await acme.clear_pair_rules("acme", b="b") == [ab, bc]
    assert await acme.list_rules("acme", "pair") == [ac]


# -- l4 rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "ports", "match"), [
    ("icmp", "80", r"ports '80' need protocol tcp or udp, not icmp"),
    ("any", "80", r"ports '80' need protocol tcp or udp, not any"),
    ("tcp", "0", r"port 0 in '0' is out of range: ports are 1 to 65535"),
    ("tcp", "70000", r"port 70000 in '70000' is out of range"),
    ("udp", "0-80", r"port 0 in '0-80' is out of range"),
    ("tcp", "80-65536", r"port 65536 in '80-65536' is out of range"),
    ("tcp", "90-80", r"port range '90-80' is empty: 90 is above 80"),
    ("tcp", "x", r"""ports 'x' of a tcp rule must be "N" or "N-M\""""),
    ("tcp", "80-", r"ports '80-' of a tcp rule must be"),
    ("tcp", "-80", r"ports '-80' of a tcp rule must be"),
    ("tcp", " 80", r"ports ' 80' of a tcp rule must be"),
    ("tcp", "80,443", r"ports '80,443' of a tcp rule must be"),
    ("tcp", "99999999999999999999", r"must be"),
    ("tcp", 80, r"ports 80 must be a string"),
    ("sctp", "80", r"protocol 'sctp' must be one of: tcp, udp, icmp, any"),
    ("TCP", "80", r"protocol 'TCP' must be one of"),
])
async def test_bad_l4_rules_are_refused(acme: Store, protocol: str, ports: Any, match: str) -> None:
    await acme.create_group("acme", "front")
    await acme.create_group("acme", "back")
    await refused(acme, InvalidInput, match,
                  lambda: acme.create_l4_rule("acme", "front", "back", protocol, ports))


@pytest.mark.parametrize(("protocol", "ports", "stored"), [
    ("tcp", "80", "80"), ("udp", "53", "53"), ("tcp", "8000-8100", "8000-8100"),
    ("tcp", "1-65535", "1-65535"),
    ("tcp", "080", "80"), ("tcp", "443-443", "443"), ("icmp", "", ""), ("tcp", "", ""),
])
async def test_good_l4_rules_are_stored_in_canonical_form(acme: Store, protocol: str, ports: str,
                                                          stored: str) -> None:
    await acme.create_group("acme", "front")
    seen = recorder(acme)
    r = await acme.create_l4_rule("acme", "front", "front", protocol, ports)
    assert r == Rule(id=r.id, tenant="acme", kind="l4", action="allow", a="front", b="front",
                     protocol=protocol, ports=stored)
    assert seen == [Change(rev=seen[0].rev, obj=r)]
    assert await acme.get_rule("acme", r.id) == r


async def test_l4_rules_need_their_groups_and_are_unique(acme: Store) -> None:
    await acme.create_group("acme", "front")
    await acme.create_group("acme", "back")
    r = await acme.create_l4_rule("acme", "front", "back", "tcp", "80")
    await refused(acme, Conflict, rf"^rule {r.id} of tenant acme already allows tcp/80 from front to back at "
                                  r"priority 100$",
                  lambda: acme.create_l4_rule("acme", "front", "back", "tcp", "080"))
    await refused(acme, NotFound, "group nope of tenant acme not found",
                  lambda: acme.create_l4_rule("acme", "front", "nope", "tcp", "80"))
    await refused(acme, NotFound, "group nope of tenant acme not found",
                  lambda: acme.create_l4_rule("acme", "nope", "back", "icmp"))
    await refused(acme, NotFound, "tenant nobody not found",
                  lambda: acme.create_l4_rule("nobody", "front", "back", "icmp"))
    other = [await acme.create_l4_rule("acme", "back", "front", "tcp", "80"),  # the other way is another rule
             await acme.create_l4_rule("acme", "front", "back", "udp", "80"),
             await acme.create_l4_rule("acme", "front", "back", "tcp", "80-81")]
    assert await acme.list_rules("acme", "l4") == [r, *other]


async def test_rules_are_found_listed_and_deleted_within_their_tenant(acme: Store) -> None:
    await acme.create_tenant("beta")
    pa = await acme.set_pair_rule("acme", "a", "b", "connect")
    pb = await acme.set_pair_rule("beta", "a", "b", "disconnect")
    await acme.create_group("acme", "g")
    la = await acme.create_l4_rule("acme", "g", "g", "icmp")
    assert await acme.list_rules() == [pa, pb, la]
    assert await acme.list_rules("acme") == [pa, la]
    assert await acme.list_rules(kind="pair") == [pa, pb]
    assert await acme.list_rules("beta", "l4") == []
    await refused(acme, InvalidInput, "rule kind 'acl' must be one of: pair, l4",
                  lambda: acme.list_rules(kind="acl"))
    await refused(acme, NotFound, rf"rule {pb.id} of tenant acme not found",
                  lambda: acme.get_rule("acme", pb.id))
    await refused(acme, NotFound, rf"rule {pb.id} of tenant acme not found",
                  lambda: acme.delete_rule("acme", pb.id))
    await refused(acme, NotFound, "rule 999 of tenant acme not found", lambda: acme.delete_rule("acme", 999))
    await refused(acme, NotFound, "tenant nobody not found", lambda: acme.get_rule("nobody", pa.id))
    seen = recorder(acme)
    assert await acme.delete_rule("acme", la.id) == la
    assert await acme.delete_rule("beta", pb.id) == pb
    assert [(c.obj, c.deleted) for c in seen] == [(la, True), (pb, True)]
    again = await acme.create_l4_rule("acme", "g", "g", "icmp")
    assert again.id > la.id  # ids are never reused


# -- tokens -------------------------------------------------------------------------------------


async def test_tokens_are_found_by_hash_and_scoped_by_tenant(acme: Store) -> None:
    seen = recorder(acme)
    admin = await acme.create_token("ops", None, sha("s1"), 1000)
    mine = await acme.create_token("ops", "acme", sha("s2"), 1001.5)  # same name, another scope
    assert admin == Token(id=admin.id, name="ops", tenant=None, hash=sha("s1"), created=1000.0)
    assert isinstance(admin.created, float)
    assert mine == Token(id=mine.id, name="ops", tenant="acme", hash=sha("s2"), created=1001.5)
    assert [c.obj for c in seen] == [admin, mine]
    assert await acme.find_token(sha("s2")) == mine
    assert await acme.find_token(sha("s1")) == admin
    assert await acme.find_token(sha("nope")) is None
    assert await acme.find_token("not even a hash") is None
    assert await acme.list_tokens() == [admin, mine]
    assert await acme.list_tokens("acme") == [mine]
    assert await acme.list_tokens("default") == []
    assert await acme.delete_token(admin.id) == admin
    assert seen[-1] == Change(rev=seen[-2].rev + 1, obj=admin, deleted=True)
    assert await acme.find_token(sha("s1")) is None
    await refused(acme, NotFound, rf"token {admin.id} not found", lambda: acme.delete_token(admin.id))


async def test_host_tokens_are_bound_to_their_host_and_kept(acme: Store) -> None:
    seen = recorder(acme)
    agent = await acme.create_token("agent-h1", None, sha("h1"), 5.0, host="h1")  # h1 need not exist yet
    assert agent == Token(id=agent.id, name="agent-h1", tenant=None, hash=sha("h1"), created=5.0, host="h1")
    assert [c.obj for c in seen] == [agent]
    assert await acme.find_token(sha("h1")) == agent
    assert await acme.list_tokens() == [agent]
    assert agent.to_json()["host"] == "h1" and "hash" not in agent.to_json()
    rev, objs = await acme.snapshot()
    view = View()
    view.load(objs, rev)
    assert view.tokens[sha("h1")].host == "h1"
    await refused(acme, InvalidInput, r"token x is for tenant acme or for host h1, not both",
                  lambda: acme.create_token("x", "acme", sha("x"), 0.0, host="h1"))
    await refused(acme, InvalidInput, r"invalid host name",
                  lambda: acme.create_token("x", None, sha("x"), 0.0, host="H 1!"))
    await refused(acme, Conflict, r"token agent-h1 of host h2 already exists",
                  lambda: acme.create_token("agent-h1", None, sha("x"), 0.0, host="h2"))


@pytest.mark.parametrize(("name", "tenant", "hash", "created", "error", "match"), [
    ("ops", None, sha("s1"), 0.0, Conflict, r"admin token ops already exists"),
    ("ops", "acme", sha("s2"), 0.0, Conflict, r"token ops of tenant acme already exists"),
    ("new", None, sha("s2"), 0.0, Conflict, r"admin token new: another token already has the same secret"),
    ("new", "acme", sha("s1"), 0.0, Conflict, r"token new of tenant acme: another token already has"),
    ("new", "nobody", sha("s3"), 0.0, NotFound, r"tenant nobody not found"),
    ("Ops!", None, sha("s3"), 0.0, InvalidInput, r"invalid token name 'Ops!'"),
    ("new", None, sha("s3").upper(), 0.0, InvalidInput, r"hash of token new must be 64 lowercase hex digits"),
    ("new", None, sha("s3")[:63], 0.0, InvalidInput, r"must be 64 lowercase hex digits"),
    ("new", None, sha("s3") + "0", 0.0, InvalidInput, r"must be 64 lowercase hex digits"),
    ("new", None, "g" * 64, 0.0, InvalidInput, r"must be 64 lowercase hex digits"),
    ("new", None, sha("s3"), "now", InvalidInput, r"created 'now' of token new must be a number"),
    ("new", None, sha("s3"), float("nan"), InvalidInput, r"created nan of token new must be a number"),
    ("new", None, sha("s3"), True, InvalidInput, r"created True of token new must be a number"),
])
async def test_bad_tokens_are_refused(acme: Store, name: str, tenant: str | None, hash: str, created: Any,
                                      error: type[DaoliError], match: str) -> None:
    await acme.create_token("ops", None, sha("s1"), 0.0)
    await acme.create_token("ops", "acme", sha("s2"), 0.0)
    await refused(acme, error, match, lambda: acme.create_token(name, tenant, hash, created))


# -- tenants -------------------------------------------------------------------------------------


async def populate(store: Store, tenant: str) -> list[Any]:
    """Groups, pair and l4 rules and a token for `tenant` (which has network web and container a)."""
    return [await store.create_group(tenant, "front", ["network:web", "container:a"]),
            await store.create_group(tenant, "back", ["label:tier=db"]),
            await store.set_pair_rule(tenant, "a", "b", "disconnect"),
            await store.create_l4_rule(tenant, "front", "back", "tcp", "5432"),
            await store.create_token("ci", tenant, sha(f"{tenant}-ci"), 5.0)]


async def test_deleting_a_tenant_takes_its_policy_with_it(acme: Store) -> None:
    await acme.create_network("default", "web", "10.3.0.0/24")
    await acme.create_endpoint("default", "web", "a", "h1")
    admin = await acme.create_token("root", None, sha("root"), 1.0)
    theirs = await populate(acme, "default")
    group1, group2, pair, l4, token = await populate(acme, "acme")
    await refused(acme, Conflict, "tenant acme still has networks: db, web",
                  lambda: acme.delete_tenant("acme"))
    for e in await acme.list_endpoints("acme"):
        await acme.delete_endpoint(e.id)
    await acme.delete_network("acme", "web")
    await acme.delete_network("acme", "db")
    rev, _ = await acme.snapshot()
    seen = recorder(acme)
    assert await acme.delete_tenant("acme") == Tenant("acme")
    assert [(c.obj, c.deleted) for c in seen] == [(pair, True), (l4, True), (group1, True), (group2, True),
                                                   (token, True), (Tenant("acme"), True)]
    assert [c.rev for c in seen] == list(range(rev + 1, rev + 7))
    assert await acme.changes_since(rev) == seen
    _, objs = await acme.snapshot()
    assert [o for o in objs if isinstance(o, Group | Rule | Token)] == [*theirs[:2], theirs[2], theirs[3],
                                                                          admin, theirs[4]]
    assert await acme.find_token(sha("acme-ci")) is None
    await acme.create_tenant("acme")  # a new tenant of that name starts empty
    assert await acme.list_groups("acme") == await acme.list_rules("acme") == []
    assert await acme.list_tokens("acme") == []


async def test_a_failed_tenant_delete_keeps_its_policy(acme: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await populate(acme, "acme")
    for e in await acme.list_endpoints("acme"):
        await acme.delete_endpoint(e.id)
    await acme.delete_network("acme", "web")
    await acme.delete_network("acme", "db")
    fail_recording(monkeypatch, lambda obj: isinstance(obj, Tenant))
    async with nothing_changes(acme):  # the rules, groups and token went first, and came back
        with pytest.raises(RuntimeError):
            await acme.delete_tenant("acme")


# -- persistence ---------------------------------------------------------------------------------


def fields(obj: object) -> tuple[type, dict[str, Any]]:
    """Every field, including those that do not take part in ==, with its type."""
    assert dataclasses.is_dataclass(obj)
    return type(obj), {f.name: (getattr(obj, f.name), type(getattr(obj, f.name)))
                       for f in dataclasses.fields(obj)}


async def test_the_store_survives_reopening_and_replays_from_the_log(store_url: tuple[str, TlsFiles | None]
                                                                    ) -> None:
    """SQLite: a file opened again; etcd: the same key prefix of the cluster, connected again."""
    url, tls = store_url
    first = open_store(url, etcd_tls=tls)
    seen = recorder(first)
    await first.create_tenant("acme")
    await first.register_host(host(1))
    await first.create_network("acme", "web", "10.1.0.0/24")
    await first.create_endpoint("acme", "web", "a", "h1", labels={"tier": "web"})
    await populate(first, "acme")
    await first.add_group_member("acme", "back", "label:tier=cache")
    await first.set_pair_rule("acme", "a", "b", "connect")
    gone = await first.create_token("old", None, sha("old"), 2.0)
    await first.delete_token(gone.id)
    admin = await first.create_token("root", None, sha("root"), 3.0)
    await first.heartbeat("h1", 7.5)
    before = await first.snapshot()
    await first.close()

    second = open_store(url, etcd_tls=tls)
    rev, objs = await second.snapshot()
    assert (rev, objs) == before
    assert [fields(o) for o in objs] == [fields(o) for o in before[1]]
    kinds = [type(o).__name__ for o in objs]
    order = ["Tenant", "Network", "Host", "Endpoint", "Group", "Rule", "Token"]
    assert kinds == sorted(kinds, key=order.index)
    replay = await second.changes_since(0)
    assert replay == seen
    assert [fields(c.obj) for c in replay] == [fields(c.obj) for c in seen]
    assert all(type(c.obj.members) is tuple for c in replay if isinstance(c.obj, Group))

    from_snapshot, from_log = View(), View()
    from_snapshot.load(objs, rev)
    for change in replay:
        from_log.apply(change)
    assert from_log.groups == from_snapshot.groups and len(from_log.groups) == 2
    assert from_log.rules == from_snapshot.rules and len(from_log.rules) == 2
    assert from_log.tokens == from_snapshot.tokens == {admin.hash: admin, sha("acme-ci"): objs[-2]}
    assert await second.find_token(sha("root")) == admin

    later = recorder(second)
    again = await second.create_token("old", None, sha("old"), 4.0)
    assert again.id > admin.id and later[0].rev == rev + 1  # ids and revisions go on from the store
    await second.close()


# -- ids and bulk deletes ------------------------------------------------------------------------


async def test_ids_survive_deleting_everything(store: Store) -> None:
    """Network, group, rule and token ids are never reused (AUTOINCREMENT, etcd's meta/seq)."""
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


async def test_a_big_tenant_is_deleted_in_one_transaction(store: Store) -> None:
    """etcd: tenant-scoped keys go by prefix, so its limit of 128 operations per transaction is not hit."""
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


async def test_clearing_many_pair_rules_is_one_transaction(store: Store) -> None:
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
