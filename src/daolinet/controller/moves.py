"""A container moved to another host, already plugged there: make before break
(flows/move.py decides which flows; this module sends them, phase by phase).

1. the new port's flows and the new host's half of every re-pointed route, then a barrier;
2. the peers' halves (their packets go to the new PIP from then on) and, on the old host,
   the grace forward of what still arrives for the old PIP; a barrier on each;
3. once the old port is gone from the old host's bridge (its PortStatus DELETE; at the
   latest BREAK_AFTER later), the old routes' leftovers and the old port's flows go: until
   then a packet the container still sends from its old port (the lab moves its addresses
   to the new interface only once the move call returns) finds its old path.

L4 routes, and routes whose other end is not placed, are revoked at once, as before.
The API call that moved the endpoint waits for phases 1 and 2 (`made`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from daolinet.controller.context import Context
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.routes import LiveRoute
from daolinet.controller.sync import FlowSync
from daolinet.flows import render
from daolinet.flows.move import Repoint, grace_forward, repoint
from daolinet.flows.route import RouteEnds
from daolinet.flows.spec import FlowSpec
from daolinet.model import Endpoint

log = logging.getLogger(__name__)
GRACE_IDLE = 2  # s: the old host forwards to the new PIP until nothing arrived for this long...
GRACE_HARD = 10  # s: ...and no longer than this in any case
BREAK_AFTER = 10.0  # s: the old path's flows stay at most this long after the new one is in


class Moves:
    def __init__(self, ctx: Context, hotplug: HotPlug, sync: FlowSync) -> None:
        self.ctx, self.hotplug, self.sync = ctx, hotplug, sync
        self.made: dict[int, asyncio.Future[None]] = {}  # endpoint id -> phases 1-2 confirmed
        # (old host's dpid, old ofport) -> the break waiting for that port to go, and its deadline
        self._breaking: dict[tuple[int, int], tuple[Endpoint, list[Repoint], asyncio.TimerHandle]] = {}

    def on_moved(self, old: Endpoint, new: Endpoint) -> None:
        """`old` (plugged on its old host) is now `new` (plugged on another): the view holds `new`."""
        plans = [plan for route in self.ctx.routes.of_endpoint(old.id)
                 if (plan := self._plan(route, old, new)) is not None]
        for route in self.ctx.routes.of_endpoint(old.id):  # what was not re-pointable
            if route.cookie not in {p.cookie for p in plans}:
                self.hotplug.revoke(route.cookie)
        for pm in self.ctx.view.portmaps_of(old):  # they follow the container
            self.sync.remove_portmap(pm)
        done = asyncio.get_running_loop().create_future()
        self.made[new.id] = done
        task = asyncio.ensure_future(self._make_then_break(old, new, plans))
        task.add_done_callback(lambda t: self._made(new.id, done, t))

    def _plan(self, route: LiveRoute, old: Endpoint, new: Endpoint) -> Repoint | None:
        """The route re-pointed at `new`; None when it cannot be (scoped, other end not placed)."""
        view = self.ctx.view
        if any(r.scope is not None for r in self.ctx.routes.of_endpoint(old.id) if r.cookie == route.cookie):
            return None
        peer = view.endpoints.get(route.b if route.a == old.id else route.a)
        if peer is None or peer.ofport is None:
            return None
        old_host, new_host, peer_host = view.hosts.get(old.host), view.host_of(new), view.host_of(peer)
        net, peer_net = view.network_of(new), view.network_of(peer)
        if old_host is None or new_host is None or peer_host is None or net is None or peer_net is None:
            return None
        before = RouteEnds(peer, old, peer_host, old_host, net.name == peer_net.name, family=route.family)
        return repoint(before, old, new, new_host, self.ctx.config.idle_timeout)

    def _switch(self, dpid: int) -> Any:
        return self.ctx.sessions.get(dpid) or self.ctx.remote(dpid)

    async def _make_then_break(self, old: Endpoint, new: Endpoint, plans: list[Repoint]) -> None:
        view = self.ctx.view
        old_host, new_host = view.hosts.get(old.host), view.host_of(new)
        if old_host is None or new_host is None:
            return
        # 1. the new host: the port, then every route's half there.
        self.sync.endpoint_plugged(new)
        for pm in view.portmaps_of(new):
            self.sync.install_portmap(pm)
        await self._send_confirmed({new_host.dpid: [f for p in plans for f in _flows_on(p, new_host.dpid)]})
        # 2. the peers' halves, and the old host's grace forward.
        second: dict[int, list[FlowSpec]] = {}
        for p in plans:
            for dpid, flows in p.make:
                if dpid != new_host.dpid:
                    second.setdefault(dpid, []).extend(flows)
        for family in (4, 6) if old.pip6 and new.pip6 else (4,):
            second.setdefault(old_host.dpid, []).append(
                grace_forward(old, new, old_host, new_host, GRACE_IDLE, GRACE_HARD, family))
        await self._send_confirmed(second)
        now = self.ctx.clock()
        for p, route in ((p, self.ctx.routes.get(p.cookie, None, p.family)) for p in plans):
            if route is not None:
                self.ctx.routes.plugged(p.cookie, route.names, p.flows_per_switch(), now, family=p.family)
        self.hotplug.clear_drops()  # peers that tried it meanwhile may pass now
        assert old.ofport is not None
        key = (old_host.dpid, old.ofport)
        timer = asyncio.get_running_loop().call_later(BREAK_AFTER, self.port_gone, *key)
        self._breaking[key] = (old, plans, timer)

    def port_gone(self, dpid: int, ofport: int) -> None:
        """A port left a switch (or a break's deadline passed): if a moved container
        left it, its old path goes now."""
        pending = self._breaking.pop((dpid, ofport), None)
        if pending is not None:
            old, plans, timer = pending
            timer.cancel()
            self._break(old, plans)

    async def _send_confirmed(self, flows: dict[int, list[FlowSpec]]) -> None:
        async def one(dpid: int, specs: list[FlowSpec]) -> None:
            switch = self._switch(dpid)
            if switch is None:
                return
            if specs:
                switch.send(*[render.flow_add(f) for f in specs])
            await switch.barrier()
        await asyncio.gather(*(one(dpid, specs) for dpid, specs in flows.items()))

    def _break(self, old: Endpoint, plans: list[Repoint]) -> None:
        """The old path goes: leftovers of the old routes, then the old port's flows."""
        for p in plans:
            for dpid, spec in p.stale:
                switch = self._switch(dpid)
                if switch is not None:
                    switch.send(render.flow_delete_strict(spec))
        self.sync.endpoint_unplugged(old)

    def _made(self, eid: int, done: asyncio.Future[None], task: asyncio.Task[None]) -> None:
        if self.made.get(eid) is done:
            del self.made[eid]
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                log.error("moving endpoint %d failed", eid, exc_info=task.exception())
            done.set_result(None)
        elif not done.done():
            done.set_result(None)


def _flows_on(plan: Repoint, dpid: int) -> list[FlowSpec]:
    return [f for at, flows in plan.make if at == dpid for f in flows]
