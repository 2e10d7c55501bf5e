"""Docker's remote NetworkDriver and IpamDriver as dockerd drives them, call by
call (the sequences a real dockerd 20.10 sends), against a real controller
over an in-memory store; OVS and netlink are replaced by a fake plumber and
dockerd's API by a fake.  The integration tests run the real thing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from daolinet.agent import docker_api
from daolinet.agent.client import ControllerClient
from daolinet.agent.docker_networks import Binding, Registry
from daolinet.agent.docker_plugin import DockerPlugin, dispatch
from daolinet.agent.docker_sync import plan
from daolinet.agent.plumbing import EXT_DOCKER, PluggedPort, port_name
from daolinet.agent.service import AgentService, HostInfo
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.errors import Conflict, NotFound, SystemFailure
from daolinet.store import open_store

ADMIN = "dl_test-admin-token"
MAC1, MAC2, MAC3 = "02:42:0a:00:00:01", "02:42:0a:00:00:02", "02:42:0a:00:00:03"


class FakePlumber:
    """The plumber's Docker side, in memory; `fail` makes the next plug fail."""

    host_netns = None

    def __init__(self) -> None:
        self.ports: dict[int, tuple[PluggedPort, dict[str, str]]] = {}
        self.fail = False

    def plug_docker(self, eid: int, mac: str, mtu: int, sandbox: str, docker_eid: str) -> PluggedPort:
        if self.fail:
            raise SystemFailure("interface dlc000001 already exists")
        plugged = PluggedPort(eid, port_name(eid), 10 + eid, sandbox)
        self.ports[eid] = (plugged, {EXT_DOCKER: docker_eid})
        return plugged

    def unplug(self, eid: int, netns: str | None = None, ifname: str = "eth0") -> None:
        self.ports.pop(eid, None)

    def plugged(self) -> dict[int, PluggedPort]:
        return {eid: p for eid, (p, _) in self.ports.items()}

    def endpoint_with(self, key: str, value: str) -> int | None:
        return next((eid for eid, (_, ext) in self.ports.items() if ext.get(key) == value), None)


class FakeDocker:
    """dockerd's API as the agent uses it: names appear once a test says so."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # network id -> name
        self.created: list[tuple[str, str, dict[str, str]]] = []

    def available(self) -> bool:
        return True

    async def wait_name(self, nid: str, timeout: float = 15.0) -> str:
        while nid not in self.names:
            await asyncio.sleep(0.001)
        return self.names[nid]

    async def create_network(self, name: str, subnet: str, gateway: str, options: dict[str, str]) -> str:
        self.created.append((name, subnet, options))
        return "new"


@pytest.fixture
async def controller() -> AsyncIterator[httpx.ASGITransport]:
    store = open_store("sqlite://:memory:")
    await store.create_token("admin", None, hash_token(ADMIN), 1000.0)
    for i in (1, 2):  # agents hold host credentials, never the admin token
        await store.create_token(f"agent-h{i}", None, hash_token(f"dl_agent-h{i}"), 1000.0, host=f"h{i}")
    ctrl = Controller(store, Config())
    await ctrl.start()
    yield httpx.ASGITransport(app=create_app(ctrl))
    await asyncio.gather(*list(ctrl._tasks))
    await store.close()


def host_info(i: int) -> HostInfo:
    return HostInfo(name=f"h{i}", dpid=i, underlay_ip=f"198.18.0.{i}", underlay_prefix=18,
                    underlay_mac=f"02:18:00:00:00:{i:02x}", pip_pool=f"198.18.{i}.0/24", uplink_ofport=1)


class Host:
    """One host's agent: its service, plugin, plumber and dockerd fake; `admin`: the
    operator's client, for what a test sets up or checks beyond the host."""

    def __init__(self, transport: httpx.ASGITransport, i: int) -> None:
        self.client = ControllerClient("http://controller", token=f"dl_agent-h{i}", transport=transport)
        self.admin = ControllerClient("http://controller", token=ADMIN, transport=transport)
        self.plumber = FakePlumber()
        self.service = AgentService(host_info(i), self.client, self.plumber)  # type: ignore[arg-type]
        self.docker = FakeDocker()
        self.plugin = DockerPlugin(self.service, self.client, self.docker)  # type: ignore[arg-type]

    async def call(self, method: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        raw = b"" if body is None else json.dumps(body).encode()
        return await dispatch(self.plugin.handlers(), method, raw)

    async def ok(self, method: str, body: Any = None) -> dict[str, Any]:
        status, out = await self.call(method, body)
        assert status == 200 and not {"Err", "Error"} & set(out), (method, out)
        return out

    async def create_network(self, nid: str, subnet: str, opts: dict[str, str] | None = None,
                             gateway: str = "") -> tuple[str, dict[str, Any]]:
        pool = await self.ok("IpamDriver.RequestPool", {"AddressSpace": "daolinet", "Pool": subnet,
                                                        "SubPool": "", "Options": {}, "V6": False})
        gw = await self.ok("IpamDriver.RequestAddress", {
            "PoolID": pool["PoolID"], "Address": gateway,
            "Options": {"RequestAddressType": "com.docker.network.gateway"}})
        _, out = await self.call("NetworkDriver.CreateNetwork", {
            "NetworkID": nid, "Options": {"com.docker.network.enable_ipv6": False,
                                          "com.docker.network.generic": opts or {}},
            "IPv4Data": [{"AddressSpace": "daolinet", "Gateway": gw["Address"], "Pool": subnet}],
            "IPv6Data": []})
        return pool["PoolID"], out

    async def start(self, nid: str, pool: str, deid: str, mac: str, ip: str = "",
                    publish: bool = False) -> dict[str, Any]:
        """RequestAddress, CreateEndpoint, Join: what `docker run` does; the first error."""
        _, addr = await self.call("IpamDriver.RequestAddress", {
            "PoolID": pool, "Address": ip, "Options": {docker_api.MAC_OPTION: mac}})
        if "Error" in addr:
            return addr
        options = {docker_api.PORTMAP: [{"Proto": 6, "Port": 80, "HostPort": 0}] if publish else []}
        _, out = await self.call("NetworkDriver.CreateEndpoint", {
            "NetworkID": nid, "EndpointID": deid, "Options": options,
            "Interface": {"Address": addr["Address"], "AddressIPv6": "", "MacAddress": mac}})
        if "Err" not in out:
            _, out = await self.call("NetworkDriver.Join", {"NetworkID": nid, "EndpointID": deid,
                                                            "SandboxKey": f"/run/docker/netns/{deid}",
                                                            "Options": options})
        if "Err" in out:  # dockerd rolls back: DeleteEndpoint, then ReleaseAddress
            await self.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": deid})
            ip = addr["Address"].split("/")[0]
            await self.ok("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": ip})
        return {**out, "Address": addr["Address"]}

    async def stop(self, nid: str, pool: str, deid: str, ip: str) -> None:
        """Leave, DeleteEndpoint, ReleaseAddress: what `docker rm -f` does."""
        ids = {"NetworkID": nid, "EndpointID": deid}
        await self.ok("NetworkDriver.Leave", ids)
        await self.ok("NetworkDriver.DeleteEndpoint", ids)
        await self.ok("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": ip})

    async def endpoints(self) -> list[dict[str, Any]]:
        return list(await self.admin.call("GET", "/endpoints"))  # every host's


@pytest.fixture
async def hosts(controller: httpx.ASGITransport) -> AsyncIterator[tuple[Host, Host]]:
    pair = (Host(controller, 1), Host(controller, 2))
    for h in pair:
        await h.service.register()
    yield pair
    for h in pair:
        await h.client.close()
        await h.admin.close()


# -- the handshake and the protocol's edges ------------------------------------------


async def test_handshake_capabilities_and_unknown_methods(hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    assert await h1.ok("Plugin.Activate") == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert (await h1.ok("NetworkDriver.GetCapabilities"))["Scope"] == "local"
    assert (await h1.ok("IpamDriver.GetCapabilities"))["RequiresMACAddress"] is True
    assert await h1.ok("IpamDriver.GetDefaultAddressSpaces") == {
        "LocalDefaultAddressSpace": "daolinet", "GlobalDefaultAddressSpace": "daolinet"}
    status, _ = await h1.call("NetworkDriver.DiscoverNew", {"DiscoveryType": 1})
    assert status == 404  # libnetwork reads 404 as "not implemented"
    status, out = await dispatch(h1.plugin.handlers(), "NetworkDriver.Join", b"{oops")
    assert status == 400 and "Err" in out
    status, out = await dispatch(h1.plugin.handlers(), "IpamDriver.RequestPool", b"[]")
    assert status == 400 and "Error" in out


async def test_pools_are_reference_counted_and_identical_requests_get_the_same_pool(
        hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    body = {"AddressSpace": "daolinet", "Pool": "10.5.0.0/24", "SubPool": "", "Options": {}, "V6": False}
    first, second = await h1.ok("IpamDriver.RequestPool", body), await h1.ok("IpamDriver.RequestPool", body)
    assert first == second == {"PoolID": "daolinet/10.5.0.0/24", "Pool": "10.5.0.0/24", "Data": {}}
    assert h1.plugin.ipam.pools["10.5.0.0/24"] == 2
    await h1.ok("IpamDriver.ReleasePool", {"PoolID": first["PoolID"]})
    await h1.ok("IpamDriver.ReleasePool", {"PoolID": first["PoolID"]})
    assert h1.plugin.ipam.pools == {}
    for bad, word in (({**body, "V6": True}, "IPv6 network"), ({**body, "Pool": ""}, "--subnet"),
                      ({**body, "SubPool": "10.5.0.0/25"}, "--ip-range"),
                      ({**body, "Options": {"x": "1"}}, "x")):
        _, out = await h1.call("IpamDriver.RequestPool", bad)
        assert word in out["Error"], out


async def test_network_options_map_to_daolinet(hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    await h1.admin.call("POST", "/tenants", json={"name": "t1"})
    opts = {"tenant": "t1", "network": "web", "isolated": "true"}
    _, out = await h1.create_network("n1", "10.5.0.0/24", opts)
    assert out == {}
    net = await h1.client.network("t1", "web")
    assert (net["subnet"], net["gateway"], net["isolated"]) == ("10.5.0.0/24", "10.5.0.1", True)
    _, out = await h1.create_network("n2", "10.6.0.0/24", {"color": "red"})
    assert "unknown option -o color" in out["Err"]
    _, out = await h1.create_network("n3", "10.5.0.0/24", {"network": "other"})
    assert "subnet 10.5.0.0/24 is already Docker network n1" in out["Err"]


# -- containers ----------------------------------------------------------------------


async def test_container_lifecycle_reserves_claims_plugs_and_releases(hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    _, addr = await h1.call("IpamDriver.RequestAddress", {
        "PoolID": pool, "Address": "", "Options": {docker_api.MAC_OPTION: MAC1}})
    assert addr == {"Address": "10.5.0.2/24", "Data": {}}
    (e,) = await h1.endpoints()  # the reservation is the endpoint: Docker's MAC, this host, unplugged
    assert (e["ip"], e["mac"], e["host"], e["ofport"], e["labels"]) == (
        "10.5.0.2", MAC1, "h1", None, {"daolinet.driver": "docker"})
    ids = {"NetworkID": "n1", "EndpointID": "d1"}
    iface = {"Address": "10.5.0.2/24", "AddressIPv6": "", "MacAddress": MAC1}
    assert await h1.ok("NetworkDriver.CreateEndpoint", {**ids, "Options": {}, "Interface": iface}) == {}
    join = await h1.ok("NetworkDriver.Join", {**ids, "SandboxKey": "/run/docker/netns/x", "Options": {}})
    assert join == {"InterfaceName": {"SrcName": f"dlc{e['id']:06x}", "DstPrefix": "eth"},
                    "Gateway": "10.5.0.1", "StaticRoutes": []}
    (e,) = await h1.endpoints()
    assert e["ofport"] == 10 + e["id"] and e["port"] == port_name(e["id"])
    info = await h1.ok("NetworkDriver.EndpointOperInfo", ids)
    assert info["Value"]["daolinet.pip"] == e["pip"]
    await h1.stop("n1", pool, "d1", "10.5.0.2")
    assert await h1.endpoints() == [] and h1.plumber.ports == {}


async def test_addresses_are_unique_across_hosts(hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    pool2, _ = await h2.create_network("m1", "10.5.0.0/24", {"network": "net1", "daolinet.existing": "true"})
    assert pool2 == pool
    assert (await h1.start("n1", pool, "d1", MAC1, ip="10.5.0.9"))["Address"] == "10.5.0.9/24"
    refused = await h2.start("m1", pool, "d2", MAC2, ip="10.5.0.9")
    assert "10.5.0.9" in refused["Error"] and "already used" in refused["Error"], refused
    assert (await h2.start("m1", pool, "d3", MAC3))["Address"] == "10.5.0.2/24"
    await h1.stop("n1", pool, "d1", "10.5.0.9")  # freed: the other host may have it now
    assert (await h2.start("m1", pool, "d2", MAC2, ip="10.5.0.9"))["Address"] == "10.5.0.9/24"


async def test_failed_create_endpoint_or_join_leaves_nothing(hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    out = await h1.start("n1", pool, "d1", MAC1, publish=True)
    assert "the host port you name" in out["Err"]  # -P or -p 80: refused before anything is plugged
    assert await h1.endpoints() == [] and h1.plumber.ports == {}
    h1.plumber.fail = True
    out = await h1.start("n1", pool, "d2", MAC2)
    assert "already exists" in out["Err"]
    assert await h1.endpoints() == [] and h1.plumber.ports == {}
    h1.plumber.fail = False
    assert (await h1.start("n1", pool, "d3", MAC3))["Address"] == "10.5.0.2/24"


async def test_an_unnamed_network_is_named_after_the_docker_network(hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    pool, out = await h1.create_network("n1", "10.5.0.0/24")
    assert out == {}  # answered at once: dockerd shows the name only afterwards
    start = asyncio.create_task(h1.start("n1", pool, "d1", MAC1))
    await asyncio.sleep(0.01)
    assert not start.done()  # the container waits for its network
    h1.docker.names["n1"] = "web"
    assert (await start)["Address"] == "10.5.0.2/24"
    assert (await h1.client.network("default", "web"))["subnet"] == "10.5.0.0/24"


async def test_a_docker_name_daolinet_cannot_take_makes_the_network_fail_clearly(
        hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24")
    h1.docker.names["n1"] = "Web Net"
    out = await h1.start("n1", pool, "d1", MAC1)
    assert "has no daolinet network" in out["Error"] and "invalid network name" in out["Error"], out
    assert await h1.endpoints() == []
    await h1.ok("NetworkDriver.DeleteNetwork", {"NetworkID": "n1"})  # and it can be removed
    assert not h1.plugin.registry.known("n1")


async def test_deleting_a_used_network_is_refused_and_this_host_lets_go(hosts: tuple[Host, Host]) -> None:
    h1, h2 = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    await h2.create_network("m1", "10.5.0.0/24", {"network": "net1"})
    await h1.start("n1", pool, "d1", MAC1)
    _, out = await h2.call("NetworkDriver.DeleteNetwork", {"NetworkID": "m1"})
    assert "still used" in out["Err"]
    assert (await h2.client.network("default", "net1"))["subnet"] == "10.5.0.0/24"
    assert not h2.plugin.registry.known("m1")  # dockerd dropped its copy; the sync restores it
    await h1.stop("n1", pool, "d1", "10.5.0.2")
    await h1.ok("NetworkDriver.DeleteNetwork", {"NetworkID": "n1"})
    with pytest.raises(NotFound):
        await h1.client.network("default", "net1")


async def test_after_an_agent_restart_the_port_names_the_docker_endpoint(hosts: tuple[Host, Host]) -> None:
    h1, _ = hosts
    pool, _ = await h1.create_network("n1", "10.5.0.0/24", {"network": "net1"})
    await h1.start("n1", pool, "d1", MAC1)
    h1.plugin = DockerPlugin(h1.service, h1.client, h1.docker)  # type: ignore[arg-type]  # memory lost
    h1.plugin.registry.bind(Binding("n1", "default", "net1", "10.5.0.0/24"))  # the sync's work
    await h1.stop("n1", pool, "d1", "10.5.0.2")
    assert await h1.endpoints() == [] and h1.plumber.ports == {}


# -- the registry and the sync's plan ------------------------------------------------


async def test_registry_awaits_a_pending_network_and_keeps_one_network_per_subnet() -> None:
    reg = Registry()
    gate: asyncio.Future[Binding] = asyncio.get_running_loop().create_future()

    async def resolve() -> Binding:
        b = await gate
        reg.bind(b)
        return b

    reg.pend("n1", "default", "10.5.0.0/24", asyncio.create_task(resolve()))
    with pytest.raises(Conflict):
        reg.check_free("n2", "10.5.0.0/24")
    waiting = asyncio.create_task(reg.for_subnet("10.5.0.0/24"))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set_result(Binding("n1", "default", "web", "10.5.0.0/24"))
    assert (await waiting).name == "web"
    reg.fail("n3", "10.6.0.0/24", "bad name")
    with pytest.raises(Conflict, match="bad name"):
        await reg.get("n3")
    with pytest.raises(NotFound):
        await reg.get("n4")


def net(name: str, subnet: str, tenant: str = "default") -> dict[str, Any]:
    return {"name": name, "tenant": tenant, "subnet": subnet, "gateway": subnet.replace("0/24", "1")}


def docker_net(nid: str, name: str, subnet: str, **opts: str) -> dict[str, Any]:
    return {"Id": nid, "Name": name, "Driver": "daolinet", "Options": opts,
            "IPAM": {"Driver": "daolinet", "Config": [{"Subnet": subnet}]}}


def test_sync_plan_creates_missing_networks_and_removes_orphans() -> None:
    wanted = [net("a", "10.1.0.0/24"), net("b", "10.2.0.0/24"), net("c", "10.3.0.0/24", tenant="t1")]
    local = [docker_net("da", "a", "10.1.0.0/24"), docker_net("dz", "z", "10.9.0.0/24")]
    p = plan(wanted, local, {"a", "z", "bridge"}, {}, set())
    assert [b.key for b in p.adopt] == [("default", "a"), ("default", "z")]  # rebuilt after a restart
    assert p.remove == ["dz"]
    assert [n["name"] for n in p.create] == ["b", "c"]


def test_sync_plan_leaves_busy_networks_and_reports_clashes() -> None:
    wanted = [net("a", "10.1.0.0/24"), net("b", "10.2.0.0/24"), net("c", "10.1.0.0/24", tenant="t1")]
    local = [docker_net("da", "a", "10.1.0.0/24"), docker_net("dp", "pending", "10.7.0.0/24")]
    p = plan(wanted, local, {"a", "b", "pending"}, {}, {"dp"})
    assert p.remove == [] and p.create == []  # a pending network is never removed
    assert "named b already exists" in p.skipped[("default", "b")]
    assert "already serves subnet 10.1.0.0/24" in p.skipped[("t1", "c")]
