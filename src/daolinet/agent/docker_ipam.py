"""Docker's remote IpamDriver, backed by daolinet's IPAM in the controller.

How an address stays unique across every host, not just per dockerd: the
reservation *is* the daolinet endpoint.  RequestAddress carries no endpoint
id, but it does carry the MAC (we ask for it: RequiresMACAddress), so it
creates the endpoint right away, unplugged, on this host; the controller's
store allocates the IP in the same transaction as every other endpoint's,
so two hosts can never be handed the same address.  CreateEndpoint then
claims that endpoint by (network, IP, MAC), Join plugs it, Leave deletes it
(routes revoked at once); ReleaseAddress deletes it if it is still there
(a failed CreateEndpoint or Join).  A Docker container moved here (lab/
docker_move.py) finds its endpoint already on this host, unplugged, with the
same address and MAC: RequestAddress adopts it instead.  An agent restart deletes unplugged
endpoints of its host, so a reservation whose container never started does
not outlive the agent.

Pools are reference counted; a pool's id is its subnet, so identical
requests get the same pool.  The gateway is the daolinet network's.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections import Counter
from typing import Any

from daolinet.agent import docker_api as api
from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_networks import Binding, Registry
from daolinet.agent.service import AgentService
from daolinet.model import addresses

log = logging.getLogger(__name__)

DRIVER_LABEL = "daolinet.driver"
DOCKER = "docker"


def new_endpoint_name() -> str:
    return f"{DOCKER}-{secrets.token_hex(6)}"


class DockerIpam:
    def __init__(self, service: AgentService, client: ControllerClient, registry: Registry) -> None:
        self.service = service
        self.client = client
        self.registry = registry
        self.pools: Counter[str] = Counter()
        self.reserved: dict[tuple[str, str, str], int] = {}  # (tenant, network, ip) -> endpoint id

    async def get_capabilities(self, _: object) -> dict[str, Any]:
        return api.ipam_capabilities()

    async def get_default_address_spaces(self, _: object) -> dict[str, Any]:
        return api.address_spaces()

    async def request_pool(self, body: object) -> dict[str, Any]:
        subnet = api.parse_pool_request(body)
        self.pools[subnet] += 1
        return api.pool_response(subnet)

    async def release_pool(self, body: object) -> dict[str, Any]:
        subnet = api.parse_release_pool(body)
        self.pools[subnet] -= 1
        if self.pools[subnet] <= 0:
            del self.pools[subnet]
        return {}

    async def request_address(self, body: object) -> dict[str, Any]:
        req = api.parse_address_request(body)
        if req.gateway:
            return api.address_response(req.address or await self._gateway(req.subnet), req.subnet)
        if req.mac is None:
            raise api.ProtocolError("RequestAddress without the endpoint's MAC "
                                    f"(option {api.MAC_OPTION})")
        binding = await self.registry.for_subnet(req.subnet)
        moved = await self._moved_here(binding, req.address, req.mac) if req.address else None
        if moved is not None:
            self.reserved[(binding.tenant, binding.name, moved["ip"])] = int(moved["id"])
            return api.address_response(moved["ip"], req.subnet)
        endpoint = await self.client.create_endpoint({
            "name": new_endpoint_name(), "network": binding.name, "tenant": binding.tenant,
            "host": self.service.host.name, "ip": req.address, "mac": req.mac,
            "labels": {DRIVER_LABEL: DOCKER}})
        self.reserved[(binding.tenant, binding.name, endpoint["ip"])] = int(endpoint["id"])
        return api.address_response(endpoint["ip"], req.subnet)

    async def _moved_here(self, binding: Binding, ip: str, mac: str) -> dict[str, Any] | None:
        """A Docker endpoint moved to this host and not plugged yet, holding ip and mac."""
        claimed = set(self.reserved.values())
        wanted = (binding.tenant, binding.name, ip, mac.lower())
        for endpoint in await self.client.endpoints_on(self.service.host.name):
            found = (endpoint["tenant"], endpoint["network"], endpoint["ip"], endpoint["mac"].lower())
            if found == wanted and _is_docker(endpoint) and endpoint.get("ofport") is None \
                    and int(endpoint["id"]) not in claimed:
                return endpoint
        return None

    async def _gateway(self, subnet: str) -> str:
        """The gateway of the daolinet network(s) with this subnet, else the default."""
        gateways = {network["gateway"] for network in await self.client.call("GET", "/networks")
                    if network["subnet"] == subnet}
        if len(gateways) == 1:
            return str(gateways.pop())
        return str(addresses.default_gateway(ipaddress.IPv4Network(subnet)))

    async def release_address(self, body: object) -> dict[str, Any]:
        subnet, ip = api.parse_release_address(body)
        nid = self.registry.nid_for_subnet(subnet)
        binding = self.registry.bound(nid) if nid else None
        if binding is None:
            return {}  # the network's gateway after DeleteNetwork, or a network that never was
        eid = await self.find(binding, ip)
        if eid is not None:
            await self.service.release(eid)
        return {}

    async def find(self, binding: Binding, ip: str, mac: str | None = None) -> int | None:
        """This host's Docker endpoint holding `ip` on binding's network (and `mac`, if given)."""
        eid = self.reserved.pop((binding.tenant, binding.name, ip), None)
        if eid is not None:
            return eid
        wanted = (binding.tenant, binding.name, ip)
        for endpoint in await self.client.endpoints_on(self.service.host.name):
            if (endpoint["tenant"], endpoint["network"], endpoint["ip"]) == wanted and _is_docker(endpoint) \
                    and mac in (None, endpoint["mac"]):
                return int(endpoint["id"])
        return None


def _is_docker(endpoint: dict[str, Any]) -> bool:
    """An endpoint this plugin made for Docker (it carries the Docker label)."""
    return bool(endpoint.get("labels", {}).get(DRIVER_LABEL) == DOCKER)
