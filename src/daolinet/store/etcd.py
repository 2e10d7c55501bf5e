"""The etcd v3 store (through aetcd): the store of several controllers.

`EtcdStore` implements the whole `Store` interface with the SQLite store's
validation, errors, messages and semantics: every write reads one consistent
revision, decides with the same checks (`base`) and the same allocation
(`ipam`), and commits in one etcd transaction, serialised by the store
revision and guarded by claims on every name and address (see `etcd_keys`
for the key layout, `etcd_tx` for the transaction), so two controllers can
never hand out the same endpoint id, logical IP or PIP.  Revisions are the
store's own, one per Change and gap-free, exactly as SQLite's; each log entry
is also an etcd revision, which `watch_changes` follows.

This module: tenants, networks, hosts and endpoints; `etcd_policy`: groups,
rules and tokens; `etcd_portmap`: port mappings; `etcd_controllers`: controller
records; `etcd_base`: the write loop
and the change feed.

Host liveness (`etcd_liveness`): a heartbeat or a registration first keeps
the host's lease alive (key alive/<host>), then writes the host alive.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.model.objects import DEFAULT_TENANT, Endpoint, Host, Network, Tenant
from daolinet.store import ipam
from daolinet.store.base import (
    ENDPOINT_NAME_RE,
    MAX_ENDPOINT_ID,
    MAX_OFPORT,
    check_host,
    check_int,
    check_labels,
    check_name,
    check_network,
)
from daolinet.store.etcd_controllers import EtcdControllers
from daolinet.store.etcd_kv import Reader
from daolinet.store.etcd_liveness import EtcdLiveness
from daolinet.store.etcd_policy import EtcdPolicy
from daolinet.store.etcd_portmap import EtcdPortmaps
from daolinet.store.etcd_tx import EtcdTx


class EtcdStore(EtcdLiveness, EtcdPortmaps, EtcdControllers, EtcdPolicy):
    # -- tenants -------------------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        check_name("tenant", name)

        async def write(tx: EtcdTx) -> Tenant:
            if await self._tenant_or_none(tx.read, name) is not None:
                raise Conflict(f"tenant {name} already exists")
            return self._add_tenant(tx, name)
        return await self._write(write)

    async def delete_tenant(self, name: str) -> Tenant:
        async def write(tx: EtcdTx) -> Tenant:
            tenant = await self._must_tenant(tx.read, name)
            nets = await self._all(tx.read, self._keys.all("network", name), Network)
            if nets:
                raise Conflict(f"tenant {name} still has networks: {self._names([n.name for n in nets])}")
            await self._check_unmapped(tx.read, f"tenant {name}", tenant=name)
            await self._drop_policy_of(tx, name)
            tx.remove(tenant)
            return tenant
        return await self._write(write)

    async def get_tenant(self, name: str) -> Tenant:
        return await self._consistent(lambda r: self._must_tenant(r, name))

    async def list_tenants(self) -> list[Tenant]:
        tenants = await self._consistent(lambda r: self._all(r, self._keys.all("tenant"), Tenant))
        return sorted(tenants, key=lambda t: t.name)

    @staticmethod
    def _add_tenant(tx: EtcdTx, name: str) -> Tenant:
        tenant = Tenant(name=name)
        tx.put(tenant)
        tx.record(tenant)
        return tenant

    # -- networks ------------------------------------------------------------------

    async def create_network(self, tenant: str, name: str, subnet: str, gateway: str | None = None,
                             isolated: bool = False, external: bool = False) -> Network:
        net, gw = check_network(name, subnet, gateway, isolated, external)

        async def write(tx: EtcdTx) -> Network:
            if await self._tenant_or_none(tx.read, tenant) is None:
                if tenant != DEFAULT_TENANT:
                    raise NotFound(f"tenant {tenant} not found")
                self._add_tenant(tx, tenant)
            await self._check_network_free(tx.read, tenant, name, net)
            network = Network(id=await tx.next_id("network"), name=name, tenant=tenant, subnet=str(net),
                              gateway=str(gw), isolated=isolated, external=external)
            tx.put(network)
            tx.record(network)
            return network
        return await self._write(write)

    async def _check_network_free(self, r: Reader, tenant: str, name: str, net: IPv4Network) -> None:
        others = await self._all(r, self._keys.all("network", tenant), Network)
        for other in sorted(others, key=lambda n: n.id):
            if other.name == name:
                raise Conflict(f"network {name} of tenant {tenant} already exists")
            if other.net.overlaps(net):
                raise Conflict(f"subnet {net} overlaps network {other.name} ({other.subnet}) "
                               f"of tenant {tenant}")

    async def get_network(self, tenant: str, name: str) -> Network:
        return await self._consistent(lambda r: self._must_network(r, tenant, name))

    async def list_networks(self, tenant: str | None = None) -> list[Network]:
        networks = await self._consistent(lambda r: self._all(r, self._keys.all("network", tenant), Network))
        return sorted(networks, key=lambda n: (n.tenant, n.name))

    async def delete_network(self, tenant: str, name: str) -> Network:
        async def write(tx: EtcdTx) -> Network:
            network = await self._must_network(tx.read, tenant, name)
            if await tx.read.between(*self._keys.ips(tenant, network.net), keys_only=True):
                users = await self._endpoints(tx.read, tenant=tenant, network=name)
                raise Conflict(f"network {name} of tenant {tenant} is still used by endpoints: "
                               f"{self._names([e.name for e in users])}")
            tx.remove(network)
            return network
        return await self._write(write)

    # -- hosts ---------------------------------------------------------------------

    async def register_host(self, host: Host) -> Host:
        checked = check_host(host)
        if checked.alive:
            await self._keep_alive(checked.name)

        async def write(tx: EtcdTx) -> Host:
            new, old = checked, await self._get(tx.read, self._keys.host(checked.name), Host)
            if old is not None:  # a re-registration does not turn the clock back
                new = dataclasses.replace(new, last_seen=max(new.last_seen, old.last_seen))
            if old == new:
                return new
            await self._check_host_unique(tx.read, new)
            if old is not None and old.pip_pool != new.pip_pool:
                await self._check_pips_fit(tx.read, new)
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def _check_host_unique(self, r: Reader, host: Host) -> None:
        others = await self._all(r, self._keys.all("host"), Host)
        for other in sorted(others, key=lambda h: h.name):
            if other.name == host.name:
                continue
            if other.dpid == host.dpid:
                raise Conflict(f"dpid {host.dpid:#018x} of host {host.name} is already used by "
                               f"host {other.name}")
            if other.underlay_ip == host.underlay_ip:
                raise Conflict(f"underlay_ip {host.underlay_ip} of host {host.name} is already used by "
                               f"host {other.name}")
            if other.pool.overlaps(host.pool):
                raise Conflict(f"pip_pool {host.pip_pool} of host {host.name} overlaps the pool "
                               f"{other.pip_pool} of host {other.name}")

    async def _check_pips_fit(self, r: Reader, host: Host) -> None:
        """A host's PIPs always lie in its pool: a new pool must still hold them."""
        for endpoint in await self._endpoints(r, host=host.name):
            if IPv4Address(endpoint.pip) not in host.pool:
                raise Conflict(f"pip_pool {host.pip_pool} of host {host.name} does not hold the PIP "
                               f"{endpoint.pip} of its endpoint {endpoint.name}")

    async def heartbeat(self, name: str, now: float) -> Host:
        if isinstance(now, bool) or not isinstance(now, int | float):
            raise InvalidInput(f"heartbeat time {now!r} of host {name} must be a number")
        await self._must_host(Reader(self._kv), name)  # no lease for a host that is not there
        await self._keep_alive(name)

        async def write(tx: EtcdTx) -> Host:
            old = await self._must_host(tx.read, name)
            host = dataclasses.replace(old, last_seen=float(now), alive=True)
            tx.put(host, old)
            tx.record(host, heartbeat_of=name)
            return host
        return await self._write(write)

    async def get_host(self, name: str) -> Host:
        return await self._consistent(lambda r: self._must_host(r, name))

    async def list_hosts(self) -> list[Host]:
        hosts = await self._consistent(lambda r: self._all(r, self._keys.all("host"), Host))
        return sorted(hosts, key=lambda h: h.name)

    async def delete_host(self, name: str) -> Host:
        async def write(tx: EtcdTx) -> Host:
            host = await self._must_host(tx.read, name)
            users = await self._endpoints(tx.read, host=name)
            if users:
                raise Conflict(f"host {name} still has endpoints: {self._names([e.name for e in users])}")
            await self._check_unmapped(tx.read, f"host {name}", host=name)
            tx.remove(host)
            return host
        return await self._write(write)

    # -- endpoints -----------------------------------------------------------------

    async def create_endpoint(self, tenant: str, network: str, name: str, host: str,
                              ip: str | None = None, mac: str | None = None,
                              labels: Mapping[str, str] | None = None) -> Endpoint:
        check_name("endpoint", name, ENDPOINT_NAME_RE)
        given_mac = None if mac is None else ipam.check_mac(mac)
        clean_labels = check_labels(labels)

        async def write(tx: EtcdTx) -> Endpoint:
            net = await self._must_network(tx.read, tenant, network)
            on = await self._must_host(tx.read, host)
            if await tx.read.get(self._keys.endpoint_name(tenant, name)) is not None:
                raise Conflict(f"endpoint {name} of tenant {tenant} already exists")
            eid = await self._free_id(tx.read)
            addr = ipam.pick_ip(net.net, IPv4Address(net.gateway), await self._ips_used(tx.read, net, ip), ip,
                                f"{network} of tenant {tenant}")
            endpoint = Endpoint(id=eid, name=name, tenant=tenant, network=network, ip=str(addr),
                                mac=given_mac or ipam.mac_for_id(eid), host=host,
                                pip=str(await self._free_pip(tx.read, on)), labels=clean_labels)
            tx.put(endpoint)
            tx.record(endpoint)
            return endpoint
        return await self._write(write)

    async def _free_id(self, r: Reader) -> int:
        """The smallest endpoint id not in use (ids are dense: they are part of route cookies)."""
        used = await r.prefix(self._keys.all("endpoint"), keys_only=True)
        eid = 1
        for key, _ in used:  # in key order, which is id order
            if int(key.rsplit(b"/", 1)[1]) != eid:
                break
            eid += 1
        if eid > MAX_ENDPOINT_ID:
            raise Conflict(f"no free endpoint ids: all {MAX_ENDPOINT_ID} are in use")
        return eid

    async def _ips_used(self, r: Reader, net: Network, requested: str | None) -> dict[IPv4Address, str]:
        """Taken addresses of `net`; only a requested one that is taken gets its holder's name."""
        claims = await r.between(*self._keys.ips(net.tenant, net.net))
        used = {IPv4Address(int(key.rsplit(b"/", 1)[1], 16)): owner.decode() for key, owner in claims}
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            wanted = IPv4Address(requested.strip())  # type: ignore[union-attr]
            if wanted in used:
                holder = await self._get(r, used[wanted].encode(), Endpoint)
                used[wanted] = f"endpoint {holder.name} (id {holder.id})" if holder else used[wanted]
        return used

    async def _free_pip(self, r: Reader, host: Host) -> IPv4Address:
        claims = await r.between(*self._keys.pips(host.pool), keys_only=True)
        used = {IPv4Address(int(key.rsplit(b"/", 1)[1], 16)) for key, _ in claims}
        own = IPv4Address(host.underlay_ip)  # a pool may include the host's own underlay address
        return ipam.pick_pip(host.pool, used, {own}, host.name)

    async def update_endpoint(self, id: int, *, port: str | None = None,
                              ofport: int | None = None) -> Endpoint:
        if port is not None and not isinstance(port, str):
            raise InvalidInput(f"port {port!r} of endpoint {id} must be an interface name")
        if ofport is not None:
            check_int(f"ofport of endpoint {id}", ofport, 1, MAX_OFPORT)

        async def write(tx: EtcdTx) -> Endpoint:
            old = await self._must_endpoint(tx.read, id)
            new = dataclasses.replace(old, port=old.port if port is None else port,
                                      ofport=old.ofport if ofport is None else ofport)
            if new != old:
                tx.put(new, old)
                tx.record(new)
            return new
        return await self._write(write)

    async def get_endpoint(self, id: int) -> Endpoint:
        return await self._consistent(lambda r: self._must_endpoint(r, id))

    async def find_endpoint(self, tenant: str, name: str) -> Endpoint:
        async def read(r: Reader) -> Endpoint:
            endpoint = await self._owner(r, self._keys.endpoint_name(tenant, name), Endpoint)
            if endpoint is None:
                raise NotFound(f"endpoint {name} of tenant {tenant} not found")
            return endpoint
        return await self._consistent(read)

    async def list_endpoints(self, tenant: str | None = None, host: str | None = None,
                             network: str | None = None) -> list[Endpoint]:
        return await self._consistent(lambda r: self._endpoints(r, tenant, host, network))

    async def _endpoints(self, r: Reader, tenant: str | None = None, host: str | None = None,
                         network: str | None = None) -> list[Endpoint]:
        found = await self._all(r, self._keys.all("endpoint"), Endpoint)
        return sorted((e for e in found if (tenant is None or e.tenant == tenant)
                       and (host is None or e.host == host) and (network is None or e.network == network)),
                      key=lambda e: e.id)

    async def delete_endpoint(self, id: int) -> Endpoint:
        async def write(tx: EtcdTx) -> Endpoint:
            endpoint = await self._must_endpoint(tx.read, id)
            tx.remove(endpoint)
            return endpoint
        return await self._write(write)

    async def move_endpoint(self, id: int, host: str) -> Endpoint:
        async def write(tx: EtcdTx) -> Endpoint:
            old = await self._must_endpoint(tx.read, id)
            to = await self._must_host(tx.read, host)
            if old.host == host:
                return old
            new = dataclasses.replace(old, host=host, pip=str(await self._free_pip(tx.read, to)), port="",
                                      ofport=None)
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def _must_endpoint(self, r: Reader, id: int) -> Endpoint:
        endpoint = await self._get(r, self._keys.endpoint(id), Endpoint)
        if endpoint is None:
            raise NotFound(f"endpoint {id} not found")
        return endpoint
