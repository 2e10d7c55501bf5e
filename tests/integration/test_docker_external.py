"""Docker containers and the outside world on the real lab: `docker run -p`
publishes on the container's host (daolinet port mappings), and a Docker
container moved to another host keeps its IP, MAC and published ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from daolinet.lab import cluster, docker, docker_move
from daolinet.testing.dockertools import dk, inspect, plugs, ports
from daolinet.testing.labtools import api, wait_for

pytestmark = pytest.mark.integration
CREATE = ("network", "create", "-d", "daolinet", "--ipam-driver", "daolinet")
HTTPD = ("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")


@pytest.fixture(scope="module")
def dlab() -> Iterator[cluster.Lab]:
    """Two hosts with their own dockerd, and network pnet on both."""
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    if not os.path.exists(docker.DOCKERD):
        pytest.skip("needs Debian's docker.io")
    name = new_lab_name()
    try:
        lab = cluster.Lab.up(name, hosts=2)
        for h in ("h1", "h2"):
            lab.start_dockerd(h)
        dk(lab, "h1", *CREATE, "--subnet", "10.11.0.0/24", "pnet")
        wait_for(lambda: "pnet" in dk(lab, "h2", "network", "ls").stdout, what="pnet in h2's dockerd")
        yield lab
    finally:
        cluster.down(name)
        assert lab_leftovers(name) == []


def httpd(lab: cluster.Lab, host: str, name: str, *extra: str, check: bool = True) -> str:
    """A busybox httpd container answering its hostname; its stderr."""
    done = dk(lab, host, "run", "-d", "--name", name, "--hostname", name, "--network", "pnet", *extra,
              docker.IMAGE, *HTTPD, check=check)
    return done.stderr


def get(lab: cluster.Lab, host: str, port: int, timeout: int = 2) -> str | None:
    """GET / from the outside namespace at HOST's underlay IP:port; the body, or None."""
    url = f"http://{lab.host(host).underlay_ip}:{port}/"
    code = f"import urllib.request as u; print(u.urlopen({url!r}, timeout={timeout}).read().decode())"
    done = lab.exec("outside", [sys.executable, "-c", code], timeout=timeout + 10)
    return done.stdout.strip() if done.returncode == 0 else None


def portmaps(lab: cluster.Lab) -> list[tuple[str, int, str]]:
    return sorted((m["host"], m["host_port"], m["protocol"]) for m in api(lab, "GET", "/portmaps"))


def endpoints(lab: cluster.Lab) -> list[dict[str, object]]:
    return [e for e in api(lab, "GET", "/endpoints") if e["network"] == "pnet"]


def test_docker_run_p_publishes_on_the_hosts_underlay_ip(dlab: cluster.Lab) -> None:
    httpd(dlab, "h1", "web", "-p", "8080:80")
    assert portmaps(dlab) == [("h1", 8080, "tcp")]
    (pm,) = api(dlab, "GET", "/portmaps")
    assert pm["name"].startswith("docker-") and pm["name"].endswith("-8080-tcp")
    wait_for(lambda: get(dlab, "h1", 8080) == "web", what="web served at h1:8080")
    assert get(dlab, "h2", 8080, timeout=1) is None  # published on its own host only

    dk(dlab, "h1", "rm", "-f", "web")
    assert portmaps(dlab) == [] and endpoints(dlab) == []
    assert get(dlab, "h1", 8080, timeout=1) is None
    assert plugs(dlab, "h1") == [] and ports(dlab, "h1") == []


def test_a_host_port_taken_is_refused_and_leaves_nothing(dlab: cluster.Lab) -> None:
    httpd(dlab, "h1", "first", "-p", "8081:80")
    before = (portmaps(dlab), endpoints(dlab), plugs(dlab, "h1"), ports(dlab, "h1"))
    err = httpd(dlab, "h1", "second", "-p", "9090:80", "-p", "8081:80", check=False)
    assert "tcp port 8081 of host h1 is already mapped" in err, err
    assert (portmaps(dlab), endpoints(dlab), plugs(dlab, "h1"), ports(dlab, "h1")) == before
    # What daolinet cannot publish is refused by name, before anything is made.
    for args, word in ((("-p", "80"), "the host port you name"),
                       (("-p", "127.0.0.1:8085:80"), "drop the address")):
        err = httpd(dlab, "h1", "third", *args, check=False)
        assert word in err, err
        dk(dlab, "h1", "rm", "-f", "third")
    assert (portmaps(dlab), endpoints(dlab), plugs(dlab, "h1"), ports(dlab, "h1")) == before
    # The first container still serves; the same port on another host is free.
    wait_for(lambda: get(dlab, "h1", 8081) == "first", what="first served at h1:8081")
    httpd(dlab, "h2", "other", "-p", "8081:80")
    wait_for(lambda: get(dlab, "h2", 8081) == "other", what="other served at h2:8081")
    dk(dlab, "h1", "rm", "-f", "first", "second")
    dk(dlab, "h2", "rm", "-f", "other")
    assert portmaps(dlab) == [] and endpoints(dlab) == []


def test_a_moved_docker_container_keeps_ip_mac_and_published_port(dlab: cluster.Lab) -> None:
    httpd(dlab, "h1", "mover", "-p", "8082:80", "--ip", "10.11.0.42")
    before = inspect(dlab, "h1", "mover")["NetworkSettings"]["Networks"]["pnet"]
    (e,) = endpoints(dlab)
    wait_for(lambda: get(dlab, "h1", 8082) == "mover", what="mover served at h1:8082")

    moved = docker_move.move(dlab, "mover", "h2")
    assert (moved.source, moved.target, moved.ip, moved.mac) == ("h1", "h2", "10.11.0.42",
                                                                   before["MacAddress"])
    after = inspect(dlab, "h2", "mover")["NetworkSettings"]["Networks"]["pnet"]
    assert (after["IPAddress"], after["MacAddress"]) == ("10.11.0.42", before["MacAddress"])
    assert dk(dlab, "h1", "ps", "-aq", "--filter", "name=mover").stdout.strip() == ""
    (e2,) = endpoints(dlab)
    assert (e2["id"], e2["name"], e2["host"]) == (e["id"], e["name"], "h2")  # the same endpoint
    assert portmaps(dlab) == [("h2", 8082, "tcp")]  # -p publishes where the container runs
    wait_for(lambda: get(dlab, "h2", 8082) == "mover", what="mover served at h2:8082")
    assert get(dlab, "h1", 8082, timeout=1) is None
    assert plugs(dlab, "h1") == [] and ports(dlab, "h1") == []

    # Bad moves change nothing.
    for target, word in (("h2", "already on host h2"), ("h9", "no host h9")):
        with pytest.raises(Exception, match=word):
            docker_move.move(dlab, "mover", target)
    with pytest.raises(Exception, match="no Docker container nobody"):
        docker_move.move(dlab, "nobody", "h1")
    assert portmaps(dlab) == [("h2", 8082, "tcp")] and [x["host"] for x in endpoints(dlab)] == ["h2"]

    dk(dlab, "h2", "rm", "-f", "mover")
    assert portmaps(dlab) == [] and endpoints(dlab) == []
