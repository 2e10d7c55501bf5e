"""The vocabulary of the fake OpenFlow table (fakeoftable.py): packets as dicts of
header fields named like match fields, OpenFlow 1.3 match semantics (masks,
prefixes, the non-strict "covers" of modify and delete), and the checks a real
switch makes on a FlowMod (known fields, prerequisites, move widths, goto forward).

What real OVS would reject or leave undefined raises FakeOFTableError instead of
guessing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from daolinet.errors import DaoliError
from daolinet.flows.spec import (
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    IPPROTO_ICMPV6,
    DecTtl,
    FlowSpec,
    Match,
    MatchValue,
    Move,
    SetField,
)

Packet = dict[str, MatchValue]

IPPROTO_TCP = 6
IPPROTO_UDP = 17
BROADCAST = "ff:ff:ff:ff:ff:ff"

IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
IPV6_FIELDS = frozenset({"ipv6_src", "ipv6_dst", "ipv6_nd_target"})
ADDRESS_FIELDS = IPV4_FIELDS | IPV6_FIELDS  # matched as prefixes
MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll"})
REGISTERS = frozenset(f"reg{i}" for i in range(16))
FIELD_BITS: dict[str, int] = {
    **dict.fromkeys(MAC_FIELDS, 48), **dict.fromkeys(IPV4_FIELDS, 32), **dict.fromkeys(REGISTERS, 32),
    **dict.fromkeys(IPV6_FIELDS, 128),
    "in_port": 32, "eth_type": 16, "arp_op": 16, "ip_proto": 8, "ip_ttl": 8, "tcp_dst": 16, "udp_dst": 16,
    "tcp_src": 16, "udp_src": 16, "ct_state": 32, "ct_mark": 32, "icmpv6_type": 8, "icmpv6_code": 8,
    "nd_reserved": 32, "nd_options_type": 8,
}
ICMPV6_NS, ICMPV6_NA = 135, 136
CT_NEW, CT_ESTABLISHED, CT_TRACKED = 0x01, 0x02, 0x20
# OpenFlow 1.3 prerequisites (spec 7.2.3.6): a field may be matched, set or
# moved only if the flow's match pins down the protocol that carries it.
# ND fields as OVS has them (ovs-fields(7)): the target and the R/S/O flags and option
# type of a solicitation or advertisement, a link-layer address of one of them only.
PREREQS: dict[str, tuple[str, frozenset[int]]] = {
    **{f: ("eth_type", frozenset({ETH_IP})) for f in ("ipv4_src", "ipv4_dst")},
    **{f: ("eth_type", frozenset({ETH_IP, ETH_IPV6})) for f in ("ip_proto", "ip_ttl")},
    **{f: ("eth_type", frozenset({ETH_IPV6})) for f in ("ipv6_src", "ipv6_dst")},
    **{f: ("ip_proto", frozenset({IPPROTO_ICMPV6})) for f in ("icmpv6_type", "icmpv6_code")},
    **{f: ("icmpv6_type", frozenset({ICMPV6_NS, ICMPV6_NA}))
       for f in ("ipv6_nd_target", "nd_reserved", "nd_options_type")},
    "ipv6_nd_sll": ("icmpv6_type", frozenset({ICMPV6_NS})),
    "ipv6_nd_tll": ("icmpv6_type", frozenset({ICMPV6_NA})),
    **{f: ("eth_type", frozenset({ETH_ARP})) for f in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
    "tcp_dst": ("ip_proto", frozenset({IPPROTO_TCP})),
    "udp_dst": ("ip_proto", frozenset({IPPROTO_UDP})),
    "tcp_src": ("ip_proto", frozenset({IPPROTO_TCP})),
    "udp_src": ("ip_proto", frozenset({IPPROTO_UDP})),
}


class FakeOFTableError(DaoliError):
    """A flow or packet real OVS would reject or treat in an undefined way."""


# -- matching ----------------------------------------------------------------

def field_matches(name: str, want: MatchValue, have: MatchValue) -> bool:
    """One match field against one packet value; IPv4 and IPv6 values may be prefixes,
    bit fields (ct_state) (value, mask) pairs."""
    if isinstance(want, tuple):
        value, mask = want
        return (int(have) & mask) == value  # type: ignore[arg-type]
    if name in ADDRESS_FIELDS:
        return ipaddress.ip_address(str(have)) in ipaddress.ip_network(str(want), strict=False)
    if name in MAC_FIELDS:
        return str(have).lower() == str(want).lower()
    return have == want


def matches(match: Match, packet: Mapping[str, MatchValue]) -> bool:
    """A flow matching on a field the packet lacks does not match (an
    untracked packet has ct_state 0)."""
    return all(field_matches(k, v, packet[k]) if k in packet else
               (k == "ct_state" and field_matches(k, v, 0)) for k, v in match.items)


def covers(request: Match, flow: Match) -> bool:
    """Non-strict modify/delete: every field of the request is in the flow's
    match, with a value at least as wide."""
    have = flow.as_dict()
    for name, want in request.items:
        if name not in have:
            return False
        if name in ADDRESS_FIELDS:
            inner = ipaddress.ip_network(str(have[name]), strict=False)
            if not inner.subnet_of(ipaddress.ip_network(str(want), strict=False)):  # type: ignore[arg-type]
                return False
        elif not field_matches(name, want, have[name]):
            return False
    return True


def _touched_fields(spec: FlowSpec) -> list[str]:
    names = [k for k, _ in spec.match.items]
    for a in spec.actions:
        if isinstance(a, SetField):
            names.append(a.field)
        elif isinstance(a, Move):
            names += [a.src, a.dst]
        elif isinstance(a, DecTtl):
            names.append("ip_ttl")
    return names


def check_flow(spec: FlowSpec) -> None:
    """What an OpenFlow 1.3 switch checks on a FlowMod add, beyond FlowSpec's own table rules."""
    for name in _touched_fields(spec):
        if name not in FIELD_BITS:
            raise FakeOFTableError(f"unknown field {name!r} in {spec}")
        prereq = PREREQS.get(name)
        if prereq and spec.match.get(prereq[0]) not in prereq[1]:
            raise FakeOFTableError(f"{name} needs {prereq[0]} in {sorted(prereq[1])}: {spec}")
    for a in spec.actions:
        if isinstance(a, Move) and not a.n_bits == FIELD_BITS[a.src] == FIELD_BITS[a.dst]:
            raise FakeOFTableError(f"move of {a.n_bits} bits from {a.src} to {a.dst}: widths differ")
    if spec.goto is not None and spec.goto <= spec.table:
        raise FakeOFTableError(f"goto must go forward: {spec}")


def as_int(value: MatchValue) -> int:
    """A field's value as a number (a masked value here is a caller's mistake)."""
    if isinstance(value, tuple):
        raise FakeOFTableError(f"expected a number, got the masked value {value}")
    return int(value)


def require_field(pkt: Packet, name: str) -> MatchValue:
    """A field the packet must carry for the action at hand."""
    if name not in pkt:
        raise FakeOFTableError(f"packet has no {name}: {pkt}")
    return pkt[name]


# -- packets ------------------------------------------------------------------------

def ip_packet(in_port: int, eth_src: str, eth_dst: str, ipv4_src: str, ipv4_dst: str,
              ttl: int = 64, proto: int = IPPROTO_UDP, dst_port: int = 7) -> Packet:
    pkt: Packet = {"in_port": in_port, "eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IP,
                   "ipv4_src": ipv4_src, "ipv4_dst": ipv4_dst, "ip_ttl": ttl, "ip_proto": proto}
    if proto == IPPROTO_UDP:
        pkt["udp_dst"] = dst_port
    elif proto == IPPROTO_TCP:
        pkt["tcp_dst"] = dst_port
    return pkt


def arp_request(in_port: int, sha: str, spa: str, tpa: str) -> Packet:
    return {"in_port": in_port, "eth_src": sha, "eth_dst": BROADCAST, "eth_type": ETH_ARP,
            "arp_op": 1, "arp_sha": sha, "arp_spa": spa, "arp_tha": "00:00:00:00:00:00", "arp_tpa": tpa}


def solicited_node(ip6: str) -> tuple[str, str]:
    """(the solicited-node multicast address of ip6, its Ethernet multicast address)."""
    low = ipaddress.IPv6Address(ip6).packed[-3:]
    group = ipaddress.IPv6Address(bytes.fromhex("ff02" + "00" * 9 + "01ff") + low)
    mac = "33:33:" + ":".join(f"{b:02x}" for b in group.packed[-4:])
    return str(group), mac


def ipv6_packet(in_port: int, eth_src: str, eth_dst: str, ipv6_src: str, ipv6_dst: str,
                hop_limit: int = 64, icmpv6_type: int = 128) -> Packet:
    """An ICMPv6 packet (an echo request unless told otherwise)."""
    return {"in_port": in_port, "eth_src": eth_src, "eth_dst": eth_dst, "eth_type": ETH_IPV6,
            "ipv6_src": ipv6_src, "ipv6_dst": ipv6_dst, "ip_ttl": hop_limit, "ip_proto": IPPROTO_ICMPV6,
            "icmpv6_type": icmpv6_type, "icmpv6_code": 0}


def neighbor_solicitation(in_port: int, eth_src: str, ipv6_src: str, target: str) -> Packet:
    """A solicitation for `target` as a kernel sends it: to its solicited-node group, its
    source link-layer address option first (none from :: - duplicate address detection)."""
    group, mac = solicited_node(target)
    pkt = ipv6_packet(in_port, eth_src, mac, ipv6_src, group, hop_limit=255, icmpv6_type=ICMPV6_NS)
    pkt.update(ipv6_nd_target=target, nd_reserved=0)
    if ipv6_src != "::":
        pkt.update(ipv6_nd_sll=eth_src, nd_options_type=1)
    return pkt


def neighbor_advertisement(in_port: int, eth_src: str, eth_dst: str, ipv6_src: str, ipv6_dst: str,
                           target: str, flags: int = 0x60000000) -> Packet:
    """An advertisement of `target` at eth_src (solicited and override unless told otherwise)."""
    pkt = ipv6_packet(in_port, eth_src, eth_dst, ipv6_src, ipv6_dst, hop_limit=255, icmpv6_type=ICMPV6_NA)
    pkt.update(ipv6_nd_target=target, nd_reserved=flags, ipv6_nd_tll=eth_src, nd_options_type=2)
    return pkt
