"""The store's policy objects, port mappings and controller records, once for
every backend: groups, rules and tokens; mappings of a host's port to a
container's; each controller's record of itself.

Groups, rules, tokens and port mappings get ids that are never handed out twice
(`Writes.next_id`).  Rules and group members name containers and networks, so
deleting those does not touch policy: a re-created container is covered again.
`StoreService` (service.py) adds the rest of the `Store` interface.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from daolinet.model.objects import (
    DEFAULT_RULE_PRIORITY,
    ControllerRecord,
    Group,
    Portmap,
    Rule,
    Token,
    cidr_of,
)
from daolinet.store import lookups, rules
from daolinet.store.backend import Backend, Reads, Writes
from daolinet.store.base import Store
from daolinet.store.checks import (
    PAIR_ACTIONS,
    RULE_KINDS,
    check_choice,
    check_l4_rule,
    check_member,
    check_members,
    check_name,
    check_portmap,
    check_token,
    token_what,
)
from daolinet.store.controllers import check_controller

T = TypeVar("T")


class PolicyService(Store):
    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self._b = backend

    async def _write(self, fn: Callable[[Writes], Awaitable[T]]) -> T:
        """`fn` in one transaction; subscribers hear of its Changes after the commit."""
        result, changes = await self._b.write(fn)
        self._notify(changes)
        return result

    async def _read(self, fn: Callable[[Reads], Awaitable[T]]) -> T:
        return await self._b.read(fn)

    @staticmethod
    async def _drop_policy_of(tx: Writes, tenant: str) -> None:
        """Delete the tenant's rules, groups and tokens (in that order), a Change for each."""
        doomed: list[Rule | Group | Token] = [*await tx.rules(tenant), *await tx.groups(tenant)]
        doomed.sort(key=lambda o: (isinstance(o, Group), o.id))
        doomed += await tx.tokens(tenant)
        tx.drop_tenant_policy(tenant)
        for obj in doomed:
            tx.remove(obj)

    # -- groups ------------------------------------------------------------------------

    async def create_group(self, tenant: str, name: str, members: Sequence[str] = ()) -> Group:
        check_name("group", name)
        clean = check_members(members)

        async def write(tx: Writes) -> Group:
            await lookups.must_tenant(tx, tenant)
            rules.check_group_free(tenant, name, await tx.group(tenant, name))
            for member in clean:
                await self._check_member_exists(tx, tenant, member)
            group = Group(id=await tx.next_id("group"), tenant=tenant, name=name, members=clean)
            tx.put(group)
            tx.record(group)
            return group
        return await self._write(write)

    async def get_group(self, tenant: str, name: str) -> Group:
        return await self._read(lambda r: lookups.must_group(r, tenant, name))

    async def list_groups(self, tenant: str | None = None) -> list[Group]:
        return await self._read(lambda r: r.groups(tenant))

    async def delete_group(self, tenant: str, name: str) -> Group:
        async def write(tx: Writes) -> Group:
            group = await lookups.must_group(tx, tenant, name)
            rules.check_group_unused(group, await tx.rules(tenant, "l4"))
            tx.remove(group)
            return group
        return await self._write(write)

    async def add_group_member(self, tenant: str, name: str, member: str) -> Group:
        check_member(member)

        async def write(tx: Writes) -> Group:
            old = await lookups.must_group(tx, tenant, name)
            new = rules.with_member(old, member)
            if new is None:
                return old
            await self._check_member_exists(tx, tenant, member)
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def remove_group_member(self, tenant: str, name: str, member: str) -> Group:
        check_member(member)

        async def write(tx: Writes) -> Group:
            old = await lookups.must_group(tx, tenant, name)
            new = rules.without_member(old, member)
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    @staticmethod
    async def _check_member_exists(r: Reads, tenant: str, member: str) -> None:
        kind, _, name = member.partition(":")
        if kind == "network":
            await lookups.must_network(r, tenant, name)
        elif kind == "container":
            rules.container_found(tenant, name, await r.endpoint_named(tenant, name))

    # -- rules -------------------------------------------------------------------------

    async def set_pair_rule(self, tenant: str, a: str, b: str, action: str) -> Rule:
        check_choice("action", action, PAIR_ACTIONS)
        a, b = rules.pair(a, b)

        async def write(tx: Writes) -> Rule:
            await lookups.must_tenant(tx, tenant)
            old = await tx.pair_rule(tenant, a, b)
            new_id = None if old is not None else await tx.next_id("rule")
            new = rules.pair_rule(old, new_id, tenant, a, b, action)
            if new is None:
                assert old is not None
                return old
            tx.put(new, old)
            tx.record(new)
            return new
        return await self._write(write)

    async def delete_pair_rule(self, tenant: str, a: str, b: str) -> Rule:
        a, b = sorted((a, b))

        async def write(tx: Writes) -> Rule:
            rule = await tx.pair_rule(tenant, a, b)
            if rule is None:
                await lookups.must_tenant(tx, tenant)
            rule = rules.check_pair_rule_found(tenant, a, b, rule)
            tx.remove(rule)
            return rule
        return await self._write(write)

    async def clear_pair_rules(self, tenant: str, a: str | None = None, b: str | None = None) -> list[Rule]:
        a, b = rules.clear_scope(a, b)

        async def write(tx: Writes) -> list[Rule]:
            await lookups.must_tenant(tx, tenant)
            doomed = rules.doomed_pair_rules(await tx.rules(tenant, "pair"), a, b)
            if a is None:
                tx.drop_pair_rules(tenant)
            for rule in doomed:
                tx.remove(rule)
            return doomed
        return await self._write(write)

    async def create_l4_rule(self, tenant: str, from_group: str, to_group: str, protocol: str = "any",
                             ports: str = "", *, icmp_type: int | None = None, action: str = "allow",
                             priority: int = DEFAULT_RULE_PRIORITY, name: str = "") -> Rule:
        new = check_l4_rule(tenant, from_group, to_group, protocol, ports, icmp_type, action, priority, name)

        async def write(tx: Writes) -> Rule:
            for selector in (new.a, new.b):
                if cidr_of(selector) is None:  # a group of this tenant (one side at least is one)
                    await lookups.must_group(tx, tenant, selector)
            rules.check_l4_free(new, await tx.rules(tenant, "l4"))
            rule = dataclasses.replace(new, id=await tx.next_id("rule"))
            tx.put(rule)
            tx.record(rule)
            return rule
        return await self._write(write)

    async def get_rule(self, tenant: str, ref: int | str) -> Rule:
        return await self._read(lambda r: lookups.must_rule(r, tenant, ref))

    async def list_rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]:
        if kind is not None:
            check_choice("rule kind", kind, RULE_KINDS)
        return await self._read(lambda r: r.rules(tenant, kind))

    async def delete_rule(self, tenant: str, ref: int | str) -> Rule:
        async def write(tx: Writes) -> Rule:
            rule = await lookups.must_rule(tx, tenant, ref)
            tx.remove(rule)
            return rule
        return await self._write(write)

    # -- tokens ------------------------------------------------------------------------

    async def create_token(self, name: str, tenant: str | None, hash: str, created: float,
                           host: str | None = None) -> Token:
        created = check_token(name, hash, created, tenant, host)
        what = token_what(name, tenant, host)

        async def write(tx: Writes) -> Token:
            if tenant is not None:
                await lookups.must_tenant(tx, tenant)
            rules.check_token_free(what, await tx.token_named(tenant, name), await tx.token_by_hash(hash))
            token = Token(id=await tx.next_id("token"), name=name, tenant=tenant, hash=hash, created=created,
                          host=host)
            tx.put(token)
            tx.record(token)
            return token
        return await self._write(write)

    async def list_tokens(self, tenant: str | None = None) -> list[Token]:
        return await self._read(lambda r: r.tokens(tenant))

    async def find_token(self, hash: str) -> Token | None:
        if not isinstance(hash, str):
            return None
        return await self._read(lambda r: r.token_by_hash(hash))

    async def delete_token(self, id: int) -> Token:
        async def write(tx: Writes) -> Token:
            token = rules.check_token_found(id, await tx.token(id))
            tx.remove(token)
            return token
        return await self._write(write)

    # -- port mappings: host H's underlay IP:port -> a container's port, wherever it runs --

    async def create_portmap(self, tenant: str, name: str, container: str, protocol: str,
                             host_port: int, container_port: int, host: str | None = None) -> Portmap:
        check_portmap(name, protocol, host_port, container_port)

        async def write(tx: Writes) -> Portmap:
            endpoint = await lookups.must_endpoint_named(tx, tenant, container)
            on = host or endpoint.host
            await lookups.must_host(tx, on)
            rules.check_portmap_free(tenant, name, on, protocol, host_port, await tx.portmap(tenant, name),
                                     await tx.portmap_at(on, protocol, host_port))
            portmap = Portmap(await tx.next_id("portmap"), tenant, name, container, on, protocol, host_port,
                              container_port)
            tx.put(portmap)
            tx.record(portmap)
            return portmap
        return await self._write(write)

    async def get_portmap(self, tenant: str, name: str) -> Portmap:
        return await self._read(lambda r: lookups.must_portmap(r, tenant, name))

    async def list_portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        return await self._read(lambda r: r.portmaps(tenant, host))

    async def delete_portmap(self, tenant: str, name: str) -> Portmap:
        async def write(tx: Writes) -> Portmap:
            portmap = await lookups.must_portmap(tx, tenant, name)
            tx.remove(portmap)
            return portmap
        return await self._write(write)

    # -- controller records (store/controllers.py) -------------------------------------

    async def record_controller(self, controller: ControllerRecord) -> ControllerRecord:
        checked = check_controller(controller)

        async def write(tx: Writes) -> ControllerRecord:
            tx.put(checked, await tx.controller(checked.id))
            tx.record(checked)
            return checked
        return await self._write(write)

    async def list_controllers(self) -> list[ControllerRecord]:
        return await self._read(lambda r: r.controllers())
