"""The SQLite store's tables, row conversions and write transaction.

Objects live in ordinary columns, one table per kind; only the change log keeps
whole objects, as JSON.  `sqlite_reads` reads and writes them.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

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
from daolinet.model.view import Obj
from daolinet.store.checks import MAX_ENDPOINT_ID

SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 3), ('rev', 0), ('pruned', 0);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS networks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL, tenant TEXT NOT NULL REFERENCES tenants (name),
    subnet TEXT NOT NULL, gateway TEXT NOT NULL, isolated INTEGER NOT NULL,
    external INTEGER NOT NULL DEFAULT 0,
    subnet6 TEXT NOT NULL DEFAULT '', gateway6 TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant, name));
CREATE TABLE IF NOT EXISTS hosts (
    name TEXT PRIMARY KEY, dpid TEXT NOT NULL UNIQUE, underlay_ip TEXT NOT NULL UNIQUE,
    underlay_mac TEXT NOT NULL, pip_pool TEXT NOT NULL, underlay_prefix INTEGER NOT NULL,
    underlay_gateway_mac TEXT NOT NULL, uplink_ofport INTEGER NOT NULL, last_seen REAL NOT NULL,
    alive INTEGER NOT NULL DEFAULT 1,
    pip_pool6 TEXT NOT NULL DEFAULT '', underlay_ip6 TEXT NOT NULL DEFAULT '',
    underlay_prefix6 INTEGER NOT NULL DEFAULT 64);
CREATE TABLE IF NOT EXISTS endpoints (
    id INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND {MAX_ENDPOINT_ID}),
    name TEXT NOT NULL, tenant TEXT NOT NULL, network TEXT NOT NULL,
    ip TEXT NOT NULL, mac TEXT NOT NULL, host TEXT NOT NULL REFERENCES hosts (name),
    pip TEXT NOT NULL UNIQUE, port TEXT NOT NULL, ofport INTEGER, labels TEXT NOT NULL,
    ip6 TEXT NOT NULL DEFAULT '', pip6 TEXT NOT NULL DEFAULT '',
    aliases TEXT NOT NULL DEFAULT '[]',
    UNIQUE (tenant, name), UNIQUE (tenant, ip),
    FOREIGN KEY (tenant, network) REFERENCES networks (tenant, name));
CREATE INDEX IF NOT EXISTS endpoints_by_host ON endpoints (host);
CREATE INDEX IF NOT EXISTS endpoints_by_network ON endpoints (tenant, network);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL REFERENCES tenants (name), name TEXT NOT NULL, members TEXT NOT NULL,
    UNIQUE (tenant, name));
CREATE TABLE IF NOT EXISTS rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL REFERENCES tenants (name), kind TEXT NOT NULL, action TEXT NOT NULL,
    a TEXT NOT NULL, b TEXT NOT NULL, protocol TEXT NOT NULL, ports TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 100, icmp_type INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS rules_one_per_pair ON rules (tenant, a, b) WHERE kind = 'pair';
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL, tenant TEXT REFERENCES tenants (name), hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, host TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_by_name ON tokens (ifnull(tenant, ''), name);
CREATE TABLE IF NOT EXISTS portmaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL REFERENCES tenants (name), name TEXT NOT NULL, container TEXT NOT NULL,
    host TEXT NOT NULL REFERENCES hosts (name), protocol TEXT NOT NULL,
    host_port INTEGER NOT NULL, container_port INTEGER NOT NULL,
    UNIQUE (tenant, name), UNIQUE (host, protocol, host_port));
CREATE TABLE IF NOT EXISTS controllers (
    id TEXT PRIMARY KEY, api TEXT NOT NULL, openflow TEXT NOT NULL, advertise TEXT NOT NULL,
    etcd TEXT NOT NULL, started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    rev INTEGER PRIMARY KEY, kind TEXT NOT NULL, deleted INTEGER NOT NULL, obj TEXT NOT NULL,
    heartbeat_of TEXT);
CREATE INDEX IF NOT EXISTS changes_heartbeats ON changes (heartbeat_of) WHERE heartbeat_of IS NOT NULL;
COMMIT;
"""


def upgrade(db: sqlite3.Connection) -> None:
    """Bring a store made by an older daolinet up to this SCHEMA (columns added since)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(hosts)")}
    if "alive" not in columns:
        db.execute("ALTER TABLE hosts ADD COLUMN alive INTEGER NOT NULL DEFAULT 1")
    if "host" not in {row[1] for row in db.execute("PRAGMA table_info(tokens)")}:
        db.execute("ALTER TABLE tokens ADD COLUMN host TEXT")  # host tokens (issue 12)
    if "priority" not in {row[1] for row in db.execute("PRAGMA table_info(rules)")}:
        _upgrade_rules(db)  # names, priorities, ICMP types; overlapping rules (issue 15)
    if db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] < 2:
        _upgrade_to(db, 2, SCHEMA_2)
    if db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] < 3:
        _upgrade_to(db, 3, SCHEMA_3)
    for index in ("endpoints_by_ip6 ON endpoints (tenant, ip6) WHERE ip6 != ''",
                  "endpoints_by_pip6 ON endpoints (pip6) WHERE pip6 != ''"):
        db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index}")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS rules_by_name ON rules (tenant, name) WHERE name != ''")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS rules_l4_once ON rules (tenant, a, b, protocol, ports, "
               "ifnull(icmp_type, -1), action, priority) WHERE kind = 'l4'")


SCHEMA_2 = {  # IPv6 dual-stack (issue 18): table -> the columns it gained
    "networks": ("subnet6 TEXT NOT NULL DEFAULT ''", "gateway6 TEXT NOT NULL DEFAULT ''"),
    "hosts": ("pip_pool6 TEXT NOT NULL DEFAULT ''", "underlay_ip6 TEXT NOT NULL DEFAULT ''",
              "underlay_prefix6 INTEGER NOT NULL DEFAULT 64"),
    "endpoints": ("ip6 TEXT NOT NULL DEFAULT ''", "pip6 TEXT NOT NULL DEFAULT ''"),
}
SCHEMA_3 = {  # endpoints' DNS aliases (issue 18, names): a JSON list, [] on every existing row
    "endpoints": ("aliases TEXT NOT NULL DEFAULT '[]'",),
}


def _upgrade_to(db: sqlite3.Connection, schema: int, added_columns: Mapping[str, Sequence[str]]) -> None:
    """Add the columns schema `schema` has that the file lacks, and record the schema, in one
    transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, added in added_columns.items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for column in added:
                if column.split()[0] not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (schema,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _upgrade_rules(db: sqlite3.Connection) -> None:
    """Rebuild `rules` without its old one-rule-per-(groups, ports) constraint."""
    db.executescript("""
BEGIN;
DROP INDEX IF EXISTS rules_one_per_pair;
ALTER TABLE rules RENAME TO rules_old;
CREATE TABLE rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL REFERENCES tenants (name), kind TEXT NOT NULL, action TEXT NOT NULL,
    a TEXT NOT NULL, b TEXT NOT NULL, protocol TEXT NOT NULL, ports TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 100, icmp_type INTEGER);
INSERT INTO rules (id, tenant, kind, action, a, b, protocol, ports)
    SELECT id, tenant, kind, action, a, b, protocol, ports FROM rules_old;
DROP TABLE rules_old;
CREATE UNIQUE INDEX rules_one_per_pair ON rules (tenant, a, b) WHERE kind = 'pair';
COMMIT;
""")


FREE_ID = """
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM endpoints WHERE id = 1) THEN 1 ELSE
    (SELECT e.id + 1 FROM endpoints AS e
     WHERE NOT EXISTS (SELECT 1 FROM endpoints AS f WHERE f.id = e.id + 1) ORDER BY e.id LIMIT 1)
END
"""

TABLES: dict[type, str] = {Tenant: "tenants", Network: "networks", Host: "hosts", Endpoint: "endpoints",
                            Group: "groups", Rule: "rules", Token: "tokens", Portmap: "portmaps",
                            ControllerRecord: "controllers"}
KEYS: dict[type, str] = {Tenant: "name", Network: "id", Host: "name", Endpoint: "id",
                          Group: "id", Rule: "id", Token: "id", Portmap: "id", ControllerRecord: "id"}


# -- objects <-> rows ------------------------------------------------------------------


def columns(obj: Obj) -> dict[str, Any]:
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Host):
        values["dpid"] = f"{obj.dpid:016x}"  # SQLite integers are signed 64-bit
    if isinstance(obj, Endpoint):
        values["labels"] = json.dumps(obj.labels, sort_keys=True)
        values["aliases"] = json.dumps(list(obj.aliases))
    if isinstance(obj, Group):
        values["members"] = json.dumps(list(obj.members))
    if isinstance(obj, ControllerRecord):
        values.update({k: json.dumps(list(v)) for k, v in values.items() if isinstance(v, tuple)})
    return values


def tenant_of(row: sqlite3.Row) -> Tenant:
    return Tenant(name=row["name"])


def network_of(row: sqlite3.Row) -> Network:
    return Network(**{**dict(row), "isolated": bool(row["isolated"]), "external": bool(row["external"])})


def host_of(row: sqlite3.Row) -> Host:
    return Host(**{**dict(row), "dpid": int(row["dpid"], 16), "alive": bool(row["alive"])})


def endpoint_of(row: sqlite3.Row) -> Endpoint:
    return Endpoint(**{**dict(row), "labels": json.loads(row["labels"]),
                       "aliases": tuple(json.loads(row["aliases"]))})


def group_of(row: sqlite3.Row) -> Group:
    return Group(**{**dict(row), "members": tuple(json.loads(row["members"]))})


def rule_of(row: sqlite3.Row) -> Rule:
    return Rule(**dict(row))


def token_of(row: sqlite3.Row) -> Token:
    return Token(**dict(row))


def portmap_of(row: sqlite3.Row) -> Portmap:
    return Portmap(**dict(row))


def controller_of(row: sqlite3.Row) -> ControllerRecord:
    lists = ("api", "openflow", "advertise", "etcd")
    return ControllerRecord(**{**dict(row), **{k: tuple(json.loads(row[k])) for k in lists}})
