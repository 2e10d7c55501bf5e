"""The controller's in-memory view of the model, indexed for the hot path.

Every lookup a PacketIn needs is one dict access: the source endpoint by
(dpid, ofport), the destination by (tenant, ip), an endpoint by PIP.  The
view is fed by the store's change feed (`apply`), never written directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from daolinet.model.objects import Endpoint, Group, Host, Network, Portmap, Rule, Tenant, Token

Kind = Literal["tenant", "network", "host", "endpoint", "group", "rule", "token", "portmap"]
Obj = Tenant | Network | Host | Endpoint | Group | Rule | Token | Portmap


@dataclass(frozen=True)
class Change:
    """One entry of the store's change feed: `obj` is the new value, or the
    old one when `deleted`."""

    rev: int
    obj: Obj
    deleted: bool = False


class View:
    def __init__(self) -> None:
        self.rev = 0
        self.tenants: dict[str, Tenant] = {}
        self.networks: dict[tuple[str, str], Network] = {}  # (tenant, name)
        self.hosts: dict[str, Host] = {}
        self.hosts_by_dpid: dict[int, Host] = {}
        self.endpoints: dict[int, Endpoint] = {}
        self.by_port: dict[tuple[int, int], Endpoint] = {}  # (dpid, ofport)
        self.by_ip: dict[tuple[str, str], Endpoint] = {}  # (tenant, ip)
        self.by_pip: dict[str, Endpoint] = {}
        self.gateways: dict[tuple[str, str], Network] = {}  # (tenant, gateway ip)
        self.groups: dict[tuple[str, str], Group] = {}  # (tenant, name)
        self.rules: dict[int, Rule] = {}
        self.tokens: dict[str, Token] = {}  # by hash
        self.portmaps: dict[int, Portmap] = {}
        # Bumped by every change that can change a policy decision.
        self.policy_rev = 0

    # -- feeding ---------------------------------------------------------------

    def apply(self, change: Change) -> None:
        self.rev = max(self.rev, change.rev)
        obj = change.obj
        if isinstance(obj, Group | Rule | Endpoint | Network):
            self.policy_rev += 1
        if isinstance(obj, Tenant):
            self._apply_tenant(obj, change.deleted)
        elif isinstance(obj, Network):
            self._apply_network(obj, change.deleted)
        elif isinstance(obj, Host):
            self._apply_host(obj, change.deleted)
        elif isinstance(obj, Endpoint):
            self._apply_endpoint(obj, change.deleted)
        elif isinstance(obj, Group):
            self._put(self.groups, (obj.tenant, obj.name), obj, change.deleted)
        elif isinstance(obj, Rule):
            self._put(self.rules, obj.id, obj, change.deleted)
        elif isinstance(obj, Portmap):
            self._put(self.portmaps, obj.id, obj, change.deleted)
        else:
            self._put(self.tokens, obj.hash, obj, change.deleted)

    @staticmethod
    def _put(table: dict[Any, Any], key: Any, obj: Obj, deleted: bool) -> None:
        if deleted:
            table.pop(key, None)
        else:
            table[key] = obj

    def load(self, objs: Iterable[Obj], rev: int = 0) -> None:
        for obj in objs:
            self.apply(Change(rev=rev, obj=obj))

    def _apply_tenant(self, t: Tenant, deleted: bool) -> None:
        if deleted:
            self.tenants.pop(t.name, None)
        else:
            self.tenants[t.name] = t

    def _apply_network(self, n: Network, deleted: bool) -> None:
        key = (n.tenant, n.name)
        old = self.networks.pop(key, None)
        if old is not None:
            self.gateways.pop((old.tenant, old.gateway), None)
        if not deleted:
            self.networks[key] = n
            self.gateways[(n.tenant, n.gateway)] = n

    def _apply_host(self, h: Host, deleted: bool) -> None:
        old = self.hosts.pop(h.name, None)
        if old is not None:
            self.hosts_by_dpid.pop(old.dpid, None)
        if not deleted:
            self.hosts[h.name] = h
            self.hosts_by_dpid[h.dpid] = h
        if old is None or deleted or old.dpid != h.dpid:
            for e in self.endpoints_on(h.name):  # re-key their ports under the new dpid
                self._apply_endpoint(e, deleted=False)

    def _apply_endpoint(self, e: Endpoint, deleted: bool) -> None:
        old = self.endpoints.pop(e.id, None)
        if old is not None:
            self._unindex(old)
        if not deleted:
            self.endpoints[e.id] = e
            self.by_ip[(e.tenant, e.ip)] = e
            self.by_pip[e.pip] = e
            host = self.hosts.get(e.host)
            if host is not None and e.ofport is not None:
                self.by_port[(host.dpid, e.ofport)] = e

    def _unindex(self, e: Endpoint) -> None:
        self.by_ip.pop((e.tenant, e.ip), None)
        self.by_pip.pop(e.pip, None)
        for key, found in list(self.by_port.items()):
            if found.id == e.id:
                del self.by_port[key]

    # -- queries -----------------------------------------------------------------

    def host_of(self, e: Endpoint) -> Host | None:
        return self.hosts.get(e.host)

    def network_of(self, e: Endpoint) -> Network | None:
        return self.networks.get((e.tenant, e.network))

    def endpoints_on(self, host: str) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.host == host]

    def networks_of(self, tenant: str) -> list[Network]:
        return [n for n in self.networks.values() if n.tenant == tenant]

    def endpoint_named(self, tenant: str, name: str) -> Endpoint | None:
        for e in self.endpoints.values():
            if e.tenant == tenant and e.name == name:
                return e
        return None

    def portmaps_of(self, e: Endpoint) -> list[Portmap]:
        return [p for p in self.portmaps.values() if p.tenant == e.tenant and p.container == e.name]

    def network_containing(self, tenant: str, ip: str) -> Network | None:
        addr = ipaddress.IPv4Address(ip)
        for n in self.networks_of(tenant):
            if addr in n.net:
                return n
        return None
