"""Egress to the outside world, source-NATed to the host's underlay IP with
OVS conntrack (design: the distributed router's gateway to the outside).

    S egress  A->X: dec_ttl, ip_src:=PIP(A), ct(commit, zone, nat(src=host IP)),
              eth:=host->underlay gateway, out uplink            (per A and X, idles out)
    S ingress to the host IP, untracked: ct(zone, nat) and back into table 20
    S ingress tracked+established to PIP(A): ip_dst:=A, eth:=gw->A, out port(A)

Tracking by PIP rather than logical IP keeps tenants with the same addresses
apart in one conntrack zone; replies come back un-NATed to PIP(A), which
only A has.

IPv6 the same way (family 6): NAT66, A's ip6 -> pip6 -> the host's underlay_ip6,
in the same zone (conntrack keeps the families apart), out to the same next hop
(the underlay gateway's MAC serves both families, as for IPv6 routes).  Decided:
NAT66 rather than routing containers' IPv6 addresses to the outside, so the
outside needs no route to any tenant's prefix (tenants reuse them, and a move
changes nothing outside), exactly as for IPv4; the price is IPv6's end-to-end
addressing, which no container has towards the outside anyway.
"""

from __future__ import annotations

from daolinet.flows.route import FIELDS, L4_FIELD, flow_proto
from daolinet.flows.spec import Action, Conntrack, DecTtl, FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host
from daolinet.model.family import family_of, ip_of, pip_of, underlay_ip_of
from daolinet.pipeline import (
    CT_ESTABLISHED,
    CT_TRACKED,
    GATEWAY_MAC,
    NAT_ZONE,
    Cookie,
    Kind,
    Priority,
    Table,
)


def external_cookie(eid: int) -> int:
    return Cookie(Kind.EXTERNAL, 0, eid).value


def flows_for_external(a: Endpoint, host: Host, dst_ip: str, idle: int,
                       scope: tuple[int, int] | None = None) -> list[FlowSpec]:
    """With a scope (protocol, port) only that traffic goes out ("cidr:" rules); replies
    come back by conntrack either way.  The family is dst_ip's."""
    assert a.ofport is not None
    family = family_of(dst_ip)
    eth_type, src_field, dst_field = FIELDS[family]
    l4: dict[str, int] = {}
    if scope is not None:
        l4["ip_proto"] = flow_proto(scope[0], family)
        if scope[0] in L4_FIELD:
            l4[f"{L4_FIELD[scope[0]]}_dst"] = scope[1]
    cookie = external_cookie(a.id)
    egress: tuple[Action, ...] = (
        DecTtl(), SetField(src_field, pip_of(a, family)),
        Conntrack(zone=NAT_ZONE, commit=True, nat_src=underlay_ip_of(host, family)),
        SetField("eth_src", host.underlay_mac), SetField("eth_dst", host.underlay_gateway_mac),
        Output(host.uplink_ofport),
    )
    back: tuple[Action, ...] = (
        SetField(dst_field, ip_of(a, family)), SetField("eth_src", GATEWAY_MAC), SetField("eth_dst", a.mac),
        Output(a.ofport),
    )
    tracked = (CT_TRACKED | CT_ESTABLISHED, CT_TRACKED | CT_ESTABLISHED)
    return [
        FlowSpec(Table.INGRESS, Priority.ROUTE,
                 Match.of(eth_type=eth_type, ct_state=tracked, **{dst_field: pip_of(a, family)}), back,
                 cookie=cookie, idle_timeout=idle),
        FlowSpec(Table.EGRESS, Priority.PORT if l4 else Priority.ROUTE,
                 Match.of(in_port=a.ofport, eth_type=eth_type,
                          **{src_field: ip_of(a, family), dst_field: dst_ip}, **l4), egress,
                 cookie=cookie, idle_timeout=idle),
    ]
