"""SNAT to the outside, on the fake flow table: out with the host's address,
replies back to the container that opened the connection (not its twin with
the same address in another tenant), the host's own traffic intact."""

from __future__ import annotations

import dataclasses

from daolinet.flows import render
from daolinet.flows.external import flows_for_external
from daolinet.flows.proactive import flows_for_switch
from daolinet.flows.spec import Conntrack
from daolinet.model import Endpoint, Host
from daolinet.ofp.codec import encode, parser
from daolinet.pipeline import GATEWAY_MAC, OFPP_LOCAL, Table
from daolinet.testing.factories import make_endpoint, make_host, make_network
from daolinet.testing.fakeoftable import IPPROTO_TCP, FakeSwitch, ip_packet, ipv6_packet
from daolinet.testing.fakeswitch import decode_request

GW_MAC = "02:ee:00:00:00:fe"
OUTSIDE = "198.19.255.1"


def setup() -> tuple[FakeSwitch, Host, Endpoint]:
    host = dataclasses.replace(make_host(1), underlay_gateway_mac=GW_MAC)
    a = make_endpoint(1, host, make_network(1), ofport=2)
    twin = dataclasses.replace(make_endpoint(2, host, make_network(1), ofport=3), ip=a.ip, tenant="other")
    sw = FakeSwitch(host.dpid)
    sw.apply(flows_for_switch(host, [a, twin]))
    return sw, host, a


def from_a(a: Endpoint, ttl: int = 64) -> dict[str, int | str | tuple[int, int]]:
    assert a.ofport is not None
    return ip_packet(a.ofport, a.mac, GATEWAY_MAC, a.ip, OUTSIDE, ttl=ttl)


def test_egress_leaves_with_the_host_address_towards_the_gateway() -> None:
    sw, host, a = setup()
    sw.apply(flows_for_external(a, host, OUTSIDE, 30))
    out = sw.lookup(from_a(a))
    assert [(p, pkt["ipv4_src"], pkt["ipv4_dst"], pkt["eth_dst"], pkt["ip_ttl"]) for p, pkt in out.outputs] \
        == [(host.uplink_ofport, host.underlay_ip, OUTSIDE, GW_MAC, 63)]


def test_the_reply_reaches_the_container_that_asked_not_its_twin() -> None:
    sw, host, a = setup()
    sw.apply(flows_for_external(a, host, OUTSIDE, 30))
    sw.lookup(from_a(a))
    reply = sw.lookup(ip_packet(host.uplink_ofport, GW_MAC, host.underlay_mac, OUTSIDE, host.underlay_ip))
    assert [(p, pkt["ipv4_dst"], pkt["eth_dst"]) for p, pkt in reply.outputs] == [(a.ofport, a.ip, a.mac)]


def test_host_traffic_still_reaches_the_host() -> None:
    sw, host, _ = setup()
    res = sw.lookup(ip_packet(host.uplink_ofport, GW_MAC, host.underlay_mac, "198.18.0.9", host.underlay_ip))
    assert [p for p, _ in res.outputs] == [OFPP_LOCAL]


def test_without_the_snat_flow_the_container_asks_the_controller() -> None:
    sw, _, a = setup()
    res = sw.lookup(from_a(a))
    assert [r for r, _ in res.to_controller] == ["no_match"] and not res.outputs


# -- IPv6: NAT66 to the host's underlay_ip6 ---------------------------------------------

OUTSIDE6 = "2001:2:0:ff::1"


def setup6() -> tuple[FakeSwitch, Host, Endpoint]:
    host = dataclasses.replace(make_host(1), underlay_gateway_mac=GW_MAC, underlay_ip6="2001:2:0:1::1",
                               underlay_prefix6=64, pip_pool6="2001:2:0:1::1:0/112")
    net = dataclasses.replace(make_network(1), subnet6="fd00:1::/64", gateway6="fd00:1::1", external=True)
    a = dataclasses.replace(make_endpoint(1, host, net, ofport=2), ip6="fd00:1::b", pip6="2001:2:0:1::1:b")
    twin = dataclasses.replace(make_endpoint(2, host, net, ofport=3), ip=a.ip, ip6=a.ip6, tenant="other",
                               pip6="2001:2:0:1::1:c")
    sw = FakeSwitch(host.dpid)
    sw.apply(flows_for_switch(host, [a, twin]))
    return sw, host, a


def from_a6(a: Endpoint, **kw: int) -> dict[str, int | str | tuple[int, int]]:
    assert a.ofport is not None
    pkt = ipv6_packet(a.ofport, a.mac, GATEWAY_MAC, a.ip6, OUTSIDE6)
    if kw:
        pkt = {**pkt, "ip_proto": IPPROTO_TCP, "tcp_src": 40000, **kw}
        del pkt["icmpv6_type"], pkt["icmpv6_code"]
    return pkt


def test_ipv6_egress_leaves_with_the_host_ipv6_address_and_returns_to_the_container() -> None:
    sw, host, a = setup6()
    sw.apply(flows_for_external(a, host, OUTSIDE6, 30))
    out = sw.lookup(from_a6(a))
    assert [(p, pkt["ipv6_src"], pkt["ipv6_dst"], pkt["eth_dst"], pkt["ip_ttl"]) for p, pkt in out.outputs] \
        == [(host.uplink_ofport, host.underlay_ip6, OUTSIDE6, GW_MAC, 63)]
    reply = sw.lookup(ipv6_packet(host.uplink_ofport, GW_MAC, host.underlay_mac, OUTSIDE6, host.underlay_ip6,
                                  icmpv6_type=129))
    assert [(p, pkt["ipv6_dst"], pkt["eth_dst"]) for p, pkt in reply.outputs] == [(a.ofport, a.ip6, a.mac)]
    # IPv4 beside it is untouched: no IPv4 flow was plugged
    assert [r for r, _ in sw.lookup(from_a(a)).to_controller] == ["no_match"]


def test_ipv6_host_traffic_still_reaches_the_host_through_conntrack() -> None:
    sw, host, _ = setup6()
    res = sw.lookup(ipv6_packet(host.uplink_ofport, GW_MAC, host.underlay_mac, "2001:2:0:1::9",
                                host.underlay_ip6))
    assert [p for p, _ in res.outputs] == [OFPP_LOCAL]
    assert any(isinstance(a, Conntrack) for f in res.path for a in f.actions)


def test_a_scoped_ipv6_egress_carries_only_its_port() -> None:
    sw, host, a = setup6()
    sw.apply(flows_for_external(a, host, OUTSIDE6, 30, scope=(IPPROTO_TCP, 80)))
    ok = sw.lookup(from_a6(a, tcp_dst=80))
    assert [(pkt["ipv6_src"], pkt["tcp_dst"]) for _, pkt in ok.outputs] == [(host.underlay_ip6, 80)]
    assert [r for r, _ in sw.lookup(from_a6(a, tcp_dst=443)).to_controller] == ["no_match"]
    assert [r for r, _ in sw.lookup(from_a6(a)).to_controller] == ["no_match"]  # ICMPv6


def test_icmp_scoped_ipv6_egress_matches_icmpv6() -> None:
    _, host, a = setup6()
    flows = flows_for_external(a, host, OUTSIDE6, 30, scope=(1, 8))
    egress = next(f for f in flows if f.table == Table.EGRESS)
    assert egress.match.as_dict()["ip_proto"] == 58


def test_the_nat66_action_names_the_ipv6_address_on_the_wire() -> None:
    _, host, a = setup6()
    egress = next(f for f in flows_for_external(a, host, OUTSIDE6, 30) if f.table == Table.EGRESS)
    msg = decode_request(encode(render.flow_add(egress), 1))
    ct = next(act for i in msg.instructions for act in getattr(i, "actions", ())
              if isinstance(act, parser.NXActionCT))
    (nat,) = ct.actions
    assert (nat.range_ipv6_min, nat.range_ipv6_max, nat.range_ipv4_min) == (host.underlay_ip6,) * 2 + ("",)
