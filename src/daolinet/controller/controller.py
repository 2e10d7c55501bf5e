"""The controller's core: follows the store's change feed into the view and
reacts (sync proactive flows, revoke routes), and dispatches switch events
to the hot-plug route and the flow sync.  A switch's session is admitted for
its dpid only if its certificate may speak for it (admission.py): when its
handshake names the dpid, and again when the store binds that dpid to a host."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from daolinet.controller.admission import Refusal, admit
from daolinet.controller.context import Config, Context
from daolinet.controller.effects import Effects
from daolinet.controller.hotplug import HotPlug
from daolinet.controller.metrics import Metrics
from daolinet.controller.moves import Moves
from daolinet.controller.ofserver import log_refusal
from daolinet.controller.routes import LiveRoute, Scope, scope_of_match
from daolinet.controller.switch import SwitchSession
from daolinet.controller.sync import FlowSync, address_rules_touched
from daolinet.flows import render
from daolinet.model import ControllerRecord, Endpoint, Group, Host, Network, Portmap, Rule, View
from daolinet.model.view import Change
from daolinet.ofp import channel as ch
from daolinet.ofp.codec import ProtocolError, ofp
from daolinet.pipeline import Kind, kind_mask
from daolinet.store.base import ChangesPruned, Store

log = logging.getLogger(__name__)
EXACT_COOKIES = 16  # up to this many routes, their switches are asked cookie by cookie
ALL_BITS = (1 << 64) - 1
CounterKey = tuple[int, Scope]  # (cookie, scope): route_counters' rows
MOVE_TIMEOUT = 5.0  # s: a move's API call waits this long at most for its new path


class Controller:
    def __init__(self, store: Store, config: Config, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.ctx = Context(view=View(), config=config, metrics=Metrics(registry or CollectorRegistry()))
        self.ctx.metrics.watch(self.ctx)
        self.hotplug = HotPlug(self.ctx)
        self.sync = FlowSync(self.ctx)
        self.moves = Moves(self.ctx, self.hotplug, self.sync)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_counts: dict[tuple[int, Any], tuple[int, float]] = {}
        # Own commits that arrived ahead of an earlier revision still on its way through the watch.
        self._ahead: dict[int, Change] = {}
        self.own_rev = 0  # the newest revision committed through this instance
        self.effects = Effects()  # FlowMods of a revision until the switches confirm them
        self._follower: asyncio.Task[None] | None = None
        # Switches held here with their generation ids; None: the only controller, master of all.
        self.held: dict[int, int] | None = None
        self.generation: Callable[[], int] = lambda: 0  # for SLAVE requests: the newest known
        self.listeners: list[Callable[[Change], None]] = []  # told of each change applied (the live map)

    @property
    def view(self) -> View:
        return self.ctx.view

    async def start(self) -> None:
        rev, objs = await self.store.snapshot()
        self.ctx.view.load(objs, rev)
        self.store.subscribe(self.on_own_change)
        self._follower = asyncio.ensure_future(self._follow(rev))

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower

    # -- following the store: every revision applied exactly once, in order ------------

    def on_own_change(self, change: Change) -> None:
        """This instance's commit: applied at once (the API call sees its effect before it
        returns) unless an earlier revision by another writer has not arrived yet."""
        self.own_rev = max(self.own_rev, change.rev)
        if change.rev <= self.view.rev:
            return
        self._ahead[change.rev] = change
        self._drain()

    def on_watched_change(self, change: Change) -> None:
        """Any writer's commit, in revision order.  A revision the watch skips does not
        exist any more (a coalesced heartbeat): own commits below it go first."""
        if change.rev <= self.view.rev:
            return
        for rev in sorted(ahead for ahead in self._ahead if ahead < change.rev):
            self.on_change(self._ahead.pop(rev))
        self._ahead.pop(change.rev, None)
        self.on_change(change)
        self._drain()

    def _drain(self) -> None:
        while (nxt := self._ahead.pop(self.view.rev + 1, None)) is not None:
            self.on_change(nxt)

    async def _follow(self, rev: int) -> None:
        while True:
            try:
                async with contextlib.aclosing(self.store.watch_changes(rev)) as changes:  # type: ignore[type-var]
                    async for change in changes:
                        self.on_watched_change(change)
            except ChangesPruned:
                log.error("store log pruned past rev %d: reloading the view", self.view.rev)
                rev, objs = await self.store.snapshot()
                self._reload(rev, objs)
                continue
            except Exception:
                log.exception("following the store failed at rev %d; retrying", self.view.rev)
                await asyncio.sleep(1.0)
            rev = self.view.rev

    def _reload(self, rev: int, objs: list[Any]) -> None:
        self.ctx.view = View()
        self.ctx.view.load(objs, rev)
        self._ahead.clear()
        self.sync.view_reloaded()
        for session in list(self.ctx.connected.values()):
            self._check_bound(session)
        for session in list(self.ctx.sessions.values()):
            self._spawn(self.sync.sync_switch(session))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("controller task failed", exc_info=task.exception())

    # -- the model changed -----------------------------------------------------------

    def on_change(self, change: Change) -> None:
        try:
            self._apply(change)
            for listener in self.listeners:
                listener(change)
        finally:
            self.effects.applied(change.rev)

    def _apply(self, change: Change) -> None:
        changed, view = change.obj, self.ctx.view
        old = _previous(view, changed)
        view.apply(change)
        new = None if change.deleted else changed
        if _guard_moved(changed, old, new):  # containers keep off infrastructure
            self.sync.guard_changed()
        if isinstance(changed, Endpoint):
            self._endpoint_changed(old, new)  # type: ignore[arg-type]
        elif isinstance(changed, Host) and new is not None:
            self._host_changed(old, changed)
        elif isinstance(changed, Portmap):
            self.sync.remove_portmap(changed)
            if not change.deleted:
                self.sync.install_portmap(changed)
        elif isinstance(changed, Group | Rule | Network):
            # A policy change takes effect at once: revoke what it no longer allows, and
            # the API call that made it answers once the switches confirm (confirmed()).
            touched = self.hotplug.revalidate(changed.tenant)
            if isinstance(changed, Group | Rule):  # rules about addresses outside: flows to and from there
                outward, inward = address_rules_touched(view, changed)
                if outward or inward:
                    touched.update(self.sync.addresses_policy_changed(changed.tenant, outward, inward))
            self.effects.track(change.rev, touched)

    def _host_changed(self, old: Host | None, host: Host) -> None:
        if old is None or old.dpid != host.dpid:
            self._check_bound_dpid(host.dpid)
        if _host_moved(old, host):
            self._spawn(self.sync.host_changed(host))
        if old is not None and old.alive != host.alive:
            self._host_liveness_changed(host)

    async def confirmed(self) -> None:
        """Return once this instance's last commit has taken effect on every switch: the
        deletions it caused here are confirmed by barrier replies, and so are those every
        other controller mastering a switch made for it (each revokes the routes it
        plugged).  A switch or controller that does not answer in time is logged."""
        rev = self.own_rev
        peers: dict[str, Any] = {}  # one RemoteSwitch per other master: it answers for all its switches
        for dpid in self.view.hosts_by_dpid:
            if dpid not in self.ctx.sessions and (remote := self.ctx.remote(dpid)) is not None:
                peers.setdefault(remote.url, remote)
        await asyncio.gather(self.effects.settled(rev), *(self._peer_settled(r, rev) for r in peers.values()))

    async def _peer_settled(self, remote: Any, rev: int) -> None:
        try:
            await asyncio.wait_for(remote.settled(rev), self.effects.timeout + 1.0)
        except (ConnectionError, TimeoutError, httpx.HTTPError) as e:
            log.warning("controller %s did not confirm revision %d: %r", remote.url, rev, e)

    def _endpoint_changed(self, old: Endpoint | None, new: Endpoint | None) -> None:
        def placed(endpoint: Endpoint) -> tuple[object, ...]:
            return (endpoint.host, endpoint.ofport, endpoint.pip, endpoint.ip, endpoint.mac)

        if _plugged_move(old, new):  # already plugged there: make before break (controller/moves.py)
            assert old is not None and new is not None
            self.moves.on_moved(old, new)
            return
        if old is not None and (new is None or placed(old) != placed(new)):
            self.hotplug.revoke_endpoint(old.id)
            self.sync.endpoint_unplugged(old)
            for pm in self.view.portmaps_of(old):  # they follow the container
                self.sync.remove_portmap(pm)
        if new is not None and new.ofport is not None and (old is None or placed(old) != placed(new)):
            self.sync.endpoint_plugged(new)
            for pm in self.view.portmaps_of(new):
                self.sync.install_portmap(pm)
            self.hotplug.clear_drops()  # peers that tried it meanwhile may pass now

    def _host_liveness_changed(self, host: Host) -> None:
        """A host went down: revoke every route of its containers held here (their other ends'
        switches included).  Back up: forget drop flows, so peers reach it on their next packet."""
        if host.alive:
            log.info("host %s is alive again", host.name)
            self.hotplug.clear_drops()
            return
        revoked = sum(self.hotplug.revoke_endpoint(e.id) for e in self.view.endpoints_on(host.name))
        log.warning("host %s is down: %d route(s) of its containers revoked here", host.name, revoked)

    def _counter_asks(self, routes: list[LiveRoute] | None) -> list[tuple[SwitchSession, int, int]]:
        """(switch, cookie, mask) to ask for the routes' flow stats: few routes by exact
        cookie on their own switches, many (or all) by the route kind."""
        if routes is not None and len(routes) <= EXACT_COOKIES:
            pairs = sorted({(dpid, route.cookie) for route in routes for dpid in route.dpids})
            return [(s, cookie, ALL_BITS) for dpid, cookie in pairs if (s := self.ctx.sessions.get(dpid))]
        cookie, mask = kind_mask(Kind.ROUTE)
        dpids = None if routes is None else {dpid for route in routes for dpid in route.dpids}
        sessions = list(self.ctx.sessions.items())
        return [(s, cookie, mask) for dpid, s in sessions if dpids is None or dpid in dpids]

    async def route_counters(self, routes: list[LiveRoute] | None = None) -> dict[CounterKey, dict[str, Any]]:
        """Packets and bytes per live route (summed over its flows on every switch),
        and seconds since the controller last saw its packet count move.  Given a few
        routes (a container's), only their switches are asked, by exact cookie; the
        switches are asked at once, not one after the other.  Keyed by (cookie, scope):
        a dual-stack pair's IPv4 and IPv6 routes of one scope are counted together."""
        asks = self._counter_asks(routes)

        async def ask(session: SwitchSession, cookie: int, mask: int) -> list[Any]:
            try:
                return list((await session.request(render.flow_stats_request(cookie, mask))).body)
            except (ProtocolError, ConnectionError, TimeoutError):
                return []
        totals: dict[CounterKey, dict[str, Any]] = {}
        for body in await asyncio.gather(*(ask(*a) for a in asks)):
            for stats in body:
                key = (int(stats.cookie), scope_of_match(stats.match))
                row = totals.setdefault(key, {"packets": 0, "bytes": 0})
                row["packets"] += int(stats.packet_count)
                row["bytes"] += int(stats.byte_count)
        now = self.ctx.clock()
        for key, row in totals.items():
            seen = self._last_counts.get(key)
            if seen is None or seen[0] != row["packets"]:
                self._last_counts[key] = (row["packets"], now)
            row["idle_s"] = None if seen is None else round(now - self._last_counts[key][1], 1)
        live = {(route.cookie, route.scope) for route in self.ctx.routes.all()}
        for key in set(self._last_counts) - live:
            del self._last_counts[key]
        return totals

    async def settle(self, host: str) -> None:
        """Wait until the host's switch has applied what was sent to it (a barrier):
        when an attach returns, the container's flows are in place."""
        known = self.view.hosts.get(host)
        if known is None:
            return
        try:
            session = self.ctx.sessions.get(known.dpid)
            if session is not None:
                await session.barrier()
            elif (remote := self.ctx.remote(known.dpid)) is not None:  # its master installs them
                await remote.barrier(min_rev=self.view.rev)
        except (ProtocolError, ConnectionError, TimeoutError, httpx.HTTPError):
            log.warning("switch of host %s did not confirm its flows", host)

    async def settle_move(self, old: Endpoint, new: Endpoint) -> None:
        """Wait until a move's new path is in place (the new host's flows, the peers'
        re-pointed routes, the old host's forward: controller/moves.py)."""
        made = self.moves.made.get(new.id)
        if made is None:
            await self.settle(new.host)
            return
        try:
            await asyncio.wait_for(asyncio.shield(made), MOVE_TIMEOUT)
        except TimeoutError:
            log.warning("moving %s from %s to %s: the switches did not confirm in time", new.name, old.host,
                        new.host)

    # -- switches ------------------------------------------------------------------------

    async def on_session(self, session: SwitchSession) -> None:
        try:
            await session.run(self.on_event)
        finally:
            if self._forget(session):
                log.info("switch %s disconnected", session.name)

    def _forget(self, session: SwitchSession) -> bool:
        """Drop `session` from the switches connected and mastered here; True if it was mastered."""
        if session.dpid is not None and self.ctx.connected.get(session.dpid) is session:
            del self.ctx.connected[session.dpid]
        if session.dpid is not None and self.ctx.sessions.get(session.dpid) is session:
            del self.ctx.sessions[session.dpid]
            self.ctx.synced.discard(session.dpid)
            return True
        return False

    def on_event(self, session: SwitchSession, event: ch.Event) -> Awaitable[None] | None:
        if isinstance(event, ch.PacketIn):
            if self.ctx.sessions.get(session.dpid) is not session:  # type: ignore[arg-type]
                return None  # a slave (or not yet master): the master answers
            self.hotplug.on_packet_in(session, event)
            return None
        if isinstance(event, ch.FlowRemoved):
            self.hotplug.on_flow_removed(session, event.msg)
        elif isinstance(event, ch.SwitchReady):
            return self._switch_ready(session)
        elif isinstance(event, ch.SwitchError) and event.type == ofp.OFPET_ROLE_REQUEST_FAILED:
            # A newer generation was seen first (a SLAVE request racing a new master): harmless.
            log.info("switch %s: role request refused: %s", session.name, event.describe())
        elif isinstance(event, ch.SwitchError):
            self.ctx.metrics.bump(self.ctx.metrics.switch_errors, session.dpid)
            log.error("switch %s: %s", session.name, event.describe())
        elif isinstance(event, ch.PortStatus):
            log.debug("switch %s: port %s reason %d", session.name, event.port, event.reason)
            if event.reason == ofp.OFPPR_DELETE and session.dpid is not None:  # a moved container's old port
                self.moves.port_gone(session.dpid, event.port.ofport)
        return None

    def _switch_ready(self, session: SwitchSession) -> Awaitable[None] | None:
        """Admit the session for its dpid (at once: nothing it sent next is acted on
        before), then record it, master or slave."""
        assert session.dpid is not None
        old = self.ctx.connected.get(session.dpid)
        live = old.identity if old is not None and old is not session else None
        host = self.view.hosts_by_dpid.get(session.dpid)
        refusal = admit(session.identity, session.dpid, host.name if host else None, live, tls=session.tls)
        if refusal is not None:
            self.refused(session.peer, refusal)
            session.writer.close()  # only the new connection: the live switch is untouched
            return None
        if old is not None and old is not session:
            old.writer.close()  # the switch reconnected; the old channel is dead
        self.ctx.connected[session.dpid] = session
        self.ctx.metrics.switch_connections += 1
        log.info("switch %s connected from %s%s", session.name, session.peer,
                 f" ({session.identity})" if session.identity else "")
        if self.held is None:
            return self._become_master(session, None)
        if session.dpid in self.held:
            return self._become_master(session, self.held[session.dpid])
        self._become_slave(session)
        return None

    def refused(self, peer: str, refusal: Refusal) -> None:
        """One log line and the metric for a refused OpenFlow connection (ofserver's handshakes too)."""
        log_refusal(peer, refusal)
        self.ctx.metrics.openflow_refused.labels(refusal.reason).inc()

    def _check_bound_dpid(self, dpid: int) -> None:
        session = self.ctx.connected.get(dpid)
        if session is not None:
            self._check_bound(session)

    def _check_bound(self, session: SwitchSession) -> None:
        """The store bound (or re-bound) the session's dpid to a host: close the session
        if its certificate names another host (it came first, while the dpid was free)."""
        assert session.dpid is not None
        host = self.view.hosts_by_dpid.get(session.dpid)
        if host is None:
            return
        refusal = admit(session.identity, session.dpid, host.name, None, tls=session.tls)
        if refusal is not None:
            self.refused(session.peer, refusal)
            self._forget(session)
            session.writer.close()

    # -- mastership (several controllers: controller/mastership_etcd.py decides) ----------

    def set_held(self, held: dict[int, int]) -> None:
        """The switches this controller is master of now, with their generation ids."""
        self.held = dict(held)
        for dpid, session in list(self.ctx.connected.items()):
            if dpid in held and self.ctx.sessions.get(dpid) is not session:
                self._spawn(self._become_master(session, held[dpid]))
            elif dpid not in held and dpid in self.ctx.sessions:
                self._become_slave(session)

    async def _become_master(self, session: SwitchSession, generation: int | None) -> None:
        assert session.dpid is not None
        if generation is not None:
            session.request_role(ch.ROLE_MASTER, generation)
            log.info("switch %s: master (generation %d)", session.name, generation)
        self.ctx.sessions[session.dpid] = session
        await self.sync.sync_switch(session)

    def _become_slave(self, session: SwitchSession) -> None:
        assert session.dpid is not None
        if self.ctx.sessions.get(session.dpid) is session:
            del self.ctx.sessions[session.dpid]
            self.ctx.synced.discard(session.dpid)
        with contextlib.suppress(ProtocolError):
            session.request_role(ch.ROLE_SLAVE, self.generation())


def _plugged_move(old: Endpoint | None, new: Endpoint | None) -> bool:
    """An endpoint moved to another host where it is already plugged (one revision)."""
    return (old is not None and new is not None and old.host != new.host
            and old.ofport is not None and new.ofport is not None)


def _host_moved(old: Host | None, new: Host) -> bool:
    """Anything but liveness changed (a heartbeat alone needs no flow work)."""
    if old is None:
        return True

    def placed(host: Host) -> Host:
        return dataclasses.replace(host, last_seen=0.0, alive=True)
    return placed(old) != placed(new)


def _guard_moved(changed: object, old: Any, new: Any) -> bool:
    """Does this change move what the guard drops (flows/infra.py): a host's underlay address
    or segment, a controller's addresses, a network's subnet (a heartbeat does not)."""
    if isinstance(changed, Host):
        def segment(h: Host | None) -> tuple[str, int] | None:
            return None if h is None else (h.underlay_ip, h.underlay_prefix)
        return segment(old) != segment(new)
    if isinstance(changed, ControllerRecord):
        return (old.addresses if old else None) != (new.addresses if new else None)
    if isinstance(changed, Network):
        return (old.subnet if old else None) != (new.subnet if new else None)
    return False


def _previous(view: View, changed: object) -> Any:
    """The view's copy of a changed endpoint, host or controller record before the change."""
    if isinstance(changed, Endpoint):
        return view.endpoints.get(changed.id)
    if isinstance(changed, Host):
        return view.hosts.get(changed.name)
    if isinstance(changed, ControllerRecord):
        return view.controllers.get(changed.id)
    if isinstance(changed, Network):
        return view.networks.get((changed.tenant, changed.name))
    return None
