"""GET /policy/log: tenant-scoped, and merged across controllers.

Two tenants with the same subnet, the same container names and addresses, the same
group and the same rule names ("lockdown"): each tenant's token sees its own records
only, whatever it asks; admins see both, or one tenant's.  With a second controller
(its own records, served on /internal/policy/log to controllers only), the answer
is both controllers' records merged by time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from daolinet.controller.api import create_app, log_routes
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.peers import Peers
from daolinet.decide.packet import NO_MATCH, PacketMeta
from daolinet.decide.route import decide
from daolinet.model import Host, Rule
from daolinet.model.view import Change
from daolinet.pipeline import Table
from daolinet.store import open_store

ADMIN, T1, T2 = "dl_admin", "dl_tenant-one", "dl_tenant-two"
TENANTS = ("t1", "t2")


async def seeded(clock: float) -> Controller:
    """Hosts h1, h2; per tenant: network web 10.1.0.0/24, a (10.1.0.10) on h1 and b (10.1.0.20)
    on h2 (its own ports), group app of both; a rule lockdown denying tcp/5432 within app."""
    store = open_store("sqlite://:memory:")
    for tenant in TENANTS:
        await store.create_tenant(tenant)
    tokens: list[tuple[str, str | None, str]] = [("admin", None, ADMIN), ("one", "t1", T1), ("two", "t2", T2)]
    for name, owner, secret in tokens:
        await store.create_token(name, owner, hash_token(secret), clock)
    for i in (1, 2):
        await store.register_host(Host(f"h{i}", i, f"198.18.0.{i}", f"02:00:00:00:00:0{i}",
                                       f"198.18.{i}.0/24", last_seen=clock))
    for n, tenant in enumerate(TENANTS):
        await store.create_network(tenant, "web", "10.1.0.0/24", isolated=True)
        for name, host, ip in (("a", "h1", "10.1.0.10"), ("b", "h2", "10.1.0.20")):
            e = await store.create_endpoint(tenant, "web", name, host, ip=ip)
            await store.update_endpoint(e.id, port=f"dl{e.id}", ofport=3 + n)
        await store.create_group(tenant, "app", ["network:web"])
    ctrl = Controller(store, Config())
    ctrl.ctx.clock = lambda: clock
    await ctrl.start()
    for n, tenant in enumerate(TENANTS):  # named deny rules as the rule API makes them
        lockdown = Rule(9000 + n, tenant, "l4", "deny", "app", "app", "tcp", "5432", name="lockdown",
                        priority=500)
        ctrl.on_own_change(Change(ctrl.view.rev + 1, lockdown))
    return ctrl


def deny(ctrl: Controller, tenant: str, src: str, dst: str, port: int) -> None:
    """src's first packet to dst: decided and answered, as a PacketIn is."""
    view = ctrl.view
    a, b = view.endpoint_named(tenant, src), view.endpoint_named(tenant, dst)
    assert a is not None and b is not None and a.ofport is not None
    meta = PacketMeta(dpid=view.hosts[a.host].dpid, in_port=a.ofport, table_id=Table.EGRESS, reason=NO_MATCH,
                      eth_src=a.mac, eth_type=0x0800, ip_src=a.ip, ip_dst=b.ip, ip_proto=6, ttl=64,
                      l4_src=40000, l4_dst=port)
    ctrl.hotplug.carry_out(decide(meta, view), meta, b"", 0.0)


@pytest.fixture
async def ctrl() -> AsyncIterator[Controller]:
    controller = await seeded(time.time())
    yield controller
    await asyncio.gather(*list(controller._tasks))
    await controller.store.close()


def client(ctrl: Controller, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctrl)), base_url="http://c1",
                             headers={"Authorization": f"Bearer {secret}"})


async def log_of(ctrl: Controller, secret: str, **params: Any) -> list[dict[str, Any]]:
    async with client(ctrl, secret) as api:
        resp = await api.get("/policy/log", params=params)
    assert resp.status_code == 200, resp.text
    records: list[dict[str, Any]] = resp.json()
    return records


async def test_tenants_with_the_same_names_and_addresses_see_only_their_own(ctrl: Controller) -> None:
    for tenant in TENANTS:
        deny(ctrl, tenant, "a", "b", 5432)  # the lockdown rule
        deny(ctrl, tenant, "b", "a", 80)  # the isolated network
    pips = {t: ctrl.view.endpoint_named(t, "a").pip for t in TENANTS}  # type: ignore[union-attr]
    assert pips["t1"] != pips["t2"]
    everything = await log_of(ctrl, ADMIN)
    assert [(r["tenant"], r["rule"]) for r in everything] == [
        ("t1", "rule lockdown"), ("t1", None), ("t2", "rule lockdown"), ("t2", None)]
    for tenant, secret in (("t1", T1), ("t2", T2)):
        own = await log_of(ctrl, secret)
        assert own == [r for r in everything if r["tenant"] == tenant]
        assert {r["src"]["pip"] for r in own if r["src"]["name"] == "a"} == {pips[tenant]}
        assert await log_of(ctrl, secret, container="a") == own  # a is at one end of each
        assert await log_of(ctrl, secret, tenant=tenant, limit=1) == own[-1:]
        assert await log_of(ctrl, ADMIN, tenant=tenant) == own
    for secret, other in ((T1, "t2"), (T2, "t1")):
        async with client(ctrl, secret) as api:
            resp = await api.get("/policy/log", params={"tenant": other})
        assert resp.status_code == 404 and resp.json() == {"error": f"tenant {other} not found"}


async def test_since_limit_and_bad_input(ctrl: Controller) -> None:
    deny(ctrl, "t1", "a", "b", 5432)
    first = (await log_of(ctrl, ADMIN))[0]
    assert await log_of(ctrl, ADMIN, since=first["time"]) == []
    assert await log_of(ctrl, ADMIN, since=first["time"] - 1) == [first]
    async with client(ctrl, ADMIN) as api:
        for params, word in (({"limit": 0}, "limit"), ({"since": "yesterday"}, "since"),
                             ({"follow": "maybe"}, "follow")):
            resp = await api.get("/policy/log", params=params)
            assert resp.status_code == 422 and word in resp.json()["error"], resp.text


async def test_the_internal_route_is_for_controllers(ctrl: Controller) -> None:
    deny(ctrl, "t1", "a", "b", 5432)
    async with client(ctrl, T1) as api:
        resp = await api.get("/internal/policy/log")
    assert resp.status_code == 403, resp.text
    async with client(ctrl, ADMIN) as api:  # --insecure: the admin token stands for a controller
        resp = await api.get("/internal/policy/log", params={"tenant": "t1"})
    assert resp.status_code == 200 and [r["tenant"] for r in resp.json()] == ["t1"]


async def test_records_of_every_controller_are_merged(ctrl: Controller) -> None:
    other = await seeded(time.time() + 0.5)  # its records are newer
    peers = Peers(lambda dpid: None, ADMIN, others=lambda: ["http://c2"])
    await peers._client.aclose()
    peers._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(other)))
    ctrl.ctx.peers = peers
    try:
        deny(ctrl, "t1", "a", "b", 5432)
        deny(other, "t1", "b", "a", 5432)
        deny(other, "t2", "a", "b", 5432)
        merged = await log_of(ctrl, T1)
        assert [(r["tenant"], r["src"]["name"]) for r in merged] == [("t1", "a"), ("t1", "b")]
        assert [r["time"] for r in merged] == sorted(r["time"] for r in merged)
        assert len(await log_of(ctrl, ADMIN)) == 3
        assert [r["src"]["name"] for r in await log_of(ctrl, ADMIN, limit=1)] == ["a"]  # t2's, the newest
        ctrl.ctx.peers = Peers(lambda dpid: None, ADMIN, others=lambda: ["http://127.0.0.1:9"])
        assert len(await log_of(ctrl, ADMIN)) == 1  # a peer that does not answer: its part is missing
        await ctrl.ctx.peers.close()
    finally:
        await peers.close()
        await asyncio.gather(*list(other._tasks))
        await other.store.close()


class FakePeers:
    """Another controller's log, as controller/peers.py reaches it: its backlog and its stream."""

    def __init__(self, backlog: list[dict[str, Any]]) -> None:
        self.backlog = backlog
        self.stream: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.asked: list[dict[str, Any]] = []

    def others(self) -> list[str]:
        return ["http://c2"]

    async def gather(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        assert path == "/internal/policy/log"
        return {"http://c2": self.backlog}

    async def follow(self, url: str, path: str, params: dict[str, Any]) -> AsyncIterator[Any]:
        self.asked.append(params)
        yield None  # subscribed
        while True:
            yield await self.stream.get()


async def test_follow_merges_the_backlogs_then_pushes_own_and_peers_records(ctrl: Controller) -> None:
    deny(ctrl, "t1", "a", "b", 5432)
    deny(ctrl, "t2", "a", "b", 5432)  # another tenant's: never in t1's stream
    own = ctrl.ctx.policy_log.query("t1")[0]
    theirs = {**own, "time": own["time"] - 1, "seq": 1, "src": {"name": "b"}}
    peers = FakePeers([theirs])
    lines = log_routes._stream(ctrl.ctx.policy_log, peers, {"tenant": "t1", "limit": 10})
    assert await anext(lines) == b"\n"  # subscribed
    await peers.stream.put(theirs)  # it came while the backlog was read: not sent twice
    got = [json.loads(await anext(lines)) for _ in range(2)]
    assert got == [theirs, own]  # the backlog, merged by time
    pending = asyncio.ensure_future(anext(lines))
    deny(ctrl, "t2", "b", "a", 80)  # not t1's
    deny(ctrl, "t1", "b", "a", 80)
    pushed = json.loads(await asyncio.wait_for(pending, 2))
    assert (pushed["tenant"], pushed["src"]["name"], pushed["dport"]) == ("t1", "b", 80)
    await peers.stream.put({**theirs, "seq": 2})
    assert json.loads(await asyncio.wait_for(anext(lines), 2)) == {**theirs, "seq": 2}
    assert peers.asked == [{"tenant": "t1", "limit": 10, "follow": "true", "backlog": "false"}]
    ctrl.ctx.policy_log.close()  # the controller stops: the stream ends
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(lines), 2)
