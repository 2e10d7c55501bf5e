"""Model objects for tests: hosts, networks and endpoints of a small cluster,
addressed like the lab (lab/plan.py), and the packets its containers send.

    host i        dpid i, underlay 198.18.0.i/18, MAC 02:18:00:00:00:ii,
                  PIP pool 198.18.i.0/24, uplink ofport 1
    network n     10.n.0.0/24, gateway 10.n.0.1 (one tenant unless told)
    endpoint k    IP 10.n.0.(10+k), PIP 198.18.i.(10+k), MAC 02:00:00:00:00:kk,
                  ofports 2, 3, ... in order of placement on each host

and, made dual-stack (`dual_stack`):

    host i        underlay 2001:db8::i/64, PIP pool 2001:db8::i:0/112
    network n     fd00:n::/64, gateway fd00:n::1
    endpoint k    IP fd00:n::(10+k) (hex), PIP 2001:db8::i:(10+k)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from daolinet.flows.proactive import flows_for_host_switch, flows_for_switch
from daolinet.flows.route import RouteEnds, RoutePlan, flows_for_route
from daolinet.flows.spec import FlowSpec
from daolinet.model import Endpoint, Host, Network, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.pipeline import GATEWAY_MAC
from daolinet.testing.fakeoftable import FakeNetwork, Packet, arp_request, ip_packet, ipv6_packet

UPLINK = 1
FIRST_OFPORT = 2


def make_host(i: int, **changes: Any) -> Host:
    host = Host(name=f"h{i}", dpid=i, underlay_ip=f"198.18.0.{i}", underlay_mac=f"02:18:00:00:00:{i:02x}",
                pip_pool=f"198.18.{i}.0/24", underlay_prefix=18, uplink_ofport=UPLINK)
    return replace(host, **changes)


def make_network(n: int, tenant: str = DEFAULT_TENANT) -> Network:
    return Network(id=n, name=f"net{n}", tenant=tenant, subnet=f"10.{n}.0.0/24", gateway=f"10.{n}.0.1")


def make_endpoint(eid: int, host: Host, network: Network, ofport: int | None, name: str = "") -> Endpoint:
    ip = ipaddress.IPv4Network(network.subnet).network_address + 10 + eid
    pip = host.pool.network_address + 10 + eid
    return Endpoint(id=eid, name=name or f"c{eid}", tenant=network.tenant, network=network.name,
                    ip=str(ip), mac=f"02:00:00:00:{eid >> 8:02x}:{eid & 0xFF:02x}", host=host.name,
                    pip=str(pip), port=f"dl{eid}", ofport=ofport)


@dataclass(frozen=True)
class Topology:
    hosts: tuple[Host, ...]
    networks: tuple[Network, ...]
    endpoints: tuple[Endpoint, ...]

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)

    def host_of(self, e: Endpoint) -> Host:
        return next(h for h in self.hosts if h.name == e.host)

    def network_of(self, e: Endpoint) -> Network:
        return next(n for n in self.networks if (n.tenant, n.name) == (e.tenant, e.network))

    def endpoints_on(self, host: Host) -> list[Endpoint]:
        return [e for e in self.endpoints if e.host == host.name]

    def route_ends(self, a: Endpoint, b: Endpoint, family: int = 4) -> RouteEnds:
        return RouteEnds(a=a, b=b, ha=self.host_of(a), hb=self.host_of(b),
                         same_network=self.network_of(a) == self.network_of(b), family=family)

    def route_plan(self, a: Endpoint, b: Endpoint, idle_timeout: int = 60, family: int = 4) -> RoutePlan:
        return flows_for_route(self.route_ends(a, b, family), idle_timeout)

    def base_flows(self, host: Host) -> list[FlowSpec]:
        return flows_for_switch(host, self.endpoints_on(host))

    def fake_network(self, base: bool = True) -> FakeNetwork:
        """One fake switch per host on a shared underlay, holding its base flows unless told not to."""
        net = FakeNetwork.for_hosts(self.hosts)
        if base:
            for h in self.hosts:
                net.apply(h.dpid, self.base_flows(h))
        return net


def topology(placements: Sequence[tuple[int, int]], hosts: int = 2, networks: int = 1,
             names: Sequence[str] = ()) -> Topology:
    """Endpoints 1, 2, ... placed at (host index, network index), both 0-based."""
    hs = tuple(make_host(i + 1) for i in range(hosts))
    ns = tuple(make_network(n + 1) for n in range(networks))
    next_ofport = dict.fromkeys(range(hosts), FIRST_OFPORT)
    eps = []
    for k, (hi, ni) in enumerate(placements):
        eps.append(make_endpoint(k + 1, hs[hi], ns[ni], next_ofport[hi], names[k] if k < len(names) else ""))
        next_ofport[hi] += 1
    return Topology(hs, ns, tuple(eps))


def small_topology() -> Topology:
    """Three hosts, two networks of one tenant:

        a  h1 net1      b  h2 net1      c  h1 net1      d  h1 net2      e  h3 net2
    """
    return topology([(0, 0), (1, 0), (0, 0), (0, 1), (2, 1)], hosts=3, networks=2,
                    names="abcde")


def ip_from(e: Endpoint, dst_ip: str, ttl: int = 64, **changes: Any) -> Packet:
    """An IP packet as container `e` sends it: to the gateway MAC, from its own port."""
    assert e.ofport is not None
    pkt = ip_packet(e.ofport, e.mac, GATEWAY_MAC, e.ip, dst_ip, ttl=ttl)
    pkt.update(changes)
    return pkt


def arp_from(e: Endpoint, tpa: str, **changes: Any) -> Packet:
    """Container `e` asking who has `tpa`."""
    assert e.ofport is not None
    pkt = arp_request(e.ofport, e.mac, e.ip, tpa)
    pkt.update(changes)
    return pkt


def synced_network(view: View, hosts: Sequence[Host]) -> FakeNetwork:
    """The hosts' switches holding everything proactive the controller gives them, as after its sync."""
    net = FakeNetwork.for_hosts(hosts)
    for h in hosts:
        net.apply(h.dpid, flows_for_host_switch(view, h))
    return net


def dual_stack(topo: Topology) -> Topology:
    """`topo` with IPv6 on every host, network and endpoint (addressed as above)."""
    hosts = tuple(replace(h, underlay_ip6=f"2001:db8::{h.dpid:x}", pip_pool6=f"2001:db8::{h.dpid:x}:0/112")
                  for h in topo.hosts)
    networks = tuple(replace(n, subnet6=f"fd00:{n.id:x}::/64", gateway6=f"fd00:{n.id:x}::1")
                     for n in topo.networks)
    by_name = {h.name: h for h in hosts}

    def v6(e: Endpoint) -> Endpoint:
        net = next(n for n in networks if (n.tenant, n.name) == (e.tenant, e.network))
        pool = by_name[e.host].pool6
        assert net.net6 is not None and pool is not None
        return replace(e, ip6=str(net.net6.network_address + 10 + e.id),
                       pip6=str(pool.network_address + 10 + e.id))
    return Topology(hosts, networks, tuple(v6(e) for e in topo.endpoints))


def ipv6_from(e: Endpoint, dst_ip6: str, hop_limit: int = 64, **changes: Any) -> Packet:
    """An ICMPv6 echo request as container `e` sends it: to the gateway MAC, from its own port."""
    assert e.ofport is not None
    pkt = ipv6_packet(e.ofport, e.mac, GATEWAY_MAC, e.ip6, dst_ip6, hop_limit=hop_limit)
    pkt.update(changes)
    return pkt
