"""A host's view for its resolver: the controller's feed and stream (controller/host_view.py,
controller/api/host_view_routes.py) and the agent's replica (agent/resolver_view.py), over
the real app and a real (in-memory SQLite) store; HTTP in-process, no socket.

What a user would check: a host reads its own view only; it holds exactly the tenants with
an endpoint on the host, and no other host's underlay; changes in scope arrive in order and
others' do not; a tenant coming or going brings a fresh snapshot; the replica answers names
exactly as the controller's full view would; it goes stale, and so fails closed, when the
stream is silent past STALE_AFTER."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from daolinet.agent import resolver_view as rv
from daolinet.agent.client import ControllerClient
from daolinet.agent.resolver_view import STALE_AFTER, ResolverView, SseParser
from daolinet.controller import host_view as hv
from daolinet.controller.api import create_app, host_view_routes
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.decide.names import QType, resolve
from daolinet.errors import Conflict, InvalidInput
from daolinet.model import Endpoint, Host
from daolinet.model.view import Change
from daolinet.store import open_store
from daolinet.store.base import Store
from daolinet.testing.asgi_stream import StreamingASGITransport

ADMIN, H1, ALPHA = "dl_admin", "dl_host_h1", "dl_alpha"
URL = "http://controller"


def host(i: int) -> Host:
    return Host(f"h{i}", i, f"198.18.0.{i}", f"02:00:00:00:00:{i:02x}", f"198.18.{i}.0/24")


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    store = open_store("sqlite://:memory:")
    now = time.time()
    await store.create_token("admin", None, hash_token(ADMIN), now)
    await store.create_token("h1", None, hash_token(H1), now, host="h1")
    for i in (1, 2, 3):
        await store.register_host(host(i))
    for tenant in ("alpha", "beta"):
        await store.create_tenant(tenant)
    await store.create_token("alpha", "alpha", hash_token(ALPHA), now)
    await store.create_network("alpha", "anet", "10.77.0.0/24")
    await store.create_network("beta", "bnet", "10.88.0.0/24")
    a1 = await store.create_endpoint("alpha", "anet", "a1", "h1")
    await store.update_endpoint(a1.id, port="veth-a1", ofport=5)
    await store.create_endpoint("alpha", "anet", "a2", "h2")
    await store.create_endpoint("beta", "bnet", "b2", "h2")
    await store.create_group("beta", "bees", ["network:bnet"])
    ctrl = Controller(store, Config())
    await ctrl.start()
    yield create_app(ctrl)
    await ctrl.stop()
    await store.close()


def api(app: Any, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(app), base_url=URL,
                             headers={"Authorization": f"Bearer {token}"})


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    parser = SseParser()
    async for line in lines:
        found = parser.line(line)
        if found is not None:
            yield found[0], json.loads(found[1])


class Stream:
    """A `push` generator for one host, read event by event."""

    def __init__(self, app: Any, host_name: str) -> None:
        self.gen = host_view_routes.push(app.state.host_view_feed, host_name)
        self.parser = SseParser()
        self.queued: list[tuple[str, Any]] = []

    async def next(self) -> tuple[str, Any]:
        if not self.queued:
            chunk = (await asyncio.wait_for(anext(self.gen), 5)).decode()
            for line in chunk.split("\n"):
                found = self.parser.line(line)
                if found is not None:
                    self.queued.append((found[0], json.loads(found[1])))
            return await self.next()
        return self.queued.pop(0)


def objects(snapshot: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {str(o["obj"].get("name", o["obj"].get("id"))): o["obj"] for o in snapshot["objects"]
            if o["kind"] == kind}


async def test_a_host_reads_its_own_view_only_and_an_admin_any(app: Any) -> None:
    async with api(app, H1) as h1, api(app, ADMIN) as admin, api(app, ALPHA) as alpha:
        async with h1.stream("GET", "/hosts/h1/view") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            kind, snap = await anext(events(resp.aiter_lines()))
            assert kind == "snapshot" and snap["host"] == "h1"
        refused = await h1.get("/hosts/h2/view")
        assert refused.status_code == 403
        assert refused.json() == {"error": "token h1 of host h1 is not valid for host h2"}
        assert (await alpha.get("/hosts/h1/view")).status_code == 403  # a tenant reads no host's view
        assert (await admin.get("/hosts/nowhere/view")).status_code == 404
        async with admin.stream("GET", "/hosts/h2/view") as resp:
            kind, snap = await anext(events(resp.aiter_lines()))
            assert kind == "snapshot" and set(objects(snap, "tenant")) == {"alpha", "beta"}
    assert len(app.state.host_view_feed) == 0  # a closed stream unsubscribes


async def test_the_snapshot_holds_its_tenants_only_and_no_other_hosts_underlay(app: Any) -> None:
    stream = Stream(app, "h1")
    kind, snap = await stream.next()
    assert kind == "snapshot" and snap["rev"] == app.state.ctrl.view.rev
    assert set(objects(snap, "tenant")) == {"alpha"}  # beta has nothing on h1
    assert set(objects(snap, "network")) == {"anet"}
    assert set(objects(snap, "endpoint")) == {"a1", "a2"}
    assert objects(snap, "group") == {}  # beta's group is not h1's business
    assert {o["kind"] for o in snap["objects"]} <= {"tenant", "network", "host", "endpoint", "group", "rule"}
    hosts = objects(snap, "host")
    assert {name: (h["dpid"], h["alive"], h["underlay_ip"], h["pip_pool"]) for name, h in hosts.items()} == {
        "h1": (1, True, "", ""), "h2": (0, True, "", ""), "h3": (0, True, "", "")}
    a1, a2 = objects(snap, "endpoint")["a1"], objects(snap, "endpoint")["a2"]
    assert a1["pip"].startswith("198.18.1.") and a1["ofport"] == 5  # its own container, whole
    assert (a2["pip"], a2["mac"], a2["ofport"], a2["ip"]) == ("", "", None, "10.77.0.3")
    text = json.dumps(snap)
    assert "198.18.0." not in text and "198.18.2." not in text and "198.18.3." not in text
    await stream.gen.aclose()


async def test_changes_in_scope_arrive_in_order_and_others_do_not(app: Any) -> None:
    store: Store = app.state.ctrl.store
    stream = Stream(app, "h1")
    await stream.next()
    await store.create_group("beta", "other", [])  # not h1's tenant: never sent
    await store.create_group("alpha", "web", ["container:a1"])
    await store.heartbeat("h2", time.time())  # changes nothing h1 sees: nothing sent
    rule = await store.create_l4_rule("alpha", "web", "web", "tcp", "80")
    await store.create_endpoint("beta", "bnet", "b3", "h3")
    a3 = await store.create_endpoint("alpha", "anet", "a3", "h3")
    await store.delete_rule("alpha", rule.id)
    got = [await stream.next() for _ in range(4)]
    assert [(kind, c["kind"], c["obj"].get("name"), c["deleted"]) for kind, c in got] == [
        ("change", "group", "web", False), ("change", "rule", "", False),
        ("change", "endpoint", "a3", False), ("change", "rule", "", True)]
    assert [c["rev"] for _, c in got] == sorted(c["rev"] for _, c in got)
    assert got[2][1]["obj"]["pip"] == "" and got[2][1]["obj"]["id"] == a3.id  # on h3: stripped
    assert await store.mark_host_down("h3", time.time() + 10**7) is not None
    kind, change = await stream.next()
    shown = (kind, change["kind"], change["obj"]["name"], change["obj"]["alive"])
    assert shown == ("change", "host", "h3", False)
    assert change["obj"]["underlay_ip"] == ""
    await stream.gen.aclose()


async def test_another_hosts_endpoint_keeps_its_aliases_they_are_needed_to_resolve(app: Any) -> None:
    store: Store = app.state.ctrl.store
    a2 = await store.find_endpoint("alpha", "a2")  # on h2
    await store.update_endpoint(a2.id, aliases=["svc"])
    stream = Stream(app, "h1")
    kind, snap = await stream.next()
    shown = objects(snap, "endpoint")["a2"]
    assert (kind, shown["aliases"], shown["pip"], shown["mac"]) == ("snapshot", ["svc"], "", "")
    await store.update_endpoint(a2.id, aliases=["svc", "api"])
    kind, change = await stream.next()
    assert (kind, change["obj"]["name"], change["obj"]["aliases"], change["obj"]["pip"]) == \
        ("change", "a2", ["svc", "api"], "")
    await stream.gen.aclose()


async def test_a_tenant_coming_to_or_leaving_the_host_brings_a_snapshot(app: Any) -> None:
    store: Store = app.state.ctrl.store
    stream = Stream(app, "h1")
    await stream.next()
    b1 = await store.create_endpoint("beta", "bnet", "b1", "h1")
    kind, snap = await stream.next()
    assert kind == "snapshot" and set(objects(snap, "tenant")) == {"alpha", "beta"}
    assert set(objects(snap, "endpoint")) == {"a1", "a2", "b1", "b2"}
    assert set(objects(snap, "group")) == {"bees"}
    b4 = await store.create_endpoint("beta", "bnet", "b4", "h1")  # beta is in scope already: a change
    kind, change = await stream.next()
    assert (kind, change["obj"]["name"]) == ("change", "b4")
    await store.delete_endpoint(b1.id)
    assert (await stream.next())[0] == "change"  # b4 still holds beta on h1
    await store.move_endpoint(b4.id, "h2")  # beta's last one leaves h1
    kind, snap = await stream.next()
    assert kind == "snapshot" and set(objects(snap, "tenant")) == {"alpha"}
    await stream.gen.aclose()


async def test_a_reloaded_controller_view_brings_a_snapshot(app: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller replaces its view when its store's log was pruned past it: the changes in
    between were never fed, so the stream starts again from a snapshot, change or no change."""
    monkeypatch.setattr(host_view_routes, "KEEPALIVE", 0.05)
    ctrl, store = app.state.ctrl, app.state.ctrl.store
    stream = Stream(app, "h1")
    await stream.next()
    ctrl._reload(*await store.snapshot())  # nothing changed since: noticed at the next keep-alive
    kind, snap = await stream.next()
    assert kind == "snapshot" and set(objects(snap, "endpoint")) == {"a1", "a2"}
    ctrl._reload(*await store.snapshot())
    await store.create_group("alpha", "web", [])  # the first change after a reload: a snapshot
    kind, snap = await stream.next()
    assert kind == "snapshot" and set(objects(snap, "group")) == {"web"}
    await stream.gen.aclose()


def test_a_subscriber_that_falls_behind_gets_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    from daolinet.model import Group, View
    view = View()
    view.load([host(1), Endpoint(1, "a1", "alpha", "anet", "10.0.0.2", "02:00:00:00:00:01", "h1",
                                 "198.18.1.2")])
    sub = hv.Subscriber("h1")
    sub.snapshot(view)
    monkeypatch.setattr(hv, "MAX_PENDING", 3)
    for i in range(3):
        sub.on_change(Change(10 + i, Group(i, "alpha", f"g{i}")))
    resync, items = sub.take()
    assert not resync and [c.rev for c in items] == [10, 11, 12]  # in order, none coalesced
    for i in range(4):
        sub.on_change(Change(20 + i, Group(i, "alpha", f"g{i}")))
    assert sub.take() == (True, [])  # too much to hold: a fresh snapshot instead


# -- the agent's replica ------------------------------------------------------------------

async def poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # polling with a deadline, not synchronisation


async def populate(store: Store, rnd: random.Random, tag: str) -> None:
    """Random tenants, networks, endpoints on h1..h3, groups, l4 and pair rules."""
    for t in range(rnd.randint(1, 3)):
        tenant = f"t{tag}{t}"
        await store.create_tenant(tenant)
        nets = [f"n{k}" for k in range(rnd.randint(1, 3))]
        for k, net in enumerate(nets):
            await store.create_network(tenant, net, f"10.{t + 10 * ord(tag[0]) % 200}.{k}.0/24")
        names = []
        for k in range(rnd.randint(2, 5)):
            name = f"e{k}"
            e = await store.create_endpoint(tenant, rnd.choice(nets), name, f"h{rnd.randint(1, 3)}",
                                            labels={"role": rnd.choice(["web", "db"])})
            aliases = rnd.sample(["svc", "api", "e0"], rnd.randint(0, 2))  # e0: also a name
            if e.host == "h1":
                await store.update_endpoint(e.id, port=f"v{e.id}", ofport=100 + e.id, aliases=aliases)
            else:
                await store.update_endpoint(e.id, aliases=aliases)
            names.append(name)
        groups = [f"g{g}" for g in range(rnd.randint(0, 2))]
        for group in groups:
            members = rnd.sample([f"network:{n}" for n in nets] + [f"container:{n}" for n in names]
                                 + ["label:role=web", "label:role=db"] * 2, 2)
            await store.create_group(tenant, group, members)
        for _ in range(rnd.randint(0, 3) if groups else 0):
            with contextlib.suppress(Conflict):  # the same rule drawn twice
                await store.create_l4_rule(tenant, rnd.choice(groups), rnd.choice(groups),
                                           rnd.choice(["tcp", "udp", "any"]),
                                           action=rnd.choice(["allow", "deny"]))
        for _ in range(rnd.randint(0, 2)):
            a, b = rnd.sample(names, 2)
            await store.set_pair_rule(tenant, a, b, rnd.choice(["connect", "disconnect"]))


def questions(view: Any) -> list[str]:
    """Every name and alias of every tenant, alone and under every network name, and a few others."""
    names = {e.name for e in view.endpoints.values()} | {"nobody"}
    names |= {a for e in view.endpoints.values() for a in e.aliases}
    nets = {n for t, n in view.networks} | {"com"}
    return sorted(names) + sorted(f"{n}.{net}." for n in names for net in nets) + ["a.b.c", "."]


def answers(view: Any, asker: Endpoint, qnames: list[str]) -> list[Any]:
    return [(q, t, resolve(view, asker, q, t)) for q in qnames for t in (QType.A, QType.AAAA, 16)]


@pytest.mark.parametrize("seed", range(12))
async def test_the_replica_resolves_as_the_controllers_view(app: Any, seed: int) -> None:
    ctrl, store = app.state.ctrl, app.state.ctrl.store
    rnd = random.Random(seed)
    await populate(store, rnd, "a")  # before the stream: in its snapshot
    client = ControllerClient(URL, token=H1, transport=StreamingASGITransport(app))
    replica = ResolverView.for_agent(client, "h1")
    replica.start()
    try:
        await poll(lambda: replica.loaded, "the first snapshot")
        await populate(store, rnd, "b")  # after: as changes and snapshots
        for e in rnd.sample(list(ctrl.view.endpoints.values()), 3):
            if rnd.random() < 0.5:
                await store.delete_endpoint(e.id)
            else:
                await store.move_endpoint(e.id, rnd.choice(["h1", "h2", "h3"]))
        await store.mark_host_down("h3", time.time() + 10**7)
        await store.register_host(host(9))  # every host's view hears of a host: a marker
        await poll(lambda: "h9" in replica.view.hosts, "the replica to catch up")
        assert replica.fresh
        mine, qnames = ctrl.view.endpoints_on("h1"), questions(ctrl.view)
        assert mine, "the scenario has endpoints on h1"
        for e in mine:
            asker = replica.asker(e.ofport) if e.ofport is not None else replica.view.endpoints[e.id]
            assert asker == e
            assert answers(replica.view, asker, qnames) == answers(ctrl.view, e, qnames)
        in_scope = {e.tenant for e in mine}
        assert set(replica.view.tenants) == in_scope
        assert {e.id for e in replica.view.endpoints.values()} == \
            {e.id for e in ctrl.view.endpoints.values() if e.tenant in in_scope}
    finally:
        await replica.stop()
        await client.close()


async def test_fresh_needs_a_snapshot_and_a_line_within_stale_after() -> None:
    now = [0.0]
    replica = ResolverView(ControllerClient(URL), "h1", clock=lambda: now[0])
    snapshot = {"host": "h1", "rev": 7, "objects": [{"kind": "host", "obj": host(1).to_json()}]}

    async def lines(items: list[str]) -> AsyncIterator[str]:
        for item in items:
            yield item

    with pytest.raises(InvalidInput):  # a change before any snapshot: a broken stream
        await replica.consume(lines(["event: change", 'data: {"rev": 1}', ""]))
    assert not replica.fresh  # heard from, but nothing loaded
    with pytest.raises(Exception, match="ended"):
        await replica.consume(lines(["event: snapshot", f"data: {json.dumps(snapshot)}", ""]))
    assert replica.fresh and replica.view.rev == 7 and replica.asker(5) is None
    now[0] = STALE_AFTER
    assert replica.fresh
    now[0] = STALE_AFTER + 0.5
    assert not replica.fresh  # silent past STALE_AFTER: the resolver fails closed
    with pytest.raises(Exception, match="ended"):
        await replica.consume(lines([": keep-alive", ""]))
    assert replica.fresh  # a keep-alive is enough
    await replica.client.close()


def test_a_malformed_event_changes_nothing() -> None:
    replica = ResolverView(ControllerClient(URL), "h1")
    snapshot = {"rev": 3, "objects": [{"kind": "host", "obj": host(1).to_json()}]}
    replica.on_event("snapshot", json.dumps(snapshot))
    before = replica.view
    for kind, data in (("change", "{not json"), ("change", '{"rev": 4, "kind": "host", "obj": {"x": 1}}'),
                       ("change", '{"rev": 4, "kind": "wizard", "obj": {}}'),
                       ("snapshot", '{"rev": 5, "objects": [{"kind": "host", "obj": {"name": "h9"}}]}'),
                       ("snapshot", '{"objects": []}')):
        with pytest.raises(InvalidInput):
            replica.on_event(kind, data)
    assert replica.view is before and set(before.hosts) == {"h1"} and before.rev == 3


async def test_it_reconnects_with_backoff_and_fails_over(app: Any) -> None:
    streaming = StreamingASGITransport(app)
    tried: list[str] = []

    async def route(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == "c1":
            raise httpx.ConnectError("refused", request=request)
        return await streaming.handle_async_request(request)

    class Routed(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await route(request)

    client = ControllerClient(["http://c1", "http://c2"], token=H1, transport=Routed())
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    replica = ResolverView(client, "h1", sleep=sleep)
    replica.start()
    try:
        await poll(lambda: replica.loaded, "a snapshot through the second controller")
        assert tried[:2] == ["c1", "c2"] and delays == [rv.BACKOFF_MIN]
    finally:
        await replica.stop()
        await client.close()

    down = ControllerClient(["http://c1"], transport=Routed())
    stopped = ResolverView(down, "h1", sleep=sleep)
    delays.clear()

    async def give_up(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 7:
            raise asyncio.CancelledError

    stopped._sleep = give_up
    with pytest.raises(asyncio.CancelledError):
        await stopped.run()
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # doubling up to BACKOFF_MAX
    await down.close()


def test_a_view_takes_stripped_hosts_and_endpoints_and_indexes_no_blanks() -> None:
    from daolinet.model import View
    other = Endpoint(2, "a2", "alpha", "anet", "10.77.0.3", "02:00:00:00:00:02", "h2", "198.18.2.2",
                     aliases=("svc",))
    assert hv.strip_endpoint(other, "h1").aliases == ("svc",)
    view = View()
    view.load([hv.strip_host(host(1), "h1"), hv.strip_host(host(2), "h1"), hv.strip_endpoint(other, "h1")])
    assert view.hosts["h1"].dpid == 1 and view.hosts["h2"].dpid == 0
    assert "" not in view.by_pip and view.infra_ips() == frozenset() and not view.is_underlay_ip("198.18.2.2")
    assert view.host_of(view.endpoints[2]) == view.hosts["h2"]
    assert view.endpoints_aliased("alpha", "svc") == [view.endpoints[2]]
    view.apply(Change(2, hv.strip_host(host(2), "h1"), deleted=True))
    view.apply(Change(3, hv.strip_endpoint(other, "h1"), deleted=True))
    assert view.endpoints == {} and set(view.hosts) == {"h1"}
