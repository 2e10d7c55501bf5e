"""The hot-plug route's asyncio side (docs/architecture.md, "The hot-plug route").

PacketIn -> parse -> decide (pure, decide/route.py) -> respond (pure, flows/respond.py)
-> this module: it only sends the Response's messages, sequences its barriers,
records its route and counts.  No task, no future: a route taking the long way
(confirm) continues from each barrier reply's callback; concurrent PacketIns
for a route being plugged ride along, their packets sent with the first one's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daolinet.controller.context import Context
from daolinet.controller.routes import Key, LiveRoute, family_of_match, route_flushes, scope_of_match
from daolinet.controller.switch import SwitchSession
from daolinet.decide.packet import PacketMeta, parse
from daolinet.decide.route import Decision, Deny, decide, still_allowed
from daolinet.flows import wire
from daolinet.flows.respond import Response, RouteRecord, respond
from daolinet.ofp.channel import PacketIn
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import EID_BITS, EID_MAX, Kind, kind_mask

log = logging.getLogger(__name__)
perf_counter = time.perf_counter
JUST_PLUGGED = 0.5  # s: a PacketIn for a route plugged this recently is handed on, not re-plugged
# OVS revalidates its datapath flows at once when its flow tables change, and at the latest
# every max-revalidator ms (500 by default): after that no cached flow of a deleted route is left.
REFLUSH_AFTER = 0.6


# A decision's class -> its kind as counted (decide/route.py's class name, lower-cased).
_KINDS: dict[type, str] = {}


def _kind(cls: type) -> str:
    kind = _KINDS[cls] = cls.__name__.lower()
    return kind


def _call_later(delay: float, fn: Callable[..., None], *args: Any) -> None:
    asyncio.get_running_loop().call_later(delay, fn, *args)


@dataclass(slots=True)
class _Plugging:
    """A route on its way in, step by step: what to send, and the packets to send once it is."""

    response: Response
    route: RouteRecord
    started: float
    packet_outs: list[tuple[int, Encoded]]  # the response's, and those of PacketIns riding along


class HotPlug:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pending: dict[Key, _Plugging] = {}
        self._drops_sent: dict[int, float] = {}  # dpid -> when it was last sent a drop flow
        self._cleared: dict[int, Any] = {}  # dpid -> its session at the last clear_drops
        self.call_later = _call_later  # (a seam for tests)

    def on_packet_in(self, session: SwitchSession, ev: PacketIn) -> None:
        """Synchronous on purpose: no task per packet.  A route taking the long way
        continues from the barrier reply's callback (_install_step)."""
        started = perf_counter()
        dpid = session.dpid
        assert dpid is not None
        ctx = self.ctx
        metrics = ctx.metrics
        packet_ins = metrics.packet_ins
        packet_ins[dpid] = packet_ins.get(dpid, 0) + 1
        meta = parse(dpid, ev.in_port, ev.table_id, ev.reason, ev.data)
        view = ctx.view
        decision = decide(meta, view)
        kind = _KINDS.get(type(decision)) or _kind(type(decision))
        decisions = metrics.decisions
        decisions[kind] = decisions.get(kind, 0) + 1
        self.send(respond(decision, meta, ev.data, view, ctx.config), started)
        if isinstance(decision, Deny):
            self._denied(decision, meta)

    def carry_out(self, decision: Decision, meta: PacketMeta, frame: bytes, started: float) -> None:
        """Send what flows/respond.py says `decision` takes; remember a drop flow sent
        (on_packet_in, after parse and decide)."""
        self.send(respond(decision, meta, frame, self.ctx.view, self.ctx.config), started)
        if isinstance(decision, Deny):
            self._denied(decision, meta)

    def _denied(self, decision: Deny, meta: PacketMeta) -> None:
        """A drop flow was sent: remember it, and log the denial (controller/policy_log.py)."""
        now = self.ctx.clock()
        self._drops_sent[meta.dpid] = now
        self.ctx.policy_log.denied(decision, meta, self.ctx.view, now)

    def send(self, response: Response, started: float) -> None:
        """Carry out a Response: its steps (confirmed by barriers when it says so), its
        packet-outs, and its route recorded once sent."""
        route = response.route
        if route is None:
            for dpid, flows in response.steps:
                switch = self._switch(dpid)
                if switch is not None:
                    self._send(switch, *flows)
            self._packet_outs(response.packet_outs)
            return
        key = (route.cookie, route.scope, route.family)
        if self._pending:
            plugging = self._pending.get(key)
            if plugging is not None:  # someone is plugging this route right now: ride along
                plugging.packet_outs.extend(response.packet_outs)
                return
        live = self.ctx.routes.get(*key)
        if live is not None and self.ctx.clock() - live.plugged_at < JUST_PLUGGED:
            # Its flows went out moments ago, each switch's on its own connection: this packet
            # (say a reply faster than the flows reached its switch) only needs handing on
            # after them, not the route plugged again.
            self._packet_outs(response.packet_outs)
            return
        if not response.confirm:
            self._send_at_once(response, route, started)
            return
        plugging = _Plugging(response, route, started, list(response.packet_outs))
        self._pending[key] = plugging
        self._install_step(plugging, 0)

    def _switch(self, dpid: int) -> Any:
        """The switch to talk to: mastered here, else reached through its master (or None)."""
        return self.ctx.sessions.get(dpid) or self.ctx.remote(dpid)

    def _send(self, session: Any, *msgs: Any) -> None:  # a SwitchSession or a RemoteSwitch
        session.send(*msgs)
        counts: dict[Any, int] = self.ctx.metrics.flowmods
        counts[session.dpid] = counts.get(session.dpid, 0) + len(msgs)

    def _packet_outs(self, packet_outs: Any) -> None:
        for dpid, packet_out in packet_outs:
            switch = self._switch(dpid)
            if switch is not None:
                switch.send(packet_out)

    def _send_at_once(self, response: Response, route: RouteRecord, started: float) -> None:
        """Every step's flows without waiting for a barrier, then the packet-outs (the
        first packet handed to its destination's port: decide/direct.py)."""
        sessions = self.ctx.sessions
        steps = response.steps
        switches = []
        for dpid, _ in steps:
            switch = sessions.get(dpid) or self.ctx.remote(dpid)
            if switch is None:
                log.warning("route %#x: switch %#x is not connected", route.cookie, dpid)
                return
            switches.append(switch)
        counts: dict[Any, int] = self.ctx.metrics.flowmods
        flows: dict[int, int] = {}
        for switch, (dpid, step) in zip(switches, steps, strict=True):
            switch.send(*step)
            counts[switch.dpid] = counts.get(switch.dpid, 0) + len(step)
            flows[dpid] = len(step)
        for dpid, packet_out in response.packet_outs:
            for switch, (to, _) in zip(switches, steps, strict=True):
                if to == dpid:
                    switch.send(packet_out)
                    break
            else:
                switch = self._switch(dpid)
                if switch is not None:
                    switch.send(packet_out)
        self._record(route, flows, started)

    def _install_step(self, plugging: _Plugging, i: int) -> None:
        """Send step i's flows; confirm them by a barrier before step i+1 (the
        packet never overtakes its route), then finish."""
        steps = plugging.response.steps
        dpid, flows = steps[i]
        switch = self._switch(dpid)
        if switch is None:
            log.warning("route %#x: switch %#x is not connected", plugging.route.cookie, dpid)
            self._finish(plugging, False)
            return
        self._send(switch, *flows)
        if i == len(steps) - 1:
            self._finish(plugging, True)
            return

        def confirmed(ok: bool) -> None:
            if ok:
                self._install_step(plugging, i + 1)
            else:
                log.warning("route %#x: switch %#x did not confirm its flows", plugging.route.cookie, dpid)
                self._finish(plugging, False)

        switch.barrier_then(confirmed)

    def _finish(self, plugging: _Plugging, installed: bool) -> None:
        route = plugging.route
        self._pending.pop((route.cookie, route.scope, route.family), None)
        if not installed:  # re-injected, the packets would only come straight back to us
            return
        self._packet_outs(plugging.packet_outs)
        flows = {dpid: len(step_flows) for dpid, step_flows in plugging.response.steps}
        self._record(route, flows, plugging.started)

    def _record(self, route: RouteRecord, flows: dict[int, int], started: float) -> None:
        """The route's flows are sent: into the routes table (which keeps `flows`), and
        into the metrics."""
        ctx = self.ctx
        ctx.routes.record(route.cookie, route.names, flows, ctx.clock(), route.scope, route.client,
                          route.family)
        took = perf_counter() - started
        ctx.metrics.route_setup.observe(took)
        ctx.setup_samples.append(took)

    def on_flow_removed(self, session: SwitchSession, msg: Any) -> None:
        assert session.dpid is not None
        self.ctx.metrics.bump(self.ctx.metrics.flows_removed, session.dpid)
        match = msg.match
        gone = self.ctx.routes.flow_removed(session.dpid, int(msg.cookie), scope_of_match(match),
                                            family_of_match(match))
        if gone is not None:
            log.debug("route %#x idled out", gone.cookie)

    def revalidate(self, tenant: str | None = None) -> dict[int, Any]:
        """After a policy change: revoke every live route (of `tenant`) the policy
        no longer allows as installed, and drop every drop flow so a grant takes
        effect on the next packet.  Returns the switches sent deletions (dpid -> switch),
        for the caller to confirm by a barrier."""
        view = self.ctx.view
        doomed, revoked = set(), []
        for route in self.ctx.routes.all():
            a, b = view.endpoints.get(route.a), view.endpoints.get(route.b)
            if a is None or b is None:
                doomed.add(route.cookie)
                continue
            mine = tenant is None or a.tenant == tenant
            if mine and not still_allowed(a, b, view, route.scope, route.client):
                doomed.add(route.cookie)
                revoked.append(route)
        now = self.ctx.clock()
        for route in revoked:  # into the policy log (the pair's other scopes go along unlogged)
            self.ctx.policy_log.revoked(route, view, now)
        touched: dict[int, Any] = {}
        for cookie in doomed:
            touched.update(self.revoke(cookie))
        touched.update(self.clear_drops())
        if doomed:
            log.info("policy change: %d pair(s) revoked", len(doomed))
        return touched

    def clear_drops(self) -> dict[int, Any]:
        """Forget every short-lived drop flow, everywhere: something became reachable.
        Only a switch sent one within its hard timeout can hold one (plus a second for
        delivery and the switch's expiry sweep), or one whose session is new to us (a
        previous master or connection may have sent it one); the others are left alone.
        Returns the switches sent the deletion."""
        drops, mask = kind_mask(Kind.DROP)
        since = self.ctx.clock() - self.ctx.config.drop_timeout - 1.0
        touched: dict[int, Any] = {}
        for dpid, session in self.ctx.sessions.items():
            if self._drops_sent.get(dpid, since - 1) >= since or self._cleared.get(dpid) is not session:
                self._send(session, wire.flow_delete_cookie(drops, mask))
                self._cleared[dpid] = touched[dpid] = session
                self._drops_sent.pop(dpid, None)
        for dpid in [dpid for dpid, sent in self._drops_sent.items() if sent < since]:
            del self._drops_sent[dpid]
        return touched

    def revoke_endpoint(self, eid: int) -> int:
        """Delete every route of an endpoint on every switch holding it, now."""
        cookies = {route.cookie for route in self.ctx.routes.of_endpoint(eid)}
        for cookie in cookies:
            self.revoke(cookie)
        return len(cookies)

    def revoke(self, cookie: int) -> dict[int, Any]:
        """Delete every flow of the pair's routes (all scopes), on every switch holding one,
        and on both ends' switches whatever the table says: a route adopted after a
        failover knows only its half on the adopted switch, while the other half was
        put on a switch mastered elsewhere by the controller that died.  An L4 route's
        connections go from its client's conntrack too (flows/conntrack.py).  Returns the
        switches sent the deletion (mastered here, or reached through their master)."""
        routes = self.ctx.routes.remove_pair(cookie)
        dpids = {dpid for route in routes for dpid in route.flows}
        view = self.ctx.view
        for eid in ((cookie >> EID_BITS) & EID_MAX, cookie & EID_MAX):
            endpoint = view.endpoints.get(eid)
            host = view.host_of(endpoint) if endpoint is not None else None
            if host is not None:
                dpids.add(host.dpid)
        touched: dict[int, Any] = {}
        for dpid in sorted(dpids):
            session = self._switch(dpid)
            if session is not None:
                self._send(session, wire.flow_delete_cookie(cookie, (1 << 64) - 1))
                touched[dpid] = session
        self._flush(routes)
        if routes:
            self.ctx.metrics.revocations += 1
        return touched

    def _flush(self, routes: list[LiveRoute]) -> None:
        """Forget the scoped routes' connections: right after their flows' deletion (the
        caller's barrier confirms both), and once more when OVS has surely dropped the
        datapath flows it cached from the deleted ones (a packet meeting one meanwhile
        commits its connection again; no barrier waits for that, only time does)."""
        for dpid, flush in route_flushes(routes, self.ctx.view):
            switch = self._switch(dpid)
            if switch is not None:
                self._send(switch, flush)
                self.call_later(REFLUSH_AFTER, self._reflush, dpid, flush)

    def _reflush(self, dpid: int, flush: Encoded) -> None:
        switch = self._switch(dpid)
        if switch is not None:
            self._send(switch, flush)
