"""The policy log through the API: `GET /policy/log` (controller/policy_log.py).

Each controller keeps the records of what it decided itself (the PacketIns of the
switches it masters, the routes it revokes).  A reader asks any one of them: it
answers with its own records merged with every other live controller's, fetched
from their `/internal/policy/log` (a controller certificate; controller/peers.py),
newest `limit` by time.  A tenant token reads its tenant's records only, whatever
it asks; the tenant filter is applied here, before asking the peers, and peers
apply it again.

`follow=true` answers a stream of newline-delimited JSON (application/x-ndjson): an
empty line once subscribed, the backlog wanted, then each record as it happens, pushed
(nobody polls), with an empty line as a keep-alive every KEEPALIVE seconds; the peers'
streams (/internal/policy/log?follow=true&backlog=false) are merged in, without gap or
repeat.  A peer that joins later is not; one that fails is logged and left out.  It
ends when the client goes or the controller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from daolinet.controller.api.auth import Auth, PeerAuth
from daolinet.controller.policy_log import RING, PolicyLog, Record, matches

router = APIRouter()
log = logging.getLogger(__name__)
INTERNAL = "/internal/policy/log"
KEEPALIVE = 15.0  # seconds between keep-alive lines of a quiet stream
PEER_WAIT = 5.0  # seconds a stream waits for the peers' streams before sending its backlog

Container = Annotated[str | None, Query(description="Only records with this container at either end.")]
Since = Annotated[float | None, Query(description="Only records newer than this (Unix time, seconds).")]
Limit = Annotated[int, Query(ge=1, le=RING, description="At most this many (the newest).")]
Follow = Annotated[bool, Query(description="Stream records as they happen (newline-delimited JSON).")]


def merge(parts: list[list[Record]], limit: int) -> list[Record]:
    """Several controllers' records as one list by time, the newest `limit` of them."""
    merged = sorted((r for part in parts for r in part), key=lambda r: (r["time"], r.get("seq", 0)))
    return merged[-limit:]


def _params(tenant: str | None, container: str | None, since: float | None, limit: int) -> dict[str, Any]:
    found = {"tenant": tenant, "container": container, "since": since, "limit": limit}
    return {k: v for k, v in found.items() if v is not None}


def _line(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


@router.get("/policy/log", tags=["policy"], response_model=None)
async def policy_log(request: Request, caller: Auth, tenant: str | None = None, container: Container = None,
                     since: Since = None, limit: Limit = 100,
                     follow: Follow = False) -> list[Record] | StreamingResponse:
    """Denied first packets and revoked routes, oldest first: tenant-scoped (a tenant token
    sees its own tenant's only; admins all, or `tenant`)."""
    tenant = caller.tenant_filter(tenant)
    ctx = request.app.state.ctrl.ctx
    params = _params(tenant, container, since, limit)
    if follow:
        return StreamingResponse(_stream(ctx.policy_log, ctx.peers, params),
                                 media_type="application/x-ndjson")
    parts = [ctx.policy_log.query(tenant, container, since, limit)]
    if ctx.peers is not None:
        parts += [part for part in (await ctx.peers.gather(INTERNAL, params)).values()
                  if isinstance(part, list)]
    return merge(parts, limit)


@router.get(INTERNAL, tags=["ops"], include_in_schema=False, response_model=None)
async def internal_policy_log(request: Request, caller: PeerAuth, tenant: str | None = None,
                              container: Container = None, since: Since = None, limit: Limit = 100,
                              follow: Follow = False,
                              backlog: bool = True) -> list[Record] | StreamingResponse:
    """This controller's own records, for another controller merging them (peers.py);
    a stream without its backlog when the caller has it already."""
    own = request.app.state.ctrl.ctx.policy_log
    if follow:
        params = _params(tenant, container, since, limit)
        return StreamingResponse(_stream(own, None, params, backlog), media_type="application/x-ndjson")
    return own.query(tenant, container, since, limit)  # type: ignore[no-any-return]


async def _stream(own: PolicyLog, peers: Any, params: dict[str, Any],
                  backlog: bool = True) -> AsyncIterator[bytes]:
    """An empty line once subscribed, the backlog, then every new record wanted (own and
    the peers'), as lines.  No gap and no repeat between a peer's backlog and its stream:
    its stream is subscribed (its first line came) before its backlog is read, and what
    the stream brings up to the backlog's newest `seq` is dropped."""
    tenant, container = params.get("tenant"), params.get("container")
    with own.follow() as queue:  # subscribed before the backlog is read: nothing falls between
        yield b"\n"  # subscribed: a controller merging this stream may read the backlog now
        urls = peers.others() if peers is not None else []
        ready = {url: asyncio.Event() for url in urls}
        live = {**params, "follow": "true", "backlog": "false"}
        pumps = [asyncio.ensure_future(_pump(peers, url, live, queue, ready[url])) for url in urls]
        try:
            with contextlib.suppress(TimeoutError):  # a peer slow to answer joins when it can
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready.values())), PEER_WAIT)
            sent: dict[str, int] = {}  # peer -> the newest seq its backlog held
            if backlog:
                for record in await _backlog(own, peers if urls else None, params, sent):
                    yield _line(record)
            async for record in _records(queue):
                if not record:
                    yield b"\n"  # keep-alive: a client or proxy that went away is noticed
                elif "_peer" in record:  # a peer's: filtered there
                    if record.get("seq", 0) > sent.get(record["_peer"], 0):
                        yield _line({k: v for k, v in record.items() if k != "_peer"})
                elif matches(record, tenant, container, None):
                    yield _line(record)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


async def _backlog(own: PolicyLog, peers: Any, params: dict[str, Any], sent: dict[str, int]) -> list[Record]:
    """Own and the peers' records wanted, merged; `sent` learns each peer's newest seq among them."""
    parts = [own.query(params.get("tenant"), params.get("container"), params.get("since"), params["limit"])]
    if peers is not None:
        for url, part in (await peers.gather(INTERNAL, params)).items():
            if isinstance(part, list):
                parts.append(part)
                sent[url] = max((r.get("seq", 0) for r in part), default=0)
    return merge(parts, params["limit"])


async def _records(queue: asyncio.Queue[Record | None]) -> AsyncIterator[Record]:
    """What the queue gets, an empty record per quiet KEEPALIVE, until None (the log closed)."""
    while True:
        try:
            record = await asyncio.wait_for(queue.get(), KEEPALIVE)
        except TimeoutError:
            yield {}
            continue
        if record is None:
            return
        yield record


async def _pump(peers: Any, url: str, params: dict[str, Any], queue: asyncio.Queue[Record | None],
                ready: asyncio.Event) -> None:
    """Another controller's stream into ours, each record marked with the peer it came from;
    `ready` once its first line (subscribed) came, or it failed."""
    try:
        async for record in peers.follow(url, INTERNAL, params):
            if record is None:
                ready.set()
            elif isinstance(record, dict):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait({**record, "_peer": url})
    except Exception as e:  # noqa: BLE001 -- httpx errors too: one peer's loss is logged, ours goes on
        log.warning("policy log of controller %s: %r", url, e)
    finally:
        ready.set()
