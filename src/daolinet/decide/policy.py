"""Who may talk to whom, and why (docs/policy.md).  Pure.

Between two containers, in order, the first that applies decides:
1. tenants are isolated absolutely;
2. a pair rule `connect` / `disconnect` between the two containers;
3. the group rules covering the pair, first-match by priority (Rule.order_key):
   a rule matches a packet going its way (client group -> server group, to its
   port) or coming back (from its port); `allow` gives a route scoped to the
   rule's protocol and port (stateful: flows/route.py), or an unscoped one for
   a rule of any protocol; `deny` denies;
4. no rule matched but a group's `allow` rule covers the pair: denied (for the
   pairs they cover, only what allow rules allow passes);
5. the same network: allowed unless the network is isolated;
6. different networks: allowed when a group holds both.

Between a container and an address outside daolinet ("cidr:" rules): its
group's rules towards that address, first-match by priority; with none
matching, anything if no allow rule of its groups names an address, else
nothing.  Who outside may use a port mapping: `sources_of`.  A "cidr:" block is
of one family: an IPv4 block never holds an IPv6 address, nor the reverse.  But
an allow rule naming a block of *either* family limits both (fails closed): a
network limited to one IPv4 API reaches no IPv6 address until a rule names one.

Whether a container may start any traffic to another (some protocol, port or ICMP
type, not only replies), which is what its name resolves by: `may_reach`.

`Policy` indexes a View's groups and rules once per policy revision;
membership of an endpoint is computed once and cached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from daolinet.model import Endpoint, Group, Network, Rule
from daolinet.model.objects import cidr_of

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}
ICMP = PROTOCOLS["icmp"]
VERB = {"allow": "allows", "deny": "denies"}


@dataclass(frozen=True)
class L4:
    """The L4 part of a packet: protocol number and ports (0 when none), ICMP type (-1 when none)."""

    proto: int
    sport: int = 0
    dport: int = 0
    icmp_type: int = -1


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    # (protocol, server port) when only that traffic is allowed: L4-specific, stateful flows.
    scope: tuple[int, int] | None = None
    # True when the packet's *destination* is the client (a reply of a scoped connection).
    reply: bool = False
    rule: Rule | None = None  # the rule that decided, if one did
    # True when the answer holds for this protocol/port only (rules judged it), not the whole pair.
    narrow: bool = False


def _describe(scope: tuple[int, int]) -> str:
    proto, port = scope
    if proto == ICMP:
        return f"icmp type {port}" if port else "icmp"
    return PROTO_NAMES.get(proto, str(proto)) + (f"/{port}" if port else "")


def describe_rule(r: Rule) -> str:
    """What a rule lets through, e.g. "tcp/80", "icmp type 8", "any"."""
    if not r.protocol:
        return "any"
    if r.protocol == "icmp":
        return "icmp" if r.icmp_type is None else f"icmp type {r.icmp_type}"
    return f"{r.protocol}/{r.ports}" if r.ports else r.protocol


def matches(rule: Rule, l4: L4, port: int) -> bool:
    """Does a packet (l4) match the rule, `port` being the rule's side of it
    (the destination port going the rule's way, the source port coming back)?"""
    if not rule.protocol:
        return True
    if PROTOCOLS[rule.protocol] != l4.proto:
        return False
    if l4.proto == ICMP:
        return rule.icmp_type is None or port < 0 or rule.icmp_type == l4.icmp_type
    lo, hi = rule.port_range()
    return lo <= port <= hi


class Policy:
    def __init__(self, groups: Iterable[Group], rules: Iterable[Rule]) -> None:
        self._groups: dict[str, list[Group]] = {}
        for g in groups:
            self._groups.setdefault(g.tenant, []).append(g)
        self._pairs: dict[tuple[str, str, str], Rule] = {}
        self._rules: dict[tuple[str, str, str], list[Rule]] = {}  # group -> group
        self._to_cidrs: dict[tuple[str, str], list[Rule]] = {}  # (tenant, group) -> rules to addresses
        self._from_cidrs: dict[tuple[str, str], list[Rule]] = {}  # (tenant, group) -> rules from addresses
        for r in rules:
            if r.kind == "pair":
                self._pairs[(r.tenant, *sorted((r.a, r.b)))] = r  # type: ignore[index]
            elif cidr_of(r.b) is not None:
                self._to_cidrs.setdefault((r.tenant, r.a), []).append(r)
            elif cidr_of(r.a) is not None:
                self._from_cidrs.setdefault((r.tenant, r.b), []).append(r)
            else:
                self._rules.setdefault((r.tenant, r.a, r.b), []).append(r)
        self._membership: dict[int, frozenset[str]] = {}

    def groups_of(self, e: Endpoint) -> frozenset[str]:
        found = self._membership.get(e.id)
        if found is None:
            keys = {f"network:{e.network}", f"container:{e.name}"}
            keys.update(f"label:{k}={v}" for k, v in e.labels.items())
            found = frozenset(g.name for g in self._groups.get(e.tenant, ()) if keys & set(g.members))
            self._membership[e.id] = found
        return found

    def rules_between(self, client: Endpoint, server: Endpoint) -> list[Rule]:
        """The group rules from a group of `client` to a group of `server`."""
        out: list[Rule] = []
        for a in self.groups_of(client):
            for b in self.groups_of(server):
                out += self._rules.get((client.tenant, a, b), ())
        return out

    def decide(self, src: Endpoint, dst: Endpoint, src_net: Network, dst_net: Network,
               l4: L4 | None = None) -> Verdict:
        """May src send this (l4; None: anything) to dst?"""
        if src.tenant != dst.tenant:
            return Verdict(False, "different tenants")
        pair = self._pairs.get((src.tenant, *sorted((src.name, dst.name))))  # type: ignore[arg-type]
        if pair is not None:
            return Verdict(pair.action == "connect", f"policy {pair.action} {pair.a} {pair.b}", rule=pair)
        forward, backward = self.rules_between(src, dst), self.rules_between(dst, src)
        covered = bool(forward or backward)
        if covered:
            v = _by_rules(forward, backward, l4)
            if v is not None:
                return v
        v = _default(self, src, dst, src_net, dst_net)
        if not covered or not v.allowed:
            return v
        # rules cover the pair but none matched: what the default allows, only as
        # it was asked (scoped, stateful), so the rules keep holding for the rest
        if l4 is None:
            return Verdict(False, f"rules cover {src.name} and {dst.name}: only scoped routes")
        scope = (ICMP, 0) if l4.proto == ICMP else (l4.proto, l4.dport)
        return Verdict(True, f"{v.reason}; no rule matched {_describe(scope)}", scope)

    def may_reach(self, src: Endpoint, dst: Endpoint, src_net: Network, dst_net: Network) -> bool:
        """May src start *some* traffic to dst?  True when some packet src could open a
        connection with (any protocol, ports and ICMP type) is allowed by `decide`, and not
        as the reply of a connection dst opened (`Verdict.reply`): what a name resolves by
        (decide/names.py).  Exact without trying every packet: one destination port (or
        ICMP type) per class of them the rules tell apart, and a source port free of the
        reply-way rules ahead of the deciding one (`_opens`)."""
        if src.tenant != dst.tenant:
            return False
        pair = self._pairs.get((src.tenant, *sorted((src.name, dst.name))))  # type: ignore[arg-type]
        if pair is not None:
            return pair.action == "connect"
        ways = sorted([(r, True) for r in self.rules_between(src, dst)]
                      + [(r, False) for r in self.rules_between(dst, src)], key=lambda rw: rw[0].order_key())
        # no rule matching: the defaults decide, unless an allow rule covers the pair (rule 4)
        fallback = (not any(r.action == "allow" for r, _ in ways)
                    and _default(self, src, dst, src_net, dst_net).allowed)
        return any(_opens(ways, proto, fallback) for proto in PROTOCOLS.values())

    def decide_outside(self, src: Endpoint, dst_ip: str, l4: L4 | None = None) -> Verdict:
        """May src (on an external network) send this to an address outside daolinet?"""
        addr = ipaddress.ip_address(dst_ip)
        rules = [r for g in self.groups_of(src) for r in self._to_cidrs.get((src.tenant, g), ())]
        ordered = sorted(rules, key=Rule.order_key)
        for r in ordered:
            if _holds(_network(r.b), addr) and ((l4 is None and not r.protocol) or
                                          (l4 is not None and matches(r, l4, l4.dport))):
                scope = None if not r.protocol or l4 is None else _scope(l4, l4.dport, r)
                return Verdict(r.action == "allow", f"{r.label} {VERB[r.action]} {describe_rule(r)} "
                                                    f"from {r.a} to {r.b}", scope, rule=r,
                               narrow=bool(r.protocol))
        allows = [r for r in ordered if r.action == "allow"]
        if allows:
            what = ", ".join(f"{describe_rule(r)} to {r.b[5:]}" for r in allows)
            return Verdict(False, f"{src.name} may reach outside only {what}", rule=allows[0],
                           narrow=l4 is not None)
        return Verdict(True, "external network")

    def sources_of(self, server: Endpoint, proto: int, port: int,
                   family: int = 4) -> tuple[list[tuple[str, Rule]], bool]:
        """Who outside may reach `server` on proto/port (a port mapping's container port)
        over IPv4 or IPv6 (`family`): the matching cidr rules of that family in evaluation
        order as (network, rule), and whether any other source may (False once an allow
        rule names its sources, of either family: fails closed)."""
        l4 = L4(proto, 0, port)
        rules = sorted((r for g in self.groups_of(server)
                        for r in self._from_cidrs.get((server.tenant, g), ())
                        if matches(r, l4, port)), key=Rule.order_key)
        ordered = [(str(net), r) for r in rules if (net := _network(r.a)).version == family]
        return ordered, not any(r.action == "allow" for r in rules)


def _default(policy: Policy, src: Endpoint, dst: Endpoint, src_net: Network, dst_net: Network) -> Verdict:
    if src_net.name == dst_net.name:
        if src_net.isolated:
            return Verdict(False, f"network {src_net.name} is isolated")
        return Verdict(True, f"same network {src_net.name}")
    common = sorted(policy.groups_of(src) & policy.groups_of(dst))
    if common:
        return Verdict(True, f"group {common[0]} holds both")
    return Verdict(False, f"networks {src_net.name} and {dst_net.name} share no group or rule")


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Block = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(selector: str) -> Block:
    return ipaddress.ip_network(cidr_of(selector) or selector, strict=False)


def _holds(net: Block, addr: Address) -> bool:
    """Is addr in the block?  Never across families."""
    return net.version == addr.version and addr in net


def _scope(l4: L4, port: int, rule: Rule | None = None) -> tuple[int, int]:
    """(protocol, server port); for ICMP (1, the rule's ICMP type or 0)."""
    if l4.proto == ICMP:
        return (ICMP, rule.icmp_type if rule is not None and rule.icmp_type is not None else 0)
    return (l4.proto, port)


def _by_rules(forward: list[Rule], backward: list[Rule], l4: L4 | None) -> Verdict | None:
    """First match by priority over the rules going each way; None when none matched
    and no allow rule covers the pair (the defaults decide)."""
    ways = sorted([(r, True) for r in forward] + [(r, False) for r in backward],
                  key=lambda rw: rw[0].order_key())
    for r, fwd in ways:
        if l4 is None:  # any traffic: only a rule of any protocol can say yes
            if r.protocol:
                return Verdict(False, f"{r.label} covers {describe_rule(r)} from {r.a} to {r.b}: "
                                      "no port-agnostic route", rule=r)
            return Verdict(r.action == "allow", f"{r.label} {VERB[r.action]} any traffic from {r.a} to {r.b}",
                           rule=r)
        port = l4.dport if fwd else l4.sport
        if not matches(r, l4, port if l4.proto != ICMP else (0 if fwd else -1)):
            continue
        way = "" if fwd else " (reply)"
        if r.action == "deny":
            return Verdict(False, f"{r.label} denies {describe_rule(r)} from {r.a} to {r.b}{way}", rule=r,
                           narrow=bool(r.protocol))
        if not r.protocol:
            return Verdict(True, f"{r.label} allows any traffic from {r.a} to {r.b}", rule=r)
        scope = _scope(l4, port, r)
        return Verdict(True, f"{r.label} allows {_describe(scope)} from {r.a} to {r.b}{way}", scope,
                       reply=not fwd, rule=r)
    allows = [r for r, _ in ways if r.action == "allow"]
    if not allows:
        return None
    what = _describe((l4.proto, l4.dport)) if l4 is not None else "any traffic"
    names = sorted({f"{r.a}->{r.b}" for r in allows})
    allowed = ", ".join(sorted({describe_rule(r) for r in allows}))
    return Verdict(False, f"rules {', '.join(names)} allow only {allowed}, not {what}", rule=allows[0],
                   narrow=l4 is not None)


Ways = list[tuple[Rule, bool]]  # covering rules in evaluation order, True: going src -> dst


def _opens(ways: Ways, proto: int, fallback: bool) -> bool:
    """Does some packet of `proto` from src open a connection `decide` allows (may_reach)?"""
    ways = [(r, fwd) for r, fwd in ways if not r.protocol or PROTOCOLS[r.protocol] == proto]
    return any(_opens_to(ways, proto, d, fallback) for d in _targets(ways, proto))


def _targets(ways: Ways, proto: int) -> set[int]:
    """A destination port (ICMP: type; -1 one that no rule names) from each class of them
    the src -> dst rules tell apart: 0, and where each rule's port range starts and stops."""
    if proto == ICMP:
        return {-1} | {r.icmp_type for r, fwd in ways if fwd and r.icmp_type is not None}
    out = {0}
    for r, fwd in ways:
        if fwd and r.protocol:
            lo, hi = r.port_range()
            out.update(p for p in (lo, hi + 1) if p <= 65535)
    return out


def _opens_to(ways: Ways, proto: int, target: int, fallback: bool) -> bool:
    """The first src -> dst rule matching `target`, or rule of any protocol either way (an
    unscoped route serves both ways), decides, if a source port matches none of the
    dst -> src rules ahead of it: one of those would decide first (a deny, or an allow that
    makes the packet a reply)."""
    ahead: list[Rule] = []
    for r, fwd in ways:
        if not r.protocol or (fwd and _hits(r, proto, target)):
            return r.action == "allow" and _free_source(ahead, proto)
        if not fwd:
            ahead.append(r)
    return fallback and _free_source(ahead, proto)


def _hits(r: Rule, proto: int, target: int) -> bool:
    """Does a src -> dst rule of this protocol match the destination port (ICMP: type)?"""
    if proto == ICMP:
        return r.icmp_type is None or r.icmp_type == target
    lo, hi = r.port_range()
    return lo <= target <= hi


def _free_source(replies: list[Rule], proto: int) -> bool:
    """Is some source port outside every one of these dst -> src rules?  An ICMP packet
    matches every ICMP rule coming back; a rule of any protocol covers every port."""
    if proto == ICMP:
        return not replies
    free = 0  # the lowest port no span seen so far covers
    for lo, hi in sorted(r.port_range() for r in replies):
        if lo > free:
            return True
        free = max(free, hi + 1)
    return free <= 65535
