"""Networks follow the user: every daolinet network exists in this host's
dockerd (same name), and a Docker network of the daolinet driver whose
daolinet network is gone is removed.

`plan` decides (pure); `NetworkSync` fetches, applies and repeats, every
`interval` seconds and whenever this host changed a network.  dockerd is
read *before* the controller: a network Docker shows was created in daolinet
first, so it is never mistaken for a deleted one.  A network that cannot be
made here (its name or subnet is taken on this host) is reported once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daolinet.agent import docker_api as api
from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_client import DockerClient
from daolinet.agent.docker_networks import Binding, Registry
from daolinet.errors import DaoliError
from daolinet.model.objects import DEFAULT_TENANT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncPlan:
    adopt: list[Binding] = field(default_factory=list)  # Docker networks the registry did not know
    create: list[dict[str, Any]] = field(default_factory=list)  # daolinet networks missing here
    remove: list[str] = field(default_factory=list)  # Docker network ids whose network is gone
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)  # (tenant, name) -> why


def binding_of(docker_net: Mapping[str, Any]) -> Binding | None:
    """What a Docker network of ours stands for, from dockerd's own record of it."""
    opts = docker_net.get("Options") or {}
    configs = (docker_net.get("IPAM") or {}).get("Config") or []
    if not configs or not configs[0].get("Subnet"):
        return None
    return Binding(nid=docker_net["Id"], tenant=opts.get(api.OPT_TENANT) or DEFAULT_TENANT,
                   name=opts.get(api.OPT_NETWORK) or docker_net["Name"], subnet=configs[0]["Subnet"])


def plan(wanted: Iterable[Mapping[str, Any]], local: Iterable[Mapping[str, Any]], names: set[str],
         bound: Mapping[str, Binding], busy: set[str]) -> SyncPlan:
    """wanted: the controller's networks; local: dockerd's daolinet networks;
    names: every Docker network name here; bound: the registry; busy: Docker
    networks being created (pending) or broken, left alone."""
    out = SyncPlan()
    wanted_keys = {(n["tenant"], n["name"]) for n in wanted}
    here: dict[tuple[str, str], Binding] = {}
    for d in local:
        if d["Id"] in busy:
            continue
        b = bound.get(d["Id"]) or binding_of(d)
        if b is None:
            continue
        if d["Id"] not in bound:
            out.adopt.append(b)
        if b.key in wanted_keys:
            here[b.key] = b
        else:
            out.remove.append(b.nid)
    served = {b.subnet for b in here.values()} | {b.subnet for b in bound.values()}
    for n in wanted:
        key = (n["tenant"], n["name"])
        if key in here:
            continue
        if n["name"] in names:
            out.skipped[key] = f"a Docker network named {n['name']} already exists on this host"
        elif n["subnet"] in served:
            out.skipped[key] = f"this host already serves subnet {n['subnet']} for another network"
        else:
            out.create.append(dict(n))
            served.add(n["subnet"])
    return out


class NetworkSync:
    def __init__(self, client: ControllerClient, docker: DockerClient, registry: Registry,
                 interval: float) -> None:
        self.client = client
        self.docker = docker
        self.registry = registry
        self.interval = interval
        self._wake = asyncio.Event()
        self._reported: dict[tuple[str, str], str] = {}
        self._failing = ""

    def trigger(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync_once()
                self._failing = ""
            except DaoliError as e:
                if str(e) != self._failing:  # say it once, not every interval
                    log.warning("docker network sync: %s", e)
                self._failing = str(e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def sync_once(self) -> SyncPlan:
        if not self.docker.available():
            return SyncPlan()
        local = await self.docker.networks()  # dockerd first: see the module's docstring
        names = set(await self.docker.names())
        wanted = await self.client.call("GET", "/networks")
        bound = {b.nid: b for b in self.registry.bindings()}
        busy = {d["Id"] for d in local if self.registry.known(d["Id"]) and d["Id"] not in bound}
        p = plan(wanted, local, names, bound, busy)
        await self._apply(p)
        return p

    async def _apply(self, p: SyncPlan) -> None:
        for b in p.adopt:
            self.registry.bind(b)
        for nid in p.remove:
            await self._try(f"removing Docker network {nid[:12]}", self.docker.delete_network(nid))
        for n in p.create:
            opts = {api.OPT_TENANT: n["tenant"], api.OPT_NETWORK: n["name"], api.OPT_EXISTING: "true"}
            await self._try(f"creating Docker network {n['name']}",
                            self.docker.create_network(n["name"], n["subnet"], n["gateway"], opts))
        for key, why in p.skipped.items():
            if self._reported.get(key) != why:
                log.warning("network %s of tenant %s is not available to Docker here: %s",
                            key[1], key[0], why)
        self._reported = dict(p.skipped)

    async def _try(self, what: str, action: Any) -> None:
        try:
            await action
        except DaoliError as e:
            log.warning("%s: %s", what, e)
