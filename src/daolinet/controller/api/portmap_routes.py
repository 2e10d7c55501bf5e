"""Port mappings: a host's underlay IP:port -> a container's port.

An agent publishes Docker's `-p` (agent/docker_ports.py): a host credential lists,
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
    m = RULE_RE.match(rule)
    if m is None:
        raise InvalidInput(f"invalid rule {rule!r}: use HOSTPORT:CONTAINERPORT[/tcp|udp]")
    return int(m[1]), int(m[2]), m[3] or "tcp"


def _store(request: Request) -> Store:
    return request.app.state.ctrl.store  # type: ignore[no-any-return]


@router.get("/portmaps", tags=["portmaps"])
async def list_portmaps(request: Request, p: AgentAuth, tenant: str | None = None,
                        host: str | None = None) -> list[dict[str, Any]]:
    found = await _store(request).list_portmaps(p.tenant_filter(tenant), p.host_filter(host))
    return [m.to_json() for m in found]


@router.post("/portmaps", status_code=201, tags=["portmaps"])
async def create_portmap(request: Request, p: AgentAuth, body: PortmapIn) -> dict[str, Any]:
    p.see(body.tenant, f"tenant {body.tenant} not found")
    host_port, container_port, protocol = parse_rule(body.rule)
    if p.kind == "host":  # its own host, for a container on its own host
        e = await _store(request).find_endpoint(body.tenant, body.container)
        p.confine_to_host(body.host or e.host)
        p.confine_to_host(e.host)
    pm = await _store(request).create_portmap(body.tenant, body.name, body.container, protocol,
                                              host_port, container_port, body.host)
    return pm.to_json()


@router.get("/portmaps/{tenant}/{name}", tags=["portmaps"])
async def get_portmap(request: Request, p: Auth, tenant: str, name: str) -> dict[str, Any]:
    p.see(tenant, f"port mapping {name} of tenant {tenant} not found")
    return (await _store(request).get_portmap(tenant, name)).to_json()


@router.delete("/portmaps/{tenant}/{name}", tags=["portmaps"])
async def delete_portmap(request: Request, p: AgentAuth, tenant: str, name: str) -> dict[str, Any]:
    p.see(tenant, f"port mapping {name} of tenant {tenant} not found")
    if p.kind == "host":
        p.confine_to_host((await _store(request).get_portmap(tenant, name)).host)
    return (await _store(request).delete_portmap(tenant, name)).to_json()
