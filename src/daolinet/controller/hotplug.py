"""The hot-plug route, end to end (design.md "The hot-plug route").

PacketIn -> parse -> decide (pure) -> act:
  Plug: the route's flows switch by switch, the switch that sent the packet
        last; each earlier switch confirmed by a barrier before the next, so
        the packet, re-injected through the table last, never overtakes its
        route.  Concurrent PacketIns for a route being plugged wait for it.
  Deny: a short-lived drop flow on the source switch.
  EchoReply / TimeExceeded: the distributed router answers by PacketOut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from daolinet.controller.context import Context
from daolinet.controller.routes import Key, LiveRoute, Scope, scope_of_match
from daolinet.controller.switch import SwitchSession
from daolinet.decide import icmp
from daolinet.decide.packet import PacketMeta, parse
from daolinet.decide.policy import L4
from daolinet.decide.route import (
    Decision,
    Deny,
    EchoReply,
    External,
    Ignore,
    Plug,
    RelayIcmp,
    TimeExceeded,
    decide,
    verdict,
)
from daolinet.flows import render
from daolinet.flows.external import flows_for_external
from daolinet.flows.route import RouteEnds, RoutePlan, drop_flow, flows_for_route
from daolinet.model import Endpoint, View
from daolinet.pipeline import GATEWAY_MAC, Kind, kind_mask

log = logging.getLogger(__name__)


class HotPlug:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pending: dict[Key, asyncio.Future[bool]] = {}

    async def on_packet_in(self, session: SwitchSession, msg: Any) -> None:
        started = time.perf_counter()
        assert session.dpid is not None
        m = self.ctx.metrics
        m.packet_ins.labels(f"{session.dpid:#x}").inc()
        meta = parse(session.dpid, int(msg.match["in_port"]), msg.table_id, msg.reason, msg.data)
        decision = decide(meta, self.ctx.view)
        m.decisions.labels(type(decision).__name__.lower()).inc()
        await self.act(session, meta, msg.data, decision)
        if isinstance(decision, Plug):
            took = time.perf_counter() - started
            m.route_setup.observe(took)
            self.ctx.setup_samples.append(took)

    async def act(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: Decision) -> None:
        if isinstance(d, Plug):
            await self._plug(session, meta, data, d)
        elif isinstance(d, Deny):
            log.info("deny %s -> %s: %s", d.src.name, d.dst_ip, d.reason)
            self._send(session, render.flow_add(drop_flow(d.src, d.dst_ip, self.ctx.config.drop_timeout)))
        elif isinstance(d, EchoReply):
            reply = icmp.echo_reply(data, GATEWAY_MAC)
            if reply is not None and d.src.ofport is not None:
                session.send(render.packet_out_to_port(d.src.ofport, reply))
        elif isinstance(d, TimeExceeded):
            self._time_exceeded(data, d)
        elif isinstance(d, RelayIcmp):
            self._relay_icmp(session, data, d)
        elif isinstance(d, External):
            self._external(session, meta, data, d)
        elif isinstance(d, Ignore):
            log.debug("ignore packet-in on %s port %d: %s", session.name, meta.in_port, d.reason)

    def _send(self, session: Any, *msgs: Any) -> None:  # a SwitchSession or a RemoteSwitch
        session.send(*msgs)
        self.ctx.metrics.flowmods.labels(session.name).inc(len(msgs))

    async def _plug(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: Plug) -> None:
        view = self.ctx.view
        ha, hb = view.host_of(d.a), view.host_of(d.b)
        na, nb = view.network_of(d.a), view.network_of(d.b)
        if ha is None or hb is None or na is None or nb is None:
            return
        plan = flows_for_route(RouteEnds(d.a, d.b, ha, hb, na.name == nb.name, d.scope, d.server_is_b),
                               self.ctx.config.idle_timeout)
        client = (d.a.id if d.server_is_b else d.b.id) if d.scope else None
        key = (plan.cookie, d.scope)
        pending = self._pending.get(key)
        if pending is not None:  # someone is plugging this route right now
            installed = await pending
        else:
            fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._pending[key] = fut
            installed = False
            try:
                installed = await self._install(plan, session.dpid, (d.a.name, d.b.name), d.scope, client)
            finally:
                del self._pending[key]
                fut.set_result(installed)
        if installed:  # else the packet would only come straight back to us
            session.send(render.packet_out_to_table(meta.in_port, data))

    async def _install(self, plan: RoutePlan, last: int | None, names: tuple[str, str],
                       scope: Scope, client: int | None) -> bool:
        steps = sorted(plan.steps, key=lambda s: s[0] == last)  # the packet's switch last
        counts: dict[int, int] = {}
        for i, (dpid, flows) in enumerate(steps):
            session = self.ctx.sessions.get(dpid) or self.ctx.remote(dpid)
            if session is None:
                log.warning("route %#x: switch %#x is not connected", plan.cookie, dpid)
                return False
            self._send(session, *[render.flow_add(f) for f in flows])
            counts[dpid] = len(flows)
            if i < len(steps) - 1:
                await session.barrier()
        self.ctx.routes.plugged(plan.cookie, names, counts, self.ctx.clock(), scope, client)
        self.ctx.metrics.live_routes.set(len(self.ctx.routes))
        return True

    def _time_exceeded(self, data: bytes, d: TimeExceeded) -> None:
        embedded = icmp.original_header(data, d.to.ip, d.orig_dst.ip)
        host = self.ctx.view.host_of(d.to)
        session = self.ctx.sessions.get(host.dpid) if host else None
        if embedded is None or session is None or d.to.ofport is None:
            return
        frame = icmp.time_exceeded(embedded, d.router_ip, GATEWAY_MAC, d.to.ip, d.to.mac)
        session.send(render.packet_out_to_port(d.to.ofport, frame))

    def _external(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: External) -> None:
        host = self.ctx.view.host_of(d.src)
        if host is None:
            return
        flows = flows_for_external(d.src, host, d.dst_ip, self.ctx.config.idle_timeout)
        self._send(session, *[render.flow_add(f) for f in flows])
        session.send(render.packet_out_to_table(meta.in_port, data))

    def _relay_icmp(self, session: SwitchSession, data: bytes, d: RelayIcmp) -> None:
        by_pip = self.ctx.view.by_pip

        def logical(addr: str) -> str:
            e = by_pip.get(addr)
            return e.ip if e is not None and e.tenant == d.to.tenant else addr

        frame = icmp.relay_error(data, d.to.ip, d.to.mac, GATEWAY_MAC, logical)
        if frame is not None and d.to.ofport is not None:
            session.send(render.packet_out_to_port(d.to.ofport, frame))

    def on_flow_removed(self, session: SwitchSession, msg: Any) -> None:
        assert session.dpid is not None
        self.ctx.metrics.flows_removed.labels(session.name).inc()
        gone = self.ctx.routes.flow_removed(session.dpid, int(msg.cookie), scope_of_match(msg.match))
        if gone is not None:
            log.debug("route %#x idled out", gone.cookie)
            self.ctx.metrics.live_routes.set(len(self.ctx.routes))

    def revalidate(self, tenant: str | None = None) -> int:
        """After a policy change: revoke every live route (of `tenant`) the policy
        no longer allows as installed, and drop every drop flow so a grant takes
        effect on the next packet.  Returns the number of pairs revoked."""
        view = self.ctx.view
        doomed = set()
        for route in self.ctx.routes.all():
            a, b = view.endpoints.get(route.a), view.endpoints.get(route.b)
            if a is None or b is None:
                doomed.add(route.cookie)
                continue
            if (tenant is None or a.tenant == tenant) and not _still_allowed(route, a, b, view):
                doomed.add(route.cookie)
        for cookie in doomed:
            self.revoke(cookie)
        self.clear_drops()
        return len(doomed)

    def clear_drops(self) -> None:
        """Forget every short-lived drop flow, everywhere: something became reachable."""
        drops, mask = kind_mask(Kind.DROP)
        for session in self.ctx.sessions.values():
            self._send(session, render.flow_delete_cookie(drops, mask))

    def revoke_endpoint(self, eid: int) -> int:
        """Delete every route of an endpoint on every switch holding it, now."""
        cookies = {route.cookie for route in self.ctx.routes.of_endpoint(eid)}
        for cookie in cookies:
            self.revoke(cookie)
        return len(cookies)

    def revoke(self, cookie: int) -> None:
        """Delete every flow of the pair's routes (all scopes), on every switch holding one."""
        dpids = {d for route in self.ctx.routes.remove_pair(cookie) for d in route.flows}
        for dpid in sorted(dpids):
            session = self.ctx.sessions.get(dpid) or self.ctx.remote(dpid)
            if session is not None:
                self._send(session, render.flow_delete_cookie(cookie, (1 << 64) - 1))
        self.ctx.metrics.live_routes.set(len(self.ctx.routes))


def _still_allowed(route: LiveRoute, a: Endpoint, b: Endpoint, view: View) -> bool:
    """Would the policy install this route, as it is, today?"""
    if route.scope is None:
        v = verdict(a, b, view, None)
        return v is not None and v.allowed and v.scope is None
    client, server = (a, b) if route.client == a.id else (b, a)
    proto, port = route.scope
    v = verdict(client, server, view, L4(proto, 0, port))
    return v is not None and v.allowed and v.scope == route.scope and not v.reply
