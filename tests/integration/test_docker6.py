"""Dual-stack Docker networks on the real lab (IPv6 at the edges, issue 18 step 4):
`docker network create --ipv6 --subnet V4 --subnet V6` over daolinet's plugin, busybox
containers on two hosts, each host's dockerd (test_docker.py's `dlab`).  Docker itself
turns IPv6 on for the container's interface and adds the address without DAD; the
agent only hands the addresses and gateways to Docker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from daolinet.lab import cluster, docker
from daolinet.testing.dockertools import dk, inspect, plugs, ports, run
from daolinet.testing.labtools import api, wait_for

from .test_docker import CREATE, dlab, docker_networks, endpoints  # noqa: F401  (dlab: the fixture)

pytestmark = pytest.mark.integration


def settings(lab: cluster.Lab, host: str, name: str, network: str) -> dict[str, object]:
    return dict(inspect(lab, host, name)["NetworkSettings"]["Networks"][network])


@pytest.fixture
def v6net(dlab: cluster.Lab) -> Iterator[str]:  # noqa: F811
    """A dual-stack Docker network made on h1 (and by h2's agent in h2's dockerd); afterwards
    its containers and the network are removed, whatever the test did."""
    dk(dlab, "h1", *CREATE, "--ipv6", "--subnet", "10.6.6.0/24", "--subnet", "fd00:66::/64", "v6net")
    try:
        yield "v6net"
    finally:
        for h in ("h1", "h2"):
            names = dk(dlab, h, "ps", "-aq", "--filter", "network=v6net", check=False).stdout.split()
            if names:
                dk(dlab, h, "rm", "-f", *names, check=False)
        dk(dlab, "h1", "network", "rm", "v6net", check=False)


def test_dual_stack_docker_containers_get_both_addresses(dlab: cluster.Lab, v6net: str) -> None:  # noqa: F811
    # The daolinet network is named after the Docker network once dockerd shows it: poll.
    network = wait_for(lambda: next((n for n in api(dlab, "GET", "/networks") if n["name"] == v6net), None),
                       what="the daolinet network v6net")
    assert (network["subnet"], network["subnet6"], network["gateway6"]) == ("10.6.6.0/24", "fd00:66::/64",
                                                                            "fd00:66::1")
    # h2's agent makes the network in h2's dockerd: dual-stack too.
    wait_for(lambda: v6net in docker_networks(dlab, "h2"), what="v6net in h2's dockerd")
    theirs = json.loads(dk(dlab, "h2", "network", "inspect", v6net).stdout)[0]
    assert theirs["EnableIPv6"] is True
    assert {c["Subnet"] for c in theirs["IPAM"]["Config"]} == {"10.6.6.0/24", "fd00:66::/64"}

    run(dlab, "h1", "six1", v6net)
    run(dlab, "h2", "six2", v6net)
    for host, name in (("h1", "six1"), ("h2", "six2")):
        seen = settings(dlab, host, name, v6net)
        (endpoint,) = [e for e in endpoints(dlab, v6net) if e["ip"] == seen["IPAddress"]]
        assert (seen["GlobalIPv6Address"], seen["GlobalIPv6PrefixLen"], seen["IPv6Gateway"]) == (
            endpoint["ip6"], 64, "fd00:66::1")
        assert endpoint["host"] == host and endpoint["pip6"]
        addr = dk(dlab, host, "exec", name, "ip", "-6", "addr", "show", "dev", "eth0").stdout
        (line,) = [x for x in addr.splitlines() if f"inet6 {endpoint['ip6']}/64 scope global" in x] or [addr]
        assert "tentative" not in line, addr  # Docker adds it without DAD: usable at once
        route = dk(dlab, host, "exec", name, "ip", "-6", "route").stdout
        assert "default via fd00:66::1 dev eth0" in route, route

    ip6s = {e["ip6"] for e in endpoints(dlab, v6net)}
    dk(dlab, "h1", "rm", "-f", "six1")
    dk(dlab, "h2", "rm", "-f", "six2")
    assert endpoints(dlab, v6net) == [] and ip6s == {"fd00:66::2", "fd00:66::3"}
    for h in ("h1", "h2"):
        assert plugs(dlab, h) == [] and ports(dlab, h) == []


def test_dual_stack_docker_refuses_ip6_it_did_not_pick(dlab: cluster.Lab, v6net: str) -> None:  # noqa: F811
    """(An IPv6 subnet mismatch on adoption is refused too: tests/unit/test_docker_plugin6.py; here each
    host's sync has made the network already, so a second one is refused by its IPv4 subnet first.)"""
    chosen = run(dlab, "h1", "six3", v6net, "--ip6", "fd00:66::99", check=False)
    assert chosen.returncode != 0 and "picks IPv6 addresses itself: drop --ip6" in chosen.stderr, \
        chosen.stderr
    assert endpoints(dlab, v6net) == [] and plugs(dlab, "h1") == [] and ports(dlab, "h1") == []
    run(dlab, "h1", "six5", v6net, "--ip6", "fd00:66::2")  # the address daolinet picks: fine
    assert settings(dlab, "h1", "six5", v6net)["GlobalIPv6Address"] == "fd00:66::2"


def test_dual_stack_docker_containers_ping6_across_hosts(dlab: cluster.Lab, v6net: str) -> None:  # noqa: F811
    """The acceptance of issue 18: `ping -6 web` and `wget http://web/` from the other host.
    Names: Docker's embedded DNS forwards the question for a name it does not know (a
    container on the other host) to --dns, which that host's agent answers."""
    wait_for(lambda: v6net in docker_networks(dlab, "h2"), what="v6net in h2's dockerd")
    dk(dlab, "h1", "run", "-d", "--name", "web6", "--network", v6net, docker.IMAGE, "sh", "-c",
       "mkdir -p /www && echo hello over v6net > /www/index.html && exec httpd -f -p 80 -h /www")
    run(dlab, "h2", "six4", v6net)
    web6 = str(settings(dlab, "h1", "web6", v6net)["GlobalIPv6Address"])
    # First the name alone (needs no route): dockerd on h2 does not know web6, so its embedded
    # DNS forwards the AAAA question to --dns, which h2's agent answers.
    wait_for(lambda: next((e.get("aliases") for e in endpoints(dlab, v6net) if e["ip6"] == web6), None),
             what="web6's aliases")
    looked = dk(dlab, "h2", "run", "--rm", "--network", v6net, docker.IMAGE, "nslookup", "-type=AAAA", "web6",
                check=False)
    assert f"Address: {web6}" in looked.stdout, looked.stdout + looked.stderr
    done = dk(dlab, "h2", "exec", "six4", "ping", "-6", "-c", "2", "-W", "2", web6, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    by_name = dk(dlab, "h2", "run", "--rm", "--network", v6net, docker.IMAGE,
                 "ping", "-6", "-c", "1", "-W", "2", "web6", check=False)
    assert f"PING web6 ({web6})" in by_name.stdout and by_name.returncode == 0, \
        by_name.stdout + by_name.stderr
    fetched = dk(dlab, "h2", "exec", "six4", "wget", "-q", "-O", "-", "http://web6/", check=False)
    assert fetched.stdout == "hello over v6net\n", fetched.stdout + fetched.stderr
