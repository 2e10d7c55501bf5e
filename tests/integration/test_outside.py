"""Containers and the outside world, on the real lab: SNAT egress."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from daolinet.errors import DaoliError
from daolinet.lab import cluster, plan
from daolinet.testing.labtools import api, flows, ping, route_flows, serving, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
STREAM = [sys.executable, "-m", "daolinet.testing.stream"]
OUTSIDE = str(plan.OUTSIDE_IP)


@pytest.fixture
def outside_lab(lab_factory: LabFactory) -> Iterator[cluster.Lab]:
    lab = lab_factory(hosts=2, racks=2)
    with serving(lab, "outside", [*STREAM, "whoami", "8080"]):
        yield lab


def fetch(lab: cluster.Lab, container: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(container, [*STREAM, "fetch", OUTSIDE, "8080"])


def test_external_network_reaches_the_outside_as_its_host(outside_lab: cluster.Lab) -> None:
    lab = outside_lab
    api(lab, "POST", "/networks", json={"name": "ext", "subnet": "10.7.0.0/24", "external": True})
    api(lab, "POST", "/networks", json={"name": "int", "subnet": "10.8.0.0/24"})
    lab.add_container("e1", host="h1", network="ext")
    lab.add_container("e2", host="h2", network="ext")
    lab.add_container("i1", host="h1", network="int")
    for name, host in (("e1", "h1"), ("e2", "h2")):
        done = fetch(lab, name)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == lab.host(host).underlay_ip  # the server sees the host
    assert ping(lab, "e1", OUTSIDE).returncode == 0
    assert fetch(lab, "i1").returncode != 0  # not external: nothing leaves
    assert ping(lab, "i1", OUTSIDE, wait=1).returncode != 0


def test_same_addresses_in_two_tenants_both_get_their_own_replies(outside_lab: cluster.Lab) -> None:
    lab = outside_lab
    for t in ("red", "blue"):
        api(lab, "POST", "/tenants", json={"name": t})
        api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": t,
                                            "external": True})
        lab.add_container(f"{t}1", host="h1", network="web", tenant=t, ip="10.1.0.10")
    for t in ("red", "blue", "red"):
        done = fetch(lab, f"{t}1")
        assert done.returncode == 0 and done.stdout.strip() == lab.host("h1").underlay_ip


def test_a_container_moves_under_a_live_tcp_stream(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=3)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
    lab.add_container("a", host="h1", network="n")
    b = lab.add_container("b", host="h2", network="n")
    recv = lab.popen("b", [*STREAM, "recv", "5001", "--idle", "2"], stdout=subprocess.PIPE)
    assert recv.stdout is not None and "listening" in recv.stdout.readline()
    send = lab.popen("a", [*STREAM, "send", str(b.ip), "5001", "--seconds", "4"])
    try:
        wait_for(lambda: route_flows(lab, "h2"), what="the stream's route")
        started = time.monotonic()  # the receiver's clock too (CLOCK_MONOTONIC: every namespace)
        moved = lab.move_container("b", "h3")
        done = time.monotonic()
        assert moved.pip != b.pip and moved.host == "h3"
        out, _ = recv.communicate(timeout=30)
        assert send.wait(timeout=30) == 0
    finally:
        send.kill()
        recv.kill()
    result = json.loads(out.strip().splitlines()[-1])
    # Silences of 10 ms or more that overlap the move (or begin up to 0.5 s after it returned).
    during = [length for start, length in result["gaps"] if start + length > started and start <= done + 0.5]
    print(f"largest gap in the stream during the move: {max(during, default=0) * 1000:.1f} ms "
          f"(in the whole stream: {result['max_gap'] * 1000:.1f} ms)")
    assert result["bytes"] > 10_000_000
    # Make before break (controller/moves.py): the new path is in before the old one goes, and
    # the gap is the switch-over, 20-40 ms here in most runs (bench/move_gap.py: median ~25 ms,
    # 209 ms before, when every move cost a retransmission timeout).  Target 100 ms, not met
    # reliably yet: about one run in five still waits for TCP's 200 ms minimum timeout (issue 17).
    assert max(during, default=0) < 0.3, result["gaps"]
    assert result["max_gap"] < 0.3, result
    for h in lab.hosts:
        assert not [f for f in flows(lab, h.name) if str(b.pip) in f], f"{h.name} still names {b.pip}"
    assert ping(lab, "a", str(b.ip)).returncode == 0
    assert lab.container("b").host == "h3"


def test_moves_refuse_bad_input_and_change_nothing(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
    c = lab.add_container("a", host="h1", network="n")
    for host, words in (("h1", "already on host h1"), ("h9", "h9")):
        with pytest.raises(DaoliError, match=words):
            api(lab, "POST", f"/endpoints/{c.eid}/move", json={"host": host})
    e = api(lab, "GET", f"/endpoints/{c.eid}")
    assert (e["host"], e["pip"], e["ofport"]) == ("h1", c.pip, c.ofport)


@pytest.mark.parametrize("same_host", [True, False])
def test_a_port_mapping_serves_the_outside_wherever_the_container_runs(
        outside_lab: cluster.Lab, same_host: bool) -> None:
    lab = outside_lab
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
    lab.add_container("web", host="h1" if same_host else "h2", network="n")
    with serving(lab, "web", [*STREAM, "whoami", "80"]):
        h1 = lab.host("h1").underlay_ip
        api(lab, "POST", "/portmaps", json={"name": "http", "container": "web", "rule": "8080:80/tcp",
                                            "host": "h1"})
        for _ in range(3):
            done = lab.exec("outside", [*STREAM, "fetch", h1, "8080"])
            assert done.returncode == 0, done.stderr
            # On its own host the container sees the real client; elsewhere, the mapping's host.
            assert done.stdout.strip() == (OUTSIDE if same_host else h1)
        api(lab, "DELETE", "/portmaps/default/http")
        assert lab.exec("outside", [*STREAM, "fetch", h1, "8080", "--timeout", "1"]).returncode != 0


def test_port_mappings_refuse_bad_input_and_change_nothing(outside_lab: cluster.Lab) -> None:
    lab = outside_lab
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
    lab.add_container("web", host="h1", network="n")
    api(lab, "POST", "/portmaps", json={"name": "http", "container": "web", "rule": "8080:80"})
    for body, words in (
        ({"name": "x", "container": "web", "rule": "70000:80"}, "host port"),
        ({"name": "x", "container": "web", "rule": "80:0/tcp"}, "container port"),
        ({"name": "x", "container": "web", "rule": "80"}, "HOSTPORT:CONTAINERPORT"),
        ({"name": "x", "container": "nosuch", "rule": "81:80"}, "nosuch"),
        ({"name": "x", "container": "web", "rule": "8080:81"}, "already mapped"),
        ({"name": "x", "container": "web", "rule": "82:80", "host": "h9"}, "h9"),
    ):
        with pytest.raises(DaoliError, match=words):
            api(lab, "POST", "/portmaps", json=body)
    assert [m["name"] for m in api(lab, "GET", "/portmaps")] == ["http"]


def test_an_external_network_limited_to_one_address_and_port(outside_lab: cluster.Lab) -> None:
    lab = outside_lab
    with serving(lab, "outside", [*STREAM, "whoami", "80"]):
        api(lab, "POST", "/networks", json={"name": "ext", "subnet": "10.7.0.0/24", "external": True})
        lab.add_container("e1", host="h1", network="ext")
        router = str(plan.OUTSIDE_GW)  # another address of the block, answering pings
        assert ping(lab, "e1", router).returncode == 0  # reachable before the rule
        api(lab, "POST", "/groups", json={"name": "egress", "members": ["network:ext"]})
        api(lab, "POST", "/rules", json={"from": "egress", "to": f"cidr:{OUTSIDE}/32", "protocol": "tcp",
                                         "ports": "80", "name": "api-only"})
        done = lab.exec("e1", [*STREAM, "fetch", OUTSIDE, "80"])
        assert done.returncode == 0 and done.stdout.strip() == lab.host("h1").underlay_ip, done.stderr
        assert lab.exec("e1", [*STREAM, "fetch", OUTSIDE, "8080", "--timeout", "1"]).returncode != 0
        assert ping(lab, "e1", OUTSIDE, wait=1).returncode != 0
        assert ping(lab, "e1", router, wait=1).returncode != 0
        api(lab, "DELETE", "/rules/default/api-only")
        assert fetch(lab, "e1").returncode == 0  # the rest of the outside again, at once


def test_who_outside_may_use_a_port_mapping(outside_lab: cluster.Lab) -> None:
    lab = outside_lab
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.5.0.0/24"})
    lab.add_container("web", host="h2", network="n")
    with serving(lab, "web", [*STREAM, "whoami", "80"]):
        h1 = lab.host("h1").underlay_ip
        api(lab, "POST", "/portmaps", json={"name": "http", "container": "web", "rule": "8080:80/tcp",
                                            "host": "h1"})
        outside_fetch = [*STREAM, "fetch", h1, "8080", "--timeout", "1"]
        assert lab.exec("outside", outside_fetch).returncode == 0
        api(lab, "POST", "/groups", json={"name": "web", "members": ["container:web"]})
        api(lab, "POST", "/rules", json={"from": "cidr:198.19.0.0/16", "to": "web", "protocol": "tcp",
                                         "ports": "80", "name": "office"})
        assert lab.exec("outside", outside_fetch).returncode == 0  # in the allowed block
        api(lab, "POST", "/rules", json={"from": f"cidr:{OUTSIDE}/32", "to": "web", "protocol": "tcp",
                                         "ports": "80", "action": "deny", "priority": 200, "name": "one"})
        assert lab.exec("outside", outside_fetch).returncode != 0  # the deny comes first
        api(lab, "DELETE", "/rules/default/one")
        api(lab, "DELETE", "/rules/default/office")
        api(lab, "POST", "/rules", json={"from": "cidr:203.0.113.0/24", "to": "web", "protocol": "tcp",
                                         "ports": "80", "name": "elsewhere"})
        assert lab.exec("outside", outside_fetch).returncode != 0  # an allow elsewhere shuts the rest out
