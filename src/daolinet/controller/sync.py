"""Proactive flows and reconciliation with what a switch really holds.

On (re)connect of a switch: install the base pipeline for its host and the
classify flows of its endpoints, the guard's drops (the same on every switch:
decided and encoded once, kept until hosts, controllers or networks change)
and its port mappings' flows (an ADD of an identical flow replaces it, so
established traffic never sees a gap), then read the switch's flows back:
base flows no longer wanted are deleted; route flows are adopted into the
route table when both endpoints still exist and still may talk, else deleted
(per scope and family: an IPv6 route is told apart by its eth_type; a pair's
flows go by cookie, both families at once).
A restarted controller converges without dropping routes it need not drop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from daolinet.controller.context import Context
from daolinet.controller.routes import LiveRoute, Scope, family_of_match, route_flushes, scope_of_match
from daolinet.controller.switch import SwitchSession
from daolinet.decide.route import still_allowed
from daolinet.flows import render, wire
from daolinet.flows.classify_wire import classify_flows
from daolinet.flows.dns import dns_flow_for, dns_flows
from daolinet.flows.external import external_cookie
from daolinet.flows.infra import guard_change
from daolinet.flows.portmap import portmap_cookie
from daolinet.flows.proactive import (
    flows_for_endpoint,
    flows_for_host,
    guard_flows,
    own_flows,
    portmap_flows,
    to_portmap,
)
from daolinet.flows.spec import FlowSpec
from daolinet.model import Endpoint, Group, Host, Portmap, Rule, View
from daolinet.model.objects import cidr_of
from daolinet.ofp.channel import MultipartDone
from daolinet.ofp.codec import Encoded
from daolinet.pipeline import EID_A_MASK, EID_B_MASK, KIND_MASK, Cookie, Kind, Table

log = logging.getLogger(__name__)
ALL = (1 << 64) - 1


MatchKey = tuple[int, int, tuple[tuple[str, str], ...]]
RouteKind = tuple[Scope, int]  # (scope, family) of a pair's route


def match_key(table: int, priority: int, match: Any) -> MatchKey:
    """A flow's identity, comparable between our OFPMatch and a switch's."""
    return (int(table), int(priority), tuple(sorted((k, str(v)) for k, v in match.items())))


def _client_of(flows: list[Any], a: Endpoint, b: Endpoint, local: list[Endpoint]) -> int | None:
    """Which end opens an L4 route's connections, read off its flows on one switch: the
    destination of its STATEFUL flow (client's host), or which end sends its egress flow
    here, to the server's port or from it (not for ICMP; `local`: the ends on this
    switch, ofports being per switch).  None if these flows do not tell."""
    for st in flows:
        m = st.match
        if st.table_id == Table.STATEFUL:
            dst = m.get("ipv4_dst") or m.get("ipv6_dst")
            return next((e.id for e in (a, b) if dst in (e.ip, e.pip, e.ip6, e.pip6)), None)
        if st.table_id == Table.EGRESS and m.get("ip_proto") in (6, 17):  # sent by the client or the server
            sender = next((e for e in local if m.get("in_port") == e.ofport), None)
            if sender is not None:
                to_server = m.get("tcp_dst") is not None or m.get("udp_dst") is not None
                return sender.id if to_server else (b if sender is a else a).id
    return None


def _valid(flows: list[Any], a: Endpoint, b: Endpoint, scope: Scope, view: View,
           dpid: int) -> tuple[bool, int | None]:
    """(would the policy install this route today, its client): an L4 route whose flows
    here do not tell its client stands if either end may open it."""
    if scope is None:
        return still_allowed(a, b, view), None
    local = [e for e in (a, b) if (h := view.host_of(e)) is not None and h.dpid == dpid]
    told = _client_of(flows, a, b, local)
    for client in (told,) if told is not None else (a.id, b.id):
        if still_allowed(a, b, view, scope, client):
            return True, client
    return False, told


def _keyed(flows: list[FlowSpec]) -> set[MatchKey]:
    return {match_key(f.table, f.priority, render.match_for(f.match)) for f in flows}


class Guard:
    """The guard's drops as last decided from the view (every switch synced or told since
    holds them), with their wire form and match keys, computed once for all switches."""

    def __init__(self, flows: list[FlowSpec]) -> None:
        self.flows = flows
        self.wire: list[Encoded] = [wire.flow_add(f) for f in flows]
        self._keys: set[MatchKey] | None = None

    @property
    def keys(self) -> set[MatchKey]:
        if self._keys is None:
            self._keys = _keyed(self.flows)
        return self._keys


class FlowSync:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._guard: Guard | None = None

    def _session_for(self, host: Host) -> SwitchSession | None:
        return self.ctx.sessions.get(host.dpid)

    @property
    def guard(self) -> Guard:
        if self._guard is None:
            self._guard = Guard(guard_flows(self.ctx.view))
        return self._guard

    def view_reloaded(self) -> None:
        """A new view: the guard is decided anew at the next sync (each sync deletes the drops
        a switch holds that are no longer wanted)."""
        self._guard = None

    async def sync_switch(self, session: SwitchSession) -> None:
        assert session.dpid is not None
        view = self.ctx.view
        host = view.hosts_by_dpid.get(session.dpid)
        if host is None:
            log.info("switch %s has no registered host yet", session.name)
            return
        shared = [f for pm in view.portmaps.values() for f in to_portmap(view, pm)]
        plugged = [e for e in view.endpoints_on(host.name) if e.ofport is not None]
        session.send(*[wire.flow_add(f) for f in flows_for_host(host)],
                     *[m for e in plugged for m in classify_flows(e)],
                     *[render.flow_add(f) for f in dns_flows(view, host)],
                     *[wire.flow_add(f) for pm in view.portmaps.values()
                       for f in portmap_flows(view, pm).get(host.dpid, [])],
                     *self.guard.wire, *[wire.flow_add(f) for f in shared])
        reply = await session.request(render.flow_stats_request(0, 0))
        assert isinstance(reply, MultipartDone)
        self._reconcile(session, lambda: own_flows(view, host) + shared, reply.body)
        await session.barrier()
        self.ctx.synced.add(session.dpid)

    def _reconcile(self, session: SwitchSession, wanted: list[FlowSpec] | Callable[[], list[FlowSpec]],
                   stats: list[Any]) -> None:
        """Delete the base flows `wanted` (or what it returns, decided only if the switch
        holds any) does not hold, besides the guard's; adopt or delete route flows."""
        assert session.dpid is not None
        keep: set[MatchKey] | None = None  # an os-ken match per wanted flow: only if needed
        routes: dict[int, dict[RouteKind, list[Any]]] = {}  # cookie -> (scope, family) -> its flows here
        for st in stats:
            c = Cookie.decode(int(st.cookie))
            if c is None:
                continue
            if c.kind is Kind.BASE or (c.kind is Kind.PORTMAP and not c.a):  # (clients' flows idle out)
                if keep is None:
                    keep = _keyed(wanted() if callable(wanted) else wanted) | self.guard.keys  # as of now
                if match_key(st.table_id, st.priority, st.match) not in keep:
                    session.send(render.parser.OFPFlowMod(
                        render.DP, table_id=st.table_id, command=render.ofp.OFPFC_DELETE_STRICT,
                        priority=st.priority, out_port=render.ofp.OFPP_ANY,
                        out_group=render.ofp.OFPG_ANY, match=st.match))
            elif c.kind is Kind.ROUTE:
                kind = (scope_of_match(st.match), family_of_match(st.match))
                routes.setdefault(int(st.cookie), {}).setdefault(kind, []).append(st)
        for cookie, scopes in routes.items():
            self._adopt(session.dpid, cookie, scopes)

    def _adopt(self, dpid: int, cookie: int, scopes: dict[RouteKind, list[Any]]) -> None:
        """A pair's routes found on a switch: keep them if each is still valid (an L4
        route: for its client, read off its flows), else delete the pair's flows there
        and forget the connections of its L4 routes (they re-plug if still allowed)."""
        c = Cookie.decode(cookie)
        assert c is not None
        view = self.ctx.view
        a, b = view.endpoints.get(c.a), view.endpoints.get(c.b)
        found = {kind: _valid(st, a, b, kind[0], view, dpid) for kind, st in scopes.items()} if a and b \
            else {}
        if a is None or b is None or not all(ok for ok, _ in found.values()):
            session = self.ctx.sessions.get(dpid)
            if session is not None:
                session.send(render.flow_delete_cookie(cookie, ALL))
                gone = [LiveRoute(cookie, c.a, c.b, ("", ""), {}, 0.0, scope=scope, client=client,
                                  family=family)
                        for (scope, family), (_, client) in found.items() if scope is not None]
                session.send(*[msg for at, msg in route_flushes(gone, view) if at == dpid])
            return
        for (scope, family), flows in scopes.items():
            route = self.ctx.routes.get(cookie, scope, family)
            counts = dict(route.flows) if route else {}
            counts[dpid] = len(flows)
            client = found[(scope, family)][1]
            self.ctx.routes.plugged(cookie, (a.name, b.name), counts, self.ctx.clock(), scope, client, family)

    # -- port mappings ---------------------------------------------------------------

    def install_portmap(self, pm: Portmap) -> None:
        for dpid, flows in portmap_flows(self.ctx.view, pm).items():
            session = self.ctx.sessions.get(dpid)
            if session is not None:
                session.send(*[render.flow_add(f) for f in flows])
        for session in self.ctx.sessions.values():
            session.send(*[render.flow_add(f) for f in to_portmap(self.ctx.view, pm)])

    def remove_portmap(self, pm: Portmap) -> None:
        """Delete by cookie on every switch: the container may have moved meanwhile.  Its
        clients' flows go too (their cookies name the mapping as well)."""
        for session in self.ctx.sessions.values():
            session.send(render.flow_delete_cookie(portmap_cookie(pm.id), KIND_MASK | EID_B_MASK))

    # -- reactions to model changes ------------------------------------------------

    def addresses_policy_changed(self, tenant: str, outward: bool, inward: bool) -> dict[int, Any]:
        """Rules about addresses outside daolinet changed (or groups, which they name):
        `outward` forgets the tenant's flows to the outside (they re-plug on their next
        packet, judged anew), `inward` re-installs its port mappings' source flows.
        Returns the switches sent deletions."""
        view, touched = self.ctx.view, dict[int, Any]()
        for e in view.endpoints.values() if outward else ():
            net = view.network_of(e) if e.tenant == tenant else None
            host = view.host_of(e) if net is not None and net.external else None
            session = self._session_for(host) if host else None
            if host is not None and session is not None and e.ofport is not None:
                session.send(render.flow_delete_cookie(external_cookie(e.id), ALL))
                touched[host.dpid] = session
        for pm in view.portmaps.values() if inward else ():
            if pm.tenant == tenant:
                for dpid, flows in portmap_flows(view, pm).items():
                    session = self.ctx.sessions.get(dpid)
                    if session is not None:  # the mapping's own flows only: its clients keep theirs
                        session.send(render.flow_delete_cookie(portmap_cookie(pm.id), ALL, Table.INGRESS),
                                     *[render.flow_add(f) for f in flows])
                        touched[dpid] = session
        return touched

    async def host_changed(self, host: Host) -> None:
        session = self._session_for(host)
        if session is not None:
            await self.sync_switch(session)

    def endpoint_plugged(self, e: Endpoint) -> None:
        host = self.ctx.view.host_of(e)
        session = self._session_for(host) if host else None
        if session is not None and e.ofport is not None:
            flows = flows_for_endpoint(e) + dns_flow_for(self.ctx.view, e)  # its network's first, maybe
            session.send(*[render.flow_add(f) for f in flows])

    def endpoint_unplugged(self, e: Endpoint) -> None:
        host = self.ctx.view.host_of(e)
        session = self._session_for(host) if host else None
        if session is not None and e.ofport is not None:
            session.send(*[render.flow_delete_strict(f) for f in flows_for_endpoint(e)])
            # Stale drop flows and its SNAT flows go too.
            session.send(render.flow_delete_cookie(Cookie(Kind.DROP, 0, e.id).value, ALL, Table.EGRESS))
            session.send(render.flow_delete_cookie(external_cookie(e.id), ALL))
            session.send(render.flow_delete_cookie(Cookie(Kind.PORTMAP, e.id).value, KIND_MASK | EID_A_MASK))

    def guard_changed(self) -> None:
        """A host or a controller came, went or moved, or a network did (the guard spares the
        segments networks overlap): every switch gets the new drops, then loses the old ones."""
        was = self._guard
        self._guard = now = Guard(guard_flows(self.ctx.view))
        if was is None:  # nothing decided yet: no switch was synced with a guard of ours
            return
        adds, deletes = guard_change(was.flows, now.flows)
        msgs = [wire.flow_add(f) for f in adds] + [render.flow_delete_strict(f) for f in deletes]
        for session in self.ctx.sessions.values() if msgs else ():
            session.send(*msgs)


def address_rules_touched(view: View, changed: Group | Rule) -> tuple[bool, bool]:
    """Does a group or rule change concern rules about addresses outside daolinet: to
    them (egress of external networks), from them (port mappings' sources)?"""
    if isinstance(changed, Rule):
        return cidr_of(changed.b) is not None, cidr_of(changed.a) is not None
    rules = [r for r in view.rules.values() if r.tenant == changed.tenant]
    return (any(cidr_of(r.b) is not None for r in rules), any(cidr_of(r.a) is not None for r in rules))
