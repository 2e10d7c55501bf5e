"""Hot-plug route FlowMods written straight to bytes: the hot path's template.

flows/route.py defines a route's flows as FlowSpecs, and stays the definition
(traces, tests and the reference encoder use it).  Building those FlowSpecs
and walking them costs more than the rest of a PacketIn together, so here the
same flows are assembled from cached fragments - one OXM field or one action
per (field, value), flows/wire.py's - in the fixed order os-ken writes them.
tests/unit/test_route_wire.py proves the bytes equal to encoding route.py's
FlowSpecs (which test_wire.py proves equal to os-ken's) over generated routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from daolinet.flows import wire
from daolinet.flows.base import ETH_IP
from daolinet.flows.route import RouteEnds, next_hop_mac
from daolinet.model import Endpoint, Host
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import GATEWAY_MAC, Priority, Table, route_cookie

_ETH_IP = wire.tlv("eth_type", ETH_IP)
_EGRESS, _INGRESS = int(Table.EGRESS), int(Table.INGRESS)
_SET_GW_MAC = wire.set_field("eth_src", GATEWAY_MAC)


@dataclass(frozen=True, slots=True)
class RouteBytes:
    cookie: int
    steps: tuple[tuple[int, tuple[Encoded, ...]], ...]  # (dpid, FlowMods), in install order


def _l4(ends: RouteEnds, dst: Endpoint) -> tuple[bytes, bytes, int]:
    """(ip_proto field, port field, priority) of the flows towards dst."""
    if ends.scope is None:
        return b"", b"", Priority.ROUTE
    fields = ends.l4_match(dst)
    port = b"".join(wire.tlv(k, v) for k, v in fields.items() if k != "ip_proto")
    return wire.tlv("ip_proto", fields["ip_proto"]), port, Priority.PORT


def _egress_cross(ends: RouteEnds, x: Endpoint, y: Endpoint, hx: Host, hy: Host, cookie: int,
                  idle: int) -> Encoded:
    proto, port, prio = _l4(ends, y)
    fields = b"".join((wire.tlv("in_port", x.ofport), _ETH_IP, proto, wire.tlv("ipv4_src", x.ip),  # type: ignore[arg-type]
                       wire.tlv("ipv4_dst", y.ip), port))
    actions = b"".join((wire.DEC_TTL, wire.set_field("ipv4_src", x.pip), wire.set_field("ipv4_dst", y.pip),
                        wire.set_field("eth_src", hx.underlay_mac),
                        wire.set_field("eth_dst", next_hop_mac(hx, hy)), wire.output(hx.uplink_ofport)))
    return wire.flow_add_raw(_EGRESS, prio, cookie, idle, fields, actions, cookie)


def _ingress_cross(ends: RouteEnds, x: Endpoint, y: Endpoint, hy: Host, cookie: int, idle: int) -> Encoded:
    assert y.ofport is not None
    proto, port, prio = _l4(ends, y)
    fields = b"".join((wire.tlv("in_port", hy.uplink_ofport), _ETH_IP, proto, wire.tlv("ipv4_src", x.pip),
                       wire.tlv("ipv4_dst", y.pip), port))
    actions = b"".join((wire.DEC_TTL, wire.set_field("ipv4_src", x.ip), wire.set_field("ipv4_dst", y.ip),
                        _SET_GW_MAC, wire.set_field("eth_dst", y.mac), wire.output(y.ofport)))
    return wire.flow_add_raw(_INGRESS, prio, cookie, idle, fields, actions, cookie)


def _egress_local(ends: RouteEnds, x: Endpoint, y: Endpoint, routed: bool, cookie: int, idle: int) -> Encoded:
    assert y.ofport is not None
    proto, port, prio = _l4(ends, y)
    fields = b"".join((wire.tlv("in_port", x.ofport), _ETH_IP, proto, wire.tlv("ipv4_src", x.ip),  # type: ignore[arg-type]
                       wire.tlv("ipv4_dst", y.ip), port))
    actions = b"".join((wire.DEC_TTL if routed else b"", _SET_GW_MAC, wire.set_field("eth_dst", y.mac),
                        wire.output(y.ofport)))
    return wire.flow_add_raw(_EGRESS, prio, cookie, idle, fields, actions, cookie)


def route_bytes(ends: RouteEnds, idle_timeout: int) -> RouteBytes:
    """route.flows_for_route, encoded: the same steps, the same flows, in the same order."""
    a, b, ha, hb = ends.a, ends.b, ends.ha, ends.hb
    cookie = route_cookie(a.id, b.id).value
    if ha.dpid == hb.dpid:
        routed = not ends.same_network
        return RouteBytes(cookie, ((ha.dpid, (_egress_local(ends, a, b, routed, cookie, idle_timeout),
                                              _egress_local(ends, b, a, routed, cookie, idle_timeout))),))
    dst = (_ingress_cross(ends, a, b, hb, cookie, idle_timeout),
           _egress_cross(ends, b, a, hb, ha, cookie, idle_timeout))
    src = (_ingress_cross(ends, b, a, ha, cookie, idle_timeout),
           _egress_cross(ends, a, b, ha, hb, cookie, idle_timeout))
    return RouteBytes(cookie, ((hb.dpid, dst), (ha.dpid, src)))
