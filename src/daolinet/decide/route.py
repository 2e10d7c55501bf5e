"""PacketIn -> Decision: who sent it, where it goes, whether it may, and why.

Pure: (meta, view) in, a Decision out.  The shell (controller/hotplug.py)
turns decisions into FlowMods and PacketOuts.

- egress miss (table 10) on a container port: resolve the source from
  (dpid, in_port, MAC, IP) - anything else is spoofed and ignored - and the
  destination from (source's tenant, destination IP), or a published port
  mapping on a host's underlay address (the one infrastructure a container
  reaches: flows/infra.py);
- ingress miss (table 20) on an uplink: both ends by PIP (the route idled
  out on this side first); re-plugged from here;
- TTL expired at a hop: answer time-exceeded from that hop's address.

IPv6 (meta.family 6) is decided as IPv4 is, on the endpoints' ip6/pip6: a first
packet from a container's ip6 to an ip6 of its tenant plugs that family's route
(Plug.family; the other family's route of the pair is its own, under the same
cookie); an ingress miss finds both ends by pip6; the policy is the same (it
judges endpoints; ICMPv6 is judged as ICMP, its echo request and reply as ICMP's
8 and 0, its errors as their ICMP counterparts, other types as 256 + type, which
no typed ICMP rule matches); a ping to a gateway6 gets an ICMPv6 echo reply
(decide/icmp6.py); an expired hop limit gets time exceeded from the gateway6 at
the first hop, from the destination host's underlay_ip6 at the second (its
destination network's gateway6 when the host has no IPv6 underlay address); an
underlay router's ICMPv6 error (unreachable, packet too big, time exceeded) is
relayed.  An external network's IPv6 to the outside is NATed to its host's
underlay_ip6 (flows/external.py; "cidr:" rules of IPv6 blocks narrow it), and a
port mapping on a host's underlay_ip6 is reached as on its underlay_ip.
A packet of a family its sender has no address of fails the anti-spoofing check;
one to an address its tenant does not have is denied as for IPv4.
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass

from daolinet.decide.packet import INVALID_TTL, PacketMeta
from daolinet.decide.policy import L4, Policy, Verdict
from daolinet.model import Endpoint, Host, Portmap, View
from daolinet.model.family import V6, family_of, gateway_of, ip_of, pip_of
from daolinet.pipeline import Table

ICMP = 1
ICMP_ECHO_REQUEST = 8
ICMPV6 = 58
ICMPV6_ECHO_REQUEST = 128
# ICMPv6 types as the policy judges them: ICMP's (echo reply, request, unreachable, too big, exceeded,
# parameter problem); any other type t as 256 + t.
ICMPV6_AS_ICMP = {129: 0, 128: 8, 1: 3, 2: 3, 3: 11, 4: 12}


@dataclass(frozen=True)
class Plug:
    """Install the route a<->b (a sent the packet), then re-inject the packet.
    With a scope (protocol, server port) the route's flows are L4-specific."""

    a: Endpoint
    b: Endpoint
    reason: str
    scope: tuple[int, int] | None = None
    server_is_b: bool = True
    family: int = 4  # the route's addresses: IPv4 (ip, pip) or IPv6 (ip6, pip6)


@dataclass(frozen=True)
class Deny:
    """A short-lived drop flow on the source for (src, dst_ip), or only for that
    traffic (scope: protocol, destination port) when a rule's answer was about it."""

    src: Endpoint
    dst_ip: str
    reason: str
    scope: tuple[int, int] | None = None
    rule: str = ""  # the label of the rule that denied, if one did
    dst: Endpoint | None = None


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


@dataclass(frozen=True)
class External:
    """src may reach dst_ip outside every network: SNAT through its host.  With a
    scope (protocol, port) only that traffic (a "cidr:" rule allowed it)."""

    src: Endpoint
    dst_ip: str
    scope: tuple[int, int] | None = None
    reason: str = "external network"


@dataclass(frozen=True)
class RelayIcmp:
    """An underlay router's ICMP error about a PIP-addressed packet: hand it
    to the container it concerns, in logical terms."""

    to: Endpoint


@dataclass(frozen=True)
class MappedPort:
    """src reaches port mapping pm on host `host`, as a client outside would."""

    src: Endpoint
    pm: Portmap
    host: Host
    family: int = 4  # reached on the host's underlay_ip (4) or underlay_ip6 (6)


Decision = Plug | Deny | Ignore | EchoReply | TimeExceeded | RelayIcmp | External | MappedPort
L4_NAMES = {6: "tcp", 17: "udp"}
ICMP_ERRORS = (3, 11)  # destination unreachable, time exceeded
ICMPV6_ERRORS = (1, 2, 3)  # destination unreachable, packet too big, time exceeded


_policies: weakref.WeakKeyDictionary[View, tuple[int, Policy]] = weakref.WeakKeyDictionary()


def policy_of(view: View) -> Policy:
    """The view's policy index, rebuilt only when the policy revision moved."""
    cached = _policies.get(view)
    if cached is None or cached[0] != view.policy_rev:
        cached = (view.policy_rev, Policy(view.groups.values(), view.rules.values()))
        _policies[view] = cached
    return cached[1]


def verdict(src: Endpoint, dst: Endpoint, view: View, l4: L4 | None) -> Verdict | None:
    """The policy's answer for src -> dst, or None if either end's network is gone."""
    src_net, dst_net = view.network_of(src), view.network_of(dst)
    if src_net is None or dst_net is None:
        return None
    return policy_of(view).decide(src, dst, src_net, dst_net, l4)


def l4_of(meta: PacketMeta) -> L4:
    if meta.ip_proto == ICMPV6 and meta.family == V6:
        return L4(ICMP, 0, 0, ICMPV6_AS_ICMP.get(meta.icmp_type, 256 + meta.icmp_type))
    return L4(meta.ip_proto, meta.l4_src, meta.l4_dst, meta.icmp_type)


def _is_echo_request(meta: PacketMeta) -> bool:
    if meta.family == V6:
        return meta.ip_proto == ICMPV6 and meta.icmp_type == ICMPV6_ECHO_REQUEST
    return meta.ip_proto == ICMP and meta.icmp_type == ICMP_ECHO_REQUEST


def _is_icmp_error(meta: PacketMeta) -> bool:
    if meta.family == V6:
        return meta.ip_proto == ICMPV6 and meta.icmp_type in ICMPV6_ERRORS
    return meta.ip_proto == ICMP and meta.icmp_type in ICMP_ERRORS


def decide(meta: PacketMeta, view: View) -> Decision:
    if not meta.is_ip:
        return Ignore("not IPv4 or IPv6")
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
    if src is None or src.mac != meta.eth_src or ip_of(src, meta.family) != meta.ip_src:
        return None
    return src


def _egress_miss(meta: PacketMeta, view: View) -> Decision:
    src = source_of(meta, view)
    if src is None:
        return Ignore(f"spoofed or unknown source {meta.eth_src}/{meta.ip_src} on port {meta.in_port}")
    host = view.host_at(meta.ip_dst)
    if host is not None and meta.ip_proto in L4_NAMES:
        mapped = _to_mapping(src, meta, view, host)
        if mapped is not None:
            return mapped
    gw_net = view.gateways.get((src.tenant, meta.ip_dst))
    if gw_net is not None:
        if _is_echo_request(meta):
            return EchoReply(src)
        return Deny(src, meta.ip_dst, f"{meta.ip_dst} is the gateway of {gw_net.name}")
    dst = view.by_ip.get((src.tenant, meta.ip_dst))
    if dst is None or dst.id == src.id:
        return _outside(src, meta.ip_dst, view, l4_of(meta))
    return _allowed(src, dst, view, l4_of(meta), meta.family)


def _to_mapping(src: Endpoint, meta: PacketMeta, view: View, host: Host) -> Decision | None:
    pm = view.portmap_at(host.name, L4_NAMES[meta.ip_proto], meta.l4_dst)
    if pm is None:
        return None
    m = view.endpoint_named(pm.tenant, pm.container)
    if m is None or m.ofport is None:
        return Deny(src, meta.ip_dst, f"port mapping {pm.name} of tenant {pm.tenant} has no container "
                                      "plugged in")
    if meta.family == V6 and not (m.ip6 and m.pip6 and src.pip6):
        who = m.name if not (m.ip6 and m.pip6) else src.name
        return Deny(src, meta.ip_dst, f"port mapping {pm.name} serves no IPv6 here: {who} has no IPv6 PIP")
    return MappedPort(src, pm, host, meta.family)


def _outside(src: Endpoint, dst_ip: str, view: View, l4: L4) -> Decision:
    """A destination that is no container of the tenant: the outside world, if
    the source's network is external and the address is outside every network
    of the tenant and is not the underlay's own (hosts, PIPs).  IPv6 the same way
    (NAT66 to the host's underlay_ip6), never to an address no router forwards."""
    net = view.network_of(src)
    if view.network_containing(src.tenant, dst_ip) is not None or net is None:
        return Deny(src, dst_ip, f"no container {dst_ip} in tenant {src.tenant}")
    if not net.external:
        return Deny(src, dst_ip, f"no container {dst_ip} in tenant {src.tenant}, "
                                 f"and network {net.name} is not external")
    if dst_ip in view.by_pip or view.is_underlay_ip(dst_ip):
        return Deny(src, dst_ip, f"{dst_ip} belongs to the underlay")
    if view.is_infra_ip(dst_ip):
        return Deny(src, dst_ip, f"{dst_ip} is a controller's or etcd's")
    host = view.host_of(src)
    if host is None or not host.underlay_gateway_mac:
        return Deny(src, dst_ip, f"host {src.host} has no underlay gateway")
    family = family_of(dst_ip)
    if family == V6:
        if not _global6(dst_ip):
            return Deny(src, dst_ip, f"{dst_ip} is not routed beyond its link")
        if not host.underlay_ip6 or not src.pip6:
            return Deny(src, dst_ip, f"host {src.host} has no IPv6 underlay address to NAT to")
    v = policy_of(view).decide_outside(src, dst_ip, l4)
    if not v.allowed:
        return Deny(src, dst_ip, v.reason, _narrowed(v, l4), v.rule.label if v.rule else "")
    return External(src, dst_ip, v.scope, v.reason)


def _global6(ip: str) -> bool:
    """An IPv6 address a router forwards: not link-local, multicast, loopback, unspecified."""
    addr = ipaddress.IPv6Address(ip)
    return not (addr.is_link_local or addr.is_multicast or addr.is_loopback or addr.is_unspecified)


def _allowed(src: Endpoint, dst: Endpoint, view: View, l4: L4 | None, family: int = 4) -> Decision:
    dst_ip = ip_of(dst, family)
    dst_host, src_host = view.host_of(dst), view.host_of(src)
    if dst_host is None:
        return Deny(src, dst_ip, "destination's host is gone")
    if not (dst_host.alive and (src_host is None or src_host.alive)):  # its agent stopped heartbeating
        down = dst if not dst_host.alive else src
        return Deny(src, dst_ip, f"container {down.name} is down: its host {down.host} is not alive")
    if dst.ofport is None:  # plugging or moving: no drop flow, the next packet may pass
        return Ignore(f"container {dst.name} is not plugged in yet")
    if dst_host.name != src.host and not (pip_of(src, family) and pip_of(dst, family)):
        return Ignore(f"{src.name} or {dst.name} has no IPv{family} PIP")
    v = verdict(src, dst, view, l4)
    if v is None:
        return Deny(src, dst_ip, "destination's network is gone")
    if not v.allowed:
        return Deny(src, dst_ip, v.reason, _narrowed(v, l4), v.rule.label if v.rule else "", dst)
    return Plug(src, dst, v.reason, v.scope, server_is_b=not v.reply, family=family)


def _narrowed(v: Verdict, l4: L4 | None) -> tuple[int, int] | None:
    """The traffic a denial is about, when only that traffic was judged."""
    if not v.narrow or l4 is None:
        return None
    return (l4.proto, 0 if l4.proto == ICMP else l4.dport)


def _ingress_miss(meta: PacketMeta, view: View, host: Host) -> Decision:
    a, b = view.by_pip.get(meta.ip_src), view.by_pip.get(meta.ip_dst)
    if a is None and b is not None and _is_icmp_error(meta):
        return RelayIcmp(b) if b.host == host.name and b.ofport is not None else Ignore("stray ICMP")
    if a is None or b is None or b.host != host.name or a.ofport is None:
        return Ignore(f"no route for {meta.ip_src}->{meta.ip_dst} on uplink of {host.name}")
    decision = _allowed(a, b, view, l4_of(meta), meta.family)
    # Never answer an ingress miss with a drop flow on the *remote* source.
    return decision if isinstance(decision, Plug) else Ignore(getattr(decision, "reason", ""))


def _ttl_expired(meta: PacketMeta, view: View, host: Host) -> Decision:
    if meta.in_port == host.uplink_ofport:  # at the destination host: hop = that host
        a, b = view.by_pip.get(meta.ip_src), view.by_pip.get(meta.ip_dst)
        if a is None or b is None:
            return Ignore("expired packet between unknown PIPs")
        router = host.underlay_ip
        if meta.family == V6:  # the host's IPv6 address, else b's gateway: a hop of b's network
            b_net = view.network_of(b)
            router = host.underlay_ip6 or (b_net.gateway6 if b_net is not None else "")
        return TimeExceeded(to=a, orig_dst=b, router_ip=router)
    src = source_of(meta, view)
    if src is None:
        return Ignore("expired packet from an unknown source")
    dst = view.by_ip.get((src.tenant, meta.ip_dst))
    net = view.network_of(src)
    if dst is None or net is None:
        return Ignore("expired packet to an unknown destination")
    return TimeExceeded(to=src, orig_dst=dst, router_ip=gateway_of(net, meta.family))


def still_allowed(a: Endpoint, b: Endpoint, view: View, scope: tuple[int, int] | None = None,
                  client: int | None = None) -> bool:
    """Would the policy install this route, as it is, today?  One rule for revalidation
    after a policy change and for adopting a switch's routes after a restart: a
    port-agnostic route needs a port-agnostic grant; a scoped one (proto, server port)
    the same scope, opened by the same client (`client`: its endpoint id)."""
    if scope is None:
        v = verdict(a, b, view, None)
        return v is not None and v.allowed and v.scope is None
    opener, server = (a, b) if client == a.id else (b, a)
    proto, port = scope
    l4 = L4(proto, 0, 0, port) if proto == ICMP else L4(proto, 0, port)
    v = verdict(opener, server, view, l4)
    return v is not None and v.allowed and v.scope == scope and not v.reply
