"""Operations: health, metrics, live routes, route-setup statistics, tokens, and
FlowMod forwarding between controllers (/internal: controllers only)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest

from daolinet.controller.api.auth import Anyone, Auth, PeerAuth, hash_token, new_secret
from daolinet.controller.api.models import RowId, TokenIn
from daolinet.errors import Conflict, InvalidInput, NotFound

router = APIRouter()
FOLLOW_WAIT = 2.0  # seconds a forwarded barrier waits for this controller's view to reach min_rev


@router.get("/health", tags=["ops"])
async def health(request: Request, caller: Anyone) -> dict[str, Any]:
    ctx = request.app.state.ctrl.ctx
    out: dict[str, Any] = {"ok": True, "rev": ctx.view.rev}
    if caller.admin:
        out.update(switches=sorted(ctx.sessions), synced=sorted(ctx.synced), routes=len(ctx.routes))
    return out


@router.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
async def metrics(request: Request, caller: Auth) -> str:
    caller.require_admin()
    return generate_latest(request.app.state.ctrl.ctx.metrics.registry).decode()


@router.get("/stats/route-setup", tags=["ops"])
async def route_setup_stats(request: Request, caller: Auth) -> dict[str, Any]:
    """PacketIn -> route installed and packet re-injected, over recent routes (µs)."""
    caller.require_admin()
    samples = sorted(request.app.state.ctrl.ctx.setup_samples)
    if not samples:
        return {"count": 0}

    def pct(quantile: float) -> float:
        return round(samples[min(len(samples) - 1, int(quantile * len(samples)))] * 1e6, 1)

    return {"count": len(samples), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
            "max_us": round(samples[-1] * 1e6, 1)}


@router.get("/routes", tags=["routes"])
async def routes(request: Request, caller: Auth, host: str | None = None, container: str | None = None,
                 tenant: str | None = None, stats: bool = False) -> list[dict[str, Any]]:
    """Live hot-plug routes; with stats, packet counts and idle time read from the switches."""
    ctrl = request.app.state.ctrl
    view = ctrl.view
    tenant = caller.tenant_filter(tenant)
    found = ctrl.ctx.routes.all()
    if host is not None:
        known = view.hosts.get(host)
        if known is None or not caller.admin:
            raise NotFound(f"no host {host}")
        found = [route for route in found if known.dpid in route.dpids]
    if tenant is not None:
        found = [route for route in found
                 if (first := view.endpoints.get(route.a)) is not None and first.tenant == tenant]
    if container is not None:
        found = [route for route in found if container in route.names]
    out = [route.to_json() for route in found]
    if stats:
        counters = await ctrl.route_counters(found)
        for route, row in zip(found, out, strict=True):
            row.update(counters.get((route.cookie, route.scope), {}))
    return out


@router.get("/tokens", tags=["tokens"])
async def list_tokens(request: Request, caller: Auth) -> list[dict[str, Any]]:
    caller.require_admin()
    return [t.to_json() for t in await request.app.state.ctrl.store.list_tokens()]


@router.post("/tokens", status_code=201, tags=["tokens"])
async def create_token(request: Request, caller: Auth, body: TokenIn) -> dict[str, Any]:
    """Issue a token; its secret is shown once, here, and stored only hashed.  With `host`:
    a host token, bound to that host (an agent's credential without TLS)."""
    caller.require_admin()
    secret = new_secret()
    token = await request.app.state.ctrl.store.create_token(body.name, body.tenant, hash_token(secret),
                                                            time.time(), host=body.host)
    return {**token.to_json(), "token": secret}


@router.delete("/tokens/{token_id}", tags=["tokens"])
async def delete_token(request: Request, caller: Auth, token_id: RowId) -> dict[str, Any]:
    caller.require_admin()
    return (await request.app.state.ctrl.store.delete_token(token_id)).to_json()  # type: ignore[no-any-return]


@router.post("/internal/switches/{dpid}/ofmsgs", tags=["ops"], include_in_schema=False)
async def forward_ofmsgs(request: Request, caller: PeerAuth, dpid: int) -> dict[str, Any]:
    """Another controller's FlowMods for a switch mastered here (controller/peers.py)."""
    body = await request.json()
    try:
        data, barrier = bytes.fromhex(body["data"]), bool(body.get("barrier", False))
        min_rev = int(body.get("min_rev", 0))
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"expected {{data: hex, barrier: bool, min_rev: int}}: {e}") from e
    ctrl = request.app.state.ctrl
    deadline = time.monotonic() + FOLLOW_WAIT
    while ctrl.view.rev < min_rev and time.monotonic() < deadline:
        await asyncio.sleep(0.005)  # the change is on its way through the store's watch
    session = ctrl.ctx.sessions.get(dpid)
    if session is None:
        raise Conflict(f"switch {dpid:#x} is not mastered by this controller")
    session.send_raw(data)
    if barrier:
        await session.barrier()
    return {"ok": True}


@router.post("/internal/settled", tags=["ops"], include_in_schema=False)
async def settled(request: Request, p: PeerAuth) -> dict[str, Any]:
    """Another controller's policy change: answer once this controller has applied its
    revision and the switches confirmed the deletions made here for it (Controller.confirmed)."""
    body = await request.json()
    try:
        rev = int(body["rev"])
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"expected {{rev: int}}: {e}") from e
    await request.app.state.ctrl.effects.settled(rev)
    return {"ok": True}
