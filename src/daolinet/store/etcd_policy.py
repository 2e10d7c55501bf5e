"""The etcd store's policy objects: groups, rules and tokens.

`EtcdPolicy` implements that part of the `Store` interface as `SqlitePolicy`
does, on the write loop and lookups of `EtcdBase`.  Groups, rules and tokens
get ids from per-kind counters (`meta/seq/<kind>`): an id is never handed out
twice.  Rules and group members name containers and networks, so deleting
those does not touch policy: a re-created container is covered again.
Uniqueness (a group's name, one pair rule per pair, one l4 rule per
(groups, protocol, ports), a token's name and secret) rests on keys and claims.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from daolinet.errors import Conflict, InvalidInput, NotFound
from daolinet.model.objects import Group, Rule, Token
from daolinet.store.base import (
    ENDPOINT_NAME_RE,
    PAIR_ACTIONS,
    RULE_KINDS,
    check_choice,
    check_member,
    check_members,
    check_name,
    check_ports,
    check_token,
    token_what,
)
from daolinet.store.etcd_base import EtcdBase
from daolinet.store.etcd_kv import Reader
from daolinet.store.etcd_tx import EtcdTx


class EtcdPolicy(EtcdBase):
    # -- tenants' policy -----------------------------------------------------------------

    async def _drop_policy_of(self, tx: EtcdTx, tenant: str) -> None:
        """Delete the tenant's rules, groups and tokens (in that order), a Change for each.

        Tenant-scoped keys go by prefix (one operation each, whatever their number)."""
        keys = self._keys
        rules = sorted(await self._all(tx.read, keys.all("rule", tenant), Rule), key=lambda o: o.id)
        groups = sorted(await self._all(tx.read, keys.all("group", tenant), Group), key=lambda o: o.id)
        tokens = [t for t in await self._tokens(tx.read) if t.tenant == tenant]
        for prefix in (keys.all("rule", tenant), keys.all("group", tenant), keys.all("claim/pair", tenant),
                       keys.all("claim/l4", tenant), keys.all("claim/token-name", tenant)):
            tx.delete_prefix(prefix)
        doomed: list[Rule | Group | Token] = [*rules, *groups, *tokens]
        for obj in doomed:
            tx.remove(obj)

    # -- groups ------------------------------------------------------------------------

    async def create_group(self, tenant: str, name: str, members: Sequence[str] = ()) -> Group:
        check_name("group", name)
        clean = check_members(members)

        async def write(tx: EtcdTx) -> Group:
            await self._must_tenant(tx.read, tenant)
            if await self._get(tx.read, self._keys.group(tenant, name), Group) is not None:
                raise Conflict(f"group {name} of tenant {tenant} already exists")
            for member in clean:
                await self._check_member_exists(tx.read, tenant, member)
            group = Group(id=await tx.next_id("group"), tenant=tenant, name=name, members=clean)
            tx.put(group)
            tx.record(group)
            return group
        return await self._write(write)

    async def get_group(self, tenant: str, name: str) -> Group:
        return await self._consistent(lambda r: self._must_group(r, tenant, name))

    async def list_groups(self, tenant: str | None = None) -> list[Group]:
        groups = await self._consistent(lambda r: self._all(r, self._keys.all("group", tenant), Group))
        return sorted(groups, key=lambda g: (g.tenant, g.name))

    async def delete_group(self, tenant: str, name: str) -> Group:
        async def write(tx: EtcdTx) -> Group:
            group = await self._must_group(tx.read, tenant, name)
            users = [r for r in await self._rules(tx.read, tenant, "l4") if name in (r.a, r.b)]
            if users:
                ids = ", ".join(str(r.id) for r in users)
                raise Conflict(f"group {name} of tenant {tenant} is still used by l4 rules: {ids}")
            tx.remove(group)
            return group
        return await self._write(write)

    async def add_group_member(self, tenant: str, name: str, member: str) -> Group:
        check_member(member)

        async def write(tx: EtcdTx) -> Group:
            old = await self._must_group(tx.read, tenant, name)
            if member in old.members:
                return old
            await self._check_member_exists(tx.read, tenant, member)
            new = dataclasses.replace(old, members=tuple(sorted((*old.members, member))))
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def remove_group_member(self, tenant: str, name: str, member: str) -> Group:
        check_member(member)

        async def write(tx: EtcdTx) -> Group:
            old = await self._must_group(tx.read, tenant, name)
            if member not in old.members:
                raise NotFound(f"{member} is not a member of group {name} of tenant {tenant}")
            new = dataclasses.replace(old, members=tuple(m for m in old.members if m != member))
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def _check_member_exists(self, r: Reader, tenant: str, member: str) -> None:
        kind, _, name = member.partition(":")
        if kind == "network":
            await self._must_network(r, tenant, name)
        elif kind == "container" and await r.get(self._keys.endpoint_name(tenant, name)) is None:
            raise NotFound(f"container {name} of tenant {tenant} not found: no endpoint has that name")

    async def _must_group(self, r: Reader, tenant: str, name: str) -> Group:
        group = await self._get(r, self._keys.group(tenant, name), Group)
        if group is None:
            await self._must_tenant(r, tenant)
            raise NotFound(f"group {name} of tenant {tenant} not found")
        return group

    # -- rules -------------------------------------------------------------------------

    async def set_pair_rule(self, tenant: str, a: str, b: str, action: str) -> Rule:
        check_choice("action", action, PAIR_ACTIONS)
        a, b = self._pair(a, b)

        async def write(tx: EtcdTx) -> Rule:
            await self._must_tenant(tx.read, tenant)
            old = await self._owner(tx.read, self._keys.pair(tenant, a, b), Rule)
            if old is not None and old.action == action:
                return old
            if old is not None:
                new = dataclasses.replace(old, action=action)
            else:
                new = Rule(id=await tx.next_id("rule"), tenant=tenant, kind="pair", action=action, a=a, b=b)
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def delete_pair_rule(self, tenant: str, a: str, b: str) -> Rule:
        a, b = sorted((a, b))

        async def write(tx: EtcdTx) -> Rule:
            rule = await self._owner(tx.read, self._keys.pair(tenant, a, b), Rule)
            if rule is None:
                await self._must_tenant(tx.read, tenant)
                raise NotFound(f"no pair rule between {a} and {b} in tenant {tenant}")
            tx.remove(rule)
            return rule
        return await self._write(write)

    async def clear_pair_rules(self, tenant: str, a: str | None = None, b: str | None = None) -> list[Rule]:
        if a is None and b is not None:
            a, b = b, None

        def doomed(rule: Rule) -> bool:
            if a is not None and b is not None:
                return (rule.a, rule.b) == tuple(sorted((a, b)))
            return a is None or a in (rule.a, rule.b)

        async def write(tx: EtcdTx) -> list[Rule]:
            await self._must_tenant(tx.read, tenant)
            rules = [r for r in await self._rules(tx.read, tenant, "pair") if doomed(r)]
            if a is None:  # all of them: two range deletes, however many there are
                tx.delete_prefix(self._keys.all("rule", f"{tenant}/pair"))
                tx.delete_prefix(self._keys.all("claim/pair", tenant))
            for rule in rules:
                tx.remove(rule)
            return rules
        return await self._write(write)

    async def create_l4_rule(self, tenant: str, from_group: str, to_group: str, protocol: str,
                             ports: str = "") -> Rule:
        ports = check_ports(protocol, ports)

        async def write(tx: EtcdTx) -> Rule:
            await self._must_group(tx.read, tenant, from_group)
            await self._must_group(tx.read, tenant, to_group)
            claim = self._keys.l4(tenant, from_group, to_group, protocol, ports)
            same = await self._owner(tx.read, claim, Rule)
            if same is not None:
                what = f"{protocol} {ports}".rstrip()
                raise Conflict(f"l4 rule {same.id} of tenant {tenant} already allows {what} from group "
                               f"{from_group} to group {to_group}")
            rule = Rule(id=await tx.next_id("rule"), tenant=tenant, kind="l4", action="allow", a=from_group,
                        b=to_group, protocol=protocol, ports=ports)
            tx.put(rule)
            tx.record(rule)
            return rule
        return await self._write(write)

    async def get_rule(self, tenant: str, id: int) -> Rule:
        return await self._consistent(lambda r: self._must_rule(r, tenant, id))

    async def list_rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]:
        if kind is not None:
            check_choice("rule kind", kind, RULE_KINDS)
        return await self._consistent(lambda r: self._rules(r, tenant, kind))

    async def _rules(self, r: Reader, tenant: str | None, kind: str | None) -> list[Rule]:
        scope = None if tenant is None else tenant if kind is None else f"{tenant}/{kind}"
        rules = await self._all(r, self._keys.all("rule", scope), Rule)
        return sorted((rule for rule in rules if kind is None or rule.kind == kind), key=lambda o: o.id)

    async def delete_rule(self, tenant: str, id: int) -> Rule:
        async def write(tx: EtcdTx) -> Rule:
            rule = await self._must_rule(tx.read, tenant, id)
            tx.remove(rule)
            return rule
        return await self._write(write)

    @staticmethod
    def _pair(a: str, b: str) -> tuple[str, str]:
        check_name("container", a, ENDPOINT_NAME_RE)
        check_name("container", b, ENDPOINT_NAME_RE)
        if a == b:
            raise InvalidInput(f"a pair rule needs two different containers, got {a} twice")
        return (a, b) if a < b else (b, a)

    async def _must_rule(self, r: Reader, tenant: str, id: int) -> Rule:
        await r.get(self._keys.rev)  # fixes the revision both reads below see
        found = await asyncio.gather(*(self._get(r, self._keys.rule(tenant, kind, id), Rule)
                                       for kind in RULE_KINDS))
        rule = next((rule for rule in found if rule is not None), None)
        if rule is None:
            await self._must_tenant(r, tenant)
            raise NotFound(f"rule {id} of tenant {tenant} not found")
        return rule

    # -- tokens ------------------------------------------------------------------------

    async def create_token(self, name: str, tenant: str | None, hash: str, created: float,
                           host: str | None = None) -> Token:
        created = check_token(name, hash, created, tenant, host)
        what = token_what(name, tenant, host)

        async def write(tx: EtcdTx) -> Token:
            if tenant is not None:
                await self._must_tenant(tx.read, tenant)
            if await tx.read.get(self._keys.token_name(tenant, name)) is not None:
                raise Conflict(f"{what} already exists")
            if await tx.read.get(self._keys.token_hash(hash)) is not None:
                raise Conflict(f"{what}: another token already has the same secret")
            token = Token(id=await tx.next_id("token"), name=name, tenant=tenant, hash=hash, created=created,
                          host=host)
            tx.put(token)
            tx.record(token)
            return token
        return await self._write(write)

    async def list_tokens(self, tenant: str | None = None) -> list[Token]:
        tokens = await self._consistent(self._tokens)
        return [t for t in tokens if tenant is None or t.tenant == tenant]

    async def _tokens(self, r: Reader) -> list[Token]:
        return sorted(await self._all(r, self._keys.all("token"), Token), key=lambda t: t.id)

    async def find_token(self, hash: str) -> Token | None:
        if not isinstance(hash, str):
            return None
        return await self._consistent(lambda r: self._owner(r, self._keys.token_hash(hash), Token))

    async def delete_token(self, id: int) -> Token:
        async def write(tx: EtcdTx) -> Token:
            token = await self._get(tx.read, self._keys.token(id), Token)
            if token is None:
                raise NotFound(f"token {id} not found")
            tx.remove(token)
            return token
        return await self._write(write)
