"""Docker containers' names as daolinet aliases (agent/docker_names.py): which names a
container answers to, and the sync that reads them from dockerd and sets them once per
endpoint, with fakes of dockerd and of the controller's API."""

from __future__ import annotations

import asyncio
from typing import Any

from daolinet.agent.docker_names import DockerNames, aliases_of
from daolinet.errors import NotFound
from daolinet.model.names import MAX_ALIASES

CID = "602f13dbea759cf2237bfe2776093f3285b97afb1e506c104792aaf819c9ef9b"


def test_a_container_answers_to_its_name_and_its_aliases_not_its_id() -> None:
    assert aliases_of("/web", ["602f13dbea75", "Front", "web", "api"], CID) == ("web", "front", "api")
    assert aliases_of("web_1", ["ok-2", "-bad", "x" * 64, "a.b"], CID) == ("ok-2",)  # labels only
    assert len(aliases_of("web", [f"a{i}" for i in range(40)], CID)) == MAX_ALIASES
    assert aliases_of("/602f", ["602f13dbea75"], CID) == ("602f",)  # a name may begin like the id
    assert aliases_of("web\n", ["ok\n"], CID) == ()  # what the store would refuse is left out


class FakeDocker:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}  # on network "net1" (id n1)

    def available(self) -> bool:
        return True

    async def networks(self) -> list[dict[str, Any]]:
        return [{"Id": "n1", "Name": "net1"}]

    async def network(self, nid: str) -> dict[str, Any] | None:
        return {"Id": nid, "Name": "net1", "Containers": {
            cid: {"Name": c["name"], "EndpointID": c["eid"]} for cid, c in self.containers.items()}}

    async def call(self, method: str, path: str, **_: Any) -> Any:
        cid = path.split("/")[2]
        if cid not in self.containers:
            raise NotFound("dockerd: no such container")
        c = self.containers[cid]
        return {"NetworkSettings": {"Networks": {"net1": {"Aliases": [cid[:12], *c["aliases"]]}}}}


class FakeApi:
    def __init__(self) -> None:
        self.patched: list[tuple[str, Any]] = []
        self.gone: set[str] = set()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        assert method == "PATCH"
        if path in self.gone:
            raise NotFound(f"{path} not found")
        self.patched.append((path, kwargs["json"]))
        return {}


def test_the_sync_sets_each_endpoints_aliases_once() -> None:
    docker, api = FakeDocker(), FakeApi()
    ours = {"dock-web": 7, "dock-db": 8}

    async def endpoint_of(docker_eid: str) -> int | None:
        return ours.get(docker_eid)

    names = DockerNames(docker, api, endpoint_of)  # type: ignore[arg-type]

    async def run() -> list[int]:
        docker.containers[CID] = {"name": "web", "eid": "dock-web", "aliases": ["front"]}
        docker.containers["b" * 64] = {"name": "other", "eid": "not-ours", "aliases": []}
        first = await names.sync_once()
        second = await names.sync_once()  # nothing new
        docker.containers["c" * 64] = {"name": "db", "eid": "dock-db", "aliases": []}
        third = await names.sync_once()
        names.forget(7)  # web left and joined again (a new endpoint may reuse the id)
        fourth = await names.sync_once()
        return [first, second, third, fourth]

    assert asyncio.run(run()) == [1, 0, 1, 1]
    assert api.patched == [("/endpoints/7", {"aliases": ["web", "front"]}),
                           ("/endpoints/8", {"aliases": ["db"]}),
                           ("/endpoints/7", {"aliases": ["web", "front"]})]


def test_an_endpoint_gone_meanwhile_does_not_keep_the_others_unnamed() -> None:
    docker, api = FakeDocker(), FakeApi()
    api.gone.add("/endpoints/7")
    ours = {"dock-web": 7, "dock-db": 8}

    async def endpoint_of(docker_eid: str) -> int | None:
        return ours.get(docker_eid)

    names = DockerNames(docker, api, endpoint_of)  # type: ignore[arg-type]
    docker.containers[CID] = {"name": "web", "eid": "dock-web", "aliases": []}
    docker.containers["c" * 64] = {"name": "db", "eid": "dock-db", "aliases": []}
    assert asyncio.run(names.sync_once()) == 1
    assert api.patched == [("/endpoints/8", {"aliases": ["db"]})]
