"""Direct delivery of a route's first packet (decide/direct.py) hands the destination
container exactly what the route's own flows would have: checked against the
fake flow table running the route, and against os-ken's parse of the result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import ethernet, ipv4, ipv6, packet, udp

from daolinet.decide.direct import HOPS, checksum, delivered
from daolinet.pipeline import GATEWAY_MAC
from daolinet.testing.factories import dual_stack, ip_from, ipv6_from, small_topology

TOPO = small_topology()
A, B = TOPO.endpoint("a"), TOPO.endpoint("b")  # on h1 and h2
TOPO6 = dual_stack(TOPO)
A6, B6 = TOPO6.endpoint("a"), TOPO6.endpoint("b")


def frame(ttl: int, payload: bytes, options: bytes = b"") -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=A.mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=A.ip, dst=B.ip, proto=17, ttl=ttl, option=options or None,
                               header_length=5 + len(options) // 4))
    pkt.add_protocol(udp.udp(src_port=1000, dst_port=7))
    pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


@settings(max_examples=200, deadline=None)
@given(st.integers(HOPS + 1, 255), st.binary(max_size=200),
       st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00" * 2]))
def test_what_the_route_would_deliver(ttl: int, payload: bytes, options: bytes) -> None:
    sent = frame(ttl, payload, options)
    net = TOPO.fake_network()
    net.apply_steps(TOPO.route_plan(A, B).steps)
    (delivery,) = net.trace(TOPO.host_of(A).dpid, ip_from(A, B.ip, ttl=ttl)).deliveries
    through_route = delivery.packet

    out = delivered(sent, mac(GATEWAY_MAC), mac(B.mac))
    assert out is not None
    pkt = packet.Packet(out)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    assert (eth.src, eth.dst) == (through_route["eth_src"], through_route["eth_dst"])
    assert (ip.src, ip.dst, ip.ttl) == (through_route["ipv4_src"], through_route["ipv4_dst"],
                                        through_route["ip_ttl"])
    assert checksum(out[14:14 + ip.header_length * 4]) == 0  # a valid header checksum
    assert out[14 + ip.header_length * 4:] == sent[14 + ip.header_length * 4:]  # L4 untouched


@given(st.integers(0, HOPS))
def test_a_ttl_that_would_run_out_takes_the_long_way(ttl: int) -> None:
    assert delivered(frame(ttl, b"x"), mac(GATEWAY_MAC), mac(B.mac)) is None


@given(st.binary(max_size=60))
def test_junk_is_never_delivered_directly(junk: bytes) -> None:
    out = delivered(junk, mac(GATEWAY_MAC), mac(B.mac))
    assert out is None or (junk[12:14] in (b"\x08\x00", b"\x86\xdd") and len(out) == len(junk))


def frame6(hop_limit: int, payload: bytes) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=A6.mac, ethertype=0x86DD))
    pkt.add_protocol(ipv6.ipv6(src=A6.ip6, dst=B6.ip6, nxt=17, hop_limit=hop_limit))
    pkt.add_protocol(udp.udp(src_port=1000, dst_port=7))
    pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


@settings(max_examples=200, deadline=None)
@given(st.integers(HOPS + 1, 255), st.binary(max_size=200))
def test_what_the_ipv6_route_would_deliver(hop_limit: int, payload: bytes) -> None:
    sent = frame6(hop_limit, payload)
    net = TOPO6.fake_network()
    net.apply_steps(TOPO6.route_plan(A6, B6, family=6).steps)
    (delivery,) = net.trace(TOPO6.host_of(A6).dpid, ipv6_from(A6, B6.ip6, hop_limit=hop_limit)).deliveries
    through_route = delivery.packet

    out = delivered(sent, mac(GATEWAY_MAC), mac(B6.mac))
    assert out is not None
    pkt = packet.Packet(out)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv6.ipv6)
    assert (eth.src, eth.dst) == (through_route["eth_src"], through_route["eth_dst"])
    assert (ip.src, ip.dst, ip.hop_limit) == (through_route["ipv6_src"], through_route["ipv6_dst"],
                                              through_route["ip_ttl"])
    assert out[14 + 40:] == sent[14 + 40:]  # L4 untouched (its checksum covers the addresses, unchanged)


@given(st.integers(0, HOPS))
def test_a_hop_limit_that_would_run_out_takes_the_long_way(hop_limit: int) -> None:
    assert delivered(frame6(hop_limit, b"x"), mac(GATEWAY_MAC), mac(B6.mac)) is None
