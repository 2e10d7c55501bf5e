"""Rules about addresses outside daolinet ("cidr:"), on the fake flow table: what an
external network may reach outside, and who outside may use a port mapping."""

from __future__ import annotations

import dataclasses

from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.route import Deny, External, decide
from daolinet.flows.external import flows_for_external
from daolinet.flows.proactive import flows_for_host_switch
from daolinet.model import Group, Portmap, Rule, View
from daolinet.pipeline import GATEWAY_MAC, Table
from daolinet.testing.factories import make_endpoint, make_host, make_network
from daolinet.testing.fakeoftable import IPPROTO_TCP, IPPROTO_UDP, FakeNetwork, ip_packet

ROUTER_MAC = "02:18:00:00:00:fe"
H1, H2 = (dataclasses.replace(make_host(i), underlay_gateway_mac=ROUTER_MAC) for i in (1, 2))
NET, EXT = make_network(1), dataclasses.replace(make_network(2), external=True)
E = make_endpoint(2, H1, EXT, 3, "e")
WEB = make_endpoint(3, H2, NET, 2, "web")
HTTP = Portmap(1, "default", "http", "web", "h2", "tcp", 8080, 80)  # h2:8080 -> web:80
OUTSIDE = "198.19.255.1"


def rule(rid: int, a: str, b: str, action: str = "allow", port: str = "80", **kw: object) -> Rule:
    return Rule(rid, "default", "l4", action, a, b, "tcp", port, **kw)  # type: ignore[arg-type]


def view_with(*rules: Rule) -> View:
    view = View()
    view.load([NET, EXT, H1, H2, E, WEB, HTTP, Group(1, "default", "egress", (f"network:{EXT.name}",)),
               Group(2, "default", "back", ("container:web",)), *rules], rev=1)
    return view


def egress_miss(dst: str, proto: int, port: int) -> PacketMeta:
    assert E.ofport is not None
    return PacketMeta(H1.dpid, E.ofport, Table.EGRESS, NO_MATCH, E.mac, GATEWAY_MAC, 0x0800, E.ip, dst,
                      proto, 64, port)


def test_an_external_network_limited_to_one_address_and_port() -> None:
    view = view_with(rule(1, "egress", f"cidr:{OUTSIDE}/32"))
    ok = decide(egress_miss(OUTSIDE, IPPROTO_TCP, 80), view)
    assert isinstance(ok, External) and ok.scope == (IPPROTO_TCP, 80)
    other_port = decide(egress_miss(OUTSIDE, IPPROTO_TCP, 443), view)
    assert isinstance(other_port, Deny) and other_port.scope == (IPPROTO_TCP, 443)
    assert other_port.rule == "rule 1"
    assert isinstance(decide(egress_miss("198.19.255.2", IPPROTO_TCP, 80), view), Deny)
    # the scoped flow carries tcp/80 only: UDP to the same address still asks the controller
    net = FakeNetwork.for_hosts([H1])
    net.apply(H1.dpid, flows_for_host_switch(view, H1) + flows_for_external(E, H1, OUTSIDE, 30, ok.scope))
    assert E.ofport is not None
    tcp = ip_packet(E.ofport, E.mac, GATEWAY_MAC, E.ip, OUTSIDE, proto=IPPROTO_TCP, dst_port=80)
    assert [pkt["ipv4_src"] for _, pkt in net.trace(H1.dpid, tcp).lost] == [H1.underlay_ip]
    udp = ip_packet(E.ofport, E.mac, GATEWAY_MAC, E.ip, OUTSIDE, proto=IPPROTO_UDP, dst_port=80)
    assert [r for _, r, _ in net.trace(H1.dpid, udp).controller] == ["no_match"]


def test_without_address_rules_an_external_network_reaches_anything_outside() -> None:
    d = decide(egress_miss("203.0.113.7", IPPROTO_TCP, 443), view_with())
    assert isinstance(d, External) and d.scope is None


def inbound(src: str) -> dict[str, int | str | tuple[int, int]]:
    return ip_packet(H2.uplink_ofport, ROUTER_MAC, H2.underlay_mac, src, H2.underlay_ip,
                     proto=IPPROTO_TCP, dst_port=8080)


def test_who_outside_may_use_a_port_mapping_first_match_by_priority() -> None:
    view = view_with(rule(1, "cidr:198.19.0.0/16", "back"),
                     rule(2, "cidr:198.19.7.0/24", "back", action="deny", priority=200))
    net = FakeNetwork.for_hosts([H2])
    net.apply(H2.dpid, flows_for_host_switch(view, H2))
    assert [(d.port, d.packet["ipv4_dst"]) for d in net.trace(H2.dpid, inbound("198.19.1.5")).deliveries] \
        == [(WEB.ofport, WEB.ip)]
    for denied in ("198.19.7.9", "203.0.113.1"):  # the deny rule; outside every allowed block
        trip = net.trace(H2.dpid, inbound(denied))
        assert not (trip.deliveries or trip.controller or trip.lost), (denied, trip)


def test_a_mapping_without_source_rules_serves_anyone() -> None:
    net = FakeNetwork.for_hosts([H2])
    net.apply(H2.dpid, flows_for_host_switch(view_with(rule(1, "cidr:198.19.0.0/16", "back", port="443")),
                                             H2))
    assert [d.port for d in net.trace(H2.dpid, inbound("203.0.113.1")).deliveries] == [WEB.ofport]
