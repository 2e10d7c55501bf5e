"""uvicorn's server, quiet when idle: every daemon listener (the controller's API, the
agent's sockets, the /metrics listeners) runs on it.

uvicorn's `Server.main_loop` wakes ten times a second to look at `should_exit`; an agent
serves four listeners, so an idle host woke forty times a second for nothing.  Here the
loop waits on an event that `should_exit` sets, and wakes once a second only for what
uvicorn's tick does on the second (the Date header, the notify callback).
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn

TICK = 1.0  # seconds: uvicorn refreshes its Date header every tenth 0.1 s tick, i.e. every second


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = asyncio.Event()
        self._should_exit = False
        super().__init__(config)

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            self._exit.set()

    async def main_loop(self) -> None:
        counter = 0  # every call is uvicorn's once-a-second tick (counter % 10 == 0)
        while not await self.on_tick(counter):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), TICK)
