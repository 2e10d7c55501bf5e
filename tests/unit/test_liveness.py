"""Host liveness: a host whose heartbeats stop for the host TTL is marked down, once,
by whichever controller looks first; every controller revokes the routes of its
containers that it holds; no route is plugged to them; a heartbeat brings them back.

The decision (store/liveness.py) is pure; the SQLite store is real; switches are
recorders of what the controller sends.  decide(): tests/unit/test_decide.py; etcd's leases:
tests/integration/test_liveness.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from daolinet.controller import liveness
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.liveness import mark_lapsed
from daolinet.errors import SystemFailure
from daolinet.model import Endpoint, Host
from daolinet.model.view import Change
from daolinet.ofp import codec
from daolinet.ofp.codec import ofp
from daolinet.pipeline import Kind, kind_mask, route_cookie
from daolinet.store import SqliteStore, open_store
from daolinet.store.base import Store
from daolinet.store.liveness import heartbeat_interval, lapsed_by_clock, lapsed_by_lease
from daolinet.testing.factories import make_host

TTL = 3
T0 = 1000.0
ADMIN = "dl_test-admin-token"

# -- the decision ------------------------------------------------------------------------------------


def test_lapsed_by_clock_counts_only_alive_hosts_silent_for_longer_than_the_ttl() -> None:
    hosts = [make_host(1, last_seen=T0), make_host(2, last_seen=T0 - TTL),
             make_host(3, last_seen=T0 - TTL - 0.1), make_host(4, last_seen=0.0, alive=False)]
    assert lapsed_by_clock(hosts, T0, TTL) == ["h3"]


def test_lapsed_by_lease_counts_alive_hosts_without_a_lease() -> None:
    hosts = [make_host(1), make_host(2), make_host(3, alive=False)]
    assert lapsed_by_lease(hosts, ["h1"]) == ["h2"]
    assert lapsed_by_lease(hosts, ["h1", "h2", "stray"]) == []


def test_agents_heartbeat_three_times_per_ttl() -> None:
    assert heartbeat_interval(10) * 3 == pytest.approx(10)


# -- the SQLite store -----------------------------------------------------------------------------------


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = open_store("sqlite://:memory:", host_ttl=TTL)
    await s.register_host(make_host(1, last_seen=T0))
    await s.register_host(make_host(2, last_seen=T0))
    yield s
    await s.close()


async def test_a_silent_host_is_marked_down_once_and_a_heartbeat_brings_it_back(store: Store) -> None:
    seen: list[Change] = []
    store.subscribe(seen.append)
    assert await store.lapsed_hosts(T0 + TTL) == []
    await store.heartbeat("h1", T0 + TTL)
    assert await store.lapsed_hosts(T0 + TTL + 1) == ["h2"]
    assert await store.mark_host_down("h1", T0 + TTL + 1) is None  # it heartbeated: alive after all
    down = await store.mark_host_down("h2", T0 + TTL + 1)
    assert down is not None and not down.alive and not (await store.get_host("h2")).alive
    assert await store.mark_host_down("h2", T0 + TTL + 1) is None  # once
    assert await store.lapsed_hosts(T0 + TTL + 1) == []
    assert [c.obj for c in seen if isinstance(c.obj, Host) and not c.obj.alive] == [down]
    back = await store.heartbeat("h2", T0 + TTL + 2)
    assert back.alive and (await store.get_host("h2")).alive
    assert (await store.changes_since(0))[-1].obj == back  # followers learn it too


async def test_registering_again_marks_a_down_host_alive(store: Store) -> None:
    assert await store.mark_host_down("h2", T0 + TTL + 1) is not None
    again = await store.register_host(make_host(2, last_seen=T0 + TTL + 2))
    assert again.alive and (await store.get_host("h2")).alive


async def test_a_store_made_before_liveness_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with SqliteStore.open(str(path)) as s:
        await s.register_host(make_host(1))
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE hosts DROP COLUMN alive")  # as an older daolinet made it
    db.commit()
    db.close()
    async with SqliteStore.open(str(path)) as s:
        assert (await s.get_host("h1")).alive
        await s.register_host(make_host(2))
        assert [h.alive for h in await s.list_hosts()] == [True, True]


async def test_the_loop_marks_lapsed_hosts_down_on_each_tick_and_survives_store_errors(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def on_demand() -> AsyncIterator[None]:
        while True:
            yield await ticks.get()
    failures = [SystemFailure("store unavailable")]
    lapsed = store.lapsed_hosts

    async def flaky(now: float) -> list[str]:
        if failures:
            raise failures.pop()
        return await lapsed(now)
    monkeypatch.setattr(store, "liveness_ticks", on_demand)
    monkeypatch.setattr(store, "lapsed_hosts", flaky)
    monkeypatch.setattr(liveness, "RETRY", 0.01)
    loop = asyncio.create_task(liveness.watch_hosts(store, lambda: T0 + TTL + 1))
    try:
        ticks.put_nowait(None)  # fails: the loop waits RETRY and goes on
        ticks.put_nowait(None)

        async def both_down() -> None:
            while any(h.alive for h in await store.list_hosts()):
                await asyncio.sleep(0.01)
        await asyncio.wait_for(both_down(), 5.0)
        assert not failures
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


# -- the controllers ------------------------------------------------------------------------------------


class Recorder:
    """A switch as the controller's handlers see it: what was sent, nothing else."""

    def __init__(self, dpid: int) -> None:
        self.dpid, self.name = dpid, f"{dpid:#x}"
        self.sent: list[Any] = []

    def send(self, *msgs: Any) -> None:
        self.sent.extend(msgs)

    def deletes(self) -> list[tuple[int, int]]:
        """(cookie, mask) of every FlowMod delete sent, read back from its wire form."""
        out = []
        for m in self.sent:
            msg = codec.decode(m.data if isinstance(m, codec.Encoded) else codec.encode(m, 0))
            if msg.msg_type == ofp.OFPT_FLOW_MOD and msg.command == ofp.OFPFC_DELETE:
                out.append((int(msg.cookie), int(msg.cookie_mask)))
        return out

    def deleted_cookies(self) -> list[int]:
        return [cookie for cookie, mask in self.deletes() if mask == (1 << 64) - 1]


async def controller(path: Path) -> Controller:
    store = SqliteStore.open(str(path))
    store.host_ttl = TTL
    ctrl = Controller(store, Config(host_ttl=TTL))
    await ctrl.start()
    return ctrl


def attach_recorders(ctrl: Controller) -> None:
    for dpid in (1, 2, 3):
        ctrl.ctx.sessions[dpid] = Recorder(dpid)  # type: ignore[assignment]


async def caught_up(ctrl: Controller, rev: int) -> None:
    """Until `ctrl` followed the store to `rev` (its watch polls the file)."""
    async def poll() -> None:
        while ctrl.view.rev < rev:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), 5.0)


async def populate(store: Store) -> tuple[Endpoint, Endpoint, Endpoint]:
    for i in (1, 2, 3):
        await store.register_host(make_host(i, last_seen=T0))
    await store.create_network("default", "web", "10.1.0.0/24")
    a = await store.create_endpoint("default", "web", "a", "h1")
    b = await store.create_endpoint("default", "web", "b", "h2")
    c = await store.create_endpoint("default", "web", "c", "h3")
    return a, b, c


async def test_a_down_host_has_its_routes_revoked_by_the_controller_holding_them(tmp_path: Path) -> None:
    holder, other = await controller(tmp_path / "s.db"), await controller(tmp_path / "s.db")
    a, b, c = await populate(holder.store)
    await caught_up(other, holder.view.rev)
    for ctrl in (holder, other):
        attach_recorders(ctrl)
    ab, ac = route_cookie(a.id, b.id).value, route_cookie(a.id, c.id).value
    holder.ctx.routes.plugged(ab, ("a", "b"), {1: 2, 2: 2}, T0)
    holder.ctx.routes.plugged(ac, ("a", "c"), {1: 2, 3: 2}, T0)
    for h in ("h1", "h3"):
        await holder.store.heartbeat(h, T0 + TTL)

    # Both controllers look; one marks h2 down; each acts on the Change it follows.
    marked = await asyncio.gather(mark_lapsed(holder.store, lambda: T0 + TTL + 1),
                                  mark_lapsed(other.store, lambda: T0 + TTL + 1))
    assert sorted(len(m) for m in marked) == [0, 1]
    change = (await holder.store.changes_since(0))[-1]
    assert isinstance(change.obj, Host) and change.obj.name == "h2" and not change.obj.alive
    holder.on_watched_change(change)
    other.on_watched_change(change)

    s1, s2 = holder.ctx.sessions[1], holder.ctx.sessions[2]
    assert s1.deleted_cookies() == [ab] and s2.deleted_cookies() == [ab]  # type: ignore[attr-defined]
    assert holder.ctx.routes.get(ab) is None and holder.ctx.routes.get(ac) is not None  # a-c lives on
    for s in other.ctx.sessions.values():  # it holds no route of b's: it sends nothing
        assert s.sent == []  # type: ignore[attr-defined]
    assert holder.view.hosts["h2"].alive is False and other.view.hosts["h2"].alive is False

    # Back: drop flows damping b's peers are forgotten, the next packet plugs the route again.
    await holder.store.heartbeat("h2", T0 + TTL + 2)
    assert holder.view.hosts["h2"].alive
    drops, mask = kind_mask(Kind.DROP)
    assert (drops, mask) in s1.deletes()  # type: ignore[attr-defined]
    for ctrl in (holder, other):
        await ctrl.stop()
        await asyncio.gather(*list(ctrl._tasks))
        await ctrl.store.close()


# -- the API and its CLI field ---------------------------------------------------------------------------


async def test_the_api_shows_a_down_host_and_its_containers() -> None:
    store = open_store("sqlite://:memory:", host_ttl=TTL)
    await store.create_token("admin", None, hash_token(ADMIN), T0)
    ctrl = Controller(store, Config(host_ttl=TTL))
    ctrl.ctx.clock = lambda: T0
    await ctrl.start()
    _a, b, _ = await populate(store)
    await mark_lapsed(store, lambda: T0 + TTL + 1)  # all three lapsed
    await store.heartbeat("h1", T0 + TTL + 1)
    transport = httpx.ASGITransport(app=create_app(ctrl))
    async with httpx.AsyncClient(transport=transport, base_url="http://c",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        hosts = {h["name"]: h["alive"] for h in (await api.get("/hosts")).json()}
        assert hosts == {"h1": True, "h2": False, "h3": False}
        listed = {e["name"]: e["alive"] for e in (await api.get("/endpoints")).json()}
        assert listed == {"a": True, "b": False, "c": False}
        assert (await api.get(f"/endpoints/{b.id}")).json()["alive"] is False
        assert (await api.get("/containers/default/a")).json()["alive"] is True
        # Liveness is the controllers' to say: a registration cannot set it.
        body = {**make_host(9).to_json(), "alive": False}
        del body["last_seen"]
        assert (await api.post("/hosts", json=body)).status_code == 422
    await ctrl.stop()
    await asyncio.gather(*list(ctrl._tasks))
    await store.close()
