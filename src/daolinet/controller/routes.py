"""The controller's list of live hot-plug routes, kept true by FlowRemoved.

A route lives while any of its flows lives on any switch; it is listed by
`GET /routes`.  Revoking a route is the caller's job (delete by cookie on
every switch listed here); this table only does the bookkeeping.

A route is keyed by (cookie, scope, family): a dual-stack pair's IPv4 and IPv6
routes share the pair's cookie (a revocation deletes both: `remove_pair`), but
each counts its own flows, so one family idling out leaves the other live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daolinet.flows.conntrack import flush_route
from daolinet.model import View
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import EID_BITS, EID_MAX

Scope = tuple[int, int] | None  # (ip_proto, server port) of an L4-specific route
Key = tuple[int, Scope, int]  # (cookie, scope, family)
ETH_IPV6, ICMP, ICMPV6 = 0x86DD, 1, 58


def family_of_match(match: Any) -> int:
    """The family of a route flow (4 or 6), read back from its OpenFlow match's eth_type."""
    return 6 if match.get("eth_type") == ETH_IPV6 else 4


def scope_of_match(match: Any) -> Scope:
    """The scope of a route flow, read back from its OpenFlow match (an IPv6 flow's
    ICMPv6 is the scope's ICMP: flows/route.py)."""
    proto = match.get("ip_proto")
    if proto is None:
        return None
    if proto == ICMPV6 and family_of_match(match) == 6:
        return (ICMP, 0)
    for name in ("tcp_dst", "tcp_src", "udp_dst", "udp_src"):
        port = match.get(name)
        if port is not None:
            return (int(proto), int(port))
    return (int(proto), 0)


@dataclass(slots=True)
class LiveRoute:
    cookie: int
    a: int  # endpoint ids, a < b
    b: int
    names: tuple[str, str]
    flows: dict[int, int]  # dpid -> live flows there
    created: float
    same_host: bool = False
    hits: int = 1  # times it was (re)plugged
    scope: Scope = None
    client: int | None = None  # for a scoped route: the endpoint that opens connections
    plugged_at: float = 0.0  # when its flows were last sent
    family: int = 4  # 4 or 6: a dual-stack pair has a route per family

    @property
    def key(self) -> Key:
        return (self.cookie, self.scope, self.family)

    @property
    def dpids(self) -> list[int]:
        return sorted(dpid for dpid, count in self.flows.items() if count > 0)

    def to_json(self) -> dict[str, Any]:
        """(An IPv6 route says "family": 6; an IPv4 route's JSON is as it was.)"""
        return ({"family": 6} if self.family == 6 else {}) | {
            "cookie": f"{self.cookie:#018x}",
            "endpoints": [self.a, self.b],
            "names": list(self.names),
            "switches": [f"{dpid:#x}" for dpid in self.dpids],
            "flows": sum(self.flows.values()),
            "created": self.created,
            "same_host": self.same_host,
            "plugged": self.hits,
            "scope": list(self.scope) if self.scope else None,
        }


class RouteTable:
    """Live routes by (cookie, scope, family): a pair has one port-agnostic route,
    or one route per L4 scope, per family; they share the pair's cookie, so
    revoking the pair deletes them all at once."""

    def __init__(self) -> None:
        self._routes: dict[Key, LiveRoute] = {}
        self._by_endpoint: dict[int, set[Key]] = {}
        self._by_cookie: dict[int, set[Key]] = {}
        # Told of each route (re)plugged (True) or gone (False): the live map's feed (controller/ui).
        self.listener: Callable[[LiveRoute, bool], None] | None = None

    def __len__(self) -> int:
        return len(self._routes)

    def get(self, cookie: int, scope: Scope = None, family: int = 4) -> LiveRoute | None:
        return self._routes.get((cookie, scope, family))

    def all(self) -> list[LiveRoute]:
        return list(self._routes.values())

    def plugged(self, cookie: int, names: tuple[str, str], flows: dict[int, int], now: float,
                scope: Scope = None, client: int | None = None, family: int = 4) -> LiveRoute:
        """Record that a route's flows were (re)installed."""
        return self.record(cookie, names, dict(flows), now, scope, client, family)

    def record(self, cookie: int, names: tuple[str, str], flows: dict[int, int], now: float,
               scope: Scope = None, client: int | None = None, family: int = 4) -> LiveRoute:
        """`plugged`, the route keeping `flows` itself (the hot path's: one record per route)."""
        key = (cookie, scope, family)
        route = self._routes.get(key)
        if route is None:
            a, b = (cookie >> EID_BITS) & EID_MAX, cookie & EID_MAX  # see pipeline.Cookie
            route = LiveRoute(cookie, a, b, names, flows, now, len(flows) == 1, 1, scope, client, now, family)
            self._routes[key] = route
            keys = self._by_cookie.get(cookie)
            if keys is None:
                self._by_cookie[cookie] = {key}
            else:
                keys.add(key)
            by_endpoint = self._by_endpoint
            for eid in (a, b):
                keys = by_endpoint.get(eid)
                if keys is None:
                    by_endpoint[eid] = {key}
                else:
                    keys.add(key)
        else:
            route.flows = flows
            route.hits += 1
            route.plugged_at = now
        if self.listener is not None:
            self.listener(route, True)
        return route

    def flow_removed(self, dpid: int, cookie: int, scope: Scope = None, family: int = 4) -> LiveRoute | None:
        """Count one flow gone; returns the route if that was its last flow."""
        route = self._routes.get((cookie, scope, family))
        if route is None:
            return None
        left = route.flows.get(dpid, 0) - 1
        route.flows[dpid] = max(left, 0)
        if any(route.flows.values()):
            return None
        return self.remove(cookie, scope, family)

    def remove(self, cookie: int, scope: Scope = None, family: int = 4) -> LiveRoute | None:
        key = (cookie, scope, family)
        route = self._routes.pop(key, None)
        if route is not None:
            for index, ids in ((self._by_cookie, (cookie,)), (self._by_endpoint, (route.a, route.b))):
                for id_ in ids:  # a cookie or an endpoint id
                    keys = index.get(id_)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del index[id_]
            if self.listener is not None:
                self.listener(route, False)
        return route

    def remove_pair(self, cookie: int) -> list[LiveRoute]:
        """Every route (all scopes, both families) of the pair named by cookie."""
        return [route for key in list(self._by_cookie.get(cookie, ())) if (route := self.remove(*key))]

    def of_endpoint(self, eid: int) -> list[LiveRoute]:
        return [self._routes[key] for key in self._by_endpoint.get(eid, ())]

    def on_switch(self, dpid: int) -> list[LiveRoute]:
        return [route for route in self._routes.values() if route.flows.get(dpid, 0) > 0]


def route_flushes(routes: list[LiveRoute], view: View) -> list[tuple[int, Encoded]]:
    """(dpid, NXT_CT_FLUSH) for each scoped route's connections, on its client's host.
    A route whose client is unknown is flushed both ways; one whose end left the view
    has no address to name (its entries idle out of conntrack)."""
    out = []
    for route in routes:
        a, b = view.endpoints.get(route.a), view.endpoints.get(route.b)
        if route.scope is None or a is None or b is None:
            continue
        for client, server in ((a, b), (b, a)):
            hc, hs = view.host_of(client), view.host_of(server)
            if route.client in (None, client.id) and hc is not None and hs is not None:
                out.append(flush_route(client, server, hc, hs, route.scope, route.family))
    return out
