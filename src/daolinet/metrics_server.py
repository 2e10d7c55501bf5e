"""The daemons' metrics listener (`--metrics-listen HOST:PORT`): plain HTTP, no token,
serving `/metrics` only (prometheus-client's ASGI app) and 404 for every other path.
What it tells is counts and names of switches, no secrets; keep it on a management
address.  `refresh`, if given, is awaited before each scrape (the agent reads OVS then)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app

from daolinet.errors import DaoliError, InvalidInput
from daolinet.quiet_server import QuietServer, tcp_listener

log = logging.getLogger("daolinet.metrics")
REFRESH_TIMEOUT = 5.0
Refresh = Callable[[], Awaitable[None]]


def parse(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"invalid --metrics-listen {value!r}: use HOST:PORT")
    return host.strip("[]"), int(port)


def bind(value: str) -> socket.socket:
    """The listening socket, bound at once (a bad address fails start-up, not a scrape)."""
    host, port = parse(value)
    try:
        return tcp_listener(host, port, 64)
    except OSError as e:
        raise InvalidInput(f"--metrics-listen {value}: cannot listen there: {e.strerror or e}") from None


def app(registry: CollectorRegistry, refresh: Refresh | None = None) -> Any:
    """An ASGI app: GET /metrics is the registry's exposition; anything else 404."""
    metrics = make_asgi_app(registry)

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/metrics":
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": b"not found: only /metrics is served here\n"})
            return
        if refresh is not None:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    await refresh()
            except (DaoliError, OSError, RuntimeError) as e:  # a stale reading beats no scrape
                log.warning("metrics: could not refresh: %s", e)
        await metrics(scope, receive, send)

    return serve


class MetricsServer:
    """uvicorn on the bound socket, as a task of the daemon's loop."""

    def __init__(self, listen: str, registry: CollectorRegistry, refresh: Refresh | None = None) -> None:
        self.sock = bind(listen)
        self.registry, self.refresh = registry, refresh  # both may be set until start
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        self.server = QuietServer(uvicorn.Config(app(self.registry, self.refresh), log_level="warning",
                                                 lifespan="off", access_log=False, log_config=None))
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)  # uvicorn offers no readiness event; poll its flag
        if self.task.done():
            self.task.result()
        log.info("metrics on http://%s/metrics", self.address)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task
        self.sock.close()
