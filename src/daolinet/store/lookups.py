"""Lookups that must find their object, once for every backend: each reads
through a transaction's `Reads` and raises the NotFound a user sees (naming the
tenant first when the tenant itself is missing)."""

from __future__ import annotations

from typing import TypeVar

from daolinet.errors import NotFound
from daolinet.model.objects import Endpoint, Group, Host, Network, Portmap, Rule, Tenant
from daolinet.store.backend import Reads
from daolinet.store.checks import NAME_RE

T = TypeVar("T")


async def must_tenant(r: Reads, name: str) -> Tenant:
    tenant = await r.tenant(name)
    if tenant is None:
        raise NotFound(f"tenant {name} not found")
    return tenant


async def _in_tenant(r: Reads, tenant: str, found: T | None, what: str) -> T:
    """`found`, or NotFound for `what` (or for the tenant, when that is missing too)."""
    if found is None:
        await must_tenant(r, tenant)
        raise NotFound(f"{what} of tenant {tenant} not found")
    return found


async def must_network(r: Reads, tenant: str, name: str) -> Network:
    return await _in_tenant(r, tenant, await r.network(tenant, name), f"network {name}")


async def must_host(r: Reads, name: str) -> Host:
    host = await r.host(name)
    if host is None:
        raise NotFound(f"host {name} not found")
    return host


async def must_endpoint(r: Reads, id: int) -> Endpoint:
    endpoint = await r.endpoint(id)
    if endpoint is None:
        raise NotFound(f"endpoint {id} not found")
    return endpoint


async def must_endpoint_named(r: Reads, tenant: str, name: str) -> Endpoint:
    endpoint = await r.endpoint_named(tenant, name)
    if endpoint is None:
        raise NotFound(f"endpoint {name} of tenant {tenant} not found")
    return endpoint


async def must_group(r: Reads, tenant: str, name: str) -> Group:
    return await _in_tenant(r, tenant, await r.group(tenant, name), f"group {name}")


async def must_rule(r: Reads, tenant: str, ref: int | str) -> Rule:
    """A rule by id, or an l4 rule by name (names are never all digits)."""
    if isinstance(ref, str):
        found = await r.rule_named(tenant, ref) if NAME_RE.match(ref) else None
    else:
        found = await r.rule(tenant, ref)
    return await _in_tenant(r, tenant, found, f"rule {ref}")


async def must_portmap(r: Reads, tenant: str, name: str) -> Portmap:
    portmap = await r.portmap(tenant, name)
    if portmap is None:
        raise NotFound(f"port mapping {name} of tenant {tenant} not found")
    return portmap
