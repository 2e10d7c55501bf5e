"""Connection by business relationship, on the real lab: groups, pair rules,
L4 rules, and revocation that cuts live traffic at once."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from daolinet.lab import cluster
from daolinet.pipeline import route_cookie
from daolinet.testing.labtools import (
    api,
    connects,
    cut_transfer,
    flows,
    listeners,
    ping,
    route_flows,
    wait_for,
)

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
STREAM = [sys.executable, "-m", "daolinet.testing.stream"]


@pytest.fixture
def two_nets(lab_factory: LabFactory) -> cluster.Lab:
    """h1: a (net1), c (net1); h2: b (net2), d (net1)."""
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
    api(lab, "POST", "/networks", json={"name": "net2", "subnet": "10.2.0.0/24"})
    for name, host, net in (("a", "h1", "net1"), ("b", "h2", "net2"), ("c", "h1", "net1"),
                            ("d", "h2", "net1")):
        lab.add_container(name, host=host, network=net)
    return lab


def ip(lab: cluster.Lab, name: str) -> str:
    value = lab.container(name).ip
    assert value is not None
    return value


def pair_flows(lab: cluster.Lab, x: str, y: str) -> list[str]:
    ex, ey = lab.container(x).eid, lab.container(y).eid
    assert ex is not None and ey is not None
    cookie = f"cookie={route_cookie(ex, ey).value:#x}"
    return [f for h in lab.hosts for f in route_flows(lab, h.name) if cookie in f]


def drop_flows(lab: cluster.Lab) -> dict[str, list[str]]:
    """Each host's short-lived drop flows (cookie kind 0xd2), one dump per host."""
    return {h.name: [f for f in flows(lab, h.name) if "cookie=0xd2" in f] for h in lab.hosts}


def route_packets(lab: cluster.Lab, x: str, y: str) -> int:
    routes = api(lab, "GET", "/routes", params={"container": x, "stats": "true"})
    return sum(r.get("packets", 0) for r in routes if y in r["names"])


@pytest.fixture
def listener(two_nets: cluster.Lab) -> Iterator[Callable[[str, list[int]], None]]:
    with listeners(two_nets) as start:
        yield start


def test_group_grants_and_removal_cuts_an_ongoing_transfer_at_once(two_nets: cluster.Lab) -> None:
    lab = two_nets
    assert ping(lab, "a", ip(lab, "b"), wait=1).returncode != 0  # net1 and net2 share no group
    api(lab, "POST", "/groups", json={"name": "app", "members": ["network:net1", "network:net2"]})
    assert ping(lab, "a", ip(lab, "b")).returncode == 0  # granted on the next packet

    def under_way() -> None:
        wait_for(lambda: len(pair_flows(lab, "a", "b")) == 4, what="the transfer's route")
        wait_for(lambda: route_packets(lab, "a", "b") > 500, what="the transfer under way")

    got, stopped_after = cut_transfer(
        lab, "a", "b", ip(lab, "b"), 5001, under_way,
        lambda: api(lab, "DELETE", "/groups/default/app/members", params={"member": "network:net2"}))
    assert got > 1_000_000
    assert stopped_after < 0.1, f"traffic went on {stopped_after:.3f}s after revocation"
    assert pair_flows(lab, "a", "b") == []
    assert ping(lab, "a", ip(lab, "b"), wait=1).returncode != 0


def test_disconnect_stops_one_pair_and_clear_restores_the_default(two_nets: cluster.Lab) -> None:
    lab = two_nets
    assert ping(lab, "a", ip(lab, "d")).returncode == 0 and ping(lab, "a", ip(lab, "c")).returncode == 0
    api(lab, "POST", "/policy/disconnect", json={"a": "a", "b": "d"})
    assert pair_flows(lab, "a", "d") == []  # revoked, not left to idle out
    assert ping(lab, "a", ip(lab, "d"), wait=1).returncode != 0
    assert ping(lab, "d", ip(lab, "a"), wait=1).returncode != 0
    assert ping(lab, "a", ip(lab, "c")).returncode == 0  # other pairs unaffected
    assert ping(lab, "c", ip(lab, "d")).returncode == 0
    api(lab, "DELETE", "/policy", params={"tenant": "default", "a": "a", "b": "d"})
    assert ping(lab, "a", ip(lab, "d")).returncode == 0


def test_a_policy_call_returns_after_the_switches_deleted_what_it_changed(two_nets: cluster.Lab) -> None:
    """The API answers once every switch confirmed the deletions (a barrier): one dump right
    after the call, no polling, finds the revoked route gone and the lifted drop flows gone."""
    lab = two_nets
    assert ping(lab, "a", ip(lab, "d")).returncode == 0
    assert len(pair_flows(lab, "a", "d")) == 4  # both directions, on h1 and h2
    api(lab, "POST", "/policy/disconnect", json={"a": "a", "b": "d"})
    assert pair_flows(lab, "a", "d") == []
    assert ping(lab, "a", ip(lab, "d"), wait=0.5).returncode != 0  # denied: a drop flow on h1
    assert ping(lab, "d", ip(lab, "a"), wait=0.5).returncode != 0  # and on h2
    held = drop_flows(lab)
    assert held["h1"] and held["h2"], held  # (hard timeout 3 s: still there)
    api(lab, "DELETE", "/policy", params={"tenant": "default", "a": "a", "b": "d"})
    assert drop_flows(lab) == {"h1": [], "h2": []}
    assert ping(lab, "a", ip(lab, "d"), count=1).returncode == 0  # the very first packet passes


def test_connect_overrides_network_boundaries(two_nets: cluster.Lab) -> None:
    lab = two_nets
    assert ping(lab, "c", ip(lab, "b"), wait=1).returncode != 0
    api(lab, "POST", "/policy/connect", json={"a": "c", "b": "b"})
    assert ping(lab, "c", ip(lab, "b")).returncode == 0
    assert ping(lab, "a", ip(lab, "b"), wait=1).returncode != 0  # only that pair


def test_l4_rule_allows_only_its_port(two_nets: cluster.Lab,
                                      listener: Callable[[str, list[int]], None]) -> None:
    lab = two_nets
    api(lab, "POST", "/groups", json={"name": "front", "members": ["container:a"]})
    api(lab, "POST", "/groups", json={"name": "back", "members": ["container:b"]})
    api(lab, "POST", "/rules", json={"from_group": "front", "to_group": "back", "protocol": "tcp",
                                     "ports": "80"})
    listener("b", [80, 81])
    assert connects(lab, "a", ip(lab, "b"), 80)
    assert not connects(lab, "a", ip(lab, "b"), 81)
    assert ping(lab, "a", ip(lab, "b"), wait=1).returncode != 0
    assert not connects(lab, "c", ip(lab, "b"), 80)  # c is not in front
    flows = pair_flows(lab, "a", "b")
    assert flows and all("tp_dst=80" in f or "tp_src=80" in f for f in flows), flows
    assert connects(lab, "a", ip(lab, "b"), 80)  # still works after the denials


def test_removing_an_l4_rule_revokes_its_routes(two_nets: cluster.Lab,
                                                 listener: Callable[[str, list[int]], None]) -> None:
    lab = two_nets
    api(lab, "POST", "/groups", json={"name": "front", "members": ["container:a"]})
    api(lab, "POST", "/groups", json={"name": "back", "members": ["container:b"]})
    rule = api(lab, "POST", "/rules", json={"from_group": "front", "to_group": "back",
                                            "protocol": "tcp", "ports": "80-90"})
    listener("b", [85])
    assert connects(lab, "a", ip(lab, "b"), 85)
    assert pair_flows(lab, "a", "b")
    api(lab, "DELETE", f"/rules/default/{rule['id']}")
    assert pair_flows(lab, "a", "b") == []
    assert not connects(lab, "a", ip(lab, "b"), 85)


def test_a_higher_deny_blocks_a_live_pair_at_once(two_nets: cluster.Lab) -> None:
    lab = two_nets
    api(lab, "POST", "/groups", json={"name": "front", "members": ["container:a"]})
    api(lab, "POST", "/groups", json={"name": "back", "members": ["container:b"]})
    api(lab, "POST", "/rules", json={"from": "front", "to": "back", "name": "all"})  # any protocol
    assert ping(lab, "a", ip(lab, "b")).returncode == 0
    assert pair_flows(lab, "a", "b")
    api(lab, "POST", "/rules", json={"from": "front", "to": "back", "action": "deny", "priority": 50})
    assert pair_flows(lab, "a", "b") and ping(lab, "a", ip(lab, "b"), count=1).returncode == 0  # below
    api(lab, "POST", "/rules", json={"from": "front", "to": "back", "action": "deny", "priority": 200,
                                     "name": "stop"})
    assert pair_flows(lab, "a", "b") == []  # gone by the time the call returned
    assert ping(lab, "a", ip(lab, "b"), wait=0.5).returncode != 0
    traced = api(lab, "POST", "/trace", json={"src": "a", "dst": "b"})
    assert not traced["allowed"] and "rule stop" in traced["reason"]
    ordered = api(lab, "GET", "/rules", params={"tenant": "default"})
    assert [(r["order"], r["name"], r["action"]) for r in ordered] == [
        (1, "stop", "deny"), (2, "all", "allow"), (3, "", "deny")]
    api(lab, "DELETE", "/rules/default/stop")
    assert ping(lab, "a", ip(lab, "b"), count=1).returncode == 0


def test_trace_names_the_group_and_the_rule(two_nets: cluster.Lab) -> None:
    lab = two_nets
    denied = api(lab, "POST", "/trace", json={"src": "a", "dst": "b"})
    assert not denied["allowed"] and "net1" in denied["reason"] and "net2" in denied["reason"]
    api(lab, "POST", "/groups", json={"name": "app", "members": ["network:net1", "network:net2"]})
    allowed = api(lab, "POST", "/trace", json={"src": "a", "dst": "b"})
    assert allowed["allowed"] and "group app" in allowed["reason"]
    assert set(allowed["flows"]) == {"h1", "h2"} and all(len(f) == 2 for f in allowed["flows"].values())
