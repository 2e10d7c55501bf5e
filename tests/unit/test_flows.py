"""Proactive and hot-plug route flows, asserted by what packets do in a fake
OpenFlow 1.3 pipeline (testing/fakeoftable.py), not by message lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.flows import route
from daolinet.flows.proactive import flows_for_switch
from daolinet.flows.spec import ETH_IP, DecTtl, FlowSpec, FlowSpecError, Match, Output, SetField
from daolinet.model import Endpoint, Host
from daolinet.pipeline import (
    EID_A_MASK,
    GATEWAY_MAC,
    KIND_MASK,
    OFPP_LOCAL,
    Cookie,
    Kind,
    Priority,
    Table,
    route_cookie,
)
from daolinet.testing.factories import Topology, arp_from, ip_from, small_topology, topology
from daolinet.testing.fakeoftable import (
    BROADCAST,
    FakeNetwork,
    FakeOFTableError,
    FakeSwitch,
    Packet,
    arp_request,
    ip_packet,
)

ROUTER_MAC = "02:18:00:00:00:fe"
ROUTER_IP = "198.18.0.254"


@pytest.fixture
def topo() -> Topology:
    return small_topology()


@pytest.fixture
def net(topo: Topology) -> FakeNetwork:
    return topo.fake_network()


def install_route(topo: Topology, net: FakeNetwork, a: Endpoint, b: Endpoint) -> None:
    net.apply_steps(topo.route_plan(a, b).steps)


def only_delivery(net: FakeNetwork, host: Host, pkt: Packet) -> tuple[int, int, Packet]:
    trip = net.trace(host.dpid, pkt)
    assert not trip.controller, trip.controller
    assert len(trip.deliveries) == 1, trip.deliveries
    return trip.deliveries[0]


# -- hot-plug routes ----------------------------------------------------------------

def test_cross_host_route_crosses_the_underlay_with_pips_and_arrives_with_logical_ips(
        topo: Topology, net: FakeNetwork) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    s, d = topo.host_of(a), topo.host_of(b)
    install_route(topo, net, a, b)

    trip = net.trace(s.dpid, ip_from(a, b.ip, ttl=64))

    assert not trip.controller and not trip.lost
    [wire] = trip.underlay
    assert (wire.src_dpid, wire.dst_dpid) == (s.dpid, d.dpid)
    assert wire.packet["ipv4_src"] == a.pip and wire.packet["ipv4_dst"] == b.pip
    assert wire.packet["eth_src"] == s.underlay_mac and wire.packet["eth_dst"] == d.underlay_mac
    assert wire.packet["ip_ttl"] == 63
    [(dpid, port, pkt)] = trip.deliveries
    assert (dpid, port) == (d.dpid, b.ofport)
    assert pkt["ipv4_src"] == a.ip and pkt["ipv4_dst"] == b.ip
    assert pkt["eth_src"] == GATEWAY_MAC and pkt["eth_dst"] == b.mac
    assert pkt["ip_ttl"] == 62


def test_cross_host_route_carries_the_reply(topo: Topology, net: FakeNetwork) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    install_route(topo, net, a, b)

    dpid, port, pkt = only_delivery(net, topo.host_of(b), ip_from(b, a.ip))

    assert (dpid, port) == (topo.host_of(a).dpid, a.ofport)
    assert (pkt["ipv4_src"], pkt["ipv4_dst"]) == (b.ip, a.ip)
    assert (pkt["eth_src"], pkt["eth_dst"]) == (GATEWAY_MAC, a.mac)


@pytest.mark.parametrize(("dst", "ttl_after"), [("c", 64), ("d", 63)], ids=["same-network", "routed"])
def test_same_host_route_rewrites_macs_and_decrements_ttl_only_when_routed(
        topo: Topology, net: FakeNetwork, dst: str, ttl_after: int) -> None:
    a, b = topo.endpoint("a"), topo.endpoint(dst)
    h = topo.host_of(a)
    assert topo.host_of(b) == h
    install_route(topo, net, a, b)

    for src, dest in ((a, b), (b, a)):
        trip = net.trace(h.dpid, ip_from(src, dest.ip, ttl=64))
        assert not trip.underlay and not trip.controller
        [(dpid, port, pkt)] = trip.deliveries
        assert (dpid, port) == (h.dpid, dest.ofport)
        assert (pkt["ipv4_src"], pkt["ipv4_dst"]) == (src.ip, dest.ip)
        assert (pkt["eth_src"], pkt["eth_dst"]) == (GATEWAY_MAC, dest.mac)
        assert pkt["ip_ttl"] == ttl_after


def test_without_a_route_the_first_packet_goes_to_the_controller_from_egress(
        topo: Topology, net: FakeNetwork) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    s = topo.host_of(a)

    trip = net.trace(s.dpid, ip_from(a, b.ip))

    assert not trip.deliveries and not trip.underlay
    [(dpid, reason, pkt)] = trip.controller
    assert (dpid, reason) == (s.dpid, "no_match")
    assert (pkt["in_port"], pkt["ipv4_src"], pkt["ipv4_dst"]) == (a.ofport, a.ip, b.ip)
    [(_, result)] = trip.results
    assert result.path[-1].table == Table.EGRESS


def test_a_route_leaves_other_destinations_to_the_controller(topo: Topology, net: FakeNetwork) -> None:
    a, b, e = topo.endpoint("a"), topo.endpoint("b"), topo.endpoint("e")
    install_route(topo, net, a, b)

    trip = net.trace(topo.host_of(a).dpid, ip_from(a, e.ip))

    assert [(d, r) for d, r, _ in trip.controller] == [(topo.host_of(a).dpid, "no_match")]


@pytest.mark.parametrize(("ttl", "where"), [(1, "source"), (2, "destination")])
def test_a_packet_whose_ttl_runs_out_goes_to_that_hops_controller(
        topo: Topology, net: FakeNetwork, ttl: int, where: str) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    s, d = topo.host_of(a), topo.host_of(b)
    install_route(topo, net, a, b)

    trip = net.trace(s.dpid, ip_from(a, b.ip, ttl=ttl))

    assert not trip.deliveries
    hop = s if where == "source" else d
    assert [(dpid, reason) for dpid, reason, _ in trip.controller] == [(hop.dpid, "invalid_ttl")]


def test_without_invalid_ttl_packet_ins_an_expired_packet_is_dropped(topo: Topology) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    sw = FakeSwitch(topo.host_of(a).dpid, invalid_ttl_to_controller=False)
    sw.apply(topo.base_flows(topo.host_of(a)))
    sw.apply(f for dpid, flows in topo.route_plan(a, b).steps if dpid == sw.dpid for f in flows)
    assert sw.lookup(ip_from(a, b.ip, ttl=1)).dropped
    assert sw.lookup(ip_from(a, b.ip, ttl=2)).outputs


def test_deleting_a_route_by_cookie_removes_exactly_its_flows(topo: Topology, net: FakeNetwork) -> None:
    a, b, c = topo.endpoint("a"), topo.endpoint("b"), topo.endpoint("c")
    base = {dpid: sw.flow_set() for dpid, sw in net.switches.items()}
    install_route(topo, net, a, b)
    install_route(topo, net, a, c)

    cookie = route_cookie(a.id, b.id).value
    for sw in net.switches.values():
        sw.apply_delete(cookie=cookie, cookie_mask=(1 << 64) - 1)

    assert net.trace(topo.host_of(a).dpid, ip_from(a, b.ip)).controller
    assert only_delivery(net, topo.host_of(a), ip_from(a, c.ip))[1] == c.ofport
    for sw in net.switches.values():
        sw.apply_delete(cookie=Cookie(Kind.ROUTE, a=a.id).value, cookie_mask=KIND_MASK | EID_A_MASK)
        assert sw.flow_set() == base[sw.dpid]


# -- drop flows ---------------------------------------------------------------------

def test_a_drop_flow_drops_silently_until_a_route_replaces_it(topo: Topology, net: FakeNetwork) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    s = topo.host_of(a)
    net.apply(s.dpid, [route.drop_flow(a, b.ip, hard_timeout=5)])

    trip = net.trace(s.dpid, ip_from(a, b.ip))
    assert not trip.deliveries and not trip.controller and not trip.underlay
    assert trip.results[0][1].path[-1].cookie >> 56 == Kind.DROP

    install_route(topo, net, a, b)
    assert only_delivery(net, s, ip_from(a, b.ip))[1] == b.ofport


# -- anti-spoofing ------------------------------------------------------------------

@pytest.mark.parametrize("forged", [
    {"ipv4_src": "10.1.0.200"},
    {"eth_src": "02:66:66:66:66:66"},
    {"ipv4_src": "10.1.0.12"},  # b's address, from a's port
    {"in_port": 9},  # a's addresses from a port nobody owns
], ids=["ip", "mac", "neighbour-ip", "port"])
def test_forged_ip_packets_are_dropped_in_classify(topo: Topology, net: FakeNetwork,
                                                   forged: dict[str, str | int]) -> None:
    a, b = topo.endpoint("a"), topo.endpoint("b")
    install_route(topo, net, a, b)

    trip = net.trace(topo.host_of(a).dpid, {**ip_from(a, b.ip), **forged})

    assert not trip.deliveries and not trip.controller and not trip.underlay
    [(_, result)] = trip.results
    assert result.dropped and [f.table for f in result.path] == [Table.CLASSIFY]


@pytest.mark.parametrize("forged", [
    {"arp_spa": "10.1.0.200"},
    {"arp_sha": "02:66:66:66:66:66"},
    {"eth_src": "02:66:66:66:66:66"},
])
def test_forged_arp_is_dropped_in_classify(topo: Topology, net: FakeNetwork,
                                           forged: dict[str, str]) -> None:
    a = topo.endpoint("a")
    result = net[topo.host_of(a).dpid].lookup(arp_from(a, "10.1.0.1", **forged))
    assert result.dropped and [f.table for f in result.path] == [Table.CLASSIFY]


# -- ARP ----------------------------------------------------------------------------

@pytest.mark.parametrize("tpa", ["10.1.0.1", "10.1.0.12", "10.2.0.14", "192.0.2.7"])
def test_containers_learn_the_gateway_mac_for_every_address(topo: Topology, net: FakeNetwork,
                                                           tpa: str) -> None:
    a = topo.endpoint("a")

    dpid, port, reply = only_delivery(net, topo.host_of(a), arp_from(a, tpa))

    assert (dpid, port) == (topo.host_of(a).dpid, a.ofport)
    assert reply["arp_op"] == 2
    assert (reply["arp_sha"], reply["arp_spa"]) == (GATEWAY_MAC, tpa)
    assert (reply["arp_tha"], reply["arp_tpa"]) == (a.mac, a.ip)
    assert (reply["eth_src"], reply["eth_dst"]) == (GATEWAY_MAC, a.mac)


@pytest.mark.parametrize("tpa", ["198.18.2.12", "198.18.2.250"], ids=["used-pip", "free-pip"])
def test_a_host_answers_uplink_arp_for_its_pip_pool(topo: Topology, net: FakeNetwork, tpa: str) -> None:
    d = topo.host_of(topo.endpoint("b"))

    result = net[d.dpid].lookup(arp_request(d.uplink_ofport, ROUTER_MAC, ROUTER_IP, tpa))

    [(port, reply)] = result.outputs
    assert port == d.uplink_ofport
    assert reply["arp_op"] == 2
    assert (reply["arp_sha"], reply["arp_spa"]) == (d.underlay_mac, tpa)
    assert (reply["arp_tha"], reply["arp_tpa"]) == (ROUTER_MAC, ROUTER_IP)
    assert (reply["eth_src"], reply["eth_dst"]) == (d.underlay_mac, ROUTER_MAC)


def test_a_hosts_arp_for_a_pip_is_answered_by_its_owner_across_the_underlay(
        topo: Topology, net: FakeNetwork) -> None:
    b = topo.endpoint("b")
    s, d = topo.hosts[0], topo.host_of(b)
    assert s != d

    trip = net.trace(s.dpid, arp_request(OFPP_LOCAL, s.underlay_mac, s.underlay_ip, b.pip))

    replies = [x for x in trip.deliveries if x.packet["arp_op"] == 2]
    [(dpid, port, reply)] = replies
    assert (dpid, port) == (s.dpid, OFPP_LOCAL)
    assert (reply["arp_sha"], reply["arp_spa"]) == (d.underlay_mac, b.pip)
    # the broadcast request also reaches the other hosts' kernels, and nothing else
    assert all(x.port == OFPP_LOCAL for x in trip.deliveries)


def test_uplink_arp_for_the_hosts_own_address_goes_to_local(topo: Topology, net: FakeNetwork) -> None:
    h = topo.hosts[0]
    for op in (1, 2):
        pkt = {**arp_request(h.uplink_ofport, ROUTER_MAC, ROUTER_IP, h.underlay_ip), "arp_op": op}
        result = net[h.dpid].lookup(pkt)
        assert [port for port, _ in result.outputs] == [OFPP_LOCAL]
        assert result.outputs[0][1]["arp_sha"] == ROUTER_MAC  # untouched


# -- the host's own traffic -----------------------------------------------------------

def test_host_traffic_leaves_by_the_uplink(topo: Topology, net: FakeNetwork) -> None:
    h = topo.hosts[0]
    pkt = ip_packet(OFPP_LOCAL, h.underlay_mac, ROUTER_MAC, h.underlay_ip, "198.18.64.9")
    result = net[h.dpid].lookup(pkt)
    assert result.outputs == [(h.uplink_ofport, pkt)]


def test_uplink_ip_for_the_hosts_address_goes_to_local(topo: Topology, net: FakeNetwork) -> None:
    s, d = topo.hosts[0], topo.hosts[1]
    pkt = ip_packet(OFPP_LOCAL, s.underlay_mac, d.underlay_mac, s.underlay_ip, d.underlay_ip)

    dpid, port, got = only_delivery(net, s, pkt)

    assert (dpid, port) == (d.dpid, OFPP_LOCAL)
    assert got["ip_ttl"] == 64 and got["ipv4_dst"] == d.underlay_ip


def test_uplink_ip_for_an_unknown_pip_goes_to_the_controller(topo: Topology, net: FakeNetwork) -> None:
    d = topo.hosts[1]
    pkt = ip_packet(d.uplink_ofport, ROUTER_MAC, d.underlay_mac, "198.18.1.77", "198.18.2.77")

    result = net[d.dpid].lookup(pkt)

    assert [r for r, _ in result.to_controller] == ["no_match"] and not result.outputs
    assert result.path[-1].table == Table.INGRESS


# -- flows as data ------------------------------------------------------------------

def test_applying_the_same_flows_twice_changes_nothing(topo: Topology) -> None:
    a, b, d = topo.endpoint("a"), topo.endpoint("b"), topo.endpoint("d")
    plans = [topo.route_plan(a, b), topo.route_plan(a, d), topo.route_plan(b, a)]
    sw = FakeSwitch(topo.hosts[0].dpid)
    batch = topo.base_flows(topo.hosts[0]) + [f for p in plans for dpid, fs in p.steps for f in fs
                                              if dpid == sw.dpid]
    sw.apply(batch)
    once = sw.flows()
    sw.apply(batch)
    assert sw.flows() == once
    assert sw.flow_set() == frozenset(batch)


def test_base_flows_never_collide_on_table_priority_and_match(topo: Topology) -> None:
    for h in topo.hosts:
        flows = topo.base_flows(h)
        assert len({f.key for f in flows}) == len(flows)


def test_unplugged_endpoints_get_no_flows(topo: Topology) -> None:
    h = topo.hosts[0]
    unplugged = [Endpoint(**{**e.to_json(), "ofport": None}) for e in topo.endpoints_on(h)]
    assert flows_for_switch(h, unplugged) == flows_for_switch(h, [])


@pytest.mark.parametrize("make", [
    lambda: FlowSpec(Table.CLASSIFY, Priority.PORT, Match.of(ipv4_dst="10.1.0.1")),
    lambda: FlowSpec(Table.EGRESS, Priority.ROUTE, Match.of(arp_tpa="10.1.0.1")),
    lambda: FlowSpec(Table.EGRESS, Priority.ROUTE, Match.of(), (SetField("arp_op", 2),)),
    lambda: FlowSpec(Table.CLASSIFY, Priority.PORT, Match.of(), (SetField("eth_dst", GATEWAY_MAC),)),
    lambda: FlowSpec(Table.EGRESS, Priority.ROUTE, Match.of(), goto=Table.ARP),
    lambda: FlowSpec(Table.ARP, Priority.LOW, Match.of(), goto=Table.CLASSIFY),
], ids=["classify-ipv4_dst", "egress-arp_tpa", "egress-set-arp_op", "classify-set", "egress-goto",
        "arp-goto"])
def test_a_spec_breaking_its_tables_rules_is_refused(make: object) -> None:
    with pytest.raises(FlowSpecError):
        make()  # type: ignore[operator]


# -- the fake itself: where it refuses to guess --------------------------------------------

def test_fake_switch_refuses_flows_without_match_prerequisites() -> None:
    sw = FakeSwitch(1)
    with pytest.raises(FakeOFTableError, match="eth_type"):
        sw.apply_add(FlowSpec(Table.EGRESS, Priority.ROUTE, Match.of(ipv4_dst="10.1.0.1")))
    with pytest.raises(FakeOFTableError, match="eth_type"):
        sw.apply_add(FlowSpec(Table.EGRESS, Priority.ROUTE, Match.of(in_port=2), (DecTtl(), Output(1))))


def test_fake_switch_refuses_to_choose_between_tied_overlapping_flows() -> None:
    sw = FakeSwitch(1)
    sw.apply([FlowSpec(Table.CLASSIFY, 10, Match.of(in_port=2)),
              FlowSpec(Table.CLASSIFY, 10, Match.of(eth_type=ETH_IP))])
    with pytest.raises(FakeOFTableError, match="tie"):
        sw.lookup(ip_packet(2, "02:00:00:00:00:01", BROADCAST, "10.1.0.2", "10.1.0.3"))


def test_fake_switch_never_outputs_to_the_in_port_unless_told_in_port() -> None:
    sw = FakeSwitch(1)
    sw.apply_add(FlowSpec(Table.CLASSIFY, 10, Match.of(), (Output(2), Output(3))))
    result = sw.lookup(ip_packet(2, "02:00:00:00:00:01", BROADCAST, "10.1.0.2", "10.1.0.3"))
    assert [port for port, _ in result.outputs] == [3]


def test_fake_switch_non_strict_delete_takes_flows_at_least_as_specific() -> None:
    sw = FakeSwitch(1)
    flows = [FlowSpec(Table.EGRESS, Priority.ROUTE, Match.of(eth_type=ETH_IP, ipv4_dst=ip))
             for ip in ("10.1.0.5", "10.2.0.5")]
    sw.apply(flows)
    sw.apply_delete(match=Match.of(eth_type=ETH_IP, ipv4_dst="10.1.0.0/16"))
    assert sw.flows() == flows[1:]
    assert sw.apply_delete(Table.EGRESS, match=flows[1].match, strict=True, priority=Priority.LOW) == []
    assert sw.apply_delete(Table.EGRESS, match=flows[1].match, strict=True, priority=Priority.ROUTE)
    assert sw.flows() == []


# -- property: any two endpoints of one tenant reach each other through their route -----------

@st.composite
def routed_pairs(draw: st.DrawFn) -> tuple[Topology, Endpoint, Endpoint]:
    hosts = draw(st.integers(2, 4))
    networks = draw(st.integers(1, 3))
    placements = draw(st.lists(st.tuples(st.integers(0, hosts - 1), st.integers(0, networks - 1)),
                               min_size=2, max_size=8))
    topo = topology(placements, hosts=hosts, networks=networks)
    i, j = draw(st.lists(st.integers(0, len(placements) - 1), min_size=2, max_size=2, unique=True))
    return topo, topo.endpoints[i], topo.endpoints[j]


def expected_ttl(topo: Topology, a: Endpoint, b: Endpoint, ttl: int) -> int:
    if a.host != b.host:
        return ttl - 2
    return ttl if topo.network_of(a) == topo.network_of(b) else ttl - 1


@settings(max_examples=150, deadline=None)
@given(routed_pairs())
def test_a_route_carries_both_directions_and_nothing_else(case: tuple[Topology, Endpoint, Endpoint]) -> None:
    topo, a, b = case
    net = topo.fake_network()
    install_route(topo, net, a, b)

    for src, dst in ((a, b), (b, a)):
        dpid, port, pkt = only_delivery(net, topo.host_of(src), ip_from(src, dst.ip, ttl=64))
        assert (dpid, port) == (topo.host_of(dst).dpid, dst.ofport)
        assert (pkt["ipv4_src"], pkt["ipv4_dst"]) == (src.ip, dst.ip)
        assert (pkt["eth_src"], pkt["eth_dst"]) == (GATEWAY_MAC, dst.mac)
        assert pkt["ip_ttl"] == expected_ttl(topo, src, dst, 64)
    for other in topo.endpoints:
        if other not in (a, b):
            trip = net.trace(topo.host_of(a).dpid, ip_from(a, other.ip))
            assert not trip.deliveries and [r for _, r, _ in trip.controller] == ["no_match"]
