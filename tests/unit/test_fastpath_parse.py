"""The hot path reads PacketIns without os-ken: the OpenFlow message
(ofp/codec.parse_packet_in) and the packet in it (decide/packet.parse).
os-ken stays the reference: both must agree with it."""

from __future__ import annotations

import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import ethernet, icmp, icmpv6, ipv4, ipv6, packet, tcp, udp

from daolinet.decide.packet import EXTENSION_HEADERS, PacketMeta, parse
from daolinet.ofp.codec import RemoteProtocolError, decode, ofp, parse_packet_in, parser

ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
u16 = st.integers(0, 0xFFFF)


def reference(dpid: int, in_port: int, table_id: int, reason: int, data: bytes) -> PacketMeta:
    """The parse the hot path had before: os-ken's packet library."""
    base = PacketMeta(dpid=dpid, in_port=in_port, table_id=table_id, reason=reason)
    try:
        pkt = packet.Packet(data)
    except Exception:  # noqa: BLE001 -- garbage may raise anything inside os-ken
        return base
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return base
    ip = pkt.get_protocol(ipv4.ipv4)
    ip6 = pkt.get_protocol(ipv6.ipv6)
    if ip6 is not None and ip6.nxt not in EXTENSION_HEADERS:  # extension headers: not routed
        return _with_l4(pkt, PacketMeta(dpid, in_port, table_id, reason, eth.src, eth.dst, eth.ethertype,
                                        ip6.src, ip6.dst, ip6.nxt, ip6.hop_limit))
    if ip is None:
        return PacketMeta(dpid, in_port, table_id, reason, eth.src, eth.dst, eth.ethertype)
    return _with_l4(pkt, PacketMeta(dpid, in_port, table_id, reason, eth.src, eth.dst, eth.ethertype,
                                    ip.src, ip.dst, ip.proto, ip.ttl))


def _with_l4(pkt: packet.Packet, meta: PacketMeta) -> PacketMeta:
    l4_src, l4_dst, icmp_type = 0, 0, -1
    for proto in pkt.protocols:
        if isinstance(proto, tcp.tcp | udp.udp):
            l4_src, l4_dst = proto.src_port, proto.dst_port
        elif isinstance(proto, icmp.icmp | icmpv6.icmpv6):
            icmp_type = proto.type_ if isinstance(proto, icmpv6.icmpv6) else proto.type
    return meta._replace(l4_dst=l4_dst, icmp_type=icmp_type, l4_src=l4_src)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    pkt = packet.Packet()
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "other-ip", "arp-ish", "v6"]))
    if kind == "v6":
        return draw(frames6())
    eth_type = 0x0806 if kind == "arp-ish" else 0x0800
    pkt.add_protocol(ethernet.ethernet(dst=draw(macs), src=draw(macs), ethertype=eth_type))
    if kind == "arp-ish":
        pkt.serialize()
        return bytes(pkt.data) + draw(st.binary(max_size=40))
    proto = {"tcp": 6, "udp": 17, "icmp": 1}.get(kind) or draw(st.sampled_from([2, 47, 50, 132]))
    pkt.add_protocol(ipv4.ipv4(src=draw(ipv4s), dst=draw(ipv4s), proto=proto, ttl=draw(st.integers(0, 255))))
    if kind == "tcp":
        pkt.add_protocol(tcp.tcp(src_port=draw(u16), dst_port=draw(u16), bits=draw(st.integers(0, 0x3F))))
    elif kind == "udp":
        pkt.add_protocol(udp.udp(src_port=draw(u16), dst_port=draw(u16)))
    elif kind == "icmp":
        pkt.add_protocol(icmp.icmp(type_=draw(st.sampled_from([0, 3, 8, 11])), code=0, csum=0,
                                   data=icmp.echo(id_=1, seq=1, data=b"x")))
    pkt.add_protocol(draw(st.binary(max_size=64)))
    pkt.serialize()
    return bytes(pkt.data)


@st.composite
def frames6(draw: st.DrawFn) -> bytes:
    """IPv6 frames: TCP, UDP, ICMPv6 echo and errors, another protocol, or an extension header."""
    pkt = packet.Packet()
    kind = draw(st.sampled_from(["tcp", "udp", "icmp6", "other-ip", "extension"]))
    pkt.add_protocol(ethernet.ethernet(dst=draw(macs), src=draw(macs), ethertype=0x86DD))
    nxt = ({"tcp": 6, "udp": 17, "icmp6": 58}.get(kind) or
           draw(st.sampled_from(sorted(EXTENSION_HEADERS) if kind == "extension" else [47, 50, 59, 132])))
    hop_limit = draw(st.integers(0, 255))
    pkt.add_protocol(ipv6.ipv6(src=draw(ipv6s), dst=draw(ipv6s), nxt=nxt, hop_limit=hop_limit))
    if kind == "tcp":
        pkt.add_protocol(tcp.tcp(src_port=draw(u16), dst_port=draw(u16), bits=draw(st.integers(0, 0x3F))))
    elif kind == "udp":
        pkt.add_protocol(udp.udp(src_port=draw(u16), dst_port=draw(u16)))
    elif kind == "icmp6":
        type_ = draw(st.sampled_from([1, 2, 3, 128, 129]))
        body = icmpv6.echo(id_=1, seq=1, data=b"x") if type_ >= 128 else bytes(4) + b"y" * 40  # (errors: raw)
        pkt.add_protocol(icmpv6.icmpv6(type_=type_, code=0, csum=0, data=body))
    pkt.add_protocol(draw(st.binary(max_size=64)))
    pkt.serialize()
    return bytes(pkt.data)


@settings(max_examples=500, deadline=None)
@given(frames(), st.integers(1, 0xFFFF), st.sampled_from([0, 10, 20]), st.integers(0, 2))
def test_packet_fields_equal_os_ken(data: bytes, in_port: int, table_id: int, reason: int) -> None:
    ref = reference(5, in_port, table_id, reason, data)
    # os-ken drops the whole packet when a parser deeper down (IGMP, SCTP, ...) chokes on its payload;
    # the fast parse still reports what the decision needs.  Compare where os-ken parsed.
    assume(ref.eth_type != 0)
    assert parse(5, in_port, table_id, reason, data) == ref


@settings(max_examples=300, deadline=None)
@given(frames(), st.integers(0, 80))
def test_truncated_frames_equal_os_ken_or_carry_no_l4(data: bytes, cut: int) -> None:
    """A frame cut short: same answer as os-ken down to the IP header."""
    short = data[:cut]
    fast, ref = parse(1, 2, 10, 0, short), reference(1, 2, 10, 0, short)
    assume(ref.eth_type != 0)  # os-ken gave up on the whole frame
    assert (fast.eth_src, fast.eth_dst, fast.eth_type) == (ref.eth_src, ref.eth_dst, ref.eth_type)
    if fast.is_ip and ref.is_ip:
        assert (fast.ip_src, fast.ip_dst, fast.ip_proto, fast.ttl) == (ref.ip_src, ref.ip_dst, ref.ip_proto,
                                                                      ref.ttl)


@settings(max_examples=300, deadline=None)
@given(frames6())
def test_ipv6_frames_equal_os_ken(data: bytes) -> None:
    ref, fast = reference(5, 3, 10, 0, data), parse(5, 3, 10, 0, data)
    assume(ref.eth_type != 0)
    assert fast == ref
    assert fast.family == 6 and fast.is_ip == (data[20] not in EXTENSION_HEADERS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_junk_never_raises(data: bytes) -> None:
    parse(1, 2, 10, 0, data)


def packet_in_frame(xid: int, in_port: int | None, table_id: int, reason: int, cookie: int, data: bytes,
                    extra: dict[str, object]) -> bytes:
    match = bytearray()
    fields = dict(extra)
    if in_port is not None:
        fields["in_port"] = in_port
    parser.OFPMatch(**fields).serialize(match, 0)
    body = struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), reason, table_id, cookie)
    body += bytes(match) + b"\0\0" + data
    return struct.pack("!BBHI", 4, ofp.OFPT_PACKET_IN, 8 + len(body), xid) + body


extras = st.fixed_dictionaries({}, optional={"metadata": st.integers(0, (1 << 64) - 1),
                                             "tunnel_id": st.integers(0, (1 << 64) - 1),
                                             "reg0": st.integers(0, (1 << 32) - 1)})


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)), st.integers(0, 254),
       st.integers(0, 5), st.integers(0, (1 << 64) - 1), st.binary(max_size=200), extras)
def test_packet_in_message_equals_os_ken(xid: int, in_port: int | None, table_id: int, reason: int,
                                         cookie: int, data: bytes, extra: dict[str, object]) -> None:
    frame = packet_in_frame(xid, in_port, table_id, reason, cookie, data, extra)
    msg = decode(frame)
    assert parse_packet_in(frame) == (msg.match.get("in_port", 0), msg.table_id, msg.reason, msg.cookie,
                                      msg.data)


@pytest.mark.parametrize("damage", ["short", "match-type", "match-length", "field-overrun"])
def test_bad_packet_in_is_a_protocol_error(damage: str) -> None:
    frame = bytearray(packet_in_frame(1, 3, 10, 0, 0, b"\xaa" * 20, {}))
    if damage == "short":
        frame = frame[:30]
    elif damage == "match-type":
        frame[24:26] = b"\0\0"
    elif damage == "match-length":
        frame[26:28] = (4000).to_bytes(2, "big")
    else:
        frame[31] = 200  # in_port's OXM says 200 bytes
    with pytest.raises(RemoteProtocolError):
        parse_packet_in(bytes(frame))
