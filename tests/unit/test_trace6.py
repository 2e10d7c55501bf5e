"""`daolinet trace --ipv6`: the controller's answer for a pair's IPv6 route (controller/trace.py)
and the probes it asks the hosts' agents to trace (agent/trace.py's ProbeIn, probe_text)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from test_route6 import H1, H2, VIEW, A, B, V

from daolinet.agent.trace import ProbeIn, probe_text
from daolinet.controller import trace as ctrl_trace
from daolinet.decide.policy import L4
from daolinet.errors import InvalidInput
from daolinet.pipeline import GATEWAY_MAC


def fake_ctrl() -> Any:
    return SimpleNamespace(view=VIEW, ctx=SimpleNamespace(config=SimpleNamespace(idle_timeout=30),
                                                          routes=SimpleNamespace(all=lambda: [])))


def test_an_ipv6_trace_shows_the_ipv6_routes_flows_and_probe() -> None:
    out = ctrl_trace.trace(fake_ctrl(), A, B, "tcp", 443, family=6)
    assert out["allowed"] and out["family"] == 6
    flows = [f for host in out["flows"].values() for f in host]
    assert flows and all("ipv6" in f for f in flows) and not any("ipv4_" in f for f in flows)
    assert any(f"ipv6_dst={B.ip6}" in f for f in out["flows"][H1.name])
    assert out["probe"][H1.name] == (f"tcp6,in_port={A.ofport},dl_src={A.mac},dl_dst={GATEWAY_MAC},"
                                     f"ipv6_src={A.ip6},ipv6_dst={B.ip6},nw_ttl=64,tp_src=40000,tp_dst=443")
    v4 = ctrl_trace.trace(fake_ctrl(), A, B, "tcp", 443)
    assert "family" not in v4 and not any("ipv6" in f for h in v4["flows"].values() for f in h)


def test_an_ipv6_trace_of_a_container_without_ipv6_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"^container v has no IPv6 address: trace it without --ipv6$"):
        ctrl_trace.trace(fake_ctrl(), A, V, None, None, family=6)


def test_the_hosts_probes_are_ipv6_packets_the_agents_accept() -> None:
    probes = ctrl_trace.probes(A, B, VIEW, L4(6, 40000, 443), family=6)
    assert (probes[H1.name]["nw_src"], probes[H1.name]["nw_dst"]) == (A.ip6, B.ip6)
    assert (probes[H2.name]["nw_src"], probes[H2.name]["nw_dst"], probes[H2.name]["in_port"]) == (
        A.pip6, B.pip6, H2.uplink_ofport)
    texts = {host: probe_text(ProbeIn(**probe)) for host, probe in probes.items()}
    assert texts[H2.name].startswith(f"tcp6,in_port={H2.uplink_ofport},") and \
        f"ipv6_src={A.pip6},ipv6_dst={B.pip6},nw_ttl=63,tp_src=40000,tp_dst=443" in texts[H2.name]
    ping = ctrl_trace.probes(A, B, VIEW, None, family=6)[H1.name]
    assert probe_text(ProbeIn(**ping)).startswith("icmp6,") and probe_text(ProbeIn(**ping)).endswith(
        ",icmpv6_type=128")


def test_a_probe_mixing_ip_versions_is_refused() -> None:
    with pytest.raises(ValidationError, match="different IP versions"):
        ProbeIn(in_port=1, dl_src=A.mac, dl_dst=GATEWAY_MAC, nw_src=A.ip, nw_dst=B.ip6)
    with pytest.raises(ValidationError):
        ProbeIn(in_port=1, dl_src=A.mac, dl_dst=GATEWAY_MAC, nw_src="fd00::1,actions=drop", nw_dst=B.ip6)
