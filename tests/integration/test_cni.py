"""`daolinet-cni` on the real lab, driven the way a runtime (cnitool, libcni)
drives a plugin: CNI_* environment variables, the network configuration on
stdin, the result or error on stdout, the exit status; network namespaces
as containers, the host's agent doing the work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from daolinet.lab import cluster, daemons, plan
from daolinet.system import links
from daolinet.testing.dockertools import plugs, ports
from daolinet.testing.labtools import api

pytestmark = pytest.mark.integration
PLUGIN = shutil.which("daolinet-cni") or os.path.join(os.path.dirname(sys.executable), "daolinet-cni")


@pytest.fixture(scope="module")
def clab() -> Iterator[cluster.Lab]:
    """h1 runs the CNI containers; 'peer' on h2 is reached through hot-plug routes."""
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    name = new_lab_name()
    try:
        lab = cluster.Lab.up(name, hosts=2)
        api(lab, "POST", "/networks", json={"name": "cnet", "subnet": "10.20.0.0/24"})
        lab.add_container("peer", host="h2", network="cnet")
        yield lab
    finally:
        cluster.down(name)
        assert lab_leftovers(name) == []


def config(lab: cluster.Lab, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "cnet", "type": "daolinet-cni",
            "agentSocket": daemons.agent_sock(lab.host("h1").plan), **extra}


def cni(command: str, stdin: bytes | dict[str, Any], cid: str = "", netns: str = "", ifname: str = "eth0",
        args: str = "") -> tuple[int, dict[str, Any] | None]:
    """One plugin invocation: (exit status, parsed stdout or None)."""
    env = {"CNI_COMMAND": command, "CNI_PATH": os.path.dirname(PLUGIN), "PATH": os.environ["PATH"]}
    if command not in ("VERSION", "STATUS", "GC"):
        env.update({"CNI_CONTAINERID": cid, "CNI_IFNAME": ifname, "CNI_ARGS": args})
        if netns:
            env["CNI_NETNS"] = netns
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    done = subprocess.run([PLUGIN], input=data, env=env, capture_output=True, timeout=60)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def new_netns(lab: cluster.Lab, name: str) -> str:
    ns = plan.container_netns(lab.name, name)  # under the lab's prefix: its teardown sweeps it
    links.create_netns(ns)
    return f"/run/netns/{ns}"


def ping(netns: str, ip: str) -> bool:
    return subprocess.run(["nsenter", f"--net={netns}", "ping", "-n", "-c", "1", "-W", "2", ip],
                          capture_output=True).returncode == 0


def cni_endpoints(lab: cluster.Lab) -> list[dict[str, Any]]:
    return [e for e in api(lab, "GET", "/endpoints") if e["labels"].get("daolinet.driver") == "cni"]


def test_add_check_del_round_trip_in_a_namespace(clab: cluster.Lab) -> None:
    netns = new_netns(clab, "k1")
    status, result = cni("ADD", config(clab), "ctr-1", netns)
    assert status == 0 and result is not None, result
    assert result["cniVersion"] == "1.1.0"
    host_if, ctr_if = result["interfaces"]
    assert ctr_if["name"] == "eth0" and ctr_if["sandbox"] == netns and host_if["name"].startswith("dlp")
    (ip,) = result["ips"]
    assert ip["interface"] == 1 and ip["gateway"] == "10.20.0.1" and ip["address"].endswith("/24")
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.20.0.1"}]
    address = links.address_of(netns, "eth0")
    assert address is not None and f"{address[0]}/{address[1]}" == ip["address"]
    assert address[2] == ctr_if["mac"]
    assert ping(netns, str(clab.container("peer").ip))  # a hot-plug route to h2

    check = config(clab, prevResult=result)
    assert cni("CHECK", check, "ctr-1", netns) == (0, None)
    assert cni("DEL", config(clab, prevResult=result), "ctr-1", netns) == (0, None)
    assert cni_endpoints(clab) == [] and plugs(clab, "h1") == [] and ports(clab, "h1") == []
    assert links.link_names(netns.rsplit("/", 1)[1]) == ["lo"]
    assert cni("DEL", config(clab), "ctr-1", netns) == (0, None)  # DEL twice is fine
    assert cni("DEL", config(clab), "ctr-1") == (0, None)  # ... also without a namespace
    status, error = cni("CHECK", check, "ctr-1", netns)
    assert status != 0 and error is not None and error["code"] == 101, error


def test_version_status_and_spec_errors(clab: cluster.Lab) -> None:
    status, out = cni("VERSION", {"cniVersion": "1.0.0"})
    assert status == 0 and out == {"cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}
    assert cni("STATUS", config(clab)) == (0, None)
    netns = new_netns(clab, "k2")
    cases: list[tuple[bytes | dict[str, Any], str, int]] = [
        (b"{not json", netns, 6),  # failed to decode content
        (config(clab, version="0.3.1"), netns, 1),  # incompatible CNI version
        (config(clab, bridge="br0"), netns, 2),  # unsupported field
        (config(clab), "", 4),  # ADD without CNI_NETNS: invalid environment
        (config(clab, network="nosuch"), netns, 7),  # invalid network configuration
        (config(clab, agentSocket="/nonexistent/agent.sock"), netns, 11),  # try again later
    ]
    for stdin, ns, code in cases:
        status, error = cni("ADD", stdin, "ctr-2", ns)
        assert status != 0 and error is not None and error["code"] == code, (stdin, error)
        assert set(error) >= {"cniVersion", "code", "msg"}
    status, error = cni("STATUS", config(clab, agentSocket="/nonexistent/agent.sock"))
    assert status != 0 and error is not None and error["code"] == 50
    assert cni_endpoints(clab) == [] and plugs(clab, "h1") == []


def test_spec_1_0_0_requested_address_conflict_and_gc(clab: cluster.Lab) -> None:
    ns_a, ns_b, ns_c = new_netns(clab, "ka"), new_netns(clab, "kb"), new_netns(clab, "kc")
    status, result = cni("ADD", config(clab, "1.0.0"), "ctr-a", ns_a, args="IP=10.20.0.77")
    assert status == 0 and result is not None and result["cniVersion"] == "1.0.0"
    assert result["ips"][0]["address"] == "10.20.0.77/24" and "mtu" not in result["interfaces"][1]
    status, error = cni("ADD", config(clab, "1.0.0"), "ctr-c", ns_c, args="IP=10.20.0.77")
    assert status != 0 and error is not None and error["code"] == 100 and "10.20.0.77" in error["msg"]
    assert links.link_names(ns_c.rsplit("/", 1)[1]) == ["lo"]  # the refused ADD left nothing
    assert cni("ADD", config(clab, "1.0.0"), "ctr-b", ns_b)[0] == 0
    assert len(cni_endpoints(clab)) == 2

    gc = config(clab, **{"cni.dev/valid-attachments": [{"containerID": "ctr-a", "ifname": "eth0"}]})
    assert cni("GC", gc) == (0, None)
    assert [e["labels"]["cni.containerID"] for e in cni_endpoints(clab)] == ["ctr-a"]
    assert links.link_names(ns_b.rsplit("/", 1)[1]) == ["lo"]
    assert cni("DEL", config(clab, "1.0.0"), "ctr-a", ns_a) == (0, None)
    assert cni_endpoints(clab) == [] and plugs(clab, "h1") == [] and ports(clab, "h1") == []


def test_install_cni_output_drives_the_plugin(clab: cluster.Lab, tmp_path: Any) -> None:
    """What a runtime sees after `daolinet install-cni`: the launcher in its bin dir, run with the
    conflist's plugin config (as libcni flattens it), attaches a namespace through h1's agent."""
    from daolinet.cli.main import run as cli

    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    assert cli(["install-cni", f"--bin-dir={bin_dir}", f"--conf-dir={conf_dir}", "--network=cnet",
                f"--agent-socket={daemons.agent_sock(clab.host('h1').plan)}"]) == 0
    conf = json.loads((conf_dir / "10-daolinet-cnet.conflist").read_text())
    (plugin,) = conf["plugins"]
    stdin = json.dumps({**plugin, "name": conf["name"], "cniVersion": conf["cniVersion"]}).encode()
    netns = new_netns(clab, "ki")
    env = {"CNI_COMMAND": "ADD", "CNI_PATH": str(bin_dir), "PATH": os.environ["PATH"],
           "CNI_CONTAINERID": "ctr-i", "CNI_IFNAME": "eth0", "CNI_NETNS": netns}
    launcher = [str(bin_dir / plugin["type"])]
    done = subprocess.run(launcher, input=stdin, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert ping(netns, str(clab.container("peer").ip))
    env["CNI_COMMAND"] = "DEL"
    done = subprocess.run(launcher, input=stdin, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert cni_endpoints(clab) == []
