"""A route's FlowMods, compiled from its one definition (flows/route.py) into
byte templates: the hot path's encoder.

Building a route's FlowSpecs and encoding them costs more than the rest of a
PacketIn together, yet every route of one *shape* (same host or not, routed,
L4 scope, which way each next hop goes) has the same bytes but for a few
values: addresses, ports, the cookie, the idle timeout, a conntrack zone.  So, once per shape,
`flows_for_route` runs on stand-in ends whose every value is a distinct
sentinel, and flows/wire.py encodes the result leaving a hole wherever a
sentinel lands; a route of that shape is then its values packed once and the
fixed bytes joined around them.  Compiling checks itself: the template filled
with a second set of sentinels must equal the definition encoded afresh.
tests/unit/test_route_wire.py holds the templates to os-ken's rendering of
route.py's FlowSpecs over generated routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from daolinet.flows import wire
from daolinet.flows.route import RouteEnds, cookie_of, flows_for_route, next_hop_is_peer
from daolinet.model import Endpoint, Host
from daolinet.ofp.codec import Encoded


class Shape(NamedTuple):
    """What decides a route's bytes but for its values."""

    same_host: bool
    routed: bool  # same host, different networks: dec_ttl
    proto: int | None  # the L4 scope's protocol
    server_is_b: bool
    peer_ab: bool  # a's host sends straight to b's (else through its underlay gateway)
    peer_ba: bool


def shape_of(ends: RouteEnds) -> Shape:
    same = ends.ha.dpid == ends.hb.dpid
    scoped = ends.scope is not None
    return Shape(same, same and not ends.same_network, ends.scope[0] if ends.scope else None,
                 ends.server_is_b or not scoped,
                 same or next_hop_is_peer(ends.ha, ends.hb), same or next_hop_is_peer(ends.hb, ends.ha))


@dataclass(frozen=True, slots=True)
class RouteBytes:
    cookie: int
    steps: tuple[tuple[int, tuple[Encoded, ...]], ...]  # (dpid, FlowMods), in install order


# The values a route's flows may depend on, read off its ends.  The cookie and the
# idle timeout are always slots 0 and 1.
Getter = Callable[[RouteEnds], Any]
_VALUES: dict[str, Getter] = {
    **{name: attrgetter(name) for name in (
        "a.ip", "a.pip", "a.mac", "a.ofport", "b.ip", "b.pip", "b.mac", "b.ofport",
        "ha.underlay_mac", "ha.underlay_gateway_mac", "ha.uplink_ofport",
        "hb.underlay_mac", "hb.underlay_gateway_mac", "hb.uplink_ofport")},
    "port": lambda ends: ends.scope[1] if ends.scope else None,  # only in scoped shapes
    "zone": lambda ends: ends.ct_zone() if ends.scope and ends.ha.dpid == ends.hb.dpid else None,
}  # (a scoped route's conntrack zone is a value only on one host: the client's port's zone)
_COOKIE, _IDLE = "cookie", "idle_timeout"


def _stand_in(shape: Shape, n: int) -> tuple[RouteEnds, int]:
    """Ends of `shape` whose every value is a sentinel of set n (1 or 2), and an idle timeout."""
    def host(i: int, peer: bool) -> Host:
        return Host(f"h{i}", dpid=0x5E00 + i, underlay_ip=f"{100 + i}.{n}.0.1",
                    underlay_mac=f"02:5e:{n:02x}:00:01:{i:02x}", pip_pool="240.0.0.0/8",
                    underlay_gateway_mac="" if peer else f"02:5e:{n:02x}:00:02:{i:02x}",
                    uplink_ofport=0x5E000010 + 0x100 * n + i)

    def endpoint(i: int, h: Host) -> Endpoint:
        return Endpoint(0x300 + 0x10 * n + i, f"e{i}", "t", "net", ip=f"240.{n}.1.{i}",
                        mac=f"02:5e:{n:02x}:00:03:{i:02x}", host=h.name, pip=f"240.{n}.2.{i}",
                        ofport=0x5E000020 + 0x100 * n + i)

    ha = host(1, shape.peer_ab)
    hb = ha if shape.same_host else host(2, shape.peer_ba)
    scope = None if shape.proto is None else (shape.proto, 0xF000 + n)
    ends = RouteEnds(endpoint(1, ha), endpoint(2, hb), ha, hb, not shape.routed, scope, shape.server_is_b)
    return ends, 0xE000 + n


@dataclass(frozen=True, slots=True)
class _Template:
    values: tuple[tuple[Getter, Callable[[Any], bytes]], ...]  # slots 2..: a value, and its packing
    fixed: tuple[bytes, ...]  # every fixed piece, numbered after the slots
    steps: tuple[tuple[bool, tuple[Callable[[tuple[bytes, ...]], tuple[bytes, ...]], ...]], ...]
    # (on b's host?, one picker per FlowMod: its pieces in order)

    def fill(self, ends: RouteEnds, idle: int) -> RouteBytes:
        cookie = cookie_of(ends)
        pieces = (_COOKIE_BYTES(cookie), _IDLE_BYTES(idle),
                  *[pack(get(ends)) for get, pack in self.values], *self.fixed)
        return RouteBytes(cookie, tuple(
            (ends.hb.dpid if on_b else ends.ha.dpid, tuple([Encoded(b"".join(pick(pieces)), cookie)
                                                            for pick in picks]))
            for on_b, picks in self.steps))


_COOKIE_BYTES, _IDLE_BYTES = wire.packer(_COOKIE), wire.packer(_IDLE)


def _compile(shape: Shape) -> _Template:
    ends, idle = _stand_in(shape, 1)
    sentinels: dict[object, str] = {get(ends): name for name, get in _VALUES.items()
                                    if get(ends) not in ("", None)}
    sentinels.update({cookie_of(ends): _COOKIE, idle: _IDLE})
    slots: dict[tuple[str, Callable[[Any], bytes]], int] = {(_COOKIE, _COOKIE_BYTES): 0,
                                                            (_IDLE, _IDLE_BYTES): 1}

    def hole(field: str, value: int | str) -> int | None:
        name = sentinels.get(value)
        return None if name is None else slots.setdefault((name, wire.packer(field)), len(slots))

    plan = flows_for_route(ends, idle)
    encoded = [(dpid, [wire.flow_add_pieces(f, hole) for f in flows]) for dpid, flows in plan.steps]
    fixed: list[bytes] = []
    at = len(slots)

    def picker(pieces: list[wire.Piece]) -> Callable[[tuple[bytes, ...]], tuple[bytes, ...]]:
        order: list[int] = []
        for p in pieces:
            if isinstance(p, int):
                order.append(p)
            elif order and order[-1] == at + len(fixed) - 1:  # runs of fixed bytes: one piece
                fixed[-1] += p
            else:
                order.append(at + len(fixed))
                fixed.append(p)
        return itemgetter(*order)

    steps = tuple((dpid == ends.hb.dpid and not shape.same_host, tuple(picker(p) for p in flows))
                  for dpid, flows in encoded)
    values = tuple((_VALUES[name], pack) for (name, pack), _ in sorted(slots.items(), key=lambda kv: kv[1])
                   if name not in (_COOKIE, _IDLE))
    template = _Template(values, tuple(fixed), steps)
    _check(template, shape)
    return template


def _check(template: _Template, shape: Shape) -> None:
    """The template filled with other sentinels must be the definition, encoded."""
    ends, idle = _stand_in(shape, 2)
    got = template.fill(ends, idle)
    plan = flows_for_route(ends, idle)
    want = [(dpid, [wire.flow_add(f).data for f in flows]) for dpid, flows in plan.steps]
    if [(dpid, [e.data for e in flows]) for dpid, flows in got.steps] != want or got.cookie != plan.cookie:
        raise AssertionError(f"route template for {shape} does not reproduce flows/route.py")


_templates: dict[Shape, _Template] = {}


def route_bytes(ends: RouteEnds, idle_timeout: int) -> RouteBytes:
    """route.flows_for_route, encoded: the same steps, the same flows, in the same order."""
    shape = shape_of(ends)
    template = _templates.get(shape)
    if template is None:
        template = _templates[shape] = _compile(shape)
    return template.fill(ends, idle_timeout)
