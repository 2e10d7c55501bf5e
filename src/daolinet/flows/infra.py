"""Infrastructure is not a destination (docs/pipeline.md): every host's guard table drops
its containers' packets to every infrastructure address - each host's underlay IP,
each controller's recorded addresses, each etcd member's (View.infra_ips) - before
any route is looked up, for containers on every network, external or not.  Only a
published port mapping passes, for its protocol and port alone.  Pure.

IPv6 the same way, once any host has IPv6 (flows/proactive.py guard_flows): its
underlay segment (underlay_ip6/underlay_prefix6) and IPv6 infrastructure addresses.

The drops go by prefix, not by address (`guard_prefixes`): one per underlay segment
(a host's underlay IP and prefix: its uplink's subnet; hosts on one segment share it),
which covers every host, PIP and control-plane address on it, plus the infrastructure
addresses outside every segment (a controller elsewhere), collapsed.  A segment that
overlaps some tenant's network is not dropped whole (its containers would lose each
other): only its infrastructure addresses are.  So a switch holds O(segments) drops,
not O(hosts), whatever the cluster's size.

    every host  t5   ip, nw_dst=X[/len]                 drop                  (X infrastructure)
    every host  t5   ip, proto, nw_dst=H, dport=HP      -> t10                (a mapping on H)
    S           t5   from M, proto, sport=CP[, nw_dst=H] -> t10              (M's replies, M on S)

Proactive: O(infrastructure addresses + mappings) flows per host.  A container A
(on S) reaching H:HP is then an egress miss like any other, and the controller
plugs two flows on S alone (flows_for_portmap_client), as for a client outside:

    S t10  from A to H:HP    dec_ttl, ip_src:=PIP(A), eth:=S->H, out uplink          (S != H)
                        or   dec_ttl, ip_src:=PIP(A), in_port:=uplink, goto t20     (S = H)
    S t20  from H:HP to PIP(A)   ip_dst:=A, eth:=gw->A, out A

H serves it with the mapping's own flows (flows/portmap.py), as if PIP(A) came
over the underlay; on H itself the packet is handed to table 20 as if it had.
The mapped container M's replies leave M's host towards H (M elsewhere) or, with
M on H, through the mapping's conntrack (only established connections get out),
whichever address the client had: they pass the guard too.  IPv6 the same way, on
H's underlay_ip6, for mappings that serve IPv6 (flows/portmap.py `families`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from daolinet.flows.portmap import PROTO, portmap_cookie
from daolinet.flows.route import FIELDS, next_hop_mac
from daolinet.flows.spec import ETH_IP, ETH_IPV6, Action, DecTtl, FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host, Portmap
from daolinet.model.family import V4, V6, family_of, ip_of, pip_of, underlay_ip_of
from daolinet.pipeline import GATEWAY_MAC, OFPP_IN_PORT, Cookie, Kind, Priority, Table

BASE = Cookie(Kind.BASE).value  # the guard's drops are part of the pipeline (flows/proactive.py)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def guard_prefixes(addresses: Iterable[str], segments: Iterable[str], subnets: Iterable[str],
                   version: int = 4) -> list[str]:
    """What the guard drops of one IP version: every underlay segment ("ip/len") that
    overlaps none of the `subnets` (tenants' networks) whole, and every infrastructure
    address outside those, collapsed into the fewest prefixes covering exactly that;
    sorted (an address alone for one, "address/len" for more: as a switch reports them
    back).  Addresses of the other version, and names, are left out."""
    nets = [n for n in map(ipaddress.ip_network, set(subnets)) if n.version == version]
    segs = {ipaddress.ip_network(s, strict=False) for s in segments}
    whole = [seg for seg in segs if seg.version == version and not any(seg.overlaps(n) for n in nets)]
    merged = _collapse(whole)
    rest = [ipaddress.ip_network(ip) for ip in map(_address, set(addresses))
            if ip is not None and ip.version == version and not any(ip in seg for seg in merged)]
    out = _collapse(merged + rest)
    return sorted((str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in out),
                  key=lambda p: (ipaddress.ip_network(p).network_address, p))


def _collapse(nets: list[Network]) -> list[Network]:
    """The fewest prefixes covering exactly `nets` (all of one version)."""
    return list(ipaddress.collapse_addresses(nets))  # type: ignore[type-var]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address, or None (a name: no flow can match it)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def flows_for_infra(prefixes: Iterable[str]) -> list[FlowSpec]:
    """The guard's drops (`guard_prefixes`), the same on every host."""
    return [flow_for_infra(p) for p in prefixes]


def flow_for_infra(prefix: str) -> FlowSpec:
    if family_of(prefix) == V6:
        match = Match.of(eth_type=ETH_IPV6, ipv6_dst=prefix)
    else:
        match = Match.of(eth_type=ETH_IP, ipv4_dst=prefix)
    return FlowSpec(Table.GUARD, Priority.INFRA, match, cookie=BASE)


def guard_change(was: list[FlowSpec], now: list[FlowSpec]) -> tuple[list[FlowSpec], list[FlowSpec]]:
    """(drops to add, drops to delete) on every host when the guard went from `was` to `now`."""
    old, new = set(was), set(now)
    return [f for f in now if f not in old], [f for f in was if f not in new]


def flow_to_portmap(pm: Portmap, h: Host, family: int = V4) -> FlowSpec:
    """On every host: packets to mapping pm (on host h) pass the guard."""
    eth_type, _, dst_f = FIELDS[family]
    fields: dict[str, int | str] = {dst_f: underlay_ip_of(h, family), f"{pm.protocol}_dst": pm.host_port}
    return _passes(pm, Match.of(eth_type=eth_type, ip_proto=PROTO[pm.protocol], **fields))


def flow_for_mapped_replies(pm: Portmap, m: Endpoint, h: Host, s: Host, family: int = V4) -> FlowSpec:
    """On s, the host of mapping pm's container m: m's replies pass the guard (to h when
    m runs elsewhere; with m on h, to whichever client, through the mapping's conntrack)."""
    assert m.ofport is not None
    eth_type, src_f, dst_f = FIELDS[family]
    fields: dict[str, int | str] = {"in_port": m.ofport, src_f: ip_of(m, family),
                                    f"{pm.protocol}_src": pm.container_port}
    if s.dpid != h.dpid:
        fields[dst_f] = underlay_ip_of(h, family)
    return _passes(pm, Match.of(eth_type=eth_type, ip_proto=PROTO[pm.protocol], **fields))


def _passes(pm: Portmap, match: Match) -> FlowSpec:
    return FlowSpec(Table.GUARD, Priority.INFRA_EXCEPT, match, goto=Table.EGRESS,
                    cookie=portmap_cookie(pm.id))


def client_cookie(eid: int, pm_id: int) -> int:
    """A container's flows to one mapping: the mapping's kind, the container in a,
    the mapping in b (deleted with either)."""
    return Cookie(Kind.PORTMAP, eid, pm_id).value


def flows_for_portmap_client(a: Endpoint, s: Host, pm: Portmap, h: Host, idle: int,
                             family: int = V4) -> list[FlowSpec]:
    """Container a (on host s) to mapping pm on host h: its two flows on s.  The mapped
    container itself on h (a hairpin) gets its replies back out the port they came in by.
    IPv6 (`family` 6) to h's underlay_ip6, from a's pip6."""
    assert a.ofport is not None
    hairpin = s.dpid == h.dpid and (a.tenant, a.name) == (pm.tenant, pm.container)
    proto, f = PROTO[pm.protocol], pm.protocol
    eth_type, src_f, dst_f = FIELDS[family]
    a_ip, a_pip, h_ip = ip_of(a, family), pip_of(a, family), underlay_ip_of(h, family)
    cookie = client_cookie(a.id, pm.id)
    out: tuple[Action, ...] = (DecTtl(), SetField(src_f, a_pip))
    goto = None
    if s.dpid == h.dpid:
        out, goto = (*out, SetField("in_port", s.uplink_ofport)), Table.INGRESS
    else:
        out = (*out, SetField("eth_src", s.underlay_mac), SetField("eth_dst", next_hop_mac(s, h)),
               Output(s.uplink_ofport))
    back: tuple[Action, ...] = (SetField(dst_f, a_ip), SetField("eth_src", GATEWAY_MAC),
                                SetField("eth_dst", a.mac), Output(OFPP_IN_PORT if hairpin else a.ofport))
    there: dict[str, int | str] = {src_f: a_ip, dst_f: h_ip, f"{f}_dst": pm.host_port}
    again: dict[str, int | str] = {src_f: h_ip, dst_f: a_pip, f"{f}_src": pm.host_port}
    return [
        FlowSpec(Table.EGRESS, Priority.PORTMAP_CLIENT,
                 Match.of(in_port=a.ofport, eth_type=eth_type, ip_proto=proto, **there),
                 out, goto=goto, cookie=cookie, idle_timeout=idle),
        FlowSpec(Table.INGRESS, Priority.PORTMAP_CLIENT, Match.of(eth_type=eth_type, ip_proto=proto, **again),
                 back, cookie=cookie, idle_timeout=idle),
    ]
