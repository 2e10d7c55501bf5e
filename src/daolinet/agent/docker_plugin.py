"""The Docker plugin as the agent serves it: one socket, <plugin dir>/daolinet.sock,
answering libnetwork's remote NetworkDriver and IpamDriver calls (POST
/<Interface>.<Method>, JSON in and out), and the sync that keeps this host's
Docker networks in step with daolinet's.

Errors: a body that breaks the protocol gets HTTP 400; a call we understood
but could not carry out gets 200 with {"Err": msg} (driver) or {"Error": msg}
(IPAM), which dockerd shows the user; an unknown method gets 404, which
libnetwork reads as "not implemented" (DiscoverNew, ...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daolinet.agent import docker_api as api
from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_client import DockerClient
from daolinet.agent.docker_driver import DockerDriver
from daolinet.agent.docker_ipam import DockerIpam
from daolinet.agent.docker_names import DockerNames
from daolinet.agent.docker_networks import Registry
from daolinet.agent.docker_sync import NetworkSync
from daolinet.agent.service import AgentService
from daolinet.errors import DaoliError

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[dict[str, Any]]]
MEDIA_TYPE = "application/vnd.docker.plugins.v1.2+json"


class DockerPlugin:
    def __init__(self, service: AgentService, client: ControllerClient, docker: DockerClient | None,
                 sync_interval: float = 5.0, state: str | None = None) -> None:
        self.registry = Registry(state)
        self.docker = docker
        self.sync = NetworkSync(client, docker, self.registry, sync_interval) if docker else None
        self.ipam = DockerIpam(service, client, self.registry)
        self.driver = DockerDriver(service, client, self.registry, self.ipam, docker,
                                   on_change=self.sync.trigger if self.sync else lambda: None,
                                   on_endpoint=self._endpoint_changed)
        self.names = DockerNames(docker, client, self.driver.endpoint_of, sync_interval) if docker else None

    def jobs(self) -> list[Coroutine[Any, Any, None]]:
        """What runs beside the socket: the network sync and the names."""
        return [job.run_forever() for job in (self.sync, self.names) if job is not None]

    def _endpoint_changed(self, eid: int, joined: bool) -> None:
        if self.names is not None:
            self.names.forget(eid)
            if joined:
                self.names.trigger()

    def handlers(self) -> dict[str, Handler]:
        driver, ipam = self.driver, self.ipam
        return {
            "Plugin.Activate": activate,
            "NetworkDriver.GetCapabilities": driver.get_capabilities,
            "NetworkDriver.CreateNetwork": driver.create_network,
            "NetworkDriver.DeleteNetwork": driver.delete_network,
            "NetworkDriver.CreateEndpoint": driver.create_endpoint,
            "NetworkDriver.EndpointOperInfo": driver.endpoint_oper_info,
            "NetworkDriver.DeleteEndpoint": driver.delete_endpoint,
            "NetworkDriver.Join": driver.join,
            "NetworkDriver.Leave": driver.leave,
            "NetworkDriver.ProgramExternalConnectivity": driver.program_external_connectivity,
            "NetworkDriver.RevokeExternalConnectivity": driver.revoke_external_connectivity,
            "IpamDriver.GetCapabilities": ipam.get_capabilities,
            "IpamDriver.GetDefaultAddressSpaces": ipam.get_default_address_spaces,
            "IpamDriver.RequestPool": ipam.request_pool,
            "IpamDriver.ReleasePool": ipam.release_pool,
            "IpamDriver.RequestAddress": ipam.request_address,
            "IpamDriver.ReleaseAddress": ipam.release_address,
        }


async def activate(_: object) -> dict[str, Any]:
    return {"Implements": list(api.IMPLEMENTS)}


def error_key(method: str) -> str:
    return "Error" if method.startswith("IpamDriver.") else "Err"


async def dispatch(handlers: Mapping[str, Handler], method: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one call: the whole protocol, without HTTP."""
    handler = handlers.get(method)
    if handler is None:
        return 404, {"Err": f"daolinet does not implement {method}"}
    key = error_key(method)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as e:
        return 400, {key: f"{method}: the body is not JSON: {e}"}
    try:
        return 200, await handler(body)
    except api.ProtocolError as e:
        return 400, {key: f"{method}: {e}"}
    except DaoliError as e:
        log.info("%s refused: %s", method, e)
        return 200, {key: str(e)}
    except Exception as e:  # answer dockerd with the cause rather than a bare 500
        log.exception("%s failed", method)
        return 200, {key: f"{method} failed in the daolinet agent: {e!r}"}


def create_app(handlers: Mapping[str, Handler]) -> Starlette:
    async def call(request: Request) -> Response:
        status, body = await dispatch(handlers, request.path_params["method"], await request.body())
        return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)

    return Starlette(routes=[Route("/{method}", call, methods=["POST"])])
