"""What a store backend provides: reading, writing and transactions, nothing more.

`service.StoreService` implements the whole `Store` interface once, over these:
every write is a function of a `Writes` (the backend's transaction: its reads
see one consistent state, its writes commit together or not at all), every read
a function of a `Reads`.  A backend may run a write's function more than once
(etcd does when another writer committed first), so the function only reads,
decides (`rules`) and buffers writes.  SQLite (`sqlite_reads`, `sqlite`) and
etcd (`etcd_reads`, `etcd_tx`, `etcd_base`) implement them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol, TypeVar

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

T = TypeVar("T")


class Reads(Protocol):
    """Lookups at one consistent state of the store.  Lists come in a fixed order (noted)."""

    async def tenant(self, name: str) -> Tenant | None: ...
    async def tenants(self) -> list[Tenant]:
        """By name."""
    async def networks(self, tenant: str | None = None) -> list[Network]:
        """By (tenant, name)."""
    async def network(self, tenant: str, name: str) -> Network | None: ...
    async def host(self, name: str) -> Host | None: ...
    async def hosts(self) -> list[Host]:
        """By name."""
    async def lapsed(self, hosts: Sequence[Host], now: float, ttl: float) -> list[str]:
        """Which of `hosts` have lapsed (`liveness`: by the clock, or by lease)."""
    async def endpoint(self, id: int) -> Endpoint | None: ...
    async def endpoint_named(self, tenant: str, name: str) -> Endpoint | None: ...
    async def endpoints(self, tenant: str | None = None, host: str | None = None,
                        network: str | None = None) -> list[Endpoint]:
        """By id."""
    async def free_endpoint_id(self) -> int:
        """The smallest id no endpoint has (ids are dense: they are part of route cookies)."""
    async def ips_used(self, net: Network, requested: str | None) -> dict[IPv4Address, str]:
        """Taken logical addresses of `net`, each (at least `requested`) with who holds it."""
    async def pips_used(self, host: Host) -> set[IPv4Address]:
        """Taken PIPs of `host`'s pool."""
    async def ips6_used(self, net: Network, requested: str | None) -> dict[IPv6Address, str]:
        """Taken logical IPv6 addresses of `net`, as `ips_used`."""
    async def pips6_used(self, host: Host) -> set[IPv6Address]:
        """Taken IPv6 PIPs of `host`'s pool6."""
    async def group(self, tenant: str, name: str) -> Group | None: ...
    async def groups(self, tenant: str | None = None) -> list[Group]:
        """By (tenant, name)."""
    async def rule(self, tenant: str, id: int) -> Rule | None: ...
    async def rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]:
        """By id."""
    async def pair_rule(self, tenant: str, a: str, b: str) -> Rule | None: ...
    async def rule_named(self, tenant: str, name: str) -> Rule | None: ...
    async def token(self, id: int) -> Token | None: ...
    async def token_named(self, tenant: str | None, name: str) -> Token | None: ...
    async def token_by_hash(self, hash: str) -> Token | None: ...
    async def tokens(self, tenant: str | None = None) -> list[Token]:
        """Every token when `tenant` is None, else that tenant's; by id."""
    async def portmap(self, tenant: str, name: str) -> Portmap | None: ...
    async def portmap_at(self, host: str, protocol: str, port: int) -> Portmap | None: ...
    async def portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        """By id."""
    async def controller(self, id: str) -> ControllerRecord | None: ...
    async def controllers(self) -> list[ControllerRecord]:
        """By id."""


class Writes(Reads, Protocol):
    """One write transaction: reads, then buffered writes that commit together."""

    def put(self, obj: Obj, old: Obj | None = None) -> None:
        """Insert or replace `obj` (`old`: what it replaces, as read in this transaction)."""
    def remove(self, obj: Obj) -> None:
        """Delete `obj` and record its deletion."""
    def record(self, obj: Obj, deleted: bool = False, heartbeat_of: str | None = None) -> None:
        """A Change with the next revision (`heartbeat_of`: only a host's latest stays logged)."""
    async def next_id(self, kind: str) -> int:
        """The next never-used id of `kind` (rules.SEQ_KINDS)."""
    async def raise_seq(self, kind: str, at_least: int) -> None:
        """Never hand out an id of `kind` up to `at_least` (imported objects hold them)."""
    def drop_tenant_policy(self, tenant: str) -> None:
        """A hint before `remove`-ing all of a tenant's rules, groups and tokens: the backend may
        delete them in bulk (etcd: by key prefix, so the write stays within its operation limit)."""
    def drop_pair_rules(self, tenant: str) -> None:
        """The same hint before `remove`-ing every pair rule of a tenant."""


class Backend(Protocol):
    """Transactions, the change log and host leases of one store."""

    name: str  # the store in messages: its file or URL

    async def read(self, fn: Callable[[Reads], Awaitable[T]]) -> T:
        """`fn` on one consistent state of the store."""
    async def write(self, fn: Callable[[Writes], Awaitable[T]]) -> tuple[T, list[Change]]:
        """`fn` in one transaction, committed; what it returned and the Changes it recorded.
        An error leaves nothing written."""
    async def snapshot(self) -> tuple[int, list[Obj]]:
        """The revision and every object (tenants, networks, hosts, endpoints, groups, rules,
        tokens, port mappings, controllers, each kind in key order)."""
    async def log_after(self, rev: int) -> tuple[int, int, list[Change]]:
        """(where the log starts, the current revision, every logged Change above `rev`)."""
    async def keep_alive(self, host: str, ttl: int) -> None:
        """The host's agent is alive (etcd: refresh its lease; SQLite: its heartbeat says so)."""
    async def close(self) -> None: ...
