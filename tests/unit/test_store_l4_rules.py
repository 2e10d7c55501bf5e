"""L4 rules in the store (issue 15): from/to a group or "cidr:NETWORK", protocol
tcp|udp|icmp|any, ports, ICMP type, allow|deny, priority and an optional name;
found and deleted by id or name.  Every bad input is one line and stores nothing,
on both backends (store_backends); an old SQLite file keeps its rules."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from store_backends import backend, etcd_server, open_new, opener, store
from test_store_policy import acme, recorder, refused

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.model.objects import Rule
from daolinet.model.view import Change
from daolinet.store import SqliteStore, Store
from daolinet.store.etcd_keys import Keys
from daolinet.store.sqlite_schema import SCHEMA

__all__ = ["acme", "backend", "etcd_server", "open_new", "opener", "store"]  # fixtures, used by name


@pytest.fixture
async def groups(acme: Store) -> Store:
    """acme with groups front and back; tenant beta with a group other."""
    await acme.create_group("acme", "front")
    await acme.create_group("acme", "back")
    await acme.create_tenant("beta")
    await acme.create_group("beta", "other")
    return acme


async def test_rules_of_every_kind_are_stored_in_canonical_form(groups: Store) -> None:
    seen = recorder(groups)
    made = [
        await groups.create_l4_rule("acme", "front", "cidr:198.19.0.0/255.255.0.0", "tcp", "0443",
                                    name="web-out"),
        await groups.create_l4_rule("acme", "cidr:198.19.255.1", "back", "udp", "53-0053", priority=0),
        await groups.create_l4_rule("acme", "front", "back", "icmp", icmp_type=8, action="deny",
                                    priority=1000),
        await groups.create_l4_rule("acme", "back", "front"),  # any protocol
        await groups.create_l4_rule("acme", "back", "front", "", priority=50),  # the same, lower
        await groups.create_l4_rule("acme", "front", "cidr:2001:DB8:0::/32", "tcp", "443"),
        await groups.create_l4_rule("acme", "cidr:2001:db8::7", "back", "tcp", "80"),
    ]
    ids = [r.id for r in made]
    assert made == [
        Rule(ids[0], "acme", "l4", "allow", "front", "cidr:198.19.0.0/16", "tcp", "443", name="web-out"),
        Rule(ids[1], "acme", "l4", "allow", "cidr:198.19.255.1/32", "back", "udp", "53", priority=0),
        Rule(ids[2], "acme", "l4", "deny", "front", "back", "icmp", "", priority=1000, icmp_type=8),
        Rule(ids[3], "acme", "l4", "allow", "back", "front", "", ""),
        Rule(ids[4], "acme", "l4", "allow", "back", "front", "", "", priority=50),
        Rule(ids[5], "acme", "l4", "allow", "front", "cidr:2001:db8::/32", "tcp", "443"),
        Rule(ids[6], "acme", "l4", "allow", "cidr:2001:db8::7/128", "back", "tcp", "80"),
    ]
    assert [c.obj for c in seen] == made
    for r in made:
        assert await groups.get_rule("acme", r.id) == r
    assert await groups.get_rule("acme", "web-out") == made[0]
    assert await groups.list_rules("acme", "l4") == made


async def test_contradictory_and_overlapping_rules_are_accepted(groups: Store) -> None:
    allow = await groups.create_l4_rule("acme", "front", "back", "tcp", "80")
    deny = await groups.create_l4_rule("acme", "front", "back", "tcp", "80", action="deny")
    wider = await groups.create_l4_rule("acme", "front", "back", "tcp", "1-1024", action="deny", priority=50)
    higher = await groups.create_l4_rule("acme", "front", "back", "tcp", "80", priority=200)
    anything = await groups.create_l4_rule("acme", "front", "back", "any", action="deny", priority=0)
    assert await groups.list_rules("acme", "l4") == [allow, deny, wider, higher, anything]
    assert sorted([allow, deny, wider, higher, anything], key=Rule.order_key) == [
        higher, deny, allow, wider, anything]


@pytest.mark.parametrize(("fields", "match"), [
    ({"a": "cidr:10.0.0.1/24"}, r"^from 'cidr:10\.0\.0\.1/24' is not a network: 10\.0\.0\.1/24 has host bits "
                                r"set \(its network is cidr:10\.0\.0\.0/24\)$"),
    ({"b": "cidr:198.19.0.1/16"},
     r"^to 'cidr:198\.19\.0\.1/16' is not a network: .*cidr:198\.19\.0\.0/16\)$"),
    ({"b": "cidr:banana"}, r"^to 'cidr:banana' is not a network: "),
    ({"b": "cidr:10.0.0.0/33"}, r"^to 'cidr:10\.0\.0\.0/33' is not a network: "),
    ({"b": "cidr:"}, r"^to 'cidr:' is not a network"),
    ({"b": "cidr:2001:DB8::1/32"},
     r"^to 'cidr:2001:DB8::1/32' is not a network: .*\(its network is cidr:2001:db8::/32\)$"),
    ({"b": "cidr:2001:db8::/129"}, r"^to 'cidr:2001:db8::/129' is not a network: "),
    ({"b": "cidr:2001:db8:::/64"}, r"^to 'cidr:2001:db8:::/64' is not a network: "),
    ({"a": "cidr:10.0.0.0/8", "b": "cidr:198.19.0.0/16"}, r"names no group: one side must be a group$"),
    ({"a": "Front!"}, r"^invalid from group name 'Front!'"),
    ({"b": 5}, r"^to 5 must be a group name or cidr:NETWORK$"),
    ({"protocol": "sctp"}, r"^protocol 'sctp' must be one of: tcp, udp, icmp, any$"),
    ({"protocol": "tcp", "ports": "0"}, r"^port 0 in '0' is out of range: ports are 1 to 65535$"),
    ({"protocol": "udp", "ports": "65536"}, r"^port 65536 in '65536' is out of range"),
    ({"protocol": "tcp", "ports": "90-80"}, r"^port range '90-80' is empty: 90 is above 80$"),
    ({"protocol": "tcp", "ports": "80,443"}, r"""^ports '80,443' of a tcp rule must be "N" or "N-M"$"""),
    ({"protocol": "icmp", "ports": "80"}, r"^ports '80' need protocol tcp or udp, not icmp$"),
    ({"protocol": "any", "ports": "80"}, r"^ports '80' need protocol tcp or udp, not any$"),
    ({"protocol": "tcp", "ports": "80", "icmp_type": 8}, r"^icmp type 8 needs protocol icmp, not tcp$"),
    ({"protocol": "any", "icmp_type": 0}, r"^icmp type 0 needs protocol icmp, not any$"),
    ({"protocol": "icmp", "icmp_type": 256}, r"^icmp type 256 must be an integer between 0 and 255$"),
    ({"protocol": "icmp", "icmp_type": -1}, r"^icmp type -1 must be an integer between 0 and 255$"),
    ({"protocol": "icmp", "icmp_type": "8"}, r"^icmp type '8' must be an integer"),
    ({"protocol": "icmp", "icmp_type": True}, r"^icmp type True must be an integer"),
    ({"action": "drop"}, r"^action 'drop' must be one of: allow, deny$"),
    ({"action": "connect"}, r"^action 'connect' must be one of: allow, deny$"),
    ({"priority": -1}, r"^priority -1 must be an integer between 0 and 1000$"),
    ({"priority": 1001}, r"^priority 1001 must be an integer between 0 and 1000$"),
    ({"priority": "5"}, r"^priority '5' must be an integer"),
    ({"name": "123"}, r"^invalid rule name '123': all digits would read as a rule id$"),
    ({"name": "Web Deny"}, r"^invalid rule name 'Web Deny': must match"),
    ({"name": "a/b"}, r"^invalid rule name 'a/b': must match"),
    ({"name": 7}, r"^invalid rule name 7: must match"),
])
async def test_bad_rules_are_one_line_and_store_nothing(groups: Store, fields: dict[str, Any],
                                                        match: str) -> None:
    args: dict[str, Any] = {"a": "front", "b": "back", "protocol": "any", "ports": "", **fields}
    a, b, protocol, ports = (args.pop(k) for k in ("a", "b", "protocol", "ports"))
    await refused(groups, InvalidInput, match,
                  lambda: groups.create_l4_rule("acme", a, b, protocol, ports, **args))
    with pytest.raises(InvalidInput) as caught:
        await groups.create_l4_rule("acme", a, b, protocol, ports, **args)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("a", "b", "match"), [
    ("other", "back", r"^group other of tenant acme not found$"),  # a group of tenant beta
    ("front", "other", r"^group other of tenant acme not found$"),
    ("cidr:10.0.0.0/8", "other", r"^group other of tenant acme not found$"),
    ("nope", "cidr:10.0.0.0/8", r"^group nope of tenant acme not found$"),
])
async def test_groups_of_another_tenant_are_not_found(groups: Store, a: str, b: str, match: str) -> None:
    await refused(groups, NotFound, match, lambda: groups.create_l4_rule("acme", a, b, "tcp", "80"))


async def test_a_rule_needs_its_tenant(groups: Store) -> None:
    await refused(groups, NotFound, r"^tenant nobody not found$",
                  lambda: groups.create_l4_rule("nobody", "front", "cidr:10.0.0.0/8"))


async def test_the_same_rule_and_a_taken_name_are_refused(groups: Store) -> None:
    r = await groups.create_l4_rule("acme", "front", "cidr:10.0.0.0/8", "tcp", "443", name="out",
                                    action="deny", priority=300)
    await refused(groups, Conflict, r"^rule out of tenant acme already denies tcp/443 from front to "
                                    r"cidr:10\.0\.0\.0/8 at priority 300$",
                  lambda: groups.create_l4_rule("acme", "front", "cidr:10.0.0.0/8", "tcp", "0443",
                                                name="other-name", action="deny", priority=300))
    await refused(groups, Conflict, rf"^rule name out of tenant acme is already taken \(rule {r.id}\)$",
                  lambda: groups.create_l4_rule("acme", "back", "front", name="out"))
    icmp = await groups.create_l4_rule("acme", "front", "back", "icmp", icmp_type=8)
    await refused(groups, Conflict, rf"^rule {icmp.id} of tenant acme already allows icmp type 8 from front",
                  lambda: groups.create_l4_rule("acme", "front", "back", "icmp", icmp_type=8))
    assert await groups.create_l4_rule("acme", "front", "back", "icmp", icmp_type=0) != icmp
    assert await groups.create_l4_rule("acme", "front", "back", "icmp") != icmp
    # names are per tenant
    beta = await groups.create_l4_rule("beta", "other", "other", name="out")
    assert await groups.get_rule("beta", "out") == beta and await groups.get_rule("acme", "out") == r


async def test_rules_are_found_and_deleted_by_id_or_name(groups: Store) -> None:
    named = await groups.create_l4_rule("acme", "front", "back", "tcp", "80", name="web")
    plain = await groups.create_l4_rule("acme", "back", "front", "udp", "53")
    beta = await groups.create_l4_rule("beta", "other", "other", name="dns")
    assert await groups.get_rule("acme", "web") == await groups.get_rule("acme", named.id) == named
    await refused(groups, NotFound, r"^rule dns of tenant acme not found$",
                  lambda: groups.get_rule("acme", "dns"))
    await refused(groups, NotFound, r"^rule dns of tenant acme not found$",
                  lambda: groups.delete_rule("acme", "dns"))
    await refused(groups, NotFound, r"^rule Not/A Name of tenant acme not found$",
                  lambda: groups.get_rule("acme", "Not/A Name"))
    await refused(groups, NotFound, r"^tenant nobody not found$", lambda: groups.get_rule("nobody", "web"))
    seen = recorder(groups)
    assert await groups.delete_rule("acme", "web") == named
    assert await groups.delete_rule("acme", plain.id) == plain
    assert [(c.obj, c.deleted) for c in seen] == [(named, True), (plain, True)]
    await refused(groups, NotFound, r"^rule web of tenant acme not found$",
                  lambda: groups.delete_rule("acme", "web"))
    # the name and the rule itself are free again
    again = await groups.create_l4_rule("acme", "front", "back", "tcp", "80", name="web")
    assert again.id > plain.id and await groups.get_rule("acme", "web") == again
    assert await groups.get_rule("beta", "dns") == beta


async def test_groups_named_by_rules_stay_and_cidr_sides_name_no_group(groups: Store) -> None:
    out = await groups.create_l4_rule("acme", "front", "cidr:198.19.0.0/16", "tcp", "443")
    inbound = await groups.create_l4_rule("acme", "cidr:0.0.0.0/0", "front", "tcp", "80")
    await groups.create_group("acme", "cidr")  # a group whose name looks like a selector's prefix
    assert (await groups.delete_group("acme", "cidr")).name == "cidr"
    assert (await groups.delete_group("acme", "back")).name == "back"  # no rule names it
    await refused(groups, Conflict, rf"^group front of tenant acme is still used by l4 rules: {out.id}, "
                                    rf"{inbound.id}$", lambda: groups.delete_group("acme", "front"))
    await groups.delete_rule("acme", out.id)
    await groups.delete_rule("acme", inbound.id)
    assert (await groups.delete_group("acme", "front")).name == "front"


async def test_deleting_a_tenant_takes_its_named_rules(groups: Store) -> None:
    await groups.create_l4_rule("beta", "other", "cidr:10.0.0.0/8", "tcp", "80", name="web")
    await groups.delete_tenant("beta")
    await groups.create_tenant("beta")
    await groups.create_group("beta", "other")
    again = await groups.create_l4_rule("beta", "other", "cidr:10.0.0.0/8", "tcp", "80", name="web")
    assert await groups.get_rule("beta", "web") == again


# -- an old SQLite file ---------------------------------------------------------------------------

OLD_RULES = """CREATE TABLE IF NOT EXISTS rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL REFERENCES tenants (name), kind TEXT NOT NULL, action TEXT NOT NULL,
    a TEXT NOT NULL, b TEXT NOT NULL, protocol TEXT NOT NULL, ports TEXT NOT NULL,
    UNIQUE (tenant, kind, a, b, protocol, ports));"""


def old_store_file(path: Path) -> None:
    """A store as daolinet wrote it before issue 15: rules without name, priority, icmp_type."""
    start = SCHEMA.index("CREATE TABLE IF NOT EXISTS rules (")
    end = SCHEMA.index(";", start) + 1
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA[:start] + OLD_RULES + SCHEMA[end:])
    db.executescript("""
INSERT INTO tenants (name) VALUES ('acme');
INSERT INTO groups (tenant, name, members) VALUES ('acme', 'front', '[]'), ('acme', 'back', '[]');
INSERT INTO rules (tenant, kind, action, a, b, protocol, ports) VALUES
    ('acme', 'l4', 'allow', 'front', 'back', 'tcp', '80'),
    ('acme', 'pair', 'disconnect', 'x', 'y', '', ''),
    ('acme', 'l4', 'allow', 'back', 'front', 'icmp', '');
""")
    assert "priority" not in {row[1] for row in db.execute("PRAGMA table_info(rules)")}
    db.close()


async def test_an_old_sqlite_file_keeps_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_store_file(path)
    async with SqliteStore.open(str(path)) as s:
        assert await s.list_rules("acme") == [
            Rule(1, "acme", "l4", "allow", "front", "back", "tcp", "80"),
            Rule(2, "acme", "pair", "disconnect", "x", "y"),
            Rule(3, "acme", "l4", "allow", "back", "front", "icmp", ""),
        ]
        with pytest.raises(Conflict, match=r"^rule 1 of tenant acme already allows tcp/80"):
            await s.create_l4_rule("acme", "front", "back", "tcp", "80")
        deny = await s.create_l4_rule("acme", "front", "back", "tcp", "80", action="deny", priority=500,
                                      name="no-web")
        assert deny.id == 4
    async with SqliteStore.open(str(path)) as s:  # opening it again changes nothing
        assert [r.id for r in await s.list_rules("acme")] == [1, 2, 3, 4]
        assert await s.get_rule("acme", "no-web") == deny
        seen = recorder(s)
        await s.delete_rule("acme", 1)
        first = Rule(1, "acme", "l4", "allow", "front", "back", "tcp", "80")
        assert seen == [Change(rev=seen[0].rev, obj=first, deleted=True)]


def test_etcd_claims_of_rules_stored_before_issue_15_are_unchanged() -> None:
    keys = Keys("/daolinet/")
    old = Rule(1, "acme", "l4", "allow", "front", "back", "tcp", "80")
    assert keys.claims_of(old) == {b"/daolinet/claim/l4/acme/front/back/tcp/80": keys.key_of(old)}
    new = Rule(2, "acme", "l4", "deny", "front", "cidr:10.0.0.0/8", "icmp", "", name="x", priority=7,
               icmp_type=8)
    assert set(keys.claims_of(new)) == {b"/daolinet/claim/l4/acme/front/cidr:10.0.0.0_8/icmp//deny/7/8",
                                        b"/daolinet/claim/rule-name/acme/x"}
