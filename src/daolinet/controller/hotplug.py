"""The hot-plug route, end to end (design.md "The hot-plug route").

PacketIn -> parse -> decide (pure) -> act:
  Plug: cross-host from an egress miss (the common case): both switches'
        flows at once, and the packet handed straight to the destination
        switch after its flows, as the route would deliver it (decide/direct.py):
        no barrier on the way.  Otherwise (same host, an ingress miss, a TTL
        about to run out) the flows switch by switch, the packet's switch last,
        each earlier switch confirmed by a barrier before the next, so the
        packet, re-injected through the table last, never overtakes its route;
        concurrent PacketIns for that route ride along and are re-injected with
        it.  No task, no future: the next step runs from the barrier reply's
        callback, and messages are encoded by flows/wire.py.
  Deny: a short-lived drop flow on the source switch.
  External / MappedPort: the source's flows to the outside, or to a published
        port mapping (flows/infra.py), on its own switch; the packet re-injected.
  EchoReply / TimeExceeded: the distributed router answers by PacketOut.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from daolinet.controller.context import Context
from daolinet.controller.routes import Key, Scope, scope_of_match
from daolinet.controller.switch import SwitchSession
from daolinet.decide import icmp
from daolinet.decide.direct import delivered
from daolinet.decide.packet import PacketMeta, parse
from daolinet.decide.route import (
    Decision,
    Deny,
    EchoReply,
    External,
    Ignore,
    MappedPort,
    Plug,
    RelayIcmp,
    TimeExceeded,
    decide,
    still_allowed,
)
from daolinet.flows import wire
from daolinet.flows.external import flows_for_external
from daolinet.flows.infra import flows_for_portmap_client
from daolinet.flows.route import RouteEnds, drop_flow
from daolinet.flows.route_wire import RouteBytes, route_bytes
from daolinet.model import Endpoint
from daolinet.ofp.channel import PacketIn
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import EID_BITS, EID_MAX, GATEWAY_MAC, Kind, Table, kind_mask

log = logging.getLogger(__name__)
GATEWAY_MAC_BYTES = wire.mac_bytes(GATEWAY_MAC)


@dataclass(slots=True)
class _Plugging:
    """A route on its way in: its steps, and the packets to re-inject once it is."""

    plan: RouteBytes
    steps: list[tuple[int, tuple[Encoded, ...]]]
    names: tuple[str, str]
    scope: Scope
    client: int | None
    started: float
    waiting: list[tuple[Any, int, bytes]]  # (session, in_port, packet)
    counts: dict[int, int] = field(default_factory=dict)


class HotPlug:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pending: dict[Key, _Plugging] = {}
        self._counters: dict[tuple[int, str], Any] = {}  # (metric, label) -> its child
        self._drops_sent: dict[int, float] = {}  # dpid -> when it was last sent a drop flow
        self._cleared: dict[int, Any] = {}  # dpid -> its session at the last clear_drops

    def _counter(self, metric: Any, label: str) -> Any:
        """A metric's child for one label, made once (prometheus' labels() costs a lock)."""
        key = (id(metric), label)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = metric.labels(label)
        return child

    def warm(self, session: Any) -> None:
        """Make a switch's metric children now, not on its first route's hot path."""
        self._counter(self.ctx.metrics.packet_ins, f"{session.dpid:#x}")
        self._counter(self.ctx.metrics.flowmods, session.name)

    def on_packet_in(self, session: SwitchSession, ev: PacketIn) -> None:
        """Synchronous on purpose: no task per packet.  A route taking the long way
        continues from the barrier reply's callback (_install_step)."""
        started = time.perf_counter()
        dpid = session.dpid
        assert dpid is not None
        m = self.ctx.metrics
        self._counter(m.packet_ins, f"{dpid:#x}").inc()
        meta = parse(dpid, ev.in_port, ev.table_id, ev.reason, ev.data)
        decision = decide(meta, self.ctx.view)
        self._counter(m.decisions, type(decision).__name__.lower()).inc()
        self.act(session, meta, ev.data, decision, started)

    def act(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: Decision, started: float) -> None:
        if isinstance(d, Plug):
            self._plug(session, meta, data, d, started)
        elif isinstance(d, Deny):
            log.info("deny %s -> %s: %s", d.src.name, d.dst_ip, d.reason)
            self._send(session, wire.flow_add(drop_flow(d.src, d.dst_ip, self.ctx.config.drop_timeout)))
            if session.dpid is not None:
                self._drops_sent[session.dpid] = self.ctx.clock()
        elif isinstance(d, EchoReply):
            reply = icmp.echo_reply(data, GATEWAY_MAC)
            if reply is not None and d.src.ofport is not None:
                session.send(wire.packet_out_to_port(d.src.ofport, reply))
        elif isinstance(d, TimeExceeded):
            self._time_exceeded(data, d)
        elif isinstance(d, RelayIcmp):
            self._relay_icmp(session, data, d)
        elif isinstance(d, External):
            self._external(session, meta, data, d)
        elif isinstance(d, MappedPort):
            self._mapped_port(session, meta, data, d)
        elif isinstance(d, Ignore):
            log.debug("ignore packet-in on %s port %d: %s", session.name, meta.in_port, d.reason)

    def _switch(self, dpid: int) -> Any:
        """The switch to talk to: mastered here, else reached through its master (or None)."""
        return self.ctx.sessions.get(dpid) or self.ctx.remote(dpid)

    def _send(self, session: Any, *msgs: Any) -> None:  # a SwitchSession or a RemoteSwitch
        session.send(*msgs)
        self._counter(self.ctx.metrics.flowmods, session.name).inc(len(msgs))

    def _plug(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: Plug, started: float) -> None:
        view = self.ctx.view
        ha, hb = view.host_of(d.a), view.host_of(d.b)
        na, nb = view.network_of(d.a), view.network_of(d.b)
        if ha is None or hb is None or na is None or nb is None:
            return
        plan = route_bytes(RouteEnds(d.a, d.b, ha, hb, na.name == nb.name, d.scope, d.server_is_b),
                           self.ctx.config.idle_timeout)
        key = (plan.cookie, d.scope)
        packet = (session, meta.in_port, data)
        pending = self._pending.get(key)
        if pending is not None:  # someone is plugging this route right now: ride along
            pending.waiting.append(packet)
            return
        client = (d.a.id if d.server_is_b else d.b.id) if d.scope else None
        steps = sorted(plan.steps, key=lambda s: s[0] == session.dpid)  # the packet's switch last
        job = _Plugging(plan, steps, (d.a.name, d.b.name), d.scope, client, started, [packet])
        if meta.table_id == Table.EGRESS and self._deliver_directly(session, data, d.b, job):
            return
        self._pending[key] = job
        self._install_step(job, 0)

    def _deliver_directly(self, session: SwitchSession, data: bytes, dst: Endpoint, job: _Plugging) -> bool:
        """A cross-host route from an egress miss: both switches' flows at once, and the
        packet handed to the destination switch after its flows (decide/direct.py), so
        nothing waits for a barrier.  False: take the long way (a TTL about to run out,
        a same-host route, a frame that is not plain IPv4)."""
        if len(job.steps) != 2 or job.steps[1][0] != session.dpid or dst.ofport is None:
            return False
        frame = delivered(data, GATEWAY_MAC_BYTES, wire.mac_bytes(dst.mac))
        far_dpid, far_flows = job.steps[0]
        far = self._switch(far_dpid)
        if frame is None or far is None:
            return False
        self._send(far, *far_flows)
        far.send(wire.packet_out_to_port(dst.ofport, frame))
        self._send(session, *job.steps[1][1])
        job.counts.update({far_dpid: len(far_flows), session.dpid: len(job.steps[1][1])})
        job.waiting.clear()  # delivered already
        self._finish(job, True)
        return True

    def _install_step(self, job: _Plugging, i: int) -> None:
        """Send step i's flows; confirm them by a barrier before step i+1 (the
        packet never overtakes its route), then finish."""
        dpid, flows = job.steps[i]
        session = self._switch(dpid)
        if session is None:
            log.warning("route %#x: switch %#x is not connected", job.plan.cookie, dpid)
            self._finish(job, False)
            return
        self._send(session, *flows)
        job.counts[dpid] = len(flows)
        if i == len(job.steps) - 1:
            self._finish(job, True)
            return

        def confirmed(ok: bool) -> None:
            if ok:
                self._install_step(job, i + 1)
            else:
                log.warning("route %#x: switch %#x did not confirm its flows", job.plan.cookie, dpid)
                self._finish(job, False)

        session.barrier_then(confirmed)

    def _finish(self, job: _Plugging, installed: bool) -> None:
        self._pending.pop((job.plan.cookie, job.scope), None)
        if not installed:  # re-injected, the packets would only come straight back to us
            return
        self.ctx.routes.plugged(job.plan.cookie, job.names, job.counts, self.ctx.clock(), job.scope,
                                job.client)
        for session, in_port, data in job.waiting:
            session.send(wire.packet_out_to_table(in_port, data))
        m = self.ctx.metrics
        m.live_routes.set(len(self.ctx.routes))
        took = time.perf_counter() - job.started
        m.route_setup.observe(took)
        self.ctx.setup_samples.append(took)

    def _time_exceeded(self, data: bytes, d: TimeExceeded) -> None:
        embedded = icmp.original_header(data, d.to.ip, d.orig_dst.ip)
        host = self.ctx.view.host_of(d.to)
        session = self.ctx.sessions.get(host.dpid) if host else None
        if embedded is None or session is None or d.to.ofport is None:
            return
        frame = icmp.time_exceeded(embedded, d.router_ip, GATEWAY_MAC, d.to.ip, d.to.mac)
        session.send(wire.packet_out_to_port(d.to.ofport, frame))

    def _external(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: External) -> None:
        host = self.ctx.view.host_of(d.src)
        if host is None:
            return
        flows = flows_for_external(d.src, host, d.dst_ip, self.ctx.config.idle_timeout)
        self._send(session, *[wire.flow_add(f) for f in flows])
        session.send(wire.packet_out_to_table(meta.in_port, data))

    def _mapped_port(self, session: SwitchSession, meta: PacketMeta, data: bytes, d: MappedPort) -> None:
        host = self.ctx.view.host_of(d.src)
        if host is None:
            return
        flows = flows_for_portmap_client(d.src, host, d.pm, d.host, self.ctx.config.idle_timeout)
        self._send(session, *[wire.flow_add(f) for f in flows])
        session.send(wire.packet_out_to_table(meta.in_port, data))

    def _relay_icmp(self, session: SwitchSession, data: bytes, d: RelayIcmp) -> None:
        by_pip = self.ctx.view.by_pip

        def logical(addr: str) -> str:
            e = by_pip.get(addr)
            return e.ip if e is not None and e.tenant == d.to.tenant else addr

        frame = icmp.relay_error(data, d.to.ip, d.to.mac, GATEWAY_MAC, logical)
        if frame is not None and d.to.ofport is not None:
            session.send(wire.packet_out_to_port(d.to.ofport, frame))

    def on_flow_removed(self, session: SwitchSession, msg: Any) -> None:
        assert session.dpid is not None
        self.ctx.metrics.flows_removed.labels(session.name).inc()
        gone = self.ctx.routes.flow_removed(session.dpid, int(msg.cookie), scope_of_match(msg.match))
        if gone is not None:
            log.debug("route %#x idled out", gone.cookie)
            self.ctx.metrics.live_routes.set(len(self.ctx.routes))

    def revalidate(self, tenant: str | None = None) -> dict[int, Any]:
        """After a policy change: revoke every live route (of `tenant`) the policy
        no longer allows as installed, and drop every drop flow so a grant takes
        effect on the next packet.  Returns the switches sent deletions (dpid -> switch),
        for the caller to confirm by a barrier."""
        view = self.ctx.view
        doomed = set()
        for route in self.ctx.routes.all():
            a, b = view.endpoints.get(route.a), view.endpoints.get(route.b)
            if a is None or b is None:
                doomed.add(route.cookie)
                continue
            mine = tenant is None or a.tenant == tenant
            if mine and not still_allowed(a, b, view, route.scope, route.client):
                doomed.add(route.cookie)
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
        for dpid in [d for d, sent in self._drops_sent.items() if sent < since]:
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
        put on a switch mastered elsewhere by the controller that died.  Returns the
        switches sent the deletion (mastered here, or reached through their master)."""
        dpids = {d for route in self.ctx.routes.remove_pair(cookie) for d in route.flows}
        view = self.ctx.view
        for eid in ((cookie >> EID_BITS) & EID_MAX, cookie & EID_MAX):
            e = view.endpoints.get(eid)
            host = view.host_of(e) if e is not None else None
            if host is not None:
                dpids.add(host.dpid)
        touched: dict[int, Any] = {}
        for dpid in sorted(dpids):
            session = self._switch(dpid)
            if session is not None:
                self._send(session, wire.flow_delete_cookie(cookie, (1 << 64) - 1))
                touched[dpid] = session
        self.ctx.metrics.live_routes.set(len(self.ctx.routes))
        return touched

