"""One "still allowed?" rule (decide/route.still_allowed) for revalidation and for
adopting a switch's routes after a restart."""

from __future__ import annotations

from dataclasses import replace

from daolinet.decide.route import still_allowed
from daolinet.model import Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.testing.factories import make_endpoint, make_host, make_network


def view_of(isolated: bool) -> tuple[View, object, object]:
    h1, h2 = make_host(1), make_host(2)
    net = make_network(1)
    if isolated:
        net = replace(net, isolated=True)
    a, b = make_endpoint(1, h1, net, 3), make_endpoint(2, h2, net, 3)
    view = View()
    view.load([Tenant(DEFAULT_TENANT), h1, h2, net, a, b], rev=1)
    return view, a, b


def test_a_port_agnostic_route_on_one_network_stays() -> None:
    view, a, b = view_of(isolated=False)
    assert still_allowed(a, b, view)  # type: ignore[arg-type]


def test_a_route_the_network_no_longer_allows_goes() -> None:
    view, a, b = view_of(isolated=True)
    assert not still_allowed(a, b, view)  # type: ignore[arg-type]


def test_a_scoped_route_without_a_matching_scoped_grant_goes() -> None:
    view, a, b = view_of(isolated=False)  # a port-agnostic grant: the scoped route is not what it would be
    assert not still_allowed(a, b, view, (6, 80), client=1)  # type: ignore[arg-type]
