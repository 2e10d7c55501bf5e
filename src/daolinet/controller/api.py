"""The REST API (FastAPI): tenants, networks, hosts, endpoints, live routes.

Every error is a JSON body {"error": message} with a 4xx/5xx status; input
models forbid unknown keys.  Handlers call the store; the controller learns
of the change from the store's feed, like it would from another controller.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from daolinet import __version__
from daolinet.controller.app import Controller
from daolinet.errors import Conflict, DaoliError, InvalidInput, NotFound
from daolinet.model import Host
from daolinet.model.objects import DEFAULT_TENANT

STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no "5" -> 5, true -> 1, "yes" -> True


class TenantIn(Strict):
    name: str


class NetworkIn(Strict):
    name: str
    subnet: str
    tenant: str = DEFAULT_TENANT
    gateway: str | None = None
    isolated: bool = False


class HostIn(Strict):
    name: str
    dpid: int = Field(ge=1, lt=1 << 64)
    underlay_ip: str
    underlay_mac: str
    pip_pool: str
    underlay_prefix: int = Field(default=24, ge=8, le=30)
    underlay_gateway_mac: str = ""
    uplink_ofport: int = Field(default=1, ge=1, lt=0xFFFFFF00)


class EndpointIn(Strict):
    name: str
    network: str
    host: str
    tenant: str = DEFAULT_TENANT
    ip: str | None = None
    mac: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class EndpointPatch(Strict):
    port: str | None = None
    ofport: int | None = Field(default=None, ge=1, lt=0xFFFFFF00)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        if err.get("type") == "json_invalid":
            return "malformed JSON body"
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


def create_app(ctrl: Controller) -> FastAPI:
    app = FastAPI(title="daolinet", version=__version__,
                  description="Hot-plug routes for containers: the controller's API.")
    store = ctrl.store

    @app.exception_handler(DaoliError)
    async def daoli_error(_: Request, exc: DaoliError) -> JSONResponse:
        return _error(STATUS.get(type(exc), 503), str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail or "error"))
        response.headers.update(exc.headers or {})  # e.g. Allow of a 405
        return response

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "switches": sorted(ctrl.ctx.sessions), "synced": sorted(ctrl.ctx.synced),
                "rev": ctrl.view.rev, "routes": len(ctrl.ctx.routes)}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return generate_latest(ctrl.ctx.metrics.registry).decode()

    # -- tenants --
    @app.get("/tenants")
    async def list_tenants() -> list[dict[str, Any]]:
        return [t.to_json() for t in await store.list_tenants()]

    @app.post("/tenants", status_code=201)
    async def create_tenant(body: TenantIn) -> dict[str, Any]:
        return (await store.create_tenant(body.name)).to_json()

    @app.delete("/tenants/{name}")
    async def delete_tenant(name: str) -> dict[str, Any]:
        return (await store.delete_tenant(name)).to_json()

    # -- networks --
    @app.get("/networks")
    async def list_networks(tenant: str | None = None) -> list[dict[str, Any]]:
        return [n.to_json() for n in await store.list_networks(tenant)]

    @app.post("/networks", status_code=201)
    async def create_network(body: NetworkIn) -> dict[str, Any]:
        n = await store.create_network(body.tenant, body.name, body.subnet, body.gateway, body.isolated)
        return n.to_json()

    @app.get("/networks/{tenant}/{name}")
    async def get_network(tenant: str, name: str) -> dict[str, Any]:
        return (await store.get_network(tenant, name)).to_json()

    @app.delete("/networks/{tenant}/{name}")
    async def delete_network(tenant: str, name: str) -> dict[str, Any]:
        return (await store.delete_network(tenant, name)).to_json()

    # -- hosts --
    @app.get("/hosts")
    async def list_hosts() -> list[dict[str, Any]]:
        return [h.to_json() for h in await store.list_hosts()]

    @app.post("/hosts", status_code=201)
    async def register_host(body: HostIn) -> dict[str, Any]:
        host = Host(**body.model_dump(), last_seen=ctrl.ctx.clock())
        return (await store.register_host(host)).to_json()

    @app.put("/hosts/{name}/heartbeat")
    async def heartbeat(name: str) -> dict[str, Any]:
        return (await store.heartbeat(name, ctrl.ctx.clock())).to_json()

    @app.delete("/hosts/{name}")
    async def delete_host(name: str) -> dict[str, Any]:
        return (await store.delete_host(name)).to_json()

    # -- endpoints --
    @app.get("/endpoints")
    async def list_endpoints(tenant: str | None = None, host: str | None = None,
                             network: str | None = None) -> list[dict[str, Any]]:
        return [e.to_json() for e in await store.list_endpoints(tenant, host, network)]

    @app.post("/endpoints", status_code=201)
    async def create_endpoint(body: EndpointIn) -> dict[str, Any]:
        e = await store.create_endpoint(body.tenant, body.network, body.name, body.host,
                                        ip=body.ip, mac=body.mac, labels=body.labels)
        return e.to_json()

    @app.get("/endpoints/{eid}")
    async def get_endpoint(eid: int) -> dict[str, Any]:
        return (await store.get_endpoint(eid)).to_json()

    @app.patch("/endpoints/{eid}")
    async def patch_endpoint(eid: int, body: EndpointPatch) -> dict[str, Any]:
        return (await store.update_endpoint(eid, port=body.port, ofport=body.ofport)).to_json()

    @app.delete("/endpoints/{eid}")
    async def delete_endpoint(eid: int) -> dict[str, Any]:
        return (await store.delete_endpoint(eid)).to_json()

    @app.get("/stats/route-setup")
    async def route_setup_stats() -> dict[str, Any]:
        """PacketIn -> route installed and packet re-injected, over recent routes (µs)."""
        samples = sorted(ctrl.ctx.setup_samples)
        if not samples:
            return {"count": 0}

        def pct(p: float) -> float:
            return round(samples[min(len(samples) - 1, int(p * len(samples)))] * 1e6, 1)

        return {"count": len(samples), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
                "max_us": round(samples[-1] * 1e6, 1)}

    # -- routes --
    @app.get("/routes")
    async def routes(host: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
        found = ctrl.ctx.routes.all()
        if host is not None:
            h = ctrl.view.hosts.get(host)
            if h is None:
                raise NotFound(f"no host {host}")
            found = [r for r in found if h.dpid in r.dpids]
        return [r.to_json() for r in found]

    return app
