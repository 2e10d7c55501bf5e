"""The agent's local API, served on a root-only unix socket: what the lab,
the Docker plugin and the CNI shim call to attach and detach containers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field

from daolinet.agent import cni
from daolinet.agent.service import AgentService
from daolinet.api_common import Strict, status_of, validation_message
from daolinet.errors import DaoliError
from daolinet.model.objects import DEFAULT_TENANT


class AttachIn(Strict):
    name: str
    netns: str
    network: str
    tenant: str = DEFAULT_TENANT
    ip: str | None = None
    mac: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class AdoptIn(Strict):
    netns: str


def create_app(service: AgentService) -> FastAPI:
    app = FastAPI(title="daolinet agent", description=f"Host {service.host.name}'s local API.")

    @app.exception_handler(DaoliError)
    async def daoli_error(_: Request, exc: DaoliError) -> JSONResponse:
        return JSONResponse(status_code=status_of(exc), content={"error": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": validation_message(exc)})

    @app.get("/host")
    async def host() -> dict[str, Any]:
        return service.host.to_json()

    @app.get("/containers")
    async def containers() -> list[dict[str, Any]]:
        return await service.containers()

    @app.post("/containers", status_code=201)
    async def attach(body: AttachIn) -> dict[str, Any]:
        return await service.attach(body.name, body.netns, body.network, body.tenant,
                                    ip=body.ip, mac=body.mac, labels=body.labels)

    @app.delete("/containers/{eid}")
    async def detach(eid: int) -> dict[str, Any]:
        return await service.detach(eid)

    @app.post("/containers/{eid}/move-away")
    async def move_away(eid: int) -> dict[str, Any]:
        await service.move_away(eid)
        return {"unbridged": eid}

    @app.post("/containers/{eid}/move-here")
    async def move_here(eid: int, body: AdoptIn) -> dict[str, Any]:
        return await service.move_here(eid, body.netns)

    cni.install(app, service)  # POST /cni: what daolinet-cni posts

    @app.post("/reconcile")
    async def reconcile() -> dict[str, list[int]]:
        return await service.reconcile()

    return app
