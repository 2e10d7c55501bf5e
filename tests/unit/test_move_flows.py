"""A container moving under live traffic (flows/move.py), asserted by what packets do in
the fake OpenFlow pipeline at each phase of make-before-break: the peer's packets always
reach the container, first at its old port, then at its new one, and so do its own
packets to the peer, whichever of its two ports they leave by."""

from __future__ import annotations

import dataclasses

import pytest

from daolinet.flows.move import Repoint, grace_forward, move_cookie, moved_ends, repoint
from daolinet.flows.proactive import flows_for_endpoint
from daolinet.model import Endpoint, Host
from daolinet.pipeline import Cookie, Kind, Priority, Table
from daolinet.testing.factories import UPLINK, Topology, ip_from, small_topology
from daolinet.testing.fakeoftable import Packet, ip_packet

IDLE = 60


@pytest.fixture
def topo() -> Topology:
    return small_topology()


def moved(topo: Topology, e: Endpoint, host: str, ofport: int = 77) -> Endpoint:
    to = next(h for h in topo.hosts if h.name == host)
    pip = str(to.pool.network_address + 99)
    return dataclasses.replace(e, host=host, pip=pip, ofport=ofport, port="dl-new")


class Moving:
    """a (h1) and b (h2) talk; b moves to `to`: the phases, one call each."""

    def __init__(self, topo: Topology, to: str = "h3") -> None:
        self.topo = topo
        self.a, self.old = topo.endpoint("a"), topo.endpoint("b")
        self.new = moved(topo, self.old, to)
        self.h_old = topo.host_of(self.old)
        self.h_new = next(h for h in topo.hosts if h.name == to)
        self.net = topo.fake_network()
        self.net.apply_steps(topo.route_plan(self.a, self.old, IDLE).steps)
        self.plan: Repoint = repoint(topo.route_ends(self.a, self.old), self.old, self.new, self.h_new, IDLE)

    def make_new_host(self) -> None:
        self.net.apply(self.h_new.dpid, flows_for_endpoint(self.new))
        self.net.apply_steps((dpid, flows) for dpid, flows in self.plan.make if dpid == self.h_new.dpid)

    def make_peers(self) -> None:
        self.net.apply_steps((dpid, flows) for dpid, flows in self.plan.make if dpid != self.h_new.dpid)
        self.net.apply(self.h_old.dpid, [grace_forward(self.old, self.new, self.h_old, self.h_new, 2, 10)])

    def break_old(self) -> None:
        for dpid, spec in self.plan.stale:
            assert self.net[dpid].apply_delete(spec.table, match=spec.match, strict=True,
                                               priority=spec.priority)
        for spec in flows_for_endpoint(self.old):
            self.net[self.h_old.dpid].apply_delete(spec.table, match=spec.match, strict=True,
                                                   priority=spec.priority)

    def delivered(self, dpid: int, pkt: Packet) -> tuple[int, int, Packet]:
        trip = self.net.trace(dpid, pkt)
        assert not trip.controller and not trip.lost, trip
        [delivery] = trip.deliveries
        return delivery

    def to_b(self) -> tuple[int, int]:
        """Where a's packet to b is delivered (logical addresses restored)."""
        dpid, port, pkt = self.delivered(self.topo.host_of(self.a).dpid, ip_from(self.a, self.old.ip))
        assert (pkt["ipv4_src"], pkt["ipv4_dst"], pkt["eth_dst"]) == (self.a.ip, self.old.ip, self.old.mac)
        return dpid, port

    def in_flight(self) -> tuple[int, int]:
        """A packet of a's already on the underlay to b's old PIP when the route changed."""
        src_mac = self.topo.host_of(self.a).underlay_mac
        pkt = ip_packet(UPLINK, src_mac, self.h_old.underlay_mac, self.a.pip, self.old.pip, ttl=63)
        dpid, port, out = self.delivered(self.h_old.dpid, pkt)
        assert (out["ipv4_src"], out["ipv4_dst"]) == (self.a.ip, self.old.ip)
        return dpid, port

    def from_b(self, e: Endpoint) -> None:
        """b's packet to a, leaving by e's port (old or new), reaches a."""
        dpid, port, pkt = self.delivered(self.topo.host_of(e).dpid, ip_from(e, self.a.ip))
        assert (dpid, port) == (self.topo.host_of(self.a).dpid, self.a.ofport)
        assert pkt["ipv4_src"] == self.old.ip


def test_every_phase_of_a_move_delivers_both_ways(topo: Topology) -> None:
    m = Moving(topo)
    old_port, new_port = (m.h_old.dpid, m.old.ofport), (m.h_new.dpid, m.new.ofport)
    assert m.to_b() == old_port

    m.make_new_host()  # nothing changed for the peer yet
    assert m.to_b() == old_port and m.in_flight() == old_port
    m.from_b(m.old)

    m.make_peers()  # the peer sends to the new PIP; what is in flight to the old one follows
    assert m.to_b() == new_port and m.in_flight() == new_port
    m.from_b(m.old)  # the container has not switched interfaces yet
    m.from_b(m.new)

    m.break_old()  # the old port left: its path goes, the forward stays until it idles out
    assert m.to_b() == new_port and m.in_flight() == new_port
    m.from_b(m.new)
    assert not m.net.trace(m.h_old.dpid, ip_from(m.old, m.a.ip)).deliveries


def test_after_the_break_only_the_grace_forward_names_the_old_pip(topo: Topology) -> None:
    m = Moving(topo)
    m.make_new_host()
    m.make_peers()
    m.break_old()
    naming = [(sw.dpid, f) for sw in m.net.switches.values() for f in sw.flows() if m.old.pip in repr(f)]
    assert [(dpid, f.cookie) for dpid, f in naming] == [(m.h_old.dpid, move_cookie(m.old.id))]


def test_each_phase_applied_twice_changes_nothing(topo: Topology) -> None:
    m = Moving(topo)
    for phase in (m.make_new_host, m.make_peers):
        phase()
        before = {dpid: sw.flow_set() for dpid, sw in m.net.switches.items()}
        phase()
        assert {dpid: sw.flow_set() for dpid, sw in m.net.switches.items()} == before


def test_the_peers_egress_is_replaced_in_place_not_deleted(topo: Topology) -> None:
    m = Moving(topo)
    a_host = topo.host_of(m.a).dpid
    stale_on_peer = [f for dpid, f in m.plan.stale if dpid == a_host]
    assert [f.table for f in stale_on_peer] == [Table.INGRESS]  # only the ingress from the old PIP
    assert stale_on_peer[0].match.get("ipv4_src") == m.old.pip
    assert {dpid for dpid, _ in m.plan.make} == {m.h_new.dpid, a_host}
    assert m.plan.make[0][0] == m.h_new.dpid  # the new host's half first


def test_flows_per_switch_count_the_stale_flows_until_they_go(topo: Topology) -> None:
    m = Moving(topo)
    counts = m.plan.flows_per_switch()
    assert counts == {m.h_new.dpid: 2, topo.host_of(m.a).dpid: 3, m.h_old.dpid: 2}


def test_a_move_of_the_routes_first_end_keeps_the_moved_end_second(topo: Topology) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    new_a = moved(topo, a, "h3")
    h3 = topo.hosts[2]
    ends = moved_ends(topo.route_ends(a, b), a, new_a, h3)
    assert (ends.a, ends.b, ends.ha, ends.hb) == (b, new_a, topo.host_of(b), h3)
    assert ends.server_is_b is False  # b was the server: it is the first end now


def test_the_grace_forward_takes_only_uplink_packets_for_the_old_pip_above_every_route(
        topo: Topology) -> None:
    b = topo.endpoint("b")
    h2, h3 = topo.host_of(b), topo.hosts[2]
    f = grace_forward(b, moved(topo, b, "h3"), h2, h3, 2, 10)
    assert f.table is Table.INGRESS and f.priority > Priority.PORT
    assert f.match.as_dict() == {"in_port": h2.uplink_ofport, "eth_type": 0x0800, "ipv4_dst": b.pip}
    assert (f.idle_timeout, f.hard_timeout, f.send_flow_rem) == (2, 10, False)
    assert Cookie.decode(f.cookie) == Cookie(Kind.MOVE, 0, b.id)


def test_moving_onto_the_peers_host_makes_the_route_same_host(topo: Topology) -> None:
    # What is in flight to the old PIP then reaches the new host's controller (no ingress
    # flow on a same-host route), which hands it on: slower, not lost.
    m = Moving(topo, to="h1")
    m.make_new_host()
    m.make_peers()
    m.break_old()
    a_host: Host = topo.host_of(m.a)
    assert m.to_b() == (a_host.dpid, m.new.ofport)
    m.from_b(m.new)
