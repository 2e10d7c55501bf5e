"""`GET /hosts/{name}/view`: the part of the model host `name`'s agent replicates for its
resolver, pushed as it changes (what is in it: controller/host_view.py).

Server-Sent Events: an event `snapshot` ({"host", "rev", "objects": [{"kind", "obj"}]},
objects as store/codec.py writes them), then one event `change` per Change in scope
({"rev", "kind", "obj", "deleted"}), in order, never coalesced, pushed as they come (all
those queued by one loop turn in one write), and a comment line as keep-alive every
KEEPALIVE seconds of quiet (the agent counts its view stale after 10 s without a line).
A fresh `snapshot` replaces everything before it (scope changed, the agent fell behind,
or the controller reloaded its view).

A host credential reads its own host's view only (403 for another); an admin any host's;
a tenant none.  The host must be registered (404 otherwise: its agent registers first).
Left out of the OpenAPI document, like /ui/stream: it never ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

from daolinet.controller.api.auth import AgentAuth
from daolinet.controller.controller import Controller
from daolinet.controller.host_view import HostViewFeed
from daolinet.errors import NotFound
from daolinet.store.codec import change_to_json

router = APIRouter()
KEEPALIVE = 3.0  # seconds between keep-alive comments of a quiet stream


def attach(app: FastAPI, ctrl: Controller) -> None:
    """Feed the host view streams from the controller's change feed."""
    feed = HostViewFeed(lambda: ctrl.view)
    ctrl.listeners.append(feed.model_changed)
    app.state.host_view_feed = feed


def event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/hosts/{name}/view", include_in_schema=False)
async def host_view(request: Request, caller: AgentAuth, name: str) -> StreamingResponse:
    caller.require_host(name)
    feed: HostViewFeed = request.app.state.host_view_feed
    if name not in feed.view().hosts:
        raise NotFound(f"host {name} not found")
    return StreamingResponse(push(feed, name), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def push(feed: HostViewFeed, host: str) -> AsyncIterator[bytes]:
    """The stream of `host`'s view: a snapshot, then its changes as they come."""
    with feed.subscribe(host) as sub:
        yield event("snapshot", sub.snapshot(feed.view()))
        while True:
            with contextlib.suppress(TimeoutError):  # quiet for KEEPALIVE: say so below
                await asyncio.wait_for(sub.wake.wait(), KEEPALIVE)
            resync, changes = sub.take()
            if resync or feed.reloaded(sub):  # a reload with no change since is seen here too
                yield event("snapshot", sub.snapshot(feed.view()))
            elif changes:
                yield b"".join(event("change", change_to_json(c)) for c in changes)
            else:
                yield b": keep-alive\n\n"
