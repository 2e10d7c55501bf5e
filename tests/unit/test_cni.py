"""The CNI protocol (daolinet.cni.spec), the shim without its socket, and the
agent's CNI backend against a real controller over an in-memory store with
a fake plumber.  test_cni.py in integration runs the binary for real."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from daolinet.agent import cni as agent_cni
from daolinet.agent.client import ControllerClient
from daolinet.agent.cni import CniBackend, cni_error
from daolinet.agent.plumbing import PluggedPort, PlugSpec, port_name
from daolinet.agent.service import AgentService, HostInfo
from daolinet.cni import shim, spec
from daolinet.cni.spec import CniError
from daolinet.controller.api import create_app
from daolinet.controller.api.auth import hash_token
from daolinet.controller.context import Config
from daolinet.controller.controller import Controller
from daolinet.errors import Conflict, InvalidInput, NotFound, SystemFailure
from daolinet.store import open_store

ADMIN = "dl_test-admin-token"
AGENT = "dl_test-agent-h1"
NETNS = "/run/netns/c1"


def env(command: str = "ADD", **extra: str) -> dict[str, str]:
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr-1", "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin"}
    return {**base, **extra}


def conf(version: str = "1.1.0", **extra: Any) -> bytes:
    return json.dumps({"cniVersion": version, "name": "net1", "type": "daolinet-cni", **extra}).encode()


def code_of(env_: dict[str, str], stdin: bytes) -> int:
    with pytest.raises(CniError) as raised:
        spec.parse(env_, stdin)
    return raised.value.code


# -- the protocol ------------------------------------------------------------------------


def test_parse_reads_the_environment_and_the_configuration() -> None:
    req = spec.parse(env(CNI_ARGS="IP=10.1.0.9;IgnoreUnknown=1;K8S_POD_NAME=web"), conf(tenant="t1"))
    assert (req.command, req.version, req.network, req.tenant) == ("ADD", "1.1.0", "net1", "t1")
    assert (req.container_id, req.netns, req.ifname, req.ip) == ("ctr-1", NETNS, "eth0", "10.1.0.9")
    assert req.endpoint_name == "cni-ctr-1-eth0"
    runtime = spec.parse(env(), conf(runtimeConfig={"ips": ["10.1.0.7/24"], "mac": "02:00:00:00:00:07"}))
    assert (runtime.ip, runtime.mac) == ("10.1.0.7", "02:00:00:00:00:07")
    assert spec.parse(env("DEL", CNI_NETNS=""), conf("1.0.0")).netns == ""  # DEL needs no namespace
    gc = spec.parse({"CNI_COMMAND": "GC"}, conf(**{"cni.dev/valid-attachments": [
        {"containerID": "a", "ifname": "eth0"}]}))
    assert gc.valid_attachments == (("a", "eth0"),)


@pytest.mark.parametrize(("environment", "stdin", "code"), [
    (env(), b"{not json", spec.DECODE_FAILED),
    (env(), b"[1, 2]", spec.DECODE_FAILED),
    (env(), conf("0.4.0"), spec.INCOMPATIBLE_VERSION),
    (env(), conf(bridge="cni0"), spec.UNSUPPORTED_FIELD),
    (env(CNI_ARGS="FOO=1"), conf(), spec.UNSUPPORTED_FIELD),
    (env(CNI_ARGS="novalue"), conf(), spec.INVALID_ENV),
    (env(CNI_NETNS=""), conf(), spec.INVALID_ENV),
    (env(CNI_CONTAINERID="-bad"), conf(), spec.INVALID_ENV),
    (env(CNI_IFNAME="a/b"), conf(), spec.INVALID_ENV),
    (env(CNI_COMMAND="FROB"), conf(), spec.INVALID_ENV),
    (env(), json.dumps({"cniVersion": "1.1.0", "type": "daolinet-cni"}).encode(), spec.INVALID_CONFIG),
    (env("CHECK"), conf(), spec.INVALID_CONFIG),  # CHECK without prevResult
])
def test_bad_invocations_get_the_specs_error_codes(environment: dict[str, str], stdin: bytes,
                                                   code: int) -> None:
    assert code_of(environment, stdin) == code


def test_version_answers_for_any_version_asked() -> None:
    assert spec.version_result(spec.parse(env("VERSION"), conf("1.0.0")).version) == {
        "cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}
    assert spec.parse(env("VERSION"), b"").version == "1.1.0"


def test_results_follow_the_version() -> None:
    e = {"mac": "02:d1:00:00:00:01", "port": "dlp000001", "ip": "10.1.0.2"}
    n = {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}
    new = spec.add_result(spec.parse(env(), conf()), e, n, "aa:bb:cc:dd:ee:ff", 1500)
    assert new["ips"] == [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1}]
    assert new["interfaces"][1] == {"name": "eth0", "mac": e["mac"], "sandbox": NETNS, "mtu": 1500}
    assert new["dns"] == {"nameservers": ["10.1.0.1"]}  # the gateway answers names (flows/dns.py)
    old = spec.add_result(spec.parse(env(), conf("1.0.0")), e, n, "aa:bb:cc:dd:ee:ff", 1500)
    assert old["cniVersion"] == "1.0.0" and "mtu" not in old["interfaces"][1]
    check = spec.parse(env("CHECK"), conf(prevResult=new))
    assert spec.expected(check) == (e["mac"], "10.1.0.2/24", "")


def test_the_shim_answers_version_itself_and_passes_the_rest_through() -> None:
    sent: list[dict[str, Any]] = []

    def send(req: spec.CniRequest, body: dict[str, Any]) -> dict[str, Any]:
        sent.append(body)
        return {"error": {"cniVersion": "1.1.0", "code": 100, "msg": "taken"}}

    assert shim.run(env("VERSION"), conf(), send) == (0, spec.version_result("1.1.0"))
    assert shim.run(env(), conf(), send) == (1, {"cniVersion": "1.1.0", "code": 100, "msg": "taken"})
    assert sent[0]["env"]["CNI_CONTAINERID"] == "ctr-1" and "PATH" not in sent[0]["env"]
    status, out = shim.run(env(), b"{", send)
    assert status == 1 and out is not None and out["code"] == spec.DECODE_FAILED and len(sent) == 1


def test_an_unreachable_agent_is_try_again_or_not_available() -> None:
    gone = json.loads(conf())
    gone["agentSocket"] = "/nonexistent/agent.sock"
    status, out = shim.run(env(), json.dumps(gone).encode())
    assert status == 1 and out is not None and out["code"] == spec.TRY_AGAIN
    status, out = shim.run({"CNI_COMMAND": "STATUS"}, json.dumps(gone).encode())
    assert status == 1 and out is not None and out["code"] == spec.NOT_AVAILABLE


def test_daolinet_errors_become_cni_codes() -> None:
    unreachable = SystemFailure("controller API unreachable")
    unreachable.__cause__ = httpx.ConnectError("refused")
    assert cni_error(unreachable).code == spec.TRY_AGAIN
    assert cni_error(Conflict("ip taken")).code == spec.IN_USE
    assert cni_error(NotFound("no network")).code == spec.INVALID_CONFIG
    assert cni_error(InvalidInput("bad ip")).code == spec.INVALID_CONFIG
    assert cni_error(SystemFailure("netlink")).code == spec.IO_FAILURE


# -- the agent's backend ------------------------------------------------------------------


class FakePlumber:
    host_netns = None

    def __init__(self) -> None:
        self.ports: dict[int, PluggedPort] = {}

    def plug(self, s: PlugSpec) -> PluggedPort:
        self.ports[s.eid] = PluggedPort(s.eid, port_name(s.eid), 10 + s.eid, s.netns)
        return self.ports[s.eid]

    def unplug(self, eid: int, netns: str | None = None, ifname: str = "eth0") -> None:
        self.ports.pop(eid, None)

    def plugged(self) -> dict[int, PluggedPort]:
        return dict(self.ports)


@pytest.fixture
async def backend(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CniBackend]:
    monkeypatch.setattr(agent_cni.links, "mac_of", lambda ns, ifname: "aa:bb:cc:dd:ee:ff")
    store = open_store("sqlite://:memory:")
    await store.create_token("admin", None, hash_token(ADMIN), 1000.0)
    await store.create_token("agent-h1", None, hash_token(AGENT), 1000.0, host="h1")
    ctrl = Controller(store, Config())
    await ctrl.start()
    # the agent holds h1's credential: what CNI does must be within a host's rights
    client = ControllerClient("http://c", token=AGENT, transport=httpx.ASGITransport(app=create_app(ctrl)))
    host = HostInfo(name="h1", dpid=1, underlay_ip="198.18.0.1", underlay_prefix=18,
                    underlay_mac="02:18:00:00:00:01", pip_pool="198.18.1.0/24", uplink_ofport=1)
    service = AgentService(host, client, FakePlumber())  # type: ignore[arg-type]
    await service.register()
    await client.call("POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
    yield CniBackend(service)
    await client.close()
    await asyncio.gather(*list(ctrl._tasks))
    await store.close()


async def call(b: CniBackend, environment: dict[str, str], stdin: bytes) -> dict[str, Any]:
    return await b.handle(environment, json.loads(stdin))


async def test_backend_add_del_and_gc(backend: CniBackend) -> None:
    added = await call(backend, env(), conf())
    assert added["result"]["ips"][0]["address"] == "10.1.0.2/24", added
    again = await call(backend, env(), conf())  # ADD twice without DEL: the name is taken
    assert again["error"]["code"] == spec.IN_USE
    other = await call(backend, env(CNI_CONTAINERID="ctr-2"), conf())
    assert other["result"]["ips"][0]["address"] == "10.1.0.3/24"
    gc = conf(**{"cni.dev/valid-attachments": [{"containerID": "ctr-2", "ifname": "eth0"}]})
    assert await call(backend, {"CNI_COMMAND": "GC"}, gc) == {"result": None}
    left = await backend.client.endpoints_on("h1")
    assert [e["name"] for e in left] == ["cni-ctr-2-eth0"]
    assert await call(backend, env("DEL", CNI_CONTAINERID="ctr-2"), conf()) == {"result": None}
    assert await call(backend, env("DEL", CNI_CONTAINERID="ctr-2"), conf()) == {"result": None}
    assert await backend.client.endpoints_on("h1") == [] and backend.service.plumber.ports == {}  # type: ignore[attr-defined]
    assert await call(backend, {"CNI_COMMAND": "STATUS"}, conf()) == {"result": None}
    unknown = await call(backend, env(), conf(network="nosuch"))
    assert unknown["error"]["code"] == spec.INVALID_CONFIG and "nosuch" in unknown["error"]["msg"]


# -- dual stack ---------------------------------------------------------------------------

MAC = "02:d1:00:00:00:01"
E6 = {"mac": MAC, "port": "dlp000001", "ip": "10.1.0.2", "ip6": "fd00:1::2"}
N6 = {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "subnet6": "fd00:1::/64", "gateway6": "fd00:1::1"}


def test_a_dual_stack_result_has_both_families_and_check_reads_both() -> None:
    result = spec.add_result(spec.parse(env(), conf()), E6, N6, "aa:bb:cc:dd:ee:ff", 1500)
    assert result["ips"] == [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1},
                             {"address": "fd00:1::2/64", "gateway": "fd00:1::1", "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "::/0", "gw": "fd00:1::1"}]
    assert result["dns"] == {"nameservers": ["10.1.0.1", "fd00:1::1"]}
    assert spec.expected(spec.parse(env("CHECK"), conf(prevResult=result))) == (MAC, "10.1.0.2/24",
                                                                                 "fd00:1::2/64")
    result["ips"].reverse()  # the order of the entries does not matter
    assert spec.expected(spec.parse(env("CHECK"), conf(prevResult=result)))[1:] == ("10.1.0.2/24",
                                                                                    "fd00:1::2/64")
    v4 = spec.add_result(spec.parse(env(), conf()), {**E6, "ip6": ""}, N6, "aa:bb:cc:dd:ee:ff", 1500)
    assert len(v4["ips"]) == 1 and spec.expected(spec.parse(env("CHECK"), conf(prevResult=v4)))[2] == ""


async def test_backend_add_and_check_a_dual_stack_attachment(backend: CniBackend,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    service = backend.service
    service.host = dataclasses.replace(service.host, underlay_ip6="2001:2:0:1::1",
                                       pip_pool6="2001:2:0:1:1::/112")
    await service.register()  # the agent again, now with an IPv6 PIP pool
    await backend.client.call("POST", "/networks", json={"name": "net6", "subnet": "10.6.0.0/24",
                                                         "subnet6": "fd00:6::/64"})
    added = (await call(backend, env(), conf(network="net6")))["result"]
    assert [ip["address"] for ip in added["ips"]] == ["10.6.0.2/24", "fd00:6::2/64"], added
    assert added["dns"]["nameservers"] == ["10.6.0.1", "fd00:6::1"]
    live = {"v4": ("10.6.0.2", 24, added["interfaces"][1]["mac"]), "v6": ("fd00:6::2", 64)}
    monkeypatch.setattr(agent_cni.links, "address_of", lambda ns, ifname: live["v4"])
    monkeypatch.setattr(agent_cni.links, "address6_of", lambda ns, ifname: live["v6"])
    check = conf(network="net6", prevResult=added)
    assert await call(backend, env("CHECK"), check) == {"result": None}
    live["v6"] = ("fd00:6::9", 64)  # someone changed the container's IPv6 address
    changed = await call(backend, env("CHECK"), check)
    assert changed["error"]["code"] == spec.NOT_AS_EXPECTED and "fd00:6::9" in changed["error"]["msg"]
    wrong = json.loads(check)
    wrong["prevResult"]["ips"][1]["address"] = "fd00:6::7/64"
    refused = await call(backend, env("CHECK"), json.dumps(wrong).encode())
    assert refused["error"]["code"] == spec.NOT_AS_EXPECTED and "fd00:6::7/64" in refused["error"]["msg"]
