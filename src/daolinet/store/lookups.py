"""Lookups that must find their object, once for every backend: each reads
through a transaction's `Reads` and raises the NotFound a user sees (naming the
tenant first when the tenant itself is missing)."""

from __future__ import annotations

from daolinet.errors import NotFound
from daolinet.model.objects import Endpoint, Group, Host, Network, Portmap, Rule, Tenant
from daolinet.store.backend import Reads


async def must_tenant(r: Reads, name: str) -> Tenant:
    tenant = await r.tenant(name)
    if tenant is None:
        raise NotFound(f"tenant {name} not found")
    return tenant


async def must_network(r: Reads, tenant: str, name: str) -> Network:
    network = await r.network(tenant, name)
    if network is None:
        await must_tenant(r, tenant)
        raise NotFound(f"network {name} of tenant {tenant} not found")
    return network


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
    group = await r.group(tenant, name)
    if group is None:
        await must_tenant(r, tenant)
        raise NotFound(f"group {name} of tenant {tenant} not found")
    return group


async def must_rule(r: Reads, tenant: str, id: int) -> Rule:
    rule = await r.rule(tenant, id)
    if rule is None:
        await must_tenant(r, tenant)
        raise NotFound(f"rule {id} of tenant {tenant} not found")
    return rule


async def must_portmap(r: Reads, tenant: str, name: str) -> Portmap:
    portmap = await r.portmap(tenant, name)
    if portmap is None:
        raise NotFound(f"port mapping {name} of tenant {tenant} not found")
    return portmap
