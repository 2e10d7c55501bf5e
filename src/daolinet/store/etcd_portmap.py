"""The etcd store's port mappings: host H's underlay IP:port -> a container's port.

`EtcdPortmaps` implements them as `SqlitePortmaps` does: a mapping names its
container (an endpoint name in the tenant) and its host (the container's host
unless given); a (host, protocol, host port) is held by at most one mapping,
through the claim `claim/hostport/<host>/<protocol>/<port>`.  Ids come from
`meta/seq/portmap` and are never reused.  Hosts and tenants that mappings name
are kept (SQLite's foreign keys), with a Conflict naming the mappings.
"""

from __future__ import annotations

from daolinet.errors import Conflict, NotFound
from daolinet.model.objects import Endpoint, Portmap
from daolinet.store.base import check_portmap
from daolinet.store.etcd_base import EtcdBase
from daolinet.store.etcd_kv import Reader
from daolinet.store.etcd_tx import EtcdTx


class EtcdPortmaps(EtcdBase):
    async def create_portmap(self, tenant: str, name: str, container: str, protocol: str,
                             host_port: int, container_port: int, host: str | None = None) -> Portmap:
        check_portmap(name, protocol, host_port, container_port)

        async def write(tx: EtcdTx) -> Portmap:
            endpoint = await self._owner(tx.read, self._keys.endpoint_name(tenant, container), Endpoint)
            if endpoint is None:
                raise NotFound(f"endpoint {container} of tenant {tenant} not found")
            on = host or endpoint.host
            await self._must_host(tx.read, on)
            if await tx.read.get(self._keys.portmap(tenant, name)) is not None:
                raise Conflict(f"port mapping {name} of tenant {tenant} already exists")
            taken = await self._owner(tx.read, self._keys.host_port(on, protocol, host_port), Portmap)
            if taken is not None:
                raise Conflict(f"{protocol} port {host_port} of host {on} is already mapped "
                               f"(port mapping {taken.name})")
            portmap = Portmap(await tx.next_id("portmap"), tenant, name, container, on, protocol, host_port,
                              container_port)
            tx.put(portmap)
            tx.record(portmap)
            return portmap
        return await self._write(write)

    async def get_portmap(self, tenant: str, name: str) -> Portmap:
        return await self._consistent(lambda r: self._must_portmap(r, tenant, name))

    async def list_portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        return await self._consistent(lambda r: self._portmaps(r, tenant, host))

    async def delete_portmap(self, tenant: str, name: str) -> Portmap:
        async def write(tx: EtcdTx) -> Portmap:
            portmap = await self._must_portmap(tx.read, tenant, name)
            tx.remove(portmap)
            return portmap
        return await self._write(write)

    async def _must_portmap(self, r: Reader, tenant: str, name: str) -> Portmap:
        portmap = await self._get(r, self._keys.portmap(tenant, name), Portmap)
        if portmap is None:
            raise NotFound(f"port mapping {name} of tenant {tenant} not found")
        return portmap

    async def _portmaps(self, r: Reader, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        found = await self._all(r, self._keys.all("portmap", tenant), Portmap)
        return sorted((p for p in found if host is None or p.host == host), key=lambda p: p.id)

    async def _check_unmapped(self, r: Reader, what: str, tenant: str | None = None,
                              host: str | None = None) -> None:
        """Refuse to delete a tenant or host that port mappings still name."""
        users = await self._portmaps(r, tenant, host)
        if users:
            raise Conflict(f"store {self.url} refused the change: {what} still has port mappings: "
                           f"{self._names([p.name for p in users])}")
