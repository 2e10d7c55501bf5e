"""Networks follow the user: every daolinet network exists in this host's
dockerd (same name), and a Docker network of the daolinet driver whose
daolinet network is gone is removed.

`plan` decides (pure); `NetworkSync` fetches, applies and repeats, every
`interval` seconds and whenever this host changed a network.  dockerd is
read *before* the controller: a network Docker shows was created in daolinet
first, so it is never mistaken for a deleted one.  A network that cannot be
made here (its name or subnet is taken on this host) is reported once.  A
dual-stack daolinet network becomes a --ipv6 Docker network with both subnets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daolinet.agent import docker_api as api
from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_client import DockerClient
from daolinet.agent.docker_networks import Binding, Registry
from daolinet.agent.repeating import Repeating
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
    subnets = [str(c.get("Subnet") or "") for c in (docker_net.get("IPAM") or {}).get("Config") or []]
    v4 = [s for s in subnets if s and not api.is_v6(s)]
    v6 = [s for s in subnets if api.is_v6(s)] if docker_net.get("EnableIPv6") else []
    if not v4:
        return None
    return Binding(nid=docker_net["Id"], tenant=opts.get(api.OPT_TENANT) or DEFAULT_TENANT,
                   name=opts.get(api.OPT_NETWORK) or docker_net["Name"], subnet=v4[0],
                   subnet6=v6[0] if v6 else "")


def plan(wanted: Iterable[Mapping[str, Any]], local: Iterable[Mapping[str, Any]], names: set[str],
         bound: Mapping[str, Binding], busy: set[str]) -> SyncPlan:
    """wanted: the controller's networks; local: dockerd's daolinet networks;
    names: every Docker network name here; bound: the registry; busy: Docker
    networks being created (pending) or broken, left alone."""
    out = SyncPlan()
    wanted_keys = {(network["tenant"], network["name"]) for network in wanted}
    here: dict[tuple[str, str], Binding] = {}
    for docker_net in local:
        if docker_net["Id"] in busy:
            continue
        binding = bound.get(docker_net["Id"]) or binding_of(docker_net)
        if binding is None:
            continue
        if docker_net["Id"] not in bound:
            out.adopt.append(binding)
        if binding.key in wanted_keys:
            here[binding.key] = binding
        else:
            out.remove.append(binding.nid)
    served = {subnet for binding in (*here.values(), *bound.values()) for subnet in binding.subnets}
    for network in wanted:
        key = (network["tenant"], network["name"])
        if key in here:
            continue
        if network["name"] in names:
            out.skipped[key] = f"a Docker network named {network['name']} already exists on this host"
        elif taken := [s for s in (network["subnet"], network.get("subnet6")) if s and s in served]:
            out.skipped[key] = f"this host already serves subnet {taken[0]} for another network"
        else:
            out.create.append(dict(network))
            served.update(s for s in (network["subnet"], network.get("subnet6")) if s)
    return out


class NetworkSync(Repeating):
    what = "docker network sync"

    def __init__(self, client: ControllerClient, docker: DockerClient, registry: Registry,
                 interval: float) -> None:
        super().__init__(interval)
        self.client = client
        self.docker = docker
        self.registry = registry
        self._reported: dict[tuple[str, str], str] = {}

    async def sync_once(self) -> SyncPlan:
        if not self.docker.available():
            return SyncPlan()
        local = await self.docker.networks()  # dockerd first: see the module's docstring
        names = set(await self.docker.names())
        wanted = await self.client.call("GET", "/networks")
        bound = {binding.nid: binding for binding in self.registry.bindings()}
        busy = {net["Id"] for net in local if self.registry.known(net["Id"]) and net["Id"] not in bound}
        sync_plan = plan(wanted, local, names, bound, busy)
        await self._apply(sync_plan)
        return sync_plan

    async def _apply(self, sync_plan: SyncPlan) -> None:
        for binding in sync_plan.adopt:
            self.registry.bind(binding)
        for nid in sync_plan.remove:
            await self._try(f"removing Docker network {nid[:12]}", self.docker.delete_network(nid))
        for network in sync_plan.create:
            name = network["name"]
            opts = {api.OPT_TENANT: network["tenant"], api.OPT_NETWORK: name, api.OPT_EXISTING: "true"}
            v6 = (network["subnet6"], network["gateway6"]) if network.get("subnet6") else None
            await self._try(f"creating Docker network {name}",
                            self.docker.create_network(name, network["subnet"], network["gateway"], opts, v6))
        for key, why in sync_plan.skipped.items():
            if self._reported.get(key) != why:
                log.warning("network %s of tenant %s is not available to Docker here: %s",
                            key[1], key[0], why)
        self._reported = dict(sync_plan.skipped)

    async def _try(self, what: str, action: Any) -> None:
        try:
            await action
        except DaoliError as e:
            log.warning("%s: %s", what, e)
