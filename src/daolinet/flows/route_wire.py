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

import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from daolinet.flows import wire
from daolinet.flows.route import RouteEnds, cookie_of, flows_for_route, next_hop_is_peer
from daolinet.model import Endpoint, Host
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import EID_BITS, EID_MAX, Kind


class Shape(NamedTuple):
    """What decides a route's bytes but for its values."""

    same_host: bool
    routed: bool  # same host, different networks: dec_ttl
    proto: int | None  # the L4 scope's protocol
    server_is_b: bool
    peer_ab: bool  # a's host sends straight to b's (else through its underlay gateway)
    peer_ba: bool
    family: int = 4  # IPv4 or IPv6 addresses


def shape_of(ends: RouteEnds) -> Shape:
    same = ends.ha.dpid == ends.hb.dpid
    scoped = ends.scope is not None
    return Shape(same, same and not ends.same_network, ends.scope[0] if ends.scope else None,
                 ends.server_is_b or not scoped,
                 same or next_hop_is_peer(ends.ha, ends.hb), same or next_hop_is_peer(ends.hb, ends.ha),
                 ends.family)


class RouteBytes(NamedTuple):  # one per route: a tuple, built cheaply
    cookie: int
    steps: tuple[tuple[int, tuple[Encoded, ...]], ...]  # (dpid, FlowMods), in install order


# The values a route's flows may depend on, read off its ends, and their kind: packed as
# an integer by struct, or converted to wire bytes first (an address).  The cookie and
# the idle timeout are always slots 0 and 1.
Getter = Callable[[RouteEnds], Any]
_ATTRS = ("a.ip", "a.pip", "a.mac", "a.ofport", "b.ip", "b.pip", "b.mac", "b.ofport",
          "a.ip6", "a.pip6", "b.ip6", "b.pip6",
          "ha.underlay_mac", "ha.underlay_gateway_mac", "ha.uplink_ofport",
          "hb.underlay_mac", "hb.underlay_gateway_mac", "hb.uplink_ofport")
_VALUES: dict[str, Getter] = {
    **{name: attrgetter(name) for name in _ATTRS},
    "port": lambda ends: ends.scope[1] if ends.scope else None,  # only in scoped shapes
    "zone": lambda ends: ends.ct_zone() if ends.scope and ends.ha.dpid == ends.hb.dpid else None,
}  # (a scoped route's conntrack zone is a value only on one host: the client's port's zone)
_COOKIE, _IDLE = "cookie", "idle_timeout"
_ROUTE_KIND = int(Kind.ROUTE) << 56
# How a hole's value goes into the FlowMod's struct: an integer code, or bytes after a conversion.
_INT_CODES = {8: "Q", 4: "I", 2: "H", 1: "B"}


def _stand_in(shape: Shape, n: int) -> tuple[RouteEnds, int]:
    """Ends of `shape` whose every value is a sentinel of set n (1 or 2), and an idle timeout."""
    def host(i: int, peer: bool) -> Host:
        return Host(f"h{i}", dpid=0x5E00 + i, underlay_ip=f"{100 + i}.{n}.0.1",
                    underlay_mac=f"02:5e:{n:02x}:00:01:{i:02x}", pip_pool="240.0.0.0/8",
                    pip_pool6="2001:db8:5e00::/48",
                    underlay_gateway_mac="" if peer else f"02:5e:{n:02x}:00:02:{i:02x}",
                    uplink_ofport=0x5E000010 + 0x100 * n + i)

    def endpoint(i: int, h: Host) -> Endpoint:
        return Endpoint(0x300 + 0x10 * n + i, f"e{i}", "t", "net", ip=f"240.{n}.1.{i}",
                        mac=f"02:5e:{n:02x}:00:03:{i:02x}", host=h.name, pip=f"240.{n}.2.{i}",
                        ofport=0x5E000020 + 0x100 * n + i,
                        ip6=f"fd5e:{n}::1:{i}" if shape.family == 6 else "",
                        pip6=f"2001:db8:5e00:{n}::2:{i}" if shape.family == 6 else "")

    ha = host(1, shape.peer_ab)
    hb = ha if shape.same_host else host(2, shape.peer_ba)
    scope = None if shape.proto is None else (shape.proto, 0xF000 + n)
    ends = RouteEnds(endpoint(1, ha), endpoint(2, hb), ha, hb, not shape.routed, scope, shape.server_is_b,
                     shape.family)
    return ends, 0xE000 + n


def _gather(names: list[str]) -> Callable[[RouteEnds], tuple[Any, ...]]:
    """One call reading these values off the ends (attrgetter's, when they are all attributes)."""
    if not names:
        return lambda ends: ()
    if all(name in _ATTRS for name in names):
        if len(names) == 1:
            one = attrgetter(names[0])
            return lambda ends: (one(ends),)
        return attrgetter(*names)
    getters = [_VALUES[name] for name in names]
    return lambda ends: tuple([get(ends) for get in getters])


@dataclass(frozen=True, slots=True)
class _Template:
    """A shape's FlowMods: per FlowMod one struct whose fields are its fixed pieces and its
    values, and which of the route's values (cookie, idle timeout, integers, converted
    addresses, then the fixed pieces) go where."""

    ints: Callable[[RouteEnds], tuple[Any, ...]]  # the integer values, in slot order
    macs: Callable[[RouteEnds], tuple[Any, ...]]  # then the MACs
    ips: Callable[[RouteEnds], tuple[Any, ...]]  # then the IPv4 addresses
    ip6s: Callable[[RouteEnds], tuple[Any, ...]]  # then the IPv6 addresses
    fixed: tuple[bytes, ...]
    steps: tuple[tuple[bool, tuple[tuple[Callable[[tuple[Any, ...]], tuple[Any, ...]], Any], ...]], ...]
    # (on b's host?, per FlowMod (the picker of its fields, its struct's pack))

    def fill(self, ends: RouteEnds, idle: int) -> RouteBytes:
        a, b = ends.a.id, ends.b.id
        if a > b:
            a, b = b, a
        if a < 0 or b > EID_MAX:
            raise ValueError(f"endpoint ids {a}, {b} do not fit a cookie")
        cookie = _ROUTE_KIND | (a << EID_BITS) | b  # cookie_of(ends), without the Cookie object
        values = (cookie, idle, *self.ints(ends), *map(_MAC, self.macs(ends)),
                  *map(_IPV4, self.ips(ends)), *map(_IPV6, self.ip6s(ends)), *self.fixed)
        ha, hb = ends.ha.dpid, ends.hb.dpid
        return RouteBytes(cookie, tuple([
            (hb if on_b else ha, tuple([Encoded(pack(*pick(values)), cookie) for pick, pack in flowmods]))
            for on_b, flowmods in self.steps]))


_MAC: Callable[[Any], bytes] = wire.mac_bytes
_IPV4: Callable[[Any], bytes] = wire.ipv4_bytes
_IPV6: Callable[[Any], bytes] = wire.ipv6_bytes
_ADDRESSES = ("6s", "4s", "16s")
_COOKIE_BYTES, _IDLE_BYTES = wire.packer(_COOKIE), wire.packer(_IDLE)


def _kind(pack: Callable[[Any], bytes]) -> str:
    """A hole's struct code: "6s"/"4s"/"16s" for an address (converted by `pack` first), else
    its integer's."""
    if pack is wire.mac_bytes:
        return "6s"
    if pack is wire.ipv4_bytes:
        return "4s"
    if pack is wire.ipv6_bytes:
        return "16s"
    return _INT_CODES[len(pack(0))]


def _compile(shape: Shape) -> _Template:
    ends, idle = _stand_in(shape, 1)
    sentinels: dict[object, str] = {get(ends): name for name, get in _VALUES.items()
                                    if get(ends) not in ("", None)}
    sentinels.update({cookie_of(ends): _COOKIE, idle: _IDLE})
    holes: dict[tuple[str, Callable[[Any], bytes]], int] = {(_COOKIE, _COOKIE_BYTES): 0,
                                                            (_IDLE, _IDLE_BYTES): 1}

    def hole(field: str, value: int | str) -> int | None:
        name = sentinels.get(value)
        return None if name is None else holes.setdefault((name, wire.packer(field)), len(holes))

    plan = flows_for_route(ends, idle)
    encoded = [(dpid, [wire.flow_add_pieces(f, hole) for f in flows]) for dpid, flows in plan.steps]
    # The values' order in a filled template: cookie, idle timeout, integers, MACs, IPv4s, IPv6s,
    # fixed pieces.
    by_kind: dict[str, list[tuple[str, Callable[[Any], bytes], int]]] = {"int": [], "6s": [], "4s": [],
                                                                         "16s": []}
    for (name, pack), n in sorted(holes.items(), key=lambda kv: kv[1])[2:]:
        kind = _kind(pack)
        by_kind["int" if kind not in _ADDRESSES else kind].append((name, pack, n))
    ordered = [*by_kind["int"], *by_kind["6s"], *by_kind["4s"], *by_kind["16s"]]
    slot = {0: 0, 1: 1, **{n: 2 + i for i, (_, _, n) in enumerate(ordered)}}
    code = {0: "Q", 1: "H", **{n: _kind(pack) for _, pack, n in ordered}}
    fixed: list[bytes] = []
    at = len(slot)

    def flowmod(pieces: list[wire.Piece]) -> tuple[Callable[[tuple[Any, ...]], tuple[Any, ...]], Any]:
        order: list[int] = []
        codes: list[str] = []
        for p in pieces:
            if isinstance(p, int):
                order.append(slot[p])
                codes.append(code[p])
            elif order and order[-1] == at + len(fixed) - 1:  # runs of fixed bytes: one piece
                fixed[-1] += p
                codes[-1] = f"{len(fixed[-1])}s"
            else:
                order.append(at + len(fixed))
                fixed.append(p)
                codes.append(f"{len(p)}s")
        return itemgetter(*order), struct.Struct("!" + "".join(codes)).pack

    steps = tuple((dpid == ends.hb.dpid and not shape.same_host, tuple(flowmod(p) for p in flows))
                  for dpid, flows in encoded)

    def gather(kind: str) -> Callable[[RouteEnds], tuple[Any, ...]]:
        return _gather([name for name, _, _ in by_kind[kind]])

    template = _Template(gather("int"), gather("6s"), gather("4s"), gather("16s"), tuple(fixed), steps)
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
