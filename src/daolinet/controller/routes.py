"""The controller's list of live hot-plug routes, kept true by FlowRemoved.

A route lives while any of its flows lives on any switch; it is listed by
`GET /routes`.  Revoking a route is the caller's job (delete by cookie on
every switch listed here); this table only does the bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daolinet.pipeline import Cookie


@dataclass
class LiveRoute:
    cookie: int
    a: int  # endpoint ids, a < b
    b: int
    names: tuple[str, str]
    flows: dict[int, int]  # dpid -> live flows there
    created: float
    same_host: bool = False
    hits: int = 1  # times it was (re)plugged
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dpids(self) -> list[int]:
        return sorted(d for d, n in self.flows.items() if n > 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "cookie": f"{self.cookie:#018x}",
            "endpoints": [self.a, self.b],
            "names": list(self.names),
            "switches": [f"{d:#x}" for d in self.dpids],
            "flows": sum(self.flows.values()),
            "created": self.created,
            "same_host": self.same_host,
            "plugged": self.hits,
        }


class RouteTable:
    def __init__(self) -> None:
        self._routes: dict[int, LiveRoute] = {}
        self._by_endpoint: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self._routes)

    def get(self, cookie: int) -> LiveRoute | None:
        return self._routes.get(cookie)

    def all(self) -> list[LiveRoute]:
        return list(self._routes.values())

    def plugged(self, cookie: int, names: tuple[str, str], flows: dict[int, int], now: float) -> LiveRoute:
        """Record that a route's flows were (re)installed."""
        c = Cookie.decode(cookie)
        assert c is not None
        route = self._routes.get(cookie)
        if route is None:
            route = LiveRoute(cookie, c.a, c.b, names, dict(flows), now, same_host=len(flows) == 1)
            self._routes[cookie] = route
            for eid in (c.a, c.b):
                self._by_endpoint.setdefault(eid, set()).add(cookie)
        else:
            route.flows = dict(flows)
            route.hits += 1
        return route

    def flow_removed(self, dpid: int, cookie: int) -> LiveRoute | None:
        """Count one flow gone; returns the route if that was its last flow."""
        route = self._routes.get(cookie)
        if route is None:
            return None
        left = route.flows.get(dpid, 0) - 1
        route.flows[dpid] = max(left, 0)
        if any(route.flows.values()):
            return None
        return self.remove(cookie)

    def remove(self, cookie: int) -> LiveRoute | None:
        route = self._routes.pop(cookie, None)
        if route is not None:
            for eid in (route.a, route.b):
                cookies = self._by_endpoint.get(eid)
                if cookies is not None:
                    cookies.discard(cookie)
                    if not cookies:
                        del self._by_endpoint[eid]
        return route

    def of_endpoint(self, eid: int) -> list[LiveRoute]:
        return [self._routes[c] for c in self._by_endpoint.get(eid, ())]

    def on_switch(self, dpid: int) -> list[LiveRoute]:
        return [r for r in self._routes.values() if r.flows.get(dpid, 0) > 0]
