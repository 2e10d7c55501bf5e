"""The policy log on the real lab: a denied first packet shows up in `daolinet policy log`
within a second, naming the rule that denied it as `daolinet trace` does; a revocation
is logged too; and two tenants with the same addresses and the same rule names never
see each other's records.

The deny comes from a rule named "lockdown" (`POST /rules` with action deny, above the
group that lets the pair talk); the record's rule is the label trace reports."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from daolinet.lab import cluster
from daolinet.testing.labtools import api, ping, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
TENANTS = ("t1", "t2")


def daolinet(lab: cluster.Lab, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """`daolinet ARGS` as a user runs it (a new process), on this lab (as its admin, or `token`)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAOLINET_")},
           "DAOLINET_LAB": lab.name, "PYTHONPATH": os.pathsep.join(sys.path)}
    if token is not None:
        env["DAOLINET_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "daolinet.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def log_lines(lab: cluster.Lab, *args: str, token: str | None = None) -> list[dict[str, Any]]:
    done = daolinet(lab, "policy", "log", "--json", *args, token=token)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def read_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's lines of stdout, as they come (a reader thread: no buffer hides one)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def tenant_lab(lab_factory: LabFactory) -> cluster.Lab:
    """Per tenant: network web 10.1.0.0/24 (the same in both), group app of it, a client
    on h1 and a server on h2 with the same addresses in both tenants."""
    lab = lab_factory(hosts=2)
    for tenant in TENANTS:
        api(lab, "POST", "/tenants", json={"name": tenant})
        api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": tenant})
        lab.add_container(f"{tenant}c", host="h1", network="web", tenant=tenant, ip="10.1.0.10")
        lab.add_container(f"{tenant}s", host="h2", network="web", tenant=tenant, ip="10.1.0.20")
        api(lab, "POST", "/groups", json={"name": "app", "tenant": tenant, "members": ["network:web"]})
    return lab


def deny_pair(lab: cluster.Lab, tenant: str, a: str, b: str) -> str:
    """Deny a -> b (ICMP) by a rule named lockdown, above the group that joins them.  Its label."""
    rule = api(lab, "POST", "/rules", json={"tenant": tenant, "from": "app", "to": "app", "protocol": "icmp",
                                            "action": "deny", "name": "lockdown", "priority": 500})
    assert rule["name"] == "lockdown" and rule["action"] == "deny"
    return "rule lockdown"


def denied_within(lab: cluster.Lab, tenant: str, src: str, dst: str, deadline: float) -> dict[str, Any]:
    """src pings dst's address (in the background); the API's log holds the denial within
    `deadline` seconds of the ping's start."""
    before = {r["seq"] for r in api(lab, "GET", "/policy/log", params={"tenant": tenant})}
    started = time.monotonic()
    probe = lab.popen(src, ["ping", "-n", "-c", "1", "-W", "1", "10.1.0.20"], stdout=subprocess.DEVNULL)
    try:
        def found() -> dict[str, Any] | None:
            records = api(lab, "GET", "/policy/log", params={"tenant": tenant, "container": src})
            return next((r for r in records if r["seq"] not in before and r["dst"].get("name") == dst), None)

        record = wait_for(found, timeout=deadline, what=f"{src}'s denied ping in the policy log")
        took = time.monotonic() - started
    finally:
        assert probe.wait(timeout=10) != 0  # denied: no reply
    print(f"denial logged {took * 1000:.0f} ms after the ping started")
    return record


def test_a_denied_ping_is_logged_within_a_second_naming_the_rule_trace_names(
        lab_factory: LabFactory) -> None:
    lab = tenant_lab(lab_factory)
    assert ping(lab, "t1c", "10.1.0.20").returncode == 0  # the group allows: a live route
    label = deny_pair(lab, "t1", "t1c", "t1s")
    revoked = log_lines(lab, "--tenant", "t1")
    assert [(r["decision"], r["src"]["name"], r["dst"]["name"], r["rule"]) for r in revoked] == [
        ("revoke", "t1c", "t1s", label)]  # the live route, revoked by the change
    record = denied_within(lab, "t1", "t1c", "t1s", 1.0)
    c, s = lab.container("t1c"), lab.container("t1s")
    assert record["decision"] == "deny" and record["tenant"] == "t1"
    assert record["src"] == {"name": "t1c", "ip": "10.1.0.10", "pip": api(
        lab, "GET", f"/endpoints/{c.eid}")["pip"]}
    assert record["dst"]["name"] == "t1s" and record["dst"]["ip"] == "10.1.0.20" and s.eid
    assert record["proto"] == "icmp" and record["icmp_type"] == 8 and record["rule"] == label

    traced = daolinet(lab, "trace", "t1c", "t1s", "--proto", "icmp", "--tenant", "t1", "--json")
    assert traced.returncode == 0, traced.stderr
    trace = json.loads(traced.stdout)
    assert not trace["allowed"] and trace["rule"] == label and trace["reason"] == record["reason"]
    text = daolinet(lab, "policy", "log", "--container", "t1c", "-t", "t1")
    assert text.returncode == 0 and "deny t1c (10.1.0.10) -> t1s (10.1.0.20) icmp type 8" in text.stdout
    assert label in text.stdout


def test_two_tenants_with_the_same_addresses_and_rule_names_see_only_their_own_records(
        lab_factory: LabFactory) -> None:
    lab = tenant_lab(lab_factory)
    labels = {t: deny_pair(lab, t, f"{t}c", f"{t}s") for t in TENANTS}
    records = {t: denied_within(lab, t, f"{t}c", f"{t}s", 1.0) for t in TENANTS}
    assert records["t1"]["src"]["ip"] == records["t2"]["src"]["ip"] == "10.1.0.10"
    tokens = {t: api(lab, "POST", "/tokens", json={"name": f"{t}-ops", "tenant": t})["token"]
              for t in TENANTS}
    for tenant, other in (("t1", "t2"), ("t2", "t1")):
        own = log_lines(lab, token=tokens[tenant])
        assert own and {r["tenant"] for r in own} == {tenant}
        assert records[tenant]["seq"] in {r["seq"] for r in own}
        assert {r["src"]["pip"] for r in own if r["src"].get("name") == f"{tenant}c"} == {
            records[tenant]["src"]["pip"]}
        assert {r["rule"] for r in own if r["decision"] == "deny"} == {labels[tenant]}
        assert log_lines(lab, "--container", f"{other}c", token=tokens[tenant]) == []
        refused = daolinet(lab, "policy", "log", "-t", other, token=tokens[tenant])
        assert refused.returncode != 0 and f"tenant {other} not found" in refused.stderr
    every = log_lines(lab)  # the admin sees both
    assert {r["tenant"] for r in every} == set(TENANTS)


def test_every_controller_answers_with_every_controllers_records_and_follow_pushes_them(
        lab_factory: LabFactory) -> None:
    """Two controllers (etcd), each master of some switches, each logging what it decides:
    asking either gives both hosts' denials (peers over mutual TLS), and `policy log
    --follow` streams them as they happen."""
    lab = lab_factory(hosts=2, controllers=2, store="etcd")
    api(lab, "POST", "/networks", json={"name": "iso", "subnet": "10.3.0.0/24", "isolated": True})
    lab.add_container("x1", host="h1", network="iso")
    lab.add_container("x2", host="h2", network="iso")
    masters = {}
    for i in (0, 1):
        with lab.api(index=i) as c:
            masters[i] = c.call("GET", "/health")["switches"]
    print(f"switches mastered: {masters}")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAOLINET_")},
           "DAOLINET_LAB": lab.name, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "daolinet.cli.main", "policy", "log", "--follow", "--json"]
    follow = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = read_lines(follow)
    try:
        for src, dst in (("x1", "x2"), ("x2", "x1")):
            assert ping(lab, src, lab.container(dst).ip or "", wait=1).returncode != 0
        seen: set[str] = set()
        deadline = time.monotonic() + 10
        while seen != {"x1", "x2"}:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            record = json.loads(line)
            if record["decision"] == "deny" and record["reason"] == "network iso is isolated":
                seen.add(record["src"]["name"])
    finally:
        follow.kill()
        follow.wait(timeout=10)
        for pipe in (follow.stdout, follow.stderr):
            if pipe is not None:
                pipe.close()
    for i in (0, 1):  # either controller answers with both controllers' records
        with lab.api(index=i) as c:
            records = c.call("GET", "/policy/log", params={"container": "x1"})
        assert {r["src"]["name"] for r in records if r["decision"] == "deny"} == {"x1", "x2"}, i
