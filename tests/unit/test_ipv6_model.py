"""IPv6 in the pure parts (issue 18, step 1): address checks and allocation (model/addresses.py,
store/ipam.py), and the View indexing dual-stack networks, hosts and endpoints beside IPv4
without changing what IPv4 lookups answer."""

from __future__ import annotations

import dataclasses
import re
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daolinet.errors import Conflict, InvalidInput
from daolinet.model import Endpoint, Host, Network, View
from daolinet.model.index import PrefixSet
from daolinet.model.view import Change
from daolinet.store import ipam
from daolinet.testing.factories import make_endpoint, make_host, make_network

NET6 = IPv6Network("fd00:1::/64")


def v6(*last: int) -> set[IPv6Address]:
    return {NET6.network_address + n for n in last}


# -- checks and allocation -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "why"), [
    ("fd00:1::/47", "prefix between /48 and /120"), ("fd00:1::/121", "prefix between /48 and /120"),
    ("10.0.0.0/8", "must be an IPv6 network"), ("fd00:1::1/64", "host bits set (did you mean fd00:1::/64?)"),
    ("fd00:1::", "CIDR form"), ("fd00:zz::/64", "is not a network"), ("fe80::/64", "not a unicast network"),
    ("::ffff:0:0/96", "not a unicast network"), ("fd00:da01::/48", "resolver address"),
])
def test_check_subnet6_refuses_with_the_reason_in_one_line(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(why)) as e:
        ipam.check_subnet6(text)
    assert "\n" not in str(e.value) and str(e.value).startswith("subnet6 ")


@pytest.mark.parametrize("text", ["fd00:1::/64", "2001:db8::/48", "fd00:1:2:3::/120", "FD00:1::/64"])
def test_check_subnet6_accepts_networks_in_canonical_form(text: str) -> None:
    assert str(ipam.check_subnet6(text)) == text.lower()


def test_the_default_ipv6_gateway_is_1_of_the_subnet() -> None:
    assert ipam.default_gateway6(NET6) == IPv6Address("fd00:1::1")


def test_pick_ip6_skips_the_anycast_address_and_the_gateway_and_honours_requests() -> None:
    gw = IPv6Address("fd00:1::1")
    assert ipam.pick_ip6(NET6, gw, {}, None, "web") == IPv6Address("fd00:1::2")
    assert ipam.pick_ip6(NET6, gw, dict.fromkeys(v6(2, 3), "x"), None, "web") == IPv6Address("fd00:1::4")
    assert ipam.pick_ip6(NET6, gw, {}, "fd00:1:0::ff", "web") == IPv6Address("fd00:1::ff")
    with pytest.raises(Conflict, match="ip6 fd00:1::2 of network web is already used by endpoint a"):
        ipam.pick_ip6(NET6, gw, {IPv6Address("fd00:1::2"): "endpoint a"}, "fd00:1::2", "web")
    with pytest.raises(InvalidInput, match="ip6 fd00:1::1 is the gateway of network web"):
        ipam.pick_ip6(NET6, gw, {}, "fd00:1::1", "web")


def test_a_full_ipv6_subnet_and_pool_say_so() -> None:
    small = IPv6Network("fd00:1::/120")
    gw = small.network_address + 1
    used = {small.network_address + n: "x" for n in range(2, 256)}
    with pytest.raises(Conflict, match="network web has no free IPv6 addresses"):
        ipam.pick_ip6(small, gw, used, None, "web")
    pool = IPv6Network("2001:db8::/120")
    with pytest.raises(Conflict, match="host h1 has no free addresses in its pip_pool6 2001:db8::/120"):
        ipam.pick_pip6(pool, {pool.network_address + n for n in range(1, 256)}, set(), "h1")


@given(st.sets(st.integers(0, 300), max_size=40))
def test_first_free_in_ipv6_is_the_lowest_unused_address(used_offsets: set[int]) -> None:
    small = IPv6Network("fd00:1::/120")
    used = {small.network_address + n for n in used_offsets if n < 256}
    free = (small.network_address + n for n in range(256) if small.network_address + n not in used)
    expected = next(free, None)
    assert ipam.first_free(small, used, set()) == expected


# -- the View ------------------------------------------------------------------------------------


def dual_net(n: int, tenant: str = "default") -> Network:
    return dataclasses.replace(make_network(n, tenant), subnet6=f"fd00:{n}::/64", gateway6=f"fd00:{n}::1")


def dual_host(i: int) -> Host:
    return make_host(i, pip_pool6=f"2001:db8:0:{i}::/112", underlay_ip6=f"2001:db8::{i}")


def dual_endpoint(eid: int, host: Host, net: Network) -> Endpoint:
    e = make_endpoint(eid, host, net, ofport=eid + 1)
    return dataclasses.replace(e, ip6=f"fd00:{net.id}::{eid + 10:x}",
                               pip6=f"2001:db8:0:{host.name[1:]}::{eid:x}")


def loaded(*objs: object) -> View:
    view = View()
    view.load(objs)  # type: ignore[arg-type]
    return view


def test_the_view_finds_dual_stack_endpoints_by_either_address() -> None:
    h1, net = dual_host(1), dual_net(1)
    e = dual_endpoint(1, h1, net)
    view = loaded(h1, net, e)
    assert view.by_ip[("default", e.ip)] == view.by_ip[("default", e.ip6)] == e
    assert view.by_pip[e.pip] == view.by_pip[e.pip6] == e
    assert view.gateways[("default", "10.1.0.1")] == view.gateways[("default", "fd00:1::1")] == net
    assert view.network_containing("default", "fd00:1::abcd") == net
    assert view.network_containing("default", "fd00:2::1") is None
    assert view.network_containing("other", "fd00:1::abcd") is None
    assert view.network_containing("default", "10.1.0.7") == net


def test_ipv6_addresses_leave_the_view_with_their_endpoint_move_and_network() -> None:
    h1, h2, net = dual_host(1), dual_host(2), dual_net(1)
    e = dual_endpoint(1, h1, net)
    view = loaded(h1, h2, net, e)
    moved = dataclasses.replace(e, host="h2", pip="198.18.2.11", pip6="2001:db8:0:2::1")
    view.apply(Change(rev=2, obj=moved))
    assert e.pip6 not in view.by_pip and view.by_pip[moved.pip6] == moved
    view.apply(Change(rev=3, obj=moved, deleted=True))
    assert ("default", e.ip6) not in view.by_ip and moved.pip6 not in view.by_pip
    view.apply(Change(rev=4, obj=dataclasses.replace(net, subnet6="", gateway6="")))
    assert ("default", "fd00:1::1") not in view.gateways
    assert view.network_containing("default", "fd00:1::abcd") is None
    assert view.gateways[("default", "10.1.0.1")].subnet6 == ""


def test_ipv6_pools_and_underlay_addresses_are_the_underlays() -> None:
    h1 = dual_host(1)
    view = loaded(h1, make_host(2))
    assert view.is_underlay_ip("2001:db8:0:1::7") and view.is_underlay_ip("2001:db8::1")
    assert not view.is_underlay_ip("2001:db8:0:2::7") and not view.is_underlay_ip("fd00:1::2")
    assert view.is_underlay_ip("198.18.1.7") and view.is_underlay_ip("198.18.2.7")
    view.apply(Change(rev=2, obj=h1, deleted=True))
    assert not view.is_underlay_ip("2001:db8:0:1::7") and not view.is_underlay_ip("2001:db8::1")


def test_ipv4_only_objects_add_no_ipv6_keys() -> None:
    h1, net = make_host(1), make_network(1)
    e = make_endpoint(1, h1, net, ofport=2)
    view = loaded(h1, net, e)
    assert set(view.by_ip) == {("default", e.ip)} and set(view.by_pip) == {e.pip}
    assert set(view.gateways) == {("default", net.gateway)}


@given(st.lists(st.tuples(st.sampled_from(["2001:db8::/64", "2001:db8::/112", "2001:db8:1::/48"]),
                          st.booleans()), max_size=12), st.integers(0, 2**128 - 1))
def test_an_ipv6_prefix_set_is_membership_in_any_of_its_networks(ops: list[tuple[str, bool]],
                                                                  addr: int) -> None:
    prefixes, counts = PrefixSet(version=6), dict[str, int]()
    for cidr, add in ops:
        if add:
            prefixes.add(cidr)
            counts[cidr] = counts.get(cidr, 0) + 1
        elif counts.get(cidr):
            prefixes.remove(cidr)
            counts[cidr] -= 1
    probe = IPv6Address(addr)
    for sample in (probe, IPv6Address("2001:db8::5"), IPv6Address("2001:db8:1:ff::1")):
        expected = any(n and sample in IPv6Network(c) for c, n in counts.items())
        assert (str(sample) in prefixes) == expected
