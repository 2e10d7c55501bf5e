"""The live map (`/ui`): a page, its script and style, a push stream of what the map
shows, and a container's details.  The map itself is controller/ui/.

The page, script and style hold no data and are served to anyone (a browser cannot send
a bearer token when it navigates): the page asks for a token, keeps it in the tab's
sessionStorage, and sends it with every call.  With TLS, a browser's client certificate
serves instead, as for the rest of the API.  Everything with data needs the API's
credentials and is tenant-scoped: a tenant token sees its own tenant only.

`GET /ui/stream` is Server-Sent Events read with fetch() (EventSource cannot send a
header): an event `snapshot` (hosts, containers, live routes), then `delta` events
(routes plugged and gone, containers and hosts changed) pushed as they happen,
coalesced over PUSH_WINDOW, and a comment line as keep-alive every KEEPALIVE seconds
of quiet.  It is left out of the OpenAPI document (it never ends)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from daolinet.controller.api.auth import Auth
from daolinet.controller.controller import Controller
from daolinet.controller.ui.feed import Feed, endpoint_json, route_json
from daolinet.decide.route import policy_of
from daolinet.errors import NotFound

router = APIRouter()
PUSH_WINDOW = 0.1  # seconds of changes coalesced into one push
KEEPALIVE = 15.0  # seconds between keep-alive comments of a quiet stream
STATIC = {"index.html": "text/html", "map.js": "text/javascript", "map.css": "text/css"}
# The page runs only its own script and style, and talks only to this API.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def attach(app: FastAPI, ctrl: Controller) -> None:
    """Feed the map from the controller's route table and change feed."""
    feed = Feed(lambda: ctrl.view)
    ctrl.ctx.routes.listener = feed.route_changed
    ctrl.listeners.append(feed.model_changed)
    app.state.feed = feed


@cache
def _static(name: str) -> bytes:
    return resources.files("daolinet.controller.ui").joinpath("static", name).read_bytes()


@router.get("/ui", include_in_schema=False)
async def page() -> Response:
    return Response(_static("index.html"), media_type=STATIC["index.html"], headers=HEADERS)


@router.get("/ui/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound(f"no file {name}")
    return Response(_static(name), media_type=STATIC[name], headers=HEADERS)


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/ui/stream", include_in_schema=False)
async def stream(request: Request, caller: Auth) -> StreamingResponse:
    ctrl = request.app.state.ctrl
    feed: Feed = request.app.state.feed
    me = {"tenant": caller.tenant, "admin": caller.admin, "name": caller.name,
          "idle_timeout": ctrl.ctx.config.idle_timeout}
    return StreamingResponse(_push(ctrl, feed, caller.tenant, me), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _push(ctrl: Controller, feed: Feed, tenant: str | None, me: dict[str, Any]) -> AsyncIterator[bytes]:
    with feed.subscribe(tenant) as sub:
        yield _event("snapshot", {"me": me, **feed.snapshot(tenant, ctrl.ctx.routes.all())})
        while True:
            try:
                await asyncio.wait_for(sub.wake.wait(), KEEPALIVE)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            await asyncio.sleep(PUSH_WINDOW)  # let a burst coalesce
            resync, items = sub.take()
            if resync:
                yield _event("snapshot", {"me": me, **feed.snapshot(tenant, ctrl.ctx.routes.all())})
            elif items:
                yield _event("delta", Feed.delta(items, tenant is None))


@router.get("/ui/containers/{eid}", tags=["ui"])
async def container(request: Request, caller: Auth, eid: int, stats: bool = True) -> dict[str, Any]:
    """A container as the map shows it: identity, live routes (with packet counts), and
    the groups and rules that apply to it."""
    ctrl = request.app.state.ctrl
    view = ctrl.view
    e = view.endpoints.get(eid)
    if e is None:
        raise NotFound(f"container {eid} not found")
    caller.see(e.tenant, f"container {eid} not found")
    policy = policy_of(view)
    groups = policy.groups_of(e)
    rules = [r for r in view.rules.values() if r.tenant == e.tenant and (
        (r.kind == "pair" and e.name in (r.a, r.b)) or (r.kind == "l4" and ({r.a, r.b} & groups)))]
    routes = ctrl.ctx.routes.of_endpoint(e.id)
    rows = [route_json(r) for r in routes]
    if stats and routes:
        with contextlib.suppress(Exception):  # counters are best effort: a switch may be slow
            counters = await asyncio.wait_for(ctrl.route_counters(routes), 5.0)
            for route, row in zip(routes, rows, strict=True):
                row.update(counters.get((route.cookie, route.scope), {}))
    for route, row in zip(routes, rows, strict=True):
        other = view.endpoints.get(route.b if route.a == e.id else route.a)
        row["peer"] = other.name if other is not None else None
    host = view.host_of(e)
    return {"container": endpoint_json(e), "alive": bool(host and host.alive), "routes": rows,
            "groups": sorted(groups),
            "rules": [{**r.to_json(), "label": r.label} for r in sorted(rules, key=lambda r: r.order_key())]}
