"""Docker's -p as daolinet port mappings (ProgramExternalConnectivity and
RevokeExternalConnectivity), and a Docker endpoint moved to another host:
call by call against a real controller, as in test_docker_plugin.py."""

from __future__ import annotations

from typing import Any

import pytest
import test_docker_plugin as plugin_tests
from test_docker_plugin import MAC1, MAC2, Host

from daolinet.agent import docker_api
from daolinet.agent.docker_api import PortBinding, parse_port_bindings
from daolinet.errors import InvalidInput

controller, hosts = plugin_tests.controller, plugin_tests.hosts  # the same fixtures, by name


def binding(host_port: int, port: int = 80, proto: int = 6, ip: str = "", end: int = 0) -> dict[str, Any]:
    return {"Proto": proto, "IP": "", "Port": port, "HostIP": ip, "HostPort": host_port, "HostPortEnd": end}


def options(*bindings: dict[str, Any]) -> dict[str, Any]:
    return {docker_api.PORTMAP: list(bindings),
            "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]}


def test_port_bindings_are_parsed_deduplicated_and_checked() -> None:
    got = parse_port_bindings(options(binding(8080), binding(8080, ip="::"), binding(5353, 53, 17),
                                      binding(8443, 443, ip="198.18.0.1", end=8443)), "198.18.0.1")
    assert got == [PortBinding("tcp", 8080, 80), PortBinding("udp", 5353, 53), PortBinding("tcp", 8443, 443)]
    assert parse_port_bindings({}) == [] and parse_port_bindings(None) == []
    for bad, word in ((binding(0), "the host port you name"), (binding(80, proto=132), "tcp, udp only"),
                      (binding(8080, end=8090), "not a range"),
                      (binding(8080, ip="10.0.0.1"), "drop the address")):
        with pytest.raises(InvalidInput, match=word):
            parse_port_bindings(options(bad), "198.18.0.1")
    with pytest.raises(InvalidInput, match="published twice"):
        parse_port_bindings(options(binding(8080), binding(8080, 81)))


async def program(h: Host, nid: str, deid: str, *bindings: dict[str, Any]) -> dict[str, Any]:
    _, out = await h.call("NetworkDriver.ProgramExternalConnectivity",
                          {"NetworkID": nid, "EndpointID": deid, "Options": options(*bindings)})
    return out


async def portmaps(h: Host) -> list[tuple[str, str, str, int]]:
    return sorted((m["name"], m["container"], m["host"], m["host_port"])
                  for m in await h.client.call("GET", "/portmaps"))


async def test_p_becomes_port_mappings_on_the_host_and_a_taken_port_leaves_nothing(
        hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    await h1.start("n1", pool, "d1", MAC1)
    assert await program(h1, "n1", "d1", binding(8080), binding(8443, 443)) == {}
    (e1,) = await h1.endpoints()
    assert await portmaps(h1) == [("docker-d1-8080-tcp", e1["name"], "h1", 8080),
                                  ("docker-d1-8443-tcp", e1["name"], "h1", 8443)]

    await h1.start("n1", pool, "d2", MAC2)
    out = await program(h1, "n1", "d2", binding(9090), binding(8080))  # the second one is taken
    assert "tcp port 8080 of host h1 is already mapped (port mapping docker-d1-8080-tcp)" in out["Err"], out
    assert [m[0] for m in await portmaps(h1)] == ["docker-d1-8080-tcp", "docker-d1-8443-tcp"]

    await h1.ok("NetworkDriver.RevokeExternalConnectivity", {"NetworkID": "n1", "EndpointID": "d1"})
    assert await portmaps(h1) == []
    await program(h1, "n1", "d1", binding(8080))
    await h1.stop("n1", pool, "d1", e1["ip"])  # Leave revokes too
    assert await portmaps(h1) == []


async def test_a_moved_endpoint_is_only_unplugged_at_the_source_and_adopted_at_the_target(
        hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    await h2.create_network("m1", "10.5.0.0/24", {"network": "net1"})
    await h1.start("n1", pool, "d1", MAC1, ip="10.5.0.9")
    (e,) = await h1.endpoints()
    await h1.admin.call("POST", f"/endpoints/{e['id']}/move", json={"host": "h2"})  # the operator moves it
    await h1.stop("n1", pool, "d1", "10.5.0.9")  # docker rm -f at the source
    assert h1.plumber.ports == {}
    assert [(x["id"], x["host"], x["ofport"]) for x in await h1.endpoints()] == [(e["id"], "h2", None)]
    # Another MAC does not get the moved endpoint; the same IP and MAC do.
    refused = await h2.start("m1", pool, "d9", MAC2, ip="10.5.0.9")
    assert "already used" in refused["Error"], refused
    assert (await h2.start("m1", pool, "d2", MAC1, ip="10.5.0.9"))["Address"] == "10.5.0.9/24"
    (moved,) = await h2.endpoints()
    assert (moved["id"], moved["name"], moved["host"], moved["mac"]) == (e["id"], e["name"], "h2", e["mac"])
    assert moved["ofport"] is not None and list(h2.plumber.ports) == [e["id"]]
