"""The store interface: the only durable state of daolinet, behind one API.

Controllers read a `snapshot()` into their View and then follow the change
feed: `subscribe()` for this instance's own commits, `changes_since()` for
everything committed (by any process) after a revision, and `watch_changes()`
to follow every writer's commits as they happen (SQLite: by polling the log;
etcd: a real watch).  One implementation serves both backends (`service`):
writes check their input (`checks`), read what they decide from, decide with
`rules` and allocate with `ipam`, each in one transaction of the backend
(`backend`): an error leaves nothing changed and emits no Change.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from daolinet.errors import Conflict, SystemFailure
from daolinet.model.objects import (
    DEFAULT_RULE_PRIORITY,
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
from daolinet.store.liveness import DEFAULT_HOST_TTL

log = logging.getLogger(__name__)
KEEP_CHANGES = 10_000  # entries the change log keeps
PRUNE_EVERY = 64  # revisions between trims of the change log

Callback = Callable[[Change], None]


class ChangesPruned(Conflict):
    """changes_since() was asked for revisions the log no longer holds: take a snapshot."""


class Store(ABC):
    """Tenants, networks, hosts, endpoints, groups, rules and tokens, with a change feed.

    Getters raise NotFound for unknown objects; creators raise Conflict for
    duplicates and InvalidInput for malformed values.  Every committed mutation
    gets a new, persisted, increasing revision and is passed to every
    subscriber after the commit, in commit order.
    """

    # Seconds between two polls of the default watch_changes(): what other writers commit
    # (this instance's own commits reach its controller at once, through subscribe()).
    WATCH_POLL_INTERVAL = 1.0
    host_ttl: int = DEFAULT_HOST_TTL  # seconds a host stays alive after a heartbeat (open_store sets it)

    def __init__(self) -> None:
        self._subscribers: list[Callback] = []

    # -- change feed --------------------------------------------------------------

    def subscribe(self, callback: Callback) -> None:
        """Call `callback` with every Change this instance commits, after the commit."""
        self._subscribers.append(callback)

    def _notify(self, changes: list[Change]) -> None:
        for change in changes:
            for callback in list(self._subscribers):
                try:
                    callback(change)
                except Exception:  # the commit stands; one bad subscriber must not starve the rest
                    log.exception("store subscriber %r failed on change rev %d", callback, change.rev)

    @abstractmethod
    async def snapshot(self) -> tuple[int, list[Obj]]:
        """The current revision and every object: tenants, networks, hosts, endpoints,
        then groups, rules and tokens."""

    @abstractmethod
    async def changes_since(self, rev: int) -> list[Change]:
        """Every logged Change with a revision above `rev`, oldest first.

        Raises ChangesPruned when the log no longer reaches back to `rev`.
        Heartbeats are coalesced: only the latest one per host is kept."""

    async def watch_changes(self, from_rev: int) -> AsyncIterator[Change]:
        """Every Change above `from_rev`, committed by any writer (this instance or another
        process or controller sharing the store), in revision order, for as long as the caller
        iterates (close it with `contextlib.aclosing` or by breaking out).

        Start from a snapshot's revision to follow the store with nothing missed and nothing
        twice.  Raises ChangesPruned when the log no longer reaches back to the last revision
        delivered (take a new snapshot), and the store's errors when it cannot be read.  This
        default polls `changes_since()` every WATCH_POLL_INTERVAL seconds (so of a host's
        heartbeats between two polls only the latest is seen); etcd overrides it with a watch.
        """
        rev = from_rev
        while True:
            for change in await self.changes_since(rev):
                rev = change.rev
                yield change
            await asyncio.sleep(self.WATCH_POLL_INTERVAL)

    async def import_objects(self, objs: Sequence[Obj]) -> None:
        """Write `objs` as they are (ids, addresses and all), each recorded as a Change, in one
        transaction: `daolinet store migrate` fills an empty store with them (store/migrate.py)."""
        raise NotImplementedError(f"{type(self).__name__} cannot import objects")

    # -- tenants ------------------------------------------------------------------

    @abstractmethod
    async def create_tenant(self, name: str) -> Tenant: ...

    @abstractmethod
    async def delete_tenant(self, name: str) -> Tenant:
        """Refused while the tenant has networks; takes its groups, rules and tokens with it."""

    @abstractmethod
    async def get_tenant(self, name: str) -> Tenant: ...

    @abstractmethod
    async def list_tenants(self) -> list[Tenant]: ...

    # -- networks -----------------------------------------------------------------

    @abstractmethod
    async def create_network(self, tenant: str, name: str, subnet: str, gateway: str | None = None,
                             isolated: bool = False, external: bool = False, *,
                             subnet6: str | None = None, gateway6: str | None = None) -> Network:
        """`subnet6` (gateway6: ::1 of it unless given) makes the network dual-stack."""

    @abstractmethod
    async def get_network(self, tenant: str, name: str) -> Network: ...

    @abstractmethod
    async def list_networks(self, tenant: str | None = None) -> list[Network]: ...

    @abstractmethod
    async def delete_network(self, tenant: str, name: str) -> Network: ...

    # -- hosts --------------------------------------------------------------------

    @abstractmethod
    async def register_host(self, host: Host) -> Host:
        """Insert or update host `host.name`; registering the same data again changes nothing."""

    @abstractmethod
    async def heartbeat(self, name: str, now: float) -> Host:
        """The host's agent is alive at `now`: keeps it alive (or marks it alive again)."""

    @abstractmethod
    async def get_host(self, name: str) -> Host: ...

    @abstractmethod
    async def list_hosts(self) -> list[Host]: ...

    @abstractmethod
    async def delete_host(self, name: str) -> Host: ...

    # -- host liveness (store/liveness.py decides) ---------------------------------

    @abstractmethod
    async def lapsed_hosts(self, now: float) -> list[str]:
        """Hosts marked alive whose heartbeats stopped for `host_ttl` seconds."""

    @abstractmethod
    async def mark_host_down(self, name: str, now: float) -> Host | None:
        """Mark host `name` down if it has lapsed when the write commits, and return it; None if
        it is down already, alive after all, or gone.  Several controllers may race: one wins."""

    async def liveness_ticks(self) -> AsyncIterator[None]:
        """When to look for lapsed hosts: every host_ttl/4 seconds, after a first host_ttl in
        which the agents of a restarted controller heartbeat (etcd: see EtcdLiveness)."""
        await asyncio.sleep(self.host_ttl)
        while True:
            yield None
            await asyncio.sleep(self.host_ttl / 4)  # a period, not synchronisation

    # -- endpoints ----------------------------------------------------------------

    @abstractmethod
    async def create_endpoint(self, tenant: str, network: str, name: str, host: str,
                              ip: str | None = None, mac: str | None = None,
                              labels: Mapping[str, str] | None = None, *, ip6: str | None = None,
                              aliases: Sequence[str] = ()) -> Endpoint:
        """On a dual-stack network the endpoint also gets an IPv6 address (`ip6`, or the lowest
        free one) and an IPv6 PIP from its host's pip_pool6.  `aliases`: its DNS aliases
        (model/names.py)."""

    @abstractmethod
    async def update_endpoint(self, id: int, *, port: str | None = None,
                              ofport: int | None = None, aliases: Sequence[str] | None = None) -> Endpoint:
        """Set what is given (None leaves a field as it is); `aliases` replaces the endpoint's
        aliases (model/names.py checks them; [] removes them all)."""

    @abstractmethod
    async def get_endpoint(self, id: int) -> Endpoint: ...

    @abstractmethod
    async def find_endpoint(self, tenant: str, name: str) -> Endpoint: ...

    @abstractmethod
    async def list_endpoints(self, tenant: str | None = None, host: str | None = None,
                             network: str | None = None) -> list[Endpoint]: ...

    @abstractmethod
    async def delete_endpoint(self, id: int) -> Endpoint: ...

    @abstractmethod
    async def move_endpoint(self, id: int, host: str, port: str = "", ofport: int | None = None) -> Endpoint:
        """Same IP and MAC on `host`, with a PIP of its pool; unplugged (port "", ofport None)
        unless already plugged there (`port`, `ofport`): then the move is one revision, so
        the controller sees old and new places at once (make-before-break, flows/move.py)."""

    # -- groups -------------------------------------------------------------------

    @abstractmethod
    async def create_group(self, tenant: str, name: str, members: Sequence[str] = ()) -> Group:
        """Members are checked (`check_member`); network and container members must exist."""

    @abstractmethod
    async def get_group(self, tenant: str, name: str) -> Group: ...

    @abstractmethod
    async def list_groups(self, tenant: str | None = None) -> list[Group]: ...

    @abstractmethod
    async def delete_group(self, tenant: str, name: str) -> Group:
        """Refused while an l4 rule names the group."""

    @abstractmethod
    async def add_group_member(self, tenant: str, name: str, member: str) -> Group:
        """Adding a member again returns the group as it is and changes nothing."""

    @abstractmethod
    async def remove_group_member(self, tenant: str, name: str, member: str) -> Group: ...

    # -- rules --------------------------------------------------------------------

    @abstractmethod
    async def set_pair_rule(self, tenant: str, a: str, b: str, action: str) -> Rule:
        """Insert or update the pair rule between containers a and b (names, in any order)."""

    @abstractmethod
    async def delete_pair_rule(self, tenant: str, a: str, b: str) -> Rule: ...

    @abstractmethod
    async def clear_pair_rules(self, tenant: str, a: str | None = None, b: str | None = None) -> list[Rule]:
        """Delete the pair rule of a and b, every pair rule of a (b None), or every pair rule of
        the tenant (both None); return what was deleted."""

    @abstractmethod
    async def create_l4_rule(self, tenant: str, from_group: str, to_group: str, protocol: str = "any",
                             ports: str = "", *, icmp_type: int | None = None, action: str = "allow",
                             priority: int = DEFAULT_RULE_PRIORITY, name: str = "") -> Rule:
        """An l4 rule `action` (allow|deny) `protocol` (tcp|udp|icmp|any) to `ports` ("N" or
        "N-M", tcp and udp) or of `icmp_type`, from a group or "cidr:NETWORK" to another, at
        `priority` (0..RULE_PRIORITY_MAX), optionally named (unique in the tenant).  Groups
        must be the tenant's; the same rule twice is refused, overlapping ones are fine."""

    @abstractmethod
    async def get_rule(self, tenant: str, ref: int | str) -> Rule:
        """A rule by id, or an l4 rule by name."""

    @abstractmethod
    async def list_rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]: ...

    @abstractmethod
    async def delete_rule(self, tenant: str, ref: int | str) -> Rule:
        """Delete a rule by id, or an l4 rule by name."""

    # -- tokens -------------------------------------------------------------------

    @abstractmethod
    async def create_token(self, name: str, tenant: str | None, hash: str, created: float,
                           host: str | None = None) -> Token:
        """tenant None: an admin token, or with `host` a token bound to that host (which need
        not be registered yet: its agent registers it).  `hash` is the sha256 hex of the secret."""

    @abstractmethod
    async def list_tokens(self, tenant: str | None = None) -> list[Token]:
        """Every token (admin and tenants') when `tenant` is None, else that tenant's."""

    @abstractmethod
    async def find_token(self, hash: str) -> Token | None: ...

    @abstractmethod
    async def delete_token(self, id: int) -> Token: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- port mappings (a backend without them says so) ---------------------------------

    async def create_portmap(self, tenant: str, name: str, container: str, protocol: str,
                             host_port: int, container_port: int, host: str | None = None) -> Portmap:
        raise SystemFailure(f"{type(self).__name__} has no port mappings")

    async def get_portmap(self, tenant: str, name: str) -> Portmap:
        raise SystemFailure(f"{type(self).__name__} has no port mappings")

    async def list_portmaps(self, tenant: str | None = None, host: str | None = None) -> list[Portmap]:
        return []

    async def delete_portmap(self, tenant: str, name: str) -> Portmap:
        raise SystemFailure(f"{type(self).__name__} has no port mappings")

    # -- controllers: each records itself at start (the infrastructure containers never reach) --

    async def record_controller(self, controller: ControllerRecord) -> ControllerRecord:
        """Put the controller's record (replacing the one of the same id)."""
        raise SystemFailure(f"{type(self).__name__} keeps no controller records")

    async def list_controllers(self) -> list[ControllerRecord]:
        return []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
