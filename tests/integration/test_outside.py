"""Containers and the outside world, on the real lab: SNAT egress."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from daolinet.lab import cluster, plan
from daolinet.testing.labtools import api, ping

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
STREAM = [sys.executable, "-m", "daolinet.testing.stream"]
OUTSIDE = str(plan.OUTSIDE_IP)


@pytest.fixture
def outside_lab(lab_factory: LabFactory) -> Iterator[cluster.Lab]:
    lab = lab_factory(hosts=2, racks=2)
    server = lab.popen("outside", [*STREAM, "whoami", "8080"], stdout=subprocess.PIPE)
    assert server.stdout is not None and "listening" in server.stdout.readline()
    yield lab
    server.kill()
    server.wait()


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
