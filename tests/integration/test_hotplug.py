"""Hot-plug routes on the real lab: controller, agents, real OVS, real traffic."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable

import pytest

from daolinet.lab import cluster, plan
from daolinet.pipeline import GATEWAY_MAC, route_cookie
from daolinet.system import links
from daolinet.testing.labtools import (
    api,
    flows,
    listening,
    ping,
    route_flows,
    rx_packets,
    tcp_transfer,
    wait_for,
)

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]


@pytest.fixture(scope="module")
def lab3(request: pytest.FixtureRequest) -> cluster.Lab:
    """One 3-host lab shared by the read-mostly tests of this module."""
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=3)
    request.addfinalizer(lambda: (cluster.down(name), _no_leftovers(lab_leftovers(name))))
    api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
    for c, h in (("a", "h1"), ("b", "h2"), ("c", "h1")):
        lab.add_container(c, host=h, network="net1")
    return lab


def _no_leftovers(left: list[str]) -> None:
    assert left == [], f"lab left {left}"


def ip_of(lab: cluster.Lab, name: str) -> str:
    ip = lab.container(name).ip
    assert ip is not None
    return ip


def test_cross_host_first_packet_arrives_and_tcp_flows(lab3: cluster.Lab) -> None:
    done = ping(lab3, "a", ip_of(lab3, "b"), count=1)  # the very first packet of the pair
    assert done.returncode == 0, done.stdout
    assert "ttl=62" in done.stdout  # two virtual routers on the way
    result = json.loads(tcp_transfer(lab3, "a", "b", ip_of(lab3, "b")).stdout)
    assert result["end"]["sum_received"]["bytes"] > 1_000_000
    # Containers never ARP: one permanent neighbour, the gateway, whatever they talk to.
    for c in ("a", "b"):
        neigh = [n.strip() for n in lab3.exec(c, ["ip", "-4", "neigh"]).stdout.splitlines() if n.strip()]
        assert neigh == [f"10.1.0.1 dev eth0 lladdr {GATEWAY_MAC} PERMANENT"], neigh


def test_same_host_route_is_one_hop(lab3: cluster.Lab) -> None:
    done = ping(lab3, "c", ip_of(lab3, "a"), count=1)
    assert done.returncode == 0 and "ttl=64" in done.stdout, done.stdout
    result = json.loads(tcp_transfer(lab3, "c", "a", ip_of(lab3, "a"), port=5202).stdout)
    assert result["end"]["sum_received"]["bytes"] > 1_000_000


def test_route_flows_on_both_hosts_carry_the_routes_cookie(lab3: cluster.Lab) -> None:
    a, b = lab3.container("a"), lab3.container("b")
    assert a.eid is not None and b.eid is not None
    assert ping(lab3, "a", ip_of(lab3, "b")).returncode == 0
    cookie = f"cookie={route_cookie(a.eid, b.eid).value:#x}"
    s_flows = [f for f in route_flows(lab3, "h1") if cookie in f]
    d_flows = [f for f in route_flows(lab3, "h2") if cookie in f]
    assert len(s_flows) == 2 and len(d_flows) == 2, (s_flows, d_flows)
    egress = next(f for f in s_flows if "table=10" in f)
    assert f"in_port={a.ofport}" in egress and f"nw_src={a.ip},nw_dst={b.ip}" in egress
    assert (f"actions=dec_ttl,set_field:{a.pip}->ip_src,set_field:{b.pip}->ip_dst" in egress), egress
    assert "output:1" in egress and "idle_timeout=30" in egress
    ingress = next(f for f in d_flows if "table=20" in f)
    assert f"nw_src={a.pip},nw_dst={b.pip}" in ingress
    assert f"set_field:{a.ip}->ip_src,set_field:{b.ip}->ip_dst" in ingress
    assert f"set_field:{b.mac}->eth_dst" in ingress and f"output:{b.ofport}" in ingress
    routes = api(lab3, "GET", "/routes")
    assert any(r["names"] == ["a", "b"] and r["flows"] == 4 for r in routes), routes


def test_traceroute_shows_gateway_then_destination_host_then_container(lab3: cluster.Lab) -> None:
    done = lab3.exec("a", ["traceroute", "-n", "-q", "1", "-w", "2", "-m", "5", ip_of(lab3, "b")])
    hops = [line.split()[1] for line in done.stdout.splitlines()[1:]]
    assert hops == ["10.1.0.1", lab3.host("h2").underlay_ip, ip_of(lab3, "b")], done.stdout


def test_ping_to_the_gateway_is_answered(lab3: cluster.Lab) -> None:
    assert ping(lab3, "b", "10.1.0.1").returncode == 0


def test_unknown_destination_gets_a_short_drop_flow(lab3: cluster.Lab) -> None:
    assert ping(lab3, "a", "10.1.0.200", wait=1).returncode != 0
    drops = [f for f in flows(lab3, "h1", table=10) if "nw_dst=10.1.0.200" in f]
    assert len(drops) == 1 and "hard_timeout=3" in drops[0] and "actions=drop" in drops[0], drops


def test_forged_source_gets_nothing_through_and_plugs_no_route(lab3: cluster.Lab) -> None:
    b_ip = ip_of(lab3, "b")
    before_rx = rx_packets(lab3, "b")
    before_routes = {r["cookie"] for r in api(lab3, "GET", "/routes")}
    # A forged IP: c claims an address that is not its own.
    lab3.exec("c", ["ip", "addr", "add", "10.1.0.99/24", "dev", "eth0"], check=True)
    forged = lab3.exec("c", ["ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "10.1.0.99", b_ip])
    assert forged.returncode != 0
    lab3.exec("c", ["ip", "addr", "del", "10.1.0.99/24", "dev", "eth0"], check=True)
    # A forged MAC.
    mac = lab3.container("c").mac
    lab3.exec("c", ["ip", "link", "set", "eth0", "address", "02:66:66:66:66:66"], check=True)
    try:
        assert ping(lab3, "c", b_ip, count=2, wait=1).returncode != 0
    finally:
        lab3.exec("c", ["ip", "link", "set", "eth0", "address", str(mac)], check=True)
    assert rx_packets(lab3, "b") == before_rx
    after = {r["cookie"]: r for r in api(lab3, "GET", "/routes")}
    assert not [r for k, r in after.items() if k not in before_routes and "c" in r["names"]]
    assert ping(lab3, "c", b_ip).returncode == 0  # its real identity still works


def test_two_tenants_with_the_same_subnet_never_cross(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    for t in ("red", "blue"):
        api(lab, "POST", "/tenants", json={"name": t})
        api(lab, "POST", "/networks", json={"name": "web", "subnet": "10.1.0.0/24", "tenant": t})
        lab.add_container(f"{t}1", host="h1", network="web", tenant=t, ip="10.1.0.10")
        lab.add_container(f"{t}2", host="h2", network="web", tenant=t, ip="10.1.0.20")
    blue_rx = (rx_packets(lab, "blue1"), rx_packets(lab, "blue2"))
    assert ping(lab, "red1", "10.1.0.20", count=3).returncode == 0
    assert ping(lab, "red2", "10.1.0.10", count=3).returncode == 0
    assert (rx_packets(lab, "blue1"), rx_packets(lab, "blue2")) == blue_rx, "red traffic reached blue"
    red_rx = (rx_packets(lab, "red1"), rx_packets(lab, "red2"))
    assert ping(lab, "blue1", "10.1.0.20", count=3).returncode == 0
    assert (rx_packets(lab, "red1"), rx_packets(lab, "red2")) == red_rx, "blue traffic reached red"
    pips = {c.name: c.pip for c in lab.containers}
    assert len(set(pips.values())) == 4


def test_routes_idle_out_everywhere_and_the_next_packet_replugs(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2, idle_timeout=4)  # long enough to look at the flows on a busy machine
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.2.0.0/24"})
    lab.add_container("x", host="h1", network="n")
    lab.add_container("y", host="h2", network="n")
    assert ping(lab, "x", ip_of(lab, "y")).returncode == 0
    assert route_flows(lab, "h1") and route_flows(lab, "h2") and api(lab, "GET", "/routes")
    wait_for(lambda: not route_flows(lab, "h1") and not route_flows(lab, "h2"), timeout=15,
             what="route flows idling out")
    wait_for(lambda: api(lab, "GET", "/routes") == [], timeout=5, what="GET /routes emptying")
    assert ping(lab, "x", ip_of(lab, "y")).returncode == 0
    assert len(route_flows(lab, "h1")) == 2 and len(route_flows(lab, "h2")) == 2


def test_controller_killed_mid_transfer_then_restarted(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.3.0.0/24"})
    for c, h in (("p", "h1"), ("q", "h2"), ("r", "h2")):
        lab.add_container(c, host=h, network="n")
    assert ping(lab, "p", ip_of(lab, "q")).returncode == 0
    srv = lab.popen("q", ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: listening(lab, "q", 5201), what="iperf3 server listening")
    client = lab.popen("p", ["iperf3", "-c", ip_of(lab, "q"), "-t", "4", "-J"], stdout=subprocess.PIPE)
    wait_for(lambda: len(route_flows(lab, "h1")) == 2, what="transfer's route")
    lab.stop_controller(signal.SIGKILL)
    out, _ = client.communicate(timeout=30)
    srv.wait(timeout=10)
    result = json.loads(out)
    assert client.returncode == 0, result.get("error")
    intervals = [i["sum"]["bytes"] for i in result["intervals"]]
    assert all(b > 0 for b in intervals), f"the transfer stalled: {intervals}"
    lab.start_controller()
    lab.wait_synced([1, 2])
    assert {c["name"] for c in api(lab, "GET", "/endpoints")} == {"p", "q", "r"}
    assert ping(lab, "p", ip_of(lab, "r")).returncode == 0  # a new connection
    assert any(r["names"] == ["p", "q"] for r in api(lab, "GET", "/routes")), "route not adopted"


def test_agent_restart_keeps_containers_working_and_reconciles(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.4.0.0/24"})
    lab.add_container("u", host="h1", network="n")
    lab.add_container("v", host="h2", network="n")
    lab.stop_agent("h1")
    assert ping(lab, "u", ip_of(lab, "v")).returncode == 0
    lab.start_agents(["h1"])
    with lab.agent("h1") as agent:
        assert agent.call("POST", "/reconcile")["kept"] == [lab.container("u").eid]
    lab.add_container("w", host="h1", network="n")
    assert ping(lab, "w", ip_of(lab, "v")).returncode == 0
    assert ping(lab, "u", ip_of(lab, "w")).returncode == 0


def test_cross_rack_routes_go_through_a_router_that_holds_no_container_state(
        lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2, racks=2)
    api(lab, "POST", "/networks", json={"name": "n", "subnet": "10.6.0.0/24"})
    lab.add_container("x", host="h1", network="n")
    lab.add_container("y", host="h2", network="n")
    assert ping(lab, "x", ip_of(lab, "y")).returncode == 0
    result = json.loads(tcp_transfer(lab, "x", "y", ip_of(lab, "y")).stdout)
    assert result["end"]["sum_received"]["bytes"] > 1_000_000
    done = lab.exec("x", ["traceroute", "-n", "-q", "1", "-w", "2", "-m", "6", ip_of(lab, "y")])
    hops = [line.split()[1] for line in done.stdout.splitlines()[1:]]
    assert hops == ["10.6.0.1", "198.18.0.254", lab.host("h2").underlay_ip, ip_of(lab, "y")], done.stdout
    routes = lab.exec("router", ["ip", "-4", "route"]).stdout.splitlines()
    assert len(routes) == 3 and not any("10.6." in r for r in routes), routes  # segments + outside
    # The router never learns a container's MAC or logical address: every neighbour is a host
    # (PIPs resolve to the owning host's MAC, answered by its bridge) or the control plane
    # (h2's agent and switch reach the controller across the router).
    host_macs = {links.mac_of(lab.host(h).netns, "daolinet") for h in ("h1", "h2")}
    host_macs.add(links.mac_of(plan.control_netns(lab.name), "eth0"))
    neigh = lab.exec("router", ["ip", "-4", "neigh"]).stdout
    for line in neigh.splitlines():
        if "lladdr" in line:
            assert line.split("lladdr")[1].split()[0] in host_macs, neigh
        assert "10.6." not in line
