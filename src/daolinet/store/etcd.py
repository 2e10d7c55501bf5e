"""The etcd v3 store (through aetcd): the store of several controllers.

`EtcdStore` is the `Store` of `service.StoreService` (the same checks, rules,
errors, messages and semantics as SQLite) on `etcd_base.EtcdBackend`: every
write reads one consistent revision, decides, and commits in one etcd
transaction, serialised by the store revision and guarded by claims on every
name and address (see `etcd_keys` for the key layout, `etcd_tx` for the
transaction), so two controllers can never hand out the same endpoint id,
logical IP or PIP.  Revisions are the store's own, one per Change and
gap-free, exactly as SQLite's; each log entry is also an etcd revision, which
`watch_changes` follows.

Host liveness (`etcd_liveness`): a heartbeat or a registration first keeps
the host's lease alive (key alive/<host>), then writes the host alive.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Self

from daolinet.model.view import Change
from daolinet.security.tls import TlsFiles
from daolinet.store import etcd_liveness
from daolinet.store.base import KEEP_CHANGES, PRUNE_EVERY
from daolinet.store.checks import check_int
from daolinet.store.etcd_base import EtcdBackend
from daolinet.store.etcd_keys import Keys
from daolinet.store.etcd_kv import DEFAULT_TIMEOUT, EtcdKV, parse_url
from daolinet.store.service import StoreService


class EtcdStore(StoreService):
    _b: EtcdBackend
    LIVENESS_POLL = 5.0  # seconds between two looks when no lease expires (the watch's fallback)

    @classmethod
    def open(cls, url: str, *, keep_changes: int = KEEP_CHANGES, timeout: float = DEFAULT_TIMEOUT,
             tls: TlsFiles | None = None, prune_every: int = PRUNE_EVERY) -> Self:
        """A store on the etcd cluster of `url` ("etcd://h1:2379,h2:2379[/prefix]"), over TLS
        with `tls` (the etcd CA and a client pair).  The change log keeps the last
        `keep_changes` entries, trimmed every `prune_every` revisions.

        Connects on first use: opening never blocks."""
        check_int("keep_changes", keep_changes, 1, 2**31)
        check_int("prune_every", prune_every, 1, 2**31)
        endpoints, prefix = parse_url(url)
        kv = EtcdKV(endpoints, url, timeout, tls=tls)
        return cls(EtcdBackend(kv, Keys(prefix), url, keep_changes, prune_every))

    @property
    def url(self) -> str:
        return self._b.name

    @property
    def conflicts(self) -> int:
        """Writes that lost to another writer and were run again."""
        return self._b.conflicts

    @property
    def _kv(self) -> EtcdKV:
        return self._b.kv

    @property
    def _keys(self) -> Keys:
        return self._b.keys

    async def watch_changes(self, from_rev: int) -> AsyncIterator[Change]:
        """A real etcd watch on the log (see etcd_base), not the polling of the default."""
        check_int("rev", from_rev, 0, 2**63 - 1)
        async with contextlib.aclosing(self._b.watch(from_rev)) as changes:
            async for change in changes:
                yield change

    async def liveness_ticks(self) -> AsyncIterator[None]:
        """At once, then whenever a host's lease expires, and every LIVENESS_POLL seconds."""
        ticks_of = etcd_liveness.ticks(self._b.kv, self._b.keys, self.LIVENESS_POLL)
        async with contextlib.aclosing(ticks_of) as ticks:
            async for tick in ticks:
                yield tick
