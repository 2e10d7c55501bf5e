"""The fast encoder (flows/wire.py) writes exactly the bytes os-ken would
(flows/render.py + ofp/codec.py), for every route and every base flow."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.flows import render, wire
from daolinet.flows.proactive import flows_for_switch
from daolinet.flows.route import RouteEnds, drop_flow, flows_for_route
from daolinet.flows.spec import DecTtl, FlowSpec, Match, Output, SetField
from daolinet.ofp.codec import encode, ofp
from daolinet.pipeline import Table
from daolinet.testing.strategies import ipv4s, macs, ofports, routes, u16


def reference(spec: FlowSpec) -> bytes:
    return encode(render.flow_add(spec), 0)


@settings(max_examples=400, deadline=None)
@given(routes(), st.integers(0, 0xFFFF))
def test_route_flows_encode_like_os_ken(ends: RouteEnds, idle: int) -> None:
    for _, flows in flows_for_route(ends, idle).steps:
        for spec in flows:
            assert wire.flow_add(spec).data == reference(spec), spec.describe()


@settings(max_examples=100, deadline=None)
@given(routes(), st.integers(0, 0xFFFF))
def test_drop_and_base_flows_encode_like_os_ken(ends: RouteEnds, timeout: int) -> None:
    """Base flows use prefixes, conntrack, reg moves, gotos: the fast path or its fallback."""
    specs = [drop_flow(ends.a, ends.b.ip, timeout), *flows_for_switch(ends.ha, [ends.a])]
    for spec in specs:
        assert wire.flow_add(spec).data == reference(spec), spec.describe()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1), st.sampled_from([None, *Table]))
def test_cookie_delete_encodes_like_os_ken(cookie: int, mask: int, table: Table | None) -> None:
    assert wire.flow_delete_cookie(cookie, mask, table).data == encode(
        render.flow_delete_cookie(cookie, mask, table), 0)


@settings(max_examples=200, deadline=None)
@given(ofports, st.binary(min_size=0, max_size=1500))
def test_packet_outs_encode_like_os_ken(port: int, data: bytes) -> None:
    assert wire.packet_out_to_table(port, data).data == encode(render.packet_out_to_table(port, data), 0)
    assert wire.packet_out_to_port(port, data).data == encode(render.packet_out_to_port(port, data), 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["in_port", "ip_proto", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
                                 "ipv4_src", "ipv4_dst"]), unique=True),
       st.integers(1, 0xFF), u16, ipv4s, macs, st.sampled_from(["eth_src", "eth_dst"]))
def test_any_field_order_encodes_like_os_ken(fields: list[str], small: int, port: int, ip: str, mac: str,
                                              mac_field: str) -> None:
    values = {f: (ip if f.startswith("ipv4") else small if f in ("in_port", "ip_proto") else port)
              for f in fields}
    spec = FlowSpec(Table.INGRESS, 123, Match.of(eth_type=0x800, **values),
                    (DecTtl(), SetField(mac_field, mac), SetField("ipv4_dst", ip), Output(port)),
                    cookie=7, idle_timeout=3, send_flow_rem=True)
    assert wire.flow_add(spec).data == reference(spec)
    bare = replace(spec, actions=(), send_flow_rem=False)
    assert wire.flow_add(bare).data == reference(bare)


def test_xid_is_stamped_by_the_channel() -> None:
    from daolinet.ofp.channel import Channel

    ch = Channel()
    ch.data_to_send()
    xid = ch.send(wire.packet_out_to_port(3, b"x" * 20))
    sent = ch.data_to_send()
    assert int.from_bytes(sent[4:8], "big") == xid
    assert sent == encode(render.packet_out_to_port(3, b"x" * 20), xid)
    assert sent[1] == ofp.OFPT_PACKET_OUT
