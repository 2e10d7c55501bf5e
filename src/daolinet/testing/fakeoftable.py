"""A fake OpenFlow 1.3 multi-table switch, and a fake underlay joining several.

Where it sits: flows/ builds FlowSpecs; tests apply them here (add, modify,
delete with OpenFlow 1.3 semantics) and ask what a packet does
(`FakeSwitch.lookup`) or where it ends up across hosts (`FakeNetwork.send`),
so they assert behaviour, not message lists.

Only what daolinet's pipeline uses is modelled: each flow's actions are
apply-actions, followed by its goto; no groups, meters or action sets.  What
real OVS would reject or leave undefined raises FakeOFTableError instead of
guessing: missing match prerequisites, two matching flows tied on priority,
moves between fields of different widths.

A packet is a dict of header fields named like match fields (`in_port`,
`eth_dst`, `ipv4_src`, `ip_ttl`, `arp_tpa`, ...).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from daolinet.errors import DaoliError
from daolinet.flows.base import ETH_ARP, ETH_IP
from daolinet.flows.spec import (
    Conntrack,
    DecTtl,
    FlowSpec,
    Match,
    MatchValue,
    Move,
    Output,
    SetField,
    ToController,
)
from daolinet.model import Host
from daolinet.pipeline import OFPP_CONTROLLER, OFPP_IN_PORT, OFPP_TABLE, Table

Packet = dict[str, MatchValue]

IPPROTO_TCP = 6
IPPROTO_UDP = 17
BROADCAST = "ff:ff:ff:ff:ff:ff"

IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha"})
REGISTERS = frozenset(f"reg{i}" for i in range(16))
FIELD_BITS: dict[str, int] = {
    **dict.fromkeys(MAC_FIELDS, 48), **dict.fromkeys(IPV4_FIELDS, 32), **dict.fromkeys(REGISTERS, 32),
    "in_port": 32, "eth_type": 16, "arp_op": 16, "ip_proto": 8, "ip_ttl": 8, "tcp_dst": 16, "udp_dst": 16,
    "tcp_src": 16, "udp_src": 16, "ct_state": 32, "ct_mark": 32,
}
CT_NEW, CT_ESTABLISHED, CT_TRACKED = 0x01, 0x02, 0x20
# OpenFlow 1.3 prerequisites (spec 7.2.3.6): a field may be matched, set or
# moved only if the flow's match pins down the protocol that carries it.
PREREQS: dict[str, tuple[str, frozenset[int]]] = {
    **{f: ("eth_type", frozenset({ETH_IP})) for f in ("ipv4_src", "ipv4_dst", "ip_proto", "ip_ttl")},
    **{f: ("eth_type", frozenset({ETH_ARP})) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
    "tcp_dst": ("ip_proto", frozenset({IPPROTO_TCP})),
    "udp_dst": ("ip_proto", frozenset({IPPROTO_UDP})),
    "tcp_src": ("ip_proto", frozenset({IPPROTO_TCP})),
    "udp_src": ("ip_proto", frozenset({IPPROTO_UDP})),
}


class FakeOFTableError(DaoliError):
    """A flow or packet real OVS would reject or treat in an undefined way."""


# -- matching ----------------------------------------------------------------

def field_matches(name: str, want: MatchValue, have: MatchValue) -> bool:
    """One match field against one packet value; IPv4 values may be prefixes,
    bit fields (ct_state) (value, mask) pairs."""
    if isinstance(want, tuple):
        value, mask = want
        return (int(have) & mask) == value  # type: ignore[arg-type]
    if name in IPV4_FIELDS:
        return ipaddress.IPv4Address(str(have)) in ipaddress.IPv4Network(str(want), strict=False)
    if name in MAC_FIELDS:
        return str(have).lower() == str(want).lower()
    return have == want


def matches(match: Match, packet: Mapping[str, MatchValue]) -> bool:
    """A flow matching on a field the packet lacks does not match (an
    untracked packet has ct_state 0)."""
    return all(field_matches(k, v, packet[k]) if k in packet else
               (k == "ct_state" and field_matches(k, v, 0)) for k, v in match.items)


def covers(request: Match, flow: Match) -> bool:
    """Non-strict modify/delete: every field of the request is in the flow's
    match, with a value at least as wide."""
    have = flow.as_dict()
    for name, want in request.items:
        if name not in have:
            return False
        if name in IPV4_FIELDS:
            inner = ipaddress.IPv4Network(str(have[name]), strict=False)
            if not inner.subnet_of(ipaddress.IPv4Network(str(want), strict=False)):
                return False
        elif not field_matches(name, want, have[name]):
            return False
    return True


def _touched_fields(spec: FlowSpec) -> list[str]:
    names = [k for k, _ in spec.match.items]
    for a in spec.actions:
        if isinstance(a, SetField):
            names.append(a.field)
        elif isinstance(a, Move):
            names += [a.src, a.dst]
        elif isinstance(a, DecTtl):
            names.append("ip_ttl")
    return names


def check_flow(spec: FlowSpec) -> None:
    """What an OpenFlow 1.3 switch checks on a FlowMod add, beyond FlowSpec's own table rules."""
    for name in _touched_fields(spec):
        if name not in FIELD_BITS:
            raise FakeOFTableError(f"unknown field {name!r} in {spec}")
        prereq = PREREQS.get(name)
        if prereq and spec.match.get(prereq[0]) not in prereq[1]:
            raise FakeOFTableError(f"{name} needs {prereq[0]} in {sorted(prereq[1])}: {spec}")
    for a in spec.actions:
        if isinstance(a, Move) and not a.n_bits == FIELD_BITS[a.src] == FIELD_BITS[a.dst]:
            raise FakeOFTableError(f"move of {a.n_bits} bits from {a.src} to {a.dst}: widths differ")
    if spec.goto is not None and spec.goto <= spec.table:
        raise FakeOFTableError(f"goto must go forward: {spec}")


# -- one switch ------------------------------------------------------------------

@dataclass
class Result:
    """What one packet did in one switch."""

    outputs: list[tuple[int, Packet]] = field(default_factory=list)
    to_controller: list[tuple[str, Packet]] = field(default_factory=list)
    path: list[FlowSpec] = field(default_factory=list)  # the flows hit, in order
    missed: Table | None = None  # the table in which no flow matched, if any

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.to_controller


def _visible(packet: Packet) -> Packet:
    """The packet as it leaves the pipeline: registers stay behind."""
    return {k: v for k, v in packet.items() if k not in REGISTERS}


def _is_table_miss(flow: FlowSpec) -> bool:
    return flow.priority == 0 and not flow.match.items


class FakeSwitch:
    """One bridge.  OVS sends invalid_ttl packet-ins only to a controller that
    asked for them (OFPT_SET_ASYNC); `invalid_ttl_to_controller` says whether ours did."""

    def __init__(self, dpid: int, invalid_ttl_to_controller: bool = True) -> None:
        # (zone, a reply's source, a reply's destination) -> the fields that undo the NAT
        self._connections: dict[tuple[int, str, str], Packet] = {}
        self._recirculate: Table | None = None
        self.dpid = dpid
        self.invalid_ttl_to_controller = invalid_ttl_to_controller
        self._tables: dict[Table, dict[tuple[int, Match], FlowSpec]] = {}

    # -- FlowMods ---------------------------------------------------------------

    def apply_add(self, spec: FlowSpec) -> None:
        """OFPFC_ADD: a flow with the same table, priority and match is replaced."""
        check_flow(spec)
        self._tables.setdefault(spec.table, {})[(spec.priority, spec.match)] = spec

    def apply(self, specs: Iterable[FlowSpec]) -> None:
        for spec in specs:
            self.apply_add(spec)

    def _select(self, table: Table | None, cookie: int | None, cookie_mask: int, match: Match | None,
                strict: bool, priority: int | None) -> list[FlowSpec]:
        if strict and (table is None or priority is None or match is None):
            raise FakeOFTableError("a strict modify/delete names table, priority and match")
        found = []
        for flow in self.flows(table):
            if cookie is not None and (flow.cookie ^ cookie) & cookie_mask:
                continue
            if strict:
                if (flow.priority, flow.match) != (priority, match):
                    continue
            elif match is not None and not covers(match, flow.match):
                continue
            found.append(flow)
        return found

    def apply_delete(self, table: Table | None = None, cookie: int | None = None, cookie_mask: int = 0,
                     match: Match | None = None, strict: bool = False,
                     priority: int | None = None) -> list[FlowSpec]:
        """OFPFC_DELETE(_STRICT); returns the flows removed.  A cookie_mask of 0
        selects on no cookie bits, as in OpenFlow."""
        gone = self._select(table, cookie, cookie_mask, match, strict, priority)
        for flow in gone:
            del self._tables[flow.table][(flow.priority, flow.match)]
        return gone

    def apply_modify(self, spec: FlowSpec, strict: bool = False, cookie: int | None = None,
                     cookie_mask: int = 0) -> int:
        """OFPFC_MODIFY(_STRICT): replace the instructions of the selected flows,
        keeping their cookies and timeouts; adds nothing (OpenFlow 1.3)."""
        check_flow(spec)
        chosen = self._select(spec.table, cookie, cookie_mask, spec.match, strict, spec.priority)
        for old in chosen:
            new = FlowSpec(old.table, old.priority, old.match, spec.actions, goto=spec.goto,
                           cookie=old.cookie, idle_timeout=old.idle_timeout,
                           hard_timeout=old.hard_timeout, send_flow_rem=old.send_flow_rem)
            check_flow(new)
            self._tables[old.table][(old.priority, old.match)] = new
        return len(chosen)

    def flows(self, table: Table | None = None) -> list[FlowSpec]:
        """Installed flows, by table then descending priority."""
        tables = [table] if table is not None else sorted(self._tables)
        out = [f for t in tables for f in self._tables.get(t, {}).values()]
        return sorted(out, key=lambda f: (f.table, -f.priority, f.match.items))

    def flow_set(self) -> frozenset[FlowSpec]:
        return frozenset(self.flows())

    # -- packets ----------------------------------------------------------------

    def lookup(self, packet: Mapping[str, MatchValue]) -> Result:
        """Run a packet through the pipeline from table 0."""
        result = Result()
        pkt: Packet = dict(packet)
        table: Table | None = Table.CLASSIFY
        while table is not None:
            flow = self._best(table, pkt)
            if flow is None:
                result.missed = table  # OpenFlow 1.3 without a table-miss flow: drop
                break
            result.path.append(flow)
            self._recirculate = None
            if not self._run(flow, pkt, result):
                break
            table = self._recirculate if self._recirculate is not None else flow.goto
        return result

    def _best(self, table: Table, pkt: Packet) -> FlowSpec | None:
        hits = [f for f in self._tables.get(table, {}).values() if matches(f.match, pkt)]
        if not hits:
            return None
        top = max(f.priority for f in hits)
        tied = [f for f in hits if f.priority == top]
        if len(tied) > 1:
            raise FakeOFTableError(f"{len(tied)} overlapping flows tie at priority {top}: {tied}")
        return tied[0]

    def _run(self, flow: FlowSpec, pkt: Packet, result: Result) -> bool:
        """Apply a flow's actions to `pkt` in place; False stops the pipeline."""
        for action in flow.actions:
            if isinstance(action, SetField):
                pkt[action.field] = action.value
            elif isinstance(action, DecTtl):
                ttl = _int(_need(pkt, "ip_ttl"))
                if ttl <= 1:  # the packet-in carries the packet as modified so far, like OVS
                    if self.invalid_ttl_to_controller:
                        result.to_controller.append(("invalid_ttl", _visible(pkt)))
                    return False
                pkt["ip_ttl"] = ttl - 1
            elif isinstance(action, Move):
                pkt[action.dst] = _need(pkt, action.src)
            elif isinstance(action, Output):
                self._output(action.port, pkt, result)
            elif isinstance(action, Conntrack):
                self._conntrack(action, pkt)
            elif isinstance(action, ToController):
                # OpenFlow 1.3: the table-miss flow's packet-ins say no_match, others action
                reason = "no_match" if _is_table_miss(flow) else "action"
                result.to_controller.append((reason, _visible(pkt)))
            else:
                raise FakeOFTableError(f"the fake switch does not model {action!r}")
        return True

    def _conntrack(self, ct: Conntrack, pkt: Packet) -> None:
        """Enough of OVS conntrack for SNAT and DNAT: commit+nat(src or dst) rewrites
        the packet and remembers, per zone, how to undo that on its replies; nat alone
        undoes it on a reply of a known connection."""
        if ct.commit and (ct.nat_src or ct.nat_dst):
            self._commit(ct, pkt)
            pkt["ct_state"] = CT_TRACKED | CT_ESTABLISHED
        else:
            undo = self._connections.get((ct.zone, str(pkt["ipv4_src"]), str(pkt["ipv4_dst"])))
            if undo is not None and ct.nat:
                pkt.update(undo)
            pkt["ct_state"] = CT_TRACKED | (CT_ESTABLISHED if undo is not None else CT_NEW)
        if ct.table is not None:
            self._recirculate = Table(ct.table)

    def _commit(self, ct: Conntrack, pkt: Packet) -> None:
        """Keyed by (zone, a reply's source, a reply's destination)."""
        src, dst = str(pkt["ipv4_src"]), str(pkt["ipv4_dst"])
        if ct.nat_src:
            self._connections[(ct.zone, dst, ct.nat_src)] = {"ipv4_dst": src}
            pkt["ipv4_src"] = ct.nat_src
            return
        assert ct.nat_dst is not None
        undo: Packet = {"ipv4_src": dst}
        l4 = next((p for p in ("tcp", "udp") if f"{p}_dst" in pkt), None)
        if ct.nat_port and l4 is not None:
            undo[f"{l4}_src"] = pkt[f"{l4}_dst"]
            pkt[f"{l4}_dst"] = ct.nat_port
        self._connections[(ct.zone, ct.nat_dst, src)] = undo
        pkt["ipv4_dst"] = ct.nat_dst

    def _output(self, port: int, pkt: Packet, result: Result) -> None:
        in_port = _need(pkt, "in_port")
        if port == OFPP_IN_PORT:
            port = _int(in_port)
        elif port == in_port:
            return  # OpenFlow never sends a packet back out its in_port unless told OFPP_IN_PORT
        if port == OFPP_CONTROLLER:
            result.to_controller.append(("action", _visible(pkt)))
        elif port == OFPP_TABLE:
            raise FakeOFTableError("output to OFPP_TABLE is only valid in a packet-out")
        else:
            result.outputs.append((port, _visible(pkt)))


def _int(value: MatchValue) -> int:
    if isinstance(value, tuple):
        raise FakeOFTableError(f"expected a number, got the masked value {value}")
    return int(value)


def _need(pkt: Packet, name: str) -> MatchValue:
    if name not in pkt:
        raise FakeOFTableError(f"packet has no {name}: {pkt}")
    return pkt[name]


# -- several switches on one underlay -----------------------------------------------

class Delivery(NamedTuple):
    """A packet leaving a switch on a port that is not an uplink."""

    dpid: int
    port: int
    packet: Packet


class Wire(NamedTuple):
    """A packet crossing the underlay from one switch's uplink to another's."""

    src_dpid: int
    dst_dpid: int
    packet: Packet


@dataclass
class Trip:
    """Everything one injected packet caused, across every switch it reached."""

    deliveries: list[Delivery] = field(default_factory=list)
    controller: list[tuple[int, str, Packet]] = field(default_factory=list)  # (dpid, reason, packet)
    underlay: list[Wire] = field(default_factory=list)
    lost: list[tuple[int, Packet]] = field(default_factory=list)  # left an uplink for an unknown MAC
    results: list[tuple[int, Result]] = field(default_factory=list)

    def controller_on(self, dpid: int) -> list[tuple[str, Packet]]:
        return [(reason, p) for d, reason, p in self.controller if d == dpid]


class FakeNetwork:
    """Switches joined by an L2 underlay: a packet out of an uplink arrives at
    the uplink of the switch whose host MAC is its eth_dst (every other one if
    broadcast)."""

    def __init__(self, underlay: Mapping[str, tuple[int, int]],
                 switches: Mapping[int, FakeSwitch] | None = None, max_hops: int = 8) -> None:
        self.underlay = {mac.lower(): at for mac, at in underlay.items()}
        self.switches: dict[int, FakeSwitch] = dict(switches or {})
        for dpid, _ in self.underlay.values():
            self.switches.setdefault(dpid, FakeSwitch(dpid))
        self.uplinks = frozenset(self.underlay.values())
        self.max_hops = max_hops

    @classmethod
    def for_hosts(cls, hosts: Iterable[Host]) -> FakeNetwork:
        return cls({h.underlay_mac: (h.dpid, h.uplink_ofport) for h in hosts})

    def __getitem__(self, dpid: int) -> FakeSwitch:
        return self.switches[dpid]

    def apply(self, dpid: int, specs: Iterable[FlowSpec]) -> None:
        self.switches[dpid].apply(specs)

    def apply_steps(self, steps: Iterable[tuple[int, Iterable[FlowSpec]]]) -> None:
        """(dpid, flows) pairs in order, e.g. a RoutePlan's steps."""
        for dpid, specs in steps:
            self.apply(dpid, specs)

    def send(self, dpid: int, packet: Mapping[str, MatchValue]) -> list[Delivery]:
        """Final deliveries (dpid, port, packet) of a packet entering switch `dpid`."""
        return self.trace(dpid, packet).deliveries

    def trace(self, dpid: int, packet: Mapping[str, MatchValue]) -> Trip:
        trip = Trip()
        queue: list[tuple[int, Packet, int]] = [(dpid, dict(packet), 0)]
        while queue:
            at, pkt, hops = queue.pop(0)
            if hops > self.max_hops:
                raise FakeOFTableError(f"packet still travelling after {self.max_hops} hops: {pkt}")
            result = self.switches[at].lookup(pkt)
            trip.results.append((at, result))
            trip.controller += [(at, reason, p) for reason, p in result.to_controller]
            for port, out in result.outputs:
                if (at, port) not in self.uplinks:
                    trip.deliveries.append(Delivery(at, port, out))
                    continue
                peers = self._peers(at, out)
                if not peers:
                    trip.lost.append((at, out))
                for peer, peer_port in peers:
                    trip.underlay.append(Wire(at, peer, out))
                    queue.append((peer, {**out, "in_port": peer_port}, hops + 1))
        return trip

    def _peers(self, dpid: int, pkt: Packet) -> list[tuple[int, int]]:
        dst = str(pkt.get("eth_dst", "")).lower()
        if dst == BROADCAST:
            return sorted(at for at in self.uplinks if at[0] != dpid)
        at = self.underlay.get(dst)
        return [at] if at is not None and at[0] != dpid else []


# -- packets ------------------------------------------------------------------------

def ip_packet(in_port: int, eth_src: str, eth_dst: str, ipv4_src: str, ipv4_dst: str,
              ttl: int = 64, proto: int = IPPROTO_UDP, dst_port: int = 7) -> Packet:
    pkt: Packet = {"in_port": in_port, "eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IP,
                   "ipv4_src": ipv4_src, "ipv4_dst": ipv4_dst, "ip_ttl": ttl, "ip_proto": proto}
    if proto == IPPROTO_UDP:
        pkt["udp_dst"] = dst_port
    elif proto == IPPROTO_TCP:
        pkt["tcp_dst"] = dst_port
    return pkt


def arp_request(in_port: int, sha: str, spa: str, tpa: str) -> Packet:
    return {"in_port": in_port, "eth_src": sha, "eth_dst": BROADCAST, "eth_type": ETH_ARP,
            "arp_op": 1, "arp_sha": sha, "arp_spa": spa, "arp_tha": "00:00:00:00:00:00", "arp_tpa": tpa}
