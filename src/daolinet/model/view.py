"""The controller's in-memory view of the model, indexed for the hot path.

Every lookup a PacketIn needs is one dict access: the source endpoint by
(dpid, ofport), the destination by (tenant, ip), an endpoint by PIP; so are
a host's endpoints, an endpoint by name, the endpoints by an alias, "is this address the
underlay's" and "is it infrastructure" (model/index.py).  The view is fed by the store's change feed
(`apply`), never written directly: no change costs more than the endpoints
it touches.

A host's agent keeps a replica of part of it for its resolver (controller/host_view.py):
there a host may come without its underlay (addresses and pools "", dpid 0 but for the
agent's own host) and another host's endpoint without PIPs, MAC or port; such blanks are
not indexed (hosts_by_dpid[0] excepted: a replica reads only its own host's dpid).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from daolinet.model.index import Buckets, Infra, TenantNets, Underlay
from daolinet.model.objects import (
    ControllerRecord,
    Endpoint,
    Group,
    Host,
    Network,
    Portmap,
    Rule,
    Tenant,
    Token,
)

Kind = Literal["tenant", "network", "host", "endpoint", "group", "rule", "token", "portmap", "controller"]
Obj = Tenant | Network | Host | Endpoint | Group | Rule | Token | Portmap | ControllerRecord


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
        self.by_ip: dict[tuple[str, str], Endpoint] = {}  # (tenant, ip or ip6)
        self.by_pip: dict[str, Endpoint] = {}  # by pip and by pip6
        self.gateways: dict[tuple[str, str], Network] = {}  # (tenant, gateway or gateway6)
        self.groups: dict[tuple[str, str], Group] = {}  # (tenant, name)
        self.rules: dict[int, Rule] = {}
        self.tokens: dict[str, Token] = {}  # by hash
        self.portmaps: dict[int, Portmap] = {}
        self.controllers: dict[str, ControllerRecord] = {}  # by id
        # Secondary indexes, private: read them through the queries below.
        self._port_of: dict[int, tuple[int, int]] = {}  # endpoint id -> its by_port key
        self._on_host: Buckets[str] = Buckets()  # host name -> its endpoints
        self._named: Buckets[tuple[str, str]] = Buckets()  # (tenant, name) -> endpoints
        # (tenant, alias) -> endpoints; apart from _named: policy and port mappings name
        # endpoints by name only, never by an alias (aliases are DNS names, decide/names.py)
        self._aliased: Buckets[tuple[str, str]] = Buckets()
        self._tenant_nets = TenantNets()
        self._tenant_nets6 = TenantNets(version=6)  # dual-stack networks by their subnet6
        self._underlay = Underlay()  # hosts' underlay IPs and PIP pools
        self._infra = Infra()  # hosts' underlay IPs, controllers' and etcd members' addresses
        self._mapped: dict[tuple[str, str, int], Portmap] = {}  # (host, protocol, host port)
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
            self._apply_portmap(obj, change.deleted)
        elif isinstance(obj, ControllerRecord):
            self._apply_controller(obj, change.deleted)
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
            for gw in filter(None, (old.gateway, old.gateway6)):
                self.gateways.pop((old.tenant, gw), None)
            self._tenant_nets.remove(old)
            self._tenant_nets6.remove(old)
        if not deleted:
            self.networks[key] = n
            for gw in filter(None, (n.gateway, n.gateway6)):
                self.gateways[(n.tenant, gw)] = n
            self._tenant_nets.add(n)
            self._tenant_nets6.add(n)

    def _apply_host(self, h: Host, deleted: bool) -> None:
        old = self.hosts.pop(h.name, None)
        if old is not None:
            self.hosts_by_dpid.pop(old.dpid, None)
            self._underlay.remove(old)
            self._infra.remove(old)
        if not deleted:
            self.hosts[h.name] = h
            self.hosts_by_dpid[h.dpid] = h
            self._underlay.add(h)
            self._infra.add(h)
        if old is None or deleted or old.dpid != h.dpid:
            for e in self.endpoints_on(h.name):  # re-key their ports under the new dpid
                self._apply_endpoint(e, deleted=False)

    def _apply_portmap(self, pm: Portmap, deleted: bool) -> None:
        old = self.portmaps.get(pm.id)
        if old is not None:
            self._mapped.pop((old.host, old.protocol, old.host_port), None)
        self._put(self.portmaps, pm.id, pm, deleted)
        if not deleted:
            self._mapped[(pm.host, pm.protocol, pm.host_port)] = pm

    def _apply_controller(self, c: ControllerRecord, deleted: bool) -> None:
        old = self.controllers.pop(c.id, None)
        if old is not None:
            self._infra.remove(old)
        if not deleted:
            self.controllers[c.id] = c
            self._infra.add(c)

    def _apply_endpoint(self, e: Endpoint, deleted: bool) -> None:
        old = self.endpoints.pop(e.id, None)
        if old is not None:
            self._unindex(old)
        if not deleted:
            self.endpoints[e.id] = e
            self.by_ip[(e.tenant, e.ip)] = e
            if e.pip:  # "" : another host's endpoint as a host's replica sees it (controller/host_view.py)
                self.by_pip[e.pip] = e
            if e.ip6:
                self.by_ip[(e.tenant, e.ip6)] = e
            if e.pip6:
                self.by_pip[e.pip6] = e
            self._on_host.add(e.host, e)
            self._named.add((e.tenant, e.name), e)
            for alias in e.aliases:
                self._aliased.add((e.tenant, alias), e)
            host = self.hosts.get(e.host)
            if host is not None and e.ofport is not None:
                key = (host.dpid, e.ofport)
                self.by_port[key] = e
                self._port_of[e.id] = key

    def _unindex(self, e: Endpoint) -> None:
        self.by_ip.pop((e.tenant, e.ip), None)
        if e.pip:
            self.by_pip.pop(e.pip, None)
        if e.ip6:
            self.by_ip.pop((e.tenant, e.ip6), None)
        if e.pip6:
            self.by_pip.pop(e.pip6, None)
        self._on_host.remove(e.host, e.id)
        self._named.remove((e.tenant, e.name), e.id)
        for alias in e.aliases:
            self._aliased.remove((e.tenant, alias), e.id)
        key = self._port_of.pop(e.id, None)
        if key is not None:
            found = self.by_port.get(key)
            if found is not None and found.id == e.id:  # not if another endpoint took the port since
                del self.by_port[key]

    # -- queries -----------------------------------------------------------------

    def host_of(self, e: Endpoint) -> Host | None:
        return self.hosts.get(e.host)

    def network_of(self, e: Endpoint) -> Network | None:
        return self.networks.get((e.tenant, e.network))

    def endpoints_on(self, host: str) -> list[Endpoint]:
        return self._on_host.get(host)

    def networks_of(self, tenant: str) -> list[Network]:
        return self._tenant_nets.of(tenant)

    def endpoint_named(self, tenant: str, name: str) -> Endpoint | None:
        return self._named.first((tenant, name))

    def endpoints_aliased(self, tenant: str, alias: str) -> list[Endpoint]:
        """The tenant's endpoints with this alias (stored lower-case: model/names.py), in the
        View's order; never an endpoint by its name."""
        return self._aliased.get((tenant, alias))

    def portmaps_of(self, e: Endpoint) -> list[Portmap]:
        return [p for p in self.portmaps.values() if p.tenant == e.tenant and p.container == e.name]

    def network_containing(self, tenant: str, ip: str) -> Network | None:
        """The tenant's network whose subnet (or subnet6, for an IPv6 address) holds `ip`."""
        if ":" in ip:
            return self._tenant_nets6.containing(tenant, ip)
        return self._tenant_nets.containing(tenant, ip)

    def is_underlay_ip(self, ip: str) -> bool:
        """Some host's underlay address (either family), or an address in some host's PIP pools."""
        return ip in self._underlay

    def is_infra_ip(self, ip: str) -> bool:
        """Some host's underlay address, or a recorded controller's or etcd member's."""
        return ip in self._infra

    def infra_ips(self) -> frozenset[str]:
        """Every address no container may reach (flows/infra.py)."""
        return self._infra.ips()

    def host_at(self, ip: str) -> Host | None:
        """The host whose underlay address `ip` is."""
        return self._infra.host_at(ip)

    def portmap_at(self, host: str, protocol: str, port: int) -> Portmap | None:
        """The mapping of `host`'s protocol/port, if one is published."""
        return self._mapped.get((host, protocol, port))
