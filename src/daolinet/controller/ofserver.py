"""The OpenFlow listener: TLS (`ssl:HOST:PORT`, mutual: every switch shows its
host certificate), or, with --insecure only, TCP (`tcp:HOST:PORT`) or a unix
socket (`unix:PATH`).  Each connection becomes a SwitchSession."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable

from daolinet.controller.switch import SwitchSession
from daolinet.errors import InvalidInput

OnSession = Callable[[SwitchSession], Awaitable[None]]


def parse_target(target: str) -> tuple[str, str, int]:
    """'ssl:HOST:PORT' | 'tcp:HOST:PORT' | 'unix:PATH' -> (kind, host_or_path, port)."""
    kind, _, rest = target.partition(":")
    if kind == "unix" and rest:
        return ("unix", rest, 0)
    if kind in ("tcp", "ssl"):
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and int(port) < 65536:
            return (kind, host.strip("[]"), int(port))
    raise InvalidInput(f"invalid OpenFlow listen target {target!r}: "
                       "use ssl:HOST:PORT, tcp:HOST:PORT or unix:PATH")


async def listen(target: str, on_session: OnSession,
                 tls: ssl.SSLContext | None = None) -> asyncio.AbstractServer:
    """Serve `target`; an ssl: target needs `tls`, a server context that requires client certificates."""
    kind, where, port = parse_target(target)
    if kind == "ssl" and tls is None:
        raise InvalidInput(f"OpenFlow target {target} needs TLS files")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await on_session(SwitchSession(reader, writer))

    if kind == "unix":
        if os.path.exists(where):
            os.unlink(where)  # a stale socket of a previous run
        os.makedirs(os.path.dirname(where) or ".", exist_ok=True)
        return await asyncio.start_unix_server(accept, path=where)
    return await asyncio.start_server(accept, host=where, port=port, ssl=tls if kind == "ssl" else None)
