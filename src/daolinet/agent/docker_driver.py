"""Docker's remote NetworkDriver: a Docker network is a view of a daolinet
network, a Docker endpoint is a daolinet endpoint.

CreateNetwork adopts the daolinet network (same tenant, name and subnet) or
creates it (with --ipv6: dual-stack, and an adopted one must have the same
IPv6 subnet; a dual-stack daolinet network is never adopted by an IPv4-only
Docker network, since its endpoints always get an IPv6 address too, which
Docker would leave unconfigured); without `-o network=NAME` it is named
after the Docker network, learnt from dockerd once the call has returned
(docker_networks.py).  DeleteNetwork deletes the daolinet network for every
host, which the controller refuses while any container uses it (dockerd
drops its own copy regardless; the sync restores it).  CreateEndpoint claims
the endpoint RequestAddress reserved (docker_ipam.py) and checks its IPv6
address; Join plugs a veth whose peer Docker moves into the container as
eth<N>, with the network's gateway as default route (and gateway6: Docker
itself turns IPv6 on for eth<N> and adds the IPv6 address without DAD, as
its osl package does, so the agent configures no IPv6 here);
ProgramExternalConnectivity publishes `-p` bindings as port mappings on this
host and RevokeExternalConnectivity takes them back (docker_ports.py); Leave
does too, then deletes the endpoint (its routes are revoked) and unplugs it,
unless the endpoint has moved to another host meanwhile (a Docker move,
lab/docker_move.py): then it only unplugs.  After an agent restart, a Docker
endpoint is found again by the `daolinet-docker-endpoint` external_id of its
OVS port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from daolinet.agent import docker_api as api
from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_client import DockerClient
from daolinet.agent.docker_ipam import DockerIpam
from daolinet.agent.docker_networks import Binding, Registry
from daolinet.agent.docker_ports import DockerPorts
from daolinet.agent.plumbing import EXT_DOCKER, peer_name
from daolinet.agent.service import AgentService
from daolinet.errors import Conflict, DaoliError, InvalidInput, NotFound
from daolinet.model.objects import DEFAULT_TENANT

log = logging.getLogger(__name__)


class DockerDriver:
    def __init__(self, service: AgentService, client: ControllerClient, registry: Registry,
                 ipam: DockerIpam, docker: DockerClient | None,
                 on_change: Callable[[], None] = lambda: None,
                 on_endpoint: Callable[[int, bool], None] = lambda eid, joined: None) -> None:
        self.service = service
        self.client = client
        self.registry = registry
        self.ipam = ipam
        self.docker = docker
        self.on_change = on_change
        self.on_endpoint = on_endpoint  # (endpoint id, joined or left): agent/docker_names.py
        self.endpoints: dict[str, int] = {}  # Docker endpoint id -> daolinet endpoint id
        self.ports = DockerPorts(client, service.host.name)

    async def get_capabilities(self, _: object) -> dict[str, Any]:
        return api.capabilities()

    # -- networks ------------------------------------------------------------------

    async def create_network(self, body: object) -> dict[str, Any]:
        req = api.parse_create_network(body)
        self.registry.check_free(req.nid, req.subnet, req.subnet6)
        if req.name is not None:
            self.registry.bind(await self.ensure(req, req.name))
        elif self.docker is None:
            raise InvalidInput("name the daolinet network: -o network=NAME (this agent has no "
                               "--docker-host to learn the Docker network's name from)")
        else:
            if req.tenant != DEFAULT_TENANT:  # (the default one is made with its first network)
                await self.client.call("GET", f"/tenants/{req.tenant}")  # an unknown tenant fails now
            task = asyncio.create_task(self._name_after_docker(req))
            task.add_done_callback(_retrieve)
            self.registry.pend(req.nid, req.tenant, req.subnet, task, req.subnet6)
        self.on_change()
        return {}

    async def _name_after_docker(self, req: api.NetworkRequest) -> Binding:
        assert self.docker is not None
        try:
            binding = await self.ensure(req, await self.docker.wait_name(req.nid))
        except DaoliError as e:
            self.registry.fail(req.nid, req.subnet, str(e), req.subnet6)
            why = f"Docker network {req.nid[:12]} has no daolinet network: {e}"
            log.error("%s", why)
            raise Conflict(why) from e
        self.registry.bind(binding)
        self.on_change()
        return binding

    async def ensure(self, req: api.NetworkRequest, name: str) -> Binding:
        """Adopt daolinet network `name` of req's tenant, or create it."""
        try:
            net = await self.client.network(req.tenant, name)
        except NotFound:
            if req.existing:
                raise
            body: dict[str, Any] = {"name": name, "tenant": req.tenant, "subnet": req.subnet,
                                    "isolated": req.isolated}
            if req.gateway:
                body["gateway"] = req.gateway
            if req.subnet6:
                body["subnet6"] = req.subnet6
            if req.gateway6:
                body["gateway6"] = req.gateway6
            net = await self.client.call("POST", "/networks", json=body)
        _check_same(req, name, net)
        return Binding(nid=req.nid, tenant=req.tenant, name=name, subnet=req.subnet, subnet6=req.subnet6)

    async def delete_network(self, body: object) -> dict[str, Any]:
        """Docker drops its network whatever we answer (it only logs a driver's
        error), so the binding goes; the daolinet network goes too unless a
        container anywhere still uses it: then the controller refuses, and the
        sync gives this host its Docker copy back."""
        nid = api.network_id(body)
        binding = self.registry.bound(nid)
        self.registry.forget(nid)
        self.on_change()
        if binding is not None:
            with contextlib.suppress(NotFound):  # deleted elsewhere: this copy goes away in step
                await self.client.call("DELETE", f"/networks/{binding.tenant}/{binding.name}")
        return {}

    # -- endpoints -----------------------------------------------------------------

    async def create_endpoint(self, body: object) -> dict[str, Any]:
        req = api.parse_create_endpoint(body, self.service.host.underlay_ip)  # -p checked here
        binding = await self.registry.get(req.nid)
        eid = await self.ipam.find(binding, req.ip, req.mac or None)
        if eid is None:
            raise NotFound(f"address {req.ip} of network {binding.name} was not reserved by daolinet's IPAM "
                           "on this host: create the network with --ipam-driver daolinet")
        if req.ip6 or binding.subnet6:
            endpoint = await self.client.call("GET", f"/endpoints/{eid}")
            if endpoint.get("ip6", "") != req.ip6:
                raise Conflict(f"IPv6 address {req.ip6 or '(none)'} of the Docker endpoint is not endpoint "
                               f"{endpoint['name']}'s {endpoint.get('ip6') or '(none)'}: create the network "
                               "with --ipam-driver daolinet")
        self.endpoints[req.eid] = eid
        return {}  # Docker supplied the addresses and the MAC: the Interface stays as it is

    async def endpoint_oper_info(self, body: object) -> dict[str, Any]:
        _, docker_eid = api.ids(body)
        eid = await self._eid(docker_eid, keep=True)
        if eid is None:
            return {"Value": {}}
        endpoint = await self.client.call("GET", f"/endpoints/{eid}")
        value = {"daolinet.endpoint": endpoint["name"], "daolinet.pip": endpoint["pip"],
                 "daolinet.host": endpoint["host"]}
        if endpoint.get("pip6"):
            value["daolinet.pip6"] = endpoint["pip6"]
        return {"Value": value}

    async def join(self, body: object) -> dict[str, Any]:
        nid, docker_eid = api.ids(body)
        sandbox = str(body.get("SandboxKey") or "") if isinstance(body, dict) else ""
        eid = self.endpoints.get(docker_eid)
        if eid is None:
            raise NotFound(f"endpoint {docker_eid[:12]} is unknown to this agent: create it again")
        binding = await self.registry.get(nid)
        endpoint = await self.client.call("GET", f"/endpoints/{eid}")
        net = await self.client.network(binding.tenant, binding.name)
        await self.service.plug_docker(endpoint, sandbox, docker_eid)
        self.on_endpoint(eid, True)
        return api.join_response(peer_name(eid), net["gateway"],
                                 net.get("gateway6", "") if binding.subnet6 else "")

    async def program_external_connectivity(self, body: object) -> dict[str, Any]:
        nid, docker_eid = api.ids(body)
        bindings = api.parse_port_bindings(body.get("Options") if isinstance(body, dict) else None,
                                           self.service.host.underlay_ip)
        if not bindings:
            return {}
        eid = await self._eid(docker_eid, keep=True)
        if eid is None:
            raise NotFound(f"endpoint {docker_eid[:12]} is unknown to this agent: create it again")
        binding = await self.registry.get(nid)
        endpoint = await self.client.call("GET", f"/endpoints/{eid}")
        await self.ports.publish(binding.tenant, endpoint["name"], docker_eid, bindings)
        return {}

    async def revoke_external_connectivity(self, body: object) -> dict[str, Any]:
        _, docker_eid = api.ids(body)
        await self.ports.unpublish(docker_eid)
        return {}

    async def leave(self, body: object) -> dict[str, Any]:
        _, docker_eid = api.ids(body)
        eid = await self._eid(docker_eid)
        if eid is None:
            return {}
        self.on_endpoint(eid, False)
        await self.ports.unpublish(docker_eid)
        try:
            host = (await self.client.call("GET", f"/endpoints/{eid}"))["host"]
        except NotFound:
            host = self.service.host.name
        if host == self.service.host.name:
            await self.service.release(eid, netns="")
        else:  # moved to another host meanwhile: the endpoint is that host's now
            await self.service.unplug(eid)
        return {}

    async def delete_endpoint(self, body: object) -> dict[str, Any]:
        return await self.leave(body)  # after a Leave, nothing is left to do

    async def endpoint_of(self, docker_eid: str) -> int | None:
        """The daolinet endpoint of a Docker endpoint of this host, if it is one."""
        return await self._eid(docker_eid, keep=True) if docker_eid else None

    async def _eid(self, docker_eid: str, keep: bool = False) -> int | None:
        eid = self.endpoints.get(docker_eid) if keep else self.endpoints.pop(docker_eid, None)
        if eid is None:  # not since this agent started: its OVS port remembers
            eid = await asyncio.to_thread(self.service.plumber.endpoint_with, EXT_DOCKER, docker_eid)
            if eid is not None and keep:
                self.endpoints[docker_eid] = eid  # asked again: no second look at every port
        return eid


def _check_same(req: api.NetworkRequest, name: str, net: dict[str, Any]) -> None:
    what = f"network {name} of tenant {req.tenant}"
    if net["subnet"] != req.subnet:
        raise Conflict(f"{what} has subnet {net['subnet']}, not {req.subnet}")
    if req.gateway and net["gateway"] != req.gateway:
        raise Conflict(f"{what} has gateway {net['gateway']}: pass --gateway {net['gateway']}")
    subnet6 = net.get("subnet6", "")
    if subnet6 and not req.subnet6:
        raise Conflict(f"{what} is dual-stack: create the Docker network with --ipv6 --subnet {req.subnet} "
                       f"--subnet {subnet6}")
    if req.subnet6 and subnet6 != req.subnet6:
        raise Conflict(f"{what} has IPv6 subnet {subnet6}, not {req.subnet6}" if subnet6
                       else f"{what} has no IPv6 subnet: drop --ipv6 and --subnet {req.subnet6}")
    if req.gateway6 and net.get("gateway6") != req.gateway6:
        raise Conflict(f"{what} has IPv6 gateway {net.get('gateway6')}: pass --gateway {net.get('gateway6')}")
    if req.isolated and not net.get("isolated"):
        raise Conflict(f"{what} exists and is not isolated")


def _retrieve(task: asyncio.Task[Binding]) -> None:
    """A pending network's failure is logged and kept in the registry; fetch it
    here so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()
