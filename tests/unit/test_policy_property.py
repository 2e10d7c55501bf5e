"""The policy decision against a brute-force reference, on random worlds
(hypothesis): tenants, networks (some isolated), containers with labels,
groups of networks/containers/labels, pair rules and group rules (allow and
deny, priorities, any protocol, ICMP types)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.decide.policy import L4, PROTOCOLS, Policy
from daolinet.model import Endpoint, Group, Network, Rule

TENANTS = ["t1", "t2"]
NETS = ["n1", "n2", "n3"]
NAMES = ["a", "b", "c", "d", "e"]
LABELS = [("app", "web"), ("app", "db"), ("tier", "x")]


@dataclass
class World:
    networks: dict[tuple[str, str], Network]
    endpoints: list[Endpoint]
    groups: list[Group]
    rules: list[Rule]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    networks = {}
    for i, (t, n) in enumerate((t, n) for t in TENANTS for n in NETS):
        networks[(t, n)] = Network(i + 1, n, t, f"10.{i}.0.0/24", f"10.{i}.0.1", isolated=draw(st.booleans()))
    endpoints = []
    for i, (t, name) in enumerate((t, name) for t in TENANTS for name in NAMES):
        labels = dict(draw(st.lists(st.sampled_from(LABELS), max_size=2)))
        endpoints.append(Endpoint(i + 1, name, t, draw(st.sampled_from(NETS)), f"10.9.{i}.2",
                                  "02:00:00:00:00:01", "h1", f"198.18.1.{i + 1}", labels=labels))
    member = st.one_of(st.sampled_from([f"network:{n}" for n in NETS]),
                       st.sampled_from([f"container:{n}" for n in NAMES]),
                       st.sampled_from([f"label:{k}={v}" for k, v in LABELS]))
    groups = [Group(i + 1, t, f"g{i}", tuple(sorted(set(draw(st.lists(member, max_size=3))))))
              for i, t in enumerate(draw(st.lists(st.sampled_from(TENANTS), max_size=4)))]
    rules = []
    for i in range(draw(st.integers(0, 3))):
        t = draw(st.sampled_from(TENANTS))
        a, b = sorted(draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=2, unique=True)))
        rules.append(Rule(100 + i, t, "pair", draw(st.sampled_from(["connect", "disconnect"])), a, b))
    names = [g.name for g in groups]
    for i in range(draw(st.integers(0, 3)) if names else 0):
        g = groups[draw(st.integers(0, len(groups) - 1))]
        proto = draw(st.sampled_from(["tcp", "udp", "icmp", ""]))
        lo = draw(st.integers(1, 100))
        ports = "" if proto in ("icmp", "") else f"{lo}-{lo + draw(st.integers(0, 10))}"
        icmp_type = draw(st.sampled_from([None, 0, 8])) if proto == "icmp" else None
        rules.append(Rule(200 + i, g.tenant, "l4", draw(st.sampled_from(["allow", "deny"])), g.name,
                          draw(st.sampled_from([x.name for x in groups if x.tenant == g.tenant])),
                          proto, ports, priority=draw(st.sampled_from([50, 100, 200])),
                          icmp_type=icmp_type))
    # keep pair rules unique per pair, as the store does
    seen, unique = set(), []
    for r in rules:
        key = (r.tenant, r.kind, r.a, r.b) if r.kind == "pair" else (r.id,)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return World(networks, endpoints, groups, unique)


def reference(w: World, src: Endpoint, dst: Endpoint, l4: L4 | None) -> bool:  # noqa: C901 (obvious on purpose)
    """The rules of docs/architecture.md "Policy", written the slow, obvious way."""
    if src.tenant != dst.tenant:
        return False

    def member(e: Endpoint, g: Group) -> bool:
        return g.tenant == e.tenant and any(
            m == f"network:{e.network}" or m == f"container:{e.name}"
            or (m.startswith("label:") and m[6:].split("=", 1)[0] in e.labels
                and e.labels[m[6:].split("=", 1)[0]] == m[6:].split("=", 1)[1])
            for m in g.members)

    for r in w.rules:
        if r.kind == "pair" and r.tenant == src.tenant and {r.a, r.b} == {src.name, dst.name}:
            return r.action == "connect"
    groups = {g.name: g for g in w.groups if g.tenant == src.tenant}

    def covers(r: Rule, client: Endpoint, server: Endpoint) -> bool:
        return (r.kind == "l4" and r.tenant == src.tenant and r.a in groups and r.b in groups
                and member(client, groups[r.a]) and member(server, groups[r.b]))

    def order(r: Rule) -> tuple[int, int, int]:
        return (-r.priority, 0 if r.action == "deny" else 1, r.id)

    covering = sorted(([(r, True) for r in w.rules if covers(r, src, dst)]
                       + [(r, False) for r in w.rules if covers(r, dst, src)]), key=lambda rf: order(rf[0]))
    for r, fwd in covering:  # the first rule that matches decides
        if l4 is None:
            return r.action == "allow" and not r.protocol
        if not r.protocol:
            return r.action == "allow"
        if PROTOCOLS[r.protocol] != l4.proto:
            continue
        if r.protocol == "icmp":
            hit = not fwd or r.icmp_type is None or r.icmp_type == l4.icmp_type
        else:
            port = l4.dport if fwd else l4.sport
            hit = r.port_range()[0] <= port <= r.port_range()[1]
        if hit:
            return r.action == "allow"
    if any(r.action == "allow" for r, _ in covering):
        return False
    if covering and l4 is None:
        return False
    net = w.networks[(src.tenant, src.network)]
    if src.network == dst.network:
        return not net.isolated
    return any(member(src, g) and member(dst, g) for g in groups.values())


@settings(max_examples=300, deadline=None)
@given(worlds(), st.data())
def test_policy_matches_the_reference(w: World, data: st.DataObject) -> None:
    policy = Policy(w.groups, w.rules)
    src = data.draw(st.sampled_from(w.endpoints))
    dst = data.draw(st.sampled_from(w.endpoints))
    l4 = data.draw(st.one_of(st.none(), st.builds(L4, st.sampled_from([1, 6, 17]), st.integers(0, 120),
                                                  st.integers(0, 120), st.sampled_from([-1, 0, 8]))))
    v = policy.decide(src, dst, w.networks[(src.tenant, src.network)],
                      w.networks[(dst.tenant, dst.network)], l4)
    assert v.allowed == reference(w, src, dst, l4), v.reason
    assert v.reason
