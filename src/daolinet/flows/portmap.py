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
"""

from __future__ import annotations

from daolinet.flows.route import next_hop_mac
from daolinet.flows.spec import ETH_IP, Action, Conntrack, FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host, Portmap
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


def flows_for_portmap(pm: Portmap, a: Endpoint, h: Host, s: Host,
                      sources: Sources = ANYONE) -> dict[int, list[FlowSpec]]:
    """{dpid: flows} of one mapping; A must be plugged.  `sources` become one inbound
    flow per rule above the default one (first match = highest priority): DNAT for
    an allowed network, drop for a denied one."""
    assert a.ofport is not None
    proto, f = PROTO[pm.protocol], pm.protocol

    def flow(table: Table, match: Match, actions: tuple[Action, ...]) -> FlowSpec:
        return FlowSpec(table, Priority.PORTMAP, match, actions, cookie=portmap_cookie(pm.id))

    def ip(**fields: object) -> Match:
        return Match.of(eth_type=ETH_IP, ip_proto=proto, **fields)  # type: ignore[arg-type]

    to_a: tuple[Action, ...] = (SetField("ipv4_dst", a.ip), SetField("eth_src", GATEWAY_MAC),
                                SetField("eth_dst", a.mac), Output(a.ofport))
    dnat = Conntrack(zone=PORTMAP_ZONE, commit=True, nat_dst=a.pip, nat_port=pm.container_port)
    undo = Conntrack(zone=PORTMAP_ZONE, nat=True, table=int(Table.INGRESS))
    out_h: tuple[Action, ...] = (SetField("eth_src", h.underlay_mac),
                                 SetField("eth_dst", h.underlay_gateway_mac or h.underlay_mac))
    inbound = flow(Table.INGRESS, ip(in_port=h.uplink_ofport, ipv4_dst=h.underlay_ip, ct_state=TRACKED,
                                     **{f"{f}_dst": pm.host_port}), ())
    back_out = flow(Table.INGRESS, ip(in_port=h.uplink_ofport, ct_state=ESTABLISHED,
                                      ipv4_src=h.underlay_ip, **{f"{f}_src": pm.host_port}),
                    (*out_h, Output(OFPP_IN_PORT)))
    if s.dpid == h.dpid:
        return {h.dpid: [
            *_inbound(inbound, (dnat, *to_a), sources),
            flow(Table.EGRESS, ip(in_port=a.ofport, ipv4_src=a.ip, **{f"{f}_src": pm.container_port}),
                 (SetField("ipv4_src", a.pip), undo)),
            flow(Table.INGRESS, ip(in_port=a.ofport, ct_state=ESTABLISHED, ipv4_src=h.underlay_ip,
                                   **{f"{f}_src": pm.host_port}), (*out_h, Output(h.uplink_ofport))),
            back_out,
        ]}
    to_s: tuple[Action, ...] = (
        Conntrack(zone=PORTMAP_SNAT_ZONE, commit=True, nat_src=h.underlay_ip),
        SetField("eth_src", h.underlay_mac), SetField("eth_dst", next_hop_mac(h, s)), Output(OFPP_IN_PORT))
    to_h: tuple[Action, ...] = (SetField("ipv4_src", a.pip), SetField("eth_src", s.underlay_mac),
                                SetField("eth_dst", next_hop_mac(s, h)), Output(s.uplink_ofport))
    from_a = {"in_port": h.uplink_ofport, "ipv4_src": a.pip, f"{f}_src": pm.container_port}
    return {
        h.dpid: [
            *_inbound(inbound, (Conntrack(zone=PORTMAP_ZONE, commit=True, nat_dst=a.pip,
                                          nat_port=pm.container_port, table=int(Table.INGRESS)),), sources),
            flow(Table.INGRESS, ip(in_port=h.uplink_ofport, ct_state=TRACKED, ipv4_dst=a.pip,
                                   **{f"{f}_dst": pm.container_port}), to_s),
            _above(flow(Table.INGRESS, ip(ct_state=TRACKED, ipv4_dst=h.underlay_ip, **from_a),
                        (Conntrack(zone=PORTMAP_SNAT_ZONE, nat=True, table=int(Table.INGRESS)),))),
            flow(Table.INGRESS, ip(ct_state=ESTABLISHED, **from_a), (undo,)),
            back_out,
        ],
        s.dpid: [
            flow(Table.INGRESS, ip(in_port=s.uplink_ofport, ipv4_dst=a.pip,
                                   **{f"{f}_dst": pm.container_port}), to_a),
            flow(Table.EGRESS, ip(in_port=a.ofport, ipv4_src=a.ip, **{f"{f}_src": pm.container_port}), to_h),
        ],
    }


def _inbound(spec: FlowSpec, dnat: tuple[Action, ...], sources: Sources) -> list[FlowSpec]:
    ordered, others = sources
    flows = [FlowSpec(spec.table, spec.priority + len(ordered) - i,
                      Match.of(**spec.match.as_dict(), ipv4_src=net), dnat if allowed else (),
                      cookie=spec.cookie)
             for i, (net, allowed) in enumerate(ordered)]
    return [*flows, _with(spec, dnat if others else ())]


def _with(spec: FlowSpec, actions: tuple[Action, ...]) -> FlowSpec:
    return FlowSpec(spec.table, spec.priority, spec.match, actions, cookie=spec.cookie)


def _above(spec: FlowSpec) -> FlowSpec:
    """One priority step up: more specific than the flow it would overlap."""
    return FlowSpec(spec.table, spec.priority + 1, spec.match, spec.actions, cookie=spec.cookie)
