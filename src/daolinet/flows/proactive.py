"""Everything proactive a host's switch holds, decided from the View alone (pure):
its pipeline and per-port classify flows (here: O(1) per host plus O(1) per
container on it; nothing grows with the cluster), the guard's drops to every
infrastructure address (flows/infra.py), and the port mappings' flows
(flows/portmap.py) with what lets containers reach them.  controller/sync.py
sends these and reconciles them with what the switch reports; the agent's
bootstrap puts the pipeline in before any controller is reached."""

from __future__ import annotations

from daolinet.decide.route import policy_of
from daolinet.flows.dns import dns_flows
from daolinet.flows.infra import flow_for_mapped_replies, flow_to_portmap, flows_for_infra, guard_prefixes
from daolinet.flows.ndp import flows_for_endpoint6, flows_for_host6, has_ipv6
from daolinet.flows.portmap import PROTO, families, flows_for_portmap
from daolinet.flows.spec import (
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    Action,
    Conntrack,
    FlowSpec,
    Match,
    Move,
    Output,
    SetField,
    ToController,
)
from daolinet.model import Endpoint, Host, Portmap, View
from daolinet.pipeline import (
    CT_TRACKED,
    GATEWAY_MAC,
    NAT_ZONE,
    OFPP_IN_PORT,
    OFPP_LOCAL,
    Cookie,
    Kind,
    Priority,
    Table,
)

ARP_REQUEST = 1
ARP_REPLY = 2

BASE = Cookie(Kind.BASE).value


def arp_reply(mac: str) -> tuple[Action, ...]:
    """Turn an ARP request around in place: "tpa is at `mac`", out the port it came in."""
    return (
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", mac),
        SetField("arp_op", ARP_REPLY),
        Move("arp_sha", "arp_tha", 48),
        SetField("arp_sha", mac),
        Move("arp_tpa", "reg0", 32),
        Move("arp_spa", "arp_tpa", 32),
        Move("reg0", "arp_spa", 32),
        Output(OFPP_IN_PORT),
    )


def flows_for_host(host: Host) -> list[FlowSpec]:
    up = host.uplink_ofport

    def flow(table: Table, prio: int, match: Match, actions: tuple[Action, ...] = (),
             goto: Table | None = None) -> FlowSpec:
        return FlowSpec(table, prio, match, actions, goto=goto, cookie=BASE)

    return [
        # classify: the host's own traffic leaves by the uplink; the uplink's splits by type
        flow(Table.CLASSIFY, Priority.HOST, Match.of(in_port=OFPP_LOCAL), (Output(up),)),
        flow(Table.CLASSIFY, Priority.HOST, Match.of(in_port=up, eth_type=ETH_IP), goto=Table.INGRESS),
        flow(Table.CLASSIFY, Priority.HOST, Match.of(in_port=up, eth_type=ETH_ARP), goto=Table.ARP),
        flow(Table.CLASSIFY, Priority.MISS, Match.of()),
        # guard: what flows/infra.py does not drop or let pass goes on to the routes
        flow(Table.GUARD, Priority.MISS, Match.of(), goto=Table.EGRESS),
        # egress: no route yet -> ask the controller
        flow(Table.EGRESS, Priority.MISS, Match.of(), (ToController(),)),
        # ingress: the host's own address (after conntrack: NATed replies turn back to
        # their container); anything else unknown -> controller (re-plug)
        nat_return_flow(host, BASE),
        *nat_return_flows6(host, BASE),
        flow(Table.INGRESS, Priority.HOST, Match.of(eth_type=ETH_IP, ipv4_dst=host.underlay_ip),
             (Output(OFPP_LOCAL),)),
        flow(Table.INGRESS, Priority.MISS, Match.of(), (ToController(),)),
        # stateful: an L4 route's replies not of a connection its client opened
        flow(Table.STATEFUL, Priority.MISS, Match.of()),
        # arp: the owning host answers for its PIPs; other uplink ARP is the host's own
        flow(Table.ARP, Priority.SPECIFIC,
             Match.of(in_port=up, eth_type=ETH_ARP, arp_op=ARP_REQUEST, arp_tpa=host.pip_pool),
             arp_reply(host.underlay_mac)),
        flow(Table.ARP, Priority.HOST, Match.of(in_port=up), (Output(OFPP_LOCAL),)),
        # containers: every address they ask for is the gateway (they never learn real MACs)
        flow(Table.ARP, Priority.LOW, Match.of(eth_type=ETH_ARP, arp_op=ARP_REQUEST),
             arp_reply(GATEWAY_MAC)),
        flow(Table.ARP, Priority.MISS, Match.of()),
        # IPv6 (only on a host with an IPv6 PIP pool or underlay address): flows/ndp.py
        *flows_for_host6(host),
    ]


def nat_return_flow(host: Host, base_cookie: int) -> FlowSpec:
    """Everything for the host's own address passes conntrack first, so NATed
    replies find their way back; the rest is the host's and goes LOCAL after."""
    return FlowSpec(Table.INGRESS, Priority.SPECIFIC,
                    Match.of(in_port=host.uplink_ofport, eth_type=ETH_IP, ipv4_dst=host.underlay_ip,
                             ct_state=(0, CT_TRACKED)),
                    (Conntrack(zone=NAT_ZONE, nat=True, table=int(Table.INGRESS)),), cookie=base_cookie)


def nat_return_flows6(host: Host, base_cookie: int) -> list[FlowSpec]:
    """nat_return_flow for the host's underlay_ip6 (NAT66, flows/external.py); none
    without one.  Its ND goes to table NDP from classify, never here."""
    if not host.underlay_ip6:
        return []
    return [FlowSpec(Table.INGRESS, Priority.SPECIFIC,
                     Match.of(in_port=host.uplink_ofport, eth_type=ETH_IPV6, ipv6_dst=host.underlay_ip6,
                              ct_state=(0, CT_TRACKED)),
                     (Conntrack(zone=NAT_ZONE, nat=True, table=int(Table.INGRESS)),), cookie=base_cookie)]


def flows_for_endpoint(e: Endpoint) -> list[FlowSpec]:
    """Anti-spoofing: only (port, MAC, IP) as assigned gets past classify (IPv6 too, for a
    container with an IPv6 address: flows/ndp.py)."""
    assert e.ofport is not None, "an unplugged endpoint has no flows"
    return [
        FlowSpec(Table.CLASSIFY, Priority.PORT,
                 Match.of(in_port=e.ofport, eth_src=e.mac, eth_type=ETH_IP, ipv4_src=e.ip),
                 goto=Table.GUARD, cookie=BASE),
        FlowSpec(Table.CLASSIFY, Priority.PORT,
                 Match.of(in_port=e.ofport, eth_src=e.mac, eth_type=ETH_ARP, arp_spa=e.ip,
                          arp_sha=e.mac),
                 goto=Table.ARP, cookie=BASE),
        *flows_for_endpoint6(e),
    ]


def flows_for_switch(host: Host, endpoints: list[Endpoint]) -> list[FlowSpec]:
    """Everything proactive a host's bridge should hold."""
    flows = flows_for_host(host)
    for e in endpoints:
        if e.ofport is not None:
            flows += flows_for_endpoint(e)
    return flows


def guard_flows(view: View) -> list[FlowSpec]:
    """The guard's drops (flows/infra.py): the same on every host, decided once for all.
    IPv6 ones only once some host has IPv6 (before, no container can send any)."""
    infra = view.infra_ips()
    segments = [f"{h.underlay_ip}/{h.underlay_prefix}" for h in view.hosts.values()]
    subnets = [n.subnet for n in view.networks.values()]
    flows = flows_for_infra(guard_prefixes(infra, segments, subnets))
    if any(has_ipv6(h) for h in view.hosts.values()):
        segments6 = [f"{h.underlay_ip6}/{h.underlay_prefix6}" for h in view.hosts.values() if h.underlay_ip6]
        subnets6 = [n.subnet6 for n in view.networks.values() if n.subnet6]
        flows += flows_for_infra(guard_prefixes(infra, segments6, subnets6, version=6))
    return flows


def shared_flows(view: View) -> list[FlowSpec]:
    """What every host's switch holds alike: the guard's drops and what lets containers
    reach the port mappings."""
    return guard_flows(view) + [f for pm in view.portmaps.values() for f in to_portmap(view, pm)]


def own_flows(view: View, host: Host) -> list[FlowSpec]:
    """What only this host's switch holds: its pipeline, its containers' classify flows,
    the DNS flows of their networks, the port mappings' flows on it."""
    wanted = flows_for_switch(host, view.endpoints_on(host.name)) + dns_flows(view, host)
    for pm in view.portmaps.values():
        wanted += portmap_flows(view, pm).get(host.dpid, [])
    return wanted


def flows_for_host_switch(view: View, host: Host) -> list[FlowSpec]:
    return own_flows(view, host) + shared_flows(view)


def portmap_flows(view: View, pm: Portmap) -> dict[int, list[FlowSpec]]:
    """The mapping's flows per dpid (on its host and its container's); none while its
    container is not plugged."""
    a = view.endpoint_named(pm.tenant, pm.container)
    h = view.hosts.get(pm.host)
    s = view.host_of(a) if a else None
    if a is None or a.ofport is None or h is None or s is None:
        return {}
    flows: dict[int, list[FlowSpec]] = {}
    for family in families(a, h):
        ordered, others = policy_of(view).sources_of(a, PROTO[pm.protocol], pm.container_port, family)
        sources = (tuple((net, r.action == "allow") for net, r in ordered), others)
        for dpid, some in flows_for_portmap(pm, a, h, s, sources, family).items():
            flows.setdefault(dpid, []).extend(some)
        flows.setdefault(s.dpid, []).append(flow_for_mapped_replies(pm, a, h, s, family))
    return flows


def to_portmap(view: View, pm: Portmap) -> list[FlowSpec]:
    """What lets any host's containers reach the mapping (nothing while it is not plugged)."""
    a, h = view.endpoint_named(pm.tenant, pm.container), view.hosts.get(pm.host)
    if a is None or a.ofport is None or view.host_of(a) is None or h is None:
        return []
    return [flow_to_portmap(pm, h, family) for family in families(a, h)]
