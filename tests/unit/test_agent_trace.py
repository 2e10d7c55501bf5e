"""Per-host traces: the agent's validation and tools (agent/trace.py), the controller's
fan-out (controller/agent_trace.py), with fakes for the agents and for OVS's tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from daolinet.agent.trace import BridgeTracer, ProbeIn, create_app, probe_text, server_config, verdict_of
from daolinet.controller.agent_trace import AgentCaller, fan_out
from daolinet.errors import SystemFailure
from daolinet.model import Host
from daolinet.security import pki
from daolinet.security.identity import Identity
from daolinet.security.tls import TlsFiles, client_context
from daolinet.testing.uvicorn_server import serving

PROBE = {"in_port": 7, "dl_src": "02:00:00:00:00:01", "dl_dst": "02:00:00:00:00:fe",
         "nw_src": "10.1.0.10", "nw_dst": "10.1.0.20", "protocol": "tcp", "tp_src": 40000, "tp_dst": 443}


# -- validation: typed fields only, the flow text is ours ----------------------------------------

def test_probe_text_from_validated_fields() -> None:
    assert probe_text(ProbeIn(**PROBE)) == ("tcp,in_port=7,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:fe,"
                                            "nw_src=10.1.0.10,nw_dst=10.1.0.20,nw_ttl=64,tp_src=40000,tp_dst=443")
    icmp = ProbeIn(**{**PROBE, "protocol": "icmp"})
    assert probe_text(icmp).startswith("icmp,") and "tp_" not in probe_text(icmp)


@pytest.mark.parametrize("field, value", [
    ("dl_src", "02:00:00:00:00:01,actions=drop"), ("nw_dst", "10.1.0.20; rm -rf /"), ("in_port", 0),
    ("in_port", "7,in_port=8"), ("protocol", "arp"), ("tp_dst", 70000), ("nw_ttl", 0), ("extra", "x"),
])
def test_probe_refuses_anything_but_its_typed_fields(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        ProbeIn(**{**PROBE, field: value})


def test_verdict_reads_datapath_actions() -> None:
    assert verdict_of("Final flow: unchanged\nDatapath actions: drop\n") == "drop"
    to_ctrl = verdict_of("Datapath actions: userspace(pid=0,controller(reason=1))")
    assert to_ctrl.startswith("to the controller")
    forwarded = verdict_of("Datapath actions: set(ipv4(src=198.18.1.5)),2")
    assert forwarded == "forwarded (set(ipv4(src=198.18.1.5)),2)"
    assert verdict_of("no such line").startswith("unknown")


# -- the tools: an argument list, in the OVS run dir ---------------------------------------------

@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ovs-appctl and ovs-ofctl that record their argv and OVS_RUNDIR, on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, answer in (("ovs-appctl", "Final flow: unchanged\\nDatapath actions: drop"),
                         ("ovs-ofctl", "OFPST_FLOW reply (OF1.3) (xid=0x2):\\n cookie=0xd1, table=5, "
                                       "actions=output:2")):
        script = bin_dir / tool
        script.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                          f"open({str(tmp_path / tool)!r} + '.json', 'w').write(json.dumps("
                          "[sys.argv[1:], os.environ.get('OVS_RUNDIR')]))\n"
                          f"print('{answer}')\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_tracer_runs_ovs_tools_with_an_argument_list(fake_tools: Path) -> None:
    rundir = fake_tools / "ovs"
    rundir.mkdir()
    (rundir / "ovs-vswitchd.ctl").touch()
    tracer = BridgeTracer.of(f"unix:{rundir}/db.sock", "daolinet")
    got = asyncio.run(tracer.ofproto_trace(ProbeIn(**PROBE)))
    assert got["verdict"] == "drop" and got["probe"] == probe_text(ProbeIn(**PROBE))
    argv, env_rundir = json.loads((fake_tools / "ovs-appctl.json").read_text())
    assert argv == ["-t", f"{rundir}/ovs-vswitchd.ctl", "ofproto/trace", "daolinet", got["probe"]]
    assert env_rundir == str(rundir)
    flows = asyncio.run(tracer.dump_flows(0xD1 << 56 | 0x07 << 48 | 5))  # generation 7: any matches
    assert flows == ["cookie=0xd1, table=5, actions=output:2"]
    argv, _ = json.loads((fake_tools / "ovs-ofctl.json").read_text())
    assert argv[-2:] == [f"unix:{rundir}/daolinet.mgmt", "cookie=0xd100000000000005/0xff00ffffffffffff"]


def test_tracer_without_a_fixed_control_socket_asks_by_name(tmp_path: Path) -> None:
    assert BridgeTracer.of(f"unix:{tmp_path}/db.sock", "br").appctl_target() == "ovs-vswitchd"
    assert BridgeTracer.of("tcp:10.0.0.1:6640", "br").rundir == "/var/run/openvswitch"


def test_a_failing_tool_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracer = BridgeTracer("daolinet", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemFailure, match="cannot run ovs-appctl"):
        asyncio.run(tracer.ofproto_trace(ProbeIn(**PROBE)))


# -- the agent's routes: a controller's or an operator's certificate only ------------------------

class FakeTracer:
    async def ofproto_trace(self, probe: ProbeIn) -> dict[str, Any]:
        return {"probe": probe_text(probe), "verdict": "drop", "output": "Datapath actions: drop"}

    async def dump_flows(self, cookie: int) -> list[str]:
        return [f"cookie={cookie:#x}"]


class client_as:
    """The agent's trace app, called by a peer whose verified certificate names `identity`."""

    def __init__(self, identity: Identity | None) -> None:
        app = create_app(FakeTracer(), "h1")

        async def with_identity(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":  # what PeerIdentityProtocol gives each TLS connection
                scope["state"] = {"peer_identity": identity}
            await app(scope, receive, send)

        self.app = with_identity

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
                return await client.request(method, path, **kw)
        return asyncio.run(go())

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)


@pytest.mark.parametrize("identity", [Identity("controller", "c1"), Identity("user", "admin")])
def test_controller_or_operator_may_trace(identity: Identity) -> None:
    client = client_as(identity)
    got = client.post("/trace/ofproto", json=PROBE)
    assert got.status_code == 200 and got.json()["verdict"] == "drop" and got.json()["host"] == "h1"
    assert client.get("/trace/flows", params={"cookie": 5}).json()["flows"] == ["cookie=0x5"]


def test_hosts_and_anonymous_callers_may_not() -> None:
    refused = client_as(Identity("host", "h2")).post("/trace/ofproto", json=PROBE)
    assert refused.status_code == 403 and "h2 (host) may not trace" in refused.json()["error"]
    assert client_as(None).get("/trace/flows", params={"cookie": 5}).status_code == 401


def test_bad_probe_is_a_one_line_422() -> None:
    client = client_as(Identity("controller", "c1"))
    got = client.post("/trace/ofproto", json={**PROBE, "nw_src": "x; ls"})
    assert got.status_code == 422 and "nw_src" in got.json()["error"]
    assert client.get("/trace/flows", params={"cookie": -1}).status_code == 422


# -- the controller's fan-out ----------------------------------------------------------------------

def host(name: str) -> Host:
    return Host(name=name, dpid=1, underlay_ip="198.18.0.1", underlay_mac="02:00:00:00:00:01",
                pip_pool="198.18.1.0/24")


def test_fan_out_asks_every_host_in_parallel_and_reports_the_silent_one() -> None:
    in_flight: set[str] = set()
    both = asyncio.Event()

    async def call(h: Host, method: str, path: str, body: dict[str, Any] | None) -> Any:
        in_flight.add(h.name)
        if len(in_flight) == 2:
            both.set()
        await both.wait()  # answers only once both hosts were asked: they are asked at once
        if h.name == "h2":
            await asyncio.Event().wait()  # h2's agent never answers
        if method == "POST":
            return {"probe": "p", "verdict": "drop", "output": "Datapath actions: drop"}
        return {"flows": ["f1"]}

    got = asyncio.run(fan_out([(host("h1"), PROBE), (host("h2"), PROBE)], 5, call, timeout=0.5))
    assert got["h1"] == {"source": "agent", "verdict": "drop", "probe": "p",
                         "output": "Datapath actions: drop", "flows": ["f1"], "error": None}
    assert got["h2"]["verdict"] is None
    assert got["h2"]["error"] == "the agent of h2 did not answer within 0.5 s"


def test_fan_out_reports_an_agents_error_in_its_entry() -> None:
    async def call(h: Host, method: str, path: str, body: dict[str, Any] | None) -> Any:
        raise SystemFailure(f"the agent of {h.name} at https://198.18.0.1:8651 is unreachable: refused")

    got = asyncio.run(fan_out([(host("h1"), PROBE)], 5, call))
    assert got["h1"]["error"].endswith("is unreachable: refused") and got["h1"]["flows"] == []


# -- over real TLS: the controller's caller and the agent's listener -------------------------------

@pytest.fixture
def ca(tmp_path: Path) -> str:
    d = str(tmp_path / "pki")
    pki.init_ca(d)
    for role, name in (("host", "h1"), ("host", "h2"), ("controller", "c1")):
        pki.issue(d, role, name)  # type: ignore[arg-type]
    return d


@contextlib.asynccontextmanager
async def agent_listener(ca: str) -> AsyncIterator[int]:
    """h1's trace listener as `daolinet agent` serves it (server_config), on 127.0.0.1."""
    async with serving(server_config(create_app(FakeTracer(), "h1"), TlsFiles.of(ca, "host", "h1"))) as port:
        yield port


def at_localhost(name: str) -> Host:
    return Host(name=name, dpid=1, underlay_ip="127.0.0.1", underlay_mac="02:00:00:00:00:01",
                pip_pool="198.18.1.0/24")


async def test_controller_certificate_reaches_the_agent_over_mutual_tls(ca: str) -> None:
    async with agent_listener(ca) as port:
        caller = AgentCaller(TlsFiles.of(ca, "controller", "c1"), port=port)
        try:
            got = await fan_out([(at_localhost("h1"), PROBE)], 5, caller)
            assert got["h1"]["error"] is None and got["h1"]["verdict"] == "drop"
            assert got["h1"]["flows"] == ["cookie=0x5"]
            # the agent at that address is h1, not the host asked for: refused, said in its entry
            wrong = await fan_out([(at_localhost("h2"), PROBE)], 5, caller)
            assert "certificate of h1 is not valid for host h2" in wrong["h2"]["error"]
        finally:
            await caller.close()
        host_cert = AgentCaller(TlsFiles.of(ca, "host", "h2"), port=port)  # another host's agent
        try:
            refused = await fan_out([(at_localhost("h1"), PROBE)], 5, host_cert)
            assert "answered 403" in refused["h1"]["error"] and "may not trace" in refused["h1"]["error"]
        finally:
            await host_cert.close()
        no_cert = httpx.AsyncClient(verify=client_context(TlsFiles(pki.ca_pair(ca).cert)), timeout=5)
        async with no_cert:  # trusts the CA, shows no certificate: no handshake
            with pytest.raises(httpx.HTTPError):
                await no_cert.post(f"https://127.0.0.1:{port}/trace/ofproto", json=PROBE)


def test_agent_and_controller_agree_on_the_port() -> None:
    from daolinet.agent import main as agent_main
    from daolinet.controller import agent_trace
    from daolinet.daemon_settings import AgentSettings
    port = AgentSettings.model_fields["trace_port"].default
    assert port == agent_main.AgentConfig.trace_port == AgentCaller(None).port == agent_trace.AGENT_TRACE_PORT
