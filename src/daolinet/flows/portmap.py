"""Port mappings: host H's underlay IP:HP -> container A:CP, wherever A runs
(on S, maybe H itself).  Proactive: O(mappings) flows, on H and S only.

    H t20  to H:HP (tracked)       ct(commit, zone 2, nat(dst=PIP(A):CP)),
                                   then to A (S = H) or to S by the underlay
    S t20  to PIP(A):CP            ip_dst:=A, eth:=gw->A, out A          (S != H)
    S t10  from A:CP               ip_src:=PIP(A), to H                   (S != H)
       or  from A:CP               ip_src:=PIP(A), ct(zone 2, nat) and back to t20   (S = H)
    H t20  from H:HP, established  eth:=H->gateway, out the uplink

When A runs elsewhere (S != H), H also source-NATs to its own address (zone 3),
so A's replies are addressed to H and return through it over any underlay,
routed or not; A then sees H as the client.  On the same host A sees the
real client.  The replies at H: un-SNAT (zone 3), un-DNAT (zone 2), out.

DNAT to PIP(A), not A's logical IP: PIPs are unique across tenants, so one
zone serves every tenant.  Mapping flows sit below routes, so A's own
connections from CP keep using their routes.

IPv6: a mapping also answers on H's underlay_ip6 when A has an IPv6 address (and H
one, and A a pip6): the same flows with IPv6 fields (`family=6`), DNAT to PIP6(A),
H's SNAT to its underlay_ip6; the same zones (conntrack keeps the families apart).
`families(a, h)` says which a mapping serves.
"""

from __future__ import annotations

from daolinet.flows.route import FIELDS, next_hop_mac
from daolinet.flows.spec import Action, Conntrack, FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host, Portmap
from daolinet.model.family import V4, V6, ip_of, pip_of, underlay_ip_of
from daolinet.pipeline import (
    CT_ESTABLISHED,
    CT_TRACKED,
    GATEWAY_MAC,
    OFPP_IN_PORT,
    PORTMAP_SNAT_ZONE,
    PORTMAP_ZONE,
    Cookie,
    Kind,
    Priority,
    Table,
)

PROTO = {"tcp": 6, "udp": 17}
TRACKED = (CT_TRACKED, CT_TRACKED)
ESTABLISHED = (CT_TRACKED | CT_ESTABLISHED, CT_TRACKED | CT_ESTABLISHED)


def portmap_cookie(pm_id: int) -> int:
    return Cookie(Kind.PORTMAP, 0, pm_id).value


# Who outside may use a mapping (decide/policy.Policy.sources_of): the "cidr:" rules that
# match it, in evaluation order, as (network, allowed), and whether any other source may.
Sources = tuple[tuple[tuple[str, bool], ...], bool]
ANYONE: Sources = ((), True)


def flows_for_portmap(pm: Portmap, a: Endpoint, h: Host, s: Host, sources: Sources = ANYONE,
                      family: int = V4) -> dict[int, list[FlowSpec]]:
    """{dpid: flows} of one mapping over one family (IPv6: on h's underlay_ip6, to a's
    pip6; the caller checks both exist); A must be plugged.  `sources` (of that family)
    become one inbound flow per rule above the default one (first match = highest
    priority): DNAT for an allowed network, drop for a denied one."""
    assert a.ofport is not None
    proto, f = PROTO[pm.protocol], pm.protocol
    eth_type, src_f, dst_f = FIELDS[family]
    a_ip, a_pip, h_ip = ip_of(a, family), pip_of(a, family), underlay_ip_of(h, family)

    def flow(table: Table, match: Match, actions: tuple[Action, ...]) -> FlowSpec:
        return FlowSpec(table, Priority.PORTMAP, match, actions, cookie=portmap_cookie(pm.id))

    def ip(**fields: object) -> Match:
        return Match.of(eth_type=eth_type, ip_proto=proto, **fields)  # type: ignore[arg-type]

    to_a: tuple[Action, ...] = (SetField(dst_f, a_ip), SetField("eth_src", GATEWAY_MAC),
                                SetField("eth_dst", a.mac), Output(a.ofport))
    dnat = Conntrack(zone=PORTMAP_ZONE, commit=True, nat_dst=a_pip, nat_port=pm.container_port)
    undo = Conntrack(zone=PORTMAP_ZONE, nat=True, table=int(Table.INGRESS))
    out_h: tuple[Action, ...] = (SetField("eth_src", h.underlay_mac),
                                 SetField("eth_dst", h.underlay_gateway_mac or h.underlay_mac))
    inbound = flow(Table.INGRESS, ip(in_port=h.uplink_ofport, ct_state=TRACKED,
                                     **{dst_f: h_ip, f"{f}_dst": pm.host_port}), ())
    back_out = flow(Table.INGRESS, ip(in_port=h.uplink_ofport, ct_state=ESTABLISHED,
                                      **{src_f: h_ip, f"{f}_src": pm.host_port}),
                    (*out_h, Output(OFPP_IN_PORT)))
    if s.dpid == h.dpid:
        return {h.dpid: [
            *_inbound(inbound, (dnat, *to_a), sources, src_f),
            flow(Table.EGRESS, ip(in_port=a.ofport, **{src_f: a_ip, f"{f}_src": pm.container_port}),
                 (SetField(src_f, a_pip), undo)),
            flow(Table.INGRESS, ip(in_port=a.ofport, ct_state=ESTABLISHED,
                                   **{src_f: h_ip, f"{f}_src": pm.host_port}),
                 (*out_h, Output(h.uplink_ofport))),
            back_out,
        ]}
    to_s: tuple[Action, ...] = (
        Conntrack(zone=PORTMAP_SNAT_ZONE, commit=True, nat_src=h_ip),
        SetField("eth_src", h.underlay_mac), SetField("eth_dst", next_hop_mac(h, s)), Output(OFPP_IN_PORT))
    to_h: tuple[Action, ...] = (SetField(src_f, a_pip), SetField("eth_src", s.underlay_mac),
                                SetField("eth_dst", next_hop_mac(s, h)), Output(s.uplink_ofport))
    from_a = {"in_port": h.uplink_ofport, src_f: a_pip, f"{f}_src": pm.container_port}
    return {
        h.dpid: [
            *_inbound(inbound, (Conntrack(zone=PORTMAP_ZONE, commit=True, nat_dst=a_pip,
                                          nat_port=pm.container_port, table=int(Table.INGRESS)),), sources,
                      src_f),
            flow(Table.INGRESS, ip(in_port=h.uplink_ofport, ct_state=TRACKED,
                                   **{dst_f: a_pip, f"{f}_dst": pm.container_port}), to_s),
            _above(flow(Table.INGRESS, ip(ct_state=TRACKED, **{dst_f: h_ip}, **from_a),
                        (Conntrack(zone=PORTMAP_SNAT_ZONE, nat=True, table=int(Table.INGRESS)),))),
            flow(Table.INGRESS, ip(ct_state=ESTABLISHED, **from_a), (undo,)),
            back_out,
        ],
        s.dpid: [
            flow(Table.INGRESS, ip(in_port=s.uplink_ofport, **{dst_f: a_pip, f"{f}_dst": pm.container_port}),
                 to_a),
            flow(Table.EGRESS, ip(in_port=a.ofport, **{src_f: a_ip, f"{f}_src": pm.container_port}), to_h),
        ],
    }


def families(a: Endpoint, h: Host) -> tuple[int, ...]:
    """The families a mapping on h to a serves: IPv4, and IPv6 when both ends have it."""
    return (V4, V6) if a.ip6 and a.pip6 and h.underlay_ip6 else (V4,)


def _inbound(spec: FlowSpec, dnat: tuple[Action, ...], sources: Sources, src_f: str) -> list[FlowSpec]:
    ordered, others = sources
    flows = [FlowSpec(spec.table, spec.priority + len(ordered) - i,
                      Match.of(**spec.match.as_dict(), **{src_f: net}), dnat if allowed else (),
                      cookie=spec.cookie)
             for i, (net, allowed) in enumerate(ordered)]
    return [*flows, _with(spec, dnat if others else ())]


def _with(spec: FlowSpec, actions: tuple[Action, ...]) -> FlowSpec:
    return FlowSpec(spec.table, spec.priority, spec.match, actions, cookie=spec.cookie)


def _above(spec: FlowSpec) -> FlowSpec:
    """One priority step up: more specific than the flow it would overlap."""
    return FlowSpec(spec.table, spec.priority + 1, spec.match, spec.actions, cookie=spec.cookie)
