"""The controller's view follows every writer of the store: each revision applied once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.model.objects import Tenant
from daolinet.model.view import Change
from daolinet.store import SqliteStore

DEADLINE = 10.0


async def wait_for(cond: object, timeout: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_controller_sees_another_writers_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    mine, other = SqliteStore.open(path), SqliteStore.open(path)
    mine.WATCH_POLL_INTERVAL = 0.01
    ctrl = Controller(mine, Config())
    await ctrl.start()
    await other.create_network("default", "web", "10.0.0.0/24")
    await mine.create_network("default", "db", "10.0.1.0/24")  # own commit: seen at once
    assert ("default", "db") in ctrl.view.networks or ctrl.view.rev < 2
    await wait_for(lambda: ctrl.view.rev == 3)
    assert {("default", "web"), ("default", "db")} <= set(ctrl.view.networks)
    await ctrl.stop()
    await mine.close()
    await other.close()


def recorder(ctrl: Controller) -> list[int]:
    seen: list[int] = []
    inner = ctrl.on_change

    def on_change(change: Change) -> None:
        seen.append(change.rev)
        inner(change)
    ctrl.on_change = on_change  # type: ignore[method-assign]
    return seen


def test_each_revision_is_applied_once_in_order(tmp_path: Path) -> None:
    ctrl = Controller(SqliteStore.open(str(tmp_path / "s.db")), Config())
    seen = recorder(ctrl)
    c = {r: Change(rev=r, obj=Tenant(f"t{r}")) for r in range(1, 7)}
    ctrl.on_own_change(c[1])  # next in line: at once
    ctrl.on_own_change(c[3])  # 2 (another writer's) not seen yet: waits
    assert seen == [1]
    ctrl.on_watched_change(c[1])  # already applied
    ctrl.on_watched_change(c[2])  # unblocks 3
    ctrl.on_watched_change(c[3])
    assert seen == [1, 2, 3]
    ctrl.on_own_change(c[5])  # 4 was a coalesced heartbeat: the watch jumps to 6
    ctrl.on_watched_change(c[6])
    assert seen == [1, 2, 3, 5, 6] and ctrl.view.rev == 6
    assert set(ctrl.view.tenants) == {"t1", "t2", "t3", "t5", "t6"}
