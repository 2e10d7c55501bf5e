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

IPv6 (a --ipv6 network over a dual-stack daolinet network): the store
allocates an endpoint's IPv6 address with its IPv4 one, so the IPv4
RequestAddress reserves both, and the IPv6 RequestAddress that dockerd sends
next (libnetwork's endpoint.assignAddress: IPv4, then IPv6, both with the
MAC) finds that endpoint by network and MAC and hands out its ip6.  Asked in
the other order, it fails and says so.  `--ip6` is honoured only when it is
the address the store picked (the API takes no ip6 for an endpoint yet): a
moved container's, for one.  A failed IPv6 request deletes the reservation,
because libnetwork releases nothing when the second family fails.  Releasing
an IPv6 address releases the endpoint holding it, if still there (after the
IPv4 release, it is not).

Pools are reference counted; a pool's id is its subnet, so identical
requests get the same pool.  The gateways are the daolinet network's.
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
from daolinet.errors import InvalidInput
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
        # (tenant, network, mac) -> (endpoint id, ip6): IPv4 handed out, IPv6 not yet
        self.reserved6: dict[tuple[str, str, str], tuple[int, str]] = {}

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
            gateway = req.address or await (self._gateway6 if req.v6 else self._gateway)(req.subnet)
            return api.address_response(gateway, req.subnet)
        if req.mac is None:
            raise api.ProtocolError("RequestAddress without the endpoint's MAC "
                                    f"(option {api.MAC_OPTION})")
        binding = await self.registry.for_subnet(req.subnet)
        if req.v6:
            return api.address_response(await self._address6(binding, req.mac, req.address), req.subnet)
        moved = await self._moved_here(binding, req.address, req.mac) if req.address else None
        endpoint = moved if moved is not None else await self.client.create_endpoint({
            "name": new_endpoint_name(), "network": binding.name, "tenant": binding.tenant,
            "host": self.service.host.name, "ip": req.address, "mac": req.mac,
            "labels": {DRIVER_LABEL: DOCKER}})
        self.reserved[(binding.tenant, binding.name, endpoint["ip"])] = int(endpoint["id"])
        if binding.subnet6:
            self.reserved6[(binding.tenant, binding.name, req.mac)] = (int(endpoint["id"]),
                                                                       endpoint.get("ip6", ""))
        return api.address_response(endpoint["ip"], req.subnet)

    async def _address6(self, binding: Binding, mac: str, wanted: str | None) -> str:
        """The IPv6 address the IPv4 request reserved for `mac`; a refusal deletes the reservation."""
        reserved = self.reserved6.pop((binding.tenant, binding.name, mac), None)
        eid, ip6 = reserved if reserved is not None else await self._unplugged_with(binding, mac)
        if eid is None:
            raise InvalidInput(f"IPv6 address asked for MAC {mac} on network {binding.name} before its IPv4 "
                               "one: daolinet's IPAM allocates both with the IPv4 request")
        why = "" if ip6 else f"endpoint {eid} has no IPv6 address (does host {self.service.host.name} " \
                             "have --pip-pool6?)"
        if ip6 and wanted and wanted != ip6:
            why = f"--ip6 {wanted}: daolinet gave this container {ip6} and picks IPv6 addresses " \
                  "itself: drop --ip6"
        if why:
            await self.service.release(eid)
            for key in [k for k, v in self.reserved.items() if v == eid]:
                del self.reserved[key]
            raise InvalidInput(why)
        return ip6

    async def _unplugged_with(self, binding: Binding, mac: str) -> tuple[int | None, str]:
        """(id, ip6) of this host's unplugged Docker endpoint on binding's network with `mac`
        (reserved before this agent restarted), else (None, "")."""
        for endpoint in await self.client.endpoints_on(self.service.host.name):
            found = (endpoint["tenant"], endpoint["network"], endpoint["mac"].lower())
            if found == (binding.tenant, binding.name, mac.lower()) and _is_docker(endpoint) \
                    and endpoint.get("ofport") is None:
                return int(endpoint["id"]), str(endpoint.get("ip6", ""))
        return None, ""

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

    async def _gateway6(self, subnet6: str) -> str:
        """The IPv6 gateway of the daolinet network(s) with this IPv6 subnet, else the default (::1)."""
        gateways = {network["gateway6"] for network in await self.client.call("GET", "/networks")
                    if network.get("subnet6") == subnet6}
        if len(gateways) == 1:
            return str(gateways.pop())
        return str(addresses.default_gateway6(ipaddress.IPv6Network(subnet6)))

    async def release_address(self, body: object) -> dict[str, Any]:
        subnet, ip = api.parse_release_address(body)
        nid = self.registry.nid_for_subnet(subnet)
        binding = self.registry.bound(nid) if nid else None
        if binding is None:
            return {}  # the network's gateway after DeleteNetwork, or a network that never was
        eid = await (self._find6(binding, ip) if api.is_v6(subnet) else self.find(binding, ip))
        if eid is not None:
            await self.service.release(eid)
        return {}

    async def _find6(self, binding: Binding, ip6: str) -> int | None:
        """This host's Docker endpoint holding `ip6` on binding's network."""
        for key, (_, reserved_ip6) in list(self.reserved6.items()):
            if key[:2] == binding.key and reserved_ip6 == ip6:
                del self.reserved6[key]
        for endpoint in await self.client.endpoints_on(self.service.host.name):
            if (endpoint["tenant"], endpoint["network"], endpoint.get("ip6")) == (*binding.key, ip6) \
                    and _is_docker(endpoint):
                return int(endpoint["id"])
        return None

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
