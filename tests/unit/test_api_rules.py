"""L4 rules through the REST API (issue 15): create with from/to (groups or cidr:),
protocol, ports, icmp_type, action, priority and name; list in evaluation order;
get and delete by id or name; every bad input a one-line JSON error with nothing
changed; and a rule takes effect before its call returns (live routes revoked)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_api import add_endpoint, api, ctrl, refused, web

from daolinet.controller.controller import Controller
from daolinet.pipeline import route_cookie

__all__ = ["api", "ctrl", "web"]  # fixtures, used by name
NOW = 1000.0


@pytest.fixture
async def groups(web: httpx.AsyncClient) -> httpx.AsyncClient:
    """Groups front and back of tenant default; tenant beta with a group other."""
    for body in ({"name": "front", "members": ["network:web"]}, {"name": "back"}, {"name": "beta"}):
        path = "/tenants" if body["name"] == "beta" else "/groups"
        assert (await web.post(path, json=body)).status_code == 201
    assert (await web.post("/groups", json={"name": "other", "tenant": "beta"})).status_code == 201
    return web


async def create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await api.post("/rules", json=body)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


async def test_a_rule_with_every_field(groups: httpx.AsyncClient) -> None:
    r = await create(groups, **{"from": "front", "to": "cidr:198.19.0.0/16", "protocol": "tcp",
                                "ports": "8000-8100", "action": "deny", "priority": 700, "name": "no-out"})
    assert r == {"id": r["id"], "tenant": "default", "kind": "l4", "action": "deny", "a": "front",
                 "b": "cidr:198.19.0.0/16", "protocol": "tcp", "ports": "8000-8100", "name": "no-out",
                 "priority": 700, "icmp_type": None}
    icmp = await create(groups, **{"from": "cidr:198.19.255.1", "to": "back", "protocol": "icmp",
                                   "icmp_type": 8})
    assert (icmp["a"], icmp["icmp_type"], icmp["priority"], icmp["action"]) == (
        "cidr:198.19.255.1/32", 8, 100, "allow")
    anything = await create(groups, **{"from": "back", "to": "front"})  # any protocol, allow, 100
    assert (anything["protocol"], anything["ports"], anything["name"]) == ("", "", "")
    old_names = await create(groups, from_group="front", to_group="back", protocol="udp", ports="53")
    assert (old_names["a"], old_names["b"]) == ("front", "back")


async def test_rules_are_listed_in_evaluation_order(groups: httpx.AsyncClient) -> None:
    allow = await create(groups, **{"from": "front", "to": "back", "protocol": "tcp", "ports": "80"})
    deny = await create(groups, **{"from": "front", "to": "back", "protocol": "tcp", "ports": "80",
                                   "action": "deny", "name": "no-web"})
    low = await create(groups, **{"from": "front", "to": "back", "action": "deny", "priority": 0})
    high = await create(groups, **{"from": "back", "to": "front", "priority": 1000})
    beta = await create(groups, **{"from": "other", "to": "other", "tenant": "beta", "priority": 1000})
    listed = (await groups.get("/rules")).json()
    assert [(r["tenant"], r["order"], r["id"]) for r in listed] == [
        ("beta", 1, beta["id"]), ("default", 1, high["id"]), ("default", 2, deny["id"]),
        ("default", 3, allow["id"]), ("default", 4, low["id"])]
    mine = (await groups.get("/rules", params={"tenant": "default"})).json()
    assert [r["id"] for r in mine] == [high["id"], deny["id"], allow["id"], low["id"]]
    assert mine[1] == {**deny, "order": 2}


async def test_rules_by_id_or_name(groups: httpx.AsyncClient) -> None:
    r = await create(groups, **{"from": "front", "to": "back", "name": "web"})
    beta = await create(groups, **{"from": "other", "to": "other", "tenant": "beta", "name": "web"})
    assert (await groups.get("/rules/default/web")).json() == r
    assert (await groups.get(f"/rules/default/{r['id']}")).json() == r
    assert (await groups.get("/rules/beta/web")).json() == beta
    await refused(groups, "GET", "/rules/default/nosuch", 404, "rule nosuch of tenant default not found")
    await refused(groups, "GET", f"/rules/default/{beta['id']}", 404, f"rule {beta['id']} of tenant default")
    await refused(groups, "GET", "/rules/default/99999999999999999999999", 404, "not found")
    await refused(groups, "DELETE", "/rules/default/Bad%20Name", 404, "rule Bad Name of tenant default")
    await refused(groups, "DELETE", "/rules/nobody/web", 404, "tenant nobody not found")
    assert (await groups.delete("/rules/default/web")).json() == r
    await refused(groups, "DELETE", "/rules/default/web", 404, "rule web of tenant default not found")
    assert (await groups.delete(f"/rules/beta/{beta['id']}")).json() == beta
    assert (await groups.get("/rules")).json() == []


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"to": "cidr:10.0.0.1/24"}, 400, ("to 'cidr:10.0.0.1/24' is not a network", "cidr:10.0.0.0/24")),
    ({"from": "cidr:banana"}, 400, ("from 'cidr:banana' is not a network",)),
    ({"from": "cidr:10.0.0.0/8", "to": "cidr:198.19.0.0/16"}, 400, ("one side must be a group",)),
    ({"protocol": "tcp", "ports": "0"}, 400, ("port 0", "1 to 65535")),
    ({"protocol": "tcp", "ports": "65536"}, 400, ("port 65536", "1 to 65535")),
    ({"protocol": "udp", "ports": "90-80"}, 400, ("'90-80' is empty",)),
    ({"protocol": "icmp", "ports": "80"}, 400, ("need protocol tcp or udp, not icmp",)),
    ({"protocol": "tcp", "ports": "80", "icmp_type": 8}, 400, ("icmp type 8 needs protocol icmp, not tcp",)),
    ({"protocol": "icmp", "icmp_type": 300}, 400, ("icmp type 300", "0 and 255")),
    ({"protocol": "sctp"}, 400, ("protocol 'sctp'", "tcp, udp, icmp, any")),
    ({"action": "drop"}, 400, ("action 'drop'", "allow, deny")),
    ({"priority": 1001}, 400, ("priority 1001", "0 and 1000")),
    ({"priority": -5}, 400, ("priority -5",)),
    ({"priority": 10**30}, 400, ("priority",)),
    ({"name": "42"}, 400, ("rule name '42'", "all digits")),
    ({"name": "Web Rule"}, 400, ("invalid rule name 'Web Rule'",)),
    ({"to": "other"}, 404, ("group other of tenant default not found",)),  # a group of tenant beta
    ({"from": "nosuch"}, 404, ("group nosuch of tenant default not found",)),
    ({"tenant": "nobody"}, 404, ("tenant nobody not found",)),
    ({"priority": "5"}, 422, ("priority:",)),
    ({"priority": True}, 422, ("priority:",)),
    ({"icmp_type": "8", "protocol": "icmp"}, 422, ("icmp_type:",)),
    ({"from": None}, 422, ("from:",)),
    ({"port": "80"}, 422, ("port", "not permitted")),
])
async def test_bad_rules_are_refused(groups: httpx.AsyncClient, body: dict[str, Any], status: int,
                                     words: tuple[str, ...]) -> None:
    message = await refused(groups, "POST", "/rules", status, *words,
                            json={"from": "front", "to": "back", **body})
    assert "\n" not in message


async def test_a_missing_side_is_refused(groups: httpx.AsyncClient) -> None:
    await refused(groups, "POST", "/rules", 422, "to: Field required", json={"from": "front"})


async def test_the_same_rule_or_name_twice_is_a_conflict(groups: httpx.AsyncClient) -> None:
    web80 = {"from": "front", "to": "back", "protocol": "tcp", "ports": "80"}
    r = await create(groups, **web80, name="web")
    await refused(groups, "POST", "/rules", 409, "rule web of tenant default already allows tcp/80",
                  json={"from": "front", "to": "back", "protocol": "tcp", "ports": "080"})
    await refused(groups, "POST", "/rules", 409,
                  f"rule name web of tenant default is already taken (rule {r['id']})",
                  json={"from": "back", "to": "front", "name": "web"})
    await create(groups, **web80, action="deny")  # contradicting it is fine: priorities decide


async def test_a_higher_deny_revokes_a_live_route_before_the_call_returns(groups: httpx.AsyncClient,
                                                                          ctrl: Controller) -> None:
    a, b = await add_endpoint(groups, "a"), await add_endpoint(groups, "b", host="h2")
    await create(groups, **{"from": "front", "to": "front", "name": "all"})  # any protocol: unscoped routes
    cookie = route_cookie(a["id"], b["id"]).value
    ctrl.ctx.routes.plugged(cookie, ("a", "b"), {1: 2, 2: 2}, NOW)
    assert len((await groups.get("/routes")).json()) == 1
    # a deny below the allow changes nothing for this pair: the allow matches first
    low = await create(groups, **{"from": "front", "to": "front", "action": "deny", "priority": 50})
    assert [r["cookie"] for r in (await groups.get("/routes")).json()] == [f"{cookie:#018x}"]
    # a deny above it revokes the route by the time the call returns
    await create(groups, **{"from": "front", "to": "front", "action": "deny", "priority": 200,
                            "name": "stop"})
    assert (await groups.get("/routes")).json() == []
    trace = (await groups.post("/trace", json={"src": "a", "dst": "b"})).json()
    assert not trace["allowed"] and "rule stop" in trace["reason"]
    # removing the deny by name makes the pair reachable again (the next packet re-plugs it)
    assert (await groups.delete("/rules/default/stop")).status_code == 200
    assert (await groups.post("/trace", json={"src": "a", "dst": "b"})).json()["allowed"]
    assert (await groups.delete(f"/rules/default/{low['id']}")).status_code == 200

