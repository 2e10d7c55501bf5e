"""IPv6 at the edges on the fake flow table (PacketIn bytes -> parse -> decide -> respond ->
fake switches): an external dual-stack network's NAT66 to the outside, narrowed by IPv6
"cidr:" rules, and port mappings reached on a host's underlay_ip6."""

from __future__ import annotations

import dataclasses

from test_respond import ROUTER_MAC, carry_out, frame, packet_of
from test_route6 import TCP, answer, dual, dual_host, dual_network, frame6, port

from daolinet.decide.route import Deny, External, MappedPort
from daolinet.model import Group, Host, Portmap, Rule, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.pipeline import GATEWAY_MAC, OFPP_LOCAL
from daolinet.testing.factories import make_endpoint, make_network, synced_network
from daolinet.testing.fakeoftable import FakeNetwork, Packet

ICMPV6 = 58
OUTSIDE6 = "2001:2:0:ff::1"
H1, H2 = dual_host(1), dual_host(2)
H3 = dataclasses.replace(dual_host(3), underlay_ip6="", pip_pool6="2001:db8::3:0/112")  # no IPv6 underlay
EXT = dataclasses.replace(dual_network(1), external=True)
INT = dual_network(2)
V4NET = make_network(3)
A = dual(1, H1, EXT, 2, "a")
B = dual(2, H2, INT, 2, "b")
C = dual(3, H3, EXT, 2, "c")


V4ONLY = make_endpoint(4, H2, V4NET, 3, "v")
# b (on h2) is published on h2:8080 -> 80 (same host) and h1:8081 -> 81 (another host);
# v (IPv4 only) on h2:8082
SAME = Portmap(1, DEFAULT_TENANT, "same", "b", "h2", "tcp", 8080, 80)
OTHER = Portmap(2, DEFAULT_TENANT, "other", "b", "h1", "tcp", 8081, 81)  # (one host per container port)
V4MAP = Portmap(3, DEFAULT_TENANT, "v4", "v", "h2", "tcp", 8082, 80)


def make_view(*more: object) -> View:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), EXT, INT, V4NET, H1, H2, H3, A, B, C, V4ONLY, SAME, OTHER, V4MAP,
               Group(2, DEFAULT_TENANT, "back", ("container:b",)),
               Group(1, DEFAULT_TENANT, "egress", (f"network:{EXT.name}",)), *more], rev=1)  # type: ignore[list-item]
    return view


def rule(rid: int, b: str, proto: str = "tcp", ports: str = "80", action: str = "allow",
         a: str = "egress", priority: int = 100) -> Rule:
    return Rule(rid, DEFAULT_TENANT, "l4", action, a, b, proto, ports, priority=priority)


def reply_to(host: Host, src: str, **kw: object) -> Packet:
    return packet_of(frame6(ROUTER_MAC, host.underlay_mac, src, host.underlay_ip6, **kw), host.uplink_ofport)


def out_to(view: View, dst: str, **kw: object) -> tuple[object, FakeNetwork, list[Packet]]:
    net = synced_network(view, [H1, H2, H3])
    decision, response = answer(H1, port(A), frame6(A.mac, GATEWAY_MAC, A.ip6, dst, **kw), view=view)
    trip = carry_out(net, response)
    return decision, net, [pkt for _, pkt in trip.lost]


def test_an_external_network_reaches_the_outside_over_ipv6_nated_to_the_host() -> None:
    view = make_view()
    decision, net, gone = out_to(view, OUTSIDE6)
    assert isinstance(decision, External) and decision.dst_ip == OUTSIDE6
    assert [(p["ipv6_src"], p["ipv6_dst"], p["eth_dst"], p["tcp_dst"], p["ip_ttl"]) for p in gone] == [
        (H1.underlay_ip6, OUTSIDE6, ROUTER_MAC, 80, 63)]
    back = net.trace(H1.dpid, reply_to(H1, OUTSIDE6, sport=80, dport=40000))
    assert [(d.dpid, d.port, d.packet["ipv6_src"], d.packet["ipv6_dst"], d.packet["eth_dst"])
            for d in back.deliveries] == [(H1.dpid, port(A), OUTSIDE6, A.ip6, A.mac)]
    # nothing of a connection A did not open reaches A: the host's own stack gets it
    stray = net.trace(H1.dpid, reply_to(H1, "2001:2:0:ff::2", sport=80, dport=40000))
    assert [(d.dpid, d.port) for d in stray.deliveries] == [(H1.dpid, 0xFFFFFFFE)]  # LOCAL


def test_ping6_to_the_outside_and_its_echo_reply() -> None:
    view = make_view()
    decision, net, gone = out_to(view, OUTSIDE6, proto=ICMPV6)
    assert isinstance(decision, External) and [p["ipv6_src"] for p in gone] == [H1.underlay_ip6]
    reply = reply_to(H1, OUTSIDE6, proto=ICMPV6)
    reply["icmpv6_type"] = 129
    assert [d.port for d in net.trace(H1.dpid, reply).deliveries] == [port(A)]


def test_ipv6_to_the_outside_is_refused_where_ipv4_would_be_and_beyond_the_link() -> None:
    view = make_view()
    b_out = answer(H2, port(B), frame6(B.mac, GATEWAY_MAC, B.ip6, OUTSIDE6), view=view)[0]
    assert isinstance(b_out, Deny) and "not external" in b_out.reason
    for dst, why in ((H2.underlay_ip6, "underlay"), (B.pip6, "underlay"), ("fe80::1", "beyond its link"),
                     ("ff0e::1", "beyond its link"), ("fd00:1::99", "no container")):
        decision = out_to(view, dst)[0]
        assert isinstance(decision, Deny) and why in decision.reason, (dst, decision)
    c_out = answer(H3, port(C), frame6(C.mac, GATEWAY_MAC, C.ip6, OUTSIDE6), view=view)[0]
    assert isinstance(c_out, Deny) and "no IPv6 underlay address" in c_out.reason


def test_an_ipv6_cidr_rule_limits_the_network_to_one_address_and_port() -> None:
    view = make_view(rule(1, f"cidr:{OUTSIDE6}/128"))
    decision, _, gone = out_to(view, OUTSIDE6)
    assert isinstance(decision, External) and decision.scope == (TCP, 80) and len(gone) == 1
    other_port, _, gone = out_to(view, OUTSIDE6, dport=443)
    assert isinstance(other_port, Deny) and other_port.scope == (TCP, 443) and not gone
    assert isinstance(out_to(view, "2001:2:0:ff::2")[0], Deny)
    ping = out_to(view, OUTSIDE6, proto=ICMPV6)[0]
    assert isinstance(ping, Deny)
    # IPv4 to the outside is limited too (an allow block of either family limits both)
    v4 = answer(H1, port(A), frame(A.mac, GATEWAY_MAC, A.ip, "198.19.255.1"), view=view)[0]
    assert isinstance(v4, Deny) and "may reach outside only tcp/80 to 2001:2:0:ff::1/128" in v4.reason


def test_an_ipv4_cidr_rule_never_matches_ipv6() -> None:
    view = make_view(rule(1, "cidr:0.0.0.0/0", proto="", ports="", action="deny"))
    assert isinstance(out_to(view, OUTSIDE6)[0], External)
    view = make_view(rule(1, "cidr:::/0", proto="", ports="", action="deny"))
    assert isinstance(out_to(view, OUTSIDE6)[0], Deny)


# -- port mappings on a host's underlay_ip6 -------------------------------------------------------

def client6(at: Host, host_port: int, src: str = OUTSIDE6) -> Packet:
    return packet_of(frame6(ROUTER_MAC, at.underlay_mac, src, at.underlay_ip6, dport=host_port),
                     at.uplink_ofport)


def b_answers(to: str, dport: int = 40000, sport: int = 80) -> Packet:
    return packet_of(frame6(B.mac, GATEWAY_MAC, B.ip6, to, sport=sport, dport=dport), port(B))


def test_a_mapping_answers_on_its_hosts_ipv6_address_on_the_same_host() -> None:
    net = synced_network(make_view(), [H1, H2, H3])
    there = net.trace(H2.dpid, client6(H2, 8080))
    assert [(d.dpid, d.port, d.packet["ipv6_src"], d.packet["ipv6_dst"], d.packet["tcp_dst"])
            for d in there.deliveries] == [(H2.dpid, port(B), OUTSIDE6, B.ip6, 80)]
    back = net.trace(H2.dpid, b_answers(OUTSIDE6))
    assert [(p["ipv6_src"], p["ipv6_dst"], p["tcp_src"], p["eth_dst"]) for _, p in back.lost] == [
        (H2.underlay_ip6, OUTSIDE6, 8080, ROUTER_MAC)]


def test_a_mapping_on_another_host_reaches_its_container_over_ipv6_and_back() -> None:
    net = synced_network(make_view(), [H1, H2, H3])
    there = net.trace(H1.dpid, client6(H1, 8081))
    # h1 NATs both ways: b sees h1's underlay_ip6 as its client (as with IPv4)
    assert [(d.dpid, d.port, d.packet["ipv6_src"], d.packet["ipv6_dst"], d.packet["tcp_dst"])
            for d in there.deliveries] == [(H2.dpid, port(B), H1.underlay_ip6, B.ip6, 81)]
    client_port = there.deliveries[0].packet["tcp_src"]
    assert isinstance(client_port, int)
    back = net.trace(H2.dpid, b_answers(H1.underlay_ip6, dport=client_port, sport=81))
    assert [(p["ipv6_src"], p["ipv6_dst"], p["tcp_src"]) for _, p in back.lost] == [
        (H1.underlay_ip6, OUTSIDE6, 8081)]


def test_ipv6_source_rules_decide_who_outside_may_use_a_mapping() -> None:
    view = make_view(rule(1, "back", a="cidr:2001:2:0:ff::/64"),
                     rule(2, "back", a="cidr:2001:2:0:ff::9/128", action="deny", priority=200))
    net = synced_network(view, [H1, H2, H3])
    assert [d.port for d in net.trace(H2.dpid, client6(H2, 8080)).deliveries] == [port(B)]
    for denied in ("2001:2:0:ff::9", "2001:db8:99::1"):
        trip = net.trace(H2.dpid, client6(H2, 8080, denied))
        assert not (trip.deliveries or trip.controller or trip.lost), denied
    only4 = synced_network(make_view(rule(1, "back", a="cidr:198.19.0.0/16")), [H2])
    trip = only4.trace(H2.dpid, client6(H2, 8080))
    assert not (trip.deliveries or trip.controller or trip.lost)  # an IPv4 allow keeps IPv6 out


def test_a_mapping_of_an_ipv4_only_container_serves_no_ipv6() -> None:
    view = make_view()
    net = synced_network(view, [H1, H2, H3])
    trip = net.trace(H2.dpid, client6(H2, 8082))
    assert [(d.dpid, d.port) for d in trip.deliveries] == [(H2.dpid, OFPP_LOCAL)]  # the host's own
    decision = answer(H1, port(A), frame6(A.mac, GATEWAY_MAC, A.ip6, H2.underlay_ip6, dport=8082),
                      view=view)[0]
    assert isinstance(decision, Deny) and "serves no IPv6" in decision.reason


def test_a_container_reaches_a_mapping_over_ipv6() -> None:
    view = make_view()
    net = synced_network(view, [H1, H2, H3])
    decision, response = answer(H1, port(A), frame6(A.mac, GATEWAY_MAC, A.ip6, H2.underlay_ip6, dport=8080),
                                view=view)
    assert isinstance(decision, MappedPort) and decision.family == 6
    trip = carry_out(net, response)
    assert [(d.dpid, d.port, d.packet["ipv6_src"], d.packet["ipv6_dst"], d.packet["tcp_dst"])
            for d in trip.deliveries] == [(H2.dpid, port(B), A.pip6, B.ip6, 80)]
    back = net.trace(H2.dpid, b_answers(A.pip6))
    # the mapping's replies leave by the underlay router (as IPv4's), which routes them to h1
    assert [(p["ipv6_src"], p["ipv6_dst"], p["tcp_src"], p["eth_dst"]) for _, p in back.lost] == [
        (H2.underlay_ip6, A.pip6, 8080, ROUTER_MAC)]
    routed = {**back.lost[0][1], "in_port": H1.uplink_ofport, "eth_src": ROUTER_MAC,
              "eth_dst": H1.underlay_mac}
    home = net.trace(H1.dpid, routed)
    assert [(d.dpid, d.port, d.packet["ipv6_src"], d.packet["ipv6_dst"], d.packet["tcp_src"])
            for d in home.deliveries] == [(H1.dpid, port(A), H2.underlay_ip6, A.ip6, 8080)]
