"""The etcd store's host liveness (store/liveness.py): one lease per host.

Every heartbeat (and registration) keeps the host's lease alive: the key
alive/<host> is attached to it, and the lease id is read back from that key,
so whichever controller the agent talks to can refresh it.  An expired lease
(a refresh answers TTL 0) is replaced by a new one.  When a host's heartbeats
stop, etcd itself lets the lease expire and deletes alive/<host>; every
controller's `liveness_ticks` watch sees the DELETE and looks for lapsed hosts,
and `mark_host_down` marks the host down only if, at the revision the write
reads, the key is still gone (`EtcdReads.lapsed`): racing controllers commit it once, and a host
that heartbeated meanwhile (its write bumps meta/rev, so a racing mark-down is
retried) stays alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from daolinet.errors import DaoliError
from daolinet.store.etcd_keys import Keys
from daolinet.store.etcd_kv import EtcdKV, Reader

log = logging.getLogger(__name__)


async def keep_alive(kv: EtcdKV, keys: Keys, name: str, ttl: int) -> None:
    """Refresh the lease holding alive/<name>, or put the key on a new lease."""
    key = keys.alive(name)
    found = await kv.call("read liveness", lambda c: c.get(key))
    if found is not None and found.lease:
        lease_id = found.lease
        reply = await kv.call("lease refresh", lambda c: c.refresh_lease(lease_id))
        if reply is not None and ttl == reply.TTL:  # alive, and granted with today's TTL
            return
    lease = await kv.call("lease grant", lambda c: c.lease(ttl))
    await kv.call("liveness", lambda c: c.put(key, b"", lease=lease.id))


async def ticks(kv: EtcdKV, keys: Keys, poll: float) -> AsyncGenerator[None, None]:
    """At once, then whenever a lease expires (a watch on alive/), and every `poll` seconds
    in case the watch missed something (it broke, a member died)."""
    wake = asyncio.Event()
    watcher = asyncio.create_task(_watch_alive(kv, keys, wake))
    try:
        while True:
            wake.clear()  # a DELETE while the caller checks wakes the next wait
            yield None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _watch_alive(kv: EtcdKV, keys: Keys, wake: asyncio.Event) -> None:
    prefix = keys.alive("")
    while not kv.closed:
        try:
            r = Reader(kv)
            await r.prefix(prefix, keys_only=True)  # fixes the revision to watch from
            assert r.rev is not None
            async with contextlib.aclosing(kv.watch(prefix, r.rev + 1)) as events:
                async for event in events:
                    if event.kind == "DELETE":
                        wake.set()
        except DaoliError as e:  # a member died, etcd compacted: watch again
            log.debug("store %s: liveness watch broke: %s", kv.name, e)
        wake.set()  # something may have been missed meanwhile
        await asyncio.sleep(1.0)
