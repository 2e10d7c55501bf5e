"""The agent's client of the controller's REST API (httpx).  Errors come back
as DaoliErrors carrying the controller's message."""

from __future__ import annotations

from typing import Any

import httpx

from daolinet.errors import (
    Conflict,
    DaoliError,
    Forbidden,
    InvalidInput,
    NotFound,
    SystemFailure,
    Unauthorized,
)

ERRORS: dict[int, type[DaoliError]] = {400: InvalidInput, 401: Unauthorized, 403: Forbidden,
                                       404: NotFound, 409: Conflict, 422: InvalidInput}


def raise_for(resp: httpx.Response) -> Any:
    if resp.status_code < 400:
        return resp.json()
    try:
        message = resp.json().get("error") or resp.text
    except ValueError:
        message = resp.text
    raise ERRORS.get(resp.status_code, SystemFailure)(message)


class ControllerClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0,
                 transport: Any = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport,
                                      headers=headers)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise SystemFailure(f"controller API {self.http.base_url} unreachable: {e}") from e
        return raise_for(resp)

    async def register_host(self, host: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("POST", "/hosts", json=host))

    async def heartbeat(self, name: str) -> dict[str, Any]:
        return dict(await self.call("PUT", f"/hosts/{name}/heartbeat"))

    async def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("POST", "/endpoints", json=body))

    async def patch_endpoint(self, eid: int, **fields: Any) -> dict[str, Any]:
        return dict(await self.call("PATCH", f"/endpoints/{eid}", json=fields))

    async def delete_endpoint(self, eid: int) -> dict[str, Any]:
        return dict(await self.call("DELETE", f"/endpoints/{eid}"))

    async def endpoints_on(self, host: str) -> list[dict[str, Any]]:
        return list(await self.call("GET", "/endpoints", params={"host": host}))

    async def network(self, tenant: str, name: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/networks/{tenant}/{name}"))
