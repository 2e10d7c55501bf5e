"""A uvicorn server on 127.0.0.1 for the length of an async block, started as the daemons
start theirs (the caller passes the daemon's own uvicorn.Config)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from daolinet.quiet_server import tcp_listener


@contextlib.asynccontextmanager
async def serving(config: uvicorn.Config, timeout: float = 10.0) -> AsyncIterator[int]:
    """Serve `config` on a free local port, yielded once uvicorn says it started; stopped after."""
    sock = tcp_listener("127.0.0.1", 0, 16)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not server.started:
            assert not task.done() and asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()
