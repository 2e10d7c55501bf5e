"""Hot-plug route flows: compile a route decision into per-switch FlowSpecs.

Cross-host, four flows, both directions at once:

    S egress   A->B: dec_ttl, ipv4_src:=PIP(A), ipv4_dst:=PIP(B), eth:=S->D, out uplink
    D ingress  PIP(A)->PIP(B): dec_ttl, restore logical IPs, eth:=gw->B, out port(B)
    D egress   B->A  and  S ingress PIP(B)->PIP(A): the mirror pair

Same host, two flows: MAC rewrite, out port (dec_ttl when subnets differ).

An L4 route (a scope) is stateful on its client's host, and there only: the
client's flow commits each packet to conntrack (after the PIP rewrite), the
flow towards the client only sends the packet through ct() to table STATEFUL,
where a copy of it matching ct_state=+trk+est delivers: only the connections
the client opened are answered, the rest miss and drop.  The server's host,
and every route without a scope, stay conntrack-free.

A route is of one family (`RouteEnds.family`): IPv4 flows match and rewrite
ipv4_src/ipv4_dst (ip <-> pip), IPv6 flows ipv6_src/ipv6_dst (ip6 <-> pip6),
with the same shape, priorities and cookie (one cookie per pair: revoking it
deletes both families; docs/pipeline.md).  OVS's dec_ttl decrements the IPv6
hop limit as it does the IPv4 TTL.  An ICMP scope (the policy judges ICMPv6 as
ICMP: decide/route.py) matches ip_proto 58 in IPv6 flows.  The next hop on the
underlay is the same MAC for both families (one underlay router routes both).

dec_ttl comes first, so a packet whose TTL runs out reaches the controller
as it arrived at that hop (logical IPs on S, PIPs on D): never ambiguous.
Steps come destination first: the shell installs them in order, with a
barrier after each, and re-injects the packet on the source last.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from daolinet.flows.spec import (
    ETH_IP,
    ETH_IPV6,
    IPPROTO_ICMPV6,
    Action,
    Conntrack,
    DecTtl,
    FlowSpec,
    Match,
    Output,
    SetField,
)
from daolinet.model import Endpoint, Host
from daolinet.model.family import V6, family_of, ip_of, pip_of
from daolinet.pipeline import (
    CT_ESTABLISHED,
    CT_TRACKED,
    GATEWAY_MAC,
    Kind,
    Priority,
    Table,
    route_cookie,
    route_zone,
)


@dataclass(frozen=True)
class RouteEnds:
    """Everything a route's flows depend on."""

    a: Endpoint  # the side whose packet triggered the route
    b: Endpoint
    ha: Host
    hb: Host
    same_network: bool
    scope: tuple[int, int] | None = None  # (ip_proto, server port): L4-specific flows
    server_is_b: bool = True
    family: int = 4  # 4 or 6: which addresses the flows match and rewrite

    def l4_match(self, towards_b: bool) -> dict[str, int]:
        """Extra match fields of the flows towards b, or towards a (empty when port-agnostic)."""
        if self.scope is None:
            return {}
        proto, port = self.scope
        fields = {"ip_proto": flow_proto(proto, self.family)}
        if proto in L4_FIELD:
            towards_server = towards_b == self.server_is_b
            fields[f"{L4_FIELD[proto]}_{'dst' if towards_server else 'src'}"] = port
        return fields

    @property
    def client(self) -> Endpoint:
        """The end that opens the connections of a scoped route."""
        return self.a if self.server_is_b else self.b

    def ct_zone(self) -> int:
        """The conntrack zone of a scoped route's connections (pipeline.route_zone)."""
        assert self.scope is not None
        same_host = self.ha.dpid == self.hb.dpid
        return route_zone(self.scope[0], self.client.ofport if same_host else None)


L4_FIELD = {6: "tcp", 17: "udp"}
ICMP = 1
# Per family: (EtherType, source address field, destination address field).
FIELDS = {4: (ETH_IP, "ipv4_src", "ipv4_dst"), 6: (ETH_IPV6, "ipv6_src", "ipv6_dst")}


def flow_proto(proto: int, family: int) -> int:
    """The ip_proto a flow matches for a scope's protocol: ICMP is ICMPv6 in IPv6."""
    return IPPROTO_ICMPV6 if proto == ICMP and family == V6 else proto


def ip_match(family: int, src: str, dst: str, **fields: int) -> dict[str, int | str]:
    """The match fields of an IP packet of `family` from src to dst."""
    eth_type, src_field, dst_field = FIELDS[family]
    return {"eth_type": eth_type, src_field: src, dst_field: dst, **fields}


def set_ips(family: int, src: str, dst: str) -> tuple[SetField, SetField]:
    """Rewrite an IP packet of `family`'s addresses to src and dst."""
    _, src_field, dst_field = FIELDS[family]
    return SetField(src_field, src), SetField(dst_field, dst)


@dataclass(frozen=True)
class RoutePlan:
    cookie: int
    steps: tuple[tuple[int, tuple[FlowSpec, ...]], ...]  # (dpid, flows), in install order


def next_hop_is_peer(src: Host, dst: Host) -> bool:
    """True if frames from host src reach host dst directly (same segment, or no
    underlay gateway to send them to)."""
    return src.same_segment(dst) or not src.underlay_gateway_mac


def next_hop_mac(src: Host, dst: Host) -> str:
    """The MAC a frame from host src to host dst is sent to: dst itself on the
    same segment, else src's underlay gateway."""
    return dst.underlay_mac if next_hop_is_peer(src, dst) else src.underlay_gateway_mac


def cookie_of(ends: RouteEnds) -> int:
    """The cookie every flow of the route carries: it names the pair."""
    return route_cookie(ends.a.id, ends.b.id).value


def _egress_cross(x: Endpoint, y: Endpoint, hx: Host, hy: Host, cookie: int, idle: int,
                  l4: dict[str, int], family: int) -> FlowSpec:
    actions: tuple[Action, ...] = (
        DecTtl(),
        *set_ips(family, pip_of(x, family), pip_of(y, family)),
        SetField("eth_src", hx.underlay_mac), SetField("eth_dst", next_hop_mac(hx, hy)),
        Output(hx.uplink_ofport),
    )
    return FlowSpec(Table.EGRESS, _prio(l4), _egress_match(x, y, l4, family), actions,
                    cookie=cookie, idle_timeout=idle, send_flow_rem=True)


def _prio(l4: dict[str, int]) -> int:
    return Priority.PORT if l4 else Priority.ROUTE


def _ingress_cross(x: Endpoint, y: Endpoint, hy: Host, cookie: int, idle: int,
                   l4: dict[str, int], family: int) -> FlowSpec:
    assert y.ofport is not None
    match = Match.of(in_port=hy.uplink_ofport, **ip_match(family, pip_of(x, family), pip_of(y, family), **l4))
    actions: tuple[Action, ...] = (
        DecTtl(),
        *set_ips(family, ip_of(x, family), ip_of(y, family)),
        SetField("eth_src", GATEWAY_MAC), SetField("eth_dst", y.mac),
        Output(y.ofport),
    )
    return FlowSpec(Table.INGRESS, _prio(l4), match, actions,
                    cookie=cookie, idle_timeout=idle, send_flow_rem=True)


def _egress_local(x: Endpoint, y: Endpoint, routed: bool, cookie: int, idle: int,
                  l4: dict[str, int], family: int) -> FlowSpec:
    assert y.ofport is not None
    actions: tuple[Action, ...] = (
        *((DecTtl(),) if routed else ()),
        SetField("eth_src", GATEWAY_MAC), SetField("eth_dst", y.mac), Output(y.ofport),
    )
    return FlowSpec(Table.EGRESS, _prio(l4), _egress_match(x, y, l4, family), actions,
                    cookie=cookie, idle_timeout=idle, send_flow_rem=True)


def _egress_match(x: Endpoint, y: Endpoint, l4: dict[str, int], family: int) -> Match:
    assert x.ofport is not None
    return Match.of(in_port=x.ofport, **ip_match(family, ip_of(x, family), ip_of(y, family), **l4))


def flows_for_route(ends: RouteEnds, idle_timeout: int) -> RoutePlan:
    a, b, ha, hb, family = ends.a, ends.b, ends.ha, ends.hb, ends.family
    cookie = cookie_of(ends)
    to_b, to_a = ends.l4_match(True), ends.l4_match(False)
    if ha.dpid == hb.dpid:
        routed = not ends.same_network
        flows = (_egress_local(a, b, routed, cookie, idle_timeout, to_b, family),
                 _egress_local(b, a, routed, cookie, idle_timeout, to_a, family))
        mine = 0 if ends.server_is_b else 1  # the client's flow
        return RoutePlan(cookie, ((ha.dpid, _stateful(ends, flows, mine, 1 - mine)),))
    dst_flows: tuple[FlowSpec, ...] = (_ingress_cross(a, b, hb, cookie, idle_timeout, to_b, family),
                 _egress_cross(b, a, hb, ha, cookie, idle_timeout, to_a, family))
    src_flows: tuple[FlowSpec, ...] = (_ingress_cross(b, a, ha, cookie, idle_timeout, to_a, family),
                 _egress_cross(a, b, ha, hb, cookie, idle_timeout, to_b, family))
    if ends.scope is not None and not ends.server_is_b:  # b is the client: its host is stateful
        dst_flows = _stateful(ends, dst_flows, 1, 0)
    else:
        src_flows = _stateful(ends, src_flows, 1, 0)
    return RoutePlan(cookie, ((hb.dpid, dst_flows), (ha.dpid, src_flows)))


def _stateful(ends: RouteEnds, flows: tuple[FlowSpec, ...], out: int,
              back: int) -> tuple[FlowSpec, ...]:
    """The client's host's flows of a scoped route: flows[out] (the client's) commits,
    flows[back] (towards the client) only passes conntrack, and its copy in table
    STATEFUL delivers established connections (installed first).  Unscoped: as they are."""
    if ends.scope is None:
        return flows
    zone = ends.ct_zone()
    mine, theirs = flows[out], flows[back]
    at = next(i for i, act in enumerate(mine.actions) if isinstance(act, SetField) and act.field == "eth_src")
    commit = replace(mine, actions=(*mine.actions[:at], Conntrack(zone, commit=True), *mine.actions[at:]))
    established = Match.of(**theirs.match.as_dict(), ct_state=(CT_TRACKED | CT_ESTABLISHED,) * 2)
    deliver = replace(theirs, table=Table.STATEFUL, match=established)
    guard = replace(theirs, actions=(Conntrack(zone, table=int(Table.STATEFUL)),))
    return (deliver, guard, commit)


def drop_flow(src: Endpoint, dst_ip: str, hard_timeout: int,
              scope: tuple[int, int] | None = None) -> FlowSpec:
    """Damp repeats of a denied or unknown destination for a few seconds; with a
    scope (protocol, destination port) only that traffic, above the routes.  The
    family is dst_ip's."""
    assert src.ofport is not None
    family = family_of(dst_ip)
    l4: dict[str, int] = {}
    if scope is not None:
        proto, port = scope
        l4["ip_proto"] = flow_proto(proto, family)
        if proto in L4_FIELD and port:
            l4[f"{L4_FIELD[proto]}_dst"] = port
    match = Match.of(in_port=src.ofport, **ip_match(family, ip_of(src, family), dst_ip, **l4))
    return FlowSpec(Table.EGRESS, _prio(l4), match, (),
                    cookie=route_cookie(src.id, 0, Kind.DROP).value, hard_timeout=hard_timeout)
