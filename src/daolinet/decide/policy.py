"""Who may talk to whom, and why (docs/architecture.md "Policy").  Pure.

In order, the first that applies decides:
1. tenants are isolated absolutely;
2. a pair rule `connect` / `disconnect` between the two containers;
3. L4 rules from a group holding the client to a group holding the server:
   for the pairs they cover, only the traffic they allow passes, and such a
   route's flows are L4-specific (`scope`);
4. the same network: allowed unless the network is isolated;
5. different networks: allowed when a group holds both.

`Policy` indexes a View's groups and rules once per policy revision;
membership of an endpoint is computed once and cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daolinet.model import Endpoint, Group, Network, Rule

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}


@dataclass(frozen=True)
class L4:
    """The L4 part of a packet: protocol number and ports (0 when none)."""

    proto: int
    sport: int = 0
    dport: int = 0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    # (protocol, server port) when only that traffic is allowed: L4-specific flows.
    scope: tuple[int, int] | None = None
    # True when the packet's *destination* is the client (a reply of a scoped connection).
    reply: bool = False


def _describe(scope: tuple[int, int]) -> str:
    proto, port = scope
    return PROTO_NAMES.get(proto, str(proto)) + (f"/{port}" if port else "")


class Policy:
    def __init__(self, groups: Iterable[Group], rules: Iterable[Rule]) -> None:
        self._groups: dict[str, list[Group]] = {}
        for g in groups:
            self._groups.setdefault(g.tenant, []).append(g)
        self._pairs: dict[tuple[str, str, str], Rule] = {}
        self._l4: dict[tuple[str, str, str], list[Rule]] = {}
        for r in rules:
            if r.kind == "pair":
                self._pairs[(r.tenant, *sorted((r.a, r.b)))] = r  # type: ignore[index]
            else:
                self._l4.setdefault((r.tenant, r.a, r.b), []).append(r)
        self._membership: dict[int, frozenset[str]] = {}

    def groups_of(self, e: Endpoint) -> frozenset[str]:
        found = self._membership.get(e.id)
        if found is None:
            keys = {f"network:{e.network}", f"container:{e.name}"}
            keys.update(f"label:{k}={v}" for k, v in e.labels.items())
            found = frozenset(g.name for g in self._groups.get(e.tenant, ()) if keys & set(g.members))
            self._membership[e.id] = found
        return found

    def l4_rules(self, client: Endpoint, server: Endpoint) -> list[Rule]:
        out: list[Rule] = []
        for a in self.groups_of(client):
            for b in self.groups_of(server):
                out += self._l4.get((client.tenant, a, b), ())
        return out

    def decide(self, src: Endpoint, dst: Endpoint, src_net: Network, dst_net: Network,
               l4: L4 | None = None) -> Verdict:
        """May src send this (l4; None: anything) to dst?"""
        if src.tenant != dst.tenant:
            return Verdict(False, "different tenants")
        pair = self._pairs.get((src.tenant, *sorted((src.name, dst.name))))  # type: ignore[arg-type]
        if pair is not None:
            return Verdict(pair.action == "connect", f"policy {pair.action} {pair.a} {pair.b}")
        forward, backward = self.l4_rules(src, dst), self.l4_rules(dst, src)
        if forward or backward:
            return _l4_verdict(forward, backward, l4)
        if src_net.name == dst_net.name:
            if src_net.isolated:
                return Verdict(False, f"network {src_net.name} is isolated")
            return Verdict(True, f"same network {src_net.name}")
        common = sorted(self.groups_of(src) & self.groups_of(dst))
        if common:
            return Verdict(True, f"group {common[0]} holds both")
        return Verdict(False, f"networks {src_net.name} and {dst_net.name} share no group or rule")


def _matches(rule: Rule, proto: int, port: int) -> bool:
    if PROTOCOLS.get(rule.protocol) != proto:
        return False
    if proto == PROTOCOLS["icmp"]:
        return True
    lo, hi = rule.port_range()
    return lo <= port <= hi


def _l4_verdict(forward: list[Rule], backward: list[Rule], l4: L4 | None) -> Verdict:
    allowed = ", ".join(sorted({f"{r.protocol}/{r.ports}" if r.ports else r.protocol
                                for r in forward + backward}))
    if l4 is not None:
        for r in forward:
            if _matches(r, l4.proto, l4.dport):
                scope = (l4.proto, 0 if l4.proto == PROTOCOLS["icmp"] else l4.dport)
                return Verdict(True, f"rule {r.id} allows {_describe(scope)} from {r.a} to {r.b}", scope)
        for r in backward:
            if _matches(r, l4.proto, l4.sport):
                scope = (l4.proto, 0 if l4.proto == PROTOCOLS["icmp"] else l4.sport)
                return Verdict(True, f"rule {r.id} allows {_describe(scope)} from {r.a} to {r.b} (reply)",
                               scope, reply=True)
    what = _describe((l4.proto, l4.dport)) if l4 is not None else "any traffic"
    names = sorted({f"{r.a}->{r.b}" for r in forward + backward})
    return Verdict(False, f"rules {', '.join(names)} allow only {allowed}, not {what}")
