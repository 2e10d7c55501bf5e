"""The live map's feed and API (controller/ui/feed.py, controller/api/ui_routes.py):
what each subscriber is pushed, coalescing and its bound, tenant scoping, the
container details, and the page's files.  The browser itself: tests/integration/test_ui.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from daolinet.controller.api import create_app, ui_routes
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.ui import feed as feed_mod
from daolinet.model import Host
from daolinet.pipeline import route_cookie
from daolinet.store import open_store

ADMIN, ALPHA, BETA = "dl_admin", "dl_alpha", "dl_beta"


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    store = open_store("sqlite://:memory:")
    now = time.time()
    await store.create_token("admin", None, hash_token(ADMIN), now)
    for name, dpid in (("h1", 1), ("h2", 2)):
        await store.register_host(Host(name, dpid, f"198.18.0.{dpid}", f"02:00:00:00:00:0{dpid}",
                                       f"198.18.{dpid}.0/24"))
    for tenant, token in (("alpha", ALPHA), ("beta", BETA)):
        await store.create_tenant(tenant)
        await store.create_token(f"{tenant}-token", tenant, hash_token(token), now)
    await store.create_network("alpha", "anet", "10.77.0.0/24")
    await store.create_network("beta", "bnet", "10.88.0.0/24")
    ids = {}
    for tenant, net, name, host in (("alpha", "anet", "a1", "h1"), ("alpha", "anet", "a2", "h2"),
                                    ("beta", "bnet", "b1", "h1"), ("beta", "bnet", "b2", "h2")):
        ids[name] = (await store.create_endpoint(tenant, net, name, host)).id
    await store.create_group("alpha", "web", ["container:a1"])
    await store.create_group("alpha", "db", ["container:a2"])
    await store.create_l4_rule("alpha", "web", "db", "any", "", action="deny", priority=500, name="freeze")
    ctrl = Controller(store, Config(idle_timeout=7))
    await ctrl.start()
    application = create_app(ctrl)
    application.state.ids = ids
    yield application
    await store.close()


def plug(app: Any, a: str, b: str) -> int:
    ids = app.state.ids
    cookie = route_cookie(ids[a], ids[b]).value
    app.state.ctrl.ctx.routes.plugged(cookie, (a, b), {1: 2, 2: 2}, time.time())
    return cookie


def events(chunk: bytes) -> tuple[str, Any]:
    kind, data = chunk.decode().strip().split("\n")
    return kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))


async def next_push(gen: AsyncIterator[bytes]) -> tuple[str, Any]:
    return events(await asyncio.wait_for(anext(gen), 5))


async def test_stream_pushes_snapshot_then_routes_of_its_tenant_only(app: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_routes, "PUSH_WINDOW", 0.01)
    ctrl, feed = app.state.ctrl, app.state.feed
    plug(app, "b1", "b2")
    alpha = ui_routes._push(ctrl, feed, "alpha", {"tenant": "alpha"})
    admin = ui_routes._push(ctrl, feed, None, {"admin": True})
    kind, snap = await next_push(alpha)
    assert kind == "snapshot"
    assert {e["name"] for e in snap["endpoints"]} == {"a1", "a2"}
    assert snap["routes"] == []  # beta's route is not alpha's to see
    assert snap["hosts"] == [{"name": "h1", "alive": True}, {"name": "h2", "alive": True}]  # no underlay
    _, admin_snap = await next_push(admin)
    assert len(admin_snap["routes"]) == 1 and admin_snap["hosts"][0]["underlay_ip"] == "198.18.0.1"

    cookie = plug(app, "a1", "a2")
    kind, delta = await next_push(alpha)
    assert kind == "delta"
    assert delta == [{"op": "route", "live": True, "id": f"{cookie:x}", "a": app.state.ids["a1"],
                      "b": app.state.ids["a2"], "names": ["a1", "a2"], "scope": None, "same_host": False,
                      "plugged": 1, "created": delta[0]["created"]}]
    assert (await next_push(admin))[1][0]["id"] == f"{cookie:x}"

    plug(app, "b1", "b2")  # beta's re-plug reaches the admin only
    ctrl.ctx.routes.flow_removed(1, cookie)
    ctrl.ctx.routes.flow_removed(1, cookie)
    ctrl.ctx.routes.flow_removed(2, cookie)
    ctrl.ctx.routes.flow_removed(2, cookie)  # its last flow: gone
    _, delta = await next_push(alpha)
    assert delta == [{"op": "route", "live": False, "id": f"{cookie:x}"}]
    _, delta = await next_push(admin)
    beta_cookie = route_cookie(app.state.ids["b1"], app.state.ids["b2"]).value
    assert {(e["id"], e["live"]) for e in delta} == {(f"{cookie:x}", False), (f"{beta_cookie:x}", True)}
    await alpha.aclose()
    await admin.aclose()
    assert len(feed) == 0  # a stream that ends unsubscribes


async def test_containers_appearing_and_going_are_pushed(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_routes, "PUSH_WINDOW", 0.01)
    ctrl, store = app.state.ctrl, app.state.ctrl.store
    beta = ui_routes._push(ctrl, app.state.feed, "beta", {})
    await next_push(beta)
    e = await store.create_endpoint("beta", "bnet", "b3", "h2")
    await store.create_endpoint("alpha", "anet", "a3", "h2")  # not beta's
    _, delta = await next_push(beta)
    assert [(d["op"], d["name"], d["live"], d["host"]) for d in delta] == [("endpoint", "b3", True, "h2")]
    await store.delete_endpoint(e.id)
    _, delta = await next_push(beta)
    assert delta == [{"op": "endpoint", "live": False, "id": e.id, "host": "h2"}]
    await beta.aclose()


def test_a_subscriber_coalesces_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    sub = feed_mod.Subscriber(None)
    sub.put("r1", ("route", 1, True))
    sub.put("r1", ("route", 1, False))  # plugged and gone within one push: sent once, as gone
    assert sub.take() == (False, [("route", 1, False)])
    monkeypatch.setattr(feed_mod, "MAX_PENDING", 3)
    for i in range(5):
        sub.put(f"r{i}", ("route", i, True))
    resync, items = sub.take()
    assert resync and items == []  # too much to hold: a fresh snapshot instead


def test_no_subscriber_costs_nothing(app: Any) -> None:
    plug(app, "a1", "a2")
    assert app.state.feed._route_tenant == {}


async def test_container_details_name_identity_groups_rules_routes(app: Any) -> None:
    plug(app, "a1", "a2")
    eid = app.state.ids["a1"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get(f"/ui/containers/{eid}", headers={"Authorization": f"Bearer {ALPHA}"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["container"]["name"] == "a1" and d["container"]["host"] == "h1"
        assert d["container"]["pip"].startswith("198.18.1.") and d["container"]["mac"]
        assert d["groups"] == ["web"]
        assert [(x["label"], x["action"]) for x in d["rules"]] == [("rule freeze", "deny")]
        assert [x["peer"] for x in d["routes"]] == ["a2"]
        r = await c.get(f"/ui/containers/{eid}", headers={"Authorization": f"Bearer {BETA}"})
        assert r.status_code == 404 and r.json() == {"error": f"container {eid} not found"}
        assert (await c.get(f"/ui/containers/{eid}")).status_code == 401


async def test_page_is_served_without_data_and_the_stream_needs_a_credential(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        page = await c.get("/ui")
        assert page.status_code == 200 and "<svg" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        js = await c.get("/ui/static/map.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "http" not in js.text.replace("http://www.w3.org/2000/svg", "")  # no CDN, nothing remote
        assert (await c.get("/ui/static/..%2fpyproject.toml")).status_code == 404
        r = await c.get("/ui/stream")
        assert r.status_code == 401 and "missing token" in r.json()["error"]


async def test_a_reloaded_view_sends_every_map_a_snapshot(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui_routes, "PUSH_WINDOW", 0.01)
    ctrl = app.state.ctrl
    admin = ui_routes._push(ctrl, app.state.feed, None, {})
    await next_push(admin)
    rev, objs = await ctrl.store.snapshot()
    ctrl._reload(rev, objs)  # as after ChangesPruned: the changes in between were never fed
    plug(app, "a1", "a2")
    kind, snap = await next_push(admin)
    assert kind == "snapshot" and [r["names"] for r in snap["routes"]] == [["a1", "a2"]]
    await admin.aclose()
