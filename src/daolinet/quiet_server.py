"""uvicorn's server, asleep when idle: every daemon listener (the controller's API, the
agent's sockets, the /metrics listeners) runs on it.

uvicorn's `Server.main_loop` wakes ten times a second: to look at `should_exit` and, every
tenth time, to put the current date into the headers every response carries.  An agent
serves four listeners, so an idle host woke forty times a second for nothing.  Here the
loop waits on an event that `should_exit` sets, and the Date header is made when a response
reads it (once per second at most).  A server given what only uvicorn's tick does (a
request limit, a notify callback) keeps uvicorn's loop.

`tcp_listener` makes the TCP sockets a daemon hands it: with IPPROTO_TCP named, so that
asyncio sets TCP_NODELAY on every connection it accepts.  A socket made as
`socket.socket(AF_INET, SOCK_STREAM)` has protocol 0, asyncio then leaves Nagle on, and a
response written as two segments (headers, then body) waited for the client's delayed ACK:
every API call took 40-48 ms.
"""

from __future__ import annotations

import asyncio
import socket
import time
from email.utils import formatdate

import uvicorn
from uvicorn.server import ServerState


class _CurrentHeaders(ServerState):
    """uvicorn's shared server state, whose default headers hold the current date when read."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._config = config
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = []
        super().__init__()

    @property  # type: ignore[override]
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        now = int(time.time())
        if now != self._second:
            date = [(b"date", formatdate(now, usegmt=True).encode())] if self._config.date_header else []
            self._headers = date + self._config.encoded_headers
            self._second = now
        return self._headers

    @default_headers.setter
    def default_headers(self, _: list[tuple[bytes, bytes]]) -> None:
        """uvicorn's tick sets them; the getter is always current."""


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = asyncio.Event()
        self._should_exit = False
        super().__init__(config)
        self.server_state = _CurrentHeaders(config)

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            self._exit.set()

    async def main_loop(self) -> None:
        if self.config.limit_max_requests is not None or self.config.callback_notify is not None:
            await super().main_loop()
        else:
            await self._exit.wait()


def tcp_listener(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening TCP socket for uvicorn whose connections get TCP_NODELAY (above).
    OSError (address in use, not ours) is the caller's to word."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
