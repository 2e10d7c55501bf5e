"""The OpenFlow listener: TCP (`tcp:HOST:PORT`) or a unix socket (`unix:PATH`,
what the lab uses so switches in other namespaces can reach a controller in
this one).  Each connection becomes a SwitchSession."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from daolinet.controller.switch import SwitchSession
from daolinet.errors import InvalidInput

OnSession = Callable[[SwitchSession], Awaitable[None]]


def parse_target(target: str) -> tuple[str, str, int]:
    """'tcp:HOST:PORT' | 'unix:PATH' -> (kind, host_or_path, port)."""
    kind, _, rest = target.partition(":")
    if kind == "unix" and rest:
        return ("unix", rest, 0)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and int(port) < 65536:
            return ("tcp", host.strip("[]"), int(port))
    raise InvalidInput(f"invalid OpenFlow listen target {target!r}: use tcp:HOST:PORT or unix:PATH")


async def listen(target: str, on_session: OnSession) -> asyncio.AbstractServer:
    kind, where, port = parse_target(target)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await on_session(SwitchSession(reader, writer))

    if kind == "unix":
        if os.path.exists(where):
            os.unlink(where)  # a stale socket of a previous run
        os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
        return await asyncio.start_unix_server(accept, path=where)
    return await asyncio.start_server(accept, host=where, port=port)
