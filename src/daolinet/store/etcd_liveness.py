"""The etcd store's host liveness (store/liveness.py): one lease per host.

Every heartbeat (and registration) keeps the host's lease alive: the key
alive/<host> is attached to it, and the lease id is read back from that key,
so whichever controller the agent talks to can refresh it.  An expired lease
(a refresh answers TTL 0) is replaced by a new one.  When a host's heartbeats
stop, etcd itself lets the lease expire and deletes alive/<host>; every
controller's `liveness_ticks` watch sees the DELETE and looks for lapsed hosts,
and `mark_host_down` marks the host down only if, at the revision the write
reads, the key is still gone: racing controllers commit it once, and a host
that heartbeated meanwhile (its write bumps meta/rev, so a racing mark-down is
retried) stays alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from daolinet.errors import DaoliError
from daolinet.model.objects import Host
from daolinet.store.etcd_base import EtcdBase
from daolinet.store.etcd_kv import Reader
from daolinet.store.etcd_tx import EtcdTx
from daolinet.store.liveness import lapsed_by_lease

log = logging.getLogger(__name__)


class EtcdLiveness(EtcdBase):
    LIVENESS_POLL = 5.0  # seconds between two looks when no lease expires (the watch's fallback)

    async def _keep_alive(self, name: str) -> None:
        """Refresh the lease holding alive/<name>, or put the key on a new lease."""
        key, ttl = self._keys.alive(name), self.host_ttl
        found = await self._kv.call("read liveness", lambda c: c.get(key))
        if found is not None and found.lease:
            lease_id = found.lease
            reply = await self._kv.call("lease refresh", lambda c: c.refresh_lease(lease_id))
            if reply is not None and ttl == reply.TTL:  # alive, and granted with today's TTL
                return
        lease = await self._kv.call("lease grant", lambda c: c.lease(ttl))
        await self._kv.call("liveness", lambda c: c.put(key, b"", lease=lease.id))

    async def lapsed_hosts(self, now: float) -> list[str]:
        async def read(r: Reader) -> list[str]:
            hosts = await self._all(r, self._keys.all("host"), Host)
            leased = await r.prefix(self._keys.alive(""), keys_only=True)
            return lapsed_by_lease(hosts, (k.rsplit(b"/", 1)[1].decode() for k, _ in leased))
        return await self._consistent(read)

    async def mark_host_down(self, name: str, now: float) -> Host | None:
        async def write(tx: EtcdTx) -> Host | None:
            host = await self._get(tx.read, self._keys.host(name), Host)
            if host is None or not host.alive or await tx.read.get(self._keys.alive(name)) is not None:
                return None
            down = dataclasses.replace(host, alive=False)
            tx.put(down, host)
            tx.record(down)
            return down
        return await self._write(write)

    async def liveness_ticks(self) -> AsyncIterator[None]:
        """At once, then whenever a lease expires (a watch on alive/), and every LIVENESS_POLL
        seconds in case the watch missed something (it broke, a member died)."""
        wake = asyncio.Event()
        watcher = asyncio.create_task(self._watch_alive(wake))
        try:
            while True:
                wake.clear()  # a DELETE while the caller checks wakes the next wait
                yield None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.LIVENESS_POLL)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_alive(self, wake: asyncio.Event) -> None:
        prefix = self._keys.alive("")
        while not self._kv.closed:
            try:
                r = Reader(self._kv)
                await r.prefix(prefix, keys_only=True)  # fixes the revision to watch from
                assert r.rev is not None
                async with contextlib.aclosing(self._kv.watch(prefix, r.rev + 1)) as events:
                    async for event in events:
                        if event.kind == "DELETE":
                            wake.set()
            except DaoliError as e:  # a member died, etcd compacted: watch again
                log.debug("store %s: liveness watch broke: %s", self.url, e)
            wake.set()  # something may have been missed meanwhile
            await asyncio.sleep(1.0)
