"""The etcd store's lookups (`backend.Reads`) at one etcd revision.

Objects are found by their keys, or through the claim that names them
(`etcd_keys`); lists are read by key prefix and sorted as SQLite's queries
sort them, so both backends answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

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
from daolinet.store.checks import RULE_KINDS
from daolinet.store.etcd_keys import Keys, decode
from daolinet.store.etcd_kv import Reader
from daolinet.store.liveness import lapsed_by_lease

Ob = TypeVar("Ob", Tenant, Network, Host, Endpoint, Group, Rule, Token, Portmap, ControllerRecord)
KIND_OF: dict[type, str] = {Tenant: "tenant", Network: "network", Host: "host", Endpoint: "endpoint",
                            Group: "group", Rule: "rule", Token: "token", Portmap: "portmap",
                            ControllerRecord: "controller"}


def _addr(key: bytes) -> IPv4Address:
    """The address an IP or PIP claim key ends in."""
    return IPv4Address(int(key.rsplit(b"/", 1)[1], 16))


def _addr6(key: bytes) -> IPv6Address:
    """The address an IPv6 IP or PIP claim key ends in."""
    return IPv6Address(int(key.rsplit(b"/", 1)[1], 16))


class EtcdReads:
    """Lookups through `reader` (pinned to the revision of its first read)."""

    def __init__(self, reader: Reader, keys: Keys) -> None:
        self.reader = reader
        self.keys = keys

    async def _get(self, key: bytes, cls: type[Ob]) -> Ob | None:
        value = await self.reader.get(key)
        if value is None:
            return None
        obj = decode(KIND_OF[cls], value)
        assert isinstance(obj, cls)
        return obj

    async def all(self, cls: type[Ob], scope: str | None = None) -> list[Ob]:
        """Every object of `cls` (under `scope`, for tenant-scoped kinds), in key order."""
        found = await self.reader.prefix(self.keys.all(KIND_OF[cls], scope))
        return [decode(KIND_OF[cls], value) for _, value in found]  # type: ignore[misc]

    async def _owner(self, claim: bytes, cls: type[Ob]) -> Ob | None:
        """The object holding `claim`, or None."""
        key = await self.reader.get(claim)
        return None if key is None else await self._get(key, cls)

    async def tenant(self, name: str) -> Tenant | None:
        return await self._get(self.keys.tenant(name), Tenant)

    async def tenants(self) -> list[Tenant]:
        return sorted(await self.all(Tenant), key=lambda t: t.name)

    async def networks(self, tenant: str | None = None) -> list[Network]:
        return sorted(await self.all(Network, tenant), key=lambda n: (n.tenant, n.name))

    async def network(self, tenant: str, name: str) -> Network | None:
        return await self._get(self.keys.network(tenant, name), Network)

    async def host(self, name: str) -> Host | None:
        return await self._get(self.keys.host(name), Host)

    async def hosts(self) -> list[Host]:
        return sorted(await self.all(Host), key=lambda h: h.name)

    async def lapsed(self, hosts: Sequence[Host], now: float, ttl: float) -> list[str]:
        """By lease (etcd_liveness): etcd keeps the time, so no controller's clock matters."""
        leased = await self.reader.prefix(self.keys.alive(""), keys_only=True)
        return lapsed_by_lease(hosts, (key.rsplit(b"/", 1)[1].decode() for key, _ in leased))

    async def endpoint(self, id: int) -> Endpoint | None:
        return await self._get(self.keys.endpoint(id), Endpoint)

    async def endpoint_named(self, tenant: str, name: str) -> Endpoint | None:
        return await self._owner(self.keys.endpoint_name(tenant, name), Endpoint)

    async def endpoints(self, tenant: str | None = None, host: str | None = None,
                        network: str | None = None) -> list[Endpoint]:
        return [e for e in await self.all(Endpoint) if (tenant is None or e.tenant == tenant)
                and (host is None or e.host == host) and (network is None or e.network == network)]

    async def free_endpoint_id(self) -> int:
        used = await self.reader.prefix(self.keys.all("endpoint"), keys_only=True)
        eid = 1
        for key, _ in used:  # in key order, which is id order
            if int(key.rsplit(b"/", 1)[1]) != eid:
                break
            eid += 1
        return eid

    async def ips_used(self, net: Network, requested: str | None) -> dict[IPv4Address, str]:
        """Only a requested address that is taken gets its holder's name (a claim names a key)."""
        used = {_addr(key): owner.decode() for key, owner in await self.reader.between(*self.keys.ips(
            net.tenant, net.net))}
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            await self._name_holder(used, IPv4Address(requested.strip()))  # type: ignore[union-attr]
        return used

    async def pips_used(self, host: Host) -> set[IPv4Address]:
        claims = await self.reader.between(*self.keys.pips(host.pool), keys_only=True)
        return {_addr(key) for key, _ in claims}

    async def ips6_used(self, net: Network, requested: str | None) -> dict[IPv6Address, str]:
        """As `ips_used`, for the IPv6 claims of a dual-stack network."""
        net6 = net.net6
        if net6 is None:
            return {}
        used = {_addr6(key): owner.decode() for key, owner in await self.reader.between(
            *self.keys.ips6(net.tenant, net6))}
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            await self._name_holder(used, IPv6Address(requested.strip()))  # type: ignore[union-attr]
        return used

    async def _name_holder(self, used: dict[Any, str], wanted: IPv4Address | IPv6Address) -> None:
        """If `wanted` is taken, its claim's key in `used` becomes its holder's name."""
        if wanted in used:
            holder = await self._get(used[wanted].encode(), Endpoint)
            used[wanted] = f"endpoint {holder.name} (id {holder.id})" if holder else used[wanted]

    async def pips6_used(self, host: Host) -> set[IPv6Address]:
        pool6 = host.pool6
        if pool6 is None:
            return set()
        return {_addr6(key) for key, _ in await self.reader.between(*self.keys.pips6(pool6), keys_only=True)}

    async def group(self, tenant: str, name: str) -> Group | None:
        return await self._get(self.keys.group(tenant, name), Group)

    async def groups(self, tenant: str | None = None) -> list[Group]:
        return sorted(await self.all(Group, tenant), key=lambda g: (g.tenant, g.name))

    async def rule(self, tenant: str, id: int) -> Rule | None:
        await self.reader.get(self.keys.rev)  # fixes the revision both reads below see
        found = await asyncio.gather(*(self._get(self.keys.rule(tenant, kind, id), Rule)
                                       for kind in RULE_KINDS))
        return next((rule for rule in found if rule is not None), None)

    async def rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]:
        scope = None if tenant is None else tenant if kind is None else f"{tenant}/{kind}"
        return sorted((r for r in await self.all(Rule, scope) if kind is None or r.kind == kind),
                      key=lambda r: r.id)

    async def pair_rule(self, tenant: str, a: str, b: str) -> Rule | None:
        return await self._owner(self.keys.pair(tenant, a, b), Rule)

    async def rule_named(self, tenant: str, name: str) -> Rule | None:
        return await self._owner(self.keys.rule_name(tenant, name), Rule)

    async def token(self, id: int) -> Token | None:
        return await self._get(self.keys.token(id), Token)

    async def token_named(self, tenant: str | None, name: str) -> Token | None:
        return await self._owner(self.keys.token_name(tenant, name), Token)

    async def token_by_hash(self, hash: str) -> Token | None:
        return await self._owner(self.keys.token_hash(hash), Token)

    async def tokens(self, tenant: str | None = None) -> list[Token]:
        return [t for t in await self.all(Token) if tenant is None or t.tenant == tenant]  # key order: id

    async def portmap(self, tenant: str, name: str) -> Portmap | None:
        return await self._get(self.keys.portmap(tenant, name), Portmap)

    async def portmap_at(self, host: str, protocol: str, port: int) -> Portmap | None:
        return await self._owner(self.keys.host_port(host, protocol, port), Portmap)

    async def portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        return sorted((p for p in await self.all(Portmap, tenant) if host is None or p.host == host),
                      key=lambda p: p.id)

    async def controller(self, id: str) -> ControllerRecord | None:
        return await self._get(self.keys.controller(id), ControllerRecord)

    async def controllers(self) -> list[ControllerRecord]:
        return sorted(await self.all(ControllerRecord), key=lambda c: c.id)
