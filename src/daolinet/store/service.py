"""The `Store` interface, implemented once over any backend (`backend.Backend`).

Every write checks its input first (`checks`), then, in one transaction of the
backend, reads what it decides from, decides with `rules` (which raise the
error a user sees) and allocates with `ipam`, and writes; subscribers hear of
its Changes after the commit.  The backends (`sqlite`, `etcd`) keep only
reading, writing and transactions, so both give the same answers, errors and
Changes for the same calls.

This module: the change feed, tenants, networks, hosts and their liveness,
endpoints; `service_policy`: groups, rules, tokens, port mappings, controllers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from daolinet.model.names import check_aliases
from daolinet.model.objects import DEFAULT_TENANT, Endpoint, Host, Network, Tenant
from daolinet.model.view import Change, Obj
from daolinet.store import ipam, lookups, rules
from daolinet.store.backend import Reads, Writes
from daolinet.store.checks import (
    ENDPOINT_NAME_RE,
    MAX_OFPORT,
    check_host,
    check_int,
    check_labels,
    check_name,
    check_network,
    check_network6,
)
from daolinet.store.service_policy import PolicyService


class StoreService(PolicyService):
    # -- the change feed -----------------------------------------------------------

    async def snapshot(self) -> tuple[int, list[Obj]]:
        return await self._b.snapshot()

    async def changes_since(self, rev: int) -> list[Change]:
        check_int("rev", rev, 0, 2**63 - 1)
        pruned, now, changes = await self._b.log_after(rev)
        rules.check_log_reach(rev, pruned, now, self._b.name)
        return changes

    async def import_objects(self, objs: Sequence[Obj]) -> None:
        async def write(tx: Writes) -> None:
            for obj in objs:
                tx.put(obj)
                tx.record(obj)
            for kind, top in rules.top_ids(objs).items():
                await tx.raise_seq(kind, top)
        await self._write(write)

    async def close(self) -> None:
        await self._b.close()

    # -- tenants -------------------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        check_name("tenant", name)

        async def write(tx: Writes) -> Tenant:
            rules.check_tenant_free(name, await tx.tenant(name))
            return self._add_tenant(tx, name)
        return await self._write(write)

    async def delete_tenant(self, name: str) -> Tenant:
        async def write(tx: Writes) -> Tenant:
            tenant = await lookups.must_tenant(tx, name)
            rules.check_tenant_empty(name, await tx.networks(name))
            rules.check_unmapped(self._b.name, f"tenant {name}", await tx.portmaps(tenant=name))
            await self._drop_policy_of(tx, name)
            tx.remove(tenant)
            return tenant
        return await self._write(write)

    async def get_tenant(self, name: str) -> Tenant:
        return await self._read(lambda r: lookups.must_tenant(r, name))

    async def list_tenants(self) -> list[Tenant]:
        return await self._read(lambda r: r.tenants())

    @staticmethod
    def _add_tenant(tx: Writes, name: str) -> Tenant:
        tenant = Tenant(name=name)
        tx.put(tenant)
        tx.record(tenant)
        return tenant

    # -- networks ------------------------------------------------------------------

    async def create_network(self, tenant: str, name: str, subnet: str, gateway: str | None = None,
                             isolated: bool = False, external: bool = False, *,
                             subnet6: str | None = None, gateway6: str | None = None) -> Network:
        net, gw = check_network(name, subnet, gateway, isolated, external)
        net6, gw6 = check_network6(name, subnet6, gateway6)

        async def write(tx: Writes) -> Network:
            if await tx.tenant(tenant) is None:
                if tenant != DEFAULT_TENANT:
                    await lookups.must_tenant(tx, tenant)
                self._add_tenant(tx, tenant)
            rules.check_network_free(tenant, name, net, await tx.networks(tenant), net6)
            network = Network(id=await tx.next_id("network"), name=name, tenant=tenant, subnet=str(net),
                              gateway=str(gw), isolated=isolated, external=external,
                              subnet6="" if net6 is None else str(net6),
                              gateway6="" if gw6 is None else str(gw6))
            tx.put(network)
            tx.record(network)
            return network
        return await self._write(write)

    async def get_network(self, tenant: str, name: str) -> Network:
        return await self._read(lambda r: lookups.must_network(r, tenant, name))

    async def list_networks(self, tenant: str | None = None) -> list[Network]:
        return await self._read(lambda r: r.networks(tenant))

    async def delete_network(self, tenant: str, name: str) -> Network:
        async def write(tx: Writes) -> Network:
            network = await lookups.must_network(tx, tenant, name)
            rules.check_network_unused(network, await tx.endpoints(tenant=tenant, network=name))
            tx.remove(network)
            return network
        return await self._write(write)

    # -- hosts ---------------------------------------------------------------------

    async def register_host(self, host: Host) -> Host:
        checked = check_host(host)
        if checked.alive:
            await self._b.keep_alive(checked.name, self.host_ttl)

        async def write(tx: Writes) -> Host:
            old = await tx.host(checked.name)
            new = rules.registration(checked, old)
            if old == new:
                return new
            rules.check_host_unique(new, await tx.hosts())
            if old is not None and (old.pip_pool, old.pip_pool6) != (new.pip_pool, new.pip_pool6):
                rules.check_pips_fit(new, await tx.endpoints(host=new.name))
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def heartbeat(self, name: str, now: float) -> Host:
        at = rules.check_heartbeat_time(name, now)
        await self._read(lambda r: lookups.must_host(r, name))  # no lease for a host that is not there
        await self._b.keep_alive(name, self.host_ttl)

        async def write(tx: Writes) -> Host:
            old = await lookups.must_host(tx, name)
            host = dataclasses.replace(old, last_seen=at, alive=True)
            tx.put(host, old)
            tx.record(host, heartbeat_of=name)
            return host
        return await self._write(write)

    async def get_host(self, name: str) -> Host:
        return await self._read(lambda r: lookups.must_host(r, name))

    async def list_hosts(self) -> list[Host]:
        return await self._read(lambda r: r.hosts())

    async def delete_host(self, name: str) -> Host:
        async def write(tx: Writes) -> Host:
            host = await lookups.must_host(tx, name)
            rules.check_host_unused(name, await tx.endpoints(host=name))
            rules.check_unmapped(self._b.name, f"host {name}", await tx.portmaps(host=name))
            tx.remove(host)
            return host
        return await self._write(write)

    async def lapsed_hosts(self, now: float) -> list[str]:
        async def read(r: Reads) -> list[str]:
            return await r.lapsed(await r.hosts(), now, self.host_ttl)
        return await self._read(read)

    async def mark_host_down(self, name: str, now: float) -> Host | None:
        async def write(tx: Writes) -> Host | None:
            host = await tx.host(name)
            if host is None or name not in await tx.lapsed([host], now, self.host_ttl):
                return None
            down = dataclasses.replace(host, alive=False)
            tx.put(down, host)
            tx.record(down)
            return down
        return await self._write(write)

    # -- endpoints -----------------------------------------------------------------

    async def create_endpoint(self, tenant: str, network: str, name: str, host: str,
                              ip: str | None = None, mac: str | None = None,
                              labels: Mapping[str, str] | None = None, *, ip6: str | None = None,
                              aliases: Sequence[str] = ()) -> Endpoint:
        check_name("endpoint", name, ENDPOINT_NAME_RE)
        given_mac = None if mac is None else ipam.check_mac(mac)
        clean_labels = check_labels(labels)
        clean_aliases = check_aliases(aliases, f"endpoint {name}")

        async def write(tx: Writes) -> Endpoint:
            net = await lookups.must_network(tx, tenant, network)
            on = await lookups.must_host(tx, host)
            rules.check_endpoint_free(tenant, name, await tx.endpoint_named(tenant, name))
            eid = rules.check_endpoint_id(await tx.free_endpoint_id())
            addr = rules.pick_ip(net, await tx.ips_used(net, ip), ip)
            pip = rules.free_pip(on, await tx.pips_used(on))
            addr6 = pip6 = None
            if rules.check_ip6_wanted(net, ip6):  # dual-stack: both families in this transaction
                addr6 = rules.pick_ip6(net, await tx.ips6_used(net, ip6), ip6)
                pip6 = rules.free_pip6(on, net, await tx.pips6_used(on))
            endpoint = rules.new_endpoint(eid, name, net, on, addr, pip, given_mac, clean_labels, addr6, pip6)
            endpoint = dataclasses.replace(endpoint, aliases=clean_aliases)
            tx.put(endpoint)
            tx.record(endpoint)
            return endpoint
        return await self._write(write)

    async def update_endpoint(self, id: int, *, port: str | None = None,
                              ofport: int | None = None, aliases: Sequence[str] | None = None) -> Endpoint:
        rules.check_port_name(id, port)
        if ofport is not None:
            check_int(f"ofport of endpoint {id}", ofport, 1, MAX_OFPORT)
        clean_aliases = None if aliases is None else check_aliases(aliases, f"endpoint {id}")

        async def write(tx: Writes) -> Endpoint:
            old = await lookups.must_endpoint(tx, id)
            new = rules.updated_endpoint(old, port, ofport, clean_aliases)
            if new != old:
                tx.put(new, old)
                tx.record(new)
            return new
        return await self._write(write)

    async def get_endpoint(self, id: int) -> Endpoint:
        return await self._read(lambda r: lookups.must_endpoint(r, id))

    async def find_endpoint(self, tenant: str, name: str) -> Endpoint:
        return await self._read(lambda r: lookups.must_endpoint_named(r, tenant, name))

    async def list_endpoints(self, tenant: str | None = None, host: str | None = None,
                             network: str | None = None) -> list[Endpoint]:
        return await self._read(lambda r: r.endpoints(tenant, host, network))

    async def delete_endpoint(self, id: int) -> Endpoint:
        async def write(tx: Writes) -> Endpoint:
            endpoint = await lookups.must_endpoint(tx, id)
            tx.remove(endpoint)
            return endpoint
        return await self._write(write)

    async def move_endpoint(self, id: int, host: str, port: str = "", ofport: int | None = None) -> Endpoint:
        async def write(tx: Writes) -> Endpoint:
            old = await lookups.must_endpoint(tx, id)
            to = await lookups.must_host(tx, host)
            if old.host == host:
                return old
            pip6 = None
            if old.ip6:
                pip6 = rules.free_pip6(to, await lookups.must_network(tx, old.tenant, old.network),
                                       await tx.pips6_used(to))
            new = rules.moved_endpoint(old, to, rules.free_pip(to, await tx.pips_used(to)), pip6)
            if ofport is not None:
                new = dataclasses.replace(new, port=port, ofport=ofport)
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)
