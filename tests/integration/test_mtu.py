"""Containers get the underlay's MTU: no encapsulation, no tax.  On a jumbo underlay a
full-size DF packet crosses hosts container to container (its very first packet
included, which travels to the controller and back in a PacketIn and a PacketOut); on
a 1500 underlay one byte more is refused at the sender with "message too long",
never dropped silently on the way."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from daolinet.lab import cluster, plan
from daolinet.system import links
from daolinet.testing.labtools import api

pytestmark = pytest.mark.integration
IP_ICMP_HEADERS = 28


def _lab(mtu: int) -> Iterator[cluster.Lab]:
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    name = new_lab_name()
    try:
        lab = cluster.Lab.up(name, hosts=2, mtu=mtu)
        api(lab, "POST", "/networks", json={"name": "net1", "subnet": "10.1.0.0/24"})
        lab.add_container("a", host="h1", network="net1")
        lab.add_container("b", host="h2", network="net1")
        yield lab
    finally:
        cluster.down(name)
    assert lab_leftovers(name) == []


@pytest.fixture(scope="module")
def jumbo() -> Iterator[cluster.Lab]:
    yield from _lab(9000)


@pytest.fixture(scope="module")
def plain() -> Iterator[cluster.Lab]:
    yield from _lab(1500)


def df_ping(lab: cluster.Lab, src: str, dst: str, size: int) -> subprocess.CompletedProcess[str]:
    """One ICMP echo of `size` payload bytes, Don't Fragment set, from src to dst's IP."""
    ip = lab.container(dst).ip
    assert ip is not None
    return lab.exec(src, ["ping", "-n", "-c", "1", "-W", "3", "-M", "do", "-s", str(size), ip], timeout=15)


def test_jumbo_underlay_gives_jumbo_containers(jumbo: cluster.Lab) -> None:
    for h in jumbo.hosts:
        with open(os.path.join(h.plan.rundir(), "agent.json")) as f:
            ready = json.load(f)
        assert (ready["datapath"], ready["mtu"]) == ("netdev", 9000)
        assert links.mtu_of(h.netns, plan.BRIDGE) == 9000  # the host's own interface on the bridge
    for c in ("a", "b"):
        assert links.mtu_of(jumbo.container(c).netns, "eth0") == 9000


def test_full_size_jumbo_packet_crosses_hosts_first_packet_included(jumbo: cluster.Lab) -> None:
    first = df_ping(jumbo, "a", "b", 9000 - IP_ICMP_HEADERS)  # the pair's first packet: via the controller
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{9000 - IP_ICMP_HEADERS + 8} bytes from" in first.stdout  # the whole echo came back
    again = df_ping(jumbo, "b", "a", 9000 - IP_ICMP_HEADERS)  # on the installed route
    assert again.returncode == 0, again.stdout + again.stderr


def test_one_byte_over_the_jumbo_mtu_is_refused_at_the_sender(jumbo: cluster.Lab) -> None:
    over = df_ping(jumbo, "a", "b", 9000 - IP_ICMP_HEADERS + 1)
    assert over.returncode != 0 and "message too long" in (over.stdout + over.stderr).lower()


def test_plain_underlay_carries_1500_and_refuses_one_byte_more(plain: cluster.Lab) -> None:
    assert links.mtu_of(plain.container("a").netns, "eth0") == 1500
    fits = df_ping(plain, "a", "b", 1500 - IP_ICMP_HEADERS)
    assert fits.returncode == 0, fits.stdout + fits.stderr
    over = df_ping(plain, "a", "b", 1500 - IP_ICMP_HEADERS + 1)
    assert over.returncode != 0 and "message too long" in (over.stdout + over.stderr).lower()


def test_lab_refuses_an_mtu_out_of_range() -> None:
    from daolinet.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--mtu must be between 1280 and 9216, not 9217"):
        cluster.Lab.up("tmtubad", hosts=1, mtu=9217)
    assert not cluster.lab_exists("tmtubad")
