"""The store interface: the only durable state of daolinet, behind one API.

Controllers read a `snapshot()` into their View and then follow the change
feed: `subscribe()` for this instance's own commits, `changes_since()` for
everything committed (by any process) after a revision, and `watch_changes()`
to follow every writer's commits as they happen (SQLite: by polling the log;
etcd: a real watch).  Writes validate their
input here (backend-neutral checks) and allocate addresses with `ipam`, each
in one transaction: an error leaves nothing changed and emits no Change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from daolinet.errors import Conflict, InvalidInput, SystemFailure
from daolinet.model.objects import (
    MEMBER_KINDS,
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
from daolinet.model.view import Change, Kind, Obj
from daolinet.store import ipam
from daolinet.store.liveness import DEFAULT_HOST_TTL

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")  # tenants and networks
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # what Docker allows, and more
MAX_ENDPOINT_ID = 2**24 - 1  # ids are part of every route cookie
MAX_OFPORT = 0xFFFFFF00  # OFPP_MAX
KEEP_CHANGES = 10_000
LABEL_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")  # KEY and VALUE of a "label:KEY=VALUE" member
TOKEN_HASH_RE = re.compile(r"^[0-9a-f]{64}$")  # sha256, lowercase hex
PAIR_ACTIONS = ("connect", "disconnect")
L4_PROTOCOLS = ("tcp", "udp", "icmp")
RULE_KINDS = ("pair", "l4")
_PORTS_RE = re.compile(r"^([0-9]{1,10})(?:-([0-9]{1,10}))?$")

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

    WATCH_POLL_INTERVAL = 0.2  # seconds between two polls of the default watch_changes()
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
                             isolated: bool = False, external: bool = False) -> Network: ...

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
    async def create_l4_rule(self, tenant: str, from_group: str, to_group: str, protocol: str,
                             ports: str = "") -> Rule: ...

    @abstractmethod
    async def get_rule(self, tenant: str, id: int) -> Rule: ...

    @abstractmethod
    async def list_rules(self, tenant: str | None = None, kind: str | None = None) -> list[Rule]: ...

    @abstractmethod
    async def delete_rule(self, tenant: str, id: int) -> Rule: ...

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
    if not isinstance(host.alive, bool):
        raise InvalidInput(f"alive {host.alive!r} of host {host.name} must be true or false")
    return dataclasses.replace(
        host,
        underlay_ip=str(ipam.check_address(host.underlay_ip, f"underlay_ip of host {host.name}")),
        underlay_mac=ipam.check_mac(host.underlay_mac, f"underlay_mac of host {host.name}"),
        pip_pool=str(ipam.check_subnet(host.pip_pool, f"pip_pool of host {host.name}")),
        underlay_gateway_mac=ipam.check_mac(gw_mac, f"underlay_gateway_mac of host {host.name}")
        if gw_mac else "",
        last_seen=float(host.last_seen),
    )


def check_member(member: object) -> str:
    """A group member: "network:NAME", "container:NAME" or "label:KEY=VALUE"."""
    form = "network:NAME, container:NAME or label:KEY=VALUE"
    if not isinstance(member, str):
        raise InvalidInput(f"group member {member!r} must be a string: {form}")
    kind, sep, rest = member.partition(":")
    if not sep or kind not in MEMBER_KINDS:
        raise InvalidInput(f"invalid group member {member!r}: must be {form}")
    try:
        if kind == "network":
            check_name("network", rest)
        elif kind == "container":
            check_name("container", rest, ENDPOINT_NAME_RE)
    except InvalidInput as e:
        raise InvalidInput(f"invalid group member {member!r}: {e}") from None
    key, eq, value = rest.partition("=")
    if kind == "label" and not (eq and LABEL_PART_RE.match(key) and LABEL_PART_RE.match(value)):
        raise InvalidInput(f"invalid group member {member!r}: must be label:KEY=VALUE with KEY and "
                           f"VALUE each matching {LABEL_PART_RE.pattern}")
    return member


def check_members(members: Sequence[str]) -> tuple[str, ...]:
    """Checked members, sorted and without duplicates."""
    if isinstance(members, str) or not isinstance(members, Sequence):
        raise InvalidInput(f"group members {members!r} must be a list of strings")
    return tuple(sorted({check_member(m) for m in members}))


def check_choice(what: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{what} {value!r} must be one of: {', '.join(choices)}")
    return value


def check_ports(protocol: str, ports: object) -> str:
    """`ports` of an l4 rule in canonical form: "N" or "N-M" for tcp and udp, "" for icmp."""
    check_choice("protocol", protocol, L4_PROTOCOLS)
    if not isinstance(ports, str):
        raise InvalidInput(f"ports {ports!r} must be a string like \"80\" or \"8000-8100\"")
    if protocol == "icmp":
        if ports:
            raise InvalidInput(f"icmp rules take no ports, got {ports!r}")
        return ""
    if not ports:
        raise InvalidInput(f"{protocol} rules need ports: \"N\" or \"N-M\" between 1 and 65535")
    match = _PORTS_RE.match(ports)
    if match is None:
        raise InvalidInput(f"ports {ports!r} of a {protocol} rule must be \"N\" or \"N-M\"")
    lo = int(match[1])
    hi = lo if match[2] is None else int(match[2])
    for port in (lo, hi):
        if not 1 <= port <= 65535:
            raise InvalidInput(f"port {port} in {ports!r} is out of range: ports are 1 to 65535")
    if lo > hi:
        raise InvalidInput(f"port range {ports!r} is empty: {lo} is above {hi}")
    return str(lo) if lo == hi else f"{lo}-{hi}"


def check_token(name: str, hash: str, created: float, tenant: str | None = None,
                host: str | None = None) -> float:
    """Checks a new token's fields; returns `created` as a float."""
    check_name("token", name)
    if host is not None:
        check_name("host", host)
        if tenant is not None:
            raise InvalidInput(f"token {name} is for tenant {tenant} or for host {host}, not both")
    if not isinstance(hash, str) or not TOKEN_HASH_RE.match(hash):
        raise InvalidInput(f"hash of token {name} must be 64 lowercase hex digits (a sha256)")
    if isinstance(created, bool) or not isinstance(created, int | float) or not math.isfinite(created):
        raise InvalidInput(f"created {created!r} of token {name} must be a number")
    return float(created)


def token_what(name: str, tenant: str | None, host: str | None) -> str:
    """A token as messages name it."""
    if host is not None:
        return f"token {name} of host {host}"
    return f"admin token {name}" if tenant is None else f"token {name} of tenant {tenant}"


# -- objects in the change log ---------------------------------------------------------

_KINDS: dict[Kind, type[Tenant] | type[Network] | type[Host] | type[Endpoint] | type[Group] | type[Rule]
             | type[Token] | type[Portmap] | type[ControllerRecord]] = {
    "tenant": Tenant, "network": Network, "host": Host, "endpoint": Endpoint,
    "group": Group, "rule": Rule, "token": Token, "portmap": Portmap, "controller": ControllerRecord,
}


def kind_of(obj: Obj) -> Kind:
    for kind, cls in _KINDS.items():
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"not a model object: {obj!r}")


def obj_to_json(obj: Obj) -> dict[str, Any]:
    """Every field of `obj`, for the change log (unlike `Token.to_json`, this keeps the hash)."""
    data = dataclasses.asdict(obj)
    if isinstance(obj, Group):
        data["members"] = list(obj.members)
    return data


def obj_from_json(kind: str, data: dict[str, Any]) -> Obj:
    try:
        cls = _KINDS[kind]  # type: ignore[index]
    except KeyError:
        raise InvalidInput(f"unknown object kind {kind!r} in the change log") from None
    if cls is Group:
        data = {**data, "members": tuple(data.get("members", ()))}
    return cls(**data)


PORTMAP_PROTOCOLS = ("tcp", "udp")


def check_network(name: str, subnet: str, gateway: str | None, isolated: bool,
                  external: bool) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """A new network's input, checked the same way by every backend: (subnet, gateway)."""
    check_name("network", name)
    net = ipam.check_subnet(subnet)
    gw = ipam.default_gateway(net) if gateway is None else ipam.check_in_subnet(gateway, net, "gateway")
    for flag, value in (("isolated", isolated), ("external", external)):
        if not isinstance(value, bool):
            raise InvalidInput(f"{flag} {value!r} of network {name} must be true or false")
    return net, gw


def check_portmap(name: str, protocol: str, host_port: int, container_port: int) -> None:
    check_name("port mapping", name)
    if protocol not in PORTMAP_PROTOCOLS:
        raise InvalidInput(f"protocol {protocol!r} of port mapping {name}: use tcp or udp")
    check_int("host port", host_port, 1, 65535)
    check_int("container port", container_port, 1, 65535)
