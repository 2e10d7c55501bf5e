"""The SQLite store's host liveness (store/liveness.py): a host lapses when its
last heartbeat is older than the host TTL, by the controller's clock (one
controller: one clock)."""

from __future__ import annotations

import dataclasses
import sqlite3
from abc import abstractmethod
from contextlib import AbstractContextManager

from daolinet.model.objects import Host
from daolinet.store.base import Store
from daolinet.store.liveness import lapsed_by_clock
from daolinet.store.sqlite_schema import Tx, host_of


class SqliteLiveness(Store):
    @abstractmethod
    def _write(self) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]: ...

    async def lapsed_hosts(self, now: float) -> list[str]:
        hosts = [host_of(r) for r in self._rows("SELECT * FROM hosts WHERE alive = 1")]
        return lapsed_by_clock(hosts, now, self.host_ttl)

    async def mark_host_down(self, name: str, now: float) -> Host | None:
        with self._write() as tx:
            row = tx.db.execute("SELECT * FROM hosts WHERE name = ?", (name,)).fetchone()
            if row is None or not lapsed_by_clock([host_of(row)], now, self.host_ttl):
                return None
            host = dataclasses.replace(host_of(row), alive=False)
            tx.db.execute("UPDATE hosts SET alive = 0 WHERE name = ?", (name,))
            tx.record(host)
            return host
