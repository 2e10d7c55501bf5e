"""What a store revision changed on the switches, until they confirm it.

A policy change deletes routes and drop flows (hotplug.revalidate); the API call
that made it answers only once every switch concerned has confirmed the deletions
by a barrier reply, so "revoked" in the answer means gone from the flow tables.
The controller applies a revision, sends its FlowMods, and hands the switches it
sent to here (`track`); the API handler then awaits `settled(rev)`.  A switch that
does not confirm within the deadline is logged and not waited on any longer: an
answer late by a dead switch would hold every policy change of the installation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)
CONFIRM_TIMEOUT = 3.0  # seconds a switch may take to confirm a change's deletions


class Effects:
    def __init__(self, timeout: float = CONFIRM_TIMEOUT) -> None:
        self.timeout = timeout
        self._pending: dict[int, set[asyncio.Task[None]]] = {}  # rev -> its confirmations under way
        self._rev = 0  # the newest revision applied (and its effects tracked)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (rev, woken once applied)

    def track(self, rev: int, switches: dict[int, Any]) -> None:
        """Confirm by a barrier what was just sent to `switches` (dpid -> a SwitchSession or
        a RemoteSwitch) for revision `rev`."""
        if not switches:
            return
        task = asyncio.ensure_future(self._confirm(rev, switches))
        tasks = self._pending.setdefault(rev, set())
        tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            tasks.discard(t)
            if not tasks and self._pending.get(rev) is tasks:
                del self._pending[rev]
        task.add_done_callback(done)

    def applied(self, rev: int) -> None:
        """Revision `rev` is in the view and its FlowMods are sent (and tracked)."""
        self._rev = max(self._rev, rev)
        still = []
        for want, fut in self._waiters:
            if want <= self._rev:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((want, fut))
        self._waiters = still

    async def settled(self, rev: int) -> None:
        """Return once revision `rev` is applied here and every switch sent FlowMods for it
        (or an earlier one) confirmed them, or the deadline passed (logged)."""
        if rev > self._rev:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((rev, fut))
            try:
                await asyncio.wait_for(fut, self.timeout)
            except TimeoutError:
                log.warning("revision %d not applied within %.1f s (at %d)", rev, self.timeout, self._rev)
        tasks = [t for r, ts in self._pending.items() if r <= rev for t in ts]
        if tasks:
            await asyncio.gather(*tasks)  # each confirmation logs its own failure, never raises

    async def _confirm(self, rev: int, switches: dict[int, Any]) -> None:
        barriers = (asyncio.wait_for(s.barrier(), self.timeout) for s in switches.values())
        results = await asyncio.gather(*barriers, return_exceptions=True)
        for s, result in zip(switches.values(), results, strict=True):
            if isinstance(result, TimeoutError):
                log.warning("switch %s did not confirm the deletions of revision %d within %.1f s",
                            s.name, rev, self.timeout)
            elif isinstance(result, BaseException):
                log.warning("switch %s did not confirm the deletions of revision %d: %s", s.name, rev, result)
