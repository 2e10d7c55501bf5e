"""Tenants, networks, hosts and endpoints.

Routes an agent calls take `AgentAuth`, and confine a host credential to its own
host: it registers and heartbeats itself, creates, patches (ports and DNS aliases),
deletes endpoints on itself and moves endpoints onto itself; it reads tenants, networks and endpoints
(what plugging needs).  The one write beyond its host: networks, which the Docker
driver creates and deletes for `docker network create/rm -d daolinet` on that host
(deleting one that any container still uses is refused as for anyone)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from daolinet.controller.api.auth import AgentAuth, Auth, Principal
from daolinet.controller.api.models import (
    EndpointId,
    EndpointIn,
    EndpointPatch,
    HostIn,
    MoveIn,
    NetworkIn,
    TenantIn,
)
from daolinet.errors import InvalidInput, NotFound
from daolinet.model import Endpoint, Host
from daolinet.store.base import Store

router = APIRouter()


def _store(request: Request) -> Store:
    return request.app.state.ctrl.store  # type: ignore[no-any-return]


@router.get("/tenants", tags=["tenants"])
async def list_tenants(request: Request, caller: Auth) -> list[dict[str, Any]]:
    tenants = await _store(request).list_tenants()
    return [t.to_json() for t in tenants if caller.admin or t.name == caller.tenant]


@router.post("/tenants", status_code=201, tags=["tenants"])
async def create_tenant(request: Request, caller: Auth, body: TenantIn) -> dict[str, Any]:
    caller.require_admin()
    return (await _store(request).create_tenant(body.name)).to_json()


@router.get("/tenants/{name}", tags=["tenants"])
async def get_tenant(request: Request, caller: AgentAuth, name: str) -> dict[str, Any]:
    caller.see(name, f"tenant {name} not found")
    return (await _store(request).get_tenant(name)).to_json()


@router.delete("/tenants/{name}", tags=["tenants"])
async def delete_tenant(request: Request, caller: Auth, name: str) -> dict[str, Any]:
    caller.require_admin()
    return (await _store(request).delete_tenant(name)).to_json()


@router.get("/networks", tags=["networks"])
async def list_networks(request: Request, caller: AgentAuth,
                        tenant: str | None = None) -> list[dict[str, Any]]:
    return [n.to_json() for n in await _store(request).list_networks(caller.tenant_filter(tenant))]


@router.post("/networks", status_code=201, tags=["networks"])
async def create_network(request: Request, caller: AgentAuth, body: NetworkIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    n = await _store(request).create_network(body.tenant, body.name, body.subnet, body.gateway,
                                             body.isolated, body.external,
                                             subnet6=body.subnet6, gateway6=body.gateway6)
    await request.app.state.ctrl.confirmed()  # a policy change too (Controller.confirmed)
    return n.to_json()


@router.get("/networks/{tenant}/{name}", tags=["networks"])
async def get_network(request: Request, caller: AgentAuth, tenant: str, name: str) -> dict[str, Any]:
    caller.see(tenant, f"network {name} of tenant {tenant} not found")
    return (await _store(request).get_network(tenant, name)).to_json()


@router.delete("/networks/{tenant}/{name}", tags=["networks"])
async def delete_network(request: Request, caller: AgentAuth, tenant: str, name: str) -> dict[str, Any]:
    caller.see(tenant, f"network {name} of tenant {tenant} not found")
    n = await _store(request).delete_network(tenant, name)
    await request.app.state.ctrl.confirmed()  # a policy change too (Controller.confirmed)
    return n.to_json()


@router.get("/hosts", tags=["hosts"])
async def list_hosts(request: Request, caller: Auth) -> list[dict[str, Any]]:
    caller.require_admin()
    return [h.to_json() for h in await _store(request).list_hosts()]


@router.post("/hosts", status_code=201, tags=["hosts"])
async def register_host(request: Request, caller: AgentAuth, body: HostIn) -> dict[str, Any]:
    caller.require_host(body.name)
    ctrl = request.app.state.ctrl
    host = Host(**body.model_dump(), last_seen=ctrl.ctx.clock())
    return (await _store(request).register_host(host)).to_json()


@router.get("/hosts/{name}", tags=["hosts"])
async def get_host(request: Request, caller: Auth, name: str) -> dict[str, Any]:
    caller.require_admin()
    return (await _store(request).get_host(name)).to_json()


@router.put("/hosts/{name}/heartbeat", tags=["hosts"])
async def heartbeat(request: Request, caller: AgentAuth, name: str) -> dict[str, Any]:
    caller.require_host(name)
    ctrl = request.app.state.ctrl
    return (await _store(request).heartbeat(name, ctrl.ctx.clock())).to_json()


@router.delete("/hosts/{name}", tags=["hosts"])
async def delete_host(request: Request, caller: Auth, name: str) -> dict[str, Any]:
    caller.require_admin()
    return (await _store(request).delete_host(name)).to_json()


@router.get("/endpoints", tags=["endpoints"])
async def list_endpoints(request: Request, caller: AgentAuth, tenant: str | None = None,
                         host: str | None = None, network: str | None = None) -> list[dict[str, Any]]:
    store = _store(request)
    found = await store.list_endpoints(caller.tenant_filter(tenant), caller.host_filter(host), network)
    down = {h.name for h in await store.list_hosts() if not h.alive}
    return [{**endpoint.to_json(), "alive": endpoint.host not in down} for endpoint in found]


async def _with_liveness(request: Request, endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint's JSON and `alive`: False while its host is down (store/liveness.py)."""
    try:
        alive = (await _store(request).get_host(endpoint.host)).alive
    except NotFound:
        alive = False
    return {**endpoint.to_json(), "alive": alive}


@router.post("/endpoints", status_code=201, tags=["endpoints"])
async def create_endpoint(request: Request, caller: AgentAuth, body: EndpointIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    caller.confine_to_host(body.host)
    endpoint = await _store(request).create_endpoint(body.tenant, body.network, body.name, body.host,
                                                     ip=body.ip, mac=body.mac, labels=body.labels,
                                                     aliases=body.aliases)
    return await _with_liveness(request, endpoint)


async def _endpoint(request: Request, caller: Principal, eid: int) -> Any:
    endpoint = await _store(request).get_endpoint(eid)
    caller.see(endpoint.tenant, f"endpoint {eid} not found")  # the store's own words: nothing to tell apart
    return endpoint


@router.get("/endpoints/{eid}", tags=["endpoints"])
async def get_endpoint(request: Request, caller: AgentAuth, eid: EndpointId) -> dict[str, Any]:
    return await _with_liveness(request, await _endpoint(request, caller, eid))


@router.get("/containers/{tenant}/{name}", tags=["endpoints"])
async def show_container(request: Request, caller: AgentAuth, tenant: str, name: str) -> dict[str, Any]:
    """A container's network identity: logical IP, PIP, MAC, host, gateway."""
    caller.see(tenant, f"endpoint {name} of tenant {tenant} not found")
    store = _store(request)
    endpoint = await store.find_endpoint(tenant, name)
    network = await store.get_network(tenant, endpoint.network)
    v6 = {"subnet6": network.subnet6, "gateway6": network.gateway6} if network.subnet6 else {}
    return {**await _with_liveness(request, endpoint), "subnet": network.subnet, "gateway": network.gateway,
            **v6}


@router.patch("/endpoints/{eid}", tags=["endpoints"])
async def patch_endpoint(request: Request, caller: AgentAuth, eid: EndpointId,
                         body: EndpointPatch) -> dict[str, Any]:
    endpoint = await _endpoint(request, caller, eid)
    caller.require_host(endpoint.host)  # ports and aliases are the agents' business (and the admin's)
    endpoint = await _store(request).update_endpoint(eid, port=body.port, ofport=body.ofport,
                                                     aliases=body.aliases)
    await request.app.state.ctrl.settle(endpoint.host)  # the port's flows are in place when we answer
    return await _with_liveness(request, endpoint)


@router.post("/endpoints/{eid}/move", tags=["endpoints"])
async def move_endpoint(request: Request, caller: AgentAuth, eid: EndpointId, body: MoveIn) -> dict[str, Any]:
    """Same logical IP and MAC on another host, with a new PIP; every route that
    named the old PIP is revoked.  The agents then re-plug its interface."""
    endpoint = await _endpoint(request, caller, eid)
    caller.require_host(body.host)  # the host it moves to adopts it (agent/service.py move_here)
    store = _store(request)
    await store.get_host(body.host)
    if body.host == endpoint.host:
        raise InvalidInput(f"endpoint {endpoint.name} is already on host {body.host}")
    # Already plugged there: one revision, old and new places at once, so the controller
    # makes the new path before it breaks the old one (controller/moves.py).
    moved = await store.move_endpoint(eid, body.host, body.port or "", body.ofport)
    if body.ofport is not None:
        await request.app.state.ctrl.settle_move(endpoint, moved)
    return await _with_liveness(request, moved)


@router.delete("/endpoints/{eid}", tags=["endpoints"])
async def delete_endpoint(request: Request, caller: AgentAuth, eid: EndpointId) -> dict[str, Any]:
    caller.confine_to_host((await _endpoint(request, caller, eid)).host)
    return await _with_liveness(request, await _store(request).delete_endpoint(eid))
