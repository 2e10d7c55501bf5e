"""The infrastructure as the store knows it: the controllers' own records
(controller/record.py), read-only, for admins.  Hosts are under /hosts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from daolinet.controller.api.auth import Auth

router = APIRouter()


@router.get("/controllers", tags=["ops"])
async def list_controllers(request: Request, caller: Auth) -> list[dict[str, Any]]:
    """Every controller that recorded itself: its listeners, advertised addresses and etcd
    members.  Containers reach none of these addresses (nor any host's underlay address)."""
    caller.require_admin()
    return [c.to_json() for c in await request.app.state.ctrl.store.list_controllers()]
