"""The SQLite store's port mappings (DaoliNet's "firewall" rules): host H's
underlay IP:port -> a container's port, wherever the container runs.

A mapping names its container (endpoint name in the tenant) and its host; a
(host, protocol, host port) is taken by at most one mapping.
"""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from contextlib import AbstractContextManager

from daolinet.errors import Conflict, NotFound
from daolinet.model.objects import Portmap, Tenant
from daolinet.store.base import Store, check_portmap
from daolinet.store.sqlite_schema import Tx


def portmap_of(row: sqlite3.Row) -> Portmap:
    return Portmap(**dict(row))


class SqlitePortmaps(Store):
    @abstractmethod
    def _write(self) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]: ...

    @abstractmethod
    def _one(self, sql: str, *args: object) -> sqlite3.Row | None: ...

    @abstractmethod
    def _must_tenant(self, name: str) -> Tenant: ...

    @staticmethod
    def _portmap_objects(db: sqlite3.Connection) -> list[Portmap]:
        return [portmap_of(r) for r in db.execute("SELECT * FROM portmaps ORDER BY id")]

    async def create_portmap(self, tenant: str, name: str, container: str, protocol: str,
                             host_port: int, container_port: int, host: str | None = None) -> Portmap:
        check_portmap(name, protocol, host_port, container_port)
        e = await self.find_endpoint(tenant, container)
        host = host or e.host
        await self.get_host(host)
        with self._write() as tx:
            if self._one("SELECT id FROM portmaps WHERE tenant = ? AND name = ?", tenant, name):
                raise Conflict(f"port mapping {name} of tenant {tenant} already exists")
            taken = self._one("SELECT tenant, name FROM portmaps WHERE host = ? AND protocol = ? "
                              "AND host_port = ?", host, protocol, host_port)
            if taken is not None:
                raise Conflict(f"{protocol} port {host_port} of host {host} is already mapped "
                               f"(port mapping {taken['name']})")
            row = tx.db.execute(
                "INSERT INTO portmaps (tenant, name, container, host, protocol, host_port, container_port) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (tenant, name, container, host, protocol, host_port, container_port)).fetchone()
            pm = Portmap(row[0], tenant, name, container, host, protocol, host_port, container_port)
            tx.record(pm)
            return pm

    async def get_portmap(self, tenant: str, name: str) -> Portmap:
        row = self._one("SELECT * FROM portmaps WHERE tenant = ? AND name = ?", tenant, name)
        if row is None:
            raise NotFound(f"port mapping {name} of tenant {tenant} not found")
        return portmap_of(row)

    async def list_portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        sql, args = "SELECT * FROM portmaps WHERE 1", list[object]()
        if tenant is not None:
            sql, args = sql + " AND tenant = ?", [*args, tenant]
        if host is not None:
            sql, args = sql + " AND host = ?", [*args, host]
        return [portmap_of(r) for r in self._rows(sql + " ORDER BY id", *args)]

    async def delete_portmap(self, tenant: str, name: str) -> Portmap:
        with self._write() as tx:
            pm = await self.get_portmap(tenant, name)
            tx.remove(pm)
            return pm
