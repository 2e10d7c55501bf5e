"""IPv6 hot-plug routes on the real lab (issue 18): a dual-stack network on a dual-stack
underlay (2001:2::/48), real OVS, real traffic.  The first packet of a connection is
delivered, hop limits fall by one per virtual router, tenants with the same IPv6 subnet never
meet, routes idle out, a move keeps both addresses, and nothing forged gets through."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from daolinet.lab import cluster
from daolinet.pipeline import GATEWAY_MAC, route_cookie
from daolinet.testing.labtools import api, route_flows, rx_packets, tcp_transfer, wait_for

pytestmark = pytest.mark.integration
LabFactory = Callable[..., cluster.Lab]
NET = {"name": "net1", "subnet": "10.1.0.0/24", "subnet6": "fd00:1::/64"}


@pytest.fixture(scope="module")
def lab6(request: pytest.FixtureRequest) -> cluster.Lab:
    """h1: a, c; h2: b; all on the dual-stack net1.  Shared by the read-mostly tests."""
    from daolinet.testing.fixtures import lab_leftovers, need_root, new_lab_name

    need_root()
    name = new_lab_name()
    lab = cluster.Lab.up(name, hosts=2)
    request.addfinalizer(lambda: (cluster.down(name), _none(lab_leftovers(name))))
    api(lab, "POST", "/networks", json=NET)
    for c, h in (("a", "h1"), ("b", "h2"), ("c", "h1")):
        lab.add_container(c, host=h, network="net1")
    return lab


def _none(left: list[str]) -> None:
    assert left == [], f"lab left {left}"


def ip6(lab: cluster.Lab, name: str) -> str:
    found = lab.container(name).ip6
    assert found is not None, f"{name} has no IPv6 address"
    return found


def ping6(lab: cluster.Lab, src: str, dst: str, count: int = 1, wait: float = 2) -> str:
    done = lab.exec(src, ["ping", "-6", "-n", "-c", str(count), "-i", "0.2", "-W", str(wait), dst],
                    timeout=count * 0.2 + wait + 10)
    return done.stdout if done.returncode == 0 else ""


def test_cross_host_first_packet_arrives_and_tcp_flows(lab6: cluster.Lab) -> None:
    out = ping6(lab6, "a", ip6(lab6, "b"))  # the very first packet of the pair
    assert "1 received" in out and "ttl=62" in out, out  # two virtual routers on the way
    report = json.loads(tcp_transfer(lab6, "a", "b", ip6(lab6, "b")).stdout)
    assert report["end"]["sum_received"]["bytes"] > 1_000_000
    # Containers need NDP for the gateway only: every neighbour they learn is the gateway MAC.
    for c in ("a", "b"):
        neigh = [n for n in lab6.exec(c, ["ip", "-6", "neigh"]).stdout.splitlines() if "lladdr" in n]
        assert neigh and all(GATEWAY_MAC in n and "router" in n for n in neigh), neigh


def test_the_route_rewrites_logical_ipv6_into_pips_on_both_hosts(lab6: cluster.Lab) -> None:
    a, b = lab6.container("a"), lab6.container("b")
    assert a.eid is not None and b.eid is not None and a.pip6 and b.pip6
    assert ping6(lab6, "a", ip6(lab6, "b"))
    cookie = f"cookie={route_cookie(a.eid, b.eid).value:#x}"
    s_flows = [f for f in route_flows(lab6, "h1") if cookie in f and "ipv6" in f]
    d_flows = [f for f in route_flows(lab6, "h2") if cookie in f and "ipv6" in f]
    assert len(s_flows) == 2 and len(d_flows) == 2, (s_flows, d_flows)
    egress = next(f for f in s_flows if "table=10" in f)
    assert f"ipv6_src={ip6(lab6, 'a')}" in egress and f"ipv6_dst={ip6(lab6, 'b')}" in egress, egress
    assert f"set_field:{a.pip6}->ipv6_src" in egress and f"set_field:{b.pip6}->ipv6_dst" in egress, egress
    ingress = next(f for f in d_flows if "table=20" in f)
    assert f"ipv6_src={a.pip6}" in ingress and f"set_field:{ip6(lab6, 'b')}->ipv6_dst" in ingress, ingress


def test_same_host_route_is_one_hop(lab6: cluster.Lab) -> None:
    out = ping6(lab6, "c", ip6(lab6, "a"))
    assert "1 received" in out and "ttl=64" in out, out
    report = json.loads(tcp_transfer(lab6, "c", "a", ip6(lab6, "a"), port=5202).stdout)
    assert report["end"]["sum_received"]["bytes"] > 1_000_000


def test_traceroute6_shows_gateway_then_destination_host_then_container(lab6: cluster.Lab) -> None:
    done = lab6.exec("a", ["traceroute", "-6", "-n", "-q", "1", "-w", "2", "-m", "5", ip6(lab6, "b")])
    hops = [line.split()[1] for line in done.stdout.splitlines()[1:]]
    h2 = api(lab6, "GET", "/hosts/h2")
    assert hops == ["fd00:1::1", h2["underlay_ip6"], ip6(lab6, "b")], done.stdout


def test_ping6_to_the_gateway_is_answered(lab6: cluster.Lab) -> None:
    assert "1 received" in ping6(lab6, "b", "fd00:1::1")


def test_forged_ipv6_source_and_ndp_get_nothing_through(lab6: cluster.Lab) -> None:
    b6, a6 = ip6(lab6, "b"), ip6(lab6, "a")
    assert "1 received" in ping6(lab6, "a", "fd00:1::1")  # a knows its gateway by NDP
    before_rx = rx_packets(lab6, "b")
    before = {r["cookie"] for r in api(lab6, "GET", "/routes")}
    lab6.exec("c", ["ip", "-6", "addr", "add", "fd00:1::99/64", "dev", "eth0", "nodad"], check=True)
    try:
        forged = lab6.exec("c", ["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I", "fd00:1::99",
                                 b6])
        assert forged.returncode != 0
    finally:
        lab6.exec("c", ["ip", "-6", "addr", "del", "fd00:1::99/64", "dev", "eth0"], check=True)
    # Forged NDP: c tells a, and everyone, that the gateway's address is at c's MAC.
    for dst in (a6, "ff02::1"):
        lab6.exec("c", ["python3", "-c", _NA_SENDER, "fd00:1::1", dst], check=True)
    neigh = lab6.exec("a", ["ip", "-6", "neigh", "show", "fd00:1::1"]).stdout
    assert GATEWAY_MAC in neigh, neigh
    assert rx_packets(lab6, "b") == before_rx
    after = {r["cookie"]: r for r in api(lab6, "GET", "/routes")}
    assert not [r for k, r in after.items() if k not in before and "c" in r["names"]]
    assert "1 received" in ping6(lab6, "c", b6)  # its real identity still works


# A Neighbor Advertisement (override) "argv[1] is at my MAC", sent to argv[2] from eth0.
_NA_SENDER = """
import socket, struct, sys, ipaddress
target = ipaddress.IPv6Address(sys.argv[1]).packed
mac = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
na = struct.pack('!BBHI', 136, 0, 0, 0x20000000) + target + bytes([2, 1]) + mac
s.sendto(na, (sys.argv[2], 0, 0, socket.if_nametoindex('eth0')))
"""


def echoes(lab: cluster.Lab, name: str) -> tuple[int, int]:
    """(ICMPv6 echo requests, echo replies) the container's namespace received."""
    snmp6 = dict(line.split() for line in lab.exec(name, ["cat", "/proc/net/snmp6"]).stdout.splitlines()
                 if line.strip())
    return int(snmp6["Icmp6InEchos"]), int(snmp6["Icmp6InEchoReplies"])


def test_two_tenants_with_the_same_ipv6_subnet_never_cross(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=2)
    for t in ("red", "blue"):
        api(lab, "POST", "/tenants", json={"name": t})
        api(lab, "POST", "/networks", json={**NET, "tenant": t})
        lab.add_container(f"{t}1", host="h1", network="net1", tenant=t, ip="10.1.0.10")
        lab.add_container(f"{t}2", host="h2", network="net1", tenant=t, ip="10.1.0.20")
    assert ip6(lab, "red2") == ip6(lab, "blue2")  # the same addresses in both tenants
    target = ip6(lab, "red2")
    # Pings and their replies counted by each namespace's own IPv6 stack (the interfaces' rx
    # counters also count the neighbour discovery each container does with its gateway).
    blue = (echoes(lab, "blue1"), echoes(lab, "blue2"))
    assert "3 received" in ping6(lab, "red1", target, count=3)
    assert (echoes(lab, "blue1"), echoes(lab, "blue2")) == blue, "red traffic reached blue"
    assert echoes(lab, "red2")[0] >= 3
    red = (echoes(lab, "red1"), echoes(lab, "red2"))
    assert "3 received" in ping6(lab, "blue1", target, count=3)
    assert (echoes(lab, "red1"), echoes(lab, "red2")) == red, "blue traffic reached red"
    assert len({c.pip6 for c in lab.containers}) == 4


def test_routes_idle_out_and_a_move_keeps_both_addresses(lab_factory: LabFactory) -> None:
    lab = lab_factory(hosts=3, idle_timeout=4)
    api(lab, "POST", "/networks", json=NET)
    lab.add_container("x", host="h1", network="net1")
    lab.add_container("y", host="h2", network="net1")
    assert ping6(lab, "x", ip6(lab, "y"))
    assert route_flows(lab, "h1") and route_flows(lab, "h2")
    wait_for(lambda: not route_flows(lab, "h1") and not route_flows(lab, "h2"), timeout=15,
             what="IPv6 route flows idling out")
    wait_for(lambda: api(lab, "GET", "/routes") == [], timeout=5, what="GET /routes emptying")

    before = (lab.container("y").ip, ip6(lab, "y"), lab.container("y").pip6)
    moved = lab.move_container("y", "h3")
    assert (moved.ip, moved.ip6) == before[:2] and moved.pip6 != before[2]
    addrs = lab.exec("y", ["ip", "-6", "-o", "addr", "show", "scope", "global"]).stdout
    assert re.findall(r"inet6 (\S+)/", addrs) == [before[1]], addrs
    assert "1 received" in ping6(lab, "x", ip6(lab, "y"))
    assert "1 received" in lab.exec("x", ["ping", "-n", "-c", "1", "-W", "2", moved.ip or "?"]).stdout
