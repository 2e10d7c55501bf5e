"""The embedded store: one SQLite file (WAL), the default for a single controller.

Every mutation is one `BEGIN IMMEDIATE` transaction: it takes the file's write
lock before reading what it allocates from, so two processes sharing the file
never hand out the same id, IP or PIP; UNIQUE constraints are the last line of
defence.  The transaction also bumps the persisted revision and appends to the
change log; subscribers hear about it only after COMMIT.

Statements are short and run on the caller's thread (the event loop): waiting
for another process' write lock is bounded by `busy_timeout`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network

from daolinet.errors import Conflict, InvalidInput, NotFound, SystemFailure
from daolinet.model.objects import DEFAULT_TENANT, Endpoint, Host, Network, Tenant
from daolinet.model.view import Change, Obj
from daolinet.store import ipam
from daolinet.store.base import (
    ENDPOINT_NAME_RE,
    KEEP_CHANGES,
    MAX_ENDPOINT_ID,
    MAX_OFPORT,
    ChangesPruned,
    check_host,
    check_int,
    check_labels,
    check_name,
    check_network,
    obj_from_json,
)
from daolinet.store.sqlite_controllers import SqliteControllers
from daolinet.store.sqlite_liveness import SqliteLiveness
from daolinet.store.sqlite_policy import SqlitePolicy
from daolinet.store.sqlite_portmap import SqlitePortmaps
from daolinet.store.sqlite_schema import (
    FREE_ID,
    SCHEMA,
    Tx,
    endpoint_of,
    host_of,
    network_of,
    tenant_of,
    upgrade,
)


class SqliteStore(SqliteLiveness, SqlitePortmaps, SqliteControllers, SqlitePolicy):
    PRUNE_EVERY = 64  # revisions between trims of the change log

    def __init__(self, db: sqlite3.Connection, path: str, keep_changes: int) -> None:
        super().__init__()
        self._db = db
        self._path = path
        self._keep = keep_changes
        self._lock = threading.RLock()  # one transaction at a time on this connection

    @classmethod
    def open(cls, path: str, *, keep_changes: int = KEEP_CHANGES, busy_timeout: float = 10.0) -> SqliteStore:
        """Open (creating if needed) the store in file `path`, or ":memory:"."""
        check_int("keep_changes", keep_changes, 1, 2**31)
        try:
            db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise SystemFailure(f"cannot open store {path}: {e}") from e
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA foreign_keys = ON")
            db.executescript(SCHEMA)
            upgrade(db)
        except sqlite3.Error as e:
            db.close()
            raise SystemFailure(f"cannot open store {path}: {e}") from e
        return cls(db, path, keep_changes)

    async def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as e:
            raise Conflict(f"store {self._path} refused the change: {e}") from e
        except sqlite3.Error as e:
            raise SystemFailure(f"store {self._path}: {e}") from e

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        """A write transaction: all of it commits, or none of it and no Change is emitted."""
        with self._lock:
            with self._translated():
                self._db.execute("BEGIN IMMEDIATE")
                tx = Tx(self._db)
                try:
                    yield tx
                    if any(c.rev % self.PRUNE_EVERY == 0 for c in tx.changes):
                        tx.prune(self._keep)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            self._notify(tx.changes)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent view of the file for several queries."""
        with self._lock, self._translated():
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock, self._translated():
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, *args: object) -> sqlite3.Row | None:
        rows = self._rows(sql, *args)
        return rows[0] if rows else None

    # -- change feed ---------------------------------------------------------------

    async def snapshot(self) -> tuple[int, list[Obj]]:
        with self._read() as db:
            rev = db.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0]
            objs: list[Obj] = [tenant_of(r) for r in db.execute("SELECT * FROM tenants ORDER BY name")]
            objs += [network_of(r) for r in db.execute("SELECT * FROM networks ORDER BY id")]
            objs += [host_of(r) for r in db.execute("SELECT * FROM hosts ORDER BY name")]
            objs += [endpoint_of(r) for r in db.execute("SELECT * FROM endpoints ORDER BY id")]
            objs += self._policy_objects(db)
            objs += self._portmap_objects(db)
            objs += self._controller_objects(db)
        return rev, objs

    async def changes_since(self, rev: int) -> list[Change]:
        check_int("rev", rev, 0, 2**63 - 1)
        with self._read() as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute("SELECT * FROM changes WHERE rev > ? ORDER BY rev", (rev,)).fetchall()
        if rev < meta["pruned"]:
            raise ChangesPruned(f"changes after rev {rev} are no longer logged (the log starts after "
                                f"rev {meta['pruned']}): take a snapshot")
        if rev > meta["rev"]:
            raise InvalidInput(f"rev {rev} is ahead of store {self._path} (at rev {meta['rev']})")
        return [Change(rev=r["rev"], obj=obj_from_json(r["kind"], json.loads(r["obj"])),
                       deleted=bool(r["deleted"])) for r in rows]

    # -- tenants -------------------------------------------------------------------

    async def import_objects(self, objs: Sequence[Obj]) -> None:
        with self._write() as tx:  # AUTOINCREMENT follows the explicit ids
            for obj in objs:
                tx.put(obj)
                tx.record(obj)

    async def create_tenant(self, name: str) -> Tenant:
        check_name("tenant", name)
        with self._write() as tx:
            if self._tenant_or_none(name) is not None:
                raise Conflict(f"tenant {name} already exists")
            return self._add_tenant(tx, name)

    async def delete_tenant(self, name: str) -> Tenant:
        with self._write() as tx:
            tenant = self._must_tenant(name)
            nets = self._names("SELECT name FROM networks WHERE tenant = ?", name)
            if nets:
                raise Conflict(f"tenant {name} still has networks: {nets}")
            self._drop_policy_of(tx, name)
            tx.remove(tenant)
            return tenant

    async def get_tenant(self, name: str) -> Tenant:
        return self._must_tenant(name)

    async def list_tenants(self) -> list[Tenant]:
        return [tenant_of(r) for r in self._rows("SELECT * FROM tenants ORDER BY name")]

    def _tenant_or_none(self, name: str) -> Tenant | None:
        row = self._one("SELECT * FROM tenants WHERE name = ?", name)
        return None if row is None else tenant_of(row)

    def _must_tenant(self, name: str) -> Tenant:
        tenant = self._tenant_or_none(name)
        if tenant is None:
            raise NotFound(f"tenant {name} not found")
        return tenant

    def _add_tenant(self, tx: Tx, name: str) -> Tenant:
        tenant = Tenant(name=name)
        tx.put(tenant)
        tx.record(tenant)
        return tenant

    # -- networks ------------------------------------------------------------------

    async def create_network(self, tenant: str, name: str, subnet: str, gateway: str | None = None,
                             isolated: bool = False, external: bool = False) -> Network:
        net, gw = check_network(name, subnet, gateway, isolated, external)
        with self._write() as tx:
            if self._tenant_or_none(tenant) is None:
                if tenant != DEFAULT_TENANT:
                    raise NotFound(f"tenant {tenant} not found")
                self._add_tenant(tx, tenant)
            self._check_network_free(tenant, name, net)
            row = tx.db.execute("INSERT INTO networks (name, tenant, subnet, gateway, isolated, external) "
                                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                                (name, tenant, str(net), str(gw), isolated, external)).fetchone()
            network = Network(id=row[0], name=name, tenant=tenant, subnet=str(net), gateway=str(gw),
                              isolated=isolated, external=external)
            tx.record(network)
            return network

    def _check_network_free(self, tenant: str, name: str, net: IPv4Network) -> None:
        for other in map(network_of, self._rows("SELECT * FROM networks WHERE tenant = ?", tenant)):
            if other.name == name:
                raise Conflict(f"network {name} of tenant {tenant} already exists")
            if other.net.overlaps(net):
                raise Conflict(f"subnet {net} overlaps network {other.name} ({other.subnet}) "
                               f"of tenant {tenant}")

    async def get_network(self, tenant: str, name: str) -> Network:
        return self._must_network(tenant, name)

    async def list_networks(self, tenant: str | None = None) -> list[Network]:
        if tenant is None:
            return [network_of(r) for r in self._rows("SELECT * FROM networks ORDER BY tenant, name")]
        rows = self._rows("SELECT * FROM networks WHERE tenant = ? ORDER BY name", tenant)
        return [network_of(r) for r in rows]

    async def delete_network(self, tenant: str, name: str) -> Network:
        with self._write() as tx:
            network = self._must_network(tenant, name)
            users = self._names("SELECT name FROM endpoints WHERE tenant = ? AND network = ?", tenant, name)
            if users:
                raise Conflict(f"network {name} of tenant {tenant} is still used by endpoints: {users}")
            tx.remove(network)
            return network

    def _must_network(self, tenant: str, name: str) -> Network:
        row = self._one("SELECT * FROM networks WHERE tenant = ? AND name = ?", tenant, name)
        if row is None:
            self._must_tenant(tenant)
            raise NotFound(f"network {name} of tenant {tenant} not found")
        return network_of(row)

    def _names(self, sql: str, *args: object, limit: int = 5) -> str:
        """A short list of names for a message: "a, b, c and 7 more", or ""."""
        names = sorted(r[0] for r in self._rows(sql, *args))
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more

    # -- hosts ---------------------------------------------------------------------

    async def register_host(self, host: Host) -> Host:
        host = check_host(host)
        with self._write() as tx:
            old = self._host_or_none(host.name)
            if old is not None:  # a re-registration does not turn the clock back
                host = dataclasses.replace(host, last_seen=max(host.last_seen, old.last_seen))
            if old == host:
                return host
            self._check_host_unique(host)
            if old is not None and old.pip_pool != host.pip_pool:
                self._check_pips_fit(host)
            tx.put(host)
            tx.record(host)
            return host

    def _check_host_unique(self, host: Host) -> None:
        for other in map(host_of, self._rows("SELECT * FROM hosts WHERE name != ?", host.name)):
            if other.dpid == host.dpid:
                raise Conflict(f"dpid {host.dpid:#018x} of host {host.name} is already used by "
                               f"host {other.name}")
            if other.underlay_ip == host.underlay_ip:
                raise Conflict(f"underlay_ip {host.underlay_ip} of host {host.name} is already used by "
                               f"host {other.name}")
            if other.pool.overlaps(host.pool):
                raise Conflict(f"pip_pool {host.pip_pool} of host {host.name} overlaps the pool "
                               f"{other.pip_pool} of host {other.name}")

    def _check_pips_fit(self, host: Host) -> None:
        """A host's PIPs always lie in its pool: a new pool must still hold them."""
        for row in self._rows("SELECT name, pip FROM endpoints WHERE host = ?", host.name):
            if IPv4Address(row["pip"]) not in host.pool:
                raise Conflict(f"pip_pool {host.pip_pool} of host {host.name} does not hold the PIP "
                               f"{row['pip']} of its endpoint {row['name']}")

    async def heartbeat(self, name: str, now: float) -> Host:
        if isinstance(now, bool) or not isinstance(now, int | float):
            raise InvalidInput(f"heartbeat time {now!r} of host {name} must be a number")
        with self._write() as tx:
            host = dataclasses.replace(self._must_host(name), last_seen=float(now), alive=True)
            tx.db.execute("UPDATE hosts SET last_seen = ?, alive = 1 WHERE name = ?", (host.last_seen, name))
            tx.record(host, heartbeat_of=name)
            return host

    async def get_host(self, name: str) -> Host:
        return self._must_host(name)

    async def list_hosts(self) -> list[Host]:
        return [host_of(r) for r in self._rows("SELECT * FROM hosts ORDER BY name")]

    async def delete_host(self, name: str) -> Host:
        with self._write() as tx:
            host = self._must_host(name)
            users = self._names("SELECT name FROM endpoints WHERE host = ?", name)
            if users:
                raise Conflict(f"host {name} still has endpoints: {users}")
            tx.remove(host)
            return host

    def _host_or_none(self, name: str) -> Host | None:
        row = self._one("SELECT * FROM hosts WHERE name = ?", name)
        return None if row is None else host_of(row)

    def _must_host(self, name: str) -> Host:
        host = self._host_or_none(name)
        if host is None:
            raise NotFound(f"host {name} not found")
        return host

    # -- endpoints -----------------------------------------------------------------

    async def create_endpoint(self, tenant: str, network: str, name: str, host: str,
                              ip: str | None = None, mac: str | None = None,
                              labels: Mapping[str, str] | None = None) -> Endpoint:
        check_name("endpoint", name, ENDPOINT_NAME_RE)
        given_mac = None if mac is None else ipam.check_mac(mac)
        clean_labels = check_labels(labels)
        with self._write() as tx:
            net = self._must_network(tenant, network)
            on = self._must_host(host)
            if self._one("SELECT id FROM endpoints WHERE tenant = ? AND name = ?", tenant, name) is not None:
                raise Conflict(f"endpoint {name} of tenant {tenant} already exists")
            eid = self._free_id()
            addr = ipam.pick_ip(net.net, IPv4Address(net.gateway), self._ips_used(net), ip,
                                f"{network} of tenant {tenant}")
            endpoint = Endpoint(id=eid, name=name, tenant=tenant, network=network, ip=str(addr),
                                mac=given_mac or ipam.mac_for_id(eid), host=host, pip=str(self._free_pip(on)),
                                labels=clean_labels)
            tx.put(endpoint)
            tx.record(endpoint)
            return endpoint

    def _free_id(self) -> int:
        eid = self._rows(FREE_ID)[0][0]
        if eid > MAX_ENDPOINT_ID:
            raise Conflict(f"no free endpoint ids: all {MAX_ENDPOINT_ID} are in use")
        return int(eid)

    def _ips_used(self, net: Network) -> dict[IPv4Address, str]:
        rows = self._rows("SELECT id, name, ip FROM endpoints WHERE tenant = ? AND network = ?",
                          net.tenant, net.name)
        return {IPv4Address(r["ip"]): f"endpoint {r['name']} (id {r['id']})" for r in rows}

    def _free_pip(self, host: Host) -> IPv4Address:
        used = {IPv4Address(r[0]) for r in self._rows("SELECT pip FROM endpoints WHERE host = ?", host.name)}
        own = IPv4Address(host.underlay_ip)  # a pool may include the host's own underlay address
        return ipam.pick_pip(host.pool, used, {own}, host.name)

    async def update_endpoint(self, id: int, *, port: str | None = None,
                              ofport: int | None = None) -> Endpoint:
        if port is not None and not isinstance(port, str):
            raise InvalidInput(f"port {port!r} of endpoint {id} must be an interface name")
        if ofport is not None:
            check_int(f"ofport of endpoint {id}", ofport, 1, MAX_OFPORT)
        with self._write() as tx:
            old = self._must_endpoint(id)
            new = dataclasses.replace(old, port=old.port if port is None else port,
                                      ofport=old.ofport if ofport is None else ofport)
            if new != old:
                tx.put(new)
                tx.record(new)
            return new

    async def get_endpoint(self, id: int) -> Endpoint:
        return self._must_endpoint(id)

    async def find_endpoint(self, tenant: str, name: str) -> Endpoint:
        row = self._one("SELECT * FROM endpoints WHERE tenant = ? AND name = ?", tenant, name)
        if row is None:
            raise NotFound(f"endpoint {name} of tenant {tenant} not found")
        return endpoint_of(row)

    async def list_endpoints(self, tenant: str | None = None, host: str | None = None,
                             network: str | None = None) -> list[Endpoint]:
        filters = {"tenant": tenant, "host": host, "network": network}
        where = [f"{col} = ?" for col, value in filters.items() if value is not None]
        args = [value for value in filters.values() if value is not None]
        sql = "SELECT * FROM endpoints" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [endpoint_of(r) for r in self._rows(sql, *args)]

    async def delete_endpoint(self, id: int) -> Endpoint:
        with self._write() as tx:
            endpoint = self._must_endpoint(id)
            tx.remove(endpoint)
            return endpoint

    async def move_endpoint(self, id: int, host: str) -> Endpoint:
        with self._write() as tx:
            old = self._must_endpoint(id)
            to = self._must_host(host)
            if old.host == host:
                return old
            new = dataclasses.replace(old, host=host, pip=str(self._free_pip(to)), port="", ofport=None)
            tx.put(new)
            tx.record(new)
            return new

    def _must_endpoint(self, id: int) -> Endpoint:
        row = self._one("SELECT * FROM endpoints WHERE id = ?", id)
        if row is None:
            raise NotFound(f"endpoint {id} not found")
        return endpoint_of(row)
