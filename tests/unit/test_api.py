"""The controller's REST API over an in-memory store: the happy path, and for
every bad input a 4xx status, a JSON {"error": message} naming the problem,
and nothing changed (every list and the revision are the same afterwards)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.pipeline import route_cookie
from daolinet.store import open_store

NOW = 1000.0


def host_body(i: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"h{i}", "dpid": i, "underlay_ip": f"198.18.0.{i}",
                            "underlay_mac": f"02:18:00:00:00:{i:02x}", "pip_pool": f"198.18.{i}.0/24",
                            "underlay_prefix": 18}
    body.update(changes)
    return body


ADMIN = "dl_test-admin-token"


@pytest.fixture
async def ctrl() -> AsyncIterator[Controller]:
    store = open_store("sqlite://:memory:")
    await store.create_token("admin", None, hash_token(ADMIN), NOW)
    controller = Controller(store, Config())
    controller.ctx.clock = lambda: NOW
    await controller.start()
    yield controller
    await asyncio.gather(*list(controller._tasks))  # flow syncs spawned by host changes
    await store.close()


@pytest.fixture
async def api(ctrl: Controller) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(ctrl))
    async with httpx.AsyncClient(transport=transport, base_url="http://controller",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


@pytest.fixture
async def web(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """Hosts h1, h2 and network default/web (10.1.0.0/24)."""
    for i in (1, 2):
        assert (await api.post("/hosts", json=host_body(i))).status_code == 201
    assert (await api.post("/networks", json={"name": "web", "subnet": "10.1.0.0/24"})).status_code == 201
    return api


async def add_endpoint(api: httpx.AsyncClient, name: str, network: str = "web", host: str = "h1",
                       **fields: Any) -> dict[str, Any]:
    resp = await api.post("/endpoints", json={"name": name, "network": network, "host": host, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def state(api: httpx.AsyncClient) -> dict[str, Any]:
    """Everything the API lists, and the revision the controller's view is at."""
    out: dict[str, Any] = {}
    for path in ("/tenants", "/networks", "/hosts", "/endpoints", "/routes"):
        resp = await api.get(path)
        assert resp.status_code == 200, resp.text
        out[path] = resp.json()
    out["rev"] = (await api.get("/health")).json()["rev"]
    return out


async def refused(api: httpx.AsyncClient, method: str, path: str, status: int, *words: str,
                  **kwargs: Any) -> str:
    """Send a bad request: assert its status, a JSON error naming `words`, and no change at all."""
    before = await state(api)
    resp = await api.request(method, path, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert await state(api) == before
    return message


# -- the happy path ---------------------------------------------------------------------------


async def test_host_network_endpoint_lifecycle(api: httpx.AsyncClient, ctrl: Controller) -> None:
    resp = await api.post("/hosts", json=host_body(1, underlay_ip="198.18.1.1", underlay_prefix=16))
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"name": "h1", "dpid": 1, "underlay_ip": "198.18.1.1",
                           "underlay_mac": "02:18:00:00:00:01", "pip_pool": "198.18.1.0/24",
                           "underlay_prefix": 16, "underlay_gateway_mac": "", "uplink_ofport": 1,
                           "last_seen": NOW, "alive": True}
    again = await api.post("/hosts", json=host_body(1, underlay_ip="198.18.1.1", underlay_prefix=16))
    assert again.status_code == 201 and again.json() == resp.json()  # registering again is harmless

    resp = await api.post("/networks", json={"name": "web", "subnet": "10.1.0.0/24"})
    assert resp.status_code == 201, resp.text
    net = resp.json()
    assert net["tenant"] == "default" and net["gateway"] == "10.1.0.1" and net["isolated"] is False
    assert (await api.get("/networks/default/web")).json() == net
    assert (await api.get("/tenants")).json() == [{"name": "default"}]

    resp = await api.post("/endpoints", json={"name": "a", "network": "web", "host": "h1",
                                              "labels": {"role": "db"}})
    assert resp.status_code == 201, resp.text
    e = resp.json()
    # IP: first free after the gateway; MAC from the id; PIP: first of the pool that is not the host's own.
    assert (e["ip"], e["mac"], e["pip"]) == ("10.1.0.2", "02:d1:00:00:00:01", "198.18.1.2")
    assert (e["port"], e["ofport"], e["labels"], e["alive"]) == ("", None, {"role": "db"}, True)
    assert ctrl.view.by_ip[("default", "10.1.0.2")].id == e["id"]
    assert ctrl.view.by_port == {}  # not plugged yet

    resp = await api.patch(f"/endpoints/{e['id']}", json={"port": "dl1", "ofport": 3})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {**e, "port": "dl1", "ofport": 3}
    assert ctrl.view.by_port[(1, 3)].name == "a"  # the controller learned it from the store's feed

    assert (await api.get("/endpoints")).json() == [resp.json()]
    assert (await api.get("/endpoints", params={"host": "h1", "network": "web"})).json() == [resp.json()]
    assert (await api.get("/endpoints", params={"host": "h2"})).json() == []
    assert (await api.get(f"/endpoints/{e['id']}")).json() == resp.json()
    heartbeat = await api.put("/hosts/h1/heartbeat")
    assert heartbeat.status_code == 200 and heartbeat.json()["last_seen"] == NOW

    assert (await api.delete(f"/endpoints/{e['id']}")).status_code == 200
    assert (await api.get("/endpoints")).json() == []
    assert ctrl.view.endpoints == {} and ctrl.view.by_port == {}
    assert (await api.delete("/networks/default/web")).status_code == 200
    assert (await api.delete("/hosts/h1")).status_code == 200
    assert (await api.delete("/tenants/default")).status_code == 200
    assert await state(api) == {"/tenants": [], "/networks": [], "/hosts": [], "/endpoints": [],
                                "/routes": [], "rev": ctrl.view.rev}


async def test_endpoints_get_distinct_addresses_and_keep_requested_ones(web: httpx.AsyncClient) -> None:
    a = await add_endpoint(web, "a", ip="10.1.0.200", mac="02:AA:00:00:00:01")
    b = await add_endpoint(web, "b")
    c = await add_endpoint(web, "c", host="h2")
    assert (a["ip"], a["mac"]) == ("10.1.0.200", "02:aa:00:00:00:01")
    assert b["ip"] == "10.1.0.2" and c["ip"] == "10.1.0.3"
    assert len({a["id"], b["id"], c["id"]}) == 3
    assert (a["pip"], b["pip"], c["pip"]) == ("198.18.1.1", "198.18.1.2", "198.18.2.1")


async def test_aliases_are_patched_shown_and_a_bad_one_refuses_the_whole_patch(web: httpx.AsyncClient,
                                                                               ctrl: Controller) -> None:
    e = await add_endpoint(web, "dl-1a2b")
    assert "aliases" not in e  # left out while empty: as before aliases existed
    resp = await web.patch(f"/endpoints/{e['id']}", json={"aliases": ["Web", "www", "web"]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {**e, "aliases": ["web", "www"]}
    assert (await web.get(f"/endpoints/{e['id']}")).json()["aliases"] == ["web", "www"]
    assert (await web.get("/containers/default/dl-1a2b")).json()["aliases"] == ["web", "www"]
    assert [x.id for x in ctrl.view.endpoints_aliased("default", "www")] == [e["id"]]
    assert ctrl.view.endpoint_named("default", "www") is None
    await refused(web, "PATCH", f"/endpoints/{e['id']}", 400, "alias of endpoint",
                  "'-bad' is not a DNS label", json={"ofport": 4, "aliases": ["ok", "-bad"]})
    resp = await web.patch(f"/endpoints/{e['id']}", json={"aliases": []})
    assert resp.json() == e and ctrl.view.endpoints_aliased("default", "www") == []
    made = await add_endpoint(web, "b", aliases=["API"])
    assert made["aliases"] == ["api"]
    await refused(web, "POST", "/endpoints", 400, "'a.b' is not a DNS label",
                  json={"name": "c", "network": "web", "host": "h1", "aliases": ["a.b"]})


async def test_openapi_and_docs_are_served(api: httpx.AsyncClient) -> None:
    resp = await api.get("/openapi.json")
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["info"]["title"] == "daolinet"
    assert {"/networks", "/networks/{tenant}/{name}", "/hosts", "/endpoints", "/endpoints/{eid}",
            "/routes", "/health"} <= set(schema["paths"])
    aliases = schema["components"]["schemas"]["EndpointPatch"]["properties"]["aliases"]
    assert "DNS labels" in aliases["description"]
    docs = await api.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")


async def test_health_and_metrics(web: httpx.AsyncClient, ctrl: Controller) -> None:
    health = (await web.get("/health")).json()
    assert health == {"ok": True, "switches": [], "synced": [], "rev": ctrl.view.rev, "routes": 0}
    assert health["rev"] > 0
    metrics = await web.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "daolinet_live_routes" in metrics.text and "daolinet_route_setup_seconds" in metrics.text


async def test_routes_lists_live_routes_per_host(web: httpx.AsyncClient, ctrl: Controller) -> None:
    assert (await web.get("/routes")).json() == []
    assert (await web.get("/routes", params={"host": "h1"})).json() == []
    cookie = route_cookie(1, 2).value
    ctrl.ctx.routes.plugged(cookie, ("a", "b"), {1: 2}, NOW)
    h1 = (await web.get("/routes", params={"host": "h1"})).json()
    assert [r["cookie"] for r in h1] == [f"{cookie:#018x}"]
    assert h1[0]["endpoints"] == [1, 2] and h1[0]["switches"] == ["0x1"]
    assert (await web.get("/routes", params={"host": "h2"})).json() == []
    assert len((await web.get("/routes")).json()) == 1
    await refused(web, "GET", "/routes", 404, "nosuch", params={"host": "nosuch"})


# -- conflicts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("subnet", ["10.1.0.0/24", "10.1.0.128/25", "10.0.0.0/8"])
async def test_overlapping_subnet_in_one_tenant_is_refused(web: httpx.AsyncClient, subnet: str) -> None:
    await refused(web, "POST", "/networks", 409, "overlaps", "web", subnet,
                  json={"name": "other", "subnet": subnet})


async def test_the_same_subnet_in_another_tenant_is_fine(web: httpx.AsyncClient) -> None:
    assert (await web.post("/tenants", json={"name": "acme"})).status_code == 201
    resp = await web.post("/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": "acme"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["gateway"] == "10.1.0.1"
    # ... and an endpoint may have the same IP there as in the default tenant.
    a = await web.post("/endpoints", json={"name": "a", "network": "web", "host": "h1"})
    b = await web.post("/endpoints", json={"name": "a", "network": "web", "host": "h1", "tenant": "acme"})
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    assert a.json()["ip"] == b.json()["ip"] and a.json()["pip"] != b.json()["pip"]
    await refused(web, "POST", "/networks", 409, "overlaps",
                  json={"name": "web2", "subnet": "10.1.0.0/16", "tenant": "acme"})


async def test_duplicate_network_name_is_refused(web: httpx.AsyncClient) -> None:
    await refused(web, "POST", "/networks", 409, "network web", "already exists",
                  json={"name": "web", "subnet": "10.9.0.0/24"})


async def test_duplicate_tenant_is_refused(api: httpx.AsyncClient) -> None:
    assert (await api.post("/tenants", json={"name": "acme"})).status_code == 201
    await refused(api, "POST", "/tenants", 409, "acme", "already exists", json={"name": "acme"})


async def test_duplicate_endpoint_name_in_a_tenant_is_refused(web: httpx.AsyncClient) -> None:
    assert (await web.post("/networks", json={"name": "db", "subnet": "10.2.0.0/24"})).status_code == 201
    await add_endpoint(web, "a")
    for network, host in (("web", "h1"), ("db", "h2")):  # names are unique per tenant, across networks
        await refused(web, "POST", "/endpoints", 409, "endpoint a", "already exists",
                      json={"name": "a", "network": network, "host": host})


async def test_a_used_address_is_refused(web: httpx.AsyncClient) -> None:
    resp = await web.post("/endpoints", json={"name": "a", "network": "web", "host": "h1", "ip": "10.1.0.7"})
    assert resp.status_code == 201
    await refused(web, "POST", "/endpoints", 409, "10.1.0.7", "already used",
                  json={"name": "b", "network": "web", "host": "h2", "ip": "10.1.0.7"})


async def test_conflicting_hosts_are_refused(web: httpx.AsyncClient) -> None:
    await refused(web, "POST", "/hosts", 409, "dpid", "h1", json=host_body(3, dpid=1))
    await refused(web, "POST", "/hosts", 409, "underlay_ip", "h1",
                  json=host_body(3, underlay_ip="198.18.0.1"))
    await refused(web, "POST", "/hosts", 409, "pip_pool", "overlaps",
                  json=host_body(3, pip_pool="198.18.1.128/25"))


async def test_objects_in_use_are_not_deleted(web: httpx.AsyncClient) -> None:
    await add_endpoint(web, "a")
    await refused(web, "DELETE", "/networks/default/web", 409, "still used", "a")
    await refused(web, "DELETE", "/hosts/h1", 409, "still has endpoints", "a")
    await refused(web, "DELETE", "/tenants/default", 409, "still has networks", "web")


# -- bad addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("ip", "words"), [
    ("10.2.0.5", ("10.2.0.5", "outside subnet 10.1.0.0/24")),
    ("10.1.0.1", ("10.1.0.1", "gateway")),
    ("10.1.0.255", ("10.1.0.255", "broadcast")),
    ("10.1.0.0", ("10.1.0.0", "network address")),
    ("10.1.0.300", ("10.1.0.300", "not an IPv4 address")),
])
async def test_bad_endpoint_address_is_refused(web: httpx.AsyncClient, ip: str,
                                               words: tuple[str, ...]) -> None:
    await refused(web, "POST", "/endpoints", 400, *words,
                  json={"name": "a", "network": "web", "host": "h1", "ip": ip})


@pytest.mark.parametrize(("body", "words"), [
    ({"subnet": "10.3.0.1/24"}, ("host bits",)),
    ({"subnet": "10.3.0.0"}, ("CIDR",)),
    ({"subnet": "10.3.0.0/31"}, ("prefix",)),
    ({"subnet": "10.3.0.0/24", "gateway": "10.4.0.1"}, ("gateway", "outside")),
    ({"subnet": "10.3.0.0/24", "gateway": "10.3.0.255"}, ("gateway", "broadcast")),
    ({"subnet": "10.3.0.0/24", "name": "Bad Name"}, ("invalid network name",)),
])
async def test_bad_network_is_refused(web: httpx.AsyncClient, body: dict[str, Any],
                                      words: tuple[str, ...]) -> None:
    await refused(web, "POST", "/networks", 400, *words, json={"name": "n3", **body})


@pytest.mark.parametrize(("changes", "words"), [
    ({"underlay_mac": "01:00:5e:00:00:01"}, ("underlay_mac", "multicast")),
    ({"underlay_mac": "nope"}, ("underlay_mac", "not a MAC")),
    ({"underlay_ip": "198.18.0"}, ("underlay_ip", "not an IPv4 address")),
    ({"pip_pool": "198.18.3.0/33"}, ("pip_pool",)),
    ({"pip_pool6": "2001:2:0:1::/130"}, ("pip_pool6",)),
    ({"underlay_ip6": "2001:2::1::2"}, ("underlay_ip6", "not an IPv6 address")),
])
async def test_bad_host_is_refused(web: httpx.AsyncClient, changes: dict[str, Any],
                                   words: tuple[str, ...]) -> None:
    await refused(web, "POST", "/hosts", 400, *words, json=host_body(3, **changes))


async def test_bad_endpoint_mac_or_name_is_refused(web: httpx.AsyncClient) -> None:
    await refused(web, "POST", "/endpoints", 400, "mac", "multicast",
                  json={"name": "a", "network": "web", "host": "h1", "mac": "03:00:00:00:00:01"})
    await refused(web, "POST", "/endpoints", 400, "invalid endpoint name",
                  json={"name": "-a", "network": "web", "host": "h1"})


# -- unknown objects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "words"), [
    ({"network": "nosuch"}, ("network nosuch", "not found")),
    ({"tenant": "nosuch"}, ("tenant nosuch", "not found")),
    ({"host": "nosuch"}, ("host nosuch", "not found")),
])
async def test_endpoint_on_unknown_objects_is_refused(web: httpx.AsyncClient, body: dict[str, Any],
                                                      words: tuple[str, ...]) -> None:
    await refused(web, "POST", "/endpoints", 404, *words,
                  json={"name": "a", "network": "web", "host": "h1", **body})


@pytest.mark.parametrize(("method", "path", "words"), [
    ("GET", "/networks/x/y", ("tenant x", "not found")),
    ("GET", "/networks/default/y", ("network y", "not found")),
    ("DELETE", "/networks/default/y", ("network y", "not found")),
    ("DELETE", "/tenants/nosuch", ("tenant nosuch", "not found")),
    ("DELETE", "/hosts/nosuch", ("host nosuch", "not found")),
    ("PUT", "/hosts/nosuch/heartbeat", ("host nosuch", "not found")),
    ("GET", "/endpoints/999", ("endpoint 999", "not found")),
    ("DELETE", "/endpoints/999", ("endpoint 999", "not found")),
])
async def test_unknown_objects_are_404(web: httpx.AsyncClient, method: str, path: str,
                                       words: tuple[str, ...]) -> None:
    await refused(web, method, path, 404, *words)


async def test_patching_an_unknown_endpoint_is_404(web: httpx.AsyncClient) -> None:
    await refused(web, "PATCH", "/endpoints/999", 404, "endpoint 999", json={"ofport": 3})


async def test_network_of_an_unknown_tenant_is_refused(web: httpx.AsyncClient) -> None:
    await refused(web, "POST", "/networks", 404, "tenant nosuch",
                  json={"name": "n", "subnet": "10.5.0.0/24", "tenant": "nosuch"})


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/nosuch"), ("GET", "/networks/a/b/c"), ("POST", "/nosuch"), ("GET", "/"),
])
async def test_unknown_path_is_a_json_404(web: httpx.AsyncClient, method: str, path: str) -> None:
    message = await refused(web, method, path, 404, json={})
    assert "<" not in message


async def test_wrong_method_is_a_json_405(web: httpx.AsyncClient) -> None:
    await refused(web, "PUT", "/networks", 405, "Method Not Allowed", json={})
    assert (await web.put("/networks", json={})).headers["allow"]  # the Allow header is kept


# -- malformed bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/tenants"), ("POST", "/networks"), ("POST", "/hosts"), ("POST", "/endpoints"),
    ("PATCH", "/endpoints/1"),
])
@pytest.mark.parametrize("content", [b"{bad", b'{"name": "a",}', b"{\"name\": \"a\"", b"\xff\xfe"])
async def test_malformed_json_is_refused(web: httpx.AsyncClient, method: str, path: str,
                                         content: bytes) -> None:
    await refused(web, method, path, 422, "malformed JSON", content=content,
                  headers={"content-type": "application/json"})


@pytest.mark.parametrize(("method", "path", "body", "key"), [
    ("POST", "/tenants", {"name": "acme", "owner": "x"}, "owner"),
    ("POST", "/networks", {"name": "n", "subnet": "10.5.0.0/24", "subnett": "10.5.0.0/24"}, "subnett"),
    ("POST", "/networks", {"name": "n", "subnet": "10.5.0.0/24", "id": 7}, "id"),
    ("POST", "/hosts", {**host_body(3), "last_seen": 5.0}, "last_seen"),
    ("POST", "/endpoints", {"name": "a", "network": "web", "host": "h1", "pip": "198.18.1.9"}, "pip"),
    ("PATCH", "/endpoints/1", {"ofport": 3, "host": "h2"}, "host"),
])
async def test_unknown_keys_are_refused(web: httpx.AsyncClient, method: str, path: str,
                                        body: dict[str, Any], key: str) -> None:
    await add_endpoint(web, "e1")
    message = await refused(web, method, path, 422, key, json=body)
    assert "not permitted" in message


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/tenants", {"name": 5}, "name"),
    ("POST", "/networks", {"name": "n", "subnet": ["10.5.0.0/24"]}, "subnet"),
    ("POST", "/networks", {"name": "n", "subnet": "10.5.0.0/24", "isolated": "maybe"}, "isolated"),
    ("POST", "/networks", {"name": "n", "subnet": "10.5.0.0/24", "isolated": "yes"}, "isolated"),
    ("POST", "/networks", {"name": "n", "subnet": "10.5.0.0/24", "isolated": 1}, "isolated"),
    ("POST", "/hosts", host_body(3, dpid="abc"), "dpid"),
    ("POST", "/hosts", host_body(3, dpid="3"), "dpid"),
    ("POST", "/hosts", host_body(3, dpid=True), "dpid"),
    ("POST", "/hosts", host_body(3, dpid=3.5), "dpid"),
    ("POST", "/hosts", host_body(3, dpid=0), "dpid"),
    ("POST", "/hosts", host_body(3, dpid=1 << 64), "dpid"),
    ("POST", "/hosts", host_body(3, underlay_prefix=31), "underlay_prefix"),
    ("POST", "/hosts", host_body(3, uplink_ofport=0), "uplink_ofport"),
    ("POST", "/hosts", {"name": "h3"}, "dpid"),
    ("POST", "/endpoints", {"name": "a", "network": "web", "host": "h1", "labels": {"k": 1}}, "labels.k"),
    ("POST", "/endpoints", {"name": "a", "network": "web", "host": "h1", "labels": ["k"]}, "labels"),
    ("POST", "/endpoints", {"name": "a", "network": "web", "host": 1}, "host"),
    ("POST", "/endpoints", {"name": "a", "network": "web"}, "host"),
    ("PATCH", "/endpoints/1", {"ofport": "3"}, "ofport"),
    ("PATCH", "/endpoints/1", {"ofport": 0}, "ofport"),
    ("PATCH", "/endpoints/1", {"ofport": 0xFFFFFF00}, "ofport"),
    ("PATCH", "/endpoints/1", {"port": 7}, "port"),
    ("PATCH", "/endpoints/1", {"aliases": "web"}, "aliases"),
    ("PATCH", "/endpoints/1", {"aliases": ["web", 1]}, "aliases.1"),
    ("PATCH", "/endpoints/one", {"ofport": 3}, "eid"),
    ("POST", "/networks", [{"name": "n", "subnet": "10.5.0.0/24"}], "body"),
])
async def test_wrong_types_are_refused(web: httpx.AsyncClient, method: str, path: str, body: Any,
                                       field: str) -> None:
    await add_endpoint(web, "e1")
    message = await refused(web, method, path, 422, f"{field}:", json=body)
    assert "malformed" not in message
