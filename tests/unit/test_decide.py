"""decide(meta, view): pure decisions on PacketIns, over a View loaded from the
test factories, with PacketMeta built by hand and parsed from real frames.

small_topology():  a h1 net1 | b h2 net1 | c h1 net1 | d h1 net2 | e h3 net2
(net n = 10.n.0.0/24, gateway 10.n.0.1; endpoint k has IP 10.n.0.(10+k), PIP 198.18.host.(10+k))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp, udp

from daolinet.decide import policy
from daolinet.decide.packet import ACTION, INVALID_TTL, NO_MATCH, PacketMeta, parse
from daolinet.decide.route import Decision, Deny, EchoReply, Ignore, Plug, TimeExceeded, decide
from daolinet.model import Endpoint, Host, Network, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.model.view import Obj
from daolinet.pipeline import GATEWAY_MAC, Table
from daolinet.testing.factories import UPLINK, Topology, make_endpoint, make_network, small_topology

TCP, UDP, ICMP = 6, 17, 1
ETH_IP, ETH_ARP = 0x0800, 0x0806
ECHO_REQUEST, ECHO_REPLY = 8, 0

T = small_topology()
A, B, C, D, E = (T.endpoint(n) for n in "abcde")
H1, H2, H3 = T.hosts
NET1, NET2 = T.networks

# A second tenant reusing 10.1.0.0/24: x on h2 has b's IP, y on h1 has a's IP.
OTHER = "t2"
NET1_T2 = dataclasses.replace(make_network(1, OTHER), id=11)
X = dataclasses.replace(make_endpoint(11, H2, NET1_T2, 3, "x"), ip=B.ip)
Y = dataclasses.replace(make_endpoint(12, H1, NET1_T2, 5, "y"), ip=A.ip)


def view_of(topo: Topology = T, extra: Iterable[Obj] = (), replace: Iterable[Obj] = ()) -> View:
    """A View of `topo` plus `extra`; objects in `replace` stand in for those with the same identity."""
    swap = {_key(o): o for o in replace}
    objs: list[Obj] = [Tenant(DEFAULT_TENANT), Tenant(OTHER), *topo.hosts, *topo.networks, *topo.endpoints]
    objs = [swap.get(_key(o), o) for o in objs] + list(extra)
    view = View()
    view.load(objs, rev=1)
    return view


def _key(o: Obj) -> tuple[str, object]:
    if isinstance(o, Endpoint):
        return ("endpoint", o.id)
    if isinstance(o, Network):
        return ("network", (o.tenant, o.name))
    if isinstance(o, Host):
        return ("host", o.name)
    return ("tenant", o.name)


VIEW = view_of()
TWO_TENANTS = view_of(extra=[NET1_T2, X, Y])


def host_of(e: Endpoint) -> Host:
    return next(h for h in (H1, H2, H3) if h.name == e.host)


def egress(src: Endpoint, dst_ip: str, proto: int = TCP, **changes: Any) -> PacketMeta:
    """The PacketIn of a table-10 miss: `src` sending to `dst_ip` from its own port."""
    assert src.ofport is not None
    meta = PacketMeta(dpid=host_of(src).dpid, in_port=src.ofport, table_id=Table.EGRESS, reason=NO_MATCH,
                      eth_src=src.mac, eth_dst=GATEWAY_MAC, eth_type=ETH_IP, ip_src=src.ip, ip_dst=dst_ip,
                      ip_proto=proto, ttl=64, l4_dst=80 if proto in (TCP, UDP) else 0,
                      icmp_type=ECHO_REQUEST if proto == ICMP else -1)
    return meta._replace(**changes)


def ingress(at: Host, src_pip: str, dst_pip: str, **changes: Any) -> PacketMeta:
    """The PacketIn of a table-20 miss: a packet between PIPs arriving on `at`'s uplink."""
    meta = PacketMeta(dpid=at.dpid, in_port=at.uplink_ofport, table_id=Table.INGRESS, reason=NO_MATCH,
                      eth_src="02:18:00:00:00:99", eth_dst=at.underlay_mac, eth_type=ETH_IP,
                      ip_src=src_pip, ip_dst=dst_pip, ip_proto=TCP, ttl=63, l4_dst=80)
    return meta._replace(**changes)


def denied(d: Decision, src: Endpoint, dst_ip: str, *words: str) -> str:
    assert isinstance(d, Deny), d
    assert (d.src, d.dst_ip) == (src, dst_ip)
    for word in words:
        assert word in d.reason, f"{word!r} not in {d.reason!r}"
    return d.reason


def ignored(d: Decision, *words: str) -> str:
    assert isinstance(d, Ignore), d
    for word in words:
        assert word in d.reason, f"{word!r} not in {d.reason!r}"
    return d.reason


# -- egress misses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(A, B), (B, A), (A, C), (C, A), (D, E), (E, D)])
def test_egress_miss_from_a_known_port_plugs_the_route(src: Endpoint, dst: Endpoint) -> None:
    d = decide(egress(src, dst.ip), VIEW)
    assert d == Plug(src, dst, f"same network {src.network}")


@pytest.mark.parametrize("proto", [TCP, UDP, ICMP])
def test_every_protocol_is_plugged(proto: int) -> None:
    assert isinstance(decide(egress(A, B.ip, proto), VIEW), Plug)


@pytest.mark.parametrize("changes", [
    {"eth_src": "02:00:00:00:00:66"},  # a MAC nobody was given
    {"eth_src": C.mac},  # another container's MAC
    {"ip_src": "10.1.0.66"},  # an IP nobody was given
    {"ip_src": C.ip},  # another container's IP
    {"eth_src": C.mac, "ip_src": C.ip},  # all of c, but on a's port
])
def test_egress_miss_with_a_foreign_source_is_ignored_as_spoofed(changes: dict[str, Any]) -> None:
    ignored(decide(egress(A, B.ip, **changes), VIEW), "spoofed")


@pytest.mark.parametrize("changes", [{"in_port": 99}, {"dpid": H2.dpid}, {"dpid": 99}])
def test_egress_miss_from_an_unknown_port_or_switch_is_ignored(changes: dict[str, Any]) -> None:
    ignored(decide(egress(A, B.ip, **changes), VIEW))


def test_egress_miss_from_an_unplugged_port_is_ignored() -> None:
    view = view_of(replace=[dataclasses.replace(A, ofport=None)])
    ignored(decide(egress(A, B.ip), view), "spoofed")


@pytest.mark.parametrize("table", [Table.CLASSIFY, Table.INGRESS, Table.ARP])
def test_container_packet_in_from_another_table_is_ignored(table: Table) -> None:
    ignored(decide(egress(A, B.ip, table_id=table), VIEW), "table")


@pytest.mark.parametrize("dst_ip", ["10.1.0.99", "10.9.0.1", "8.8.8.8", A.ip])
def test_unknown_destination_in_the_tenant_is_denied(dst_ip: str) -> None:
    denied(decide(egress(A, dst_ip), VIEW), A, dst_ip, "no container", dst_ip, DEFAULT_TENANT)


def test_destination_resolves_within_the_source_tenant_only() -> None:
    assert (X.ip, Y.ip) == (B.ip, A.ip)
    # b and x share an IP: a (default) reaches b, y (t2) reaches x.
    assert decide(egress(A, B.ip), TWO_TENANTS) == Plug(A, B, "same network net1")
    assert decide(egress(Y, X.ip), TWO_TENANTS) == Plug(Y, X, "same network net1")
    assert decide(egress(X, Y.ip), TWO_TENANTS) == Plug(X, Y, "same network net1")
    # Addresses only the other tenant has are unknown, never routed across.
    denied(decide(egress(X, C.ip), TWO_TENANTS), X, C.ip, "no container", OTHER)
    denied(decide(egress(Y, D.ip), TWO_TENANTS), Y, D.ip, "no container", OTHER)
    # Each tenant's gateway answers its own pings.
    assert decide(egress(Y, NET1_T2.gateway, ICMP), TWO_TENANTS) == EchoReply(Y)


def test_ingress_pips_are_unique_across_tenants() -> None:
    assert decide(ingress(H2, Y.pip, X.pip), TWO_TENANTS) == Plug(Y, X, "same network net1")
    assert decide(ingress(H2, A.pip, B.pip), TWO_TENANTS) == Plug(A, B, "same network net1")


@pytest.mark.parametrize(("src", "dst"), [(A, D), (D, A), (A, E), (B, D), (E, C)])
def test_different_networks_of_a_tenant_are_denied_with_the_policy_reason(src: Endpoint,
                                                                          dst: Endpoint) -> None:
    reason = denied(decide(egress(src, dst.ip), VIEW), src, dst.ip)
    verdict = policy.Policy([], []).decide(src, dst, T.network_of(src), T.network_of(dst))
    assert not verdict.allowed and reason == verdict.reason
    assert src.network in reason and dst.network in reason


def test_isolated_network_is_denied() -> None:
    view = view_of(replace=[dataclasses.replace(NET1, isolated=True)])
    denied(decide(egress(A, B.ip), view), A, B.ip, "net1", "isolated")
    denied(decide(egress(A, C.ip), view), A, C.ip, "isolated")
    assert isinstance(decide(egress(D, E.ip), view), Plug)  # net2 is not isolated


def test_ping_to_the_gateway_is_answered() -> None:
    assert decide(egress(A, NET1.gateway, ICMP), VIEW) == EchoReply(A)
    assert decide(egress(D, NET2.gateway, ICMP), VIEW) == EchoReply(D)


@pytest.mark.parametrize(("proto", "changes"), [
    (TCP, {}), (UDP, {}), (ICMP, {"icmp_type": ECHO_REPLY}), (ICMP, {"icmp_type": 13}),
])
def test_anything_else_to_the_gateway_is_denied(proto: int, changes: dict[str, Any]) -> None:
    denied(decide(egress(A, NET1.gateway, proto, **changes), VIEW), A, NET1.gateway, "gateway", "net1")


def test_destination_not_plugged_in_is_ignored_without_a_drop_flow() -> None:
    # Plugging or moving: the next packet may pass, so nothing is damped.
    view = view_of(replace=[dataclasses.replace(B, ofport=None)])
    d = decide(egress(A, B.ip), view)
    assert isinstance(d, Ignore) and "not plugged" in d.reason and "b" in d.reason


def test_destination_whose_host_is_gone_is_denied() -> None:
    topo = dataclasses.replace(T, hosts=(H1, H3))
    denied(decide(egress(A, B.ip), view_of(topo)), A, B.ip, "gone")


def test_no_route_is_plugged_to_or_from_a_container_whose_host_is_down() -> None:
    view = view_of(replace=[dataclasses.replace(H2, alive=False)])  # its agent stopped heartbeating
    for src, dst in ((A, B), (B, A)):
        denied(decide(egress(src, dst.ip), view), src, dst.ip, "b is down", "h2")
    assert isinstance(decide(egress(A, C.ip), view), Plug)  # h1 to h1: unaffected
    ignored(decide(ingress(H2, A.pip, B.pip), view))  # never a drop flow on the remote source


# -- ingress misses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(A, B), (B, A), (B, C), (D, E), (E, D)])
def test_ingress_miss_between_known_pips_plugs_the_route(src: Endpoint, dst: Endpoint) -> None:
    d = decide(ingress(host_of(dst), src.pip, dst.pip), VIEW)
    assert d == Plug(src, dst, f"same network {src.network}")


@pytest.mark.parametrize(("at", "src_pip", "dst_pip"), [
    (H2, "198.18.1.99", B.pip),  # unknown source PIP
    (H2, A.pip, "198.18.2.99"),  # unknown destination PIP
    (H2, "198.18.7.1", "198.18.7.2"),  # both unknown
    (H2, A.pip, E.pip),  # the destination lives on another host
    (H2, A.pip, H2.underlay_ip),  # the host's own address
])
def test_ingress_miss_with_unknown_pips_is_ignored(at: Host, src_pip: str, dst_pip: str) -> None:
    ignored(decide(ingress(at, src_pip, dst_pip), VIEW), "no route")


@pytest.mark.parametrize(("view", "at", "src", "dst"), [
    (VIEW, H1, B, D),  # different networks: policy says no
    (VIEW, H3, A, E),
    (view_of(replace=[dataclasses.replace(NET1, isolated=True)]), H2, A, B),
    (view_of(replace=[dataclasses.replace(B, ofport=None)]), H2, A, B),  # destination unplugged
    (view_of(replace=[dataclasses.replace(A, ofport=None)]), H2, A, B),  # source unplugged
])
def test_ingress_miss_is_never_denied(view: View, at: Host, src: Endpoint, dst: Endpoint) -> None:
    """A drop flow for an ingress miss would land on the wrong switch: ignore instead."""
    d = decide(ingress(at, src.pip, dst.pip), view)
    assert isinstance(d, Ignore), d


# -- TTL expired ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(A, B), (A, C), (D, E), (B, A)])
def test_ttl_expired_on_a_container_port_is_answered_by_its_gateway(src: Endpoint, dst: Endpoint) -> None:
    d = decide(egress(src, dst.ip, UDP, reason=INVALID_TTL, ttl=1), VIEW)
    assert d == TimeExceeded(to=src, orig_dst=dst, router_ip=T.network_of(src).gateway)


def test_ttl_expired_on_a_container_port_in_another_tenant() -> None:
    d = decide(egress(Y, X.ip, UDP, reason=INVALID_TTL, ttl=1), TWO_TENANTS)
    assert d == TimeExceeded(to=Y, orig_dst=X, router_ip=NET1_T2.gateway)


@pytest.mark.parametrize(("changes", "words"), [
    ({"eth_src": C.mac}, "unknown source"),
    ({"in_port": 99}, "unknown source"),
    ({"ip_dst": "10.1.0.99"}, "unknown destination"),
])
def test_ttl_expired_from_or_to_unknown_containers_is_ignored(changes: dict[str, Any], words: str) -> None:
    ignored(decide(egress(A, B.ip, UDP, reason=INVALID_TTL, ttl=1, **changes), VIEW), words)


@pytest.mark.parametrize(("src", "dst"), [(A, B), (B, A), (D, E), (E, C)])
def test_ttl_expired_on_the_uplink_is_answered_by_that_host(src: Endpoint, dst: Endpoint) -> None:
    at = host_of(dst)
    d = decide(ingress(at, src.pip, dst.pip, reason=INVALID_TTL, ttl=1), VIEW)
    assert d == TimeExceeded(to=src, orig_dst=dst, router_ip=at.underlay_ip)


@pytest.mark.parametrize(("src_pip", "dst_pip"), [("198.18.1.99", B.pip), (A.pip, "198.18.2.99")])
def test_ttl_expired_on_the_uplink_between_unknown_pips_is_ignored(src_pip: str, dst_pip: str) -> None:
    ignored(decide(ingress(H2, src_pip, dst_pip, reason=INVALID_TTL, ttl=1), VIEW), "unknown PIPs")


# -- not for us ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("meta", [
    PacketMeta(dpid=H1.dpid, in_port=2, table_id=Table.EGRESS, reason=NO_MATCH),
    PacketMeta(dpid=H1.dpid, in_port=2, table_id=Table.ARP, reason=ACTION, eth_src=A.mac,
               eth_dst="ff:ff:ff:ff:ff:ff", eth_type=ETH_ARP),
    PacketMeta(dpid=H1.dpid, in_port=UPLINK, table_id=Table.INGRESS, reason=INVALID_TTL,
               eth_src=A.mac, eth_dst=GATEWAY_MAC, eth_type=0x86DD),
])
def test_non_ip_is_ignored(meta: PacketMeta) -> None:
    assert decide(meta, VIEW) == Ignore("not IPv4 or IPv6")


# -- from real frames -------------------------------------------------------------------------------------


def frame(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, l4: Any = None, ttl: int = 64,
          payload: bytes = b"") -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ETH_IP))
    proto = {tcp.tcp: TCP, udp.udp: UDP, icmp.icmp: ICMP}.get(type(l4), 253)
    pkt.add_protocol(ipv4.ipv4(src=ip_src, dst=ip_dst, proto=proto, ttl=ttl))
    if l4 is not None:
        pkt.add_protocol(l4)
    if payload:
        pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def tcp_syn(dst_port: int = 80) -> tcp.tcp:
    return tcp.tcp(src_port=40000, dst_port=dst_port, seq=1, bits=tcp.TCP_SYN)


def echo_request() -> icmp.icmp:
    return icmp.icmp(type_=icmp.ICMP_ECHO_REQUEST, code=0, csum=0,
                     data=icmp.echo(id_=0x1234, seq=1, data=b"ping"))


def from_container(src: Endpoint, data: bytes, reason: int = NO_MATCH) -> PacketMeta:
    assert src.ofport is not None
    return parse(host_of(src).dpid, src.ofport, Table.EGRESS, reason, data)


def test_parse_tcp_frame_and_plug() -> None:
    meta = from_container(A, frame(A.mac, GATEWAY_MAC, A.ip, B.ip, tcp_syn(8080)))
    assert meta == PacketMeta(dpid=H1.dpid, in_port=2, table_id=Table.EGRESS, reason=NO_MATCH,
                              eth_src=A.mac, eth_dst=GATEWAY_MAC, eth_type=ETH_IP, ip_src=A.ip, ip_dst=B.ip,
                              ip_proto=TCP, ttl=64, l4_dst=8080, icmp_type=-1, l4_src=40000)
    assert decide(meta, VIEW) == Plug(A, B, "same network net1")


def test_parse_udp_frame() -> None:
    l4 = udp.udp(src_port=33434, dst_port=33435)
    meta = from_container(A, frame(A.mac, GATEWAY_MAC, A.ip, D.ip, l4, payload=b"probe"))
    assert (meta.ip_proto, meta.l4_dst, meta.icmp_type) == (UDP, 33435, -1)
    denied(decide(meta, VIEW), A, D.ip, "net1", "net2")


def test_parse_echo_request_to_the_gateway() -> None:
    meta = from_container(A, frame(A.mac, GATEWAY_MAC, A.ip, NET1.gateway, echo_request()))
    assert (meta.ip_proto, meta.icmp_type, meta.l4_dst) == (ICMP, ECHO_REQUEST, 0)
    assert decide(meta, VIEW) == EchoReply(A)
    tcp_meta = from_container(A, frame(A.mac, GATEWAY_MAC, A.ip, NET1.gateway, tcp_syn(22)))
    denied(decide(tcp_meta, VIEW), A, NET1.gateway, "gateway")


def test_parse_spoofed_frame() -> None:
    meta = from_container(A, frame(A.mac, GATEWAY_MAC, "10.1.0.66", B.ip, tcp_syn()))
    ignored(decide(meta, VIEW), "spoofed")


def test_parse_expired_frames() -> None:
    expired = frame(A.mac, GATEWAY_MAC, A.ip, B.ip, udp.udp(src_port=1, dst_port=33434), ttl=1)
    meta = from_container(A, expired, INVALID_TTL)
    assert meta.ttl == 1
    assert decide(meta, VIEW) == TimeExceeded(to=A, orig_dst=B, router_ip=NET1.gateway)
    probe = udp.udp(src_port=1, dst_port=33434)
    on_wire = frame(H1.underlay_mac, H2.underlay_mac, A.pip, B.pip, probe, ttl=1)
    meta = parse(H2.dpid, UPLINK, Table.INGRESS, INVALID_TTL, on_wire)
    assert decide(meta, VIEW) == TimeExceeded(to=A, orig_dst=B, router_ip=H2.underlay_ip)


def test_parse_ingress_frame() -> None:
    on_wire = frame(H1.underlay_mac, H2.underlay_mac, A.pip, B.pip, tcp_syn())
    meta = parse(H2.dpid, UPLINK, Table.INGRESS, NO_MATCH, on_wire)
    assert (meta.ip_src, meta.ip_dst, meta.eth_src) == (A.pip, B.pip, H1.underlay_mac)
    assert decide(meta, VIEW) == Plug(A, B, "same network net1")
    unknown = frame(H1.underlay_mac, H2.underlay_mac, "198.18.1.200", B.pip, tcp_syn())
    ignored(decide(parse(H2.dpid, UPLINK, Table.INGRESS, NO_MATCH, unknown), VIEW))


def test_parse_arp_frame() -> None:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=A.mac, ethertype=ETH_ARP))
    pkt.add_protocol(arp.arp_ip(arp.ARP_REQUEST, A.mac, A.ip, "00:00:00:00:00:00", B.ip))
    pkt.serialize()
    meta = from_container(A, bytes(pkt.data))
    assert (meta.eth_src, meta.eth_type, meta.is_ip, meta.ip_src) == (A.mac, ETH_ARP, False, "")
    assert decide(meta, VIEW) == Ignore("not IPv4 or IPv6")


GOOD = frame(A.mac, GATEWAY_MAC, A.ip, B.ip, tcp_syn())
ETH_HEADER = GOOD[:14]

DECISIONS = (Plug, Deny, Ignore, EchoReply, TimeExceeded)

JUNK = [  # nothing an IPv4 decision can be made from
    b"",
    b"\x00",
    b"\xff" * 13,
    ETH_HEADER,  # IPv4 ethertype and nothing after
    ETH_HEADER + b"\x45\x00\x00",  # a truncated IPv4 header
    bytes(range(256)),
    b"\x00" * 1500,
]

DAMAGED = [  # a real frame, damaged: whatever comes of it, nothing raises
    ETH_HEADER + b"\x4f" + bytes(19),  # IHL 15 but 20 bytes
    ETH_HEADER + b"\x41" + GOOD[15:],  # IHL 1
    ETH_HEADER + b"\x65" + GOOD[15:],  # version 6 in an IPv4 frame
    GOOD[:40],  # IPv4 header and a truncated TCP header
    GOOD[:22] + b"\x00" + GOOD[23:],  # TTL 0, checksum now wrong
    GOOD + bytes(range(256)),  # trailing garbage
]


@pytest.mark.parametrize("data", JUNK)
def test_junk_parses_to_nothing_and_is_ignored(data: bytes) -> None:
    for reason in (NO_MATCH, INVALID_TTL):
        for dpid, port, table in ((H1.dpid, 2, Table.EGRESS), (H2.dpid, UPLINK, Table.INGRESS)):
            meta = parse(dpid, port, table, reason, data)
            assert (meta.dpid, meta.in_port, meta.table_id, meta.reason) == (dpid, port, table, reason)
            assert not meta.is_ip
            assert decide(meta, VIEW) == Ignore("not IPv4 or IPv6")


@pytest.mark.parametrize("data", DAMAGED)
def test_damaged_frames_never_raise(data: bytes) -> None:
    for reason in (NO_MATCH, INVALID_TTL):
        for dpid, port, table in ((H1.dpid, 2, Table.EGRESS), (H2.dpid, UPLINK, Table.INGRESS)):
            assert isinstance(decide(parse(dpid, port, table, reason, data), VIEW), DECISIONS)


def test_every_truncation_of_a_real_frame_parses() -> None:
    for n in range(len(GOOD)):
        assert isinstance(decide(parse(H1.dpid, 2, Table.EGRESS, NO_MATCH, GOOD[:n]), VIEW), DECISIONS)


@settings(max_examples=300, deadline=None)
@given(head=st.sampled_from([b"", ETH_HEADER, GOOD[:34]]), tail=st.binary(max_size=200),
       reason=st.sampled_from([NO_MATCH, ACTION, INVALID_TTL]), uplink=st.booleans())
def test_random_bytes_never_raise(head: bytes, tail: bytes, reason: int, uplink: bool) -> None:
    port, table = (UPLINK, Table.INGRESS) if uplink else (2, Table.EGRESS)
    meta = parse(H1.dpid, port, table, reason, head + tail)
    assert isinstance(decide(meta, VIEW), DECISIONS)
