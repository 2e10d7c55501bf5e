"""A fake OpenFlow 1.3 multi-table switch, and a fake underlay joining several.

Where it sits: flows/ builds FlowSpecs; tests apply them here (add, modify,
delete with OpenFlow 1.3 semantics) and ask what a packet does
(`FakeSwitch.lookup`) or where it ends up across hosts (`FakeNetwork.send`),
so they assert behaviour, not message lists.

Only what daolinet's pipeline uses is modelled: each flow's actions are
apply-actions, followed by its goto; no groups, meters or action sets.  What
real OVS would reject or leave undefined raises FakeOFTableError instead of
guessing: missing match prerequisites (ofmatch.py), two matching flows tied on
priority, moves between fields of different widths.

A packet is a dict of header fields named like match fields (`in_port`,
`eth_dst`, `ipv4_src`, `ip_ttl`, `arp_tpa`, `ipv6_nd_target`, ...); ofmatch.py
holds that vocabulary and the packet builders, re-exported here.  An ND packet
carries its one link-layer address option as `ipv6_nd_sll` or `ipv6_nd_tll`, its
type as `nd_options_type`, and its R/S/O flags as `nd_reserved` (OVS's names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from daolinet.flows.spec import (
    Action,
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
from daolinet.testing.ofmatch import (
    BROADCAST,
    CT_ESTABLISHED,
    CT_NEW,
    CT_TRACKED,
    IPPROTO_TCP,
    IPPROTO_UDP,
    REGISTERS,
    FakeOFTableError,
    Packet,
    arp_request,
    as_int,
    check_flow,
    covers,
    ip_packet,
    ipv6_packet,
    matches,
    neighbor_advertisement,
    neighbor_solicitation,
    require_field,
)

__all__ = ["BROADCAST", "IPPROTO_TCP", "IPPROTO_UDP", "Delivery", "FakeNetwork", "FakeOFTableError",
           "FakeSwitch", "Packet", "Result", "Trip", "Wire", "arp_request", "ip_packet", "ipv6_packet",
           "neighbor_advertisement", "neighbor_solicitation"]


# -- one switch ------------------------------------------------------------------

@dataclass
class Result:
    """What one packet did in one switch."""

    outputs: list[tuple[int, Packet]] = field(default_factory=list)
    to_controller: list[tuple[str, Packet]] = field(default_factory=list)
    to_service: list[tuple[int, Packet]] = field(default_factory=list)  # controller(id=N): (N, packet)
    path: list[FlowSpec] = field(default_factory=list)  # the flows hit, in order
    missed: Table | None = None  # the table in which no flow matched, if any

    @property
    def dropped(self) -> bool:
        return not self.outputs and not self.to_controller and not self.to_service


Tuple5 = tuple[int, str, str, int, int]


def _tuple(pkt: Packet) -> Tuple5:
    proto = as_int(pkt.get("ip_proto", 0))
    l4 = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}.get(proto)
    ports = (as_int(pkt[f"{l4}_src"]), as_int(pkt[f"{l4}_dst"])) if l4 and f"{l4}_src" in pkt else (0, 0)
    if "ipv6_src" in pkt:
        return (proto, str(pkt["ipv6_src"]), str(pkt["ipv6_dst"]), *ports)
    return (proto, str(pkt["ipv4_src"]), str(pkt["ipv4_dst"]), *ports)


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
        self._tracked: set[tuple[int, Tuple5]] = set()  # (zone, 5-tuple) committed without NAT
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
                ttl = as_int(require_field(pkt, "ip_ttl"))
                if ttl <= 1:  # the packet-in carries the packet as modified so far, like OVS
                    if self.invalid_ttl_to_controller:
                        result.to_controller.append(("invalid_ttl", _visible(pkt)))
                    return False
                pkt["ip_ttl"] = ttl - 1
            elif isinstance(action, Move):
                pkt[action.dst] = require_field(pkt, action.src)
            elif isinstance(action, Output):
                self._output(action.port, pkt, result)
            elif isinstance(action, Conntrack):
                self._conntrack(action, pkt)
            elif isinstance(action, ToController):
                self._packet_in(flow, action, pkt, result)
            else:
                raise FakeOFTableError(f"the fake switch does not model {action!r}")
        return True

    @staticmethod
    def _packet_in(flow: FlowSpec, action: ToController, pkt: Packet, result: Result) -> None:
        if action.controller_id:  # to the connections with that id only (the agent's)
            result.to_service.append((action.controller_id, _visible(pkt)))
        else:  # OpenFlow 1.3: the table-miss flow's packet-ins say no_match, others action
            reason = "no_match" if _is_table_miss(flow) else "action"
            result.to_controller.append((reason, _visible(pkt)))

    def _conntrack(self, ct: Conntrack, pkt: Packet) -> None:
        """Enough of OVS conntrack for SNAT and DNAT: commit+nat(src or dst) rewrites
        the packet and remembers, per zone, how to undo that on its replies; nat alone
        undoes it on a reply of a known connection.  Without NAT, commit remembers the
        packet's 5-tuple in its zone, and a packet is established if its tuple, or its
        reverse, was committed there (a first packet is +new even as it commits)."""
        if ct.commit and (ct.nat_src or ct.nat_dst):
            self._commit(ct, pkt)
            pkt["ct_state"] = CT_TRACKED | CT_ESTABLISHED
        else:
            _, src, dst, _, _ = _tuple(pkt)
            undo = self._connections.get((ct.zone, src, dst))
            if undo is not None and ct.nat:
                pkt.update(undo)
            known = undo is not None or self.tracked(ct.zone, pkt)
            if ct.commit:
                self._tracked.add((ct.zone, _tuple(pkt)))
            pkt["ct_state"] = CT_TRACKED | (CT_ESTABLISHED if known else CT_NEW)
        if ct.table is not None:
            self._recirculate = Table(ct.table)

    def tracked(self, zone: int, pkt: Packet) -> bool:
        """Is `pkt` of a connection committed (without NAT) in `zone`, either way?"""
        t = _tuple(pkt)
        return (zone, t) in self._tracked or (zone, (t[0], t[2], t[1], t[4], t[3])) in self._tracked

    def connections(self) -> set[tuple[int, Tuple5]]:
        """The committed (zone, (proto, src, dst, sport, dport)) entries, as dump-conntrack lists them."""
        return set(self._tracked)

    def flush_conntrack(self, zone: int, proto: int, src: str, dst: str, dport: int = 0) -> int:
        """NXT_CT_FLUSH as OVS does it for a partial original tuple; returns the entries gone."""
        gone = {(z, t) for z, t in self._tracked
                if z == zone and t[0] == proto and (t[1], t[2]) == (src, dst) and dport in (0, t[4])}
        self._tracked -= gone
        return len(gone)

    def packet_out(self, actions: Iterable[Action], packet: Mapping[str, MatchValue]) -> Result:
        """A PacketOut's actions on `packet` (not through the tables)."""
        result = Result()
        flow = FlowSpec(Table.EGRESS, 1, Match.of(), tuple(actions))  # (may set addresses)
        self._run(flow, dict(packet), result)
        return result

    def _commit(self, ct: Conntrack, pkt: Packet) -> None:
        """Keyed by (zone, a reply's source, a reply's destination).  IPv4 or IPv6 (NAT66)
        as the packet is; a NAT address of the other family is an error, as in OVS."""
        ip = "ipv6" if "ipv6_src" in pkt else "ipv4"
        src, dst = str(pkt[f"{ip}_src"]), str(pkt[f"{ip}_dst"])
        to = ct.nat_src or ct.nat_dst
        if to is not None and (":" in to) != (ip == "ipv6"):
            raise FakeOFTableError(f"ct nat to {to} on an {ip} packet")
        if ct.nat_src:
            self._connections[(ct.zone, dst, ct.nat_src)] = {f"{ip}_dst": src}
            pkt[f"{ip}_src"] = ct.nat_src
            return
        assert ct.nat_dst is not None
        undo: Packet = {f"{ip}_src": dst}
        l4 = next((p for p in ("tcp", "udp") if f"{p}_dst" in pkt), None)
        if ct.nat_port and l4 is not None:
            undo[f"{l4}_src"] = pkt[f"{l4}_dst"]
            pkt[f"{l4}_dst"] = ct.nat_port
        self._connections[(ct.zone, ct.nat_dst, src)] = undo
        pkt[f"{ip}_dst"] = ct.nat_dst

    def _output(self, port: int, pkt: Packet, result: Result) -> None:
        in_port = require_field(pkt, "in_port")
        if port == OFPP_IN_PORT:
            port = as_int(in_port)
        elif port == in_port:
            return  # OpenFlow never sends a packet back out its in_port unless told OFPP_IN_PORT
        if port == OFPP_CONTROLLER:
            result.to_controller.append(("action", _visible(pkt)))
        elif port == OFPP_TABLE:
            raise FakeOFTableError("output to OFPP_TABLE is only valid in a packet-out")
        else:
            result.outputs.append((port, _visible(pkt)))


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
