"""The etcd store's backend (`backend.Backend`): the write loop, reads and the change feed.

A write is a function of an `EtcdTx`: `write(fn)` runs it on a fresh read of the store and commits,
and when another writer (this process or another controller) committed first,
runs it again on what is there now, until it commits or fails with a daolinet
error (decided from one consistent revision, so errors are as true as
SQLite's).  Reads go through `read(fn)`, one revision per call.

The change feed: `snapshot()` and `changes_since()` read objects and the log
at one etcd revision; `watch_changes()` reads the log after a revision and
then watches the log prefix from exactly the etcd revision that read saw, so
nothing is missed or seen twice; when the watch breaks (a member died, etcd
compacted) it reads again from the last revision it delivered and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from daolinet.errors import SystemFailure
from daolinet.model.objects import Host, Tenant
from daolinet.model.view import Change, Obj
from daolinet.store import etcd_liveness, rules
from daolinet.store.codec import obj_from_json
from daolinet.store.etcd_keys import Keys
from daolinet.store.etcd_kv import EtcdKV, Reader, RevisionGone, range_end
from daolinet.store.etcd_reads import KIND_OF, EtcdReads
from daolinet.store.etcd_tx import EtcdTx

log = logging.getLogger(__name__)

T = TypeVar("T")
SNAPSHOT_ORDER: tuple[tuple[type, str], ...] = tuple(  # as SQLite's snapshot: kind, then sort field
    (cls, "name" if cls in (Tenant, Host) else "id") for cls in KIND_OF)
WRITE_DEADLINE = 30.0  # seconds a write may keep losing to other writers before it gives up
READ_ATTEMPTS = 5


def decode_batch(value: bytes) -> list[Change]:
    """The Changes of one log entry."""
    return [Change(rev=c["rev"], obj=obj_from_json(c["kind"], c["obj"]), deleted=c["deleted"])
            for c in json.loads(value)["changes"]]


class EtcdBackend:
    def __init__(self, kv: EtcdKV, keys: Keys, url: str, keep_changes: int, prune_every: int) -> None:
        self.kv = kv
        self.keys = keys
        self.name = url
        self._keep = keep_changes
        self._prune_every = prune_every
        self.conflicts = 0  # writes that lost to another writer and were run again

    async def close(self) -> None:
        await self.kv.close()

    async def keep_alive(self, host: str, ttl: int) -> None:
        await etcd_liveness.keep_alive(self.kv, self.keys, host, ttl)

    async def write(self, fn: Callable[[EtcdTx], Awaitable[T]]) -> tuple[T, list[Change]]:
        """Run `fn` and commit what it wrote, again and again while other writers come first."""
        deadline = asyncio.get_running_loop().time() + WRITE_DEADLINE
        for attempt in itertools.count():
            try:
                tx = await EtcdTx.begin(self.kv, self.keys, keep=self._keep, prune_every=self._prune_every)
                result = await fn(tx)
                if not tx.changes or await tx.commit():
                    return result, tx.changes
            except RevisionGone:
                pass
            self.conflicts += 1
            if asyncio.get_running_loop().time() > deadline:
                raise SystemFailure(f"store {self.name}: a write lost to other writers {attempt + 1} times "
                                    f"in {WRITE_DEADLINE} s")
            if attempt >= 2:  # jitter, so that two writers stop colliding in lockstep
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[EtcdReads], Awaitable[T]]) -> T:
        """`fn` on reads pinned to one revision; run again if etcd compacted that revision."""
        for _ in range(READ_ATTEMPTS - 1):
            with contextlib.suppress(RevisionGone):
                return await fn(EtcdReads(Reader(self.kv), self.keys))
        return await fn(EtcdReads(Reader(self.kv), self.keys))

    # -- the change feed -------------------------------------------------------------------

    async def snapshot(self) -> tuple[int, list[Obj]]:
        async def read(r: EtcdReads) -> tuple[int, list[Obj]]:
            rev = int(await r.reader.get(self.keys.rev) or 0)  # fixes the revision of the reads below
            kinds = await asyncio.gather(*(r.all(cls) for cls, _ in SNAPSHOT_ORDER))
            objs: list[Obj] = []
            for (_, field), found in zip(SNAPSHOT_ORDER, kinds, strict=True):
                objs += sorted(found, key=lambda o, f=field: getattr(o, f))  # type: ignore[misc]
            return rev, objs
        return await self.read(read)

    async def _log_at(self, rev: int) -> tuple[int, int, int, list[Change]]:
        """(etcd revision read at, where the log starts, store revision, every logged Change above `rev`)."""
        async def read(r: EtcdReads) -> tuple[int, int, int, list[tuple[bytes, bytes]]]:
            now = int(await r.reader.get(self.keys.rev) or 0)
            pruned = int(await r.reader.get(self.keys.pruned) or 0)
            entries = await r.reader.between(self.keys.log(rev + 1), range_end(self.keys.log_prefix))
            assert r.reader.rev is not None
            return r.reader.rev, pruned, now, entries
        at, pruned, now, entries = await self.read(read)
        return at, pruned, now, [c for _, value in entries for c in decode_batch(value) if c.rev > rev]

    async def log_after(self, rev: int) -> tuple[int, int, list[Change]]:
        return (await self._log_at(rev))[1:]

    async def _log_after(self, rev: int) -> tuple[int, list[Change]]:
        at, pruned, now, changes = await self._log_at(rev)
        rules.check_log_reach(rev, pruned, now, self.name)
        return at, changes

    async def watch(self, from_rev: int) -> AsyncGenerator[Change, None]:
        """Every Change above `from_rev` (Store.watch_changes), from the log and then a watch."""
        rev, failures = from_rev, 0
        while not self.kv.closed:
            at, changes = await self._log_after(rev)
            for change in changes:
                rev = change.rev
                yield change
            try:
                watch = self.kv.watch(self.keys.log_prefix, at + 1)
                async with contextlib.aclosing(watch) as events:
                    async for event in events:
                        failures = 0
                        batch = decode_batch(event.kv.value) if event.kind == "PUT" else []
                        if batch and batch[0].rev > rev + 1:
                            log.warning("store %s: watch skipped from rev %d to %d; reading the log",
                                        self.name, rev, batch[0].rev)
                            break
                        for change in batch:
                            if change.rev > rev:
                                rev = change.rev
                                yield change
            except (RevisionGone, SystemFailure) as e:  # a member died or etcd compacted: read again
                failures += 1
                if failures > len(self.kv.endpoints) + 1 and not self.kv.closed:
                    raise
                log.warning("store %s: watch interrupted at rev %d: %s", self.name, rev, e)
