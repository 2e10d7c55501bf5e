"""The IPv6 flows on the wire: the fields os-ken knows encode as os-ken does (fast path
or fallback), and the two it lacks (nd_reserved, nd_options_type, flows/ericoxm.py)
are what `ovs-ofctl ofp-print` reads back - which also checks every action against
its flow's match, as ovs-vswitchd does on a FlowMod."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daolinet.flows import ericoxm, render, wire
from daolinet.flows.classify_wire import classify_flows
from daolinet.flows.ndp import GATEWAY_FLAGS, flows_for_endpoint6, flows_for_host6, icmp6
from daolinet.flows.proactive import flows_for_endpoint
from daolinet.flows.spec import ETH_IPV6, FlowSpec, Match, Output, SetField
from daolinet.model import Endpoint, Host
from daolinet.ofp.codec import encode
from daolinet.pipeline import GATEWAY_MAC, Table
from daolinet.testing.factories import dual_stack, small_topology
from daolinet.testing.strategies import endpoints6, hosts6, ipv6s, macs, ofports


def reference(spec: FlowSpec) -> bytes:
    return encode(render.flow_add(spec), 0)


def has_ericoxm(spec: FlowSpec) -> bool:
    return any(isinstance(a, SetField) and a.field in ericoxm.ERICOXM_FIELDS for a in spec.actions)


@settings(max_examples=200, deadline=None)
@given(hosts6(1), st.data())
def test_ipv6_flows_encode_like_os_ken(host: Host, data: st.DataObject) -> None:
    e = data.draw(endpoints6(5, host))
    for spec in flows_for_host6(host) + flows_for_endpoint6(e):
        if not has_ericoxm(spec):
            assert wire.flow_add(spec).data == reference(spec), spec.describe()


@settings(max_examples=200, deadline=None)
@given(ofports, macs, ipv6s, ipv6s, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF))
def test_the_fast_path_writes_ipv6_and_nd_set_fields_as_os_ken_and_the_fallback(
        port: int, mac: str, src: str, target: str, flags: int, opt: int) -> None:
    known = FlowSpec(Table.NDP, 10, icmp6(in_port=port, icmpv6_type=135, ipv6_src=src, ipv6_nd_target=target),
                     (SetField("eth_src", mac), SetField("ipv6_dst", src), SetField("ipv6_src", target),
                      SetField("icmpv6_type", 136), Output(port)), goto=Table.NA)
    assert wire.flow_add(known).data == reference(known)
    # os-ken cannot write these two: the fallback carries our bytes, and both paths agree
    nd = replace(known, actions=(*known.actions[:-1], SetField("nd_reserved", flags),
                                 SetField("nd_options_type", opt), known.actions[-1]))
    assert wire.flow_add(nd).data == reference(nd)
    tll = FlowSpec(Table.NA, 10, icmp6(icmpv6_type=136), (SetField("ipv6_nd_tll", mac), Output(port)))
    assert wire.flow_add(tll).data == reference(tll)


@settings(max_examples=100, deadline=None)
@given(hosts6(1), st.data())
def test_a_dual_stack_containers_classify_flows_are_os_kens_bytes(host: Host, data: st.DataObject) -> None:
    e = data.draw(endpoints6(5, host))
    assert [m.data for m in classify_flows(e)] == [reference(f) for f in flows_for_endpoint(e)]
    assert len(flows_for_endpoint(e)) == 4


def test_ericoxm_set_fields_are_the_bytes_ovs_names() -> None:
    # class 0x1000, field 1 (4 bytes) / field 2 (1 byte), padded to 8 (ovs-fields(7))
    assert ericoxm.set_field("nd_reserved", GATEWAY_FLAGS).hex() == "0019001010000204e000000000000000"
    assert ericoxm.set_field("nd_options_type", 2).hex() == "0019001010000401" + "0200000000000000"


def ofp_print(data: bytes) -> str:
    ofctl = shutil.which("ovs-ofctl")
    if ofctl is None:
        pytest.skip("ovs-ofctl is not installed (openvswitch-common)")
    out = subprocess.run([ofctl, "ofp-print", data.hex()], capture_output=True, text=True, timeout=30,
                         check=True)
    return out.stdout + out.stderr


def test_ovs_reads_the_nd_flows_back_as_meant() -> None:
    topo = dual_stack(small_topology())
    host = topo.hosts[0]
    e = topo.endpoints_on(host)[0]
    flows = flows_for_host6(host) + flows_for_endpoint6(e)
    printed = {spec: ofp_print(wire.flow_add(spec).data) for spec in flows}
    for spec, text in printed.items():
        assert "error" not in text.lower() and "OFPT_FLOW_MOD" in text, (spec.describe(), text)
    gateway = next(t for s, t in printed.items() if s.table is Table.NDP and GATEWAY_MAC in t)
    assert "icmp6" in gateway and "icmp_type=135" in gateway
    assert f"set_field:{GATEWAY_FLAGS}->nd_reserved" in gateway
    assert "set_field:2->nd_options_type" in gateway
    assert "move:NXM_NX_ND_TARGET[]->NXM_NX_IPV6_SRC[]" in gateway and "set_field:136->icmpv6_type" in gateway
    assert "goto_table:32" in gateway
    proxy = next(t for s, t in printed.items() if s.match.get("ipv6_nd_target"))
    assert f"nd_target={host.pip_pool6}" in proxy and host.underlay_mac in proxy
    assert "set_field:1610612736->nd_reserved" in proxy  # solicited + override, no router flag
    finish = next(t for s, t in printed.items() if s.table is Table.NA and s.actions)
    assert "move:NXM_OF_ETH_SRC[]->NXM_NX_ND_TLL[]" in finish and "IN_PORT" in finish
    spoof = next(t for s, t in printed.items() if s.match.get("ipv6_src") == e.ip6)
    assert f"ipv6_src={e.ip6}" in spoof and f"in_port={e.ofport}" in spoof


def test_ovs_refuses_the_target_address_set_on_a_solicitation() -> None:
    """Why table NA exists: setting nd_tll in a flow that matches an NS is inconsistent to OVS."""
    spec = FlowSpec(Table.NA, 10, icmp6(icmpv6_type=135), (SetField("ipv6_nd_tll", GATEWAY_MAC),))
    assert "OFPBAC_MATCH_INCONSISTENT" in ofp_print(reference(spec))


def test_an_ipv6_prefix_match_encodes_as_value_and_mask() -> None:
    spec = FlowSpec(Table.GUARD, 400, Match.of(eth_type=ETH_IPV6, ipv6_dst="ff00::/8"))
    assert "ipv6_dst=ff00::/8" in ofp_print(wire.flow_add(spec).data)


def test_dual_stack_factory_gives_every_object_ipv6() -> None:
    topo = dual_stack(small_topology())
    assert all(h.pip_pool6 and h.underlay_ip6 for h in topo.hosts)
    assert all(n.subnet6 and n.gateway6 for n in topo.networks)
    assert all(isinstance(e, Endpoint) and e.ip6 and e.pip6 for e in topo.endpoints)
