"""The agent's client of its host's dockerd (Engine API over a unix socket):
only what keeping Docker networks in step with daolinet's needs.  Never
called while dockerd waits on the plugin, except for the read-only lookups
`network` and `wait_name`, which dockerd serves concurrently."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx

from daolinet.agent import docker_api as api
from daolinet.errors import Conflict, DaoliError, NotFound, SystemFailure

ERRORS: dict[int, type[DaoliError]] = {404: NotFound, 403: Conflict, 409: Conflict}


def socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise SystemFailure(f"--docker-host {host!r}: use unix:///PATH")
    return host[len("unix://"):]


class DockerClient:
    def __init__(self, host: str, timeout: float = 30.0) -> None:
        self.path = socket_path(host)
        self.http = httpx.AsyncClient(base_url="http://docker", timeout=timeout,
                                      transport=httpx.AsyncHTTPTransport(uds=self.path))

    async def close(self) -> None:
        await self.http.aclose()

    def available(self) -> bool:
        return os.path.exists(self.path)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise SystemFailure(f"dockerd at {self.path} unreachable: {e}") from e
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message") or resp.text
            except ValueError:
                message = resp.text
            raise ERRORS.get(resp.status_code, SystemFailure)(f"dockerd: {message}")
        return resp.json() if resp.content else None

    async def networks(self) -> list[dict[str, Any]]:
        """Docker networks of the daolinet driver."""
        filters = json.dumps({"driver": [api.PLUGIN_NAME]})
        found = await self.call("GET", "/networks", params={"filters": filters})
        return [network for network in found if network.get("Driver") == api.PLUGIN_NAME]

    async def names(self) -> dict[str, str]:
        """Every Docker network's name -> id (any driver)."""
        return {network["Name"]: network["Id"] for network in await self.call("GET", "/networks")}

    async def network(self, nid: str) -> dict[str, Any] | None:
        try:
            return dict(await self.call("GET", f"/networks/{nid}"))
        except NotFound:
            return None

    async def wait_name(self, nid: str, timeout: float = 15.0) -> str:
        """The name of network `nid`, once dockerd has stored it (it does so
        after the plugin's CreateNetwork returns)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await self.network(nid)
            if found is not None:
                return str(found["Name"])
            await asyncio.sleep(0.02)  # polling dockerd: it offers no event for this
        raise SystemFailure(f"dockerd never showed network {nid[:12]}")

    async def create_network(self, name: str, subnet: str, gateway: str, options: dict[str, str],
                             v6: tuple[str, str] | None = None) -> str:
        """A network of the daolinet driver and IPAM; `v6` (subnet6, gateway6): dual-stack (--ipv6)."""
        configs = [{"Subnet": subnet, "Gateway": gateway}]
        if v6 is not None:
            configs.append({"Subnet": v6[0], "Gateway": v6[1]})
        body = {"Name": name, "Driver": api.PLUGIN_NAME, "CheckDuplicate": True, "Options": options,
                "EnableIPv6": v6 is not None, "IPAM": {"Driver": api.PLUGIN_NAME, "Config": configs}}
        return str((await self.call("POST", "/networks/create", json=body))["Id"])

    async def delete_network(self, nid: str) -> None:
        await self.call("DELETE", f"/networks/{nid}")
