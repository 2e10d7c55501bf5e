"""The few fields of a PacketIn the decision needs, parsed with os-ken's
packet library.  Anything that is not Ethernet/IPv4 (or ARP) parses to a
meta without IP fields; malformed frames never raise."""

from __future__ import annotations

from dataclasses import dataclass

from os_ken.lib.packet import ethernet, icmp, ipv4, packet, tcp, udp

NO_MATCH = 0  # OFPR_NO_MATCH
ACTION = 1  # OFPR_ACTION (an explicit output:CONTROLLER)
INVALID_TTL = 2  # OFPR_INVALID_TTL


@dataclass(frozen=True)
class PacketMeta:
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


def parse(dpid: int, in_port: int, table_id: int, reason: int, data: bytes) -> PacketMeta:
    base = PacketMeta(dpid=dpid, in_port=in_port, table_id=table_id, reason=reason)
    try:
        pkt = packet.Packet(data)
    except Exception:  # os-ken's parsers raise assorted errors on junk
        return base
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return base
    ip = pkt.get_protocol(ipv4.ipv4)
    if ip is None:
        return PacketMeta(dpid, in_port, table_id, reason, eth.src, eth.dst, eth.ethertype)
    l4_src, l4_dst, icmp_type = 0, 0, -1
    for proto in pkt.protocols:
        if isinstance(proto, tcp.tcp | udp.udp):
            l4_src, l4_dst = proto.src_port, proto.dst_port
        elif isinstance(proto, icmp.icmp):
            icmp_type = proto.type
    return PacketMeta(dpid, in_port, table_id, reason, eth.src, eth.dst, eth.ethertype,
                      ip.src, ip.dst, ip.proto, ip.ttl, l4_dst, icmp_type, l4_src)
