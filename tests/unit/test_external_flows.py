"""SNAT to the outside, on the fake flow table: out with the host's address,
replies back to the container that opened the connection (not its twin with
the same address in another tenant), the host's own traffic intact."""

from __future__ import annotations

import dataclasses

from daolinet.flows.external import flows_for_external
from daolinet.flows.proactive import flows_for_switch
from daolinet.model import Endpoint, Host
from daolinet.pipeline import GATEWAY_MAC, OFPP_LOCAL
from daolinet.testing.factories import make_endpoint, make_host, make_network
from daolinet.testing.fakeoftable import FakeSwitch, ip_packet

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
