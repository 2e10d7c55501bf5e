"""The lab's naming and addressing plan: pure, no root needed."""

import ipaddress

import pytest

from daolinet.errors import InvalidInput
from daolinet.lab import plan


def test_hosts_get_distinct_underlay_addresses_and_pools_inside_the_test_range() -> None:
    hosts = plan.plan_hosts("x", hosts=8, racks=2)
    ips = {h.underlay_ip for h in hosts}
    pools = [h.pip_pool for h in hosts]
    assert len(ips) == 8
    assert all(ip in plan.UNDERLAY for ip in ips)
    for i, a in enumerate(pools):
        assert a.subnet_of(plan.UNDERLAY)  # type: ignore[arg-type]
        assert not any(ip in a for ip in ips), "a host address inside a PIP pool"
        for b in pools[i + 1:]:
            assert not a.overlaps(b)


def test_every_host_is_inside_its_rack_subnet_with_the_router_leg() -> None:
    for h in plan.plan_hosts("x", hosts=6, racks=3):
        net = plan.rack_network(h.rack)
        assert h.underlay_ip in net
        assert h.gateway in net
        assert h.pip_pool.subnet_of(net)


def test_racks_are_dealt_round_robin() -> None:
    assert [h.rack for h in plan.plan_hosts("x", hosts=4, racks=2)] == [1, 2, 1, 2]


@pytest.mark.parametrize("name", ["", "A", "1abc", "a-b", "a_b", "a/b", "abcdefghijklm", "a b"])
def test_odd_lab_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid lab name"):
        plan.check_lab_name(name)


@pytest.mark.parametrize(("hosts", "racks"), [(0, 1), (-1, 1), (plan.MAX_HOSTS + 1, 1), (2, 3), (2, 0)])
def test_bad_counts_are_refused(hosts: int, racks: int) -> None:
    with pytest.raises(InvalidInput):
        plan.plan_hosts("x", hosts=hosts, racks=racks)


def test_interface_names_fit_the_kernel_limit() -> None:
    assert len(plan.container_port("a" * 32)) <= 15
    assert plan.container_port("web") != plan.container_port("db")


def test_namespaces_of_two_labs_never_share_a_prefix() -> None:
    # Lab names have no '-', so lab "a" can never sweep lab "ab"'s namespaces.
    a = plan.plan_hosts("a", 1)[0].netns
    ab = plan.plan_hosts("ab", 1)[0].netns
    assert not ab.startswith(plan.netns_prefix("a"))
    assert a.startswith(plan.netns_prefix("a"))


@pytest.mark.parametrize("value", ["10.0.0.1", "10.0.0.300/24", "x/24", "10.0.0.1/33"])
def test_bad_container_addresses_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        plan.check_cidr(value)


def test_good_container_address_is_normalised() -> None:
    assert plan.check_cidr("10.1.0.5/24") == str(ipaddress.IPv4Interface("10.1.0.5/24"))


@pytest.mark.parametrize(("hosts", "racks"), [(1, 1), (8, 2), (plan.MAX_HOSTS, plan.MAX_RACKS)])
def test_the_ipv6_underlay_is_inside_the_benchmarking_prefix_and_never_collides(hosts: int,
                                                                                  racks: int) -> None:
    plans = plan.plan_hosts("x", hosts=hosts, racks=racks)
    ips = {h.underlay_ip6 for h in plans} | {plan.rack_gateway6(r) for r in range(1, racks + 1)}
    assert len(ips) == hosts + racks
    assert all(ip in plan.UNDERLAY6 for ip in ips)
    pools = [h.pip_pool6 for h in plans]
    for i, a in enumerate(pools):
        assert a.prefixlen == 112 and a.subnet_of(plan.UNDERLAY6)
        assert not any(ip in a for ip in ips), "a host or router address inside a PIP pool6"
        for b in pools[i + 1:]:
            assert not a.overlaps(b)


def test_ipv6_hosts_pools_and_router_leg_share_their_racks_64() -> None:
    """The router needs nothing per host: every pool6 lies in its host's rack /64."""
    for h in plan.plan_hosts("x", hosts=6, racks=3):
        net = plan.rack_network6(h.rack)
        assert net.prefixlen == 64
        assert h.underlay_ip6 in net and h.gateway6 in net and h.pip_pool6.subnet_of(net)
        assert ipaddress.IPv6Interface(h.underlay_cidr6).network == net


def test_the_ipv6_plan_reads_as_documented() -> None:
    h1, h2, h3 = plan.plan_hosts("x", hosts=3, racks=2)
    assert (str(h1.underlay_ip6), str(h1.pip_pool6), str(h1.gateway6)) == (
        "2001:2:0:1::1", "2001:2:0:1::1:0/112", "2001:2:0:1::fe")
    assert (str(h2.underlay_ip6), str(h2.pip_pool6)) == ("2001:2:0:2::2", "2001:2:0:2::1:0/112")
    assert (str(h3.underlay_ip6), str(h3.pip_pool6)) == ("2001:2:0:1::3", "2001:2:0:1::2:0/112")
