"""Port mappings: a host's underlay IP:port -> a container's port.

An agent publishes Docker's `-caller` (agent/docker_ports.py): a host credential lists,
creates and deletes mappings on its own host, for containers on its own host."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request

from daolinet.controller.api.auth import AgentAuth, Auth
from daolinet.controller.api.models import PortmapIn
from daolinet.errors import InvalidInput
from daolinet.store.base import Store

router = APIRouter()
RULE_RE = re.compile(r"^(\d{1,5}):(\d{1,5})(?:/(tcp|udp))?$")


def parse_rule(rule: str) -> tuple[int, int, str]:
    """'8080:80/tcp' -> (8080, 80, 'tcp'); the protocol defaults to tcp."""
    parsed = RULE_RE.match(rule)
    if parsed is None:
        raise InvalidInput(f"invalid rule {rule!r}: use HOSTPORT:CONTAINERPORT[/tcp|udp]")
    return int(parsed[1]), int(parsed[2]), parsed[3] or "tcp"


def _store(request: Request) -> Store:
    return request.app.state.ctrl.store  # type: ignore[no-any-return]


@router.get("/portmaps", tags=["portmaps"])
async def list_portmaps(request: Request, caller: AgentAuth, tenant: str | None = None,
                        host: str | None = None) -> list[dict[str, Any]]:
    found = await _store(request).list_portmaps(caller.tenant_filter(tenant), caller.host_filter(host))
    return [m.to_json() for m in found]


@router.post("/portmaps", status_code=201, tags=["portmaps"])
async def create_portmap(request: Request, caller: AgentAuth, body: PortmapIn) -> dict[str, Any]:
    caller.see(body.tenant, f"tenant {body.tenant} not found")
    host_port, container_port, protocol = parse_rule(body.rule)
    if caller.kind == "host":  # its own host, for a container on its own host
        endpoint = await _store(request).find_endpoint(body.tenant, body.container)
        caller.confine_to_host(body.host or endpoint.host)
        caller.confine_to_host(endpoint.host)
    portmap = await _store(request).create_portmap(body.tenant, body.name, body.container, protocol,
                                                   host_port, container_port, body.host)
    return portmap.to_json()


@router.get("/portmaps/{tenant}/{name}", tags=["portmaps"])
async def get_portmap(request: Request, caller: Auth, tenant: str, name: str) -> dict[str, Any]:
    caller.see(tenant, f"port mapping {name} of tenant {tenant} not found")
    return (await _store(request).get_portmap(tenant, name)).to_json()


@router.delete("/portmaps/{tenant}/{name}", tags=["portmaps"])
async def delete_portmap(request: Request, caller: AgentAuth, tenant: str, name: str) -> dict[str, Any]:
    caller.see(tenant, f"port mapping {name} of tenant {tenant} not found")
    if caller.kind == "host":
        caller.confine_to_host((await _store(request).get_portmap(tenant, name)).host)
    return (await _store(request).delete_portmap(tenant, name)).to_json()
