"""What a host's agent replicates of the model, for its resolver: the host view feed
(controller/api/host_view_routes.py streams it; agent/resolver_view.py keeps the replica).

The agent answers its containers' DNS questions itself with `decide.names.resolve`, which
reads tenants, networks, endpoints, groups, rules and whether a host is alive.  So host H's
view holds, for the tenants *in scope* - those with at least one endpoint on H:

- the Tenant, its Networks, Groups and Rules, and its Endpoints on every host;
- every Host, stripped to its name, `alive` and (H itself only) its dpid, so that H's agent
  finds the asker by (dpid, ofport) in `View.by_port`;
- never a token, a port mapping or a controller record.

Decided: another host's underlay is not a host credential's business.  A Host is sent as a
Host with its addresses, MACs and pools blanked (dpid 0, uplink 1, last_seen 0): the View
takes it as is (model/view.py skips blank addresses), no second type to keep in step.  An
endpoint on another host is sent without its PIPs (they tell that host's pool), MAC and
port, with its labels and aliases (policy and names need them); its own host's endpoints
whole (the agent plugged them).  Hosts go out whole-cluster,
not only those holding an in-scope endpoint: names and liveness only, and a move onto a
host needs no special case.  Heartbeats change nothing that is sent, so they send nothing.

Each subscriber queues its host's changes in order, filtered and stripped when they happen
(policy changes must arrive in order and promptly: nothing is coalesced).  When the set of
tenants in scope changes (a tenant's first endpoint lands on H, its last one leaves), when
the queue passes MAX_PENDING, or when the controller reloaded its view, the subscriber is
marked for a fresh snapshot instead (simplest correct; a slow agent never makes the
controller buffer without bound).  Cost per change with no subscriber: nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from daolinet.model import Endpoint, Group, Host, Network, Rule, Tenant, View
from daolinet.model.view import Change, Obj
from daolinet.store.codec import kind_of, obj_to_json

MAX_PENDING = 10_000  # changes a subscriber may hold before it gets a snapshot instead


def strip_host(h: Host, me: str) -> Host:
    """`h` as host `me`'s replica sees it: name and liveness (and its own dpid)."""
    return Host(h.name, h.dpid if h.name == me else 0, underlay_ip="", underlay_mac="", pip_pool="",
                alive=h.alive)


def strip_endpoint(e: Endpoint, me: str) -> Endpoint:
    """`e` as host `me`'s replica sees it: whole on `me`, without PIPs, MAC and port elsewhere."""
    if e.host == me:
        return e
    return dataclasses.replace(e, mac="", pip="", pip6="", port="", ofport=None)


def tenant_of(obj: Obj) -> str | None:
    """The tenant an object in a host's view belongs to; None: never in any host's view
    (tokens, port mappings, controller records) or in every one (hosts)."""
    if isinstance(obj, Tenant):
        return obj.name
    if isinstance(obj, Network | Endpoint | Group | Rule):
        return obj.tenant
    return None


@dataclass(eq=False)
class Subscriber:
    """One open stream of host `host`'s view."""

    host: str
    pending: list[Change] = field(default_factory=list)
    resync: bool = False  # a snapshot is due instead of `pending`
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    view: View | None = None  # the view the last snapshot was taken from
    _on_host: dict[int, str] = field(default_factory=dict)  # endpoints on `host`: id -> tenant
    _scope: Counter[str] = field(default_factory=Counter)  # tenants in scope: endpoints on `host`
    _hosts_sent: dict[str, Host] = field(default_factory=dict)  # by name, as last sent

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(self._scope)

    def mark_resync(self) -> None:
        self.pending.clear()
        self.resync = True
        self.wake.set()

    def take(self) -> tuple[bool, list[Change]]:
        """(whether a snapshot is due, the changes queued since the last take, in order)."""
        resync, items = self.resync, self.pending
        self.pending, self.resync = [], False
        self.wake.clear()
        return resync, items

    def snapshot(self, view: View) -> dict[str, Any]:
        """The host's view now, as the stream's `snapshot` event; restarts the queue from here."""
        self.pending, self.resync, self.view = [], False, view
        self.wake.clear()
        mine = view.endpoints_on(self.host)
        self._on_host = {e.id: e.tenant for e in mine}
        self._scope = Counter(self._on_host.values())
        hosts = [strip_host(h, self.host) for h in view.hosts.values()]
        self._hosts_sent = {h.name: h for h in hosts}
        scope = self._scope
        objs: list[Obj] = [t for t in view.tenants.values() if t.name in scope]
        objs += [n for n in view.networks.values() if n.tenant in scope]
        objs += hosts
        objs += [strip_endpoint(e, self.host) for e in view.endpoints.values() if e.tenant in scope]
        objs += [g for g in view.groups.values() if g.tenant in scope]
        objs += [r for r in view.rules.values() if r.tenant in scope]
        return {"host": self.host, "rev": view.rev,
                "objects": [{"kind": kind_of(o), "obj": obj_to_json(o)} for o in objs]}

    def on_change(self, change: Change) -> None:
        if self.resync:
            return  # the snapshot to come is taken from the view, which has this change
        obj = change.obj
        if isinstance(obj, Endpoint) and self._moved_scope(obj, change.deleted):
            self.mark_resync()
            return
        out = self._filtered(change)
        if out is None:
            return
        if len(self.pending) >= MAX_PENDING:
            self.mark_resync()
            return
        self.pending.append(out)
        self.wake.set()

    def _moved_scope(self, e: Endpoint, deleted: bool) -> bool:
        """Track the endpoints on the host; True when the set of tenants in scope changed."""
        before = e.tenant in self._scope  # only e's tenant's count can change
        if self._on_host.pop(e.id, None) is not None:
            self._scope[e.tenant] -= 1
            if self._scope[e.tenant] <= 0:
                del self._scope[e.tenant]
        if not deleted and e.host == self.host:
            self._on_host[e.id] = e.tenant
            self._scope[e.tenant] += 1
        return (e.tenant in self._scope) != before

    def _filtered(self, change: Change) -> Change | None:
        """`change` as this host's view sees it, or None if it is not in it."""
        obj = change.obj
        if isinstance(obj, Host):
            shown = strip_host(obj, self.host)
            if change.deleted:
                self._hosts_sent.pop(obj.name, None)
            elif self._hosts_sent.get(obj.name) == shown:
                return None  # a heartbeat: nothing the replica holds changed
            else:
                self._hosts_sent[obj.name] = shown
            return Change(change.rev, shown, change.deleted)
        tenant = tenant_of(obj)
        if tenant is None or tenant not in self._scope:
            return None
        if isinstance(obj, Endpoint):
            return Change(change.rev, strip_endpoint(obj, self.host), change.deleted)
        return change


class HostViewFeed:
    """Fed by Controller.listeners; read by the host view streams."""

    def __init__(self, view: Callable[[], View]) -> None:
        self.view = view  # the controller's current view (replaced on a reload)
        self._subs: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subs)

    @contextmanager
    def subscribe(self, host: str) -> Iterator[Subscriber]:
        sub = Subscriber(host)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def reloaded(self, sub: Subscriber) -> bool:
        """The controller replaced its view since `sub`'s snapshot (its store's log was pruned
        past it): the changes in between were never fed, a snapshot is due."""
        return sub.view is not None and sub.view is not self.view()

    def model_changed(self, change: Change) -> None:
        for sub in self._subs:
            if self.reloaded(sub):
                sub.mark_resync()
            else:
                sub.on_change(change)
