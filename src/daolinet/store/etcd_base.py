"""The etcd store's skeleton: connection, the write loop, lookups and the change feed.

`EtcdBase` holds what every part of `EtcdStore` shares.  A write is a function
of an `EtcdTx`: `_write(fn)` runs it on a fresh read of the store and commits,
and when another writer (this process or another controller) committed first,
runs it again on what is there now, until it commits or fails with a daolinet
error (decided from one consistent revision, so errors are as true as
SQLite's).  Reads go through `_consistent(fn)`, one revision per call.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Self, TypeVar

from daolinet.errors import InvalidInput, NotFound, SystemFailure
from daolinet.model.objects import (
    ControllerRecord,
    Endpoint,
    Group,
    Host,
    Network,
    Portmap,
    Rule,
    Tenant,
    Token,
)
from daolinet.model.view import Change, Obj
from daolinet.security.tls import TlsFiles
from daolinet.store.base import KEEP_CHANGES, ChangesPruned, Store, check_int, kind_of, obj_from_json
from daolinet.store.etcd_keys import Keys, decode
from daolinet.store.etcd_kv import DEFAULT_TIMEOUT, EtcdKV, Reader, RevisionGone, parse_url, range_end
from daolinet.store.etcd_tx import EtcdTx

log = logging.getLogger(__name__)

T = TypeVar("T")
Ob = TypeVar("Ob", Tenant, Network, Host, Endpoint, Group, Rule, Token, Portmap, ControllerRecord)
KIND_OF: dict[type, str] = {Tenant: "tenant", Network: "network", Host: "host", Endpoint: "endpoint",
                            Group: "group", Rule: "rule", Token: "token", Portmap: "portmap",
                            ControllerRecord: "controller"}
SNAPSHOT_ORDER: tuple[tuple[type, str], ...] = (  # as SQLite's snapshot: kind, then sort field
    (Tenant, "name"), (Network, "id"), (Host, "name"), (Endpoint, "id"), (Group, "id"), (Rule, "id"),
    (Token, "id"), (Portmap, "id"), (ControllerRecord, "id"))
WRITE_DEADLINE = 30.0  # seconds a write may keep losing to other writers before it gives up
READ_ATTEMPTS = 5


def decode_batch(value: bytes) -> list[Change]:
    """The Changes of one log entry."""
    return [Change(rev=c["rev"], obj=obj_from_json(c["kind"], c["obj"]), deleted=c["deleted"])
            for c in json.loads(value)["changes"]]


class EtcdBase(Store):
    PRUNE_EVERY = 64  # revisions between trims of the change log

    def __init__(self, kv: EtcdKV, keys: Keys, url: str, keep_changes: int = KEEP_CHANGES) -> None:
        super().__init__()
        self._kv = kv
        self._keys = keys
        self.url = url
        self._keep = check_int("keep_changes", keep_changes, 1, 2**31)
        self.conflicts = 0  # writes that lost to another writer and were run again

    @classmethod
    def open(cls, url: str, *, keep_changes: int = KEEP_CHANGES, timeout: float = DEFAULT_TIMEOUT,
             tls: TlsFiles | None = None) -> Self:
        """A store on the etcd cluster of `url` ("etcd://h1:2379,h2:2379[/prefix]"), over TLS
        with `tls` (the etcd CA and a client pair).

        Connects on first use: opening never blocks."""
        endpoints, prefix = parse_url(url)
        return cls(EtcdKV(endpoints, url, timeout, tls=tls), Keys(prefix), url, keep_changes)

    async def close(self) -> None:
        await self._kv.close()

    # -- writes and reads ----------------------------------------------------------------

    async def _write(self, fn: Callable[[EtcdTx], Awaitable[T]]) -> T:
        """Run `fn` and commit what it wrote, again and again while other writers come first."""
        deadline = asyncio.get_running_loop().time() + WRITE_DEADLINE
        for attempt in itertools.count():
            try:
                tx = await EtcdTx.begin(self._kv, self._keys, keep=self._keep, prune_every=self.PRUNE_EVERY)
                result = await fn(tx)
                if not tx.changes or await tx.commit():
                    self._notify(tx.changes)
                    return result
            except RevisionGone:
                pass
            self.conflicts += 1
            if asyncio.get_running_loop().time() > deadline:
                raise SystemFailure(f"store {self.url}: a write lost to other writers {attempt + 1} times "
                                    f"in {WRITE_DEADLINE} s")
            if attempt >= 2:  # jitter, so that two writers stop colliding in lockstep
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
        raise AssertionError("unreachable")

    async def import_objects(self, objs: Sequence[Obj]) -> None:
        async def write(tx: EtcdTx) -> None:
            top: dict[str, int] = {}
            for obj in objs:
                tx.put(obj)  # with its claims: names, addresses, endpoint id
                tx.record(obj)
                if isinstance(obj, Network | Group | Rule | Token | Portmap):  # ids from meta/seq/<kind>
                    kind = kind_of(obj)
                    top[kind] = max(top.get(kind, 0), obj.id)
            for seq, last in top.items():
                await tx.raise_seq(seq, last)
        await self._write(write)

    async def _consistent(self, fn: Callable[[Reader], Awaitable[T]]) -> T:
        """`fn` on a Reader pinned to one revision; run again if etcd compacted that revision."""
        for _ in range(READ_ATTEMPTS - 1):
            with contextlib.suppress(RevisionGone):
                return await fn(Reader(self._kv))
        return await fn(Reader(self._kv))

    @staticmethod
    async def _get(r: Reader, key: bytes, cls: type[Ob]) -> Ob | None:
        value = await r.get(key)
        if value is None:
            return None
        obj = decode(KIND_OF[cls], value)
        assert isinstance(obj, cls)
        return obj

    @staticmethod
    async def _all(r: Reader, prefix: bytes, cls: type[Ob]) -> list[Ob]:
        return [decode(KIND_OF[cls], value) for _, value in await r.prefix(prefix)]  # type: ignore[misc]

    async def _owner(self, r: Reader, claim: bytes, cls: type[Ob]) -> Ob | None:
        """The object holding `claim`, or None."""
        key = await r.get(claim)
        return None if key is None else await self._get(r, key, cls)

    async def _tenant_or_none(self, r: Reader, name: str) -> Tenant | None:
        return await self._get(r, self._keys.tenant(name), Tenant)

    async def _must_tenant(self, r: Reader, name: str) -> Tenant:
        tenant = await self._tenant_or_none(r, name)
        if tenant is None:
            raise NotFound(f"tenant {name} not found")
        return tenant

    async def _must_network(self, r: Reader, tenant: str, name: str) -> Network:
        network = await self._get(r, self._keys.network(tenant, name), Network)
        if network is None:
            await self._must_tenant(r, tenant)
            raise NotFound(f"network {name} of tenant {tenant} not found")
        return network

    async def _must_host(self, r: Reader, name: str) -> Host:
        host = await self._get(r, self._keys.host(name), Host)
        if host is None:
            raise NotFound(f"host {name} not found")
        return host

    @staticmethod
    def _names(names: list[str], limit: int = 5) -> str:
        """A short list of names for a message: "a, b, c and 7 more", or ""."""
        names = sorted(names)
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return ", ".join(names[:limit]) + more

    # -- the change feed -------------------------------------------------------------------

    async def snapshot(self) -> tuple[int, list[Obj]]:
        async def read(r: Reader) -> tuple[int, list[Obj]]:
            rev = int(await r.get(self._keys.rev) or 0)  # fixes the revision of the reads below
            kinds = await asyncio.gather(*(self._all(r, self._keys.all(KIND_OF[cls]), cls)
                                           for cls, _ in SNAPSHOT_ORDER))
            objs: list[Obj] = []
            for (_, field), found in zip(SNAPSHOT_ORDER, kinds, strict=True):
                objs += sorted(found, key=lambda o, f=field: getattr(o, f))  # type: ignore[misc]
            return rev, objs
        return await self._consistent(read)

    async def _log_after(self, rev: int) -> tuple[int, list[Change]]:
        """(etcd revision read at, every logged Change above `rev`), checked like SQLite's."""
        async def read(r: Reader) -> tuple[int, int, int, list[tuple[bytes, bytes]]]:
            now = int(await r.get(self._keys.rev) or 0)
            pruned = int(await r.get(self._keys.pruned) or 0)
            entries = await r.between(self._keys.log(rev + 1), range_end(self._keys.log_prefix))
            assert r.rev is not None
            return r.rev, now, pruned, entries
        at, now, pruned, entries = await self._consistent(read)
        if rev < pruned:
            raise ChangesPruned(f"changes after rev {rev} are no longer logged (the log starts after "
                                f"rev {pruned}): take a snapshot")
        if rev > now:
            raise InvalidInput(f"rev {rev} is ahead of store {self.url} (at rev {now})")
        return at, [c for _, value in entries for c in decode_batch(value) if c.rev > rev]

    async def changes_since(self, rev: int) -> list[Change]:
        check_int("rev", rev, 0, 2**63 - 1)
        return (await self._log_after(rev))[1]

    async def watch_changes(self, from_rev: int) -> AsyncIterator[Change]:
        check_int("rev", from_rev, 0, 2**63 - 1)
        rev, failures = from_rev, 0
        while not self._kv.closed:
            at, changes = await self._log_after(rev)
            for change in changes:
                rev = change.rev
                yield change
            try:
                watch = self._kv.watch(self._keys.log_prefix, at + 1)
                async with contextlib.aclosing(watch) as events:
                    async for event in events:
                        failures = 0
                        batch = decode_batch(event.kv.value) if event.kind == "PUT" else []
                        if batch and batch[0].rev > rev + 1:
                            log.warning("store %s: watch skipped from rev %d to %d; reading the log",
                                        self.url, rev, batch[0].rev)
                            break
                        for change in batch:
                            if change.rev > rev:
                                rev = change.rev
                                yield change
            except (RevisionGone, SystemFailure) as e:  # a member died or etcd compacted: read again
                failures += 1
                if failures > len(self._kv.endpoints) + 1 and not self._kv.closed:
                    raise
                log.warning("store %s: watch interrupted at rev %d: %s", self.url, rev, e)
