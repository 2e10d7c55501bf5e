"""RouteTable: the controller's list of live hot-plug routes, kept true by FlowRemoved."""

from __future__ import annotations

import pytest

from daolinet.controller.routes import LiveRoute, RouteTable
from daolinet.pipeline import route_cookie

AB = route_cookie(1, 2).value
AC = route_cookie(3, 1).value  # endpoint ids in either order name the same route
DE = route_cookie(4, 5).value
H1, H2, H3 = 1, 2, 3


@pytest.fixture
def table() -> RouteTable:
    t = RouteTable()
    t.plugged(AB, ("a", "b"), {H1: 2, H2: 2}, 10.0)  # cross-host: two flows on each side
    t.plugged(AC, ("a", "c"), {H1: 2}, 11.0)  # same host
    return t


def cookies(routes: list[LiveRoute]) -> set[int]:
    return {r.cookie for r in routes}


def test_plugged_records_a_route(table: RouteTable) -> None:
    ab = table.get(AB)
    assert ab is not None
    assert (ab.a, ab.b, ab.names, ab.created, ab.hits) == (1, 2, ("a", "b"), 10.0, 1)
    assert ab.flows == {H1: 2, H2: 2}
    assert not ab.same_host and ab.dpids == [H1, H2]
    ac = table.get(AC)
    assert ac is not None and (ac.a, ac.b) == (1, 3) and ac.same_host and ac.dpids == [H1]
    assert len(table) == 2 and cookies(table.all()) == {AB, AC}
    assert table.get(DE) is None


def test_plugged_keeps_its_own_copy_of_the_flows() -> None:
    flows = {H1: 2, H2: 2}
    t = RouteTable()
    route = t.plugged(AB, ("a", "b"), flows, 0.0)
    flows[H1] = 0
    assert route.flows == {H1: 2, H2: 2}


def test_route_disappears_only_with_its_last_flow_on_every_switch(table: RouteTable) -> None:
    assert table.flow_removed(H1, AB) is None
    assert table.flow_removed(H1, AB) is None  # H1 is empty, H2 still holds two
    ab = table.get(AB)
    assert ab is not None and ab.flows == {H1: 0, H2: 2} and ab.dpids == [H2]
    assert table.flow_removed(H2, AB) is None
    gone = table.flow_removed(H2, AB)
    assert gone is ab and table.get(AB) is None
    assert cookies(table.all()) == {AC}
    assert cookies(table.of_endpoint(2)) == set() and cookies(table.of_endpoint(1)) == {AC}


def test_flow_removed_in_any_order(table: RouteTable) -> None:
    for dpid in (H2, H1, H2):
        assert table.flow_removed(dpid, AB) is None
    assert table.flow_removed(H1, AB) is not None
    assert table.get(AB) is None


def test_flow_removed_for_unknown_routes_or_switches_changes_nothing(table: RouteTable) -> None:
    assert table.flow_removed(H1, DE) is None
    assert table.flow_removed(H1, 0) is None  # a base flow's cookie
    assert table.flow_removed(H3, AB) is None  # a switch the route never was on
    ab = table.get(AB)
    assert ab is not None and ab.dpids == [H1, H2] and sum(ab.flows.values()) == 4
    assert len(table) == 2


def test_extra_flow_removed_never_goes_negative(table: RouteTable) -> None:
    for _ in range(2):
        table.flow_removed(H1, AC)
    assert table.get(AC) is None
    assert table.flow_removed(H1, AC) is None  # a late duplicate
    table.plugged(AC, ("a", "c"), {H1: 2}, 20.0)
    assert table.flow_removed(H1, AC) is None  # one of two gone: the route lives


def test_of_endpoint(table: RouteTable) -> None:
    assert cookies(table.of_endpoint(1)) == {AB, AC}
    assert cookies(table.of_endpoint(2)) == {AB}
    assert cookies(table.of_endpoint(3)) == {AC}
    assert table.of_endpoint(4) == []
    table.plugged(DE, ("d", "e"), {H1: 2, H3: 2}, 12.0)
    assert cookies(table.of_endpoint(4)) == cookies(table.of_endpoint(5)) == {DE}
    assert cookies(table.of_endpoint(1)) == {AB, AC}


def test_remove(table: RouteTable) -> None:
    ab = table.remove(AB)
    assert ab is not None and ab.cookie == AB
    assert table.get(AB) is None and len(table) == 1
    assert cookies(table.of_endpoint(1)) == {AC} and table.of_endpoint(2) == []
    assert table.remove(AB) is None  # removing twice is harmless
    assert table.flow_removed(H1, AB) is None  # FlowRemoved after a revoke
    assert table.remove(DE) is None
    table.remove(AC)
    assert len(table) == 0 and table.all() == [] and table.of_endpoint(1) == []


def test_replug_counts_hits_and_restores_flows(table: RouteTable) -> None:
    table.flow_removed(H1, AB)
    table.flow_removed(H1, AB)
    again = table.plugged(AB, ("a", "b"), {H1: 2, H2: 2}, 50.0)
    assert again is table.get(AB)
    assert again.hits == 2 and again.flows == {H1: 2, H2: 2} and again.dpids == [H1, H2]
    assert again.created == 10.0  # still the same route
    assert table.plugged(AB, ("a", "b"), {H1: 2, H2: 2}, 60.0).hits == 3
    assert len(table) == 2 and cookies(table.of_endpoint(2)) == {AB}


def test_replug_after_it_was_gone_starts_over(table: RouteTable) -> None:
    table.remove(AB)
    fresh = table.plugged(AB, ("a", "b"), {H1: 2, H2: 2}, 70.0)
    assert fresh.hits == 1 and fresh.created == 70.0
    assert cookies(table.of_endpoint(1)) == {AB, AC}


def test_on_switch(table: RouteTable) -> None:
    assert cookies(table.on_switch(H1)) == {AB, AC}
    assert cookies(table.on_switch(H2)) == {AB}
    assert table.on_switch(H3) == []
    table.flow_removed(H2, AB)
    table.flow_removed(H2, AB)
    assert table.on_switch(H2) == []  # no live flows left there, though the route lives on H1
    assert cookies(table.on_switch(H1)) == {AB, AC}


def test_to_json(table: RouteTable) -> None:
    ab = table.get(AB)
    assert ab is not None
    table.flow_removed(H2, AB)
    assert ab.to_json() == {"cookie": f"{AB:#018x}", "endpoints": [1, 2], "names": ["a", "b"],
                            "switches": ["0x1", "0x2"], "flows": 3, "created": 10.0, "same_host": False,
                            "plugged": 1, "scope": None}
