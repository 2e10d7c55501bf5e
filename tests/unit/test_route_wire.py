"""The route template (flows/route_wire.py) writes exactly the FlowMods that
flows/route.py defines, encoded (flows/wire.py, itself proven equal to os-ken)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.flows import wire
from daolinet.flows.route import RouteEnds, flows_for_route, next_hop_mac
from daolinet.flows.route_wire import route_bytes
from daolinet.model import Host
from daolinet.testing.strategies import hosts, routes


@settings(max_examples=500, deadline=None)
@given(routes(), st.integers(0, 0xFFFF))
def test_route_template_equals_the_route_definition(ends: RouteEnds, idle: int) -> None:
    plan, fast = flows_for_route(ends, idle), route_bytes(ends, idle)
    assert fast.cookie == plan.cookie
    assert [d for d, _ in fast.steps] == [d for d, _ in plan.steps]
    for (_, specs), (_, encoded) in zip(plan.steps, fast.steps, strict=True):
        assert [e.data for e in encoded] == [wire.flow_add(s).data for s in specs]


@given(hosts(1), hosts(2))
def test_next_hop_is_the_peer_on_its_segment_else_the_gateway(src: Host, dst: Host) -> None:
    segment = ipaddress.IPv4Network(f"{src.underlay_ip}/{src.underlay_prefix}", strict=False)
    assert src.same_segment(dst) == (ipaddress.IPv4Address(dst.underlay_ip) in segment)
    direct = ipaddress.IPv4Address(dst.underlay_ip) in segment or not src.underlay_gateway_mac
    assert next_hop_mac(src, dst) == (dst.underlay_mac if direct else src.underlay_gateway_mac)
