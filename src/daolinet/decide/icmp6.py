"""ICMPv6 answers of the distributed router, built with os-ken's packet library
(decide/icmp.py's IPv6 counterpart; os-ken computes the checksum over the IPv6
pseudo-header when a message's csum is 0).

- echo replies (129) for pings to a network's gateway6;
- time exceeded (3, code 0) for packets whose hop limit ran out at a hop,
  embedding the invoking packet *as the sender wrote it* (logical addresses,
  not PIPs; hop limit 1), as much of it as fits the minimum MTU (RFC 4443 2.4),
  so traceroute6 matches the answer to its probe;
- relayed errors: an underlay router's destination unreachable (1), packet too
  big (2) or time exceeded (3) about a packet between IPv6 PIPs, re-addressed to
  the container with the logical addresses put back into the embedded header
  (path MTU discovery needs packet too big: IPv6 routers never fragment).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from os_ken.lib.packet import ethernet, icmpv6, ipv6, packet

ETH_IPV6 = 0x86DD
ICMPV6 = 58
HOP_LIMIT = 64
MIN_MTU = 1280
ERRORS = (icmpv6.ICMPV6_DST_UNREACH, icmpv6.ICMPV6_PACKET_TOO_BIG, icmpv6.ICMPV6_TIME_EXCEEDED)
_HEADER = 40  # the fixed IPv6 header
_MAX_EMBEDDED = MIN_MTU - _HEADER - 8  # what fits after the answer's own headers


def _frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, message: icmpv6.icmpv6) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ETH_IPV6))
    pkt.add_protocol(ipv6.ipv6(src=src_ip, dst=dst_ip, nxt=ICMPV6, hop_limit=HOP_LIMIT))
    pkt.add_protocol(message)
    pkt.serialize()
    return bytes(pkt.data)


def _parse(frame: bytes) -> tuple[ethernet.ethernet, ipv6.ipv6, icmpv6.icmpv6] | None:
    try:
        pkt = packet.Packet(frame)
    except Exception:  # noqa: BLE001 -- os-ken's parser may raise anything on a bad frame
        return None
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv6.ipv6)
    msg = pkt.get_protocol(icmpv6.icmpv6)
    if eth is None or ip is None or msg is None:
        return None
    return eth, ip, msg


def echo_reply(request: bytes, src_mac: str) -> bytes | None:
    """Answer an ICMPv6 echo request frame from its destination address."""
    parsed = _parse(request)
    if parsed is None or parsed[2].type_ != icmpv6.ICMPV6_ECHO_REQUEST:
        return None
    eth, ip, req = parsed
    reply = icmpv6.icmpv6(type_=icmpv6.ICMPV6_ECHO_REPLY, code=0, csum=0, data=req.data)
    return _frame(src_mac, eth.src, ip.dst, ip.src, reply)


def _readdressed(packet6: bytes, src_ip: str, dst_ip: str) -> bytes:
    head = bytearray(packet6)
    head[8:24] = ipaddress.IPv6Address(src_ip).packed
    head[24:40] = ipaddress.IPv6Address(dst_ip).packed
    return bytes(head)


def original_packet(frame: bytes, src_ip: str, dst_ip: str) -> bytes | None:
    """The expired packet (its IPv6 header on, as much as fits), addresses set to the
    sender's view and hop limit 1."""
    if len(frame) < 14 + _HEADER or frame[12:14] != b"\x86\xdd" or frame[14] >> 4 != 6:
        return None  # not an IPv6 frame
    head = bytearray(_readdressed(frame[14:14 + _MAX_EMBEDDED], src_ip, dst_ip))
    head[7] = 1
    return bytes(head)


def time_exceeded(embedded: bytes, router_ip: str, router_mac: str, to_ip: str, to_mac: str) -> bytes:
    """Hop limit exceeded in transit (code 0), from router_ip; 4 unused bytes, then the packet."""
    message = icmpv6.icmpv6(type_=icmpv6.ICMPV6_TIME_EXCEEDED, code=0, csum=0, data=bytes(4) + embedded)
    return _frame(router_mac, to_mac, router_ip, to_ip, message)


def relay_error(frame: bytes, to_ip: str, to_mac: str, src_mac: str,
                translate: Callable[[str], str]) -> bytes | None:
    """An underlay router's ICMPv6 error about a packet that travelled between PIPs,
    re-addressed to the container, the embedded addresses translated back (packet
    too big keeps its MTU: the 4 bytes before the embedded packet stay)."""
    parsed = _parse(frame)
    if parsed is None or parsed[2].type_ not in ERRORS or not isinstance(parsed[2].data, bytes | bytearray):
        return None
    _, ip, err = parsed
    body = bytes(err.data)
    inner = body[4:]
    if len(inner) < _HEADER or inner[0] >> 4 != 6:
        return None
    src = str(ipaddress.IPv6Address(inner[8:24]))
    dst = str(ipaddress.IPv6Address(inner[24:40]))
    embedded = _readdressed(inner[:_MAX_EMBEDDED], translate(src), translate(dst))
    message = icmpv6.icmpv6(type_=err.type_, code=err.code, csum=0, data=body[:4] + embedded)
    return _frame(src_mac, to_mac, ip.src, to_ip, message)
