"""The few fields of a PacketIn the decision needs, read with fixed offsets
(os-ken's packet library, ~50 µs a frame, is the reference the tests compare
against).  Anything that is not Ethernet/IPv4 or Ethernet/IPv6 parses to a meta
without IP fields; malformed frames never raise.

IPv6: the fixed header only.  The hop limit is the meta's `ttl` (OVS's dec_ttl
decrements it too), the next header its `ip_proto`, an ICMPv6 type its
`icmp_type`.  A packet whose next header is an extension header (hop-by-hop,
routing, fragment, destination options, AH, mobility, HIP, shim6) parses
without IP fields: no route is plugged for it (a route plugged by a plain packet
of the pair carries it, as it matches addresses only)."""

from __future__ import annotations

import socket
from typing import NamedTuple

NO_MATCH = 0  # OFPR_NO_MATCH
ACTION = 1  # OFPR_ACTION (an explicit output:CONTROLLER)
INVALID_TTL = 2  # OFPR_INVALID_TTL


class PacketMeta(NamedTuple):  # a tuple: built once per PacketIn, cheaply
    dpid: int
    in_port: int
    table_id: int
    reason: int
    eth_src: str = ""
    eth_dst: str = ""
    eth_type: int = 0
    ip_src: str = ""
    ip_dst: str = ""
    ip_proto: int = 0
    ttl: int = 0
    l4_dst: int = 0
    icmp_type: int = -1
    l4_src: int = 0

    @property
    def is_ip(self) -> bool:
        return bool(self.ip_src)

    @property
    def family(self) -> int:
        """4 or 6: the IP version of an IP packet."""
        return 6 if self.eth_type == _ETH_IPV6 else 4


_ETH_IP, _ETH_IPV6 = 0x0800, 0x86DD
_TCP, _UDP, _ICMP, _ICMPV6 = 6, 17, 1, 58
EXTENSION_HEADERS = frozenset({0, 43, 44, 51, 60, 135, 139, 140})  # RFC 7045, ESP (its payload hidden) aside


def parse(dpid: int, in_port: int, table_id: int, reason: int, data: bytes) -> PacketMeta:
    """Read the fields straight from the frame (untagged Ethernet, IPv4, the first
    4 bytes of TCP/UDP, ICMP's type); tests/unit/test_fastpath_parse.py holds it
    equal to os-ken's packet library on well-formed frames and never raising on junk."""
    if len(data) < 14:
        return PacketMeta(dpid, in_port, table_id, reason)
    eth_dst, eth_src = data[0:6].hex(":"), data[6:12].hex(":")
    eth_type = int.from_bytes(data[12:14], "big")
    if eth_type == _ETH_IPV6:
        return _parse6(dpid, in_port, table_id, reason, data, eth_src, eth_dst)
    if eth_type != _ETH_IP or len(data) < 34 or data[14] >> 4 != 4:
        return PacketMeta(dpid, in_port, table_id, reason, eth_src, eth_dst, eth_type)
    header_len = (data[14] & 0xF) * 4
    total = int.from_bytes(data[16:18], "big")
    if header_len < 20 or 14 + header_len > len(data):
        return PacketMeta(dpid, in_port, table_id, reason, eth_src, eth_dst, eth_type)
    proto, ttl = data[23], data[22]
    l4 = data[14 + header_len:14 + max(total, header_len)]
    l4_src, l4_dst, icmp_type = 0, 0, -1
    if proto in (_TCP, _UDP) and len(l4) >= (20 if proto == _TCP else 8):
        l4_src, l4_dst = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    elif proto == _ICMP and len(l4) >= 4:
        icmp_type = l4[0]
    return PacketMeta(dpid, in_port, table_id, reason, eth_src, eth_dst, eth_type,
                      socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34]), proto, ttl,
                      l4_dst, icmp_type, l4_src)


def _parse6(dpid: int, in_port: int, table_id: int, reason: int, data: bytes, eth_src: str,
            eth_dst: str) -> PacketMeta:
    """The IPv6 fixed header and the first bytes of TCP/UDP, ICMPv6's type."""
    if len(data) < 54 or data[14] >> 4 != 6 or data[20] in EXTENSION_HEADERS:
        return PacketMeta(dpid, in_port, table_id, reason, eth_src, eth_dst, _ETH_IPV6)
    proto, hop_limit = data[20], data[21]
    l4 = data[54:54 + int.from_bytes(data[18:20], "big")]
    l4_src, l4_dst, icmp_type = 0, 0, -1
    if proto in (_TCP, _UDP) and len(l4) >= (20 if proto == _TCP else 8):
        l4_src, l4_dst = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
    elif proto == _ICMPV6 and len(l4) >= 4:
        icmp_type = l4[0]
    return PacketMeta(dpid, in_port, table_id, reason, eth_src, eth_dst, _ETH_IPV6,
                      socket.inet_ntop(socket.AF_INET6, data[22:38]),
                      socket.inet_ntop(socket.AF_INET6, data[38:54]), proto, hop_limit,
                      l4_dst, icmp_type, l4_src)
