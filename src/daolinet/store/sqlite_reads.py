"""The SQLite store's reads and writes (`backend.Reads`, `backend.Writes`) on one
connection, inside the transaction `sqlite.SqliteBackend` opened.

Ids of networks, groups, rules, tokens and port mappings follow the tables'
AUTOINCREMENT sequences, so an id is never handed out twice; UNIQUE and foreign
key constraints stay the last line of defence behind the rules.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

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
from daolinet.model.view import Change, Obj
from daolinet.store.codec import kind_of, obj_to_json
from daolinet.store.liveness import lapsed_by_clock
from daolinet.store.sqlite_schema import (
    FREE_ID,
    KEYS,
    TABLES,
    columns,
    controller_of,
    endpoint_of,
    group_of,
    host_of,
    network_of,
    portmap_of,
    rule_of,
    tenant_of,
    token_of,
)

Row = TypeVar("Row")
SEQ_TABLES = {"network": "networks", "group": "groups", "rule": "rules", "token": "tokens",
              "portmap": "portmaps"}


def where(filters: dict[str, object]) -> tuple[str, list[object]]:
    """" WHERE a = ? AND b = ?" and its arguments, for the filters that are not None."""
    given = {col: value for col, value in filters.items() if value is not None}
    return (" WHERE " + " AND ".join(f"{col} = ?" for col in given) if given else ""), list(given.values())


class SqliteReads:
    """Lookups on `db`, in whatever transaction it is in."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def _all(self, of: Callable[[sqlite3.Row], Row], sql: str, *args: object) -> list[Row]:
        return [of(row) for row in self.db.execute(sql, args).fetchall()]

    def _one(self, of: Callable[[sqlite3.Row], Row], sql: str, *args: object) -> Row | None:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None else of(row)

    async def tenant(self, name: str) -> Tenant | None:
        return self._one(tenant_of, "SELECT * FROM tenants WHERE name = ?", name)

    async def tenants(self) -> list[Tenant]:
        return self._all(tenant_of, "SELECT * FROM tenants ORDER BY name")

    async def networks(self, tenant: str | None = None) -> list[Network]:
        sql, args = where({"tenant": tenant})
        return self._all(network_of, f"SELECT * FROM networks{sql} ORDER BY tenant, name", *args)

    async def network(self, tenant: str, name: str) -> Network | None:
        return self._one(network_of, "SELECT * FROM networks WHERE tenant = ? AND name = ?", tenant, name)

    async def host(self, name: str) -> Host | None:
        return self._one(host_of, "SELECT * FROM hosts WHERE name = ?", name)

    async def hosts(self) -> list[Host]:
        return self._all(host_of, "SELECT * FROM hosts ORDER BY name")

    async def lapsed(self, hosts: Sequence[Host], now: float, ttl: float) -> list[str]:
        return lapsed_by_clock(hosts, now, ttl)  # one controller: its clock decides

    async def endpoint(self, id: int) -> Endpoint | None:
        return self._one(endpoint_of, "SELECT * FROM endpoints WHERE id = ?", id)

    async def endpoint_named(self, tenant: str, name: str) -> Endpoint | None:
        return self._one(endpoint_of, "SELECT * FROM endpoints WHERE tenant = ? AND name = ?", tenant, name)

    async def endpoints(self, tenant: str | None = None, host: str | None = None,
                        network: str | None = None) -> list[Endpoint]:
        sql, args = where({"tenant": tenant, "host": host, "network": network})
        return self._all(endpoint_of, f"SELECT * FROM endpoints{sql} ORDER BY id", *args)

    async def free_endpoint_id(self) -> int:
        return int(self.db.execute(FREE_ID).fetchone()[0])

    async def ips_used(self, net: Network, requested: str | None) -> dict[IPv4Address, str]:
        rows = self.db.execute("SELECT id, name, ip FROM endpoints WHERE tenant = ? AND network = ?",
                               (net.tenant, net.name))
        return {IPv4Address(r["ip"]): f"endpoint {r['name']} (id {r['id']})" for r in rows}

    async def pips_used(self, host: Host) -> set[IPv4Address]:
        return {IPv4Address(r[0]) for r in self.db.execute("SELECT pip FROM endpoints WHERE host = ?",
                                                           (host.name,))}

    async def ips6_used(self, net: Network, requested: str | None) -> dict[IPv6Address, str]:
        rows = self.db.execute("SELECT id, name, ip6 FROM endpoints WHERE tenant = ? AND network = ? "
                               "AND ip6 != ''", (net.tenant, net.name))
        return {IPv6Address(r["ip6"]): f"endpoint {r['name']} (id {r['id']})" for r in rows}

    async def pips6_used(self, host: Host) -> set[IPv6Address]:
        return {IPv6Address(r[0]) for r in self.db.execute("SELECT pip6 FROM endpoints WHERE host = ? "
                                                           "AND pip6 != ''", (host.name,))}

    async def group(self, tenant: str, name: str) -> Group | None:
        return self._one(group_of, "SELECT * FROM groups WHERE tenant = ? AND name = ?", tenant, name)

    async def groups(self, tenant: str | None = None) -> list[Group]:
        sql, args = where({"tenant": tenant})
        return self._all(group_of, f"SELECT * FROM groups{sql} ORDER BY tenant, name", *args)

    async def rule(self, tenant: str, id: int) -> Rule | None:
        return self._one(rule_of, "SELECT * FROM rules WHERE tenant = ? AND id = ?", tenant, id)

    async def rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]:
        sql, args = where({"tenant": tenant, "kind": kind})
        return self._all(rule_of, f"SELECT * FROM rules{sql} ORDER BY id", *args)

    async def pair_rule(self, tenant: str, a: str, b: str) -> Rule | None:
        return self._one(rule_of, "SELECT * FROM rules WHERE tenant = ? AND kind = 'pair' "
                         "AND a = ? AND b = ?", tenant, a, b)

    async def rule_named(self, tenant: str, name: str) -> Rule | None:
        return self._one(rule_of, "SELECT * FROM rules WHERE tenant = ? AND kind = 'l4' AND name = ?",
                         tenant, name)

    async def token(self, id: int) -> Token | None:
        return self._one(token_of, "SELECT * FROM tokens WHERE id = ?", id)

    async def token_named(self, tenant: str | None, name: str) -> Token | None:
        return self._one(token_of, "SELECT * FROM tokens WHERE tenant IS ? AND name = ?", tenant, name)

    async def token_by_hash(self, hash: str) -> Token | None:
        return self._one(token_of, "SELECT * FROM tokens WHERE hash = ?", hash)

    async def tokens(self, tenant: str | None = None) -> list[Token]:
        sql, args = where({"tenant": tenant})
        return self._all(token_of, f"SELECT * FROM tokens{sql} ORDER BY id", *args)

    async def portmap(self, tenant: str, name: str) -> Portmap | None:
        return self._one(portmap_of, "SELECT * FROM portmaps WHERE tenant = ? AND name = ?", tenant, name)

    async def portmap_at(self, host: str, protocol: str, port: int) -> Portmap | None:
        return self._one(portmap_of, "SELECT * FROM portmaps WHERE host = ? AND protocol = ? "
                         "AND host_port = ?", host, protocol, port)

    async def portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        sql, args = where({"tenant": tenant, "host": host})
        return self._all(portmap_of, f"SELECT * FROM portmaps{sql} ORDER BY id", *args)

    async def controller(self, id: str) -> ControllerRecord | None:
        return self._one(controller_of, "SELECT * FROM controllers WHERE id = ?", id)

    async def controllers(self) -> list[ControllerRecord]:
        return self._all(controller_of, "SELECT * FROM controllers ORDER BY id")


class SqliteTx(SqliteReads):
    """One write transaction: records Changes with fresh revisions as it goes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        super().__init__(db)
        self.changes: list[Change] = []
        self._seqs: dict[str, int] = {}

    def put(self, obj: Obj, old: Obj | None = None) -> None:
        """Insert or update `obj` in its table (by key, never delete-and-insert)."""
        values, key = columns(obj), KEYS[type(obj)]
        cols = ", ".join(values)
        marks = ", ".join("?" * len(values))
        sets = ", ".join(f"{c} = excluded.{c}" for c in values if c != key) or f"{key} = excluded.{key}"
        self.db.execute(f"INSERT INTO {TABLES[type(obj)]} ({cols}) VALUES ({marks}) "
                        f"ON CONFLICT ({key}) DO UPDATE SET {sets}", tuple(values.values()))

    def remove(self, obj: Obj) -> None:
        key = KEYS[type(obj)]
        self.db.execute(f"DELETE FROM {TABLES[type(obj)]} WHERE {key} = ?", (getattr(obj, key),))
        self.record(obj, deleted=True)

    def record(self, obj: Obj, deleted: bool = False, heartbeat_of: str | None = None) -> None:
        bump = "UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value"
        rev = int(self.db.execute(bump).fetchone()[0])
        if heartbeat_of is not None:  # only the latest heartbeat of a host stays in the log
            self.db.execute("DELETE FROM changes WHERE heartbeat_of = ?", (heartbeat_of,))
        self.db.execute("INSERT INTO changes (rev, kind, deleted, obj, heartbeat_of) VALUES (?, ?, ?, ?, ?)",
                        (rev, kind_of(obj), int(deleted), json.dumps(obj_to_json(obj)), heartbeat_of))
        self.changes.append(Change(rev=rev, obj=obj, deleted=deleted))

    async def next_id(self, kind: str) -> int:
        """Above every id the table's AUTOINCREMENT sequence ever handed out (or was given)."""
        table = SEQ_TABLES[kind]
        if kind not in self._seqs:
            row = self.db.execute("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
                                  f"coalesce((SELECT max(id) FROM {table}), 0))", (table,)).fetchone()
            self._seqs[kind] = int(row[0])
        self._seqs[kind] += 1
        return self._seqs[kind]

    async def raise_seq(self, kind: str, at_least: int) -> None:
        """Nothing to do: inserting an explicit id moves the AUTOINCREMENT sequence past it."""

    def drop_tenant_policy(self, tenant: str) -> None:
        """Nothing to do: `remove` deletes row by row, within SQLite's limits."""

    def drop_pair_rules(self, tenant: str) -> None:
        """Nothing to do, as `drop_tenant_policy`."""

    def prune(self, keep: int) -> None:
        """Keep the last `keep` entries; remember where the log now starts."""
        newest_gone = "SELECT rev FROM changes ORDER BY rev DESC LIMIT 1 OFFSET ?"
        row = self.db.execute(newest_gone, (keep,)).fetchone()
        if row is not None:
            self.db.execute("DELETE FROM changes WHERE rev <= ?", (row[0],))
            self.db.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'pruned'", (row[0],))
