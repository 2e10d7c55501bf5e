"""Liveness and readiness, without a credential (for load balancers, service
managers and orchestrators' probes): /healthz says the process answers, /readyz
that it can serve — its store answers a cheap read, and with several
controllers the mastership of switches is known.  Nothing they return names an
object of the installation."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from daolinet.errors import DaoliError, SystemFailure

router = APIRouter()
STORE_WAIT = 2.0  # seconds the store may take to answer a readiness probe
PROBE_HASH = "0" * 64  # a token hash nobody holds: a one-key read on every store


def not_ready(store_error: str | None, held: dict[int, int] | None, generation: int) -> str | None:
    """Why the controller cannot serve yet (None: it can).  `held` None: the only
    controller; else the switches held here, known once a mastership round has read the
    store (`generation` > 0)."""
    if store_error is not None:
        return f"store unreachable: {store_error}"
    if held is not None and generation <= 0:
        return "mastership of switches not known yet (no round through the store so far)"
    return None


async def store_error(store: Any) -> str | None:
    try:
        await asyncio.wait_for(store.find_token(PROBE_HASH), STORE_WAIT)
    except TimeoutError:
        return f"no answer within {STORE_WAIT:g} s"
    except (DaoliError, OSError) as e:
        return str(e) or type(e).__name__
    return None


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, Any]:
    """The process answers (no credential needed)."""
    return {"ok": True}


@router.get("/readyz", tags=["health"], responses={503: {"description": "not ready, and why"}})
async def readyz(request: Request) -> dict[str, Any]:
    """The store answers and switch mastership is known (no credential needed)."""
    ctrl = request.app.state.ctrl
    reason = not_ready(await store_error(ctrl.store), ctrl.held, ctrl.generation())
    if reason is not None:
        raise SystemFailure(f"not ready: {reason}")  # 503
    return {"ok": True}
