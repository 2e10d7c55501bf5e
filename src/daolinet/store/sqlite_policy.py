"""The SQLite store's policy objects: groups, rules and tokens.

`SqlitePolicy` implements that part of the `Store` interface on top of the
transaction helpers `SqliteStore` provides (declared abstract here).  Groups,
rules and tokens get AUTOINCREMENT ids: an id is never handed out twice.
Rules and group members name containers and networks, so deleting those does
not touch policy: a re-created container is covered again.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.model.objects import Group, Network, Rule, Tenant, Token
from daolinet.model.view import Obj
from daolinet.store.base import (
    ENDPOINT_NAME_RE,
    PAIR_ACTIONS,
    RULE_KINDS,
    Store,
    check_choice,
    check_member,
    check_members,
    check_name,
    check_ports,
    check_token,
    token_what,
)
from daolinet.store.sqlite_schema import Tx, group_of, rule_of, token_of

PolicyObj = Group | Rule | Token


class SqlitePolicy(Store):
    # -- what SqliteStore provides ---------------------------------------------------

    @abstractmethod
    def _write(self) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]: ...

    @abstractmethod
    def _one(self, sql: str, *args: object) -> sqlite3.Row | None: ...

    @abstractmethod
    def _must_tenant(self, name: str) -> Tenant: ...

    @abstractmethod
    def _must_network(self, tenant: str, name: str) -> Network: ...

    # -- snapshot and tenants ----------------------------------------------------------

    @staticmethod
    def _policy_objects(db: sqlite3.Connection) -> list[Obj]:
        """Groups, rules and tokens, for a snapshot taken in `db`'s current transaction."""
        objs: list[Obj] = [group_of(r) for r in db.execute("SELECT * FROM groups ORDER BY id")]
        objs += [rule_of(r) for r in db.execute("SELECT * FROM rules ORDER BY id")]
        objs += [token_of(r) for r in db.execute("SELECT * FROM tokens ORDER BY id")]
        return objs

    def _drop_policy_of(self, tx: Tx, tenant: str) -> None:
        """Delete the tenant's rules, groups and tokens (in that order), a Change for each."""
        mine = "SELECT * FROM {} WHERE tenant = ? ORDER BY id"
        doomed: list[PolicyObj] = [rule_of(r) for r in self._rows(mine.format("rules"), tenant)]
        doomed += [group_of(r) for r in self._rows(mine.format("groups"), tenant)]
        doomed += [token_of(r) for r in self._rows(mine.format("tokens"), tenant)]
        for obj in doomed:
            tx.remove(obj)

    # -- groups ------------------------------------------------------------------------

    async def create_group(self, tenant: str, name: str, members: Sequence[str] = ()) -> Group:
        check_name("group", name)
        clean = check_members(members)
        with self._write() as tx:
            self._must_tenant(tenant)
            if self._group_or_none(tenant, name) is not None:
                raise Conflict(f"group {name} of tenant {tenant} already exists")
            for member in clean:
                self._check_member_exists(tenant, member)
            row = tx.db.execute("INSERT INTO groups (tenant, name, members) VALUES (?, ?, ?) RETURNING id",
                                (tenant, name, json.dumps(list(clean)))).fetchone()
            group = Group(id=row[0], tenant=tenant, name=name, members=clean)
            tx.record(group)
            return group

    async def get_group(self, tenant: str, name: str) -> Group:
        return self._must_group(tenant, name)

    async def list_groups(self, tenant: str | None = None) -> list[Group]:
        if tenant is None:
            return [group_of(r) for r in self._rows("SELECT * FROM groups ORDER BY tenant, name")]
        rows = self._rows("SELECT * FROM groups WHERE tenant = ? ORDER BY name", tenant)
        return [group_of(r) for r in rows]

    async def delete_group(self, tenant: str, name: str) -> Group:
        with self._write() as tx:
            group = self._must_group(tenant, name)
            users = self._rows("SELECT id FROM rules WHERE tenant = ? AND kind = 'l4' AND (a = ? OR b = ?) "
                               "ORDER BY id", tenant, name, name)
            if users:
                ids = ", ".join(str(r[0]) for r in users)
                raise Conflict(f"group {name} of tenant {tenant} is still used by l4 rules: {ids}")
            tx.remove(group)
            return group

    async def add_group_member(self, tenant: str, name: str, member: str) -> Group:
        check_member(member)
        with self._write() as tx:
            old = self._must_group(tenant, name)
            if member in old.members:
                return old
            self._check_member_exists(tenant, member)
            new = dataclasses.replace(old, members=tuple(sorted((*old.members, member))))
            tx.put(new)
            tx.record(new)
            return new

    async def remove_group_member(self, tenant: str, name: str, member: str) -> Group:
        check_member(member)
        with self._write() as tx:
            old = self._must_group(tenant, name)
            if member not in old.members:
                raise NotFound(f"{member} is not a member of group {name} of tenant {tenant}")
            new = dataclasses.replace(old, members=tuple(m for m in old.members if m != member))
            tx.put(new)
            tx.record(new)
            return new

    def _check_member_exists(self, tenant: str, member: str) -> None:
        kind, _, name = member.partition(":")
        if kind == "network":
            self._must_network(tenant, name)
        elif kind == "container" and self._one(
                "SELECT id FROM endpoints WHERE tenant = ? AND name = ?", tenant, name) is None:
            raise NotFound(f"container {name} of tenant {tenant} not found: no endpoint has that name")

    def _group_or_none(self, tenant: str, name: str) -> Group | None:
        row = self._one("SELECT * FROM groups WHERE tenant = ? AND name = ?", tenant, name)
        return None if row is None else group_of(row)

    def _must_group(self, tenant: str, name: str) -> Group:
        group = self._group_or_none(tenant, name)
        if group is None:
            self._must_tenant(tenant)
            raise NotFound(f"group {name} of tenant {tenant} not found")
        return group

    # -- rules -------------------------------------------------------------------------

    async def set_pair_rule(self, tenant: str, a: str, b: str, action: str) -> Rule:
        check_choice("action", action, PAIR_ACTIONS)
        a, b = self._pair(a, b)
        with self._write() as tx:
            self._must_tenant(tenant)
            old = self._pair_rule_or_none(tenant, a, b)
            if old is not None:
                if old.action == action:
                    return old
                new = dataclasses.replace(old, action=action)
                tx.put(new)
            else:
                row = tx.db.execute("INSERT INTO rules (tenant, kind, action, a, b, protocol, ports) "
                                    "VALUES (?, 'pair', ?, ?, ?, '', '') RETURNING id",
                                    (tenant, action, a, b)).fetchone()
                new = Rule(id=row[0], tenant=tenant, kind="pair", action=action, a=a, b=b)
            tx.record(new)
            return new

    async def delete_pair_rule(self, tenant: str, a: str, b: str) -> Rule:
        a, b = sorted((a, b))
        with self._write() as tx:
            rule = self._pair_rule_or_none(tenant, a, b)
            if rule is None:
                self._must_tenant(tenant)
                raise NotFound(f"no pair rule between {a} and {b} in tenant {tenant}")
            tx.remove(rule)
            return rule

    async def clear_pair_rules(self, tenant: str, a: str | None = None, b: str | None = None) -> list[Rule]:
        if a is None and b is not None:
            a, b = b, None
        with self._write() as tx:
            self._must_tenant(tenant)
            sql, args = "SELECT * FROM rules WHERE tenant = ? AND kind = 'pair'", [tenant]
            if a is not None and b is not None:
                sql, args = sql + " AND a = ? AND b = ?", [*args, *sorted((a, b))]
            elif a is not None:
                sql, args = sql + " AND (a = ? OR b = ?)", [*args, a, a]
            doomed = [rule_of(r) for r in self._rows(sql + " ORDER BY id", *args)]
            for rule in doomed:
                tx.remove(rule)
            return doomed

    async def create_l4_rule(self, tenant: str, from_group: str, to_group: str, protocol: str,
                             ports: str = "") -> Rule:
        ports = check_ports(protocol, ports)
        with self._write() as tx:
            self._must_group(tenant, from_group)
            self._must_group(tenant, to_group)
            same = self._one("SELECT id FROM rules WHERE tenant = ? AND kind = 'l4' AND a = ? AND b = ? "
                             "AND protocol = ? AND ports = ?", tenant, from_group, to_group, protocol, ports)
            if same is not None:
                what = f"{protocol} {ports}".rstrip()
                raise Conflict(f"l4 rule {same[0]} of tenant {tenant} already allows {what} from group "
                               f"{from_group} to group {to_group}")
            row = tx.db.execute("INSERT INTO rules (tenant, kind, action, a, b, protocol, ports) "
                                "VALUES (?, 'l4', 'allow', ?, ?, ?, ?) RETURNING id",
                                (tenant, from_group, to_group, protocol, ports)).fetchone()
            rule = Rule(id=row[0], tenant=tenant, kind="l4", action="allow", a=from_group, b=to_group,
                        protocol=protocol, ports=ports)
            tx.record(rule)
            return rule

    async def get_rule(self, tenant: str, id: int) -> Rule:
        return self._must_rule(tenant, id)

    async def list_rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]:
        if kind is not None:
            check_choice("rule kind", kind, RULE_KINDS)
        filters = {"tenant": tenant, "kind": kind}
        where = [f"{col} = ?" for col, value in filters.items() if value is not None]
        args = [value for value in filters.values() if value is not None]
        sql = "SELECT * FROM rules" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [rule_of(r) for r in self._rows(sql, *args)]

    async def delete_rule(self, tenant: str, id: int) -> Rule:
        with self._write() as tx:
            rule = self._must_rule(tenant, id)
            tx.remove(rule)
            return rule

    @staticmethod
    def _pair(a: str, b: str) -> tuple[str, str]:
        check_name("container", a, ENDPOINT_NAME_RE)
        check_name("container", b, ENDPOINT_NAME_RE)
        if a == b:
            raise InvalidInput(f"a pair rule needs two different containers, got {a} twice")
        return (a, b) if a < b else (b, a)

    def _pair_rule_or_none(self, tenant: str, a: str, b: str) -> Rule | None:
        row = self._one("SELECT * FROM rules WHERE tenant = ? AND kind = 'pair' AND a = ? AND b = ?",
                        tenant, a, b)
        return None if row is None else rule_of(row)

    def _must_rule(self, tenant: str, id: int) -> Rule:
        row = self._one("SELECT * FROM rules WHERE tenant = ? AND id = ?", tenant, id)
        if row is None:
            self._must_tenant(tenant)
            raise NotFound(f"rule {id} of tenant {tenant} not found")
        return rule_of(row)

    # -- tokens ------------------------------------------------------------------------

    async def create_token(self, name: str, tenant: str | None, hash: str, created: float,
                           host: str | None = None) -> Token:
        created = check_token(name, hash, created, tenant, host)
        what = token_what(name, tenant, host)
        with self._write() as tx:
            if tenant is not None:
                self._must_tenant(tenant)
            if self._one("SELECT id FROM tokens WHERE tenant IS ? AND name = ?", tenant, name) is not None:
                raise Conflict(f"{what} already exists")
            if self._one("SELECT id FROM tokens WHERE hash = ?", hash) is not None:
                raise Conflict(f"{what}: another token already has the same secret")
            row = tx.db.execute("INSERT INTO tokens (name, tenant, hash, created, host) "
                                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                                (name, tenant, hash, created, host)).fetchone()
            token = Token(id=row[0], name=name, tenant=tenant, hash=hash, created=created, host=host)
            tx.record(token)
            return token

    async def list_tokens(self, tenant: str | None = None) -> list[Token]:
        if tenant is None:
            return [token_of(r) for r in self._rows("SELECT * FROM tokens ORDER BY id")]
        return [token_of(r) for r in self._rows("SELECT * FROM tokens WHERE tenant = ? ORDER BY id", tenant)]

    async def find_token(self, hash: str) -> Token | None:
        row = self._one("SELECT * FROM tokens WHERE hash = ?", hash)
        return None if row is None else token_of(row)

    async def delete_token(self, id: int) -> Token:
        with self._write() as tx:
            row = self._one("SELECT * FROM tokens WHERE id = ?", id)
            if row is None:
                raise NotFound(f"token {id} not found")
            token = token_of(row)
            tx.remove(token)
            return token
