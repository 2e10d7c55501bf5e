"""ICMP answers of the distributed router, built with os-ken's packet library.

- echo replies for pings to a network's gateway address;
- time-exceeded for packets whose TTL ran out at a hop, embedding the
  original header *as the sender wrote it* (logical addresses, not PIPs), so
  traceroute matches the answer to its probe.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

from os_ken.lib.packet import ethernet, icmp, ipv4, packet, packet_utils

ETH_IP = 0x0800
ICMP_TTL = 64


def _frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, message: icmp.icmp) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ETH_IP))
    pkt.add_protocol(ipv4.ipv4(src=src_ip, dst=dst_ip, proto=1, ttl=ICMP_TTL))
    pkt.add_protocol(message)
    pkt.serialize()
    return bytes(pkt.data)


def echo_reply(request: bytes, src_mac: str) -> bytes | None:
    """Answer an ICMP echo request frame from its destination address."""
    try:
        pkt = packet.Packet(request)
    except Exception:  # noqa: BLE001 -- os-ken's parser may raise anything on a bad frame
        return None
    eth = pkt.get_protocol(ethernet.ethernet)
    ip = pkt.get_protocol(ipv4.ipv4)
    req = pkt.get_protocol(icmp.icmp)
    if eth is None or ip is None or req is None or req.type != icmp.ICMP_ECHO_REQUEST:
        return None
    reply = icmp.icmp(type_=icmp.ICMP_ECHO_REPLY, code=0, csum=0, data=req.data)
    return _frame(src_mac, eth.src, ip.dst, ip.src, reply)


def original_header(frame: bytes, src_ip: str, dst_ip: str) -> bytes | None:
    """The expired packet's IPv4 header + 8 payload bytes, addresses set to the
    sender's view and TTL 1, checksum fixed."""
    ip_start = 14
    if len(frame) < ip_start + 20 or frame[12:14] != b"\x08\x00" or frame[ip_start] >> 4 != 4:
        return None  # not an IPv4 frame
    ihl = (frame[ip_start] & 0x0F) * 4
    if ihl < 20 or len(frame) < ip_start + ihl:
        return None
    head = bytearray(frame[ip_start: ip_start + ihl + 8])
    head[8] = 1
    head[12:16] = ipaddress.IPv4Address(src_ip).packed
    head[16:20] = ipaddress.IPv4Address(dst_ip).packed
    struct.pack_into("!H", head, 10, 0)
    struct.pack_into("!H", head, 10, packet_utils.checksum(bytes(head[:ihl])))
    return bytes(head)


def time_exceeded(embedded: bytes, router_ip: str, router_mac: str, to_ip: str, to_mac: str) -> bytes:
    message = icmp.icmp(type_=icmp.ICMP_TIME_EXCEEDED, code=0, csum=0,
                        data=icmp.TimeExceeded(data=embedded))
    return _frame(router_mac, to_mac, router_ip, to_ip, message)


def relay_error(frame: bytes, to_ip: str, to_mac: str, src_mac: str,
                translate: Callable[[str], str]) -> bytes | None:
    """An ICMP error (unreachable, time exceeded) from an underlay router, about a
    packet that travelled between PIPs: re-address it to the container and put
    the logical addresses back into the embedded header, so traceroute and path
    MTU discovery see the path in their own terms."""
    try:
        pkt = packet.Packet(frame)
    except Exception:  # noqa: BLE001 -- os-ken's parser may raise anything on a bad frame
        return None
    ip = pkt.get_protocol(ipv4.ipv4)
    err = pkt.get_protocol(icmp.icmp)
    if ip is None or err is None or err.type not in (icmp.ICMP_DEST_UNREACH, icmp.ICMP_TIME_EXCEEDED):
        return None
    inner = bytes(err.data.data) if err.data is not None and err.data.data else b""
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return None
    head = bytearray(inner)
    ihl = (head[0] & 0x0F) * 4
    for offset in (12, 16):
        addr = str(ipaddress.IPv4Address(bytes(head[offset:offset + 4])))
        head[offset:offset + 4] = ipaddress.IPv4Address(translate(addr)).packed
    struct.pack_into("!H", head, 10, 0)
    struct.pack_into("!H", head, 10, packet_utils.checksum(bytes(head[:ihl])))
    body = (icmp.TimeExceeded(data=bytes(head)) if err.type == icmp.ICMP_TIME_EXCEEDED
            else icmp.dest_unreach(data=bytes(head), mtu=getattr(err.data, "mtu", 0)))
    message = icmp.icmp(type_=err.type, code=err.code, csum=0, data=body)
    return _frame(src_mac, to_mac, ip.src, to_ip, message)
