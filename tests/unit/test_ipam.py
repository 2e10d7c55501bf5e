"""Address allocation helpers: pure, so tested with plain values and properties."""

import re
import time
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daolinet.errors import Conflict, InvalidInput
from daolinet.store import ipam

NET = IPv4Network("10.1.0.0/24")


def addrs(*last: int) -> set[IPv4Address]:
    return {IPv4Address(f"10.1.0.{n}") for n in last}


# -- first_free ----------------------------------------------------------------------


def test_first_free_skips_used_and_reserved() -> None:
    assert ipam.first_free(NET, addrs(2, 3), addrs(0, 1, 255)) == IPv4Address("10.1.0.4")


def test_first_free_returns_none_when_everything_is_taken() -> None:
    net = IPv4Network("10.1.0.0/30")
    assert ipam.first_free(net, addrs(2), addrs(0, 1, 3)) is None


def test_first_free_ignores_used_addresses_outside_the_network() -> None:
    net = IPv4Network("10.1.0.0/30")
    assert ipam.first_free(net, {IPv4Address("10.1.0.4")} | addrs(0, 1), set()) == IPv4Address("10.1.0.2")


def test_first_free_in_a_big_network_costs_what_is_used_not_its_size() -> None:
    big = IPv4Network("10.0.0.0/8")
    used = {big.network_address + i for i in range(5000)}
    start = time.perf_counter()
    for _ in range(20):
        assert ipam.first_free(big, used, {big.network_address}) == big.network_address + 5000
    assert time.perf_counter() - start < 2.0  # listing 16M addresses per call would take minutes


@given(prefix=st.integers(min_value=24, max_value=30), data=st.data())
def test_first_free_is_the_lowest_unused_address(prefix: int, data: st.DataObject) -> None:
    net = IPv4Network(f"10.9.0.0/{prefix}")
    everything = list(net)
    used = set(data.draw(st.lists(st.sampled_from(everything))))
    reserved = set(data.draw(st.lists(st.sampled_from(everything), max_size=3)))
    found = ipam.first_free(net, used, reserved)
    free = [a for a in everything if a not in used and a not in reserved]
    assert found == (free[0] if free else None)


# -- subnets and addresses -------------------------------------------------------------


@pytest.mark.parametrize(("text", "why"), [
    ("10.1.0.0", "CIDR form"),
    ("10.1.0.5/24", "host bits set (did you mean 10.1.0.0/24?)"),
    ("10.0.0.0/31", "between /8 and /30"),
    ("10.0.0.0/7", "between /8 and /30"),
    ("fd00::/64", "must be an IPv4 network"),
    ("bogus/24", "is not a network"),
])
def test_check_subnet_refuses_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="subnet") as err:
        ipam.check_subnet(text)
    assert why in str(err.value) and text in str(err.value)


@pytest.mark.parametrize("text", ["10.0.0.0/8", "10.1.0.0/24", "192.168.7.4/30"])
def test_check_subnet_accepts_canonical_networks(text: str) -> None:
    assert str(ipam.check_subnet(text)) == text


@pytest.mark.parametrize(("text", "why"), [
    ("10.2.0.1", "outside"), ("10.1.0.0", "network address"), ("10.1.0.255", "broadcast"),
    ("10.1.0", "not an"),
])
def test_check_in_subnet_refuses_unusable_addresses(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        ipam.check_in_subnet(text, NET, "gateway")


def test_check_in_subnet_returns_the_address() -> None:
    assert ipam.check_in_subnet(" 10.1.0.7", NET) == IPv4Address("10.1.0.7")


# -- picking addresses -------------------------------------------------------------------


def test_pick_ip_skips_network_gateway_and_broadcast() -> None:
    net = IPv4Network("10.1.0.0/29")
    got = [ipam.pick_ip(net, IPv4Address("10.1.0.1"), {}, None, "web")]
    used = {got[0]: "a"}
    while True:
        try:
            got.append(ipam.pick_ip(net, IPv4Address("10.1.0.1"), used, None, "web"))
        except Conflict as e:
            assert "network web has no free addresses" in str(e)
            break
        used[got[-1]] = "x"
    assert [str(a) for a in got] == [f"10.1.0.{n}" for n in range(2, 7)]


def test_pick_ip_honours_a_free_request_and_names_the_holder_of_a_taken_one() -> None:
    gw = IPv4Address("10.1.0.1")
    assert ipam.pick_ip(NET, gw, {}, "10.1.0.77", "web") == IPv4Address("10.1.0.77")
    with pytest.raises(Conflict, match=re.escape("10.1.0.77 of network web is already used by endpoint db")):
        ipam.pick_ip(NET, gw, {IPv4Address("10.1.0.77"): "endpoint db"}, "10.1.0.77", "web")
    with pytest.raises(InvalidInput, match="gateway of network web"):
        ipam.pick_ip(NET, gw, {}, "10.1.0.1", "web")


def test_pick_pip_never_hands_out_the_pool_network_or_broadcast() -> None:
    pool = IPv4Network("198.18.1.0/30")
    first = ipam.pick_pip(pool, set(), set(), "h1")
    second = ipam.pick_pip(pool, {first}, set(), "h1")
    assert (str(first), str(second)) == ("198.18.1.1", "198.18.1.2")
    with pytest.raises(Conflict, match="host h1 has no free addresses"):
        ipam.pick_pip(pool, {first, second}, set(), "h1")


# -- MACs ----------------------------------------------------------------------------------


def test_mac_for_id_carries_the_id_in_32_bits() -> None:
    assert ipam.mac_for_id(1) == "02:d1:00:00:00:01"
    assert ipam.mac_for_id(0xABCDEF) == "02:d1:00:ab:cd:ef"
    with pytest.raises(InvalidInput):
        ipam.mac_for_id(2**32)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=2**32 - 1))
def test_mac_for_id_is_a_valid_unicast_mac_unique_per_id(a: int, b: int) -> None:
    assert ipam.check_mac(ipam.mac_for_id(a)) == ipam.mac_for_id(a)
    assert (ipam.mac_for_id(a) == ipam.mac_for_id(b)) == (a == b)


def test_check_mac_normalises() -> None:
    assert ipam.check_mac("02-AB-cd-00-00-01") == "02:ab:cd:00:00:01"


@pytest.mark.parametrize(("text", "why"), [
    ("01:00:5e:00:00:01", "multicast"), ("ff:ff:ff:ff:ff:ff", "multicast"), ("00:00:00:00:00:00", "zero"),
    ("02:00:00:00:00", "not a MAC"), ("02:00-00:00:00:01", "not a MAC"), ("zz:00:00:00:00:01", "not a MAC"),
])
def test_check_mac_refuses(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        ipam.check_mac(text)
