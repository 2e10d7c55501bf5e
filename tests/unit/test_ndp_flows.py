"""IPv6 neighbour discovery and anti-spoofing (flows/ndp.py), asserted by what packets
do in the fake OpenFlow pipeline: a container's solicitation comes back as the
gateway's advertisement, forged ND dies in classify, the uplink's solicitations for
the PIP pool are answered by the host; and IPv4-only hosts hold exactly what they
held before."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings

from daolinet.flows.infra import guard_prefixes
from daolinet.flows.ndp import GATEWAY_FLAGS, PROXY_FLAGS, flows_for_endpoint6, flows_for_host6, na_reply
from daolinet.flows.proactive import guard_flows
from daolinet.flows.spec import ETH_IPV6, FlowSpec, FlowSpecError, Match, SetField
from daolinet.model import ControllerRecord, Endpoint, Host, View
from daolinet.pipeline import GATEWAY_MAC, OFPP_LOCAL, Table
from daolinet.testing.factories import Topology, dual_stack, ipv6_from, small_topology, synced_network
from daolinet.testing.fakeoftable import (
    FakeOFTableError,
    FakeSwitch,
    Packet,
    Result,
    ipv6_packet,
    neighbor_advertisement,
    neighbor_solicitation,
)
from daolinet.testing.strategies import endpoints, hosts

LINK_LOCAL = "fe80::1234"
ROUTER_MAC = "02:18:00:00:00:fe"


@pytest.fixture
def topo() -> Topology:
    return dual_stack(small_topology())


def switch_of(topo: Topology, host: Host) -> FakeSwitch:
    sw = FakeSwitch(host.dpid)
    sw.apply(topo.base_flows(host))
    return sw


def a_and_switch(topo: Topology) -> tuple[Endpoint, FakeSwitch]:
    a = topo.endpoint("a")
    return a, switch_of(topo, topo.host_of(a))


def ns_from(e: Endpoint, target: str, src: str = "", **changes: object) -> Packet:
    assert e.ofport is not None
    pkt = neighbor_solicitation(e.ofport, e.mac, src or e.ip6, target)
    pkt.update(changes)  # type: ignore[arg-type]
    return pkt


def only_output(result: Result) -> tuple[int, Packet]:
    assert not result.to_controller, result.to_controller
    assert len(result.outputs) == 1, result.outputs
    return result.outputs[0]


def test_a_solicitation_for_the_gateway_comes_back_as_its_advertisement(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    gateway6 = topo.network_of(a).gateway6
    port, na = only_output(sw.lookup(ns_from(a, gateway6)))
    assert port == a.ofport
    assert (na["eth_src"], na["eth_dst"]) == (GATEWAY_MAC, a.mac)
    assert (na["ipv6_src"], na["ipv6_dst"]) == (gateway6, a.ip6)
    assert (na["icmpv6_type"], na["ipv6_nd_target"]) == (136, gateway6)
    assert na["nd_reserved"] == GATEWAY_FLAGS  # router, solicited, override
    assert (na["nd_options_type"], na["ipv6_nd_tll"]) == (2, GATEWAY_MAC)
    assert na["ip_ttl"] == 255  # a valid ND message still


@pytest.mark.parametrize("target", ["fd00:1::99", "fd00:1::b", "fe80::42"])
def test_every_other_address_is_the_gateway_too(topo: Topology, target: str) -> None:
    """Containers never learn each other's MACs: peers, strangers, link-local ones."""
    a, sw = a_and_switch(topo)
    port, na = only_output(sw.lookup(ns_from(a, target)))
    assert (port, na["ipv6_src"], na["ipv6_nd_tll"]) == (a.ofport, target, GATEWAY_MAC)


def test_a_solicitation_from_the_link_local_address_is_answered_there(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    port, na = only_output(sw.lookup(ns_from(a, topo.network_of(a).gateway6, src=LINK_LOCAL)))
    assert (port, na["ipv6_dst"], na["eth_dst"]) == (a.ofport, LINK_LOCAL, a.mac)


def test_a_unicast_reachability_probe_is_answered(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    gateway6 = topo.network_of(a).gateway6
    port, na = only_output(sw.lookup(ns_from(a, gateway6, eth_dst=GATEWAY_MAC, ipv6_dst=gateway6)))
    assert (port, na["ipv6_dst"], na["ipv6_nd_tll"]) == (a.ofport, a.ip6, GATEWAY_MAC)


def test_duplicate_address_detection_is_not_answered(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    assert sw.lookup(ns_from(a, a.ip6, src="::")).dropped


def test_a_solicitation_from_a_stolen_mac_or_another_port_is_dropped(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    c = topo.endpoint("c")  # on a's host
    gateway6 = topo.network_of(a).gateway6
    assert sw.lookup(ns_from(a, gateway6, eth_src=c.mac, ipv6_nd_sll=c.mac)).dropped
    assert sw.lookup(ns_from(a, gateway6, in_port=99)).dropped


@pytest.mark.parametrize("icmpv6_type", [133, 134, 136, 137])
@pytest.mark.parametrize("src", ["own", LINK_LOCAL])
def test_forged_router_and_neighbour_messages_reach_nobody(topo: Topology, icmpv6_type: int,
                                                           src: str) -> None:
    a, sw = a_and_switch(topo)
    b = topo.endpoint("b")
    assert a.ofport is not None
    pkt = neighbor_advertisement(a.ofport, a.mac, GATEWAY_MAC, a.ip6 if src == "own" else src, b.ip6,
                                 target=topo.network_of(a).gateway6)
    pkt["icmpv6_type"] = icmpv6_type
    result = sw.lookup(pkt)
    assert result.dropped and result.missed is None, result.path  # dropped by a flow, not by accident
    assert sw.lookup({**pkt, "ipv6_dst": "ff02::1"}).dropped


def test_a_containers_own_ipv6_traffic_passes_classify_and_asks_the_controller(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    result = sw.lookup(ipv6_from(a, topo.endpoint("b").ip6))
    assert [f.table for f in result.path] == [Table.CLASSIFY, Table.GUARD, Table.EGRESS]
    assert [reason for reason, _ in result.to_controller] == ["no_match"]


@pytest.mark.parametrize("forged", [{"ipv6_src": "fd00:1::99"}, {"eth_src": "02:00:00:00:00:99"},
                                    {"ipv6_src": LINK_LOCAL}])
def test_forged_ipv6_sources_are_dropped_in_classify(topo: Topology, forged: dict[str, str]) -> None:
    a, sw = a_and_switch(topo)
    result = sw.lookup(ipv6_from(a, topo.endpoint("b").ip6, **forged))
    assert result.dropped and [f.table for f in result.path] == [Table.CLASSIFY]


def test_container_multicast_is_dropped(topo: Topology) -> None:
    a, sw = a_and_switch(topo)
    result = sw.lookup(ipv6_from(a, "ff02::16", icmpv6_type=143))  # an MLDv2 report
    assert result.dropped and result.path[-1].table is Table.GUARD


def test_the_uplink_solicitation_for_a_pip_is_answered_by_its_host(topo: Topology) -> None:
    host = topo.hosts[0]
    sw = switch_of(topo, host)
    pip6 = topo.endpoint("a").pip6
    pkt = neighbor_solicitation(host.uplink_ofport, ROUTER_MAC, "2001:db8::fe", pip6)
    port, na = only_output(sw.lookup(pkt))
    assert port == host.uplink_ofport
    assert (na["eth_src"], na["eth_dst"], na["ipv6_src"], na["ipv6_dst"]) == (
        host.underlay_mac, ROUTER_MAC, pip6, "2001:db8::fe")
    assert (na["nd_reserved"], na["ipv6_nd_tll"]) == (PROXY_FLAGS, host.underlay_mac)
    assert na["nd_options_type"] == 2


@pytest.mark.parametrize("kind", ["ns-host", "ns-other-pool", "na", "ra", "dad", "ip-host", "multicast"])
def test_the_uplinks_other_nd_and_the_hosts_own_ipv6_go_to_local(topo: Topology, kind: str) -> None:
    host, other = topo.hosts[0], topo.hosts[1]
    sw = switch_of(topo, host)
    up = host.uplink_ofport
    pkt = {
        "ns-host": neighbor_solicitation(up, ROUTER_MAC, "2001:db8::fe", host.underlay_ip6),
        "ns-other-pool": neighbor_solicitation(up, ROUTER_MAC, "2001:db8::fe", topo.endpoint("b").pip6),
        "na": neighbor_advertisement(up, ROUTER_MAC, host.underlay_mac, "2001:db8::fe", host.underlay_ip6,
                                     "2001:db8::fe"),
        "ra": ipv6_packet(up, ROUTER_MAC, "33:33:00:00:00:01", "fe80::fe", "ff02::1", 255, icmpv6_type=134),
        "dad": neighbor_solicitation(up, other.underlay_mac, "::", host.underlay_ip6),
        "ip-host": ipv6_packet(up, ROUTER_MAC, host.underlay_mac, "2001:db8::fe", host.underlay_ip6),
        "multicast": ipv6_packet(up, ROUTER_MAC, "33:33:00:00:00:01", "fe80::fe", "ff02::1", icmpv6_type=130),
    }[kind]
    port, out = only_output(sw.lookup(pkt))
    out.pop("ct_state", None)  # the host's own IPv6 passes conntrack first (NAT66 replies)
    assert port == OFPP_LOCAL and out == pkt


@pytest.mark.parametrize("icmpv6_type", [136, 135, 133, 128])
def test_the_hosts_own_nd_and_ipv6_leave_by_the_uplink(topo: Topology, icmpv6_type: int) -> None:
    """Its NA answering the router's NS above all: the forged-ND drops are for containers."""
    host = topo.hosts[0]
    sw = switch_of(topo, host)
    me, router = host.underlay_ip6, "2001:db8::fe"
    pkt = (neighbor_advertisement(OFPP_LOCAL, host.underlay_mac, ROUTER_MAC, me, router, me)
           if icmpv6_type == 136 else
           ipv6_packet(OFPP_LOCAL, host.underlay_mac, ROUTER_MAC, me, router, 255, icmpv6_type=icmpv6_type))
    port, out = only_output(sw.lookup(pkt))
    assert port == host.uplink_ofport and out == pkt


def test_uplink_ipv6_for_a_pip_goes_to_ingress(topo: Topology) -> None:
    host = topo.hosts[0]
    sw = switch_of(topo, host)
    pip6 = topo.endpoint("a").pip6
    pkt = ipv6_packet(host.uplink_ofport, ROUTER_MAC, host.underlay_mac, "2001:db8::2:1", pip6)
    result = sw.lookup(pkt)
    assert [f.table for f in result.path] == [Table.CLASSIFY, Table.INGRESS]
    assert [reason for reason, _ in result.to_controller] == ["no_match"]


@settings(max_examples=100, deadline=None)
@given(hosts(1), endpoints(7, Host("x", 1, "198.18.0.1", "02:00:00:00:00:01", "198.18.1.0/24")))
def test_ipv4_only_hosts_and_endpoints_get_no_ipv6_flow(host: Host, e: Endpoint) -> None:
    assert flows_for_host6(host) == [] and flows_for_endpoint6(e) == []


def test_dual_stack_only_adds_flows_and_never_changes_an_ipv4_one() -> None:
    v4 = small_topology()
    v6 = dual_stack(v4)
    for h4, h6 in zip(v4.hosts, v6.hosts, strict=True):
        before, after = v4.base_flows(h4), v6.base_flows(h6)
        assert set(before) < set(after)
        assert all(f.table in (Table.NDP, Table.NA) or f.match.get("eth_type") == ETH_IPV6
                   for f in set(after) - set(before))


def test_dual_stack_base_flows_never_collide_and_apply_twice_to_the_same_table(topo: Topology) -> None:
    for h in topo.hosts:
        flows = topo.base_flows(h)
        assert len({f.key for f in flows}) == len(flows)
        sw = switch_of(topo, h)
        before = sw.flow_set()
        sw.apply(flows)
        assert sw.flow_set() == before


def test_the_target_link_layer_address_is_refused_in_the_solicitations_table() -> None:
    """What OVS refuses (tests/unit/test_ndp_wire.py) the spec and the fake refuse too."""
    with pytest.raises(FlowSpecError):
        FlowSpec(Table.NDP, 10, Match.of(eth_type=ETH_IPV6), (SetField("ipv6_nd_tll", GATEWAY_MAC),))
    ns_match = Match.of(eth_type=ETH_IPV6, ip_proto=58, icmpv6_type=135)
    with pytest.raises(FakeOFTableError):
        FakeSwitch(1).apply_add(FlowSpec(Table.NA, 10, ns_match, (SetField("ipv6_nd_tll", GATEWAY_MAC),)))
    with pytest.raises(FakeOFTableError):  # and the ND fields need an ND match
        FakeSwitch(1).apply_add(FlowSpec(Table.NDP, 10, Match.of(eth_type=ETH_IPV6),
                                         na_reply(GATEWAY_MAC, 0)))


def test_a_host_with_only_an_underlay_address_answers_no_pip(topo: Topology) -> None:
    host = replace(topo.hosts[0], pip_pool6="")
    sw = FakeSwitch(host.dpid)
    sw.apply(flows_for_host6(host))
    pkt = neighbor_solicitation(host.uplink_ofport, ROUTER_MAC, "2001:db8::fe", "2001:db8::1:b")
    assert only_output(sw.lookup(pkt))[0] == OFPP_LOCAL


# -- infrastructure is not a destination, in IPv6 too (flows/infra.py) ------------------

CTL6 = "2001:db8:ffff::c"  # a controller outside the hosts' segment (as --advertise would record it)


def dual_stack_view(topo: Topology, *extra: object) -> View:
    view = View()
    view.load([*topo.networks, *topo.hosts, *topo.endpoints, *extra], rev=1)  # type: ignore[list-item]
    return view


def test_ipv6_infrastructure_is_dropped_by_segment_and_address() -> None:
    assert guard_prefixes(["2001:db8::1", "2001:db8::2", CTL6, "198.18.0.1", "ctl.example"],
                          ["2001:db8::1/64", "2001:db8::2/64"], ["fd00:1::/64"], version=6) == [
        "2001:db8::/64", CTL6]
    # a segment a tenant's network overlaps keeps only its infrastructure addresses
    overlapped = guard_prefixes(["2001:db8::1"], ["2001:db8::1/64"], ["2001:db8::/80"], version=6)
    assert overlapped == ["2001:db8::1"]


def test_containers_ipv6_to_infrastructure_is_dropped_before_any_route(topo: Topology) -> None:
    view = dual_stack_view(topo, ControllerRecord("c1", advertise=(CTL6,)))
    assert all(view.is_infra_ip(h.underlay_ip6) for h in topo.hosts) and view.is_infra_ip(CTL6)
    net = synced_network(view, list(topo.hosts))
    a = topo.endpoint("a")
    for dst in (topo.hosts[1].underlay_ip6, topo.hosts[0].underlay_ip6, CTL6, topo.endpoint("b").pip6):
        trip = net.trace(topo.host_of(a).dpid, ipv6_from(a, dst))
        assert not trip.deliveries and not trip.controller and not trip.underlay, dst
    trip = net.trace(topo.host_of(a).dpid, ipv6_from(a, topo.endpoint("b").ip6))
    assert [reason for _, reason, _ in trip.controller] == ["no_match"]  # a peer: the controller decides


def test_no_ipv6_guard_flow_until_a_host_has_ipv6() -> None:
    v4 = small_topology()
    plain = guard_flows(dual_stack_view(v4))
    with_v6_controller = guard_flows(dual_stack_view(v4, ControllerRecord("c1", advertise=(CTL6,))))
    assert with_v6_controller == plain and all(f.match.get("eth_type") != ETH_IPV6 for f in plain)
