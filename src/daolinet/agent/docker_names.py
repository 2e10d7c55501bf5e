"""Docker containers' names in daolinet: `docker run --name web` answers to `web` from
every host.

Docker gives a network driver no container name (CreateEndpoint and Join carry ids
only), and the endpoint daolinet creates for a Docker container has a generated name
(agent/docker_ipam.py).  So, after the fact, this host's agent reads from its dockerd
which container holds each endpoint of its networks (the network's `Containers`) and
the network aliases the user gave it (`--network-alias`), and sets them as the
endpoint's aliases (`PATCH /endpoints/{id}`): the names every host's resolver answers
(decide/names.py, agent/dns_link.py).  On the container's own host Docker's embedded
DNS answers first (without daolinet's policy); elsewhere it asks the resolver address
(the lab's dockerd runs with `--dns 169.254.53.53`: docs/names.md).

It runs every `interval` seconds and, after a Join (`trigger`), every QUICK seconds for
QUICK_FOR seconds: dockerd lists the container on the network only once the Join has
returned.  An endpoint's aliases are set once: a container's name and aliases on a
network do not change while it is connected (a rename reaches daolinet when the
container reconnects or the agent restarts).  Docker's own alias of every container, its
short id, is left out; so is anything that is not a DNS label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_client import DockerClient
from daolinet.agent.repeating import Repeating
from daolinet.errors import DaoliError, InvalidInput, NotFound
from daolinet.model.names import MAX_ALIASES, check_dns_label

log = logging.getLogger(__name__)

QUICK = 0.25  # seconds between looks after a Join...
QUICK_FOR = 10.0  # ...for this long


def aliases_of(name: str, network_aliases: Iterable[str], container_id: str) -> tuple[str, ...]:
    """The DNS names of a container on a network: its name, then its network aliases, as the
    store keeps aliases (model/names.py), without Docker's short-id alias and anything that
    is not a DNS label, at most MAX_ALIASES."""
    found: list[str] = []
    for alias in (name.lstrip("/"), *network_aliases):
        try:
            label = check_dns_label(alias)
        except InvalidInput:
            continue
        if label != container_id[:12] and label not in found:
            found.append(label)
    return tuple(found[:MAX_ALIASES])


class DockerNames(Repeating):
    what = "docker names"

    def __init__(self, docker: DockerClient, client: ControllerClient,
                 endpoint_of: Callable[[str], Awaitable[int | None]], interval: float = 5.0) -> None:
        super().__init__(interval)
        self.docker = docker
        self.client = client
        self.endpoint_of = endpoint_of  # a Docker endpoint id -> the daolinet endpoint's id
        self.done: dict[int, tuple[str, ...]] = {}  # endpoint id -> the aliases set
        self._quick_until = 0.0

    def trigger(self) -> None:
        self._quick_until = time.monotonic() + QUICK_FOR
        super().trigger()

    def next_wait(self) -> float:
        return QUICK if time.monotonic() < self._quick_until else self.interval

    async def sync_once(self) -> int:
        """Set the aliases of the endpoints not done yet; how many were set."""
        if not self.docker.available():
            return 0
        count = 0
        for summary in await self.docker.networks():
            network = await self.docker.network(summary["Id"])
            for cid, container in ((network or {}).get("Containers") or {}).items():
                count += await self._one(str(network and network.get("Name")), cid, container)
        return count

    async def _one(self, network: str, cid: str, container: dict[str, Any]) -> int:
        eid = await self.endpoint_of(str(container.get("EndpointID") or ""))
        if eid is None or eid in self.done:
            return 0
        try:
            inspected = await self.docker.call("GET", f"/containers/{cid}/json")
        except DaoliError:
            return 0  # gone meanwhile
        settings = ((inspected.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
        wanted = aliases_of(str(container.get("Name") or ""), settings.get("Aliases") or (), cid)
        try:
            await self.client.call("PATCH", f"/endpoints/{eid}", json={"aliases": list(wanted)})
        except (InvalidInput, NotFound) as e:  # gone meanwhile, or refused: the others go on
            log.warning("endpoint %d: aliases %s not set: %s", eid, ", ".join(wanted), e)
            return 0
        self.done[eid] = wanted
        log.info("endpoint %d answers to %s", eid, ", ".join(wanted) or "no name")
        return 1

    def forget(self, eid: int) -> None:
        """The endpoint is gone: a new one may reuse its id."""
        self.done.pop(eid, None)
