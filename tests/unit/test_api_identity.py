"""Identities on the REST API: every route of the OpenAPI document walked with a
host credential of h1 — its certificate (as uvicorn hands it to a request:
scope["state"], see controller/api/transport.py) and its --insecure host token —
and with no credential; /internal with each kind of credential; readiness; and
one real TLS server (uvicorn with the API's own protocol class) reached by httpx
with certificates of a CA made for the test."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.api.health_routes import not_ready
from daolinet.controller.api.transport import IDENTITY
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.controller.main import api_config
from daolinet.errors import SystemFailure
from daolinet.model import Host
from daolinet.security import pki
from daolinet.security.identity import Identity
from daolinet.security.settings import Security
from daolinet.security.tls import TlsFiles, client_context
from daolinet.store import Store, open_store
from daolinet.testing.uvicorn_server import serving

ADMIN, AGENT_H1, ALPHA = "dl_admin", "dl_agent-h1", "dl_alpha"
H1, H2 = Identity("host", "h1"), Identity("host", "h2")


def host(i: int) -> Host:
    return Host(f"h{i}", i, f"198.18.0.{i}", f"02:00:00:00:00:{i:02x}", f"198.18.{i}.0/24")


@dataclass
class World:
    app: Any
    store: Store
    ids: dict[str, int]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Hosts h1, h2; tenant alpha with networks alphanet and emptynet; endpoints mine,
    doomed (on h1), theirs, mover (on h2); port mappings pm1 (h1), pm2 (h2)."""
    store = open_store("sqlite://:memory:")
    await store.create_token("admin", None, hash_token(ADMIN), 1.0)
    await store.create_token("agent-h1", None, hash_token(AGENT_H1), 1.0, host="h1")
    for i in (1, 2):
        await store.register_host(host(i))
    await store.create_tenant("alpha")
    await store.create_token("alpha-token", "alpha", hash_token(ALPHA), 1.0)
    await store.create_network("alpha", "alphanet", "10.77.0.0/24")
    await store.create_network("alpha", "emptynet", "10.78.0.0/24")
    ids = {name: (await store.create_endpoint("alpha", "alphanet", name, h)).id
           for name, h in (("mine", "h1"), ("doomed", "h1"), ("theirs", "h2"), ("mover", "h2"))}
    await store.create_portmap("alpha", "pm1", "mine", "tcp", 8080, 80, "h1")
    await store.create_portmap("alpha", "pm2", "theirs", "tcp", 8080, 80, "h2")
    await store.create_group("alpha", "g", ["network:alphanet"])
    ids["rule_id"] = (await store.create_l4_rule("alpha", "g", "g", "tcp", "80")).id
    ids["token_id"] = 1
    ctrl = Controller(store, Config())
    await ctrl.start()
    yield World(create_app(ctrl, tls=True), store, ids)
    await asyncio.gather(*list(ctrl._tasks))
    await ctrl.stop()
    await store.close()


def with_peer(app: Any, identity: Identity | None) -> Any:
    """`app` as uvicorn serves it over TLS: every request's state holds the connection's
    verified peer (what PeerIdentityProtocol puts in its app_state)."""
    async def served(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "scheme": "https", "state": {IDENTITY: identity}}
        await app(scope, receive, send)
    return served


async def call(app: Any, method: str, path: str, *, peer: Identity | None = None, token: str | None = None,
               **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=with_peer(app, peer))
    async with httpx.AsyncClient(transport=transport, base_url="https://controller") as c:
        return await c.request(method, path, headers=headers, **kwargs)


# h1's credential, both ways: (peer certificate, token), and what its refusals start with.
CREDENTIALS = {"certificate": (H1, None, "TLS: certificate of h1"),
               "token": (None, AGENT_H1, "token agent-h1 of host h1")}
HOST_BODY = {"dpid": 1, "underlay_ip": "198.18.0.1", "underlay_mac": "02:00:00:00:00:01",
             "pip_pool": "198.18.1.0/24"}


def own_calls(ids: dict[str, int]) -> dict[tuple[str, str], tuple[str, dict[str, Any], int]]:
    """What a host does on its own host, route by route: (path, request kwargs, status)."""
    return {
        ("POST", "/hosts"): ("/hosts", {"json": {"name": "h1", **HOST_BODY}}, 201),
        ("PUT", "/hosts/{name}/heartbeat"): ("/hosts/h1/heartbeat", {}, 200),
        ("GET", "/tenants/{name}"): ("/tenants/alpha", {}, 200),
        ("GET", "/networks"): ("/networks", {}, 200),
        ("POST", "/networks"): ("/networks", {"json": {"name": "dockernet", "subnet": "10.79.0.0/24",
                                                       "tenant": "alpha"}}, 201),
        ("GET", "/networks/{tenant}/{name}"): ("/networks/alpha/alphanet", {}, 200),
        ("DELETE", "/networks/{tenant}/{name}"): ("/networks/alpha/emptynet", {}, 200),
        ("GET", "/endpoints"): ("/endpoints", {}, 200),
        ("POST", "/endpoints"): ("/endpoints", {"json": {"name": "new", "network": "alphanet",
                                                         "host": "h1", "tenant": "alpha"}}, 201),
        ("GET", "/endpoints/{eid}"): (f"/endpoints/{ids['theirs']}", {}, 200),
        ("PATCH", "/endpoints/{eid}"): (f"/endpoints/{ids['mine']}", {"json": {"ofport": 5,
                                                                               "aliases": ["web"]}}, 200),
        ("DELETE", "/endpoints/{eid}"): (f"/endpoints/{ids['doomed']}", {}, 200),
        ("GET", "/containers/{tenant}/{name}"): ("/containers/alpha/theirs", {}, 200),
        ("POST", "/endpoints/{eid}/move"): (f"/endpoints/{ids['mover']}/move", {"json": {"host": "h1"}}, 200),
        ("GET", "/portmaps"): ("/portmaps", {}, 200),
        ("POST", "/portmaps"): ("/portmaps", {"json": {"name": "pm3", "container": "mine", "rule": "9090:90",
                                                       "tenant": "alpha", "host": "h1"}}, 201),
        ("DELETE", "/portmaps/{tenant}/{name}"): ("/portmaps/alpha/pm1", {}, 200),
        ("GET", "/health"): ("/health", {}, 200),
        ("GET", "/healthz"): ("/healthz", {}, 200),
        ("GET", "/readyz"): ("/readyz", {}, 200),
    }


def operations(app: Any) -> list[tuple[str, str]]:
    return [(m.upper(), t) for t, methods in app.openapi()["paths"].items() for m in methods]


def concrete(template: str, ids: dict[str, int]) -> str:
    """Any object of alpha's will do for a refused call: it must be refused before a look."""
    values = {"tenant": "alpha", "name": "h1" if template.startswith("/hosts") else "g",
              "eid": str(ids["mine"]), "ref": str(ids["rule_id"]), "token_id": "1", "dpid": "1"}
    return re.sub(r"{(\w+)}", lambda m: values[m[1]], template)


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_a_host_credential_walks_every_route(world: World, credential: str) -> None:
    peer, token, who = CREDENTIALS[credential]
    allowed = own_calls(world.ids)
    assert set(allowed) <= set(operations(world.app)), "a route the agents use was renamed"
    refused = [op for op in operations(world.app) if op not in allowed]
    assert len(refused) >= 25
    for method, template in refused:
        before = await world.store.snapshot()
        resp = await call(world.app, method, concrete(template, world.ids), peer=peer, token=token,
                          json={"name": "x"} if method in ("POST", "PUT", "PATCH") else None)
        assert resp.status_code == 403, (method, template, resp.text)
        assert resp.json()["error"].startswith(f"{who} may not {method} "), resp.text
        assert "\n" not in resp.json()["error"]
        assert await world.store.snapshot() == before, (method, template)
    for (method, template), (path, kwargs, status) in allowed.items():
        resp = await call(world.app, method, path, peer=peer, token=token, **kwargs)
        assert resp.status_code == status, (method, template, resp.text)
    listed = await call(world.app, "GET", "/endpoints", peer=peer, token=token)
    assert {e["host"] for e in listed.json()} == {"h1"}
    assert {e["name"] for e in listed.json()} == {"mine", "new", "mover"}
    maps = await call(world.app, "GET", "/portmaps", peer=peer, token=token)
    assert [m["name"] for m in maps.json()] == ["pm3"]


def other_host_calls(ids: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    """The same calls aimed at h2, or at h2's objects."""
    return [
        ("POST", "/hosts", {"json": {**HOST_BODY, "name": "h2", "dpid": 2, "underlay_ip": "198.18.0.2"}}),
        ("PUT", "/hosts/h2/heartbeat", {}),
        ("GET", "/endpoints", {"params": {"host": "h2"}}),
        ("POST", "/endpoints", {"json": {"name": "x", "network": "alphanet", "host": "h2",
                                         "tenant": "alpha"}}),
        ("PATCH", f"/endpoints/{ids['theirs']}", {"json": {"ofport": 7}}),
        ("PATCH", f"/endpoints/{ids['theirs']}", {"json": {"aliases": ["web"]}}),
        ("DELETE", f"/endpoints/{ids['theirs']}", {}),
        ("POST", f"/endpoints/{ids['mine']}/move", {"json": {"host": "h2"}}),
        ("GET", "/portmaps", {"params": {"host": "h2"}}),
        ("POST", "/portmaps", {"json": {"name": "p", "container": "theirs", "rule": "9191:91",
                                        "tenant": "alpha", "host": "h2"}}),
        ("POST", "/portmaps", {"json": {"name": "p", "container": "theirs", "rule": "9191:91",
                                        "tenant": "alpha", "host": "h1"}}),  # h2's container
        ("POST", "/portmaps", {"json": {"name": "p", "container": "mine", "rule": "9191:91",
                                        "tenant": "alpha", "host": "h2"}}),  # on h2
        ("POST", "/portmaps", {"json": {"name": "p", "container": "theirs", "rule": "9191:91",
                                        "tenant": "alpha"}}),  # on its container's host, h2
        ("DELETE", "/portmaps/alpha/pm2", {}),
    ]


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_a_host_credential_acts_only_on_its_own_host(world: World, credential: str) -> None:
    peer, token, who = CREDENTIALS[credential]
    for method, path, kwargs in other_host_calls(world.ids):
        before = await world.store.snapshot()
        resp = await call(world.app, method, path, peer=peer, token=token, **kwargs)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json() == {"error": f"{who} is not valid for host h2"}
        assert await world.store.snapshot() == before, (method, path)


async def test_the_words_the_cli_prints(world: World) -> None:
    resp = await call(world.app, "PUT", "/hosts/h1/heartbeat", peer=H2)
    assert resp.json() == {"error": "TLS: certificate of h2 is not valid for host h1"}


async def test_no_credential_is_401_except_the_probes_and_the_documents(world: World) -> None:
    for method, template in [*operations(world.app), ("POST", "/internal/switches/{dpid}/ofmsgs")]:
        path = concrete(template, world.ids)
        resp = await call(world.app, method, path, json={} if method != "GET" else None)
        if template in ("/healthz", "/readyz"):
            assert resp.status_code == 200, (method, path, resp.text)
        else:
            assert resp.status_code == 401, (method, path, resp.text)
            assert resp.json()["error"] == ("missing token: send 'Authorization: Bearer TOKEN' "
                                            "or show a client certificate")
            assert resp.headers["www-authenticate"] == "Bearer"
    for path in ("/docs", "/openapi.json"):
        assert (await call(world.app, "GET", path)).status_code == 200
    schemes = world.app.openapi()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"  # /docs has an Authorize button


async def test_certificates_and_tokens(world: World) -> None:
    admin_user, controller = Identity("user", "ops"), Identity("controller", "c1")
    assert (await call(world.app, "GET", "/hosts", peer=admin_user)).status_code == 200
    # a token, when sent, is who the request acts as
    resp = await call(world.app, "GET", "/hosts", peer=admin_user, token=ALPHA)
    assert resp.status_code == 403 and resp.json()["error"] == "this needs an admin token"
    assert (await call(world.app, "GET", "/hosts", peer=H1, token=ADMIN)).status_code == 200
    resp = await call(world.app, "GET", "/hosts", peer=admin_user, token="dl_wrong")
    assert resp.status_code == 401 and resp.json()["error"] == "invalid token"
    resp = await call(world.app, "GET", "/networks", peer=controller)
    assert resp.status_code == 403
    assert resp.json()["error"] == ("TLS: certificate of c1 may not GET /networks: "
                                    "a controller credential only forwards FlowMods (/internal)")
    health = (await call(world.app, "GET", "/health", peer=controller)).json()
    assert health["ok"] is True and set(health) == {"ok", "rev"}  # not the admin's view


INTERNAL = "/internal/switches/1/ofmsgs"
FORWARD = {"json": {"data": "", "barrier": False}}
NOT_MASTERED = {"error": "switch 0x1 is not mastered by this controller"}  # past the gate


async def test_internal_needs_a_controller_certificate_with_tls(world: World) -> None:
    resp = await call(world.app, "POST", INTERNAL, peer=Identity("controller", "c1"), **FORWARD)
    assert (resp.status_code, resp.json()) == (409, NOT_MASTERED)
    # whatever token comes with it: the admin token without a controller certificate is not enough
    for peer, token, error in (
            (H1, None, "TLS: certificate of h1 (host) is not valid for a controller"),
            (H1, AGENT_H1, "TLS: certificate of h1 (host) is not valid for a controller"),
            (None, ADMIN, f"TLS: {INTERNAL} needs a controller certificate"),
            (Identity("user", "ops"), ADMIN, "TLS: certificate of ops (user) is not valid for a controller"),
            (None, AGENT_H1, f"TLS: {INTERNAL} needs a controller certificate")):
        resp = await call(world.app, "POST", INTERNAL, peer=peer, token=token, **FORWARD)
        assert (resp.status_code, resp.json()) == (403, {"error": error}), (peer, token)


async def test_internal_needs_the_admin_token_without_tls(world: World) -> None:
    world.app.state.tls = False  # an --insecure controller
    resp = await call(world.app, "POST", INTERNAL, token=ADMIN, **FORWARD)
    assert (resp.status_code, resp.json()) == (409, NOT_MASTERED)
    for token in (AGENT_H1, ALPHA):
        resp = await call(world.app, "POST", INTERNAL, token=token, **FORWARD)
        assert resp.status_code == 403, resp.text


def test_readiness_decision() -> None:
    assert not_ready(None, None, 0) is None  # the only controller
    assert not_ready(None, {}, 0) == ("mastership of switches not known yet "
                                      "(no round through the store so far)")
    assert not_ready(None, {}, 42) is None
    assert not_ready("etcd down", None, 0) == "store unreachable: etcd down"


async def test_readyz_follows_the_store_and_the_mastership(world: World,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ctrl = world.app.state.ctrl
    assert (await call(world.app, "GET", "/readyz")).json() == {"ok": True}
    ctrl.held = {}  # one of several controllers, before its first mastership round
    resp = await call(world.app, "GET", "/readyz")
    assert resp.status_code == 503 and "mastership of switches not known yet" in resp.json()["error"]
    ctrl.generation = lambda: 7
    assert (await call(world.app, "GET", "/readyz")).status_code == 200

    async def down(_: str) -> None:
        raise SystemFailure("etcd at 198.18.0.250:2379 unreachable")
    monkeypatch.setattr(world.store, "find_token", down)
    resp = await call(world.app, "GET", "/readyz")
    assert resp.status_code == 503
    assert resp.json() == {"error": "not ready: store unreachable: etcd at 198.18.0.250:2379 unreachable"}
    assert (await call(world.app, "GET", "/healthz")).json() == {"ok": True}  # the process still answers


# -- one real TLS server --------------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> str:
    d = str(tmp_path / "pki")
    pki.init_ca(d)
    pki.issue(d, "controller", "c0", sans=("127.0.0.1",))
    for role, name in (("host", "h1"), ("controller", "c1"), ("user", "ops")):
        pki.issue(d, role, name)  # type: ignore[arg-type]
    return d


@contextlib.asynccontextmanager
async def tls_server(world: World, ca: str) -> AsyncIterator[str]:
    """The API served as `daolinet controller` serves it: api_config with the controller's pair."""
    async with serving(api_config(world.app, Security(tls=TlsFiles.of(ca, "controller", "c0")))) as port:
        yield f"127.0.0.1:{port}"


def client(ca: str, role: str | None = None, name: str | None = None) -> httpx.AsyncClient:
    files = TlsFiles.of(ca, role, name) if role and name else TlsFiles(pki.ca_pair(ca).cert)  # type: ignore[arg-type]
    return httpx.AsyncClient(verify=client_context(files), timeout=10)


async def test_over_real_tls(world: World, ca: str, tmp_path: Path) -> None:
    async with tls_server(world, ca) as where:
        base = f"https://{where}"
        async with client(ca, "host", "h1") as h1:
            assert (await h1.put(f"{base}/hosts/h1/heartbeat")).status_code == 200
            resp = await h1.put(f"{base}/hosts/h2/heartbeat")
            assert (resp.status_code, resp.json()) == (403, {"error": "TLS: certificate of h1 is not valid "
                                                                      "for host h2"})
            assert (await h1.post(f"{base}{INTERNAL}", **FORWARD)).status_code == 403
        async with client(ca, "controller", "c1") as c1:
            resp = await c1.post(f"{base}{INTERNAL}", **FORWARD)
            assert (resp.status_code, resp.json()) == (409, NOT_MASTERED)
        async with client(ca) as nobody:  # trusts the CA, shows no certificate
            assert (await nobody.get(f"{base}/networks")).status_code == 401
            assert (await nobody.get(f"{base}/readyz")).status_code == 200
            assert (await nobody.get(f"{base}/hosts", headers={"Authorization": f"Bearer {ADMIN}"})
                    ).status_code == 200
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://{where}/healthz")
        stranger = str(tmp_path / "other-ca")
        pki.init_ca(stranger)
        async with client(stranger) as untrusting, httpx.AsyncClient(timeout=5) as system_trust:
            for c in (untrusting, system_trust):
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await c.get(f"{base}/healthz")
