"""Host liveness, the controller's side: the loop that marks lapsed hosts down.

Every controller runs it (there is no master of record): `liveness_ticks` says
when to look (SQLite: a timer; etcd: as soon as a host's lease expires), the
store says which hosts lapsed and marks each down in a write that checks again,
so of several controllers one commits and the others find nothing to do.  The
mark-down is an ordinary Change: every controller then revokes, in
`Controller.on_change`, the routes of the host's containers that it holds
itself (a controller holding none does nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from daolinet.errors import DaoliError
from daolinet.model import Host
from daolinet.store.base import Store

log = logging.getLogger(__name__)
RETRY = 1.0  # seconds before looking again after the store failed


async def mark_lapsed(store: Store, clock: Callable[[], float]) -> list[Host]:
    """Mark every lapsed host down; the hosts this call marked."""
    marked = []
    for name in await store.lapsed_hosts(clock()):
        host = await store.mark_host_down(name, clock())
        if host is not None:
            log.warning("host %s: no heartbeat for %d s: marked down, its routes revoked",
                        name, store.host_ttl)
            marked.append(host)
    return marked


async def watch_hosts(store: Store, clock: Callable[[], float]) -> None:
    """Mark lapsed hosts down, for ever (until cancelled)."""
    while True:
        try:
            async with contextlib.aclosing(store.liveness_ticks()) as ticks:  # type: ignore[type-var]
                async for _ in ticks:
                    await mark_lapsed(store, clock)
        except DaoliError as e:
            log.warning("host liveness: %s; looking again in %.0f s", e, RETRY)
        await asyncio.sleep(RETRY)
