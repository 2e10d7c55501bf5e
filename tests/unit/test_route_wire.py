"""The route templates (flows/route_wire.py) are compiled from flows/route.py's FlowSpecs:
their bytes are os-ken's rendering of those FlowSpecs (flows/render.py), for every shape."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.flows import render
from daolinet.flows.route import RouteEnds, flows_for_route, next_hop_mac
from daolinet.flows.route_wire import Shape, _stand_in, route_bytes, shape_of
from daolinet.model import Host
from daolinet.ofp.codec import encode
from daolinet.testing.strategies import hosts, routes, routes6


def assert_rendered_by_os_ken(ends: RouteEnds, idle: int) -> None:
    plan, fast = flows_for_route(ends, idle), route_bytes(ends, idle)
    assert fast.cookie == plan.cookie
    assert [d for d, _ in fast.steps] == [d for d, _ in plan.steps]
    for (_, specs), (_, encoded) in zip(plan.steps, fast.steps, strict=True):
        assert [e.data for e in encoded] == [encode(render.flow_add(s), 0) for s in specs]


@settings(max_examples=500, deadline=None)
@given(routes(), st.integers(0, 0xFFFF))
def test_compiled_route_bytes_are_os_kens_rendering(ends: RouteEnds, idle: int) -> None:
    assert_rendered_by_os_ken(ends, idle)


@settings(max_examples=300, deadline=None)
@given(routes6(), st.integers(0, 0xFFFF))
def test_compiled_ipv6_route_bytes_are_os_kens_rendering(ends: RouteEnds, idle: int) -> None:
    assert_rendered_by_os_ken(ends, idle)


SHAPES = [Shape(same, routed, proto, server_is_b, pab, pba, family)
          for same, routed, proto, server_is_b, pab, pba, family in itertools.product(
              (True, False), (True, False), (None, 1, 6, 17), (True, False), (True, False), (True, False),
              (4, 6))
          if (not same or (pab and pba)) and (same or not routed) and (proto is not None or server_is_b)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_shape_compiles_to_os_kens_rendering(shape: Shape) -> None:
    ends, idle = _stand_in(shape, 2)
    assert shape_of(ends) == shape
    assert_rendered_by_os_ken(ends, idle)


@given(hosts(1), hosts(2))
def test_next_hop_is_the_peer_on_its_segment_else_the_gateway(src: Host, dst: Host) -> None:
    segment = ipaddress.IPv4Network(f"{src.underlay_ip}/{src.underlay_prefix}", strict=False)
    assert src.same_segment(dst) == (ipaddress.IPv4Address(dst.underlay_ip) in segment)
    direct = ipaddress.IPv4Address(dst.underlay_ip) in segment or not src.underlay_gateway_mac
    assert next_hop_mac(src, dst) == (dst.underlay_mac if direct else src.underlay_gateway_mac)
