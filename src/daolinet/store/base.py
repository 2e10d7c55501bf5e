"""The store interface: the only durable state of daolinet, behind one API.

Controllers read a `snapshot()` into their View and then follow the change
feed: `subscribe()` for this instance's own commits, `changes_since()` for
everything committed (by any process) after a revision.  Writes validate their
input here (backend-neutral checks) and allocate addresses with `ipam`, each
in one transaction: an error leaves nothing changed and emits no Change.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

from daolinet.errors import Conflict, InvalidInput
from daolinet.model.objects import Endpoint, Host, Network, Tenant
from daolinet.model.view import Change, Kind, Obj
from daolinet.store import ipam

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")  # tenants and networks
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # what Docker allows, and more
MAX_ENDPOINT_ID = 2**24 - 1  # ids are part of every route cookie
MAX_OFPORT = 0xFFFFFF00  # OFPP_MAX
KEEP_CHANGES = 10_000

Callback = Callable[[Change], None]


class ChangesPruned(Conflict):
    """changes_since() was asked for revisions the log no longer holds: take a snapshot."""


class Store(ABC):
    """Tenants, networks, hosts and endpoints, with a change feed.

    Getters raise NotFound for unknown objects; creators raise Conflict for
    duplicates and InvalidInput for malformed values.  Every committed mutation
    gets a new, persisted, increasing revision and is passed to every
    subscriber after the commit, in commit order.
    """

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
        """The current revision and every object: tenants, networks, hosts, endpoints."""

    @abstractmethod
    async def changes_since(self, rev: int) -> list[Change]:
        """Every logged Change with a revision above `rev`, oldest first.

        Raises ChangesPruned when the log no longer reaches back to `rev`.
        Heartbeats are coalesced: only the latest one per host is kept."""

    # -- tenants ------------------------------------------------------------------

    @abstractmethod
    async def create_tenant(self, name: str) -> Tenant: ...

    @abstractmethod
    async def delete_tenant(self, name: str) -> Tenant: ...

    @abstractmethod
    async def get_tenant(self, name: str) -> Tenant: ...

    @abstractmethod
    async def list_tenants(self) -> list[Tenant]: ...

    # -- networks -----------------------------------------------------------------

    @abstractmethod
    async def create_network(self, tenant: str, name: str, subnet: str, gateway: str | None = None,
                             isolated: bool = False) -> Network: ...

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
    async def heartbeat(self, name: str, now: float) -> Host: ...

    @abstractmethod
    async def get_host(self, name: str) -> Host: ...

    @abstractmethod
    async def list_hosts(self) -> list[Host]: ...

    @abstractmethod
    async def delete_host(self, name: str) -> Host: ...

    # -- endpoints ----------------------------------------------------------------

    @abstractmethod
    async def create_endpoint(self, tenant: str, network: str, name: str, host: str,
                              ip: str | None = None, mac: str | None = None,
                              labels: Mapping[str, str] | None = None) -> Endpoint: ...

    @abstractmethod
    async def update_endpoint(self, id: int, *, port: str | None = None,
                              ofport: int | None = None) -> Endpoint:
        """Set what is given (None leaves a field as it is)."""

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
    async def move_endpoint(self, id: int, host: str) -> Endpoint:
        """Same IP and MAC on `host`, with a PIP of its pool; unplugged (port "", ofport None)."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


# -- backend-neutral checks ----------------------------------------------------------


def check_name(kind: str, name: str, pattern: re.Pattern[str] = NAME_RE) -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise InvalidInput(f"invalid {kind} name {name!r}: must match {pattern.pattern}")
    return name


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(labels or {})
    for key, value in out.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidInput(f"label {key!r}={value!r}: labels map non-empty strings to strings")
    return out


def check_int(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} {value!r} must be an integer between {low} and {high}")
    return value


def check_host(host: Host) -> Host:
    """`host` with every field validated and addresses in canonical form."""
    check_name("host", host.name, HOST_NAME_RE)
    check_int(f"dpid of host {host.name}", host.dpid, 0, 2**64 - 1)
    check_int(f"underlay_prefix of host {host.name}", host.underlay_prefix, 1, 32)
    check_int(f"uplink_ofport of host {host.name}", host.uplink_ofport, 1, MAX_OFPORT)
    gw_mac = host.underlay_gateway_mac
    if isinstance(host.last_seen, bool) or not isinstance(host.last_seen, int | float) \
            or not math.isfinite(host.last_seen):
        raise InvalidInput(f"last_seen {host.last_seen!r} of host {host.name} must be a number")
    return dataclasses.replace(
        host,
        underlay_ip=str(ipam.check_address(host.underlay_ip, f"underlay_ip of host {host.name}")),
        underlay_mac=ipam.check_mac(host.underlay_mac, f"underlay_mac of host {host.name}"),
        pip_pool=str(ipam.check_subnet(host.pip_pool, f"pip_pool of host {host.name}")),
        underlay_gateway_mac=ipam.check_mac(gw_mac, f"underlay_gateway_mac of host {host.name}")
        if gw_mac else "",
        last_seen=float(host.last_seen),
    )


# -- objects in the change log ---------------------------------------------------------

_KINDS: dict[Kind, type[Tenant] | type[Network] | type[Host] | type[Endpoint]] = {
    "tenant": Tenant, "network": Network, "host": Host, "endpoint": Endpoint,
}


def kind_of(obj: Obj) -> Kind:
    for kind, cls in _KINDS.items():
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"not a model object: {obj!r}")


def obj_from_json(kind: str, data: dict[str, Any]) -> Obj:
    try:
        cls = _KINDS[kind]  # type: ignore[index]
    except KeyError:
        raise InvalidInput(f"unknown object kind {kind!r} in the change log") from None
    return cls(**data)
