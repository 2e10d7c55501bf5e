"""The objects of daolinet's model.  Frozen: a change is a new object.

Addresses are kept as strings in their canonical form (what ipaddress prints),
so objects serialise to JSON and compare without surprises.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

DEFAULT_TENANT = "default"
DEFAULT_RULE_PRIORITY = 100
RULE_PRIORITY_MAX = 1000
CIDR_PREFIX = "cidr:"


# Fields added for IPv6 and names (issue 18): left out of JSON while they hold their default,
# so an IPv4-only object without aliases serialises exactly as before and older readers and
# clients see no change.
IPV6_FIELDS: dict[str, tuple[str, ...]] = {
    "Network": ("subnet6", "gateway6"),
    "Host": ("pip_pool6", "underlay_ip6", "underlay_prefix6"),
    "Endpoint": ("ip6", "pip6", "aliases"),
}
_IPV6_DEFAULTS: dict[str, object] = {"underlay_prefix6": 64, "aliases": ()}


def without_unset(obj: object, data: dict[str, Any]) -> dict[str, Any]:
    """`data` (the JSON of `obj`) without the issue-18 fields that hold their default."""
    for name in IPV6_FIELDS.get(type(obj).__name__, ()):
        if data.get(name) == _IPV6_DEFAULTS.get(name, ""):
            del data[name]
    return data


@dataclass(frozen=True)
class Tenant:
    name: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Network:
    """A tenant's subnet.  Subnets may overlap across tenants, never within one."""

    id: int
    name: str
    tenant: str
    subnet: str  # "10.1.0.0/24"
    gateway: str  # "10.1.0.1"
    isolated: bool = False
    external: bool = False  # members reach addresses outside every network, SNATed by their host
    subnet6: str = ""  # "fd00:1::/64" on a dual-stack network, "" on an IPv4-only one
    gateway6: str = ""  # "fd00:1::1"

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def net6(self) -> ipaddress.IPv6Network | None:
        return ipaddress.IPv6Network(self.subnet6) if self.subnet6 else None

    @property
    def prefixlen(self) -> int:
        return self.net.prefixlen

    def to_json(self) -> dict[str, Any]:
        return without_unset(self, asdict(self))


@lru_cache(maxsize=1 << 16)
def _ip_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


@lru_cache(maxsize=1 << 16)
def _segment(ip: str, prefix: int) -> tuple[int, int]:
    """(network, mask) of the segment of an address with a prefix length."""
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return _ip_int(ip) & mask, mask


@dataclass(frozen=True)
class Host:
    """A container host: its bridge's datapath id and its place on the underlay."""

    name: str
    dpid: int
    underlay_ip: str
    underlay_mac: str
    pip_pool: str  # "198.18.1.0/24": PIPs of containers on this host
    underlay_prefix: int = 24
    underlay_gateway_mac: str = ""  # next hop for other subnets ("" : same L2 only)
    uplink_ofport: int = 1
    last_seen: float = 0.0
    # False once its agent's heartbeats stopped for the host TTL (store/liveness.py): its
    # containers are down, no route is plugged to them.  Set by controllers, never by clients.
    alive: bool = True
    pip_pool6: str = ""  # "2001:db8:0:1::/112": IPv6 PIPs of dual-stack containers ("" : none)
    underlay_ip6: str = ""  # the host's own IPv6 underlay address ("" : none)
    underlay_prefix6: int = 64

    @property
    def pool(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.pip_pool)

    @property
    def pool6(self) -> ipaddress.IPv6Network | None:
        return ipaddress.IPv6Network(self.pip_pool6) if self.pip_pool6 else None

    def same_segment(self, other: Host) -> bool:
        """True if frames reach `other` directly, without an underlay router.
        On every cross-host route's path: integer masks, parsed once per address."""
        net, mask = _segment(self.underlay_ip, self.underlay_prefix)
        return _ip_int(other.underlay_ip) & mask == net

    def to_json(self) -> dict[str, Any]:
        return without_unset(self, asdict(self))


@dataclass(frozen=True)
class Endpoint:
    """A container's interface on a network.  `id` is small and dense: it is
    part of every route cookie.  `ofport` is None until the agent plugs it."""

    id: int
    name: str
    tenant: str
    network: str
    ip: str
    mac: str
    host: str
    pip: str
    port: str = ""  # host-side interface name
    ofport: int | None = None
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    ip6: str = ""  # on a dual-stack network: its logical IPv6 address
    pip6: str = ""  # and its IPv6 PIP, from its host's pip_pool6
    # More DNS names in its tenant (model/names.py: checked DNS labels, lower-case, each once);
    # not unique: several endpoints of a tenant may share one.
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # JSON gives a list: keep the object hashable and comparable
        if type(self.aliases) is not tuple:
            object.__setattr__(self, "aliases", tuple(self.aliases))

    def to_json(self) -> dict[str, Any]:
        d = without_unset(self, asdict(self))
        if "aliases" in d:
            d["aliases"] = list(self.aliases)
        return d


MEMBER_KINDS = ("network", "container", "label")


@dataclass(frozen=True)
class Group:
    """A business relationship: its members may talk across networks.

    Members are "network:NAME", "container:NAME" or "label:KEY=VALUE"
    (containers whose labels carry that pair), all within the group's tenant.
    """

    id: int
    tenant: str
    name: str
    members: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["members"] = list(self.members)
        return d


@dataclass(frozen=True)
class Rule:
    """A policy rule of a tenant (docs/policy.md).

    kind "pair": `connect` (ACCEPT) or `disconnect` (DROP) between containers
    a and b (names, a < b), overriding everything else.
    kind "l4": `allow` or `deny` traffic from selector a to selector b, where a
    selector is a group name or "cidr:NETWORK" (addresses outside daolinet);
    protocol "" means any, ports "" any port, icmp_type None any type.  Rules
    are evaluated first-match by priority (higher first; at equal priority deny
    before allow, then the older rule); for the pairs a group's allow rules
    cover, only what some rule allows passes.
    """

    id: int
    tenant: str
    kind: str  # "pair" | "l4"
    action: str  # pair: "connect" | "disconnect"; l4: "allow" | "deny"
    a: str
    b: str
    protocol: str = ""  # l4: "tcp" | "udp" | "icmp" | "" (any)
    ports: str = ""  # l4: "80" or "8000-8100"; "" for any port, and for icmp
    name: str = ""  # l4: unique within the tenant when set
    priority: int = DEFAULT_RULE_PRIORITY
    icmp_type: int | None = None  # l4, icmp only

    def port_range(self) -> tuple[int, int]:
        if not self.ports:
            return (0, 65535)
        lo, _, hi = self.ports.partition("-")
        return (int(lo), int(hi or lo))

    @property
    def label(self) -> str:
        """How logs, traces and errors name the rule."""
        return f"rule {self.name or self.id}"

    def order_key(self) -> tuple[int, int, int]:
        """Evaluation order: higher priority first; deny before allow; older first."""
        return (-self.priority, 0 if self.action == "deny" else 1, self.id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cidr_of(selector: str) -> str | None:
    """The network of a "cidr:NETWORK" rule selector, None for a group name."""
    return selector[5:] if selector.startswith(CIDR_PREFIX) else None


@dataclass(frozen=True)
class Token:
    """An API token, stored hashed.  tenant None: an admin token, unless `host` is set:
    then a host token, bound to that host (agents of an --insecure installation; with
    TLS a host shows its certificate instead)."""

    id: int
    name: str
    tenant: str | None
    hash: str  # sha256 hex of the secret
    created: float = 0.0
    host: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["hash"]
        return d


@dataclass(frozen=True)
class Portmap:
    """Traffic to `host`'s underlay IP:host_port reaches container:container_port,
    wherever the container runs; replies return through `host`."""

    id: int
    tenant: str
    name: str
    container: str  # endpoint name within the tenant
    host: str
    protocol: str  # "tcp" | "udp"
    host_port: int
    container_port: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ControllerRecord:
    """A controller as it recorded itself when it started: where its API and OpenFlow
    listeners are ("IP:PORT"; wildcard and unix listeners give none), the addresses it
    was told to advertise (--advertise) and the etcd members it uses ("IP:PORT").
    Infrastructure: no container's packet reaches any of these addresses (flows/infra.py)."""

    id: str
    api: tuple[str, ...] = ()
    openflow: tuple[str, ...] = ()
    advertise: tuple[str, ...] = ()
    etcd: tuple[str, ...] = ()
    started: float = 0.0

    def __post_init__(self) -> None:  # JSON gives lists: keep the object hashable and comparable
        for name in ("api", "openflow", "advertise", "etcd"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def addresses(self) -> frozenset[str]:
        """Every IP address of this controller and of its etcd members."""
        return frozenset(a.rpartition(":")[0] or a for a in (*self.api, *self.openflow, *self.etcd)) \
            | frozenset(self.advertise)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update({k: list(v) for k, v in d.items() if isinstance(v, tuple)})
        return d
