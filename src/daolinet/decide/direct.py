"""The first packet of a cross-host route, delivered straight to its destination.

Re-injecting the first packet on the source switch means waiting for the
destination switch to confirm its flows (a barrier round trip), or the packet
could overtake its route.  Instead the controller hands it to the destination
switch itself, after that switch's flows on the same connection, as it would
have arrived through the route: two routers later (TTL - 2), from the gateway
MAC to the container's MAC, logical addresses unchanged.  The source switch
gets its flows at the same time; nothing waits for a barrier.

Pure: a frame in, a frame out (or None when the packet must take the long way:
not IPv4 or IPv6, a TTL or hop limit that would run out on the way - traceroute's
probes - or a malformed header).  IPv6 has no header checksum: only the hop limit
changes.  tests/unit/test_direct.py holds it to what the route's own
flows do to the packet (the fake flow table).
"""

from __future__ import annotations

from os_ken.lib.packet.packet_utils import checksum  # RFC 1071, as os-ken's ipv4 writes it

HOPS = 2  # the source's egress flow and the destination's ingress flow each dec_ttl


def delivered(frame: bytes, src_mac: bytes, dst_mac: bytes) -> bytes | None:
    """The frame as the destination container receives it through the route."""
    if frame[12:14] == b"\x86\xdd":
        return _delivered6(frame, src_mac, dst_mac)
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    ihl = (frame[14] & 0xF) * 4
    ttl = frame[22]
    if ihl < 20 or len(frame) < 14 + ihl or ttl <= HOPS:
        return None
    header = bytearray(frame[14:14 + ihl])
    header[8] = ttl - HOPS
    header[10:12] = b"\0\0"
    header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
    return dst_mac + src_mac + frame[12:14] + bytes(header) + frame[14 + ihl:]


def _delivered6(frame: bytes, src_mac: bytes, dst_mac: bytes) -> bytes | None:
    if len(frame) < 54 or frame[14] >> 4 != 6 or frame[21] <= HOPS:
        return None
    return dst_mac + src_mac + frame[12:21] + bytes((frame[21] - HOPS,)) + frame[22:]
