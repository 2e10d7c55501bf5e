"""Request bodies.  Strict (daolinet.api_common): unknown keys and wrong types are refused by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import ConfigDict, Field

from daolinet.api_common import Strict
from daolinet.model.objects import DEFAULT_RULE_PRIORITY, DEFAULT_TENANT

OFPORT_MAX = 0xFFFFFF00

# Ids in paths: bounded, so no request can overflow the store's integers.
EndpointId = Annotated[int, Path(ge=1, le=2**24 - 1)]
RowId = Annotated[int, Path(ge=1, le=2**62)]


class TenantIn(Strict):
    name: str


class NetworkIn(Strict):
    name: str
    subnet: str
    tenant: str = DEFAULT_TENANT
    gateway: str | None = None
    isolated: bool = False
    external: bool = False
    subnet6: str | None = None  # dual-stack: an IPv6 subnet too (gateway6 defaults to its ::1)
    gateway6: str | None = None


class HostIn(Strict):
    name: str
    dpid: int = Field(ge=1, lt=1 << 64)
    underlay_ip: str
    underlay_mac: str
    pip_pool: str
    underlay_prefix: int = Field(default=24, ge=8, le=30)
    underlay_gateway_mac: str = ""
    uplink_ofport: int = Field(default=1, ge=1, lt=OFPORT_MAX)
    pip_pool6: str = ""  # "" : no IPv6 (the store checks the IPv6 fields)
    underlay_ip6: str = ""
    underlay_prefix6: int = Field(default=64, ge=1, le=128)


class EndpointIn(Strict):
    name: str
    network: str
    host: str
    tenant: str = DEFAULT_TENANT
    ip: str | None = None
    mac: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list, description="More DNS names (see PATCH).")


class EndpointPatch(Strict):
    port: str | None = None
    ofport: int | None = Field(default=None, ge=1, lt=OFPORT_MAX)
    aliases: list[str] | None = Field(default=None, description=(
        "More DNS names of the endpoint in its tenant (Docker: the container's name and its network "
        "aliases), replacing those it has ([]: none): DNS labels (1 to 63 letters, digits and hyphens, "
        "not starting or ending with a hyphen), stored lower-case, each once, at most 16.  Not unique: "
        "several endpoints may share one, and DNS answers with all of them; an endpoint's name wins "
        "over another's alias."))


class MoveIn(Strict):
    host: str
    port: str | None = None  # when the interface is already plugged there: its port
    ofport: int | None = Field(default=None, ge=1, lt=OFPORT_MAX)


class GroupIn(Strict):
    name: str
    tenant: str = DEFAULT_TENANT
    members: list[str] = Field(default_factory=list)


class MemberIn(Strict):
    member: str


class PairIn(Strict):
    a: str
    b: str
    tenant: str = DEFAULT_TENANT


class L4RuleIn(Strict):
    """An l4 rule: "from" and "to" are group names or "cidr:NETWORK" (the older names
    from_group and to_group are accepted too).  The store checks every value."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    from_group: str = Field(alias="from")
    to_group: str = Field(alias="to")
    protocol: str = "any"  # tcp | udp | icmp | any
    ports: str = ""  # "N" or "N-M", tcp and udp only; "" any port
    icmp_type: int | None = None  # icmp only; None any type
    action: str = "allow"  # allow | deny
    priority: int = DEFAULT_RULE_PRIORITY  # 0..RULE_PRIORITY_MAX, higher first
    name: str = ""  # unique in the tenant, never all digits
    tenant: str = DEFAULT_TENANT


class TraceIn(Strict):
    src: str
    dst: str
    tenant: str = DEFAULT_TENANT
    protocol: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)
    ipv6: bool = False  # trace the pair's IPv6 route (both need an IPv6 address)


class TokenIn(Strict):
    name: str
    tenant: str | None = None
    host: str | None = None  # a host token (bound to that host) instead of an admin one


class PortmapIn(Strict):
    name: str
    container: str
    rule: str  # "HOSTPORT:CONTAINERPORT[/tcp|udp]"
    tenant: str = DEFAULT_TENANT
    host: str | None = None  # default: the container's host
