"""Dual-stack plumbing on a real lab (2 hosts, 2 racks, so the hosts' IPv6 crosses the router):
the IPv6 underlay of lab/plan.py, each host registering it with its IPv6 PIP pool, and a
dual-stack container plugged with its ip6 and an IPv6 default route via gateway6, which it
resolves by neighbour discovery (the bridge answers, flows/ndp.py).  A container's IPv6 to a
host's underlay address is dropped by the guard.  Hot-plug IPv6 routes are issue 18 step 3:
nothing here needs a container's IPv6 to reach another container."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from daolinet.lab import cluster, plan
from daolinet.pipeline import GATEWAY_MAC
from daolinet.system import links
from daolinet.testing.labtools import api

pytestmark = pytest.mark.integration
GATEWAY6 = "fd00:1::1"


@pytest.fixture(scope="module")
def lab() -> Iterator[cluster.Lab]:
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    name = new_lab_name()
    try:
        lab = cluster.Lab.up(name, hosts=2, racks=2)
        api(lab, "POST", "/networks", json={"name": "dual", "subnet": "10.1.0.0/24",
                                            "subnet6": "fd00:1::/64"})
        api(lab, "POST", "/networks", json={"name": "v4", "subnet": "10.2.0.0/24"})
        lab.add_container("a", host="h1", network="dual")
        lab.add_container("b", host="h2", network="dual")
        lab.add_container("c", host="h1", network="v4")
        yield lab
    finally:
        cluster.down(name)
    assert lab_leftovers(name) == []


def out(lab: cluster.Lab, target: str, *argv: str) -> str:
    done = lab.exec(target, list(argv), timeout=15)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout


def test_hosts_register_their_ipv6_underlay_and_pool6(lab: cluster.Lab) -> None:
    hosts = {h["name"]: h for h in api(lab, "GET", "/hosts")}
    for h in lab.hosts:
        p = h.plan
        got = hosts[h.name]
        assert (got["underlay_ip6"], got.get("underlay_prefix6", 64), got["pip_pool6"]) == \
            (str(p.underlay_ip6), 64, str(p.pip_pool6))
        assert links.address6_of(h.netns, plan.BRIDGE) == (str(p.underlay_ip6), 64)
    # the hosts' IPv6 underlay works: h1 (rack 1) reaches h2 (rack 2) through the router
    h2 = lab.host("h2").plan.underlay_ip6
    assert "1 received" in out(lab, "h1", "ping", "-6", "-n", "-c", "1", "-W", "3", str(h2))
    assert lab.describe()["hosts"][1]["pip_pool6"] == str(lab.host("h2").plan.pip_pool6)


def test_a_dual_stack_container_gets_its_ip6_and_an_ipv6_default_route(lab: cluster.Lab) -> None:
    for name, host, ip6 in (("a", "h1", "fd00:1::2"), ("b", "h2", "fd00:1::3")):
        c = lab.container(name)
        assert c.address6 == f"{ip6}/64"
        assert c.pip6 is not None and ipaddress.IPv6Address(c.pip6) in lab.host(host).plan.pip_pool6
        addrs = out(lab, name, "ip", "-6", "-o", "addr", "show", "dev", "eth0")
        assert f"inet6 {ip6}/64 scope global" in addrs
        assert "tentative" not in addrs and "dadfailed" not in addrs
        assert "scope link" in addrs  # link-local kept: neighbour discovery needs it
        assert len(re.findall("scope global", addrs)) == 1, addrs  # no SLAAC address
        assert out(lab, name, "ip", "-6", "route", "show", "default").split()[:5] == \
            ["default", "via", GATEWAY6, "dev", "eth0"]
        for key in ("accept_dad", "accept_ra", "autoconf", "disable_ipv6"):
            assert links.read_sysctl(c.netns, f"net.ipv6.conf.eth0.{key}") == "0", key
    # an IPv4-only network's container is plugged as before: no IPv6 at all
    assert lab.container("c").address6 is None
    assert links.read_sysctl(lab.container("c").netns, "net.ipv6.conf.eth0.disable_ipv6") == "1"


def test_the_container_resolves_gateway6_by_neighbour_discovery(lab: cluster.Lab) -> None:
    """The ping may go unanswered (ICMPv6 echo is step 3's): the NS before it is answered."""
    for name in ("a", "b"):
        lab.exec(name, ["ping", "-6", "-n", "-c", "1", "-W", "1", GATEWAY6], timeout=10)
        deadline = time.monotonic() + 5
        neigh = ""
        while time.monotonic() < deadline:
            neigh = out(lab, name, "ip", "-6", "neigh", "show", GATEWAY6, "dev", "eth0")
            if GATEWAY_MAC in neigh:
                break
            time.sleep(0.1)  # polling with a deadline
        assert f"lladdr {GATEWAY_MAC}" in neigh and "router" in neigh, neigh
        assert "FAILED" not in neigh and "INCOMPLETE" not in neigh, neigh


RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5555)); s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
try:
    print(s.recvfrom(100)[0].decode())
except TimeoutError:
    print("nothing")
"""
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"from-" + sys.argv[2].encode(), (sys.argv[1], 5555))
"""


def _guard_drops(lab: cluster.Lab, host: str) -> int:
    """Packets table 5's IPv6 drops on `host` have dropped (the guard: flows/infra.py)."""
    dump = lab.host(host).ofctl("dump-flows", "table=5").splitlines()
    return sum(int(m.group(1)) for line in dump if "ipv6" in line and "actions=drop" in line
               for m in [re.search(r"n_packets=(\d+)", line)] if m)


def _received(lab: cluster.Lab, host: str, ip6: str, sender: str) -> str:
    """What a UDP receiver on `host`'s ip6 got (or "nothing") when `sender` sent it 5 datagrams."""
    with lab.popen(host, [sys.executable, "-c", RECEIVE, ip6, "2"], stdout=subprocess.PIPE) as rx:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        lab.exec(sender, [sys.executable, "-c", SEND, ip6, sender], timeout=10)
        return rx.communicate(timeout=10)[0].strip()


def test_a_containers_ipv6_to_a_hosts_underlay_address_never_reaches_it(lab: cluster.Lab) -> None:
    for target in ("h1", "h2"):
        ip6 = str(lab.host(target).plan.underlay_ip6)
        # the receiver works: the other host's datagram over the underlay arrives
        other = "h2" if target == "h1" else "h1"
        assert _received(lab, target, ip6, other) == f"from-{other}"
        before = _guard_drops(lab, "h1")
        assert _received(lab, target, ip6, "a") == "nothing"
        assert _guard_drops(lab, "h1") >= before + 5, "a's datagrams were not dropped by the guard"
