"""The default `Store.watch_changes`: it follows every writer of a SQLite file by polling the log."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from daolinet.errors import InvalidInput
from daolinet.model.objects import Host
from daolinet.model.view import Change
from daolinet.store import ChangesPruned, SqliteStore

DEADLINE = 10.0


async def follow(store: SqliteStore, from_rev: int, into: asyncio.Queue[Change]) -> None:
    async with contextlib.aclosing(store.watch_changes(from_rev)) as changes:
        async for change in changes:
            await into.put(change)


async def test_a_watch_follows_another_connection_in_revision_order(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    a, b = SqliteStore.open(path), SqliteStore.open(path)
    b.WATCH_POLL_INTERVAL = 0.01
    by_a: list[Change] = []
    a.subscribe(by_a.append)
    queue: asyncio.Queue[Change] = asyncio.Queue()
    watcher = asyncio.create_task(follow(b, 0, queue))
    await a.create_network("default", "web", "10.0.0.0/24")
    await a.register_host(Host("h1", 1, "198.18.0.1", "02:00:00:00:00:01", "198.18.1.0/24"))
    e = await a.create_endpoint("default", "web", "x", "h1")
    await a.delete_endpoint(e.id)
    got = [await asyncio.wait_for(queue.get(), DEADLINE) for _ in by_a]
    assert got == by_a and [c.rev for c in got] == [1, 2, 3, 4, 5]
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    assert queue.empty()
    await a.close()
    await b.close()


async def test_a_watch_from_a_pruned_or_future_revision_fails(tmp_path: Path) -> None:
    store = SqliteStore.open(str(tmp_path / "s.db"), keep_changes=2, prune_every=2)
    for t in range(4):
        await store.create_tenant(f"t{t}")
    with pytest.raises(ChangesPruned):
        async for _ in store.watch_changes(0):
            pass
    with pytest.raises(InvalidInput, match="ahead of store"):
        async for _ in store.watch_changes(9):
            pass
    await store.close()
