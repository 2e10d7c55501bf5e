"""ICMP answers of the distributed router, built with os-ken's packet library.

- echo replies for pings to a network's gateway address;
- time-exceeded for packets whose TTL ran out at a hop, embedding the
  original header *as the sender wrote it* (logical addresses, not PIPs), so
  traceroute matches the answer to its probe.
"""

from __future__ import annotations

import ipaddress
import struct

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
    except Exception:
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
