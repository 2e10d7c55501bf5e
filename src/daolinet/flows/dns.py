"""The flows that hand a container's DNS questions to its own host's agent (pure).

A container asks its network's gateway (IPv4 or IPv6), or the resolver address every
network shares (169.254.53.53, fd00:da01::53; Docker's `--dns` is daemon-wide, so one
address must serve every network), on UDP port 53.  In the guard, above every other guard flow, such a packet
goes out as a packet-in with controller id 53: OVS gives it only to the connections that
set that id - the agent's own service connection on the bridge's management socket
(agent/dns_link.py) - and never to a controller.  So a lookup never leaves the host: no
underlay, no controller, no host IP stack.  The asker is the packet's in_port, which
classify's anti-spoofing already vouched for.

One flow per address a host's containers may ask: the resolver address, and the
gateway of every network with a container on the host (two tenants' networks may share
a gateway address: one flow serves both, the agent tells them apart by in_port).  A
network's first container on a host adds its gateway's flow (controller/sync.py); a
gateway whose last container left stays until the switch's next sync.

UDP only: TCP to port 53 is routed (and denied) like any other connection.
"""

from __future__ import annotations

from daolinet.flows.spec import ETH_IP, ETH_IPV6, FlowSpec, Match, ToController
from daolinet.model import Endpoint, Host, View
from daolinet.model.addresses import RESOLVER4, RESOLVER6
from daolinet.model.family import V6, family_of
from daolinet.pipeline import Cookie, Kind, Priority, Table

DNS_CONTROLLER_ID = 53  # the agent's service connection sets this id
DNS_PORT = 53
UDP = 17
BASE = Cookie(Kind.BASE).value


def dns_flow(address: str) -> FlowSpec:
    """Questions to `address`:53/udp (IPv4 or IPv6) go to the agent."""
    if family_of(address) == V6:
        match = Match.of(eth_type=ETH_IPV6, ip_proto=UDP, ipv6_dst=address, udp_dst=DNS_PORT)
    else:
        match = Match.of(eth_type=ETH_IP, ip_proto=UDP, ipv4_dst=address, udp_dst=DNS_PORT)
    return FlowSpec(Table.GUARD, Priority.DNS, match, (ToController(controller_id=DNS_CONTROLLER_ID),),
                    cookie=BASE)


def dns_flow_for(view: View, e: Endpoint) -> list[FlowSpec]:
    """The flows for the gateways of `e`'s network (none if the network is gone)."""
    net = view.network_of(e)
    return [dns_flow(gw) for gw in (net.gateway, net.gateway6) if gw] if net is not None else []


def dns_flows(view: View, host: Host) -> list[FlowSpec]:
    """The resolvers' flows (the IPv6 one only on a host with IPv6) and one per gateway of
    the networks with a container on `host`."""
    gateways = {_address(f): f for e in view.endpoints_on(host.name) for f in dns_flow_for(view, e)}
    resolvers = [str(RESOLVER4), *([str(RESOLVER6)] if host.pip_pool6 else [])]
    ordered = sorted(gateways, key=lambda a: (family_of(a), a))  # IPv4 first
    return [*map(dns_flow, resolvers), *(gateways[k] for k in ordered)]


def _address(f: FlowSpec) -> str:
    return str(f.match.get("ipv4_dst") or f.match.get("ipv6_dst"))
