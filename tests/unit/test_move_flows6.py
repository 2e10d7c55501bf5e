"""A dual-stack container moving (flows/move.py): its IPv6 route is re-pointed as its IPv4
one is, to its new pip6, and its old host forwards what still arrives for its old pip6."""

from __future__ import annotations

import dataclasses

from daolinet.flows.move import grace_forward, repoint
from daolinet.flows.proactive import flows_for_endpoint
from daolinet.model import Endpoint
from daolinet.testing.factories import UPLINK, Topology, dual_stack, ipv6_from, small_topology
from daolinet.testing.fakeoftable import ipv6_packet

IDLE = 60
TOPO: Topology = dual_stack(small_topology())
A, OLD = TOPO.endpoint("a"), TOPO.endpoint("b")  # on h1 and h2
H1, H_OLD = TOPO.host_of(A), TOPO.host_of(OLD)
H_NEW = next(h for h in TOPO.hosts if h.name == "h3")
NEW: Endpoint = dataclasses.replace(OLD, host="h3", pip=str(H_NEW.pool.network_address + 99),
                                    pip6=str(H_NEW.pool6.network_address + 99),  # type: ignore[union-attr]
                                    ofport=77, port="dl-new")


def delivered(net: object, dpid: int, pkt: dict[str, object]) -> tuple[int, int, dict[str, object]]:
    trip = net.trace(dpid, pkt)  # type: ignore[attr-defined]
    assert not trip.controller and not trip.lost, trip
    [(at, port, out)] = trip.deliveries
    return at, port, out


def test_the_ipv6_route_follows_the_container_and_the_old_pip6_is_forwarded() -> None:
    net = TOPO.fake_network()
    net.apply_steps(TOPO.route_plan(A, OLD, IDLE, family=6).steps)
    assert delivered(net, H1.dpid, ipv6_from(A, OLD.ip6))[:2] == (H_OLD.dpid, OLD.ofport)
    plan = repoint(TOPO.route_ends(A, OLD, family=6), OLD, NEW, H_NEW, IDLE)
    assert plan.family == 6
    net.apply(H_NEW.dpid, flows_for_endpoint(NEW))
    net.apply_steps(plan.make)
    net.apply(H_OLD.dpid, [grace_forward(OLD, NEW, H_OLD, H_NEW, 2, 10, family=6)])
    at, port, out = delivered(net, H1.dpid, ipv6_from(A, OLD.ip6))
    assert (at, port, out["ipv6_src"], out["ipv6_dst"], out["ip_ttl"]) == (H_NEW.dpid, 77, A.ip6, OLD.ip6, 62)
    in_flight = ipv6_packet(UPLINK, H1.underlay_mac, H_OLD.underlay_mac, A.pip6, OLD.pip6, hop_limit=63)
    at, port, out = delivered(net, H_OLD.dpid, in_flight)  # on to the new pip6, restored there
    assert (at, port, out["ipv6_src"], out["ipv6_dst"]) == (H_NEW.dpid, 77, A.ip6, OLD.ip6)
    back = ipv6_from(NEW, A.ip6, in_port=77)
    assert delivered(net, H_NEW.dpid, back)[:2] == (H1.dpid, A.ofport)


def test_the_ipv4_grace_forward_is_unchanged_and_the_ipv6_one_matches_pip6() -> None:
    v4 = grace_forward(OLD, NEW, H_OLD, H_NEW, 2, 10)
    v6 = grace_forward(OLD, NEW, H_OLD, H_NEW, 2, 10, family=6)
    assert v4.match.get("ipv4_dst") == OLD.pip and v4.match.get("eth_type") == 0x0800
    assert v6.match.get("ipv6_dst") == OLD.pip6 and v6.match.get("eth_type") == 0x86DD
    assert v6.cookie == v4.cookie and v6.priority == v4.priority
