"""`daolinet trace` on the real lab shows both hosts' own verdicts, fetched by the
controller from the hosts' agents (ofproto/trace and the route's flows over mutual
TLS), never by running ovs-appctl from the CLI: the CLI runs here with a PATH
holding no program at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daolinet.lab import cluster
from daolinet.testing.labtools import api, ping

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]


def daolinet(lab: cluster.Lab, empty: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`daolinet ARGS` as a user runs it, on this lab, with no ovs-appctl (nor anything) on PATH."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAOLINET_")},
           "DAOLINET_LAB": lab.name, "PYTHONPATH": os.pathsep.join(sys.path), "PATH": str(empty)}
    return subprocess.run([sys.executable, "-m", "daolinet.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def traced(lab: cluster.Lab, empty: Path, *args: str) -> dict[str, Any]:
    done = daolinet(lab, empty, "trace", *args, "--json")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_trace_shows_both_hosts_verdicts_through_their_agents(lab_factory: LabFactory,
                                                              tmp_path: Path) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24"})
    api(lab, "POST", "/groups", json={"name": "app", "members": ["network:web"]})
    lab.add_container("a", host="h1", network="web", ip="10.1.0.10")
    lab.add_container("b", host="h2", network="web", ip="10.1.0.20")
    empty = tmp_path / "bin"
    empty.mkdir()

    assert ping(lab, "a", "10.1.0.20").returncode == 0  # a live route, plugged on both hosts
    live = traced(lab, empty, "a", "b")
    assert live["allowed"] and set(live["hosts"]) == {"h1", "h2"}
    for host in ("h1", "h2"):
        got = live["hosts"][host]
        assert got["source"] == "agent" and got["error"] is None, got
        assert "Datapath actions:" in got["output"] and got["verdict"].startswith("forwarded"), got
        assert got["flows"] and all("cookie=" in flow for flow in got["flows"]), got  # the route's flows
    assert live["hosts"]["h1"]["probe"].startswith("icmp,in_port=") and "nw_dst=10.1.0.20" in live[
        "hosts"]["h1"]["probe"]
    b_pip = api(lab, "GET", f"/endpoints/{lab.container('b').eid}")["pip"]
    assert f"nw_dst={b_pip}" in live["hosts"]["h2"]["probe"]  # on h2 the packet carries PIPs

    text = daolinet(lab, empty, "trace", "a", "b")
    assert text.returncode == 0, text.stderr
    print(text.stdout)
    assert "on the hosts (ofproto/trace by each host's agent):" in text.stdout
    assert "host h1: forwarded" in text.stdout and "host h2: forwarded" in text.stdout

    # denied: a's packet goes no further than h1's bridge (dropped, or to the controller that drops it)
    api(lab, "POST", "/rules", json={"from": "app", "to": "app", "protocol": "icmp", "action": "deny",
                                     "name": "lockdown", "priority": 500})
    denied = traced(lab, empty, "a", "b", "--proto", "icmp")
    assert not denied["allowed"] and denied["rule"] == "rule lockdown"
    h1 = denied["hosts"]["h1"]
    assert h1["error"] is None and not h1["verdict"].startswith("forwarded") and h1["flows"] == [], h1
