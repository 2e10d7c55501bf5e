"""The embedded store: one SQLite file (WAL), the default for a single controller.

Every mutation is one `BEGIN IMMEDIATE` transaction: it takes the file's write
lock before reading what it allocates from, so two processes sharing the file
never hand out the same id, IP or PIP; UNIQUE constraints are the last line of
defence.  The transaction also bumps the persisted revision and appends to the
change log; subscribers hear about it only after COMMIT.

Statements are short and run on the caller's thread (the event loop): waiting
for another process' write lock is bounded by `busy_timeout`.  A transaction's
function never waits on anything but these statements, so it runs to its end
without yielding to the loop while it holds the connection.

`SqliteBackend` is the backend (`backend.Backend`); `SqliteStore` the `Store`
on it (`service.StoreService`: the same rules as every backend).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from daolinet.errors import Conflict, SystemFailure
from daolinet.model.view import Change, Obj
from daolinet.store.base import KEEP_CHANGES, PRUNE_EVERY
from daolinet.store.checks import check_int
from daolinet.store.codec import obj_from_json
from daolinet.store.service import StoreService
from daolinet.store.sqlite_reads import SqliteReads, SqliteTx
from daolinet.store.sqlite_schema import SCHEMA, upgrade

T = TypeVar("T")


class SqliteBackend:
    def __init__(self, db: sqlite3.Connection, path: str, keep_changes: int, prune_every: int) -> None:
        self._db = db
        self.name = path
        self._keep = keep_changes
        self._prune_every = prune_every
        self._lock = threading.RLock()  # one transaction at a time on this connection

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as e:
            raise Conflict(f"store {self.name} refused the change: {e}") from e
        except sqlite3.Error as e:
            raise SystemFailure(f"store {self.name}: {e}") from e

    async def write(self, fn: Callable[[SqliteTx], Awaitable[T]]) -> tuple[T, list[Change]]:
        """`fn` in a write transaction: all of it commits, or none of it."""
        with self._lock, self._translated():
            self._db.execute("BEGIN IMMEDIATE")
            tx = SqliteTx(self._db)
            try:
                result = await fn(tx)
                if any(c.rev % self._prune_every == 0 for c in tx.changes):
                    tx.prune(self._keep)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return result, tx.changes

    async def read(self, fn: Callable[[SqliteReads], Awaitable[T]]) -> T:
        """`fn` in a read transaction: one consistent view of the file for several queries."""
        with self._lock, self._translated():
            self._db.execute("BEGIN")
            try:
                return await fn(SqliteReads(self._db))
            finally:
                self._db.execute("COMMIT")

    async def snapshot(self) -> tuple[int, list[Obj]]:
        async def read(r: SqliteReads) -> tuple[int, list[Obj]]:
            rev = int(r.db.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0])
            networks = sorted(await r.networks(), key=lambda n: n.id)
            groups = sorted(await r.groups(), key=lambda g: g.id)
            objs: list[Obj] = [*await r.tenants(), *networks, *await r.hosts(), *await r.endpoints()]
            objs += [*groups, *await r.rules(), *await r.tokens(), *await r.portmaps()]
            objs += await r.controllers()
            return rev, objs
        return await self.read(read)

    async def log_after(self, rev: int) -> tuple[int, int, list[Change]]:
        async def read(r: SqliteReads) -> tuple[int, int, list[Change]]:
            meta = dict(r.db.execute("SELECT key, value FROM meta").fetchall())
            rows = r.db.execute("SELECT * FROM changes WHERE rev > ? ORDER BY rev", (rev,)).fetchall()
            return meta["pruned"], meta["rev"], [
                Change(rev=row["rev"], obj=obj_from_json(row["kind"], json.loads(row["obj"])),
                       deleted=bool(row["deleted"])) for row in rows]
        return await self.read(read)

    async def keep_alive(self, host: str, ttl: int) -> None:
        """Nothing to keep: the heartbeat's own write is the host's sign of life (liveness.py)."""

    async def close(self) -> None:
        with self._lock:
            self._db.close()


class SqliteStore(StoreService):
    _b: SqliteBackend

    @classmethod
    def open(cls, path: str, *, keep_changes: int = KEEP_CHANGES, busy_timeout: float = 10.0,
             prune_every: int = PRUNE_EVERY) -> SqliteStore:
        """Open (creating if needed) the store in file `path`, or ":memory:".  The change log keeps
        the last `keep_changes` entries, trimmed every `prune_every` revisions."""
        check_int("keep_changes", keep_changes, 1, 2**31)
        check_int("prune_every", prune_every, 1, 2**31)
        try:
            db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise SystemFailure(f"cannot open store {path}: {e}") from e
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA foreign_keys = ON")
            db.executescript(SCHEMA)
            upgrade(db)
        except sqlite3.Error as e:
            db.close()
            raise SystemFailure(f"cannot open store {path}: {e}") from e
        return cls(SqliteBackend(db, path, keep_changes, prune_every))
