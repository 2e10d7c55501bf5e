"""Egress to the outside world, source-NATed to the host's underlay IP with
OVS conntrack (design: the distributed router's gateway to the outside).

    S egress  A->X: dec_ttl, ip_src:=PIP(A), ct(commit, zone, nat(src=host IP)),
              eth:=host->underlay gateway, out uplink            (per A and X, idles out)
    S ingress to the host IP, untracked: ct(zone, nat) and back into table 20
    S ingress tracked+established to PIP(A): ip_dst:=A, eth:=gw->A, out port(A)

Tracking by PIP rather than logical IP keeps tenants with the same addresses
apart in one conntrack zone; replies come back un-NATed to PIP(A), which
only A has.
"""

from __future__ import annotations

from daolinet.flows.route import L4_FIELD
from daolinet.flows.spec import ETH_IP, Action, Conntrack, DecTtl, FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host
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
    come back by conntrack either way."""
    assert a.ofport is not None
    l4: dict[str, int] = {}
    if scope is not None:
        l4["ip_proto"] = scope[0]
        if scope[0] in L4_FIELD:
            l4[f"{L4_FIELD[scope[0]]}_dst"] = scope[1]
    cookie = external_cookie(a.id)
    egress: tuple[Action, ...] = (
        DecTtl(), SetField("ipv4_src", a.pip),
        Conntrack(zone=NAT_ZONE, commit=True, nat_src=host.underlay_ip),
        SetField("eth_src", host.underlay_mac), SetField("eth_dst", host.underlay_gateway_mac),
        Output(host.uplink_ofport),
    )
    back: tuple[Action, ...] = (
        SetField("ipv4_dst", a.ip), SetField("eth_src", GATEWAY_MAC), SetField("eth_dst", a.mac),
        Output(a.ofport),
    )
    tracked = (CT_TRACKED | CT_ESTABLISHED, CT_TRACKED | CT_ESTABLISHED)
    return [
        FlowSpec(Table.INGRESS, Priority.ROUTE,
                 Match.of(eth_type=ETH_IP, ct_state=tracked, ipv4_dst=a.pip), back,
                 cookie=cookie, idle_timeout=idle),
        FlowSpec(Table.EGRESS, Priority.PORT if l4 else Priority.ROUTE,
                 Match.of(in_port=a.ofport, eth_type=ETH_IP, ipv4_src=a.ip, ipv4_dst=dst_ip, **l4), egress,
                 cookie=cookie, idle_timeout=idle),
    ]
