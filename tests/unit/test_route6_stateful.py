"""An IPv6 L4 route through conntrack on its client's host, as tests/unit/test_respond_stateful.py
for IPv4: with "front -> back tcp/80" front's IPv6 connections are answered, back's SYN from
port 80 dies in front's host's table 21, revoking the route flushes exactly its IPv6 entries;
ping6 is judged by the policy's ICMP rules."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from typing import Any

from os_ken.lib.packet import ethernet, icmpv6, ipv6, packet, tcp
from test_respond import carry_out, packet_of
from test_route6 import CONFIG, H1, H2, NET, dual

from daolinet.controller.routes import LiveRoute, route_flushes
from daolinet.decide.packet import parse
from daolinet.decide.route import Deny, Plug, decide
from daolinet.flows.respond import Response, respond
from daolinet.model import Endpoint, Group, Host, Rule, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.pipeline import GATEWAY_MAC, ROUTE_ICMP_ZONE, ROUTE_ZONE, Table, route_cookie
from daolinet.testing.factories import synced_network
from daolinet.testing.fakeoftable import FakeNetwork

TCP = 6
FRONT = dual(1, H1, NET, 2, "front")
BACK = dual(2, H2, NET, 3, "back")
OTHER = dual(3, H2, NET, 4, "other")
GROUPS = [Group(1, DEFAULT_TENANT, "fe", ("container:front",)),
          Group(2, DEFAULT_TENANT, "be", ("container:back",)),
          Group(3, DEFAULT_TENANT, "ot", ("container:other",))]
WEB = Rule(1, DEFAULT_TENANT, "l4", "allow", "fe", "be", "tcp", "80", name="web")
PING = Rule(2, DEFAULT_TENANT, "l4", "allow", "fe", "ot", "icmp", name="ping")


def make_view() -> View:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), NET, H1, H2, FRONT, BACK, OTHER, *GROUPS, WEB, PING], rev=1)
    return view


VIEW = make_view()


def syn(src: Endpoint, dst: Endpoint, sport: int, dport: int, flags: int = tcp.TCP_SYN) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=src.mac, ethertype=0x86DD))
    pkt.add_protocol(ipv6.ipv6(src=src.ip6, dst=dst.ip6, nxt=TCP, hop_limit=64))
    pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, bits=flags))
    pkt.serialize()
    return bytes(pkt.data)


def ping6(src: Endpoint, dst: Endpoint, type_: int = icmpv6.ICMPV6_ECHO_REQUEST) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=src.mac, ethertype=0x86DD))
    pkt.add_protocol(ipv6.ipv6(src=src.ip6, dst=dst.ip6, nxt=58, hop_limit=64))
    pkt.add_protocol(icmpv6.icmpv6(type_, data=icmpv6.echo(1, 1, b"ping")))
    pkt.serialize()
    return bytes(pkt.data)


def answer(at: Host, e: Endpoint, data: bytes) -> tuple[Any, Response]:
    assert e.ofport is not None
    meta = parse(at.dpid, e.ofport, Table.EGRESS, 0, data)
    decision = decide(meta, VIEW)
    return decision, respond(decision, meta, data, VIEW, CONFIG)


def delivered(net: FakeNetwork, at: Host, e: Endpoint, data: bytes) -> list[tuple[int, int]]:
    assert e.ofport is not None
    trip = net.trace(at.dpid, packet_of(data, e.ofport))
    return [(d.dpid, d.port) for d in trip.deliveries]


def opened(net: FakeNetwork) -> None:
    decision, response = answer(H1, FRONT, syn(FRONT, BACK, 40000, 80))
    assert isinstance(decision, Plug) and decision.scope == (TCP, 80) and decision.family == 6
    assert [(d.dpid, d.port) for d in carry_out(net, response).deliveries] == [(H2.dpid, BACK.ofport)]


def test_front_opens_tcp_80_over_ipv6_and_back_answers() -> None:
    net = synced_network(VIEW, [H1, H2])
    opened(net)
    assert net[H1.dpid].connections() == {(ROUTE_ZONE, (TCP, FRONT.pip6, BACK.pip6, 40000, 80))}
    assert not net[H2.dpid].connections()
    assert delivered(net, H2, BACK, syn(BACK, FRONT, 80, 40000, tcp.TCP_SYN | tcp.TCP_ACK)) == \
        [(H1.dpid, FRONT.ofport)]


def test_backs_syn_from_port_80_dies_at_fronts_host() -> None:
    net = synced_network(VIEW, [H1, H2])
    opened(net)
    assert BACK.ofport is not None
    trip = net.trace(H2.dpid, packet_of(syn(BACK, FRONT, 80, 5555), BACK.ofport))
    assert not trip.deliveries and not trip.controller
    assert [w.dst_dpid for w in trip.underlay] == [H1.dpid]


def test_revoking_flushes_the_ipv6_connections() -> None:
    net = synced_network(VIEW, [H1, H2])
    opened(net)
    route = LiveRoute(route_cookie(FRONT.id, BACK.id).value, FRONT.id, BACK.id, ("front", "back"),
                      {H1.dpid: 3, H2.dpid: 2}, 0.0, scope=(TCP, 80), client=FRONT.id, family=6)
    ((dpid, flush),) = route_flushes([route], VIEW)
    assert dpid == H1.dpid
    zone, proto, src, dst, dport = _read_flush(flush.data)
    assert (zone, proto, src, dst, dport) == (ROUTE_ZONE, TCP, FRONT.pip6, BACK.pip6, 80)
    assert net[H1.dpid].flush_conntrack(zone, proto, src, dst, dport) == 1


def _read_flush(data: bytes) -> tuple[int, int, str, str, int]:
    """An NXT_CT_FLUSH's zone, protocol, addresses (IPv6 as they are) and destination port."""
    body = data[16:]
    nested = body[8 + 8:8 + struct.unpack("!H", body[10:12])[0]]
    fields: dict[int, bytes] = {}
    while nested:
        kind, length = struct.unpack("!HH", nested[:4])
        fields[kind] = nested[4:length]
        nested = nested[(length + 7) // 8 * 8:]
    src, dst = (str(ipaddress.IPv6Address(fields[k])) for k in (0, 1))
    dport = struct.unpack("!H", fields[3][:2])[0] if 3 in fields else 0
    return struct.unpack("!H", body[-4:-2])[0], body[0], src, dst, dport


def test_ping6_is_judged_by_the_icmp_rule_and_tracked_in_the_icmp_zone() -> None:
    net = synced_network(VIEW, [H1, H2])
    decision, response = answer(H1, FRONT, ping6(FRONT, OTHER))
    assert isinstance(decision, Plug) and decision.scope == (1, 0) and decision.family == 6
    carry_out(net, response)
    assert {zone for zone, _ in net[H1.dpid].connections()} == {ROUTE_ICMP_ZONE}
    assert OTHER.ofport is not None
    reply = ping6(OTHER, FRONT, icmpv6.ICMPV6_ECHO_REPLY)
    assert delivered(net, H2, OTHER, reply) == [(H1.dpid, FRONT.ofport)]
    assert isinstance(answer(H1, FRONT, syn(FRONT, OTHER, 40000, 22))[0], Deny)  # only icmp


def test_an_ipv4_only_peer_has_no_ipv6_route() -> None:
    v4_only = dataclasses.replace(BACK, ip6="", pip6="")
    view = View()
    view.load([Tenant(DEFAULT_TENANT), NET, H1, H2, FRONT, v4_only, *GROUPS, WEB], rev=1)
    meta = parse(H1.dpid, 2, Table.EGRESS, 0, syn(FRONT, BACK, 40000, 80))
    assert isinstance(decide(meta, view), Deny)  # an address nobody of the tenant has
