"""Docker on the real lab: Debian's dockerd per host (own network namespace,
mount namespace and plugin dir), daolinet's network and IPAM plugin served
by each host's agent, busybox containers, real OVS and real traffic."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from daolinet.errors import Conflict
from daolinet.lab import cluster, docker
from daolinet.pipeline import route_cookie
from daolinet.system import links
from daolinet.testing.dockertools import dk, inspect, ip_of, ping, plugs, ports, run, tcp_transfer
from daolinet.testing.labtools import api, route_flows, wait_for

pytestmark = pytest.mark.integration
CREATE = ("network", "create", "-d", "daolinet", "--ipam-driver", "daolinet")


@pytest.fixture(scope="module")
def dlab() -> Iterator[cluster.Lab]:
    """Two hosts, each with its own dockerd; shared by this module's tests,
    which use distinct networks and remove their containers."""
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    if not os.path.exists(docker.DOCKERD):
        pytest.skip("needs Debian's docker.io")
    name = new_lab_name()
    try:
        lab = cluster.Lab.up(name, hosts=2)
        for h in ("h1", "h2"):
            lab.start_dockerd(h)
        yield lab
    finally:
        cluster.down(name)
        assert lab_leftovers(name) == []
        assert docker.cgroup_dirs(name) == []  # v1 and v2 alike


def endpoints(lab: cluster.Lab, network: str) -> list[dict[str, object]]:
    return [e for e in api(lab, "GET", "/endpoints") if e["network"] == network]


def docker_networks(lab: cluster.Lab, host: str) -> list[str]:
    return dk(lab, host, "network", "ls", "--format", "{{.Name}}").stdout.split()


def pair_flows(lab: cluster.Lab, eid_a: int, eid_b: int) -> list[str]:
    cookies = {f"cookie={route_cookie(a, b).value:#x}" for a, b in ((eid_a, eid_b), (eid_b, eid_a))}
    return [f for h in ("h1", "h2") for f in route_flows(lab, h) if any(c in f for c in cookies)]


def eid_of(lab: cluster.Lab, network: str, ip: str) -> int:
    return int(next(e["id"] for e in endpoints(lab, network) if e["ip"] == ip))


def test_one_host_containers_ping_and_transfer_over_tcp(dlab: cluster.Lab) -> None:
    dk(dlab, "h1", *CREATE, "--subnet", "10.5.0.0/24", "net1")
    run(dlab, "h1", "c1", "net1")
    run(dlab, "h1", "c2", "net1")
    ip1, ip2 = ip_of(dlab, "h1", "c1", "net1"), ip_of(dlab, "h1", "c2", "net1")
    assert {ip1, ip2} == {"10.5.0.2", "10.5.0.3"}
    # The daolinet network is named after the Docker network; the endpoints are the containers'.
    assert [n["subnet"] for n in api(dlab, "GET", "/networks") if n["name"] == "net1"] == ["10.5.0.0/24"]
    mac = inspect(dlab, "h1", "c1")["NetworkSettings"]["Networks"]["net1"]["MacAddress"]
    assert {(e["ip"], e["mac"]) for e in endpoints(dlab, "net1")} >= {(ip1, mac)}
    done = ping(dlab, "h1", "c1", ip2, count=2)
    assert done.returncode == 0, done.stdout + done.stderr
    report = tcp_transfer(dlab, ("h1", "c1"), ("h1", "c2"), ip2)
    assert report["end"]["sum_received"]["bytes"] > 1_000_000
    # A container that exits releases its address too, even before it is removed.
    dk(dlab, "h1", "run", "--name", "c3", "--network", "net1", docker.IMAGE, "true")
    assert len(endpoints(dlab, "net1")) == 2
    dk(dlab, "h1", "rm", "-f", "c1", "c2", "c3")
    assert endpoints(dlab, "net1") == [] and plugs(dlab, "h1") == [] and ports(dlab, "h1") == []
    dk(dlab, "h1", "network", "rm", "net1")
    assert "net1" not in [n["name"] for n in api(dlab, "GET", "/networks")]


def test_two_hosts_share_the_network_and_its_addresses(dlab: cluster.Lab) -> None:
    dk(dlab, "h1", *CREATE, "--subnet", "10.6.0.0/24", "net2")
    # Created once, on h1: h2's agent makes it exist in h2's dockerd.
    wait_for(lambda: "net2" in docker_networks(dlab, "h2"), what="net2 in h2's dockerd")
    run(dlab, "h1", "x1", "net2")
    run(dlab, "h2", "x2", "net2", "--ip", "10.6.0.50")
    assert ip_of(dlab, "h2", "x2", "net2") == "10.6.0.50"  # --ip honoured
    ip1 = ip_of(dlab, "h1", "x1", "net2")
    done = ping(dlab, "h1", "x1", "10.6.0.50", count=2)
    assert done.returncode == 0, done.stdout + done.stderr
    e1, e2 = eid_of(dlab, "net2", ip1), eid_of(dlab, "net2", "10.6.0.50")
    assert len(pair_flows(dlab, e1, e2)) == 4  # a hot-plug route: two flows on each host

    # The address is taken cluster-wide: another host's dockerd cannot have it.
    refused = run(dlab, "h1", "x3", "net2", "--ip", "10.6.0.50", check=False)
    assert refused.returncode != 0 and "10.6.0.50" in refused.stderr and "already used" in refused.stderr
    dk(dlab, "h1", "rm", "-f", "x3")

    # docker rm -f: the endpoint, its routes and its address are released.
    dk(dlab, "h2", "rm", "-f", "x2")
    assert [e for e in endpoints(dlab, "net2") if e["ip"] == "10.6.0.50"] == []
    assert pair_flows(dlab, e1, e2) == []
    assert plugs(dlab, "h2") == [] and ports(dlab, "h2") == []
    run(dlab, "h1", "x4", "net2", "--ip", "10.6.0.50")
    assert ping(dlab, "h1", "x1", "10.6.0.50").returncode == 0

    # Deleting the network is refused while containers use it, from any host.
    with pytest.raises(Conflict, match="still used"):
        api(dlab, "DELETE", "/networks/default/net2")
    busy = dk(dlab, "h1", "network", "rm", "net2", check=False)  # dockerd itself sees its containers
    assert busy.returncode != 0 and "active endpoints" in busy.stderr, busy.stderr
    dk(dlab, "h2", "network", "rm", "net2")  # h2's dockerd drops its copy; the plugin's refusal...
    assert "net2" in [n["name"] for n in api(dlab, "GET", "/networks")]  # ...keeps the network
    wait_for(lambda: "net2" in docker_networks(dlab, "h2"), what="net2 back in h2's dockerd")
    dk(dlab, "h1", "rm", "-f", "x1", "x4")
    dk(dlab, "h2", "network", "rm", "net2")  # unused now: gone for every host
    wait_for(lambda: "net2" not in docker_networks(dlab, "h1"), what="net2 gone from h1's dockerd")
    assert "net2" not in [n["name"] for n in api(dlab, "GET", "/networks")]


def test_a_container_is_found_by_name_from_the_other_host(dlab: cluster.Lab) -> None:
    """Docker's embedded DNS forwards names it does not know to the resolver address (the lab's
    dockerd runs with --dns 169.254.53.53), which the asker's own host answers: docs/names.md."""
    dk(dlab, "h1", *CREATE, "--subnet", "10.6.4.0/24", "named")
    wait_for(lambda: "named" in docker_networks(dlab, "h2"), what="named in h2's dockerd")
    dk(dlab, "h1", "run", "-d", "--name", "web", "--network", "named", "--network-alias", "www", docker.IMAGE,
       "sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www")
    ip = ip_of(dlab, "h1", "web", "named")
    # The agent sets web's aliases once dockerd lists it on the network: poll.
    aliases = lambda: next(e.get("aliases") for e in endpoints(dlab, "named") if e["ip"] == ip)  # noqa: E731
    assert wait_for(aliases, what="web's aliases") == ["web", "www"]

    def from_h2(*argv: str) -> str:
        done = dk(dlab, "h2", "run", "--rm", "--network", "named", docker.IMAGE, *argv, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert from_h2("wget", "-q", "-O", "-", "http://web/") == "hello from web\n"  # no -T: it crashes
    assert f"Address: {ip}" in from_h2("nslookup", "-type=A", "www")
    assert f"PING web ({ip})" in from_h2("ping", "-c", "1", "-W", "2", "web")
    dk(dlab, "h1", "rm", "-f", "web")
    dk(dlab, "h1", "network", "rm", "named")


def test_a_cni_container_resolves_a_docker_name(dlab: cluster.Lab) -> None:
    """A real CNI runtime on h2 (containerd's `ctr run --cni`, lab/containerd.py: daolinet-cni through h2's
    agent) asks its gateway, the nameserver a CNI result gives, for a Docker container on h1."""
    dk(dlab, "h1", *CREATE, "--subnet", "10.6.5.0/24", "mixed")
    dk(dlab, "h1", "run", "-d", "--name", "web", "--network", "mixed", docker.IMAGE, "sh", "-c",
       "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www")
    ip = ip_of(dlab, "h1", "web", "mixed")
    aliases = lambda: next(e.get("aliases") for e in endpoints(dlab, "mixed") if e["ip"] == ip)  # noqa: E731
    assert wait_for(aliases, what="web's aliases") == ["web"]
    dlab.start_containerd("h2")
    # ctr writes no resolv.conf: name the server.  No wget -T: it crashes.
    script = f"ip -o -4 addr show dev eth0 && nslookup web 10.6.5.1 && echo --- && wget -q -O - http://{ip}/"
    done = dlab.ctr_run("h2", "mixed", "asker", "sh", "-c", script)
    assert done.returncode == 0, done.stdout + done.stderr
    before, page = done.stdout.split("---\n")
    addr = before.split("inet ", 1)[1].split("/")[0]  # the CNI container's own address
    assert addr.startswith("10.6.5.") and addr != ip
    assert f"Address: {ip}" in before.split("Name:", 1)[1]  # nslookup's answer, after its server's
    assert page == "hello from web\n"
    # --rm: the task is deleted and ctr runs CNI DEL, which releases the endpoint.
    assert [e["ip"] for e in endpoints(dlab, "mixed")] == [ip]
    assert dlab.ctr("h2", "containers", "ls", "-q").stdout.split() == []
    dk(dlab, "h1", "rm", "-f", "web")
    dk(dlab, "h1", "network", "rm", "mixed")


def test_a_daolinet_network_appears_in_every_dockerd(dlab: cluster.Lab) -> None:
    api(dlab, "POST", "/networks", json={"name": "net3", "subnet": "10.7.0.0/24"})
    for h in ("h1", "h2"):
        wait_for(lambda h=h: "net3" in docker_networks(dlab, h), what=f"net3 in {h}'s dockerd")
    run(dlab, "h2", "y1", "net3")
    assert ip_of(dlab, "h2", "y1", "net3") == "10.7.0.2"
    dk(dlab, "h2", "rm", "-f", "y1")
    api(dlab, "DELETE", "/networks/default/net3")
    for h in ("h1", "h2"):
        wait_for(lambda h=h: "net3" not in docker_networks(dlab, h), what=f"net3 gone from {h}")


def test_agent_restart_keeps_containers_working(dlab: cluster.Lab) -> None:
    dk(dlab, "h1", *CREATE, "--subnet", "10.8.0.0/24", "net4")
    wait_for(lambda: "net4" in docker_networks(dlab, "h2"), what="net4 in h2's dockerd")
    run(dlab, "h1", "r1", "net4")
    run(dlab, "h2", "r2", "net4")
    ip2 = ip_of(dlab, "h2", "r2", "net4")
    assert ping(dlab, "h1", "r1", ip2).returncode == 0
    dlab.stop_agent("h1")
    dlab.start_agents(["h1"])
    assert ping(dlab, "h1", "r1", ip2, count=2).returncode == 0
    # The restarted agent still knows r1's endpoint: removing it releases everything.
    dk(dlab, "h1", "rm", "-f", "r1")
    assert [e["host"] for e in endpoints(dlab, "net4")] == ["h2"]
    assert plugs(dlab, "h1") == [] and ports(dlab, "h1") == []
    dk(dlab, "h2", "rm", "-f", "r2")
    dk(dlab, "h1", "network", "rm", "net4")


def test_failed_create_endpoint_or_join_leaves_nothing(dlab: cluster.Lab) -> None:
    dk(dlab, "h1", *CREATE, "--subnet", "10.9.0.0/24", "net5")
    before = (plugs(dlab, "h1"), ports(dlab, "h1"), endpoints(dlab, "net5"))

    # CreateEndpoint refuses a -p daolinet cannot publish (after IPAM reserved an address).
    refused = run(dlab, "h1", "f1", "net5", "-p", "80", check=False)
    assert refused.returncode != 0 and "host port you name" in refused.stderr, refused.stderr
    assert (plugs(dlab, "h1"), ports(dlab, "h1"), endpoints(dlab, "net5")) == before

    # Join fails: the name of the veth it needs is taken.
    taken = {e["id"] for e in api(dlab, "GET", "/endpoints")}
    eid = min(set(range(1, len(taken) + 2)) - taken)  # the id the next endpoint gets
    blocker = f"dlc{eid:06x}"
    links.add_veth(dlab.host("h1").netns, blocker, dlab.host("h1").netns, "blocked")
    refused = run(dlab, "h1", "f2", "net5", check=False)
    assert refused.returncode != 0 and blocker in refused.stderr, refused.stderr
    links.del_link(dlab.host("h1").netns, blocker)
    assert (plugs(dlab, "h1"), ports(dlab, "h1"), endpoints(dlab, "net5")) == before

    # And the network still works afterwards.
    dk(dlab, "h1", "rm", "-f", "f1", "f2")
    run(dlab, "h1", "f3", "net5")
    assert ip_of(dlab, "h1", "f3", "net5") == "10.9.0.2"
    dk(dlab, "h1", "rm", "-f", "f3")
    dk(dlab, "h1", "network", "rm", "net5")
