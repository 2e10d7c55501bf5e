"""Dual-stack Docker networks (`docker network create --ipv6 --subnet V4 --subnet V6`)
as dockerd 20.10 drives the plugin, call by call: libnetwork asks the IPAM for the
IPv4 pool and gateway, then the IPv6 ones; for an endpoint, the IPv4 address and then
the IPv6 one (both with the MAC), and when the IPv6 request fails it releases
nothing.  Same harness as test_docker_plugin.py (a real controller in-process,
fake plumber and dockerd), with hosts that have IPv6 PIP pools."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from test_docker_plugin import ADMIN, MAC1, MAC2, MAC3, Host, docker_net, net

from daolinet.agent import docker_api
from daolinet.agent.docker_networks import Binding, Registry
from daolinet.agent.docker_sync import NetworkSync, binding_of, plan
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.store import open_store

V4, V6 = "10.5.0.0/24", "fd00:5::/64"


def v6_host(transport: httpx.ASGITransport, i: int, pool6: bool = True) -> Host:
    h = Host(transport, i)
    if pool6:
        h.service.host = dataclasses.replace(h.service.host, underlay_ip6=f"2001:2:0:{i}::1",
                                             underlay_prefix6=64, pip_pool6=f"2001:2:0:{i}:1::/112")
    return h


@pytest.fixture
async def hosts6() -> AsyncIterator[tuple[Host, Host, Host]]:
    """h1 and h2 with IPv6 PIP pools, h3 without one."""
    store = open_store("sqlite://:memory:")
    await store.create_token("admin", None, hash_token(ADMIN), 1000.0)
    for i in (1, 2, 3):
        await store.create_token(f"agent-h{i}", None, hash_token(f"dl_agent-h{i}"), 1000.0, host=f"h{i}")
    ctrl = Controller(store, Config())
    await ctrl.start()
    transport = httpx.ASGITransport(app=create_app(ctrl))
    trio = (v6_host(transport, 1), v6_host(transport, 2), v6_host(transport, 3, pool6=False))
    for h in trio:
        await h.service.register()
    yield trio
    for h in trio:
        await h.client.close()
        await h.admin.close()
    await asyncio.gather(*list(ctrl._tasks))
    await store.close()


async def pool(h: Host, subnet: str, gateway: str = "") -> tuple[str, str]:
    """RequestPool and the gateway's RequestAddress: (PoolID, gateway/prefix)."""
    got = await h.ok("IpamDriver.RequestPool", {"AddressSpace": "daolinet", "Pool": subnet, "SubPool": "",
                                                "Options": {}, "V6": ":" in subnet})
    gw = await h.ok("IpamDriver.RequestAddress", {
        "PoolID": got["PoolID"], "Address": gateway,
        "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    return got["PoolID"], gw["Address"]


async def create6(h: Host, nid: str, opts: dict[str, str], subnet6: str = V6, ipv6: bool = True,
                  gateway6: str = "") -> tuple[str, str, dict[str, Any]]:
    """`docker network create [--ipv6] --subnet V4 [--subnet V6]`: (pool, pool6, CreateNetwork's answer)."""
    pool4, gw4 = await pool(h, V4)
    v6data: list[dict[str, str]] = []
    pool6 = ""
    if ipv6:
        pool6, gw6 = await pool(h, subnet6, gateway6)
        v6data = [{"AddressSpace": "daolinet", "Gateway": gw6, "Pool": subnet6}]
    _, out = await h.call("NetworkDriver.CreateNetwork", {
        "NetworkID": nid, "Options": {"com.docker.network.enable_ipv6": ipv6,
                                      "com.docker.network.generic": opts},
        "IPv4Data": [{"AddressSpace": "daolinet", "Gateway": gw4, "Pool": V4}], "IPv6Data": v6data})
    return pool4, pool6, out


async def start6(h: Host, nid: str, pools: tuple[str, str], deid: str, mac: str, ip6: str = "",
                 address6: str | None = None) -> dict[str, Any]:
    """What `docker run` does on a --ipv6 network; the first error, else Join's answer and the
    two addresses.  `address6`: what dockerd puts in CreateEndpoint (default: the IPAM's)."""
    opts = {docker_api.MAC_OPTION: mac}
    _, addr = await h.call("IpamDriver.RequestAddress", {"PoolID": pools[0], "Address": "", "Options": opts})
    if "Error" in addr:
        return addr
    _, addr6 = await h.call("IpamDriver.RequestAddress",
                            {"PoolID": pools[1], "Address": ip6, "Options": opts})
    if "Error" in addr6:
        return addr6  # libnetwork returns at once: the IPv4 address is not released
    iface = {"Address": addr["Address"], "MacAddress": mac,
             "AddressIPv6": addr6["Address"] if address6 is None else address6}
    ids = {"NetworkID": nid, "EndpointID": deid}
    _, out = await h.call("NetworkDriver.CreateEndpoint", {**ids, "Options": {}, "Interface": iface})
    if "Err" not in out:
        _, out = await h.call("NetworkDriver.Join", {**ids, "SandboxKey": f"/run/docker/netns/{deid}",
                                                     "Options": {}})
    if "Err" in out:  # dockerd rolls back: DeleteEndpoint, then ReleaseAddress of each family
        await stop6(h, nid, pools, deid, addr["Address"], addr6["Address"], leave=False)
    return {**out, "Address": addr["Address"], "AddressIPv6": addr6["Address"]}


async def stop6(h: Host, nid: str, pools: tuple[str, str], deid: str, address: str, address6: str,
                leave: bool = True) -> None:
    """Leave, DeleteEndpoint, ReleaseAddress IPv4 then IPv6: `docker rm -f`."""
    ids = {"NetworkID": nid, "EndpointID": deid}
    if leave:
        await h.ok("NetworkDriver.Leave", ids)
    await h.ok("NetworkDriver.DeleteEndpoint", ids)
    await h.ok("IpamDriver.ReleaseAddress", {"PoolID": pools[0], "Address": address.split("/")[0]})
    await h.ok("IpamDriver.ReleaseAddress", {"PoolID": pools[1], "Address": address6.split("/")[0]})


async def test_a_dual_stack_network_gives_both_addresses_and_gateways(
        hosts6: tuple[Host, Host, Host]) -> None:
    h1, h2, _ = hosts6
    pool4, pool6, out = await create6(h1, "n1", {"network": "net6"})
    assert out == {} and pool6 == f"daolinet/{V6}"
    net6 = await h1.client.network("default", "net6")
    assert (net6["subnet"], net6["subnet6"], net6["gateway6"]) == (V4, V6, "fd00:5::1")
    started = await start6(h1, "n1", (pool4, pool6), "d1", MAC1)
    assert started["GatewayIPv6"] == "fd00:5::1" and started["Gateway"] == "10.5.0.1", started
    (e,) = await h1.endpoints()
    assert (f"{e['ip']}/24", f"{e['ip6']}/64") == (started["Address"], started["AddressIPv6"])
    assert e["ofport"] == 10 + e["id"] and e["pip6"].startswith("2001:2:0:1:1::")
    info = await h1.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": "n1", "EndpointID": "d1"})
    assert info["Value"]["daolinet.pip6"] == e["pip6"]
    # Another host adopts the network with the same subnets; addresses stay unique.
    pools2 = await create6(h2, "m1", {"network": "net6", "daolinet.existing": "true"})
    assert pools2 == (pool4, pool6, {})
    other = await start6(h2, "m1", pools2[:2], "d2", MAC2)
    assert other["AddressIPv6"] != started["AddressIPv6"] and "Err" not in other, other
    await stop6(h1, "n1", (pool4, pool6), "d1", started["Address"], started["AddressIPv6"])
    assert [x["host"] for x in await h1.endpoints()] == ["h2"] and h1.plumber.ports == {}
    assert h1.plugin.ipam.reserved == {} and h1.plugin.ipam.reserved6 == {}
    again = await start6(h1, "n1", (pool4, pool6), "d3", MAC3)  # both addresses were freed
    assert again["AddressIPv6"] == started["AddressIPv6"], again


async def test_adoption_refuses_another_ipv6_subnet_and_a_missing_one(
        hosts6: tuple[Host, Host, Host]) -> None:
    h1, h2, _ = hosts6
    await create6(h1, "n1", {"network": "net6"})
    _, _, out = await create6(h2, "m1", {"network": "net6"}, subnet6="fd00:6::/64")
    assert out["Err"] == "network net6 of tenant default has IPv6 subnet fd00:5::/64, not fd00:6::/64"
    _, _, out = await create6(h2, "m2", {"network": "net6"}, ipv6=False)
    assert "is dual-stack: create the Docker network with --ipv6 --subnet 10.5.0.0/24 --subnet fd00:5::/64" \
        in out["Err"], out
    _, _, out = await create6(h2, "m3", {"network": "net6"}, gateway6="fd00:5::9")
    assert "has IPv6 gateway fd00:5::1" in out["Err"], out
    assert h2.plugin.registry.bindings() == []  # nothing half-applied
    await h1.admin.call("POST", "/networks", json={"name": "plain", "subnet": "10.7.0.0/24"})
    _, out = await h2.call("NetworkDriver.CreateNetwork", {
        "NetworkID": "m4", "Options": {"com.docker.network.enable_ipv6": True,
                                       "com.docker.network.generic": {"network": "plain"}},
        "IPv4Data": [{"Gateway": "10.7.0.1/24", "Pool": "10.7.0.0/24"}],
        "IPv6Data": [{"Gateway": "fd00:7::1/64", "Pool": "fd00:7::/64"}]})
    assert out["Err"] == "network plain of tenant default has no IPv6 subnet: drop --ipv6 and " \
        "--subnet fd00:7::/64"
    _, out = await h2.call("NetworkDriver.CreateNetwork", {
        "NetworkID": "m5", "Options": {"com.docker.network.enable_ipv6": True}, "IPv6Data": [],
        "IPv4Data": [{"Gateway": "10.8.0.1/24", "Pool": "10.8.0.0/24"}]})
    assert "exactly one IPv6 subnet" in out["Err"]
    _, out = await h2.call("IpamDriver.RequestPool", {"Pool": "", "V6": True})
    assert "--ipv6 --subnet V4CIDR --subnet V6CIDR" in out["Error"]


async def test_ipv6_requests_that_cannot_be_met_leave_nothing(hosts6: tuple[Host, Host, Host]) -> None:
    h1, _, h3 = hosts6
    pool4, pool6, _ = await create6(h1, "n1", {"network": "net6"})
    out = await start6(h1, "n1", (pool4, pool6), "d1", MAC1, ip6="fd00:5::99")
    assert out["Error"] == "--ip6 fd00:5::99: daolinet gave this container fd00:5::2 and picks IPv6 " \
        "addresses itself: drop --ip6"
    assert await h1.endpoints() == [] and h1.plugin.ipam.reserved == {}
    # --ip6 naming the address daolinet picks is fine (a moved container's)
    assert (await start6(h1, "n1", (pool4, pool6), "d1", MAC1, ip6="fd00:5::2"))["AddressIPv6"] == \
        "fd00:5::2/64"
    _, early = await h1.call("IpamDriver.RequestAddress", {
        "PoolID": pool6, "Address": "", "Options": {docker_api.MAC_OPTION: MAC2}})
    assert "before its IPv4 one" in early["Error"], early
    out = await start6(h1, "n1", (pool4, pool6), "d2", MAC2, address6="fd00:5::77/64")
    assert "IPv6 address fd00:5::77 of the Docker endpoint is not endpoint" in out["Err"], out
    assert len(await h1.endpoints()) == 1 and len(h1.plumber.ports) == 1
    # A host without an IPv6 PIP pool cannot hold a dual-stack endpoint: said by the store.
    pools3 = await create6(h3, "k1", {"network": "net6", "daolinet.existing": "true"})
    out = await start6(h3, "k1", pools3[:2], "d3", MAC3)
    assert "no pip_pool6" in out["Error"] and len(await h1.endpoints()) == 1, out


async def test_an_ipv4_only_docker_network_is_unchanged(hosts6: tuple[Host, Host, Host]) -> None:
    h1, _, _ = hosts6
    pool4, _, out = await create6(h1, "n1", {"network": "net4"}, ipv6=False)
    assert out == {} and "subnet6" not in await h1.client.network("default", "net4")
    _, addr = await h1.call("IpamDriver.RequestAddress", {
        "PoolID": pool4, "Address": "", "Options": {docker_api.MAC_OPTION: MAC1}})
    ids = {"NetworkID": "n1", "EndpointID": "d1"}
    iface = {"Address": addr["Address"], "AddressIPv6": "", "MacAddress": MAC1}
    await h1.ok("NetworkDriver.CreateEndpoint", {**ids, "Options": {}, "Interface": iface})
    join = await h1.ok("NetworkDriver.Join", {**ids, "SandboxKey": "/x", "Options": {}})
    assert "GatewayIPv6" not in join and h1.plugin.ipam.reserved6 == {}


# -- the registry and the sync -------------------------------------------------------


def test_the_registry_finds_a_network_by_either_subnet() -> None:
    reg = Registry()
    reg.bind(Binding("n1", "default", "net6", V4, V6))
    assert reg.nid_for_subnet(V6) == reg.nid_for_subnet(V4) == "n1"
    with pytest.raises(Exception, match="fd00:5::/64 is already Docker network n1"):
        reg.check_free("n2", "10.9.0.0/24", V6)


def test_sync_makes_dual_stack_docker_networks_and_reads_them_back() -> None:
    dual = {**net("d", "10.4.0.0/24"), "subnet6": "fd00:4::/64", "gateway6": "fd00:4::1"}
    clash = {**net("e", "10.5.0.0/24"), "subnet6": "fd00:4::/64", "gateway6": "fd00:4::1"}
    p = plan([dual, clash], [], set(), {}, set())
    assert [n["name"] for n in p.create] == ["d"]
    assert "already serves subnet fd00:4::/64" in p.skipped[("default", "e")]
    seen = {**docker_net("dd", "d", "10.4.0.0/24"), "EnableIPv6": True}
    seen["IPAM"]["Config"].append({"Subnet": "fd00:4::/64"})
    binding = binding_of(seen)
    assert binding is not None and binding.subnets == ("10.4.0.0/24", "fd00:4::/64")


async def test_sync_creates_a_dual_stack_network_with_ipv6() -> None:
    made: list[tuple[Any, ...]] = []

    class Docker:
        async def create_network(self, *args: Any) -> str:
            made.append(args)
            return "new"

    sync = NetworkSync(None, Docker(), Registry(), 1.0)  # type: ignore[arg-type]
    dual = {**net("d", "10.4.0.0/24"), "subnet6": "fd00:4::/64", "gateway6": "fd00:4::1"}
    await sync._apply(plan([dual, net("f", "10.6.0.0/24")], [], set(), {}, set()))
    assert made[0][-1] == ("fd00:4::/64", "fd00:4::1") and made[1][-1] is None
