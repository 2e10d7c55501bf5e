"""A job the agent repeats against its dockerd: every `interval` seconds, and at once when
`trigger`ed.  A failure is logged once (not every interval) and the next round tries again."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from daolinet.errors import DaoliError

log = logging.getLogger(__name__)


class Repeating:
    what = "sync"  # named in the log

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._wake = asyncio.Event()
        self._failing = ""

    def trigger(self) -> None:
        self._wake.set()

    def next_wait(self) -> float:
        """Seconds until the next round unless triggered."""
        return self.interval

    async def sync_once(self) -> object:
        raise NotImplementedError

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync_once()
                self._failing = ""
            except DaoliError as e:
                if str(e) != self._failing:  # say it once, not every interval
                    log.warning("%s: %s", self.what, e)
                self._failing = str(e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.next_wait())
