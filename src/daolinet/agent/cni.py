"""The agent's side of CNI: `daolinet-cni` posts {env, config} to POST /cni on
the agent's socket and prints what comes back.

An attachment (container id, interface) is a daolinet endpoint named
`cni-<container id>-<ifname>` on this host, labelled with both (and the CNI
network's name) so DEL, CHECK and GC find it.  ADD attaches as the lab does
(veth, address, default route, TX checksumming off, OVS port); DEL releases
it and is fine when it is gone; CHECK compares prevResult with the store and
the live interface (both addresses of a dual-stack endpoint); STATUS asks
the controller; GC releases this host's attachments of the network that are
not in the valid list.  daolinet errors become CNI codes here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from daolinet.agent.service import AgentService
from daolinet.cni import spec
from daolinet.cni.spec import CniError, CniRequest
from daolinet.errors import Conflict, DaoliError, InvalidInput, NotFound, SystemFailure
from daolinet.system import links

DRIVER_LABEL, CNI = "daolinet.driver", "cni"
CONTAINER_LABEL, IFNAME_LABEL, NETWORK_LABEL = "cni.containerID", "cni.ifname", "cni.network"


class CniIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    env: dict[str, str]
    config: dict[str, Any]


def cni_error(e: DaoliError) -> CniError:
    """A daolinet error as the CNI code that tells a runtime what to do."""
    if isinstance(e, SystemFailure) and isinstance(e.__cause__, httpx.HTTPError):
        return CniError(spec.TRY_AGAIN, str(e))  # the controller is unreachable
    if isinstance(e, Conflict):
        return CniError(spec.IN_USE, str(e))
    if isinstance(e, InvalidInput | NotFound):
        return CniError(spec.INVALID_CONFIG, str(e))
    return CniError(spec.IO_FAILURE, str(e))


class CniBackend:
    def __init__(self, service: AgentService) -> None:
        self.service = service
        self.client = service.client
        self.verbs: dict[str, Callable[[CniRequest], Awaitable[dict[str, Any] | None]]] = {
            "ADD": self.add, "DEL": self.delete, "CHECK": self.check, "STATUS": self.status, "GC": self.gc}

    async def handle(self, env: Mapping[str, str], config: dict[str, Any]) -> dict[str, Any]:
        """{"result": ...} or {"error": CNI error}: the body the shim prints."""
        try:
            req = spec.parse(env, json.dumps(config).encode())
            if req.command == "VERSION":
                return {"result": spec.version_result(req.version)}
            try:
                return {"result": await self.verbs[req.command](req)}
            except DaoliError as e:
                raise cni_error(e) from e
        except CniError as e:
            return {"error": e.to_json(spec.version_of(json.dumps(config).encode()))}

    async def add(self, req: CniRequest) -> dict[str, Any]:
        labels = {DRIVER_LABEL: CNI, CONTAINER_LABEL: req.container_id, IFNAME_LABEL: req.ifname,
                  NETWORK_LABEL: req.name}
        endpoint = await self.service.attach(req.endpoint_name, req.netns, req.network, req.tenant,
                                             ip=req.ip, mac=req.mac, labels=labels, ifname=req.ifname)
        net = await self.client.network(req.tenant, req.network)
        host_mac = await asyncio.to_thread(links.mac_of, self.service.plumber.host_netns, endpoint["port"])
        return spec.add_result(req, endpoint, net, host_mac, self.service.mtu)

    async def _find(self, req: CniRequest) -> dict[str, Any] | None:
        try:
            endpoint = await self.client.call("GET", f"/containers/{req.tenant}/{req.endpoint_name}")
        except NotFound:
            return None
        labels = endpoint.get("labels") or {}
        mine = (labels.get(CONTAINER_LABEL), labels.get(IFNAME_LABEL), endpoint.get("host"))
        return dict(endpoint) if mine == (req.container_id, req.ifname, self.service.host.name) else None

    async def delete(self, req: CniRequest) -> None:
        endpoint = await self._find(req)
        if endpoint is not None:
            await self.service.release(endpoint["id"], netns=req.netns, ifname=req.ifname)

    async def check(self, req: CniRequest) -> None:
        mac, address, address6 = spec.expected(req)
        endpoint = await self._find(req)
        if endpoint is None:
            raise CniError(spec.NOT_AS_EXPECTED, f"container {req.container_id} has no daolinet endpoint "
                                                 f"for {req.ifname}")
        want = (mac.lower(), address, address6)
        stored = (endpoint["mac"], f"{endpoint['ip']}/{endpoint['subnet'].split('/')[1]}", _stored6(endpoint))
        if stored != want:
            raise CniError(spec.NOT_AS_EXPECTED, f"the endpoint is {stored}, prevResult says {want}")
        plugged = (await asyncio.to_thread(self.service.plumber.plugged)).get(endpoint["id"])
        if plugged is None or plugged.ofport < 1:
            raise CniError(spec.NOT_AS_EXPECTED,
                           f"the endpoint's port {endpoint['port']} is not on the bridge")
        try:
            live = await asyncio.to_thread(links.address_of, req.netns, req.ifname)
            live6 = await asyncio.to_thread(links.address6_of, req.netns, req.ifname) if address6 else None
        except DaoliError as x:
            raise CniError(spec.NOT_AS_EXPECTED, f"{req.ifname} in {req.netns}: {x}") from x
        if live is None or (live[2], f"{live[0]}/{live[1]}") != want[:2]:
            raise CniError(spec.NOT_AS_EXPECTED, f"{req.ifname} in {req.netns} is {live}, not {want[:2]}")
        if address6 and (live6 is None or f"{live6[0]}/{live6[1]}" != address6):
            raise CniError(spec.NOT_AS_EXPECTED,
                           f"{req.ifname} in {req.netns} has IPv6 {live6}, not {address6}")

    async def status(self, _: CniRequest) -> None:
        try:
            await self.client.call("GET", "/health")
        except DaoliError as e:
            raise CniError(spec.NOT_AVAILABLE, "the daolinet controller is not reachable", str(e)) from e

    async def gc(self, req: CniRequest) -> None:
        valid = set(req.valid_attachments)
        failed = []
        for endpoint in await self.client.endpoints_on(self.service.host.name):
            labels = endpoint.get("labels") or {}
            if labels.get(DRIVER_LABEL) != CNI or labels.get(NETWORK_LABEL) != req.name:
                continue
            cid, ifname = labels.get(CONTAINER_LABEL, ""), labels.get(IFNAME_LABEL, "")
            if (cid, ifname) in valid or (cid, "") in valid:
                continue
            try:
                await self.service.release(endpoint["id"])
            except DaoliError as err:
                failed.append(f"{endpoint['name']}: {err}")
        if failed:
            raise CniError(spec.IO_FAILURE, f"GC could not release {len(failed)} attachment(s)",
                           "; ".join(failed))


def _stored6(endpoint: dict[str, Any]) -> str:
    """The endpoint's IPv6 address/prefix, "" on an IPv4-only one (GET /containers/... gives
    the network's subnet6 with a dual-stack endpoint)."""
    if not endpoint.get("ip6"):
        return ""
    return f"{endpoint['ip6']}/{str(endpoint['subnet6']).split('/')[1]}"


def install(app: FastAPI, service: AgentService) -> None:
    backend = CniBackend(service)

    @app.post("/cni")
    async def cni(body: CniIn) -> dict[str, Any]:
        return await backend.handle(body.env, body.config)
