"""A container's classify flows filled into templates (flows/classify_wire.py) are the
bytes os-ken writes for them, whatever its port, MAC and IP; the guard's prefix drops too."""

from __future__ import annotations

from hypothesis import given, settings

from daolinet.flows import render, wire
from daolinet.flows.classify_wire import FIRST, SECOND, classify_flows, templates
from daolinet.flows.infra import flows_for_infra
from daolinet.flows.proactive import flows_for_endpoint
from daolinet.model import Endpoint
from daolinet.ofp.codec import encode
from daolinet.testing.factories import make_host
from daolinet.testing.strategies import endpoints


def test_the_templates_compile() -> None:
    assert templates() is not None
    assert FIRST.ofport != SECOND.ofport


@settings(max_examples=300, deadline=None)
@given(endpoints(7, make_host(1)))
def test_classify_flows_are_os_kens_bytes(e: Endpoint) -> None:
    got = [m.data for m in classify_flows(e)]
    assert got == [encode(render.flow_add(f), 0) for f in flows_for_endpoint(e)]


def test_prefix_drops_encode_like_os_ken() -> None:
    for spec in flows_for_infra(["198.18.0.0/18", "203.0.113.7", "10.0.0.0/8"]):
        assert wire.flow_add(spec).data == encode(render.flow_add(spec), 0)
