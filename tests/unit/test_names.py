"""resolve(view, asker, qname, qtype) (decide/names.py) over Views built from model
objects, and Policy.may_reach against a brute force over packets on random policies.

Tenant t1: web (h1, net1, dual-stack), app (h2, net1), db (h1, net2), lone (h2, net3,
isolated), peer (h1, net3).  Tenant t2 reuses the names web and net1: web2 is named "web".
Aliases: endpoints with generated names (as Docker's) and the alias "svc" on net1 (h1, h2)
and net2 (h1), and t2's own "svc".
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_policy_property import World, worlds

from daolinet.decide.names import Answer, Forward, NxDomain, QType, resolve
from daolinet.decide.policy import L4, Policy
from daolinet.model import Endpoint, Group, Host, Network, Rule, Tenant, View
from daolinet.model.view import Change

H1 = Host("h1", 1, "198.18.0.1", "02:18:00:00:00:01", "198.18.1.0/24")
H2 = Host("h2", 2, "198.18.0.2", "02:18:00:00:00:02", "198.18.2.0/24")
NET1 = Network(1, "net1", "t1", "10.1.0.0/24", "10.1.0.1", subnet6="fd00:1::/64", gateway6="fd00:1::1")
NET2 = Network(2, "net2", "t1", "10.2.0.0/24", "10.2.0.1")
NET3 = Network(3, "net3", "t1", "10.3.0.0/24", "10.3.0.1", isolated=True)
NET1_T2 = Network(4, "net1", "t2", "10.1.0.0/24", "10.1.0.1")


def ep(eid: int, name: str, net: Network, host: Host, ip6: str = "") -> Endpoint:
    return Endpoint(eid, name, net.tenant, net.name, f"{net.subnet[:-5]}.{10 + eid}",
                    f"02:00:00:00:00:{eid:02x}", host.name, f"{host.pip_pool[:-5]}.{10 + eid}",
                    ofport=eid, ip6=ip6)


WEB = ep(1, "web", NET1, H1, ip6="fd00:1::11")
APP = ep(2, "app", NET1, H2)
DB = ep(3, "db", NET2, H1)
LONE = ep(4, "lone", NET3, H2)
PEER = ep(5, "peer", NET3, H1)
WEB2 = ep(6, "web", NET1_T2, H2)


def view_of(extra: Iterable[Group | Rule | Endpoint | Host | Network] = ()) -> View:
    view = View()
    view.load([Tenant("t1"), Tenant("t2"), H1, H2, NET1, NET2, NET3, NET1_T2,
               WEB, APP, DB, LONE, PEER, WEB2, *extra], rev=1)
    return view


VIEW = view_of()


def answer(d: object) -> tuple[str, ...]:
    assert isinstance(d, Answer), d
    return d.addresses


@pytest.mark.parametrize("qname", ["web", "web.", "WEB", "Web.Net1.", "web.net1", "web.NET1."])
def test_a_name_on_the_same_network_resolves_in_any_case_with_or_without_the_dot(qname: str) -> None:
    assert answer(resolve(VIEW, APP, qname, QType.A)) == (WEB.ip,)


def test_aaaa_gives_ip6_and_an_ipv4_only_endpoint_an_empty_answer() -> None:
    assert answer(resolve(VIEW, APP, "web", QType.AAAA)) == ("fd00:1::11",)
    assert answer(resolve(VIEW, WEB, "app", QType.AAAA)) == ()
    assert answer(resolve(VIEW, WEB, "app", 16)) == ()  # TXT: the name exists, no records


def test_a_container_resolves_its_own_name_even_on_an_isolated_network() -> None:
    assert answer(resolve(VIEW, LONE, "lone", QType.A)) == (LONE.ip,)


@pytest.mark.parametrize("qname", ["web.net2", "nobody", "nobody.net1", "net1"])
def test_names_of_the_tenant_that_name_no_endpoint_there_do_not_exist(qname: str) -> None:
    assert isinstance(resolve(VIEW, APP, qname, QType.A), NxDomain)


@pytest.mark.parametrize("qname", ["example.com", "example.com.", "web.other", "a.b.c", "web.net1.local", ".",
                                   ""])
def test_every_other_name_is_forwarded(qname: str) -> None:
    assert resolve(VIEW, APP, qname, QType.A) == Forward()


def test_tenants_never_see_each_others_names() -> None:
    assert answer(resolve(VIEW, WEB2, "web", QType.A)) == (WEB2.ip,)  # its own, not t1's web
    assert answer(resolve(VIEW, APP, "web", QType.A)) == (WEB.ip,)
    assert isinstance(resolve(VIEW, WEB2, "app", QType.A), NxDomain)  # t1's name
    assert resolve(VIEW, WEB2, "db.net2", QType.A) == Forward()  # net2 is no network of t2


def test_different_networks_resolve_only_when_a_group_holds_both() -> None:
    assert isinstance(resolve(VIEW, APP, "db", QType.A), NxDomain)
    grouped = view_of([Group(1, "t1", "g", ("network:net1", "network:net2"))])
    assert answer(resolve(grouped, APP, "db", QType.A)) == (DB.ip,)
    assert answer(resolve(grouped, DB, "app.net1", QType.A)) == (APP.ip,)


def test_an_isolated_network_hides_its_members_from_each_other() -> None:
    assert isinstance(resolve(VIEW, PEER, "lone", QType.A), NxDomain)
    assert isinstance(resolve(VIEW, PEER, "lone", QType.AAAA), NxDomain)


def test_pair_rules_override_the_defaults() -> None:
    cut = view_of([Rule(1, "t1", "pair", "disconnect", "app", "web")])
    assert isinstance(resolve(cut, APP, "web", QType.A), NxDomain)
    assert isinstance(resolve(cut, WEB, "app", QType.A), NxDomain)
    joined = view_of([Rule(1, "t1", "pair", "connect", "lone", "peer")])
    assert answer(resolve(joined, PEER, "lone", QType.A)) == (LONE.ip,)


def test_a_port_rule_resolves_the_server_for_its_clients_only() -> None:
    """clients -> servers tcp/80 covers the pair: only that may pass, and only app opens it."""
    rules = [Group(1, "t1", "clients", ("container:app",)), Group(2, "t1", "servers", ("container:web",)),
             Rule(10, "t1", "l4", "allow", "clients", "servers", "tcp", "80")]
    view = view_of(rules)
    assert answer(resolve(view, APP, "web", QType.A)) == (WEB.ip,)
    assert isinstance(resolve(view, WEB, "app", QType.A), NxDomain)  # web may only answer app


def test_a_deny_of_any_traffic_hides_the_name_and_revoking_a_group_hides_it_at_once() -> None:
    groups = [Group(1, "t1", "g", ("network:net1", "network:net2"))]
    deny = Rule(10, "t1", "l4", "deny", "g", "g")
    assert isinstance(resolve(view_of([*groups, deny]), APP, "web", QType.A), NxDomain)
    view = view_of(groups)
    assert answer(resolve(view, APP, "db", QType.A)) == (DB.ip,)
    view.apply(Change(rev=2, obj=groups[0], deleted=True))
    assert isinstance(resolve(view, APP, "db", QType.A), NxDomain)


def test_a_down_endpoint_does_not_resolve() -> None:
    view = view_of([dataclasses.replace(H1, alive=False)])
    assert isinstance(resolve(view, APP, "web", QType.A), NxDomain)
    assert answer(resolve(view, WEB2, "web", QType.A)) == (WEB2.ip,)  # on h2
    gone = View()
    gone.load([Tenant("t1"), H2, NET1, WEB, APP])
    assert isinstance(resolve(gone, APP, "web", QType.A), NxDomain)


def test_an_endpoint_not_plugged_in_yet_resolves() -> None:
    view = view_of([dataclasses.replace(WEB, ofport=None)])
    assert answer(resolve(view, APP, "web", QType.A)) == (WEB.ip,)


def test_names_imports_only_model_and_decide() -> None:
    path = Path(__file__).resolve().parents[2] / "src" / "daolinet" / "decide" / "names.py"
    targets = {n.module or "" for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)}
    targets |= {a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import)
                for a in n.names}
    ours = {t for t in targets if t.startswith("daolinet")}
    assert ours and all(t.startswith(("daolinet.model", "daolinet.decide")) for t in ours)
    assert targets - ours <= {"__future__", "dataclasses", "enum", "ipaddress"}


# -- aliases ------------------------------------------------------------------------------

S1 = dataclasses.replace(ep(7, "dl-7", NET1, H1, ip6="fd00:1::17"), ip="10.1.0.100", aliases=("svc", "web"))
S2 = dataclasses.replace(ep(8, "dl-8", NET1, H2), ip="10.1.0.20", aliases=("svc", "api"))
S3 = dataclasses.replace(ep(9, "dl-9", NET2, H1), aliases=("svc",))
S4 = dataclasses.replace(ep(10, "dl-10", NET1_T2, H2), ip="10.1.0.99", aliases=("svc",))
ALIASED = [S1, S2, S3, S4]
NETS12 = Group(1, "t1", "g", ("network:net1", "network:net2"))


@pytest.mark.parametrize("qname", ["api", "API.", "api.net1", "Api.Net1."])
def test_an_alias_resolves_in_any_case_like_a_name(qname: str) -> None:
    assert answer(resolve(view_of(ALIASED), APP, qname, QType.A)) == (S2.ip,)


def test_an_alias_answers_every_endpoint_the_asker_may_reach_sorted_by_address() -> None:
    view = view_of(ALIASED)
    assert answer(resolve(view, APP, "svc", QType.A)) == ("10.1.0.20", "10.1.0.100")  # not S3: net2
    assert answer(resolve(view, APP, "svc.net1", QType.A)) == ("10.1.0.20", "10.1.0.100")
    assert isinstance(resolve(view, APP, "svc.net2", QType.A), NxDomain)  # S3 only, not reachable
    grouped = view_of([*ALIASED, NETS12])
    assert answer(resolve(grouped, APP, "svc", QType.A)) == ("10.1.0.20", "10.1.0.100", S3.ip)
    assert answer(resolve(grouped, APP, "svc.net2", QType.A)) == (S3.ip,)
    assert answer(resolve(view, APP, "svc", QType.AAAA)) == ("fd00:1::17",)  # S2 is IPv4-only
    assert answer(resolve(view, S2, "svc", QType.A)) == ("10.1.0.20", "10.1.0.100")  # itself too


def test_an_alias_leaves_out_endpoints_that_are_down_or_denied_and_none_left_is_nxdomain() -> None:
    down = view_of([*ALIASED, dataclasses.replace(H2, alive=False)])
    assert answer(resolve(down, WEB, "svc", QType.A)) == (S1.ip,)
    cut = view_of([*ALIASED, Rule(1, "t1", "pair", "disconnect", "app", "dl-7")])
    assert answer(resolve(cut, APP, "svc", QType.A)) == (S2.ip,)
    both = view_of([*ALIASED, Rule(1, "t1", "pair", "disconnect", "app", "dl-7"),
                    Rule(2, "t1", "pair", "disconnect", "app", "dl-8")])
    assert isinstance(resolve(both, APP, "svc", QType.A), NxDomain)
    assert isinstance(resolve(view_of(ALIASED), APP, "nosuch", QType.A), NxDomain)


def test_a_name_shadows_an_alias_even_when_it_does_not_resolve() -> None:
    view = view_of(ALIASED)
    assert answer(resolve(view, APP, "web", QType.A)) == (WEB.ip,)  # not S1, whose alias is web
    cut = view_of([*ALIASED, Rule(1, "t1", "pair", "disconnect", "app", "web")])
    assert isinstance(resolve(cut, APP, "web", QType.A), NxDomain)
    # web is on net1: web.net2 names no endpoint there, and an alias web on net2 answers it
    assert isinstance(resolve(view, APP, "web.net2", QType.A), NxDomain)
    web_on_net2 = view_of([*ALIASED, NETS12, dataclasses.replace(S3, aliases=("web",))])
    assert answer(resolve(web_on_net2, APP, "web.net2", QType.A)) == (S3.ip,)
    assert answer(resolve(web_on_net2, APP, "web", QType.A)) == (WEB.ip,)


def test_tenants_never_see_each_others_aliases() -> None:
    view = view_of(ALIASED)
    assert answer(resolve(view, WEB2, "svc", QType.A)) == (S4.ip,)
    assert isinstance(resolve(view, WEB2, "api", QType.A), NxDomain)
    assert S4.ip not in answer(resolve(view, APP, "svc", QType.A))


def test_aliases_follow_the_endpoint_through_changes() -> None:
    view = view_of(ALIASED)
    view.apply(Change(rev=2, obj=dataclasses.replace(S2, aliases=("other",))))
    assert answer(resolve(view, APP, "svc", QType.A)) == (S1.ip,)
    assert answer(resolve(view, APP, "other", QType.A)) == (S2.ip,)
    view.apply(Change(rev=3, obj=S1, deleted=True))
    assert isinstance(resolve(view, APP, "svc", QType.A), NxDomain)
    assert view.endpoint_named("t1", "other") is None  # aliases are no names for policy


# -- random policies ----------------------------------------------------------------------


def opens(policy: Policy, w: World, src: Endpoint, dst: Endpoint) -> bool:
    """Brute force: some packet src may start to dst, over every protocol, ICMP type and pair
    of ports from 0, 111 and one either side of every rule's port bounds (every stretch of
    ports on which each rule of the world matches or does not holds one of them)."""
    ports = {0, 111}
    for r in w.rules:
        if r.ports:
            lo, hi = r.port_range()
            ports |= {lo - 1, lo, hi, hi + 1}
    packets = [L4(1, 0, 0, t) for t in (-1, 0, 8)]
    packets += [L4(p, s, d) for p in (6, 17) for s in ports for d in ports]
    nets = w.networks[(src.tenant, src.network)], w.networks[(dst.tenant, dst.network)]
    return any((v := policy.decide(src, dst, *nets, l4)).allowed and not v.reply for l4 in packets)


def world_view(w: World) -> View:
    objs = [Tenant("t1"), Tenant("t2"), H1, *w.networks.values(), *w.groups, *w.rules]
    objs += [dataclasses.replace(e, ofport=e.id) for e in w.endpoints]
    view = View()
    view.load(objs, rev=1)
    return view


@settings(max_examples=200, deadline=None)
@given(worlds(), st.data())
def test_a_name_resolves_exactly_when_the_policy_lets_the_asker_open_traffic(w: World,
                                                                              data: st.DataObject) -> None:
    view, policy = world_view(w), Policy(w.groups, w.rules)
    asker = data.draw(st.sampled_from(w.endpoints))
    for target in w.endpoints:
        d = resolve(view, asker, target.name, QType.A)
        if target.tenant != asker.tenant:
            # the asker's tenant has an endpoint of that name (same names in both): never this one
            assert not (isinstance(d, Answer) and d.addresses == (target.ip,))
            continue
        expected = target.id == asker.id or opens(policy, w, asker, target)
        nets = w.networks[(asker.tenant, asker.network)], w.networks[(target.tenant, target.network)]
        assert policy.may_reach(asker, target, *nets) == opens(policy, w, asker, target)
        assert isinstance(d, Answer if expected else NxDomain), (asker.name, target.name, d)
        if expected:
            assert answer(d) == (target.ip,)
            qname = f"{target.name}.{target.network}".upper()
            assert answer(resolve(view, asker, qname, QType.A)) == (target.ip,)


@st.composite
def pair_rules(draw: st.DrawFn) -> list[Rule]:
    """Rules between the groups of two containers only, both ways: every rule covers the pair."""
    rules = []
    for i in range(draw(st.integers(0, 6))):
        proto = draw(st.sampled_from(["tcp", "tcp", "udp", "icmp", ""]))
        lo = draw(st.integers(1, 20))
        width = draw(st.integers(0, 10))
        ports = "" if proto in ("icmp", "") or draw(st.booleans()) else f"{lo}-{lo + width}"
        rules.append(Rule(10 + i, "t1", "l4", draw(st.sampled_from(["allow", "deny"])),
                          *draw(st.sampled_from([("ga", "gb"), ("gb", "ga"), ("ga", "ga")])), proto, ports,
                          priority=draw(st.sampled_from([50, 100])),
                          icmp_type=draw(st.sampled_from([None, 0, 8])) if proto == "icmp" else None))
    return rules


@settings(max_examples=600, deadline=None)
@given(pair_rules(), st.booleans(), st.booleans())
def test_may_reach_is_some_packet_opening_a_connection(rules: list[Rule], same_net: bool,
                                                       grouped: bool) -> None:
    """Dense rules over one pair, forward and backward, against the brute force."""
    a, b = ep(1, "a", NET1, H1), ep(2, "b", NET1 if same_net else NET2, H1)
    groups = [Group(1, "t1", "ga", ("container:a",) + (("container:b",) if grouped else ())),
              Group(2, "t1", "gb", ("container:b",))]
    w = World({(n.tenant, n.name): n for n in (NET1, NET2)}, [a, b], groups, rules)
    policy = Policy(groups, rules)
    assert policy.may_reach(a, b, NET1, w.networks[("t1", b.network)]) == opens(policy, w, a, b)
    assert policy.may_reach(b, a, w.networks[("t1", b.network)], NET1) == opens(policy, w, b, a)


def out(rid: int, action: str, proto: str = "", ports: str = "", priority: int = 100,
        icmp_type: int | None = None) -> Rule:
    """A rule from a's group to b's: a -> b is its way."""
    return Rule(rid, "t1", "l4", action, "ga", "gb", proto, ports, priority=priority, icmp_type=icmp_type)


def back(rid: int, action: str, proto: str = "", ports: str = "", priority: int = 100) -> Rule:
    """A rule from b's group to a's: a -> b goes the way of its replies."""
    return Rule(rid, "t1", "l4", action, "gb", "ga", proto, ports, priority=priority)


@pytest.mark.parametrize(("rules", "reach"), [
    ([], True),  # same network, nothing covers the pair
    ([back(1, "allow")], True),  # any protocol: an unscoped route serves both ways
    ([back(1, "allow", "tcp", "80")], False),  # only b opens, a only answers
    ([out(1, "allow", "tcp", "80")], True),
    ([back(1, "deny", "tcp"), out(2, "allow", "tcp", "80", 50)], False),  # every source port is denied
    ([back(1, "deny", "tcp", "1-100"), out(2, "allow", "tcp", "80", 50)], True),  # source port 101
    ([out(1, "deny", "tcp", "10-20"), out(2, "allow", "tcp", "10-30", 50)], True),  # port 21
    ([out(1, "deny", "tcp", "10-30"), out(2, "allow", "tcp", "10-30", 50)], False),
    ([back(1, "deny", p) for p in ("tcp", "udp", "icmp")], False),  # every packet goes a reply's way
    ([back(1, "deny", p) for p in ("tcp", "udp")], True),  # ICMP falls to the defaults
    ([out(1, "allow", "icmp", icmp_type=8), back(2, "deny", "icmp")], False),
    ([out(1, "allow", "icmp", icmp_type=8, priority=200), out(2, "deny", "icmp", icmp_type=8)], True),
], ids=lambda x: "" if isinstance(x, bool) else "+".join(f"{r.action} {r.a}>{r.b} {r.protocol}{r.ports}"
                                                             for r in x))
def test_may_reach_edges(rules: list[Rule], reach: bool) -> None:
    a, b = ep(1, "a", NET1, H1), ep(2, "b", NET1, H1)
    policy = Policy([Group(1, "t1", "ga", ("container:a",)), Group(2, "t1", "gb", ("container:b",))], rules)
    assert policy.may_reach(a, b, NET1, NET1) is reach


@settings(max_examples=200, deadline=None)
@given(worlds(), st.data())
def test_an_alias_resolves_to_exactly_the_endpoints_the_asker_may_open_traffic_to(w: World,
                                                                                 data: st.DataObject) -> None:
    """Random aliases ("x", "y", and "a", which is also a name) on random policies."""
    w.endpoints = [dataclasses.replace(e, aliases=tuple(data.draw(st.lists(st.sampled_from(["x", "y", "a"]),
                                                                            max_size=2, unique=True))))
                   for e in w.endpoints]
    view, policy = world_view(w), Policy(w.groups, w.rules)
    asker = data.draw(st.sampled_from(w.endpoints))
    for label in ("x", "y"):
        for net in (None, "n1", "n2", "n3"):
            allowed = sorted((t.ip for t in w.endpoints if t.tenant == asker.tenant and label in t.aliases
                              and net in (None, t.network)
                              and (t.id == asker.id or opens(policy, w, asker, t))),
                             key=lambda ip: tuple(map(int, ip.split("."))))
            d = resolve(view, asker, label if net is None else f"{label.upper()}.{net}", QType.A)
            if allowed:
                assert answer(d) == tuple(allowed), (asker.name, label, net, d)
            else:
                assert isinstance(d, NxDomain), (asker.name, label, net, d)
    named = next(t for t in w.endpoints if t.tenant == asker.tenant and t.name == "a")
    d = resolve(view, asker, "a", QType.A)  # a name shadows the aliases "a": never another endpoint
    assert isinstance(d, NxDomain) or answer(d) == (named.ip,)
