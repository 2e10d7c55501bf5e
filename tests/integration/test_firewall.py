"""The stateful firewall on the real lab (issue 15's acceptance): with "front -> back tcp/80"
front connects to back:80, back can open nothing towards front - no TCP from its port 80 (no
segment reaches front), no ICMP - and removing the rule stops an ongoing transfer at once and
leaves no conntrack entry of it on either host."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from daolinet.lab import cluster
from daolinet.pipeline import route_cookie
from daolinet.testing.labtools import api, connects, cut_transfer, listeners, ping, route_flows, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
STREAM = [sys.executable, "-m", "daolinet.testing.stream"]
# back opens a connection from its port 80 (as a server "answering" would), and says whether it got one
OPEN_FROM_80 = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 80))
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print("failed:", e); sys.exit(1)
print("connected")
"""


@pytest.fixture
def firewall(lab_factory: LabFactory) -> cluster.Lab:
    """front on h1 (net1), back on h2 (net2: nothing but a rule joins them); groups front and back."""
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
    api(lab, "POST", "/networks", json={"name": "net2", "subnet": "10.2.0.0/24"})
    lab.add_container("front", host="h1", network="net1")
    lab.add_container("back", host="h2", network="net2")
    api(lab, "POST", "/groups", json={"name": "front", "members": ["container:front"]})
    api(lab, "POST", "/groups", json={"name": "back", "members": ["container:back"]})
    return lab


def web_rule(lab: cluster.Lab) -> dict[str, object]:
    rule: dict[str, object] = api(lab, "POST", "/rules", json={"from_group": "front", "to_group": "back",
                                                               "protocol": "tcp", "ports": "80"})
    return rule


def addr(lab: cluster.Lab, name: str, kind: str = "ip") -> str:
    value = getattr(lab.container(name), kind)
    assert value is not None
    return str(value)


@pytest.fixture
def listener(firewall: cluster.Lab) -> Iterator[Callable[[str, list[int]], None]]:
    with listeners(firewall) as start:
        yield start


@contextmanager
def captured(lab: cluster.Lab, name: str, bpf: str) -> Iterator[list[str]]:
    """The packets matching `bpf` that reach the container's eth0 meanwhile (tcpdump there)."""
    dump = lab.popen(name, ["tcpdump", "-i", "eth0", "-n", "-l", "-p", bpf],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert dump.stderr is not None
    assert any("listening on" in dump.stderr.readline() for _ in range(3)), "tcpdump did not start"
    got: list[str] = []
    try:
        yield got
    finally:
        dump.send_signal(signal.SIGINT)
        out, _ = dump.communicate(timeout=10)
        got.extend(line for line in out.splitlines() if line.strip())


def conntrack(lab: cluster.Lab, host: str, *addresses: str) -> list[str]:
    """The host's datapath conntrack entries naming all of `addresses`."""
    out = lab.host(host).ovs.appctl("ovs-vswitchd", "dpctl/dump-conntrack")
    return [line for line in out.splitlines() if all(f"={a}," in line for a in addresses)]


def pair_flows(lab: cluster.Lab, x: str, y: str) -> list[str]:
    ex, ey = lab.container(x).eid, lab.container(y).eid
    assert ex is not None and ey is not None
    cookie = f"cookie={route_cookie(ex, ey).value:#x}"
    return [f for h in lab.hosts for f in route_flows(lab, h.name) if cookie in f]


def route_packets(lab: cluster.Lab, x: str, y: str) -> int:
    routes = api(lab, "GET", "/routes", params={"container": x, "stats": "true"})
    return sum(r.get("packets", 0) for r in routes if y in r["names"])


def test_only_the_rules_client_opens_connections(firewall: cluster.Lab,
                                                 listener: Callable[[str, list[int]], None]) -> None:
    lab = firewall
    web_rule(lab)
    listener("front", [5555])
    web = lab.popen("back", [*STREAM, "listen", "80"], stdout=subprocess.PIPE)
    try:
        assert web.stdout is not None and "listening" in web.stdout.readline()
        assert connects(lab, "front", addr(lab, "back"), 80)
    finally:
        web.kill()  # (port 80 free again: back opens connections from it below)
        web.wait()
    # the route is stateful on front's host only: 3 flows there (one in table 21), 2 on back's
    flows = pair_flows(lab, "front", "back")
    assert len(flows) == 5 and sum(" table=21," in f for f in flows) == 1, flows
    assert conntrack(lab, "h1", addr(lab, "front", "pip"), addr(lab, "back", "pip"))
    assert conntrack(lab, "h2", addr(lab, "front", "pip"), addr(lab, "back", "pip")) == []
    with captured(lab, "front", f"src host {addr(lab, 'back')}") as reached:
        for port in (5555, 5556, 40000):  # a listening port, a closed one, a typical client port
            tried = lab.exec("back", [sys.executable, "-c", OPEN_FROM_80, addr(lab, "front"), str(port), "2"])
            assert tried.stdout.startswith("failed: timed out"), (port, tried.stdout, tried.stderr)
        assert ping(lab, "back", addr(lab, "front"), wait=1).returncode != 0
    assert reached == []  # not one SYN (nor echo request) reached front
    listener("back", [80])
    assert connects(lab, "front", addr(lab, "back"), 80)  # the client still may


def test_removing_the_rule_stops_a_transfer_and_flushes_its_connections(firewall: cluster.Lab) -> None:
    lab = firewall
    rule = web_rule(lab)
    pips = (addr(lab, "front", "pip"), addr(lab, "back", "pip"))

    def under_way() -> None:
        wait_for(lambda: len(pair_flows(lab, "front", "back")) == 5, what="the transfer's route")
        wait_for(lambda: conntrack(lab, "h1", *pips), what="the transfer's connection tracked")
        wait_for(lambda: route_packets(lab, "front", "back") > 500, what="the transfer under way")

    got, stopped_after = cut_transfer(lab, "front", "back", addr(lab, "back"), 80, under_way,
                                      lambda: api(lab, "DELETE", f"/rules/default/{rule['id']}"))
    assert got > 1_000_000
    assert stopped_after < 0.1, f"traffic went on {stopped_after:.3f}s after revocation"
    assert pair_flows(lab, "front", "back") == []

    def left() -> list[str]:
        return conntrack(lab, "h1", *pips) + conntrack(lab, "h2", *pips)

    try:
        wait_for(lambda: not left(), timeout=2, what="no conntrack entry of the route left on either host")
    except AssertionError as e:
        raise AssertionError(f"{e}: {left()}") from None
    assert not connects(lab, "front", addr(lab, "back"), 80)


def test_a_restarted_controller_adopts_the_stateful_route_and_still_revokes_it(firewall: cluster.Lab) -> None:
    lab = firewall
    rule = web_rule(lab)
    pips = (addr(lab, "front", "pip"), addr(lab, "back", "pip"))
    web = lab.popen("back", [*STREAM, "listen", "80"], stdout=subprocess.PIPE)
    try:
        assert web.stdout is not None and "listening" in web.stdout.readline()
        assert connects(lab, "front", addr(lab, "back"), 80)
        before = sorted(pair_flows(lab, "front", "back"))
        assert len(before) == 5 and conntrack(lab, "h1", *pips)
        lab.stop_controller(signal.SIGKILL)
        lab.start_controller()
        lab.wait_synced([1, 2])
        routes = [r for r in api(lab, "GET", "/routes") if r["names"] == ["front", "back"]]
        assert [r["scope"] for r in routes] == [[6, 80]] and routes[0]["flows"] == 5, routes
        assert sorted(pair_flows(lab, "front", "back")) == before  # adopted, not deleted
        assert connects(lab, "front", addr(lab, "back"), 80)
        api(lab, "DELETE", f"/rules/default/{rule['id']}")
        assert pair_flows(lab, "front", "back") == []
        wait_for(lambda: not conntrack(lab, "h1", *pips), timeout=2, what="the route's connections flushed")
    finally:
        web.kill()
        web.wait()
