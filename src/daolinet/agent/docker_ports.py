"""Docker's `-p`, as daolinet port mappings on the container's host.

libnetwork hands the sandbox's bindings to the gateway endpoint's driver in
ProgramExternalConnectivity (Options["com.docker.network.portmap"]) once the
container has joined; RevokeExternalConnectivity takes them back.  Each
binding HOSTPORT:PORT/PROTO becomes port mapping
`docker-<endpoint id[:12]>-<HOSTPORT>-<PROTO>` of the network's tenant,
host = this host, container = the daolinet endpoint: the outside reaches
this host's underlay IP:HOSTPORT.  A binding that cannot be made (the host
port is mapped already) undoes the ones made before it and fails the call,
which fails `docker run` with our message; libnetwork then leaves and
deletes the endpoint.  The mappings are found again by name, so revoking
works after an agent restart too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_api import PortBinding
from daolinet.errors import DaoliError, NotFound

log = logging.getLogger(__name__)

PREFIX = "docker-"


def prefix(docker_eid: str) -> str:
    return f"{PREFIX}{docker_eid[:12]}-"


def portmap_name(docker_eid: str, binding: PortBinding) -> str:
    return f"{prefix(docker_eid)}{binding.host_port}-{binding.protocol}"


class DockerPorts:
    def __init__(self, client: ControllerClient, host: str) -> None:
        self.client = client
        self.host = host

    async def publish(self, tenant: str, container: str, docker_eid: str,
                      bindings: Sequence[PortBinding]) -> list[dict[str, Any]]:
        """Map every binding, or none."""
        made: list[dict[str, Any]] = []
        for binding in bindings:
            try:
                made.append(await self.client.call("POST", "/portmaps", json={
                    "name": portmap_name(docker_eid, binding), "container": container, "rule": binding.rule,
                    "tenant": tenant, "host": self.host}))
            except DaoliError as e:
                for pm in made:
                    with contextlib.suppress(DaoliError):
                        await self.client.call("DELETE", f"/portmaps/{pm['tenant']}/{pm['name']}")
                raise type(e)(f"cannot publish {binding.host_port}/{binding.protocol} on host {self.host} "
                              f"(-p {binding.rule}): {e}") from e
        return made

    async def unpublish(self, docker_eid: str) -> list[str]:
        """Delete the endpoint's mappings on this host; their names."""
        gone = []
        for pm in await self.client.call("GET", "/portmaps", params={"host": self.host}):
            if pm["name"].startswith(prefix(docker_eid)):
                with contextlib.suppress(NotFound):  # revoked twice (Revoke, then Leave)
                    await self.client.call("DELETE", f"/portmaps/{pm['tenant']}/{pm['name']}")
                gone.append(str(pm["name"]))
        if gone:
            log.info("unpublished %s", ", ".join(gone))
        return gone
