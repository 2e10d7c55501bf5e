"""The flows that hand containers' DNS questions to their own host's agent (flows/dns.py),
on the fake flow table: a question to the network's gateway or to the resolver address on
udp/53 becomes a packet-in for controller id 53 (the agent's service connection), never one
for the controllers and never a packet on the uplink; anything else to port 53 is routed as
before; a forged source never gets there; the gateway's flow comes with the network's first
container on the host and sync gives the switch every one of them."""

from __future__ import annotations

import dataclasses

import pytest

from daolinet.flows import render
from daolinet.flows.dns import DNS_CONTROLLER_ID, dns_flow, dns_flows
from daolinet.flows.spec import FlowSpec
from daolinet.model import Endpoint, View
from daolinet.model.addresses import RESOLVER4, RESOLVER6
from daolinet.ofp.codec import encode
from daolinet.pipeline import GATEWAY_MAC, Table
from daolinet.testing.factories import (
    dual_stack,
    ipv6_from,
    make_endpoint,
    make_host,
    make_network,
    synced_network,
    topology,
)
from daolinet.testing.fakeoftable import IPPROTO_TCP, IPPROTO_UDP, Packet, ip_packet

H1, H2 = make_host(1), make_host(2)
NET1, NET2 = make_network(1), make_network(2)
OTHER = dataclasses.replace(make_network(3, tenant="other"), subnet="10.1.0.0/24", gateway="10.1.0.1")
A = make_endpoint(1, H1, NET1, 2, "a")
B = make_endpoint(2, H2, NET2, 2, "b")
C = make_endpoint(3, H1, OTHER, 3, "c")  # another tenant, the same gateway address as a's network


def make_view() -> View:
    view = View()
    view.load([NET1, NET2, OTHER, H1, H2, A, B, C], rev=1)
    return view


def question(e: Endpoint, dst: str, proto: int = IPPROTO_UDP, port: int = 53, **fields: object) -> Packet:
    assert e.ofport is not None
    pkt = ip_packet(e.ofport, e.mac, GATEWAY_MAC, e.ip, dst, proto=proto, dst_port=port)
    pkt.update(fields)  # type: ignore[arg-type]
    return pkt


@pytest.mark.parametrize("dst", ["10.1.0.1", str(RESOLVER4)], ids=["gateway", "resolver"])
@pytest.mark.parametrize("e", [A, C], ids=["tenant", "other-tenant"])
def test_a_question_to_the_gateway_or_resolver_goes_to_the_agent_only(e: Endpoint, dst: str) -> None:
    net = synced_network(make_view(), [H1, H2])
    result = net[H1.dpid].lookup(question(e, dst))
    asked = [(n, p["in_port"], p["udp_dst"]) for n, p in result.to_service]
    assert asked == [(DNS_CONTROLLER_ID, e.ofport, 53)]
    assert not result.to_controller and not result.outputs
    assert result.path[-1].table is Table.GUARD


@pytest.mark.parametrize(("dst", "proto", "port"), [
    ("10.1.0.1", IPPROTO_TCP, 53),  # TCP: routed like any connection
    ("10.1.0.1", IPPROTO_UDP, 5353),
    ("10.2.0.12", IPPROTO_UDP, 53),  # a container serving DNS itself
    ("203.0.113.53", IPPROTO_UDP, 53),  # someone else's resolver
], ids=["tcp", "other-port", "container", "outside"])
def test_other_packets_to_port_53_are_routed_as_before(dst: str, proto: int, port: int) -> None:
    net = synced_network(make_view(), [H1, H2])
    result = net[H1.dpid].lookup(question(A, dst, proto, port))
    assert not result.to_service
    assert [r for r, _ in result.to_controller] == ["no_match"]  # the egress miss: a route to plug


@pytest.mark.parametrize("forged", [{"ipv4_src": "10.1.0.99"}, {"eth_src": "02:00:00:00:99:99"},
                                    {"in_port": 9}], ids=["ip", "mac", "port"])
def test_a_forged_question_gets_nowhere(forged: dict[str, object]) -> None:
    net = synced_network(make_view(), [H1, H2])
    result = net[H1.dpid].lookup(question(A, str(RESOLVER4), **forged))
    assert result.dropped and [f.table for f in result.path] == [Table.CLASSIFY]  # classify's drop


def test_a_host_holds_the_resolver_flow_and_one_per_gateway_of_its_networks() -> None:
    view = make_view()
    assert [f.match.get("ipv4_dst") for f in dns_flows(view, H1)] == [str(RESOLVER4), "10.1.0.1"]
    assert [f.match.get("ipv4_dst") for f in dns_flows(view, H2)] == [str(RESOLVER4), "10.2.0.1"]
    empty = View()
    empty.load([make_host(3)])
    assert [f.match.get("ipv4_dst") for f in dns_flows(empty, make_host(3))] == [str(RESOLVER4)]


def test_the_flow_encodes_as_a_packet_in_for_controller_id_53() -> None:
    msg = render.flow_add(dns_flow("10.1.0.1"))
    [instruction] = msg.instructions
    [action] = instruction.actions
    assert (type(action).__name__, action.controller_id, action.max_len) == ("NXActionController", 53, 0xFFFF)
    assert encode(msg, 1)  # os-ken serialises it


def test_ipv6_questions_go_to_the_agent_on_a_dual_stack_host() -> None:
    topo = dual_stack(topology([(0, 0), (1, 0)]))
    h1, a = topo.hosts[0], topo.endpoints[0]
    view = View()
    view.load([*topo.hosts, *topo.networks, *topo.endpoints], rev=1)
    net = synced_network(view, topo.hosts)
    assert [_dst(f) for f in dns_flows(view, h1)] == [str(RESOLVER4), str(RESOLVER6), "10.1.0.1", "fd00:1::1"]
    for dst in (str(RESOLVER6), "fd00:1::1"):
        pkt = ipv6_from(a, dst)
        pkt.update(ip_proto=IPPROTO_UDP, udp_dst=53)
        del pkt["icmpv6_type"], pkt["icmpv6_code"]
        result = net[h1.dpid].lookup(pkt)
        assert [(n, p["ipv6_dst"]) for n, p in result.to_service] == [(DNS_CONTROLLER_ID, dst)]
    assert str(RESOLVER6) not in [_dst(f) for f in dns_flows(make_view(), H1)]  # an IPv4-only host


def _dst(f: FlowSpec) -> str:
    return str(f.match.get("ipv4_dst") or f.match.get("ipv6_dst"))
