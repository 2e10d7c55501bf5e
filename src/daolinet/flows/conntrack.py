"""Forgetting an L4 route's connections: OVS's NXT_CT_FLUSH, built here because os-ken
has no such message (nor NXT_CT_FLUSH_ZONE); it is sent as a generic OFPExperimenter.

The body, as OVS 3.1 reads it (include/openflow/nicira-ext.h, lib/ofp-ct.c): a
struct nx_ct_flush (ip_proto, 7 bytes of zero), then OpenFlow properties, each a
(type, length) header and its value, padded to 8 bytes: NXT_CT_ORIG_TUPLE holding
nested properties (after 4 bytes of padding) - source and destination as IPv6
(IPv4-mapped) addresses, ports as be16 - and NXT_CT_ZONE_ID (be16).  A be16
property's value is padded to 4 bytes first (ofpprop_put_be16): length 8.  A tuple
that is not a full 5-tuple is a pattern: OVS dumps the zone's entries and deletes
each whose fields equal the ones given (ip_proto 0: any protocol; port 0: any).

A route's connections live on its client's host only (flows/route.py), keyed by
(zone, client address, server address, protocol, server port): one flush deletes
them all and nothing else.  ICMP entries can only be named by addresses (OVS
compares an ICMP tuple's id, type and code exactly), so ICMP routes commit into a
zone of their own (pipeline.route_zone) and are flushed with ip_proto 0 there.
"""

from __future__ import annotations

import ipaddress
import struct

from daolinet.flows.route import L4_FIELD
from daolinet.model import Endpoint, Host
from daolinet.model.family import V6, family_of, ip_of, pip_of
from daolinet.ofp.codec import DP, Encoded, encode, parser
from daolinet.pipeline import route_zone

NX_VENDOR_ID = 0x2320
NXT_CT_FLUSH = 32
NXT_CT_ORIG_TUPLE, NXT_CT_ZONE_ID = 0, 2  # enum nx_ct_flush_tlv_type
NXT_CT_TUPLE_SRC, NXT_CT_TUPLE_DST, NXT_CT_TUPLE_DST_PORT = 0, 1, 3  # enum nx_ct_flush_tuple_tlv_type
ICMP = 1


def _prop(kind: int, value: bytes, nested: bool = False) -> bytes:
    """One property: header, (4 bytes of padding before nested ones,) value, padded to 8."""
    head = 8 if nested else 4
    length = head + len(value)
    return struct.pack("!HH", kind, length) + bytes(head - 4) + value + bytes(-length % 8)


def _addr(ip: str) -> bytes:
    """An address as OVS's tuple holds it: IPv6 as it is, IPv4 mapped into IPv6."""
    if family_of(ip) == V6:
        return ipaddress.IPv6Address(ip).packed
    return ipaddress.IPv6Address(f"::ffff:{ipaddress.IPv4Address(ip)}").packed


def ct_flush_body(zone: int, proto: int, src: str, dst: str, dport: int = 0) -> bytes:
    """The NXT_CT_FLUSH body: entries of `zone` whose original tuple is src -> dst
    (proto 0: any protocol; dport 0: any destination port)."""
    tuple_ = _prop(NXT_CT_TUPLE_SRC, _addr(src)) + _prop(NXT_CT_TUPLE_DST, _addr(dst))
    if dport:
        tuple_ += _prop(NXT_CT_TUPLE_DST_PORT, struct.pack("!H2x", dport))
    return (struct.pack("!B7x", proto) + _prop(NXT_CT_ORIG_TUPLE, tuple_, nested=True)
            + _prop(NXT_CT_ZONE_ID, struct.pack("!H2x", zone)))


def ct_flush(zone: int, proto: int, src: str, dst: str, dport: int = 0) -> Encoded:
    msg = parser.OFPExperimenter(DP, experimenter=NX_VENDOR_ID, exp_type=NXT_CT_FLUSH,
                                 data=ct_flush_body(zone, proto, src, dst, dport))
    return Encoded(encode(msg, 0), f"ct-flush zone={zone} proto={proto} {src}->{dst}:{dport}")


def flush_route(client: Endpoint, server: Endpoint, hc: Host, hs: Host,
                scope: tuple[int, int], family: int = 4) -> tuple[int, Encoded]:
    """(the client's dpid, the flush of every connection of the route client -> server:scope)
    of that family (an IPv6 route's connections are keyed by IPv6 addresses: ICMPv6 ones in
    the ICMP zone, flushed by addresses there)."""
    proto, port = scope
    same_host = hc.dpid == hs.dpid
    zone = route_zone(proto, client.ofport if same_host else None)
    if same_host:
        src, dst = ip_of(client, family), ip_of(server, family)
    else:
        src, dst = pip_of(client, family), pip_of(server, family)
    if proto == ICMP:
        return hc.dpid, ct_flush(zone, 0, src, dst)
    return hc.dpid, ct_flush(zone, proto, src, dst, port if proto in L4_FIELD else 0)
