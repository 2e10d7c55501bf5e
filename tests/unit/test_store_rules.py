"""The store's rules on their own: decisions over plain objects, no backend at all.

Each rule gets the objects a transaction would have read and either returns
what to write or raises the error (and message) a user sees; the store suites
(test_store.py, test_store_policy.py) check that both backends apply them.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network

import pytest

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.model.objects import Endpoint, Group, Host, Network, Portmap, Rule, Tenant, Token
from daolinet.store import ChangesPruned, rules
from daolinet.store.checks import MAX_ENDPOINT_ID


def host(n: int, pool: str | None = None, **kw: object) -> Host:
    return Host(name=f"h{n}", dpid=n, underlay_ip=f"198.18.0.{n}", underlay_mac=f"02:00:00:00:00:{n:02x}",
                pip_pool=pool or f"198.18.{n}.0/24", **kw)  # type: ignore[arg-type]


def endpoint(id: int, name: str, pip: str, host: str = "h1", network: str = "web") -> Endpoint:
    return Endpoint(id=id, name=name, tenant="acme", network=network, ip=f"10.1.0.{id + 1}",
                    mac=f"02:d1:00:00:00:{id:02x}", host=host, pip=pip)


NET = Network(id=1, name="web", tenant="acme", subnet="10.1.0.0/24", gateway="10.1.0.1")


def test_names_are_short_sorted_lists() -> None:
    assert rules.names([]) == ""
    assert rules.names(["c", "a", "b"]) == "a, b, c"
    assert rules.names([f"e{i}" for i in range(9)]) == "e0, e1, e2, e3, e4 and 4 more"


def test_tenants_are_kept_while_anything_names_them() -> None:
    rules.check_tenant_free("acme", None)
    with pytest.raises(Conflict, match=r"^tenant acme already exists$"):
        rules.check_tenant_free("acme", Tenant("acme"))
    with pytest.raises(Conflict, match=r"^tenant acme still has networks: web$"):
        rules.check_tenant_empty("acme", [NET])
    pm = Portmap(1, "acme", "web80", "a", "h1", "tcp", 8080, 80)
    with pytest.raises(Conflict, match=r"^store s.db refused the change: tenant acme still has port "
                                       "mappings: web80$"):
        rules.check_unmapped("s.db", "tenant acme", [pm])
    rules.check_unmapped("s.db", "tenant acme", [])


def test_networks_need_a_free_name_and_a_subnet_of_their_own() -> None:
    rules.check_network_free("acme", "db", IPv4Network("10.2.0.0/24"), [NET])
    with pytest.raises(Conflict, match=r"^network web of tenant acme already exists$"):
        rules.check_network_free("acme", "web", IPv4Network("10.2.0.0/24"), [NET])
    with pytest.raises(Conflict, match=r"^subnet 10\.0\.0\.0/8 overlaps network web \(10\.1\.0\.0/24\) "
                                       r"of tenant acme$"):
        rules.check_network_free("acme", "big", IPv4Network("10.0.0.0/8"), [NET])
    with pytest.raises(Conflict, match=r"^network web of tenant acme is still used by endpoints: a$"):
        rules.check_network_unused(NET, [endpoint(1, "a", "198.18.1.1")])


@pytest.mark.parametrize(("other", "why"), [
    (Host("h2", 1, "198.18.0.2", "02:00:00:00:00:02", "198.18.2.0/24"),
     "^dpid 0x0000000000000001 of host h1 is already used by host h2$"),
    (Host("h2", 2, "198.18.0.1", "02:00:00:00:00:02", "198.18.2.0/24"),
     r"^underlay_ip 198\.18\.0\.1 of host h1 is already used by host h2$"),
    (Host("h2", 2, "198.18.0.2", "02:00:00:00:00:02", "198.18.1.128/25"),
     r"^pip_pool 198\.18\.1\.0/24 of host h1 overlaps the pool 198\.18\.1\.128/25 of host h2$"),
])
def test_hosts_share_no_dpid_underlay_ip_or_pool(other: Host, why: str) -> None:
    with pytest.raises(Conflict, match=why):
        rules.check_host_unique(host(1), [other])


def test_a_host_is_unique_against_others_not_itself() -> None:
    rules.check_host_unique(host(1), [host(1), host(2)])


def test_a_re_registration_keeps_the_clock_and_the_pips() -> None:
    old = host(1, last_seen=20.0)
    assert rules.registration(host(1, last_seen=10.0), old).last_seen == 20.0
    assert rules.registration(host(1, last_seen=30.0), old).last_seen == 30.0
    assert rules.registration(host(1), None) == host(1)
    a = endpoint(1, "a", "198.18.1.5")
    rules.check_pips_fit(host(1, "198.18.1.0/29"), [a])
    with pytest.raises(Conflict, match=r"^pip_pool 198\.18\.9\.0/24 of host h1 does not hold the PIP "
                                       r"198\.18\.1\.5 of its endpoint a$"):
        rules.check_pips_fit(host(1, "198.18.9.0/24"), [a])
    with pytest.raises(Conflict, match=r"^host h1 still has endpoints: a$"):
        rules.check_host_unused("h1", [a])


def test_heartbeat_times_are_numbers() -> None:
    assert rules.check_heartbeat_time("h1", 7) == 7.0
    for bad in (True, "7", None):
        with pytest.raises(InvalidInput, match=r"heartbeat time .* of host h1 must be a number"):
            rules.check_heartbeat_time("h1", bad)


def test_endpoint_addresses_come_from_their_network_and_host() -> None:
    assert rules.check_endpoint_id(MAX_ENDPOINT_ID) == MAX_ENDPOINT_ID
    with pytest.raises(Conflict, match="no free endpoint ids"):
        rules.check_endpoint_id(MAX_ENDPOINT_ID + 1)
    h = host(1, "198.18.0.0/29")  # holds the host's own underlay address 198.18.0.1
    assert rules.free_pip(h, set()) == IPv4Address("198.18.0.2")
    assert rules.free_pip(h, {IPv4Address("198.18.0.2")}) == IPv4Address("198.18.0.3")
    assert rules.pick_ip(NET, {}, None) == IPv4Address("10.1.0.2")
    with pytest.raises(Conflict, match=r"^ip 10\.1\.0\.9 of network web of tenant acme is already used "
                                       r"by x$"):
        rules.pick_ip(NET, {IPv4Address("10.1.0.9"): "x"}, "10.1.0.9")
    made = rules.new_endpoint(7, "a", NET, h, IPv4Address("10.1.0.2"), IPv4Address("198.18.0.2"), None, {})
    assert (made.tenant, made.network, made.host, made.mac) == ("acme", "web", "h1", "02:d1:00:00:00:07")
    with pytest.raises(Conflict, match=r"^endpoint a of tenant acme already exists$"):
        rules.check_endpoint_free("acme", "a", made)


def test_updates_and_moves_change_only_what_they_say() -> None:
    a = endpoint(1, "a", "198.18.1.1")
    plugged = rules.updated_endpoint(a, "p1", None)
    assert (plugged.port, plugged.ofport) == ("p1", None)
    assert rules.updated_endpoint(plugged, None, 5).port == "p1"
    moved = rules.moved_endpoint(rules.updated_endpoint(a, "p1", 5), host(2), IPv4Address("198.18.2.1"))
    assert (moved.ip, moved.mac, moved.host, moved.pip, moved.port, moved.ofport) == (
        a.ip, a.mac, "h2", "198.18.2.1", "", None)
    with pytest.raises(InvalidInput, match="must be an interface name"):
        rules.check_port_name(1, 5)


def test_group_members_are_added_once_and_removed_if_there() -> None:
    g = Group(id=1, tenant="acme", name="front", members=("network:web",))
    assert rules.with_member(g, "network:web") is None
    assert rules.with_member(g, "container:a") == Group(1, "acme", "front", ("container:a", "network:web"))
    assert rules.without_member(g, "network:web").members == ()
    with pytest.raises(NotFound, match=r"^container:a is not a member of group front of tenant acme$"):
        rules.without_member(g, "container:a")
    with pytest.raises(NotFound, match=r"^container b of tenant acme not found: no endpoint has that name$"):
        rules.container_found("acme", "b", None)
    with pytest.raises(Conflict, match=r"^group front of tenant acme already exists$"):
        rules.check_group_free("acme", "front", g)


def test_a_group_is_kept_while_l4_rules_name_it() -> None:
    g = Group(id=1, tenant="acme", name="front")
    l4 = [Rule(id=9, tenant="acme", kind="l4", action="allow", a="x", b="front", protocol="icmp"),
          Rule(id=4, tenant="acme", kind="l4", action="allow", a="front", b="y", protocol="icmp")]
    rules.check_group_unused(g, [Rule(id=2, tenant="acme", kind="pair", action="connect", a="front", b="z")])
    with pytest.raises(Conflict, match=r"^group front of tenant acme is still used by l4 rules: 4, 9$"):
        rules.check_group_unused(g, l4)


def test_pair_rules_are_one_per_sorted_pair() -> None:
    assert rules.pair("b", "a") == ("a", "b")
    with pytest.raises(InvalidInput, match="two different containers, got a twice"):
        rules.pair("a", "a")
    with pytest.raises(InvalidInput, match="invalid container name"):
        rules.pair("a", "no/slash")
    new = rules.pair_rule(None, 3, "acme", "a", "b", "connect")
    assert new == Rule(id=3, tenant="acme", kind="pair", action="connect", a="a", b="b")
    assert rules.pair_rule(new, None, "acme", "a", "b", "connect") is None  # nothing to write
    assert rules.pair_rule(new, None, "acme", "a", "b", "disconnect") == Rule(3, "acme", "pair", "disconnect",
                                                                              "a", "b")
    with pytest.raises(NotFound, match=r"^no pair rule between a and b in tenant acme$"):
        rules.check_pair_rule_found("acme", "a", "b", None)


def test_clearing_pair_rules_picks_the_pair_one_container_or_all() -> None:
    ab, ac, bc = (Rule(id=i, tenant="t", kind="pair", action="connect", a=x, b=y)
                  for i, (x, y) in enumerate((("a", "b"), ("a", "c"), ("b", "c")), start=1))
    l4 = Rule(id=4, tenant="t", kind="l4", action="allow", a="a", b="b", protocol="icmp")
    every = [bc, l4, ac, ab]
    assert rules.clear_scope(None, "b") == ("b", None)
    assert rules.doomed_pair_rules(every, "b", "a") == [ab]
    assert rules.doomed_pair_rules(every, *rules.clear_scope(None, "b")) == [ab, bc]
    assert rules.doomed_pair_rules(every, None, None) == [ab, ac, bc]


def test_l4_rules_tokens_and_port_mappings_are_unique() -> None:
    same = Rule(id=5, tenant="acme", kind="l4", action="allow", a="f", b="b", protocol="tcp", ports="80")
    with pytest.raises(Conflict, match=r"^rule 5 of tenant acme already allows tcp/80 from f to b at "
                                       "priority 100$"):
        rules.check_l4_free(dataclasses.replace(same, id=0), [same])
    token = Token(id=1, name="ci", tenant="acme", hash="0" * 64, created=1.0)
    with pytest.raises(Conflict, match=r"^token ci already exists$"):
        rules.check_token_free("token ci", token, None)
    with pytest.raises(Conflict, match=r"^token ci: another token already has the same secret$"):
        rules.check_token_free("token ci", None, token)
    with pytest.raises(NotFound, match=r"^token 7 not found$"):
        rules.check_token_found(7, None)
    pm = Portmap(1, "acme", "web80", "a", "h1", "tcp", 8080, 80)
    with pytest.raises(Conflict, match=r"^port mapping web80 of tenant acme already exists$"):
        rules.check_portmap_free("acme", "web80", "h1", "tcp", 8080, pm, None)
    with pytest.raises(Conflict, match=r"^tcp port 8080 of host h1 is already mapped "
                                       r"\(port mapping web80\)$"):
        rules.check_portmap_free("acme", "other", "h1", "tcp", 8080, None, pm)


def test_the_log_answers_only_what_it_still_holds() -> None:
    rules.check_log_reach(5, 5, 9, "s.db")
    rules.check_log_reach(9, 5, 9, "s.db")
    with pytest.raises(ChangesPruned, match=r"no longer logged .* take a snapshot"):
        rules.check_log_reach(4, 5, 9, "s.db")
    with pytest.raises(InvalidInput, match=r"^rev 10 is ahead of store s\.db \(at rev 9\)$"):
        rules.check_log_reach(10, 5, 9, "s.db")


def test_imported_ids_are_never_handed_out_again() -> None:
    objs = [Tenant("acme"), NET, Network(id=7, name="db", tenant="acme", subnet="10.2.0.0/24",
                                         gateway="10.2.0.1"), host(1), endpoint(40, "a", "198.18.1.1"),
            Token(id=3, name="ci", tenant=None, hash="0" * 64, created=1.0)]
    assert rules.top_ids(objs) == {"network": 7, "token": 3}  # endpoint ids are reused on purpose
