"""The live map's feed: hosts, containers and live routes, and what changes in them,
pushed to every open map (controller/api/ui_routes.py streams it).

Cheap on the hot path: a route plugged or gone costs, per open map that may see it,
one dict store keyed by the route (nothing at all with no map open).  Each
subscriber coalesces what happened since its last push — a route plugged and gone
within one push window is sent once, as gone — and holds at most MAX_PENDING
changed keys; past that it is marked for a fresh snapshot instead (a slow browser
never makes the controller buffer without bound).  Payloads are built when pushed,
not when the change happens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from daolinet.controller.routes import LiveRoute
from daolinet.model import Endpoint, Host, View
from daolinet.model.view import Change

MAX_PENDING = 5000  # changed keys a subscriber may hold before it gets a snapshot instead

Pending = tuple[str, Any, bool]  # (kind "route" | "endpoint" | "host", object, live)


def route_id(route: LiveRoute) -> str:
    """A route's key on the map: its cookie, and its L4 scope if it has one."""
    scope = f"/{route.scope[0]}:{route.scope[1]}" if route.scope else ""
    return f"{route.cookie:x}{scope}"


def route_json(route: LiveRoute) -> dict[str, Any]:
    return {"id": route_id(route), "a": route.a, "b": route.b, "names": list(route.names),
            "scope": list(route.scope) if route.scope else None, "same_host": route.same_host,
            "plugged": route.hits, "created": route.created}


def endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "tenant": e.tenant, "network": e.network, "ip": e.ip,
            "pip": e.pip, "mac": e.mac, "host": e.host}


def host_json(h: Host, admin: bool) -> dict[str, Any]:
    """Admins see a host's underlay; a tenant only its name and whether it is up."""
    out: dict[str, Any] = {"name": h.name, "alive": h.alive}
    if admin:
        out.update(underlay_ip=h.underlay_ip, dpid=f"{h.dpid:#x}", pip_pool=h.pip_pool)
    return out


@dataclass(eq=False)
class Subscriber:
    tenant: str | None  # None: an admin, sees every tenant
    pending: dict[str, Pending] = field(default_factory=dict)
    resync: bool = False  # too much pending: send a snapshot next
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, key: str, item: Pending) -> None:
        if self.resync:
            return
        if len(self.pending) >= MAX_PENDING and key not in self.pending:
            self.pending.clear()
            self.resync = True
        else:
            self.pending[key] = item
        self.wake.set()

    def take(self) -> tuple[bool, list[Pending]]:
        """(whether a snapshot is due, the coalesced changes since the last take)."""
        resync, items = self.resync, list(self.pending.values())
        self.pending.clear()
        self.resync = False
        self.wake.clear()
        return resync, items


class Feed:
    """Fed by RouteTable.listener and Controller.listeners; read by the map's streams."""

    def __init__(self, view: Callable[[], View]) -> None:
        self._view = view  # the controller's current view (it is replaced on a reload)
        self._subs: set[Subscriber] = set()
        self._route_tenant: dict[tuple[int, Any], str | None] = {}  # live routes seen, by key
        self._hosts_sent: dict[str, dict[str, Any]] = {}  # what maps were last told of each host
        self._last_view = view()

    def _reloaded(self) -> None:
        """The controller reloaded its view (its store's log was pruned past it): the changes
        in between were never fed, so every map gets a fresh snapshot."""
        if self._view() is not self._last_view:
            self._last_view = self._view()
            for sub in self._subs:
                sub.pending.clear()
                sub.resync = True
                sub.wake.set()

    def __len__(self) -> int:
        return len(self._subs)

    @contextmanager
    def subscribe(self, tenant: str | None) -> Iterator[Subscriber]:
        sub = Subscriber(tenant)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def _tenant_of_route(self, route: LiveRoute, live: bool) -> str | None:
        key = (route.cookie, route.scope)
        if live:
            tenant = self._route_tenant.get(key)
            if tenant is None:
                first = self._view().endpoints.get(route.a)
                tenant = self._route_tenant[key] = first.tenant if first is not None else None
            return tenant
        tenant = self._route_tenant.pop(key, None)
        if tenant is None:
            first = self._view().endpoints.get(route.a)
            tenant = first.tenant if first is not None else None
        return tenant

    def route_changed(self, route: LiveRoute, live: bool) -> None:
        if not self._subs:
            self._route_tenant.pop((route.cookie, route.scope), None)
            return
        self._reloaded()
        tenant = self._tenant_of_route(route, live)
        key = "r" + route_id(route)
        item = ("route", route, live)
        for sub in self._subs:
            if sub.tenant is None or sub.tenant == tenant:
                sub.put(key, item)

    def model_changed(self, change: Change) -> None:
        if not self._subs:
            return
        self._reloaded()
        obj = change.obj
        item: Pending
        if isinstance(obj, Endpoint):
            key, item, tenant = f"e{obj.id}", ("endpoint", obj, not change.deleted), obj.tenant
        elif isinstance(obj, Host):
            shown = host_json(obj, True)
            if not change.deleted and self._hosts_sent.get(obj.name) == shown:
                return  # a heartbeat: nothing the map shows changed
            self._hosts_sent[obj.name] = shown
            key, item, tenant = f"h{obj.name}", ("host", obj, not change.deleted), None
        else:
            return
        for sub in self._subs:
            if sub.tenant is None or (tenant is not None and sub.tenant == tenant):
                sub.put(key, item)

    def snapshot(self, tenant: str | None, routes: list[LiveRoute]) -> dict[str, Any]:
        """Hosts, containers and live routes a subscriber of `tenant` may see."""
        view = self._view()
        endpoints = [e for e in view.endpoints.values() if tenant is None or e.tenant == tenant]
        used = {e.host for e in endpoints}
        hosts = [host_json(h, tenant is None) for h in view.hosts.values()
                 if tenant is None or h.name in used]
        ids = {e.id for e in endpoints}
        return {"hosts": sorted(hosts, key=lambda h: h["name"]),
                "endpoints": [endpoint_json(e) for e in endpoints],
                "routes": [route_json(r) for r in routes if r.a in ids or (tenant is None)]}

    @staticmethod
    def delta(items: list[Pending], admin: bool) -> list[dict[str, Any]]:
        """The changes as the map reads them: {"op": "route"|"endpoint"|"host", "live", ...}."""
        out = []
        for kind, obj, live in items:
            if kind == "route":
                body = route_json(obj) if live else {"id": route_id(obj)}
            elif kind == "endpoint":
                body = endpoint_json(obj) if live else {"id": obj.id, "host": obj.host}
            else:
                body = host_json(obj, admin)
            out.append({"op": kind, "live": live, **body})
        return out
