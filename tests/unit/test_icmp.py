"""The distributed router's ICMP answers, checked on the wire bytes: parsed
back with os-ken and every checksum recomputed independently."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet, tcp, udp

from daolinet.decide.icmp import echo_reply, original_header, time_exceeded
from daolinet.pipeline import GATEWAY_MAC

ETH_IP = 0x0800
A_MAC, A_IP, A_PIP = "02:00:00:00:00:01", "10.1.0.11", "198.18.1.11"
B_IP, B_PIP = "10.1.0.12", "198.18.2.12"
GATEWAY = "10.1.0.1"
H1_MAC, H2_MAC, H2_IP = "02:18:00:00:00:01", "02:18:00:00:00:02", "198.18.0.2"


def inet_checksum(data: bytes) -> int:
    """RFC 1071, written out: 0 over a block that carries a correct checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build(*protocols: object) -> bytes:
    pkt = packet.Packet()
    for proto in protocols:
        pkt.add_protocol(proto)
    pkt.serialize()
    return bytes(pkt.data)


def echo_request_frame(data: bytes, id_: int = 0x1234, seq: int = 7, ttl: int = 64) -> bytes:
    return build(ethernet.ethernet(dst=GATEWAY_MAC, src=A_MAC, ethertype=ETH_IP),
                 ipv4.ipv4(src=A_IP, dst=GATEWAY, proto=1, ttl=ttl, identification=4242, flags=2),
                 icmp.icmp(type_=icmp.ICMP_ECHO_REQUEST, code=0, csum=0,
                           data=icmp.echo(id_=id_, seq=seq, data=data)))


def ip_part(frame: bytes) -> tuple[bytes, bytes]:
    """(IPv4 header, IPv4 payload) of an Ethernet frame, cut by the header's own lengths."""
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    return frame[14:14 + ihl], frame[14 + ihl:14 + total]


def assert_checksums(frame: bytes) -> None:
    header, payload = ip_part(frame)
    assert inet_checksum(header) == 0, "IPv4 header checksum"
    assert inet_checksum(payload) == 0, "ICMP checksum"


# -- echo reply --------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", b"abc", bytes(range(56)), b"\xff" * 1400])
def test_echo_reply_swaps_addresses_and_keeps_id_seq_data(data: bytes) -> None:
    request = echo_request_frame(data)
    reply = echo_reply(request, GATEWAY_MAC)
    assert reply is not None
    pkt = packet.Packet(reply)
    eth, ip, msg = (pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4),
                    pkt.get_protocol(icmp.icmp))
    assert (eth.src, eth.dst, eth.ethertype) == (GATEWAY_MAC, A_MAC, ETH_IP)
    assert (ip.src, ip.dst, ip.proto) == (GATEWAY, A_IP, 1)
    assert ip.ttl > 1
    assert (msg.type, msg.code) == (icmp.ICMP_ECHO_REPLY, 0)
    assert (msg.data.id, msg.data.seq, msg.data.data or b"") == (0x1234, 7, data)
    assert_checksums(reply)
    _, icmp_bytes = ip_part(reply)
    assert icmp_bytes[4:] == ip_part(request)[1][4:]  # id, seq and data byte for byte
    assert ip.total_length == 20 + 8 + len(data)


@pytest.mark.parametrize(("id_", "seq"), [(0, 0), (0xFFFF, 0xFFFF), (1, 65000)])
def test_echo_reply_keeps_extreme_ids(id_: int, seq: int) -> None:
    reply = echo_reply(echo_request_frame(b"ping", id_, seq), GATEWAY_MAC)
    assert reply is not None
    msg = packet.Packet(reply).get_protocol(icmp.icmp)
    assert (msg.data.id, msg.data.seq) == (id_, seq)
    assert_checksums(reply)


def test_echo_reply_ignores_ethernet_padding() -> None:
    request = echo_request_frame(b"ab")
    _, payload = ip_part(request)
    unpadded = request[:14 + 20 + len(payload)]
    reply = echo_reply(unpadded + b"\xaa" * (60 - len(unpadded)), GATEWAY_MAC)
    assert reply is not None
    assert packet.Packet(reply).get_protocol(icmp.icmp).data.data == b"ab"
    assert_checksums(reply)


def test_echo_reply_only_answers_echo_requests() -> None:
    eth = ethernet.ethernet(dst=GATEWAY_MAC, src=A_MAC, ethertype=ETH_IP)
    reply = build(eth, ipv4.ipv4(src=A_IP, dst=GATEWAY, proto=1),
                  icmp.icmp(type_=icmp.ICMP_ECHO_REPLY, code=0, csum=0, data=icmp.echo(id_=1, seq=1)))
    syn = build(eth, ipv4.ipv4(src=A_IP, dst=GATEWAY, proto=6),
                tcp.tcp(src_port=1, dst_port=80, bits=tcp.TCP_SYN))
    who_has = build(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=A_MAC, ethertype=0x0806),
                    arp.arp_ip(arp.ARP_REQUEST, A_MAC, A_IP, "00:00:00:00:00:00", GATEWAY))
    for frame in (reply, syn, who_has):
        assert echo_reply(frame, GATEWAY_MAC) is None


# -- time exceeded ------------------------------------------------------------------------------------


def probe_frame(src_ip: str, dst_ip: str, ttl: int = 1, options: bytes = b"",
                eth_src: str = A_MAC, eth_dst: str = GATEWAY_MAC) -> bytes:
    """A traceroute UDP probe; `options` go into the IPv4 header (a multiple of 4 bytes)."""
    return build(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ETH_IP),
                 ipv4.ipv4(src=src_ip, dst=dst_ip, proto=17, ttl=ttl, identification=0xBEEF,
                           option=options or None, header_length=5 + len(options) // 4),
                 udp.udp(src_port=40001, dst_port=33434), b"traceroute-probe-payload")


@pytest.mark.parametrize("options", [b"", b"\x01\x01\x01\x00", b"\x01" * 7 + b"\x00"])
@pytest.mark.parametrize("ttl", [0, 1])
def test_original_header_is_the_sender_view_with_ttl_1(options: bytes, ttl: int) -> None:
    frame = probe_frame(A_PIP, B_PIP, ttl=ttl, options=options)  # on the wire: PIPs
    header, payload = ip_part(frame)
    embedded = original_header(frame, A_IP, B_IP)  # the sender wrote logical addresses
    assert embedded is not None
    ihl = len(header)
    assert len(embedded) == ihl + 8
    assert embedded[ihl:] == payload[:8]  # the UDP header: traceroute's ports
    assert embedded[8] == 1
    assert embedded[12:16] == ipaddress.IPv4Address(A_IP).packed
    assert embedded[16:20] == ipaddress.IPv4Address(B_IP).packed
    assert inet_checksum(embedded[:ihl]) == 0
    # Everything else of the header is as it was.
    same = [i for i in range(ihl) if i not in (8, 10, 11, *range(12, 20))]
    assert [embedded[i] for i in same] == [header[i] for i in same]


@pytest.mark.parametrize("on_wire", [(A_IP, B_IP), (A_PIP, B_PIP)])
def test_time_exceeded_embeds_the_original_header(on_wire: tuple[str, str]) -> None:
    frame = probe_frame(*on_wire)
    embedded = original_header(frame, A_IP, B_IP)
    assert embedded is not None
    answer = time_exceeded(embedded, H2_IP, GATEWAY_MAC, A_IP, A_MAC)
    pkt = packet.Packet(answer)
    eth, ip, msg = (pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4),
                    pkt.get_protocol(icmp.icmp))
    assert (eth.src, eth.dst, eth.ethertype) == (GATEWAY_MAC, A_MAC, ETH_IP)
    assert (ip.src, ip.dst, ip.proto) == (H2_IP, A_IP, 1)
    assert ip.ttl > 1
    assert (msg.type, msg.code) == (icmp.ICMP_TIME_EXCEEDED, 0)
    assert isinstance(msg.data, icmp.TimeExceeded)
    assert msg.data.data == embedded
    assert_checksums(answer)
    _, icmp_bytes = ip_part(answer)
    assert icmp_bytes[4:8] == b"\x00" * 4  # unused (no RFC 4884 length)
    assert icmp_bytes[8:] == embedded
    # What traceroute reads back: the probe as it sent it.
    inner = ipv4.ipv4.parser(embedded)[0]
    assert (inner.src, inner.dst, inner.ttl, inner.proto, inner.identification) == (A_IP, B_IP, 1, 17, 0xBEEF)
    assert struct.unpack_from("!HH", embedded, 20) == (40001, 33434)


def test_time_exceeded_from_a_gateway() -> None:
    embedded = original_header(probe_frame(A_IP, B_IP), A_IP, B_IP)
    assert embedded is not None
    answer = time_exceeded(embedded, GATEWAY, GATEWAY_MAC, A_IP, A_MAC)
    assert packet.Packet(answer).get_protocol(ipv4.ipv4).src == GATEWAY
    assert_checksums(answer)


# -- junk ----------------------------------------------------------------------------------------------------


VALID = echo_request_frame(b"ping")
PROBE = probe_frame(A_PIP, B_PIP)

JUNK = [
    b"",
    b"\x00",
    b"junk",
    b"\x00" * 33,
    VALID[:14],
    VALID[:30],  # a truncated IPv4 header
    VALID[:14] + b"\x44" + VALID[15:],  # IHL 4
    VALID[:14] + b"\x4f" + VALID[15:34],  # IHL 15, 20 bytes of header
    VALID[:12] + b"\x86\xdd" + VALID[14:],  # not IPv4 by its ethertype
    build(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=A_MAC, ethertype=0x0806),
          arp.arp_ip(arp.ARP_REQUEST, A_MAC, A_IP, "00:00:00:00:00:00", GATEWAY)),
]


@pytest.mark.parametrize("frame", JUNK)
def test_junk_gives_none(frame: bytes) -> None:
    assert echo_reply(frame, GATEWAY_MAC) is None
    assert original_header(frame, A_IP, B_IP) is None


def test_original_header_needs_ip_version_4() -> None:
    assert original_header(PROBE[:14] + b"\x65" + PROBE[15:], A_IP, B_IP) is None


def test_truncated_frames_never_raise() -> None:
    for n in range(len(VALID)):
        echo_reply(VALID[:n], GATEWAY_MAC)
    for n in range(len(PROBE)):
        original_header(PROBE[:n], A_IP, B_IP)


@settings(max_examples=300, deadline=None)
@given(head=st.sampled_from([b"", VALID[:14], VALID[:34], PROBE[:34]]), tail=st.binary(max_size=120))
def test_random_bytes_never_raise(head: bytes, tail: bytes) -> None:
    reply = echo_reply(head + tail, GATEWAY_MAC)
    if reply is not None:
        assert_checksums(reply)
    embedded = original_header(head + tail, A_IP, B_IP)
    if embedded is not None:
        ihl = (embedded[0] & 0x0F) * 4
        assert embedded[8] == 1 and inet_checksum(embedded[:ihl]) == 0
