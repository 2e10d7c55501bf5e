"""A policy change's API call answers once the switches confirmed its deletions: the
controller tracks the barriers per store revision (controller/effects.py), and a
switch that never answers is logged after the deadline, not waited on forever."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.effects import Effects
from daolinet.ofp.codec import decode, ofp
from daolinet.pipeline import Kind, kind_mask
from daolinet.store import SqliteStore
from daolinet.testing.factories import make_host

DROPS, MASK = kind_mask(Kind.DROP)


class Switch:
    """Records FlowMods; its barrier replies only when the test says so."""

    def __init__(self, dpid: int) -> None:
        self.dpid, self.name = dpid, f"s{dpid}"
        self.sent: list[Any] = []
        self.confirmed = asyncio.Event()
        self.barriers = 0

    def send(self, *msgs: Any) -> list[int]:
        self.sent.extend(decode(m.data) for m in msgs)
        return [0] * len(msgs)

    async def barrier(self) -> None:
        self.barriers += 1
        await self.confirmed.wait()


async def test_settled_waits_for_every_barrier_of_the_revision() -> None:
    effects = Effects(timeout=5.0)
    s1, s2 = Switch(1), Switch(2)
    effects.track(7, {1: s1, 2: s2})
    effects.applied(7)
    waiting = asyncio.ensure_future(effects.settled(7))
    s1.confirmed.set()
    await asyncio.sleep(0.05)
    assert not waiting.done()  # s2 has not answered yet
    s2.confirmed.set()
    await asyncio.wait_for(waiting, 1.0)
    assert (s1.barriers, s2.barriers) == (1, 1)


async def test_settled_waits_for_the_revision_to_be_applied() -> None:
    effects = Effects(timeout=5.0)
    waiting = asyncio.ensure_future(effects.settled(3))  # the commit is still on its way to the view
    await asyncio.sleep(0.05)
    assert not waiting.done()
    s = Switch(1)
    effects.track(3, {1: s})
    effects.applied(3)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    s.confirmed.set()
    await asyncio.wait_for(waiting, 1.0)


async def test_a_switch_that_never_answers_is_logged_after_the_deadline(
        caplog: pytest.LogCaptureFixture) -> None:
    effects = Effects(timeout=0.2)
    ok, dead = Switch(1), Switch(2)
    ok.confirmed.set()
    effects.track(4, {1: ok, 2: dead})
    effects.applied(4)
    with caplog.at_level(logging.WARNING, logger="daolinet.controller.effects"):
        await asyncio.wait_for(effects.settled(4), 1.0)
    assert "switch s2 did not confirm the deletions of revision 4 within 0.2 s" in caplog.text
    assert "s1" not in caplog.text


async def test_settled_on_nothing_pending_returns_at_once() -> None:
    effects = Effects(timeout=5.0)
    effects.applied(9)
    await asyncio.wait_for(effects.settled(9), 0.1)


async def test_a_policy_change_is_confirmed_on_the_switches_before_confirmed_returns(tmp_path: Path) -> None:
    store = SqliteStore.open(str(tmp_path / "store.db"))
    ctrl = Controller(store, Config())
    await ctrl.start()
    try:
        for i in (1, 2):
            await store.register_host(make_host(i))
        await asyncio.gather(*ctrl._tasks)  # the hosts' flow syncs: no switch connected yet
        switches = {d: Switch(d) for d in (1, 2)}
        ctrl.ctx.sessions.update(switches)  # type: ignore[arg-type]
        await store.create_network("default", "web", "10.1.0.0/24")  # new sessions: drops cleared
        waiting = asyncio.ensure_future(ctrl.confirmed())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        for s in switches.values():
            (msg,) = s.sent
            assert (msg.command, msg.cookie, msg.cookie_mask) == (ofp.OFPFC_DELETE, DROPS, MASK)
            s.confirmed.set()
        await asyncio.wait_for(waiting, 1.0)
        assert all(s.barriers == 1 for s in switches.values())
    finally:
        await ctrl.stop()
        await store.close()
