"""PacketIn -> Decision: who sent it, where it goes, whether it may, and why.

Pure: (meta, view) in, a Decision out.  The shell (controller/hotplug.py)
turns decisions into FlowMods and PacketOuts.

- egress miss (table 10) on a container port: resolve the source from
  (dpid, in_port, MAC, IP) - anything else is spoofed and ignored - and the
  destination from (source's tenant, destination IP);
- ingress miss (table 20) on an uplink: both ends by PIP (the route idled
  out on this side first); re-plugged from here;
- TTL expired at a hop: answer time-exceeded from that hop's address.
"""

from __future__ import annotations

from dataclasses import dataclass

from daolinet.decide import policy
from daolinet.decide.packet import INVALID_TTL, PacketMeta
from daolinet.model import Endpoint, Host, View
from daolinet.pipeline import Table

ICMP = 1
ICMP_ECHO_REQUEST = 8


@dataclass(frozen=True)
class Plug:
    """Install the route a<->b, then re-inject the packet on `dpid`."""

    a: Endpoint
    b: Endpoint
    reason: str


@dataclass(frozen=True)
class Deny:
    """A short-lived drop flow on the source for (src, dst_ip)."""

    src: Endpoint
    dst_ip: str
    reason: str


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class EchoReply:
    """A ping to a gateway address: the router answers."""

    src: Endpoint


@dataclass(frozen=True)
class TimeExceeded:
    """Tell `to` (on its own host) that hop `router_ip` dropped its packet."""

    to: Endpoint
    orig_dst: Endpoint
    router_ip: str


Decision = Plug | Deny | Ignore | EchoReply | TimeExceeded


def decide(meta: PacketMeta, view: View) -> Decision:
    if not meta.is_ip:
        return Ignore("not IPv4")
    host = view.hosts_by_dpid.get(meta.dpid)
    if host is None:
        return Ignore(f"unknown switch {meta.dpid:#x}")
    if meta.reason == INVALID_TTL:
        return _ttl_expired(meta, view, host)
    if meta.in_port == host.uplink_ofport:
        return _ingress_miss(meta, view, host)
    if meta.table_id != Table.EGRESS:
        return Ignore(f"unexpected packet-in from table {meta.table_id}")
    return _egress_miss(meta, view)


def source_of(meta: PacketMeta, view: View) -> Endpoint | None:
    """The endpoint on (dpid, in_port) if MAC and IP are the ones it was given."""
    src = view.by_port.get((meta.dpid, meta.in_port))
    if src is None or src.mac != meta.eth_src or src.ip != meta.ip_src:
        return None
    return src


def _egress_miss(meta: PacketMeta, view: View) -> Decision:
    src = source_of(meta, view)
    if src is None:
        return Ignore(f"spoofed or unknown source {meta.eth_src}/{meta.ip_src} on port {meta.in_port}")
    gw_net = view.gateways.get((src.tenant, meta.ip_dst))
    if gw_net is not None:
        if meta.ip_proto == ICMP and meta.icmp_type == ICMP_ECHO_REQUEST:
            return EchoReply(src)
        return Deny(src, meta.ip_dst, f"{meta.ip_dst} is the gateway of {gw_net.name}")
    dst = view.by_ip.get((src.tenant, meta.ip_dst))
    if dst is None or dst.id == src.id:
        return Deny(src, meta.ip_dst, f"no container {meta.ip_dst} in tenant {src.tenant}")
    return _allowed(src, dst, view)


def _allowed(src: Endpoint, dst: Endpoint, view: View) -> Decision:
    src_net, dst_net = view.network_of(src), view.network_of(dst)
    dst_host = view.host_of(dst)
    if src_net is None or dst_net is None or dst_host is None:
        return Deny(src, dst.ip, "destination's network or host is gone")
    if dst.ofport is None:
        return Deny(src, dst.ip, f"container {dst.name} is not plugged in yet")
    verdict = policy.decide(src, dst, src_net, dst_net)
    if not verdict.allowed:
        return Deny(src, dst.ip, verdict.reason)
    return Plug(src, dst, verdict.reason)


def _ingress_miss(meta: PacketMeta, view: View, host: Host) -> Decision:
    a, b = view.by_pip.get(meta.ip_src), view.by_pip.get(meta.ip_dst)
    if a is None or b is None or b.host != host.name or a.ofport is None:
        return Ignore(f"no route for {meta.ip_src}->{meta.ip_dst} on uplink of {host.name}")
    decision = _allowed(a, b, view)
    # Never answer an ingress miss with a drop flow on the *remote* source.
    return decision if isinstance(decision, Plug) else Ignore(getattr(decision, "reason", ""))


def _ttl_expired(meta: PacketMeta, view: View, host: Host) -> Decision:
    if meta.in_port == host.uplink_ofport:  # at the destination host: hop = that host
        a, b = view.by_pip.get(meta.ip_src), view.by_pip.get(meta.ip_dst)
        if a is None or b is None:
            return Ignore("expired packet between unknown PIPs")
        return TimeExceeded(to=a, orig_dst=b, router_ip=host.underlay_ip)
    src = source_of(meta, view)
    if src is None:
        return Ignore("expired packet from an unknown source")
    dst = view.by_ip.get((src.tenant, meta.ip_dst))
    net = view.network_of(src)
    if dst is None or net is None:
        return Ignore("expired packet to an unknown destination")
    return TimeExceeded(to=src, orig_dst=dst, router_ip=net.gateway)
