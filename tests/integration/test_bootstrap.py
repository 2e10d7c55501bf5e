"""A host reaches its controllers on its own (agent/bootstrap.py): after its Open vSwitch
restarts (a reboot: the bridge comes back with its controllers configured and no flow,
and the host reaches no controller through it) the agent bootstraps the bridge, the
controller syncs it, containers talk again, and no bootstrap flow stays behind."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from daolinet.lab import cluster, plan
from daolinet.system import links, procs
from daolinet.testing.labtools import api, flows, ping, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
BOOTSTRAP = "cookie=0xd1ab"
INSTALLED = "bootstrap flows uplink <-> LOCAL in place"


def bootstrap_flows(lab: cluster.Lab, host: str) -> list[str]:
    return [f for f in flows(lab, host) if BOOTSTRAP in f]


def ip_of(lab: cluster.Lab, container: str) -> str:
    ip = lab.container(container).ip
    assert ip is not None
    return ip


def agent_log(lab: cluster.Lab, host: str) -> str:
    with open(os.path.join(lab.host(host).plan.rundir(), "agent.log")) as f:
        return f.read()


def reboot_ovs(lab: cluster.Lab, host: str) -> None:
    """Stop the host's ovsdb-server and ovs-vswitchd by pid and start them again the lab's
    way; then the host's network configuration gives the bridge's new LOCAL interface its
    underlay address and route back (ovs-vswitchd made the interface anew)."""
    h = lab.host(host)
    pids = [procs.read_pidfile(h.ovs.pidfile(d)) for d in ("ovs-vswitchd", "ovsdb-server")]
    procs.stop([p for p in pids if p is not None])
    h.ovs.start()
    if links.address_of(h.netns, plan.BRIDGE) is None:
        links.link_up(h.netns, plan.BRIDGE, address=h.plan.underlay_cidr)
        links.tx_offload_off(h.netns, plan.BRIDGE)
        links.add_route(h.netns, str(plan.UNDERLAY), str(h.plan.gateway))


def reaches_controller(lab: cluster.Lab, host: str) -> bool:
    return ping(lab, host, str(plan.controller_ip(0)), wait=1).returncode == 0


def two_containers(lab: cluster.Lab, subnet: str) -> None:
    api(lab, "POST", "/networks", json={"name": "n", "subnet": subnet})
    lab.add_container("a", host="h1", network="n")
    lab.add_container("b", host="h2", network="n")
    assert ping(lab, "a", ip_of(lab, "b")).returncode == 0


def test_a_rebooted_host_bootstraps_its_bridge_and_its_containers_talk_again(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    two_containers(lab, "10.13.0.0/24")
    lab.stop_agent("h2")
    before = agent_log(lab, "h2").count(INSTALLED)
    reboot_ovs(lab, "h2")
    # The deadlock: controllers configured, no flow, so the host cannot reach them.
    with lab.host("h2").ovsdb() as db:
        assert db.api.get_controller(plan.BRIDGE).execute(check_error=True)
    assert flows(lab, "h2") == []
    assert not reaches_controller(lab, "h2")

    lab.start_agents(["h2"])  # ready (registered), synced, and its bootstrap flows gone
    assert agent_log(lab, "h2").count(INSTALLED) == before + 1
    assert bootstrap_flows(lab, "h2") == []
    assert 2 in api(lab, "GET", "/health")["synced"]
    assert {h["name"]: h["alive"] for h in api(lab, "GET", "/hosts")} == {"h1": True, "h2": True}
    wait_for(lambda: ping(lab, "a", ip_of(lab, "b"), wait=1).returncode == 0, timeout=20,
             what="a reaching b on the rebooted host")
    assert ping(lab, "b", ip_of(lab, "a")).returncode == 0
    assert reaches_controller(lab, "h2")


def test_ovs_restarting_under_a_running_agent_is_bootstrapped_again(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    two_containers(lab, "10.14.0.0/24")
    before = agent_log(lab, "h2").count(INSTALLED)
    reboot_ovs(lab, "h2")  # the agent keeps running
    wait_for(lambda: agent_log(lab, "h2").count(INSTALLED) > before, timeout=20,
             what="h2's agent bootstrapping the new bridge")
    lab.wait_synced([2])
    wait_for(lambda: not bootstrap_flows(lab, "h2"), timeout=20, what="bootstrap flows gone")
    wait_for(lambda: ping(lab, "a", ip_of(lab, "b"), wait=1).returncode == 0, timeout=20,
             what="a reaching b again")


def test_an_agent_restarted_on_a_working_bridge_leaves_no_bootstrap_flow(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    two_containers(lab, "10.15.0.0/24")
    lab.stop_agent("h1")
    before = agent_log(lab, "h1").count(INSTALLED)
    lab.start_agents(["h1"])
    assert agent_log(lab, "h1").count(INSTALLED) == before  # the controller's flows carried it already
    assert bootstrap_flows(lab, "h1") == []
    assert ping(lab, "a", ip_of(lab, "b")).returncode == 0
    lab.add_container("c", host="h1", network="n")
    assert ping(lab, "c", ip_of(lab, "b")).returncode == 0
