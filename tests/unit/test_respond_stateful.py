"""An L4 route through conntrack on its client's host (flows/route.py, respond.py), end to
end on the fake flow table: PacketIn -> decide -> Response -> FlowMods and PacketOuts ->
where packets end.  With "front -> back tcp/80" the client's connections are answered; the
server may not open one from its port 80, across hosts or on one host; its host stays
conntrack-free; revoking the route flushes exactly its connections."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from os_ken.lib.packet import ethernet, icmp, ipv4, packet, tcp
from test_respond import CONFIG, H1, H2, NET, ROUTER_MAC, carry_out, delivered_to, packet_of

from daolinet.controller.routes import LiveRoute, route_flushes
from daolinet.decide.packet import parse
from daolinet.decide.route import Deny, Plug, decide
from daolinet.flows.respond import Response, respond
from daolinet.model import Endpoint, Group, Host, Rule, Tenant, View
from daolinet.model.objects import DEFAULT_TENANT
from daolinet.pipeline import GATEWAY_MAC, ROUTE_ZONE, Table, route_cookie, route_zone
from daolinet.testing.factories import make_endpoint, synced_network
from daolinet.testing.fakeoftable import FakeNetwork

TCP = 6
FRONT = make_endpoint(1, H1, NET, 2, "front")
BACK = make_endpoint(2, H2, NET, 3, "back")
NEAR = make_endpoint(3, H1, NET, 4, "near")  # another server, on front's host
OTHER = make_endpoint(4, H2, NET, 5, "other")  # no rule about it
GROUPS = [Group(1, DEFAULT_TENANT, "fe", ("container:front",)),
          Group(2, DEFAULT_TENANT, "be", ("container:back", "container:near"))]
WEB = Rule(1, DEFAULT_TENANT, "l4", "allow", "fe", "be", "tcp", "80", name="web")


def make_view() -> View:
    view = View()
    view.load([Tenant(DEFAULT_TENANT), NET, dataclasses.replace(H1, underlay_gateway_mac=ROUTER_MAC),
               dataclasses.replace(H2, underlay_gateway_mac=ROUTER_MAC), FRONT, BACK, NEAR, OTHER,
               *GROUPS, WEB], rev=1)
    return view


VIEW = make_view()


def make_net() -> FakeNetwork:
    return synced_network(VIEW, [H1, H2])


def syn(src: Endpoint, dst: Endpoint, sport: int, dport: int, flags: int = tcp.TCP_SYN) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=src.mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=src.ip, dst=dst.ip, proto=TCP, ttl=64))
    pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, bits=flags))
    pkt.serialize()
    return bytes(pkt.data)


def ping(src: Endpoint, dst: Endpoint) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=GATEWAY_MAC, src=src.mac, ethertype=0x0800))
    pkt.add_protocol(ipv4.ipv4(src=src.ip, dst=dst.ip, proto=1, ttl=64))
    pkt.add_protocol(icmp.icmp(icmp.ICMP_ECHO_REQUEST, data=icmp.echo(1, 1, b"ping")))
    pkt.serialize()
    return bytes(pkt.data)


def answer(at: Host, e: Endpoint, data: bytes) -> tuple[Any, Response]:
    assert e.ofport is not None
    meta = parse(at.dpid, e.ofport, Table.EGRESS, 0, data)
    decision = decide(meta, VIEW)
    return decision, respond(decision, meta, data, VIEW, CONFIG)


def send(net: FakeNetwork, at: Host, e: Endpoint, data: bytes) -> list[tuple[int, int, str, str, str]]:
    assert e.ofport is not None
    trip = net.trace(at.dpid, packet_of(data, e.ofport))
    assert not trip.controller, trip.controller  # no miss: the route decides
    return delivered_to(trip)


def opened(net: FakeNetwork, client: Endpoint, server: Endpoint, at: Host, sport: int = 40000) -> Response:
    """The client's first SYN to server:80, answered by the controller and carried out."""
    decision, response = answer(at, client, syn(client, server, sport, 80))
    assert isinstance(decision, Plug) and decision.scope == (TCP, 80)
    first = carry_out(net, response)
    assert [d[:2] for d in delivered_to(first)] == [(VIEW.host_of(server).dpid, server.ofport)]  # type: ignore[union-attr]
    return response


def test_the_client_opens_tcp_80_and_its_server_answers() -> None:
    net = make_net()
    response = opened(net, FRONT, BACK, H1)
    assert not response.confirm  # the first packet still goes straight to back ...
    # ... and committed on front's host, by PIP
    assert net[H1.dpid].connections() == {(ROUTE_ZONE, (TCP, FRONT.pip, BACK.pip, 40000, 80))}
    assert not net[H2.dpid].connections()  # the server's host is stateless
    assert send(net, H2, BACK, syn(BACK, FRONT, 80, 40000, tcp.TCP_SYN | tcp.TCP_ACK)) == \
        [(H1.dpid, FRONT.ofport, FRONT.mac, BACK.ip, FRONT.ip)]
    assert send(net, H1, FRONT, syn(FRONT, BACK, 40000, 80, tcp.TCP_ACK)) == \
        [(H2.dpid, BACK.ofport, BACK.mac, FRONT.ip, BACK.ip)]
    # a second connection: committed by the client's flow itself
    assert send(net, H1, FRONT, syn(FRONT, BACK, 40001, 80))[0][:2] == (H2.dpid, BACK.ofport)
    assert send(net, H2, BACK, syn(BACK, FRONT, 80, 40001, tcp.TCP_SYN | tcp.TCP_ACK))[0][:2] == \
        (H1.dpid, FRONT.ofport)


def test_the_servers_syn_from_port_80_is_dropped_at_the_clients_host() -> None:
    net = make_net()
    opened(net, FRONT, BACK, H1)
    trip = net.trace(H2.dpid, packet_of(syn(BACK, FRONT, 80, 5555), BACK.ofport))  # type: ignore[arg-type]
    assert not trip.deliveries and not trip.controller
    assert [w.dst_dpid for w in trip.underlay] == [H1.dpid]  # left back's host, died in front's
    (_, on_h1), = [(d, r) for d, r in trip.results if d == H1.dpid]
    last = on_h1.path[-1]
    assert (last.table, last.priority, last.actions) == (Table.STATEFUL, 0, ())  # table 21's miss: drop


def test_the_servers_syn_is_not_delivered_when_it_is_the_first_packet() -> None:
    net = make_net()
    decision, response = answer(H2, BACK, syn(BACK, FRONT, 80, 5555))
    assert isinstance(decision, Plug) and not decision.server_is_b  # a "reply" as far as policy knows
    assert response.confirm  # the long way: through front's host's conntrack
    trip = carry_out(net, response)
    assert not trip.deliveries and not trip.controller


def test_the_server_cannot_ping_the_client() -> None:
    decision, _ = answer(H2, BACK, ping(BACK, FRONT))
    assert isinstance(decision, Deny)


@pytest.mark.parametrize("sport", [80, 22])
def test_on_one_host_only_the_clients_connections_are_answered(sport: int) -> None:
    net = make_net()
    opened(net, FRONT, NEAR, H1)
    assert FRONT.ofport is not None
    zone = route_zone(TCP, FRONT.ofport)
    assert net[H1.dpid].connections() == {(zone, (TCP, FRONT.ip, NEAR.ip, 40000, 80))}
    assert send(net, H1, NEAR, syn(NEAR, FRONT, 80, 40000, tcp.TCP_SYN | tcp.TCP_ACK)) == \
        [(H1.dpid, FRONT.ofport, FRONT.mac, NEAR.ip, FRONT.ip)]
    trip = net.trace(H1.dpid, packet_of(syn(NEAR, FRONT, sport, 5555), NEAR.ofport))  # type: ignore[arg-type]
    assert not trip.deliveries


def test_routes_without_a_rule_stay_conntrack_free() -> None:
    net = make_net()
    decision, response = answer(H2, BACK, syn(BACK, OTHER, 40000, 22))
    assert isinstance(decision, Plug) and decision.scope is None
    carry_out(net, response)
    assert not any(f.table == Table.STATEFUL and f.priority for s in net.switches.values() for f in s.flows())
    assert not net[H2.dpid].connections()


def _flush_on(net: FakeNetwork, dpid: int, data: bytes) -> int:
    """Play an NXT_CT_FLUSH on a fake switch: its zone, protocol, addresses and port."""
    body = data[16:]
    proto = body[0]
    nested = body[8 + 8:8 + struct.unpack("!H", body[10:12])[0]]
    fields: dict[int, bytes] = {}
    while nested:
        kind, length = struct.unpack("!HH", nested[:4])
        fields[kind] = nested[4:length]
        nested = nested[(length + 7) // 8 * 8:]
    zone = struct.unpack("!H", body[-4:-2])[0]
    src, dst = (".".join(str(b) for b in fields[k][-4:]) for k in (0, 1))
    dport = struct.unpack("!H", fields[3][:2])[0] if 3 in fields else 0
    return net[dpid].flush_conntrack(zone, proto, src, dst, dport)


def test_revoking_the_route_flushes_its_connections_and_only_those() -> None:
    net = make_net()
    opened(net, FRONT, BACK, H1)
    opened(net, FRONT, NEAR, H1)
    cookie = route_cookie(FRONT.id, BACK.id).value
    route = LiveRoute(cookie, FRONT.id, BACK.id, ("front", "back"), {H1.dpid: 3, H2.dpid: 2}, 0.0,
                      scope=(TCP, 80), client=FRONT.id)
    flushes = route_flushes([route], VIEW)
    assert [dpid for dpid, _ in flushes] == [H1.dpid]
    assert _flush_on(net, H1.dpid, flushes[0][1].data) == 1
    assert FRONT.ofport is not None
    zone = route_zone(TCP, FRONT.ofport)
    assert net[H1.dpid].connections() == {(zone, (TCP, FRONT.ip, NEAR.ip, 40000, 80))}
